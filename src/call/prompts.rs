//! The prompt library: every language's prompt set, loaded once at start (and on reload)
//! and shared by all calls.

use crate::config::REQUIRED_PROMPTS;
use crate::media::prompt::{Prompt, PromptError, PromptSet, SharedPrompt};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// All languages' prompts plus the generated beep and pause.
#[derive(Debug)]
pub struct PromptLibrary {
    sets: HashMap<String, PromptSet>,
    beep: SharedPrompt,
    pause: SharedPrompt,
}

impl PromptLibrary {
    /// Load `<dir>/<lang>/<name>.wav` for each language: each of [`REQUIRED_PROMPTS`] (which
    /// must exist) and every other WAV there, so that a flow's own prompts (a language
    /// choice, an out-of-hours notice) need no list of names here; check-config has made
    /// sure each one the flow plays exists.
    pub fn load(dir: &Path, languages: &[String]) -> Result<PromptLibrary, PromptError> {
        let mut sets = HashMap::new();
        for lang in languages {
            if sets.contains_key(lang) {
                continue;
            }
            let lang_dir = dir.join(lang);
            let mut set = PromptSet::load(&lang_dir, REQUIRED_PROMPTS)?;
            // Extras that do not load are left out with a warning: only a flow that plays
            // them needs them, and check-config names those.
            if let Ok(entries) = std::fs::read_dir(&lang_dir) {
                for e in entries.flatten() {
                    let path = e.path();
                    let stem = path.file_stem().and_then(|s| s.to_str());
                    let wav = path.extension().is_some_and(|x| x == "wav");
                    if let (true, Some(stem)) = (wav, stem) {
                        if set.contains(stem) {
                            continue;
                        }
                        match Prompt::from_wav_file(&path) {
                            Ok(p) => {
                                set.insert(p);
                            }
                            Err(e) => tracing::warn!(error = %e, "prompt not loaded"),
                        }
                    }
                }
            }
            sets.insert(lang.clone(), set);
        }
        Ok(PromptLibrary {
            sets,
            // 1 kHz for 300 ms at -6 dBFS: the "speak after the tone" beep callers know.
            beep: Arc::new(Prompt::tone("beep", 1000.0, 300, 0.5)),
            // Between the groups of a number read back (`say_digits`).
            pause: Arc::new(Prompt::from_pcm("pause", vec![0; 8000 * 4 / 10])),
        })
    }

    /// A prompt in `lang`. Load checked every IVR prompt exists, so `None` means an unknown
    /// language or a name outside [`REQUIRED_PROMPTS`].
    pub fn get(&self, lang: &str, name: &str) -> Option<SharedPrompt> {
        self.sets.get(lang)?.get(name)
    }

    pub fn beep(&self) -> SharedPrompt {
        self.beep.clone()
    }

    /// 400 ms of silence.
    pub fn pause(&self) -> SharedPrompt {
        self.pause.clone()
    }
}
