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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoken_complaint_becomes_a_simplified_chinese_transcript_in_the_ticket() {
    let Some((_, speech)) = inputs() else { return };
    let mut gw = GatewayProcess::start(&[
        ("HOTLINE_ASR_ENABLED", "true"),
        ("HOTLINE_ASR_REQUIRED", "true"),
    ]);
    let report = dial(DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        codecs: vec![Codec::Pcmu],
        play: Some(speech),
        dtmf: "1".into(),
        dtmf_delay: Duration::from_millis(1500),
        speak_delay: record_prompt_len() + Duration::from_millis(900),
        end_digit: Some('#'),
        rtp_ports: (gw.rtp.0 + 50, gw.rtp.1),
        max_duration: Duration::from_secs(60),
        verbose: false,
        ..DialOptions::default()
    })
    .await
    .expect("dial");
    assert_eq!(report.status, 200);
    let tickets = gw.wait_tickets(1, Duration::from_secs(120));
    let records = gw.wait_records(1, Duration::from_secs(5));
    let log = gw.stop();
    assert_eq!(tickets.len(), 1, "daemon log:\n{log}");
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
        max_duration: Duration::from_secs(30),
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
