//! The durable ticket store (SQLite, WAL, `synchronous=FULL`).
//!
//! A ticket is one row written in one transaction, so after a crash it either exists whole
//! or not at all; the delivery state lives in the same row so that "committed" and
//! "queued for delivery" are the same event. Calls are blocking: the service runs them on
//! `spawn_blocking`, the admin CLI calls them directly (SQLite's WAL lets both processes in).

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use super::duplicate::Candidate;
use super::model::Ticket;
use super::TicketError;

mod candidates;
use candidates::candidates_where;
pub use candidates::MAX_CANDIDATES;

mod call_uid;
use call_uid::migrate_call_uid;

mod migrations;
use migrations::{CALL_UID_STEP, MIGRATIONS};

mod fleet_moves;
mod revise;
pub use fleet_moves::Unmoved;

/// Delivery state of a ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    InFlight,
    Delivered,
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::InFlight => "in_flight",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryState> {
        Some(match s {
            "pending" => DeliveryState::Pending,
            "in_flight" | "in-flight" => DeliveryState::InFlight,
            "delivered" => DeliveryState::Delivered,
            "dead" => DeliveryState::Dead,
            _ => return None,
        })
    }
}

/// A ticket row: the document plus its delivery bookkeeping.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TicketRecord {
    pub ticket_id: String,
    pub call_uid: String,
    pub call_id: String,
    pub created_at_ms: i64,
    pub caller: String,
    pub category_id: String,
    pub urgent: bool,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at_ms: i64,
    pub last_error: Option<String>,
    pub last_status: Option<u16>,
    pub last_body: Option<String>,
    pub delivered_at_ms: Option<i64>,
    pub outbox_written_at_ms: Option<i64>,
    #[serde(skip)]
    pub document: String,
}

/// One logged delivery attempt.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub at_ms: i64,
    pub outcome: String,
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// A ticket handed to the delivery loop.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub ticket_id: String,
    pub document: String,
    pub attempts: u32,
}

/// Result of [`Store::create`].
pub enum Created {
    New(Ticket),
    /// A ticket for this call id already existed (e.g. the call layer retried the hand-over).
    Existing(Ticket),
}

pub(super) const RECORD_COLUMNS: &str =
    "id, call_id, created_at_ms, caller, category_id, urgent, state, \
     attempts, next_attempt_at_ms, last_error, last_status, last_body, delivered_at_ms, \
     outbox_written_at_ms, document, call_uid";

pub(super) fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TicketRecord> {
    let state: String = row.get(6)?;
    Ok(TicketRecord {
        ticket_id: row.get(0)?,
        call_id: row.get(1)?,
        created_at_ms: row.get(2)?,
        caller: row.get(3)?,
        category_id: row.get(4)?,
        urgent: row.get(5)?,
        state: DeliveryState::parse(&state).unwrap_or(DeliveryState::Pending),
        attempts: row.get(7)?,
        next_attempt_at_ms: row.get(8)?,
        last_error: row.get(9)?,
        last_status: row.get(10)?,
        last_body: row.get(11)?,
        delivered_at_ms: row.get(12)?,
        outbox_written_at_ms: row.get(13)?,
        document: row.get(14)?,
        call_uid: row.get(15)?,
    })
}

