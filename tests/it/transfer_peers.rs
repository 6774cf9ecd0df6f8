//! Reaching a person with real peers as the operators (issue 14): baresip, a softphone that
//! answers by itself, plays a voice from a file and records what it hears; sipp as a queue
//! whose operators are all busy. The caller is the gateway's own test caller (`dial`),
//! pressing 0 on the example flow.

use super::audio::{chunks_found, find, read_wav_8k, through_g711};
use super::baresip::{heard_wav, write_config, write_source_wav, Baresip};
use super::harness::{free_udp_port, peer_available, repo, GatewayProcess};
use super::ops::http_get;
use super::transfer::{assert_told_then_message, call_operator_speaking, SPEAK_AFTER_NOTICE};
use hotline_gateway::media::Codec;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// When the operator presses a key, after its call is up: while the caller talks.
const OPERATOR_KEY_AT: Duration = Duration::from_secs(3);

/// baresip as the operator: it answers at once (`answermode=auto`), its microphone is
/// `caller_zh.wav` after half a second, and it hangs up when that file runs out. The
/// caller speaks `caller_en.wav` and ends with '#'; the operator presses 5 meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_to_baresip_both_hear_each_other_and_each_others_keys() {
    if !peer_available("baresip") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let operator_voice = read_wav_8k(&repo().join("prompts/demo/caller_zh.wav"));
    let source = dir.path().join("operator.wav");
    write_source_wav(
        &source,
        Duration::from_millis(500),
        &operator_voice,
        Duration::from_secs(3),
    );
    let (sip_port, cons_port) = (free_udp_port(), free_udp_port());
    let target = format!("sip:operator@127.0.0.1:{sip_port}");
    let mut gw = GatewayProcess::start(&[("HOTLINE_TRANSFER_TARGET", &target)]);
    write_config(
        dir.path(),
        sip_port,
        cons_port,
        (gw.rtp.0 + 70, gw.rtp.1),
        &source,
    );
    // The operator's account: answers by itself; A-law only, so the bridge transcodes (the
    // caller talks PCMU).
    std::fs::write(
        dir.path().join("accounts"),
        "<sip:operator@127.0.0.1>;regint=0;answermode=auto;audio_codecs=PCMA\n",
    )
    .unwrap();
    let mut phone = Baresip::start(dir.path(), None, cons_port);
    let operator = tokio::task::spawn_blocking(move || {
        let established =
            phone.wait_for("Call established", Instant::now() + Duration::from_secs(40));
        let mut closed = false;
        if established {
            std::thread::sleep(OPERATOR_KEY_AT);
            phone.press('5');
            // The file runs out after ~18 s: baresip hangs up.
            closed = phone.wait_for("terminated", Instant::now() + Duration::from_secs(40));
        }
        (established, closed, phone.quit())
    });

    let heard_path = dir.path().join("caller-heard.wav");
    let report = call_operator_speaking(
        &gw,
        Some(heard_path.clone()),
        40,
        Duration::from_millis(3000),
    )
    .await;
    let (established, closed, phone_log) = operator.await.unwrap();
    let records = gw.wait_records(1, Duration::from_secs(15));
    let tickets = gw.wait_tickets(1, Duration::from_secs(15));
    let log = gw.stop();
    assert!(
        established,
        "baresip never answered:\n{phone_log}\ndaemon:\n{log}"
    );
    assert!(
        closed,
        "baresip's call did not end:\n{phone_log}\ndaemon:\n{log}"
    );
    assert_eq!(report.status, 200, "{log}");
    assert_eq!(
        report.hung_up_by,
        Some("gateway"),
        "the operator's BYE ends the caller's leg\n{log}"
    );

    // The operator heard the caller (what baresip decoded), the caller heard the operator.
    let op_heard = heard_wav(&dir.path().join("snd"))
        .unwrap_or_else(|| panic!("no sndfile dump of what baresip heard:\n{phone_log}"));
    let op_heard = read_wav_8k(&op_heard);
    let caller_voice = read_wav_8k(&repo().join("prompts/demo/caller_en.wav"));
    assert!(
        phone_log.contains("Set audio decoder: PCMA"),
        "the operator's leg is A-law:\n{phone_log}"
    );
    assert_found(&op_heard, &caller_voice, "the operator heard the caller");
    let heard = read_wav_8k(&heard_path);
    assert_found(&heard, &operator_voice, "the caller heard the operator");

    // Digits both ways, as RFC 4733 events.
    assert_eq!(
        report.digits_heard, "5",
        "the operator's key reached the caller\n{log}"
    );
    assert!(
        phone_log.contains("received event: '#' (end=1)"),
        "the caller's '#' reached the operator:\n{phone_log}"
    );

    let t = &tickets[0];
    assert_eq!(records[0]["transfer"]["outcome"], "answered");
    assert_eq!(t["transfer"]["outcome"], "answered", "{t:#}");
    assert_eq!(t["transfer"]["target"], target.as_str());
    assert!(t["transfer"]["talk_ms"].as_u64().unwrap() > 12_000, "{t:#}");
    assert!(
        t["recording"].is_null(),
        "record_bridged is off by default: {t:#}"
    );
}

