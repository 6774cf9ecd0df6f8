//! A whole call with the built-in test caller: menu choice by RFC 4733, a spoken message,
//! `#`, thanks, the gateway's BYE, and the call record in the outbox.

use super::audio::{find, read_wav_8k, through_g711};
use super::harness::{repo, GatewayProcess};
use hotline_gateway::caller::{dial, DialOptions};
use hotline_gateway::media::Codec;
use std::time::Duration;

fn record_prompt_len() -> Duration {
    let pcm = read_wav_8k(&repo().join("prompts/zh/record.wav"));
    Duration::from_millis(pcm.len() as u64 / 8)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_hears_the_greeting_chooses_complaint_and_leaves_a_message() {
    let mut gw = GatewayProcess::start(&[]);
    let heard = gw.data_dir.path().join("heard.wav");
    let message = repo().join("prompts/demo/caller_zh.wav");
    let report = dial(DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        from_user: "13912345678".into(),
        codecs: vec![Codec::Pcma, Codec::Pcmu],
        play: Some(message.clone()),
        dtmf: "1".into(),
        dtmf_delay: Duration::from_millis(2500),
        speak_delay: record_prompt_len() + Duration::from_millis(900),
        end_digit: Some('#'),
        record: Some(heard.clone()),
        max_duration: Duration::from_secs(60),
        rtp_ports: (gw.rtp.0 + 50, gw.rtp.1),
        verbose: true,
        ..DialOptions::default()
    })
    .await
    .expect("dial");
    assert_eq!(report.status, 200);
    assert_eq!(
        report.codec.as_deref(),
        Some("PCMA"),
        "first codec in the caller's order"
    );
    assert_eq!(
        report.hung_up_by,
        Some("gateway"),
        "the gateway ends the call with BYE"
    );

    let records = gw.wait_records(1, Duration::from_secs(10));
    let log = gw.stop();
    assert_eq!(records.len(), 1, "one call record; daemon log:\n{log}");
    let rec = &records[0];
    assert_eq!(rec["call_id"], report.call_id.as_str());
    assert_eq!(rec["caller"], "13912345678");
    assert_eq!(rec["called"], "8890");
    assert_eq!(rec["channel"], "8890");
    assert_eq!(rec["menu"]["digit"], "1");
    assert_eq!(rec["menu"]["id"], "complaint");
    assert_eq!(rec["hangup"]["by"], "gateway");
    assert_eq!(rec["hangup"]["reason"], "completed");
    assert_eq!(rec["recording"]["ended_by"], "stop_digit", "{rec:#}");

    // The message on disk is the caller's audio (after A-law), not just any noise.
    let wav = std::path::PathBuf::from(rec["recording"]["path"].as_str().unwrap());
    let recorded = read_wav_8k(&wav);
    let spoken = through_g711(&read_wav_8k(&message), Codec::Pcma);
    let (corr, overlap) = find(&recorded, &spoken);
    assert!(
        corr > 0.9 && overlap > 0.8,
        "recording vs caller audio: corr {corr:.3}, overlap {overlap:.2}"
    );

    // What the caller heard starts with the greeting prompt, bit-exact after A-law.
    let heard_pcm = read_wav_8k(&heard);
    let greeting = through_g711(
        &read_wav_8k(&repo().join("prompts/zh/greeting.wav")),
        Codec::Pcma,
    );
    let first_second = &greeting[..8000.min(greeting.len())];
    let head = &heard_pcm[..heard_pcm.len().min(8000 * 3)];
    let (corr, overlap) = find(head, first_second);
    assert!(
        corr > 0.95 && overlap > 0.95,
        "heard vs greeting: corr {corr:.3}, overlap {overlap:.2}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_number_is_404_and_leaves_no_record() {
    let gw = GatewayProcess::start(&[]);
    let report = dial(DialOptions {
        target: format!("sip:9999@{}", gw.sip),
        rtp_ports: (gw.rtp.0 + 50, gw.rtp.1),
        max_duration: Duration::from_secs(5),
        ..DialOptions::default()
    })
    .await
    .expect("dial");
    assert_eq!(report.status, 404);
    assert!(gw.wait_records(1, Duration::from_millis(500)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_call_limit_is_503_with_retry_after() {
    let gw = GatewayProcess::start(&[("HOTLINE_LIMITS_MAX_CALLS", "1")]);
    let target = format!("sip:8890@{}", gw.sip);
    let first = tokio::spawn(dial(DialOptions {
        target: target.clone(),
        rtp_ports: (gw.rtp.0 + 50, gw.rtp.0 + 69),
        max_duration: Duration::from_secs(3),
        verbose: false,
        ..DialOptions::default()
    }));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let second = dial(DialOptions {
        target,
        rtp_ports: (gw.rtp.0 + 70, gw.rtp.1),
        max_duration: Duration::from_secs(3),
        ..DialOptions::default()
    })
    .await
    .expect("dial");
    assert_eq!(second.status, 503);
    let first = first.await.unwrap().expect("first call");
    assert_eq!(first.status, 200);
    assert_eq!(first.hung_up_by, Some("caller"));
    let records = gw.wait_records(1, Duration::from_secs(10));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["hangup"]["by"], "caller");
}
