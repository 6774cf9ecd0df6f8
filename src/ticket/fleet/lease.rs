//! Delivery from the shared store: a ticket is posted by one instance at a time.
//!
//! Claiming sets `lease_owner` and `lease_until_ms` on due tickets picked with
//! `FOR UPDATE SKIP LOCKED` (two instances claiming at once take different tickets and never
//! wait for each other). The outcome is recorded only by the lease's owner; a lease that
//! expires (its instance was killed mid-post) makes the ticket due for any instance, which
//! posts it again with the same `Idempotency-Key`: exactly once in effect.

use std::sync::Arc;

use super::{pg_err, Fleet};
use crate::ticket::queue::{DeliveryQueue, Finished, QueueFuture};
use crate::ticket::store::{Claimed, DeliveryState};
use crate::ticket::TicketError;

/// The shared store as the delivery queue.
pub struct LeaseQueue(pub Arc<Fleet>);

impl LeaseQueue {
    async fn claim(&self, now_ms: i64, limit: usize) -> Result<Vec<Claimed>, TicketError> {
        let f = &self.0;
        let until =
            now_ms.saturating_add(i64::try_from(f.cfg.lease.as_millis()).unwrap_or(i64::MAX));
        let client = f.delivery.get().await?;
        let rows = client
            .query(
                "UPDATE hotline_tickets t
                 SET lease_owner = $1, lease_until_ms = $3, attempts = t.attempts + 1,
                     updated_at_ms = $2
                 FROM (SELECT id FROM hotline_tickets
                       WHERE state = 'pending' AND next_attempt_at_ms <= $2
                         AND (lease_until_ms IS NULL OR lease_until_ms < $2)
                       ORDER BY urgent DESC, next_attempt_at_ms LIMIT $4
                       FOR UPDATE SKIP LOCKED) due
                 WHERE t.id = due.id
                 RETURNING t.id, t.document, t.attempts",
                &[&f.owner, &now_ms, &until, &(limit as i64)],
            )
            .await
            .map_err(pg_err("claiming due tickets"))?;
        Ok(rows
            .iter()
            .map(|r| Claimed {
                ticket_id: r.get(0),
                document: r.get(1),
                attempts: u32::try_from(r.get::<_, i32>(2)).unwrap_or(0),
            })
            .collect())
    }

    async fn next_due(&self) -> Result<Option<i64>, TicketError> {
        let client = self.0.delivery.get().await?;
        let row = client
            .query_one(
                "SELECT MIN(GREATEST(next_attempt_at_ms, COALESCE(lease_until_ms, 0)))
                 FROM hotline_tickets WHERE state = 'pending'",
                &[],
            )
            .await
            .map_err(pg_err("reading the fleet queue"))?;
        Ok(row.get(0))
    }

    async fn finish(&self, f: Finished) -> Result<(), TicketError> {
        let fleet = &self.0;
        let e = pg_err("recording a delivery outcome");
        let mut client = fleet.delivery.get().await?;
        let tx = client.transaction().await.map_err(&e)?;
        let state = match f.state {
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
            _ => "pending",
        };
        let status = f.status.map(i32::from);
        let attempt = f.attempt as i32;
        let n = tx
            .execute(
                "UPDATE hotline_tickets SET state = $3, next_attempt_at_ms = $4, last_status = $5,
                     last_error = $6, last_body = COALESCE($7, last_body), updated_at_ms = $8,
                     delivered_at_ms = CASE WHEN $3 = 'delivered' THEN $8 ELSE delivered_at_ms END,
                     lease_owner = NULL, lease_until_ms = NULL
                 WHERE id = $1 AND lease_owner = $2",
                &[
                    &f.ticket_id,
                    &fleet.owner,
                    &state,
                    &f.next_attempt_at_ms,
                    &status,
                    &f.error,
                    &f.body,
                    &f.now_ms,
                ],
            )
            .await
            .map_err(&e)?;
        if n == 0 {
            // The lease expired and another instance took the ticket: its outcome counts.
            tracing::warn!(ticket = %f.ticket_id, "lease lost before the outcome was recorded");
        } else {
            tx.execute(
                "INSERT INTO hotline_ticket_attempts
                     (ticket_id, attempt, at_ms, outcome, status, error, instance)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[
                    &f.ticket_id,
                    &attempt,
                    &f.now_ms,
                    &state,
                    &status,
                    &f.error,
                    &fleet.owner,
                ],
            )
            .await
            .map_err(&e)?;
        }
        tx.commit().await.map_err(&e)?;
        Ok(())
    }

    async fn release(&self) -> Result<usize, TicketError> {
        let client = self.0.delivery.get().await?;
        let n = client
            .execute(
                "UPDATE hotline_tickets SET lease_owner = NULL, lease_until_ms = NULL
                 WHERE lease_owner = $1",
                &[&self.0.owner],
            )
            .await
            .map_err(pg_err("releasing leases"))?;
        Ok(n as usize)
    }
}

impl DeliveryQueue for LeaseQueue {
    fn claim_due(&self, now_ms: i64, limit: usize) -> QueueFuture<'_, Vec<Claimed>> {
        Box::pin(self.claim(now_ms, limit))
    }

    fn next_due_ms(&self, _now_ms: i64) -> QueueFuture<'_, Option<i64>> {
        Box::pin(self.next_due())
    }

    fn finish_attempt(&self, f: Finished) -> QueueFuture<'_, ()> {
        Box::pin(self.finish(f))
    }

    fn release_all(&self, _now_ms: i64) -> QueueFuture<'_, usize> {
        Box::pin(self.release())
    }
}
