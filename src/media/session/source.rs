//! Strict RTP source: which datagrams arriving at a call's RTP port are the caller's.
//!
//! An RTP port is reachable by anyone who can guess it. Plain symmetric latching ("answer
//! wherever the packets come from") lets a stranger streaming its own SSRC from another port
//! take the call: our packets would go to the stranger and the stranger's audio into the
//! recording, and so into a citizen's ticket. So, as Asterisk's `strictrtp` and rtpengine's
//! strict source do:
//!
//! - the first valid packet after `start()` teaches the source (symmetric latching, RFC 4961:
//!   behind NAT the SDP address is often not where the packets come from);
//! - from then on only that address (IP and port) is heard; a new SSRC from it is a new
//!   stream of the same caller (a PBX re-originating media), not a new source;
//! - another source is learnt only (a) after a re-offer with a new address
//!   ([`StrictSource::relearn`]), or (b) when the learnt source has been silent for
//!   `relearn_after` **and** the newcomer then sends [`PROBATION`] packets of one SSRC with
//!   consecutive sequence numbers (Asterisk's probation): a caller whose NAT binding moved
//!   gets its audio back after a short gap; a stranger cannot interleave with a live caller.
//!
//! Sans-IO: the caller of [`StrictSource::on_packet`] passes the time in; nothing here reads
//! a clock, allocates or logs.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

/// Consecutive packets a new source must send, after the learnt one went silent, before it
/// is learnt (Asterisk's `probation`, which defaults to 4; one more costs 20 ms).
pub const PROBATION: u8 = 5;

/// What to do with one valid packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// From the learnt source, same stream.
    Accept,
    /// Accept it as the first packet of a new stream: sequence, DTMF and recording
    /// timelines start over, and our packets go to `src` from now on. `relearned` when the
    /// source itself changed after silence and probation (not a first latch, not a new SSRC
    /// from the learnt address).
    NewStream { relearned: bool },
    /// Not from the learnt source: neither heard nor answered.
    WrongSource,
}

/// A source on probation: its SSRC, the sequence number it must send next, and how many
/// consecutive packets it has sent so far.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    src: SocketAddr,
    ssrc: u32,
    next_seq: u16,
    run: u8,
}

#[derive(Clone, Copy, Debug)]
enum State {
    /// Nothing learnt yet (a new session, or a re-offer with a new address).
    Learning,
    Learnt {
        src: SocketAddr,
        ssrc: u32,
        last_seen: Instant,
        candidate: Option<Candidate>,
    },
}

/// The latching and probation decision of one session (see the module docs).
#[derive(Clone, Debug)]
pub struct StrictSource {
    /// Silence of the learnt source after which another may go on probation; `None`:
    /// never (only a re-offer moves the source, as rtpengine's strict source).
    relearn_after: Option<Duration>,
    state: State,
}

impl StrictSource {
    pub fn new(relearn_after: Option<Duration>) -> Self {
        StrictSource {
            relearn_after,
            state: State::Learning,
        }
    }

    /// A re-offer gave a new address: the next valid packet teaches the source again.
    pub fn relearn(&mut self) {
        self.state = State::Learning;
    }

    /// The learnt source, if any.
    pub fn source(&self) -> Option<SocketAddr> {
        match self.state {
            State::Learning => None,
            State::Learnt { src, .. } => Some(src),
        }
    }

