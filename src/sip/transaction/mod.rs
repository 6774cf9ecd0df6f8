//! Sans-IO SIP transaction layer (RFC 3261 §17, §13.3.1.4, §9.2; RFC 6026).
//!
//! Time is an input: every method that depends on it takes `now`. After every call into the
//! layer, the driver drains [`TransactionLayer::poll_transmit`] and
//! [`TransactionLayer::poll_event`] until both return `None`, then sleeps until
//! [`TransactionLayer::poll_timeout`] and calls [`TransactionLayer::handle_timeout`].
//!
//! OWNER: sip-transaction helper. The public surface below is the contract the endpoint
//! driver and the call layer code against.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// RFC 3261 timer base values.
#[derive(Clone, Copy, Debug)]
pub struct TimerConfig {
    pub t1: Duration,
    pub t2: Duration,
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
    pub sent_by: String,
    /// Method token as on the wire (ACK of a non-2xx maps to INVITE). `rsip::Method` is not `Hash`.
    pub method: String,
}

/// Bytes to put on the wire.
#[derive(Debug)]
#[must_use]
pub struct Transmit {
    pub destination: SocketAddr,
    pub bytes: Vec<u8>,
}

/// What the transaction layer tells its user.
#[derive(Debug)]
pub enum TransactionEvent {
    /// A new request (not a retransmission) for the TU. For INVITE the layer has already
    /// sent 100 Trying. ACKs for 2xx come here too (they are not part of any transaction).
    Request {
        key: TransactionKey,
        request: rsip::Request,
        source: SocketAddr,
    },
    /// A CANCEL matched a pending INVITE server transaction: the layer answered the CANCEL
    /// with 200 and the INVITE with 487. The TU drops the call.
    Cancelled { invite: TransactionKey },
    /// A response on one of our client transactions (retransmissions absorbed).
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

/// Why the TU's command was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TransactionError {
    #[error("no such transaction")]
    NoSuchTransaction,
    #[error("transaction already has a final response")]
    AlreadyFinal,
    #[error("request has no usable top Via")]
    NoVia,
}

/// All transactions of one SIP endpoint.
pub struct TransactionLayer {}

impl TransactionLayer {
    pub fn new(timers: TimerConfig) -> Self {
        let _ = timers;
        todo!("sip-transaction helper")
    }

    /// A request arrived from the network (already parsed, Via already stamped).
    pub fn handle_request(&mut self, now: Instant, request: rsip::Request, source: SocketAddr) {
        let _ = (now, request, source);
        todo!()
    }

    /// A response arrived from the network.
    pub fn handle_response(&mut self, now: Instant, response: rsip::Response, source: SocketAddr) {
        let _ = (now, response, source);
        todo!()
    }

    /// Fire expired timers. Spurious early calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// The TU answers a server transaction.
    pub fn respond(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        response: rsip::Response,
    ) -> Result<(), TransactionError> {
        let _ = (now, key, response);
        todo!()
    }

    /// The TU sends a request (BYE, or INVITE from the test caller) to `destination`.
    /// The request must carry a top Via with a fresh branch. ACK is sent statelessly.
    pub fn send_request(
        &mut self,
        now: Instant,
        request: rsip::Request,
        destination: SocketAddr,
    ) -> Result<TransactionKey, TransactionError> {
        let _ = (now, request, destination);
        todo!()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        todo!()
    }

    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        todo!()
    }

    /// Earliest pending timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }

    /// Live transactions (for metrics and tests).
    pub fn len(&self) -> usize {
        todo!()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
