//! Sans-IO SIP transaction layer (RFC 3261 §17, §13.3.1.4, §9.2, §8.2.2.2; RFC 6026).
//!
//! The layer does no I/O and reads no clock: every method that depends on time takes `now`,
//! and what it wants done comes out of `poll_*` methods (quinn-proto / str0m style).
//!
//! # Run loop
//!
//! 1. Feed one input: [`TransactionLayer::handle_request`] / [`TransactionLayer::handle_response`]
//!    (a parsed datagram, Via already stamped with `received`/`rport`),
//!    [`TransactionLayer::handle_timeout`], or a TU command ([`TransactionLayer::respond`],
//!    [`TransactionLayer::send_request`]).
//! 2. Drain [`TransactionLayer::poll_transmit`] (send each datagram) and
//!    [`TransactionLayer::poll_event`] (hand each to the TU) until both return `None`.
//! 3. Sleep until [`TransactionLayer::poll_timeout`] (or the next datagram/command), then
//!    call `handle_timeout(now)`. Early or spurious calls are harmless. `now` must not go
//!    backwards.
//!
//! # Layout
//!
//! One state machine per RFC 3261 machine, each with its own timer table
//! (`timer::TimerTable`): `server_invite`, `server_non_invite`, `client_invite`,
//! `client_non_invite`. `key` reads the header fields transactions match on; `wire`
//! builds the few messages the layer writes itself; `schedule` keeps every transaction's
//! next deadline in a min-heap. Terminated transactions are removed at once, so memory is
//! bounded by the traffic of the last 64·T1.
//!
//! OWNER: sip-transaction helper. The public surface below is the contract the endpoint
//! driver and the call layer code against.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod client_invite;
mod client_non_invite;
mod key;
mod schedule;
mod server;
mod server_invite;
mod server_non_invite;
mod timer;
mod wire;

#[cfg(test)]
mod tests;

use client_invite::ClientInvite;
use client_non_invite::ClientNonInvite;
use key::{MessageIds, RequestId};
use schedule::{Schedule, Side, Slot};
use server::{ServerEntry, ServerMachine};

/// RFC 3261 timer base values.
#[derive(Clone, Copy, Debug)]
pub struct TimerConfig {
    /// RTT estimate: first retransmission interval (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmission interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Maximum time a message stays in the network (5 s): how long retransmissions are
    /// absorbed after a transaction is done (Timers I and K).
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Identifies a transaction (RFC 3261 §17.1.3 / §17.2.3): top-Via branch + sent-by + method,
/// with ACK and CANCEL mapped as the RFC says. Opaque to the user.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TransactionKey {
    pub branch: String,
    /// Canonical `host:port` of the top Via (port 5060 filled in when absent).
    pub sent_by: String,
    /// Method token as on the wire (ACK of a non-2xx maps to INVITE). `rsip::Method` is not `Hash`.
    pub method: String,
}

/// How a message travels. On a reliable transport (TCP) the layer never retransmits
/// (Timers A, E, G and the 2xx resend are not used) and keeps no absorbing state
/// (Timers D, I, J, K are zero), RFC 3261 §17.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
}

impl Transport {
    pub fn is_reliable(self) -> bool {
        self == Transport::Tcp
    }
}

/// Where a transaction's messages go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Peer {
    pub addr: SocketAddr,
    pub transport: Transport,
}

impl Peer {
    fn reliable(&self) -> bool {
        self.transport.is_reliable()
    }
}

/// Bytes to put on the wire. For TCP the endpoint sends them on the connection to
/// `destination` (the one the request came on, §18.2.2), connecting if there is none.
#[derive(Debug)]
#[must_use]
pub struct Transmit {
    pub destination: SocketAddr,
    pub transport: Transport,
    pub bytes: Vec<u8>,
}

