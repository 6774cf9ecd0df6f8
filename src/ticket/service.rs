//! The runtime face of the ticket layer: create tickets, deliver them, flush on shutdown.

use arc_swap::ArcSwap;
use chrono::Utc;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::backoff::StoreBackoff;
use super::classify::Rules;
use super::delivery::{self, Outcome};
use super::early;
use super::fleet::{self, Fleet};
use super::queue::{DeliveryQueue, Finished, LocalQueue};
use super::record::{self, Draft};
use super::store::{Claimed, Created, DeliveryState, Store};
use super::v1;
use super::{CallFacts, Ticket, TicketConfig, TicketError};

mod second_pass;

/// Tickets still waiting after [`TicketService::flush`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushReport {
    /// Pending or in flight when flush returned (0 = everything delivered or dead-lettered).
    pub undelivered: u64,
    pub dead: u64,
}

/// Creates, stores and delivers tickets. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct TicketService {
    inner: Arc<Inner>,
}

/// What happened to tickets since start: creations and delivery attempt outcomes. Atomics,
/// read by the metrics endpoint.
#[derive(Debug, Default)]
pub struct DeliveryCounters {
    /// Tickets committed (a repeated `create` for the same call is not counted).
    pub created: AtomicU64,
    /// Tickets revised with the whole message's transcript (`second_pass`).
    pub revised: AtomicU64,
    /// Attempts that the intake accepted.
    pub delivered: AtomicU64,
    /// Attempts that failed transiently; the ticket is retried later.
    pub retried: AtomicU64,
    /// Tickets given up on (refused by the intake, or out of attempts).
    pub dead: AtomicU64,
    /// Ticket files written to the outbox folder (no intake URL).
    pub outbox_written: AtomicU64,
    /// Store operations that failed (busy, disk full, I/O) and are being retried.
    pub store_errors: AtomicU64,
    /// The last store operation of the delivery path failed: tickets are not moving until it
    /// succeeds again. `/readyz` says not ready meanwhile.
    pub store_failing: AtomicBool,
    /// Attempts the intake answered with a configuration problem on its side (401, 403,
    /// 404, 3xx): retried, never dead-lettered, and alerted on.
    pub intake_misconfigured: AtomicU64,
    /// The last answer of the intake was such a configuration problem (cleared by the next
    /// delivery): the alert.
    pub intake_failing: AtomicBool,
}

struct Inner {
    cfg: TicketConfig,
    /// Swapped whole by [`TicketService::reload_rules`]; a ticket being assembled keeps the
    /// rules it started with.
    rules: ArcSwap<Rules>,
    counters: DeliveryCounters,
    store: Arc<Store>,
    /// Where delivery takes tickets from: the local store, or the fleet's shared one.
    queue: Arc<dyn DeliveryQueue>,
    /// The fleet's shared store (`[tickets] store = "postgres"`).
    fleet: Option<Arc<Fleet>>,
    client: Option<reqwest::Client>,
    /// Wakes the delivery loop when a ticket was committed (or moved to the fleet store).
    wake: Arc<Notify>,
    /// Wakes the fleet mover when a ticket was committed.
    move_wake: Arc<Notify>,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TicketError> + Send + 'static,
) -> Result<T, TicketError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TicketError::Task(e.to_string()))?
}

impl TicketService {
    /// Opens the store (migrating it), loads the rules, applies the `HOTLINE_INTAKE_*`
    /// environment, and puts tickets left in flight by a crash back in the queue.
    /// Blocking (file I/O); call it at start-up.
    pub fn open(mut cfg: TicketConfig) -> Result<TicketService, TicketError> {
        cfg.apply_env();
        let rules = match &cfg.classification_path {
            Some(p) => Rules::load(p)?,
            None => Rules::builtin(),
        };
        if cfg.intake.concurrency == 0 {
            return Err(TicketError::Config("intake.concurrency must be > 0".into()));
        }
        let client = delivery::intake_client(&cfg.intake)?;
        let store = Arc::new(Store::open(&cfg.db_path)?);
        let corrections = fleet::corrections::gather(&store, cfg.fleet.as_ref(), false)?;
        let rules = super::classify::corrections::fold(rules, &corrections);
        let recovered = store.recover_in_flight(now_ms())?;
        if recovered > 0 {
            tracing::info!(
                recovered,
                "tickets left in flight by the last run are queued again"
            );
        }
        let fleet = match &cfg.fleet {
            Some(f) => Some(Arc::new(Fleet::new(f.clone(), &cfg.gateway_instance)?)),
            None => None,
        };
        let queue: Arc<dyn DeliveryQueue> = match &fleet {
            Some(f) => Arc::new(fleet::lease::LeaseQueue(f.clone())),
            None => Arc::new(LocalQueue(store.clone())),
        };
        Ok(TicketService {
            inner: Arc::new(Inner {
                cfg,
                rules: ArcSwap::from_pointee(rules),
                counters: DeliveryCounters::default(),
                store,
                queue,
                fleet,
                client,
                wake: Arc::new(Notify::new()),
                move_wake: Arc::new(Notify::new()),
            }),
        })
    }

