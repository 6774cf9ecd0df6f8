//! The built-in test caller (`hotline-gateway dial`): a small SIP UAC that reuses the
//! gateway's own endpoint, transaction layer, dialogs and media sessions to place a real
//! call, press digits, speak a WAV file, and record what it hears.
//!
//! [`Caller`] shares one SIP endpoint and one RTP port pool between calls, so the load
//! generator ([`load`]) places many concurrent calls with exactly the code of `dial`.
//!
//! It prints every step, so it doubles as a diagnostic for admins ("does the trunk answer,
//! what codec, do I hear the greeting?") and as the engine of the integration tests.

mod call;
pub(crate) mod invite;
pub mod load;

use crate::media::prompt::{Prompt, SharedPrompt};
use crate::media::session::{ArrivalStats, PortPool};
use crate::media::Codec;
use crate::sip::endpoint::{self, EndpointHandle};
use crate::sip::message;
use crate::sip::transaction::{TimerConfig, TransactionEvent};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What to do on the call.
#[derive(Clone, Debug)]
pub struct DialOptions {
    /// e.g. `sip:8890@127.0.0.1:5060`.
    pub target: String,
    /// Caller number put in From.
    pub from_user: String,
    /// Local address for SIP and RTP.
    pub bind_ip: IpAddr,
    /// RTP port range for the caller's media.
    pub rtp_ports: (u16, u16),
    /// Codecs to offer, in order.
    pub codecs: Vec<Codec>,
    /// WAV to speak after the digits.
    pub play: Option<PathBuf>,
    /// Digits to press after `dtmf_delay`.
    pub dtmf: String,
    pub dtmf_delay: Duration,
    /// Wait after the digits before speaking (lets the "speak after the tone" prompt finish).
    pub speak_delay: Duration,
    /// Digit to press after speaking (e.g. `#`), if any.
    pub end_digit: Option<char>,
    /// Record what the caller hears to this WAV.
    pub record: Option<PathBuf>,
    /// Hang up ourselves after this long.
    pub max_duration: Duration,
    /// Print steps to stdout.
    pub verbose: bool,
    /// Digest credentials (user, password) to answer a 401/407 with, for a trunk that
    /// requires authentication.
    pub auth: Option<(String, String)>,
}

impl Default for DialOptions {
    fn default() -> Self {
        DialOptions {
            target: "sip:8890@127.0.0.1:5060".into(),
            from_user: "13800000000".into(),
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            rtp_ports: (40000, 40999),
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            play: None,
            dtmf: String::new(),
            dtmf_delay: Duration::from_secs(1),
            speak_delay: Duration::from_secs(5),
            end_digit: None,
            record: None,
            max_duration: Duration::from_secs(60),
            verbose: true,
            auth: None,
        }
    }
}

/// What happened.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DialReport {
    pub call_id: String,
    /// Final status of our INVITE (200 when answered).
    pub status: u16,
    /// INVITE sent → final response.
    pub setup_ms: u64,
    pub codec: Option<String>,
    /// `gateway` when the gateway sent BYE, `caller` when we did.
    pub hung_up_by: Option<&'static str>,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub recorded: Option<PathBuf>,
    /// Digits the gateway sent us as RFC 4733 events, in order (e.g. an operator's keys
    /// relayed by a transfer's bridge).
    pub digits_heard: String,
    /// INVITE sent → final response, at full resolution.
    #[serde(skip)]
    pub setup: Duration,
    /// Inter-arrival statistics of the gateway's audio (load testing only).
    #[serde(skip)]
    pub arrivals: Option<ArrivalStats>,
}

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("bad target URI {0}")]
    Target(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot read audio to play: {0}")]
    Audio(String),
    #[error("no answer: {0}")]
    NoAnswer(String),
}

struct Printer {
    start: Instant,
    verbose: bool,
}

impl Printer {
    fn step(&self, what: impl std::fmt::Display) {
        if self.verbose {
            let t = self.start.elapsed().as_secs_f64();
            println!("[{t:7.3}s] {what}");
        }
    }
}

