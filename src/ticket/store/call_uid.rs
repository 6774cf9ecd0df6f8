//! The handoff branch's migration step (issue 11.11, 11.17), run by code because SQLite
//! cannot drop a constraint in SQL alone.

use rusqlite::OptionalExtension;

use super::super::TicketError;

/// Rebuilds `tickets` with `call_uid TEXT NOT NULL UNIQUE` in place of `call_id`'s
/// uniqueness (SQLite cannot drop a constraint: lang_altertable.html, "making other kinds of
/// table schema changes"). Generic on purpose: columns, indexes and triggers that other steps
/// added before this one survive, whatever their order after a merge. Tickets already
/// stored were unique per Call-ID, so their `call_uid` is their Call-ID.
pub(super) fn migrate_call_uid(tx: &rusqlite::Transaction<'_>) -> Result<(), TicketError> {
    const OLD: &str = "call_id TEXT NOT NULL UNIQUE,";
    let create: String = tx.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'tickets'",
        [],
        |r| r.get(0),
    )?;
    if !create.contains(OLD) {
        return Err(TicketError::Config(format!(
            "ticket store: cannot add call_uid to an unexpected tickets table: {create}"
        )));
    }
    let rebuilt = create
        .replacen(
            OLD,
            "call_uid TEXT NOT NULL UNIQUE,\n        call_id TEXT NOT NULL,",
            1,
        )
        .replacen("CREATE TABLE tickets", "CREATE TABLE tickets_rebuilt", 1);
    let extras: Vec<String> = tx
        .prepare(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'tickets'
             AND type IN ('index', 'trigger') AND sql IS NOT NULL",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let columns: Vec<String> = tx
        .prepare("SELECT name FROM pragma_table_info('tickets')")?
        .query_map([], |r| r.get::<_, String>(0))?
        .map(|c| c.map(|c| format!("\"{}\"", c.replace('"', "\"\""))))
        .collect::<Result<_, _>>()?;
    let list = columns.join(", ");
    // Legacy rename: do not re-parse (and so fail on) views or triggers elsewhere that name
    // `tickets` while it is briefly absent.
    tx.pragma_update(None, "legacy_alter_table", "ON")?;
    tx.execute_batch(&rebuilt)?;
    tx.execute_batch(&format!(
        "INSERT INTO tickets_rebuilt (call_uid, {list}) SELECT call_id, {list} FROM tickets;
         DROP TABLE tickets;
         ALTER TABLE tickets_rebuilt RENAME TO tickets;"
    ))?;
    tx.pragma_update(None, "legacy_alter_table", "OFF")?;
    for sql in extras {
        tx.execute_batch(&sql)?;
    }
    // `tickets show` and operators still look tickets up by the SIP Call-ID; the duplicate
    // look-up finds a caller's earlier tickets by index; retention marks what it deleted.
    tx.execute_batch(
        "CREATE INDEX tickets_call_id ON tickets(call_id);
         CREATE INDEX tickets_caller_started ON tickets(caller, started_at_ms);
         ALTER TABLE tickets ADD COLUMN purged_at_ms INTEGER;",
    )?;
    let broken: Option<String> = tx
        .query_row("SELECT \"table\" FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(table) = broken {
        return Err(TicketError::Config(format!(
            "ticket store: call_uid migration left dangling references in {table}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use rusqlite::params;

    /// A store written before call_uid (only the first step applied) with one ticket, one
    /// attempt and an index another branch might have added.
    fn old_store(path: &Path) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "CREATE INDEX tickets_caller ON tickets(caller);
             INSERT INTO tickets (id, call_id, created_at_ms, started_at_ms, caller, norm_text,
                 category_id, urgent, document, state, attempts, next_attempt_at_ms, updated_at_ms)
             VALUES ('t1', 'shared@host', 1, 1, '138', '', 'other', 0, '{}', 'dead', 1, 1, 1);
             INSERT INTO attempts VALUES ('t1', 1, 1, 'dead', 400, 'HTTP 400');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }

    #[test]
    fn an_old_store_keeps_its_tickets_and_attempts_and_drops_call_id_uniqueness() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite");
        old_store(&path);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap() as usize, MIGRATIONS.len());
        let r = s.get("t1").unwrap();
        assert_eq!(
            (r.call_uid.as_str(), r.call_id.as_str()),
            ("shared@host", "shared@host")
        );
        assert_eq!(r.state, DeliveryState::Dead);
        assert_eq!(
            s.attempts("t1").unwrap().len(),
            1,
            "attempts survive the rebuild"
        );
        let conn = s.lock();
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tickets'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for want in [
            "tickets_started",
            "tickets_due",
            "tickets_caller",
            "tickets_call_id",
        ] {
            assert!(indexes.iter().any(|i| i == want), "{want} in {indexes:?}");
        }
        // A second dialog with the same Call-ID is a second row; the same call_uid is not.
        let insert = |id: &str, uid: &str| {
            conn.execute(
                "INSERT INTO tickets (id, call_uid, call_id, created_at_ms, started_at_ms, caller,
                     norm_text, category_id, urgent, document, state, attempts,
                     next_attempt_at_ms, updated_at_ms)
                 VALUES (?1, ?2, 'shared@host', 2, 2, '138', '', 'other', 0, '{}', 'pending',
                     0, 2, 2)",
                params![id, uid],
            )
        };
        insert("t2", "uid-2").expect("same Call-ID, new call");
        assert!(insert("t3", "uid-2").is_err(), "call_uid stays unique");
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1, "foreign keys are back on after migrating");
    }
}
