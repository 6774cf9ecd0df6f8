//! A live-transcribed message's second pass (issue 16 §1): after its ticket is committed
//! with the live text, the whole message is decoded once the Whisper pool is idle, and a
//! different text becomes the ticket's next revision (`TicketService::revise_transcript`).
//!
//! Why: decoding utterance by utterance is what gets the ticket out within a second of the
//! hang-up, but Whisper then reads each sentence without the others, and on two-sentence
//! messages the whole-message text is better (BENCHMARKS.md §6). The second pass gets both:
//! the ticket at once, the better text a few seconds later. It never competes with a caller:
//! it starts only when no job is queued or running (`AsrPool::is_idle`), gives up after
//! [`MAX_WAIT`] of a busy pool (the live text stands).
//!
//! Because it waits for an idle pool, it can afford what the live parts cannot: the careful
//! decoding (`[asr] second_pass_beam_size`, `second_pass_prompt`, every worker's threads;
//! `AsrPool::submit_careful`). Beam 5 with the classification table's words cut the
//! Mandarin error rate by a fifth to a third (BENCHMARKS.md §6) but takes 2–3× the time of
//! greedy decoding, which would miss the hang-up → ticket targets. So every live message with
//! text has a second pass when the careful decoding differs from the live one; otherwise only
//! messages stitched from several parts (a single part was decoded whole already). A message
//! whose live text is empty (no speech, or rejected by the guards) has none: the careful
//! decoding's keyword bias could write table words into it (`AsrConfig::second_pass_wanted`).

use std::sync::Arc;
use std::time::Duration;

use super::aftercall::{facts_from, record_transcript};
use crate::asr::AsrPool;
use crate::call::record::CallRecord;
use crate::ticket::TicketService;

/// How long a second pass waits for an idle pool before the live text is left as final.
const MAX_WAIT: Duration = Duration::from_secs(120);
/// How often the pool is looked at meanwhile.
const POLL: Duration = Duration::from_millis(100);

/// What a second pass needs: the message's audio and the text the ticket was committed with.
pub(super) struct SecondPass {
    pub pcm: Arc<[i16]>,
    pub language: String,
    pub live_text: String,
}

/// Runs the second pass of `record`'s message in the background.
pub(super) fn spawn(asr: Arc<AsrPool>, tickets: TicketService, record: CallRecord, p: SecondPass) {
    tokio::spawn(async move {
        let uid = record.uid().to_string();
        let started = tokio::time::Instant::now();
        while !asr.is_idle() {
            if started.elapsed() >= MAX_WAIT {
                tracing::info!(call_uid = %uid, "second pass skipped: the transcription pool stayed busy");
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        // The pool is idle, so the queue has room; a caller's message that raced in first
        // wins and the live text stands.
        let Ok(rx) = asr.submit_careful(p.pcm, &p.language) else {
            tracing::info!(call_uid = %uid, "second pass skipped: the transcription queue filled up");
            return;
        };
        let Ok(whole) = rx.await else {
            tracing::warn!(call_uid = %uid, "second pass: the transcription worker failed");
            return;
        };
        let whole = record_transcript(whole);
        if whole.text.is_empty() || whole.text == p.live_text {
            tracing::debug!(call_uid = %uid, same = whole.text == p.live_text, "second pass: live text stands");
            return;
        }
        let mut record = record;
        record.transcript = Some(whole);
        match tickets
            .revise_transcript(facts_from(&record), p.live_text)
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::debug!(call_uid = %uid, "second pass: the ticket changed meanwhile")
            }
            Err(e) => {
                tracing::warn!(call_uid = %uid, error = %e, "second pass: ticket not revised")
            }
        }
    });
}
