//! From the recorded 8 kHz message to the 16 kHz speech Whisper sees.
//!
//! Whisper hallucinates on silence and noise (it was trained on subtitles: "thanks for
//! watching"), so only what a real VAD calls speech is sent to it, and a message with no speech
//! never reaches the model at all.

use std::path::Path;

use earshot::Detector;

use crate::media::prompt::{Prompt, PromptError};
use crate::media::Codec;

/// Whisper's input rate.
pub const WHISPER_RATE: u32 = 16_000;
/// earshot works on 16 ms frames at 16 kHz.
const VAD_FRAME: usize = 256;
const VAD_FRAME_MS: u64 = 16;

/// Tuning of speech detection.
#[derive(Clone, Debug, PartialEq)]
pub struct VadConfig {
    /// earshot score at or above which a frame is speech (0.5 is earshot's suggested default).
    pub threshold: f32,
    /// Speech runs shorter than this are clicks or line noise, not words.
    pub min_speech_ms: u64,
    /// Gaps shorter than this inside speech are pauses between words; they stay in.
    pub merge_gap_ms: u64,
    /// Context kept either side of a speech run so word onsets and tails are not clipped.
    pub pad_ms: u64,
    /// A message whose total speech is shorter than this is treated as having none.
    pub min_total_speech_ms: u64,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            threshold: 0.5,
            min_speech_ms: 96,
            merge_gap_ms: 400,
            pad_ms: 200,
            min_total_speech_ms: 300,
        }
    }
}

/// A span of the 16 kHz signal, in samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn start_ms(&self) -> u64 {
        self.start as u64 * 1000 / WHISPER_RATE as u64
    }
    pub fn end_ms(&self) -> u64 {
        self.end as u64 * 1000 / WHISPER_RATE as u64
    }
}

/// 8 kHz telephone PCM → 16 kHz f32 in [-1, 1], through the media layer's windowed-sinc
/// resampler (its low-pass removes the 4–8 kHz image that naive interpolation would hand
/// Whisper as fake high-frequency "speech").
pub fn upsample_8k(pcm_8k: &[i16]) -> Vec<f32> {
    let x: Vec<f32> = pcm_8k.iter().map(|&s| s as f32 / 32768.0).collect();
    crate::media::resample::resample(&x, 8_000, WHISPER_RATE)
}

/// A WAV recording (any rate, mono or stereo) as the ASR pool receives it from a call: read and
/// resampled to 8 kHz the way the test caller plays it (`media::prompt`), encoded in `codec`,
/// decoded back to 8 kHz PCM. Tests and benchmarks feed wide-band recordings through this so
/// Whisper hears what a phone line leaves of them (no energy above 4 kHz, G.711 quantisation),
/// not studio audio it would do better on.
pub fn telephone_round_trip(wav: &Path, codec: Codec) -> Result<Vec<i16>, PromptError> {
    let prompt = Prompt::from_wav_file(wav)?;
    let line = prompt.encoded(codec);
    let mut pcm = vec![0i16; line.len()];
    codec.decode(line, &mut pcm);
    Ok(pcm)
}

/// Whether 8 kHz PCM holds any speech span (what [`speech_spans`] would hand Whisper).
pub fn has_speech(pcm_8k: &[i16], cfg: &VadConfig) -> bool {
    !speech_spans(&upsample_8k(pcm_8k), cfg).is_empty()
}