    /// The configuration in effect (after environment overrides).
    pub fn config(&self) -> &TicketConfig {
        &self.inner.cfg
    }

    /// Creation and delivery outcome counters since start.
    pub fn counters(&self) -> &DeliveryCounters {
        &self.inner.counters
    }

    /// Load classification rules from `path` (`None`: the built-in table), retrain them with
    /// the operators' corrections in the store, and use them for tickets created from now
    /// on. On error the rules in use stay. Blocking (file I/O).
    pub fn reload_rules(&self, path: Option<&Path>) -> Result<(), TicketError> {
        let rules = match path {
            Some(p) => Rules::load(p)?,
            None => Rules::builtin(),
        };
        let corrections =
            fleet::corrections::gather(&self.inner.store, self.inner.cfg.fleet.as_ref(), false)?;
        let rules = super::classify::corrections::fold(rules, &corrections);
        self.inner.rules.store(Arc::new(rules));
        Ok(())
    }

    /// The classification rules in use (the spoken menu classifies what callers say).
    pub fn rules(&self) -> Arc<Rules> {
        self.inner.rules.load_full()
    }

    /// The fleet's shared store, when this gateway is part of one.
    pub fn fleet(&self) -> Option<&Arc<Fleet>> {
        self.inner.fleet.as_ref()
    }