/// What the transaction layer tells its user.
#[derive(Debug)]
pub enum TransactionEvent {
    /// A new request (not a retransmission) for the TU. For INVITE the layer has already
    /// sent 100 Trying. ACKs for 2xx come here too (they are not part of any transaction),
    /// once each: the layer stops retransmitting the 2xx when the first one arrives.
    Request {
        key: TransactionKey,
        request: rsip::Request,
        source: SocketAddr,
        /// The transport it arrived on (the socket, not its Via).
        transport: Transport,
    },
    /// A CANCEL matched a pending INVITE server transaction: the layer answered the CANCEL
    /// with 200 and the INVITE with 487. The TU drops the call.
    Cancelled { invite: TransactionKey },
    /// A response on one of our client transactions (retransmissions absorbed), or a 2xx to
    /// an INVITE whose transaction is gone (the TU must ACK it again).
    Response {
        key: TransactionKey,
        response: rsip::Response,
    },
    /// Timer B/F fired: no final response to our request.
    Timeout { key: TransactionKey },
    /// We sent a 2xx to an INVITE and no ACK came within 64·T1 (§13.3.1.4): the TU should
    /// send BYE.
    AckTimeout { key: TransactionKey },
}

/// Why the TU's command was refused. All are permanent for that command: retrying the
/// same call gives the same answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TransactionError {
    /// No live server transaction with that key (it terminated, or was never ours).
    #[error("no such transaction")]
    NoSuchTransaction,
    /// The transaction already sent a final response (a CANCEL may have answered it 487).
    #[error("transaction already has a final response")]
    AlreadyFinal,
    /// `send_request` without a readable top Via carrying a branch.
    #[error("request has no usable top Via")]
    NoVia,
    /// `send_request` without Call-ID, CSeq, From or To: its responses could not be matched.
    #[error("request lacks {0}")]
    MissingHeader(&'static str),
    /// `respond` with a status code outside 100–699.
    #[error("status code is not a valid SIP response code")]
    InvalidResponse,
}

/// Datagrams and events waiting to be polled; the machines write into it.
#[derive(Debug, Default)]
struct Outputs {
    transmits: VecDeque<Transmit>,
    events: VecDeque<TransactionEvent>,
}

impl Outputs {
    fn transmit(&mut self, destination: Peer, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit {
            destination: destination.addr,
            transport: destination.transport,
            bytes,
        });
    }

    fn event(&mut self, event: TransactionEvent) {
        self.events.push_back(event);
    }
}

enum ClientMachine {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

/// A client transaction and its place in the schedule.
struct ClientEntry {
    machine: ClientMachine,
    slot: Slot,
}

impl ClientMachine {
    fn next_timeout(&self) -> Option<Instant> {
        match self {
            ClientMachine::Invite(tx) => tx.next_timeout(),
            ClientMachine::NonInvite(tx) => tx.next_timeout(),
        }
    }

    fn is_terminated(&self) -> bool {
        match self {
            ClientMachine::Invite(tx) => tx.is_terminated(),
            ClientMachine::NonInvite(tx) => tx.is_terminated(),
        }
    }
}

/// All transactions of one SIP endpoint (UDP).
///
/// Server and client transactions live in separate tables, so a request and a response
/// with equal keys can never be confused. Lookups are hash-map hits; `poll_timeout` is a
/// heap peek and `handle_timeout` pops only the transactions that are due (`schedule`), so
/// tens of thousands of live transactions (RFC 6026 keeps each answered INVITE 32 s) cost
/// the driver nothing per loop turn.
///
/// Every transaction ends on its own timers except where RFC 3261 leaves the end to the
/// TU: a server transaction the TU never answers, and a client INVITE that got a
/// provisional but no final (§17.1.1.2 stops Timer B there). The TU must answer every
/// `Request` event and bound its own ringing calls (CANCEL), or those entries stay.
pub struct TransactionLayer {
    config: TimerConfig,
    servers: HashMap<TransactionKey, ServerEntry>,
    clients: HashMap<TransactionKey, ClientEntry>,
    /// §8.2.2.2 request identity → the server transaction that owns it.
    by_request_id: HashMap<RequestId, TransactionKey>,
    /// Every live transaction's next deadline; its top is never stale between calls.
    schedule: Schedule,
    out: Outputs,
}

impl TransactionLayer {
    pub fn new(timers: TimerConfig) -> Self {
        TransactionLayer {
            config: timers,
            servers: HashMap::new(),
            clients: HashMap::new(),
            by_request_id: HashMap::new(),
            schedule: Schedule::default(),
            out: Outputs::default(),
        }
    }

