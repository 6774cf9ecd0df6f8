//! Speech barge-in through the real daemon: a caller who starts talking over "please speak
//! after the tone" stops it, and the message starts with the words that stopped it.

use super::audio::{find_with_lag, read_wav_8k, through_g711};
use super::harness::{repo, GatewayProcess};
use hotline_gateway::caller::{dial, DialOptions, DialReport};
use hotline_gateway::media::Codec;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CODEC: Codec = Codec::Pcmu;

/// The caller presses 1 during the greeting, then starts its message `speak_after` after
/// the digit, while the 6.7 s "please speak after the tone" prompt is still playing, and
/// ends it with `#`.
async fn call_talking_over_the_prompt(
    gw: &GatewayProcess,
    heard: &Path,
    speak_after: Duration,
) -> DialReport {
    dial(DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        codecs: vec![CODEC],
        play: Some(message()),
        dtmf: "1".into(),
        dtmf_delay: Duration::from_millis(2500),
        speak_delay: speak_after,
        end_digit: Some('#'),
        record: Some(heard.to_path_buf()),
        max_duration: Duration::from_secs(60),
        rtp_ports: (gw.rtp.0 + 50, gw.rtp.1),
        verbose: true,
        ..DialOptions::default()
    })
    .await
    .expect("dial")
}

fn message() -> PathBuf {
    repo().join("prompts/demo/caller_zh.wav")
}

