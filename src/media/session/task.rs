//! The media task behind a [`MediaSession`](super::MediaSession): one loop, one timer.
//!
//! The loop waits on three things: a command from the call, a datagram, or the single timer,
//! which is re-armed to the earliest of the next frame deadline, the next DTMF packet, the
//! inactivity deadline and the recording's own limits. Every buffer is allocated once when
//! the task starts; a packet in the steady state costs no allocation.
//!
//! The outgoing half (tick, play queue, DTMF out) is in `send.rs`, the incoming half (strict
//! source, audio, digits) in `receive.rs`; this file holds the loop and the commands.

use super::listen::{Heard, Listener};
use super::recorder::{write_wav, Recorder};
use super::source::{StrictSource, Verdict};
use super::speech::SpeechWatch;
use super::{BargeIn, ListenSpec, MediaEvent, MediaStats, RecordEnd, RecordSpec, SessionConfig};
use crate::media::dtmf::{self, DtmfPacket, DtmfReceiver, TelephoneEvent};
use crate::media::pacer::Pacer;
use crate::media::prompt::SharedPrompt;
use crate::media::rtp::{self, RtpSender, MAX_DATAGRAM};
use crate::media::sdp::Direction;
use crate::media::stats::MediaCounters;
use crate::media::{Codec, FRAME_SAMPLES};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Payload type of RFC 3389 comfort noise: accepted as a sign of life, not decoded.
const PT_COMFORT_NOISE: u8 = 13;
/// Receive buffer: larger than any sane RTP datagram, so oversize ones are truncated
/// rather than split (and then fail to decode as nothing worse than noise).
const RX_BUF: usize = 2048;

mod receive;
mod send;

pub(super) enum Command {
    Start {
        remote: SocketAddr,
        codec: Codec,
        dtmf_pt: Option<u8>,
    },
    Play {
        prompts: Vec<SharedPrompt>,
        barge_in: BargeIn,
    },
    StopPlayback,
    StartRecording {
        spec: RecordSpec,
        preroll: Duration,
    },
    StopRecording,
    /// Listen for short utterances (`Some`) or stop (`None`).
    Listen(Option<ListenSpec>),
    SendDtmf {
        digit: char,
        duration: Duration,
    },
    TrackArrivals,
    /// The peer's direction from the latest offer/answer.
    Direction(Direction),
    /// Join (`Some`) or leave a bridge with another session.
    Bridge(Option<super::bridge::BridgeEnd>),
    Close,
}

/// State that exists once `start()` told us where and how to send.
struct Stream {
    codec: Codec,
    dtmf_pt: Option<u8>,
    /// SDP address until latched, then the caller's packet source.
    remote: SocketAddr,
    /// The address the latest offer/answer gave (a re-offer with another one re-learns).
    offered: SocketAddr,
    /// Which datagrams are the caller's.
    source: StrictSource,
    pacer: Pacer,
    sender: RtpSender,
    last_rx: Instant,
    timeout_reported: bool,
    /// Sequence number expected next from the latched source (loss counting).
    next_seq: Option<u16>,
}

/// What a valid inbound packet carries.
enum Kind {
    Audio,
    Dtmf(TelephoneEvent),
    ComfortNoise,
}

/// An RFC 4733 event being sent.
struct DtmfSending {
    start: Instant,
    timestamp: u32,
    packets: Vec<DtmfPacket>,
    next: usize,
}

pub(super) struct Task {
    socket: UdpSocket,
    /// The same socket (a duplicated descriptor, non-blocking) for sending: tokio's
    /// `try_send_to` reports `WouldBlock` until the reactor has seen the socket writable
    /// once, which would drop the first frames; a plain non-blocking send has no such state.
    send_socket: Option<std::net::UdpSocket>,
    cfg: SessionConfig,
    events: mpsc::UnboundedSender<MediaEvent>,
    stream: Option<Stream>,
    queue: VecDeque<SharedPrompt>,
    /// Byte offset into the front prompt.
    offset: usize,
    playing: bool,
    barge_in: bool,
    /// Speech onset and pre-roll (speech barge-in).
    speech: SpeechWatch,
    dtmf_rx: DtmfReceiver,
    dtmf_tx: Option<DtmfSending>,
    dtmf_pending: VecDeque<(char, Duration)>,
    recorder: Option<Recorder>,
    /// Listening for the spoken menu.
    listener: Option<Listener>,
    /// The peer's direction (RFC 3264): while it does not receive (`sendonly`, `inactive`:
    /// on hold) nothing is sent and the play queue waits; while it does not send, silence
    /// is no RTP timeout.
    peer_direction: Direction,
    stats: MediaStats,
    /// The other session of a transfer's bridge, when bridged.
    bridge: Option<super::bridge::BridgeEnd>,
    /// PCM taken from the bridge for the next frame.
    relay_pcm: [i16; FRAME_SAMPLES],
    tx_buf: Box<[u8; MAX_DATAGRAM]>,
    pcm_buf: Box<[i16; RX_BUF]>,
    frame: [u8; FRAME_SAMPLES],
}

