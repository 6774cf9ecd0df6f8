//! The menu choice as the ticket sees it: keys, default, or the spoken menu with its words.

use super::aftercall::facts_from;
use crate::call::record::CallRecord;
use crate::ticket::MenuSource;

fn record(menu: serde_json::Value) -> CallRecord {
    serde_json::from_value(serde_json::json!({
        "schema": "hotline.call/v1",
        "call_uid": "019ac1d2-0000-7000-8000-00000000000b",
        "call_id": "b@host",
        "instance": "gw",
        "caller": "13800000000",
        "caller_name": null,
        "called": "8890",
        "channel": "8890",
        "started_at": "2026-11-26T03:00:00Z",
        "answered_at": "2026-11-26T03:00:01Z",
        "ended_at": "2026-11-26T03:01:00Z",
        "duration_ms": 60000,
        "language": "zh",
        "menu": menu,
        "recording": null,
        "hangup": {"by": "caller", "reason": "caller_bye"},
        "media": {"codec": "PCMU", "packets_sent": 0, "packets_received": 0, "packets_dropped": 0}
    }))
    .unwrap()
}

#[test]
fn a_spoken_choice_reaches_the_ticket_as_speech_with_the_words() {
    let spoken = record(
        serde_json::json!({"digits": "", "digit": "2", "id": "complaint",
        "label": "投诉举报", "defaulted": false, "utterance": "我要投诉"}),
    );
    let m = facts_from(&spoken).menu.unwrap();
    assert_eq!(m.source, MenuSource::Speech);
    assert_eq!(m.utterance.as_deref(), Some("我要投诉"));
    assert_eq!(m.digits, None);
    assert_eq!(m.id, "complaint");
    // a key press (records from before the spoken menu have no `utterance`)
    let keyed = record(
        serde_json::json!({"digits": "2", "digit": "2", "id": "complaint",
        "label": "投诉举报", "defaulted": false}),
    );
    let m = facts_from(&keyed).menu.unwrap();
    assert_eq!(m.source, MenuSource::Dtmf);
    assert_eq!((m.digits.as_deref(), m.utterance), (Some("2"), None));
}
