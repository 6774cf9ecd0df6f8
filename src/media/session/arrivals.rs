//! Arrival timing of the audio a session receives, for the load generator: how evenly the
//! far end paces its 20 ms packets, as seen by the receiver.
//!
//! Opt-in per session ([`MediaSession::track_arrivals`](super::MediaSession::track_arrivals)):
//! a session that never asks pays one `Option` check per packet. A tracking session
//! allocates its histogram once, when asked, so the per-packet cost stays allocation-free.

use std::time::Duration;
use tokio::time::Instant;

/// Histogram resolution of inter-arrival intervals.
pub const BUCKET_US: u64 = 100;
/// Intervals up to this are binned; longer ones land in the last bucket (the exact maximum
/// is kept separately).
pub const HISTOGRAM_RANGE_US: u64 = 200_000;
const BUCKETS: usize = (HISTOGRAM_RANGE_US / BUCKET_US) as usize + 1;

/// Inter-arrival statistics of one received audio stream (or several, merged).
#[derive(Clone, Debug)]
pub struct ArrivalStats {
    /// Audio packets seen (in arrival order, whatever their sequence number).
    pub packets: u64,
    /// Intervals between consecutive audio packets, in [`BUCKET_US`] bins.
    histogram: Box<[u32; BUCKETS]>,
    /// Largest interval seen.
    pub max_interval: Duration,
    /// Packets missing by sequence number (a forward jump of more than one).
    pub lost: u64,
    /// 20 ms frames missing by RTP timestamp between consecutive in-order packets: what
    /// the sender's pacer skipped after a stall (sequence numbers stay contiguous then).
    pub skipped_frames: u64,
    /// Packets behind the highest sequence number seen (reordered or duplicated).
    pub out_of_order: u64,
    /// RFC 3550 §6.4.1 interarrival jitter at the end of the stream, and its largest value,
    /// in microseconds (from arrival times against RTP timestamps at 8 kHz).
    pub jitter_us: f64,
    pub max_jitter_us: f64,
    last: Option<(Instant, u16, u32)>,
}

impl Default for ArrivalStats {
    fn default() -> Self {
        Self::new()
    }
}

impl ArrivalStats {
    pub fn new() -> Self {
        ArrivalStats {
            packets: 0,
            histogram: Box::new([0; BUCKETS]),
            max_interval: Duration::ZERO,
            lost: 0,
            skipped_frames: 0,
            out_of_order: 0,
            jitter_us: 0.0,
            max_jitter_us: 0.0,
            last: None,
        }
    }

    /// One audio packet with RTP `sequence` and `timestamp` arrived at `at`.
    pub fn on_packet(&mut self, at: Instant, sequence: u16, timestamp: u32) {
        self.packets += 1;
        if let Some((prev_at, prev_seq, prev_ts)) = self.last {
            let interval = at.saturating_duration_since(prev_at);
            let us = interval.as_micros() as u64;
            let bucket = ((us / BUCKET_US) as usize).min(BUCKETS - 1);
            self.histogram[bucket] += 1;
            self.max_interval = self.max_interval.max(interval);
            let step = sequence.wrapping_sub(prev_seq);
            if step == 0 || step > u16::MAX / 2 {
                self.out_of_order += 1;
                return; // keep the latest in-order packet as the reference
            }
            self.lost += u64::from(step - 1);
            let ts_step = timestamp.wrapping_sub(prev_ts);
            let frame = crate::media::FRAME_SAMPLES as u32;
            // expected: one frame per sequence step; a jump of under a minute is a skip
            let expected = u32::from(step) * frame;
            if ts_step > expected && ts_step - expected < 60 * crate::media::SAMPLE_RATE {
                self.skipped_frames += u64::from((ts_step - expected) / frame);
            }
            // D(i-1, i) = (Rj - Ri) - (Sj - Si), both in microseconds.
            let ts_us = f64::from(timestamp.wrapping_sub(prev_ts) as i32) * 125.0;
            let d = us as f64 - ts_us;
            self.jitter_us += (d.abs() - self.jitter_us) / 16.0;
            self.max_jitter_us = self.max_jitter_us.max(self.jitter_us);
        }
        self.last = Some((at, sequence, timestamp));
    }

    /// Intervals recorded (one fewer than the packets of each stream).
    pub fn intervals(&self) -> u64 {
        self.histogram.iter().map(|&n| u64::from(n)).sum()
    }

