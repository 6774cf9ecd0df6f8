//! RTP packet parsing and building (RFC 3550) on top of `rtp-rs`.
//!
//! Parsing goes through `rtp_rs::RtpReader`, which validates the version, header length,
//! CSRC/extension lengths and padding before any field is read, so a hostile datagram
//! becomes an [`RtpError`] (counted and dropped by the session) and never a panic.
//! Building writes the fixed 12-byte header by hand into a caller-owned buffer: the media
//! task reuses one buffer for every packet, so sending allocates nothing.
//!
//! OWNER: media-rtp helper.

use rtp_rs::{RtpReader, RtpReaderError};

/// Fixed RTP header length without CSRCs or extension; the sender never adds either.
pub const RTP_HEADER_LEN: usize = 12;

/// Largest datagram we expect on an audio stream (Ethernet MTU); receive buffers use it.
pub const MAX_DATAGRAM: usize = 1500;

/// Why an inbound datagram is not a usable RTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error("datagram too short for RTP: {0} bytes")]
    TooShort(usize),
    #[error("unsupported RTP version {0}")]
    BadVersion(u8),
    #[error("RTP header truncated: needs {header_len} bytes, got {buffer_len}")]
    Truncated {
        header_len: usize,
        buffer_len: usize,
    },
    #[error("invalid RTP padding length {0}")]
    BadPadding(u8),
    #[error("output buffer too small: need {0} bytes")]
    BufferTooSmall(usize),
}

impl From<RtpReaderError> for RtpError {
    fn from(e: RtpReaderError) -> Self {
        match e {
            RtpReaderError::BufferTooShort(n) => RtpError::TooShort(n),
            RtpReaderError::UnsupportedVersion(v) => RtpError::BadVersion(v),
            RtpReaderError::HeadersTruncated {
                header_len,
                buffer_len,
            } => RtpError::Truncated {
                header_len,
                buffer_len,
            },
            RtpReaderError::PaddingLengthInvalid(p) => RtpError::BadPadding(p),
        }
    }
}

/// The fields of an inbound packet the media task uses; borrows the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Payload without header, CSRCs, extension or padding.
    pub payload: &'a [u8],
}

/// Parse one datagram. Never panics, whatever the bytes.
pub fn parse(datagram: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    let r = RtpReader::new(datagram)?;
    Ok(RtpPacket {
        payload_type: r.payload_type(),
        marker: r.mark(),
        sequence: u16::from(r.sequence_number()),
        timestamp: r.timestamp(),
        ssrc: r.ssrc(),
        payload: r.payload(),
    })
}

/// Outgoing stream state: one SSRC, a sequence number that increments per packet and a
/// timestamp on the 8 kHz media clock.
///
/// SSRC, first sequence number and timestamp base are random (RFC 3550 §5.1) so that a
/// re-INVITE or a new call on the same port is not mistaken for the old stream.
/// The timestamp is tied to the pacer's frame index (`base + 160·index`), which keeps it
/// continuous with wall-clock time even when frames are skipped after a stall.
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    sequence: u16,
    timestamp_base: u32,
    timestamp: u32,
    /// The next audio packet starts a talk-spurt (stream start, or after a gap in audio).
    talkspurt_pending: bool,
}

impl Default for RtpSender {
    fn default() -> Self {
        Self::new()
    }
}

impl RtpSender {
    /// Random SSRC, sequence number and timestamp base.
    pub fn new() -> Self {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        Self::with_state(rng.gen(), rng.gen(), rng.gen())
    }

