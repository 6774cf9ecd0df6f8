//! Read queries of the operator desk: the filtered, searchable queue and the supervisor's
//! figures. Separate from [`super::store`] (the write path of the call pipeline) so that
//! the desk's SQL can grow without touching delivery.
//!
//! Search: the transcript index `ticket_fts` uses FTS5's trigram tokenizer, which matches
//! any substring of three or more characters, which suits Chinese, where words are not
//! separated by spaces. A trigram index cannot answer a one- or two-character query (暖气,
//! 路灯), so those terms fall back to `instr()` over the transcript: a scan, but a scan of
//! one column of one table, which is fast at a hotline's volumes.

use rusqlite::types::Value;
use rusqlite::{params_from_iter, OptionalExtension};

use super::store::{record_from_row, DeliveryState, Store, TicketRecord, RECORD_COLUMNS};
use super::TicketError;

/// The category, department and channel in force: the operator's correction when there is one.
const EFFECTIVE_CATEGORY: &str = "COALESCE(json_extract(document, '$.classification.operator_override.category_id'), category_id)";
const EFFECTIVE_DEPARTMENT: &str = "COALESCE(json_extract(document, '$.classification.operator_override.department'), json_extract(document, '$.classification.department'))";
/// The latest progress; a ticket without any is `accepted`.
const PROGRESS: &str = "COALESCE((SELECT p.state FROM ticket_progress p WHERE p.ticket_id = tickets.id ORDER BY p.seq DESC LIMIT 1), 'accepted')";

/// What the queue shows; every field narrows, `None` does not.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct TicketFilter {
    /// `accepted`, `in_progress` or `resolved`.
    pub progress: Option<String>,
    /// Delivery state: `pending`, `in_flight`, `delivered`, `dead`.
    pub state: Option<String>,
    pub category: Option<String>,
    pub department: Option<String>,
    pub urgent: Option<bool>,
    pub needs_review: Option<bool>,
    pub channel: Option<String>,
    /// Calls started on or after this day (`YYYY-MM-DD`, UTC).
    pub from: Option<String>,
    /// Calls started on or before this day (`YYYY-MM-DD`, UTC).
    pub to: Option<String>,
    /// Words that must all occur in the transcript.
    pub q: Option<String>,
    /// 1-based.
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// One page of the queue.
#[derive(Clone, Debug)]
pub struct TicketPage {
    pub rows: Vec<QueueRow>,
    pub total: u64,
    pub page: u32,
    pub per_page: u32,
}

/// A queue row: the stored record and its current progress.
#[derive(Clone, Debug)]
pub struct QueueRow {
    pub record: TicketRecord,
    pub progress: String,
}

/// What the supervisor's charts need of one ticket.
#[derive(Clone, Debug)]
pub struct DayFact {
    pub started_at_ms: i64,
    /// The category in force (an operator's correction wins).
    pub category_id: String,
    pub urgent: bool,
    /// Why the transcript is empty, when it is.
    pub empty_reason: Option<String>,
}

