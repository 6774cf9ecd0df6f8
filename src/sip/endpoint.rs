//! The socket driver around the sans-IO [`TransactionLayer`]: one tokio task that reads UDP
//! datagrams and framed TCP messages, passes them through the [`Guard`], feeds the layer,
//! fires its timers and writes what it polls.
//!
//! It is the only place in `sip` that does I/O or reads the clock. The transaction user
//! (TU) talks to it through an [`EndpointHandle`] (commands) and a stream of
//! [`TransactionEvent`]s. Commands go over an unbounded channel so the TU never waits on
//! the endpoint while the endpoint waits on the TU's event queue (no deadlock); events go
//! over a bounded one so a stalled TU slows reading instead of growing memory.
//!
//! TCP (RFC 3261 §18): the same port as UDP. Each connection has a small task that frames
//! the byte stream ([`super::framing`]) and writes what the driver gives it; responses go
//! back on the connection their request came on. How a request is answered follows the
//! socket it came on, never its Via: a UDP datagram whose Via says `TCP` is answered over
//! UDP, and the only connections we open are for requests of our own. Accepted connections
//! are bounded and guarded (`tcp`).
//!
//! The driver never waits on the TU: events that do not fit the TU's channel wait in a
//! bounded backlog, and while it is non-empty new INVITEs get 503 (`backlog`). So a stalled
//! call manager cannot freeze SIP timers and retransmissions.

use super::guard::{DropReason, Guard, GuardConfig, GuardCounters, Verdict};
use super::message::{self, ParseError};
use super::stats::{Direction, SipCounters};
use super::transaction::{TimerConfig, TransactionEvent, TransactionLayer, Transmit, Transport};
use rsip::headers::UntypedHeader;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;

mod backlog;
mod handle;
mod socket;
mod tcp;
pub use backlog::OVERLOAD_RETRY_AFTER_SECS;
use backlog::{Backlog, Handed};
pub use handle::{EndpointCommand, EndpointHandle};
use socket::enlarge_buffers;
pub use socket::SOCKET_BUFFER_BYTES;
pub use tcp::TcpLimits;
use tcp::{Connections, Inbound};

/// Largest datagram we accept; bigger ones are truncated by the kernel and then fail to parse.
pub const MAX_DATAGRAM: usize = 65_535;
/// Datagrams handled per loop turn before timers and commands get a look-in.
const RECV_BATCH: usize = 64;
/// TU commands handled per loop turn at most (the rest wait for the next turn, so datagrams
/// and timers are not starved).
const COMMAND_BATCH: usize = 64;

/// Commands the TU may queue before `respond`/`send` drop (counted).
pub const COMMAND_QUEUE: usize = 65_536;
/// Events in the TU's channel, by default.
const EVENT_QUEUE: usize = 4096;
/// Events held beyond the channel while the TU is behind.
const EVENT_BACKLOG: usize = 8192;

/// How to run an endpoint.
#[derive(Clone, Debug, Default)]
pub struct EndpointConfig {
    pub timers: TimerConfig,
    /// Also listen on TCP, same address and port.
    pub tcp: bool,
    /// Largest TCP message; bigger ones close the connection. 0 = [`MAX_DATAGRAM`].
    pub max_message_bytes: usize,
    /// The scanner/flood guard; `None` lets everything through (the test caller).
    pub guard: Option<GuardConfig>,
    /// Bounds on accepted TCP connections.
    pub tcp_limits: TcpLimits,
    /// Events the TU's channel holds; 0 = 4096 (as before the backlog, so the bursts
    /// measured in BENCHMARKS.md still fit). Beyond it the endpoint keeps a bounded backlog
    /// and refuses new INVITEs with 503.
    pub event_queue: usize,
}

