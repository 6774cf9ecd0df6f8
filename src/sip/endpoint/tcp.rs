//! The TCP side of the endpoint: admitting connections (limits and the guard, at accept),
//! one task per connection that frames the byte stream into messages for the driver and
//! writes what the driver queues, and opening a connection for a request of ours.
//!
//! A TCP connection costs a task, buffers and a file descriptor, and a peer can open them
//! for free: so they are bounded globally and per source address, the guard (ban, ACL drop
//! mode, rate) is asked before one is kept, and a connection must deliver a complete
//! message within `message_timeout` of opening (and of starting each message), or it is
//! closed. Connections we open ourselves (our BYE to a TCP caller) are not counted against
//! the accept limits.

use super::{Driver, EndpointCounters};
use crate::sip::framing::{Frame, Framer};
use crate::sip::guard::Verdict;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Messages queued for one TCP connection before further ones are dropped (a peer that
/// does not read).
const TCP_WRITE_QUEUE: usize = 256;
/// Connections that have delivered messages and then fall silent are closed after this
/// long (RFC 5626 keep-alives keep them open).
const TCP_IDLE: Duration = Duration::from_secs(600);

/// How many TCP connections may be held, and how patient to be with them
/// (`[sip] tcp_max_connections`, `tcp_max_connections_per_source`, `tcp_message_timeout_secs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// Accepted connections held at once; more are closed at accept.
    pub max_connections: usize,
    /// Accepted connections held at once from one source address.
    pub max_per_source: usize,
    /// A connection must deliver a complete message within this long of opening, and
    /// finish each message within this long of its first byte.
    pub message_timeout: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            max_connections: 1024,
            max_per_source: 32,
            message_timeout: Duration::from_secs(10),
        }
    }
}

/// From connection tasks to the driver.
pub(super) enum Inbound {
    Message { peer: SocketAddr, bytes: Vec<u8> },
    Closed { peer: SocketAddr, id: u64 },
}

/// The driver's view of TCP: live connections and what the limits count.
pub(super) struct Connections {
    /// Live TCP connections by peer address: connection id and its write queue.
    pub by_peer: HashMap<SocketAddr, (u64, mpsc::Sender<Vec<u8>>)>,
    /// Accepted connections still open, by id, and how many each source holds.
    accepted: HashMap<u64, IpAddr>,
    per_source: HashMap<IpAddr, usize>,
    next_id: u64,
    pub inbound_tx: mpsc::Sender<Inbound>,
    pub max_message: usize,
    pub limits: TcpLimits,
}

impl Connections {
    pub fn new(inbound_tx: mpsc::Sender<Inbound>, max_message: usize, limits: TcpLimits) -> Self {
        Connections {
            by_peer: HashMap::new(),
            accepted: HashMap::new(),
            per_source: HashMap::new(),
            next_id: 0,
            inbound_tx,
            max_message,
            limits,
        }
    }

    fn closed(&mut self, peer: SocketAddr, id: u64) {
        if self.by_peer.get(&peer).is_some_and(|(i, _)| *i == id) {
            self.by_peer.remove(&peer);
        }
        if let Some(ip) = self.accepted.remove(&id) {
            if let Some(n) = self.per_source.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.per_source.remove(&ip);
                }
            }
        }
    }
}

