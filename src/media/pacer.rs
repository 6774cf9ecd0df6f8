//! Sans-IO 20 ms pacer: frame n is due at `t0 + n·20 ms`, an absolute deadline, so the
//! outgoing stream never drifts however late a wake-up is.
//!
//! Sleeping "20 ms" after each packet would add every wake-up's latency to the stream and
//! the caller's jitter buffer would slowly underrun; absolute deadlines only ever jitter.
//!
//! **Stall policy.** A wake-up less than one frame late sends the due frame (nothing is
//! lost). When the task stalled so long that a later frame is already due as well, the pacer
//! skips to the frame whose slot is current, reports how many were skipped, and never sends a
//! burst: a burst would arrive at the caller's jitter buffer as late packets anyway. The RTP
//! timestamp is derived from the frame index, so it stays on the wall clock across the gap.
//!
//! Uses `tokio::time::Instant` so the session can run on tokio's paused test clock.
//!
//! OWNER: media-rtp helper.

use super::PTIME;
use std::time::Duration;
use tokio::time::Instant;

const FRAME_MS: u64 = PTIME.as_millis() as u64;

/// A frame to send now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    /// Index of the frame since `t0` (RTP timestamp = base + 160·index).
    pub index: u64,
    /// Frames whose slot passed without being sent (0 unless the task stalled).
    pub skipped: u64,
}

#[derive(Clone, Debug)]
pub struct Pacer {
    t0: Instant,
    next_index: u64,
}

impl Pacer {
    /// Frame 0 is due at `t0`.
    pub fn new(t0: Instant) -> Self {
        Pacer { t0, next_index: 0 }
    }

    /// Deadline of frame `index`; exact (integer milliseconds), no accumulated rounding.
    pub fn deadline_of(&self, index: u64) -> Instant {
        self.t0 + Duration::from_millis(index.saturating_mul(FRAME_MS))
    }

    /// When the next frame is due.
    pub fn next_deadline(&self) -> Instant {
        self.deadline_of(self.next_index)
    }

    /// Index of the next frame to send.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Called on a wake-up: the frame to send now, if any (at most one, see the stall policy).
    pub fn on_tick(&mut self, now: Instant) -> Option<Due> {
        if now < self.next_deadline() {
            return None;
        }
        let elapsed_ms = now.duration_since(self.t0).as_millis() as u64;
        let current = elapsed_ms / FRAME_MS;
        // `current >= next_index` because now >= next_deadline.
        let index = current.max(self.next_index);
        let skipped = index - self.next_index;
        self.next_index = index + 1;
        Some(Due { index, skipped })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_exact_multiples_of_ptime() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        assert_eq!(p.next_deadline(), t0);
        assert_eq!(
            p.on_tick(t0),
            Some(Due {
                index: 0,
                skipped: 0
            })
        );
        assert_eq!(p.next_deadline(), t0 + Duration::from_millis(20));
        // early wake-up: nothing due
        assert_eq!(p.on_tick(t0 + Duration::from_millis(19)), None);
        assert_eq!(
            p.on_tick(t0 + Duration::from_millis(20)),
            Some(Due {
                index: 1,
                skipped: 0
            })
        );
        assert_eq!(p.deadline_of(1_000_000), t0 + Duration::from_secs(20_000));
    }

    #[test]
    fn no_drift_over_ten_thousand_jittery_frames() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let mut sent = Vec::with_capacity(10_000);
        while sent.len() < 10_000 {
            // wake up 0..19.9 ms late, like a loaded scheduler
            let late = Duration::from_micros(rng.gen_range(0..19_900));
            let now = p.next_deadline() + late;
            // spurious early wake-ups do nothing
            assert_eq!(p.on_tick(now - late - Duration::from_micros(1)), None);
            let due = p.on_tick(now).expect("frame due");
            assert_eq!(due.skipped, 0);
            sent.push(due.index);
        }
        assert!(sent.iter().enumerate().all(|(i, &n)| i as u64 == n));
        assert_eq!(p.next_deadline(), t0 + Duration::from_secs(200));
    }

    #[test]
    fn stall_skips_to_the_current_frame_without_a_burst() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        p.on_tick(t0).unwrap();
        // stalled 95 ms: frames 1..=3 missed their slots, frame 4 is current
        let now = t0 + Duration::from_millis(95);
        assert_eq!(
            p.on_tick(now),
            Some(Due {
                index: 4,
                skipped: 3
            })
        );
        assert_eq!(p.on_tick(now), None, "no catch-up burst");
        assert_eq!(p.next_deadline(), t0 + Duration::from_millis(100));
        // 19 ms late: on time; 20 ms late: the following slot has begun, skip one
        let now = p.next_deadline() + Duration::from_millis(19);
        assert_eq!(
            p.on_tick(now),
            Some(Due {
                index: 5,
                skipped: 0
            })
        );
        let now = p.next_deadline() + Duration::from_millis(20);
        assert_eq!(
            p.on_tick(now),
            Some(Due {
                index: 7,
                skipped: 1
            })
        );
    }
}
