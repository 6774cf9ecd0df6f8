//! The prompt library: every language's prompt set, loaded once at start (and on reload)
//! and shared by all calls.

use crate::config::REQUIRED_PROMPTS;
use crate::media::prompt::{Prompt, PromptError, PromptSet, SharedPrompt};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// All languages' prompts plus the generated beep.
#[derive(Debug)]
pub struct PromptLibrary {
    sets: HashMap<String, PromptSet>,
    beep: SharedPrompt,
}

impl PromptLibrary {
    /// Load `<dir>/<lang>/<name>.wav` for each language and each of [`REQUIRED_PROMPTS`].
    pub fn load(dir: &Path, languages: &[String]) -> Result<PromptLibrary, PromptError> {
        let mut sets = HashMap::new();
        for lang in languages {
            if sets.contains_key(lang) {
                continue;
            }
            sets.insert(
                lang.clone(),
                PromptSet::load(&dir.join(lang), REQUIRED_PROMPTS)?,
            );
        }
        Ok(PromptLibrary {
            sets,
            // 1 kHz for 300 ms at -6 dBFS: the "speak after the tone" beep callers know.
            beep: Arc::new(Prompt::tone("beep", 1000.0, 300, 0.5)),
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
}
