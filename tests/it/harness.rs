//! A gateway process per test: its own SIP port, RTP range, and data directory.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Each test gets its own 100-port RTP range so tests can run in parallel.
pub fn rtp_range() -> (u16, u16) {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let base = 22000 + (std::process::id() as u16 % 50) * 400 + n * 100;
    (base, base + 99)
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether a missing peer or model must fail the test rather than skip it: `var` (e.g.
/// `HOTLINE_REQUIRE_PEERS`) is 1, or this is CI.
pub fn required(var: &str) -> bool {
    std::env::var(var).as_deref() == Ok("1") || std::env::var("CI").as_deref() == Ok("true")
}

/// Whether the Whisper base model and the 8-bit copy the shipped config uses are in
/// `models/`; fails the test when CI requires them.
pub fn whisper_model_present() -> bool {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    if ["ggml-base.bin", "ggml-base-q8_0.bin"]
        .iter()
        .all(|f| models.join(f).exists())
    {
        return true;
    }
    if required("HOTLINE_REQUIRE_MODEL") {
        panic!("models/ggml-base.bin and ggml-base-q8_0.bin are required (HOTLINE_REQUIRE_MODEL=1 or CI=true)");
    }
    eprintln!("SKIPPED: no Whisper model (models/fetch.sh base base-q8_0)");
    false
}

/// Whether an external peer is installed; fails the test when CI requires it.
pub fn peer_available(cmd: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        // Daemons such as kamailio live in /usr/sbin, which is not on a normal user's PATH.
        .arg(format!("command -v {cmd} || test -x /usr/sbin/{cmd}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if required("HOTLINE_REQUIRE_PEERS") {
            panic!("{cmd} is required (HOTLINE_REQUIRE_PEERS=1 or CI=true) but not installed");
        }
        eprintln!("SKIPPED: {cmd} not installed (set HOTLINE_REQUIRE_PEERS=1 to make this fatal)");
    }
    found
}

pub struct GatewayProcess {
    child: Child,
    pub sip: SocketAddr,
    pub data_dir: tempfile::TempDir,
    pub rtp: (u16, u16),
    env: Vec<(String, String)>,
    config: PathBuf,
    /// Everything the daemon wrote to stderr so far (read by a thread, so a chatty daemon
    /// never blocks on a full pipe).
    log: Arc<Mutex<String>>,
    log_reader: Option<std::thread::JoinHandle<()>>,
}

/// The example configuration every test starts from unless told otherwise.
pub const DEFAULT_CONFIG: &str = "config/hotline.toml";

fn spawn(
    config: &Path,
    sip: SocketAddr,
    data_dir: &Path,
    rtp: (u16, u16),
    env: &[(String, String)],
) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hotline-gateway"));
    cmd.current_dir(repo())
        .arg("serve")
        .arg("--config")
        .arg(config)
        // Parallel tests must not all bind the default admin port; tests that want the
        // listener set HOTLINE_ADMIN_LISTEN themselves (their env comes after this).
        .env("HOTLINE_ADMIN_LISTEN", "")
        .env("HOTLINE_CONSOLE_LISTEN", "")
        // Whisper would take both cores after every call and disturb the timing-sensitive
        // media tests running beside it; tests/it/asr.rs turns it on for itself.
        .env("HOTLINE_ASR_ENABLED", "false")
        // The shipped second pass decodes every live message again, carefully, on both cores
        // (a new ticket revision a few seconds after each call): tests that turn Whisper on
        // get the second pass of before (messages of several utterances, same decoding), and
        // the tests of the careful pass (tests/it/asr.rs, live_bench) ask for it.
        .env("HOTLINE_ASR_SECOND_PASS_BEAM_SIZE", "1")
        .env(
            "HOTLINE_ASR_SECOND_PASS_PROMPT",
            hotline_gateway::asr::prompt::ZH_BASE,
        )
        .env("HOTLINE_ASR_KEYWORD_BIAS", "off")
        .env("HOTLINE_ASR_KEYWORD_RESCORING", "false")
        .env("HOTLINE_SIP_LISTEN", sip.to_string())
        .env("HOTLINE_DATA_DIR", data_dir)
        .env("HOTLINE_MEDIA_RTP_PORT_MIN", rtp.0.to_string())
        .env("HOTLINE_MEDIA_RTP_PORT_MAX", rtp.1.to_string())
        .env("HOTLINE_LOG", "info,hotline_gateway=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("start hotline-gateway")
}

fn read_log(child: &mut Child, log: &Arc<Mutex<String>>) -> Option<std::thread::JoinHandle<()>> {
    use std::io::BufRead;
    let stderr = child.stderr.take()?;
    let log = log.clone();
    Some(std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stderr);
        let mut line = String::new();
        while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
            log.lock().unwrap().push_str(&line);
            line.clear();
        }
    }))
}

impl GatewayProcess {
    /// Start `serve` with the example config and `env` overrides on top.
    pub fn start(env: &[(&str, &str)]) -> GatewayProcess {
        GatewayProcess::start_with_config(Path::new(DEFAULT_CONFIG), env)
    }

