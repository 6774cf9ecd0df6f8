//! Handing events to the TU without ever waiting for it.
//!
//! The driver used to `await` room in the TU's event channel inside its loop: a stalled call
//! manager then froze every SIP timer (no retransmission, no Timer B/F/H, no absorbing of
//! retransmitted INVITEs). Now an event that does not fit waits here, in order, and the loop
//! goes on; the driver's `select!` moves the backlog into the channel as room appears.
//!
//! While the TU is behind, new work is refused rather than queued: a new out-of-dialog
//! INVITE is answered 503 + Retry-After by the endpoint itself (the caller's carrier tries
//! elsewhere, which is what a busy gateway should make it do). When even the backlog is
//! full, any other request is refused the same way and the rest (ACKs, responses, timeouts)
//! is dropped and counted: memory stays bounded whatever the TU does.

use crate::sip::message;
use crate::sip::transaction::{TransactionEvent, TransactionKey};
use rsip::headers::UntypedHeader;
use std::collections::VecDeque;
use tokio::sync::mpsc;

/// Retry-After of the 503 to an INVITE refused because the TU is behind: short, since a
/// backlog clears within moments once the TU runs again.
pub const OVERLOAD_RETRY_AFTER_SECS: u32 = 5;

/// What became of an event.
pub(super) enum Handed {
    /// In the channel or in the backlog.
    Queued,
    /// The TU is behind: answer this request with [`overload_response`] instead.
    Refuse(TransactionKey, rsip::Response),
    /// Backlog full and not a request: dropped.
    Dropped,
    /// The TU has gone away.
    Closed,
}

/// Events waiting for room in the TU's channel, oldest first, at most `limit`.
pub(super) struct Backlog {
    queue: VecDeque<TransactionEvent>,
    limit: usize,
}

impl Backlog {
    pub fn new(limit: usize) -> Backlog {
        Backlog {
            queue: VecDeque::new(),
            limit,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Hand `ev` to the TU, or keep it, or say it must be refused.
    pub fn hand(&mut self, tx: &mpsc::Sender<TransactionEvent>, ev: TransactionEvent) -> Handed {
        let ev = if self.queue.is_empty() {
            match tx.try_send(ev) {
                Ok(()) => return Handed::Queued,
                Err(mpsc::error::TrySendError::Closed(_)) => return Handed::Closed,
                Err(mpsc::error::TrySendError::Full(ev)) => ev,
            }
        } else {
            ev
        };
        // The TU is behind.
        if let TransactionEvent::Request { key, request, .. } = &ev {
            let new_call =
                request.method == rsip::Method::Invite && message::to_tag(request).is_none();
            let no_room = self.queue.len() >= self.limit;
            if new_call || (no_room && request.method != rsip::Method::Ack) {
                return Handed::Refuse(key.clone(), overload_response(request));
            }
        }
        if self.queue.len() >= self.limit {
            return Handed::Dropped;
        }
        self.queue.push_back(ev);
        Handed::Queued
    }

    /// Move what fits from the backlog into the channel, given one reserved slot.
    pub fn refill(
        &mut self,
        permit: mpsc::Permit<'_, TransactionEvent>,
        tx: &mpsc::Sender<TransactionEvent>,
    ) {
        let Some(first) = self.queue.pop_front() else {
            return;
        };
        permit.send(first);
        while let Some(ev) = self.queue.pop_front() {
            if let Err(e) = tx.try_send(ev) {
                match e {
                    mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => {
                        self.queue.push_front(ev);
                    }
                }
                break;
            }
        }
    }
}

/// 503 + Retry-After, written by the endpoint for a request the TU cannot take now.
pub fn overload_response(request: &rsip::Request) -> rsip::Response {
    let mut resp = message::response(request, 503, "Service Unavailable", None);
    resp.headers
        .push(rsip::headers::RetryAfter::new(OVERLOAD_RETRY_AFTER_SECS.to_string()).into());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, to_tag: &str, n: u32) -> TransactionEvent {
        let text = format!(
            "{method} sip:8890@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKb{n}\r\n\
             From: <sip:a@127.0.0.1>;tag=a\r\n\
             To: <sip:8890@127.0.0.1>{to_tag}\r\n\
             Call-ID: b-{n}@127.0.0.1\r\n\
             CSeq: 1 {method}\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let Ok(rsip::SipMessage::Request(request)) = message::parse(text.as_bytes()) else {
            panic!("test request");
        };
        TransactionEvent::Request {
            key: TransactionKey {
                branch: format!("z9hG4bKb{n}"),
                sent_by: "127.0.0.1:5999".into(),
                method: method.into(),
            },
            request,
            source: "127.0.0.1:5999".parse().unwrap(),
            transport: crate::sip::transaction::Transport::Udp,
        }
    }

    #[test]
    fn a_tu_that_is_behind_gets_no_new_calls_and_a_bounded_backlog() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut b = Backlog::new(2);
        assert!(matches!(
            b.hand(&tx, request("OPTIONS", "", 1)),
            Handed::Queued
        ));
        // Channel full: a new INVITE is refused with 503 + Retry-After, at once.
        match b.hand(&tx, request("INVITE", "", 2)) {
            Handed::Refuse(_, resp) => {
                assert_eq!(resp.status_code.code(), 503);
                assert!(message::header_value(&resp, "Retry-After").is_some());
                assert!(message::to_tag(&resp).is_some(), "§8.2.6.2 To tag");
            }
            _ => panic!("INVITE must be refused while the TU is behind"),
        }
        // In-dialog requests and ACKs wait, in order, up to the limit.
        assert!(matches!(
            b.hand(&tx, request("BYE", ";tag=x", 3)),
            Handed::Queued
        ));
        assert!(matches!(
            b.hand(&tx, request("ACK", ";tag=x", 4)),
            Handed::Queued
        ));
        assert_eq!(b.len(), 2);
        assert!(matches!(
            b.hand(&tx, request("BYE", ";tag=y", 5)),
            Handed::Refuse(..)
        ));
        assert!(matches!(
            b.hand(&tx, request("ACK", ";tag=y", 6)),
            Handed::Dropped
        ));
        // Room again: the backlog drains in order behind what was in the channel.
        let first = rx.try_recv().unwrap();
        assert!(
            matches!(first, TransactionEvent::Request { request, .. } if request.method == rsip::Method::Options)
        );
        let permit = tx.try_reserve().unwrap();
        b.refill(permit, &tx);
        assert_eq!(b.len(), 1, "one slot, one event");
        let next = rx.try_recv().unwrap();
        assert!(
            matches!(next, TransactionEvent::Request { request, .. } if request.method == rsip::Method::Bye)
        );
    }
}
