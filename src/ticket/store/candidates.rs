//! The duplicate look-up's reads: bounded, and by index, so a new ticket never loads a whole
//! window of tickets inside the write transaction.

use rusqlite::Connection;
use uuid::Uuid;

use super::super::duplicate::Candidate;
use super::super::TicketError;

/// At most this many of the latest tickets in the duplicate window are compared by text
/// (earlier tickets of the same caller always are): bounds the work per new ticket.
pub const MAX_CANDIDATES: i64 = 5_000;

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