/// A SIP endpoint and an RTP port pool shared by any number of concurrent calls (the
/// load generator places hundreds through one), with a router that hands each endpoint
/// event to the call it belongs to (by Call-ID; the rare timeouts go to every call).
pub struct Caller {
    ep: EndpointHandle,
    local: SocketAddr,
    pool: PortPool,
    routes: Routes,
    router: tokio::task::JoinHandle<()>,
}

type Routes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<TransactionEvent>>>>;

impl Caller {
    /// Bind one SIP socket on `bind_ip` (any port) and use `rtp_ports` for the calls' media.
    pub async fn new(bind_ip: IpAddr, rtp_ports: (u16, u16)) -> Result<Caller, DialError> {
        let (ep, events) =
            endpoint::start(SocketAddr::new(bind_ip, 0), TimerConfig::default()).await?;
        let routes: Routes = Arc::default();
        let router = tokio::spawn(route_events(events, routes.clone(), ep.clone()));
        Ok(Caller {
            local: ep.local_addr(),
            ep,
            pool: PortPool::new(bind_ip, rtp_ports.0, rtp_ports.1),
            routes,
            router,
        })
    }

    /// The SIP address calls are placed from.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Place one call and run it to the end. `caller_audio` is what to speak (loaded once
    /// and shared across calls; `opts.play` is not read here). With `track_arrivals` the
    /// report carries the inter-arrival statistics of the gateway's audio.
    pub async fn call(
        &self,
        opts: &DialOptions,
        caller_audio: Option<SharedPrompt>,
        track_arrivals: bool,
    ) -> Result<DialReport, DialError> {
        let call_id = format!("{}@{}", uuid::Uuid::new_v4().simple(), opts.bind_ip);
        let (tx, events) = mpsc::unbounded_channel();
        self.routes.lock().unwrap().insert(call_id.clone(), tx);
        let result = self
            .run_call(opts, caller_audio, track_arrivals, &call_id, events)
            .await;
        self.routes.lock().unwrap().remove(&call_id);
        result
    }

    /// Stop the endpoint.
    pub fn shutdown(self) {
        self.ep.shutdown();
        self.router.abort();
    }
}

/// Place one call on its own endpoint and run it to the end (`hotline-gateway dial`).
pub async fn dial(opts: DialOptions) -> Result<DialReport, DialError> {
    let caller_audio = match &opts.play {
        Some(path) => Some(Arc::new(
            Prompt::from_wav_file(path).map_err(|e| DialError::Audio(e.to_string()))?,
        )),
        None => None,
    };
    let caller = Caller::new(opts.bind_ip, opts.rtp_ports).await?;
    let result = caller.call(&opts, caller_audio, false).await;
    caller.shutdown();
    result
}

/// Hand each endpoint event to its call. Requests for calls that are gone (a late BYE)
/// are answered 481 so the far end stops retransmitting.
async fn route_events(
    mut events: mpsc::Receiver<TransactionEvent>,
    routes: Routes,
    ep: EndpointHandle,
) {
    while let Some(ev) = events.recv().await {
        let call_id = match &ev {
            TransactionEvent::Request { request, .. } => message::call_id(request),
            TransactionEvent::Response { response, .. } => message::call_id(response),
            TransactionEvent::Timeout { key } | TransactionEvent::AckTimeout { key } => {
                let routes = routes.lock().unwrap();
                for tx in routes.values() {
                    let _ = tx.send(TransactionEvent::Timeout { key: key.clone() });
                }
                continue;
            }
            TransactionEvent::Cancelled { .. } => continue,
        };
        let tx = call_id.and_then(|id| routes.lock().unwrap().get(&id).cloned());
        match (tx, ev) {
            (Some(tx), ev) => {
                let _ = tx.send(ev);
            }
            (None, TransactionEvent::Request { key, request, .. })
                if request.method != rsip::Method::Ack =>
            {
                ep.respond(
                    key,
                    message::response(&request, 481, "Call/Transaction Does Not Exist", None),
                );
            }
            (None, _) => {}
        }
    }
}
