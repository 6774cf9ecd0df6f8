//! The urgent early commit and the revision that completes it (issue 16 §3).
//!
//! When a live segment of a message holds an urgent word and `[transfer] urgent_action` is
//! `flag`, the gateway commits the ticket while the caller still talks, so the intake hears
//! of a gas leak minutes sooner. That early ticket is built from what is known then: the
//! call's facts with `hangup.reason = "in_progress"` ([`IN_PROGRESS`]) and the words heard so
//! far. When the call ends, the full record arrives for the same `call_uid`: instead of the
//! usual "a ticket for this call exists, return it", the early ticket is rebuilt from the
//! final facts and becomes the next revision of the same ticket (same id, same reference,
//! `Idempotency-Key: <ticket_id>:<revision>`), queued again. A retried hand-over finds the
//! revision done and changes nothing; a crash between the two is healed at the next start
//! (the pending record still finds an early ticket).

use chrono::{DateTime, Duration, Utc};

use super::classify::Rules;
use super::duplicate::DuplicateConfig;
use super::facts::CallFacts;
use super::model::{Classification, RecordingSection, Ticket};
use super::record::{self, Draft};
use super::store::Store;
use super::TicketError;

/// `hangup.reason` of an early ticket: the call was still going when it was committed.
pub const IN_PROGRESS: &str = "in_progress";

/// The facts describe a call still in progress (an early commit).
pub fn is_early(facts: &CallFacts) -> bool {
    facts.hangup_reason == IN_PROGRESS
}

/// The stored ticket is an early commit still waiting for its call's final facts.
pub fn awaits_final(t: &Ticket) -> bool {
    t.call.hangup.reason == IN_PROGRESS && t.urgent_trigger.is_some()
}

/// A ticket with an urgent trigger is urgent, whatever the words of the final transcript
/// (a whole-message decode may spell the word differently from the live segment).
pub(super) fn mark_urgent(c: &mut Classification, rules: &Rules, created_at: DateTime<Utc>) {
    if c.urgent {
        return;
    }
    c.urgent = true;
    c.response_deadline_hours = c.response_deadline_hours.min(rules.urgent.deadline_hours);
    c.due_at = created_at + Duration::hours(i64::from(c.response_deadline_hours));
}

/// What the revision needs besides the facts.
pub(super) struct Revise<'a> {
    pub rules: &'a Rules,
    pub duplicate: &'a DuplicateConfig,
    pub gateway_instance: &'a str,
    pub recording: Option<RecordingSection>,
    pub now_ms: i64,
}

/// Rebuilds the early ticket `existing` from the call's final `facts` as its next revision
/// and queues it for delivery. Returns the ticket as stored afterwards (unchanged when
/// another hand-over revised it first).
pub(super) fn revise(
    store: &Store,
    existing: &Ticket,
    facts: &CallFacts,
    r: Revise<'_>,
) -> Result<Ticket, TicketError> {
    next_revision(store, existing, facts, r, awaits_final)
}

