//! Reference numbers: what a caller writes down and quotes when calling back.
//!
//! 12 digits: `YYMMDD` + the instance number (`[tickets] instance_number`, 2 digits) + the
//! day's sequence (4 digits from 0001; past 9999 it simply grows to 5 digits). The instance
//! number makes references of a fleet unique without the gateways talking to each other; the
//! sequence is counted per (day, instance) in the ticket store and committed (WAL,
//! `synchronous=FULL`) before the number is returned, so a number once spoken to a caller is
//! never handed out again, even across a crash. Digits only, so a caller can key it on the
//! phone pad; the date first, so it is read back in two groups (YYMMDD, then the rest).

use chrono::{Datelike, NaiveDate};
use rusqlite::TransactionBehavior;

use super::store::Store;
use super::TicketError;

/// Digits of the shortest reference (a 4-digit sequence).
pub const MIN_LEN: usize = 12;

/// The reference for sequence `seq` (from 1) of `day` on instance `instance` (0–99).
pub fn format(day: NaiveDate, instance: u8, seq: u64) -> String {
    format!(
        "{:02}{:02}{:02}{:02}{:04}",
        day.year().rem_euclid(100),
        day.month(),
        day.day(),
        instance % 100,
        seq
    )
}

/// Whether `s` has the shape of a reference (digits only, at least 12): what `tickets show`
/// and the API try as a reference before reading it as an id prefix.
pub fn is_reference(s: &str) -> bool {
    s.len() >= MIN_LEN && s.bytes().all(|b| b.is_ascii_digit())
}

impl Store {
    /// Allocates the next reference of `day` (the caller's calendar day, in the hotline's
    /// time zone) for this instance, durably: the counter is committed before it returns.
    /// Several processes on one database (or several tasks) never get the same number.
    pub fn allocate_reference(&self, day: NaiveDate, instance: u8) -> Result<String, TicketError> {
        if instance > 99 {
            return Err(TicketError::Config(format!(
                "instance_number {instance} is not 0-99"
            )));
        }
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let seq: i64 = tx.query_row(
            "INSERT INTO reference_days (day, instance, last) VALUES (?1, ?2, 1)
             ON CONFLICT (day, instance) DO UPDATE SET last = last + 1
             RETURNING last",
            rusqlite::params![day.format("%Y-%m-%d").to_string(), instance],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(format(day, instance, seq.max(1) as u64))
    }

    /// Records `reference` on the committed ticket `ticket_id`, so that `get` finds the ticket
    /// by it. A reference belongs to one ticket: giving it to a second one is an error.
    pub fn set_reference(&self, ticket_id: &str, reference: &str) -> Result<(), TicketError> {
        let n = self.lock().execute(
            "UPDATE tickets SET reference = ?2 WHERE id = ?1",
            [ticket_id, reference],
        )?;
        if n == 0 {
            return Err(TicketError::NotFound(ticket_id.to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn store(dir: &tempfile::TempDir) -> Store {
        Store::open(&dir.path().join("t.sqlite")).unwrap()
    }

    #[test]
    fn the_layout_is_date_instance_sequence() {
        assert_eq!(format(day(2026, 12, 2), 0, 1), "261202000001");
        assert_eq!(format(day(2026, 1, 9), 7, 42), "260109070042");
        assert_eq!(format(day(2026, 1, 9), 99, 9999), "260109999999");
        // Past 9999 the sequence grows instead of wrapping onto a number already given out.
        assert_eq!(format(day(2026, 1, 9), 3, 10000), "2601090310000");
        assert!(is_reference("261202000001") && is_reference("2612020010000"));
        assert!(!is_reference("26120200001") && !is_reference("26120200000a"));
    }

    #[test]
    fn each_day_and_instance_counts_from_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let d1 = day(2026, 12, 2);
        assert_eq!(s.allocate_reference(d1, 0).unwrap(), "261202000001");
        assert_eq!(s.allocate_reference(d1, 0).unwrap(), "261202000002");
        assert_eq!(s.allocate_reference(d1, 5).unwrap(), "261202050001");
        assert_eq!(
            s.allocate_reference(day(2026, 12, 3), 0).unwrap(),
            "261203000001"
        );
        assert_eq!(s.allocate_reference(d1, 0).unwrap(), "261202000003");
        assert!(s.allocate_reference(d1, 100).is_err());
    }

    #[test]
    fn a_reference_survives_a_restart_and_is_never_given_twice() {
        let dir = tempfile::tempdir().unwrap();
        let d = day(2026, 12, 2);
        let first = store(&dir).allocate_reference(d, 1).unwrap();
        // A new process on the same file (the daemon restarted) continues the day's count.
        let again = store(&dir).allocate_reference(d, 1).unwrap();
        assert_eq!(
            (first.as_str(), again.as_str()),
            ("261202010001", "261202010002")
        );
    }

    #[test]
    fn concurrent_allocators_on_one_file_get_distinct_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let d = day(2026, 12, 2);
        store(&dir); // migrations applied once before the race
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = store(&dir);
                std::thread::spawn(move || {
                    (0..25)
                        .map(|_| s.allocate_reference(d, 0).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<String> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 100);
        assert_eq!(all.last().unwrap(), "261202000100");
    }

    #[test]
    fn the_sequence_grows_past_9999() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        s.lock()
            .execute(
                "INSERT INTO reference_days (day, instance, last) VALUES ('2026-12-02', 0, 9999)",
                [],
            )
            .unwrap();
        assert_eq!(
            s.allocate_reference(day(2026, 12, 2), 0).unwrap(),
            "2612020010000"
        );
    }

    fn insert_ticket(s: &Store, id: &str) {
        s.lock()
            .execute(
                "INSERT INTO tickets (id, call_uid, call_id, created_at_ms, started_at_ms, caller, norm_text,
                 category_id, urgent, document, state, next_attempt_at_ms, updated_at_ms)
                 VALUES (?1, ?1, ?1, 0, 0, '', '', 'other', 0, '{}', 'pending', 0, 0)",
                [id],
            )
            .unwrap();
    }

    #[test]
    fn tickets_show_finds_the_exact_reference_before_an_id_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let reference = s.allocate_reference(day(2026, 12, 2), 0).unwrap();
        insert_ticket(&s, "0b9c4c3e-6f1d-4d4e-9a55-1f0e2d3c4b5a");
        s.set_reference("0b9c4c3e-6f1d-4d4e-9a55-1f0e2d3c4b5a", &reference)
            .unwrap();
        // Another ticket whose id happens to start with the same digits.
        insert_ticket(&s, "261202000001aaaa");
        let found = s.get(&reference).unwrap();
        assert_eq!(found.ticket_id, "0b9c4c3e-6f1d-4d4e-9a55-1f0e2d3c4b5a");
        // Ids and prefixes still work; an unknown reference is not found.
        assert_eq!(
            s.get("261202000001aa").unwrap().ticket_id,
            "261202000001aaaa"
        );
        assert!(matches!(
            s.get("261202000002"),
            Err(TicketError::NotFound(_))
        ));
        // One reference, one ticket.
        insert_ticket(&s, "other");
        assert!(s.set_reference("other", &reference).is_err());
        assert!(matches!(
            s.set_reference("missing", "261202000003"),
            Err(TicketError::NotFound(_))
        ));
    }
}
