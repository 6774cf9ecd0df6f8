//! Shared test fixtures: a real HTTP intake server on 127.0.0.1, call facts, schema checks.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use hotline_gateway::ticket::{
    CallFacts, HangupBy, MenuChoice, MenuSource, SegmentFacts, TranscriptFacts,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One POST the intake received.
#[derive(Clone, Debug)]
pub struct Post {
    pub idempotency_key: Option<String>,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
    pub at: Instant,
}

/// What the scripted intake answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Apply (once per Idempotency-Key) and answer with this 2xx status.
    Accept(u16),
    /// Apply, then drop the connection without answering: the client cannot know it landed.
    AcceptThenDrop,
    /// Apply, then answer 200 only after this long (longer than the client's timeout).
    AcceptThenStall(Duration),
    /// Answer without applying.
    Status {
        code: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
}

impl Reply {
    pub fn status(code: u16) -> Reply {
        Reply::Status {
            code,
            headers: vec![],
            body: String::new(),
        }
    }
}

type Script = dyn Fn(usize, &Post) -> Reply + Send + Sync;

#[derive(Default)]
pub struct IntakeState {
    pub posts: Vec<Post>,
    /// Idempotency-Key → times applied. A correct intake applies each key once.
    pub applied: HashMap<String, usize>,
    /// Idempotency-Key → document as first applied.
    pub documents: HashMap<String, serde_json::Value>,
    /// Requests being answered right now, and the most ever at once.
    pub in_progress: usize,
    pub max_in_progress: usize,
}

/// A tiny HTTP/1.1 intake: one request per connection (`Connection: close`), so stopping the
/// listener really makes the client see refused connections.
pub struct Intake {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<IntakeState>>,
    script: Arc<Script>,
    delay: Duration,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Intake {
    pub async fn start(script: impl Fn(usize, &Post) -> Reply + Send + Sync + 'static) -> Intake {
        Intake::start_with_delay(script, Duration::ZERO).await
    }

    /// `delay` is waited before answering each request (to keep requests in flight).
    pub async fn start_with_delay(
        script: impl Fn(usize, &Post) -> Reply + Send + Sync + 'static,
        delay: Duration,
    ) -> Intake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let intake = Intake {
            addr,
            state: Arc::default(),
            script: Arc::new(script),
            delay,
            task: Mutex::new(None),
        };
        intake.serve(listener);
        intake
    }

    pub fn url(&self) -> String {
        format!("http://{}/tickets", self.addr)
    }

