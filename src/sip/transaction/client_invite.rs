//! INVITE client transaction: RFC 3261 §17.1.1 as updated by RFC 6026 §7.2 (the test
//! caller's INVITE).
//!
//! ```text
//!   send → Calling --1xx--> Proceeding
//!            |  \               |   \
//!            |   \--300-699--\  |    \--2xx (up)--> Accepted --Timer M (64·T1)--> Terminated
//!            |               v  v                  (every further 2xx goes up: the TU ACKs)
//!            |            Completed --Timer D (32 s)--> Terminated
//!            |            (ACK sent here; a retransmitted final gets the ACK again)
//!   Timer A: resend at T1, 2T1, 4T1 ... (no cap) while Calling.
//!   Timer B (64·T1) while Calling: Timeout to the TU, Terminated.
//! ```

use std::time::{Duration, Instant};

use super::client_non_invite::SeenProvisionals;
use super::key::MessageIds;
use super::timer::{sixty_four_t1, Backoff, Timer, TimerTable};
use super::wire::{ack_for, bytes_of};
use super::{Outputs, Peer, TimerConfig, TransactionEvent, TransactionKey};

/// §17.1.1.2: Timer D is at least 32 s on unreliable transports.
const TIMER_D: Duration = Duration::from_secs(32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Calling,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

pub(super) struct ClientInvite {
    state: State,
    destination: Peer,
    /// The INVITE, kept to build the ACK of a non-2xx.
    invite: Box<rsip::Request>,
    invite_bytes: Vec<u8>,
    cseq: u32,
    /// The ACK sent for our non-2xx final, re-sent on each retransmission of that final.
    ack: Vec<u8>,
    timers: TimerTable,
    backoff: Backoff,
    seen: SeenProvisionals,
    config: TimerConfig,
}

impl ClientInvite {
    pub fn new(
        now: Instant,
        invite: rsip::Request,
        cseq: u32,
        destination: Peer,
        config: TimerConfig,
        out: &mut Outputs,
    ) -> ClientInvite {
        let invite_bytes = bytes_of(&invite);
        out.transmit(destination, invite_bytes.clone());
        let mut backoff = Backoff::uncapped(&config);
        let mut timers = TimerTable::default();
        if !destination.reliable() {
            timers.set_after(Timer::A, now, backoff.next_interval());
        }
        timers.set_after(Timer::B, now, sixty_four_t1(&config));
        ClientInvite {
            state: State::Calling,
            destination,
            invite: Box::new(invite),
            invite_bytes,
            cseq,
            ack: Vec::new(),
            timers,
            backoff,
            seen: SeenProvisionals::default(),
            config,
        }
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        self.timers.next_timeout()
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    pub fn on_response(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        response: rsip::Response,
        ids: &MessageIds,
        out: &mut Outputs,
    ) {
        let code = response.status_code.code();
        let up = |out: &mut Outputs, response| {
            out.event(TransactionEvent::Response {
                key: key.clone(),
                response,
            })
        };
        match (self.state, code) {
            (State::Calling | State::Proceeding, 100..=199) => {
                // §17.1.1.2: no more retransmissions once the server is known to be working.
                // Timer B only runs in Calling; the TU bounds a ringing call itself.
                self.timers.stop(Timer::A);
                self.timers.stop(Timer::B);
                self.state = State::Proceeding;
                if self.seen.first_time(code, ids.to_tag.as_deref()) {
                    up(out, response);
                }
            }
            (State::Calling | State::Proceeding, 200..=299) => {
                self.timers.stop_all();
                self.timers
                    .set_after(Timer::M, now, sixty_four_t1(&self.config));
                self.state = State::Accepted;
                up(out, response);
            }
            // RFC 6026 §7.2: every 2xx (retransmissions and other forks) goes to the TU,
            // which must ACK each one.
            (State::Accepted, 200..=299) => up(out, response),
            (State::Calling | State::Proceeding, 300..=699) => {
                self.ack = bytes_of(&ack_for(&self.invite, &response, self.cseq));
                out.transmit(self.destination, self.ack.clone());
                self.timers.stop_all();
                let d = if self.destination.reliable() {
                    Duration::ZERO
                } else {
                    TIMER_D
                };
                self.timers.set_after(Timer::D, now, d);
                self.state = State::Completed;
                up(out, response);
            }
            (State::Completed, 300..=699) => out.transmit(self.destination, self.ack.clone()),
            _ => {}
        }
    }

    pub fn on_timeout(&mut self, now: Instant, key: &TransactionKey, out: &mut Outputs) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                Timer::B => {
                    out.event(TransactionEvent::Timeout { key: key.clone() });
                    self.terminate();
                }
                Timer::D | Timer::M => self.terminate(),
                Timer::A if self.state == State::Calling => {
                    out.transmit(self.destination, self.invite_bytes.clone());
                    self.timers
                        .set_after(Timer::A, now, self.backoff.next_interval());
                }
                _ => {}
            }
            if self.state == State::Terminated {
                break;
            }
        }
    }

    fn terminate(&mut self) {
        self.timers.stop_all();
        self.state = State::Terminated;
    }
}
