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
//! back on the connection their request came on, and a request to a TCP peer without a
//! connection opens one. A connection that cannot be framed is closed.

use super::guard::{DropReason, Guard, GuardConfig, GuardCounters, Verdict};
use super::message::{self, ParseError};
use super::stats::{Direction, SipCounters};
use super::transaction::{
    TimerConfig, TransactionEvent, TransactionKey, TransactionLayer, Transmit, Transport,
};
use rsip::headers::UntypedHeader;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

mod socket;
mod tcp;
use socket::enlarge_buffers;
pub use socket::SOCKET_BUFFER_BYTES;
use tcp::{accept_loop, connection, Inbound};

/// Largest datagram we accept; bigger ones are truncated by the kernel and then fail to parse.
pub const MAX_DATAGRAM: usize = 65_535;
/// Datagrams handled per loop turn before timers and commands get a look-in.
const RECV_BATCH: usize = 64;
/// TU commands handled per loop turn at most (the rest wait for the next turn, so datagrams
/// and timers are not starved).
const COMMAND_BATCH: usize = 64;

/// Messages queued for one TCP connection before further ones are dropped (a peer that
/// does not read).
const TCP_WRITE_QUEUE: usize = 256;
/// Idle TCP connections are closed after this long (RFC 5626 keep-alives keep them open).
const TCP_IDLE: std::time::Duration = std::time::Duration::from_secs(600);

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
    /// Requests and responses by method and code, both directions (parsed ones in, sent
    /// ones out).
    pub messages: SipCounters,
}

/// What the TU asks of the endpoint.
#[derive(Debug)]
pub enum EndpointCommand {
    /// Answer a server transaction.
    Respond {
        key: TransactionKey,
        response: rsip::Response,
    },
    /// Send a request (creates a client transaction; ACK goes out statelessly).
    SendRequest {
        request: rsip::Request,
        destination: SocketAddr,
        reply: Option<oneshot::Sender<Option<TransactionKey>>>,
    },
    /// Replace the guard's rules (configuration reload); bans in force are kept.
    SetGuard(GuardConfig),
    /// Stop the task.
    Shutdown,
}

/// The TU's side of a running endpoint.
#[derive(Clone, Debug)]
pub struct EndpointHandle {
    commands: mpsc::UnboundedSender<EndpointCommand>,
    local_addr: SocketAddr,
    counters: Arc<EndpointCounters>,
    guard: Arc<GuardCounters>,
    tcp: bool,
}

impl EndpointHandle {
    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn counters(&self) -> &Arc<EndpointCounters> {
        &self.counters
    }

    /// The guard's decisions (all zero when the endpoint runs without a guard).
    pub fn guard_counters(&self) -> &Arc<GuardCounters> {
        &self.guard
    }

    /// Whether TCP is served on [`EndpointHandle::local_addr`] too.
    pub fn serves_tcp(&self) -> bool {
        self.tcp
    }

    /// Answer a server transaction. Fire-and-forget: a response to a transaction that has
    /// since ended is dropped by the layer.
    pub fn respond(&self, key: TransactionKey, response: rsip::Response) {
        let _ = self
            .commands
            .send(EndpointCommand::Respond { key, response });
    }

    /// Send a request without waiting for the transaction key.
    pub fn send(&self, request: rsip::Request, destination: SocketAddr) {
        let _ = self.commands.send(EndpointCommand::SendRequest {
            request,
            destination,
            reply: None,
        });
    }

