//! Waiting out a failing store: the ticket layer's retry pacing for store operations (the
//! local SQLite store, or the fleet's shared one), apart from the intake's own backoff.

use std::time::Duration;

/// Backoff between retries of a failing store operation: a busy or full store is a
/// condition to wait out, so the wait grows (to `max`) but retrying never stops.
#[derive(Debug)]
pub(crate) struct StoreBackoff {
    next: Duration,
    base: Duration,
    max: Duration,
}

impl StoreBackoff {
    pub(crate) fn new(base: Duration, max: Duration) -> StoreBackoff {
        StoreBackoff {
            next: base,
            base,
            max,
        }
    }

    /// The wait before the next try; doubles each time up to `max`.
    pub(crate) fn failed(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub(crate) fn succeeded(&mut self) {
        self.next = self.base;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_backoff_grows_to_its_cap_and_restarts_after_a_success() {
        let mut b = StoreBackoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let waits: Vec<u128> = (0..6).map(|_| b.failed().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        b.succeeded();
        assert_eq!(b.failed(), Duration::from_millis(100));
    }
}