    /// A request arrived over UDP (already parsed, Via already stamped). See
    /// [`TransactionLayer::handle_request_on`].
    pub fn handle_request(&mut self, now: Instant, request: rsip::Request, source: SocketAddr) {
        self.handle_request_on(now, request, source, Transport::Udp)
    }

    /// A request arrived from `source` on `transport`: the socket it came on, never what
    /// its Via claims (a UDP datagram saying `SIP/2.0/TCP` is answered over UDP, and no
    /// connection is ever opened because a Via says so).
    /// Requests without a readable top Via, Call-ID, CSeq, From or To are dropped.
    pub fn handle_request_on(
        &mut self,
        now: Instant,
        request: rsip::Request,
        source: SocketAddr,
        transport: Transport,
    ) {
        let Some(ids) = MessageIds::read(&request.headers) else {
            tracing::debug!(%source, "request without Via/Call-ID/CSeq/From/To dropped");
            return;
        };
        // Over TCP the response goes back on the connection the request came on, i.e. to
        // its source; over UDP to the source's address (§18.2.2 / RFC 3581, the Via only
        // chooses the port).
        let destination = Peer {
            addr: if transport.is_reliable() {
                source
            } else {
                ids.via.response_destination(source)
            },
            transport,
        };
        match request.method {
            rsip::Method::Ack => self.handle_ack(now, request, &ids, source, transport),
            rsip::Method::Cancel => self.handle_cancel(now, &request, &ids, destination),
            _ => self.handle_new_or_retransmitted(now, request, &ids, destination, source),
        }
        self.prune_schedule();
    }

    /// A response arrived from the network. Matched to a client transaction by top-Via
    /// branch + sent-by + CSeq method (§17.1.3). Unmatched 2xx to INVITE go up (the TU must
    /// ACK them again); other strays are dropped.
    pub fn handle_response(&mut self, now: Instant, response: rsip::Response, source: SocketAddr) {
        let Some(ids) = MessageIds::read(&response.headers) else {
            tracing::debug!(%source, "response without Via/Call-ID/CSeq/From/To dropped");
            return;
        };
        let key = ids.key(&ids.cseq_method);
        match self.clients.get_mut(&key).map(|c| &mut c.machine) {
            Some(ClientMachine::Invite(tx)) => {
                tx.on_response(now, &key, response, &ids, &mut self.out);
                self.reschedule_client(&key);
            }
            Some(ClientMachine::NonInvite(tx)) => {
                tx.on_response(now, &key, response, &ids, &mut self.out);
                self.reschedule_client(&key);
            }
            None => {
                let code = response.status_code.code();
                if (200..300).contains(&code) && ids.cseq_method == "INVITE" {
                    self.out.event(TransactionEvent::Response { key, response });
                } else {
                    tracing::debug!(%source, code, "stray response dropped");
                }
            }
        }
        self.prune_schedule();
    }

