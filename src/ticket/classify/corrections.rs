//! Learning from operators: an operator's correction of a ticket's category is kept in the
//! ticket store as a labelled request (the ticket's transcript with the right category),
//! so that every gateway sharing the store learns it. [`fold`] retrains a table with them;
//! the daemon does it at start-up and on every reload, `classify retrain` on demand.

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::params;

use super::Rules;
use crate::ticket::store::{parse_doc, Store};
use crate::ticket::TicketError;

/// One stored correction.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Correction {
    pub ticket_id: String,
    /// The category the operator chose.
    pub category_id: String,
    /// The ticket's transcript when it was corrected.
    pub text: String,
    /// Who corrected it (desk user).
    pub by: String,
    pub at: DateTime<Utc>,
}

impl Store {
    /// Records that `by` set the category of ticket `ticket_id` to `category_id` at `at`.
    /// The desk calls this when an operator overrides a category (validate the id against
    /// the table first: the store does not know the table). The ticket's transcript is
    /// stored with it; a ticket without text is recorded too but teaches nothing.
    pub fn record_correction(
        &self,
        ticket_id: &str,
        category_id: &str,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<Correction, TicketError> {
        let record = self.get(ticket_id)?;
        // Stored to the millisecond; answer what a later read gives back.
        let at = Utc
            .timestamp_millis_opt(at.timestamp_millis())
            .single()
            .unwrap_or(at);
        let text = parse_doc(&record.ticket_id, &record.document)?
            .transcript
            .text;
        self.lock().execute(
            "INSERT INTO classification_corrections
                 (ticket_id, category_id, text, corrected_by, corrected_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                record.ticket_id,
                category_id,
                text,
                by,
                at.timestamp_millis()
            ],
        )?;
        Ok(Correction {
            ticket_id: record.ticket_id,
            category_id: category_id.to_owned(),
            text,
            by: by.to_owned(),
            at,
        })
    }

    /// The latest correction of every corrected ticket, oldest first (an operator who
    /// corrects a correction replaces it).
    pub fn corrections(&self) -> Result<Vec<Correction>, TicketError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT ticket_id, category_id, text, corrected_by, corrected_at_ms
               FROM classification_corrections
              WHERE id IN (SELECT MAX(id) FROM classification_corrections GROUP BY ticket_id)
              ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            let at_ms: i64 = r.get(4)?;
            Ok(Correction {
                ticket_id: r.get(0)?,
                category_id: r.get(1)?,
                text: r.get(2)?,
                by: r.get(3)?,
                at: Utc.timestamp_millis_opt(at_ms).single().unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// `rules` retrained with `corrections` (unchanged when there are none).
pub fn fold(rules: Rules, corrections: &[Correction]) -> Rules {
    if corrections.is_empty() {
        return rules;
    }
    let (rules, skipped) = rules.with_corrections(corrections);
    tracing::info!(
        corrections = corrections.len() - skipped,
        skipped,
        "classifier retrained with operators' corrections"
    );
    rules
}
