//! What happens after a call: its record becomes a ticket.
//!
//! The hand-off is durable. The call layer writes each record into `calls/pending/`; this
//! task commits the ticket (idempotent per Call-ID) and only then moves the record to
//! `calls/`. Whatever is still pending at start-up (a crash between the two steps, or a call
//! cut short by one) is ticketed first, so an answered call is never lost.
//!
//! This is the only place that knows both call records and tickets: it translates one into
//! the other, so neither module needs to know the other.

use crate::call::record::CallRecord;
use crate::ticket::{CallFacts, HangupBy, MenuChoice, RecordingFacts, TicketService};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

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
    dirs: RecordDirs,
    leftovers: Vec<PathBuf>,
    mut finished: mpsc::UnboundedReceiver<PathBuf>,
) {
    for path in leftovers {
        ticket_record(&tickets, &dirs, &path).await;
    }
    while let Some(path) = finished.recv().await {
        ticket_record(&tickets, &dirs, &path).await;
    }
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
        call_id: record.call_id.clone(),
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
            digits: m.digit.clone(),
            id: m.id.clone(),
            label: m.label.clone(),
        }),
        transcript: None,
        recording: record.recording.as_ref().map(|r| RecordingFacts {
            path: r.path.clone(),
            duration_ms: r.duration_ms,
        }),
    }
}