    /// The `q`-quantile (0..=1) of the inter-arrival interval, at bucket resolution (the
    /// upper edge of the bucket, so it never understates); `None` without intervals.
    pub fn interval_quantile(&self, q: f64) -> Option<Duration> {
        let total = self.intervals();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &n) in self.histogram.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                if i == BUCKETS - 1 {
                    return Some(self.max_interval);
                }
                let upper = Duration::from_micros((i as u64 + 1) * BUCKET_US);
                return Some(upper.min(self.max_interval));
            }
        }
        Some(self.max_interval)
    }

    /// Intervals outside `nominal ± tolerance` (late or bunched packets).
    pub fn intervals_outside(&self, nominal: Duration, tolerance: Duration) -> u64 {
        let lo = nominal.saturating_sub(tolerance).as_micros() as u64;
        let hi = (nominal + tolerance).as_micros() as u64;
        self.histogram
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let from = *i as u64 * BUCKET_US;
                let to = from + BUCKET_US;
                // a bucket counts as outside when it lies wholly outside [lo, hi]
                to <= lo || from > hi
            })
            .map(|(_, &n)| u64::from(n))
            .sum()
    }

    /// Add another stream's statistics (for totals across calls). The jitter fields
    /// keep the larger value.
    pub fn merge(&mut self, other: &ArrivalStats) {
        self.packets += other.packets;
        for (a, b) in self.histogram.iter_mut().zip(other.histogram.iter()) {
            *a += b;
        }
        self.max_interval = self.max_interval.max(other.max_interval);
        self.lost += other.lost;
        self.skipped_frames += other.skipped_frames;
        self.out_of_order += other.out_of_order;
        self.jitter_us = self.jitter_us.max(other.jitter_us);
        self.max_jitter_us = self.max_jitter_us.max(other.max_jitter_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(stats: &mut ArrivalStats, start: Instant, arrivals_ms: &[(f64, u16)]) {
        for &(ms, seq) in arrivals_ms {
            let at = start + Duration::from_micros((ms * 1000.0) as u64);
            stats.on_packet(at, seq, u32::from(seq) * 160);
        }
    }

    #[test]
    fn perfect_pacing_has_no_jitter_loss_or_outliers() {
        let mut s = ArrivalStats::new();
        let t0 = Instant::now();
        let pkts: Vec<(f64, u16)> = (0..100u16).map(|i| (f64::from(i) * 20.0, i)).collect();
        feed(&mut s, t0, &pkts);
        assert_eq!(s.packets, 100);
        assert_eq!(s.intervals(), 99);
        assert_eq!(s.lost, 0);
        assert_eq!(s.jitter_us, 0.0);
        let p99 = s.interval_quantile(0.99).unwrap();
        assert_eq!(p99, Duration::from_millis(20));
        assert_eq!(
            s.intervals_outside(Duration::from_millis(20), Duration::from_millis(2)),
            0
        );
    }

    #[test]
    fn a_late_packet_and_a_lost_one_show_up() {
        let mut s = ArrivalStats::new();
        let t0 = Instant::now();
        // 0, 20, 45 (5 ms late), 60, then seq 5 at 100 (seq 4 lost)
        feed(
            &mut s,
            t0,
            &[(0.0, 0), (20.0, 1), (45.0, 2), (60.0, 3), (100.0, 5)],
        );
        assert_eq!(s.lost, 1);
        assert_eq!(s.max_interval, Duration::from_millis(40));
        assert_eq!(
            s.intervals_outside(Duration::from_millis(20), Duration::from_millis(2)),
            3,
            "25 ms, 15 ms and the 40 ms gap"
        );
        assert!(s.jitter_us > 0.0);
        assert_eq!(s.interval_quantile(1.0), Some(Duration::from_millis(40)));
        assert!(s.interval_quantile(0.5).unwrap() <= Duration::from_millis(21));
    }

    #[test]
    fn frames_skipped_by_the_senders_pacer_are_counted_apart_from_loss() {
        let mut s = ArrivalStats::new();
        let t0 = Instant::now();
        // sequence contiguous, timestamp jumps 3 frames ahead after a 80 ms stall
        s.on_packet(t0, 10, 1600);
        s.on_packet(t0 + Duration::from_millis(20), 11, 1760);
        s.on_packet(t0 + Duration::from_millis(100), 12, 1760 + 4 * 160);
        assert_eq!(s.lost, 0);
        assert_eq!(s.skipped_frames, 3);
    }

    #[test]
    fn merge_adds_counts_and_keeps_worst() {
        let t0 = Instant::now();
        let mut a = ArrivalStats::new();
        feed(&mut a, t0, &[(0.0, 0), (20.0, 1)]);
        let mut b = ArrivalStats::new();
        feed(&mut b, t0, &[(0.0, 7), (30.0, 8), (50.0, 10)]);
        a.merge(&b);
        assert_eq!(a.packets, 5);
        assert_eq!(a.intervals(), 3);
        assert_eq!(a.lost, 1);
        assert_eq!(a.max_interval, Duration::from_millis(30));
    }
}
