//! Media plane: everything that touches audio samples or RTP packets.
//!
//! **Architecture invariant:** media knows nothing about SIP, IVR menus, Whisper or tickets.
//! The call layer drives a [`session::MediaSession`] with commands and reads its events.

pub mod dtmf;
pub mod g711;
pub mod onset;
pub mod pacer;
pub mod preroll;
pub mod prompt;
pub mod resample;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod stats;
pub mod vad;

/// Narrowband telephony sample rate; everything on the wire is 8 kHz.
pub const SAMPLE_RATE: u32 = 8000;
/// Samples in one 20 ms packet at 8 kHz (ptime 20).
pub const FRAME_SAMPLES: usize = 160;
/// Packet interval.
pub const PTIME: std::time::Duration = std::time::Duration::from_millis(20);

/// The audio codecs the gateway speaks. G.711 only: it is what every trunk offers and it
/// costs nothing to transcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// The static RTP payload type (RFC 3551).
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The encoding name as written in `a=rtpmap`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// Codec for an encoding name (case-insensitive), as found in config or `a=rtpmap`.
    pub fn from_name(name: &str) -> Option<Codec> {
        if name.eq_ignore_ascii_case("PCMU") {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(Codec::Pcma)
        } else {
            None
        }
    }

    /// Encode one linear sample.
    #[inline]
    pub fn encode_sample(self, s: i16) -> u8 {
        match self {
            Codec::Pcmu => g711::linear_to_ulaw(s),
            Codec::Pcma => g711::linear_to_alaw(s),
        }
    }

    /// Decode one companded byte.
    #[inline]
    pub fn decode_sample(self, b: u8) -> i16 {
        match self {
            Codec::Pcmu => g711::ulaw_to_linear(b),
            Codec::Pcma => g711::alaw_to_linear(b),
        }
    }

    /// Encode `pcm` into `out` (same length); no allocation.
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) {
        for (o, &s) in out.iter_mut().zip(pcm) {
            *o = self.encode_sample(s);
        }
    }

    /// Decode `payload` into `out` (same length); no allocation.
    pub fn decode(self, payload: &[u8], out: &mut [i16]) {
        for (o, &b) in out.iter_mut().zip(payload) {
            *o = self.decode_sample(b);
        }
    }
}
