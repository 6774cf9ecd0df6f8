//! The duplicate look-up's reads: bounded, and by index, so a new ticket never loads a whole
//! window of tickets inside the write transaction.

use rusqlite::Connection;
use uuid::Uuid;

use super::super::duplicate::Candidate;
use super::super::TicketError;

/// At most this many of the latest tickets in the duplicate window are compared by text
/// (earlier tickets of the same caller always are): bounds the work per new ticket.
pub const MAX_CANDIDATES: i64 = 5_000;

/// The duplicate candidates of a call of `caller` started at `to_ms`: the latest
/// [`MAX_CANDIDATES`] tickets whose call started in `[from_ms, to_ms]`, plus every such ticket
/// of the same caller (by index). May hold a ticket twice.
pub(super) fn in_window(
    conn: &Connection,
    from_ms: i64,
    to_ms: i64,
    caller: &str,
) -> Result<Vec<Candidate>, TicketError> {
    let mut out = candidates_where(
        conn,
        "started_at_ms BETWEEN ?1 AND ?2 ORDER BY started_at_ms DESC LIMIT ?3",
        rusqlite::params![from_ms, to_ms, MAX_CANDIDATES],
    )?;
    out.extend(candidates_where(
        conn,
        "caller = ?3 AND started_at_ms BETWEEN ?1 AND ?2
         ORDER BY started_at_ms DESC LIMIT 1000",
        rusqlite::params![from_ms, to_ms, caller],
    )?);
    Ok(out)
}

/// Duplicate candidates matching `filter` (SQL after `WHERE`).
pub(super) fn candidates_where(
    conn: &Connection,
    filter: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Candidate>, TicketError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT id, caller, norm_text, started_at_ms FROM tickets WHERE {filter}"
    ))?;
    let rows = stmt.query_map(params, |r| {
        Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, caller, norm_text, started_at_ms) = row?;
        if let Ok(ticket_id) = Uuid::parse_str(&id) {
            out.push(Candidate {
                ticket_id,
                caller,
                norm_text,
                started_at_ms,
            });
        }
    }
    Ok(out)
}
