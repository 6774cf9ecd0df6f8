//! Bridging two media sessions (the transfer's B2BUA, issue 14): what one session hears
//! the other plays, both ways, with the digits (RFC 4733) too.
//!
//! Each session stays the owner of its socket, its strict source, its SSRC, sequence
//! numbers and 20 ms cadence; only the audio crosses, as decoded PCM through a fixed ring.
//! So the two legs may use different codecs (PCMA caller, PCMU operator), and each side's
//! timing is its own pacer's, not the other side's arrival jitter.
//!
//! Hot path: the rings are allocated once when the bridge is made; a packet costs a
//! `try_lock` of an uncontended mutex (never waited on: if the other task holds it, that
//! frame is dropped) and a copy. No allocation, no blocking.

use std::sync::{Arc, Mutex};

/// The most audio a ring holds: 200 ms. Older audio is dropped first, so a stall on one
/// side never builds up delay on the other.
const CAPACITY: usize = 1600;
/// Digits waiting to be sent on the other side.
const DIGITS: usize = 8;
/// A minimal jitter buffer: after an underrun, play nothing until two frames are there, so
/// that arrival jitter costs one 40 ms gap rather than a gap every other frame.
const PRIME: usize = 320;
/// `try_lock` attempts before giving a frame up: the other side holds the lock only for a
/// copy of one frame, so a short spin always wins unless that thread was preempted.
const SPINS: usize = 64;

struct Ring {
    pcm: Box<[i16; CAPACITY]>,
    start: usize,
    len: usize,
    primed: bool,
    digits: [char; DIGITS],
    ndigits: usize,
}

/// One direction of the bridge.
pub struct PcmRing(Mutex<Ring>);

impl PcmRing {
    /// The lock, if it can be had without waiting on another thread.
    fn lock(&self) -> Option<std::sync::MutexGuard<'_, Ring>> {
        for _ in 0..SPINS {
            if let Ok(g) = self.0.try_lock() {
                return Some(g);
            }
            std::hint::spin_loop();
        }
        None
    }

    fn new() -> PcmRing {
        PcmRing(Mutex::new(Ring {
            pcm: Box::new([0; CAPACITY]),
            start: 0,
            len: 0,
            primed: false,
            digits: ['\0'; DIGITS],
            ndigits: 0,
        }))
    }

    /// Add heard audio; when full, the oldest samples go.
    pub fn push(&self, samples: &[i16]) {
        let Some(mut r) = self.lock() else {
            return;
        };
        for &s in samples {
            if r.len == CAPACITY {
                r.start = (r.start + 1) % CAPACITY;
                r.len -= 1;
            }
            let at = (r.start + r.len) % CAPACITY;
            r.pcm[at] = s;
            r.len += 1;
        }
    }

    /// Fill `out` with the oldest audio; returns how many samples were there (the rest
    /// is left untouched for the caller to pad).
    pub fn pop(&self, out: &mut [i16]) -> usize {
        let Some(mut r) = self.lock() else {
            return 0;
        };
        if !r.primed {
            if r.len < PRIME {
                return 0;
            }
            r.primed = true;
        }
        if r.len < out.len() {
            r.primed = false; // underrun: wait for two frames again
        }
        let n = out.len().min(r.len);
        for o in out.iter_mut().take(n) {
            *o = r.pcm[r.start];
            r.start = (r.start + 1) % CAPACITY;
        }
        r.len -= n;
        n
    }

    pub fn push_digit(&self, d: char) {
        if let Some(mut r) = self.lock() {
            if r.ndigits < DIGITS {
                let i = r.ndigits;
                r.digits[i] = d;
                r.ndigits += 1;
            }
        }
    }

    pub fn pop_digit(&self) -> Option<char> {
        let mut r = self.lock()?;
        if r.ndigits == 0 {
            return None;
        }
        let d = r.digits[0];
        r.digits.copy_within(1.., 0);
        r.ndigits -= 1;
        Some(d)
    }
}

/// One session's end of a bridge: what it hears goes `out`, what it plays comes `inp`.
#[derive(Clone)]
pub struct BridgeEnd {
    pub(super) out: Arc<PcmRing>,
    pub(super) inp: Arc<PcmRing>,
    /// The conversation's recording (`record_bridged`): what this session plays out of the
    /// bridge, i.e. the other party's voice, frame by frame.
    pub(super) tap: Option<super::conversation::Tap>,
}

impl BridgeEnd {
    /// This end records what it plays (the other party) into a conversation's channel.
    pub fn recorded(mut self, tap: super::conversation::Tap) -> BridgeEnd {
        self.tap = Some(tap);
        self
    }
}

impl std::fmt::Debug for BridgeEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BridgeEnd")
    }
}

/// The two ends of a new bridge: give one to each session (`MediaSession::bridge`).
pub fn pair() -> (BridgeEnd, BridgeEnd) {
    let (ab, ba) = (Arc::new(PcmRing::new()), Arc::new(PcmRing::new()));
    (
        BridgeEnd {
            out: ab.clone(),
            inp: ba.clone(),
            tap: None,
        },
        BridgeEnd {
            out: ba,
            inp: ab,
            tap: None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_and_digits_cross_in_order_and_a_full_ring_drops_the_oldest() {
        let (a, b) = pair();
        a.out.push(&[1, 2, 3]);
        let mut out = [0i16; 2];
        assert_eq!(b.inp.pop(&mut out), 0, "not two frames yet: nothing");
        a.out.push(&[0; PRIME]);
        assert_eq!(b.inp.pop(&mut out), 2);
        assert_eq!(out, [1, 2]);
        assert_eq!(b.inp.pop(&mut out), 2);
        assert_eq!(out[0], 3);
        let mut rest = [0i16; PRIME];
        assert_eq!(
            b.inp.pop(&mut rest),
            PRIME - 1,
            "an underrun gives what is there"
        );
        a.out.push(&[7; 10]);
        assert_eq!(
            b.inp.pop(&mut out),
            0,
            "and then waits for two frames again"
        );
        let many: Vec<i16> = (0..CAPACITY as i16 + 10).collect();
        b.out.push(&many);
        const { assert!(CAPACITY > PRIME) };
        let mut first = [0i16; 1];
        assert_eq!(a.inp.pop(&mut first), 1);
        assert_eq!(first[0], 10, "the 10 oldest samples were dropped");
        a.out.push_digit('5');
        a.out.push_digit('#');
        assert_eq!(b.inp.pop_digit(), Some('5'));
        assert_eq!(b.inp.pop_digit(), Some('#'));
        assert_eq!(b.inp.pop_digit(), None);
    }
}
