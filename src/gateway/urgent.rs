//! Urgent words act at once (issue 16 §3): a live segment of a message that holds an urgent
//! word of the classification table (燃气泄漏, 着火, 有人受伤…) does not wait for the hang-up.
//!
//! Each utterance's transcript passes through [`UrgentWatch::watch`] on its way from the
//! Whisper pool to [`super::live::LiveTranscripts`]. The words are matched by the
//! classification table's own matcher (`Rules::assess`: whole words, negation — "打不着火" is
//! not a fire, "不是漏气" is no leak — and mis-heard forms by sound: "然气泄漏", "煤气位"), never
//! as raw substrings. A hit acts once per call, per `[transfer] urgent_action`:
//! - `flag`: the ticket is committed at once as an early commit (`ticket::early`: urgent,
//!   `hangup.reason = "in_progress"`, the words heard so far), delivered ahead of the queue;
//!   the after-call pipeline's ticket for the same call then becomes its revision 2.
//! - `transfer`: the call is asked to put the caller through to `urgent_target`
//!   ([`CallRequest::Transfer`]); the ticket made after the call carries the trigger and the
//!   transfer's outcome. Outside the operators' `hours` the word flags instead.
//!
//! The trigger is registered before the utterance's transcript is handed on, and the
//! after-call pipeline [`settle`](UrgentWatch::settle)s a call (waits for its early commit)
//! only after it has every live transcript of the call: so a call that ends right after the
//! trigger yields one ticket, never two, and never loses the trigger. Matching runs on a
//! blocking thread, the commit on the ticket layer's: nothing here runs on a media task or
//! blocks a call's task.

use crate::call::ivr::{CallRequest, CallRequests};
use crate::call::record::{file_safe, CallRecord};
use crate::config::Config;
use crate::ticket::early::IN_PROGRESS;
use crate::ticket::model::{UrgentAction, UrgentTrigger};
use crate::ticket::{Rules, TicketService};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// Calls remembered at once; the oldest is forgotten beyond (its ticket then has no
/// trigger, only the urgency its transcript gives it).
const MAX_CALLS: usize = 256;
/// How long the after-call pipeline waits for an early commit still under way.
const SETTLE_WAIT: Duration = Duration::from_secs(30);

/// What an urgent word does, from one configuration snapshot (`[transfer]`).
#[derive(Clone, Debug, PartialEq)]
pub struct UrgentPolicy {
    pub action: UrgentAction,
    /// Where `transfer` sends the caller.
    pub target: String,
    /// The operators' hours: outside them `transfer` flags instead (nobody would answer,
    /// and the caller's message would be cut short for nothing).
    pub hours: Option<crate::config::TransferConfig>,
}

impl UrgentPolicy {
    pub fn from_config(config: &Config) -> UrgentPolicy {
        let t = &config.transfer;
        let target = match t.urgent_target.trim() {
            "" => t.target.trim().to_owned(),
            u => u.to_owned(),
        };
        // check-config refuses `transfer` without a target; flag rather than do nothing.
        let action = if t.urgent_action == "transfer" && !target.is_empty() {
            UrgentAction::Transfer
        } else {
            UrgentAction::Flag
        };
        UrgentPolicy {
            action,
            target,
            hours: Some(t.clone()),
        }
    }

    /// The action an urgent word heard at `now` takes.
    pub fn action_at(&self, now: chrono::DateTime<chrono::Utc>) -> UrgentAction {
        match (&self.action, &self.hours) {
            (UrgentAction::Transfer, Some(h)) if !h.open_at(now) => UrgentAction::Flag,
            (action, _) => *action,
        }
    }
}

/// The call an utterance belongs to, as far as this module needs it.
#[derive(Clone, Debug)]
pub struct CallMeta {
    pub call_uid: String,
    /// Where the utterance begins in the message.
    pub start_ms: u64,
    pub reference: Option<String>,
    pub requests: CallRequests,
}

/// Triggers by action, for `/metrics`.
#[derive(Debug, Default)]
pub struct UrgentCounters {
    pub flag: AtomicU64,
    pub transfer: AtomicU64,
    /// Early commits that failed (the ticket still comes after the call, with the trigger).
    pub commit_failed: AtomicU64,
}

struct Triggered {
    trigger: UrgentTrigger,
    /// `true` once the early commit (if any) is over.
    done: watch::Receiver<bool>,
}

#[derive(Default)]
struct Calls {
    by_uid: HashMap<String, Triggered>,
    order: VecDeque<String>,
}

/// The urgent-word watch, shared by every call (across reloads).
pub struct UrgentWatch {
    tickets: TicketService,
    /// `calls/pending/`: the provisional record the early ticket is made from.
    pending_dir: PathBuf,
    counters: Arc<UrgentCounters>,
    calls: Mutex<Calls>,
}

