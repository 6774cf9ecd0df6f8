//! `hotline.ticket/v1` beside v2: reading documents stored by an older build, and sending v1
//! to an intake that has not moved on (`[intake] schema = "v1"`).
//!
//! The store always holds what the build wrote; this module is the one place that knows both
//! shapes, so the rest of the ticket layer only ever sees [`Ticket`] (v2).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::model::{Ticket, SCHEMA_ID};
use super::record::GATEWAY_ACTOR;

/// `schema` of a v1 document.
pub const SCHEMA_ID_V1: &str = "hotline.ticket/v1";

/// Which document version the intake is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireSchema {
    #[default]
    V2,
    /// The new fields are dropped; a menu choice without digits becomes `menu: null`.
    V1,
}

impl WireSchema {
    pub fn as_str(self) -> &'static str {
        match self {
            WireSchema::V2 => "v2",
            WireSchema::V1 => "v1",
        }
    }
}

/// A stored document as a [`Ticket`], upgrading a v1 document first.
pub fn parse(doc: &str) -> Result<Ticket, serde_json::Error> {
    let mut v: Value = serde_json::from_str(doc)?;
    upgrade(&mut v);
    serde_json::from_value(v)
}

/// What one delivery attempt sends: the `Idempotency-Key` and the body.
///
/// The key is `<ticket_id>:<revision>`. A v1 intake keeps the plain `<ticket_id>` for
/// revision 1: that is the key it was sent before the upgrade, so a ticket left in flight
/// across the upgrade is still recognised as a repeat.
pub fn wire(ticket_id: &str, document: &str, schema: WireSchema) -> (String, String) {
    let Ok(mut v) = serde_json::from_str::<Value>(document) else {
        // Not ours to judge here: the intake answers 400 and the ticket is dead-lettered.
        return (format!("{ticket_id}:1"), document.to_owned());
    };
    upgrade(&mut v);
    let revision = v.get("revision").and_then(Value::as_u64).unwrap_or(1);
    let key = match schema {
        WireSchema::V1 if revision == 1 => ticket_id.to_owned(),
        _ => format!("{ticket_id}:{revision}"),
    };
    if schema == WireSchema::V1 {
        downgrade(&mut v);
    }
    (key, v.to_string())
}

/// v1 → v2 in place (no-op for anything that is not a v1 document): the new fields get the
/// values a v1 ticket implies.
pub fn upgrade(v: &mut Value) {
    if v.get("schema").and_then(Value::as_str) != Some(SCHEMA_ID_V1) {
        return;
    }
    let Some(o) = v.as_object_mut() else { return };
    o.insert("schema".into(), SCHEMA_ID.into());
    o.entry("reference").or_insert(Value::Null);
    o.entry("revision").or_insert(1.into());
    o.entry("transfer").or_insert(Value::Null);
    o.entry("urgent_trigger").or_insert(Value::Null);
    let created = o.get("created_at").cloned().unwrap_or(Value::Null);
    o.entry("progress").or_insert_with(
        || json!({"state": "accepted", "note": null, "at": created, "by": GATEWAY_ACTOR}),
    );
    if let Some(call) = o.get_mut("call").and_then(Value::as_object_mut) {
        let call_id = call.get("call_id").cloned().unwrap_or(Value::Null);
        call.entry("call_uid").or_insert(call_id);
    }
    if let Some(menu) = o.get_mut("menu").and_then(Value::as_object_mut) {
        menu.entry("source").or_insert("dtmf".into());
        menu.entry("utterance").or_insert(Value::Null);
    }
    if let Some(c) = o.get_mut("classification").and_then(Value::as_object_mut) {
        let source = c.get("source").and_then(Value::as_str).unwrap_or("default");
        let (confidence, review) = match source {
            "keywords" => (1.0, false),
            "menu" => (0.6, false),
            _ => (0.0, true),
        };
        c.entry("confidence").or_insert(confidence.into());
        c.entry("needs_review").or_insert(review.into());
        c.entry("operator_override").or_insert(Value::Null);
    }
    if let Some(r) = o.get_mut("recording").and_then(Value::as_object_mut) {
        r.entry("url").or_insert(Value::Null);
    }
}

