//! The media task behind a [`MediaSession`](super::MediaSession): one loop, one timer.
//!
//! The loop waits on three things: a command from the call, a datagram, or the single timer,
//! which is re-armed to the earliest of the next frame deadline, the next DTMF packet, the
//! inactivity deadline and the recording's own limits. Every buffer is allocated once when
//! the task starts; a packet in the steady state costs no allocation.

use super::recorder::{write_wav, Recorder};
use super::speech::SpeechWatch;
use super::{BargeIn, MediaEvent, MediaStats, RecordEnd, RecordSpec, SessionConfig};
use crate::media::dtmf::{self, DtmfPacket, DtmfReceiver, TelephoneEvent};
use crate::media::pacer::Pacer;
use crate::media::prompt::SharedPrompt;
use crate::media::rtp::{self, RtpSender, MAX_DATAGRAM};
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
    SendDtmf {
        digit: char,
        duration: Duration,
    },
    TrackArrivals,
    Close,
}

/// State that exists once `start()` told us where and how to send.
struct Stream {
    codec: Codec,
    dtmf_pt: Option<u8>,
    /// SDP address until latched, then the caller's packet source.
    remote: SocketAddr,
    latched_ssrc: Option<u32>,
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
    stats: MediaStats,
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
            dtmf_pending: VecDeque::new(),
            recorder: None,
            stats: MediaStats::default(),
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

