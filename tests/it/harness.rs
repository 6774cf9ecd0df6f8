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
        if std::env::var("HOTLINE_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("{cmd} is required (HOTLINE_REQUIRE_PEERS=1) but not installed");
        }
        eprintln!("SKIPPED: {cmd} not installed (set HOTLINE_REQUIRE_PEERS=1 to make this fatal)");
    }
    found
}

pub struct GatewayProcess {
    child: Child,
    /// Everything the daemon wrote to stderr, read continuously by `reader`: an unread pipe
    /// fills up (64 KiB) under load and would block the daemon's logging, and with it calls.
    log: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    pub sip: SocketAddr,
    pub data_dir: tempfile::TempDir,
    pub rtp: (u16, u16),
    env: Vec<(String, String)>,
}

fn spawn(sip: SocketAddr, data_dir: &Path, rtp: (u16, u16), env: &[(String, String)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hotline-gateway"));
    cmd.current_dir(repo())
        .args(["serve", "--config", "config/hotline.toml"])
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

impl GatewayProcess {
    /// Start `serve` with the example config and `env` overrides on top.
    pub fn start(env: &[(&str, &str)]) -> GatewayProcess {
        let data_dir = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        let sip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let rtp = rtp_range();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut child = spawn(sip, data_dir.path(), rtp, &env);
        let log = Arc::new(Mutex::new(Vec::new()));
        let reader = capture(&mut child, &log);
        let mut gw = GatewayProcess {
            child,
            log,
            reader,
            sip,
            data_dir,
            rtp,
            env,
        };
        gw.wait_ready();
        gw
    }

    /// `kill -9` the daemon (no chance to clean up), then start it again on the same
    /// address, ports and data directory.
    pub fn kill9_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.child = spawn(self.sip, self.data_dir.path(), self.rtp, &self.env);
        self.reader = capture(&mut self.child, &self.log);
        self.wait_ready();
    }

    /// `kill -9` the daemon and leave it dead (an instance lost mid-call). Returns what it
    /// logged. The data directory stays until the value is dropped.
    pub fn kill9(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr()
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

    /// What the daemon logged so far (all of it once the process has exited).
    pub fn stderr(&mut self) -> String {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            if let Some(r) = self.reader.take() {
                let _ = r.join();
            }
        }
        let log = self.log.lock().unwrap();
        String::from_utf8_lossy(&log).into_owned()
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

/// Read the child's stderr into `log` until it closes.
fn capture(child: &mut Child, log: &Arc<Mutex<Vec<u8>>>) -> Option<std::thread::JoinHandle<()>> {
    use std::io::Read;
    let mut err = child.stderr.take()?;
    let log = log.clone();
    Some(std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match err.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => log.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    }))
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