    /// Explicit initial state (tests, reproducible captures).
    pub fn with_state(ssrc: u32, first_sequence: u16, timestamp_base: u32) -> Self {
        RtpSender {
            ssrc,
            sequence: first_sequence,
            timestamp_base,
            timestamp: timestamp_base,
            talkspurt_pending: true,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// Timestamp the next audio packet will carry.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Media timestamp of 20 ms frame `frame_index` since the stream started.
    pub fn timestamp_for_frame(&self, frame_index: u64) -> u32 {
        let samples = frame_index.wrapping_mul(super::FRAME_SAMPLES as u64);
        self.timestamp_base.wrapping_add(samples as u32)
    }

    /// Align the next audio packet with pacer frame `frame_index`.
    pub fn set_frame(&mut self, frame_index: u64) {
        self.timestamp = self.timestamp_for_frame(frame_index);
    }

    /// Mark the next audio packet as the first of a talk-spurt (RFC 3551 §4.1): after
    /// audio was suppressed (DTMF event, stall) or when a new prompt starts.
    pub fn start_talkspurt(&mut self) {
        self.talkspurt_pending = true;
    }

    /// Write one packet with the current timestamp and an explicit marker into `out`;
    /// returns its length. The sequence number advances, the timestamp does not.
    pub fn build(
        &mut self,
        payload_type: u8,
        marker: bool,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, RtpError> {
        self.build_at(payload_type, marker, self.timestamp, payload, out)
    }

    /// Like [`build`](Self::build) with an explicit timestamp (RFC 4733 events keep the
    /// timestamp of the event start in every packet of the event).
    pub fn build_at(
        &mut self,
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, RtpError> {
        let len = RTP_HEADER_LEN + payload.len();
        if out.len() < len {
            return Err(RtpError::BufferTooSmall(len));
        }
        out[0] = 0x80; // V=2, no padding, no extension, no CSRC
        out[1] = (u8::from(marker) << 7) | (payload_type & 0x7f);
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        out[RTP_HEADER_LEN..len].copy_from_slice(payload);
        self.sequence = self.sequence.wrapping_add(1);
        Ok(len)
    }

    /// One 20 ms audio frame: marker if a talk-spurt starts, then the timestamp advances
    /// by the number of samples in `payload` (160 for G.711 at ptime 20).
    pub fn build_audio(
        &mut self,
        payload_type: u8,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, RtpError> {
        let marker = self.talkspurt_pending;
        let n = self.build(payload_type, marker, payload, out)?;
        self.talkspurt_pending = false;
        self.timestamp = self.timestamp.wrapping_add(payload.len() as u32);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_packet_parses_back() {
        let mut tx = RtpSender::with_state(0xdead_beef, 65535, u32::MAX - 100);
        let mut buf = [0u8; MAX_DATAGRAM];
        let payload = [0x55u8; 160];
        let n = tx.build_audio(8, &payload, &mut buf).unwrap();
        assert_eq!(n, 172);
        let p = parse(&buf[..n]).unwrap();
        assert_eq!(p.payload_type, 8);
        assert!(p.marker);
        assert_eq!(p.sequence, 65535);
        assert_eq!(p.timestamp, u32::MAX - 100);
        assert_eq!(p.ssrc, 0xdead_beef);
        assert_eq!(p.payload, &payload[..]);

        // second frame: no marker, sequence wraps, timestamp +160 wraps
        let n = tx.build_audio(8, &payload, &mut buf).unwrap();
        let p = parse(&buf[..n]).unwrap();
        assert!(!p.marker);
        assert_eq!(p.sequence, 0);
        assert_eq!(p.timestamp, (u32::MAX - 100).wrapping_add(160));
    }

    #[test]
    fn talkspurt_marker_and_frame_alignment() {
        let mut tx = RtpSender::with_state(1, 10, 1000);
        let mut buf = [0u8; 200];
        let payload = [0u8; 160];
        tx.build_audio(0, &payload, &mut buf).unwrap();
        tx.set_frame(5);
        tx.start_talkspurt();
        let n = tx.build_audio(0, &payload, &mut buf).unwrap();
        let p = parse(&buf[..n]).unwrap();
        assert!(p.marker);
        assert_eq!(p.timestamp, 1000 + 5 * 160);
        assert_eq!(
            p.sequence, 11,
            "sequence stays contiguous across a timestamp jump"
        );
    }

    #[test]
    fn event_packets_keep_their_timestamp() {
        let mut tx = RtpSender::with_state(1, 0, 500);
        let mut buf = [0u8; 64];
        for i in 0..3u16 {
            let n = tx
                .build_at(101, i == 0, 777, &[1, 0, 0, 160], &mut buf)
                .unwrap();
            let p = parse(&buf[..n]).unwrap();
            assert_eq!(p.timestamp, 777);
            assert_eq!(p.sequence, i);
            assert_eq!(p.marker, i == 0);
        }
        assert_eq!(tx.timestamp(), 500, "events do not move the audio clock");
    }

    #[test]
    fn rejects_bad_input_without_panicking() {
        assert_eq!(parse(&[]), Err(RtpError::TooShort(0)));
        assert_eq!(parse(&[0x80; 11]), Err(RtpError::TooShort(11)));
        let mut v1 = [0u8; 20];
        v1[0] = 0x40;
        assert_eq!(parse(&v1), Err(RtpError::BadVersion(1)));
        // padding flag, padding length larger than the packet
        let mut pad = [0u8; 20];
        pad[0] = 0xa0;
        pad[19] = 50;
        assert_eq!(parse(&pad), Err(RtpError::BadPadding(50)));
        // padding flag with a zero padding length
        pad[19] = 0;
        assert!(matches!(parse(&pad), Err(RtpError::BadPadding(0))));
        // 15 CSRCs announced, none present
        let mut csrc = [0u8; 16];
        csrc[0] = 0x8f;
        assert!(matches!(parse(&csrc), Err(RtpError::Truncated { .. })));
        // extension announced, header missing
        let mut ext = [0u8; 14];
        ext[0] = 0x90;
        assert!(matches!(parse(&ext), Err(RtpError::Truncated { .. })));
        // every short prefix of every first byte: errors only, no panic
        for b0 in 0..=255u8 {
            for len in 0..40 {
                let mut d = vec![0xffu8; len];
                if len > 0 {
                    d[0] = b0;
                }
                let _ = parse(&d);
            }
        }
    }

    #[test]
    fn valid_padding_is_stripped() {
        let mut d = vec![0xa0u8, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        d.extend_from_slice(&[9, 9, 9, 0, 0, 3]);
        let p = parse(&d).unwrap();
        assert_eq!(p.payload, &[9, 9, 9]);
    }

    #[test]
    fn small_output_buffer_is_an_error() {
        let mut tx = RtpSender::new();
        let mut buf = [0u8; 20];
        assert_eq!(
            tx.build_audio(0, &[0u8; 160], &mut buf),
            Err(RtpError::BufferTooSmall(172))
        );
    }
}
