//! The transaction user (TU): decides what to answer to every request the SIP endpoint
//! hands up, owns the dialogs, starts a media session and an IVR task per answered call,
//! and sends our BYE when the IVR ends the call.
//!
//! One task owns all of this state, so no locks: calls report back over a channel.

use super::ivr::{self, CallInfo, CallSignal, IvrSettings};
use super::record::CallRecord;
use super::sip_msg::{
    advertised_ip, caller_identity, info_digit, push, to_tag, with_dialog_headers,
};
use super::trunks::Trunks;
use crate::config::Config;
use crate::media::sdp::{self, SdpError};
use crate::media::session::{MediaControl, MediaSession, PortPool, SessionConfig};
use crate::media::Codec;
use crate::sip::dialog::Dialog;
use crate::sip::endpoint::EndpointHandle;
use crate::sip::message;
use crate::sip::transaction::{TransactionEvent, TransactionKey, Transport};
use admission::{Admitted, Refused};
use rsip::headers::UntypedHeader;
use rsip::prelude::HeadersExt;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

mod admission;
mod bye;
mod drain;
mod in_dialog;
mod respond;

/// Methods we serve; sent in Allow (RFC 3261 §20.5) so peers know what to try.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO";
/// Bodies we understand.
pub const ACCEPT: &str = "application/sdp, application/dtmf-relay, application/dtmf";
/// Extensions we support: none (no 100rel, no timers). Replaces (RFC 3891) is not
/// implemented, so it is not advertised: a peer would send us INVITEs with Replaces that
/// we cannot honour (issue 11).
pub const SUPPORTED: &str = "";

/// Receives each finished call's record and where it was written.
pub type RecordSink = Box<dyn Fn(&CallRecord, &std::path::Path) + Send + Sync>;

/// Everything a call needs from the daemon, shared read-only.
pub struct Services {
    pub config: Arc<Config>,
    pub ivr: Arc<IvrSettings>,
    pub ports: Arc<PortPool>,
    /// Where call records are written (the after-call pipeline picks them up from there).
    pub records_dir: PathBuf,
    /// Called with each finished call's record after it is on disk (ticket hand-off).
    pub on_record: Option<RecordSink>,
    /// Daemon-wide media counters every session adds to (metrics).
    pub media_counters: Arc<crate::media::stats::MediaCounters>,
    /// Set while the data directory is below `[storage] min_free_mb`: new calls get 503.
    pub disk_low: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CallKey {
    call_id: String,
    local_tag: String,
}

struct ActiveCall {
    dialog: Dialog,
    invite: TransactionKey,
    signals: mpsc::UnboundedSender<CallSignal>,
    /// Our SDP over the call's life (`o=` version, an offer awaiting its answer in an ACK).
    sdp: sdp::LocalSdp,
    /// The outcome of re-offers that only media cares about (hold, resume).
    media: MediaControl,
    /// The trunk's name (not its id, which a reload may change).
    trunk: Option<String>,
    /// Where the INVITE came from and over what: our BYE to a TCP caller goes back on its
    /// connection when the caller's Contact is that same host.
    source: SocketAddr,
    transport: rsip::Transport,
    /// The dialog is over (BYE either way, CANCEL, no ACK, a failed call task): its call
    /// slots are free again. The entry stays until the record is written, so that a drain
    /// still waits for it.
    ended: bool,
}

/// A call task reporting back to the manager task.
enum Finished {
    /// The IVR is done: free the call's slots, and send our BYE if it asks.
    DialogOver { key: CallKey, send_bye: bool },
    /// The call record is on disk (or could not be written): forget the call.
    RecordWritten { key: CallKey },
}

pub use super::stats::CallCounters;

/// What the gateway wants of the manager, sent over a `watch` channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Answer calls.
    Serving,
    /// Refuse new calls (503 + Retry-After, OPTIONS too), let calls in progress end on
    /// their own until `deadline`, then hang up on the rest. A later, earlier deadline
    /// (a second signal) shortens the wait.
    Draining { deadline: tokio::time::Instant },
}

