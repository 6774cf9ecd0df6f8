//! Issue 13, reference numbers and progress by phone, with the built-in caller against the
//! daemon: a caller who leaves a message hears their reference (each digit prompt found in
//! what they heard, in order), the call record and the ticket hold the same number and
//! `tickets show <reference>` finds it; once the desk API sets the ticket resolved, a second
//! caller presses 4, keys the number and `#`, and hears "resolved".

use super::audio::{find, find_with_lag, read_wav_8k, through_g711};
use super::desk_harness::free_tcp_port;
use super::harness::{repo, GatewayProcess};
use hotline_gateway::caller::{dial, DialOptions};
use hotline_gateway::media::Codec;
use std::time::Duration;

const TOKEN: &str = "reference-test-token-0123456789";

fn prompt(name: &str) -> Vec<i16> {
    through_g711(
        &read_wav_8k(&repo().join(format!("prompts/zh/{name}.wav"))),
        Codec::Pcma,
    )
}

/// Where each digit prompt of `reference` starts in `heard`, searched in order from `from`,
/// each within a short window after the one before (so a digit of the second reading
/// cannot stand in for one of the first).
fn digits_in_order(heard: &[i16], mut from: usize, reference: &str) -> Result<(), String> {
    for (i, d) in reference.chars().enumerate() {
        let p = prompt(&format!("digit_{d}"));
        let end = heard.len().min(from + p.len() + 8000 * 2);
        if from >= end {
            return Err(format!("heard audio ends before digit {i} ({d})"));
        }
        let (corr, overlap, lag) = find_with_lag(&heard[from..end], &p);
        if corr < 0.9 || overlap < 0.9 {
            return Err(format!(
                "digit {i} ({d}) not heard at {:.2} s: corr {corr:.3}, overlap {overlap:.2}",
                from as f64 / 8000.0
            ));
        }
        from += lag.max(0) as usize + p.len();
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_hears_their_reference_and_a_second_call_hears_its_progress() {
    let listen = format!("127.0.0.1:{}", free_tcp_port());
    let mut gw = GatewayProcess::start(&[
        ("HOTLINE_TICKETS_INSTANCE_NUMBER", "7"),
        ("HOTLINE_CONSOLE_LISTEN", listen.as_str()),
        ("HOTLINE_CONSOLE_API_TOKENS", TOKEN),
    ]);
    let heard = gw.data_dir.path().join("heard.wav");
    let record_len = read_wav_8k(&repo().join("prompts/zh/record.wav")).len() as u64 / 8;
    let report = dial(DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        from_user: "13912345678".into(),
        codecs: vec![Codec::Pcma],
        play: Some(repo().join("prompts/demo/caller_zh.wav")),
        dtmf: "1".into(),
        dtmf_delay: Duration::from_millis(2500),
        speak_delay: Duration::from_millis(record_len + 900),
        end_digit: Some('#'),
        record: Some(heard.clone()),
        max_duration: Duration::from_secs(90),
        rtp_ports: (gw.rtp.0 + 50, gw.rtp.1),
        ..DialOptions::default()
    })
    .await
    .expect("dial");
    assert_eq!(report.hung_up_by, Some("gateway"), "{}", gw.log());

    let records = gw.wait_records(1, Duration::from_secs(10));
    let tickets = gw.wait_tickets(1, Duration::from_secs(10));
    assert_eq!(tickets.len(), 1, "one ticket; log:\n{}", gw.log());
    let reference = records[0]["flow"]["vars"]["reference"]
        .as_str()
        .unwrap_or_else(|| panic!("no reference in the record: {:#}", records[0]))
        .to_owned();
    let today = chrono::Local::now().format("%y%m%d").to_string();
    assert_eq!(reference.len(), 12, "{reference}");
    assert!(
        reference.starts_with(&format!("{today}07")),
        "YYMMDD + instance 07: {reference}"
    );
    assert_eq!(tickets[0]["reference"], reference.as_str());

    // The read-back: after "your reference number is", every digit in order.
    let heard_pcm = read_wav_8k(&heard);
    let intro = prompt("reference_intro");
    let (corr, overlap, lag) = find_with_lag(&heard_pcm, &intro);
    assert!(corr > 0.9 && overlap > 0.9, "intro: {corr:.3} {overlap:.2}");
    let after_intro = lag.max(0) as usize + intro.len();
    if let Err(e) = digits_in_order(&heard_pcm, after_intro, &reference) {
        let keep = std::env::temp_dir().join("hotline-failed-reference.wav");
        let _ = std::fs::copy(&heard, &keep);
        panic!("{e}; reference {reference}; kept {}", keep.display());
    }

    // `tickets show <reference>` finds the ticket.
    let shown = std::process::Command::new(env!("CARGO_BIN_EXE_hotline-gateway"))
        .args(["tickets", "--config"])
        .arg(repo().join("config/hotline.toml"))
        .args(["show", &reference])
        .env("HOTLINE_DATA_DIR", gw.data_dir.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(out.contains(&reference), "{out}");

    // The desk (or the intake) says it is resolved, by reference.
    let r = reqwest::Client::new()
        .post(format!(
            "http://{listen}/api/v1/tickets/{reference}/progress"
        ))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"state": "resolved", "note": "已办结"}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(status.is_success(), "{status}: {}", r.text().await.unwrap());

    // The second call: 4, the reference, #.
    let heard2 = gw.data_dir.path().join("heard2.wav");
    let report = dial(DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        from_user: "13912345678".into(),
        codecs: vec![Codec::Pcma],
        dtmf: format!("4{reference}#"),
        dtmf_delay: Duration::from_millis(2500),
        record: Some(heard2.clone()),
        max_duration: Duration::from_secs(45),
        rtp_ports: (gw.rtp.0 + 50, gw.rtp.1),
        ..DialOptions::default()
    })
    .await
    .expect("dial");
    assert_eq!(report.hung_up_by, Some("gateway"), "{}", gw.log());
    let heard2_pcm = read_wav_8k(&heard2);
    let (corr, overlap) = find(&heard2_pcm, &prompt("progress_resolved"));
    let log = gw.stop();
    assert!(
        corr > 0.9 && overlap > 0.9,
        "progress_resolved: corr {corr:.3}, overlap {overlap:.2}; log:\n{log}"
    );
}