    /// Fire expired timers. Spurious early calls are harmless.
    ///
    /// Due transactions come off the schedule earliest first (equal deadlines in the order
    /// they were set), so events come out in deadline order. Each machine fires every timer
    /// it has due at `now` in one call, so a transaction fired here is not due again before
    /// a later `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(due) = self.schedule.peek().filter(|e| e.at <= now) {
            let side = due.side;
            let Some(entry) = self.schedule.pop() else {
                break;
            };
            let key = entry.key;
            match side {
                Side::Server => {
                    if let Some(server) = self.servers.get_mut(&key) {
                        match &mut server.machine {
                            ServerMachine::Invite(tx) => tx.on_timeout(now, &key, &mut self.out),
                            ServerMachine::NonInvite(tx) => tx.on_timeout(now),
                        }
                        if server.is_terminated() {
                            self.remove_server(&key);
                        } else {
                            self.reschedule_server(&key);
                        }
                    }
                }
                Side::Client => {
                    if let Some(client) = self.clients.get_mut(&key) {
                        match &mut client.machine {
                            ClientMachine::Invite(tx) => tx.on_timeout(now, &key, &mut self.out),
                            ClientMachine::NonInvite(tx) => tx.on_timeout(now, &key, &mut self.out),
                        }
                        if client.machine.is_terminated() {
                            self.clients.remove(&key);
                        } else {
                            self.reschedule_client(&key);
                        }
                    }
                }
            }
            self.prune_schedule();
        }
        self.prune_schedule();
    }

    /// The TU answers a server transaction. INVITE: 1xx while pending, one final (a 2xx
    /// is then retransmitted by the layer until its ACK), further 2xx allowed. Non-INVITE:
    /// 1xx while pending, then one final.
    pub fn respond(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        response: rsip::Response,
    ) -> Result<(), TransactionError> {
        let entry = self
            .servers
            .get_mut(key)
            .ok_or(TransactionError::NoSuchTransaction)?;
        let result = match &mut entry.machine {
            ServerMachine::Invite(tx) => tx.respond(now, response, &mut self.out),
            ServerMachine::NonInvite(tx) => tx.respond(now, response, &mut self.out),
        };
        self.reschedule_server(key);
        self.prune_schedule();
        result
    }

    /// The TU sends a request (BYE, or INVITE from the test caller) to `destination`.
    /// The request must carry a top Via with a fresh branch. ACK is sent statelessly.
    /// A request reusing the key of a live client transaction replaces it.
    pub fn send_request(
        &mut self,
        now: Instant,
        request: rsip::Request,
        destination: SocketAddr,
    ) -> Result<TransactionKey, TransactionError> {
        let via = key::top_via(&request.headers).ok_or(TransactionError::NoVia)?;
        if via.branch.is_none() {
            return Err(TransactionError::NoVia);
        }
        // Our own Via, written by the TU for the transport it chose: the one place a Via's
        // transport is believed.
        let transport = if via.transport == "TCP" {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let ids = MessageIds::read(&request.headers).ok_or_else(|| missing_header(&request))?;
        let method = request.method.to_string();
        let key = ids.key(&method);
        let destination = Peer {
            addr: destination,
            transport,
        };
        let machine = match request.method {
            rsip::Method::Ack => {
                self.out.transmit(destination, wire::bytes_of(&request));
                return Ok(key);
            }
            rsip::Method::Invite => ClientMachine::Invite(ClientInvite::new(
                now,
                request,
                ids.cseq,
                destination,
                self.config,
                &mut self.out,
            )),
            _ => ClientMachine::NonInvite(ClientNonInvite::new(
                now,
                wire::bytes_of(&request),
                destination,
                self.config,
                &mut self.out,
            )),
        };
        // A replaced transaction's heap entries go stale with it (the new slot's generation).
        self.clients.insert(
            key.clone(),
            ClientEntry {
                machine,
                slot: Slot::default(),
            },
        );
        self.reschedule_client(&key);
        self.prune_schedule();
        Ok(key)
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.out.events.pop_front()
    }

    /// Earliest pending timer: a peek at the schedule, whose top every `&mut` method
    /// leaves current.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.schedule.peek().map(|e| e.at)
    }

    /// Live transactions (for metrics and tests).
    pub fn len(&self) -> usize {
        self.servers.len() + self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The client transaction key `request` gets when sent (to match its answers before
/// they come). `None` when it could not be sent.
pub fn client_key(request: &rsip::Request) -> Option<TransactionKey> {
    let ids = MessageIds::read(&request.headers)?;
    Some(ids.key(&request.method.to_string()))
}

/// Which header made [`MessageIds::read`] fail, for the TU's error message.
fn missing_header(request: &rsip::Request) -> TransactionError {
    use rsip::Header;
    let has = |f: fn(&Header) -> bool| request.headers.iter().any(f);
    if !has(|h| matches!(h, Header::CallId(_))) {
        TransactionError::MissingHeader("Call-ID")
    } else if !has(|h| matches!(h, Header::From(_))) {
        TransactionError::MissingHeader("From")
    } else if !has(|h| matches!(h, Header::To(_))) {
        TransactionError::MissingHeader("To")
    } else {
        TransactionError::MissingHeader("CSeq")
    }
}