/// Counters the endpoint keeps; shared with the admin/metrics side.
#[derive(Debug, Default)]
pub struct EndpointCounters {
    pub datagrams_in: AtomicU64,
    pub datagrams_out: AtomicU64,
    /// Not SIP, or a broken response: dropped silently.
    pub dropped: AtomicU64,
    /// Broken requests answered with 400 (or 501 for unknown methods).
    pub rejected: AtomicU64,
    pub send_errors: AtomicU64,
    /// TCP connections accepted or opened.
    pub tcp_connections: AtomicU64,
    /// TCP connections closed because their stream could not be framed.
    pub tcp_framing_errors: AtomicU64,
    /// TCP connections closed at accept: over a limit, or refused by the guard.
    pub tcp_refused: AtomicU64,
    /// TCP connections closed for sending no complete message in time.
    pub tcp_timeouts: AtomicU64,
    /// Requests answered 503 by the endpoint because the TU was behind.
    pub overload_refused: AtomicU64,
    /// Events dropped because the TU was behind and the backlog full.
    pub events_dropped: AtomicU64,
    /// TU commands dropped because their queue was full.
    pub commands_dropped: AtomicU64,
    /// Requests and responses by method and code, both directions (parsed ones in, sent
    /// ones out).
    pub messages: SipCounters,
}

/// Bind `addr` (UDP only, no guard) and start the endpoint task. Returns the handle and the
/// event stream.
pub async fn start(
    addr: SocketAddr,
    timers: TimerConfig,
) -> std::io::Result<(EndpointHandle, mpsc::Receiver<TransactionEvent>)> {
    start_with(
        addr,
        EndpointConfig {
            timers,
            ..EndpointConfig::default()
        },
    )
    .await
}

/// Bind UDP (and TCP on the same port when `config.tcp`) and start the endpoint task.
pub async fn start_with(
    addr: SocketAddr,
    config: EndpointConfig,
) -> std::io::Result<(EndpointHandle, mpsc::Receiver<TransactionEvent>)> {
    let socket = UdpSocket::bind(addr).await?;
    enlarge_buffers(&socket, SOCKET_BUFFER_BYTES);
    let listener = if config.tcp {
        // Port 0: take the port the UDP socket got, so both share one address.
        let port = socket.local_addr()?.port();
        Some(TcpListener::bind(SocketAddr::new(addr.ip(), port)).await?)
    } else {
        None
    };
    Ok(start_inner(socket, listener, config))
}

/// Start the endpoint task on an already bound socket (UDP only, no guard).
pub fn start_with_socket(
    socket: UdpSocket,
    timers: TimerConfig,
) -> (EndpointHandle, mpsc::Receiver<TransactionEvent>) {
    start_inner(
        socket,
        None,
        EndpointConfig {
            timers,
            ..EndpointConfig::default()
        },
    )
}

fn start_inner(
    socket: UdpSocket,
    listener: Option<TcpListener>,
    config: EndpointConfig,
) -> (EndpointHandle, mpsc::Receiver<TransactionEvent>) {
    let local_addr = socket.local_addr().expect("bound socket has an address");
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (ev_tx, ev_rx) = mpsc::channel(match config.event_queue {
        0 => EVENT_QUEUE,
        n => n,
    });
    let (in_tx, in_rx) = mpsc::channel(1024);
    let counters = Arc::new(EndpointCounters::default());
    let guard = config.guard.map(Guard::new);
    let guard_counters = guard
        .as_ref()
        .map(|g| g.counters().clone())
        .unwrap_or_default();
    let max_message = match config.max_message_bytes {
        0 => MAX_DATAGRAM,
        n => n,
    };
    let tcp = listener.is_some();
    let driver = Driver {
        socket,
        layer: TransactionLayer::new(config.timers),
        events: ev_tx,
        backlog: Backlog::new(EVENT_BACKLOG),
        counters: counters.clone(),
        guard,
        tcp: Connections::new(in_tx, max_message, config.tcp_limits),
    };
    tokio::spawn(driver.run(cmd_rx, in_rx, listener));
    (
        EndpointHandle {
            commands: cmd_tx,
            local_addr,
            counters,
            guard: guard_counters,
            tcp,
        },
        ev_rx,
    )
}