pub struct CallManager {
    endpoint: EndpointHandle,
    services: Arc<Services>,
    calls: HashMap<CallKey, ActiveCall>,
    by_invite: HashMap<TransactionKey, CallKey>,
    finished_tx: mpsc::UnboundedSender<Finished>,
    finished_rx: mpsc::UnboundedReceiver<Finished>,
    counters: Arc<CallCounters>,
    draining: bool,
    /// Who may call, and how many calls each trunk holds.
    trunks: Trunks,
    /// Where a reload puts new services; looked at before each event, so new calls get the
    /// new configuration and calls in progress keep the `Arc<Services>` they started with.
    live: Option<Arc<arc_swap::ArcSwap<Services>>>,
    /// The transport the request being handled came on (its socket, never its Via).
    request_transport: rsip::Transport,
    /// Our BYEs still waiting for a final answer, by client transaction: the Call-ID, to
    /// log a 401/407 or a timeout against the call.
    byes: HashMap<TransactionKey, String>,
}

impl CallManager {
    pub fn new(endpoint: EndpointHandle, services: Arc<Services>) -> Self {
        let (finished_tx, finished_rx) = mpsc::unbounded_channel();
        CallManager {
            endpoint,
            calls: HashMap::new(),
            by_invite: HashMap::new(),
            finished_tx,
            finished_rx,
            counters: Arc::new(CallCounters::default()),
            draining: false,
            trunks: Trunks::new(&services.config),
            services,
            live: None,
            request_transport: rsip::Transport::Udp,
            byes: HashMap::new(),
        }
    }

    /// Take services from `live` from now on (configuration reload).
    pub fn with_live_services(mut self, live: Arc<arc_swap::ArcSwap<Services>>) -> Self {
        self.services = live.load_full();
        self.live = Some(live);
        self
    }

    pub fn counters(&self) -> Arc<CallCounters> {
        self.counters.clone()
    }

    async fn handle_event(&mut self, ev: TransactionEvent) {
        if let Some(live) = &self.live {
            if !Arc::ptr_eq(&live.load(), &self.services) {
                self.services = live.load_full();
                // Trunk policy follows the reload; calls in progress keep their slots.
                self.trunks.reload(&self.services.config);
            }
        }
        match ev {
            TransactionEvent::Request {
                key,
                request,
                source,
                transport,
            } => {
                self.request_transport = match transport {
                    Transport::Tcp => rsip::Transport::Tcp,
                    Transport::Udp => rsip::Transport::Udp,
                };
                self.handle_request(key, request, source).await
            }
            TransactionEvent::Cancelled { invite } => {
                if let Some(ck) = self.by_invite.get(&invite).cloned() {
                    if let Some(call) = self.calls.get(&ck) {
                        let _ = call.signals.send(CallSignal::CallerHangup);
                    }
                    self.dialog_ended(&ck);
                }
            }
            TransactionEvent::AckTimeout { key } => {
                if let Some(ck) = self.by_invite.get(&key) {
                    if let Some(call) = self.calls.get(ck) {
                        tracing::warn!(call_id = %ck.call_id, "no ACK for our 200 OK; ending the call");
                        let _ = call.signals.send(CallSignal::AckTimeout);
                    }
                }
            }
            TransactionEvent::Response { key, response } => self.bye_answered(&key, &response),
            TransactionEvent::Timeout { key } => self.bye_timed_out(&key),
        }
    }

