//! Prompts: WAV files of any rate and channel count, converted once at load to 8 kHz mono
//! and cached in both G.711 laws so that playing one costs a memcpy per packet.
//!
//! OWNER: media-dsp helper. Contract: the signatures below.

use super::Codec;
use std::path::Path;
use std::sync::Arc;

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
    pub fn from_wav_file(path: &Path) -> Result<Prompt, PromptError> {
        let _ = path;
        todo!("media-dsp helper")
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
    pub fn tone(name: impl Into<String>, freq_hz: f32, duration_ms: u32, amplitude: f32) -> Prompt {
        let _ = (name, freq_hz, duration_ms, amplitude);
        todo!("media-dsp helper")
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

    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.pcm.len() as u64 / 8)
    }
}

/// Shared handle; prompts are loaded once and played by many calls.
pub type SharedPrompt = Arc<Prompt>;

/// Prompts by name (integrator's temporary stub; media-dsp owns the real one).
#[derive(Debug, Default)]
pub struct PromptSet {
    map: std::collections::HashMap<String, SharedPrompt>,
}

impl PromptSet {
    pub fn load(dir: &Path, names: &[&str]) -> Result<PromptSet, PromptError> {
        let _ = (dir, names);
        todo!()
    }
    pub fn get(&self, name: &str) -> Option<SharedPrompt> {
        self.map.get(name).cloned()
    }
}
