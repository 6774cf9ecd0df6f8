//! The call record: what happened on one answered call, written as JSON into the outbox
//! when the call ends. It is the hand-off from the call layer to whatever consumes calls
//! (the ticket pipeline, an operator tool); it carries no SIP or RTP types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Version tag of the document, bumped on incompatible changes.
pub const CALL_RECORD_SCHEMA: &str = "hotline.call/v1";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallRecord {
    pub schema: String,
    /// The gateway's own id of the call (UUIDv7): names the record and recording files and
    /// keys ticket creation. Two dialogs may share a SIP Call-ID; they never share this.
    /// Empty in records written before it existed (their Call-ID stands in).
    #[serde(default)]
    pub call_uid: String,
    /// SIP Call-ID.
    pub call_id: String,
    /// Gateway instance that took the call.
    pub instance: String,
    /// Caller number (From user part) and display name if any.
    pub caller: String,
    pub caller_name: Option<String>,
    /// Dialled number (Request-URI user part) and the channel it stands for.
    pub called: String,
    pub channel: String,
    /// The `[[trunk]]` the call came in on; absent when no trunks are configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunk: Option<String>,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// Prompt (and transcription) language of the number called.
    #[serde(default)]
    pub language: String,
    pub menu: Option<MenuSelection>,
    pub recording: Option<RecordingInfo>,
    /// How the caller cut a prompt short: `speech` (talked over it; the message was then
    /// recorded from the first words on) or `dtmf` (pressed a key during it); `null` when
    /// every prompt played out. Speech wins when both happened.
    #[serde(default)]
    pub barge_in: Option<String>,
    /// What the caller said, added by the after-call pipeline once transcribed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<Transcript>,
    pub hangup: Hangup,
    pub media: MediaSummary,
    /// What the call flow did and learnt: the steps taken and its variables (the choice,
    /// a reference, a looked-up state). Absent in records written before flows existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowTrace>,
    /// The transfer to a person, when the flow tried one (issue 14).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferInfo>,
}

/// What became of a transfer: the ticket's `transfer` section, in the call's words.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TransferInfo {
    /// `bridge` or `refer`.
    pub mode: String,
    pub target: String,
    /// `answered`, `busy`, `no_answer`, `failed`, `out_of_hours`, `abandoned`, `referred`.
    pub outcome: String,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub talk_ms: Option<u64>,
    /// The conversation's stereo WAV (`[transfer] record_bridged`): caller left, operator
    /// right. Not a message: nothing transcribes it; the ticket's `recording` points to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<BridgedRecording>,
}

/// The recording of a bridged conversation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BridgedRecording {
    pub path: PathBuf,
    pub duration_ms: u64,
}

/// The call flow's part of the record.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct FlowTrace {
    /// Step names in the order the call went through them.
    pub steps: Vec<String>,
    /// Variables at the end of the call.
    pub vars: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MenuSelection {
    /// Every digit the caller pressed at the menu, invalid ones included.
    pub digits: String,
    /// The option taken.
    pub digit: String,
    pub id: String,
    pub label: String,
    /// True when no valid digit came and `menu.on_no_input` chose for the caller.
    pub defaulted: bool,
    /// What the caller said when the option was chosen by speech (the spoken menu); absent
    /// for keys and defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utterance: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordingInfo {
    pub path: PathBuf,
    pub format: String,
    pub duration_ms: u64,
    /// Why the message ended: `stop_digit`, `end_of_speech`, `no_speech`, `max_duration`, `hangup`.
    pub ended_by: String,
    pub heard_speech: bool,
}

/// A transcript as the call record carries it (plain data; the ASR module's own type stays
/// behind its wall).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Transcript {
    pub language: String,
    pub text: String,
    pub segments: Vec<TranscriptSegment>,
    pub model: String,
    /// Set exactly when `text` is empty: `no_speech`, `no_asr`, `rejected:…`, `error:…`.
    pub empty_reason: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TranscriptSegment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    pub confidence: f32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hangup {
    /// `caller` or `gateway`.
    pub by: String,
    /// Why: `completed`, `caller_bye`, `rtp_timeout`, `max_duration`, `no_input`, `ack_timeout`, `shutdown`.
    pub reason: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MediaSummary {
    pub codec: String,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_dropped: u64,
}

impl Hangup {
    pub fn new(by: &str, reason: &str) -> Hangup {
        Hangup {
            by: by.into(),
            reason: reason.into(),
        }
    }
}

impl CallRecord {
    /// The call's identity: `call_uid`, or the Call-ID for a record from an older build.
    pub fn uid(&self) -> &str {
        if self.call_uid.is_empty() {
            &self.call_id
        } else {
            &self.call_uid
        }
    }

    /// Write to `<dir>/<name>.json` atomically (temp file, fsync, rename), so a reader never
    /// sees half a record and a crash leaves either the old state or the whole file.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let name = format!("{}.json", file_safe(self.uid()));
        let path = dir.join(&name);
        let tmp = dir.join(format!(".{name}.tmp"));
        {
            // One write: serde_json straight into a File makes a syscall per token, which
            // was 14 % of the gateway's CPU at 300 call set-ups/s (BENCHMARKS.md §1).
            let mut bytes = serde_json::to_vec_pretty(self)?;
            bytes.push(b'\n');
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(path)
    }
}

/// Call-IDs are chosen by callers: keep file names to a safe alphabet and bounded length.
pub fn file_safe(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    if out.is_empty() || out.starts_with('.') {
        out.insert(0, 'c');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(call_uid: &str, call_id: &str) -> CallRecord {
        let at = Utc::now();
        CallRecord {
            schema: CALL_RECORD_SCHEMA.into(),
            call_uid: call_uid.into(),
            call_id: call_id.into(),
            instance: "gw".into(),
            caller: "138".into(),
            caller_name: None,
            called: "8890".into(),
            channel: "8890".into(),
            trunk: None,
            started_at: at,
            answered_at: Some(at),
            ended_at: at,
            duration_ms: 0,
            language: "zh".into(),
            menu: None,
            recording: None,
            barge_in: None,
            transcript: None,
            hangup: Hangup::new("caller", "completed"),
            media: MediaSummary::default(),
            flow: None,
            transfer: None,
        }
    }

    /// Issue 11.11: the second of two dialogs sharing a Call-ID used to overwrite the first
    /// one's record; each call's file is now named by its own `call_uid`.
    #[test]
    fn two_calls_sharing_a_call_id_keep_a_record_each() {
        let dir = tempfile::tempdir().unwrap();
        let a = record("uid-a", "same@host").write_to(dir.path()).unwrap();
        let b = record("uid-b", "same@host").write_to(dir.path()).unwrap();
        assert_ne!(a, b);
        assert!(a.exists() && b.exists());
        // A record from before call_uid existed is still named (and keyed) by its Call-ID.
        let old = record("", "old@host");
        assert_eq!(old.uid(), "old@host");
        assert!(old.write_to(dir.path()).unwrap().ends_with("old_host.json"));
    }

    #[test]
    fn hostile_call_ids_make_safe_file_names() {
        assert_eq!(file_safe("abc@127.0.0.1"), "abc_127.0.0.1");
        assert_eq!(file_safe("../../etc/passwd"), "c.._.._etc_passwd");
        assert_eq!(file_safe(""), "c");
        assert_eq!(file_safe(&"x".repeat(500)).len(), 120);
    }
}
