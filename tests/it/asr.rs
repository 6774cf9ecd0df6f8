//! Transcription through the whole call path: a caller speaks a Mandarin complaint as G.711
//! RTP, the gateway records it, Whisper transcribes it after the call, and the ticket carries
//! the Simplified-Chinese transcript and the category its keywords point to.

use super::harness::{repo, GatewayProcess};
use hotline_gateway::caller::{dial, DialOptions};
use hotline_gateway::media::Codec;
use std::path::PathBuf;
use std::time::Duration;

/// The model and the sample speech are set up by `models/fetch.sh` and `../shared/`; CI has
/// both (`CI=true` or `HOTLINE_REQUIRE_MODEL=1` makes their absence a failure, not a skip).
pub(super) fn inputs() -> Option<(PathBuf, PathBuf)> {
    let model = repo().join("models/ggml-base.bin");
    // ../shared beside the checkout, or beside a git worktree's parent (/work/wt/NAME), or
    // HOTLINE_SPEECH_DIR, as tests/asr_model.rs looks for it.
    let speech = [
        std::env::var_os("HOTLINE_SPEECH_DIR").map(PathBuf::from),
        Some(repo().join("../shared/speech")),
        Some(repo().join("../../shared/speech")),
    ]
    .into_iter()
    .flatten()
    .map(|d| d.join("dev_zh_02_heating.wav"))
    .find(|p| p.exists())
    .unwrap_or_else(|| repo().join("../shared/speech/dev_zh_02_heating.wav"));
    if model.exists() && speech.exists() {
        return Some((model, speech));
    }
    if std::env::var("HOTLINE_REQUIRE_MODEL").as_deref() == Ok("1")
        || std::env::var("CI").as_deref() == Ok("true")
    {
        panic!(
            "model {} or speech {} missing",
            model.display(),
            speech.display()
        );
    }
    eprintln!("SKIPPED: no Whisper model (models/fetch.sh base) or no ../shared/speech");
    None
}

fn record_prompt_len() -> Duration {
    let p = hotline_gateway::media::prompt::Prompt::from_wav_file(
        &repo().join("prompts/zh/record.wav"),
    )
    .unwrap();
    p.duration()
}

/// One call speaking `speech`; its ticket and call record, and the daemon's log.
async fn one_ticket(
    gw: &mut GatewayProcess,
    speech: PathBuf,
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>, String) {
    let report = speak_a_message(gw, speech).await;
    assert_eq!(report.status, 200);
    let tickets = gw.wait_tickets(1, Duration::from_secs(120));
    let records = gw.wait_records(1, Duration::from_secs(5));
    let log = gw.stop();
    assert_eq!(tickets.len(), 1, "daemon log:\n{log}");
    (tickets, records, log)
}