pub(crate) fn day_ms(day: &str, end: bool) -> Result<i64, TicketError> {
    let d = chrono::NaiveDate::parse_from_str(day.trim(), "%Y-%m-%d")
        .map_err(|_| TicketError::Config(format!("date `{day}` is not YYYY-MM-DD")))?;
    let t = if end {
        d.and_hms_milli_opt(23, 59, 59, 999)
    } else {
        d.and_hms_opt(0, 0, 0)
    };
    Ok(t.map(|t| t.and_utc().timestamp_millis()).unwrap_or(0))
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// An FTS5 phrase for `term`: quoted, inner quotes doubled, so no query syntax gets through.
fn fts_phrase(term: &str) -> String {
    format!("\"{}\"", term.replace('"', "\"\""))
}

impl TicketFilter {
    /// The WHERE clause and its parameters.
    fn to_sql(&self) -> Result<(String, Vec<Value>), TicketError> {
        let mut clauses: Vec<String> = vec!["1 = 1".into()];
        let mut params: Vec<Value> = Vec::new();
        let mut push = |clause: String, v: Value| {
            params.push(v);
            clauses.push(clause.replace('?', &format!("?{}", params.len())));
        };
        if let Some(p) = non_empty(&self.progress) {
            push(format!("{PROGRESS} = ?"), Value::Text(p.into()));
        }
        if let Some(s) = non_empty(&self.state) {
            let s = DeliveryState::parse(s)
                .ok_or_else(|| TicketError::Config(format!("unknown delivery state `{s}`")))?;
            push("state = ?".into(), Value::Text(s.as_str().into()));
        }
        if let Some(c) = non_empty(&self.category) {
            push(format!("{EFFECTIVE_CATEGORY} = ?"), Value::Text(c.into()));
        }
        if let Some(d) = non_empty(&self.department) {
            push(format!("{EFFECTIVE_DEPARTMENT} = ?"), Value::Text(d.into()));
        }
        if let Some(u) = self.urgent {
            push("urgent = ?".into(), Value::Integer(i64::from(u)));
        }
        if let Some(r) = self.needs_review {
            push(
                "COALESCE(json_extract(document, '$.classification.needs_review'), 0) = ?".into(),
                Value::Integer(i64::from(r)),
            );
        }
        if let Some(c) = non_empty(&self.channel) {
            push(
                "json_extract(document, '$.call.channel') = ?".into(),
                Value::Text(c.into()),
            );
        }
        if let Some(f) = non_empty(&self.from) {
            push(
                "started_at_ms >= ?".into(),
                Value::Integer(day_ms(f, false)?),
            );
        }
        if let Some(t) = non_empty(&self.to) {
            push(
                "started_at_ms <= ?".into(),
                Value::Integer(day_ms(t, true)?),
            );
        }
        if let Some(q) = non_empty(&self.q) {
            for term in q.split_whitespace().take(8) {
                if term.chars().count() >= 3 {
                    push(
                        "id IN (SELECT ticket_id FROM ticket_fts WHERE ticket_fts MATCH ?)".into(),
                        Value::Text(fts_phrase(term)),
                    );
                } else {
                    push(
                        "instr(COALESCE(json_extract(document, '$.transcript.text'), ''), ?) > 0"
                            .into(),
                        Value::Text(term.into()),
                    );
                }
            }
        }
        Ok((clauses.join(" AND "), params))
    }
}

impl Store {
    /// One page of tickets matching `f`, newest first.
    pub fn query(&self, f: &TicketFilter) -> Result<TicketPage, TicketError> {
        let (clause, mut params) = f.to_sql()?;
        let per_page = f.per_page.unwrap_or(50).clamp(1, 500);
        let page = f.page.unwrap_or(1).max(1);
        let conn = self.lock();
        let total: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM tickets WHERE {clause}"),
            params_from_iter(params.iter()),
            |r| r.get(0),
        )?;
        let n = params.len();
        params.push(Value::Integer(i64::from(per_page)));
        params.push(Value::Integer(i64::from(page - 1) * i64::from(per_page)));
        let sql = format!(
            "SELECT {RECORD_COLUMNS}, {PROGRESS} FROM tickets WHERE {clause}
             ORDER BY created_at_ms DESC, id DESC LIMIT ?{} OFFSET ?{}",
            n + 1,
            n + 2
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(params.iter()), |r| {
            Ok(QueueRow {
                record: record_from_row(r)?,
                progress: r.get(RECORD_COLUMNS.split(',').count())?,
            })
        })?;
        Ok(TicketPage {
            rows: rows.collect::<Result<_, _>>()?,
            total: u64::try_from(total).unwrap_or(0),
            page,
            per_page,
        })
    }

    /// A ticket by its reference number (all digits) or by id / id prefix.
    pub fn find(&self, id_or_reference: &str) -> Result<TicketRecord, TicketError> {
        let key = id_or_reference.trim();
        if !key.is_empty() && key.chars().all(|c| c.is_ascii_digit()) {
            let found = {
                let conn = self.lock();
                let sql = format!(
                    "SELECT {RECORD_COLUMNS} FROM tickets
                     WHERE json_extract(document, '$.reference') = ?1 LIMIT 1"
                );
                conn.query_row(&sql, [key], record_from_row).optional()?
            };
            if let Some(r) = found {
                return Ok(r);
            }
        }
        self.get(key)
    }

    /// Tickets whose call started in `[from_ms, to_ms)`, for the supervisor's charts.
    pub fn day_facts(&self, from_ms: i64, to_ms: i64) -> Result<Vec<DayFact>, TicketError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT started_at_ms, {EFFECTIVE_CATEGORY}, urgent,
                    json_extract(document, '$.transcript.empty_reason')
             FROM tickets WHERE started_at_ms >= ?1 AND started_at_ms < ?2"
        ))?;
        let rows = stmt.query_map([from_ms, to_ms], |r| {
            Ok(DayFact {
                started_at_ms: r.get(0)?,
                category_id: r.get(1)?,
                urgent: r.get(2)?,
                empty_reason: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// New tickets since `after_rowid` as `(rowid, id)`, oldest first: the desk's event feed
    /// polls this, so it learns of tickets committed by any process sharing the database.
    pub fn committed_since(&self, after_rowid: i64) -> Result<Vec<(i64, String)>, TicketError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT rowid, id FROM tickets WHERE rowid > ?1 ORDER BY rowid LIMIT 100",
        )?;
        let rows = stmt.query_map([after_rowid], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The highest rowid now (where the event feed starts).
    pub fn last_rowid(&self) -> Result<i64, TicketError> {
        Ok(self
            .lock()
            .query_row("SELECT COALESCE(MAX(rowid), 0) FROM tickets", [], |r| {
                r.get(0)
            })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_are_phrases_and_short_terms_use_instr() {
        let f = TicketFilter {
            q: Some("暖气 没有热水 a\"b".into()),
            ..Default::default()
        };
        let (sql, params) = f.to_sql().unwrap();
        assert!(sql.contains("instr("), "{sql}");
        assert!(sql.contains("MATCH ?2"), "{sql}");
        assert_eq!(params[1], Value::Text("\"没有热水\"".into()));
        assert_eq!(
            params[2],
            Value::Text("\"a\"\"b\"".into()),
            "3 chars: FTS, quoted"
        );
    }
}
