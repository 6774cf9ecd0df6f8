//! INVITE server transaction: RFC 3261 §17.2.1 as updated by RFC 6026 §7.1.
//!
//! ```text
//!              INVITE / send 100 Trying
//!                        |
//!                        v          TU 1xx / send
//!                  +------------+ <-----------+
//!                  | Proceeding |             |
//!                  +------------+ ------------+
//!        TU 2xx /    |        |   TU 300-699 (or CANCEL → 487) / send
//!        send        |        v
//!                    |   +-----------+  Timer G / resend     Timer H / (no ACK)
//!                    |   | Completed | -------------------> Terminated
//!                    |   +-----------+
//!                    |        | ACK
//!                    v        v
//!            +----------+  +-----------+  Timer I (T4)
//!            | Accepted |  | Confirmed | --------------> Terminated
//!            +----------+  +-----------+
//!   2xx resend (T1 doubling to T2) until the ACK; Timer L (64·T1) → Terminated, with
//!   AckTimeout if no ACK came.
//! ```
//!
//! The Accepted state also does the TU's §13.3.1.4 duty of retransmitting the 2xx until its
//! ACK, so the TU only learns "ACK arrived" or "AckTimeout".

use std::time::{Duration, Instant};

use super::key::tag_of;
use super::timer::{sixty_four_t1, Backoff, Timer, TimerTable};
use super::wire::{bytes_of, response_to};
use super::{Outputs, Peer, TimerConfig, TransactionError, TransactionEvent, TransactionKey};
use rsip::headers::UntypedHeader;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Proceeding,
    Completed,
    Confirmed,
    /// RFC 6026: a 2xx was sent; `acked` once its ACK was passed to the TU.
    Accepted {
        acked: bool,
    },
    Terminated,
}

/// What to do with an ACK that reached this transaction.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AckDisposition {
    /// The first ACK for our 2xx: the TU must see it.
    PassUp,
    /// An ACK for a non-2xx, or a retransmitted ACK: swallowed here.
    Absorb,
}

pub(super) struct ServerInvite {
    state: State,
    /// The INVITE, kept to build the 487 a CANCEL calls for.
    request: Box<rsip::Request>,
    destination: Peer,
    /// Our To tag, learnt from the TU's responses (or made up for a 487), so the 487 and
    /// the CANCEL's 200 carry the same tag (§9.2).
    to_tag: Option<String>,
    /// The response a retransmitted INVITE gets: the latest one sent.
    last_response: Vec<u8>,
    timers: TimerTable,
    backoff: Backoff,
    config: TimerConfig,
}

impl ServerInvite {
    /// A new INVITE: answer 100 Trying at once (§17.2.1) so the client stops Timer A.
    pub fn new(
        request: rsip::Request,
        destination: Peer,
        config: TimerConfig,
        out: &mut Outputs,
    ) -> ServerInvite {
        let trying = bytes_of(&response_to(&request, 100, "Trying", None));
        out.transmit(destination, trying.clone());
        ServerInvite {
            state: State::Proceeding,
            request: Box::new(request),
            destination,
            to_tag: None,
            last_response: trying,
            timers: TimerTable::default(),
            backoff: Backoff::capped(&config),
            config,
        }
    }

