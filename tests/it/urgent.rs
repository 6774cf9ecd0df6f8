//! Urgent words act at once (issue 16 §3), end to end: the daemon with Whisper and live
//! transcription, the built-in caller playing Kokoro Mandarin (tests/data/speech) over RTP,
//! a real HTTP intake, and the operator peer of `transfer.rs`.
//!
//! - `flag` (the default): a caller reporting a gas leak who stays on the line: the intake
//!   receives revision 1 of the ticket, urgent, with `urgent_trigger`, before the caller hangs
//!   up; after the hang-up, revision 2 of the same ticket (same id and reference) with the
//!   whole transcript. A caller whose stove "打不着火" ("不是漏气") triggers nothing.
//! - `transfer`: the gas leak puts the caller through to `[transfer] urgent_target`: the
//!   operator (sipp's answering UAS) gets the INVITE, and the ticket says what triggered it and
//!   how the transfer went; an operator who never answers (a silent socket) leaves the message
//!   so far and the flow goes on as after a message.
//!
//! Needs `models/ggml-base.bin`; without it the tests skip, unless `HOTLINE_REQUIRE_MODEL=1`
//! or `CI=true`, where that is a failure.

use super::audio::{read_wav_8k, write_wav};
use super::harness::{free_udp_port, peer_available, repo, GatewayProcess};
use super::ops::{free_tcp_port, http_get};
use super::tickets_common::{Intake, Reply};
use hotline_gateway::caller::{dial, DialOptions, DialReport};
use hotline_gateway::media::Codec;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The parts joined by `pause_ms` of silence, then `hold_ms` of silence (the caller stays on
/// the line), as an 8 kHz WAV under `dir`.
fn message(dir: &Path, parts: &[&str], pause_ms: usize, hold_ms: usize) -> (PathBuf, Duration) {
    let mut pcm = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            pcm.extend(vec![0i16; pause_ms * 8]);
        }
        pcm.extend(read_wav_8k(&repo().join("tests/data/speech").join(p)));
    }
    pcm.extend(vec![0i16; hold_ms * 8]);
    let path = dir.join(format!("message-{}.wav", parts.join("+")));
    write_wav(&path, &pcm, 8000);
    (path, Duration::from_millis(pcm.len() as u64 / 8))
}

/// The daemon with Whisper, live transcription, and a message that only the caller's
/// hang-up (or a transfer) ends.
fn gateway(extra: &[(&str, &str)]) -> GatewayProcess {
    let mut env = vec![
        ("HOTLINE_ASR_ENABLED", "true"),
        ("HOTLINE_ASR_REQUIRED", "true"),
        ("HOTLINE_RECORDING_UTTERANCE_PAUSE_MS", "600"),
        ("HOTLINE_RECORDING_TRAILING_SILENCE_MS", "60000"),
    ];
    env.extend_from_slice(extra);
    GatewayProcess::start(&env)
}

/// Presses 1 (leave a message), speaks `wav` after the record prompt and the tone, and
/// hangs up when it ends (unless the gateway ends the call first). Returns the report and
/// the moment the caller's BYE was due (not before).
async fn call(
    gw: &GatewayProcess,
    wav: PathBuf,
    len: Duration,
    ports: u16,
) -> (DialReport, Instant) {
    let prompt = hotline_gateway::media::prompt::Prompt::from_wav_file(
        &repo().join("prompts/zh/record.wav"),
    )
    .unwrap()
    .duration();
    let speak_delay = prompt + Duration::from_millis(900);
    let max_duration = Duration::from_millis(1750) + speak_delay + len;
    let started = Instant::now();
    let report = dial(DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        from_user: "13912345678".into(),
        codecs: vec![Codec::Pcmu],
        play: Some(wav),
        dtmf: "1".into(),
        dtmf_delay: Duration::from_millis(1500),
        speak_delay,
        end_digit: None,
        rtp_ports: (gw.rtp.0 + ports, gw.rtp.1),
        max_duration,
        ..DialOptions::default()
    })
    .await
    .expect("dial");
    assert_eq!(report.status, 200);
    (report, started + max_duration)
}

