//! Non-INVITE client transaction: RFC 3261 §17.1.2 (our BYE, or a CANCEL).
//!
//! ```text
//!   send → Trying --1xx--> Proceeding --200-699--> Completed --Timer K (T4)--> Terminated
//!            \__________200-699___________________/
//!   Timer E: resend at T1, 2T1, 4T1 ... capped at T2 (every T2 once in Proceeding).
//!   Timer F (64·T1) in Trying/Proceeding: Timeout to the TU, Terminated.
//! ```

use std::time::Instant;

use super::key::MessageIds;
use super::timer::{sixty_four_t1, Backoff, Timer, TimerTable};
use super::{Outputs, Peer, TimerConfig, TransactionEvent, TransactionKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

pub(super) struct ClientNonInvite {
    state: State,
    destination: Peer,
    request: Vec<u8>,
    timers: TimerTable,
    backoff: Backoff,
    seen: SeenProvisionals,
    config: TimerConfig,
}

impl ClientNonInvite {
    pub fn new(
        now: Instant,
        request: Vec<u8>,
        destination: Peer,
        config: TimerConfig,
        out: &mut Outputs,
    ) -> ClientNonInvite {
        out.transmit(destination, request.clone());
        let mut backoff = Backoff::capped(&config);
        let mut timers = TimerTable::default();
        if !destination.reliable() {
            timers.set_after(Timer::E, now, backoff.next_interval());
        }
        timers.set_after(Timer::F, now, sixty_four_t1(&config));
        ClientNonInvite {
            state: State::Trying,
            destination,
            request,
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

    /// A response matched this transaction (§17.1.3). Each provisional (per code and To
    /// tag) and the first final go up; retransmitted finals are absorbed.
    pub fn on_response(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        response: rsip::Response,
        ids: &MessageIds,
        out: &mut Outputs,
    ) {
        let code = response.status_code.code();
        match (self.state, code) {
            (State::Trying | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                if self.seen.first_time(code, ids.to_tag.as_deref()) {
                    out.event(TransactionEvent::Response {
                        key: key.clone(),
                        response,
                    });
                }
            }
            (State::Trying | State::Proceeding, 200..=699) => {
                self.timers.stop_all();
                let k = if self.destination.reliable() {
                    std::time::Duration::ZERO
                } else {
                    self.config.t4
                };
                self.timers.set_after(Timer::K, now, k);
                self.state = State::Completed;
                out.event(TransactionEvent::Response {
                    key: key.clone(),
                    response,
                });
            }
            _ => {}
        }
    }

    pub fn on_timeout(&mut self, now: Instant, key: &TransactionKey, out: &mut Outputs) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                Timer::F => {
                    out.event(TransactionEvent::Timeout { key: key.clone() });
                    self.terminate();
                }
                Timer::K => self.terminate(),
                Timer::E => {
                    out.transmit(self.destination, self.request.clone());
                    if self.state == State::Proceeding {
                        // §17.1.2.2: in Proceeding, Timer E is reset to T2 every time.
                        self.backoff.fix(self.config.t2);
                    }
                    self.timers
                        .set_after(Timer::E, now, self.backoff.next_interval());
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

/// Which provisional responses the TU has already seen, so retransmitted ones are passed up
/// once. Keyed by code and To tag (forked early dialogs differ by tag); bounded, and when
/// full it errs on the side of passing a duplicate up.
#[derive(Debug, Default)]
pub(super) struct SeenProvisionals {
    seen: Vec<(u16, Option<String>)>,
}

impl SeenProvisionals {
    const LIMIT: usize = 16;

    pub fn first_time(&mut self, code: u16, to_tag: Option<&str>) -> bool {
        if self
            .seen
            .iter()
            .any(|(c, t)| *c == code && t.as_deref() == to_tag)
        {
            return false;
        }
        if self.seen.len() < Self::LIMIT {
            self.seen.push((code, to_tag.map(str::to_string)));
        }
        true
    }
}