    /// Send a request and learn its client transaction key (to match the responses).
    pub async fn send_request(
        &self,
        request: rsip::Request,
        destination: SocketAddr,
    ) -> Option<TransactionKey> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(EndpointCommand::SendRequest {
                request,
                destination,
                reply: Some(tx),
            })
            .ok()?;
        rx.await.ok().flatten()
    }

    /// New guard rules (SIGHUP reload). Ignored by an endpoint started without a guard.
    pub fn set_guard(&self, config: GuardConfig) {
        let _ = self.commands.send(EndpointCommand::SetGuard(config));
    }

    pub fn shutdown(&self) {
        let _ = self.commands.send(EndpointCommand::Shutdown);
    }
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
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::channel(4096);
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
    if let Some(listener) = listener {
        tokio::spawn(accept_loop(
            listener,
            in_tx.clone(),
            max_message,
            counters.clone(),
        ));
    }
    let driver = Driver {
        socket,
        layer: TransactionLayer::new(config.timers),
        events: ev_tx,
        counters: counters.clone(),
        guard,
        connections: HashMap::new(),
        next_conn: 0,
        inbound_tx: in_tx,
        max_message,
    };
    tokio::spawn(driver.run(cmd_rx, in_rx));
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
    counters: Arc<EndpointCounters>,
    guard: Option<Guard>,
    /// Live TCP connections by peer address: connection id and its write queue.
    connections: HashMap<SocketAddr, (u64, mpsc::Sender<Vec<u8>>)>,
    next_conn: u64,
    inbound_tx: mpsc::Sender<Inbound>,
    max_message: usize,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<EndpointCommand>,
        mut inbound: mpsc::Receiver<Inbound>,
    ) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let deadline = self.layer.poll_timeout().map(Instant::from_std);
            tokio::select! {
                biased;
                cmd = commands.recv() => match cmd {
                    None | Some(EndpointCommand::Shutdown) => break,
                    Some(cmd) => {
                        self.handle_command(cmd);
                        if !self.more_commands(&mut commands) {
                            break;
                        }
                    }
                },
                // Tokio's cooperative budget can delay an elapsed sleep, so the deadline is
                // checked again against the clock before the layer is told.
                _ = sleep_until_opt(deadline) => {
                    self.layer.handle_timeout(now());
                }
                Some(msg) = inbound.recv() => self.handle_inbound(msg),
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
    fn more_commands(&mut self, commands: &mut mpsc::UnboundedReceiver<EndpointCommand>) -> bool {
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
            EndpointCommand::Respond { key, response } => {
                if let Err(e) = self.layer.respond(now(), &key, response) {
                    tracing::debug!(error = %e, branch = %key.branch, "response not sent");
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

    fn handle_inbound(&mut self, msg: Inbound) {
        match msg {
            Inbound::Opened { peer, id, writer } => {
                let banned = self
                    .guard
                    .as_ref()
                    .is_some_and(|g| g.is_banned(now(), peer.ip()));
                // A banned peer's writer is dropped at once, which closes the connection.
                if !banned {
                    self.connections.insert(peer, (id, writer));
                }
            }
            Inbound::Message { peer, bytes } => self.handle_message(&bytes, peer, Transport::Tcp),
            Inbound::Closed { peer, id } => {
                if self.connections.get(&peer).is_some_and(|(i, _)| *i == id) {
                    self.connections.remove(&peer);
                }
            }
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
                    self.connections.remove(&source);
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
                self.layer.handle_request(now(), req, source);
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

    /// Write every pending transmit and hand every pending event to the TU.
    /// Returns false when the TU has gone away.
    async fn flush(&mut self) -> bool {
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
        while let Some(ev) = self.layer.poll_event() {
            if self.events.send(ev).await.is_err() {
                return false;
            }
        }
        true
    }
}

impl Driver {
    /// Queue `bytes` on the connection to `destination`, opening one if there is none
    /// (our BYE to a TCP caller whose connection is gone). Never waits: a full queue drops.
    fn send_tcp(&mut self, destination: SocketAddr, bytes: Vec<u8>) {
        if let Some((_, writer)) = self.connections.get(&destination) {
            match writer.try_send(bytes) {
                Ok(()) => {
                    self.counters.datagrams_out.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%destination, "sip tcp write queue full or closed");
                }
            }
            return;
        }
        if self
            .guard
            .as_ref()
            .is_some_and(|g| g.is_banned(now(), destination.ip()))
        {
            // Its connection was closed by the ban: do not open another to it.
            return;
        }
        self.next_conn += 1;
        let id = self.next_conn;
        let (tx, rx) = mpsc::channel(TCP_WRITE_QUEUE);
        let _ = tx.try_send(bytes);
        self.counters.datagrams_out.fetch_add(1, Ordering::Relaxed);
        self.connections.insert(destination, (id, tx));
        let inbound = self.inbound_tx.clone();
        let max = self.max_message;
        let counters = self.counters.clone();
        tokio::spawn(async move {
            let connect = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                TcpStream::connect(destination),
            );
            match connect.await {
                Ok(Ok(stream)) => {
                    counters.tcp_connections.fetch_add(1, Ordering::Relaxed);
                    connection(stream, destination, id, rx, inbound, max, counters).await
                }
                _ => {
                    counters.send_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%destination, "cannot open sip tcp connection");
                    let _ = inbound
                        .send(Inbound::Closed {
                            peer: destination,
                            id,
                        })
                        .await;
                }
            }
        });
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