fn doc_of(intake: &Intake, key: &str) -> Value {
    intake.documents().get(key).cloned().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_urgent_word_commits_the_ticket_while_the_caller_talks_and_the_transcript_follows() {
    if !super::harness::whisper_model_present() {
        return;
    }
    let intake = Intake::start(|_, _| Reply::Accept(200)).await;
    let url = intake.url();
    let admin = format!("127.0.0.1:{}", free_tcp_port());
    let mut gw = gateway(&[
        ("HOTLINE_INTAKE_URL", url.as_str()),
        ("HOTLINE_ADMIN_LISTEN", admin.as_str()),
    ]);
    let dir = tempfile::tempdir().unwrap();

    // Not urgent: "打不着火" holds 着火 and "不是漏气" holds 漏气, as words they are neither.
    let (wav, len) = message(dir.path(), &["urgent_negated_xiaoyi.wav"], 0, 3000);
    call(&gw, wav, len, 50).await;
    intake
        .wait_for(
            Duration::from_secs(180),
            "the negated message's ticket",
            |s| !s.applied.is_empty(),
        )
        .await;
    let (key, plain) = intake.documents().into_iter().next().unwrap();
    assert!(key.ends_with(":1"), "{key}");
    assert!(
        gw.log().contains("message transcribed live"),
        "the message went through live transcription\n{}",
        gw.log()
    );
    assert_eq!(plain["urgent_trigger"], Value::Null, "{plain:#}");
    assert_eq!(plain["classification"]["urgent"], false, "{plain:#}");
    assert_ne!(plain["call"]["hangup"]["reason"], "in_progress");

    // Urgent: a gas leak, then more words, then the caller stays on the line.
    let (wav, len) = message(
        dir.path(),
        &["urgent_gas_yunjian.wav", "menu_consult_xiaoyi.wav"],
        2000,
        30_000,
    );
    let (report, hangup_due) = call(&gw, wav, len, 60).await;
    assert_eq!(report.hung_up_by, Some("caller"), "{}", gw.log());
    intake
        .wait_for(
            Duration::from_secs(180),
            "revision 2 of the urgent ticket",
            |s| s.applied.len() >= 3,
        )
        .await;
    let posts = intake.posts();
    let keys: Vec<String> = posts
        .iter()
        .filter_map(|p| p.idempotency_key.clone())
        .filter(|k| *k != key)
        .collect();
    let id = keys[0].split(':').next().unwrap().to_owned();
    let (first, second) = (format!("{id}:1"), format!("{id}:2"));
    assert!(
        keys.contains(&first) && keys.contains(&second),
        "revisions 1 and 2 of one ticket: {keys:?}\n{}",
        gw.log()
    );
    let rev1_at = posts
        .iter()
        .find(|p| p.idempotency_key.as_deref() == Some(first.as_str()))
        .unwrap()
        .at;
    assert!(
        rev1_at < hangup_due,
        "revision 1 reached the intake {:.1} s after the caller hung up\n{}",
        (rev1_at - hangup_due).as_secs_f64(),
        gw.log()
    );
    let (r1, r2) = (doc_of(&intake, &first), doc_of(&intake, &second));
    println!(
        "urgent: revision 1 ({} at {} ms) reached the intake {:.1} s before the caller's hang-up",
        r1["urgent_trigger"]["word"],
        r1["urgent_trigger"]["at_ms"],
        (hangup_due - rev1_at).as_secs_f64()
    );
    let schema = super::tickets_common::schema();
    super::tickets_common::assert_valid(&schema, &r1);
    super::tickets_common::assert_valid(&schema, &r2);
    assert_eq!(r1["revision"], 1);
    assert_eq!(r1["classification"]["urgent"], true, "{r1:#}");
    assert_eq!(r1["call"]["hangup"]["reason"], "in_progress");
    let trigger = &r1["urgent_trigger"];
    assert_eq!(trigger["action"], "flag", "{r1:#}");
    assert!(
        ["煤气味", "燃气泄漏", "漏气"].contains(&trigger["word"].as_str().unwrap_or_default()),
        "{trigger}"
    );
    let at_ms = trigger["at_ms"].as_u64().unwrap();
    assert!(at_ms < 6_000, "said in the first utterance: {at_ms} ms");
    assert!(r1["reference"].is_string(), "{r1:#}");

    assert_eq!(r2["ticket_id"], r1["ticket_id"]);
    assert_eq!(r2["reference"], r1["reference"]);
    assert_eq!(r2["revision"], 2);
    assert_eq!(r2["urgent_trigger"], *trigger);
    assert_eq!(r2["classification"]["urgent"], true);
    assert_eq!(r2["call"]["hangup"]["reason"], "caller_bye", "{r2:#}");
    assert!(r2["recording"].is_object(), "{r2:#}");
    let chars = |d: &Value| d["transcript"]["text"].as_str().unwrap().chars().count();
    assert!(
        chars(&r2) > chars(&r1),
        "the whole message follows: {:?} then {:?}",
        r1["transcript"]["text"],
        r2["transcript"]["text"]
    );
    let applied = intake.applied();
    assert_eq!(applied.len(), 3, "two calls, three deliveries: {applied:?}");
    let (code, metrics) = http_get(admin.parse().unwrap(), "/metrics");
    assert_eq!(code, 200);
    for line in [
        "hotline_urgent_triggers_total{action=\"flag\"} 1",
        "hotline_urgent_triggers_total{action=\"transfer\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let log = gw.stop();
    assert_eq!(
        log.matches("urgent word heard").count(),
        1,
        "one trigger, for the gas leak only\n{log}"
    );
}

/// sipp's built-in UAS as the operator: answers, waits for the BYE. Returns its address and
/// the process; its message trace goes to `dir/operator.log`.
fn answering_operator(dir: &Path) -> (String, std::process::Child) {
    let port = free_udp_port();
    let child = std::process::Command::new("sipp")
        .current_dir(dir)
        .args(["-sn", "uas", "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-m", "1", "-timeout", "120", "-timeout_error", "-nostdin"])
        .args(["-trace_msg", "-message_file", "operator.log"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start sipp");
    (format!("127.0.0.1:{port}"), child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_urgent_word_puts_the_caller_through_to_the_urgent_target() {
    if !super::harness::whisper_model_present() || !peer_available("sipp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (op, mut sipp) = answering_operator(dir.path());
    let target = format!("sip:urgent@{op}");
    let mut gw = gateway(&[
        ("HOTLINE_TRANSFER_URGENT_ACTION", "transfer"),
        ("HOTLINE_TRANSFER_URGENT_TARGET", target.as_str()),
    ]);
    let (wav, len) = message(dir.path(), &["urgent_gas_yunjian.wav"], 0, 30_000);
    call(&gw, wav, len, 50).await;
    let tickets = gw.wait_tickets(1, Duration::from_secs(120));
    let log = gw.stop();
    let sipp_ok = tokio::task::spawn_blocking(move || sipp.wait().unwrap())
        .await
        .unwrap();
    let trace = std::fs::read_to_string(dir.path().join("operator.log")).unwrap_or_default();
    assert!(
        trace.contains("INVITE sip:urgent@"),
        "the operator at urgent_target gets the INVITE:\n{trace}\n{log}"
    );
    assert!(
        sipp_ok.success(),
        "the operator's call went through\n{trace}\n{log}"
    );
    assert_eq!(tickets.len(), 1, "{log}");
    let t = &tickets[0];
    assert_eq!(t["urgent_trigger"]["action"], "transfer", "{t:#}");
    assert_eq!(t["classification"]["urgent"], true);
    assert_eq!(t["transfer"]["target"], target.as_str());
    assert_eq!(t["transfer"]["outcome"], "answered", "{t:#}");
    assert!(
        !t["transcript"]["text"].as_str().unwrap().is_empty(),
        "the words before the transfer stay the message: {t:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_urgent_transfer_nobody_takes_goes_on_as_after_the_message() {
    if !super::harness::whisper_model_present() {
        return;
    }
    // An operator who never answers: the ring timeout ends it.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = format!("sip:urgent@{}", silent.local_addr().unwrap());
    let ringing = std::thread::spawn(move || {
        silent
            .set_read_timeout(Some(Duration::from_secs(90)))
            .unwrap();
        let mut buf = [0u8; 8192];
        let n = silent.recv(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    let mut gw = gateway(&[
        ("HOTLINE_TRANSFER_URGENT_ACTION", "transfer"),
        ("HOTLINE_TRANSFER_URGENT_TARGET", target.as_str()),
        ("HOTLINE_TRANSFER_RING_TIMEOUT_SECS", "2"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let (wav, len) = message(dir.path(), &["urgent_gas_yunjian.wav"], 0, 30_000);
    call(&gw, wav, len, 50).await;
    let invite = tokio::task::spawn_blocking(move || ringing.join().unwrap())
        .await
        .unwrap();
    let records = gw.wait_records(1, Duration::from_secs(120));
    let tickets = gw.wait_tickets(1, Duration::from_secs(120));
    let log = gw.stop();
    assert!(invite.starts_with("INVITE sip:urgent@"), "{invite}\n{log}");
    // The message ended at the word; the flow went on to what follows a message (the
    // reference read back) while the caller was still on the line.
    let steps: Vec<&str> = records[0]["flow"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let at = steps.iter().position(|s| *s == "message").unwrap();
    assert_eq!(steps.get(at + 1), Some(&"reference"), "{steps:?}\n{log}");
    let t = &tickets[0];
    assert_eq!(t["transfer"]["outcome"], "no_answer", "{t:#}");
    assert_eq!(t["urgent_trigger"]["action"], "transfer", "{t:#}");
    assert_eq!(t["classification"]["urgent"], true);
    assert!(
        t["recording"].is_object(),
        "the message so far is kept: {t:#}"
    );
    assert!(
        !t["transcript"]["text"].as_str().unwrap().is_empty(),
        "{t:#}"
    );
}
