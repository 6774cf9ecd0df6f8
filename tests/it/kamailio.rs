//! Issue 7: two gateway instances behind Kamailio's dispatcher (the shipped recipe,
//! `deploy/kamailio/kamailio.cfg`, run on loopback with the test's ports), a bounded sipp
//! load through it, one instance killed with SIGKILL in the middle.
//!
//! What a city relies on: calls are spread over the instances; when one dies, only the calls
//! it had in progress are lost, every later call is answered by the survivor, the balancer
//! notices within its probe interval, in-dialog requests (the gateways' BYEs) go through the
//! proxy, and every completed call reaches the intake as exactly one ticket naming the
//! instance that took it.

use super::harness::{free_udp_port, peer_available, read_json_dir, repo, GatewayProcess};
use super::tickets_common::{Intake, Reply};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Calls placed, and how fast (calls per second).
const CALLS: usize = 36;
const RATE: usize = 4;
/// The gateways hang up after this long (their BYE is what we watch go through the proxy).
const MAX_CALL_SECS: &str = "3";
/// sipp waits this long for the gateway's BYE before hanging up itself, and as long for the
/// 200 to its own BYE.
const BYE_WAIT_MS: u64 = 6000;

fn recipe() -> PathBuf {
    repo().join("deploy/kamailio/kamailio.cfg")
}

/// A `#!trydef NAME value` of the shipped configuration, so the test's bounds follow it.
fn recipe_value(name: &str) -> u64 {
    let text = std::fs::read_to_string(recipe()).unwrap();
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix("#!trydef ")?;
            let (n, v) = rest.split_once(' ')?;
            (n == name).then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or_else(|| panic!("kamailio.cfg has no numeric #!trydef {name}"))
}

/// A kamailio tool: from PATH, else from /usr/sbin (not on a normal user's PATH).
fn sbin(cmd: &str) -> PathBuf {
    let on_path = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|p| !p.is_empty());
    PathBuf::from(on_path.unwrap_or_else(|| format!("/usr/sbin/{cmd}")))
}

/// A gateway instance for these tests: named `id`, posting to `intake`, hanging up after
/// MAX_CALL_SECS; `extra` environment on top.
fn instance(id: &str, intake: &str, extra: &[(&str, &str)]) -> GatewayProcess {
    let mut vars = vec![
        ("HOTLINE_INTAKE_URL", intake),
        ("HOTLINE_SIP_INSTANCE_ID", id),
        ("HOTLINE_LIMITS_MAX_CALL_DURATION_SECS", MAX_CALL_SECS),
        ("HOTLINE_LOG", "info"),
    ];
    vars.extend_from_slice(extra);
    GatewayProcess::start(&vars)
}