    /// An INVITE the layer refuses itself (482 for a merged request, §8.2.2.2): straight to
    /// Completed so the response is retransmitted and the ACK absorbed like any other.
    pub fn rejected(
        now: Instant,
        request: rsip::Request,
        destination: Peer,
        code: u16,
        reason: &str,
        config: TimerConfig,
        out: &mut Outputs,
    ) -> ServerInvite {
        let tag = new_tag();
        let response = bytes_of(&response_to(&request, code, reason, Some(&tag)));
        let mut tx = ServerInvite {
            state: State::Proceeding,
            request: Box::new(request),
            destination,
            to_tag: Some(tag),
            last_response: Vec::new(),
            timers: TimerTable::default(),
            backoff: Backoff::capped(&config),
            config,
        };
        tx.send_final_error(now, response, out);
        tx
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        self.timers.next_timeout()
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// Our To tag, for the 200 to a CANCEL of this INVITE.
    pub fn to_tag(&self) -> Option<&str> {
        self.to_tag.as_deref()
    }

    /// The INVITE came again: the client missed our last response (§17.2.1).
    pub fn on_retransmission(&mut self, out: &mut Outputs) {
        match self.state {
            State::Proceeding | State::Completed | State::Accepted { .. } => {
                out.transmit(self.destination, self.last_response.clone())
            }
            State::Confirmed | State::Terminated => {}
        }
    }

    pub fn on_ack(&mut self, now: Instant) -> AckDisposition {
        match self.state {
            State::Completed => {
                self.timers.stop_all();
                let i = if self.destination.reliable() {
                    Duration::ZERO
                } else {
                    self.config.t4
                };
                self.timers.set_after(Timer::I, now, i);
                self.state = State::Confirmed;
                AckDisposition::Absorb
            }
            State::Accepted { acked: false } => {
                // Stop retransmitting; Timer L keeps the entry to absorb repeated ACKs.
                self.timers.stop(Timer::Retransmit2xx);
                self.state = State::Accepted { acked: true };
                AckDisposition::PassUp
            }
            // ACK before any final response is a protocol error; retransmitted ACKs.
            State::Proceeding
            | State::Confirmed
            | State::Accepted { acked: true }
            | State::Terminated => AckDisposition::Absorb,
        }
    }

    /// An ACK matched to this INVITE by dialog (Call-ID, From tag, CSeq) rather than by
    /// branch: only the ACK of a 2xx travels that way. `None` when no 2xx was sent, so the
    /// ACK is not ours.
    pub fn on_dialog_ack(&mut self, now: Instant) -> Option<AckDisposition> {
        matches!(self.state, State::Accepted { .. }).then(|| self.on_ack(now))
    }

    /// The TU's response. 1xx in Proceeding; 2xx also in Accepted (RFC 6026 lets the TU
    /// send further 2xx there); anything else after a final is refused.
    pub fn respond(
        &mut self,
        now: Instant,
        response: rsip::Response,
        out: &mut Outputs,
    ) -> Result<(), TransactionError> {
        let code = response.status_code.code();
        self.learn_to_tag(&response);
        match (self.state, code) {
            (State::Proceeding, 100..=199) => {
                self.last_response = bytes_of(&response);
                out.transmit(self.destination, self.last_response.clone());
                Ok(())
            }
            (State::Proceeding, 200..=299) => {
                self.last_response = bytes_of(&response);
                out.transmit(self.destination, self.last_response.clone());
                self.state = State::Accepted { acked: false };
                self.backoff = Backoff::capped(&self.config);
                if !self.destination.reliable() {
                    self.timers
                        .set_after(Timer::Retransmit2xx, now, self.backoff.next_interval());
                }
                self.timers
                    .set_after(Timer::L, now, sixty_four_t1(&self.config));
                Ok(())
            }
            (State::Accepted { .. }, 200..=299) => {
                self.last_response = bytes_of(&response);
                out.transmit(self.destination, self.last_response.clone());
                Ok(())
            }
            (State::Proceeding, 300..=699) => {
                self.send_final_error(now, bytes_of(&response), out);
                Ok(())
            }
            (State::Proceeding, _) => Err(TransactionError::InvalidResponse),
            _ => Err(TransactionError::AlreadyFinal),
        }
    }

    /// A CANCEL matched this INVITE (§9.2). Returns `true` when the INVITE was still
    /// pending and is now answered with 487; `false` when it already had a final response
    /// (the CANCEL then has no effect).
    pub fn cancel(&mut self, now: Instant, out: &mut Outputs) -> bool {
        if self.state != State::Proceeding {
            return false;
        }
        let tag = self.to_tag.get_or_insert_with(new_tag).clone();
        let response = response_to(&self.request, 487, "Request Terminated", Some(&tag));
        self.send_final_error(now, bytes_of(&response), out);
        true
    }

    pub fn on_timeout(&mut self, now: Instant, key: &TransactionKey, out: &mut Outputs) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                Timer::G if self.state == State::Completed => {
                    out.transmit(self.destination, self.last_response.clone());
                    self.timers
                        .set_after(Timer::G, now, self.backoff.next_interval());
                }
                Timer::Retransmit2xx if self.state == (State::Accepted { acked: false }) => {
                    out.transmit(self.destination, self.last_response.clone());
                    self.timers
                        .set_after(Timer::Retransmit2xx, now, self.backoff.next_interval());
                }
                Timer::L => {
                    if self.state == (State::Accepted { acked: false }) {
                        tracing::debug!(?key, "no ACK for 2xx within 64*T1");
                        out.event(TransactionEvent::AckTimeout { key: key.clone() });
                    }
                    self.terminate();
                }
                Timer::H => {
                    // The contract has no event for a lost ACK of a non-2xx: the call is
                    // already over for the TU.
                    tracing::debug!(?key, "Timer H: no ACK for final response");
                    self.terminate();
                }
                Timer::I => self.terminate(),
                _ => {}
            }
            if self.state == State::Terminated {
                break;
            }
        }
    }

    fn send_final_error(&mut self, now: Instant, response: Vec<u8>, out: &mut Outputs) {
        out.transmit(self.destination, response.clone());
        self.last_response = response;
        self.state = State::Completed;
        self.backoff = Backoff::capped(&self.config);
        if !self.destination.reliable() {
            self.timers
                .set_after(Timer::G, now, self.backoff.next_interval());
        }
        self.timers
            .set_after(Timer::H, now, sixty_four_t1(&self.config));
    }

    fn learn_to_tag(&mut self, response: &rsip::Response) {
        if self.to_tag.is_some() {
            return;
        }
        self.to_tag = response.headers.iter().find_map(|h| match h {
            rsip::Header::To(to) => tag_of(to.value()),
            _ => None,
        });
    }

    fn terminate(&mut self) {
        self.timers.stop_all();
        self.state = State::Terminated;
    }
}

/// A To tag for responses the layer makes up itself (§19.3: at least 32 random bits).
pub(super) fn new_tag() -> String {
    let mut tag = uuid::Uuid::new_v4().simple().to_string();
    tag.truncate(16);
    tag
}
