//! The session's ear for speech barge-in: the onset detector and the pre-roll ring, fed
//! from the media task, with the policy of the current play request.
//!
//! The detector hears every inbound audio packet all call long (its noise floor must know
//! the line before a prompt starts); whether an onset stops anything depends on the play
//! request ([`super::BargeIn::speech`]). The pre-roll ring exists from the first play that
//! asks for speech barge-in, so a call that never does pays nothing for it.

use super::SpeechBargeIn;
use crate::media::onset::OnsetDetector;
use crate::media::preroll::PreRoll;
use crate::media::{Codec, SAMPLE_RATE};
use std::time::Duration;

#[derive(Default)]
pub(super) struct SpeechWatch {
    detector: OnsetDetector,
    preroll: Option<PreRoll>,
    /// The current play request stops on speech.
    armed: bool,
    /// The detector's answer for the latest packet: the caller is talking.
    talking: bool,
}

fn samples(d: Duration) -> usize {
    (d.as_millis() as usize).saturating_mul(SAMPLE_RATE as usize / 1000)
}

impl SpeechWatch {
    /// Apply a play request's speech barge-in setting (`None`: speech does not stop it).
    /// Allocates the pre-roll ring on first use (a command, not a packet).
    pub fn arm(&mut self, speech: Option<SpeechBargeIn>) {
        self.armed = speech.is_some();
        if let Some(s) = speech {
            self.prepare(s);
        }
    }

    /// The detector's settings and a pre-roll ring of `s.preroll`, without arming a play
    /// request (listening for the spoken menu needs both).
    pub fn prepare(&mut self, s: SpeechBargeIn) {
        self.detector.set_config(s.onset);
        let want = samples(s.preroll);
        if self.preroll.as_ref().is_none_or(|p| p.capacity() < want) {
            let mut ring = PreRoll::new(want);
            if let Some(old) = &self.preroll {
                let (a, b) = old.latest(old.len());
                ring.push(a);
                ring.push(b);
            }
            self.preroll = Some(ring);
        }
    }

    /// A frame we sent (the echo reference).
    pub fn on_output(&mut self, codec: Codec, encoded: &[u8]) {
        self.detector.on_output_frame(codec, encoded);
    }

    /// Decoded caller audio. True when the current play request stops on speech and the
    /// caller is talking.
    pub fn on_audio(&mut self, pcm: &[i16]) -> bool {
        if let Some(p) = self.preroll.as_mut() {
            p.push(pcm);
        }
        self.talking = self.detector.push(pcm);
        self.talking && self.armed
    }

    /// The caller was talking in the latest packet (whatever the play request says).
    pub fn talking(&self) -> bool {
        self.talking
    }

    /// The onset was acted on: the next play request arms again.
    pub fn disarm(&mut self) {
        self.armed = false;
    }

    /// Up to `lead` of the latest caller audio, oldest first, in two pieces.
    pub fn preroll(&self, lead: Duration) -> (&[i16], &[i16]) {
        match &self.preroll {
            Some(p) => p.latest(samples(lead)),
            None => (&[], &[]),
        }
    }
}