/// `reference` (through both G.711 laws: the bridge transcodes) is in `recording`: each
/// half second of it, in order.
fn assert_found(recording: &[i16], reference: &[i16], what: &str) {
    let reference = through_g711(&through_g711(reference, Codec::Pcma), Codec::Pcmu);
    let (corr, overlap) = find(recording, &reference);
    let found = chunks_found(recording, &reference, 0.9);
    eprintln!("{what}: corr {corr:.3}, overlap {overlap:.2}, chunks {found:.2}");
    assert!(found >= 0.8, "{what}: only {:.0}% found", found * 100.0);
}

/// sipp as the operators' queue answering 486 (and checking the INVITE's context headers):
/// the caller is told the operators are busy, leaves a message, and the ticket and the
/// metrics say `busy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_busy_486_the_caller_is_told_and_leaves_a_message() {
    if !peer_available("sipp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sip_port = free_udp_port();
    let admin = format!("127.0.0.1:{}", free_udp_port());
    let mut gw = GatewayProcess::start(&[
        (
            "HOTLINE_TRANSFER_TARGET",
            &format!("sip:queue@127.0.0.1:{sip_port}"),
        ),
        ("HOTLINE_ADMIN_LISTEN", &admin),
    ]);
    // Its media port (unused, but bound) inside this test's range: the default, 6000, may
    // be another sipp's.
    let mut sipp = Command::new("sipp");
    sipp.current_dir(dir.path())
        .args([
            "-sf",
            repo().join("tests/sipp/uas_busy.xml").to_str().unwrap(),
        ])
        .args(["-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args(["-p", &sip_port.to_string()])
        .args(["-mp", &(gw.rtp.0 + 80).to_string()])
        .args(["-timeout", "60", "-timeout_error", "-nostdin", "-trace_err"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let sipp = sipp.spawn().expect("start sipp");
    let heard = dir.path().join("heard.wav");
    // The caller speaks after the busy notice (speech would cut it short, as it may).
    let report = call_operator_speaking(&gw, Some(heard.clone()), 60, SPEAK_AFTER_NOTICE).await;
    let out = tokio::task::spawn_blocking(move || sipp.wait_with_output().unwrap())
        .await
        .unwrap();
    let records = gw.wait_records(1, Duration::from_secs(15));
    let tickets = gw.wait_tickets(1, Duration::from_secs(15));
    let (code, metrics) = http_get(admin.parse().unwrap(), "/metrics");
    let log = gw.stop();
    assert!(
        out.status.success(),
        "sipp (the busy queue) failed ({}): {}\n{}\n{}\ndaemon:\n{log}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
        errors(dir.path())
    );
    assert_eq!(report.status, 200);
    let rec = &records[0];
    assert_eq!(rec["transfer"]["outcome"], "busy", "{rec:#}");
    // Told why before the tone: "人工坐席正忙，请在提示音后留言", in place of the record prompt.
    assert_told_then_message(rec, &heard, "zh", "transfer_busy", "busy_message");
    let t = &tickets[0];
    assert_eq!(t["transfer"]["outcome"], "busy", "{t:#}");
    assert!(t["transfer"]["answered_at"].is_null(), "{t:#}");
    assert!(
        t["recording"].is_object(),
        "the message is in the ticket: {t:#}"
    );
    assert_eq!(code, 200);
    assert!(
        metrics.contains("hotline_transfers_total{outcome=\"busy\"} 1"),
        "{metrics}"
    );
}

/// sipp's `-trace_err` file, for a failure message.
fn errors(dir: &Path) -> String {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("_errors.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect()
}
