//! Call counters: answered, rejected by status code, ended by hang-up reason, active.
//!
//! Fixed tables of atomics, so the manager counts without locks or allocation and the
//! metrics endpoint reads them at any time.

use std::sync::atomic::{AtomicU64, Ordering};

/// Hang-up reasons of the call record (`hangup.reason`), plus `failed` (the call task
/// panicked) and `other` for anything newer than this table.
pub const HANGUP_REASONS: [&str; 10] = [
    "completed",
    "caller_bye",
    "rtp_timeout",
    "max_duration",
    "no_input",
    "ack_timeout",
    "shutdown",
    "interrupted",
    "failed",
    "other",
];

/// Rejections have a slot per final status code 300..=699.
const REJECT_CODES: usize = 400;

/// Counters about calls, for metrics and tests.
#[derive(Debug)]
pub struct CallCounters {
    pub answered: AtomicU64,
    /// All rejections (the sum of [`Self::rejected_by_code`]).
    pub rejected: AtomicU64,
    /// All ended calls (the sum of [`Self::ended_by_reason`]).
    pub completed: AtomicU64,
    pub active: AtomicU64,
    rejected_codes: Box<[AtomicU64]>,
    ended: [AtomicU64; HANGUP_REASONS.len()],
    bye_failures: [AtomicU64; BYE_FAILURES.len()],
}

/// What can go wrong with our BYE: the peer wants credentials (401/407), refuses it
/// otherwise, or never answers.
pub const BYE_FAILURES: [&str; 3] = ["auth", "refused", "timeout"];

impl Default for CallCounters {
    fn default() -> Self {
        CallCounters {
            answered: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            active: AtomicU64::new(0),
            rejected_codes: (0..REJECT_CODES).map(|_| AtomicU64::new(0)).collect(),
            ended: std::array::from_fn(|_| AtomicU64::new(0)),
            bye_failures: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl CallCounters {
    /// An INVITE that did not become a call, answered with `code`.
    pub fn rejected_with(&self, code: u16) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = usize::from(code)
            .checked_sub(300)
            .and_then(|i| self.rejected_codes.get(i))
        {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An answered call ended, for `reason` (the call record's `hangup.reason`).
    pub fn ended(&self, reason: &str) {
        let i = HANGUP_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(HANGUP_REASONS.len() - 1);
        self.ended[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Our BYE failed for `why` (one of [`BYE_FAILURES`]); the call ended anyway.
    pub fn bye_failed(&self, why: &str) {
        if let Some(i) = BYE_FAILURES.iter().position(|w| *w == why) {
            self.bye_failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every BYE failure kind with its count (zeros included).
    pub fn bye_failures(&self) -> Vec<(&'static str, u64)> {
        BYE_FAILURES
            .iter()
            .zip(&self.bye_failures)
            .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// Non-zero rejections: `(code, count)`.
    pub fn rejected_by_code(&self) -> Vec<(u16, u64)> {
        self.rejected_codes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let n = n.load(Ordering::Relaxed);
                (n > 0).then_some((i as u16 + 300, n))
            })
            .collect()
    }

    /// Every reason with its count (zeros included, so dashboards see the series).
    pub fn ended_by_reason(&self) -> Vec<(&'static str, u64)> {
        HANGUP_REASONS
            .iter()
            .zip(&self.ended)
            .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_by_code_and_endings_by_reason() {
        let c = CallCounters::default();
        c.rejected_with(404);
        c.rejected_with(503);
        c.rejected_with(503);
        c.ended("completed");
        c.ended("something new");
        assert_eq!(c.rejected.load(Ordering::Relaxed), 3);
        assert_eq!(c.rejected_by_code(), vec![(404, 1), (503, 2)]);
        let ended = c.ended_by_reason();
        assert_eq!(ended[0], ("completed", 1));
        assert_eq!(ended.last(), Some(&("other", 1)));
        assert_eq!(ended.iter().map(|(_, n)| n).sum::<u64>(), 2);
    }
}
