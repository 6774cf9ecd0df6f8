//! The outgoing half of the media task: the 20 ms tick, the play queue, DTMF we send.

use super::*;

impl Task {
    /// Begin the next queued key press at the next frame boundary, if none is running.
    pub(super) fn start_pending_dtmf(&mut self) {
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

    pub(super) fn on_timer(&mut self, now: Instant) {
        self.send_due_dtmf(now);
        let held = !self.may_send();
        let expects_rx = self.expects_rx();
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
                if held {
                    // On hold nothing goes out (RFC 3264 §6.1), and the play queue waits
                    // where it is: no prompt plays to a caller who cannot hear it, and the
                    // IVR does not move on; it resumes with the frame after. The clock runs
                    // on, so the first frame after the hold is a new talkspurt.
                    stream.sender.start_talkspurt();
                } else if self.dtmf_tx.is_some() {
                    // RFC 4733 §2.5.1.1: the event replaces the audio while it lasts.
                    stream.sender.start_talkspurt();
                } else {
                    let codec = stream.codec;
                    self.fill_frame(codec, due_at);
                    self.speech.on_output(codec, &self.frame);
                    self.send_audio_frame();
                }
            }
        }
        if let Some(d) = self.bridge.as_ref().and_then(|b| b.inp.pop_digit()) {
            if self.dtmf_pending.len() < self.dtmf_pending.capacity() {
                self.dtmf_pending.push_back((d, Duration::from_millis(100)));
            }
        }
        if self.dtmf_tx.is_none() {
            self.start_pending_dtmf();
        }
        if let Some(end) = self.recorder.as_ref().and_then(|r| r.on_tick(now)) {
            self.finish_recording(end);
        }
        if let Some(stream) = self.stream.as_mut() {
            if expects_rx
                && !stream.timeout_reported
                && now >= stream.last_rx + self.cfg.inactivity_timeout
            {
                stream.timeout_reported = true;
                self.emit(MediaEvent::RtpTimeout);
            }
        }
    }

    /// Next 20 ms of the play queue (prompts join seamlessly), padded with silence. With
    /// nothing to play the frame is all silence: comfort silence keeps the caller's NAT
    /// binding and jitter buffer alive.
    pub(super) fn fill_frame(&mut self, codec: Codec, due_at: Instant) {
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
        if let (Some(b), true) = (&self.bridge, self.queue.is_empty()) {
            // Bridged: the other side's voice, when no prompt is playing over it.
            let want = FRAME_SAMPLES - filled;
            let got = b.inp.pop(&mut self.relay_pcm[..want]);
            for (o, &s) in self.frame[filled..filled + got]
                .iter_mut()
                .zip(&self.relay_pcm[..got])
            {
                *o = codec.encode_sample(s);
            }
            if let Some(tap) = &b.tap {
                // The other party as played (a prompt over it is not theirs: silence).
                tap.frame(due_at.into_std(), &self.relay_pcm[..got]);
            }
            filled += got;
        }
        self.frame[filled..].fill(codec.encode_sample(0));
        if self.playing && self.queue.is_empty() {
            self.playing = false;
            self.emit(MediaEvent::PlaybackDone { interrupted: false });
        }
    }

    pub(super) fn send_audio_frame(&mut self) {
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

    pub(super) fn send_due_dtmf(&mut self, now: Instant) {
        let held = !self.may_send();
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
            if held || !can_send(remote) {
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

/// No destination yet (hold with c=0.0.0.0, or port 0): stay silent until latched.
fn can_send(remote: SocketAddr) -> bool {
    !remote.ip().is_unspecified() && remote.port() != 0
}