    fn emit(&self, ev: MediaEvent) {
        // The call may have dropped its handle; events then have nobody to go to.
        let _ = self.events.send(ev);
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut d: Option<Instant> = self.recorder.as_ref().map(Recorder::deadline);
        let mut consider = |t: Instant| d = Some(d.map_or(t, |d| d.min(t)));
        if let Some(s) = &self.stream {
            consider(s.pacer.next_deadline());
            if !s.timeout_reported {
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
                // the 20 ms cadence and the timestamp clock carry on, only the target, codec
                // and latch are new.
                let (sender, t0) = match self.stream.take() {
                    Some(old) => {
                        let next = old.pacer.next_index();
                        let sender = RtpSender::with_state(
                            old.sender.ssrc(),
                            old.sender.next_sequence(),
                            old.sender.timestamp_for_frame(next),
                        );
                        (sender, old.pacer.deadline_of(next))
                    }
                    None => (RtpSender::new(), now),
                };
                self.stream = Some(Stream {
                    codec,
                    dtmf_pt,
                    remote,
                    latched_ssrc: None,
                    pacer: Pacer::new(t0),
                    sender,
                    last_rx: now,
                    timeout_reported: false,
                    next_seq: None,
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
            Command::SendDtmf { digit, duration } => {
                self.dtmf_pending.push_back((digit, duration));
                self.start_pending_dtmf();
            }
            Command::TrackArrivals => {
                self.stats
                    .arrivals
                    .get_or_insert_with(super::ArrivalStats::new);
            }
            Command::Close => {}
        }
    }

    /// Begin the next queued key press at the next frame boundary, if none is running.
    fn start_pending_dtmf(&mut self) {
        let Some(stream) = &self.stream else { return };
        if stream.dtmf_pt.is_none() {
            if !self.dtmf_pending.is_empty() {
                tracing::warn!("send_dtmf without a negotiated telephone-event payload type");
                self.dtmf_pending.clear();
            }
            return;
        }
        while self.dtmf_tx.is_none() {
            let Some((digit, duration)) = self.dtmf_pending.pop_front() else {
                return;
            };
            let Some(packets) = dtmf::digit_packets(digit, duration) else {
                tracing::warn!(%digit, "not a DTMF key");
                continue;
            };
            let index = stream.pacer.next_index();
            self.dtmf_tx = Some(DtmfSending {
                start: stream.pacer.deadline_of(index),
                timestamp: stream.sender.timestamp_for_frame(index),
                packets,
                next: 0,
            });
        }
    }

    fn on_timer(&mut self, now: Instant) {
        self.send_due_dtmf(now);
        if let Some(stream) = self.stream.as_mut() {
            let due_at = stream.pacer.next_deadline();
            if let Some(due) = stream.pacer.on_tick(now) {
                self.cfg
                    .counters
                    .lateness
                    .observe(now.duration_since(due_at));
                if due.skipped > 0 {
                    MediaCounters::add(&self.cfg.counters.frames_skipped, due.skipped);
                    tracing::debug!(skipped = due.skipped, "media task stalled");
                    stream.sender.start_talkspurt();
                }
                stream.sender.set_frame(due.index);
                if self.dtmf_tx.is_some() {
                    // RFC 4733 §2.5.1.1: the event replaces the audio while it lasts.
                    stream.sender.start_talkspurt();
                } else {
                    let codec = stream.codec;
                    self.fill_frame(codec);
                    self.speech.on_output(codec, &self.frame);
                    self.send_audio_frame();
                }
            }
        }
        if self.dtmf_tx.is_none() {
            self.start_pending_dtmf();
        }
        if let Some(end) = self.recorder.as_ref().and_then(|r| r.on_tick(now)) {
            self.finish_recording(end);
        }
        if let Some(stream) = self.stream.as_mut() {
            if !stream.timeout_reported && now >= stream.last_rx + self.cfg.inactivity_timeout {
                stream.timeout_reported = true;
                self.emit(MediaEvent::RtpTimeout);
            }
        }
    }

    /// Next 20 ms of the play queue (prompts join seamlessly), padded with silence. With
    /// nothing to play the frame is all silence: comfort silence keeps the caller's NAT
    /// binding and jitter buffer alive.
    fn fill_frame(&mut self, codec: Codec) {
        let mut filled = 0;
        while filled < FRAME_SAMPLES {
            let Some(prompt) = self.queue.front() else {
                break;
            };
            let enc = prompt.encoded(codec);
            let take = (FRAME_SAMPLES - filled).min(enc.len().saturating_sub(self.offset));
            self.frame[filled..filled + take]
                .copy_from_slice(&enc[self.offset..self.offset + take]);
            filled += take;
            self.offset += take;
            if self.offset >= enc.len() {
                self.queue.pop_front();
                self.offset = 0;
            }
        }
        self.frame[filled..].fill(codec.encode_sample(0));
        if self.playing && self.queue.is_empty() {
            self.playing = false;
            self.emit(MediaEvent::PlaybackDone { interrupted: false });
        }
    }

    fn send_audio_frame(&mut self) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        if !can_send(stream.remote) {
            return; // no destination: do not burn sequence numbers either
        }
        let pt = stream.codec.payload_type();
        match stream
            .sender
            .build_audio(pt, &self.frame, &mut self.tx_buf[..])
        {
            Ok(len) => transmit(
                &self.socket,
                self.send_socket.as_ref(),
                &self.tx_buf[..len],
                stream.remote,
                &mut self.stats,
                &self.cfg.counters,
            ),
            Err(e) => tracing::error!(error = %e, "RTP build"),
        }
    }

    fn send_due_dtmf(&mut self, now: Instant) {
        let (Some(stream), Some(tx)) = (self.stream.as_mut(), self.dtmf_tx.as_mut()) else {
            return;
        };
        let Some(pt) = stream.dtmf_pt else {
            self.dtmf_tx = None;
            return;
        };
        let remote = stream.remote;
        while let Some(p) = tx.packets.get(tx.next) {
            if tx.start + p.at > now {
                break;
            }
            tx.next += 1;
            if !can_send(remote) {
                continue;
            }
            match stream.sender.build_at(
                pt,
                p.marker,
                tx.timestamp,
                &p.payload,
                &mut self.tx_buf[..],
            ) {
                Ok(len) => transmit(
                    &self.socket,
                    self.send_socket.as_ref(),
                    &self.tx_buf[..len],
                    remote,
                    &mut self.stats,
                    &self.cfg.counters,
                ),
                Err(e) => tracing::error!(error = %e, "RTP build"),
            }
        }
        if tx.next >= tx.packets.len() {
            self.dtmf_tx = None;
            stream.sender.start_talkspurt();
        }
    }

    fn on_datagram(&mut self, data: &[u8], src: SocketAddr, now: Instant) {
        let Ok(pkt) = rtp::parse(data) else {
            self.drop_packet();
            return;
        };
        let Some(stream) = self.stream.as_mut() else {
            // Well-formed but before start(): the caller's media may race our answer.
            // Ignored, and not counted as dropped: nothing is wrong with it.
            return;
        };
        let kind = if pkt.payload_type == stream.codec.payload_type() {
            Kind::Audio
        } else if Some(pkt.payload_type) == stream.dtmf_pt {
            match TelephoneEvent::parse(pkt.payload) {
                Ok(ev) => Kind::Dtmf(ev),
                Err(_) => {
                    self.drop_packet();
                    return;
                }
            }
        } else if pkt.payload_type == PT_COMFORT_NOISE {
            Kind::ComfortNoise
        } else {
            self.drop_packet();
            return;
        };
        // Symmetric RTP (RFC 4961): answer where the caller's packets come from, which is
        // what gets through its NAT. Re-latch only when a new SSRC shows up; packets of the
        // latched SSRC from elsewhere are spoofed or duplicated, not a move.
        let new_timeline = match stream.latched_ssrc {
            None => true,
            Some(ssrc) if ssrc == pkt.ssrc => {
                if src != stream.remote {
                    self.drop_packet();
                    return;
                }
                false
            }
            Some(_) => true,
        };
        if new_timeline {
            if stream.latched_ssrc.is_some() {
                tracing::debug!(%src, ssrc = pkt.ssrc, "RTP source re-latched");
            } else {
                tracing::debug!(%src, ssrc = pkt.ssrc, "RTP source latched");
            }
            stream.remote = src;
            stream.latched_ssrc = Some(pkt.ssrc);
            stream.next_seq = None;
            self.dtmf_rx.reset();
            if let Some(rec) = self.recorder.as_mut() {
                rec.reset_timeline();
            }
        }
        self.stats.packets_received += 1;
        MediaCounters::add(&self.cfg.counters.packets_in, 1);
        // Loss by sequence gap (RFC 3550 A.1, simplified): a jump forward of less than half
        // the sequence space counts the missing packets; older (reordered, duplicated)
        // packets move nothing.
        let gap = stream
            .next_seq
            .map_or(0, |expected| pkt.sequence.wrapping_sub(expected));
        if gap < 0x8000 {
            if gap > 0 {
                MediaCounters::add(&self.cfg.counters.packets_lost, u64::from(gap));
            }
            stream.next_seq = Some(pkt.sequence.wrapping_add(1));
        }
        stream.last_rx = now;
        stream.timeout_reported = false;

        match kind {
            Kind::Audio => {
                if let Some(arrivals) = self.stats.arrivals.as_mut() {
                    arrivals.on_packet(now, pkt.sequence, pkt.timestamp);
                }
                let n = pkt.payload.len().min(self.pcm_buf.len());
                let pcm = &mut self.pcm_buf[..n];
                stream.codec.decode(&pkt.payload[..n], pcm);
                let speech_barge_in = self.speech.on_audio(pcm) && self.playing;
                if let Some(end) = self
                    .recorder
                    .as_mut()
                    .and_then(|r| r.push_audio(pkt.timestamp, pcm))
                {
                    self.finish_recording(end);
                }
                if speech_barge_in {
                    self.stop_on_speech();
                }
            }
            Kind::Dtmf(ev) => {
                if let Some(digit) = self.dtmf_rx.on_event(pkt.timestamp, &ev) {
                    self.on_digit(digit);
                }
            }
            Kind::ComfortNoise => {}
        }
    }

    fn drop_packet(&mut self) {
        self.stats.packets_dropped += 1;
        MediaCounters::add(&self.cfg.counters.packets_dropped, 1);
    }

    fn on_digit(&mut self, digit: char) {
        self.emit(MediaEvent::Dtmf(digit));
        if self.playing && self.barge_in {
            self.queue.clear();
            self.offset = 0;
            self.playing = false;
            self.emit(MediaEvent::PlaybackDone { interrupted: true });
        }
        if self.recorder.as_ref().and_then(Recorder::stop_digit) == Some(digit) {
            self.finish_recording(RecordEnd::StopDigit);
        }
    }

    /// The caller talked over a prompt that allows it: silence from the next frame on.
    fn stop_on_speech(&mut self) {
        self.queue.clear();
        self.offset = 0;
        self.playing = false;
        self.speech.disarm();
        tracing::debug!("speech barge-in");
        self.emit(MediaEvent::SpeechStarted);
        self.emit(MediaEvent::PlaybackDone { interrupted: true });
    }

    /// End the recording now; the WAV is written on a blocking thread, which then emits
    /// `RecordingDone` (so the event means the file is complete).
    fn finish_recording(&mut self, reason: RecordEnd) {
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

/// Send one datagram without ever awaiting: a full socket buffer drops the packet, which
/// is what a late audio packet is worth anyway.
fn transmit(
    socket: &UdpSocket,
    dup: Option<&std::net::UdpSocket>,
    datagram: &[u8],
    remote: SocketAddr,
    stats: &mut MediaStats,
    counters: &MediaCounters,
) {
    let res = match dup {
        Some(s) => s.send_to(datagram, remote),
        None => socket.try_send_to(datagram, remote),
    };
    match res {
        Ok(_) => {
            stats.packets_sent += 1;
            MediaCounters::add(&counters.packets_out, 1);
        }
        Err(e) => {
            MediaCounters::add(&counters.send_errors, 1);
            tracing::debug!(error = %e, %remote, "RTP send");
        }
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

/// No destination yet (hold with c=0.0.0.0, or port 0): stay silent until latched.
fn can_send(remote: SocketAddr) -> bool {
    !remote.ip().is_unspecified() && remote.port() != 0
}