/// sipp placing `calls` calls at `rate` per second through `proxy`, logging each call into
/// `dir` (see [`sipp_calls`]).
fn sipp_load(dir: &Path, proxy: SocketAddr, calls: usize, rate: usize, media_port: u16) -> Command {
    let scenario = std::fs::read_to_string(repo().join("tests/sipp/uac_via_proxy.xml"))
        .unwrap()
        .replace("@BYE_WAIT_MS@", &BYE_WAIT_MS.to_string());
    let scen_path = dir.join("uac_via_proxy.xml");
    std::fs::write(&scen_path, scenario).unwrap();
    let mut sipp = Command::new("sipp");
    sipp.current_dir(dir)
        .arg(proxy.to_string())
        .arg("-sf")
        .arg(&scen_path)
        .args(["-s", "8890", "-m", &calls.to_string()])
        .args([
            "-r",
            &rate.to_string(),
            "-rp",
            "1000",
            "-l",
            &calls.to_string(),
        ])
        .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args(["-p", &free_udp_port().to_string()])
        .args(["-mp", &media_port.to_string()])
        .args(["-timeout", "60", "-timeout_error", "-nostdin"])
        .args(["-trace_logs", "-trace_err"])
        .stdin(Stdio::null());
    sipp
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Kamailio in the foreground with its own runtime directory, control socket and log.
struct Kamailio {
    child: Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl Kamailio {
    /// `defines` are extra `-A NAME=value` overrides of the recipe's `#!trydef`s.
    fn start(instances: &[SocketAddr], defines: &[&str]) -> Kamailio {
        let dir = tempfile::tempdir().unwrap();
        let list: String = instances.iter().map(|a| format!("1 sip:{a}\n")).collect();
        std::fs::write(dir.path().join("dispatcher.list"), list).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let log = std::fs::File::create(dir.path().join("kamailio.log")).unwrap();
        let d = dir.path().display();
        let mut cmd = Command::new(sbin("kamailio"));
        for d in defines {
            cmd.args(["-A", d]);
        }
        let child = cmd
            .args(["-DD", "-E", "-Y"])
            .arg(dir.path())
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"))
            .arg("-f")
            .arg(recipe())
            .args(["-A", &format!("LISTEN=udp:{addr}")])
            .args(["-A", &format!("DISPATCHER_LIST=\"{d}/dispatcher.list\"")])
            .args(["-A", &format!("CTL_SOCKET=\"unix:{d}/kamailio_ctl\"")])
            .args(["-A", "WORKERS=2"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start kamailio");
        let mut k = Kamailio { child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = k.child.try_wait() {
                panic!("kamailio exited: {status}\n{}", k.log());
            }
            let states = k.states();
            let active = instances.iter().all(|a| {
                states
                    .get(&format!("sip:{a}"))
                    .is_some_and(|f| f.starts_with('A'))
            });
            if active {
                return k;
            }
            assert!(
                Instant::now() < deadline,
                "dispatcher never listed every instance as active: {states:?}\n{}",
                k.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `kamcmd dispatcher.list`: destination URI → flags (`AP` active, `IP` inactive...).
    fn states(&self) -> BTreeMap<String, String> {
        let socket = format!("unix:{}/kamailio_ctl", self.dir.path().display());
        let out = Command::new(sbin("kamcmd"))
            .args(["-s", &socket, "dispatcher.list"])
            .stdin(Stdio::null())
            .output();
        let Ok(out) = out else {
            return BTreeMap::new();
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut states = BTreeMap::new();
        let mut uri = None;
        for line in text.lines().map(str::trim) {
            if let Some(u) = line.strip_prefix("URI: ") {
                uri = Some(u.to_string());
            } else if let (Some(f), Some(u)) = (line.strip_prefix("FLAGS: "), uri.take()) {
                states.insert(u, f.to_string());
            }
        }
        states
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM: the main process takes its worker processes down with it (SIGKILL would
        // leave them running).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One call as sipp logged it (see tests/sipp/uac_via_proxy.xml).
#[derive(Debug, Default)]
struct SippCall {
    started: f64,
    /// When the 200 came, and its Contact: which instance answered.
    answered: Option<(f64, String)>,
    /// `gateway-bye` or `caller-bye` once the call ended well.
    ended_by: Option<String>,
    /// The Via of the BYE sipp received.
    bye_via: String,
}

fn sipp_calls(dir: &Path) -> BTreeMap<String, SippCall> {
    let mut calls: BTreeMap<String, SippCall> = BTreeMap::new();
    let logs = std::fs::read_dir(dir).unwrap().filter_map(|e| {
        let p = e.ok()?.path();
        p.to_str()?.ends_with("_logs.log").then_some(p)
    });
    let time = |s: &str, us: &str| {
        s.parse::<f64>().unwrap_or(0.0) + us.parse::<f64>().unwrap_or(0.0) / 1e6
    };
    for path in logs {
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                ["START", id, s, us] => {
                    calls.entry(id.to_string()).or_default().started = time(s, us)
                }
                ["ANSWERED", id, s, us, contact] => {
                    calls.entry(id.to_string()).or_default().answered =
                        Some((time(s, us), contact.to_string()))
                }
                ["OK", id, how, _, _, rest @ ..] => {
                    let c = calls.entry(id.to_string()).or_default();
                    c.ended_by = Some(how.to_string());
                    c.bye_via = rest.strip_prefix(&["VIA"]).unwrap_or(rest).join(" ");
                }
                _ => {}
            }
        }
    }
    calls
}

/// Call-IDs of the records in `dir` whose hang-up reason is (or is not) `interrupted`: the
/// provisional record written at answer, still pending when the daemon died.
fn records(dir: &Path, interrupted: bool) -> BTreeSet<String> {
    read_json_dir(dir)
        .into_iter()
        .filter(|r| (r["hangup"]["reason"] == "interrupted") == interrupted)
        .filter_map(|r| r["call_id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_behind_kamailio_one_killed_mid_load_no_later_caller_notices() {
    if !peer_available("kamailio") || !peer_available("sipp") {
        return;
    }
    let test_started = Instant::now();
    let intake = Intake::start(|_, _| Reply::Accept(201)).await;
    let url = intake.url();
    let mut gw_a = instance("gw-a", &url, &[]);
    let mut gw_b = instance("gw-b", &url, &[]);
    let kam = Kamailio::start(&[gw_a.sip, gw_b.sip], &[]);
    let uri_a = format!("sip:{}", gw_a.sip);
    let uri_b = format!("sip:{}", gw_b.sip);

    // The load: CALLS calls at RATE per second, each kept until the gateway hangs up.
    let dir = tempfile::tempdir().unwrap();
    let mut sipp = sipp_load(dir.path(), kam.addr, CALLS, RATE, gw_b.rtp.1 - 20);
    let sipp = std::thread::spawn(move || sipp.output().expect("run sipp"));

    // Kill instance A once it has finished (and ticketed) a couple of calls, while sipp is
    // still placing new ones.
    intake
        .wait_for(Duration::from_secs(30), "two tickets from gw-a", |s| {
            s.documents
                .values()
                .filter(|d| d["gateway_instance"] == "gw-a")
                .count()
                >= 2
        })
        .await;
    let killed_at = now_secs();
    let killed = Instant::now();
    let log_a = gw_a.kill9();

    // The balancer notices.
    let mut detected = None;
    while killed.elapsed() < Duration::from_secs(15) {
        if kam.states().get(&uri_a).is_some_and(|f| f.starts_with('I')) {
            detected = Some(killed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let out = tokio::task::spawn_blocking(move || sipp.join().unwrap())
        .await
        .unwrap();
    let calls = sipp_calls(dir.path());
    let completed: BTreeSet<String> = calls
        .iter()
        .filter(|(_, c)| c.ended_by.is_some())
        .map(|(id, _)| id.clone())
        .collect();
    intake
        .wait_for(
            Duration::from_secs(20),
            "a ticket per completed call",
            |s| s.documents.len() >= completed.len(),
        )
        .await;
    // Let any duplicate that would still come arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log_b = gw_b.stop();
    let kam_log = kam.log();
    let sipp_err: String = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with("_errors.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    let context = || {
        let tail = |s: &str, n: usize| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        format!(
            "\n--- sipp ({}):\n{}\n{}\n--- sipp errors:\n{}\n--- kamailio:\n{}\n--- gw-a:\n{}\n--- gw-b:\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stdout), 25),
            String::from_utf8_lossy(&out.stderr),
            tail(&sipp_err, 400),
            tail(&kam_log, 80),
            tail(&log_a, 30),
            tail(&log_b, 30),
        )
    };

    // sipp ran to the end: 0 = every call passed, 1 = some failed; anything else is sipp
    // itself failing.
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "sipp failed{}",
        context()
    );
    assert_eq!(calls.len(), CALLS, "every call was placed{}", context());

    // Spread: both instances completed calls before the kill.
    let in_progress_a = records(&gw_a.calls().join("pending"), true);
    let mut done_a = records(&gw_a.calls(), false);
    done_a.extend(records(&gw_a.calls().join("pending"), false));
    let done_b = records(&gw_b.calls(), false);
    assert!(
        done_a.len() >= 2 && done_b.len() >= 2,
        "calls spread over both: A {done_a:?}, B {done_b:?}{}",
        context()
    );
    for uri in [&uri_a, &uri_b] {
        assert!(
            kam_log.contains(&format!("dispatched to {uri}")),
            "the proxy sent calls to {uri}{}",
            context()
        );
    }

    // Only the calls A had in progress failed: answered by A (its Contact in the 200)
    // before the kill and never finished.
    let failed: BTreeSet<String> = calls
        .iter()
        .filter(|(_, c)| c.ended_by.is_none())
        .map(|(id, _)| id.clone())
        .collect();
    let answered_by_a = |c: &SippCall| {
        c.answered
            .as_ref()
            .is_some_and(|(_, contact)| contact.ends_with(&format!("@{}", gw_a.sip)))
    };
    let open_on_a: BTreeSet<String> = calls
        .iter()
        .filter(|(_, c)| answered_by_a(c) && c.ended_by.is_none())
        .map(|(id, _)| id.clone())
        .collect();
    assert!(
        !open_on_a.is_empty(),
        "A was killed with calls in progress{}",
        context()
    );
    assert_eq!(
        failed,
        open_on_a,
        "exactly the calls in progress on the killed instance failed{}",
        context()
    );
    for id in &open_on_a {
        let (at, _) = calls[id].answered.as_ref().unwrap();
        assert!(*at < killed_at, "{id} was answered by A before the kill");
    }
    // The gateway's own view agrees: what A left pending (provisional records) is a subset
    // of those calls (a call answered a moment before the kill may have none yet).
    assert!(
        in_progress_a.is_subset(&open_on_a),
        "A's pending records {in_progress_a:?} vs open calls {open_on_a:?}"
    );
    // ...and every call started after the kill succeeded, on the survivor.
    let after: Vec<&String> = calls
        .iter()
        .filter(|(_, c)| c.started > killed_at)
        .map(|(id, _)| id)
        .collect();
    assert!(
        after.len() >= 4,
        "the load went on after the kill: {} calls{}",
        after.len(),
        context()
    );
    for id in &after {
        assert!(
            completed.contains(*id),
            "{id} started after the kill and failed{}",
            context()
        );
        assert!(done_b.contains(*id), "{id} was answered by B{}", context());
    }

    // The balancer marked A inactive within one probe interval plus the probe's timeout.
    let ping = recipe_value("DS_PING_INTERVAL");
    let probe_timeout = recipe_value("NON_INVITE_TIMEOUT_MS");
    let bound = Duration::from_millis(ping * 1000 + probe_timeout + 1000);
    let detected = detected.unwrap_or_else(|| panic!("A never marked inactive{}", context()));
    assert!(
        detected <= bound,
        "A marked inactive after {detected:?} (bound {bound:?}){}",
        context()
    );
    assert!(
        kam_log.contains(&format!("instance {uri_a} is DOWN")),
        "{}",
        context()
    );

    // Every completed call ended with the gateway's BYE, and that BYE came through the
    // proxy (its Via on top, the proxy logged relaying it).
    let proxy_via = format!("SIP/2.0/UDP {}", kam.addr);
    for id in &completed {
        let c = &calls[id];
        assert_eq!(
            c.ended_by.as_deref(),
            Some("gateway-bye"),
            "{id}{}",
            context()
        );
        assert!(
            c.bye_via.trim_start().starts_with(&proxy_via),
            "{id}: BYE not via the proxy: {}{}",
            c.bye_via,
            context()
        );
    }
    let relayed_byes = kam_log
        .matches(&format!("in-dialog BYE from {}", gw_a.sip))
        .count()
        + kam_log
            .matches(&format!("in-dialog BYE from {}", gw_b.sip))
            .count();
    assert_eq!(
        relayed_byes,
        completed.len(),
        "the proxy relayed each gateway BYE{}",
        context()
    );

    // One ticket per completed call, from both instances, each applied once.
    let docs = intake.documents();
    let mut keys_per_call: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in intake.posts() {
        let doc: serde_json::Value = serde_json::from_str(&p.body).unwrap();
        let call_id = doc["call"]["call_id"].as_str().unwrap().to_string();
        keys_per_call
            .entry(call_id)
            .or_default()
            .insert(p.idempotency_key.unwrap_or_default());
    }
    assert!(
        keys_per_call.values().all(|k| k.len() == 1),
        "one ticket (one Idempotency-Key) per call: {keys_per_call:?}"
    );
    let ticketed: BTreeSet<String> = keys_per_call.keys().cloned().collect();
    assert_eq!(
        ticketed,
        completed,
        "a ticket for each completed call{}",
        context()
    );
    assert_eq!(docs.len(), completed.len());
    let mut by_instance: BTreeMap<String, usize> = BTreeMap::new();
    for d in docs.values() {
        let call_id = d["call"]["call_id"].as_str().unwrap();
        let instance = d["gateway_instance"].as_str().unwrap().to_string();
        let expected = if done_a.contains(call_id) {
            "gw-a"
        } else {
            "gw-b"
        };
        assert_eq!(instance, expected, "{call_id}");
        *by_instance.entry(instance).or_default() += 1;
    }
    assert_eq!(
        by_instance.len(),
        2,
        "tickets from both instances: {by_instance:?}"
    );
    eprintln!(
        "kamailio failover: {} calls, {} completed (A {}, B {}), {} lost with A, A marked \
         inactive after {detected:?}, test took {:?}",
        calls.len(),
        completed.len(),
        done_a.len(),
        done_b.len(),
        failed.len(),
        test_started.elapsed()
    );
}

/// An instance at its call limit answers INVITE with 503: the proxy fails the call over to
/// the other instance and takes the full one out of the rotation, and no caller notices.
/// (Probes are slowed down here so that the INVITE's 503, not a probe, does it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_at_its_call_limit_answers_503_and_the_call_fails_over() {
    if !peer_available("kamailio") || !peer_available("sipp") {
        return;
    }
    let intake = Intake::start(|_, _| Reply::Accept(201)).await;
    let url = intake.url();
    let mut full = instance("gw-full", &url, &[("HOTLINE_LIMITS_MAX_CALLS", "1")]);
    let mut free = instance("gw-free", &url, &[]);
    let kam = Kamailio::start(&[full.sip, free.sip], &["DS_PING_INTERVAL=60"]);
    let dir = tempfile::tempdir().unwrap();
    let calls_placed = 6;
    let mut sipp = sipp_load(dir.path(), kam.addr, calls_placed, 3, free.rtp.1 - 20);
    let out = tokio::task::spawn_blocking(move || sipp.output().expect("run sipp"))
        .await
        .unwrap();
    let calls = sipp_calls(dir.path());
    let log = kam.log();
    let done_full = full.wait_records(1, Duration::from_secs(10));
    let done_free = free.wait_records(calls_placed - 1, Duration::from_secs(10));
    let context = || {
        format!(
            "\n--- sipp ({}):\n{}\n--- kamailio:\n{log}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    };
    assert_eq!(calls.len(), calls_placed, "{}", context());
    assert!(
        calls.values().all(|c| c.ended_by.is_some()),
        "every call succeeded: {calls:?}{}",
        context()
    );
    assert!(out.status.success(), "{}", context());
    let full_uri = format!("sip:{}", full.sip);
    assert!(
        log.contains(&format!("instance {full_uri} failed (503)")),
        "a call was refused with 503 by the full instance{}",
        context()
    );
    assert!(
        log.contains(&format!("failed over to sip:{}", free.sip)),
        "{}",
        context()
    );
    assert!(
        kam.states()
            .get(&full_uri)
            .is_some_and(|f| f.starts_with('I')),
        "the full instance is out of the rotation: {:?}",
        kam.states()
    );
    assert_eq!(done_full.len(), 1, "the full instance took one call");
    assert_eq!(done_free.len(), calls_placed - 1);
    full.stop();
    free.stop();
}
