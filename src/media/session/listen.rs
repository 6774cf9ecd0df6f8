//! Listening for one short request (the spoken menu): from the moment the caller starts
//! talking until they pause, the caller's audio is kept in memory and handed out as one
//! [`MediaEvent::Heard`](super::MediaEvent::Heard); what it says is the call's business
//! (media knows no Whisper).
//!
//! The start is the barge-in onset detector's ([`super::speech`]): the same bar for "the
//! caller is talking" whether a prompt plays or not, echo of our own prompt excluded. The
//! capture starts with the pre-roll ring, so the words that crossed the bar are in it. The
//! end is the energy end-pointer's ([`crate::media::vad`]) trailing silence, or the cap.
//! The buffer is allocated once per [`ListenSpec`] (a command); an utterance costs one copy
//! when it is handed out; a packet costs nothing.

use super::speech::SpeechWatch;
use super::ListenSpec;
use crate::media::vad::{Endpoint, Endpointer};
use crate::media::{FRAME_SAMPLES, SAMPLE_RATE};
use std::sync::Arc;

/// What one packet of caller audio did to the listener.
#[derive(Debug, PartialEq)]
pub(super) enum Heard {
    /// The caller started talking: a capture began.
    Started,
    /// The caller paused (or hit the cap): the utterance, pre-roll included.
    Done(Arc<[i16]>),
}

pub(super) struct Listener {
    spec: ListenSpec,
    /// The capture so far; capacity fixed at `spec.max_duration`.
    samples: Vec<i16>,
    /// `Some` while capturing.
    endpointer: Option<Endpointer>,
}

impl Listener {
    /// Allocates the capture buffer (once, on the command).
    pub fn new(spec: ListenSpec) -> Listener {
        let cap =
            (spec.max_duration.as_millis() as usize).saturating_mul(SAMPLE_RATE as usize / 1000);
        Listener {
            spec,
            samples: Vec::with_capacity(cap.max(FRAME_SAMPLES)),
            endpointer: None,
        }
    }

    /// Caller audio already fed to `speech` (so its onset and pre-roll include `pcm`).
    pub fn on_audio(&mut self, pcm: &[i16], speech: &SpeechWatch) -> Option<Heard> {
        if self.endpointer.is_none() {
            if !speech.talking() {
                return None;
            }
            self.samples.clear();
            self.endpointer = Some(Endpointer::new(self.spec.endpointer));
            let (older, newer) = speech.preroll(self.spec.speech.preroll);
            // the pre-roll already holds `pcm`, the packet that crossed the bar
            let done = self.push(older) || self.push(newer);
            return Some(if done { self.take() } else { Heard::Started });
        }
        self.push(pcm).then(|| self.take())
    }

    /// Add samples; true when the utterance is over (a pause after speech, or full).
    fn push(&mut self, pcm: &[i16]) -> bool {
        let room = self.samples.capacity() - self.samples.len();
        let take = pcm.len().min(room);
        self.samples.extend_from_slice(&pcm[..take]);
        let Some(ep) = self.endpointer.as_mut() else {
            return false;
        };
        for frame in pcm[..take].chunks(FRAME_SAMPLES) {
            if matches!(
                ep.push_frame(frame),
                Endpoint::EndOfSpeech | Endpoint::NoSpeech
            ) {
                return true;
            }
        }
        take < pcm.len() || self.samples.len() == self.samples.capacity()
    }

    /// Hand the utterance out and wait for the next onset.
    fn take(&mut self) -> Heard {
        self.endpointer = None;
        let pcm: Arc<[i16]> = self.samples.as_slice().into();
        self.samples.clear();
        Heard::Done(pcm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::session::{OnsetConfig, SpeechBargeIn};
    use crate::media::vad::EndpointerConfig;
    use std::time::Duration;

    fn spec() -> ListenSpec {
        ListenSpec {
            speech: SpeechBargeIn {
                onset: OnsetConfig::default(),
                preroll: Duration::from_millis(500),
            },
            endpointer: EndpointerConfig {
                speech_threshold_dbfs: -40.0,
                trailing_silence: Duration::from_millis(600),
                no_speech_timeout: Duration::from_secs(10),
            },
            max_duration: Duration::from_secs(4),
        }
    }

    /// Syllable-like audio: 120 ms bursts of a loud tone, 60 ms quieter between.
    fn speech(ms: usize) -> Vec<i16> {
        (0..ms * 8)
            .map(|i| {
                let loud = (i / 8 / 60) % 3 != 2;
                let a = if loud { 9000 } else { 1200 };
                if (i / 4) % 2 == 0 {
                    a
                } else {
                    -a
                }
            })
            .collect()
    }

    fn feed(l: &mut Listener, w: &mut SpeechWatch, pcm: &[i16]) -> Vec<Heard> {
        let mut out = Vec::new();
        for p in pcm.chunks(160) {
            w.on_audio(p);
            out.extend(l.on_audio(p, w));
        }
        out
    }

    #[test]
    fn an_utterance_from_its_onset_to_the_pause_is_handed_out_once() {
        let s = spec();
        let mut w = SpeechWatch::default();
        w.prepare(s.speech);
        let mut l = Listener::new(s);
        assert!(
            feed(&mut l, &mut w, &vec![0; 8000]).is_empty(),
            "silence is not speech"
        );
        let words = speech(1500);
        let mut audio = words.clone();
        audio.extend(vec![0; 8000]);
        let out = feed(&mut l, &mut w, &audio);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0], Heard::Started);
        let Heard::Done(pcm) = &out[1] else {
            panic!("{out:?}")
        };
        // from the start of the words (the pre-roll reaches back before them) to the pause
        let lead = pcm.iter().position(|&s| s != 0).unwrap();
        assert!(lead <= 4000, "{lead}");
        assert_eq!(&pcm[lead..lead + words.len()], &words[..]);
        assert!(pcm.len() <= lead + words.len() + 6000, "{}", pcm.len());
        // and the next words are a new utterance
        let out = feed(&mut l, &mut w, &audio);
        assert_eq!(out.first(), Some(&Heard::Started));
    }

    #[test]
    fn a_caller_who_never_pauses_is_cut_at_the_cap() {
        let s = spec();
        let mut w = SpeechWatch::default();
        w.prepare(s.speech);
        let mut l = Listener::new(s);
        let out = feed(&mut l, &mut w, &speech(6000));
        let Some(Heard::Done(pcm)) = out.iter().find(|h| matches!(h, Heard::Done(_))) else {
            panic!("{out:?}")
        };
        assert_eq!(pcm.len(), 4 * 8000);
    }
}
