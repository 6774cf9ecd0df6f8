//! What the operator desk writes: the handling progress of a ticket (with its history), an
//! operator's correction of category and department (a new revision for the intake), and
//! the audit log of who looked at which citizen's ticket and recording.
//!
//! Progress is the desk's and the intake's business, not the delivery loop's: setting it
//! changes the stored document (so the caller line and the API read it) but does not queue
//! the ticket again. A correction does: the intake must learn it, as revision + 1 under the
//! same ticket id (`Idempotency-Key: <ticket_id>:<revision>`).

use rusqlite::{params, TransactionBehavior};
use serde_json::{json, Value};

use super::store::Store;
use super::TicketError;

/// The handling states, in their usual order.
pub const PROGRESS_STATES: &[&str] = &["accepted", "in_progress", "resolved"];

/// One entry of a ticket's progress history.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ProgressEntry {
    pub state: String,
    pub note: String,
    pub at_ms: i64,
    pub by: String,
    /// `desk` (an operator) or `api` (a machine client such as the intake).
    pub source: String,
}

/// One line of the desk's audit log.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    pub at_ms: i64,
    pub user: String,
    /// `open_ticket` or `play_recording`.
    pub action: String,
    pub detail: Option<String>,
}

/// An operator's correction of the classification.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    pub category_id: String,
    pub department: String,
    pub by: String,
}

/// The desk API's endpoint for a ticket's recording under `public_url` (`[console]`);
/// `None` when `public_url` is empty.
pub fn recording_url(public_url: &str, ticket_id: &str) -> Option<String> {
    let base = public_url.trim().trim_end_matches('/');
    (!base.is_empty()).then(|| format!("{base}/api/v1/tickets/{ticket_id}/recording"))
}

pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Puts an operator's correction into the document as a new revision; returns the revision.
pub(crate) fn put_override(doc: &mut Value, o: &Override, now_ms: i64) -> u64 {
    let revision = doc.get("revision").and_then(Value::as_u64).unwrap_or(1) + 1;
    doc["revision"] = json!(revision);
    doc["classification"]["operator_override"] = json!({
        "category_id": o.category_id,
        "department": o.department,
        "by": o.by,
        "at": rfc3339(now_ms),
    });
    revision
}

/// A progress state the desk and the API accept.
pub(crate) fn check_state(state: &str) -> Result<(), TicketError> {
    if PROGRESS_STATES.contains(&state) {
        return Ok(());
    }
    Err(TicketError::Config(format!(
        "progress state `{state}` is not one of {}",
        PROGRESS_STATES.join(", ")
    )))
}

pub(crate) fn encode(doc: &Value) -> Result<String, TicketError> {
    serde_json::to_string(doc).map_err(|e| TicketError::Encode(e.to_string()))
}

/// The stored document as JSON in the current schema (a document stored as v1 by an older
/// build is read as v2, so what is written back is v2).
pub fn decode(id: &str, doc: &str) -> Result<Value, TicketError> {
    serde_json::to_value(super::store::parse_doc(id, doc)?)
        .map_err(|e| TicketError::Encode(e.to_string()))
}

impl Store {
    /// Appends a progress entry and puts it into the document's `progress` (the last writer
    /// wins). Does not re-queue the ticket. `ticket_id` must be a full id.
    pub fn set_progress(
        &self,
        ticket_id: &str,
        state: &str,
        note: &str,
        by: &str,
        source: &str,
        now_ms: i64,
    ) -> Result<ProgressEntry, TicketError> {
        check_state(state)?;
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let doc = super::store::document_of(&tx, ticket_id)?;
        tx.execute(
            "INSERT INTO ticket_progress (ticket_id, state, note, at_ms, by, source)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![ticket_id, state, note, now_ms, by, source],
        )?;
        let mut doc = decode(ticket_id, &doc)?;
        // Documents stored as v1 by an older build have no `progress` field: only a document
        // that carries the field gets it updated (the history above is complete either way).
        if let Some(p) = doc.get_mut("progress") {
            let note = (!note.is_empty()).then_some(note);
            *p = json!({"state": state, "note": note, "at": rfc3339(now_ms), "by": by});
            tx.execute(
                "UPDATE tickets SET document = ?2 WHERE id = ?1",
                params![ticket_id, encode(&doc)?],
            )?;
        }
        tx.commit()?;
        Ok(ProgressEntry {
            state: state.into(),
            note: note.into(),
            at_ms: now_ms,
            by: by.into(),
            source: source.into(),
        })
    }

    /// The progress history, oldest first.
    pub fn progress_history(&self, ticket_id: &str) -> Result<Vec<ProgressEntry>, TicketError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT state, note, at_ms, by, source FROM ticket_progress
             WHERE ticket_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([ticket_id], |r| {
            Ok(ProgressEntry {
                state: r.get(0)?,
                note: r.get(1)?,
                at_ms: r.get(2)?,
                by: r.get(3)?,
                source: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records an operator's correction as `classification.operator_override`, raises the
    /// revision and queues the ticket for delivery again, in one transaction. Returns the new
    /// revision. `ticket_id` must be a full id.
    pub fn override_classification(
        &self,
        ticket_id: &str,
        o: &Override,
        now_ms: i64,
    ) -> Result<u64, TicketError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let doc = super::store::document_of(&tx, ticket_id)?;
        let mut doc = decode(ticket_id, &doc)?;
        let revision = put_override(&mut doc, o, now_ms);
        // A ticket in flight is sent again too: the attempt under way carries the old
        // revision, and its outcome no longer applies (finish_attempt matches in_flight only).
        tx.execute(
            "UPDATE tickets SET document = ?2, state = 'pending', next_attempt_at_ms = ?3,
                 outbox_written_at_ms = NULL, updated_at_ms = ?3
             WHERE id = ?1",
            params![ticket_id, encode(&doc)?, now_ms],
        )?;
        tx.commit()?;
        Ok(revision)
    }

    /// Appends to the audit log (who opened which ticket, who played which recording).
    pub fn audit(
        &self,
        user: &str,
        action: &str,
        ticket_id: &str,
        detail: Option<&str>,
        now_ms: i64,
    ) -> Result<(), TicketError> {
        self.lock().execute(
            "INSERT INTO desk_audit (at_ms, user, action, ticket_id, detail)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now_ms, user, action, ticket_id, detail],
        )?;
        Ok(())
    }

    /// The audit entries of one ticket, oldest first.
    pub fn audit_log(&self, ticket_id: &str) -> Result<Vec<AuditEntry>, TicketError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT at_ms, user, action, detail FROM desk_audit WHERE ticket_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([ticket_id], |r| {
            Ok(AuditEntry {
                at_ms: r.get(0)?,
                user: r.get(1)?,
                action: r.get(2)?,
                detail: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_progress_state_is_refused_before_touching_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.sqlite")).unwrap();
        assert!(matches!(
            s.set_progress("x", "done", "", "a", "desk", 0),
            Err(TicketError::Config(_))
        ));
        assert!(matches!(
            s.set_progress("x", "resolved", "", "a", "desk", 0),
            Err(TicketError::NotFound(_))
        ));
    }
}
