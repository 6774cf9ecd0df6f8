//! Non-INVITE server transaction: RFC 3261 §17.2.2.
//!
//! ```text
//!   request → Trying --TU 1xx--> Proceeding --TU 200-699--> Completed --Timer J--> Terminated
//!                 \___________________TU 200-699______________/
//! ```
//!
//! A retransmitted request is absorbed in Trying and answered with the last response in
//! Proceeding and Completed. Timer J (64·T1 on UDP) keeps the entry long enough to absorb
//! every retransmission the client can still send.

use std::time::Instant;

use super::timer::{sixty_four_t1, Timer, TimerTable};
use super::wire::bytes_of;
use super::{Outputs, Peer, TimerConfig, TransactionError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

pub(super) struct ServerNonInvite {
    state: State,
    destination: Peer,
    last_response: Vec<u8>,
    timers: TimerTable,
    config: TimerConfig,
}

impl ServerNonInvite {
    pub fn new(destination: Peer, config: TimerConfig) -> ServerNonInvite {
        ServerNonInvite {
            state: State::Trying,
            destination,
            last_response: Vec::new(),
            timers: TimerTable::default(),
            config,
        }
    }

    /// A request the layer answers itself (CANCEL, or a merged request's 482).
    pub fn answered(
        now: Instant,
        destination: Peer,
        response: &rsip::Response,
        config: TimerConfig,
        out: &mut Outputs,
    ) -> ServerNonInvite {
        let mut tx = ServerNonInvite::new(destination, config);
        tx.send_final(now, bytes_of(response), out);
        tx
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        self.timers.next_timeout()
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    pub fn on_retransmission(&mut self, out: &mut Outputs) {
        match self.state {
            State::Proceeding | State::Completed => {
                out.transmit(self.destination, self.last_response.clone())
            }
            State::Trying | State::Terminated => {}
        }
    }

    pub fn respond(
        &mut self,
        now: Instant,
        response: rsip::Response,
        out: &mut Outputs,
    ) -> Result<(), TransactionError> {
        let code = response.status_code.code();
        match (self.state, code) {
            (State::Trying | State::Proceeding, 100..=199) => {
                self.last_response = bytes_of(&response);
                out.transmit(self.destination, self.last_response.clone());
                self.state = State::Proceeding;
                Ok(())
            }
            (State::Trying | State::Proceeding, 200..=699) => {
                self.send_final(now, bytes_of(&response), out);
                Ok(())
            }
            (State::Trying | State::Proceeding, _) => Err(TransactionError::InvalidResponse),
            (State::Completed | State::Terminated, _) => Err(TransactionError::AlreadyFinal),
        }
    }

    pub fn on_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            if timer == Timer::J {
                self.timers.stop_all();
                self.state = State::Terminated;
                break;
            }
        }
    }

    fn send_final(&mut self, now: Instant, response: Vec<u8>, out: &mut Outputs) {
        out.transmit(self.destination, response.clone());
        self.last_response = response;
        self.state = State::Completed;
        let j = if self.destination.reliable() {
            std::time::Duration::ZERO
        } else {
            sixty_four_t1(&self.config)
        };
        self.timers.set_after(Timer::J, now, j);
    }
}
