//! What `hotline-gateway tickets list|show|retry|export` print. Each function opens the
//! database itself (WAL lets it run beside the daemon) and returns the text to print.

use chrono::{DateTime, Utc};
use std::fmt::Write;
use std::path::Path;

use super::store::{parse_doc, DeliveryState, Store, TicketRecord};
use super::TicketError;

fn fmt_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// Parses a `--state` argument (`pending`, `in_flight`/`in-flight`, `delivered`, `dead`).
pub fn parse_state(s: &str) -> Result<DeliveryState, TicketError> {
    DeliveryState::parse(s).ok_or_else(|| {
        TicketError::Config(format!(
            "unknown state {s:?} (pending, in_flight, delivered, dead)"
        ))
    })
}

/// A table of the newest `limit` tickets (optionally in one state), newest first,
/// followed by the count per state.
pub fn list(db: &Path, state: Option<DeliveryState>, limit: usize) -> Result<String, TicketError> {
    let store = Store::open(db)?;
    let rows = store.list(state, limit)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<36}  {:<19}  {:<10}  {:<20}  {:<3}  {:<9}  {:>3}  LAST",
        "TICKET", "CREATED (UTC)", "STATE", "CATEGORY", "URG", "CALLER", "TRY"
    );
    for r in &rows {
        let last = match (r.last_status, &r.last_error) {
            (Some(s), _) if r.state == DeliveryState::Delivered => format!("HTTP {s}"),
            (_, Some(e)) => e.chars().take(60).collect(),
            (Some(s), None) => format!("HTTP {s}"),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<36}  {:<19}  {:<10}  {:<20}  {:<3}  {:<9}  {:>3}  {}",
            r.ticket_id,
            fmt_ms(r.created_at_ms),
            r.state.as_str(),
            r.category_id,
            if r.urgent { "!" } else { "" },
            r.caller,
            r.attempts,
            last
        );
    }
    let counts = store.counts()?;
    let summary: Vec<String> = counts
        .iter()
        .map(|(s, n)| format!("{}={n}", s.as_str()))
        .collect();
    let _ = writeln!(out, "{} shown; {}", rows.len(), summary.join(" "));
    Ok(out)
}

/// Pretty JSON: `{"ticket": <document>, "delivery": {...}, "attempts": [...]}`.
/// `id` may be a unique prefix (8+ characters).
pub fn show(db: &Path, id: &str) -> Result<String, TicketError> {
    let store = Store::open(db)?;
    let rec = store.get(id)?;
    let attempts = store.attempts(&rec.ticket_id)?;
    let ticket = parse_doc(&rec.ticket_id, &rec.document)?;
    let v = serde_json::json!({
        "ticket": ticket,
        "delivery": delivery_json(&rec),
        "attempts": attempts,
    });
    serde_json::to_string_pretty(&v).map_err(|e| TicketError::Encode(e.to_string()))
}

fn delivery_json(r: &TicketRecord) -> serde_json::Value {
    let opt_time = |ms: Option<i64>| ms.map(fmt_ms);
    serde_json::json!({
        "state": r.state,
        "attempts": r.attempts,
        "next_attempt_at": fmt_ms(r.next_attempt_at_ms),
        "last_status": r.last_status,
        "last_error": r.last_error,
        "last_body": r.last_body,
        "delivered_at": opt_time(r.delivered_at_ms),
        "outbox_written_at": opt_time(r.outbox_written_at_ms),
    })
}

/// Queues a dead (or waiting) ticket for immediate delivery; the running daemon picks it up
/// within `intake.idle_poll_ms`. Delivered tickets are left alone.
pub fn retry(db: &Path, id: &str) -> Result<String, TicketError> {
    let store = Store::open(db)?;
    let rec = store.get(id)?;
    let before = store.requeue(&rec.ticket_id, Utc::now().timestamp_millis())?;
    Ok(match before {
        DeliveryState::Dead | DeliveryState::Pending => format!(
            "ticket {} queued for delivery (was {})",
            rec.ticket_id,
            before.as_str()
        ),
        DeliveryState::InFlight => {
            format!(
                "ticket {} is being delivered right now; nothing to do",
                rec.ticket_id
            )
        }
        DeliveryState::Delivered => format!(
            "ticket {} was already delivered; not sent again",
            rec.ticket_id
        ),
    })
}

/// JSON Lines: one `hotline.ticket/v1` document per line, oldest first (optionally one state).
pub fn export(db: &Path, state: Option<DeliveryState>) -> Result<String, TicketError> {
    let store = Store::open(db)?;
    let mut rows = store.list(state, usize::MAX >> 1)?;
    rows.reverse();
    let mut out = String::new();
    for r in rows {
        // Re-encode through the typed document so a hand-edited row cannot leak out unchecked.
        let t = parse_doc(&r.ticket_id, &r.document)?;
        out.push_str(&serde_json::to_string(&t).map_err(|e| TicketError::Encode(e.to_string()))?);
        out.push('\n');
    }
    Ok(out)
}
