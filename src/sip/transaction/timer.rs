//! Transaction timers as data (quinn-proto's `TimerTable`): each transaction owns a small
//! table of deadlines, the layer's next wake-up is the minimum over all tables, and firing a
//! timer is a method call with `now`. Nothing here reads a clock.

use std::time::{Duration, Instant};

use super::TimerConfig;

/// RFC 3261 Table 4 timer names, plus the RFC 6026 Accepted-state timers.
///
/// The order matters: when several timers of one transaction are due at the same instant,
/// the earlier variant fires first, so timeouts that end a transaction (B, F, H, L, M, ...)
/// win over a retransmission due at the same moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Timer {
    /// Client INVITE: no final response within 64·T1.
    B,
    /// Client non-INVITE: no final response within 64·T1.
    F,
    /// Server INVITE, Completed: no ACK within 64·T1.
    H,
    /// Server INVITE, Accepted (RFC 6026): end of 2xx retransmission and ACK wait, 64·T1.
    L,
    /// Client INVITE, Accepted (RFC 6026): stop accepting 2xx retransmissions, 64·T1.
    M,
    /// Server non-INVITE, Completed: absorb request retransmissions, 64·T1.
    J,
    /// Client non-INVITE, Completed: absorb response retransmissions, T4.
    K,
    /// Server INVITE, Confirmed: absorb ACK retransmissions, T4.
    I,
    /// Client INVITE, Completed: absorb final-response retransmissions, 32 s.
    D,
    /// Client INVITE request retransmission (T1 doubling, no cap).
    A,
    /// Client non-INVITE request retransmission (T1 doubling up to T2).
    E,
    /// Server INVITE non-2xx final response retransmission (T1 doubling up to T2).
    G,
    /// Server INVITE 2xx retransmission (§13.3.1.4, T1 doubling up to T2), done for the TU.
    Retransmit2xx,
}

const TIMER_COUNT: usize = 13;

impl Timer {
    const ALL: [Timer; TIMER_COUNT] = [
        Timer::B,
        Timer::F,
        Timer::H,
        Timer::L,
        Timer::M,
        Timer::J,
        Timer::K,
        Timer::I,
        Timer::D,
        Timer::A,
        Timer::E,
        Timer::G,
        Timer::Retransmit2xx,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// One deadline slot per [`Timer`].
#[derive(Debug, Default, Clone)]
pub(super) struct TimerTable {
    slots: [Option<Instant>; TIMER_COUNT],
}

impl TimerTable {
    /// Arm `timer` to fire `after` from `now`. A deadline beyond what `Instant` can hold
    /// (only with absurd timer settings) means "never" instead of an overflow panic.
    pub fn set_after(&mut self, timer: Timer, now: Instant, after: Duration) {
        self.slots[timer.index()] = now.checked_add(after);
    }

    pub fn stop(&mut self, timer: Timer) {
        self.slots[timer.index()] = None;
    }

    pub fn stop_all(&mut self) {
        self.slots = [None; TIMER_COUNT];
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        self.slots.iter().flatten().min().copied()
    }

    /// Stop and return the expired timer with the earliest deadline (ties: declaration
    /// order of [`Timer`]). `None` when nothing is due, so early calls are harmless.
    pub fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        let mut best: Option<(Instant, Timer)> = None;
        for timer in Timer::ALL {
            if let Some(at) = self.slots[timer.index()] {
                if at <= now && best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, timer));
                }
            }
        }
        let (_, timer) = best?;
        self.stop(timer);
        Some(timer)
    }
}

/// A retransmission timer that starts at T1 and doubles, optionally capped (T2 for E, G and
/// 2xx retransmissions; uncapped for A).
#[derive(Debug, Clone, Copy)]
pub(super) struct Backoff {
    interval: Duration,
    cap: Option<Duration>,
}

impl Backoff {
    pub fn capped(config: &TimerConfig) -> Backoff {
        Backoff {
            interval: config.t1,
            cap: Some(config.t2),
        }
    }

    pub fn uncapped(config: &TimerConfig) -> Backoff {
        Backoff {
            interval: config.t1,
            cap: None,
        }
    }

    /// The interval to wait now; the next call returns the doubled (capped) one.
    pub fn next_interval(&mut self) -> Duration {
        let current = self.interval;
        let doubled = current.saturating_mul(2);
        self.interval = match self.cap {
            Some(cap) => doubled.min(cap),
            None => doubled,
        };
        current
    }

    /// Switch to a fixed interval (client non-INVITE in Proceeding retransmits every T2).
    pub fn fix(&mut self, interval: Duration) {
        self.interval = interval;
        self.cap = Some(interval);
    }
}

/// 64·T1: the RFC's transaction timeout (B, F, H, J, L, M on UDP).
pub(super) fn sixty_four_t1(config: &TimerConfig) -> Duration {
    config.t1.saturating_mul(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pop_expired_prefers_earliest_deadline_then_declaration_order() {
        let base = crate::sip::transaction::tests::time_base();
        let mut table = TimerTable::default();
        table.set_after(Timer::G, base, Duration::from_secs(1));
        table.set_after(Timer::H, base, Duration::from_secs(1));
        table.set_after(Timer::A, base, Duration::from_millis(500));
        assert_eq!(table.pop_expired(base), None);
        let later = base + Duration::from_secs(2);
        assert_eq!(table.pop_expired(later), Some(Timer::A));
        assert_eq!(table.pop_expired(later), Some(Timer::H));
        assert_eq!(table.pop_expired(later), Some(Timer::G));
        assert_eq!(table.pop_expired(later), None);
        assert_eq!(table.next_timeout(), None);
    }

    #[test]
    fn capped_backoff_doubles_to_t2() {
        let mut b = Backoff::capped(&TimerConfig::default());
        let got: Vec<u64> = (0..6)
            .map(|_| b.next_interval().as_millis() as u64)
            .collect();
        assert_eq!(got, [500, 1000, 2000, 4000, 4000, 4000]);
    }
}
