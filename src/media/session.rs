//! One RTP session per call: a tokio task that owns the socket, paces outgoing audio,
//! receives the caller's audio, detects DTMF, end-points and records a message.
//!
//! The call layer talks to it only through [`MediaSession`] (commands) and
//! [`MediaEvent`]s. Nothing here blocks, and the steady state allocates nothing per packet.
//!
//! OWNER: media-rtp helper. Contract below; the bodies are the helper's.

use super::prompt::SharedPrompt;
use super::vad::EndpointerConfig;
use super::Codec;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// RTP port range shared by all sessions; hands out even ports (RTCP would take the odd one).
#[derive(Debug)]
pub struct PortPool {
    ip: IpAddr,
    min: u16,
    max: u16,
    next: std::sync::atomic::AtomicU32,
}

impl PortPool {
    pub fn new(ip: IpAddr, min: u16, max: u16) -> Self {
        PortPool {
            ip,
            min,
            max,
            next: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Bind a UDP socket on the next free even port in the range.
    pub async fn bind(&self) -> std::io::Result<tokio::net::UdpSocket> {
        let _ = (&self.ip, self.min, self.max, &self.next);
        todo!("media-rtp helper")
    }
}

/// Settings for one session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// End the call if no RTP at all arrives for this long.
    pub inactivity_timeout: Duration,
}

/// What to do with the caller's audio while recording.
#[derive(Clone, Debug)]
pub struct RecordSpec {
    /// WAV file to write (8 kHz, 16-bit, mono).
    pub path: PathBuf,
    /// Hard cap.
    pub max_duration: Duration,
    /// End-pointer settings (end of speech / no speech); `None` records until stopped
    /// (the test caller records everything it hears).
    pub endpointer: Option<EndpointerConfig>,
    /// DTMF digit that stops the recording (usually `#`).
    pub stop_digit: Option<char>,
}

/// Why a recording ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordEnd {
    StopDigit,
    EndOfSpeech,
    NoSpeech,
    MaxDuration,
    /// `stop_recording()` was called (e.g. the caller hung up).
    Stopped,
}

/// Events from the media task to the call.
#[derive(Debug)]
pub enum MediaEvent {
    /// The play queue ran out (`interrupted` if a DTMF digit cut it short).
    PlaybackDone { interrupted: bool },
    /// A DTMF digit, once per RFC 4733 event.
    Dtmf(char),
    /// A recording finished and the WAV is closed.
    RecordingDone {
        path: PathBuf,
        reason: RecordEnd,
        duration: Duration,
        heard_speech: bool,
        /// The recorded 8 kHz samples, for transcription without re-reading the file.
        pcm: std::sync::Arc<[i16]>,
    },
    /// Nothing received for `inactivity_timeout`.
    RtpTimeout,
}

/// Counters a session keeps; returned by [`MediaSession::close`].
#[derive(Clone, Debug, Default)]
pub struct MediaStats {
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_dropped: u64,
}

/// Handle to a running media task.
pub struct MediaSession {}

impl MediaSession {
    /// Start the task on an already bound socket. It sends nothing until [`start`](Self::start).
    pub fn spawn(socket: tokio::net::UdpSocket, cfg: SessionConfig) -> MediaSession {
        let _ = (socket, cfg);
        todo!("media-rtp helper")
    }

    /// Local RTP address (for the SDP).
    pub fn local_addr(&self) -> SocketAddr {
        todo!("media-rtp helper")
    }

    /// Begin sending/receiving: `remote` from SDP until the caller's first packet arrives
    /// (symmetric RTP latches to the packet source).
    pub fn start(&self, remote: SocketAddr, codec: Codec, dtmf_pt: Option<u8>) {
        let _ = (remote, codec, dtmf_pt);
        todo!("media-rtp helper")
    }

    /// Queue prompts; a DTMF digit stops the queue when `dtmf_barge_in`.
    pub fn play(&self, prompts: Vec<SharedPrompt>, dtmf_barge_in: bool) {
        let _ = (prompts, dtmf_barge_in);
        todo!("media-rtp helper")
    }

    /// Drop the play queue now (comfort silence follows).
    pub fn stop_playback(&self) {
        todo!("media-rtp helper")
    }

    pub fn start_recording(&self, spec: RecordSpec) {
        let _ = spec;
        todo!("media-rtp helper")
    }

    pub fn stop_recording(&self) {
        todo!("media-rtp helper")
    }

    /// Send one RFC 4733 digit (test caller).
    pub fn send_dtmf(&self, digit: char, duration: Duration) {
        let _ = (digit, duration);
        todo!("media-rtp helper")
    }

    /// Next event; `None` once the task has ended.
    pub async fn next_event(&mut self) -> Option<MediaEvent> {
        todo!("media-rtp helper")
    }

    /// Stop the task and collect its counters.
    pub async fn close(self) -> MediaStats {
        todo!("media-rtp helper")
    }
}
