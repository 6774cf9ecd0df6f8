//! Prompts: WAV files of any rate and channel count, converted once at load to 8 kHz mono
//! and cached in both G.711 laws so that playing one costs a memcpy per packet.
//!
//! OWNER: media-dsp helper. Contract: the signatures below.

use super::resample::resample;
use super::{Codec, SAMPLE_RATE};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Sample rates accepted from WAV headers. Outside this a header is corrupt (or not audio
/// for a phone line), and believing it would size the resampler's filter from garbage.
const WAV_RATES: std::ops::RangeInclusive<u32> = 1000..=384_000;

/// Fade-in/out of [`Prompt::tone`]: 8 ms is inaudible as a ramp but removes the click.
pub const TONE_FADE: Duration = Duration::from_millis(8);

/// A prompt ready to play.
#[derive(Debug)]
pub struct Prompt {
    name: String,
    /// 8 kHz mono linear samples.
    pcm: Vec<i16>,
    pcmu: Vec<u8>,
    pcma: Vec<u8>,
}

/// Why a prompt could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("{path}: {source}")]
    Wav {
        path: String,
        #[source]
        source: hound::Error,
    },
    #[error("{path}: unsupported WAV format: {what}")]
    Format { path: String, what: String },
}

impl Prompt {
    /// Load a WAV file (8/16/24/32-bit int or 32-bit float, any rate, mono or stereo).
    ///
    /// Channels are averaged, the result resampled to 8 kHz with an anti-aliasing filter
    /// and rounded to 16 bits with clipping. The prompt is named after the file stem.
    pub fn from_wav_file(path: &Path) -> Result<Prompt, PromptError> {
        let shown = path.display().to_string();
        let reader = hound::WavReader::open(path).map_err(|source| PromptError::Wav {
            path: shown.clone(),
            source,
        })?;
        let format_err = |what: String| PromptError::Format {
            path: shown.clone(),
            what,
        };
        let spec = reader.spec();
        if spec.channels == 0 {
            return Err(format_err("zero channels".into()));
        }
        if !WAV_RATES.contains(&spec.sample_rate) {
            return Err(format_err(format!("sample rate {} Hz", spec.sample_rate)));
        }
        let interleaved: Result<Vec<f32>, hound::Error> =
            match (spec.sample_format, spec.bits_per_sample) {
                (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
                    let scale = 1.0 / (1u64 << (bits - 1)) as f64;
                    reader
                        .into_samples::<i32>()
                        .map(|s| s.map(|v| (f64::from(v) * scale) as f32))
                        .collect()
                }
                (hound::SampleFormat::Float, 32) => reader
                    .into_samples::<f32>()
                    .map(|s| s.map(|v| if v.is_finite() { v } else { 0.0 }))
                    .collect(),
                (format, bits) => {
                    return Err(format_err(format!("{bits}-bit {format:?} samples")));
                }
            };
        let interleaved = interleaved.map_err(|source| PromptError::Wav {
            path: shown.clone(),
            source,
        })?;
        let mono = downmix(&interleaved, usize::from(spec.channels));
        if mono.is_empty() {
            return Err(format_err("no audio samples".into()));
        }
        let at_8k = resample(&mono, spec.sample_rate, SAMPLE_RATE);
        let pcm = at_8k.iter().map(|&x| to_i16(x)).collect();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Prompt::from_pcm(name, pcm))
    }

    /// Build from 8 kHz mono samples.
    pub fn from_pcm(name: impl Into<String>, pcm_8k: Vec<i16>) -> Prompt {
        let mut pcmu = vec![0u8; pcm_8k.len()];
        let mut pcma = vec![0u8; pcm_8k.len()];
        Codec::Pcmu.encode(&pcm_8k, &mut pcmu);
        Codec::Pcma.encode(&pcm_8k, &mut pcma);
        Prompt {
            name: name.into(),
            pcm: pcm_8k,
            pcmu,
            pcma,
        }
    }

    /// A sine tone (the "speak after the tone" beep), with short fades so it does not click.
    ///
    /// `amplitude` is a fraction of full scale (clamped to 0.0–1.0). The fades are
    /// raised-cosine, [`TONE_FADE`] long (or half the tone if it is shorter).
    pub fn tone(name: impl Into<String>, freq_hz: f32, duration_ms: u32, amplitude: f32) -> Prompt {
        let n = duration_ms as usize * SAMPLE_RATE as usize / 1000;
        let fade_len = (TONE_FADE.as_millis() as usize * SAMPLE_RATE as usize / 1000).min(n / 2);
        let amp = f64::from(amplitude.clamp(0.0, 1.0)) * 32767.0;
        let step = 2.0 * std::f64::consts::PI * f64::from(freq_hz) / f64::from(SAMPLE_RATE);
        let pcm = (0..n)
            .map(|i| {
                let edge = i.min(n - 1 - i);
                let gain = if edge < fade_len {
                    0.5 - 0.5 * (std::f64::consts::PI * edge as f64 / fade_len as f64).cos()
                } else {
                    1.0
                };
                (amp * gain * (step * i as f64).sin()).round() as i16
            })
            .collect();
        Prompt::from_pcm(name, pcm)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// 8 kHz mono linear samples.
    pub fn pcm(&self) -> &[i16] {
        &self.pcm
    }

    /// The whole prompt in `codec`; the player cuts it into 160-byte packets.
    pub fn encoded(&self, codec: Codec) -> &[u8] {
        match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
        }
    }

    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.pcm.len() as u64 * 1_000_000 / u64::from(SAMPLE_RATE))
    }
}

/// Shared handle; prompts are loaded once and played by many calls.
pub type SharedPrompt = Arc<Prompt>;

/// Average interleaved channels into one.
fn downmix(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels == 1 {
        return interleaved.to_vec();
    }
    let inv = 1.0 / channels as f32;
    interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() * inv)
        .collect()
}

/// Full-scale float to 16 bits, clipping instead of wrapping.
fn to_i16(x: f32) -> i16 {
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// The prompts of one language, by name (`greeting`, `menu`, `beep`...).
#[derive(Clone, Debug, Default)]
pub struct PromptSet {
    prompts: HashMap<String, SharedPrompt>,
}

impl PromptSet {
    pub fn new() -> Self {
        PromptSet::default()
    }

    /// Load `<dir>/<name>.wav` for each name. Fails on the first file that is missing or
    /// unreadable, naming it, so a bad deployment is caught at start-up, not mid-call.
    /// Each prompt is stored (and named) under the name asked for.
    pub fn load(dir: &Path, names: &[&str]) -> Result<PromptSet, PromptError> {
        let mut set = PromptSet::new();
        for &name in names {
            let mut prompt = Prompt::from_wav_file(&dir.join(format!("{name}.wav")))?;
            prompt.name = name.to_string();
            set.insert(prompt);
        }
        Ok(set)
    }

    /// The prompt called `name`, shared.
    pub fn get(&self, name: &str) -> Option<SharedPrompt> {
        self.prompts.get(name).cloned()
    }

    /// Add or replace a prompt under its own name; returns the one replaced.
    pub fn insert(&mut self, prompt: impl Into<SharedPrompt>) -> Option<SharedPrompt> {
        let prompt = prompt.into();
        self.prompts.insert(prompt.name().to_string(), prompt)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.prompts.contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }

    /// The names, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.prompts.keys().map(String::as_str)
    }
}

#[cfg(test)]
#[path = "prompt_tests.rs"]
mod tests;