/// v2 → v1 in place: drop what v1 forbids (`additionalProperties: false`).
fn downgrade(v: &mut Value) {
    let Some(o) = v.as_object_mut() else { return };
    o.insert("schema".into(), SCHEMA_ID_V1.into());
    for k in [
        "reference",
        "revision",
        "transfer",
        "progress",
        "urgent_trigger",
    ] {
        o.remove(k);
    }
    if let Some(call) = o.get_mut("call").and_then(Value::as_object_mut) {
        call.remove("call_uid");
    }
    let menu = o.get_mut("menu").and_then(Value::as_object_mut).map(|m| {
        m.remove("source");
        m.remove("utterance");
        m.get("digits").is_some_and(Value::is_string)
    });
    if menu == Some(false) {
        // v1 requires digits: a spoken or defaulted choice cannot be expressed.
        o.insert("menu".into(), Value::Null);
    }
    if let Some(c) = o.get_mut("classification").and_then(Value::as_object_mut) {
        for k in ["confidence", "needs_review", "operator_override"] {
            c.remove(k);
        }
        if c.get("source").and_then(Value::as_str) == Some("model") {
            c.insert("source".into(), "default".into());
        }
    }
    if let Some(r) = o.get_mut("recording").and_then(Value::as_object_mut) {
        r.remove("url");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1_doc() -> Value {
        json!({
            "schema": "hotline.ticket/v1",
            "ticket_id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "created_at": "2026-11-26T03:01:16.000Z",
            "gateway_instance": "gw-1",
            "call": {"call_id": "a@b", "trunk": null, "caller": "1", "called": "8890",
                "channel": "8890", "started_at": "2026-11-26T03:00:00Z",
                "answered_at": "2026-11-26T03:00:01Z", "ended_at": "2026-11-26T03:01:15Z",
                "duration_ms": 75000, "talk_ms": 74000,
                "hangup": {"by": "caller", "reason": "BYE"}},
            "menu": {"digits": "1", "id": "complaint", "label": "投诉"},
            "transcript": {"language": null, "text": "", "segments": [], "model": null,
                "empty_reason": "no_asr"},
            "classification": {"category_id": "other", "category": "其他", "department": "8890",
                "urgent": false, "response_deadline_hours": 120,
                "due_at": "2026-12-01T03:01:16Z", "matched_keywords": [], "urgent_keywords": [],
                "source": "default", "rules_version": "1"},
            "duplicate": null,
            "recording": null
        })
    }

    #[test]
    fn a_stored_v1_document_reads_as_v2_and_goes_back_to_the_same_v1() {
        let doc = v1_doc().to_string();
        let t = parse(&doc).expect("v1 upgrades");
        assert_eq!(t.schema, SCHEMA_ID);
        assert_eq!(t.revision, 1);
        assert_eq!(t.call.call_uid, "a@b");
        assert!(t.classification.needs_review);
        assert_eq!(t.progress.at, t.created_at);
        let (key, body) = wire(&t.ticket_id.to_string(), &doc, WireSchema::V1);
        assert_eq!(key, t.ticket_id.to_string(), "v1 keeps the pre-upgrade key");
        let back: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(back, v1_doc(), "nothing added, nothing lost");
        let (key, body) = wire(&t.ticket_id.to_string(), &doc, WireSchema::V2);
        assert_eq!(key, format!("{}:1", t.ticket_id));
        let v2: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v2["schema"], SCHEMA_ID);
        assert_eq!(v2["progress"]["state"], "accepted");
    }

    #[test]
    fn v1_cannot_say_a_spoken_choice_so_it_gets_no_menu() {
        let mut v = v1_doc();
        upgrade(&mut v);
        v["menu"]["source"] = "speech".into();
        v["menu"]["digits"] = Value::Null;
        v["menu"]["utterance"] = "投诉".into();
        v["revision"] = 3.into();
        v["classification"]["source"] = "model".into();
        let (key, body) = wire("t", &v.to_string(), WireSchema::V1);
        assert_eq!(key, "t:3", "a later revision needs its own key");
        let back: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(back["menu"], Value::Null);
        assert_eq!(back["classification"]["source"], "default");
    }
}
