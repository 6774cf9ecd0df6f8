//! Running it as a service: the admin listener (metrics, health, readiness), SIGHUP reload
//! under a running call, a bad file rejected on reload, and the SIGTERM drain.

use super::harness::{repo, GatewayProcess};
use hotline_gateway::caller::{dial, DialOptions, DialReport};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

pub(super) fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A gateway with the admin listener on a free loopback port.
pub(crate) fn start_with_admin(config: &Path) -> (GatewayProcess, SocketAddr) {
    let admin: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let gw =
        GatewayProcess::start_with_config(config, &[("HOTLINE_ADMIN_LISTEN", &admin.to_string())]);
    (gw, admin)
}

/// `GET path` over a plain TCP connection: (status, body).
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    // The admin listener binds just after SIP answers: allow it a moment at start.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut s = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => panic!("connect admin {addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of one sample, `series` being the name with its labels as exported.
pub(crate) fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn must(text: &str, series: &str) -> f64 {
    metric(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// A whole call without a spoken message: 1 at the menu, # after the tone, thanks, BYE.
fn complete_call(gw: &GatewayProcess, ports: (u16, u16)) -> DialOptions {
    let record = super::audio::read_wav_8k(&repo().join("prompts/zh/record.wav"));
    DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        dtmf: "1".into(),
        dtmf_delay: Duration::from_millis(1500),
        speak_delay: Duration::from_millis(record.len() as u64 / 8 + 900),
        end_digit: Some('#'),
        max_duration: Duration::from_secs(60),
        rtp_ports: ports,
        verbose: false,
        ..DialOptions::default()
    }
}

/// A call that presses 1 and hangs up a little later.
fn short_call(gw: &GatewayProcess, ports: (u16, u16)) -> DialOptions {
    DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        dtmf: "1".into(),
        dtmf_delay: Duration::from_millis(800),
        max_duration: Duration::from_millis(2500),
        rtp_ports: ports,
        verbose: false,
        ..DialOptions::default()
    }
}