    /// Start `serve` with the example config plus `extra` TOML appended (for what the
    /// environment cannot set, such as `[[trunk]]` entries), and `env` overrides on top.
    pub fn start_with(extra: Option<&str>, env: &[(&str, &str)]) -> GatewayProcess {
        let Some(extra) = extra else {
            return GatewayProcess::start(env);
        };
        let base = std::fs::read_to_string(repo().join(DEFAULT_CONFIG)).unwrap();
        let path = std::env::temp_dir().join(format!(
            "hotline-test-{}.toml",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&path, format!("{base}\n{extra}\n")).unwrap();
        GatewayProcess::start_with_config(&path, env)
    }

    /// Start `serve --config <config>` (relative to the repository root, or absolute) with
    /// `env` overrides on top.
    pub fn start_with_config(config: &Path, env: &[(&str, &str)]) -> GatewayProcess {
        let data_dir = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        let sip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let rtp = rtp_range();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut child = spawn(config, sip, data_dir.path(), rtp, &env);
        let log = Arc::new(Mutex::new(String::new()));
        let log_reader = read_log(&mut child, &log);
        let mut gw = GatewayProcess {
            child,
            sip,
            data_dir,
            rtp,
            env,
            config: config.to_path_buf(),
            log,
            log_reader,
        };
        gw.wait_ready();
        gw
    }

    /// The daemon's process id (for tools that sample its CPU and memory).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9` the daemon and return what it had logged.
    pub fn kill9(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr()
    }

    /// `kill -9` the daemon (no chance to clean up), then start it again on the same
    /// address, ports and data directory.
    pub fn kill9_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.log_reader.take() {
            let _ = r.join();
        }
        self.child = spawn(
            &self.config,
            self.sip,
            self.data_dir.path(),
            self.rtp,
            &self.env,
        );
        self.log_reader = read_log(&mut self.child, &self.log);
        self.wait_ready();
    }

    /// Ready = answers OPTIONS.
    fn wait_ready(&mut self) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("gateway exited early: {status}\n{}", self.stderr());
            }
            let msg = options_request(sock.local_addr().unwrap(), self.sip);
            let _ = sock.send_to(msg.as_bytes(), self.sip);
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                if String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200") {
                    return;
                }
            }
        }
        panic!("gateway did not answer OPTIONS within 20 s");
    }

    /// Ticketed call records.
    pub fn calls(&self) -> PathBuf {
        self.data_dir.path().join("calls")
    }

    /// Tickets as JSON files (no intake URL configured).
    pub fn outbox(&self) -> PathBuf {
        self.data_dir.path().join("outbox")
    }

    /// Wait for `n` call records (ticketed) and return them parsed.
    pub fn wait_records(&self, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        wait_json(&self.calls(), n, timeout)
    }

    /// Wait for `n` tickets in the outbox and return them parsed.
    pub fn wait_tickets(&self, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        wait_json(&self.outbox(), n, timeout)
    }

    /// What the daemon logged, complete once it has exited.
    pub fn stderr(&mut self) -> String {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            if let Some(r) = self.log_reader.take() {
                let _ = r.join();
            }
        }
        self.log()
    }

    /// What the daemon has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait until the log contains `needle`; true if it did within `timeout`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.log().contains(needle)
    }

    /// Send a signal by name (`HUP`, `TERM`, `INT`).
    /// SIGHUP with a broken `config` on disk: waits for the daemon to refuse it and returns
    /// its log and the 1-based line of `config` holding `bad_text`, which the error must name.
    pub fn reload_refused(&self, config: &std::path::Path, bad_text: &str) -> (String, usize) {
        let bad_line = std::fs::read_to_string(config)
            .unwrap()
            .lines()
            .position(|l| l.contains(bad_text))
            .unwrap_or_else(|| panic!("{bad_text:?} is not in {}", config.display()))
            + 1;
        self.signal("HUP");
        assert!(
            self.wait_log("configuration NOT reloaded", Duration::from_secs(10)),
            "{}",
            self.log()
        );
        (self.log(), bad_line)
    }

    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{name} failed");
    }

    /// Wait for the daemon to exit on its own; its exit status, or `None` on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                if let Some(r) = self.log_reader.take() {
                    let _ = r.join();
                }
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Stop with SIGTERM and return what the daemon logged (for failure messages). The data
    /// directory stays until the value is dropped.
    pub fn stop(&mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_json(dir: &Path, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = read_json_dir(dir);
        if found.len() >= n || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn read_json_dir(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut paths: Vec<_> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        for p in paths {
            if let Ok(text) = std::fs::read_to_string(&p) {
                if let Ok(v) = serde_json::from_str(&text) {
                    out.push(v);
                }
            }
        }
    }
    out
}

pub fn options_request(local: SocketAddr, target: SocketAddr) -> String {
    format!(
        "OPTIONS sip:8890@{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag=probe\r\n\
         To: <sip:8890@{target}>\r\n\
         Call-ID: probe-{}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}
