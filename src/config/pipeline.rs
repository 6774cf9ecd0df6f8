//! The after-call sections: `[storage]`, `[intake]`, `[asr]` and `[tickets]`: where records
//! and recordings go, how they are transcribed and how tickets reach the city's intake.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub use crate::ticket::WireSchema;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Root for `recordings/` and `outbox/`, relative to the process's working directory.
    /// Default `var`. Env: `HOTLINE_DATA_DIR` (or `HOTLINE_STORAGE_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Delete recordings, call records and outbox files older than this many days once their
    /// ticket is delivered (never an undelivered one's; tickets stay). 0 = keep forever.
    pub retention_days: u64,
    /// Below this much free space on `data_dir`, new calls get 503 and an alert metric is
    /// raised: a message that cannot be stored must not be taken. 0 = no check.
    pub min_free_mb: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("var"),
            retention_days: 0,
            min_free_mb: 1024,
        }
    }
}

impl StorageConfig {
    /// The callers' messages, `recordings/<date>/<call>.wav`.
    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
    }
    /// Call records (`hotline.call/v1`), one JSON per answered call.
    pub fn calls_dir(&self) -> PathBuf {
        self.data_dir.join("calls")
    }
    /// Tickets as JSON files (`hotline.ticket/v2`), for operators without an intake API.
    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }
    /// The durable ticket store (SQLite, WAL).
    pub fn ticket_db(&self) -> PathBuf {
        self.data_dir.join("tickets.sqlite")
    }
}

/// `[intake]`: the city's ticket intake API. With no `url`, tickets stay in the store and
/// the outbox folder.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeConfig {
    /// POST target, e.g. `https://intake.example.gov/api/tickets`. Env: `HOTLINE_INTAKE_URL`.
    pub url: String,
    /// Bearer token. Prefer the environment (`HOTLINE_INTAKE_TOKEN`) to the file; never logged.
    pub token: String,
    /// Ticket document version posted: `v2` (default), or `v1` for an intake that has not
    /// moved on (the v2-only fields are dropped; see docs/ticket.md).
    pub schema: WireSchema,
    /// Posts in flight at once.
    pub concurrency: usize,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    /// First retry delay; doubles per attempt (with jitter) up to `backoff_max_ms`.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            url: String::new(),
            token: String::new(),
            schema: WireSchema::V2,
            concurrency: 4,
            connect_timeout_ms: 3000,
            request_timeout_ms: 15000,
            backoff_base_ms: 1000,
            backoff_max_ms: 300_000,
        }
    }
}

/// `[asr]`: transcribing callers' messages with a local Whisper model. The language of each
/// message is its number's prompt language (`zh`, `en`, or `auto` to detect).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AsrSection {
    /// Transcribe at all. Default true.
    pub enabled: bool,
    /// A whisper.cpp ggml model; `models/fetch.sh base` (or `hotline-gateway model fetch base`)
    /// puts one there.
    pub model: PathBuf,
    /// Refuse to start when the model is missing (true), or run without transcripts and say
    /// so in every ticket (false, the default: a hotline must answer even without ASR).
    pub required: bool,
    /// Whisper worker threads; 0 = one per core.
    pub workers: usize,
    /// ggml threads per message.
    pub threads_per_worker: usize,
    /// Messages waiting for a worker beyond those in progress.
    pub queue_depth: usize,
    /// Give up on one message after this long, seconds.
    pub time_budget_secs: u64,
    /// Beam search width (1 = greedy decoding, at most 8).
    pub beam_size: usize,
    /// Whisper's initial prompt for Mandarin: `"auto"` (a short Simplified-Chinese sentence
    /// followed by words of the classification table), `""` (none) or the text itself.
    pub initial_prompt: String,
    /// Characters of a live-transcribed message's earlier text given to Whisper with each
    /// later utterance (0 = every utterance on its own; at most 200).
    pub context_chars: usize,
    /// A live-transcribed message of several utterances is ticketed at once with the live
    /// text, then decoded whole when the Whisper pool is idle; a different text becomes the
    /// ticket's next revision (whole-message decoding reads each sentence with the others).
    pub second_pass: bool,
    /// Beam width of the second pass (1–8): it runs on an idle pool with all its threads, so
    /// it can afford the careful decoding the live parts cannot.
    pub second_pass_beam_size: usize,
    /// Whisper's initial prompt for Mandarin in the second pass, as `initial_prompt`.
    pub second_pass_prompt: String,
    /// Put common same-sounding words in place of Mandarin non-words (`asr::homophones`).
    pub homophones: bool,
    /// Which decoding favours the classification table's words token by token
    /// (`asr::bias`): `"off"`, `"second_pass"` (the careful decoding) or `"all"`.
    pub keyword_bias: String,
    /// Whether the second pass checks spans that sound like a table word against the audio
    /// and writes the word where Whisper finds it likely enough (`asr::rescore`).
    pub keyword_rescoring: bool,
}

impl Default for AsrSection {
    fn default() -> Self {
        AsrSection {
            enabled: true,
            model: PathBuf::from("models/ggml-base.bin"),
            required: false,
            workers: 0,
            threads_per_worker: 1,
            queue_depth: 16,
            time_budget_secs: 60,
            beam_size: 1,
            initial_prompt: crate::asr::prompt::ZH_BASE.to_string(),
            context_chars: 0,
            second_pass: true,
            second_pass_beam_size: 5,
            second_pass_prompt: "auto".to_string(),
            homophones: true,
            keyword_bias: "second_pass".to_string(),
            keyword_rescoring: true,
        }
    }
}

/// `[tickets]`: classification rules and duplicate detection.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketsConfig {
    /// Rules table (keywords → category, department, urgency, deadline); empty = built-in.
    pub classification: String,
    /// Look back this far for an earlier ticket from the same caller or with similar text.
    pub duplicate_window_secs: u64,
    /// Character-bigram cosine similarity at or above which texts count as the same complaint.
    pub duplicate_threshold: f64,
    /// This gateway's number (0-99) in reference numbers: `YYMMDD` + these 2 digits + the
    /// day's sequence, so a fleet's gateways never give two callers the same number.
    pub instance_number: u32,
    /// `sqlite` (this gateway's own store) or `postgres`: a fleet's shared store at `url`,
    /// fed from the local store (docs/fleet-store.md). Env: `HOTLINE_TICKETS_STORE`.
    pub store: String,
    /// The shared store, `postgres://user:password@host:5432/db` (`?sslmode=require` for
    /// TLS). Env: `HOTLINE_TICKETS_URL`.
    pub url: String,
    /// How long a ticket claimed for delivery belongs to one instance (`postgres` only);
    /// longer than `[intake] request_timeout_ms`.
    pub lease_secs: u64,
}

impl Default for TicketsConfig {
    fn default() -> Self {
        TicketsConfig {
            classification: "config/classification.toml".into(),
            duplicate_window_secs: 72 * 3600,
            duplicate_threshold: 0.5,
            instance_number: 0,
            store: "sqlite".into(),
            url: String::new(),
            lease_secs: 60,
        }
    }
}
