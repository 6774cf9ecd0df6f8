//! Counters shared by every media session of the daemon, read by the metrics endpoint.
//!
//! Plain atomics with `Relaxed` ordering: each is an independent tally, nobody derives a
//! decision from two of them together. Sessions bump them from their own task; a packet
//! costs one uncontended-in-practice atomic add and never a lock or an allocation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the pacing-lateness histogram buckets, in microseconds. A tick is how
/// late the media task woke up after a frame's deadline: tens of µs on an idle machine;
/// beyond a frame (20 ms) the pacer skips frames and the caller hears a gap.
pub const LATENESS_BOUNDS_US: [u64; 10] = [
    100, 250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
];

/// A fixed-bucket histogram (Prometheus semantics: cumulative on export, `le` bounds),
/// lock-free: one atomic per bucket plus count and sum.
#[derive(Debug)]
pub struct LatenessHistogram {
    /// Non-cumulative: `buckets[i]` counts values in `(bound[i-1], bound[i]]`; the last one
    /// is the overflow (`+Inf`).
    buckets: [AtomicU64; LATENESS_BOUNDS_US.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Default for LatenessHistogram {
    fn default() -> Self {
        LatenessHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }
}

impl LatenessHistogram {
    pub fn observe(&self, late: Duration) {
        let us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        let i = LATENESS_BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENESS_BOUNDS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// `(upper bound in µs or None for +Inf, cumulative count)` per bucket, then the total
    /// count and the sum in µs. Read bucket by bucket, so a scrape racing an observation may
    /// be off by one in a bucket; Prometheus tolerates that.
    pub fn snapshot(&self) -> (Vec<(Option<u64>, u64)>, u64, u64) {
        let mut cumulative = 0;
        let mut out = Vec::with_capacity(self.buckets.len());
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Ordering::Relaxed);
            out.push((LATENESS_BOUNDS_US.get(i).copied(), cumulative));
        }
        (
            out,
            self.count.load(Ordering::Relaxed),
            self.sum_us.load(Ordering::Relaxed),
        )
    }
}

/// Daemon-wide media counters. Sessions get an `Arc` through
/// [`SessionConfig`](super::session::SessionConfig).
#[derive(Debug, Default)]
pub struct MediaCounters {
    /// Valid packets accepted from callers (audio, telephone-event, comfort noise).
    pub packets_in: AtomicU64,
    /// Packets that left our sockets (audio and DTMF).
    pub packets_out: AtomicU64,
    /// Malformed, unexpected payload type, or spoofed source: see `MediaStats::packets_dropped`.
    pub packets_dropped: AtomicU64,
    /// Of `packets_dropped`: valid packets from a source other than the learnt one (strict
    /// source; a stranger on the port, or a newcomer on probation).
    pub packets_wrong_source: AtomicU64,
    /// Sources re-learnt after the old one fell silent and the new one passed probation.
    pub sources_relearned: AtomicU64,
    /// Sends that failed (full socket buffer, unreachable): the frame is lost.
    pub send_errors: AtomicU64,
    /// Outgoing frames skipped because the media task woke up more than a frame late.
    pub frames_skipped: AtomicU64,
    /// Incoming packets missing by RTP sequence number (gaps in the latched stream).
    pub packets_lost: AtomicU64,
    /// How late each 20 ms tick ran.
    pub lateness: LatenessHistogram,
    /// Recordings whose WAV was written, and those that failed to write.
    pub recordings_written: AtomicU64,
    pub recording_errors: AtomicU64,
    /// Media sessions running now.
    pub sessions_active: AtomicU64,
}

impl MediaCounters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_with_le_bounds() {
        let h = LatenessHistogram::default();
        h.observe(Duration::from_micros(50)); // <= 100
        h.observe(Duration::from_micros(100)); // <= 100 (le is inclusive)
        h.observe(Duration::from_micros(101)); // <= 250
        h.observe(Duration::from_millis(30)); // <= 50 ms
        h.observe(Duration::from_secs(2)); // +Inf
        let (buckets, count, sum) = h.snapshot();
        assert_eq!(count, 5);
        assert_eq!(sum, 50 + 100 + 101 + 30_000 + 2_000_000);
        assert_eq!(buckets[0], (Some(100), 2));
        assert_eq!(buckets[1], (Some(250), 3));
        assert_eq!(buckets[7], (Some(20_000), 3));
        assert_eq!(buckets[8], (Some(50_000), 4));
        assert_eq!(buckets.last(), Some(&(None, 5)));
    }
}