    async fn handle_request(
        &mut self,
        key: TransactionKey,
        req: rsip::Request,
        source: SocketAddr,
    ) {
        let in_dialog = to_tag(&req).is_some();
        if !in_dialog
            && !matches!(req.method, rsip::Method::Ack | rsip::Method::Cancel)
            && !self.trunks.source_allowed(source.ip())
        {
            // Only reached with `unknown_source = "reject"`: with "drop" the SIP guard
            // never lets such a source through.
            tracing::info!(%source, method = %req.method, "request from an address no trunk allows: 403");
            self.counters
                .rejected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let resp = self.build(&req, 403, "Forbidden", Some(&message::new_tag()));
            self.endpoint.respond(key, resp);
            return;
        }
        let unsupported = super::checks::unsupported_requirements(&req, SUPPORTED);
        if !unsupported.is_empty() {
            // RFC 3261 §8.2.2.3: refuse what we cannot honour, and say what it was.
            let mut resp = self.build(&req, 420, "Bad Extension", Some(&message::new_tag()));
            push(
                &mut resp,
                rsip::Header::Other("Unsupported".into(), unsupported.join(", ")),
            );
            self.endpoint.respond(key, resp);
            return;
        }
        match req.method {
            rsip::Method::Invite if !in_dialog => {
                // Everything logged about this call, here and in its IVR and media tasks,
                // carries the Call-ID.
                let span = tracing::info_span!(
                    "call",
                    call_id = %req.call_id_header().map(|h| h.value().to_string()).unwrap_or_default()
                );
                tracing::Instrument::instrument(self.new_call(key, req, source), span).await
            }
            rsip::Method::Invite | rsip::Method::Update => self.renegotiate(key, req),
            rsip::Method::Ack => self.ack(req),
            rsip::Method::Bye => {
                if let Some(ck) = self.dialog_for(&key, &req) {
                    self.reply(&key, &req, 200, "OK", None);
                    if let Some(call) = self.calls.get(&ck) {
                        let _ = call.signals.send(CallSignal::CallerHangup);
                    }
                    // The caller may call again at once: its slot must not wait for the
                    // recording to close and the record to be written.
                    self.dialog_ended(&ck);
                }
            }
            rsip::Method::Info => {
                if let Some(ck) = self.dialog_for(&key, &req) {
                    self.reply(&key, &req, 200, "OK", None);
                    if let (Some(d), Some(call)) = (info_digit(&req), self.calls.get(&ck)) {
                        let _ = call.signals.send(CallSignal::Digit(d));
                    }
                }
            }
            rsip::Method::Options => {
                if self.draining || self.at_limit() {
                    let mut resp = self.build(&req, 503, "Service Unavailable", None);
                    self.retry_after(&mut resp);
                    self.endpoint.respond(key, resp);
                } else {
                    let mut resp = self.build(&req, 200, "OK", None);
                    push(&mut resp, rsip::headers::Accept::new(ACCEPT).into());
                    if !SUPPORTED.is_empty() {
                        push(&mut resp, rsip::headers::Supported::new(SUPPORTED).into());
                    }
                    self.endpoint.respond(key, resp);
                }
            }
            rsip::Method::Cancel => {} // The transaction layer answers CANCEL.
            _ => {
                let resp = self.build(&req, 405, "Method Not Allowed", None);
                self.endpoint.respond(key, resp);
            }
        }
    }

    fn at_limit(&self) -> bool {
        let in_progress = self.calls.values().filter(|c| !c.ended).count();
        in_progress >= self.services.config.limits.max_calls
    }

