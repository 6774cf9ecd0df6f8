//! A throwaway PostgreSQL cluster per test: `initdb --locale=C.UTF-8 -E UTF8` in a temporary
//! directory, run as an unprivileged user (PostgreSQL refuses root; as root the cluster runs
//! as `nobody` through `runuser`), on its own port with its socket in that directory.
//! Stopped and removed when dropped. Missing PostgreSQL skips, or fails under
//! `HOTLINE_REQUIRE_PEERS=1`.

use std::path::PathBuf;
use std::process::{Command, Output};

/// A free TCP port outside the ephemeral range (and below the tests' RTP ranges), so that no
/// outgoing connection takes it between this check and the server's bind (a port from
/// `bind(0)` is an ephemeral one, and busy tests open many connections).
pub fn listen_port() -> u16 {
    use rand::Rng;
    loop {
        let port = rand::thread_rng().gen_range(12_000..20_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_nobody: bool,
    pub port: u16,
}

/// The newest installed server's binaries (Debian: /usr/lib/postgresql/<major>/bin).
fn server_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

impl Postgres {
    /// A running, empty cluster, or `None` (skipped) when PostgreSQL is not installed.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = server_bin() else {
            if super::harness::required("HOTLINE_REQUIRE_PEERS") {
                panic!(
                    "PostgreSQL is required (HOTLINE_REQUIRE_PEERS=1 or CI=true) but not installed"
                );
            }
            eprintln!("SKIPPED: PostgreSQL not installed (set HOTLINE_REQUIRE_PEERS=1 to make this fatal)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("hotline-pg-")
            .tempdir_in("/tmp")
            .unwrap();
        // SAFETY: geteuid has no preconditions.
        let as_nobody = unsafe { libc::geteuid() } == 0;
        if as_nobody {
            let ok = Command::new("chown")
                .arg("nobody")
                .arg(dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown nobody {}", dir.path().display());
        }
        let pg = Postgres {
            dir,
            bin,
            as_nobody,
            port: listen_port(),
        };
        let data = pg.data();
        let out = pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "--locale=C.UTF-8",
                "-E",
                "UTF8",
                "-U",
                "postgres",
                "-A",
                "trust",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.start_server();
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_nobody {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"))
    }

    /// Starts the server (again, after [`Self::stop_server`]) and waits until it accepts.
    pub fn start_server(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server (fast: open connections are closed, as in a crash or failover).
    pub fn stop_server(&self) {
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Turns TLS on (restarting the server) with a server certificate for 127.0.0.1 issued by
    /// a throwaway CA, and returns the CA's certificate (PEM). `None` (skipped) without the
    /// `openssl` tool; fails under `HOTLINE_REQUIRE_PEERS=1`.
    pub fn enable_tls(&self) -> Option<PathBuf> {
        if !super::harness::peer_available("openssl") {
            return None;
        }
        let dir = self.dir.path();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=hotline test CA",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        let data = self.data();
        for f in ["server.crt", "server.key"] {
            std::fs::copy(dir.join(f), data.join(f)).unwrap();
            if self.as_nobody {
                assert!(Command::new("chown")
                    .arg("nobody")
                    .arg(data.join(f))
                    .status()
                    .unwrap()
                    .success());
            }
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        use std::io::Write;
        writeln!(conf, "ssl = on").unwrap();
        drop(conf);
        self.stop_server();
        self.start_server();
        Some(dir.join("ca.crt"))
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A client of the test's own (to look at what the gateways wrote).
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connect to the test cluster");
        tokio::spawn(conn);
        client
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}
