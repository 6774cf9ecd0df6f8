//! The call-flow sections: `[prompts]`, `[menu]`, `[ivr]` and `[recording]`: what a caller
//! hears, what the keys do, and how the message is taken.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Prompt files every language directory must hold, as `<name>.wav`.
///
/// `digit_0`..`digit_9` read numbers back (a ticket number, the number called from).
pub const REQUIRED_PROMPTS: &[&str] = &[
    "greeting", "menu", "record", "thanks", "goodbye", "invalid", "no_input", "busy", "digit_0",
    "digit_1", "digit_2", "digit_3", "digit_4", "digit_5", "digit_6", "digit_7", "digit_8",
    "digit_9",
];

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptsConfig {
    /// Directory holding one sub-directory per language (`prompts/zh/greeting.wav`...).
    /// Relative to the process's working directory. Default `prompts`.
    pub dir: PathBuf,
    /// Default language. Default `zh`.
    pub language: String,
}

impl Default for PromptsConfig {
    fn default() -> Self {
        PromptsConfig {
            dir: PathBuf::from("prompts"),
            language: "zh".to_owned(),
        }
    }
}

impl PromptsConfig {
    /// Directory of one language's prompts, e.g. `prompts/zh`.
    pub fn language_dir(&self, language: &str) -> PathBuf {
        self.dir.join(language)
    }

    /// Path of one prompt, e.g. `prompt_path("zh", "greeting")` → `prompts/zh/greeting.wav`.
    pub fn prompt_path(&self, language: &str, name: &str) -> PathBuf {
        self.language_dir(language).join(format!("{name}.wav"))
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MenuConfig {
    /// `[[menu.option]]`: digit → choice. At least one is required.
    #[serde(rename = "option")]
    pub options: Vec<MenuOption>,
    /// Seconds to wait for a digit after the menu prompt finished. Default 6.
    pub digit_timeout_secs: u64,
    /// How many times the menu is played in total before `on_no_input` applies. Default 3.
    pub max_attempts: u32,
    /// What to do when no valid digit came: `"hangup"` or a configured digit to assume.
    /// Default `"0"`.
    pub on_no_input: String,
    /// The spoken menu: callers may say what they need instead of pressing a key (menu
    /// steps play `speech_prompts` after their prompts and listen; see
    /// `call::flow::spoken`). Needs speech recognition (`[asr]`); without a model the menu
    /// is keys only. Default false.
    pub speech: bool,
}

impl Default for MenuConfig {
    fn default() -> Self {
        MenuConfig {
            options: Vec::new(),
            digit_timeout_secs: 6,
            max_attempts: 3,
            on_no_input: "0".to_owned(),
            speech: false,
        }
    }
}

/// One `[[menu.option]]`. `digit`, `id` and `label` are required (checked by validation).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MenuOption {
    /// The DTMF digit, `0`-`9`, `*` or `#`.
    pub digit: String,
    /// Stable id for machines (`complaint`, `policy`, `service`, `operator`).
    pub id: String,
    /// Label for humans, e.g. `投诉举报`.
    pub label: String,
    /// Deprecated: what the option leads to is the flow's business (`[flow]`'s `menu` step).
    /// Read only when no `[flow]` is configured (the flow is then built from `[menu]`):
    /// whether the caller is asked to leave a message after choosing this option. Default
    /// true. Next to a `[flow]`, check-config refuses it with its key and line.
    pub record: bool,
    /// What a caller may say to choose this option, for the spoken menu: found anywhere in
    /// the recognised words (spaces, punctuation and ASCII case ignored) it chooses the
    /// option; found by sound only, or with another option's, it is asked back
    /// (`call::flow::spoken`). Default none.
    pub phrases: Vec<String>,
}

impl Default for MenuOption {
    fn default() -> Self {
        MenuOption {
            digit: String::new(),
            id: String::new(),
            label: String::new(),
            record: true,
            phrases: Vec::new(),
        }
    }
}

/// `[ivr]`: speech barge-in, the caller talking over a prompt.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IvrConfig {
    /// Which prompts the caller's voice stops:
    /// - `"off"`: none (only a DTMF digit cuts a prompt short);
    /// - `"message"`: the "please speak after the tone" prompt (and the tone): the caller
    ///   who starts the message early is recorded at once, from the first words on;
    /// - `"all"`: the greeting and menu as well: talking there skips the menu to the
    ///   message of the `menu.on_no_input` option (which must take a message). With the
    ///   spoken menu on (`menu.speech`, and a model), talking over the menu is heard as a
    ///   request instead.
    ///
    /// Default `"message"`. Callers who know the hotline start their complaint over the
    /// instructions; without barge-in the first sentence is lost. `"all"` is not the
    /// default because on Chinese lines callers routinely answer a greeting with "喂？喂？"
    /// ("hello?"), which would skip the menu, and the menu choice routes the ticket.
    pub speech_barge_in: String,
    /// Speech needed before it counts as barge-in, milliseconds (clicks, coughs and a
    /// line pop are shorter). Default 250.
    pub barge_in_min_speech_ms: u64,
    /// How far above the line's noise floor (learnt during the call) speech must be, dB.
    /// Default 12.
    pub barge_in_snr_db: f32,
    /// Audio quieter than this (dBFS) never counts as barge-in. Default -35.
    pub barge_in_level_dbfs: f32,
    /// Caller audio from before the barge-in put at the start of the message, milliseconds,
    /// so the words that triggered it are in the recording. At least
    /// `barge_in_min_speech_ms`. Default 500.
    pub barge_in_preroll_ms: u64,
}

impl Default for IvrConfig {
    fn default() -> Self {
        IvrConfig {
            speech_barge_in: "message".to_owned(),
            barge_in_min_speech_ms: 250,
            barge_in_snr_db: 12.0,
            barge_in_level_dbfs: -35.0,
            barge_in_preroll_ms: 500,
        }
    }
}

/// The values of `ivr.speech_barge_in`.
pub const SPEECH_BARGE_IN_MODES: &[&str] = &["off", "message", "all"];

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Hard cap on a message, seconds. Default 120.
    pub max_duration_secs: u64,
    /// Silence after speech that ends the message, milliseconds. Default 1500.
    pub trailing_silence_ms: u64,
    /// If the caller says nothing for this long after the beep, the message ends empty.
    /// Default 8.
    pub no_speech_timeout_secs: u64,
    /// Frame energy above this (dBFS) counts as speech for the end-pointer. Default -40.
    pub speech_threshold_dbfs: f32,
    /// DTMF digit that ends the message. Default `"#"`.
    pub end_digit: String,
    /// Silence within a message that ends an utterance, milliseconds: each utterance is
    /// transcribed while the caller goes on talking, so the ticket is ready soon after
    /// hang-up. Default 600; 0 = transcribe the whole message after hang-up. Below
    /// `trailing_silence_ms`.
    pub utterance_pause_ms: u64,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            max_duration_secs: 120,
            trailing_silence_ms: 1500,
            no_speech_timeout_secs: 8,
            speech_threshold_dbfs: -40.0,
            end_digit: "#".to_owned(),
            utterance_pause_ms: 600,
        }
    }
}
