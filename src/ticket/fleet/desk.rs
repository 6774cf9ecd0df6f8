//! The desk's read queries on the shared store, so the desk of any instance shows the whole
//! fleet's tickets: the filtered, searchable queue, one ticket, its delivery attempts; and
//! the feed of tickets moved in by any instance (`LISTEN hotline_tickets`).
//!
//! Search: a term of three or more characters is an `ILIKE` substring match, which the
//! `pg_trgm` GIN index answers; a trigram index cannot answer a 1–2 character term (暖气,
//! 路灯), so those use `strpos`, a scan of one column.

use futures_util::StreamExt;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Row};

use super::{pg_err, PgConn};
use crate::ticket::query::{day_ms, QueueRow, TicketFilter, TicketPage};
use crate::ticket::store::{AttemptRecord, DeliveryState, TicketRecord};
use crate::ticket::TicketError;

/// The channel every move notifies with the ticket id.
pub const CHANNEL: &str = "hotline_tickets";

const COLUMNS: &str = "id, call_uid, call_id, created_at_ms, caller, category_id, urgent, state,
     attempts, next_attempt_at_ms, last_error, last_status, last_body, delivered_at_ms, document,
     COALESCE(document::jsonb #>> '{progress,state}', 'accepted'), lease_owner";

const EFFECTIVE_CATEGORY: &str =
    "COALESCE(document::jsonb #>> '{classification,operator_override,category_id}', category_id)";
const EFFECTIVE_DEPARTMENT: &str = "COALESCE(document::jsonb #>> '{classification,operator_override,department}', document::jsonb #>> '{classification,department}')";

fn record(r: &Row) -> QueueRow {
    let state: String = r.get(7);
    let leased = r.get::<_, Option<String>>(16).is_some();
    let state = match DeliveryState::parse(&state).unwrap_or(DeliveryState::Pending) {
        DeliveryState::Pending if leased => DeliveryState::InFlight,
        s => s,
    };
    QueueRow {
        record: TicketRecord {
            ticket_id: r.get(0),
            call_uid: r.get(1),
            call_id: r.get(2),
            created_at_ms: r.get(3),
            caller: r.get(4),
            category_id: r.get(5),
            urgent: r.get(6),
            state,
            attempts: u32::try_from(r.get::<_, i32>(8)).unwrap_or(0),
            next_attempt_at_ms: r.get(9),
            last_error: r.get(10),
            last_status: r
                .get::<_, Option<i32>>(11)
                .and_then(|s| u16::try_from(s).ok()),
            last_body: r.get(12),
            delivered_at_ms: r.get(13),
            outbox_written_at_ms: None,
            document: r.get(14),
        },
        progress: r.get(15),
    }
}

/// `%`, `_` and `\` of a search term taken literally in `ILIKE`.
fn like_literal(term: &str) -> String {
    let mut out = String::with_capacity(term.len() + 2);
    out.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// The WHERE clause and its parameters (`$1`…).
pub fn filter_sql(f: &TicketFilter) -> Result<(String, Params), TicketError> {
    let mut clauses: Vec<String> = vec!["TRUE".into()];
    let mut params: Params = Vec::new();
    let mut push = |clause: &str, v: Box<dyn ToSql + Sync + Send>| {
        params.push(v);
        clauses.push(clause.replace('?', &format!("${}", params.len())));
    };
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    if let Some(p) = text(&f.progress) {
        push(
            "COALESCE(document::jsonb #>> '{progress,state}', 'accepted') = ?",
            Box::new(p),
        );
    }
    if let Some(s) = text(&f.state) {
        let s = DeliveryState::parse(&s)
            .ok_or_else(|| TicketError::Config(format!("unknown delivery state `{s}`")))?;
        // In flight = pending under someone's lease.
        let (stored, leased) = match s {
            DeliveryState::InFlight => ("pending", "IS NOT NULL"),
            DeliveryState::Pending => ("pending", "IS NULL"),
            s => (s.as_str(), "IS NULL"),
        };
        push(
            &format!("state = ? AND lease_owner {leased}"),
            Box::new(stored.to_owned()),
        );
    }
    if let Some(c) = text(&f.category) {
        push(&format!("{EFFECTIVE_CATEGORY} = ?"), Box::new(c));
    }
    if let Some(d) = text(&f.department) {
        push(&format!("{EFFECTIVE_DEPARTMENT} = ?"), Box::new(d));
    }
    if let Some(u) = f.urgent {
        push("urgent = ?", Box::new(u));
    }
    if let Some(r) = f.needs_review {
        push(
            "COALESCE((document::jsonb #>> '{classification,needs_review}')::boolean, FALSE) = ?",
            Box::new(r),
        );
    }
    if let Some(c) = text(&f.channel) {
        push("document::jsonb #>> '{call,channel}' = ?", Box::new(c));
    }
    if let Some(d) = text(&f.from) {
        push("started_at_ms >= ?", Box::new(day_ms(&d, false)?));
    }
    if let Some(d) = text(&f.to) {
        push("started_at_ms <= ?", Box::new(day_ms(&d, true)?));
    }
    if let Some(q) = text(&f.q) {
        for term in q.split_whitespace().take(8) {
            if term.chars().count() >= 3 {
                push("transcript ILIKE ?", Box::new(like_literal(term)));
            } else {
                push("strpos(transcript, ?) > 0", Box::new(term.to_owned()));
            }
        }
    }
    Ok((clauses.join(" AND "), params))
}

/// One page of the fleet's tickets matching `f`, newest first.
pub async fn query(conn: &PgConn, f: &TicketFilter) -> Result<TicketPage, TicketError> {
    let (clause, mut params) = filter_sql(f)?;
    let per_page = f.per_page.unwrap_or(50).clamp(1, 500);
    let page = f.page.unwrap_or(1).max(1);
    let e = pg_err("the desk's queue");
    let client = conn.get().await?;
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p as _).collect();
    let total: i64 = client
        .query_one(
            &format!("SELECT COUNT(*) FROM hotline_tickets WHERE {clause}"),
            &refs,
        )
        .await
        .map_err(&e)?
        .get(0);
    let n = params.len();
    params.push(Box::new(i64::from(per_page)));
    params.push(Box::new(i64::from(page - 1) * i64::from(per_page)));
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p as _).collect();
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM hotline_tickets WHERE {clause}
                 ORDER BY created_at_ms DESC, id DESC LIMIT ${} OFFSET ${}",
                n + 1,
                n + 2
            ),
            &refs,
        )
        .await
        .map_err(&e)?;
    Ok(TicketPage {
        rows: rows.iter().map(record).collect(),
        total: u64::try_from(total).unwrap_or(0),
        page,
        per_page,
    })
}

