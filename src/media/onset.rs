//! Speech-onset detector for barge-in: "the caller has started talking over the prompt".
//!
//! Not the end-pointer ([`super::vad`]): that one decides when a message ends and may be
//! generous about what counts as speech. A barge-in cuts the prompt short, so a false
//! onset costs the caller the instructions, while a late one only costs a fraction of a
//! second of talking over us. So the bar is higher, and every frame must pass four tests:
//!
//! - **Loud enough in absolute terms** (`min_level_dbfs`): comfort noise and an idle line
//!   sit far below.
//! - **Above the line's own noise floor** by `snr_db`. The floor is tracked from the
//!   caller's audio all call long: it follows quieter frames at once and rises only slowly
//!   (`FLOOR_RISE_DB_PER_FRAME`), so the pauses between words keep it at the background
//!   level and a noisy line raises it.
//! - **Not our own prompt coming back** (`echo_margin_db`): a frame more than that far below
//!   the loudest frame we sent in the last `ECHO_WINDOW_FRAMES` × 20 ms (the echo path's
//!   delay) is taken for echo. Echo returns at least 20–30 dB down on a line with a working
//!   echo canceller; a caller talking over a prompt is about as loud as the prompt.
//! - **Sustained**: the speech frames of one run must add up to `min_speech` (a click is one
//!   frame; a word is several hundred ms). Gaps of up to `GAP_FRAMES` quiet frames inside a
//!   run (a stop consonant, a lost packet) do not end it, nor count toward it.
//!
//! And one test on the run as a whole: after its loudest frame so far, some speech frame must
//! fall `MODULATION_DB` below it, or speech must resume after quieter frames. Syllables rise
//! and fall several times a second; a fan, hum, a tone, or noise that switched on mid-prompt
//! (which the slow floor has not caught up with yet) rise once and stay flat.
//!
//! Sans-IO and allocation-free: fixed-size state, fed 8 kHz samples in any packet size
//! (framed to 20 ms internally); the media task feeds it and acts on the answer.

use super::vad::frame_dbfs;
use super::{Codec, FRAME_SAMPLES};
use std::time::Duration;

/// How fast the noise floor may rise, dB per 20 ms frame (2.5 dB/s): slow enough that a
/// word never lifts it noticeably, fast enough that a line 20 dB noisier is learnt in about
/// eight seconds (the modulation test covers the meantime).
const FLOOR_RISE_DB_PER_FRAME: f32 = 0.05;
/// The echo window: how far back our own output counts as a possible echo source (640 ms,
/// more than network round trip plus jitter buffers on a sane path).
const ECHO_WINDOW_FRAMES: usize = 32;
/// Quiet frames tolerated inside a run of speech (60 ms).
const GAP_FRAMES: u32 = 3;
/// How far a run's level must fall below its peak to show the rise and fall of syllables.
const MODULATION_DB: f32 = 6.0;
/// Level reported for silence (all-zero frames).
const SILENCE_DB: f32 = -100.0;

/// Thresholds of the detector. The defaults suit narrowband phone speech.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OnsetConfig {
    /// Speech needed in one run before it counts as an onset. Default 250 ms: longer than
    /// a click, a cough or a line pop, about one Mandarin syllable.
    pub min_speech: Duration,
    /// A frame quieter than this (dBFS) is never speech. Default -35, above the recording
    /// end-pointer's -40: a false barge-in costs more than a false "still talking".
    pub min_level_dbfs: f32,
    /// How far above the line's noise floor speech must be, dB. Default 12.
    pub snr_db: f32,
    /// How far below our own recent output level inbound audio may be and still count as
    /// the caller rather than echo, dB. Default 20.
    pub echo_margin_db: f32,
}

impl Default for OnsetConfig {
    fn default() -> Self {
        OnsetConfig {
            min_speech: Duration::from_millis(250),
            min_level_dbfs: -35.0,
            snr_db: 12.0,
            echo_margin_db: 20.0,
        }
    }
}

/// Frame-level speech-onset state. [`push`](Self::push) says whether the caller is
/// talking now (a run of speech has reached `min_speech` and not ended).
#[derive(Clone, Debug)]
pub struct OnsetDetector {
    cfg: OnsetConfig,
    /// `min_speech` in whole frames (rounded up).
    needed: u32,
    /// Partial inbound frame.
    frame: [i16; FRAME_SAMPLES],
    frame_len: usize,
    /// Noise floor, dBFS; `None` until the first frame.
    floor: Option<f32>,
    /// Our output level per frame, newest at `out_pos - 1`.
    out_levels: [f32; ECHO_WINDOW_FRAMES],
    out_pos: usize,
    /// Speech frames in the current run, quiet frames since the last speech frame.
    run: u32,
    gap: u32,
    /// Loudest frame of the current run, and whether a later frame fell well below it
    /// (`fell`), or a quiet frame did and speech may still resume (`dipped`).
    peak: f32,
    fell: bool,
    dipped: bool,
}

