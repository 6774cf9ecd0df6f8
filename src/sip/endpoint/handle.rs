//! The TU's side of a running endpoint: the commands it may give and the handle it gives
//! them through.
//!
//! Commands go over a bounded channel. The endpoint never waits on the TU (events it cannot
//! hand up wait in its backlog, see `backlog`), so the TU awaiting room in this channel can
//! never deadlock; the fire-and-forget calls (`respond`, `send`) do not wait at all and
//! count what a full queue refuses.

use super::{EndpointCounters, GuardCounters};
use crate::sip::guard::GuardConfig;
use crate::sip::transaction::{TransactionError, TransactionKey};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// What the TU asks of the endpoint.
#[derive(Debug)]
pub enum EndpointCommand {
    /// Answer a server transaction; `reply` (when given) learns whether the layer took it.
    Respond {
        key: TransactionKey,
        response: rsip::Response,
        reply: Option<oneshot::Sender<Result<(), TransactionError>>>,
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
    pub(super) commands: mpsc::Sender<EndpointCommand>,
    pub(super) local_addr: SocketAddr,
    pub(super) counters: Arc<EndpointCounters>,
    pub(super) guard: Arc<GuardCounters>,
    pub(super) tcp: bool,
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

    /// Queue a command without waiting; a full queue drops it (counted, logged).
    fn post(&self, cmd: EndpointCommand) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.commands.try_send(cmd) {
            self.counters
                .commands_dropped
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!("sip endpoint command queue full: command dropped");
        }
    }

    /// Answer a server transaction. Fire-and-forget: a response to a transaction that has
    /// since ended is dropped by the layer.
    pub fn respond(&self, key: TransactionKey, response: rsip::Response) {
        self.post(EndpointCommand::Respond {
            key,
            response,
            reply: None,
        });
    }

    /// Answer a server transaction and learn whether the layer sent it. A final response
    /// the layer refuses (`AlreadyFinal`: a CANCEL crossed the INVITE and 487 went out)
    /// must not become a call.
    pub async fn respond_confirmed(
        &self,
        key: TransactionKey,
        response: rsip::Response,
    ) -> Result<(), TransactionError> {
        let (tx, rx) = oneshot::channel();
        let cmd = EndpointCommand::Respond {
            key,
            response,
            reply: Some(tx),
        };
        if self.commands.send(cmd).await.is_err() {
            return Err(TransactionError::NoSuchTransaction);
        }
        rx.await.unwrap_or(Err(TransactionError::NoSuchTransaction))
    }

    /// Send a request without waiting for the transaction key.
    pub fn send(&self, request: rsip::Request, destination: SocketAddr) {
        self.post(EndpointCommand::SendRequest {
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
            .await
            .ok()?;
        rx.await.ok().flatten()
    }

    /// New guard rules (SIGHUP reload). Ignored by an endpoint started without a guard.
    pub fn set_guard(&self, config: GuardConfig) {
        self.post(EndpointCommand::SetGuard(config));
    }

    pub fn shutdown(&self) {
        self.post(EndpointCommand::Shutdown);
    }
}