/// A ticket by exact id, reference number, or unique id prefix of 8+ characters.
pub async fn find(conn: &PgConn, key: &str) -> Result<TicketRecord, TicketError> {
    let key = key.trim();
    let e = pg_err("the desk's ticket");
    let client = conn.get().await?;
    let by = |clause: &str| format!("SELECT {COLUMNS} FROM hotline_tickets WHERE {clause} LIMIT 2");
    let mut rows = client.query(&by("id = $1"), &[&key]).await.map_err(&e)?;
    if rows.is_empty() && !key.is_empty() && key.chars().all(|c| c.is_ascii_digit()) {
        rows = client
            .query(&by("reference = $1"), &[&key])
            .await
            .map_err(&e)?;
    }
    if rows.is_empty() && key.len() >= 8 && key.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        let prefix = format!("{key}%");
        rows = client
            .query(&by("id LIKE $1"), &[&prefix])
            .await
            .map_err(&e)?;
        if rows.len() > 1 {
            return Err(TicketError::Ambiguous(key.to_owned()));
        }
    }
    rows.first()
        .map(|r| record(r).record)
        .ok_or_else(|| TicketError::NotFound(key.to_owned()))
}

/// A ticket's delivery attempts, by whichever instance made them.
pub async fn attempts(conn: &PgConn, ticket_id: &str) -> Result<Vec<AttemptRecord>, TicketError> {
    let client = conn.get().await?;
    let rows = client
        .query(
            "SELECT attempt, at_ms, outcome, status, error FROM hotline_ticket_attempts
             WHERE ticket_id = $1 ORDER BY attempt",
            &[&ticket_id],
        )
        .await
        .map_err(pg_err("the desk's attempts"))?;
    Ok(rows
        .iter()
        .map(|r| AttemptRecord {
            attempt: u32::try_from(r.get::<_, i32>(0)).unwrap_or(0),
            at_ms: r.get(1),
            outcome: r.get(2),
            status: r
                .get::<_, Option<i32>>(3)
                .and_then(|s| u16::try_from(s).ok()),
            error: r.get(4),
        })
        .collect())
}

/// Calls `on_ticket` with the id of every ticket any instance moves into the shared store,
/// until the connection breaks (then returns; the caller listens again).
pub async fn listen(pg: &PgConn, on_ticket: impl FnMut(String) + Send) -> Result<(), TicketError> {
    let e = pg_err("listening for tickets");
    let config = pg.config();
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(&e)?;
        pump(client, connection, on_ticket).await
    } else {
        let (client, connection) = config.connect(pg.tls()?).await.map_err(&e)?;
        pump(client, connection, on_ticket).await
    }
}

async fn pump<S, T>(
    client: tokio_postgres::Client,
    mut connection: tokio_postgres::Connection<S, T>,
    mut on_ticket: impl FnMut(String) + Send,
) -> Result<(), TicketError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let e = pg_err("listening for tickets");
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    // The LISTEN is answered through the connection, so it is polled while waiting.
    let sql = format!("LISTEN {CHANNEL}");
    let listen = client.batch_execute(&sql);
    tokio::pin!(listen);
    loop {
        tokio::select! {
            r = &mut listen => { r.map_err(&e)?; break; }
            m = messages.next() => match m {
                Some(m) => { m.map_err(&e)?; }
                None => return Ok(()),
            },
        }
    }
    // `client` stays alive (borrowed by `listen`) for as long as the notifications come.
    while let Some(m) = messages.next().await {
        if let AsyncMessage::Notification(n) = m.map_err(&e)? {
            if n.channel() == CHANNEL {
                on_ticket(n.payload().to_owned());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_terms_use_strpos_and_longer_ones_a_literal_ilike() {
        let f = TicketFilter {
            q: Some("暖气 没有热水 50%_off".into()),
            state: Some("in_flight".into()),
            ..Default::default()
        };
        let (sql, params) = filter_sql(&f).unwrap();
        assert!(sql.contains("strpos(transcript, $2) > 0"), "{sql}");
        assert!(sql.contains("transcript ILIKE $3"), "{sql}");
        assert!(
            sql.contains("state = $1 AND lease_owner IS NOT NULL"),
            "{sql}"
        );
        assert_eq!(params.len(), 4);
        assert_eq!(like_literal("50%_off"), "%50\\%\\_off%");
    }
}