fn record_of<'a>(records: &'a [serde_json::Value], r: &DialReport) -> &'a serde_json::Value {
    records
        .iter()
        .find(|rec| rec["call_id"] == r.call_id.as_str())
        .unwrap_or_else(|| panic!("no record for {}", r.call_id))
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_call_from_sip_to_ticket() {
    let (mut gw, admin) = start_with_admin(Path::new("config/hotline.toml"));
    assert_eq!(http_get(admin, "/healthz").0, 200);
    assert_eq!(http_get(admin, "/readyz").0, 200);
    let report = dial(DialOptions {
        play: Some(repo().join("prompts/demo/caller_zh.wav")),
        ..complete_call(&gw, (gw.rtp.0 + 50, gw.rtp.1))
    })
    .await
    .expect("dial");
    assert_eq!(report.status, 200);
    assert_eq!(gw.wait_tickets(1, Duration::from_secs(10)).len(), 1);

    // The caller's 200 to our BYE was sent before `dial` returned, but the gateway reads it
    // from its socket on its own time (CI caught a read that came first on a loaded box):
    // wait for that last counter, then check the whole page at once.
    let bye_answered = "hotline_sip_responses_total{direction=\"in\",method=\"BYE\",code=\"200\"}";
    let mut page = http_get(admin, "/metrics");
    let _ = wait_until(Duration::from_secs(5), || {
        page = http_get(admin, "/metrics");
        metric(&page.1, bye_answered).is_some_and(|n| n >= 1.0)
    });
    let (status, m) = page;
    let log = gw.stop();
    assert_eq!(status, 200, "{log}");
    assert_eq!(must(&m, "hotline_calls_answered_total"), 1.0);
    assert_eq!(
        must(&m, "hotline_calls_ended_total{reason=\"completed\"}"),
        1.0
    );
    assert_eq!(must(&m, "hotline_calls_active"), 0.0);
    assert!(must(&m, "hotline_guard_passed_total") >= 1.0, "{m}");
    assert_eq!(
        must(&m, "hotline_guard_dropped_total{reason=\"scanner\"}"),
        0.0
    );
    assert!(
        must(
            &m,
            "hotline_sip_requests_total{direction=\"in\",method=\"INVITE\"}"
        ) >= 1.0
    );
    assert!(
        must(
            &m,
            "hotline_sip_responses_total{direction=\"out\",method=\"INVITE\",code=\"200\"}"
        ) >= 1.0
    );
    // The gateway hung up: its BYE went out and the caller's 200 came back.
    assert!(
        must(
            &m,
            "hotline_sip_requests_total{direction=\"out\",method=\"BYE\"}"
        ) >= 1.0
    );
    assert!(must(&m, bye_answered) >= 1.0);
    // ~15 s of audio each way at 50 packets per second.
    assert!(must(&m, "hotline_rtp_packets_total{direction=\"in\"}") > 300.0);
    assert!(must(&m, "hotline_rtp_packets_total{direction=\"out\"}") > 300.0);
    let ticks = must(&m, "hotline_rtp_pacing_lateness_seconds_count");
    assert!(ticks > 300.0);
    assert_eq!(
        must(
            &m,
            "hotline_rtp_pacing_lateness_seconds_bucket{le=\"+Inf\"}"
        ),
        ticks
    );
    assert_eq!(must(&m, "hotline_recordings_written_total"), 1.0);
    assert_eq!(must(&m, "hotline_tickets_created_total"), 1.0);
    let stored: f64 = ["pending", "in_flight", "delivered", "dead"]
        .iter()
        .map(|s| must(&m, &format!("hotline_tickets{{state=\"{s}\"}}")))
        .sum();
    assert_eq!(stored, 1.0, "one ticket in the store");
    assert_eq!(must(&m, "hotline_ready"), 1.0);

    // One span per call: the manager's, the IVR's and the media task's lines carry the
    // Call-ID (the harness logs hotline_gateway at debug).
    let span = format!("call{{call_id={}}}", report.call_id);
    for what in [
        "call answered",
        "menu choice",
        "message recorded",
        "RTP source latched",
    ] {
        assert!(
            log.lines().any(|l| l.contains(what) && l.contains(&span)),
            "no `{what}` line under {span}:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_refuses_new_calls_and_lets_the_call_in_progress_finish() {
    let (mut gw, admin) = start_with_admin(Path::new("config/hotline.toml"));
    let in_progress = tokio::spawn(dial(complete_call(&gw, (gw.rtp.0 + 50, gw.rtp.0 + 69))));
    assert!(
        wait_until(Duration::from_secs(5), || gw
            .log()
            .contains("call answered")),
        "{}",
        gw.log()
    );
    gw.signal("TERM");
    assert!(
        wait_until(Duration::from_secs(3), || http_get(admin, "/readyz").0
            == 503),
        "/readyz must say 503 while draining"
    );
    assert_eq!(http_get(admin, "/healthz").0, 200, "alive while draining");
    let refused = dial(DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        rtp_ports: (gw.rtp.0 + 70, gw.rtp.1),
        max_duration: Duration::from_secs(3),
        ..DialOptions::default()
    })
    .await
    .expect("dial while draining");
    assert_eq!(refused.status, 503, "new calls are refused while draining");

    let report = in_progress.await.unwrap().expect("call in progress");
    assert_eq!(report.status, 200);
    assert_eq!(report.hung_up_by, Some("gateway"));
    let status = gw.wait_exit(Duration::from_secs(30));
    let log = gw.log();
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(0)),
        "exit 0 after the drain; log:\n{log}"
    );
    let records = gw.wait_records(1, Duration::from_secs(1));
    assert_eq!(records.len(), 1, "{log}");
    let rec = record_of(&records, &report);
    assert_eq!(
        rec["hangup"]["reason"], "completed",
        "the call ran to its end, not cut by the shutdown: {rec:#}"
    );
    assert_eq!(
        gw.wait_tickets(1, Duration::from_secs(1)).len(),
        1,
        "ticket flushed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_drain_deadline_calls_still_in_progress_get_bye() {
    let mut gw = GatewayProcess::start(&[("HOTLINE_LIMITS_DRAIN_TIMEOUT_SECS", "1")]);
    let call = tokio::spawn(dial(complete_call(&gw, (gw.rtp.0 + 50, gw.rtp.1))));
    assert!(wait_until(Duration::from_secs(5), || gw
        .log()
        .contains("call answered")));
    let asked = Instant::now();
    gw.signal("TERM");
    let report = call.await.unwrap().expect("call");
    assert_eq!(report.hung_up_by, Some("gateway"));
    let status = gw.wait_exit(Duration::from_secs(20));
    let log = gw.log();
    assert_eq!(status.map(|s| s.code()), Some(Some(0)), "{log}");
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "stopped {:?} after SIGTERM; the call alone would take ~15 s",
        asked.elapsed()
    );
    let records = gw.wait_records(1, Duration::from_secs(1));
    assert_eq!(records.len(), 1, "{log}");
    assert_eq!(record_of(&records, &report)["hangup"]["reason"], "shutdown");
}