/// Press 1, speak `speech` after the record prompt, press `#`.
async fn speak_a_message(
    gw: &GatewayProcess,
    speech: PathBuf,
) -> hotline_gateway::caller::DialReport {
    dial(DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        codecs: vec![Codec::Pcmu],
        play: Some(speech),
        dtmf: "1".into(),
        dtmf_delay: Duration::from_millis(1500),
        speak_delay: record_prompt_len() + Duration::from_millis(900),
        end_digit: Some('#'),
        rtp_ports: (gw.rtp.0 + 50, gw.rtp.1),
        max_duration: Duration::from_secs(90),
        verbose: false,
        ..DialOptions::default()
    })
    .await
    .expect("dial")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoken_complaint_becomes_a_simplified_chinese_transcript_in_the_ticket() {
    let Some((_, speech)) = inputs() else { return };
    let mut gw = GatewayProcess::start(&[
        ("HOTLINE_ASR_ENABLED", "true"),
        ("HOTLINE_ASR_REQUIRED", "true"),
    ]);
    let (tickets, records, _log) = one_ticket(&mut gw, speech).await;
    let t = &tickets[0]["transcript"];
    let text = t["text"].as_str().unwrap_or_default();
    assert!(text.contains("暖气"), "transcript {text:?}\n{t:#}");
    assert!(
        !text.contains("暖氣") && !text.contains("來"),
        "Simplified, not Traditional: {text:?}"
    );
    assert_eq!(t["language"], "zh");
    assert!(t["empty_reason"].is_null());
    let segments = t["segments"].as_array().expect("segments");
    assert!(!segments.is_empty());
    for s in segments {
        assert!(s["end_ms"].as_u64() >= s["start_ms"].as_u64(), "{s}");
        assert!(
            s["confidence"]
                .as_f64()
                .is_some_and(|c| (0.0..=1.0).contains(&c)),
            "{s}"
        );
    }
    // The keywords, not just the menu, now decide the category.
    assert_eq!(
        tickets[0]["classification"]["source"], "keywords",
        "{:#}",
        tickets[0]["classification"]
    );
    assert!(tickets[0]["classification"]["matched_keywords"]
        .to_string()
        .contains("暖气"));
    // The call record carries the same transcript.
    assert_eq!(records[0]["transcript"]["text"], text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_caller_gets_an_empty_transcript_with_a_reason_never_text() {
    if inputs().is_none() {
        return;
    }
    let mut gw = GatewayProcess::start(&[
        ("HOTLINE_ASR_ENABLED", "true"),
        ("HOTLINE_ASR_REQUIRED", "true"),
        ("HOTLINE_RECORDING_NO_SPEECH_TIMEOUT_SECS", "2"),
    ]);
    let report = dial(DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        dtmf: "1".into(),
        dtmf_delay: Duration::from_millis(1500),
        rtp_ports: (gw.rtp.0 + 50, gw.rtp.1),
        max_duration: Duration::from_secs(90),
        verbose: false,
        ..DialOptions::default()
    })
    .await
    .expect("dial");
    assert_eq!(report.status, 200);
    assert_eq!(report.hung_up_by, Some("gateway"));
    let tickets = gw.wait_tickets(1, Duration::from_secs(60));
    let log = gw.stop();
    assert_eq!(tickets.len(), 1, "daemon log:\n{log}");
    let t = &tickets[0]["transcript"];
    assert_eq!(t["text"], "", "{t:#}");
    assert_eq!(t["empty_reason"], "no_speech", "{t:#}");
}

/// A 16 kHz mono WAV's samples.
pub(super) fn read_wav16(p: &std::path::Path) -> Vec<i16> {
    let mut r = hound::WavReader::open(p).unwrap();
    assert_eq!(r.spec().sample_rate, 16_000);
    r.samples::<i16>().map(Result::unwrap).collect()
}

pub(super) fn write_wav16(path: &std::path::Path, pcm: &[i16]) {
    super::audio::write_wav(path, pcm, 16_000);
}

/// `a` + `pause_ms` of silence + `b` + 500 ms, as one 16 kHz WAV in `dir`.
fn two_utterances(
    dir: &std::path::Path,
    a: &std::path::Path,
    b: &std::path::Path,
    pause_ms: u32,
) -> PathBuf {
    let mut pcm = read_wav16(a);
    pcm.extend(std::iter::repeat_n(0i16, (pause_ms * 16) as usize));
    pcm.extend(read_wav16(b));
    pcm.extend(std::iter::repeat_n(0i16, 8000));
    let path = dir.join("two-utterances.wav");
    write_wav16(&path, &pcm);
    path
}

/// Live transcription end to end: the first utterance is transcribed while the caller is
/// still talking, the rest after the call, and the ticket holds both in message time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_utterance_message_is_transcribed_live_with_segments_in_message_time() {
    let Some((_, heating)) = inputs() else { return };
    let streetlight = heating.with_file_name("dev_zh_01_streetlight.wav");
    let dir = tempfile::tempdir().unwrap();
    let speech = two_utterances(dir.path(), &streetlight, &heating, 1200);
    let mut gw = GatewayProcess::start(&[
        ("HOTLINE_ASR_ENABLED", "true"),
        ("HOTLINE_ASR_REQUIRED", "true"),
        ("HOTLINE_RECORDING_TRAILING_SILENCE_MS", "3000"),
        ("HOTLINE_RECORDING_UTTERANCE_PAUSE_MS", "600"),
    ]);
    let (tickets, records, log) = one_ticket(&mut gw, speech).await;
    assert!(
        log.contains("message transcribed live"),
        "the first utterance was not transcribed during the call:\n{log}"
    );
    let t = &tickets[0]["transcript"];
    let text = t["text"].as_str().unwrap_or_default();
    // 路灯 is sometimes heard as 路都 (the synthetic voice); 路 is in no other word here
    assert!(text.contains('路'), "first utterance: {text:?}\n{t:#}");
    assert!(text.contains("暖气"), "second utterance: {text:?}\n{t:#}");
    let duration_ms = records[0]["recording"]["duration_ms"]
        .as_u64()
        .expect("duration");
    let segments = t["segments"].as_array().expect("segments");
    let mut last_end = 0;
    for s in segments {
        let (start, end) = (
            s["start_ms"].as_u64().unwrap(),
            s["end_ms"].as_u64().unwrap(),
        );
        assert!(
            start <= end && end <= duration_ms + 100,
            "{s} outside the {duration_ms} ms message"
        );
        assert!(start + 100 >= last_end, "segments out of order: {t:#}");
        last_end = end;
    }
    // The heating sentence comes after the 5.35 s streetlight one and the pause: its
    // segment's time is in the message, not in its own clip.
    let heating_seg = segments
        .iter()
        .find(|s| s["text"].as_str().is_some_and(|x| x.contains("暖气")))
        .expect("a segment with 暖气");
    assert!(
        heating_seg["start_ms"].as_u64().unwrap() >= 5000,
        "segment time not moved into the message: {heating_seg}"
    );
}