    /// The store, for read-only inspection (admin views, tests).
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// Classifies the call, looks for a duplicate, commits the ticket and queues it for
    /// delivery. Returns once the ticket is durable (fsynced); delivery happens later.
    /// A second call with the same `call_uid` returns the first ticket unchanged, except
    /// when the first was an urgent early commit and these are the call's final facts: then
    /// they make its next revision (`ticket::early`).
    pub async fn create(&self, facts: CallFacts) -> Result<Ticket, TicketError> {
        let inner = self.inner.clone();
        let (ticket, new, queued) = blocking(move || {
            let ticket_id = Uuid::now_v7();
            let mut recording = facts.recording.as_ref().map(record::describe_recording);
            if let (Some(r), Some(base)) = (recording.as_mut(), &inner.cfg.public_url) {
                r.url = super::progress::recording_url(base, &ticket_id.to_string());
            }
            // Millisecond precision: what the store keeps and what receivers parse reliably.
            let created_at = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis())
                .unwrap_or_else(Utc::now);
            let started_ms = facts.started_at.timestamp_millis();
            let window = i64::try_from(inner.cfg.duplicate.window_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX);
            let draft = Draft {
                facts: &facts,
                ticket_id,
                created_at,
                gateway_instance: &inner.cfg.gateway_instance,
                recording: recording.clone(),
            };
            let created = inner.store.create(
                &facts.call_uid,
                &facts.caller,
                started_ms.saturating_sub(window),
                started_ms,
                created_at.timestamp_millis(),
                |candidates| {
                    let rules = inner.rules.load();
                    record::assemble(draft, &rules, &inner.cfg.duplicate, candidates)
                },
            )?;
            let (ticket, new, queued) = match created {
                Created::New(t) => (t, true, true),
                // The call's final facts after an urgent early commit: the next revision.
                Created::Existing(t) if early::awaits_final(&t) && !early::is_early(&facts) => {
                    let revise = early::Revise {
                        rules: &inner.rules.load(),
                        duplicate: &inner.cfg.duplicate,
                        gateway_instance: &inner.cfg.gateway_instance,
                        recording,
                        now_ms: now_ms(),
                    };
                    let revised = early::revise(&inner.store, &t, &facts, revise)?;
                    let changed = revised.revision != t.revision;
                    if changed {
                        tracing::info!(ticket = %revised.ticket_id, revision = revised.revision, "urgent ticket completed by its call's transcript");
                    }
                    (revised, false, changed)
                }
                Created::Existing(t) => (t, false, false),
            };
            if queued && inner.client.is_none() {
                write_outbox(&inner, &ticket.ticket_id.to_string(), &ticket)?;
            }
            Ok((ticket, new, queued))
        })
        .await?;
        if queued && !new {
            self.inner.wake.notify_one();
        }
        if new {
            self.inner.counters.created.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                ticket = %ticket.ticket_id,
                call_uid = %ticket.call.call_uid,
                call_id = %ticket.call.call_id,
                category = %ticket.classification.category_id,
                urgent = ticket.classification.urgent,
                "ticket committed"
            );
            self.inner.wake.notify_one();
            self.inner.move_wake.notify_one();
        }
        Ok(ticket)
    }

    /// Delivers committed tickets until `shutdown` completes (tokio task; run exactly one per
    /// store). Without an intake URL it only keeps the outbox folder complete. On shutdown,
    /// attempts still running are abandoned and queued again: the next run re-sends them
    /// with the same `Idempotency-Key`. In a fleet it also runs the mover, and delivers
    /// from the shared store.
    pub async fn run_delivery(
        &self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), TicketError> {
        let Some(fleet) = self.inner.fleet.clone() else {
            return self.deliver(shutdown).await;
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mover = tokio::spawn(fleet::mover::run(
            fleet,
            self.inner.store.clone(),
            self.inner.cfg.duplicate.clone(),
            self.inner.move_wake.clone(),
            self.inner.wake.clone(),
            stopped,
        ));
        let r = self.deliver(shutdown).await;
        let _ = stop.send(true);
        let _ = mover.await;
        r
    }

    async fn deliver(&self, shutdown: impl Future<Output = ()> + Send) -> Result<(), TicketError> {
        tokio::pin!(shutdown);
        let inner = &self.inner;
        let idle = Duration::from_millis(inner.cfg.intake.idle_poll_ms.max(10));
        let Some(client) = inner.client.clone() else {
            let mut backoff = store_backoff();
            loop {
                let i = inner.clone();
                let idle = match blocking(move || sweep_outbox(&i)).await {
                    Ok(()) => {
                        store_ok(inner, &mut backoff);
                        idle
                    }
                    Err(e) => store_failed(inner, &mut backoff, "writing the outbox", &e),
                };
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = inner.wake.notified() => {}
                    _ = tokio::time::sleep(idle) => {}
                }
            }
        };
        let url: Arc<str> = inner.cfg.intake.url.clone().unwrap_or_default().into();
        let permits = Arc::new(Semaphore::new(inner.cfg.intake.concurrency));
        let mut running: JoinSet<Result<(), TicketError>> = JoinSet::new();
        let mut backoff = store_backoff();
        loop {
            // Take every free permit first, then claim that many tickets: a claimed ticket
            // always has a slot, and unused permits go straight back.
            let mut slots = Vec::new();
            while let Ok(p) = permits.clone().try_acquire_owned() {
                slots.push(p);
            }
            if !slots.is_empty() {
                let n = slots.len();
                let claimed = match inner.queue.claim_due(now_ms(), n).await {
                    Ok(c) => c,
                    Err(e) => {
                        drop(slots);
                        let wait = store_failed(inner, &mut backoff, "claiming due tickets", &e);
                        tokio::select! {
                            _ = &mut shutdown => break,
                            _ = tokio::time::sleep(wait) => continue,
                        }
                    }
                };
                store_ok(inner, &mut backoff);
                for (c, permit) in claimed.into_iter().zip(slots.drain(..)) {
                    let (inner, client, url) = (inner.clone(), client.clone(), url.clone());
                    running.spawn(async move {
                        let r = attempt(&inner, &client, &url, c).await;
                        drop(permit);
                        r
                    });
                }
                drop(slots);
            }
            let wait = if permits.available_permits() == 0 {
                idle
            } else {
                match inner.queue.next_due_ms(now_ms()).await {
                    Ok(Some(due)) => {
                        Duration::from_millis(u64::try_from(due - now_ms()).unwrap_or(0).max(1))
                            .min(idle)
                    }
                    Ok(None) => idle,
                    Err(e) => store_failed(inner, &mut backoff, "reading the queue", &e),
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = inner.wake.notified() => {}
                Some(done) = running.join_next(), if !running.is_empty() => {
                    match done {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::error!(error = %e, "recording a delivery outcome failed"),
                        Err(e) => tracing::error!(error = %e, "delivery task failed"),
                    }
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
        running.shutdown().await;
        inner.queue.release_all(now_ms()).await?;
        Ok(())
    }

    /// Waits until no ticket is pending or in flight, or `deadline` passes. Needs
    /// [`Self::run_delivery`] running (with no intake URL, pending tickets are never "done":
    /// flush then only waits for the outbox files).
    pub async fn flush(&self, deadline: tokio::time::Instant) -> Result<FlushReport, TicketError> {
        loop {
            let store = self.inner.store.clone();
            let no_intake = self.inner.client.is_none();
            let in_fleet = self.inner.fleet.is_some();
            let report = blocking(move || {
                if in_fleet {
                    // Moved = in the shared store, where any instance delivers it.
                    return Ok(FlushReport {
                        undelivered: store.unmoved_count()?,
                        dead: 0,
                    });
                }
                let counts = store.counts()?;
                let get = |s| {
                    counts
                        .iter()
                        .find(|(st, _)| *st == s)
                        .map_or(0, |(_, n)| *n)
                };
                let undelivered = if no_intake {
                    store.outbox_backlog(usize::MAX >> 1)?.len() as u64
                } else {
                    get(DeliveryState::Pending) + get(DeliveryState::InFlight)
                };
                Ok(FlushReport {
                    undelivered,
                    dead: get(DeliveryState::Dead),
                })
            })
            .await?;
            if report.undelivered == 0 || tokio::time::Instant::now() >= deadline {
                return Ok(report);
            }
            self.inner.wake.notify_one();
            tokio::time::sleep_until(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(20)),
            )
            .await;
        }
    }
}

/// One delivery attempt and its bookkeeping.
async fn attempt(
    inner: &Arc<Inner>,
    client: &reqwest::Client,
    url: &str,
    claimed: Claimed,
) -> Result<(), TicketError> {
    let cfg = &inner.cfg.intake;
    let (key, body) = v1::wire(&claimed.ticket_id, &claimed.document, cfg.schema);
    let outcome = delivery::post_once(client, url, cfg.token.as_deref(), &key, body).await;
    let now = now_ms();
    let (state, next, status, error, body) = match outcome {
        Outcome::Delivered { status } => (DeliveryState::Delivered, now, Some(status), None, None),
        Outcome::Dead { status, body } => (
            DeliveryState::Dead,
            now,
            Some(status),
            Some(format!("HTTP {status}: refused by intake")),
            Some(body),
        ),
        Outcome::Retry {
            status,
            retry_after,
            error,
            config_problem,
        } => {
            if config_problem {
                inner
                    .counters
                    .intake_misconfigured
                    .fetch_add(1, Ordering::Relaxed);
                inner.counters.intake_failing.store(true, Ordering::Relaxed);
                tracing::error!(
                    ticket = %claimed.ticket_id,
                    ?status,
                    "intake refuses the gateway, not the ticket: check intake.url and the token; \
                     the ticket is kept and retried"
                );
            }
            // A misconfigured intake is not the ticket's fault: it never uses up attempts.
            if !config_problem && cfg.max_attempts.is_some_and(|max| claimed.attempts >= max) {
                (
                    DeliveryState::Dead,
                    now,
                    status,
                    Some(format!("gave up: {error}")),
                    None,
                )
            } else {
                let delay = match retry_after {
                    Some(ra) => ra.min(Duration::from_secs(cfg.max_retry_after_secs)),
                    None => delivery::backoff_delay(
                        claimed.attempts,
                        Duration::from_millis(cfg.backoff_base_ms),
                        Duration::from_millis(cfg.backoff_max_ms),
                    ),
                };
                let next = now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                (DeliveryState::Pending, next, status, Some(error), None)
            }
        }
    };
    let c = &inner.counters;
    if state == DeliveryState::Delivered {
        c.intake_failing.store(false, Ordering::Relaxed);
    }
    match state {
        DeliveryState::Delivered => c.delivered.fetch_add(1, Ordering::Relaxed),
        DeliveryState::Dead => c.dead.fetch_add(1, Ordering::Relaxed),
        _ => c.retried.fetch_add(1, Ordering::Relaxed),
    };
    match state {
        DeliveryState::Delivered => {
            tracing::info!(ticket = %claimed.ticket_id, attempt = claimed.attempts, "ticket delivered")
        }
        DeliveryState::Dead => {
            tracing::warn!(ticket = %claimed.ticket_id, ?status, "ticket dead-lettered")
        }
        _ => {
            tracing::debug!(ticket = %claimed.ticket_id, ?error, next_in_ms = next - now, "delivery will be retried")
        }
    }
    // The outcome must be recorded, or the ticket stays in flight until the next start:
    // retried until the store takes it (the task is aborted on shutdown, and the next
    // start queues the ticket again).
    let mut backoff = store_backoff();
    loop {
        let finished = Finished {
            ticket_id: claimed.ticket_id.clone(),
            attempt: claimed.attempts,
            now_ms: now,
            state,
            next_attempt_at_ms: next,
            status,
            error: error.clone(),
            body: body.clone(),
        };
        match inner.queue.finish_attempt(finished).await {
            Ok(()) => {
                store_ok(inner, &mut backoff);
                return Ok(());
            }
            Err(e) => {
                let wait = store_failed(inner, &mut backoff, "recording a delivery outcome", &e);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

fn store_backoff() -> StoreBackoff {
    StoreBackoff::new(Duration::from_millis(100), Duration::from_secs(5))
}

/// Counts and logs a failed store operation of the delivery path and says how long to wait
/// before trying again. In a fleet, the delivery path works on the shared store: its outage
/// is the fleet's alert and leaves `/readyz` alone (calls are still taken and committed).
fn store_failed(
    inner: &Inner,
    backoff: &mut StoreBackoff,
    what: &str,
    e: &TicketError,
) -> Duration {
    if let Some(f) = &inner.fleet {
        f.failed(what, e);
        return backoff.failed();
    }
    let c = &inner.counters;
    c.store_errors.fetch_add(1, Ordering::Relaxed);
    if !c.store_failing.swap(true, Ordering::Relaxed) {
        tracing::error!(error = %e, what, "ticket store failing: delivery waits and retries");
    }
    backoff.failed()
}

fn store_ok(inner: &Inner, backoff: &mut StoreBackoff) {
    backoff.succeeded();
    if let Some(f) = &inner.fleet {
        return f.ok();
    }
    if inner.counters.store_failing.swap(false, Ordering::Relaxed) {
        tracing::info!("ticket store works again: delivery resumes");
    }
}

fn write_outbox(inner: &Inner, id: &str, ticket: &Ticket) -> Result<(), TicketError> {
    let doc = serde_json::to_string(ticket).map_err(|e| TicketError::Encode(e.to_string()))?;
    let (_, doc) = v1::wire(id, &doc, inner.cfg.intake.schema);
    delivery::write_outbox_file(&inner.cfg.outbox_dir, id, &doc)?;
    inner
        .counters
        .outbox_written
        .fetch_add(1, Ordering::Relaxed);
    inner.store.mark_outbox_written(id, now_ms())
}

/// Writes outbox files missing after a crash between commit and file write.
fn sweep_outbox(inner: &Inner) -> Result<(), TicketError> {
    for c in inner.store.outbox_backlog(256)? {
        let (_, doc) = v1::wire(&c.ticket_id, &c.document, inner.cfg.intake.schema);
        delivery::write_outbox_file(&inner.cfg.outbox_dir, &c.ticket_id, &doc)?;
        inner
            .counters
            .outbox_written
            .fetch_add(1, Ordering::Relaxed);
        inner.store.mark_outbox_written(&c.ticket_id, now_ms())?;
    }
    Ok(())
}