/// Speech spans of a 16 kHz signal, merged and padded, in order.
pub fn speech_spans(x16: &[f32], cfg: &VadConfig) -> Vec<Span> {
    let mut det = Detector::default();
    let mut raw: Vec<(usize, usize)> = Vec::new(); // frame index ranges
    let mut run_start: Option<usize> = None;
    let n_frames = x16.len() / VAD_FRAME;
    for f in 0..n_frames {
        let frame = &x16[f * VAD_FRAME..(f + 1) * VAD_FRAME];
        let voiced = det.predict_f32(frame) >= cfg.threshold;
        match (voiced, run_start) {
            (true, None) => run_start = Some(f),
            (false, Some(s)) => {
                raw.push((s, f));
                run_start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = run_start {
        raw.push((s, n_frames));
    }
    let ms_frames = |ms: u64| ms.div_ceil(VAD_FRAME_MS) as usize;
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (s, e) in raw {
        match merged.last_mut() {
            Some(last) if s - last.1 < ms_frames(cfg.merge_gap_ms) => last.1 = e,
            _ => merged.push((s, e)),
        }
    }
    merged.retain(|&(s, e)| e - s >= ms_frames(cfg.min_speech_ms));
    let pad = ms_frames(cfg.pad_ms) * VAD_FRAME;
    let mut spans: Vec<Span> = Vec::new();
    for (s, e) in merged {
        let span = Span {
            start: (s * VAD_FRAME).saturating_sub(pad),
            end: (e * VAD_FRAME + pad).min(x16.len()),
        };
        match spans.last_mut() {
            Some(last) if span.start <= last.end => last.end = span.end,
            _ => spans.push(span),
        }
    }
    let total_ms: u64 = spans.iter().map(|s| s.end_ms() - s.start_ms()).sum();
    if total_ms < cfg.min_total_speech_ms {
        return Vec::new();
    }
    spans
}

/// The speech spans joined into one clip (so Whisper runs its encoder once), with a short
/// silence between spans, and the map back to message time.
pub struct SpeechClip {
    pub samples: Vec<f32>,
    /// (offset in `samples`, span in the message) per joined piece.
    pub pieces: Vec<(usize, Span)>,
}

/// Silence inserted between joined spans: long enough for Whisper to see a pause.
const JOIN_GAP: usize = WHISPER_RATE as usize / 5;

pub fn join_spans(x16: &[f32], spans: &[Span]) -> SpeechClip {
    let mut samples = Vec::new();
    let mut pieces = Vec::new();
    for (i, sp) in spans.iter().enumerate() {
        if i > 0 {
            samples.extend(std::iter::repeat_n(0.0, JOIN_GAP));
        }
        pieces.push((samples.len(), *sp));
        samples.extend_from_slice(&x16[sp.start..sp.end]);
    }
    SpeechClip { samples, pieces }
}

impl SpeechClip {
    /// Map a time in the joined clip (ms) back to the message's own time line (ms).
    pub fn to_message_ms(&self, clip_ms: u64) -> u64 {
        let at = (clip_ms * WHISPER_RATE as u64 / 1000) as usize;
        let mut best = self.pieces.first().map_or(0, |(_, sp)| sp.start_ms());
        for &(off, sp) in &self.pieces {
            if at >= off {
                let inside = (at - off).min(sp.end - sp.start);
                best = (sp.start + inside) as u64 * 1000 / WHISPER_RATE as u64;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin()) as i16)
            .collect()
    }

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
    }

    /// Power of `x` at `freq` (Goertzel), normalised by length.
    fn power_at(x: &[f32], freq: f64, rate: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * freq / rate;
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &v in x {
            let s0 = v as f64 + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2) / (x.len() as f64).powi(2)
    }

    #[test]
    fn upsampling_keeps_a_passband_tone_and_removes_its_image() {
        // A 1 kHz tone at 8 kHz has its zero-stuffing image at 7 kHz; the low-pass must remove
        // it while keeping the tone's level.
        let x = upsample_8k(&tone(1000.0, 8000.0, 8000));
        assert_eq!(x.len(), 16000);
        let body = &x[1000..15000];
        let level = rms(body);
        let want = 8000.0 / 32768.0 / std::f32::consts::SQRT_2;
        assert!((level - want).abs() / want < 0.02, "rms {level} vs {want}");
        let tone_p = power_at(body, 1000.0, 16000.0);
        let image_p = power_at(body, 7000.0, 16000.0);
        assert!(
            10.0 * (tone_p / image_p).log10() > 50.0,
            "image only {:.1} dB down",
            10.0 * (tone_p / image_p).log10()
        );
    }

    #[test]
    fn the_telephone_round_trip_keeps_the_voice_band_and_drops_what_a_line_cannot_carry() {
        // 1 kHz (voice band) plus 6 kHz (above the 4 kHz a G.711 line carries), 1 s at 16 kHz.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wide.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        let (low, high) = (tone(1000.0, 16000.0, 16000), tone(6000.0, 16000.0, 16000));
        for (a, b) in low.iter().zip(&high) {
            w.write_sample(a / 2 + b / 2).unwrap();
        }
        w.finalize().unwrap();
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let pcm = telephone_round_trip(&path, codec).unwrap();
            assert_eq!(pcm.len(), 8000, "{codec:?}: 1 s at 8 kHz");
            let x: Vec<f32> = pcm[500..7500].iter().map(|&s| s as f32 / 32768.0).collect();
            let want = 4000.0 / 32768.0 / std::f32::consts::SQRT_2;
            let level = rms(&x);
            // The 6 kHz half is gone (it would alias to 2 kHz), the 1 kHz half is kept; G.711
            // quantisation costs about 1 % of level at this amplitude.
            assert!(
                (level - want).abs() / want < 0.03,
                "{codec:?}: rms {level} vs {want}"
            );
            let alias = power_at(&x, 2000.0, 8000.0);
            let voice = power_at(&x, 1000.0, 8000.0);
            assert!(
                10.0 * (voice / alias).log10() > 40.0,
                "{codec:?}: 6 kHz aliased to 2 kHz only {:.1} dB down",
                10.0 * (voice / alias).log10()
            );
        }
    }

    #[test]
    fn silence_and_low_noise_have_no_speech_spans() {
        let silence = vec![0.0f32; 16000 * 3];
        assert!(speech_spans(&silence, &VadConfig::default()).is_empty());
        // Deterministic white-ish noise at about -40 dBFS (a quiet line).
        let mut state = 0x1234_5678u32;
        let noise: Vec<f32> = (0..16000 * 3)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state as f32 / u32::MAX as f32 - 0.5) * 0.02
            })
            .collect();
        assert!(speech_spans(&noise, &VadConfig::default()).is_empty());
    }

    #[test]
    fn joined_clip_maps_times_back_to_the_message() {
        let x = vec![0.0f32; 16000 * 10];
        let spans = [
            Span {
                start: 16000,
                end: 32000,
            },
            Span {
                start: 80000,
                end: 96000,
            },
        ];
        let clip = join_spans(&x, &spans);
        assert_eq!(clip.samples.len(), 32000 + JOIN_GAP);
        assert_eq!(clip.to_message_ms(0), 1000);
        assert_eq!(clip.to_message_ms(500), 1500);
        // Start of the second piece (after 1 s of speech and the gap) is 5 s in the message.
        let second = (16000 + JOIN_GAP) as u64 * 1000 / 16000;
        assert_eq!(clip.to_message_ms(second), 5000);
        assert_eq!(clip.to_message_ms(second + 250), 5250);
    }
}
