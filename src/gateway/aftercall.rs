//! What happens after a call: its message is transcribed and its record becomes a ticket.
//!
//! The hand-off is durable. The call layer writes each record into `calls/pending/`; this
//! task commits the ticket (idempotent per `call_uid`) and only then moves the record to
//! `calls/`. Whatever is still pending at start-up (a crash between the two steps, or a call
//! cut short by one) is ticketed first, so an answered call is never lost.
//!
//! Transcription (Whisper, on the ASR pool's own threads) happens here, after the call, never
//! on the media tasks. The transcript is written into the pending record before the ticket is
//! committed, so a crash in between redoes the work rather than losing it; when that write
//! fails, no ticket is committed (it could never get the transcript later) and the record is
//! tried again.
//!
//! A record whose ticket could not be committed (store busy or full, disk error) is tried
//! again with growing waits while the daemon runs, not only at the next start. The file work
//! runs on blocking threads, never on the runtime that paces RTP.
//!
//! This is the only place that knows call records, transcripts and tickets: it translates
//! between them, so none of those modules needs to know the others.

use super::live::LiveTranscripts;
use super::second_pass::SecondPass;
use crate::asr::AsrPool;
use crate::call::record::{CallRecord, Transcript, TranscriptSegment};
use crate::ticket::{
    CallFacts, HangupBy, MenuChoice, MenuSource, RecordingFacts, SegmentFacts, TicketService,
    TranscriptFacts,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

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

/// First wait before a record whose hand-off failed is tried again; doubles up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// What became of one attempt to hand a record over.
#[derive(Debug, PartialEq, Eq)]
pub enum Handoff {
    /// Ticketed (or unreadable and left for a person): nothing more to do.
    Done,
    /// Something failed that may not fail next time: try again later.
    Retry,
}

/// Turns `leftovers` (see [`pending_records`]) and then each finished call into tickets,
/// until the sending side closes. Records whose hand-off failed are tried again meanwhile;
/// at the end whatever still fails stays in `pending/` for the next start.
pub async fn run(
    tickets: TicketService,
    asr: Option<Arc<AsrPool>>,
    live: Option<Arc<LiveTranscripts>>,
    dirs: RecordDirs,
    leftovers: Vec<PathBuf>,
    mut finished: mpsc::UnboundedReceiver<PathBuf>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_RECORDS));
    let mut work: tokio::task::JoinSet<(PathBuf, Handoff)> = tokio::task::JoinSet::new();
    let spawn = |path: PathBuf, work: &mut tokio::task::JoinSet<(PathBuf, Handoff)>| {
        let (tickets, asr, dirs, slots) =
            (tickets.clone(), asr.clone(), dirs.clone(), slots.clone());
        let live = live.clone();
        work.spawn(async move {
            let _slot = slots.acquire_owned().await;
            let outcome =
                process_record(&tickets, asr.as_ref(), live.as_deref(), &dirs, &path).await;
            (path, outcome)
        });
    };
    for path in leftovers {
        spawn(path, &mut work);
    }
    // Path → (due, wait after the next failure).
    let mut retry: BTreeMap<PathBuf, (Instant, Duration)> = BTreeMap::new();
    let mut waits: BTreeMap<PathBuf, Duration> = BTreeMap::new();
    let mut open = true;
    while open || !work.is_empty() {
        let next_due = retry.values().map(|(due, _)| *due).min();
        tokio::select! {
            got = finished.recv(), if open => match got {
                Some(path) => spawn(path, &mut work),
                None => open = false,
            },
            Some(done) = work.join_next(), if !work.is_empty() => {
                let Ok((path, outcome)) = done else { continue };
                if outcome == Handoff::Retry && open {
                    let wait = waits.get(&path).copied().unwrap_or(RETRY_FIRST);
                    tracing::warn!(path = %path.display(), retry_in_ms = wait.as_millis() as u64, "call record not handed over yet: retrying");
                    waits.insert(path.clone(), (wait * 2).min(RETRY_MAX));
                    retry.insert(path, (Instant::now() + wait, wait));
                } else {
                    waits.remove(&path);
                }
            }
            _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() && open => {
                let now = Instant::now();
                let due: Vec<PathBuf> = retry
                    .iter()
                    .filter(|(_, (at, _))| *at <= now)
                    .map(|(p, _)| p.clone())
                    .collect();
                for path in due {
                    retry.remove(&path);
                    spawn(path, &mut work);
                }
            }
        }
    }
    if !retry.is_empty() {
        tracing::warn!(
            count = retry.len(),
            "call records left pending for the next start"
        );
    }
}

