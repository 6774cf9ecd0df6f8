//! What happens after a call: its message is transcribed and its record becomes a ticket.
//!
//! The hand-off is durable. The call layer writes each record into `calls/pending/`; this
//! task commits the ticket (idempotent per Call-ID) and only then moves the record to
//! `calls/`. Whatever is still pending at start-up (a crash between the two steps, or a call
//! cut short by one) is ticketed first, so an answered call is never lost.
//!
//! Transcription (Whisper, on the ASR pool's own threads) happens here, after the call, never
//! on the media tasks. The transcript is written into the pending record before the ticket is
//! committed, so a crash in between redoes the work rather than losing it.
//!
//! This is the only place that knows call records, transcripts and tickets: it translates
//! between them, so none of those modules needs to know the others.

use super::live::LiveTranscripts;
use crate::asr::AsrPool;
use crate::call::record::{CallRecord, Transcript, TranscriptSegment};
use crate::ticket::{
    CallFacts, HangupBy, MenuChoice, MenuSource, RecordingFacts, SegmentFacts, TicketService,
    TranscriptFacts,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Records being worked on at once (transcription waits for a Whisper worker anyway; this
/// only bounds memory and open files).
const CONCURRENT_RECORDS: usize = 8;

/// Where call records live on their way to becoming tickets.
#[derive(Clone, Debug)]
pub struct RecordDirs {
    /// Written by the call layer; not yet ticketed.
    pub pending: PathBuf,
    /// Ticketed.
    pub done: PathBuf,
}

impl RecordDirs {
    pub fn new(calls_dir: &Path) -> RecordDirs {
        RecordDirs {
            pending: calls_dir.join("pending"),
            done: calls_dir.to_path_buf(),
        }
    }
}

/// Turns `leftovers` (see [`pending_records`]) and then each finished call into tickets,
/// until the sending side closes.
pub async fn run(
    tickets: TicketService,
    asr: Option<Arc<AsrPool>>,
    live: Option<Arc<LiveTranscripts>>,
    dirs: RecordDirs,
    leftovers: Vec<PathBuf>,
    mut finished: mpsc::UnboundedReceiver<PathBuf>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_RECORDS));
    let mut work = tokio::task::JoinSet::new();
    let spawn = |path: PathBuf, work: &mut tokio::task::JoinSet<()>| {
        let (tickets, asr, dirs, slots) =
            (tickets.clone(), asr.clone(), dirs.clone(), slots.clone());
        let live = live.clone();
        work.spawn(async move {
            let _slot = slots.acquire_owned().await;
            process_record(&tickets, asr.as_deref(), live.as_deref(), &dirs, &path).await;
        });
    };
    for path in leftovers {
        spawn(path, &mut work);
    }
    while let Some(path) = finished.recv().await {
        spawn(path, &mut work);
        while work.try_join_next().is_some() {}
    }
    while work.join_next().await.is_some() {}
}

async fn process_record(
    tickets: &TicketService,
    asr: Option<&AsrPool>,
    live: Option<&LiveTranscripts>,
    dirs: &RecordDirs,
    path: &Path,
) {
    if let Some(asr) = asr {
        transcribe_record(asr, live, path).await;
    }
    ticket_record(tickets, dirs, path).await;
}

/// Add the transcript to the pending record (unless it has one from an earlier attempt).
async fn transcribe_record(asr: &AsrPool, live: Option<&LiveTranscripts>, path: &Path) {
    let Some(mut record) = read_record(path) else {
        return;
    };
    let partials = live.and_then(|l| l.take(&record.call_id));
    if record.transcript.is_some() {
        return;
    }
    let Some(recording) = record.recording.clone() else {
        return;
    };
    let transcript = if !recording.heard_speech {
        // The end-pointer heard nothing: Whisper must not be given the chance to invent text.
        empty_transcript(&record.language, asr.model_name(), "no_speech")
    } else {
        let wav = recording.path.clone();
        match tokio::task::spawn_blocking(move || read_wav(&wav)).await {
            Ok(Ok(pcm)) => match partials {
                Some(p) => super::live_finish::finish(asr, p, pcm, &record.language).await,
                None => transcribe_whole(asr, pcm, &record.language).await,
            },
            Ok(Err(e)) => {
                tracing::error!(path = %recording.path.display(), error = %e, "cannot read the message for transcription");
                empty_transcript(
                    &record.language,
                    asr.model_name(),
                    "error:unreadable recording",
                )
            }
            Err(e) => empty_transcript(&record.language, asr.model_name(), &format!("error:{e}")),
        }
    };
    tracing::info!(
        call_id = %record.call_id,
        chars = transcript.text.chars().count(),
        empty_reason = transcript.empty_reason.as_deref().unwrap_or(""),
        "message transcribed"
    );
    record.transcript = Some(transcript);
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    if let Err(e) = tokio::task::spawn_blocking(move || record.write_to(&dir)).await {
        tracing::error!(error = %e, "cannot update the call record with its transcript");
    }
}

