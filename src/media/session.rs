//! One RTP session per call: a tokio task that owns the socket, paces outgoing audio,
//! receives the caller's audio, detects DTMF, end-points and records a message.
//!
//! The call layer talks to it only through [`MediaSession`] (commands) and
//! [`MediaEvent`]s. Nothing here blocks, and the steady state allocates nothing per packet.
//!
//! OWNER: media-rtp helper. Contract below; the bodies are the helper's.

pub mod arrivals;
#[cfg(test)]
mod barge_tests;
pub mod bridge;
pub mod conversation;
mod listen;
mod recorder;
pub mod source;
mod speech;
#[cfg(test)]
mod strict_tests;
mod task;
#[cfg(test)]
mod tests;

pub use super::onset::OnsetConfig;
use super::prompt::SharedPrompt;
use super::sdp::Direction;
use super::stats::MediaCounters;
use super::vad::EndpointerConfig;
use super::Codec;
pub use arrivals::ArrivalStats;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use task::{Command, Task};
use tokio::sync::mpsc;

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
    ///
    /// Ports are handed out round-robin (wrapping around at the end of the range) so a port
    /// just released is not reused at once, where late packets of the old call would still
    /// arrive. Busy ports are skipped; when every even port is busy the error is `AddrInUse`.
    pub async fn bind(&self) -> std::io::Result<tokio::net::UdpSocket> {
        use std::io::{Error, ErrorKind};
        use std::sync::atomic::Ordering;
        let first = u32::from(self.min) + u32::from(self.min) % 2;
        let last = u32::from(self.max);
        if first > last {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("no even port in {}-{}", self.min, self.max),
            ));
        }
        let count = (last - first) / 2 + 1;
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        let start = ticket % count;
        for i in 0..count {
            let slot = (start + i) % count;
            let port = (first + 2 * slot) as u16;
            match tokio::net::UdpSocket::bind(SocketAddr::new(self.ip, port)).await {
                Ok(sock) => {
                    // continue after this port next time
                    let _ = self.next.compare_exchange(
                        ticket.wrapping_add(1),
                        slot + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    return Ok(sock);
                }
                Err(e) if e.kind() == ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::AddrInUse,
            format!("RTP port range {}-{} exhausted", self.min, self.max),
        ))
    }
}

/// Settings for one session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// End the call if no RTP at all arrives for this long.
    pub inactivity_timeout: Duration,
    /// Daemon-wide counters this session adds to (packets, pacing lateness, recordings);
    /// a fresh `Default` when nobody reads them (the test caller).
    pub counters: Arc<MediaCounters>,
    /// Strict RTP source: how long the learnt source must be silent before another may
    /// take its place (after [`source::PROBATION`] consecutive packets); `None`: only a
    /// re-offer with a new address moves it. See [`source`].
    pub strict_rtp_relearn: Option<Duration>,
}

/// Default of [`SessionConfig::strict_rtp_relearn`] (and of `[media] strict_rtp_relearn_ms`):
/// long against the 20 ms of a live stream, so that a stranger cannot slip in while the
/// caller talks, short against a call, so that a caller whose NAT moved is soon heard again.
pub const DEFAULT_STRICT_RTP_RELEARN: Duration = Duration::from_millis(2000);

impl SessionConfig {
    /// Settings with private counters and the default strict source.
    pub fn new(inactivity_timeout: Duration) -> Self {
        SessionConfig {
            inactivity_timeout,
            counters: Arc::default(),
            strict_rtp_relearn: Some(DEFAULT_STRICT_RTP_RELEARN),
        }
    }
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
    /// Silence within speech that ends an utterance: each one is handed out as a
    /// [`MediaEvent::Utterance`] while the recording goes on, so that it can be transcribed
    /// before the caller hangs up. Needs `endpointer`; `None`: no utterance events.
    pub utterance_pause: Option<Duration>,
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

/// Speech barge-in for one play request: the caller starting to talk stops the prompt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpeechBargeIn {
    /// What counts as the caller starting to talk (see [`crate::media::onset`]).
    pub onset: OnsetConfig,
    /// How much of the caller's latest audio the session keeps from now on, so that a
    /// recording started right after the barge-in can begin with the words that caused it
    /// ([`MediaSession::start_recording_with_preroll`]). Should exceed `onset.min_speech`.
    pub preroll: Duration,
}

/// Listening for a short spoken request (the spoken menu), see [`MediaSession::listen`].
#[derive(Clone, Copy, Debug)]
pub struct ListenSpec {
    /// When the caller counts as talking (the barge-in onset), and how much audio from
    /// before that the utterance starts with.
    pub speech: SpeechBargeIn,
    /// The trailing silence that ends the utterance (`no_speech_timeout` is not used: the
    /// onset already heard speech).
    pub endpointer: EndpointerConfig,
    /// The longest utterance; a caller who never pauses is cut there.
    pub max_duration: Duration,
}