impl Driver {
    /// A connection was accepted: keep it only if the guard and the limits allow.
    /// Refused connections are closed at once, unread (drop mode: the peer learns nothing).
    pub(super) fn tcp_accepted(&mut self, stream: TcpStream, peer: SocketAddr) {
        if let Some(guard) = &self.guard {
            if let Verdict::Drop(why) = guard.check_connection(super::now(), peer.ip()) {
                tracing::debug!(%peer, ?why, "sip tcp connection refused by the guard");
                self.counters.tcp_refused.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let tcp = &mut self.tcp;
        let from_source = tcp.per_source.get(&peer.ip()).copied().unwrap_or(0);
        if tcp.accepted.len() >= tcp.limits.max_connections
            || from_source >= tcp.limits.max_per_source
        {
            tracing::info!(%peer, open = tcp.accepted.len(), from_source, "sip tcp connection limit reached: closing");
            self.counters.tcp_refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        tcp.next_id += 1;
        let id = tcp.next_id;
        tcp.accepted.insert(id, peer.ip());
        *tcp.per_source.entry(peer.ip()).or_insert(0) += 1;
        self.counters
            .tcp_connections
            .fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(TCP_WRITE_QUEUE);
        tcp.by_peer.insert(peer, (id, tx));
        tokio::spawn(connection(
            stream,
            peer,
            id,
            rx,
            tcp.inbound_tx.clone(),
            tcp.max_message,
            Some(tcp.limits.message_timeout),
            self.counters.clone(),
        ));
    }

    pub(super) fn handle_inbound(&mut self, msg: Inbound) {
        match msg {
            Inbound::Message { peer, bytes } => {
                self.handle_message(&bytes, peer, crate::sip::transaction::Transport::Tcp)
            }
            Inbound::Closed { peer, id } => self.tcp.closed(peer, id),
        }
    }

    /// Queue `bytes` on the connection to `destination`, opening one if there is none
    /// (our BYE to a TCP caller whose connection is gone). Never waits: a full queue drops.
    /// Only our own requests and responses to requests that came over TCP get here.
    pub(super) fn send_tcp(&mut self, destination: SocketAddr, bytes: Vec<u8>) {
        if let Some((_, writer)) = self.tcp.by_peer.get(&destination) {
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
            .is_some_and(|g| g.is_banned(super::now(), destination.ip()))
        {
            // Its connection was closed by the ban: do not open another to it.
            return;
        }
        let tcp = &mut self.tcp;
        tcp.next_id += 1;
        let id = tcp.next_id;
        let (tx, rx) = mpsc::channel(TCP_WRITE_QUEUE);
        let _ = tx.try_send(bytes);
        self.counters.datagrams_out.fetch_add(1, Ordering::Relaxed);
        tcp.by_peer.insert(destination, (id, tx));
        let inbound = tcp.inbound_tx.clone();
        let max = tcp.max_message;
        let counters = self.counters.clone();
        tokio::spawn(async move {
            let connect = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                TcpStream::connect(destination),
            );
            match connect.await {
                Ok(Ok(stream)) => {
                    counters.tcp_connections.fetch_add(1, Ordering::Relaxed);
                    connection(stream, destination, id, rx, inbound, max, None, counters).await
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

/// One TCP connection: frames what it reads into messages for the driver, writes what the
/// driver queues. Ends on EOF, a read/write error, a framing error, idleness, a message not
/// completed within `message_timeout` (accepted connections), or when the driver drops its
/// writer (shutdown, a banned peer).
#[allow(clippy::too_many_arguments)]
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    inbound: mpsc::Sender<Inbound>,
    max_message: usize,
    message_timeout: Option<Duration>,
    counters: Arc<EndpointCounters>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut framer = Framer::new(max_message);
    let mut buf = vec![0u8; 16 * 1024];
    // An accepted connection owes us its first message from the start.
    let mut message_due = message_timeout.map(|t| Instant::now() + t);
    'conn: loop {
        tokio::select! {
            r = tokio::time::timeout(TCP_IDLE, rd.read(&mut buf)) => {
                let n = match r {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                    Ok(Ok(n)) => n,
                };
                framer.push(&buf[..n]);
                loop {
                    match framer.next() {
                        Ok(Some(Frame::Message(bytes))) => {
                            message_due = None;
                            if inbound.send(Inbound::Message { peer, bytes }).await.is_err() {
                                break 'conn;
                            }
                        }
                        Ok(Some(Frame::Ping)) => {
                            if wr.write_all(b"\r\n").await.is_err() {
                                break 'conn;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::info!(%peer, error = %e, "sip tcp stream cannot be framed: closing");
                            counters.tcp_framing_errors.fetch_add(1, Ordering::Relaxed);
                            break 'conn;
                        }
                    }
                }
                // A message has begun: it must be complete in time (a slow-loris header
                // sent a byte at a time holds nothing for long).
                if framer.buffered() > 0 && message_due.is_none() {
                    message_due = message_timeout.map(|t| Instant::now() + t);
                }
            }
            _ = sleep_until_opt(message_due) => {
                tracing::info!(%peer, buffered = framer.buffered(), "sip tcp connection sent no complete message in time: closing");
                counters.tcp_timeouts.fetch_add(1, Ordering::Relaxed);
                break;
            }
            out = outgoing.recv() => match out {
                Some(bytes) => {
                    if wr.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    let _ = wr.shutdown().await;
    let _ = inbound.send(Inbound::Closed { peer, id }).await;
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
