//! The local side of moving tickets to the fleet's shared store ([`crate::ticket::fleet`]):
//! which committed tickets are still to move, and marking them moved.

use rusqlite::params;

use super::{DeliveryState, Store};
use crate::ticket::TicketError;

/// A committed ticket still to move, with what the shared store indexes.
#[derive(Clone, Debug)]
pub struct Unmoved {
    pub ticket_id: String,
    pub call_uid: String,
    pub call_id: String,
    pub reference: Option<String>,
    pub created_at_ms: i64,
    pub started_at_ms: i64,
    pub caller: String,
    pub norm_text: String,
    pub category_id: String,
    pub urgent: bool,
    pub document: String,
    /// The local delivery state: a store switched to fleet mode moves tickets it already
    /// delivered as delivered.
    pub state: DeliveryState,
    pub attempts: u32,
}

impl Store {
    /// Up to `limit` tickets not yet moved, oldest first (so the fleet's duplicate look-up
    /// sees an instance's tickets in the order they were made).
    pub fn unmoved(&self, limit: usize) -> Result<Vec<Unmoved>, TicketError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, call_uid, call_id, reference, created_at_ms, started_at_ms, caller,
                    norm_text, category_id, urgent, document, state, attempts
             FROM tickets WHERE fleet_moved_at_ms IS NULL
             ORDER BY created_at_ms, id LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            let state: String = r.get(11)?;
            Ok(Unmoved {
                ticket_id: r.get(0)?,
                call_uid: r.get(1)?,
                call_id: r.get(2)?,
                reference: r.get(3)?,
                created_at_ms: r.get(4)?,
                started_at_ms: r.get(5)?,
                caller: r.get(6)?,
                norm_text: r.get(7)?,
                category_id: r.get(8)?,
                urgent: r.get(9)?,
                document: r.get(10)?,
                state: DeliveryState::parse(&state).unwrap_or(DeliveryState::Pending),
                attempts: r.get(12)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many tickets wait to move.
    pub fn unmoved_count(&self) -> Result<u64, TicketError> {
        let n: i64 = self.lock().query_row(
            "SELECT COUNT(*) FROM tickets WHERE fleet_moved_at_ms IS NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Moved tickets the local store still counts as owed to the intake (up to `limit`,
    /// oldest first): the mover asks the shared store how their delivery ended.
    pub fn moved_undelivered(&self, limit: usize) -> Result<Vec<String>, TicketError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM tickets WHERE state IN ('pending', 'in_flight')
               AND fleet_moved_at_ms IS NOT NULL
             ORDER BY created_at_ms LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Copies the fleet's final delivery state of a moved ticket into the local store, so that
    /// retention, `hotline-gateway tickets` and the local metrics see what the fleet did.
    pub fn settle_moved(
        &self,
        ticket_id: &str,
        state: DeliveryState,
        delivered_at_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<(), TicketError> {
        self.lock().execute(
            "UPDATE tickets SET state = ?2, delivered_at_ms = ?3, updated_at_ms = ?4
             WHERE id = ?1 AND fleet_moved_at_ms IS NOT NULL",
            params![ticket_id, state.as_str(), delivered_at_ms, now_ms],
        )?;
        Ok(())
    }

    /// The ticket is in the shared store now (its delivery is the fleet's business).
    pub fn mark_moved(&self, ticket_id: &str, now_ms: i64) -> Result<(), TicketError> {
        self.lock().execute(
            "UPDATE tickets SET fleet_moved_at_ms = ?2 WHERE id = ?1",
            params![ticket_id, now_ms],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_ticket_whose_document_changes_is_to_move_again() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.sqlite")).unwrap();
        s.lock()
            .execute(
                "INSERT INTO tickets (id, call_uid, call_id, created_at_ms, started_at_ms, caller,
                     norm_text, category_id, urgent, document, state, next_attempt_at_ms,
                     updated_at_ms)
                 VALUES ('t1', 'c1', 'c1', 1, 1, '138', '', 'other', 0, '{\"revision\":1}',
                         'pending', 1, 1)",
                [],
            )
            .unwrap();
        assert_eq!(s.unmoved_count().unwrap(), 1);
        s.mark_moved("t1", 2).unwrap();
        assert_eq!(s.unmoved_count().unwrap(), 0);
        s.settle_moved("t1", DeliveryState::Delivered, Some(3), 3)
            .unwrap();
        assert_eq!(s.unmoved_count().unwrap(), 0, "settling is no change");
        assert!(s.moved_undelivered(10).unwrap().is_empty());
        s.lock()
            .execute(
                "UPDATE tickets SET document = '{\"revision\":2}' WHERE id = 't1'",
                [],
            )
            .unwrap();
        assert_eq!(
            s.unmoved(10).unwrap()[0].ticket_id,
            "t1",
            "revised: moves again"
        );
    }
}
