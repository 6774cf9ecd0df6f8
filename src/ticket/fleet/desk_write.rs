//! What the desk changes on a ticket in the shared store: its progress (history kept, not
//! sent to the intake) and an operator's correction of the classification (a new revision,
//! delivered again by whichever instance claims it). The same rules as the local store's
//! `set_progress` and `override_classification` (src/ticket/progress.rs).

use serde_json::json;

use super::{pg_err, PgConn};
use crate::ticket::progress::{
    check_state, decode, encode, put_override, rfc3339, Override, ProgressEntry,
};
use crate::ticket::TicketError;

/// Appends a progress entry and puts it into the document (the last writer wins).
/// `ticket_id` must be a full id.
pub async fn set_progress(
    conn: &PgConn,
    ticket_id: &str,
    state: &str,
    note: &str,
    by: &str,
    source: &str,
    now_ms: i64,
) -> Result<ProgressEntry, TicketError> {
    check_state(state)?;
    let e = pg_err("setting progress");
    let mut client = conn.get().await?;
    let tx = client.transaction().await.map_err(&e)?;
    let doc: String = tx
        .query_opt(
            "SELECT document FROM hotline_tickets WHERE id = $1 FOR UPDATE",
            &[&ticket_id],
        )
        .await
        .map_err(&e)?
        .ok_or_else(|| TicketError::NotFound(ticket_id.to_owned()))?
        .get(0);
    tx.execute(
        "INSERT INTO hotline_ticket_progress (ticket_id, state, note, at_ms, by_whom, source)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&ticket_id, &state, &note, &now_ms, &by, &source],
    )
    .await
    .map_err(&e)?;
    let mut doc = decode(ticket_id, &doc)?;
    if let Some(p) = doc.get_mut("progress") {
        let note = (!note.is_empty()).then_some(note);
        *p = json!({"state": state, "note": note, "at": rfc3339(now_ms), "by": by});
        tx.execute(
            "UPDATE hotline_tickets SET document = $2, updated_at_ms = $3 WHERE id = $1",
            &[&ticket_id, &encode(&doc)?, &now_ms],
        )
        .await
        .map_err(&e)?;
    }
    tx.commit().await.map_err(&e)?;
    Ok(ProgressEntry {
        state: state.into(),
        note: note.into(),
        at_ms: now_ms,
        by: by.into(),
        source: source.into(),
    })
}

/// A ticket's progress history, oldest first.
pub async fn progress_history(
    conn: &PgConn,
    ticket_id: &str,
) -> Result<Vec<ProgressEntry>, TicketError> {
    let client = conn.get().await?;
    let rows = client
        .query(
            "SELECT state, note, at_ms, by_whom, source FROM hotline_ticket_progress
             WHERE ticket_id = $1 ORDER BY seq",
            &[&ticket_id],
        )
        .await
        .map_err(pg_err("reading progress"))?;
    Ok(rows
        .iter()
        .map(|r| ProgressEntry {
            state: r.get(0),
            note: r.get(1),
            at_ms: r.get(2),
            by: r.get(3),
            source: r.get(4),
        })
        .collect())
}

/// Records an operator's correction as `classification.operator_override`, raises the
/// revision, keeps the correction for retraining, and makes the ticket due again (a lease
/// held on the old revision no longer counts: its outcome is not recorded). Returns the new
/// revision. `ticket_id` must be a full id.
pub async fn override_classification(
    conn: &PgConn,
    ticket_id: &str,
    o: &Override,
    now_ms: i64,
) -> Result<u64, TicketError> {
    let e = pg_err("correcting the classification");
    let mut client = conn.get().await?;
    let tx = client.transaction().await.map_err(&e)?;
    let row = tx
        .query_opt(
            "SELECT document, transcript FROM hotline_tickets WHERE id = $1 FOR UPDATE",
            &[&ticket_id],
        )
        .await
        .map_err(&e)?
        .ok_or_else(|| TicketError::NotFound(ticket_id.to_owned()))?;
    let (doc, text): (String, String) = (row.get(0), row.get(1));
    let mut doc = decode(ticket_id, &doc)?;
    let revision = put_override(&mut doc, o, now_ms);
    tx.execute(
        "UPDATE hotline_tickets SET document = $2, revision = $3, state = 'pending',
             next_attempt_at_ms = $4, lease_owner = NULL, lease_until_ms = NULL,
             updated_at_ms = $4
         WHERE id = $1",
        &[&ticket_id, &encode(&doc)?, &(revision as i32), &now_ms],
    )
    .await
    .map_err(&e)?;
    tx.execute(
        "INSERT INTO hotline_classification_corrections
             (ticket_id, category_id, text, corrected_by, corrected_at_ms)
         VALUES ($1, $2, $3, $4, $5)",
        &[&ticket_id, &o.category_id, &text, &o.by, &now_ms],
    )
    .await
    .map_err(&e)?;
    tx.commit().await.map_err(&e)?;
    Ok(revision)
}
