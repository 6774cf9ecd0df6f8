//! The ticket document `hotline.ticket/v1`, as stored and as posted to the intake API.
//!
//! The JSON shape is the public contract with the city's intake system and is described by
//! `docs/ticket.schema.json`; change it only together with the schema (and bump the
//! version for anything that is not a pure addition of optional fields).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::facts::HangupBy;

/// Value of the `schema` field of every document this version produces.
pub const SCHEMA_ID: &str = "hotline.ticket/v1";

/// One ticket: the document delivered to the intake API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// Always [`SCHEMA_ID`].
    pub schema: String,
    /// UUIDv7 (time-ordered); also the `Idempotency-Key` of every delivery attempt.
    pub ticket_id: Uuid,
    pub created_at: DateTime<Utc>,
    /// Which gateway instance took the call.
    pub gateway_instance: String,
    pub call: CallSection,
    pub menu: Option<MenuSection>,
    pub transcript: TranscriptSection,
    pub classification: Classification,
    pub duplicate: Option<DuplicateHint>,
    pub recording: Option<RecordingSection>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallSection {
    pub call_id: String,
    pub trunk: Option<String>,
    pub caller: String,
    pub called: String,
    pub channel: String,
    pub started_at: DateTime<Utc>,
    pub answered_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// `ended_at - started_at`.
    pub duration_ms: u64,
    /// `ended_at - answered_at`.
    pub talk_ms: u64,
    pub hangup: Hangup,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hangup {
    pub by: HangupBy,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MenuSection {
    pub digits: String,
    pub id: String,
    pub label: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranscriptSection {
    /// `null` when no ASR ran.
    pub language: Option<String>,
    pub text: String,
    pub segments: Vec<Segment>,
    /// `null` when no ASR ran.
    pub model: Option<String>,
    /// Set exactly when `text` is empty: `no_asr`, `no_speech`, or what the ASR layer said.
    pub empty_reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    /// 0..=1, rounded to 3 decimals.
    pub confidence: Option<f64>,
}

/// How the category was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassificationSource {
    /// At least one keyword of the category occurred in the transcript.
    Keywords,
    /// No keyword matched; the menu choice decided.
    Menu,
    /// Neither: the table's default category.
    Default,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// Stable id of the category in the rules table (`heating`, `noise`, ...).
    pub category_id: String,
    /// Human name (`供暖`).
    pub category: String,
    /// Responsible department the ticket is routed to.
    pub department: String,
    pub urgent: bool,
    pub response_deadline_hours: u32,
    /// `created_at + response_deadline_hours`.
    pub due_at: DateTime<Utc>,
    /// Category keywords found in the transcript, in table order.
    pub matched_keywords: Vec<String>,
    /// Urgent keywords found in the transcript.
    pub urgent_keywords: Vec<String>,
    pub source: ClassificationSource,
    /// `version` of the rules table used, so a re-classification can be traced.
    pub rules_version: String,
}

/// Why a ticket looks like a repeat of an earlier one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateReason {
    SameCaller,
    SimilarText,
    SameCallerSimilarText,
}

/// A hint, not a merge: the intake system decides what to do with repeats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DuplicateHint {
    pub duplicate_of: Uuid,
    /// Cosine similarity of the character n-gram sets of the two transcripts, 0..=1.
    pub similarity: f64,
    pub reason: DuplicateReason,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordingSection {
    /// Absolute path on the gateway, or a URL.
    pub location: String,
    /// Hex sha256 of the file; `null` when the file could not be read (`error` says why).
    pub sha256: Option<String>,
    pub size_bytes: Option<u64>,
    pub duration_ms: u64,
    /// Container, from the file: `wav`, or the extension.
    pub format: String,
    pub sample_rate_hz: Option<u32>,
    pub channels: Option<u16>,
    pub error: Option<String>,
}