async fn process_record(
    tickets: &TicketService,
    asr: Option<&Arc<AsrPool>>,
    live: Option<&LiveTranscripts>,
    dirs: &RecordDirs,
    path: &Path,
) -> Handoff {
    // The transcriber leaves the message's second pass here (a live message of several
    // parts); it starts only once the ticket is committed, so it never delays the hand-over.
    let second = std::sync::Mutex::new(None);
    let transcriber = asr.map(|a| {
        let a: &AsrPool = a;
        |r: CallRecord| async {
            let (t, pass) = transcribe_record(a, live, &r).await;
            *second.lock().unwrap_or_else(|e| e.into_inner()) = pass.map(|p| (r, p));
            t
        }
    });
    let urgent = live.and_then(|l| l.urgent()).map(|u| &**u);
    let outcome = hand_over(tickets, dirs, path, transcriber, urgent).await;
    let second = second.into_inner().unwrap_or_else(|e| e.into_inner());
    if let (Handoff::Done, Some((record, pass)), Some(asr)) = (&outcome, second, asr) {
        super::second_pass::spawn(asr.clone(), tickets.clone(), record, pass);
    }
    outcome
}

/// One attempt at the hand-off of the record at `path`: transcribe (when `transcriber` is
/// given and the record has a message but no transcript yet), write the transcript into the
/// record, commit the ticket, move the record out of `pending/`.
async fn hand_over<F, Fut>(
    tickets: &TicketService,
    dirs: &RecordDirs,
    path: &Path,
    transcriber: Option<F>,
    urgent: Option<&super::urgent::UrgentWatch>,
) -> Handoff
where
    F: FnOnce(CallRecord) -> Fut,
    Fut: std::future::Future<Output = Transcript>,
{
    let owned = path.to_path_buf();
    let record = match tokio::task::spawn_blocking(move || read_record(&owned)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            // Leave it in pending for a person to look at; it must not block the others.
            tracing::error!(path = %path.display(), error = %e, "unreadable call record left in pending");
            return Handoff::Done;
        }
        Err(_) => return Handoff::Retry,
    };
    let record = match transcriber {
        Some(transcribe) if record.transcript.is_none() && record.recording.is_some() => {
            let mut record = record;
            record.transcript = Some(transcribe(record.clone()).await);
            // The ticket must carry what the record carries: when the transcript cannot be
            // written, nothing is committed, and the next try redoes it.
            if let Err(e) = write_record(&record, path).await {
                tracing::error!(call_uid = %record.uid(), error = %e, "cannot write the transcript into the call record: ticket held back");
                return Handoff::Retry;
            }
            record
        }
        _ => record,
    };
    // After every live transcript of the call is in (above), so a trigger is known here.
    let trigger = match urgent {
        Some(u) => u.settle(record.uid()).await,
        None => None,
    };
    ticket_record(tickets, dirs, path, &record, trigger).await
}

/// Writes `record` back to `path` (atomically, on a blocking thread).
async fn write_record(record: &CallRecord, path: &Path) -> std::io::Result<()> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let record = record.clone();
    tokio::task::spawn_blocking(move || record.write_to(&dir).map(|_| ()))
        .await
        .map_err(std::io::Error::other)?
}