/// How much of `prompt` the caller heard, in ms: where `prompt` starts in `heard`, then the
/// end of the last 100 ms piece of it that is there (a bit-exact piece scores ~1, one
/// replaced by silence 0). Each piece is looked for a little after where the previous one
/// ended: a sender that stalls skips RTP timestamps and the caller's recorder inserts that
/// much silence. Also returns the end of the prompt's last audible piece, which is what a
/// caller hears of a prompt that plays out.
fn prompt_heard_ms(heard: &[i16], prompt: &[i16]) -> (u64, u64) {
    let (corr, _, lag) = find_with_lag(heard, &prompt[..8000]);
    assert!(
        corr > 0.95,
        "the prompt's first second is not in what the caller heard ({corr:.3})"
    );
    let mut expected = usize::try_from(lag).expect("prompt starts inside the recording");
    let (mut last, mut audible) = (0, 0);
    for (k, piece) in prompt.chunks(800).enumerate() {
        let e: f64 = piece.iter().map(|&b| (b as f64).powi(2)).sum();
        if !piece.iter().any(|s| s.unsigned_abs() > 300) {
            expected += piece.len();
            continue;
        }
        audible = k + 1;
        let score = |at: usize| -> f64 {
            let got = &heard[at..at + piece.len()];
            got.iter()
                .zip(piece)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum::<f64>()
                / e
        };
        let lo = expected.saturating_sub(160);
        let hi = (expected + 1600).min(heard.len().saturating_sub(piece.len()));
        match (lo..=hi).find(|&at| score(at) > 0.9) {
            Some(at) => {
                last = k + 1;
                expected = at + piece.len();
            }
            None => expected += piece.len(),
        }
    }
    (last as u64 * 100, audible as u64 * 100)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_talking_over_the_message_prompt_stops_it_and_the_recording_starts_with_the_speech(
) {
    let mut gw = GatewayProcess::start(&[]); // default: speech_barge_in = "message"
    let heard_path = gw.data_dir.path().join("heard.wav");
    let report = call_talking_over_the_prompt(&gw, &heard_path, Duration::from_millis(1500)).await;
    assert_eq!(report.status, 200);
    assert_eq!(report.hung_up_by, Some("gateway"));
    let records = gw.wait_records(1, Duration::from_secs(10));
    let log = gw.stop();
    assert_eq!(records.len(), 1, "daemon log:\n{log}");
    let rec = &records[0];
    assert_eq!(rec["barge_in"], "speech", "{rec:#}");
    assert_eq!(rec["menu"]["id"], "complaint");
    assert_eq!(rec["recording"]["ended_by"], "stop_digit", "{rec:#}");

    // The prompt stopped early: the caller started ~1.75 s into it (250 ms after the digit
    // plus 1.5 s, less however long the gateway took to act on the digit) and heard at most
    // the onset time and a frame or two more, not the whole prompt; and not before it spoke.
    let prompt = through_g711(&read_wav_8k(&repo().join("prompts/zh/record.wav")), CODEC);
    let heard = read_wav_8k(&heard_path);
    let (heard_ms, prompt_ms) = prompt_heard_ms(&heard, &prompt);
    eprintln!("caller heard {heard_ms} ms of the {prompt_ms} ms prompt");
    assert!(
        (1000..=2800).contains(&heard_ms),
        "caller heard {heard_ms} ms of the {prompt_ms} ms prompt"
    );

    // The message starts with the caller's first words: the first 1.5 s of speech are in
    // the recording, starting within its first half second (the pre-roll).
    let wav = PathBuf::from(rec["recording"]["path"].as_str().unwrap());
    let recorded = read_wav_8k(&wav);
    let spoken = through_g711(&read_wav_8k(&message()), CODEC);
    let (corr, overlap, lag) = find_with_lag(&recorded, &spoken[..12_000]);
    eprintln!(
        "speech starts {} ms into the recording (corr {corr:.3})",
        lag / 8
    );
    assert!(
        corr > 0.9 && overlap > 0.99,
        "first words: corr {corr:.3}, overlap {overlap:.2} at {lag}"
    );
    assert!(
        (0..=4000).contains(&lag),
        "the speech starts {} ms into the recording",
        lag / 8
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_off_the_prompt_plays_out_over_the_caller() {
    let mut gw = GatewayProcess::start(&[("HOTLINE_IVR_SPEECH_BARGE_IN", "off")]);
    let heard_path = gw.data_dir.path().join("heard.wav");
    let report = call_talking_over_the_prompt(&gw, &heard_path, Duration::from_millis(1500)).await;
    assert_eq!(report.status, 200);
    let records = gw.wait_records(1, Duration::from_secs(10));
    let log = gw.stop();
    assert_eq!(records.len(), 1, "daemon log:\n{log}");
    let rec = &records[0];
    // the menu digit cut the greeting short; the speech cut nothing
    assert_eq!(rec["barge_in"], "dtmf", "{rec:#}");
    let prompt = through_g711(&read_wav_8k(&repo().join("prompts/zh/record.wav")), CODEC);
    let heard = read_wav_8k(&heard_path);
    let (heard_ms, prompt_ms) = prompt_heard_ms(&heard, &prompt);
    assert_eq!(heard_ms, prompt_ms, "the whole prompt was heard");
    // The caller started talking ~1.75 s into the prompt: a prompt this long, heard whole,
    // shows the speech cut nothing.
    assert!(prompt_ms > 3000, "the prompt is {prompt_ms} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_all_talking_over_the_greeting_skips_to_the_default_message() {
    let mut gw = GatewayProcess::start(&[("HOTLINE_IVR_SPEECH_BARGE_IN", "all")]);
    // No key at all: the caller starts talking 1.5 s into the greeting.
    let report = dial(DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        codecs: vec![CODEC],
        play: Some(message()),
        dtmf_delay: Duration::from_millis(1500),
        end_digit: Some('#'),
        // the message is followed by the reference read-back (twice) and its `*` wait
        max_duration: Duration::from_secs(90),
        rtp_ports: (gw.rtp.0 + 50, gw.rtp.1),
        verbose: true,
        ..DialOptions::default()
    })
    .await
    .expect("dial");
    assert_eq!(report.status, 200);
    assert_eq!(report.hung_up_by, Some("gateway"));
    let records = gw.wait_records(1, Duration::from_secs(10));
    let log = gw.stop();
    assert_eq!(records.len(), 1, "daemon log:\n{log}");
    let rec = &records[0];
    assert_eq!(rec["barge_in"], "speech", "{rec:#}");
    // the example config's on_no_input option, chosen for the caller
    assert_eq!(rec["menu"]["id"], "operator", "{rec:#}");
    assert_eq!(rec["menu"]["defaulted"], true);
    assert_eq!(rec["menu"]["digits"], "");
    assert_eq!(rec["recording"]["ended_by"], "stop_digit", "{rec:#}");
    // the whole message, from its first words, is in the recording
    let recorded = read_wav_8k(&PathBuf::from(rec["recording"]["path"].as_str().unwrap()));
    let spoken = through_g711(&read_wav_8k(&message()), CODEC);
    let (corr, overlap, lag) = find_with_lag(&recorded, &spoken[..12_000]);
    assert!(
        corr > 0.9 && overlap > 0.99 && (0..=4000).contains(&lag),
        "first words: corr {corr:.3}, overlap {overlap:.2} at {} ms",
        lag / 8
    );
}
