//! Moving committed tickets from the local store to the shared one.
//!
//! Idempotent: the shared store keys tickets by id and `call_uid` (`ON CONFLICT DO NOTHING`),
//! and a ticket is marked moved locally only after its move committed, so a crash between
//! the two moves it again, harmlessly. The fleet-wide duplicate look-up runs inside the
//! move's transaction under a fleet-wide lock: two instances moving at once see each other's
//! tickets, as two calls on one instance do in the local store.

use chrono::Utc;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio_postgres::Client;
use uuid::Uuid;

use super::{pg_err, Fleet};
use crate::ticket::backoff::StoreBackoff;
use crate::ticket::duplicate::{self, Candidate, DuplicateConfig};
use crate::ticket::model::DuplicateHint;
use crate::ticket::store::{DeliveryState, Store, Unmoved, MAX_CANDIDATES};
use crate::ticket::TicketError;

/// Serialises moves across the fleet (any constant; shared by every instance).
const MOVE_LOCK: i64 = 0x686f_746c_0002;

/// Tickets moved per round.
const BATCH: usize = 32;

/// What the move found.
#[derive(Debug, PartialEq, Eq)]
pub enum Moved {
    /// Inserted; `revised` when the fleet's look-up found a duplicate the local one had not.
    New { revised: bool },
    /// The shared store had it already (an earlier move whose local mark was lost).
    AlreadyThere,
    /// The shared store had an earlier revision: updated to this fleet revision, due again.
    Updated { revision: i32 },
}

/// The document as it enters the shared store: unchanged when the fleet's duplicate look-up
/// agrees with the local one; otherwise a new revision naming the fleet's duplicate. `None`
/// = unchanged.
pub fn revise_for_fleet(document: &str, fleet_hint: Option<&DuplicateHint>) -> Option<String> {
    let hint = fleet_hint?;
    let mut doc: Value = serde_json::from_str(document).ok()?;
    let local = doc
        .get("duplicate")
        .and_then(|d| d.get("duplicate_of"))
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok());
    if local == Some(hint.duplicate_of) {
        return None;
    }
    let revision = doc.get("revision").and_then(Value::as_u64).unwrap_or(1);
    let o = doc.as_object_mut()?;
    o.insert("duplicate".into(), serde_json::to_value(hint).ok()?);
    o.insert("revision".into(), (revision + 1).into());
    serde_json::to_string(&doc).ok()
}

