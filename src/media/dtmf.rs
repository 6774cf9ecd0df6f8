//! RFC 4733 telephone-event: receive (one digit per event, however many end packets) and
//! send (for the test caller).
//!
//! An event is identified by its RTP timestamp: every packet of one key press (start,
//! updates, the three redundant end packets) carries the timestamp of the event start, and
//! the next key press, even of the same key, starts at a later timestamp. Keying on it makes
//! the receiver immune to duplicates, end retransmissions, reordering and lost start packets.
//!
//! OWNER: media-rtp helper.

use std::time::Duration;

/// RFC 4733 interval between updates of a running event.
pub const UPDATE_INTERVAL: Duration = Duration::from_millis(50);
/// Spacing of the three redundant end packets.
pub const END_SPACING: Duration = Duration::from_millis(20);
/// Volume we send (−10 dBm0, a typical keypad level).
const SEND_VOLUME: u8 = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    #[error("telephone-event payload too short: {0} bytes")]
    TooShort(usize),
}

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    /// In timestamp units (8 kHz samples) since the event start.
    pub duration: u16,
}

impl TelephoneEvent {
    pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, DtmfError> {
        if payload.len() < 4 {
            return Err(DtmfError::TooShort(payload.len()));
        }
        Ok(TelephoneEvent {
            event: payload[0],
            end: payload[1] & 0x80 != 0,
            volume: payload[1] & 0x3f,
            duration: u16::from_be_bytes([payload[2], payload[3]]),
        })
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }
}

/// Event code of a DTMF key (0-9, `*`=10, `#`=11, A-D=12-15).
pub fn event_code(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// DTMF key of an event code; other events (flash, fax tones, ...) are not digits.
pub fn digit_of(event: u8) -> Option<char> {
    match event {
        0..=9 => Some((b'0' + event) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + event - 12) as char),
        _ => None,
    }
}

/// Remembers the events already reported, by RTP timestamp.
#[derive(Debug, Default, Clone)]
pub struct DtmfReceiver {
    /// Timestamps of the last reported events; a ring so a straggler from an older event
    /// (reordered behind the next key press) is still recognised.
    recent: [Option<u32>; 8],
    next_slot: usize,
}

impl DtmfReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one telephone-event packet; returns the digit the first time its event is seen
    /// (start, update or end packet alike, so a lost start packet loses nothing).
    pub fn on_event(&mut self, timestamp: u32, ev: &TelephoneEvent) -> Option<char> {
        let digit = digit_of(ev.event)?;
        if self.recent.contains(&Some(timestamp)) {
            return None;
        }
        self.recent[self.next_slot] = Some(timestamp);
        self.next_slot = (self.next_slot + 1) % self.recent.len();
        Some(digit)
    }

    /// Forget all events (new SSRC: timestamps restart elsewhere).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// One packet of an outgoing event, `at` after the event start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    pub at: Duration,
    pub marker: bool,
    pub payload: [u8; 4],
}

/// The packets for one key press lasting `duration` (clamped to 40 ms..8 s): updates every
/// 50 ms with growing duration, the marker on the first, then three end packets 20 ms apart
/// carrying the final duration. All go out with the same RTP timestamp (the event start).
/// `None` if `digit` is not a DTMF key.
pub fn digit_packets(digit: char, duration: Duration) -> Option<Vec<DtmfPacket>> {
    let event = event_code(digit)?;
    let duration = duration.clamp(Duration::from_millis(40), Duration::from_millis(8000));
    let samples = |d: Duration| (d.as_millis() as u64 * 8).min(u16::MAX as u64) as u16;
    let mut out = Vec::new();
    let mut at = Duration::ZERO;
    while at < duration {
        let covered = (at + UPDATE_INTERVAL).min(duration);
        out.push(DtmfPacket {
            at,
            marker: at.is_zero(),
            payload: TelephoneEvent {
                event,
                end: false,
                volume: SEND_VOLUME,
                duration: samples(covered),
            }
            .to_bytes(),
        });
        at += UPDATE_INTERVAL;
    }
    for i in 0..3u32 {
        out.push(DtmfPacket {
            at: duration + END_SPACING * i,
            marker: false,
            payload: TelephoneEvent {
                event,
                end: true,
                volume: SEND_VOLUME,
                duration: samples(duration),
            }
            .to_bytes(),
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: u8, end: bool, duration: u16) -> TelephoneEvent {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
    }

    #[test]
    fn codes_round_trip() {
        for d in "0123456789*#ABCD".chars() {
            assert_eq!(digit_of(event_code(d).unwrap()), Some(d));
        }
        assert_eq!(event_code('x'), None);
        assert_eq!(digit_of(16), None);
        let e = ev(11, true, 1234);
        assert_eq!(TelephoneEvent::parse(&e.to_bytes()), Ok(e));
        assert_eq!(TelephoneEvent::parse(&[1, 2]), Err(DtmfError::TooShort(2)));
    }

    #[test]
    fn sender_sequence_shape() {
        let pkts = digit_packets('5', Duration::from_millis(120)).unwrap();
        let at: Vec<u64> = pkts.iter().map(|p| p.at.as_millis() as u64).collect();
        assert_eq!(at, vec![0, 50, 100, 120, 140, 160]);
        assert!(pkts[0].marker && pkts[1..].iter().all(|p| !p.marker));
        let evs: Vec<_> = pkts
            .iter()
            .map(|p| TelephoneEvent::parse(&p.payload).unwrap())
            .collect();
        assert!(evs.iter().all(|e| e.event == 5));
        assert_eq!(
            evs.iter().map(|e| e.duration).collect::<Vec<_>>(),
            vec![400, 800, 960, 960, 960, 960]
        );
        assert_eq!(evs.iter().filter(|e| e.end).count(), 3);
        assert!(digit_packets('x', Duration::from_millis(100)).is_none());
    }

    #[test]
    fn one_digit_per_event_despite_duplicates_and_end_retransmissions() {
        let mut rx = DtmfReceiver::new();
        let mut got = Vec::new();
        let pkts = digit_packets('7', Duration::from_millis(200)).unwrap();
        for p in pkts.iter().chain(pkts.iter()) {
            let e = TelephoneEvent::parse(&p.payload).unwrap();
            got.extend(rx.on_event(1000, &e));
        }
        assert_eq!(got, vec!['7']);
    }

    #[test]
    fn lost_start_and_reordering_still_give_one_digit_each() {
        let mut rx = DtmfReceiver::new();
        let mut got = Vec::new();
        // '1' at ts 1000: start packets lost, only ends arrive
        got.extend(rx.on_event(1000, &ev(1, true, 800)));
        got.extend(rx.on_event(1000, &ev(1, true, 800)));
        // '2' at ts 3000 arrives, then a late straggler of '1'
        got.extend(rx.on_event(3000, &ev(2, false, 400)));
        got.extend(rx.on_event(1000, &ev(1, false, 400)));
        got.extend(rx.on_event(3000, &ev(2, true, 800)));
        // non-digit event (flash) is ignored
        got.extend(rx.on_event(5000, &ev(16, true, 800)));
        assert_eq!(got, vec!['1', '2']);
    }

    #[test]
    fn two_presses_of_the_same_key_give_two_digits() {
        let mut rx = DtmfReceiver::new();
        let mut got = Vec::new();
        for ts in [8000u32, 9600] {
            for p in digit_packets('#', Duration::from_millis(100)).unwrap() {
                got.extend(rx.on_event(ts, &TelephoneEvent::parse(&p.payload).unwrap()));
            }
        }
        assert_eq!(got, vec!['#', '#']);
    }
}
