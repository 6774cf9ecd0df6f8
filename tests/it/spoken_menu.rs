//! The spoken menu through the real daemon: a caller says what they need over the greeting
//! (Mandarin test voices other than the prompts', tests/data/speech/, sent as G.711 RTP),
//! the gateway hears it during the menu (the media's listening, Whisper on the pool, the
//! classification table), and the call record and ticket say `menu.source = "speech"` with
//! the words. Needs the Whisper model: `HOTLINE_REQUIRE_MODEL=1` or `CI=true` makes its
//! absence a failure, otherwise the tests say SKIPPED and pass.

use super::audio::read_wav_8k;
use super::harness::{repo, GatewayProcess};
use hotline_gateway::caller::{dial, DialOptions};
use hotline_gateway::media::Codec;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The daemon with the example config, speech recognition on (the spoken menu needs it).
fn gateway() -> GatewayProcess {
    GatewayProcess::start(&[("HOTLINE_ASR_ENABLED", "true")])
}

fn speech(name: &str) -> PathBuf {
    repo().join("tests/data/speech").join(name)
}

/// `wav` followed by `silence` (the caller keeps the line open, saying nothing), written
/// beside the daemon's data.
fn then_silence(gw: &GatewayProcess, wav: &Path, silence: Duration) -> PathBuf {
    let mut pcm = read_wav_8k(wav);
    pcm.extend(std::iter::repeat_n(0i16, silence.as_millis() as usize * 8));
    let out = gw.data_dir.path().join(wav.file_name().unwrap());
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&out, spec).unwrap();
    for s in pcm {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    out
}

/// A call that says `wav` 1.5 s into the greeting, presses `then_key` (if any) once it
/// has played, and hangs up after `length`. Returns the call record and the daemon's log.
async fn call(
    gw: &mut GatewayProcess,
    wav: PathBuf,
    then_key: Option<char>,
    length: Duration,
) -> (serde_json::Value, String) {
    let report = dial(DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        codecs: vec![Codec::Pcmu],
        play: Some(wav),
        dtmf_delay: Duration::from_millis(1500),
        end_digit: then_key,
        max_duration: length,
        rtp_ports: (gw.rtp.0 + 50, gw.rtp.1),
        verbose: true,
        ..DialOptions::default()
    })
    .await
    .expect("dial");
    assert_eq!(report.status, 200);
    let records = gw.wait_records(1, Duration::from_secs(30));
    let log = gw.stop();
    assert_eq!(records.len(), 1, "daemon log:\n{log}");
    (records[0].clone(), log)
}

/// Say the test utterance `name`, wait `secs` in silence, press `key`; a 30 s call.
async fn say_wait_press(
    gw: &mut GatewayProcess,
    name: &str,
    secs: u64,
    key: char,
) -> (serde_json::Value, String) {
    let wav = then_silence(gw, &speech(name), Duration::from_secs(secs));
    call(gw, wav, Some(key), Duration::from_secs(30)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoken_request_chooses_its_option_and_the_ticket_says_speech_and_the_words() {
    if !super::harness::whisper_model_present() {
        return;
    }
    let mut gw = gateway();
    // "我要报修，小区的路灯坏了": the service option's phrases (报修, 坏了); then "speak after
    // the tone" plays and the caller hangs up.
    let (rec, log) = call(
        &mut gw,
        speech("menu_repair_yunxi.wav"),
        None,
        Duration::from_secs(25),
    )
    .await;
    let menu = &rec["menu"];
    assert_eq!(menu["id"], "service", "{rec:#}\n{log}");
    assert_eq!(menu["digits"], "", "no key was pressed");
    let said = menu["utterance"].as_str().unwrap_or_default();
    assert!(
        said.contains("报修") || said.contains("坏了"),
        "heard {said:?}"
    );
    let steps = rec["flow"]["steps"].to_string();
    assert!(steps.contains("\"message\""), "{steps}");
    // the ticket: spoken, with the words
    let tickets = gw.wait_tickets(1, Duration::from_secs(60));
    assert_eq!(tickets.len(), 1, "{log}");
    let t = &tickets[0]["menu"];
    assert_eq!(t["source"], "speech", "{t:#}");
    assert_eq!(t["utterance"].as_str(), Some(said));
    assert_eq!(t["id"], "service");
    assert_eq!(t["label"], "公共服务");
    assert!(t["digits"].is_null(), "{t:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saying_zhuan_rengong_reaches_the_operator_path() {
    if !super::harness::whisper_model_present() {
        return;
    }
    let mut gw = gateway();
    let (rec, log) = call(
        &mut gw,
        speech("menu_operator_yunyang.wav"),
        None,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(rec["menu"]["id"], "operator", "{rec:#}\n{log}");
    assert!(rec["menu"]["utterance"]
        .as_str()
        .unwrap_or_default()
        .contains("人工"));
    // chosen, not defaulted: the example flow's operator step puts the caller through
    // (no [transfer] target here: the transfer step runs, fails `unavailable`, and the
    // caller leaves a message)
    assert_eq!(rec["menu"]["defaulted"], false);
    let steps = rec["flow"]["steps"].to_string();
    assert!(steps.contains("\"transfer\""), "{steps}");
    assert_eq!(rec["flow"]["vars"]["choice_source"], "speech");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsure_request_is_asked_back_and_confirmed_with_1() {
    if !super::harness::whisper_model_present() {
        return;
    }
    let mut gw = gateway();
    // "我要投诉，也要报修": phrases of two options (complaint, service); the caller then
    // waits (7 s: the words are transcribed, "您要办理的是投诉举报，正确请按一…" starts) and
    // presses 1.
    let (rec, log) = say_wait_press(&mut gw, "menu_unsure_yunxi.wav", 7, '1').await;
    assert!(log.contains("Confirm(\"complaint\")"), "{log}");
    let menu = &rec["menu"];
    assert_eq!(menu["id"], "complaint", "{rec:#}\n{log}");
    // taken by the confirmation, not as the menu's key 1
    assert_eq!(menu["digits"], "");
    let said = menu["utterance"].as_str().unwrap_or_default();
    assert!(
        said.contains("投诉") && said.contains("报修"),
        "heard {said:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn words_that_match_nothing_fall_back_to_the_keys() {
    if !super::harness::whisper_model_present() {
        return;
    }
    let mut gw = gateway();
    // "请问今天天气怎么样": no option's phrase, no category of an option; "invalid" and the
    // menu follow, and the caller presses 2 on the keys.
    let (rec, log) = say_wait_press(&mut gw, "menu_nomatch_xiaobei.wav", 9, '2').await;
    assert!(log.contains("choice=Nothing"), "{log}");
    let menu = &rec["menu"];
    assert_eq!(menu["id"], "policy", "{rec:#}\n{log}");
    assert_eq!(menu["digits"], "2");
    assert!(menu["utterance"].is_null(), "{menu:#}");
}