impl Default for OnsetDetector {
    fn default() -> Self {
        OnsetDetector::new(OnsetConfig::default())
    }
}

impl OnsetDetector {
    pub fn new(cfg: OnsetConfig) -> Self {
        OnsetDetector {
            cfg,
            needed: frames_for(cfg.min_speech),
            frame: [0; FRAME_SAMPLES],
            frame_len: 0,
            floor: None,
            out_levels: [SILENCE_DB; ECHO_WINDOW_FRAMES],
            out_pos: 0,
            run: 0,
            gap: 0,
            peak: SILENCE_DB,
            fell: false,
            dipped: false,
        }
    }

    /// New thresholds; the noise floor, echo history and a run in progress are kept (the
    /// line did not change, only what the next prompt asks for).
    pub fn set_config(&mut self, cfg: OnsetConfig) {
        self.cfg = cfg;
        self.needed = frames_for(cfg.min_speech);
    }

    pub fn config(&self) -> &OnsetConfig {
        &self.cfg
    }

    /// One 20 ms frame we sent to the caller (G.711 as on the wire), for the echo test.
    pub fn on_output_frame(&mut self, codec: Codec, encoded: &[u8]) {
        let mut sum = 0u64;
        for &b in encoded {
            let s = i64::from(codec.decode_sample(b));
            sum += (s * s) as u64;
        }
        let level = if sum == 0 || encoded.is_empty() {
            SILENCE_DB
        } else {
            let mean = sum as f64 / encoded.len() as f64;
            ((10.0 * (mean / (32768.0 * 32768.0)).log10()) as f32).max(SILENCE_DB)
        };
        self.out_levels[self.out_pos] = level;
        self.out_pos = (self.out_pos + 1) % ECHO_WINDOW_FRAMES;
    }

    /// Feed decoded inbound samples (any count). Returns whether the caller is talking:
    /// a run of speech has reached `min_speech` and has not ended since.
    pub fn push(&mut self, mut pcm: &[i16]) -> bool {
        while !pcm.is_empty() {
            let n = pcm.len().min(FRAME_SAMPLES - self.frame_len);
            self.frame[self.frame_len..self.frame_len + n].copy_from_slice(&pcm[..n]);
            self.frame_len += n;
            pcm = &pcm[n..];
            if self.frame_len == FRAME_SAMPLES {
                self.frame_len = 0;
                let level = frame_dbfs(&self.frame);
                self.on_frame(level);
            }
        }
        self.talking()
    }

    /// Whether the current run of speech has reached `min_speech`.
    pub fn talking(&self) -> bool {
        self.run >= self.needed && self.fell
    }

    /// Speech heard in the current run (zero when none is in progress).
    pub fn run_length(&self) -> Duration {
        Duration::from_millis(u64::from(self.run) * 20)
    }

    /// The noise floor learnt so far, dBFS.
    pub fn noise_floor(&self) -> Option<f32> {
        self.floor
    }

    fn on_frame(&mut self, level: f32) {
        let floor = match self.floor {
            None => level,
            Some(f) if level < f => level,
            Some(f) => (f + FLOOR_RISE_DB_PER_FRAME).min(level),
        };
        // Judge against the floor as it stood before this frame, so a loud frame is not
        // measured against itself.
        let reference = self.floor.unwrap_or(level);
        self.floor = Some(floor);
        let echo_ref = self.out_levels.iter().copied().fold(SILENCE_DB, f32::max);
        let speech = level >= self.cfg.min_level_dbfs
            && level >= reference + self.cfg.snr_db
            && level >= echo_ref - self.cfg.echo_margin_db;
        if speech {
            if self.run == 0 {
                self.peak = level;
                self.fell = false;
                self.dipped = false;
            } else if self.dipped {
                // Speech again after a dip inside the run: the gap between two syllables.
                self.fell = true;
            }
            if level > self.peak {
                self.peak = level;
            } else if self.peak - level >= MODULATION_DB {
                self.fell = true;
            }
            self.run += 1;
            self.gap = 0;
        } else if self.run > 0 {
            // A quiet frame only shows modulation if speech resumes after it: the end of
            // a flat noise is quiet frames too.
            if self.peak - level >= MODULATION_DB {
                self.dipped = true;
            }
            self.gap += 1;
            if self.gap > GAP_FRAMES {
                self.run = 0;
                self.gap = 0;
            }
        }
    }
}

fn frames_for(d: Duration) -> u32 {
    let ms = d.as_millis().min(u128::from(u32::MAX));
    (ms as u32).div_ceil(20).max(1)
}

#[cfg(test)]
#[path = "onset_tests.rs"]
mod tests;
