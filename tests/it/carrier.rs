//! A carrier's trunk under a running daemon: its call slot is free as soon as the caller
//! hangs up (not when the record is written), and SIGHUP changes trunks for new calls while
//! a call in progress carries on; a bad trunk entry is refused with key and line.

use super::audio::read_wav_8k;
use super::harness::{repo, GatewayProcess};
use hotline_gateway::caller::{dial, DialOptions, DialReport};
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

fn record_prompt_len() -> Duration {
    let pcm = read_wav_8k(&repo().join("prompts/zh/record.wav"));
    Duration::from_millis(pcm.len() as u64 / 8)
}

/// A call from `bind` that listens to the menu and hangs up after `hold`.
async fn plain_call(
    gw: &GatewayProcess,
    bind: [u8; 4],
    hold: Duration,
    rtp: (u16, u16),
) -> DialReport {
    dial(DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        bind_ip: IpAddr::from(bind),
        max_duration: hold,
        rtp_ports: rtp,
        verbose: false,
        ..DialOptions::default()
    })
    .await
    .expect("dial")
}

fn record_of<'a>(records: &'a [serde_json::Value], call: &DialReport) -> &'a serde_json::Value {
    records
        .iter()
        .find(|r| r["call_id"] == call.call_id.as_str())
        .unwrap_or_else(|| panic!("no record for {}", call.call_id))
}

const ONE_SLOT: &str = r#"
[[trunk]]
name = "carrier"
sources = ["127.0.0.1"]
max_calls = 1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trunk_slot_is_free_the_moment_the_caller_hangs_up_mid_message() {
    // One call at a time, for the trunk and for the whole gateway.
    let mut gw = GatewayProcess::start_with(Some(ONE_SLOT), &[("HOTLINE_LIMITS_MAX_CALLS", "1")]);
    let r = gw.rtp;
    // The caller chooses 1 and hangs up 1.5 s into its message: the recording is open, so
    // the gateway still has to close it and write the record after the BYE.
    let speak_delay = record_prompt_len() + Duration::from_millis(900);
    let first = dial(DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        play: Some(repo().join("prompts/demo/caller_zh.wav")),
        dtmf: "1".into(),
        dtmf_delay: Duration::from_millis(2500),
        speak_delay,
        max_duration: Duration::from_millis(2500) + speak_delay + Duration::from_millis(1500),
        rtp_ports: (r.0 + 50, r.0 + 59),
        verbose: false,
        ..DialOptions::default()
    })
    .await
    .expect("dial");
    let bye_answered = Instant::now();
    assert_eq!(first.status, 200);
    assert_eq!(first.hung_up_by, Some("caller"));

    // At once: the same trunk calls again.
    let second = plain_call(
        &gw,
        [127, 0, 0, 1],
        Duration::from_secs(1),
        (r.0 + 60, r.0 + 69),
    );
    let started = bye_answered.elapsed();
    let second = second.await;
    assert!(started < Duration::from_millis(300), "{started:?}");
    assert_eq!(
        second.status,
        200,
        "a call right after the BYE is answered, not 503\n{}",
        gw.log()
    );

    let records = gw.wait_records(2, Duration::from_secs(10));
    let log = gw.stop();
    assert_eq!(records.len(), 2, "{log}");
    let first = record_of(&records, &first);
    assert_eq!(first["hangup"]["reason"], "caller_bye", "{first:#}");
    assert!(
        first["recording"].is_object(),
        "the caller hung up during its message: {first:#}"
    );
    assert_eq!(first["trunk"], "carrier");
}

/// The example config plus one `[[trunk]]` named carrier with these lines, written the way an
/// admin's deploy tool would (temp file, rename).
fn write_trunk(path: &Path, trunk_lines: &str) {
    let base = std::fs::read_to_string(repo().join("config/hotline.toml")).unwrap();
    let text = format!("{base}\n[[trunk]]\nname = \"carrier\"\n{trunk_lines}\n");
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_changes_trunks_for_new_calls_while_a_call_in_progress_continues() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hotline.toml");
    write_trunk(&config, "sources = [\"127.0.0.1\"]\nmax_calls = 1");
    let mut gw = GatewayProcess::start_with_config(&config, &[]);
    let r = gw.rtp;
    let sip = gw.sip;

    // A call in progress across both reloads: 7 s of menu, then the caller hangs up.
    let across = tokio::spawn(dial(DialOptions {
        target: format!("sip:8890@{sip}"),
        bind_ip: IpAddr::from([127, 0, 0, 1]),
        max_duration: Duration::from_secs(7),
        rtp_ports: (r.0 + 50, r.0 + 59),
        verbose: false,
        ..DialOptions::default()
    }));
    assert!(gw.wait_log("call answered", Duration::from_secs(5)));
    let before = plain_call(
        &gw,
        [127, 0, 0, 6],
        Duration::from_secs(1),
        (r.0 + 60, r.0 + 69),
    )
    .await;
    assert_eq!(before.status, 403, "127.0.0.6 is no trunk source yet");

    // A source added and the limit raised: both take effect for the next call.
    write_trunk(
        &config,
        "sources = [\"127.0.0.1\", \"127.0.0.6\"]\nmax_calls = 2",
    );
    gw.signal("HUP");
    assert!(
        gw.wait_log("configuration reloaded", Duration::from_secs(10)),
        "{}",
        gw.log()
    );
    let after = plain_call(
        &gw,
        [127, 0, 0, 6],
        Duration::from_secs(1),
        (r.0 + 70, r.0 + 79),
    )
    .await;
    assert_eq!(
        after.status,
        200,
        "the new source, as the second call on the trunk\n{}",
        gw.log()
    );

    // A bad trunk entry: refused with key and line, the running trunks stay.
    write_trunk(
        &config,
        "sources = [\"127.0.0.1\", \"127.0.0.300/24\"]\nmax_calls = 2",
    );
    let (log, bad_line) = gw.reload_refused(&config, "127.0.0.300");
    assert!(
        log.lines().any(|l| l.contains("trunk[0].sources")
            && l.contains(&format!(":{bad_line}:"))
            && l.contains("127.0.0.300/24")),
        "the error names key and line {bad_line}:\n{log}"
    );
    let still = plain_call(
        &gw,
        [127, 0, 0, 6],
        Duration::from_secs(1),
        (r.0 + 80, r.0 + 89),
    )
    .await;
    assert_eq!(still.status, 200, "the trunk from the last good file");

    let across = across.await.unwrap().expect("call across the reloads");
    assert_eq!(across.status, 200);
    assert_eq!(across.hung_up_by, Some("caller"), "not cut by a reload");
    assert!(across.packets_received > 250, "audio all along: {across:?}");
    let records = gw.wait_records(3, Duration::from_secs(10));
    let log = gw.stop();
    assert_eq!(records.len(), 3, "{log}");
    for call in [&across, &after, &still] {
        let rec = record_of(&records, call);
        assert_eq!(rec["trunk"], "carrier", "{rec:#}");
    }
    assert_eq!(
        record_of(&records, &across)["hangup"]["reason"],
        "caller_bye"
    );
}
