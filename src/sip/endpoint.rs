//! The socket driver around the sans-IO [`TransactionLayer`]: one tokio task per listening
//! socket that reads datagrams, feeds the layer, fires its timers and writes what it polls.
//!
//! It is the only place in `sip` that does I/O or reads the clock. The transaction user
//! (TU) talks to it through an [`EndpointHandle`] (commands) and a stream of
//! [`TransactionEvent`]s. Commands go over an unbounded channel so the TU never waits on
//! the endpoint while the endpoint waits on the TU's event queue (no deadlock); events go
//! over a bounded one so a stalled TU slows reading instead of growing memory.
//!
//! UDP only for now; a TCP transport would feed the same layer from per-connection framers.

use super::message::{self, ParseError};
use super::stats::{Direction, SipCounters};
use super::transaction::{
    TimerConfig, TransactionEvent, TransactionKey, TransactionLayer, Transmit,
};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Largest datagram we accept; bigger ones are truncated by the kernel and then fail to parse.
pub const MAX_DATAGRAM: usize = 65_535;
/// Datagrams handled per loop turn before timers and commands get a look-in.
const RECV_BATCH: usize = 64;

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
    /// Stop the task.
    Shutdown,
}

/// The TU's side of a running endpoint.
#[derive(Clone, Debug)]
pub struct EndpointHandle {
    commands: mpsc::UnboundedSender<EndpointCommand>,
    local_addr: SocketAddr,
    counters: Arc<EndpointCounters>,
}

impl EndpointHandle {
    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn counters(&self) -> &Arc<EndpointCounters> {
        &self.counters
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

    pub fn shutdown(&self) {
        let _ = self.commands.send(EndpointCommand::Shutdown);
    }
}

/// Bind `addr` and start the endpoint task. Returns the handle and the event stream.
pub async fn start(
    addr: SocketAddr,
    timers: TimerConfig,
) -> std::io::Result<(EndpointHandle, mpsc::Receiver<TransactionEvent>)> {
    let socket = UdpSocket::bind(addr).await?;
    Ok(start_with_socket(socket, timers))
}

/// Start the endpoint task on an already bound socket.
pub fn start_with_socket(
    socket: UdpSocket,
    timers: TimerConfig,
) -> (EndpointHandle, mpsc::Receiver<TransactionEvent>) {
    let local_addr = socket.local_addr().expect("bound socket has an address");
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::channel(4096);
    let counters = Arc::new(EndpointCounters::default());
    let driver = Driver {
        socket,
        layer: TransactionLayer::new(timers),
        events: ev_tx,
        counters: counters.clone(),
    };
    tokio::spawn(driver.run(cmd_rx));
    (
        EndpointHandle {
            commands: cmd_tx,
            local_addr,
            counters,
        },
        ev_rx,
    )
}

struct Driver {
    socket: UdpSocket,
    layer: TransactionLayer,
    events: mpsc::Sender<TransactionEvent>,
    counters: Arc<EndpointCounters>,
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<EndpointCommand>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let deadline = self.layer.poll_timeout().map(Instant::from_std);
            tokio::select! {
                biased;
                cmd = commands.recv() => match cmd {
                    None | Some(EndpointCommand::Shutdown) => break,
                    Some(cmd) => self.handle_command(cmd),
                },
                // Tokio's cooperative budget can delay an elapsed sleep, so the deadline is
                // checked again against the clock before the layer is told.
                _ = sleep_until_opt(deadline) => {
                    self.layer.handle_timeout(now());
                }
                r = self.socket.recv_from(&mut buf) => {
                    match r {
                        Ok((n, src)) => {
                            self.handle_datagram(&buf[..n], src);
                            // Drain what else is queued without yielding, bounded.
                            for _ in 1..RECV_BATCH {
                                match self.socket.try_recv_from(&mut buf) {
                                    Ok((n, src)) => self.handle_datagram(&buf[..n], src),
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
            EndpointCommand::Shutdown => {}
        }
    }

    fn handle_datagram(&mut self, bytes: &[u8], source: SocketAddr) {
        self.counters.datagrams_in.fetch_add(1, Ordering::Relaxed);
        // Keep-alives (RFC 5626 CRLF pings) are not messages.
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return;
        }
        match message::parse(bytes) {
            Ok(rsip::SipMessage::Request(mut req)) => {
                self.counters.messages.count(Direction::In, bytes);
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
                self.send_stateless(*response, source);
            }
            Err(ParseError::UnknownMethod { method, response }) => {
                tracing::info!(%source, %method, "unknown method answered with 501");
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                self.send_stateless(*response, source);
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
    fn send_stateless(&mut self, response: rsip::Response, destination: SocketAddr) {
        let bytes = message::to_bytes(&rsip::SipMessage::Response(response));
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
        while let Some(Transmit { destination, bytes }) = self.layer.poll_transmit() {
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

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