/// The second pass: the live ticket goes out at once; when the pool is idle the whole
/// message is decoded carefully (beam 5, the table's words, as config/hotline.toml says), and
/// the ticket ends with exactly the text that decoding of the recording gives: as its next
/// revision when that text differs from the live one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_live_ticket_the_whole_message_text_becomes_its_next_revision() {
    let Some((model, heating)) = inputs() else {
        return;
    };
    let insurance = heating.with_file_name("dev_zh_05_social_insurance.wav");
    let dir = tempfile::tempdir().unwrap();
    let speech = two_utterances(dir.path(), &insurance, &heating, 2000);
    let mut gw = GatewayProcess::start(&[
        ("HOTLINE_ASR_ENABLED", "true"),
        ("HOTLINE_ASR_REQUIRED", "true"),
        ("HOTLINE_RECORDING_TRAILING_SILENCE_MS", "3000"),
        ("HOTLINE_RECORDING_UTTERANCE_PAUSE_MS", "600"),
        // the shipped careful decoding (the harness turns it off for other tests)
        ("HOTLINE_ASR_SECOND_PASS_BEAM_SIZE", "5"),
        ("HOTLINE_ASR_SECOND_PASS_PROMPT", "auto"),
        ("HOTLINE_ASR_KEYWORD_BIAS", "second_pass"),
        ("HOTLINE_ASR_KEYWORD_RESCORING", "true"),
    ]);
    let report = speak_a_message(&gw, speech).await;
    assert_eq!(report.status, 200);
    let live = gw.wait_tickets(1, Duration::from_secs(120));
    let revised = "ticket revised with the whole message's transcript";
    let stands = "second pass: live text stands";
    let done = |log: &str| log.contains(revised) || log.contains(stands);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !done(&gw.log()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let records = gw.wait_records(1, Duration::from_secs(5));
    let tickets = gw.wait_tickets(1, Duration::from_secs(5));
    let log = gw.stop();
    assert!(log.contains("message transcribed live"), "{log}");
    assert!(done(&log), "no second pass:\n{log}");

    // The same careful decoding as the daemon's second pass ([asr] of config/hotline.toml:
    // the 8-bit model, beam 5, the classification table's words in the prompt and as
    // keyword bias; both threads), on the
    // recording.
    let wav = PathBuf::from(records[0]["recording"]["path"].as_str().expect("path"));
    let pcm: Vec<i16> = hound::WavReader::open(&wav)
        .unwrap_or_else(|e| panic!("{}: {e}", wav.display()))
        .samples::<i16>()
        .map(Result::unwrap)
        .collect();
    use hotline_gateway::asr::prompt;
    let mut cfg = hotline_gateway::asr::AsrConfig {
        model_path: model.with_file_name("ggml-base-q8_0.bin"),
        workers: 2,
        threads_per_worker: 1,
        careful_beam_size: 5,
        ..Default::default()
    };
    cfg.initial_prompts
        .insert("zh".into(), prompt::ZH_BASE.to_string());
    // The shipped config names no table file: the built-in table, as the daemon takes it.
    let rules = hotline_gateway::ticket::classify::Rules::builtin();
    cfg.careful_prompts
        .insert("zh".into(), prompt::auto(&rules.vocabulary()));
    cfg.keywords = prompt::keywords(&rules.vocabulary());
    let pool = hotline_gateway::asr::AsrPool::start(cfg).expect("model");
    let whole = pool
        .submit_careful(pcm.into(), "zh")
        .expect("queue")
        .await
        .unwrap();
    let t = &tickets[0];
    assert_eq!(t["transcript"]["text"], whole.text.as_str(), "{log}");
    // The call record keeps what the live pass heard, the ticket was committed with it.
    let live_text = records[0]["transcript"]["text"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(t["ticket_id"], live[0]["ticket_id"]);
    assert_eq!(t["reference"], live[0]["reference"]);
    if live_text == whole.text {
        assert!(log.contains(stands), "{log}");
        assert_eq!(t["revision"], 1);
    } else {
        assert!(log.contains(revised), "{log}");
        assert_eq!(t["revision"], 2, "{t:#}");
    }
}
