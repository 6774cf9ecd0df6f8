//! Energy end-pointer: decides when a caller's message has started and ended.
//!
//! Deliberately simple (frame energy against a threshold with hangover); real VAD for ASR
//! lives elsewhere. Runs per 20 ms frame on the media task, so it must not allocate.
//!
//! Time is the audio itself: every sample fed counts 1/8000 s, so the decisions are the same
//! whether packets arrive late, in bursts, or in a test that feeds them in a loop. A 20 ms
//! frame is 160 samples; frames of other lengths (ptime 10/30) count for what they hold.
//!
//! OWNER: media-dsp helper.

use super::SAMPLE_RATE;
use std::time::Duration;

/// Consecutive speech needed before the caller counts as speaking (3 frames of 20 ms):
/// long enough to ignore a click or a line pop, short enough not to miss "Hi".
pub const SPEECH_ONSET: Duration = Duration::from_millis(60);

#[derive(Clone, Copy, Debug)]
pub struct EndpointerConfig {
    /// Frame energy above this (dBFS) counts as speech.
    pub speech_threshold_dbfs: f32,
    /// Silence after speech that ends the message.
    pub trailing_silence: Duration,
    /// No speech at all for this long ends the message as empty.
    pub no_speech_timeout: Duration,
}

/// What the end-pointer thinks after a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// No speech yet.
    Waiting,
    /// Speech heard, not ended.
    Speaking,
    /// Speech was heard and then enough silence followed.
    EndOfSpeech,
    /// No speech within `no_speech_timeout`.
    NoSpeech,
}

/// Frame-energy state machine: `Waiting` → `Speaking` → `EndOfSpeech`, or `Waiting` →
/// `NoSpeech`. The two end states are final: later frames return them unchanged.
#[derive(Clone, Debug)]
pub struct Endpointer {
    cfg: EndpointerConfig,
    state: Endpoint,
    /// Durations converted to sample counts once.
    onset: u64,
    trailing: u64,
    timeout: u64,
    /// Samples fed so far.
    elapsed: u64,
    /// Consecutive speech samples while `Waiting`.
    speech_run: u64,
    /// Consecutive non-speech samples while `Speaking`.
    silence_run: u64,
    /// Sample offset where the confirmed speech began.
    speech_start: Option<u64>,
}

fn samples(d: Duration) -> u64 {
    // Round up: a timeout of 1 ms still needs one whole sample to pass.
    let per_sec = u128::from(SAMPLE_RATE);
    let n = (d.as_nanos() * per_sec).div_ceil(1_000_000_000);
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Endpointer {
    pub fn new(cfg: EndpointerConfig) -> Self {
        Endpointer {
            cfg,
            state: Endpoint::Waiting,
            onset: samples(SPEECH_ONSET),
            trailing: samples(cfg.trailing_silence),
            timeout: samples(cfg.no_speech_timeout),
            elapsed: 0,
            speech_run: 0,
            silence_run: 0,
            speech_start: None,
        }
    }

    /// Feed one 20 ms frame of 8 kHz samples.
    ///
    /// `NoSpeech` is returned on the frame that reaches `no_speech_timeout`, unless a run of
    /// speech frames is in progress then: that run gets the few frames it needs to confirm
    /// (or not), so a caller who starts talking right at the deadline is not cut off.
    /// An empty frame changes nothing.
    pub fn push_frame(&mut self, frame: &[i16]) -> Endpoint {
        if frame.is_empty() || matches!(self.state, Endpoint::EndOfSpeech | Endpoint::NoSpeech) {
            return self.state;
        }
        let n = frame.len() as u64;
        self.elapsed += n;
        let speech = frame_dbfs(frame) > self.cfg.speech_threshold_dbfs;
        match self.state {
            Endpoint::Waiting => {
                if speech {
                    self.speech_run += n;
                    if self.speech_run >= self.onset {
                        self.state = Endpoint::Speaking;
                        self.speech_start = Some(self.elapsed - self.speech_run);
                        self.silence_run = 0;
                    }
                } else {
                    self.speech_run = 0;
                }
                if self.state == Endpoint::Waiting
                    && self.speech_run == 0
                    && self.elapsed >= self.timeout
                {
                    self.state = Endpoint::NoSpeech;
                }
            }
            Endpoint::Speaking => {
                if speech {
                    self.silence_run = 0;
                } else {
                    self.silence_run += n;
                    if self.silence_run >= self.trailing {
                        self.state = Endpoint::EndOfSpeech;
                    }
                }
            }
            Endpoint::EndOfSpeech | Endpoint::NoSpeech => {}
        }
        self.state
    }

    /// Whether any speech has been heard so far.
    pub fn heard_speech(&self) -> bool {
        self.speech_start.is_some()
    }

    /// Samples of the silence run in progress while `Speaking` (0 on a speech frame): the
    /// recorder cuts a message into utterances at long enough runs.
    pub fn silence_run(&self) -> u64 {
        self.silence_run
    }

    /// The state after the last frame.
    pub fn state(&self) -> Endpoint {
        self.state
    }

    /// Where the confirmed speech began, from the first frame fed (to trim leading silence
    /// from a recording, if wanted).
    pub fn speech_start(&self) -> Option<Duration> {
        self.speech_start
            .map(|s| Duration::from_micros(s * 1_000_000 / u64::from(SAMPLE_RATE)))
    }

    /// Start over with the same configuration (e.g. for the next message).
    pub fn reset(&mut self) {
        *self = Endpointer::new(self.cfg);
    }
}

/// Energy of a frame in dBFS (0 dBFS = full-scale square wave); -inf-safe (floors at -100).
///
/// RMS relative to 32768, so a full-scale sine reads about -3 dBFS. Empty frames read -100.
pub fn frame_dbfs(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return -100.0;
    }
    // Exact integer sum of squares: each square ≤ 2^30, so u64 holds 2^34 samples.
    let sum: u64 = frame
        .iter()
        .map(|&s| {
            let s = i64::from(s);
            (s * s) as u64
        })
        .sum();
    if sum == 0 {
        return -100.0;
    }
    let mean = sum as f64 / frame.len() as f64;
    let db = 10.0 * (mean / (32768.0 * 32768.0)).log10();
    (db as f32).max(-100.0)
}

#[cfg(test)]
#[path = "vad_tests.rs"]
mod tests;
