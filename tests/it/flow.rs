//! The call flow as data, end to end: the second example flow (config/flows/language-first.toml:
//! a language choice, then the menu in that language) with the built-in caller, and a SIGHUP
//! that changes the flow of new calls while a call in progress keeps its own.

use super::audio::{find, read_wav_8k, through_g711};
use super::harness::{repo, GatewayProcess};
use hotline_gateway::caller::{dial, DialOptions, DialReport};
use hotline_gateway::media::Codec;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The example configuration with its `[flow]` tables replaced by `flow` (TOML), written
/// to a file of its own in `dir`.
fn config_with_flow(dir: &Path, flow: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("config/hotline.toml")).unwrap();
    let start = text.find("\n[flow]\n").expect("the example has a [flow]");
    let end = text[start..].find("\n[ivr]\n").unwrap() + start;
    let path = dir.join("hotline.toml");
    std::fs::write(
        &path,
        format!("{}\n{flow}\n{}", &text[..start], &text[end..]),
    )
    .unwrap();
    path
}

fn language_first() -> String {
    let file = repo().join("config/flows/language-first.toml");
    format!("[flow]\nfile = \"{}\"\n", file.display())
}

fn prompt_len(lang: &str, name: &str) -> Duration {
    let pcm = read_wav_8k(&repo().join(format!("prompts/{lang}/{name}.wav")));
    Duration::from_millis(pcm.len() as u64 / 8)
}

async fn call(
    gw: &GatewayProcess,
    dtmf: &str,
    speak_delay: Duration,
    heard: Option<PathBuf>,
    ports: u16,
) -> DialReport {
    dial(DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        from_user: "13912345678".into(),
        codecs: vec![Codec::Pcmu],
        play: Some(repo().join("prompts/demo/caller_en.wav")),
        dtmf: dtmf.into(),
        dtmf_delay: Duration::from_millis(2000),
        speak_delay,
        end_digit: Some('#'),
        record: heard,
        max_duration: Duration::from_secs(60),
        rtp_ports: (gw.rtp.0 + ports, gw.rtp.1),
        verbose: true,
        ..DialOptions::default()
    })
    .await
    .expect("dial")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn language_first_flow_english_menu_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_flow(dir.path(), &language_first());
    let mut gw = GatewayProcess::start_with_config(&config, &[]);
    let heard = gw.data_dir.path().join("heard.wav");
    // "2" over the language prompt (English), then "1" over the English greeting.
    let report = call(
        &gw,
        "21",
        prompt_len("en", "record") + Duration::from_millis(900),
        Some(heard.clone()),
        50,
    )
    .await;
    assert_eq!(report.status, 200);
    assert_eq!(report.hung_up_by, Some("gateway"));
    let records = gw.wait_records(1, Duration::from_secs(10));
    let log = gw.stop();
    assert_eq!(records.len(), 1, "daemon log:\n{log}");
    let rec = &records[0];
    assert_eq!(rec["language"], "en", "{rec:#}");
    assert_eq!(rec["menu"]["id"], "complaint", "{rec:#}");
    assert_eq!(rec["recording"]["ended_by"], "stop_digit", "{rec:#}");
    assert_eq!(rec["hangup"]["reason"], "completed");
    assert_eq!(rec["flow"]["vars"]["language_key"], "2", "{rec:#}");
    assert_eq!(rec["flow"]["vars"]["choice"], "complaint");
    let steps: Vec<&str> = rec["flow"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(steps, ["language", "english", "menu", "message", "goodbye"]);

    // The caller heard the language choice first (the "2" came 2 s in), later the English
    // instructions.
    let heard = read_wav_8k(&heard);
    let head = &heard[..heard.len().min(8000 * 5 / 2)];
    for (lang, name, within) in [("zh", "language", head), ("en", "record", &heard[..])] {
        let prompt = through_g711(
            &read_wav_8k(&repo().join(format!("prompts/{lang}/{name}.wav"))),
            Codec::Pcmu,
        );
        let (corr, overlap) = find(within, &prompt[..8000.min(prompt.len())]);
        assert!(
            corr > 0.95 && overlap > 0.95,
            "{lang}/{name} not heard: corr {corr:.3}, overlap {overlap:.2}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_changes_the_flow_of_new_calls_only() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(repo().join("config/hotline.toml")).unwrap();
    let config = dir.path().join("hotline.toml");
    std::fs::write(&config, &example).unwrap();
    let gw = GatewayProcess::start_with_config(&config, &[]);

    // A call in progress on today's flow: "1" then a long wait before speaking, so it is
    // still in its message when the flow changes.
    let first = {
        let target = format!("sip:8890@{}", gw.sip);
        let ports = (gw.rtp.0 + 50, gw.rtp.0 + 73);
        tokio::spawn(async move {
            dial(DialOptions {
                target,
                play: Some(repo().join("prompts/demo/caller_zh.wav")),
                dtmf: "1".into(),
                dtmf_delay: Duration::from_millis(1000),
                speak_delay: Duration::from_secs(6),
                end_digit: Some('#'),
                rtp_ports: ports,
                max_duration: Duration::from_secs(60),
                ..DialOptions::default()
            })
            .await
            .expect("dial")
        })
    };
    assert!(
        gw.wait_log("menu choice", Duration::from_secs(20)),
        "{}",
        gw.log()
    );
    config_with_flow(dir.path(), &language_first());
    gw.signal("HUP");
    assert!(
        gw.wait_log("configuration reloaded", Duration::from_secs(20)),
        "{}",
        gw.log()
    );
    // 中文, then the complaint option.
    let second = call(
        &gw,
        "11",
        prompt_len("zh", "record") + Duration::from_millis(900),
        None,
        74,
    )
    .await;
    assert_eq!(second.status, 200);
    assert_eq!(first.await.unwrap().status, 200);

    let records = gw.wait_records(2, Duration::from_secs(10));
    assert_eq!(records.len(), 2, "{}", gw.log());
    let first_step = |call_id: &str| -> String {
        let rec = records.iter().find(|r| r["call_id"] == call_id).unwrap();
        rec["flow"]["steps"][0].as_str().unwrap().to_owned()
    };
    let first_id = records
        .iter()
        .map(|r| r["call_id"].as_str().unwrap().to_owned())
        .find(|id| *id != second.call_id)
        .unwrap();
    assert_eq!(
        first_step(&first_id),
        "menu",
        "the call in progress kept its flow"
    );
    assert_eq!(
        first_step(&second.call_id),
        "language",
        "the new call has the new flow"
    );
}
