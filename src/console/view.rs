//! Shaping a stored ticket for whoever asks: numbers masked for operators, the recording's
//! URL filled in, times in the server's local time, the category in force.

use chrono::{DateTime, Local, TimeZone};
use serde_json::Value;
use std::collections::HashMap;

use super::auth::Principal;
use crate::config::ConsoleConfig;
use crate::logmask::mask_number;
use crate::ticket::query::TicketFilter;

/// The caller's number as `who` may see it.
pub fn caller_for(who: &Principal, number: &str) -> String {
    if who.sees_whole_numbers() {
        number.to_owned()
    } else {
        mask_number(number)
    }
}

/// The document as `who` may see it: the caller masked for operators, and `recording.url`
/// pointing at the desk's recording endpoint when `[console] public_url` is set.
pub fn document_for(who: &Principal, doc: &mut Value, console: &ConsoleConfig) {
    if let Some(c) = doc.pointer_mut("/call/caller") {
        if let Some(n) = c.as_str() {
            *c = Value::String(caller_for(who, n));
        }
    }
    let id = doc["ticket_id"].as_str().unwrap_or_default().to_owned();
    if let Some(rec) = doc.get_mut("recording").and_then(Value::as_object_mut) {
        rec.insert(
            "url".into(),
            console
                .recording_url(&id)
                .map(Value::String)
                .unwrap_or(Value::Null),
        );
    }
}

pub fn str_at<'a>(doc: &'a Value, pointer: &str) -> &'a str {
    doc.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `(category_id, department)` in force: the operator's correction, else the classifier's.
pub fn effective_class(doc: &Value) -> (String, String) {
    let o = doc.pointer("/classification/operator_override");
    let pick = |key: &str| {
        o.and_then(|o| o.get(key))
            .and_then(Value::as_str)
            .unwrap_or_else(|| str_at(doc, &format!("/classification/{key}")))
            .to_owned()
    };
    (pick("category_id"), pick("department"))
}

/// `YYYY-MM-DD HH:MM:SS` in the server's local time.
pub fn local_ms(ms: i64) -> String {
    Local
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// An RFC 3339 time of the document, in local time.
pub fn local_rfc3339(s: &str) -> String {
    DateTime::parse_from_rfc3339(s)
        .map(|t| local_ms(t.timestamp_millis()))
        .unwrap_or_else(|_| s.to_owned())
}

/// `m:ss.s` of a position in the recording.
pub fn clock(ms: u64) -> String {
    format!("{}:{:04.1}", ms / 60_000, (ms % 60_000) as f64 / 1000.0)
}

/// The queue filter from query parameters as an HTML form sends them (empty = any).
pub fn filter_from_query(q: &HashMap<String, String>) -> TicketFilter {
    let s = |k: &str| {
        q.get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let b = |k: &str| {
        s(k).and_then(|v| match v.as_str() {
            "1" | "true" | "yes" => Some(true),
            "0" | "false" | "no" => Some(false),
            _ => None,
        })
    };
    TicketFilter {
        progress: s("progress"),
        state: s("state"),
        category: s("category"),
        department: s("department"),
        urgent: b("urgent"),
        needs_review: b("needs_review"),
        channel: s("channel"),
        from: s("from"),
        to: s("to"),
        q: s("q"),
        page: s("page").and_then(|v| v.parse().ok()),
        per_page: s("per_page").and_then(|v| v.parse().ok()),
    }
}