/// The example config with another label for digit 1 (and, if given, a broken line).
fn write_config(path: &Path, label: &str, broken: Option<&str>) {
    let base = std::fs::read_to_string(repo().join("config/hotline.toml")).unwrap();
    assert!(base.contains("label = \"投诉举报\""));
    let mut text = base.replace("label = \"投诉举报\"", &format!("label = \"{label}\""));
    if let Some(b) = broken {
        text = text.replace("max_attempts = 3", b);
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_menu_for_new_calls_and_rejects_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hotline.toml");
    write_config(&config, "Complaints v1", None);
    let mut gw = GatewayProcess::start_with_config(&config, &[]);
    let r = gw.rtp;

    // A call in progress across the reload keeps the menu it started with.
    let across = tokio::spawn(dial(complete_call(&gw, (r.0 + 50, r.0 + 59))));
    assert!(wait_until(Duration::from_secs(5), || gw
        .log()
        .contains("call answered")));
    write_config(&config, "Complaints v2", None);
    gw.signal("HUP");
    assert!(
        gw.wait_log("configuration reloaded", Duration::from_secs(10)),
        "{}",
        gw.log()
    );
    let after = dial(short_call(&gw, (r.0 + 60, r.0 + 69)))
        .await
        .expect("call after reload");
    assert_eq!(after.status, 200);

    // A broken file: rejected, with key and line, and the running config stays.
    write_config(&config, "Complaints v3", Some("max_attempts = \"three\""));
    let (log, bad_line) = gw.reload_refused(&config, "max_attempts = \"three\"");
    let named = log
        .lines()
        .any(|l| l.contains("menu.max_attempts") && l.contains(&format!(":{bad_line}:")));
    assert!(named, "the error names key and line {bad_line}:\n{log}");
    let still = dial(short_call(&gw, (r.0 + 70, r.0 + 79)))
        .await
        .expect("call after a rejected reload");
    assert_eq!(still.status, 200);

    let across = across.await.unwrap().expect("call across the reload");
    assert_eq!(across.status, 200);
    let records = gw.wait_records(3, Duration::from_secs(10));
    let log = gw.stop();
    assert_eq!(records.len(), 3, "{log}");
    let across = record_of(&records, &across);
    assert_eq!(across["menu"]["label"], "Complaints v1", "{across:#}");
    assert_eq!(across["hangup"]["reason"], "completed", "{across:#}");
    assert_eq!(
        record_of(&records, &after)["menu"]["label"],
        "Complaints v2"
    );
    assert_eq!(
        record_of(&records, &still)["menu"]["label"],
        "Complaints v2",
        "the bad file changed nothing"
    );
}

/// The shipped production example parses and validates, and the systemd unit gives the
/// drain time to finish before it escalates to SIGKILL.
#[test]
fn production_config_and_systemd_unit_agree() {
    use hotline_gateway::config::Config;
    let text = std::fs::read_to_string(repo().join("config/production.toml")).unwrap();
    let cfg = Config::from_str_with_env(&text, &[]).unwrap_or_else(|errors| {
        panic!(
            "config/production.toml: {}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert!(
        cfg.sip.listen.ip().is_unspecified(),
        "listens on all interfaces"
    );
    assert!(cfg.sip.advertised_addr.is_some());
    assert!(
        cfg.intake.token.is_empty(),
        "the token comes from the environment"
    );
    let admin = cfg.admin.listen_addr().expect("admin listener on");
    assert!(admin.ip().is_loopback(), "admin stays on loopback");

    let unit = std::fs::read_to_string(repo().join("config/hotline-gateway.service")).unwrap();
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("{key} missing from the unit"))
    };
    let stop: u64 = value("TimeoutStopSec").parse().unwrap();
    // drain + 10 s for records of hung-up calls + 5 s ticket flush.
    assert!(
        stop > cfg.limits.drain_timeout_secs + 15,
        "TimeoutStopSec {stop}"
    );
    assert_eq!(value("KillSignal"), "SIGTERM");
    assert_eq!(value("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(
        value("ReadWritePaths"),
        cfg.storage.data_dir.to_str().unwrap()
    );
}

#[test]
fn admin_listen_comes_from_the_environment_and_is_validated() {
    use hotline_gateway::config::Config;
    let text = std::fs::read_to_string(repo().join("config/hotline.toml")).unwrap();
    let env = |v: &str| vec![("HOTLINE_ADMIN_LISTEN".to_string(), v.to_string())];
    let off = Config::from_str_with_env(&text, &env("")).unwrap();
    assert_eq!(off.admin.listen_addr(), None, "empty = off");
    let on = Config::from_str_with_env(&text, &env("127.0.0.1:9191")).unwrap();
    assert_eq!(
        on.admin.listen_addr(),
        Some("127.0.0.1:9191".parse().unwrap())
    );
    let errors = Config::from_str_with_env(&text, &env("localhost")).unwrap_err();
    assert!(
        errors.iter().any(
            |e| e.key == "admin.listen" && e.env_var.as_deref() == Some("HOTLINE_ADMIN_LISTEN")
        ),
        "{errors:?}"
    );
}