/// The first urgent word of a transcript, with where it was said in the message.
pub fn find_trigger(
    rules: &Rules,
    t: &crate::asr::Transcript,
    start_ms: u64,
) -> Option<(String, u64)> {
    let word = rules
        .assess(&t.text, None)
        .urgent_keywords
        .into_iter()
        .next()?;
    // The segment that says it, for the time; a word cut across two segments is placed at
    // the utterance's start.
    let at = t
        .segments
        .iter()
        .find(|s| rules.assess(&s.text, None).urgent_keywords.contains(&word))
        .map_or(0, |s| s.start_ms);
    Some((word, start_ms + at))
}

impl UrgentWatch {
    pub fn new(tickets: TicketService, pending_dir: PathBuf) -> UrgentWatch {
        UrgentWatch {
            tickets,
            pending_dir,
            counters: Arc::default(),
            calls: Mutex::new(Calls::default()),
        }
    }

    pub fn counters(&self) -> &Arc<UrgentCounters> {
        &self.counters
    }

    /// `/metrics`: `hotline_urgent_triggers_total{action}`.
    pub fn metrics(&self) -> impl Fn(&mut crate::admin::metrics::Exposition) + Send + Sync {
        let c = self.counters.clone();
        move |out| {
            let n = "hotline_urgent_triggers_total";
            out.family(
                n,
                "counter",
                "Messages in which a live segment held an urgent word, by what it did",
            );
            out.sample(n, &[("action", "flag")], c.flag.load(Ordering::Relaxed));
            out.sample(
                n,
                &[("action", "transfer")],
                c.transfer.load(Ordering::Relaxed),
            );
            out.counter(
                "hotline_urgent_early_commit_failures_total",
                "Urgent early commits that failed (the ticket follows after the call)",
                &c.commit_failed,
            );
        }
    }

    fn triggered(&self, call_uid: &str) -> bool {
        self.calls
            .lock()
            .map(|c| c.by_uid.contains_key(call_uid))
            .unwrap_or(true)
    }

    /// Registers the call's trigger; `None` when the call already has one (once per call).
    fn claim(&self, call_uid: &str, trigger: UrgentTrigger) -> Option<watch::Sender<bool>> {
        let mut calls = self.calls.lock().ok()?;
        if calls.by_uid.contains_key(call_uid) {
            return None;
        }
        while calls.order.len() >= MAX_CALLS {
            if let Some(old) = calls.order.pop_front() {
                calls.by_uid.remove(&old);
            }
        }
        let (tx, done) = watch::channel(false);
        calls.order.push_back(call_uid.to_owned());
        calls
            .by_uid
            .insert(call_uid.to_owned(), Triggered { trigger, done });
        Some(tx)
    }

    /// Puts itself between an utterance's transcription and its collector: the transcript
    /// comes out of the returned receiver unchanged, after its words were looked at.
    pub fn watch(
        self: &Arc<Self>,
        policy: &UrgentPolicy,
        call: CallMeta,
        result: oneshot::Receiver<crate::asr::Transcript>,
    ) -> oneshot::Receiver<crate::asr::Transcript> {
        let (tx, out) = oneshot::channel();
        let (me, policy) = (self.clone(), policy.clone());
        tokio::spawn(async move {
            // A failed transcription drops `tx`: the collector falls back to the whole message.
            let Ok(t) = result.await else { return };
            let found = if me.triggered(&call.call_uid) || t.text.is_empty() {
                None
            } else {
                let rules = me.tickets.rules();
                let (text, start) = (t.clone(), call.start_ms);
                tokio::task::spawn_blocking(move || find_trigger(&rules, &text, start))
                    .await
                    .ok()
                    .flatten()
            };
            let fired = found.and_then(|(word, at_ms)| {
                let trigger = UrgentTrigger {
                    word,
                    at_ms,
                    action: policy.action_at(chrono::Utc::now()),
                };
                me.claim(&call.call_uid, trigger.clone())
                    .map(|done| (trigger, done))
            });
            // Registered first, handed on second: see the module's note on ordering.
            let _ = tx.send(t.clone());
            if let Some((trigger, done)) = fired {
                me.act(&policy, &call, trigger, &t).await;
                let _ = done.send(true);
            }
        });
        out
    }

    async fn act(
        &self,
        policy: &UrgentPolicy,
        call: &CallMeta,
        trigger: UrgentTrigger,
        t: &crate::asr::Transcript,
    ) {
        tracing::warn!(call_uid = %call.call_uid, word = %trigger.word, at_ms = trigger.at_ms, action = ?trigger.action, "urgent word heard");
        match trigger.action {
            UrgentAction::Transfer => {
                self.counters.transfer.fetch_add(1, Ordering::Relaxed);
                let _ = call.requests.send(CallRequest::Transfer {
                    target: policy.target.clone(),
                });
            }
            UrgentAction::Flag => {
                self.counters.flag.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = self.commit_early(call, trigger, t).await {
                    self.counters.commit_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(call_uid = %call.call_uid, error = %e, "urgent early commit failed: the ticket follows after the call");
                }
            }
        }
    }

