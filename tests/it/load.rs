//! `hotline-gateway load` against a real daemon: the binary as an operator runs it, its JSON
//! report read back. A run that completes must say so with figures that match what the
//! gateway did; a run the gateway refuses must report the refusals, never hide them.

use super::audio::read_wav_8k;
use super::harness::{repo, rtp_range, GatewayProcess};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// The first `secs` of the demo caller's message, as an 8 kHz WAV (a short message keeps
/// each call near 15 s: greeting cut by the digit, "speak after the tone", the message,
/// `#`, thanks, goodbye).
fn short_message(dir: &Path, secs: usize) -> std::path::PathBuf {
    let pcm = read_wav_8k(&repo().join("prompts/demo/caller_zh.wav"));
    let path = dir.join("message.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for s in &pcm[..(8000 * secs).min(pcm.len())] {
        w.write_sample(*s).unwrap();
    }
    w.finalize().unwrap();
    path
}

/// Run `hotline-gateway load` with `args` against `gw`; the JSON report and the output.
fn load(gw: &GatewayProcess, args: &[&str]) -> (serde_json::Value, Output) {
    load_with_env(gw, args, &[])
}

fn load_with_env(
    gw: &GatewayProcess,
    args: &[&str],
    env: &[(&str, &str)],
) -> (serde_json::Value, Output) {
    let json = gw.data_dir.path().join("load.json");
    let (lo, hi) = rtp_range();
    let out = Command::new(env!("CARGO_BIN_EXE_hotline-gateway"))
        .current_dir(repo())
        .arg("load")
        .args(["--target", &format!("sip:8890@{}", gw.sip)])
        .args(["--rtp-ports", &format!("{lo}-{hi}")])
        .args(["--pid", &gw.pid().to_string()])
        .args(["--max-time", "120"])
        .arg("--json")
        .arg(&json)
        .args(args)
        .env("HOTLINE_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("run hotline-gateway load");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (serde_json::from_str(&text).expect("JSON report"), out)
}

fn f(v: &serde_json::Value, path: &str) -> f64 {
    let mut at = v;
    for k in path.split('.') {
        at = &at[k];
    }
    at.as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number in {v:#}"))
}

#[test]
fn six_calls_three_at_a_time_all_complete_and_the_report_shows_the_audio_pacing() {
    let mut gw = GatewayProcess::start(&[]);
    let message = short_message(gw.data_dir.path(), 2);
    let (r, out) = load(
        &gw,
        &[
            "--calls",
            "6",
            "--concurrency",
            "3",
            "--rate",
            "5",
            "--play",
            message.to_str().unwrap(),
            "--dtmf",
            "1",
            "--dtmf-delay",
            "1",
            // record.wav is 6.7 s; speak just after its tone.
            "--speak-delay",
            "7.6",
            "--end-digit",
            "#",
            "--max-call-duration",
            "60",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let records = gw.wait_records(6, Duration::from_secs(15));
    let log = gw.stop();
    assert!(
        out.status.success(),
        "load failed:\n{stdout}\n{r:#}\ndaemon:\n{log}"
    );
    assert!(
        stdout.contains("answered (200)"),
        "the table is printed:\n{stdout}"
    );

    // Every call set up and ran to the gateway's BYE; the limit of 3 at once was kept.
    assert_eq!(r["calls_placed"], 6, "{r:#}");
    assert_eq!(r["answered"], 6, "{r:#}");
    assert_eq!(r["completed_by_gateway"], 6, "{r:#}");
    assert_eq!(r["rejected_by_status"], serde_json::json!({}));
    assert_eq!(r["failures"], serde_json::json!({}));
    assert_eq!(r["calls_abandoned"], 0);
    let peak = f(&r, "peak_active_calls");
    assert!((1.0..=3.0).contains(&peak), "peak active {peak}, limit 3");
    // The gateway agrees: six finished calls, each with the menu choice and a message.
    assert_eq!(records.len(), 6, "call records; daemon log:\n{log}");
    for rec in &records {
        assert_eq!(rec["menu"]["digit"], "1", "{rec:#}");
        assert_eq!(rec["hangup"]["reason"], "completed", "{rec:#}");
    }

    // Set-up latency of six answered INVITEs, ordered percentiles.
    assert_eq!(r["setup_latency"]["count"], 6);
    let (p50, p99, max) = (
        f(&r, "setup_latency.p50_ms"),
        f(&r, "setup_latency.p99_ms"),
        f(&r, "setup_latency.max_ms"),
    );
    assert!(
        0.0 < p50 && p50 <= p99 && p99 <= max && max < 5_000.0,
        "{r:#}"
    );

    // Audio: at least the record prompt, thanks and goodbye (12 s = 600 packets) per call
    // came back; the callers sent their digit and message (2 s = 100 packets) each.
    assert!(f(&r, "rtp_packets_received") >= 6.0 * 600.0, "{r:#}");
    assert!(f(&r, "rtp_packets_sent") >= 6.0 * 100.0, "{r:#}");
    let p = &r["pacing"];
    assert_eq!(p["calls"], 6, "{r:#}");
    assert!(f(p, "intervals") >= 6.0 * 590.0, "{r:#}");
    assert_eq!(p["lost"], 0, "no sequence gaps on loopback: {r:#}");
    let (i50, i99, imax) = (
        f(p, "interval_p50_ms"),
        f(p, "interval_p99_ms"),
        f(p, "interval_max_ms"),
    );
    // Paced at 20 ms: the median interval is 20 ms even on a busy machine; the tail only
    // grows from there and a gap of a second would be a stall.
    assert!(
        (18.0..=22.0).contains(&i50),
        "median interval {i50} ms: {r:#}"
    );
    assert!(i50 <= i99 && i99 <= imax && imax < 1_000.0, "{r:#}");
    let (pm, pw) = (
        f(p, "per_call_max_median_ms"),
        f(p, "per_call_max_worst_ms"),
    );
    assert!(i50 <= pm && pm <= pw && pw <= imax + 0.001, "{r:#}");
    let (j, jw) = (f(p, "jitter_median_ms"), f(p, "jitter_worst_ms"));
    assert!(0.0 <= j && j <= jw && jw < 50.0, "RFC 3550 jitter: {r:#}");
    assert!(f(p, "intervals_off_2ms_ratio") < 0.5, "{r:#}");

    // The gateway's pid was given: its CPU and memory were sampled.
    assert!(f(&r, "gateway.rss_peak_kib") > 1_000.0, "{r:#}");
    assert!(f(&r, "gateway.cpu_secs") > 0.0, "{r:#}");
}

#[test]
fn calls_beyond_the_gateways_limit_are_reported_as_503_not_hidden() {
    let gw = GatewayProcess::start(&[("HOTLINE_LIMITS_MAX_CALLS", "1")]);
    let (r, out) = load(
        &gw,
        &[
            "--calls",
            "4",
            "--concurrency",
            "4",
            "--rate",
            "40",
            "--dtmf",
            "",
            "--end-digit",
            "",
            // The answered call stays up while the other three arrive.
            "--max-call-duration",
            "3",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !out.status.success(),
        "a run with refused calls must fail:\n{stdout}"
    );
    assert_eq!(r["calls_placed"], 4, "{r:#}");
    assert_eq!(r["answered"], 1, "{r:#}");
    assert_eq!(r["hung_up_by_caller"], 1, "{r:#}");
    assert_eq!(
        r["rejected_by_status"],
        serde_json::json!({"503": 3}),
        "{r:#}"
    );
    assert_eq!(
        r["setup_latency"]["count"], 1,
        "only answered calls have a set-up time"
    );
    assert!(
        stdout.contains("503"),
        "the table shows the refusals:\n{stdout}"
    );
}

#[test]
fn load_calls_answer_a_digest_challenge_like_dial_does() {
    // Every call from 127.0.0.1 is challenged; the load tool's callers retry with
    // credentials through the same code as `dial --user --password`.
    let trunk = r#"
[[trunk]]
name = "carrier"
sources = ["127.0.0.1/32"]
username = "gw"
password = "pw-Load-5521"
"#;
    let mut gw = GatewayProcess::start_with(Some(trunk), &[]);
    let (r, out) = load_with_env(
        &gw,
        &[
            "--calls",
            "3",
            "--concurrency",
            "3",
            "--rate",
            "10",
            "--dtmf",
            "",
            "--end-digit",
            "",
            "--max-call-duration",
            "2",
            "--user",
            "gw",
        ],
        &[("HOTLINE_DIAL_PASSWORD", "pw-Load-5521")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = gw.stop();
    assert!(out.status.success(), "{stdout}\n{r:#}\ndaemon:\n{log}");
    assert_eq!(r["answered"], 3, "{r:#}");
    assert_eq!(
        r["rejected_by_status"],
        serde_json::json!({}),
        "no 401 left: {r:#}"
    );
    assert!(
        !log.contains("pw-Load-5521"),
        "the password never reaches a log"
    );
}