impl Task {
    pub fn new(
        socket: UdpSocket,
        cfg: SessionConfig,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> Self {
        let send_socket = dup_for_sending(&socket);
        Task {
            socket,
            send_socket,
            cfg,
            events,
            stream: None,
            queue: VecDeque::new(),
            offset: 0,
            playing: false,
            barge_in: false,
            speech: SpeechWatch::default(),
            dtmf_rx: DtmfReceiver::new(),
            dtmf_tx: None,
            dtmf_pending: VecDeque::with_capacity(8),
            recorder: None,
            listener: None,
            peer_direction: Direction::SendRecv,
            stats: MediaStats::default(),
            bridge: None,
            relay_pcm: [0; FRAME_SAMPLES],
            tx_buf: Box::new([0; MAX_DATAGRAM]),
            pcm_buf: Box::new([0; RX_BUF]),
            frame: [0; FRAME_SAMPLES],
        }
    }

    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) -> MediaStats {
        let counters = self.cfg.counters.clone();
        MediaCounters::add(&counters.sessions_active, 1);
        let _active = scopeguard(move || {
            counters
                .sessions_active
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
        let mut rx_buf = vec![0u8; RX_BUF];
        let timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        loop {
            let deadline = self.next_deadline();
            if deadline != armed {
                if let Some(d) = deadline {
                    timer.as_mut().reset(d);
                }
                armed = deadline;
            }
            tokio::select! {
                biased;
                () = &mut timer, if armed.is_some() => {
                    // never act before the deadline that fired, whatever the clock says
                    let now = armed.map_or_else(Instant::now, |d| d.max(Instant::now()));
                    armed = None; // force a re-arm even if the deadline did not move
                    self.on_timer(now);
                }
                cmd = commands.recv() => match cmd {
                    None | Some(Command::Close) => break,
                    Some(cmd) => self.on_command(cmd),
                },
                res = self.socket.recv_from(&mut rx_buf) => match res {
                    Ok((len, src)) => self.on_datagram(&rx_buf[..len], src, Instant::now()),
                    // e.g. ICMP errors surfaced on some platforms: the socket stays usable
                    Err(e) => tracing::debug!(error = %e, "RTP recv error"),
                },
            }
        }
        self.stats
    }

    pub(super) fn emit(&self, ev: MediaEvent) {
        // The call may have dropped its handle; events then have nobody to go to.
        let _ = self.events.send(ev);
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut d: Option<Instant> = self.recorder.as_ref().map(Recorder::deadline);
        let mut consider = |t: Instant| d = Some(d.map_or(t, |d| d.min(t)));
        if let Some(s) = &self.stream {
            consider(s.pacer.next_deadline());
            if !s.timeout_reported && self.expects_rx() {
                consider(s.last_rx + self.cfg.inactivity_timeout);
            }
        }
        if let Some(tx) = &self.dtmf_tx {
            if let Some(p) = tx.packets.get(tx.next) {
                consider(tx.start + p.at);
            }
        }
        d
    }

    fn on_command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Start {
                remote,
                codec,
                dtmf_pt,
            } => {
                // A re-start (re-INVITE) continues the same stream: SSRC, sequence numbers,
                // the 20 ms cadence and the timestamp clock carry on, only the target and
                // codec are new. The learnt source stays unless the address moved: a
                // session refresh or a hold/resume at the same address must not open the
                // port to whoever sends first.
                let (sender, t0, source, target, next_seq) = match self.stream.take() {
                    Some(old) => {
                        let next = old.pacer.next_index();
                        let sender = RtpSender::with_state(
                            old.sender.ssrc(),
                            old.sender.next_sequence(),
                            old.sender.timestamp_for_frame(next),
                        );
                        let t0 = old.pacer.deadline_of(next);
                        if old.offered == remote {
                            (sender, t0, old.source, old.remote, old.next_seq)
                        } else {
                            tracing::debug!(%remote, "new RTP address offered: learning the source again");
                            let mut source = old.source;
                            source.relearn();
                            (sender, t0, source, remote, None)
                        }
                    }
                    None => (
                        RtpSender::new(),
                        now,
                        StrictSource::new(self.cfg.strict_rtp_relearn),
                        remote,
                        None,
                    ),
                };
                self.stream = Some(Stream {
                    codec,
                    dtmf_pt,
                    remote: target,
                    offered: remote,
                    source,
                    pacer: Pacer::new(t0),
                    sender,
                    last_rx: now,
                    timeout_reported: false,
                    next_seq,
                });
                self.start_pending_dtmf();
            }
            Command::Play { prompts, barge_in } => {
                self.queue.extend(prompts);
                self.barge_in = barge_in.dtmf;
                self.speech.arm(barge_in.speech);
                self.playing = true;
            }
            Command::StopPlayback => {
                self.queue.clear();
                self.offset = 0;
                // Every play ends with exactly one PlaybackDone, so a waiter never confuses a
                // natural end already in flight with the end of the next play.
                if self.playing {
                    self.playing = false;
                    self.emit(MediaEvent::PlaybackDone { interrupted: true });
                }
            }
            Command::StartRecording { spec, preroll } => {
                if self.recorder.is_some() {
                    self.finish_recording(RecordEnd::Stopped);
                }
                let mut rec = Recorder::new(spec, now);
                let (older, newer) = self.speech.preroll(preroll);
                let end = rec.seed(older).or_else(|| rec.seed(newer));
                self.recorder = Some(rec);
                if let Some(end) = end {
                    self.finish_recording(end);
                }
            }
            Command::StopRecording => {
                if self.recorder.is_some() {
                    self.finish_recording(RecordEnd::Stopped);
                }
            }
            Command::Listen(spec) => {
                self.listener = spec.map(|s| {
                    self.speech.prepare(s.speech);
                    Listener::new(s)
                });
            }
            Command::SendDtmf { digit, duration } => {
                self.dtmf_pending.push_back((digit, duration));
                self.start_pending_dtmf();
            }
            Command::TrackArrivals => {
                self.stats
                    .arrivals
                    .get_or_insert_with(super::ArrivalStats::new);
            }
            Command::Direction(d) => self.set_peer_direction(d, now),
            Command::Bridge(end) => self.bridge = end,
            Command::Close => {}
        }
    }

