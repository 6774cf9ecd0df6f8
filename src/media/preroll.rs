//! Pre-roll: the last fraction of a second of the caller's audio, kept so that a recording
//! started *because* the caller began talking (speech barge-in) can begin with the words
//! that triggered it rather than a quarter second into them.
//!
//! A fixed ring of samples, allocated once (when a prompt first asks for speech barge-in)
//! and overwritten in place: pushing a packet never allocates. Samples are kept in arrival
//! order as decoded; unlike the recorder, lost packets are not padded with silence (a
//! missing 20 ms in half a second of lead-in is not worth timeline bookkeeping).

/// Ring buffer of the most recent `capacity` samples.
#[derive(Clone, Debug)]
pub struct PreRoll {
    buf: Box<[i16]>,
    /// Where the next sample goes.
    head: usize,
    /// Valid samples (≤ capacity).
    len: usize,
}

impl PreRoll {
    /// A ring holding up to `capacity` samples (8 per millisecond at 8 kHz).
    pub fn new(capacity: usize) -> Self {
        PreRoll {
            buf: vec![0; capacity].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append samples, overwriting the oldest once full.
    pub fn push(&mut self, pcm: &[i16]) {
        let cap = self.buf.len();
        if cap == 0 {
            return;
        }
        // Only the last `cap` samples of a long push can survive it.
        let pcm = &pcm[pcm.len().saturating_sub(cap)..];
        let first = pcm.len().min(cap - self.head);
        self.buf[self.head..self.head + first].copy_from_slice(&pcm[..first]);
        let rest = pcm.len() - first;
        self.buf[..rest].copy_from_slice(&pcm[first..]);
        self.head = (self.head + pcm.len()) % cap;
        self.len = (self.len + pcm.len()).min(cap);
    }

    /// The newest `n` samples (fewer if fewer are held), oldest first, as two slices whose
    /// concatenation is the audio (the ring may wrap between them).
    pub fn latest(&self, n: usize) -> (&[i16], &[i16]) {
        let cap = self.buf.len();
        let n = n.min(self.len);
        if n == 0 {
            return (&[], &[]);
        }
        let start = (self.head + cap - n) % cap;
        if start + n <= cap {
            (&self.buf[start..start + n], &[])
        } else {
            (&self.buf[start..], &self.buf[..self.head])
        }
    }

    /// Forget what is held (the capacity stays).
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(r: &PreRoll, n: usize) -> Vec<i16> {
        let (a, b) = r.latest(n);
        [a, b].concat()
    }

    #[test]
    fn keeps_the_newest_samples_in_order_across_wraps() {
        let mut r = PreRoll::new(10);
        assert!(r.is_empty());
        assert_eq!(joined(&r, 5), Vec::<i16>::new());
        r.push(&[1, 2, 3, 4]);
        assert_eq!(joined(&r, 10), [1, 2, 3, 4]);
        assert_eq!(joined(&r, 2), [3, 4]);
        r.push(&[5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(r.len(), 10);
        assert_eq!(joined(&r, 10), [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(joined(&r, 3), [10, 11, 12]);
        // many pushes of packet size, each wrapping at a different place
        let mut next = 13i16;
        for _ in 0..37 {
            let pkt: Vec<i16> = (next..next + 3).collect();
            next += 3;
            r.push(&pkt);
            let want: Vec<i16> = (next - 10..next).collect();
            assert_eq!(joined(&r, 10), want);
            assert_eq!(joined(&r, 4), want[6..]);
        }
    }

    #[test]
    fn a_push_longer_than_the_ring_keeps_its_tail() {
        let mut r = PreRoll::new(4);
        r.push(&[1, 2]);
        r.push(&[3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(joined(&r, 4), [6, 7, 8, 9]);
        r.clear();
        assert!(r.is_empty());
        assert_eq!(r.capacity(), 4);
        r.push(&[1]);
        assert_eq!(joined(&r, 4), [1]);
    }

    #[test]
    fn zero_capacity_holds_nothing() {
        let mut r = PreRoll::new(0);
        r.push(&[1, 2, 3]);
        assert!(r.is_empty());
        assert_eq!(joined(&r, 3), Vec::<i16>::new());
    }
}
