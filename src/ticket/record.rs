//! Building the ticket document from the call facts (everything except storage).

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;
use uuid::Uuid;

use super::classify::Rules;
use super::duplicate::{self, Candidate, DuplicateConfig};
use super::facts::{CallFacts, RecordingFacts};
use super::model::{
    CallSection, Hangup, MenuSection, Progress, ProgressState, RecordingSection, Segment, Ticket,
    TranscriptSection, SCHEMA_ID,
};

/// `progress.by` of a ticket nobody has handled yet.
pub const GATEWAY_ACTOR: &str = "gateway";

fn millis_between(a: DateTime<Utc>, b: DateTime<Utc>) -> u64 {
    u64::try_from((b - a).num_milliseconds()).unwrap_or(0)
}

/// Reads the recording to fill in checksum, size and format. Never fails: a missing file
/// still yields a ticket (the caller's complaint matters more than the audio), with `error`.
pub fn describe_recording(rec: &RecordingFacts) -> RecordingSection {
    let path = &rec.path;
    let location = if path.is_absolute() {
        path.display().to_string()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path).display().to_string())
            .unwrap_or_else(|_| path.display().to_string())
    };
    let format = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| "unknown".into());
    let mut section = RecordingSection {
        location,
        url: None,
        sha256: None,
        size_bytes: None,
        duration_ms: rec.duration_ms,
        format,
        sample_rate_hz: None,
        channels: None,
        error: None,
    };
    match hash_file(path) {
        Ok((hex, size)) => {
            section.sha256 = Some(hex);
            section.size_bytes = Some(size);
        }
        Err(e) => section.error = Some(e.to_string()),
    }
    if section.format == "wav" {
        if let Ok(r) = hound::WavReader::open(path) {
            let spec = r.spec();
            section.sample_rate_hz = Some(spec.sample_rate);
            section.channels = Some(spec.channels);
        }
    }
    section
}

fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    let digest = hasher.finalize();
    let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, size))
}

/// Everything needed to assemble one ticket, fixed before the store transaction.
pub struct Draft<'a> {
    pub facts: &'a CallFacts,
    pub ticket_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub gateway_instance: &'a str,
    pub recording: Option<RecordingSection>,
}

/// Assembles the ticket; `candidates` are the earlier tickets inside the duplicate window.
/// Returns the ticket and its normalised transcript (stored for later duplicate look-ups).
pub fn assemble(
    draft: Draft<'_>,
    rules: &Rules,
    dup_cfg: &DuplicateConfig,
    candidates: &[Candidate],
) -> (Ticket, String) {
    let f = draft.facts;
    let mut transcript = match &f.transcript {
        None => TranscriptSection {
            language: None,
            text: String::new(),
            segments: Vec::new(),
            model: None,
            empty_reason: Some("no_asr".into()),
        },
        Some(t) => {
            let text = t.text.trim().to_owned();
            let empty_reason = if text.is_empty() {
                Some(
                    t.empty_reason
                        .clone()
                        .filter(|r| !r.trim().is_empty())
                        .unwrap_or_else(|| "no_speech".into()),
                )
            } else {
                None
            };
            TranscriptSection {
                language: Some(t.language.clone()),
                text,
                segments: t
                    .segments
                    .iter()
                    .map(|s| Segment {
                        start_ms: s.start_ms,
                        end_ms: s.end_ms.max(s.start_ms),
                        text: s.text.clone(),
                        confidence: s
                            .confidence
                            .filter(|c| c.is_finite())
                            .map(|c| (f64::from(c).clamp(0.0, 1.0) * 1000.0).round() / 1000.0),
                    })
                    .collect(),
                model: Some(t.model.clone()),
                empty_reason,
            }
        }
    };
    let answered = f
        .transfer
        .as_ref()
        .is_some_and(|t| t.outcome == super::model::TransferOutcome::Answered);
    if transcript.text.is_empty() && f.transfer.is_some() && (f.recording.is_none() || answered) {
        // The caller talked to a person (or tried to) and left no message: nothing was
        // missed, there was nothing to transcribe (the recording of a conversation with an
        // operator, `record_bridged`, is not transcribed).
        transcript.empty_reason = Some("transferred".into());
    }
    let menu_id = f.menu.as_ref().map(|m| m.id.as_str());
    let mut classification = rules.classify(&transcript.text, menu_id, draft.created_at);
    if f.urgent_trigger.is_some() {
        super::early::mark_urgent(&mut classification, rules, draft.created_at);
    }
    let norm_text = duplicate::normalise(&transcript.text);
    let duplicate = duplicate::find_duplicate(&f.caller, &norm_text, candidates, dup_cfg);
    let ticket = Ticket {
        schema: SCHEMA_ID.into(),
        ticket_id: draft.ticket_id,
        reference: f.reference.clone(),
        revision: 1,
        created_at: draft.created_at,
        gateway_instance: draft.gateway_instance.to_owned(),
        call: CallSection {
            call_uid: f.call_uid.clone(),
            call_id: f.call_id.clone(),
            trunk: f.trunk.clone(),
            caller: f.caller.clone(),
            called: f.called.clone(),
            channel: f.channel.clone(),
            started_at: f.started_at,
            answered_at: f.answered_at,
            ended_at: f.ended_at,
            duration_ms: millis_between(f.started_at, f.ended_at),
            talk_ms: millis_between(f.answered_at, f.ended_at),
            hangup: Hangup {
                by: f.hangup_by,
                reason: f.hangup_reason.clone(),
            },
        },
        menu: f.menu.as_ref().map(|m| MenuSection {
            source: m.source,
            digits: m.digits.clone(),
            utterance: m.utterance.clone(),
            id: m.id.clone(),
            label: m.label.clone(),
        }),
        transfer: f.transfer.clone(),
        transcript,
        classification,
        progress: Progress {
            state: ProgressState::Accepted,
            note: None,
            at: draft.created_at,
            by: GATEWAY_ACTOR.into(),
        },
        duplicate,
        recording: draft.recording,
        urgent_trigger: f.urgent_trigger.clone(),
    };
    (ticket, norm_text)
}
