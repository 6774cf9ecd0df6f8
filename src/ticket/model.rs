//! The ticket document `hotline.ticket/v2`, as stored and as posted to the intake API.
//!
//! The JSON shape is the public contract with the city's intake system and is described by
//! `docs/ticket.schema.json`; change it only together with the schema (and bump the
//! version for anything that is not a pure addition of optional fields). The store always
//! keeps v2; an intake configured for v1 gets the document through [`super::v1`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::facts::HangupBy;

/// Value of the `schema` field of every document this version produces.
pub const SCHEMA_ID: &str = "hotline.ticket/v2";

/// One ticket: the document delivered to the intake API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// Always [`SCHEMA_ID`].
    pub schema: String,
    /// UUIDv7 (time-ordered); with `revision`, the `Idempotency-Key` of every delivery
    /// attempt (`<ticket_id>:<revision>`).
    pub ticket_id: Uuid,
    /// The citizen's reference number (12 digits, `YYMMDD` + instance + daily sequence);
    /// `None` when the call left no message and was not transferred.
    pub reference: Option<String>,
    /// 1 for the first delivery; every later change of the same ticket (transcript after an
    /// urgent early commit, an operator's correction, a fleet duplicate) is a new revision.
    pub revision: u32,
    pub created_at: DateTime<Utc>,
    /// Which gateway instance took the call.
    pub gateway_instance: String,
    pub call: CallSection,
    pub menu: Option<MenuSection>,
    /// `None` when the call was not put through to an operator.
    pub transfer: Option<Transfer>,
    pub transcript: TranscriptSection,
    pub classification: Classification,
    /// Handling state as reported by the intake or set on the desk (last writer wins).
    pub progress: Progress,
    pub duplicate: Option<DuplicateHint>,
    pub recording: Option<RecordingSection>,
    /// Set when a live speech segment contained an urgent word.
    pub urgent_trigger: Option<UrgentTrigger>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallSection {
    /// The gateway's own id of the call: the idempotency key of ticket creation and the name
    /// of its files. Unlike the SIP Call-ID it is unique even when two dialogs share one.
    pub call_uid: String,
    /// The SIP Call-ID, as the caller chose it.
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

/// How the caller chose the menu option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MenuSource {
    /// Pressed a key.
    Dtmf,
    /// Said it (spoken menu).
    Speech,
    /// Neither: the menu's no-input default chose.
    Default,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MenuSection {
    pub source: MenuSource,
    /// DTMF digits as pressed; `None` when the choice was spoken or defaulted.
    pub digits: Option<String>,
    /// What the caller said when the choice was spoken.
    pub utterance: Option<String>,
    pub id: String,
    pub label: String,
}

/// How a call was put through to an operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferMode {
    /// The gateway called the operator and bridged the media.
    Bridge,
    /// The caller's side was sent a REFER.
    Refer,
}

/// How a transfer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferOutcome {
    Answered,
    Busy,
    NoAnswer,
    Failed,
    OutOfHours,
    Abandoned,
    Referred,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    pub mode: TransferMode,
    /// Where the call was sent (a SIP URI or number).
    pub target: String,
    pub outcome: TransferOutcome,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    /// Operator talk time, when answered.
    pub talk_ms: Option<u64>,
}

/// Handling state of the ticket (not its delivery state, which the store keeps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressState {
    Accepted,
    InProgress,
    Resolved,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub state: ProgressState,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
    /// Who set it: `gateway` for a new ticket, else a desk user or API client.
    pub by: String,
}

/// What a live urgent word made the gateway do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UrgentAction {
    Flag,
    Transfer,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UrgentTrigger {
    /// The urgent word heard.
    pub word: String,
    /// Offset into the recording.
    pub at_ms: u64,
    pub action: UrgentAction,
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
    /// A trained text classifier chose.
    Model,
}

/// An operator's correction of the category (the original classification stays beside it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperatorOverride {
    pub category_id: String,
    pub department: String,
    pub by: String,
    pub at: DateTime<Utc>,
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
    /// 0..=1: how sure the classifier is of `category_id`.
    pub confidence: f64,
    /// The category should be checked by a person (low confidence, or nothing matched).
    pub needs_review: bool,
    pub operator_override: Option<OperatorOverride>,
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
    /// The desk API's recording endpoint (from `[console] public_url`); `None` when unset.
    pub url: Option<String>,
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
