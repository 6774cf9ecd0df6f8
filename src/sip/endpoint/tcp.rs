//! The TCP side of the endpoint: the accept loop and one task per connection that frames
//! the byte stream into messages for the driver and writes what the driver queues.

use super::{EndpointCounters, TCP_IDLE, TCP_WRITE_QUEUE};
use crate::sip::framing::{Frame, Framer};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// From connection tasks to the driver.
pub(super) enum Inbound {
    Opened {
        peer: SocketAddr,
        id: u64,
        writer: mpsc::Sender<Vec<u8>>,
    },
    Message {
        peer: SocketAddr,
        bytes: Vec<u8>,
    },
    Closed {
        peer: SocketAddr,
        id: u64,
    },
}

/// Accepted connections get ids from the top of the range, connections we open from the
/// bottom, so the two never collide.
pub(super) async fn accept_loop(
    listener: TcpListener,
    inbound: mpsc::Sender<Inbound>,
    max_message: usize,
    counters: Arc<EndpointCounters>,
) {
    let mut next_id = u64::MAX / 2;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                next_id += 1;
                counters.tcp_connections.fetch_add(1, Ordering::Relaxed);
                let (tx, rx) = mpsc::channel(TCP_WRITE_QUEUE);
                if inbound
                    .send(Inbound::Opened {
                        peer,
                        id: next_id,
                        writer: tx,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::spawn(connection(
                    stream,
                    peer,
                    next_id,
                    rx,
                    inbound.clone(),
                    max_message,
                    counters.clone(),
                ));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "sip tcp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// One TCP connection: frames what it reads into messages for the driver, writes what the
/// driver queues. Ends on EOF, a read/write error, a framing error, idleness, or when the
/// driver drops its writer (shutdown, a banned peer).
pub(super) async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    inbound: mpsc::Sender<Inbound>,
    max_message: usize,
    counters: Arc<EndpointCounters>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut framer = Framer::new(max_message);
    let mut buf = vec![0u8; 16 * 1024];
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