/// What may cut a play request short.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BargeIn {
    /// A DTMF digit stops the queue.
    pub dtmf: bool,
    /// The caller talking stops the queue; `None`: speech never does.
    pub speech: Option<SpeechBargeIn>,
}

/// Events from the media task to the call.
#[derive(Debug)]
pub enum MediaEvent {
    /// The play queue ran out (`interrupted` if a digit, speech or `stop_playback()` cut
    /// it short).
    PlaybackDone { interrupted: bool },
    /// The caller started talking over a prompt played with speech barge-in; playback has
    /// stopped and `PlaybackDone { interrupted: true }` follows.
    SpeechStarted,
    /// A DTMF digit, once per RFC 4733 event.
    Dtmf(char),
    /// A recording finished and the WAV is closed.
    RecordingDone {
        path: PathBuf,
        reason: RecordEnd,
        duration: Duration,
        heard_speech: bool,
        /// The recorded 8 kHz samples, for transcription without re-reading the file.
        pcm: Arc<[i16]>,
    },
    /// A stretch of the recording in progress ended by an `utterance_pause`: the samples
    /// since the previous boundary (or the start), cut in the middle of the pause so that
    /// no word is split. The utterances of a recording, followed by the rest, are exactly
    /// the `RecordingDone` samples.
    Utterance {
        /// 0 for the first utterance of the recording.
        index: u32,
        /// Where the utterance begins in the recording.
        start: Duration,
        pcm: Arc<[i16]>,
    },
    /// Nothing received for `inactivity_timeout`.
    RtpTimeout,
    /// While listening ([`MediaSession::listen`]): the caller started talking. A prompt
    /// playing has stopped (its `PlaybackDone { interrupted: true }` follows); `Heard`
    /// follows when they pause.
    HeardStart,
    /// While listening: one utterance, from just before its onset to the pause after it.
    Heard { pcm: Arc<[i16]> },
}

/// Counters a session keeps; returned by [`MediaSession::close`].
#[derive(Clone, Debug, Default)]
pub struct MediaStats {
    /// Audio and DTMF packets that left the socket.
    pub packets_sent: u64,
    /// Valid packets of the negotiated payload types (audio, telephone-event, CN) from
    /// the latched source.
    pub packets_received: u64,
    /// Malformed datagrams, unknown payload types, short telephone-event payloads, and
    /// packets from a source other than the learnt one (strict source). (Well-formed
    /// packets arriving before `start()` are ignored without being counted.)
    pub packets_dropped: u64,
    /// Inter-arrival timing of the received audio, when
    /// [`track_arrivals`](MediaSession::track_arrivals) was asked for.
    pub arrivals: Option<ArrivalStats>,
}

/// Handle to a running media task.
///
/// Methods other than [`next_event`](Self::next_event) and [`close`](Self::close) only queue
/// a command and return at once; the task applies them in order.
pub struct MediaSession {
    local: SocketAddr,
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<MediaEvent>,
    task: tokio::task::JoinHandle<MediaStats>,
}