    /// Judge one valid packet (parsed, of a negotiated payload type) from `src`.
    pub fn on_packet(&mut self, src: SocketAddr, ssrc: u32, seq: u16, now: Instant) -> Verdict {
        let relearn_after = self.relearn_after;
        match &mut self.state {
            State::Learning => {
                self.state = State::Learnt {
                    src,
                    ssrc,
                    last_seen: now,
                    candidate: None,
                };
                Verdict::NewStream { relearned: false }
            }
            State::Learnt {
                src: learnt,
                ssrc: learnt_ssrc,
                last_seen,
                candidate,
            } if *learnt == src => {
                *last_seen = now;
                *candidate = None;
                if *learnt_ssrc == ssrc {
                    Verdict::Accept
                } else {
                    *learnt_ssrc = ssrc;
                    Verdict::NewStream { relearned: false }
                }
            }
            State::Learnt {
                last_seen,
                candidate,
                ..
            } => {
                let silent = relearn_after.is_some_and(|d| now.duration_since(*last_seen) >= d);
                if !silent {
                    *candidate = None;
                    return Verdict::WrongSource;
                }
                let run = match candidate {
                    Some(c) if c.src == src && c.ssrc == ssrc && c.next_seq == seq => c.run + 1,
                    _ => 1,
                };
                if run >= PROBATION {
                    self.state = State::Learnt {
                        src,
                        ssrc,
                        last_seen: now,
                        candidate: None,
                    };
                    return Verdict::NewStream { relearned: true };
                }
                *candidate = Some(Candidate {
                    src,
                    ssrc,
                    next_seq: seq.wrapping_add(1),
                    run,
                });
                Verdict::WrongSource
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLER: &str = "192.0.2.10:4000";
    const STRANGER: &str = "198.51.100.7:5000";
    const RELEARN: Duration = Duration::from_millis(2000);

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// `n` packets of `ssrc` from `src`, 20 ms apart from `at`, sequence from `seq`; the
    /// verdicts, and the time after the last one.
    fn stream(
        g: &mut StrictSource,
        src: &str,
        ssrc: u32,
        seq: u16,
        n: u16,
        at: Instant,
    ) -> (Vec<Verdict>, Instant) {
        let mut t = at;
        let mut out = Vec::new();
        for i in 0..n {
            out.push(g.on_packet(addr(src), ssrc, seq.wrapping_add(i), t));
            t += Duration::from_millis(20);
        }
        (out, t)
    }

    #[test]
    fn the_first_packet_is_learnt_and_a_stranger_is_refused_while_the_caller_talks() {
        let mut g = StrictSource::new(Some(RELEARN));
        let t0 = Instant::now();
        assert_eq!(
            g.on_packet(addr(CALLER), 1, 100, t0),
            Verdict::NewStream { relearned: false }
        );
        // the stranger interleaves a long run of consecutive packets with the caller's
        let mut t = t0;
        for i in 0..500u16 {
            t += Duration::from_millis(10);
            assert_eq!(g.on_packet(addr(STRANGER), 9, i, t), Verdict::WrongSource);
            t += Duration::from_millis(10);
            assert_eq!(g.on_packet(addr(CALLER), 1, 101 + i, t), Verdict::Accept);
        }
        assert_eq!(g.source(), Some(addr(CALLER)));
    }

    #[test]
    fn the_learnt_ssrc_from_another_port_is_refused() {
        let mut g = StrictSource::new(Some(RELEARN));
        let t0 = Instant::now();
        g.on_packet(addr(CALLER), 1, 100, t0);
        let other_port = "192.0.2.10:4002";
        let (v, _) = stream(&mut g, other_port, 1, 101, 20, t0);
        assert!(v.iter().all(|v| *v == Verdict::WrongSource), "{v:?}");
    }

    #[test]
    fn a_new_ssrc_from_the_learnt_source_is_a_new_stream_of_the_caller() {
        let mut g = StrictSource::new(None);
        let t0 = Instant::now();
        g.on_packet(addr(CALLER), 1, 100, t0);
        assert_eq!(
            g.on_packet(addr(CALLER), 2, 7, t0),
            Verdict::NewStream { relearned: false }
        );
        assert_eq!(g.on_packet(addr(CALLER), 2, 8, t0), Verdict::Accept);
    }

    #[test]
    fn after_silence_a_new_source_is_learnt_only_after_a_run_of_consecutive_packets() {
        let mut g = StrictSource::new(Some(RELEARN));
        let t0 = Instant::now();
        g.on_packet(addr(CALLER), 1, 100, t0);
        // not silent long enough yet: even a long run is refused
        let (v, _) = stream(&mut g, STRANGER, 9, 0, 50, t0 + Duration::from_millis(900));
        assert!(v.iter().all(|v| *v == Verdict::WrongSource), "{v:?}");
        // silent for the whole relearn time: PROBATION - 1 packets refused, then learnt
        let (v, t) = stream(&mut g, STRANGER, 9, 50, PROBATION as u16, t0 + RELEARN);
        assert!(v[..PROBATION as usize - 1]
            .iter()
            .all(|v| *v == Verdict::WrongSource));
        assert_eq!(v.last(), Some(&Verdict::NewStream { relearned: true }));
        assert_eq!(g.source(), Some(addr(STRANGER)));
        // and now the old one is the stranger
        assert_eq!(g.on_packet(addr(CALLER), 1, 101, t), Verdict::WrongSource);
    }

    #[test]
    fn probation_restarts_on_a_sequence_gap_another_ssrc_or_another_source() {
        let mut g = StrictSource::new(Some(RELEARN));
        let t0 = Instant::now();
        g.on_packet(addr(CALLER), 1, 100, t0);
        let t = t0 + RELEARN;
        let s = addr(STRANGER);
        for seq in [10, 11, 12, 13] {
            assert_eq!(g.on_packet(s, 9, seq, t), Verdict::WrongSource);
        }
        // a gap: the run starts over at 15
        for seq in [15, 16, 17, 18] {
            assert_eq!(g.on_packet(s, 9, seq, t), Verdict::WrongSource);
        }
        // another SSRC breaks it too
        assert_eq!(g.on_packet(s, 8, 19, t), Verdict::WrongSource);
        // a third source in between breaks it
        for seq in [20, 21, 22] {
            assert_eq!(g.on_packet(s, 9, seq, t), Verdict::WrongSource);
        }
        assert_eq!(
            g.on_packet(addr("203.0.113.1:6000"), 9, 23, t),
            Verdict::WrongSource
        );
        assert_eq!(g.source(), Some(addr(CALLER)));
        // sequence numbers wrap around within a run
        let (v, _) = stream(&mut g, STRANGER, 9, u16::MAX - 1, PROBATION as u16, t);
        assert_eq!(v.last(), Some(&Verdict::NewStream { relearned: true }));
    }

    #[test]
    fn the_caller_speaking_again_cancels_a_probation() {
        let mut g = StrictSource::new(Some(RELEARN));
        let t0 = Instant::now();
        g.on_packet(addr(CALLER), 1, 100, t0);
        let t = t0 + RELEARN;
        for seq in 0..PROBATION as u16 - 1 {
            assert_eq!(g.on_packet(addr(STRANGER), 9, seq, t), Verdict::WrongSource);
        }
        assert_eq!(g.on_packet(addr(CALLER), 1, 101, t), Verdict::Accept);
        // the caller is no longer silent: the stranger's next packet does not complete a run
        assert_eq!(
            g.on_packet(addr(STRANGER), 9, PROBATION as u16 - 1, t),
            Verdict::WrongSource
        );
        assert_eq!(g.source(), Some(addr(CALLER)));
    }

    #[test]
    fn without_relearning_on_silence_only_a_re_offer_moves_the_source() {
        let mut g = StrictSource::new(None);
        let t0 = Instant::now();
        g.on_packet(addr(CALLER), 1, 100, t0);
        let (v, t) = stream(&mut g, STRANGER, 9, 0, 100, t0 + Duration::from_secs(600));
        assert!(v.iter().all(|v| *v == Verdict::WrongSource));
        g.relearn();
        assert_eq!(g.source(), None);
        assert_eq!(
            g.on_packet(addr(STRANGER), 9, 100, t),
            Verdict::NewStream { relearned: false }
        );
    }
}
