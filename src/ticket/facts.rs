//! The input of the ticket layer: plain facts about one answered call.
//!
//! Tickets know no SIP: the call layer fills this struct from its dialog, IVR and media
//! state and hands it over. Everything here is data the caller already knows; the ticket
//! layer derives the rest (classification, duplicate hint, recording checksum).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub use super::model::{MenuSource, Transfer, UrgentTrigger};

/// Everything the ticket layer needs to know about one answered call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallFacts {
    /// The gateway's own id of the call, unique even when two dialogs share a Call-ID.
    /// Creating a ticket twice for the same `call_uid` returns the first ticket, so a retried
    /// hand-over never makes two tickets.
    pub call_uid: String,
    /// SIP Call-ID, as the caller chose it (informational; not unique).
    pub call_id: String,
    /// Reference number allocated during the call (message or transfer started), if any.
    #[serde(default)]
    pub reference: Option<String>,
    /// Name of the trunk / peer the call came in on, when known.
    pub trunk: Option<String>,
    /// Caller number as presented (may be `anonymous`).
    pub caller: String,
    /// Dialled number (user part of the Request-URI), e.g. `8890`.
    pub called: String,
    /// Channel the dialled number stands for (`8890`, `12345-legacy`, ...).
    pub channel: String,
    pub started_at: DateTime<Utc>,
    pub answered_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub hangup_by: HangupBy,
    /// Free text: `BYE`, `no input`, `max duration`, `rtp timeout`, ...
    pub hangup_reason: String,
    pub menu: Option<MenuChoice>,
    /// The call was put through to an operator.
    #[serde(default)]
    pub transfer: Option<Transfer>,
    /// A live segment contained an urgent word.
    #[serde(default)]
    pub urgent_trigger: Option<UrgentTrigger>,
    /// `None` when no ASR ran at all (the ticket then says `empty_reason: "no_asr"`).
    pub transcript: Option<TranscriptFacts>,
    /// `None` when nothing was recorded.
    pub recording: Option<RecordingFacts>,
}

/// Which side ended the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupBy {
    Caller,
    Gateway,
}

/// The IVR menu option the caller chose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MenuChoice {
    /// Pressed, spoken, or the menu's default.
    pub source: MenuSource,
    /// DTMF digits as pressed, e.g. `"2"`; `None` when not chosen by key.
    pub digits: Option<String>,
    /// What the caller said, when chosen by speech.
    pub utterance: Option<String>,
    /// Stable machine id of the option (`complaint`, `policy`, ...): classification falls
    /// back on it when no keyword matches.
    pub id: String,
    /// Human label, e.g. `政策咨询`.
    pub label: String,
}

/// What the speech recogniser produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranscriptFacts {
    /// Language code as detected/forced (`zh`, `en`).
    pub language: String,
    /// Full text. May be empty; then `empty_reason` says why (defaults to `no_speech`).
    pub text: String,
    pub segments: Vec<SegmentFacts>,
    /// Model name, e.g. `ggml-small.bin`.
    pub model: String,
    /// Why `text` is empty (`no_speech`, `asr_failed`, `too_short`...); ignored when not empty.
    pub empty_reason: Option<String>,
}

/// One recognised segment, times relative to the start of the recording.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentFacts {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    /// 0..=1 when the recogniser gives one (mean token probability for Whisper).
    pub confidence: Option<f32>,
}

/// The recording of the caller's message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingFacts {
    /// Local file path (or URL when already uploaded elsewhere). The sha256 is computed from
    /// the file when it is readable.
    pub path: PathBuf,
    pub duration_ms: u64,
}