/// Submit with back-pressure: a full queue means wait for a worker, not drop the message.
pub(super) async fn transcribe_whole(asr: &AsrPool, pcm: Arc<[i16]>, language: &str) -> Transcript {
    match submit_waiting(asr, pcm, language).await {
        Some(t) => record_transcript(t),
        None => empty_transcript(
            language,
            asr.model_name(),
            "error:transcription worker failed",
        ),
    }
}

/// Submit, waiting for room in the queue; `None` when the worker failed.
pub(super) async fn submit_waiting(
    asr: &AsrPool,
    mut pcm: Arc<[i16]>,
    language: &str,
) -> Option<crate::asr::Transcript> {
    let rx = loop {
        match asr.submit(pcm, language) {
            Ok(rx) => break rx,
            Err(full) => {
                pcm = full.pcm_8k;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    rx.await.ok()
}

/// The ASR's transcript as the call record keeps it.
pub(super) fn record_transcript(t: crate::asr::Transcript) -> Transcript {
    Transcript {
        language: t.language,
        text: t.text,
        segments: t
            .segments
            .into_iter()
            .map(|s| TranscriptSegment {
                start_ms: s.start_ms,
                end_ms: s.end_ms,
                text: s.text,
                confidence: s.confidence,
            })
            .collect(),
        model: t.model,
        empty_reason: t.empty_reason.map(|r| r.to_string()),
    }
}

pub(super) fn empty_transcript(language: &str, model: &str, reason: &str) -> Transcript {
    Transcript {
        language: language.to_string(),
        text: String::new(),
        segments: Vec::new(),
        model: model.to_string(),
        empty_reason: Some(reason.to_string()),
    }
}

fn read_wav(path: &Path) -> Result<Arc<[i16]>, hound::Error> {
    let mut reader = hound::WavReader::open(path)?;
    let samples: Result<Vec<i16>, _> = reader.samples::<i16>().collect();
    Ok(samples?.into())
}

fn read_record(path: &Path) -> Option<CallRecord> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Records an earlier run left in `pending/`. Listed before the gateway answers its first
/// call, so a call in progress (whose provisional record is also pending) is never mistaken
/// for a leftover.
pub fn pending_records(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    if !paths.is_empty() {
        tracing::info!(
            count = paths.len(),
            "ticketing call records left pending by an earlier run"
        );
    }
    paths
}

async fn ticket_record(tickets: &TicketService, dirs: &RecordDirs, path: &Path) {
    let record: CallRecord = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            // Leave it in pending for a person to look at; it must not block the others.
            tracing::error!(path = %path.display(), error = %e, "unreadable call record left in pending");
            return;
        }
    };
    match tickets.create(facts_from(&record)).await {
        Ok(ticket) => {
            tracing::info!(ticket = %ticket.ticket_id, call_id = %record.call_id, "call ticketed");
            if let Some(name) = path.file_name() {
                if let Err(e) = std::fs::rename(path, dirs.done.join(name)) {
                    tracing::warn!(error = %e, "ticketed call record not moved out of pending");
                }
            }
        }
        // The record stays pending and is retried at the next start.
        Err(e) => tracing::error!(call_id = %record.call_id, error = %e, "ticket not committed"),
    }
}

/// A call record as the ticket layer sees it.
pub fn facts_from(record: &CallRecord) -> CallFacts {
    CallFacts {
        call_uid: record.call_id.clone(),
        call_id: record.call_id.clone(),
        reference: None,
        trunk: record.trunk.clone(),
        caller: record.caller.clone(),
        called: record.called.clone(),
        channel: record.channel.clone(),
        started_at: record.started_at,
        answered_at: record.answered_at.unwrap_or(record.started_at),
        ended_at: record.ended_at,
        hangup_by: if record.hangup.by == "caller" {
            HangupBy::Caller
        } else {
            HangupBy::Gateway
        },
        hangup_reason: record.hangup.reason.clone(),
        menu: record.menu.as_ref().map(|m| MenuChoice {
            source: if m.defaulted {
                MenuSource::Default
            } else {
                MenuSource::Dtmf
            },
            digits: (!m.defaulted).then(|| m.digit.clone()),
            utterance: None,
            id: m.id.clone(),
            label: m.label.clone(),
        }),
        transfer: None,
        urgent_trigger: None,
        transcript: record.transcript.as_ref().map(|t| TranscriptFacts {
            language: t.language.clone(),
            text: t.text.clone(),
            segments: t
                .segments
                .iter()
                .map(|s| SegmentFacts {
                    start_ms: s.start_ms,
                    end_ms: s.end_ms,
                    text: s.text.clone(),
                    confidence: Some(s.confidence),
                })
                .collect(),
            model: t.model.clone(),
            empty_reason: t.empty_reason.clone(),
        }),
        recording: record.recording.as_ref().map(|r| RecordingFacts {
            path: r.path.clone(),
            duration_ms: r.duration_ms,
        }),
    }
}
