//! The shared store's schema: versioned steps of its own (`hotline_migrations`), applied by
//! whichever instance connects first. SQLite keeps its `PRAGMA user_version` steps; the two
//! histories are independent. Append only, never edit: a database that ran step N must find
//! step N unchanged. Documented in docs/fleet-store.md.

use tokio_postgres::Client;

use super::pg_err;
use crate::ticket::TicketError;

/// Serialises migrations across the fleet (any constant; shared by every instance).
const MIGRATION_LOCK: i64 = 0x686f_746c_0001;

/// One SQL batch per version; `hotline_migrations` holds the versions applied.
pub const MIGRATIONS: &[&str] = &[
    // 1: tickets as moved from the instances' local stores, with delivery state and lease,
    // and the log of delivery attempts (which instance made each).
    "CREATE TABLE hotline_tickets (
        id TEXT PRIMARY KEY,
        call_uid TEXT NOT NULL UNIQUE,
        call_id TEXT NOT NULL,
        reference TEXT,
        revision INTEGER NOT NULL,
        gateway_instance TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        started_at_ms BIGINT NOT NULL,
        caller TEXT NOT NULL,
        norm_text TEXT NOT NULL,
        transcript TEXT NOT NULL,
        category_id TEXT NOT NULL,
        urgent BOOLEAN NOT NULL,
        duplicate_of TEXT,
        document TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending','delivered','dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at_ms BIGINT NOT NULL,
        lease_owner TEXT,
        lease_until_ms BIGINT,
        last_error TEXT,
        last_status INTEGER,
        last_body TEXT,
        delivered_at_ms BIGINT,
        moved_at_ms BIGINT NOT NULL,
        moved_by TEXT NOT NULL,
        -- the local document's revision as last moved (a later local revision moves again)
        source_revision INTEGER NOT NULL DEFAULT 1,
        updated_at_ms BIGINT NOT NULL
    );
    CREATE INDEX hotline_tickets_started ON hotline_tickets (started_at_ms);
    CREATE INDEX hotline_tickets_caller ON hotline_tickets (caller, started_at_ms);
    CREATE INDEX hotline_tickets_due ON hotline_tickets (state, next_attempt_at_ms);
    CREATE INDEX hotline_tickets_reference ON hotline_tickets (reference);
    CREATE INDEX hotline_tickets_created ON hotline_tickets (created_at_ms DESC, id DESC);
    CREATE TABLE hotline_ticket_attempts (
        ticket_id TEXT NOT NULL REFERENCES hotline_tickets (id),
        attempt INTEGER NOT NULL,
        at_ms BIGINT NOT NULL,
        outcome TEXT NOT NULL,
        status INTEGER,
        error TEXT,
        instance TEXT NOT NULL,
        PRIMARY KEY (ticket_id, attempt)
    );",
    // 2: Chinese full-text search of transcripts: trigram index (needs a UTF-8 database with
    // a C.UTF-8 or similar locale); 1-2 character queries use strpos, which needs no index.
    "CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX hotline_tickets_transcript_trgm ON hotline_tickets
        USING gin (transcript gin_trgm_ops);",
    // 3: what the desks change: progress history (set on any instance's desk or reported by
    // the intake) and operators' category corrections (shared by the fleet for retraining).
    "CREATE TABLE hotline_ticket_progress (
        seq BIGSERIAL PRIMARY KEY,
        ticket_id TEXT NOT NULL REFERENCES hotline_tickets (id),
        state TEXT NOT NULL CHECK (state IN ('accepted','in_progress','resolved')),
        note TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        by_whom TEXT NOT NULL,
        source TEXT NOT NULL
    );
    CREATE INDEX hotline_ticket_progress_ticket ON hotline_ticket_progress (ticket_id, seq);
    CREATE TABLE hotline_classification_corrections (
        id BIGSERIAL PRIMARY KEY,
        ticket_id TEXT NOT NULL REFERENCES hotline_tickets (id),
        category_id TEXT NOT NULL,
        text TEXT NOT NULL,
        corrected_by TEXT NOT NULL,
        corrected_at_ms BIGINT NOT NULL
    );",
];

/// Applies the steps this database lacks, one transaction each, under an advisory lock so
/// that instances starting together apply each step once. A database migrated by a newer
/// build is refused.
pub(super) async fn migrate(client: &mut Client) -> Result<(), TicketError> {
    let what = pg_err("migrating the fleet store");
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS hotline_migrations (
                version INTEGER PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .or_else(|e| {
            // Two instances creating the table at once: one wins, the other finds it.
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(&what)?;
    loop {
        let tx = client.transaction().await.map_err(&what)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(&what)?;
        let current: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM hotline_migrations",
                &[],
            )
            .await
            .map_err(&what)?
            .get(0);
        let current = usize::try_from(current).unwrap_or(0);
        if current > MIGRATIONS.len() {
            return Err(TicketError::SchemaTooNew {
                found: current,
                known: MIGRATIONS.len(),
            });
        }
        let Some(step) = MIGRATIONS.get(current) else {
            return Ok(());
        };
        tx.batch_execute(step).await.map_err(&what)?;
        tx.execute(
            "INSERT INTO hotline_migrations (version) VALUES ($1)",
            &[&(current as i32 + 1)],
        )
        .await
        .map_err(&what)?;
        tx.commit().await.map_err(&what)?;
        tracing::info!(version = current + 1, "fleet ticket store migrated");
    }
}
