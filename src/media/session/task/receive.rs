//! The incoming half of the media task: which datagrams are the caller's (strict source),
//! and what their audio and digits do.

use super::*;

impl Task {
    pub(super) fn on_datagram(&mut self, data: &[u8], src: SocketAddr, now: Instant) {
        let Ok(pkt) = rtp::parse(data) else {
            self.drop_packet();
            return;
        };
        // A peer holding us plays music, if anything: not the caller's voice, so neither
        // recorded nor taken for speech over a prompt.
        let held = !self.may_send();
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
        // Symmetric RTP (RFC 4961) with a strict source: answer where the caller's packets
        // come from, which is what gets through its NAT, and hear nobody else (see
        // `source.rs`). A stranger's packet is neither heard, recorded nor answered.
        match stream.source.on_packet(src, pkt.ssrc, pkt.sequence, now) {
            Verdict::Accept => {}
            Verdict::WrongSource => {
                self.drop_packet();
                MediaCounters::add(&self.cfg.counters.packets_wrong_source, 1);
                return;
            }
            Verdict::NewStream { relearned } => {
                if relearned {
                    MediaCounters::add(&self.cfg.counters.sources_relearned, 1);
                    tracing::info!(%src, ssrc = pkt.ssrc, old = %stream.remote,
                        "RTP source re-learnt after the old one fell silent");
                } else {
                    tracing::debug!(%src, ssrc = pkt.ssrc, "RTP source latched");
                }
                stream.remote = src;
                stream.next_seq = None;
                self.dtmf_rx.reset();
                if let Some(rec) = self.recorder.as_mut() {
                    rec.reset_timeline();
                }
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
                if held {
                    return;
                }
                let n = pkt.payload.len().min(self.pcm_buf.len());
                let pcm = &mut self.pcm_buf[..n];
                stream.codec.decode(&pkt.payload[..n], pcm);
                if let Some(b) = &self.bridge {
                    b.out.push(pcm);
                }
                let speech_barge_in = self.speech.on_audio(pcm) && self.playing;
                let heard = self
                    .listener
                    .as_mut()
                    .and_then(|l| l.on_audio(pcm, &self.speech));
                if let Some(end) = self
                    .recorder
                    .as_mut()
                    .and_then(|r| r.push_audio(pkt.timestamp, pcm))
                {
                    self.finish_recording(end);
                }
                self.emit_utterance();
                if let Some(h) = heard {
                    self.on_heard(h);
                } else if speech_barge_in {
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

    pub(super) fn drop_packet(&mut self) {
        self.stats.packets_dropped += 1;
        MediaCounters::add(&self.cfg.counters.packets_dropped, 1);
    }

    pub(super) fn on_digit(&mut self, digit: char) {
        if let Some(b) = &self.bridge {
            b.out.push_digit(digit);
        }
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
    pub(super) fn stop_on_speech(&mut self) {
        self.queue.clear();
        self.offset = 0;
        self.playing = false;
        self.speech.disarm();
        tracing::debug!("speech barge-in");
        self.emit(MediaEvent::SpeechStarted);
        self.emit(MediaEvent::PlaybackDone { interrupted: true });
    }
}