/// The mover task: moves committed tickets whenever woken (`wake`: a ticket was committed)
/// or every `move_poll`, until `stop`. Failures are counted and retried with a growing wait
/// (at most 5 s): tickets wait locally meanwhile. Each move wakes delivery (`moved`).
pub async fn run(
    fleet: Arc<Fleet>,
    store: Arc<Store>,
    dup: DuplicateConfig,
    wake: Arc<Notify>,
    moved: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = StoreBackoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let wait = match move_batch(&fleet, &store, &dup).await {
            Ok(n) => {
                fleet.ok();
                backoff.succeeded();
                if n > 0 {
                    moved.notify_one();
                    continue;
                }
                fleet.cfg.move_poll
            }
            Err(e) => {
                fleet.failed("moving tickets", &e);
                backoff.failed()
            }
        };
        tokio::select! {
            _ = stop.changed() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Moves up to one batch of committed tickets; returns how many moved.
pub async fn move_batch(
    fleet: &Fleet,
    store: &Arc<Store>,
    dup: &DuplicateConfig,
) -> Result<usize, TicketError> {
    let s = store.clone();
    let batch = tokio::task::spawn_blocking(move || s.unmoved(BATCH))
        .await
        .map_err(|e| TicketError::Task(e.to_string()))??;
    if batch.is_empty() {
        // Nothing to move: report delivery outcomes back (which also proves the shared store
        // is there, for the metric).
        settle_back(fleet, store).await?;
        return Ok(0);
    }
    let mut moved = 0;
    for t in batch {
        let result = {
            let mut client = fleet.mover.get().await?;
            move_one(&mut client, &t, dup, &fleet.owner).await?
        };
        let (s, id) = (store.clone(), t.ticket_id.clone());
        tokio::task::spawn_blocking(move || s.mark_moved(&id, Utc::now().timestamp_millis()))
            .await
            .map_err(|e| TicketError::Task(e.to_string()))??;
        fleet.counters.moved.fetch_add(1, Ordering::Relaxed);
        if result == (Moved::New { revised: true }) {
            fleet
                .counters
                .fleet_duplicates
                .fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(ticket = %t.ticket_id, ?result, "ticket moved to the fleet store");
        moved += 1;
    }
    Ok(moved)
}

/// Copies the final state of this instance's moved tickets from the shared store into the
/// local one (delivered or dead by whichever instance), so retention can free their files.
async fn settle_back(fleet: &Fleet, store: &Arc<Store>) -> Result<(), TicketError> {
    let s = store.clone();
    let ids = tokio::task::spawn_blocking(move || s.moved_undelivered(256))
        .await
        .map_err(|e| TicketError::Task(e.to_string()))??;
    let client = fleet.mover.get().await?;
    let rows = client
        .query(
            "SELECT id, state, delivered_at_ms FROM hotline_tickets
             WHERE id = ANY($1) AND state IN ('delivered', 'dead')",
            &[&ids],
        )
        .await
        .map_err(pg_err("reading delivery outcomes"))?;
    drop(client);
    if rows.is_empty() {
        return Ok(());
    }
    let settled: Vec<(String, DeliveryState, Option<i64>)> = rows
        .iter()
        .map(|r| {
            let state = if r.get::<_, &str>(1) == "dead" {
                DeliveryState::Dead
            } else {
                DeliveryState::Delivered
            };
            (r.get(0), state, r.get(2))
        })
        .collect();
    let s = store.clone();
    tokio::task::spawn_blocking(move || {
        let now = Utc::now().timestamp_millis();
        for (id, state, at) in settled {
            s.settle_moved(&id, state, at, now)?;
        }
        Ok::<_, TicketError>(())
    })
    .await
    .map_err(|e| TicketError::Task(e.to_string()))?
}

/// The revision of a stored document (1 when it has none: a v1 document).
fn revision_of(doc: &Value) -> u64 {
    doc.get("revision").and_then(Value::as_u64).unwrap_or(1)
}

fn parse(t: &Unmoved, document: &str) -> Result<Value, TicketError> {
    serde_json::from_str(document).map_err(|err| TicketError::Corrupt {
        id: t.ticket_id.clone(),
        message: err.to_string(),
    })
}

/// One ticket's move, in one transaction. A ticket already in the shared store is updated
/// when the local document has a later revision than the one moved (a revision made locally
/// after the move, e.g. a transcript arriving after an early commit): a new fleet revision,
/// due for delivery again.
pub async fn move_one(
    client: &mut Client,
    t: &Unmoved,
    dup: &DuplicateConfig,
    owner: &str,
) -> Result<Moved, TicketError> {
    let e = pg_err("moving a ticket to the fleet store");
    let local_revision = revision_of(&parse(t, &t.document)?) as i32;
    let tx = client.transaction().await.map_err(&e)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MOVE_LOCK])
        .await
        .map_err(&e)?;
    let there: Option<(i32, i32)> = tx
        .query_opt(
            "SELECT revision, source_revision FROM hotline_tickets WHERE id = $1 OR call_uid = $2",
            &[&t.ticket_id, &t.call_uid],
        )
        .await
        .map_err(&e)?
        .map(|r| (r.get(0), r.get(1)));
    if there.is_some_and(|(_, moved)| local_revision <= moved) {
        tx.commit().await.map_err(&e)?;
        return Ok(Moved::AlreadyThere);
    }
    let window = i64::try_from(dup.window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let from = t.started_at_ms.saturating_sub(window);
    let rows = tx
        .query(
            "(SELECT id, caller, norm_text, started_at_ms FROM hotline_tickets
              WHERE started_at_ms BETWEEN $1 AND $2 AND id <> $5
              ORDER BY started_at_ms DESC LIMIT $4)
             UNION
             (SELECT id, caller, norm_text, started_at_ms FROM hotline_tickets
              WHERE caller = $3 AND started_at_ms BETWEEN $1 AND $2 AND id <> $5
              ORDER BY started_at_ms DESC LIMIT 1000)",
            &[
                &from,
                &t.started_at_ms,
                &t.caller,
                &MAX_CANDIDATES,
                &t.ticket_id,
            ],
        )
        .await
        .map_err(&e)?;
    let mut candidates: Vec<Candidate> = rows
        .iter()
        .filter_map(|r| {
            Some(Candidate {
                ticket_id: Uuid::parse_str(r.get::<_, &str>(0)).ok()?,
                caller: r.get(1),
                norm_text: r.get(2),
                started_at_ms: r.get(3),
            })
        })
        .collect();
    candidates.sort_by_key(|c| (c.started_at_ms, c.ticket_id));
    let hint = duplicate::find_duplicate(&t.caller, &t.norm_text, &candidates, dup);
    let revised = revise_for_fleet(&t.document, hint.as_ref());
    let mut doc = parse(t, revised.as_deref().unwrap_or(&t.document))?;
    if let Some((fleet_revision, _)) = there {
        // Never below what the fleet already sent: each delivery needs its own key.
        let revision = revision_of(&doc).max(u64::try_from(fleet_revision).unwrap_or(0) + 1);
        doc["revision"] = revision.into();
    }
    let revision = revision_of(&doc) as i32;
    let document =
        serde_json::to_string(&doc).map_err(|err| TicketError::Encode(err.to_string()))?;
    let transcript = doc
        .pointer("/transcript/text")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let duplicate_of = doc
        .pointer("/duplicate/duplicate_of")
        .and_then(Value::as_str);
    let now = Utc::now().timestamp_millis();
    if there.is_some() {
        tx.execute(
            "UPDATE hotline_tickets SET revision = $2, norm_text = $3, transcript = $4,
                 category_id = $5, urgent = $6, duplicate_of = $7, document = $8,
                 state = 'pending', next_attempt_at_ms = $9, lease_owner = NULL,
                 lease_until_ms = NULL, source_revision = $10, updated_at_ms = $9
             WHERE id = $1",
            &[
                &t.ticket_id,
                &revision,
                &t.norm_text,
                &transcript,
                &t.category_id,
                &t.urgent,
                &duplicate_of,
                &document,
                &now,
                &local_revision,
            ],
        )
        .await
        .map_err(&e)?;
    } else {
        let instance = doc
            .get("gateway_instance")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // In flight locally means nothing: the fleet delivers it (same Idempotency-Key).
        let state = match t.state {
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
            _ => "pending",
        };
        tx.execute(
            "INSERT INTO hotline_tickets (id, call_uid, call_id, reference, revision,
                 gateway_instance, created_at_ms, started_at_ms, caller, norm_text, transcript,
                 category_id, urgent, duplicate_of, document, state, attempts,
                 next_attempt_at_ms, moved_at_ms, moved_by, updated_at_ms, source_revision)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                     $18, $18, $19, $18, $20)
             ON CONFLICT DO NOTHING",
            &[
                &t.ticket_id,
                &t.call_uid,
                &t.call_id,
                &t.reference,
                &revision,
                &instance,
                &t.created_at_ms,
                &t.started_at_ms,
                &t.caller,
                &t.norm_text,
                &transcript,
                &t.category_id,
                &t.urgent,
                &duplicate_of,
                &document,
                &state,
                &(t.attempts as i32),
                &now,
                &owner,
                &local_revision,
            ],
        )
        .await
        .map_err(&e)?;
    }
    tx.execute("SELECT pg_notify('hotline_tickets', $1)", &[&t.ticket_id])
        .await
        .map_err(&e)?;
    tx.commit().await.map_err(&e)?;
    Ok(match there {
        Some(_) => Moved::Updated { revision },
        None => Moved::New {
            revised: revised.is_some(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::model::DuplicateReason;

    fn hint(id: Uuid) -> DuplicateHint {
        DuplicateHint {
            duplicate_of: id,
            similarity: 0.0,
            reason: DuplicateReason::SameCaller,
        }
    }

    #[test]
    fn a_duplicate_found_by_the_fleet_is_a_new_revision() {
        let first = Uuid::now_v7();
        let doc = r#"{"ticket_id":"x","revision":1,"duplicate":null,"extra":{"kept":true}}"#;
        let revised = revise_for_fleet(doc, Some(&hint(first))).expect("revised");
        let v: Value = serde_json::from_str(&revised).unwrap();
        assert_eq!(v["revision"], 2);
        assert_eq!(v["duplicate"]["duplicate_of"], first.to_string());
        assert_eq!(v["duplicate"]["reason"], "same_caller");
        assert_eq!(
            v["extra"]["kept"], true,
            "fields this build does not know survive"
        );
    }

    #[test]
    fn the_same_duplicate_as_found_locally_changes_nothing() {
        let first = Uuid::now_v7();
        let doc = format!(
            r#"{{"revision":1,"duplicate":{{"duplicate_of":"{first}","similarity":1.0,"reason":"similar_text"}}}}"#
        );
        assert_eq!(revise_for_fleet(&doc, Some(&hint(first))), None);
        assert_eq!(
            revise_for_fleet(&doc, None),
            None,
            "no fleet hint: as committed"
        );
        let other = Uuid::now_v7();
        let v: Value =
            serde_json::from_str(&revise_for_fleet(&doc, Some(&hint(other))).unwrap()).unwrap();
        assert_eq!(v["duplicate"]["duplicate_of"], other.to_string());
        assert_eq!(v["revision"], 2);
    }
}