/// Rebuilds `existing` from `facts` as its next revision, if the stored ticket still
/// satisfies `still` when the write transaction has it (another revision may have come
/// first), and queues it for delivery. What the desk did with it is kept ([`carry_over`]).
pub(super) fn next_revision(
    store: &Store,
    existing: &Ticket,
    facts: &CallFacts,
    r: Revise<'_>,
    still: impl FnOnce(&Ticket) -> bool,
) -> Result<Ticket, TicketError> {
    let window = i64::try_from(r.duplicate.window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let started_ms = facts.started_at.timestamp_millis();
    let id = existing.ticket_id.to_string();
    store.revise_early(
        &id,
        &facts.caller,
        started_ms.saturating_sub(window),
        started_ms,
        r.now_ms,
        |current, candidates| {
            if !still(current) {
                return None;
            }
            let others: Vec<_> = candidates
                .iter()
                .filter(|c| c.ticket_id != current.ticket_id)
                .cloned()
                .collect();
            let draft = Draft {
                facts,
                ticket_id: current.ticket_id,
                created_at: current.created_at,
                gateway_instance: r.gateway_instance,
                recording: r.recording,
            };
            let (mut t, norm) = record::assemble(draft, r.rules, r.duplicate, &others);
            carry_over(current, &mut t, r.rules);
            Some((t, norm))
        },
    )
}

/// What a revision keeps of the ticket before it: its number, its trigger, its urgency (an
/// urgent ticket is never quietly downgraded by a re-decoded text) and whatever the desk
/// already did with it.
fn carry_over(early: &Ticket, t: &mut Ticket, rules: &Rules) {
    t.revision = early.revision + 1;
    if t.reference.is_none() {
        t.reference = early.reference.clone();
    }
    if t.urgent_trigger.is_none() {
        t.urgent_trigger = early.urgent_trigger.clone();
    }
    if early.classification.urgent || t.urgent_trigger.is_some() {
        mark_urgent(&mut t.classification, rules, t.created_at);
    }
    t.classification.operator_override = early.classification.operator_override.clone();
    t.progress = early.progress.clone();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::facts::{HangupBy, SegmentFacts, TranscriptFacts};
    use crate::ticket::model::{UrgentAction, UrgentTrigger};
    use crate::ticket::{DeliveryState, TicketConfig, TicketService};

    fn facts(uid: &str, text: &str, reason: &str) -> CallFacts {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-26T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        CallFacts {
            call_uid: uid.into(),
            call_id: format!("{uid}@host"),
            reference: Some("261126000001".into()),
            trunk: None,
            caller: "13800000000".into(),
            called: "8890".into(),
            channel: "8890".into(),
            started_at: at,
            answered_at: at,
            ended_at: at + Duration::seconds(20),
            hangup_by: HangupBy::Caller,
            hangup_reason: reason.into(),
            menu: None,
            transfer: None,
            urgent_trigger: None,
            transcript: Some(TranscriptFacts {
                language: "zh".into(),
                text: text.into(),
                segments: vec![SegmentFacts {
                    start_ms: 0,
                    end_ms: 2000,
                    text: text.into(),
                    confidence: Some(0.9),
                }],
                model: "test".into(),
                empty_reason: None,
            }),
            recording: None,
        }
    }

    fn trigger() -> UrgentTrigger {
        UrgentTrigger {
            word: "燃气泄漏".into(),
            at_ms: 1200,
            action: UrgentAction::Flag,
        }
    }

    fn service(dir: &tempfile::TempDir) -> TicketService {
        let mut cfg = TicketConfig {
            db_path: dir.path().join("t.sqlite"),
            outbox_dir: dir.path().join("outbox"),
            ..TicketConfig::default()
        };
        // Never reached: delivery is not run; the row's state is what is looked at.
        cfg.intake.url = Some("http://127.0.0.1:9/".into());
        TicketService::open(cfg).unwrap()
    }

    /// The early commit is revision 1, urgent, with its trigger; the call's final facts
    /// make revision 2 of the same ticket (id, reference, trigger kept, queued again);
    /// a retried hand-over, or a second early commit, changes nothing more.
    #[tokio::test]
    async fn the_final_facts_revise_the_early_ticket_once() {
        let dir = tempfile::tempdir().unwrap();
        let tickets = service(&dir);
        let mut early = facts("uid-1", "我家厨房燃气泄漏了", IN_PROGRESS);
        early.urgent_trigger = Some(trigger());
        let first = tickets.create(early.clone()).await.unwrap();
        assert_eq!(first.revision, 1);
        assert!(first.classification.urgent);
        assert_eq!(first.urgent_trigger, Some(trigger()));
        assert_eq!(first.call.hangup.reason, IN_PROGRESS);
        // The delivery of revision 1 is under way when the call ends.
        let store = tickets.store();
        let claimed = store.claim_due(i64::MAX, 10).unwrap();
        assert_eq!(claimed.len(), 1);

        let mut last = facts(
            "uid-1",
            "我家厨房燃气泄漏了，味道很大，请快点派人来",
            "caller_bye",
        );
        last.urgent_trigger = Some(trigger());
        let second = tickets.create(last.clone()).await.unwrap();
        assert_eq!(second.ticket_id, first.ticket_id);
        assert_eq!(second.revision, 2);
        assert_eq!(second.reference.as_deref(), Some("261126000001"));
        assert_eq!(second.urgent_trigger, Some(trigger()));
        assert!(second.classification.urgent);
        assert_eq!(second.call.hangup.reason, "caller_bye");
        assert!(second.transcript.text.contains("请快点派人来"));
        assert_eq!(
            tickets
                .counters()
                .created
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        let row = store.get(&first.ticket_id.to_string()).unwrap();
        assert_eq!(row.state, DeliveryState::Pending, "revision 2 is queued");
        // The attempt of revision 1 finishing late does not mark revision 2 delivered.
        store
            .finish_attempt(
                &claimed[0].ticket_id,
                claimed[0].attempts,
                1,
                DeliveryState::Delivered,
                1,
                Some(200),
                None,
                None,
            )
            .unwrap();
        assert_eq!(
            store.get(&first.ticket_id.to_string()).unwrap().state,
            DeliveryState::Pending
        );

        let again = tickets.create(last).await.unwrap();
        assert_eq!(again.revision, 2, "a retried hand-over is not a revision");
        let late_early = tickets.create(early).await.unwrap();
        assert_eq!(late_early.revision, 2);
        assert_eq!(
            store.list(None, 10).unwrap().len(),
            1,
            "one ticket per call"
        );
    }

    /// A crash after the early commit loses the in-memory trigger: the pending record's
    /// facts have none, and the revision keeps the early ticket's.
    #[tokio::test]
    async fn the_revision_keeps_the_trigger_the_final_facts_lack() {
        let dir = tempfile::tempdir().unwrap();
        let tickets = service(&dir);
        let mut early = facts("uid-2", "着火了", IN_PROGRESS);
        early.urgent_trigger = Some(trigger());
        tickets.create(early).await.unwrap();
        // A final transcript without the word (decoded differently) stays urgent.
        let revised = tickets
            .create(facts("uid-2", "快来人", "interrupted"))
            .await
            .unwrap();
        assert_eq!(revised.revision, 2);
        assert_eq!(revised.urgent_trigger, Some(trigger()));
        assert!(revised.classification.urgent);
    }

    /// Urgent tickets leave the queue first, whatever their age.
    #[tokio::test]
    async fn urgent_tickets_are_delivered_first() {
        let dir = tempfile::tempdir().unwrap();
        let tickets = service(&dir);
        for i in 0..3 {
            tickets
                .create(facts(&format!("plain-{i}"), "路灯不亮了", "caller_bye"))
                .await
                .unwrap();
        }
        let mut urgent = facts("urgent", "路灯不亮了", IN_PROGRESS);
        urgent.urgent_trigger = Some(trigger());
        let u = tickets.create(urgent).await.unwrap();
        let claimed = tickets.store().claim_due(i64::MAX, 1).unwrap();
        assert_eq!(claimed[0].ticket_id, u.ticket_id.to_string());
        let rest = tickets.store().claim_due(i64::MAX, 10).unwrap();
        assert_eq!(rest.len(), 3);
    }
}