impl MediaSession {
    /// Start the task on an already bound socket. It sends nothing until [`start`](Self::start).
    /// Must be called from within a tokio runtime.
    pub fn spawn(socket: tokio::net::UdpSocket, cfg: SessionConfig) -> MediaSession {
        let local = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0));
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        // The task logs under the caller's span (the call and its Call-ID): tokio::spawn
        // does not carry the current span over by itself.
        let task = tokio::spawn(tracing::Instrument::instrument(
            Task::new(socket, cfg, ev_tx).run(cmd_rx),
            tracing::Span::current(),
        ));
        MediaSession {
            local,
            commands: cmd_tx,
            events: ev_rx,
            task,
        }
    }

    fn command(&self, cmd: Command) {
        // Fails only once the task has ended; next_event() then reports None.
        let _ = self.commands.send(cmd);
    }

    /// A handle for whoever negotiates the media (the call manager answering re-INVITEs)
    /// while the call's own task holds this session.
    pub fn control(&self) -> MediaControl {
        MediaControl {
            commands: self.commands.clone(),
        }
    }

    /// The peer's direction from the latest offer/answer (see [`MediaControl::set_direction`]).
    pub fn set_direction(&self, direction: Direction) {
        self.command(Command::Direction(direction));
    }

    /// Local RTP address (for the SDP).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Begin sending/receiving: `remote` from SDP until the caller's first packet arrives
    /// (symmetric RTP latches to the packet source).
    ///
    /// Comfort silence flows from now on, paced from this instant. An unspecified `remote`
    /// (`0.0.0.0`, hold) sends nothing until the caller's first packet. Calling it again
    /// (re-INVITE) keeps SSRC and sequence numbers, and the learnt source unless `remote`
    /// changed (strict source: see [`source`]).
    pub fn start(&self, remote: SocketAddr, codec: Codec, dtmf_pt: Option<u8>) {
        self.command(Command::Start {
            remote,
            codec,
            dtmf_pt,
        });
    }

    /// Join a bridge (`Some`, see [`bridge`]): from now on what this session hears also goes
    /// to the other end, and when no prompt is playing it plays what the other end hears
    /// (silence when there is none); digits cross as RFC 4733. `None` leaves the bridge.
    pub fn bridge(&self, end: Option<bridge::BridgeEnd>) {
        self.command(Command::Bridge(end));
    }

    /// Queue prompts; a DTMF digit stops the queue when `dtmf_barge_in`.
    ///
    /// Prompts are appended to what is already playing and play back to back; when the
    /// queue runs out, `PlaybackDone { interrupted: false }` follows (at once for an empty
    /// list). The latest call's `dtmf_barge_in` applies to the whole queue.
    pub fn play(&self, prompts: Vec<SharedPrompt>, dtmf_barge_in: bool) {
        self.play_with(
            prompts,
            BargeIn {
                dtmf: dtmf_barge_in,
                speech: None,
            },
        );
    }

    /// Like [`play`](Self::play), with speech barge-in as well when `barge_in.speech` is
    /// set: once the caller has talked for `onset.min_speech` over the queue, it stops at
    /// the next frame, and `SpeechStarted` then `PlaybackDone { interrupted: true }` follow.
    pub fn play_with(&self, prompts: Vec<SharedPrompt>, barge_in: BargeIn) {
        self.command(Command::Play { prompts, barge_in });
    }

    /// Drop the play queue now (comfort silence follows). If something was playing, its
    /// `PlaybackDone { interrupted: true }` follows, so every play ends with exactly one
    /// `PlaybackDone` however it ends.
    pub fn stop_playback(&self) {
        self.command(Command::StopPlayback);
    }

    /// Start recording the caller (a recording already running ends as `Stopped`).
    /// Ends with exactly one `RecordingDone`, emitted after the WAV is written.
    pub fn start_recording(&self, spec: RecordSpec) {
        self.start_recording_with_preroll(spec, Duration::ZERO);
    }

    /// Start recording with up to `preroll` of the caller's audio from *before* now at its
    /// start: after a speech barge-in, the words that triggered it. Only audio kept since a
    /// play request asked for speech barge-in is available (up to its `preroll`).
    pub fn start_recording_with_preroll(&self, spec: RecordSpec, preroll: Duration) {
        self.command(Command::StartRecording { spec, preroll });
    }

    /// Listen for short utterances (`Some`) until told otherwise (`None`): each time the
    /// caller starts talking, a prompt playing stops, `HeardStart` follows, and `Heard`
    /// with the utterance when they pause. Independent of recording and play requests.
    pub fn listen(&self, spec: Option<ListenSpec>) {
        self.command(Command::Listen(spec));
    }

    /// End the recording now (`RecordEnd::Stopped`); nothing happens if none is running.
    pub fn stop_recording(&self) {
        self.command(Command::StopRecording);
    }

    /// Send one RFC 4733 digit (test caller). Digits queue up and go out one after the
    /// other; audio is suppressed while an event is sent. Ignored (with a warning) when
    /// `start()` got no telephone-event payload type or `digit` is not a DTMF key.
    pub fn send_dtmf(&self, digit: char, duration: Duration) {
        self.command(Command::SendDtmf { digit, duration });
    }

    /// Keep inter-arrival statistics of the received audio (load testing), returned in
    /// [`MediaStats::arrivals`] by [`close`](Self::close). Allocates once, now; a session
    /// that never asks pays nothing.
    pub fn track_arrivals(&self) {
        self.command(Command::TrackArrivals);
    }

    /// Next event; `None` once the task has ended.
    ///
    /// Every received digit is reported as `Dtmf`, also the stop digit of a recording
    /// (followed by its `RecordingDone`) and a barge-in digit (followed by
    /// `PlaybackDone { interrupted: true }`, as a speech barge-in's `SpeechStarted` is).
    pub async fn next_event(&mut self) -> Option<MediaEvent> {
        self.events.recv().await
    }

    /// Stop the task and collect its counters. A recording still running is discarded
    /// (call `stop_recording()` and wait for `RecordingDone` first to keep it).
    pub async fn close(self) -> MediaStats {
        self.command(Command::Close);
        self.task.await.unwrap_or_default()
    }
}

/// What the call manager may tell a session it does not own: the outcome of an offer/answer
/// that only media cares about. Cheap to clone; commands sent after the session ended are
/// dropped.
#[derive(Clone, Debug)]
pub struct MediaControl {
    commands: mpsc::UnboundedSender<Command>,
}

impl MediaControl {
    /// The peer's direction from the latest offer/answer (RFC 3264 §6.1). While the peer
    /// does not receive (`sendonly`, `inactive`: it put the call on hold) the session sends
    /// nothing and its play queue pauses where it is (so `PlaybackDone` waits, and the IVR
    /// with it); audio it receives then is not recorded nor taken for speech. While the peer
    /// does not send (anything but `sendrecv`), silence is no RTP timeout. `sendrecv`
    /// resumes both, the inactivity clock starting over.
    pub fn set_direction(&self, direction: Direction) {
        let _ = self.commands.send(Command::Direction(direction));
    }
}
