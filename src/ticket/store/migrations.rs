//! The ticket store's schema, one step per `PRAGMA user_version`.
//!
//! Kept apart from the queries so the history of the schema reads in one place. Append only,
//! never edit: a store that ran step N must find step N unchanged.

/// Schema migrations; `PRAGMA user_version` = number applied. Append only, never edit.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: tickets with their delivery state, and the log of delivery attempts.
    "CREATE TABLE tickets (
        id TEXT PRIMARY KEY NOT NULL,
        call_id TEXT NOT NULL UNIQUE,
        created_at_ms INTEGER NOT NULL,
        started_at_ms INTEGER NOT NULL,
        caller TEXT NOT NULL,
        norm_text TEXT NOT NULL,
        category_id TEXT NOT NULL,
        urgent INTEGER NOT NULL,
        document TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending','in_flight','delivered','dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at_ms INTEGER NOT NULL,
        last_error TEXT,
        last_status INTEGER,
        last_body TEXT,
        delivered_at_ms INTEGER,
        outbox_written_at_ms INTEGER,
        updated_at_ms INTEGER NOT NULL
    );
    CREATE INDEX tickets_started ON tickets(started_at_ms);
    CREATE INDEX tickets_due ON tickets(state, next_attempt_at_ms);
    CREATE TABLE attempts (
        ticket_id TEXT NOT NULL REFERENCES tickets(id),
        attempt INTEGER NOT NULL,
        at_ms INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        status INTEGER,
        error TEXT,
        PRIMARY KEY (ticket_id, attempt)
    );",
    // Branch handoff (issue 11.11, 11.17): a call is not its Call-ID. Run by code, see
    // `migrate_call_uid`: `call_uid` becomes the unique key of ticket creation and
    // `call_id UNIQUE` is dropped (SQLite needs the table rebuilt for that); an index for the
    // duplicate look-up by caller; `purged_at_ms` for retention.
    CALL_UID_STEP,
    // Branch `classify` (issue 17): operators' category corrections (ticket::classify::corrections).
    "CREATE TABLE classification_corrections (id INTEGER PRIMARY KEY AUTOINCREMENT,
        ticket_id TEXT NOT NULL, category_id TEXT NOT NULL, text TEXT NOT NULL,
        corrected_by TEXT NOT NULL, corrected_at_ms INTEGER NOT NULL);
    CREATE INDEX classification_corrections_ticket ON classification_corrections(ticket_id);",
    // voice (issue 13, reference numbers; the integrator renumbers on merge): the day's
    // counter per instance that `reference::allocate_reference` advances, and each ticket's
    // reference so `get` finds a ticket by the number the caller was told.
    "CREATE TABLE reference_days (
        day TEXT NOT NULL,
        instance INTEGER NOT NULL,
        last INTEGER NOT NULL,
        PRIMARY KEY (day, instance)
    );
    ALTER TABLE tickets ADD COLUMN reference TEXT;
    CREATE UNIQUE INDEX tickets_reference ON tickets(reference) WHERE reference IS NOT NULL;",
    // branch desk (issue 15): the operator desk's progress history, audit log, and the
    // full-text index of transcripts (trigram: 3+ characters; shorter queries use instr()).
    "CREATE TABLE ticket_progress (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ticket_id TEXT NOT NULL REFERENCES tickets(id),
        state TEXT NOT NULL CHECK (state IN ('accepted','in_progress','resolved')),
        note TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        by TEXT NOT NULL,
        source TEXT NOT NULL
    );
    CREATE INDEX ticket_progress_ticket ON ticket_progress(ticket_id, seq);
    CREATE TABLE desk_audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        user TEXT NOT NULL,
        action TEXT NOT NULL,
        ticket_id TEXT NOT NULL,
        detail TEXT
    );
    CREATE VIRTUAL TABLE ticket_fts USING fts5(ticket_id UNINDEXED, text, tokenize = 'trigram');
    INSERT INTO ticket_fts (ticket_id, text)
        SELECT id, COALESCE(json_extract(document, '$.transcript.text'), '') FROM tickets;
    CREATE TRIGGER ticket_fts_insert AFTER INSERT ON tickets BEGIN
        INSERT INTO ticket_fts (ticket_id, text)
        VALUES (new.id, COALESCE(json_extract(new.document, '$.transcript.text'), ''));
    END;
    CREATE TRIGGER ticket_fts_update AFTER UPDATE OF document ON tickets BEGIN
        DELETE FROM ticket_fts WHERE ticket_id = new.id;
        INSERT INTO ticket_fts (ticket_id, text)
        VALUES (new.id, COALESCE(json_extract(new.document, '$.transcript.text'), ''));
    END;",
    // branch fleet (issue 18; the integrator renumbers on merge): when a ticket was moved to
    // the fleet's shared PostgreSQL store (`[tickets] store = "postgres"`); NULL = still to
    // move. The partial index keeps the mover's look-up small however many tickets there are.
    // A ticket whose document changes after the move (a later revision made locally) is to
    // move again: the trigger clears the mark, whoever changes the document.
    "ALTER TABLE tickets ADD COLUMN fleet_moved_at_ms INTEGER;
    CREATE INDEX tickets_fleet_unmoved ON tickets(created_at_ms) WHERE fleet_moved_at_ms IS NULL;
    CREATE TRIGGER tickets_fleet_move_again AFTER UPDATE OF document ON tickets
    WHEN old.document IS NOT new.document BEGIN
        UPDATE tickets SET fleet_moved_at_ms = NULL WHERE id = new.id;
    END;",
];

/// Marker of the migration step that `migrate_call_uid` performs.
pub(super) const CALL_UID_STEP: &str = "-- handoff: tickets.call_uid (code: migrate_call_uid)";