    async fn new_call(&mut self, key: TransactionKey, req: rsip::Request, source: SocketAddr) {
        let cfg = self.services.config.clone();
        // `detail` goes into a Warning header (RFC 3261 §20.43) so the caller's admin can see
        // why without our logs.
        let reject = |this: &mut Self, code: u16, reason: &str, detail: &str| {
            this.counters.rejected_with(code);
            let mut resp = this.build(&req, code, reason, Some(&message::new_tag()));
            if code == 503 {
                this.retry_after(&mut resp);
            }
            if code == 415 {
                // §21.4.13: say what we do read.
                push(
                    &mut resp,
                    rsip::headers::Accept::new("application/sdp").into(),
                );
            }
            if !detail.is_empty() {
                let text = detail.replace(['"', '\\', '\r', '\n'], " ");
                push(
                    &mut resp,
                    rsip::Header::Other(
                        "Warning".into(),
                        format!("399 hotline-gateway \"{text}\""),
                    ),
                );
            }
            this.endpoint.respond(key.clone(), resp);
        };
        let Admitted {
            trunk,
            number,
            dialled,
            offer,
        } = match self.admit(&req, source) {
            Ok(a) => a,
            Err(Refused::Challenge(challenges)) => {
                tracing::debug!(%source, "INVITE challenged (digest)");
                let mut resp = self.build(&req, 401, "Unauthorized", Some(&message::new_tag()));
                for c in challenges {
                    push(&mut resp, rsip::headers::WwwAuthenticate::new(c).into());
                }
                self.endpoint.respond(key, resp);
                return;
            }
            Err(Refused::Reject { code, detail }) => {
                return reject(self, code, message::reason_phrase(code), detail);
            }
        };
        let socket = match self.services.ports.bind().await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "no RTP port available");
                return reject(self, 503, "Service Unavailable", "no RTP port free");
            }
        };
        let media = MediaSession::spawn(
            socket,
            SessionConfig {
                inactivity_timeout: Duration::from_secs(cfg.media.rtp_timeout_secs),
                counters: self.services.media_counters.clone(),
                strict_rtp_relearn: (cfg.media.strict_rtp_relearn_ms > 0)
                    .then(|| Duration::from_millis(cfg.media.strict_rtp_relearn_ms)),
            },
        );
        let local_rtp = SocketAddr::new(self.advertised_ip(), media.local_addr().port());
        let mut local_sdp = sdp::LocalSdp::new(rand::random::<u32>() as u64, local_rtp);
        let accepted: Vec<Codec> = cfg
            .media
            .codecs
            .iter()
            .filter_map(|c| Codec::from_name(c))
            .collect();
        let (negotiated, answer) = match local_sdp.answer(&offer, &accepted) {
            Ok(x) => x,
            Err(e) => {
                tracing::info!(error = %e, "SDP offer rejected");
                let _ = media.close().await;
                let (code, reason) = match e {
                    SdpError::Malformed(_) => (400, "Bad Request"),
                    SdpError::NoAudio | SdpError::NoCommonCodec => (488, "Not Acceptable Here"),
                };
                return reject(self, code, reason, &e.to_string());
            }
        };
        let local_tag = message::new_tag();
        let dialog = match Dialog::uas(&req, &local_tag, self.contact_uri(self.request_transport)) {
            Ok(d) => d,
            Err(e) => {
                let _ = media.close().await;
                tracing::info!(error = %e, "cannot build dialog");
                return reject(self, 400, "Bad Request", &e.to_string());
            }
        };
        media.start(negotiated.remote_rtp, negotiated.codec, negotiated.dtmf_pt);
        media.set_direction(negotiated.remote_direction);

        // Ring (or early media), then answer straight away: callers to a hotline should not wait.
        if cfg.sip.early_media {
            let r = self.build_dialog_response(
                &req,
                183,
                "Session Progress",
                &local_tag,
                Some(&answer),
            );
            self.endpoint.respond(key.clone(), r);
        } else {
            let r = self.build_dialog_response(&req, 180, "Ringing", &local_tag, None);
            self.endpoint.respond(key.clone(), r);
        }
        let ok = self.build_dialog_response(&req, 200, "OK", &local_tag, Some(&answer));
        // A CANCEL that crossed the INVITE has been answered 487 by the transaction layer,
        // which then refuses our 200: nothing of the call may exist (no RTP port, no
        // answered count, no record, no ticket). Only a 200 the layer sent makes a call.
        if let Err(e) = self.endpoint.respond_confirmed(key.clone(), ok).await {
            tracing::info!(error = %e, "INVITE ended before our 200 (CANCEL): no call");
            let _ = media.close().await;
            return;
        }

        let (from_user, from_name) = caller_identity(&req);
        let info = CallInfo {
            call_uid: uuid::Uuid::now_v7().to_string(),
            call_id: dialog.id().call_id.clone(),
            caller: from_user,
            caller_name: from_name,
            called: dialled.clone(),
            channel: number.channel.clone(),
            trunk: trunk.map(|t| self.trunks.name(t).to_string()),
            language: number
                .language
                .clone()
                .unwrap_or_else(|| cfg.prompts.language.clone()),
            started_at: chrono::Utc::now(),
            answered_at: chrono::Utc::now(),
            codec: negotiated.codec.encoding_name().to_string(),
        };
        let ck = CallKey {
            call_id: info.call_id.clone(),
            local_tag: local_tag.clone(),
        };
        let caller = crate::logmask::caller_for_log(&info.caller, cfg.log.mask_caller_numbers);
        tracing::info!(call_id = %info.call_id, %caller, called = %dialled, trunk = info.trunk.as_deref(), codec = %info.codec, "call answered");
        let (sig_tx, sig_rx) = mpsc::unbounded_channel();
        self.calls.insert(
            ck.clone(),
            ActiveCall {
                dialog,
                invite: key.clone(),
                signals: sig_tx,
                sdp: local_sdp,
                media: media.control(),
                trunk: info.trunk.clone(),
                source,
                transport: self.request_transport,
                ended: false,
            },
        );
        self.trunks.call_started(trunk);
        self.by_invite.insert(key, ck.clone());
        self.counters
            .answered
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.counters
            .active
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);

        let services = self.services.clone();
        let finished = self.finished_tx.clone();
        let counters = self.counters.clone();
        let span = tracing::Span::current();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                // The IVR runs in its own task so that a bug in one call (a panic) ends that
                // call only: the manager still hears of it and sends BYE.
                let call_id = info.call_id.clone();
                // A provisional record first: if the daemon dies mid-call, the next start
                // finds it pending and the citizen still gets a ticket ("interrupted").
                let provisional = ivr::provisional_record(&info, &services.ivr.instance);
                let dir = services.records_dir.clone();
                match tokio::task::spawn_blocking(move || provisional.write_to(&dir)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot write provisional call record")
                    }
                    Err(e) => tracing::error!(error = %e, "provisional record task failed"),
                }
                let ivr = tokio::spawn(tracing::Instrument::instrument(
                    ivr::run(info, services.ivr.clone(), media, sig_rx),
                    tracing::Span::current(),
                ));
                let outcome = match ivr.await {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        counters.ended("failed");
                        tracing::error!(%call_id, error = %e, "call task failed; hanging up");
                        let _ = finished.send(Finished::DialogOver {
                            key: ck.clone(),
                            send_bye: true,
                        });
                        let _ = finished.send(Finished::RecordWritten { key: ck });
                        return;
                    }
                };
                // Hang up (and free the slots) first; the record can take its time.
                let _ = finished.send(Finished::DialogOver {
                    key: ck.clone(),
                    send_bye: outcome.send_bye,
                });
                let record = outcome.record;
                counters.ended(&record.hangup.reason);
                let dir = services.records_dir.clone();
                let written = tokio::task::spawn_blocking(move || {
                    let r = record.write_to(&dir);
                    (record, r)
                })
                .await;
                match written {
                    Ok((record, Ok(path))) => {
                        tracing::info!(record = %path.display(), "call record written");
                        if let Some(cb) = &services.on_record {
                            cb(&record, &path);
                        }
                    }
                    Ok((_, Err(e))) => tracing::error!(error = %e, "cannot write call record"),
                    Err(e) => tracing::error!(error = %e, "call record task failed"),
                }
                let _ = finished.send(Finished::RecordWritten { key: ck });
            },
            span,
        ));
    }
}