    /// Commits the call's ticket now, from its provisional record and the words so far.
    async fn commit_early(
        &self,
        call: &CallMeta,
        trigger: UrgentTrigger,
        t: &crate::asr::Transcript,
    ) -> Result<(), String> {
        let path = self
            .pending_dir
            .join(format!("{}.json", file_safe(&call.call_uid)));
        let mut record: CallRecord = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
            serde_json::from_slice(&bytes).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        // The words so far, their times moved into the message.
        let mut heard = super::aftercall::record_transcript(t.clone());
        for s in &mut heard.segments {
            s.start_ms += call.start_ms;
            s.end_ms += call.start_ms;
        }
        record.transcript = Some(heard);
        // The message is still being written: no recording section until revision 2.
        record.recording = None;
        let mut facts = super::aftercall::facts_from(&record);
        facts.reference = call.reference.clone().or(facts.reference);
        facts.ended_at = chrono::Utc::now();
        facts.hangup_reason = IN_PROGRESS.into();
        facts.urgent_trigger = Some(trigger);
        let ticket = self
            .tickets
            .create(facts)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(ticket = %ticket.ticket_id, call_uid = %call.call_uid, "urgent ticket committed early");
        Ok(())
    }

    /// After the call: its trigger, if any, once its early commit is over (so the ticket
    /// made now revises it rather than racing it). The call stays remembered (a retried
    /// hand-over asks again; a late utterance must not trigger twice) until evicted.
    pub async fn settle(&self, call_uid: &str) -> Option<UrgentTrigger> {
        let (trigger, mut done) = self.calls.lock().ok().and_then(|c| {
            c.by_uid
                .get(call_uid)
                .map(|t| (t.trigger.clone(), t.done.clone()))
        })?;
        let _ = tokio::time::timeout(SETTLE_WAIT, done.wait_for(|d| *d)).await;
        Some(trigger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asr::{Segment, Transcript};
    use crate::ticket::TicketConfig;

    fn heard(segments: &[(u64, &str)]) -> Transcript {
        Transcript {
            language: "zh".into(),
            text: segments.iter().map(|(_, t)| *t).collect(),
            segments: segments
                .iter()
                .map(|(at, t)| Segment {
                    start_ms: *at,
                    end_ms: at + 1500,
                    text: (*t).into(),
                    confidence: 0.8,
                })
                .collect(),
            model: "test".into(),
            empty_reason: None,
            audio_ms: 4000,
            elapsed_ms: 1,
        }
    }

    fn word(text: &[(u64, &str)], start_ms: u64) -> Option<(String, u64)> {
        find_trigger(&Rules::builtin(), &heard(text), start_ms)
    }

    #[test]
    fn urgent_words_trigger_on_words_not_substrings() {
        assert_eq!(
            word(&[(0, "你好，"), (1800, "我家厨房燃气泄漏了")], 3000),
            Some(("燃气泄漏".into(), 4800)),
            "the word, placed at its segment in the message"
        );
        assert_eq!(word(&[(0, "楼道里着火了，快来人")], 0).unwrap().0, "着火");
        // "打不着火" holds 着火 but is a stove that will not light; "不是漏气" is no leak.
        assert_eq!(word(&[(0, "我家的燃气灶打不着火")], 0), None);
        assert_eq!(word(&[(0, "不是漏气，就是打不着火")], 0), None);
        assert_eq!(word(&[(0, "小区路灯坏了好几天")], 0), None);
    }

    #[test]
    fn mis_heard_forms_of_urgent_words_trigger() {
        // What Whisper wrote on an accented voice.
        assert_eq!(word(&[(0, "然气泄漏了快来人")], 0).unwrap().0, "燃气泄漏");
        assert_eq!(
            word(&[(0, "屋里有煤气位，头有点晕")], 0).unwrap().0,
            "煤气味"
        );
    }

    fn policy(action: UrgentAction) -> UrgentPolicy {
        UrgentPolicy {
            action,
            target: "sip:119@ops.example".into(),
            hours: None,
        }
    }

    #[test]
    fn outside_the_operators_hours_transfer_flags_instead() {
        let mut config = crate::config::Config::default();
        config.transfer.urgent_action = "transfer".into();
        config.transfer.urgent_target = "sip:119@ops.example".into();
        config.transfer.hours = vec!["mon-fri 08:00-20:00".into()];
        config.transfer.timezone = "+08:00".into();
        let p = UrgentPolicy::from_config(&config);
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        // Wednesday 10:00 and 23:00 in +08:00.
        assert_eq!(
            p.action_at(at("2026-12-02T02:00:00Z")),
            UrgentAction::Transfer
        );
        assert_eq!(p.action_at(at("2026-12-02T15:00:00Z")), UrgentAction::Flag);
        config.transfer.urgent_action = "flag".into();
        let p = UrgentPolicy::from_config(&config);
        assert_eq!(p.action_at(at("2026-12-02T02:00:00Z")), UrgentAction::Flag);
    }

    const UID: &str = "019ac1d2-0000-7000-8000-00000000000a";

    fn setup(dir: &tempfile::TempDir) -> Arc<UrgentWatch> {
        let dirs = super::super::aftercall::RecordDirs::new(&dir.path().join("calls"));
        super::super::aftercall::tests::pending_record(&dirs);
        let pending = dirs.pending;
        let tickets = TicketService::open(TicketConfig {
            db_path: dir.path().join("t.sqlite"),
            outbox_dir: dir.path().join("outbox"),
            ..TicketConfig::default()
        })
        .unwrap();
        Arc::new(UrgentWatch::new(tickets, pending))
    }

    fn meta(start_ms: u64) -> (CallMeta, tokio::sync::mpsc::UnboundedReceiver<CallRequest>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let call = CallMeta {
            call_uid: UID.into(),
            start_ms,
            reference: Some("261126000007".into()),
            requests: tx,
        };
        (call, rx)
    }

    /// Sends `t` through the watch and returns what comes out the other side.
    async fn pass(
        w: &Arc<UrgentWatch>,
        p: &UrgentPolicy,
        call: CallMeta,
        t: Transcript,
    ) -> Transcript {
        let (tx, rx) = oneshot::channel();
        let out = w.watch(p, call, rx);
        tx.send(t).unwrap();
        out.await.unwrap()
    }

    /// `flag`: the first urgent utterance commits the ticket at once (urgent, in progress,
    /// the trigger, the reference); a second urgent utterance of the same call does nothing
    /// more; the transcripts pass through unchanged.
    #[tokio::test]
    async fn flag_commits_once_per_call() {
        let dir = tempfile::tempdir().unwrap();
        let w = setup(&dir);
        let p = policy(UrgentAction::Flag);
        let first = heard(&[(200, "厨房燃气泄漏了")]);
        let (call, _rx) = meta(2000);
        assert_eq!(pass(&w, &p, call, first.clone()).await, first);
        let trigger = w.settle(UID).await.expect("triggered");
        assert_eq!(
            (trigger.word.as_str(), trigger.at_ms, trigger.action),
            ("燃气泄漏", 2200, UrgentAction::Flag)
        );
        let stored = w.tickets.store().list(None, 10).unwrap();
        assert_eq!(stored.len(), 1);
        let t = crate::ticket::store::parse_doc(&stored[0].ticket_id, &stored[0].document).unwrap();
        assert!(t.classification.urgent);
        assert_eq!(t.call.hangup.reason, IN_PROGRESS);
        assert_eq!(t.urgent_trigger.as_ref(), Some(&trigger));
        assert_eq!(t.reference.as_deref(), Some("261126000007"));
        assert_eq!(
            t.transcript.segments[0].start_ms, 2200,
            "times in the message"
        );

        let (call, _rx) = meta(6000);
        pass(&w, &p, call, heard(&[(0, "楼道里还着火了")])).await;
        assert_eq!(w.settle(UID).await, Some(trigger), "once per call");
        assert_eq!(w.counters().flag.load(Ordering::Relaxed), 1);
        assert_eq!(w.tickets.store().list(None, 10).unwrap().len(), 1);
    }

    /// `transfer`: the call is asked, once, to put the caller through to the target; no
    /// ticket before the call ends. A negated word asks nothing.
    #[tokio::test]
    async fn transfer_asks_the_call_once() {
        let dir = tempfile::tempdir().unwrap();
        let w = setup(&dir);
        let p = policy(UrgentAction::Transfer);
        let (call, mut rx) = meta(0);
        pass(&w, &p, call.clone(), heard(&[(0, "燃气灶打不着火")])).await;
        assert!(rx.try_recv().is_err(), "打不着火 is not a fire");
        pass(&w, &p, call.clone(), heard(&[(0, "有人受伤了")])).await;
        pass(&w, &p, call, heard(&[(0, "流血了")])).await;
        // Settled: the request (sent after the transcript is handed on) is out.
        let t = w.settle(UID).await.unwrap();
        assert_eq!(t.action, UrgentAction::Transfer);
        assert_eq!(t.word, "受伤");
        assert_eq!(
            rx.try_recv().unwrap(),
            CallRequest::Transfer {
                target: "sip:119@ops.example".into()
            }
        );
        assert!(rx.try_recv().is_err(), "once per call");
        assert!(w.tickets.store().list(None, 10).unwrap().is_empty());
    }
}
