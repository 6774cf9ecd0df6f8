//! Where the delivery loop takes tickets from: the local SQLite store (one gateway), or the
//! fleet's shared PostgreSQL store ([`super::fleet`]) where a lease lets one instance at a
//! time deliver a ticket. One trait, so that the delivery loop and its retry policy
//! ([`super::service`]) exist once whatever the store.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::service::blocking;
use super::store::{Claimed, DeliveryState, Store};
use super::TicketError;

/// A boxed future of a queue operation (the trait is used as `dyn`).
pub type QueueFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, TicketError>> + Send + 'a>>;

/// The outcome of one attempt, to be recorded.
#[derive(Clone, Debug)]
pub struct Finished {
    pub ticket_id: String,
    pub attempt: u32,
    pub now_ms: i64,
    pub state: DeliveryState,
    pub next_attempt_at_ms: i64,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub body: Option<String>,
}

/// The delivery queue the loop in [`super::TicketService::run_delivery`] works on.
pub trait DeliveryQueue: Send + Sync {
    /// Takes up to `limit` due tickets for this instance (urgent first, then oldest due); each attempt
    /// counts.
    fn claim_due(&self, now_ms: i64, limit: usize) -> QueueFuture<'_, Vec<Claimed>>;
    /// Earliest time a ticket becomes due, if any is waiting.
    fn next_due_ms(&self, now_ms: i64) -> QueueFuture<'_, Option<i64>>;
    /// Records an attempt's outcome and frees the ticket.
    fn finish_attempt(&self, f: Finished) -> QueueFuture<'_, ()>;
    /// Frees whatever this instance still holds (at shutdown): sent again later with the
    /// same `Idempotency-Key`.
    fn release_all(&self, now_ms: i64) -> QueueFuture<'_, usize>;
}

/// The local store as the queue (SQLite calls run on the blocking pool).
pub struct LocalQueue(pub Arc<Store>);

impl DeliveryQueue for LocalQueue {
    fn claim_due(&self, now_ms: i64, limit: usize) -> QueueFuture<'_, Vec<Claimed>> {
        let store = self.0.clone();
        Box::pin(blocking(move || store.claim_due(now_ms, limit)))
    }

    fn next_due_ms(&self, _now_ms: i64) -> QueueFuture<'_, Option<i64>> {
        let store = self.0.clone();
        Box::pin(blocking(move || store.next_due_ms()))
    }

    fn finish_attempt(&self, f: Finished) -> QueueFuture<'_, ()> {
        let store = self.0.clone();
        Box::pin(blocking(move || {
            store.finish_attempt(
                &f.ticket_id,
                f.attempt,
                f.now_ms,
                f.state,
                f.next_attempt_at_ms,
                f.status,
                f.error.as_deref(),
                f.body.as_deref(),
            )
        }))
    }

    fn release_all(&self, now_ms: i64) -> QueueFuture<'_, usize> {
        let store = self.0.clone();
        Box::pin(blocking(move || store.recover_in_flight(now_ms)))
    }
}