/// The transcript of the record's message (an empty one with the reason when there is none),
/// and its second pass when it was transcribed live and `AsrConfig::second_pass_wanted` says so.
async fn transcribe_record(
    asr: &AsrPool,
    live: Option<&LiveTranscripts>,
    record: &CallRecord,
) -> (Transcript, Option<SecondPass>) {
    // Taken (and so forgotten) whatever happens next.
    let partials = live.and_then(|l| l.take(&record.call_id));
    let Some(recording) = record.recording.clone() else {
        let t = empty_transcript(&record.language, asr.model_name(), "no_recording");
        return (t, None);
    };
    let mut second = None;
    let transcript = if !recording.heard_speech {
        // The end-pointer heard nothing: Whisper must not be given the chance to invent text.
        empty_transcript(&record.language, asr.model_name(), "no_speech")
    } else {
        let wav = recording.path.clone();
        match tokio::task::spawn_blocking(move || read_wav(&wav)).await {
            Ok(Ok(pcm)) => match partials {
                Some(p) => {
                    let (t, parts) =
                        super::live_finish::finish(asr, p, pcm.clone(), &record.language).await;
                    let cfg = asr.config();
                    if cfg.second_pass_wanted(&t.text, parts, &record.language) {
                        second = Some(SecondPass {
                            pcm,
                            language: record.language.clone(),
                            live_text: t.text.clone(),
                        });
                    }
                    t
                }
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
        call_uid = %record.uid(),
        chars = transcript.text.chars().count(),
        empty_reason = transcript.empty_reason.as_deref().unwrap_or(""),
        "message transcribed"
    );
    (transcript, second)
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

fn read_record(path: &Path) -> Result<CallRecord, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
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

/// Commits the record's ticket, then moves the record out of `pending/`.
pub async fn ticket_record(
    tickets: &TicketService,
    dirs: &RecordDirs,
    path: &Path,
    record: &CallRecord,
    urgent_trigger: Option<crate::ticket::model::UrgentTrigger>,
) -> Handoff {
    let facts = crate::ticket::CallFacts {
        urgent_trigger,
        ..facts_from(record)
    };
    match tickets.create(facts).await {
        Ok(ticket) => {
            if let Some(reference) = ticket.reference.clone() {
                // So that `tickets show <reference>`, the API and `lookup` find it.
                let (store, id) = (tickets.store().clone(), ticket.ticket_id.to_string());
                let set = tokio::task::spawn_blocking(move || store.set_reference(&id, &reference));
                if let Ok(Err(e)) = set.await {
                    // The document keeps it; only finding the ticket by it fails.
                    tracing::error!(error = %e, "ticket reference not indexed");
                }
            }
            tracing::info!(ticket = %ticket.ticket_id, call_uid = %record.uid(), call_id = %record.call_id, "call ticketed");
            if let Some(name) = path.file_name() {
                let (from, to) = (path.to_path_buf(), dirs.done.join(name));
                let moved = tokio::task::spawn_blocking(move || std::fs::rename(from, to)).await;
                if let Ok(Err(e)) = moved {
                    tracing::warn!(error = %e, "ticketed call record not moved out of pending");
                }
            }
            Handoff::Done
        }
        // The record stays pending and is tried again (creation is idempotent per call).
        Err(e) => {
            tracing::error!(call_uid = %record.uid(), error = %e, "ticket not committed");
            Handoff::Retry
        }
    }
}

/// A call record as the ticket layer sees it.
/// The call record's transfer, in the ticket's terms; an outcome this build does not know
/// reads as `failed`.
fn transfer_facts(t: &crate::call::record::TransferInfo) -> crate::ticket::model::Transfer {
    use crate::ticket::model::{Transfer, TransferMode, TransferOutcome};
    Transfer {
        mode: if t.mode == "refer" {
            TransferMode::Refer
        } else {
            TransferMode::Bridge
        },
        target: t.target.clone(),
        outcome: match t.outcome.as_str() {
            "answered" => TransferOutcome::Answered,
            "busy" => TransferOutcome::Busy,
            "no_answer" => TransferOutcome::NoAnswer,
            "out_of_hours" => TransferOutcome::OutOfHours,
            "abandoned" => TransferOutcome::Abandoned,
            "referred" => TransferOutcome::Referred,
            _ => TransferOutcome::Failed,
        },
        started_at: t.started_at,
        answered_at: t.answered_at,
        talk_ms: t.talk_ms,
    }
}

pub fn facts_from(record: &CallRecord) -> CallFacts {
    CallFacts {
        call_uid: record.uid().to_owned(),
        call_id: record.call_id.clone(),
        // Allocated during the call (the flow variable `reference`), said to the caller.
        reference: record
            .flow
            .as_ref()
            .and_then(|f| f.vars.get("reference").cloned()),
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
            source: if m.utterance.is_some() {
                MenuSource::Speech
            } else if m.defaulted {
                MenuSource::Default
            } else {
                MenuSource::Dtmf
            },
            digits: (!m.defaulted && m.utterance.is_none()).then(|| m.digit.clone()),
            utterance: m.utterance.clone(),
            id: m.id.clone(),
            label: m.label.clone(),
        }),
        transfer: record.transfer.as_ref().map(transfer_facts),
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
        // The message, or else the bridged conversation (`record_bridged`): a call that
        // reached a person leaves no message.
        recording: record
            .recording
            .as_ref()
            .map(|r| (&r.path, r.duration_ms))
            .or_else(|| {
                let r = record.transfer.as_ref()?.recording.as_ref()?;
                Some((&r.path, r.duration_ms))
            })
            .map(|(path, duration_ms)| RecordingFacts {
                path: path.clone(),
                duration_ms,
            }),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::ticket::TicketConfig;

    /// A provisional-looking record of call `019ac1d2-…-00000000000a` in `pending/`.
    pub(in crate::gateway) fn pending_record(dirs: &RecordDirs) -> PathBuf {
        let record: CallRecord = serde_json::from_value(serde_json::json!({
            "schema": "hotline.call/v1",
            "call_uid": "019ac1d2-0000-7000-8000-00000000000a",
            "call_id": "a@host",
            "instance": "gw",
            "caller": "13800000000",
            "caller_name": null,
            "called": "8890",
            "channel": "8890",
            "started_at": "2026-11-26T03:00:00Z",
            "answered_at": "2026-11-26T03:00:01Z",
            "ended_at": "2026-11-26T03:01:00Z",
            "duration_ms": 60000,
            "language": "zh",
            "menu": null,
            "recording": {"path": "/nonexistent.wav", "format": "wav", "duration_ms": 5000,
                "ended_by": "end_of_speech", "heard_speech": true},
            "hangup": {"by": "caller", "reason": "caller_bye"},
            "media": {"codec": "PCMU", "packets_sent": 0, "packets_received": 0, "packets_dropped": 0}
        }))
        .unwrap();
        record.write_to(&dirs.pending).unwrap()
    }

    fn heard() -> Transcript {
        Transcript {
            language: "zh".into(),
            text: "暖气不热".into(),
            segments: vec![],
            model: "test".into(),
            empty_reason: None,
        }
    }

    /// Issue 11.15: when the transcript cannot be written into the call record, no ticket is
    /// committed (creation is idempotent: it could never get the transcript later); the next
    /// try, once the record can be written, commits it with the transcript.
    #[tokio::test]
    async fn a_transcript_that_cannot_be_written_holds_the_ticket_back() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = RecordDirs::new(&dir.path().join("calls"));
        let tickets = TicketService::open(TicketConfig {
            db_path: dir.path().join("t.sqlite"),
            outbox_dir: dir.path().join("outbox"),
            ..TicketConfig::default()
        })
        .unwrap();
        let path = pending_record(&dirs);
        // The atomic write goes through `.<name>.tmp`: a folder there makes it fail, even
        // for root.
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let obstacle = dirs.pending.join(format!(".{name}.tmp"));
        std::fs::create_dir(&obstacle).unwrap();
        let transcriber = Some(|_r: CallRecord| async { heard() });
        let first = hand_over(&tickets, &dirs, &path, transcriber, None).await;
        assert_eq!(first, Handoff::Retry);
        assert!(
            tickets.store().list(None, 10).unwrap().is_empty(),
            "no ticket without its transcript"
        );
        assert!(path.exists(), "the record stays pending");

        std::fs::remove_dir(&obstacle).unwrap();
        let transcriber = Some(|_r: CallRecord| async { heard() });
        assert_eq!(
            hand_over(&tickets, &dirs, &path, transcriber, None).await,
            Handoff::Done
        );
        let stored = tickets.store().list(None, 10).unwrap();
        assert_eq!(stored.len(), 1);
        let t = crate::ticket::store::parse_doc(&stored[0].ticket_id, &stored[0].document).unwrap();
        assert_eq!(t.transcript.text, "暖气不热");
        assert_eq!(t.call.call_uid, "019ac1d2-0000-7000-8000-00000000000a");
        let done = dirs.done.join(&name);
        let record: CallRecord = serde_json::from_slice(&std::fs::read(done).unwrap()).unwrap();
        assert_eq!(record.transcript.unwrap().text, "暖气不热");
    }
}