struct Driver {
    socket: UdpSocket,
    layer: TransactionLayer,
    events: mpsc::Sender<TransactionEvent>,
    /// Events the TU's channel had no room for.
    backlog: Backlog,
    counters: Arc<EndpointCounters>,
    guard: Option<Guard>,
    tcp: Connections,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<EndpointCommand>,
        mut inbound: mpsc::Receiver<Inbound>,
        listener: Option<TcpListener>,
    ) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let events = self.events.clone();
        // After a failed accept (out of file descriptors): when to try again, so the loop
        // neither spins on the error nor sleeps through its timers.
        let mut accept_resume: Option<Instant> = None;
        loop {
            if accept_resume.is_some_and(|t| t <= Instant::now()) {
                accept_resume = None;
            }
            let deadline = match (
                self.layer.poll_timeout().map(Instant::from_std),
                accept_resume,
            ) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                biased;
                cmd = commands.recv() => match cmd {
                    None | Some(EndpointCommand::Shutdown) => break,
                    Some(cmd) => {
                        self.handle_command(cmd);
                        if !self.more_commands(&mut commands) {
                            // What the TU asked for before it shut down still goes out: a
                            // caller that answered a BYE and stopped at once lost its 200
                            // (the far end retransmitted BYE into a closed socket).
                            self.flush().await;
                            break;
                        }
                    }
                },
                // Tokio's cooperative budget can delay an elapsed sleep, so the deadline is
                // checked again against the clock before the layer is told.
                _ = sleep_until_opt(deadline) => {
                    self.layer.handle_timeout(now());
                }
                permit = events.reserve(), if !self.backlog.is_empty() => match permit {
                    Ok(permit) => self.backlog.refill(permit, &events),
                    Err(_) => break,
                },
                Some(msg) = inbound.recv() => self.handle_inbound(msg),
                Some(accepted) = accept_opt(listener.as_ref()), if accept_resume.is_none() => match accepted {
                    Ok((stream, peer)) => self.tcp_accepted(stream, peer),
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "sip tcp accept failed");
                        accept_resume = Some(Instant::now() + std::time::Duration::from_millis(100));
                    }
                },
                r = self.socket.recv_from(&mut buf) => {
                    match r {
                        Ok((n, src)) => {
                            self.handle_message(&buf[..n], src, Transport::Udp);
                            // Drain what else is queued without yielding, bounded.
                            for _ in 1..RECV_BATCH {
                                match self.socket.try_recv_from(&mut buf) {
                                    Ok((n, src)) => self.handle_message(&buf[..n], src, Transport::Udp),
                                    Err(_) => break,
                                }
                            }
                        }
                        // ICMP port unreachable surfaces here on some systems; not fatal.
                        Err(e) => tracing::debug!(error = %e, "sip recv error"),
                    }
                }
            }
            if self.layer.poll_timeout().is_some_and(|t| t <= now()) {
                self.layer.handle_timeout(now());
            }
            if !self.flush().await {
                break;
            }
        }
        tracing::debug!("sip endpoint stopped");
    }

    /// Take what else the TU has queued (its 180/200/BYE burst under load) in the same loop
    /// turn, bounded, so one flush sends it all. `false` on shutdown.
    fn more_commands(&mut self, commands: &mut mpsc::Receiver<EndpointCommand>) -> bool {
        for _ in 1..COMMAND_BATCH {
            match commands.try_recv() {
                Ok(EndpointCommand::Shutdown) => return false,
                Ok(cmd) => self.handle_command(cmd),
                // Empty, or closed (the next `recv` sees that and stops).
                Err(_) => break,
            }
        }
        true
    }

    fn handle_command(&mut self, cmd: EndpointCommand) {
        match cmd {
            EndpointCommand::Respond {
                key,
                response,
                reply,
            } => {
                let result = self.layer.respond(now(), &key, response);
                if let Err(e) = &result {
                    tracing::debug!(error = %e, branch = %key.branch, "response not sent");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            EndpointCommand::SendRequest {
                request,
                destination,
                reply,
            } => {
                let key = self.layer.send_request(now(), request, destination);
                if let Err(e) = &key {
                    tracing::warn!(error = %e, "request not sent");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(key.ok());
                }
            }
            EndpointCommand::SetGuard(config) => {
                if let Some(guard) = &mut self.guard {
                    guard.set_config(config);
                }
            }
            EndpointCommand::Shutdown => {}
        }
    }

    fn handle_message(&mut self, bytes: &[u8], source: SocketAddr, transport: Transport) {
        self.counters.datagrams_in.fetch_add(1, Ordering::Relaxed);
        // Cheapest first: a banned or flooding source costs a hash lookup, no parsing.
        if let Some(guard) = &mut self.guard {
            if let Verdict::Drop(why) = guard.check_source(now(), source.ip()) {
                tracing::trace!(%source, ?why, "dropped by guard");
                // A throttled trunk keeps its connection: only this message is dropped.
                if transport == Transport::Tcp && why != DropReason::Throttled {
                    self.tcp.by_peer.remove(&source);
                }
                return;
            }
        }
        // Keep-alives (RFC 5626 CRLF pings) are not messages.
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return;
        }
        match message::parse(bytes) {
            Ok(rsip::SipMessage::Request(mut req)) => {
                self.counters.messages.count(Direction::In, bytes);
                if let Some(guard) = &mut self.guard {
                    let ua = req.headers.iter().find_map(|h| match h {
                        rsip::Header::UserAgent(ua) => Some(ua.value().to_string()),
                        _ => None,
                    });
                    if let Verdict::Drop(why) = guard.check_request(ua.as_deref()) {
                        tracing::debug!(%source, ?why, "dropped by guard");
                        return;
                    }
                }
                message::stamp_via(&mut req, source);
                self.layer.handle_request_on(now(), req, source, transport);
            }
            Ok(rsip::SipMessage::Response(resp)) => {
                self.counters.messages.count(Direction::In, bytes);
                self.layer.handle_response(now(), resp, source)
            }
            Err(ParseError::BadRequest { reason, response }) => {
                tracing::info!(%source, %reason, "bad request answered with 400");
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                self.send_stateless(*response, source, transport);
            }
            Err(ParseError::UnknownMethod { method, response }) => {
                tracing::info!(%source, %method, "unknown method answered with 501");
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                self.send_stateless(*response, source, transport);
            }
            Err(e) => {
                tracing::debug!(%source, error = %e, "datagram dropped");
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Error responses to unparseable requests bypass the layer: there is no transaction.
    /// They go back to the datagram's source, as RFC 3581 would route them: the Via of a
    /// message we could not parse is not trustworthy enough to aim at another host.
    fn send_stateless(
        &mut self,
        response: rsip::Response,
        destination: SocketAddr,
        transport: Transport,
    ) {
        let bytes = message::to_bytes(&rsip::SipMessage::Response(response));
        if transport == Transport::Tcp {
            return self.send_tcp(destination, bytes);
        }
        match self.socket.try_send_to(&bytes, destination) {
            Ok(_) => {
                self.counters.datagrams_out.fetch_add(1, Ordering::Relaxed);
                self.counters.messages.count(Direction::Out, &bytes);
            }
            Err(e) => {
                self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "stateless send failed");
            }
        }
    }

    /// Write every pending transmit and hand every pending event to the TU (or its
    /// backlog; requests it cannot take now are answered 503 here, which makes more
    /// transmits). Never waits on the TU. Returns false when the TU has gone away.
    async fn flush(&mut self) -> bool {
        loop {
            while let Some(Transmit {
                destination,
                transport,
                bytes,
            }) = self.layer.poll_transmit()
            {
                if transport == Transport::Tcp {
                    self.send_tcp(destination, bytes);
                    continue;
                }
                match self.socket.send_to(&bytes, destination).await {
                    Ok(_) => {
                        self.counters.datagrams_out.fetch_add(1, Ordering::Relaxed);
                        self.counters.messages.count(Direction::Out, &bytes);
                    }
                    Err(e) => {
                        self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(error = %e, %destination, "sip send failed");
                    }
                }
            }
            let mut refused = false;
            while let Some(ev) = self.layer.poll_event() {
                match self.backlog.hand(&self.events, ev) {
                    Handed::Queued => {}
                    Handed::Refuse(key, response) => {
                        self.counters
                            .overload_refused
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            backlog = self.backlog.len(),
                            method = %key.method,
                            "call manager is behind: request refused with 503"
                        );
                        let _ = self.layer.respond(now(), &key, response);
                        refused = true;
                    }
                    Handed::Dropped => {
                        self.counters.events_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Handed::Closed => return false,
                }
            }
            if !refused {
                return true;
            }
        }
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

async fn accept_opt(
    listener: Option<&TcpListener>,
) -> Option<std::io::Result<(tokio::net::TcpStream, SocketAddr)>> {
    match listener {
        Some(l) => Some(l.accept().await),
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
