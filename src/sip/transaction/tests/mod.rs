//! Transaction-layer tests on a virtual clock (quinn-proto's `Pair` pattern): time is a base
//! `Instant` plus offsets, and the harness jumps straight to the next deadline, so a 32 s
//! retransmission schedule runs in microseconds and is asserted to the millisecond.
//!
//! Two harnesses:
//! - [`Scripted`]: the layer under test and a scripted peer. The test writes the peer's
//!   datagrams as text; everything the layer sends is parsed back and logged with its
//!   virtual send time.
//! - [`Pair`]: two layers joined by a virtual network that can drop datagrams, for
//!   end-to-end client ↔ server behaviour under loss.

mod client;
mod pair;
mod reliable;
mod schedule;
mod server_invite;
mod server_other;
mod via_proxy;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{TimerConfig, TransactionEvent, TransactionKey, TransactionLayer, Transport};

/// Where the layer under test listens.
pub(super) const LOCAL: &str = "10.0.0.1:5060";
/// The scripted peer's address (and, in the default Vias, its sent-by and rport).
pub(super) const PEER: &str = "192.0.2.10:5062";

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

pub(super) fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Offsets in seconds → durations (for schedules written like the RFC's: 0.5, 1.5, ...).
pub(super) fn secs(offsets: &[f64]) -> Vec<Duration> {
    offsets
        .iter()
        .map(|s| Duration::from_secs_f64(*s))
        .collect()
}

/// The one real clock read of the module: an anchor for virtual time. Nothing is ever
/// compared with the real clock again.
pub(in crate::sip::transaction) fn time_base() -> Instant {
    Instant::now()
}

/// A datagram the layer sent, parsed back (so every test also checks it is valid SIP).
#[derive(Debug)]
pub(super) struct Sent {
    pub at: Duration,
    pub destination: SocketAddr,
    pub transport: Transport,
    pub message: rsip::SipMessage,
}

impl Sent {
    pub fn status(&self) -> Option<u16> {
        match &self.message {
            rsip::SipMessage::Response(r) => Some(r.status_code.code()),
            rsip::SipMessage::Request(_) => None,
        }
    }

    pub fn method(&self) -> Option<&rsip::Method> {
        match &self.message {
            rsip::SipMessage::Request(r) => Some(&r.method),
            rsip::SipMessage::Response(_) => None,
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let text = self.message.to_string();
        text.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

pub(super) fn parse(text: &str) -> rsip::SipMessage {
    rsip::SipMessage::try_from(text).unwrap_or_else(|e| panic!("test message: {e}\n{text}"))
}

pub(super) fn request(text: &str) -> rsip::Request {
    match parse(text) {
        rsip::SipMessage::Request(r) => r,
        other => panic!("expected a request, got {other}"),
    }
}

/// The layer under test plus a scripted peer at [`PEER`].
pub(super) struct Scripted {
    pub layer: TransactionLayer,
    base: Instant,
    now: Instant,
    pub sent: Vec<Sent>,
    pub events: Vec<(Duration, TransactionEvent)>,
    /// The socket the peer's requests arrive on (UDP unless a test says TCP).
    pub transport: Transport,
}

impl Scripted {
    pub fn new(config: TimerConfig) -> Scripted {
        let base = time_base();
        Scripted {
            layer: TransactionLayer::new(config),
            base,
            now: base,
            sent: Vec::new(),
            events: Vec::new(),
            transport: Transport::Udp,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// Run every timer due up to `offset`, then set the clock to `offset`.
    pub fn run_until(&mut self, offset: Duration) {
        let target = self.base + offset;
        while let Some(deadline) = self.layer.poll_timeout() {
            if deadline > target {
                break;
            }
            self.now = self.now.max(deadline);
            self.layer.handle_timeout(self.now);
            self.drain();
        }
        self.now = self.now.max(target);
    }

    /// The peer sends `text` (a request or response) at the current virtual time.
    pub fn deliver(&mut self, text: &str) {
        self.deliver_from(text, addr(PEER));
    }

    pub fn deliver_from(&mut self, text: &str, source: SocketAddr) {
        match parse(text) {
            rsip::SipMessage::Request(r) => {
                self.layer
                    .handle_request_on(self.now, r, source, self.transport)
            }
            rsip::SipMessage::Response(r) => self.layer.handle_response(self.now, r, source),
        }
        self.drain();
    }

    pub fn respond(&mut self, key: &TransactionKey, response: rsip::Response) {
        let result = self.layer.respond(self.now, key, response);
        assert_eq!(result, Ok(()), "respond");
        self.drain();
    }

    pub fn send_request(&mut self, text: &str) -> TransactionKey {
        let key = self
            .layer
            .send_request(self.now, request(text), addr(PEER))
            .expect("send_request");
        self.drain();
        key
    }

    pub fn drain(&mut self) {
        // Every step of every scripted test also checks the heap against a scan.
        self.layer.check_schedule();
        let at = self.elapsed();
        while let Some(t) = self.layer.poll_transmit() {
            let text = String::from_utf8(t.bytes).expect("layer sends UTF-8");
            self.sent.push(Sent {
                at,
                destination: t.destination,
                transport: t.transport,
                message: parse(&text),
            });
        }
        while let Some(event) = self.layer.poll_event() {
            self.events.push((at, event));
        }
    }

    /// Send times of responses with `code`.
    pub fn times_of(&self, code: u16) -> Vec<Duration> {
        self.sent
            .iter()
            .filter(|s| s.status() == Some(code))
            .map(|s| s.at)
            .collect()
    }

    /// Send times of requests with `method`.
    pub fn times_of_method(&self, method: rsip::Method) -> Vec<Duration> {
        self.sent
            .iter()
            .filter(|s| s.method() == Some(&method))
            .map(|s| s.at)
            .collect()
    }

    /// The key of the only `Request` event so far with `method`.
    pub fn request_key(&self, method: rsip::Method) -> TransactionKey {
        let keys: Vec<_> = self
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                TransactionEvent::Request { key, request, .. } if request.method == method => {
                    Some(key.clone())
                }
                _ => None,
            })
            .collect();
        assert_eq!(keys.len(), 1, "one {method} event, got {:?}", self.events);
        keys[0].clone()
    }
}

/// A request from the scripted peer. `extra` is inserted before Content-Length; the Via is
/// the stamped form the endpoint driver hands over (rport filled in).
pub(super) fn peer_request(
    method: &str,
    branch: &str,
    call_id: &str,
    cseq: u32,
    to_tag: Option<&str>,
    extra: &str,
) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "{method} sip:8890@10.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5062;branch={branch};rport=5062\r\n\
         Max-Forwards: 70\r\n\
         From: \"Caller\" <sip:citizen@192.0.2.10>;tag=caller1\r\n\
         To: <sip:8890@10.0.0.1>{to_tag}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
}

pub(super) fn invite(branch: &str) -> String {
    peer_request("INVITE", branch, "call-1@192.0.2.10", 1, None, "")
}

/// A TU response to `request` with a To tag.
pub(super) fn tu_response(request: &rsip::Request, code: u16, reason: &str) -> rsip::Response {
    let tag = (code != 100).then_some("uas-tag");
    super::wire::response_to(request, code, reason, tag)
}

/// The request carried by the only `Request` event with `method`.
pub(super) fn request_of(h: &Scripted, method: rsip::Method) -> rsip::Request {
    let found: Vec<_> = h
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            TransactionEvent::Request { request, .. } if request.method == method => {
                Some(request.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 1, "one {method} request event");
    found[0].clone()
}
