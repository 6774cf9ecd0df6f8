//! Assembles the daemon from its parts: config → prompts → ticket store → SIP endpoint →
//! call manager, plus the after-call pipeline that turns call records into tickets.
//! Used by `serve`, by `demo`, and by tests that want a gateway in-process.

pub mod aftercall;
#[cfg(test)]
mod facts_tests;
mod live;
mod live_finish;
mod lookup;
mod menu_speech;
mod reload;
mod second_pass;
pub mod storage;
pub mod urgent;

pub use reload::{ReloadError, ReloadReport};

use crate::admin::metrics::{self, Registry};
use crate::admin::Health;
use crate::call::manager::{CallCounters, CallManager, RecordSink, RunState, Services};
use crate::call::prompts::PromptLibrary;
use crate::config::Config;
use crate::media::session::PortPool;
use crate::media::stats::MediaCounters;
use crate::sip::endpoint::{self, EndpointCounters, EndpointHandle};
use crate::sip::guard::GuardCounters;
use crate::sip::transaction::TimerConfig;
use crate::ticket::{TicketConfig, TicketService};
use aftercall::RecordDirs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot load prompts: {0}")]
    Prompts(#[from] crate::media::prompt::PromptError),
    #[error("cannot bind SIP socket {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("transcription: {0}")]
    Asr(String),
    #[error("ticket store: {0}")]
    Tickets(#[from] crate::ticket::TicketError),
    #[error("cannot create {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A running gateway.
pub struct Gateway {
    endpoint: EndpointHandle,
    shutdown: Arc<watch::Sender<RunState>>,
    /// The services new calls get; replaced by [`Gateway::reload`].
    live: Arc<arc_swap::ArcSwap<Services>>,
    shared: reload::Shared,
    health: Arc<Health>,
    manager: tokio::task::JoinHandle<()>,
    calls: Arc<CallCounters>,
    aftercall: tokio::task::JoinHandle<()>,
    tickets: TicketService,
    delivery: tokio::task::JoinHandle<()>,
    stop_delivery: tokio::sync::oneshot::Sender<()>,
    storage: tokio::task::JoinHandle<()>,
    stop_storage: watch::Sender<bool>,
    /// Urgent words heard live (its counters, for `/metrics`).
    urgent: Arc<urgent::UrgentWatch>,
}

impl Gateway {
    /// Load prompts, bind the SIP socket, start answering. `on_record` receives every
    /// finished call's record.
    pub async fn start(
        config: Config,
        on_record: Option<RecordSink>,
    ) -> Result<Gateway, GatewayError> {
        let config = Arc::new(config);
        let prompts = Arc::new(PromptLibrary::load(
            &config.prompts.dir,
            &reload::languages(&config),
        )?);
        let record_dirs = RecordDirs::new(&config.storage.calls_dir());
        for dir in [
            config.storage.recordings_dir(),
            config.storage.outbox_dir(),
            record_dirs.pending.clone(),
        ] {
            std::fs::create_dir_all(&dir).map_err(|source| GatewayError::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let timers = TimerConfig {
            t1: Duration::from_millis(config.sip.t1_ms),
            t2: Duration::from_millis(config.sip.t2_ms),
            t4: Duration::from_millis(config.sip.t4_ms),
        };
        let endpoint_config = endpoint::EndpointConfig {
            timers,
            tcp: config.sip.tcp,
            max_message_bytes: config.sip.max_message_bytes,
            guard: Some(config.guard_config()),
            tcp_limits: config.sip.tcp_limits(),
            event_queue: 0,
        };
        let (endpoint, events) = endpoint::start_with(config.sip.listen, endpoint_config)
            .await
            .map_err(|source| GatewayError::Bind {
                addr: config.sip.listen,
                source,
            })?;
        let instance = instance_id(config.sip.instance_id.as_deref(), endpoint.local_addr());

        // Tickets: open the store (a blocking open: SQLite migrations), start delivery, and
        // list records an earlier run left pending before the first call can add to them.
        let ticket_cfg = ticket_config(&config, &instance);
        let tickets = tokio::task::spawn_blocking(move || TicketService::open(ticket_cfg))
            .await
            .map_err(|e| crate::ticket::TicketError::Task(e.to_string()))??;
        let leftovers = aftercall::pending_records(&record_dirs.pending);
        let (stop_delivery, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let delivery = {
            let tickets = tickets.clone();
            tokio::spawn(async move {
                if let Err(e) = tickets
                    .run_delivery(async {
                        let _ = stop_rx.await;
                    })
                    .await
                {
                    tracing::error!(error = %e, "ticket delivery stopped");
                }
            })
        };
        let disk = Arc::new(storage::DiskGuard::new(config.storage.min_free_mb));
        let (stop_storage, storage_rx) = watch::channel(false);
        let storage = tokio::spawn(storage::run(
            disk.clone(),
            tickets.clone(),
            config.storage.clone(),
            storage_rx,
        ));
        let asr = start_asr(&config).await?;
        let (finished_tx, finished_rx) = mpsc::unbounded_channel::<PathBuf>();
        let urgent = Arc::new(urgent::UrgentWatch::new(
            tickets.clone(),
            record_dirs.pending.clone(),
        ));
        let live = asr
            .clone()
            .map(|a| Arc::new(live::LiveTranscripts::new(a).with_urgent(urgent.clone())));
        let aftercall = tokio::spawn(aftercall::run(
            tickets.clone(),
            asr,
            live.clone(),
            record_dirs.clone(),
            leftovers,
            finished_rx,
        ));
        let shared = reload::Shared {
            ports: Arc::new(PortPool::new(
                config.media.rtp_ip,
                config.media.rtp_port_min,
                config.media.rtp_port_max,
            )),
            records_dir: record_dirs.pending.clone(),
            menu_speech: live
                .as_ref()
                .map(|l| Arc::new(menu_speech::MenuSpeech::new(l.pool_arc(), tickets.clone()))),
            live,
            sink: Arc::new(move |record, path| {
                if let Some(hook) = &on_record {
                    hook(record, path);
                }
                let _ = finished_tx.send(path.to_path_buf());
            }),
            media_counters: Arc::new(MediaCounters::default()),
            disk,
            instance,
            lookup: Arc::new(lookup::StoreTickets {
                store: tickets.store().clone(),
                // validated 0-99
                instance: config.tickets.instance_number.min(99) as u8,
            }),
            started_with: config.clone(),
        };
        let trunks = config.trunks.len();
        let live = Arc::new(arc_swap::ArcSwap::from_pointee(reload::services(
            config, prompts, &shared,
        )));
        let manager =
            CallManager::new(endpoint.clone(), live.load_full()).with_live_services(live.clone());
        let calls = manager.counters();
        let (shutdown, shutdown_rx) = watch::channel(RunState::Serving);
        // After the drain deadline, how long hung-up calls get to write their records.
        let grace = Duration::from_secs(10);
        let manager = tokio::spawn(manager.run(events, shutdown_rx, grace));
        let health = Arc::new(Health::default());
        health.add_check(Arc::new(metrics::TicketSource(tickets.clone())));
        health.add_check(shared.disk.clone());
        health.set_ready(true);
        tracing::info!(sip = %endpoint.local_addr(), tcp = endpoint.serves_tcp(), trunks, "gateway answering");
        Ok(Gateway {
            endpoint,
            shutdown: Arc::new(shutdown),
            live,
            shared,
            health,
            manager,
            calls,
            aftercall,
            tickets,
            delivery,
            stop_delivery,
            storage,
            stop_storage,
            urgent,
        })
    }

    /// Where SIP is answered.
    pub fn sip_addr(&self) -> SocketAddr {
        self.endpoint.local_addr()
    }

    pub fn sip_counters(&self) -> &Arc<EndpointCounters> {
        self.endpoint.counters()
    }

    /// The scanner/flood guard's decisions (drops, bans), for metrics.
    pub fn guard_counters(&self) -> &Arc<GuardCounters> {
        self.endpoint.guard_counters()
    }

    pub fn call_counters(&self) -> &Arc<CallCounters> {
        &self.calls
    }

    /// Media counters shared by every call's RTP session.
    pub fn media_counters(&self) -> &Arc<MediaCounters> {
        &self.shared.media_counters
    }

    pub fn tickets(&self) -> &TicketService {
        &self.tickets
    }

    /// Readiness and drain state, for `/readyz`.
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// The configuration new calls get (the last one loaded).
    pub fn config(&self) -> Arc<Config> {
        self.live.load().config.clone()
    }

    /// Every metric source of this gateway, for the admin listener.
    pub fn metrics(&self) -> Registry {
        let mut r = Registry::default();
        r.register(self.health.clone());
        r.register(Arc::new(metrics::CallSource(self.calls.clone())));
        r.register(Arc::new(metrics::SipSource(self.sip_counters().clone())));
        r.register(Arc::new(metrics::MediaSource(
            self.shared.media_counters.clone(),
        )));
        r.register(Arc::new(metrics::TicketSource(self.tickets.clone())));
        r.register(Arc::new(metrics::GuardSource(
            self.endpoint.guard_counters().clone(),
        )));
        r.register(self.shared.disk.clone());
        r.register(Arc::new(self.urgent.metrics()));
        r
    }

    /// A handle that starts (or shortens) the drain while [`Gateway::finish`] runs.
    pub fn drain_control(&self) -> DrainControl {
        DrainControl {
            state: self.shutdown.clone(),
            health: self.health.clone(),
        }
    }

    /// Drain for up to `limits.drain_timeout_secs`, then stop (see [`Gateway::finish`]).
    pub async fn shutdown(self) {
        let drain = Duration::from_secs(self.config().limits.drain_timeout_secs);
        self.drain_control().drain(drain);
        self.finish().await;
    }

    /// Hang up on every call at once (BYE), then stop.
    pub async fn shutdown_now(self) {
        self.drain_control().drain(Duration::ZERO);
        self.finish().await;
    }

    /// Wait for the drain started by [`DrainControl::drain`] to end (every call finished or
    /// hung up at the deadline), ticket the records, give delivery a few seconds to empty
    /// its queue, then stop. Undelivered tickets stay in the store for the next start.
    pub async fn finish(self) {
        let _ = self.manager.await;
        self.endpoint.shutdown();
        // The manager is gone; once the services (which hold the record sink) are dropped
        // too, the after-call task drains and ends.
        drop(self.live);
        drop(self.shared);
        let _ = self.aftercall.await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        match self.tickets.flush(deadline).await {
            Ok(r) if r.undelivered > 0 => {
                tracing::warn!(
                    undelivered = r.undelivered,
                    "tickets left for the next start"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "ticket flush failed"),
        }
        let _ = self.stop_delivery.send(());
        let _ = self.delivery.await;
        let _ = self.stop_storage.send(true);
        let _ = self.storage.await;
    }
}

/// Starts the drain of a running gateway: new calls get 503 and `/readyz` says 503.
#[derive(Clone)]
pub struct DrainControl {
    state: Arc<watch::Sender<RunState>>,
    health: Arc<Health>,
}

impl DrainControl {
    /// Let calls in progress go on for at most `within` from now; a second call can only
    /// shorten the wait.
    pub fn drain(&self, within: Duration) {
        self.health.set_draining();
        let deadline = tokio::time::Instant::now() + within;
        self.state.send_modify(|s| {
            *s = match *s {
                RunState::Draining { deadline: d } if d <= deadline => *s,
                _ => RunState::Draining { deadline },
            }
        });
    }
}

/// Load the Whisper model once (seconds of blocking I/O, so off the runtime's threads).
/// A missing model is an error only when `asr.required`; otherwise the gateway answers
/// calls without transcripts and says so loudly.
async fn start_asr(config: &Config) -> Result<Option<Arc<crate::asr::AsrPool>>, GatewayError> {
    let a = &config.asr;
    if !a.enabled {
        return Ok(None);
    }
    if !a.model.exists() && !a.required {
        tracing::warn!(
            model = %a.model.display(),
            "no Whisper model: tickets will have no transcript (run `models/fetch.sh base`)"
        );
        return Ok(None);
    }
    let mut cfg = crate::asr::AsrConfig {
        model_path: a.model.clone(),
        threads_per_worker: a.threads_per_worker.max(1),
        queue_depth: a.queue_depth.max(1),
        time_budget: Duration::from_secs(a.time_budget_secs.max(1)),
        beam_size: a.beam_size.max(1),
        context_chars: a.context_chars,
        second_pass: a.second_pass,
        careful_beam_size: a.second_pass_beam_size.max(1),
        homophones: a.homophones,
        ..crate::asr::AsrConfig::default()
    };

    if a.workers > 0 {
        cfg.workers = a.workers;
    }
    cfg.language = config.prompts.language.clone();
    let config = config.clone();
    let pool = tokio::task::spawn_blocking(move || {
        // the table is parsed (and its model trained) here, off the runtime
        let vocabulary = table_vocabulary(&config);
        let ordinary = zh_prompt(&vocabulary, &config.asr.initial_prompt);
        if ordinary.is_empty() {
            cfg.initial_prompts.remove("zh");
        } else {
            cfg.initial_prompts.insert("zh".to_string(), ordinary);
        }
        let careful = zh_prompt(&vocabulary, &config.asr.second_pass_prompt);
        cfg.careful_prompts.insert("zh".to_string(), careful);
        let bias = config.asr.keyword_bias != "off";
        if bias || config.asr.keyword_rescoring {
            cfg.keywords = crate::asr::prompt::keywords(&vocabulary);
        }
        cfg.bias_ordinary = config.asr.keyword_bias == "all";
        if !bias {
            cfg.bias_bonus = None;
        }
        if !config.asr.keyword_rescoring {
            cfg.rescore_prior = None;
        }
        crate::asr::AsrPool::start(cfg)
    })
    .await
    .map_err(|e| GatewayError::Asr(e.to_string()))?
    .map_err(|e| GatewayError::Asr(e.to_string()))?;
    tracing::info!(model = pool.model_name(), "transcription ready");
    Ok(Some(Arc::new(pool)))
}

/// The classification table's words by category, for Whisper's prompt and keyword bias (the
/// built-in table when the configured one cannot be read: the ticket layer reports that).
fn table_vocabulary(config: &Config) -> Vec<Vec<String>> {
    reload::classification_path(config)
        .and_then(|p| crate::ticket::classify::Rules::load(&p).ok())
        .unwrap_or_else(crate::ticket::classify::Rules::builtin)
        .vocabulary()
}

/// `[asr] initial_prompt` or `second_pass_prompt` for Mandarin: `"auto"` is the built-in
/// sentence followed by words of the classification table.
fn zh_prompt(vocabulary: &[Vec<String>], setting: &str) -> String {
    if setting != "auto" {
        return setting.to_string();
    }
    crate::asr::prompt::auto(vocabulary)
}

/// The ticket layer's settings, from the gateway's configuration.
fn ticket_config(config: &Config, instance: &str) -> TicketConfig {
    let mut t = TicketConfig {
        db_path: config.storage.ticket_db(),
        outbox_dir: config.storage.outbox_dir(),
        gateway_instance: instance.to_string(),
        classification_path: reload::classification_path(config),
        ..TicketConfig::default()
    };
    let i = &config.intake;
    t.intake.url = (!i.url.is_empty()).then(|| i.url.clone());
    t.intake.token = (!i.token.is_empty()).then(|| i.token.clone());
    t.intake.schema = i.schema;
    t.intake.concurrency = i.concurrency;
    t.intake.connect_timeout_ms = i.connect_timeout_ms;
    t.intake.request_timeout_ms = i.request_timeout_ms;
    t.intake.backoff_base_ms = i.backoff_base_ms;
    t.intake.backoff_max_ms = i.backoff_max_ms;
    t.duplicate.window_secs = config.tickets.duplicate_window_secs;
    t.duplicate.similarity_threshold = config.tickets.duplicate_threshold;
    t.public_url = Some(config.console.public_url.clone());
    if config.tickets.store == "postgres" {
        t.fleet = Some(crate::ticket::fleet::FleetConfig {
            url: config.tickets.url.clone(),
            lease: Duration::from_secs(config.tickets.lease_secs),
            ..Default::default()
        });
    }
    t
}

/// Names this gateway in call records and tickets: `[sip] instance_id` when set, else host
/// name plus SIP port (unique on one machine; set it explicitly when instances move between
/// hosts or containers share a host name).
fn instance_id(configured: Option<&str>, sip: SocketAddr) -> String {
    if let Some(id) = configured {
        return id.to_string();
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "gateway".into());
    format!("{host}:{}", sip.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_id_is_the_configured_one_or_host_and_port() {
        let sip: SocketAddr = "127.0.0.1:5071".parse().unwrap();
        assert_eq!(instance_id(Some("gw-a"), sip), "gw-a");
        let default = instance_id(None, sip);
        assert!(default.ends_with(":5071"), "{default}");
        assert!(default.len() > ":5071".len(), "{default}");
    }
}
