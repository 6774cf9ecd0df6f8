//! The desk's process for the tests: a gateway with the desk on its own port, its users and
//! API token, and a client that speaks to it as a browser or a machine would.

use super::harness::GatewayProcess;
use super::tickets_common::facts;
use hotline_gateway::ticket::{RecordingFacts, TicketConfig, TicketService};
use reqwest::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};
pub const OPERATOR: (&str, &str) = ("li", "li-desk-pass");
pub const SUPERVISOR: (&str, &str) = ("wang", "wang-desk-pass");
pub const TOKEN: &str = "intake-token-0123456789abcdef";

/// A gateway with the desk on its own port, an operator, a supervisor and an API token.
pub struct DeskProcess {
    pub gw: GatewayProcess,
    pub base: String,
    pub http: reqwest::Client,
}

pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl DeskProcess {
    pub async fn start(env: &[(&str, &str)]) -> DeskProcess {
        let hash = |p: &str| hotline_gateway::console::auth::hash_password(p).unwrap();
        let extra = format!(
            "[[console.user]]\nname = \"{}\"\npassword_hash = \"{}\"\nrole = \"operator\"\n\n\
             [[console.user]]\nname = \"{}\"\npassword_hash = \"{}\"\nrole = \"supervisor\"\n",
            OPERATOR.0,
            hash(OPERATOR.1),
            SUPERVISOR.0,
            hash(SUPERVISOR.1)
        );
        let listen = format!("127.0.0.1:{}", free_tcp_port());
        let mut all: Vec<(&str, &str)> = vec![
            ("HOTLINE_CONSOLE_LISTEN", listen.as_str()),
            ("HOTLINE_CONSOLE_API_TOKENS", TOKEN),
        ];
        all.extend_from_slice(env);
        let gw = GatewayProcess::start_with(Some(&extra), &all);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let base = format!("http://{listen}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{base}/login")).send().await {
                if r.status() == StatusCode::OK {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "desk did not come up:\n{}",
                gw.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        DeskProcess { gw, base, http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Logs in; returns the cookie header value and the session's CSRF token.
    pub async fn login(&self, (name, password): (&str, &str)) -> Session {
        let r = self
            .http
            .post(self.url("/login"))
            .form(&[("name", name), ("password", password)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "login of {name}");
        let cookie = r
            .headers()
            .get(SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let page = self
            .http
            .get(self.url("/"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = page
            .split("name=\"csrf-token\" content=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("csrf meta")
            .to_owned();
        Session { cookie, csrf }
    }

    /// One request to the desk, JSON body optional.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        by: By<'_>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut r = self.http.request(method, self.url(path));
        match by {
            By::Anonymous => {}
            By::Token => r = r.header(AUTHORIZATION, format!("Bearer {TOKEN}")),
            By::Session(s) => r = r.header(COOKIE, &s.cookie).header("X-CSRF-Token", &s.csrf),
            By::SessionWithoutCsrf(s) => r = r.header(COOKIE, &s.cookie),
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    pub fn db(&self) -> PathBuf {
        self.gw.data_dir.path().join("tickets.sqlite")
    }

    /// Commits a ticket straight into the daemon's store (as the ticket service would), with a
    /// transcript of two segments and a recording of `secs` seconds of tone.
    pub async fn seed(&self, call_id: &str, caller: &str, segments: &[&str]) -> String {
        let service = TicketService::open(TicketConfig {
            db_path: self.db(),
            outbox_dir: self.gw.data_dir.path().join("outbox"),
            ..TicketConfig::default()
        })
        .unwrap();
        let text = segments.concat();
        let mut f = facts(call_id, caller, &text, Some("complaint"), 0);
        if let Some(t) = f.transcript.as_mut() {
            t.segments = segments
                .iter()
                .enumerate()
                .map(|(i, s)| hotline_gateway::ticket::SegmentFacts {
                    start_ms: 1000 + i as u64 * 2000,
                    end_ms: 2800 + i as u64 * 2000,
                    text: (*s).into(),
                    confidence: Some(0.9),
                })
                .collect();
        }
        let dir = self.gw.data_dir.path().join("recordings");
        std::fs::create_dir_all(&dir).unwrap();
        let wav = dir.join(format!("{call_id}.wav"));
        write_tone(&wav, 2 + segments.len() as u32 * 2);
        f.recording = Some(RecordingFacts {
            path: wav,
            duration_ms: 6000,
        });
        service.create(f).await.unwrap().ticket_id.to_string()
    }
}

/// 8 kHz mono 16-bit: a quiet 440 Hz tone.
pub fn write_tone(path: &std::path::Path, secs: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..8000 * secs {
        let v = (i as f32 * 440.0 * std::f32::consts::TAU / 8000.0).sin() * 3000.0;
        w.write_sample(v as i16).unwrap();
    }
    w.finalize().unwrap();
}

pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

/// Who sends a request in [`DeskProcess::send`].
pub enum By<'a> {
    Anonymous,
    /// The API token (a machine client).
    Token,
    /// A session, with its CSRF token in `X-CSRF-Token`.
    Session(&'a Session),
    /// A session's cookie alone (as a forged cross-site request would carry it).
    SessionWithoutCsrf(&'a Session),
}
