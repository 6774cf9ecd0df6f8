//! Replacing a ticket by its next revision (`ticket::early`: the urgent early commit, and
//! the second pass of a live-transcribed message), in one transaction.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::super::duplicate::Candidate;
use super::super::model::Ticket;
use super::super::TicketError;
use super::candidates::in_window;
use super::{document_of, parse_doc, Store};

impl Store {
    /// The ticket of call `call_uid`, if one was committed.
    pub fn ticket_of_call(&self, call_uid: &str) -> Result<Option<Ticket>, TicketError> {
        let conn = self.lock();
        let row = conn
            .query_row(
                "SELECT id, document FROM tickets WHERE call_uid = ?1",
                [call_uid],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?;
        row.map(|(id, doc)| parse_doc(&id, &doc)).transpose()
    }

    /// Reads ticket `ticket_id` and the duplicate candidates (calls started in
    /// `[from_ms, to_ms]`, the latest and the caller's own), lets `build` make the new
    /// revision (`None`: leave it as it is) and stores it, queued for delivery at once.
    /// Returns the ticket as stored afterwards.
    pub fn revise_early(
        &self,
        ticket_id: &str,
        caller: &str,
        from_ms: i64,
        to_ms: i64,
        now_ms: i64,
        build: impl FnOnce(&Ticket, &[Candidate]) -> Option<(Ticket, String)>,
    ) -> Result<Ticket, TicketError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = parse_doc(ticket_id, &document_of(&tx, ticket_id)?)?;
        let mut candidates = in_window(&tx, from_ms, to_ms, caller)?;
        candidates.sort_by_key(|a| (a.started_at_ms, a.ticket_id));
        candidates.dedup_by(|a, b| a.ticket_id == b.ticket_id);
        let Some((ticket, norm_text)) = build(&current, &candidates) else {
            return Ok(current);
        };
        let document =
            serde_json::to_string(&ticket).map_err(|e| TicketError::Encode(e.to_string()))?;
        // A ticket in flight is sent again too (as an operator's correction is): the attempt
        // under way carries the old revision.
        tx.execute(
            "UPDATE tickets SET document = ?2, norm_text = ?3, category_id = ?4, urgent = ?5,
                 state = 'pending', next_attempt_at_ms = ?6, outbox_written_at_ms = NULL,
                 updated_at_ms = ?6
             WHERE id = ?1",
            params![
                ticket_id,
                document,
                norm_text,
                ticket.classification.category_id,
                ticket.classification.urgent,
                now_ms
            ],
        )?;
        tx.commit()?;
        Ok(ticket)
    }
}
