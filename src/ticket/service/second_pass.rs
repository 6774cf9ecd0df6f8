//! The ticket's side of a message's second pass (issue 16 §1): a better transcript of a
//! call already ticketed becomes the ticket's next revision.
//!
//! A live-transcribed message is ticketed with the text decoded utterance by utterance, so
//! the operator and the intake have it within a second of the hang-up. Decoding the whole
//! message afterwards reads each sentence with the others in view and is more accurate
//! (BENCHMARKS.md §6); when its text differs, it replaces the live text through the same
//! revision mechanism as the urgent early commit (`ticket::early`): same id and reference,
//! revision + 1, queued again with `Idempotency-Key: <ticket_id>:<revision>`, the desk's
//! work and the urgency kept. The ticket layer knows nothing of Whisper: it gets facts.

use std::sync::atomic::Ordering;

use super::{blocking, now_ms, write_outbox, TicketService};
use crate::ticket::early::{self, Revise};
use crate::ticket::{CallFacts, Ticket, TicketError};

impl TicketService {
    /// Revises the ticket of `facts.call_uid` from `facts` (the same call with a new
    /// transcript) if it still carries `replaces` as its transcript's text: a ticket revised
    /// since (or never committed) is left alone. Returns the new revision, if one was made.
    pub async fn revise_transcript(
        &self,
        facts: CallFacts,
        replaces: String,
    ) -> Result<Option<Ticket>, TicketError> {
        let inner = self.inner.clone();
        let revised = blocking(move || {
            let Some(current) = inner.store.ticket_of_call(&facts.call_uid)? else {
                return Ok(None);
            };
            let r = Revise {
                rules: &inner.rules.load(),
                duplicate: &inner.cfg.duplicate,
                gateway_instance: &inner.cfg.gateway_instance,
                recording: current.recording.clone(),
                now_ms: now_ms(),
            };
            let t = early::next_revision(&inner.store, &current, &facts, r, |stored| {
                stored.transcript.text == replaces && stored.revision == current.revision
            })?;
            if t.revision == current.revision {
                return Ok(None);
            }
            if inner.client.is_none() {
                write_outbox(&inner, &t.ticket_id.to_string(), &t)?;
            }
            Ok(Some(t))
        })
        .await?;
        if let Some(t) = &revised {
            self.inner.counters.revised.fetch_add(1, Ordering::Relaxed);
            tracing::info!(ticket = %t.ticket_id, revision = t.revision, call_uid = %t.call.call_uid, "ticket revised with the whole message's transcript");
            self.inner.wake.notify_one();
            self.inner.move_wake.notify_one();
        }
        Ok(revised)
    }
}
