//! A whole call with the built-in test caller: menu choice by RFC 4733, a spoken message,
//! `#`, thanks, the gateway's BYE, and the call record in the outbox.

use super::audio::{chunks_found, find, read_wav_8k, through_g711};
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
    let tickets = gw.wait_tickets(1, Duration::from_secs(10));
    let log = gw.stop();
    assert_eq!(records.len(), 1, "one call record; daemon log:\n{log}");
    assert_eq!(tickets.len(), 1, "one ticket; daemon log:\n{log}");
    let ticket = &tickets[0];
    assert_eq!(ticket["schema"], "hotline.ticket/v2");
    assert_eq!(ticket["call"]["call_id"], report.call_id.as_str());
    assert_eq!(ticket["call"]["caller"], "13912345678");
    assert_eq!(ticket["menu"]["id"], "complaint");
    // No transcript yet, so the category comes from the menu choice.
    assert_eq!(ticket["classification"]["source"], "menu", "{ticket:#}");
    assert!(ticket["classification"]["department"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
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
    let found = chunks_found(&recorded, &spoken, 0.9);
    if found < 0.9 {
        let keep = std::env::temp_dir().join("hotline-failed-recording.wav");
        let _ = std::fs::copy(&wav, &keep);
        panic!(
            "only {:.0}% of the caller's audio is in the recording; kept {}; {rec:#}",
            found * 100.0,
            keep.display()
        );
    }

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

/// A ticket, once a call is answered, is never lost: kill -9 the daemon in the middle of a
/// call and the next start tickets it as interrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cut_short_by_a_crash_is_still_ticketed_after_restart() {
    let mut gw = GatewayProcess::start(&[]);
    let call = tokio::spawn(dial(DialOptions {
        target: format!("sip:12345@{}", gw.sip),
        from_user: "13811112222".into(),
        rtp_ports: (gw.rtp.0 + 50, gw.rtp.1),
        max_duration: Duration::from_secs(4),
        verbose: false,
        ..DialOptions::default()
    }));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    gw.kill9_and_restart();
    let report = call.await.unwrap().expect("dial");
    assert_eq!(report.status, 200);
    let tickets = gw.wait_tickets(1, Duration::from_secs(10));
    let log = gw.stop();
    assert_eq!(tickets.len(), 1, "daemon log after restart:\n{log}");
    let t = &tickets[0];
    assert_eq!(t["call"]["call_id"], report.call_id.as_str());
    assert_eq!(t["call"]["caller"], "13811112222");
    assert_eq!(t["call"]["channel"], "12345", "the legacy number's channel");
    assert_eq!(t["call"]["hangup"]["reason"], "interrupted");
}

/// An invalid key plays "invalid choice" and the menu again; the next key counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_key_then_valid_key() {
    let mut gw = GatewayProcess::start(&[]);
    let report = dial(DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        dtmf: "92".into(),
        dtmf_delay: Duration::from_millis(1500),
        rtp_ports: (gw.rtp.0 + 50, gw.rtp.1),
        max_duration: Duration::from_secs(6),
        verbose: false,
        ..DialOptions::default()
    })
    .await
    .expect("dial");
    assert_eq!(report.status, 200);
    let records = gw.wait_records(1, Duration::from_secs(10));
    let log = gw.stop();
    assert_eq!(records.len(), 1, "{log}");
    let menu = &records[0]["menu"];
    assert_eq!(menu["digits"], "92", "{menu:#}");
    assert_eq!(menu["digit"], "2");
    assert_eq!(menu["id"], "policy");
    assert_eq!(menu["defaulted"], false);
}

/// A caller who presses nothing is not hung up on: after the configured attempts the
/// `on_no_input` option (the operator) takes their message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_at_all_falls_back_to_the_operator_option() {
    let mut gw = GatewayProcess::start(&[
        ("HOTLINE_MENU_DIGIT_TIMEOUT_SECS", "1"),
        ("HOTLINE_MENU_MAX_ATTEMPTS", "1"),
    ]);
    let menu_len = read_wav_8k(&repo().join("prompts/zh/greeting.wav")).len()
        + read_wav_8k(&repo().join("prompts/zh/menu.wav")).len()
        + read_wav_8k(&repo().join("prompts/zh/no_input.wav")).len();
    let report = dial(DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        rtp_ports: (gw.rtp.0 + 50, gw.rtp.1),
        // Greeting, menu, 1 s for a key, "we did not hear you", then into the message.
        max_duration: Duration::from_millis(menu_len as u64 / 8 + 3000),
        verbose: false,
        ..DialOptions::default()
    })
    .await
    .expect("dial");
    assert_eq!(report.status, 200);
    let records = gw.wait_records(1, Duration::from_secs(10));
    let log = gw.stop();
    assert_eq!(records.len(), 1, "{log}");
    let menu = &records[0]["menu"];
    assert_eq!(menu["id"], "operator", "{menu:#}");
    assert_eq!(menu["defaulted"], true);
    assert_eq!(menu["digits"], "");
}