/// Handle on the SQLite database. Cheap to share behind an `Arc`.
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub fn open(path: &Path) -> Result<Store, TicketError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| TicketError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // WAL: readers (admin CLI) never block the writer; FULL: a commit survives power loss.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back on drop), so a poisoned lock is safe to keep using.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Schema version (number of migrations applied).
    pub fn schema_version(&self) -> Result<u32, TicketError> {
        Ok(self
            .lock()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Creates the ticket for `call_uid`. The duplicate candidates (tickets whose call started
    /// in `[from_ms, to_ms]`) are read before the write transaction, bounded to the
    /// [`MAX_CANDIDATES`] latest plus every earlier ticket of the same `caller` (indexed);
    /// inside the write transaction only tickets committed since that read are added, so two
    /// concurrent calls still see each other without a write lock held over 72 h of rows.
    /// `build` gets the candidates and returns the new ticket and its normalised text.
    pub fn create(
        &self,
        call_uid: &str,
        caller: &str,
        from_ms: i64,
        to_ms: i64,
        now_ms: i64,
        build: impl FnOnce(&[Candidate]) -> (Ticket, String),
    ) -> Result<Created, TicketError> {
        let mut conn = self.lock();
        let (mut candidates, seen) = {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let seen: i64 =
                tx.query_row("SELECT COALESCE(MAX(rowid), 0) FROM tickets", [], |r| {
                    r.get(0)
                })?;
            (candidates::in_window(&tx, from_ms, to_ms, caller)?, seen)
        };
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<(String, String)> = tx
            .query_row(
                "SELECT id, document FROM tickets WHERE call_uid = ?1",
                [call_uid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((id, doc)) = existing {
            return Ok(Created::Existing(parse_doc(&id, &doc)?));
        }
        candidates.extend(candidates_where(
            &tx,
            "rowid > ?3 AND started_at_ms BETWEEN ?1 AND ?2",
            params![from_ms, to_ms, seen],
        )?);
        candidates.sort_by_key(|a| (a.started_at_ms, a.ticket_id));
        candidates.dedup_by(|a, b| a.ticket_id == b.ticket_id);
        let (ticket, norm_text) = build(&candidates);
        let document =
            serde_json::to_string(&ticket).map_err(|e| TicketError::Encode(e.to_string()))?;
        tx.execute(
            "INSERT INTO tickets (id, call_uid, call_id, created_at_ms, started_at_ms, caller,
                 norm_text, category_id, urgent, document, state, attempts, next_attempt_at_ms,
                 updated_at_ms)
             VALUES (?1, ?10, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', 0, ?3, ?3)",
            params![
                ticket.ticket_id.to_string(),
                ticket.call.call_id,
                now_ms,
                ticket.call.started_at.timestamp_millis(),
                ticket.call.caller,
                norm_text,
                ticket.classification.category_id,
                ticket.classification.urgent,
                document,
                call_uid,
            ],
        )?;
        tx.commit()?;
        Ok(Created::New(ticket))
    }

    /// After a restart nothing is really in flight: whatever was is sent again (the intake
    /// deduplicates on `Idempotency-Key`). Returns how many were reset.
    pub fn recover_in_flight(&self, now_ms: i64) -> Result<usize, TicketError> {
        Ok(self.lock().execute(
            "UPDATE tickets SET state = 'pending', next_attempt_at_ms = MIN(next_attempt_at_ms, ?1),
                 updated_at_ms = ?1 WHERE state = 'in_flight'",
            [now_ms],
        )?)
    }

    /// Marks up to `limit` due pending tickets in flight and returns them: urgent tickets
    /// first (a gas leak does not wait behind a backlog of potholes), then oldest due first.
    pub fn claim_due(&self, now_ms: i64, limit: usize) -> Result<Vec<Claimed>, TicketError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "UPDATE tickets SET state = 'in_flight', attempts = attempts + 1, updated_at_ms = ?1
             WHERE id IN (SELECT id FROM tickets WHERE state = 'pending' AND next_attempt_at_ms <= ?1
                          ORDER BY urgent DESC, next_attempt_at_ms LIMIT ?2)
             RETURNING id, document, attempts",
        )?;
        let rows = stmt.query_map(params![now_ms, limit as i64], |r| {
            Ok(Claimed {
                ticket_id: r.get(0)?,
                document: r.get(1)?,
                attempts: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Earliest `next_attempt_at_ms` of a pending ticket.
    pub fn next_due_ms(&self) -> Result<Option<i64>, TicketError> {
        Ok(self.lock().query_row(
            "SELECT MIN(next_attempt_at_ms) FROM tickets WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )?)
    }

    /// Records the outcome of one attempt and moves the ticket to `state`.
    #[allow(clippy::too_many_arguments)]
    pub fn finish_attempt(
        &self,
        ticket_id: &str,
        attempt: u32,
        now_ms: i64,
        state: DeliveryState,
        next_attempt_at_ms: i64,
        status: Option<u16>,
        error: Option<&str>,
        body: Option<&str>,
    ) -> Result<(), TicketError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE tickets SET state = ?2, next_attempt_at_ms = ?3, last_status = ?4,
                 last_error = ?5, last_body = COALESCE(?6, last_body), updated_at_ms = ?7,
                 delivered_at_ms = CASE WHEN ?2 = 'delivered' THEN ?7 ELSE delivered_at_ms END
             WHERE id = ?1 AND state = 'in_flight' AND attempts = ?8",
            params![
                ticket_id,
                state.as_str(),
                next_attempt_at_ms,
                status,
                error,
                body,
                now_ms,
                attempt
            ],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO attempts (ticket_id, attempt, at_ms, outcome, status, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![ticket_id, attempt, now_ms, state.as_str(), status, error],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Puts a dead (or pending) ticket back in the queue, due now. Returns the previous state.
    pub fn requeue(&self, ticket_id: &str, now_ms: i64) -> Result<DeliveryState, TicketError> {
        let rec = self.get(ticket_id)?;
        if rec.state == DeliveryState::Dead || rec.state == DeliveryState::Pending {
            self.lock().execute(
                "UPDATE tickets SET state = 'pending', next_attempt_at_ms = ?2, updated_at_ms = ?2
                 WHERE id = ?1 AND state IN ('dead', 'pending')",
                params![rec.ticket_id, now_ms],
            )?;
        }
        Ok(rec.state)
    }

    /// Looks a ticket up by full id, exact reference, or a unique id prefix of at least 8
    /// characters (in that order: a reference is all digits, so it could also be a prefix).
    pub fn get(&self, id_or_prefix: &str) -> Result<TicketRecord, TicketError> {
        let conn = self.lock();
        let sql = format!("SELECT {RECORD_COLUMNS} FROM tickets WHERE id = ?1");
        if let Some(r) = conn
            .query_row(&sql, [id_or_prefix], record_from_row)
            .optional()?
        {
            return Ok(r);
        }
        if super::reference::is_reference(id_or_prefix) {
            let sql = format!("SELECT {RECORD_COLUMNS} FROM tickets WHERE reference = ?1");
            if let Some(r) = conn
                .query_row(&sql, [id_or_prefix], record_from_row)
                .optional()?
            {
                return Ok(r);
            }
        }
        if id_or_prefix.len() >= 8
            && id_or_prefix
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == '-')
        {
            let sql =
                format!("SELECT {RECORD_COLUMNS} FROM tickets WHERE id LIKE ?1 || '%' LIMIT 2");
            let mut stmt = conn.prepare(&sql)?;
            let mut found: Vec<TicketRecord> = stmt
                .query_map([id_or_prefix], record_from_row)?
                .collect::<Result<_, _>>()?;
            if found.len() == 1 {
                return Ok(found.remove(0));
            }
            if found.len() > 1 {
                return Err(TicketError::Ambiguous(id_or_prefix.to_owned()));
            }
        }
        Err(TicketError::NotFound(id_or_prefix.to_owned()))
    }

    /// Tickets newest first, optionally only those in `state`.
    pub fn list(
        &self,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<TicketRecord>, TicketError> {
        let conn = self.lock();
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM tickets WHERE (?1 IS NULL OR state = ?1)
             ORDER BY created_at_ms DESC, id DESC LIMIT ?2"
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(
            params![
                state.map(DeliveryState::as_str),
                limit.min(i64::MAX as usize) as i64
            ],
            record_from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn attempts(&self, ticket_id: &str) -> Result<Vec<AttemptRecord>, TicketError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT attempt, at_ms, outcome, status, error FROM attempts
             WHERE ticket_id = ?1 ORDER BY attempt",
        )?;
        let rows = stmt.query_map([ticket_id], |r| {
            Ok(AttemptRecord {
                attempt: r.get(0)?,
                at_ms: r.get(1)?,
                outcome: r.get(2)?,
                status: r.get(3)?,
                error: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Number of tickets per delivery state.
    pub fn counts(&self) -> Result<Vec<(DeliveryState, u64)>, TicketError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT state, COUNT(*) FROM tickets GROUP BY state")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (s, n) = row?;
            if let Some(s) = DeliveryState::parse(&s) {
                out.push((s, u64::try_from(n).unwrap_or(0)));
            }
        }
        Ok(out)
    }

    /// Pending tickets whose outbox file has not been written yet.
    pub fn outbox_backlog(&self, limit: usize) -> Result<Vec<Claimed>, TicketError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT id, document, attempts FROM tickets
             WHERE outbox_written_at_ms IS NULL AND state = 'pending'
             ORDER BY created_at_ms LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok(Claimed {
                ticket_id: r.get(0)?,
                document: r.get(1)?,
                attempts: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Up to `limit` tickets created before `before_ms` whose files retention may delete and
    /// has not yet: delivered, or (`outbox_is_delivery`, no intake configured) written to
    /// the outbox. Never a ticket still owed to the intake. `(ticket_id, call_uid, document)`.
    pub fn purgeable(
        &self,
        before_ms: i64,
        outbox_is_delivery: bool,
        limit: usize,
    ) -> Result<Vec<(String, String, String)>, TicketError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, call_uid, document FROM tickets
             WHERE created_at_ms < ?1 AND purged_at_ms IS NULL
               AND (state = 'delivered' OR (?2 AND outbox_written_at_ms IS NOT NULL))
             ORDER BY created_at_ms LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![before_ms, outbox_is_delivery, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Retention deleted the ticket's files (the ticket itself stays).
    pub fn mark_purged(&self, ticket_id: &str, now_ms: i64) -> Result<(), TicketError> {
        self.lock().execute(
            "UPDATE tickets SET purged_at_ms = ?2 WHERE id = ?1",
            params![ticket_id, now_ms],
        )?;
        Ok(())
    }

    pub fn mark_outbox_written(&self, ticket_id: &str, now_ms: i64) -> Result<(), TicketError> {
        self.lock().execute(
            "UPDATE tickets SET outbox_written_at_ms = ?2 WHERE id = ?1",
            params![ticket_id, now_ms],
        )?;
        Ok(())
    }
}

/// The stored document of ticket `ticket_id` (a full id), read inside `tx`.
pub(super) fn document_of(tx: &Connection, ticket_id: &str) -> Result<String, TicketError> {
    tx.query_row(
        "SELECT document FROM tickets WHERE id = ?1",
        [ticket_id],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| TicketError::NotFound(ticket_id.to_owned()))
}

/// Parses a stored document; a failure means the database was edited by hand.
pub fn parse_doc(id: &str, doc: &str) -> Result<Ticket, TicketError> {
    super::v1::parse(doc).map_err(|e| TicketError::Corrupt {
        id: id.to_owned(),
        message: e.to_string(),
    })
}

fn migrate(conn: &mut Connection) -> Result<(), TicketError> {
    // Rebuilding a table (SQLite's way to drop a constraint) must not cascade into the
    // tables that reference it; the pragma only takes effect outside a transaction.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let r = migrate_steps(conn);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    r
}

fn migrate_steps(conn: &mut Connection) -> Result<(), TicketError> {
    // The version is read inside the exclusive transaction so that two processes opening a
    // fresh database at once (daemon and admin CLI) apply each migration exactly once.
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let current = usize::try_from(current).unwrap_or(usize::MAX);
        if current > MIGRATIONS.len() {
            return Err(TicketError::SchemaTooNew {
                found: current,
                known: MIGRATIONS.len(),
            });
        }
        let Some(sql) = MIGRATIONS.get(current) else {
            return Ok(());
        };
        if *sql == CALL_UID_STEP {
            migrate_call_uid(&tx)?;
        } else {
            tx.execute_batch(sql)?;
        }
        tx.pragma_update(None, "user_version", current as i64 + 1)?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite");
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap() as usize, MIGRATIONS.len());
        drop(s);
        // Re-opening is a no-op, not a "table exists" error.
        let s = Store::open(&path).unwrap();
        let mode: String = s
            .lock()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = s
            .lock()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "FULL");
        s.lock().pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        assert!(matches!(
            Store::open(&path),
            Err(TicketError::SchemaTooNew { found: 99, .. })
        ));
    }
}