    /// The peer may receive our audio: not on hold.
    fn may_send(&self) -> bool {
        matches!(
            self.peer_direction,
            Direction::SendRecv | Direction::RecvOnly
        )
    }

    /// The peer promised to send: its silence means a dead line. A holding peer
    /// (`sendonly`) may or may not play music; `inactive` and `recvonly` send nothing.
    fn expects_rx(&self) -> bool {
        self.peer_direction == Direction::SendRecv
    }

    fn set_peer_direction(&mut self, d: Direction, now: Instant) {
        if d == self.peer_direction {
            return;
        }
        tracing::info!(direction = d.attribute(), "peer media direction");
        self.peer_direction = d;
        if let Some(stream) = self.stream.as_mut() {
            // the first frame after a hold is a new talkspurt (marker bit), and the dead-line
            // clock starts over rather than counting the hold
            stream.sender.start_talkspurt();
            stream.last_rx = now;
            stream.timeout_reported = false;
        }
        if let Some(rec) = self.recorder.as_mut() {
            rec.reset_timeline(); // the hold is not filled in with silence
        }
    }

    /// Hand out the utterance the recorder just cut, if any. Called after each push, and
    /// before the recording is finished, so utterances always precede `RecordingDone`.
    pub(super) fn emit_utterance(&mut self) {
        if let Some((u, pcm)) = self.recorder.as_mut().and_then(Recorder::take_utterance) {
            self.emit(MediaEvent::Utterance {
                index: u.index,
                start: Duration::from_micros(u.start as u64 * 1_000_000 / 8000),
                pcm,
            });
        }
    }

    /// What the listener made of a packet: the caller started (a prompt stops), or ended.
    pub(super) fn on_heard(&mut self, heard: Heard) {
        match heard {
            Heard::Started => {
                self.emit(MediaEvent::HeardStart);
                if self.playing {
                    self.queue.clear();
                    self.offset = 0;
                    self.playing = false;
                    self.emit(MediaEvent::PlaybackDone { interrupted: true });
                }
            }
            Heard::Done(pcm) => self.emit(MediaEvent::Heard { pcm }),
        }
    }

    /// End the recording now; the WAV is written on a blocking thread, which then emits
    /// `RecordingDone` (so the event means the file is complete).
    pub(super) fn finish_recording(&mut self, reason: RecordEnd) {
        self.emit_utterance();
        let Some(rec) = self.recorder.take() else {
            return;
        };
        let done = rec.finish(reason);
        let events = self.events.clone();
        let counters = self.cfg.counters.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _span = span.enter();
            let duration = Duration::from_millis(done.samples.len() as u64 / 8);
            let pcm: Arc<[i16]> = done.samples.into();
            match write_wav(&done.path, &pcm) {
                Ok(()) => MediaCounters::add(&counters.recordings_written, 1),
                Err(e) => {
                    MediaCounters::add(&counters.recording_errors, 1);
                    tracing::error!(path = %done.path.display(), error = %e, "writing recording");
                }
            }
            let _ = events.send(MediaEvent::RecordingDone {
                path: done.path,
                reason: done.reason,
                duration,
                heard_speech: done.heard_speech,
                pcm,
            });
        });
    }
}

/// Runs `f` when dropped: keeps `sessions_active` true however the task ends.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

#[cfg(unix)]
fn dup_for_sending(socket: &UdpSocket) -> Option<std::net::UdpSocket> {
    use std::os::fd::AsFd;
    match socket.as_fd().try_clone_to_owned() {
        Ok(fd) => Some(std::net::UdpSocket::from(fd)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot duplicate the RTP socket; first frames may drop");
            None
        }
    }
}

#[cfg(not(unix))]
fn dup_for_sending(_socket: &UdpSocket) -> Option<std::net::UdpSocket> {
    None
}
