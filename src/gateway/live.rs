//! Live transcription: the utterances of messages still being recorded, on their way through
//! the Whisper pool, until the after-call pipeline collects them.
//!
//! The call layer hands each utterance over ([`crate::call::ivr::UtteranceFacts`]); this
//! collector submits it to the [`AsrPool`] at once (never blocking: a full queue just drops
//! the early attempt) and keeps the pending result under the call's Call-ID. After hang-up
//! `aftercall` [`take`](LiveTranscripts::take)s them and decodes only the rest of the
//! message. Everything here is an optimisation: in memory only, bounded, and whenever it is
//! incomplete (a dropped or failed utterance, a restart) the whole message is transcribed as
//! before, so the durable path never depends on it.

use super::urgent::{CallMeta, UrgentPolicy, UrgentWatch};
use crate::asr::{AsrPool, MessageContext, Transcript};
use crate::call::ivr::UtteranceFacts;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Calls whose utterances are kept at once; the oldest call is forgotten beyond (its
/// message is then transcribed whole).
const MAX_CALLS: usize = 256;
/// Utterances kept per message; a longer message goes whole.
const MAX_UTTERANCES: usize = 64;

/// One utterance submitted to the pool.
pub struct Pending {
    pub start_ms: u64,
    /// Samples in the utterance (8 kHz).
    pub samples: usize,
    pub result: oneshot::Receiver<Transcript>,
}

/// What was collected for one message.
pub struct Partials {
    pub language: String,
    /// In order, contiguous from the start of the message.
    pub utterances: Vec<Pending>,
    /// Their texts as the workers finish them: the context of the rest.
    pub context: MessageContext,
}

#[derive(Default)]
struct Entry {
    language: String,
    utterances: Vec<Pending>,
    context: MessageContext,
    /// An utterance went missing (dropped, out of order, over the cap): use none.
    broken: bool,
}

#[derive(Default)]
struct Calls {
    by_call: HashMap<String, Entry>,
    /// Call-IDs in the order they first appeared, for eviction.
    order: VecDeque<String>,
}

/// The collector, shared by the call sink and the after-call pipeline.
pub struct LiveTranscripts {
    asr: Arc<AsrPool>,
    calls: Mutex<Calls>,
    /// Looks at each utterance's words on their way here (`urgent.rs`).
    urgent: Option<Arc<UrgentWatch>>,
}

impl LiveTranscripts {
    pub fn new(asr: Arc<AsrPool>) -> LiveTranscripts {
        LiveTranscripts {
            asr,
            calls: Mutex::new(Calls::default()),
            urgent: None,
        }
    }

    pub fn with_urgent(mut self, watch: Arc<UrgentWatch>) -> LiveTranscripts {
        self.urgent = Some(watch);
        self
    }

    pub fn urgent(&self) -> Option<&Arc<UrgentWatch>> {
        self.urgent.as_ref()
    }

    /// Take an utterance of a message being recorded: submit it, keep its pending result.
    /// Runs on the call's task; it only queues. `urgent`: what an urgent word does on this
    /// call (its configuration's).
    pub fn offer(&self, u: UtteranceFacts, urgent: Option<&UrgentPolicy>) {
        let Ok(mut calls) = self.calls.lock() else {
            return;
        };
        if !calls.by_call.contains_key(&u.call_id) {
            while calls.order.len() >= MAX_CALLS {
                if let Some(old) = calls.order.pop_front() {
                    calls.by_call.remove(&old);
                }
            }
            calls.order.push_back(u.call_id.clone());
            calls.by_call.insert(
                u.call_id.clone(),
                Entry {
                    language: u.language.clone(),
                    ..Entry::default()
                },
            );
        }
        let Some(entry) = calls.by_call.get_mut(&u.call_id) else {
            return;
        };
        // A new recording on the same call starts again at index 0.
        if u.index == 0 && !entry.utterances.is_empty() {
            *entry = Entry {
                language: u.language.clone(),
                ..Entry::default()
            };
        }
        if entry.broken {
            return;
        }
        let expected_start = entry
            .utterances
            .last()
            .map_or(0, |p| p.start_ms + p.samples as u64 / 8);
        if u.index as usize != entry.utterances.len()
            || entry.utterances.len() >= MAX_UTTERANCES
            || u.start_ms.abs_diff(expected_start) > 1
        {
            entry.broken = true;
            entry.utterances.clear();
            return;
        }
        let samples = u.pcm.len();
        let index = entry.utterances.len();
        match self
            .asr
            .submit_part(u.pcm, &u.language, &entry.context, index)
        {
            Ok(result) => entry.utterances.push(Pending {
                result: match (&self.urgent, urgent) {
                    (Some(watch), Some(policy)) => {
                        let call = CallMeta {
                            call_uid: u.call_uid,
                            start_ms: u.start_ms,
                            reference: u.reference,
                            requests: u.requests,
                        };
                        watch.watch(policy, call, result)
                    }
                    _ => result,
                },
                start_ms: u.start_ms,
                samples,
            }),
            Err(_) => {
                tracing::debug!(call_id = %u.call_id, "ASR queue full: the message will be transcribed whole");
                entry.broken = true;
                entry.utterances.clear();
            }
        }
    }

    /// The utterances collected for `call_id`, if they are usable; forgets the call.
    pub fn take(&self, call_id: &str) -> Option<Partials> {
        let mut calls = self.calls.lock().ok()?;
        let entry = calls.by_call.remove(call_id)?;
        calls.order.retain(|c| c != call_id);
        (!entry.broken && !entry.utterances.is_empty()).then_some(Partials {
            language: entry.language,
            utterances: entry.utterances,
            context: entry.context,
        })
    }

    pub fn pool(&self) -> &AsrPool {
        &self.asr
    }

    /// The pool itself, for other early work on the same workers (the spoken menu).
    pub fn pool_arc(&self) -> Arc<AsrPool> {
        self.asr.clone()
    }
}