    fn serve(&self, listener: TcpListener) {
        let (state, script, delay) = (self.state.clone(), self.script.clone(), self.delay);
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let (state, script) = (state.clone(), script.clone());
                tokio::spawn(handle(sock, state, script, delay));
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Closes the listening socket: new connections are refused until [`Self::resume`].
    pub fn stop(&self) {
        if let Some(t) = self.task.lock().unwrap().take() {
            t.abort();
        }
    }

    pub async fn resume(&self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("rebind {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    pub fn post_count(&self) -> usize {
        self.state.lock().unwrap().posts.len()
    }

    pub fn posts(&self) -> Vec<Post> {
        self.state.lock().unwrap().posts.clone()
    }

    pub fn applied(&self) -> HashMap<String, usize> {
        self.state.lock().unwrap().applied.clone()
    }

    pub fn documents(&self) -> HashMap<String, serde_json::Value> {
        self.state.lock().unwrap().documents.clone()
    }

    /// Waits until `cond` holds on the state, or panics after `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        cond: impl Fn(&IntakeState) -> bool,
    ) {
        let end = Instant::now() + timeout;
        loop {
            if cond(&self.state.lock().unwrap()) {
                return;
            }
            assert!(Instant::now() < end, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn handle(
    mut sock: TcpStream,
    state: Arc<Mutex<IntakeState>>,
    script: Arc<Script>,
    delay: Duration,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p + 4;
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + len {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let post = Post {
        idempotency_key: header("idempotency-key"),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: String::from_utf8_lossy(&buf[header_end..header_end + len]).into_owned(),
        at: Instant::now(),
    };
    let reply = {
        let mut st = state.lock().unwrap();
        let n = st.posts.len();
        st.posts.push(post.clone());
        st.in_progress += 1;
        st.max_in_progress = st.max_in_progress.max(st.in_progress);
        let reply = script(n, &post);
        if matches!(
            reply,
            Reply::Accept(_) | Reply::AcceptThenDrop | Reply::AcceptThenStall(_)
        ) {
            let key = post.idempotency_key.clone().unwrap_or_default();
            if !st.applied.contains_key(&key) {
                st.applied.insert(key.clone(), 1);
                let doc = serde_json::from_str(&post.body).unwrap_or(serde_json::Value::Null);
                st.documents.insert(key, doc);
            }
        }
        reply
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    state.lock().unwrap().in_progress -= 1;
    let (code, headers, body) = match reply {
        Reply::AcceptThenDrop => return,
        Reply::AcceptThenStall(d) => {
            tokio::time::sleep(d).await;
            (200, vec![], r#"{"status":"accepted"}"#.to_owned())
        }
        Reply::Accept(code) => (code, vec![], r#"{"status":"accepted"}"#.to_owned()),
        Reply::Status {
            code,
            headers,
            body,
        } => (code, headers, body),
    };
    let mut resp = format!(
        "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        resp.push_str(&format!("{k}: {v}\r\n"));
    }
    resp.push_str("\r\n");
    resp.push_str(&body);
    let _ = sock.write_all(resp.as_bytes()).await;
    let _ = sock.shutdown().await;
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 3, 0, 0).unwrap()
}

/// Facts of an answered call starting `offset_secs` after [`t0`] with this transcript.
pub fn facts(
    call_id: &str,
    caller: &str,
    text: &str,
    menu_id: Option<&str>,
    offset_secs: i64,
) -> CallFacts {
    let started = t0() + chrono::Duration::seconds(offset_secs);
    let menu = menu_id.map(|id| MenuChoice {
        source: MenuSource::Dtmf,
        digits: Some(
            match id {
                "complaint" => "1",
                "policy" => "2",
                "service" => "3",
                _ => "0",
            }
            .into(),
        ),
        utterance: None,
        id: id.into(),
        label: match id {
            "complaint" => "投诉举报",
            "policy" => "政策咨询",
            "service" => "便民服务",
            _ => "人工服务",
        }
        .into(),
    });
    CallFacts {
        // One dialog per Call-ID here; tests of shared Call-IDs set their own uid.
        call_uid: format!("uid-{call_id}"),
        call_id: call_id.into(),
        reference: None,
        trunk: Some("pstn-1".into()),
        caller: caller.into(),
        called: "8890".into(),
        channel: "8890".into(),
        started_at: started,
        answered_at: started + chrono::Duration::milliseconds(1200),
        ended_at: started + chrono::Duration::seconds(75),
        hangup_by: HangupBy::Caller,
        hangup_reason: "BYE".into(),
        menu,
        transfer: None,
        urgent_trigger: None,
        transcript: Some(TranscriptFacts {
            language: if text.is_ascii() { "en" } else { "zh" }.into(),
            text: text.into(),
            segments: if text.is_empty() {
                vec![]
            } else {
                vec![SegmentFacts {
                    start_ms: 320,
                    end_ms: 5400,
                    text: text.into(),
                    confidence: Some(0.87),
                }]
            },
            model: "ggml-small.bin".into(),
            empty_reason: None,
        }),
        recording: None,
    }
}

/// The JSON Schema of `hotline.ticket/v2`, compiled.
pub fn schema() -> jsonschema::Validator {
    schema_file("ticket.schema.json")
}

/// The JSON Schema of `hotline.ticket/v1` (`[intake] schema = "v1"`), compiled.
pub fn schema_v1() -> jsonschema::Validator {
    schema_file("ticket.v1.schema.json")
}

fn schema_file(name: &str) -> jsonschema::Validator {
    let text =
        std::fs::read_to_string(format!("{}/docs/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).expect("schema compiles")
}

/// Panics with every violation when `doc` does not validate.
pub fn assert_valid(validator: &jsonschema::Validator, doc: &serde_json::Value) {
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "ticket does not validate: {errors:#?}\n{doc:#}"
    );
}
