//! Configuration reload (SIGHUP) without dropping calls.
//!
//! The new file is read, validated (every error with key and line), its files checked, its
//! prompts loaded and its classification rules parsed, all before anything changes; only
//! then are new [`Services`] swapped in. The call manager picks them up before its next
//! event: new calls get the new numbers, menu, prompts and limits, calls in progress keep
//! the `Arc<Services>` they started with. A bad file changes nothing.
//!
//! What is bound or opened at start (SIP socket and timers, RTP range, data directory,
//! intake client, duplicate detection, admin listener) cannot change under a running
//! daemon: a change there is logged as "needs restart" and the old value stays in effect.

use super::Gateway;
use crate::call::ivr::IvrSettings;
use crate::call::manager::{RecordSink, Services};
use crate::call::prompts::PromptLibrary;
use crate::call::record::CallRecord;
use crate::config::{Config, ConfigError};
use crate::media::session::PortPool;
use crate::media::stats::MediaCounters;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where every finished call's record goes; shared by all generations of [`Services`].
pub(super) type SharedSink = Arc<dyn Fn(&CallRecord, &Path) + Send + Sync>;

/// What stays the same across reloads and goes into every [`Services`].
pub(super) struct Shared {
    pub ports: Arc<PortPool>,
    pub records_dir: PathBuf,
    /// Utterances of messages being recorded, transcribed while the caller talks.
    pub live: Option<Arc<super::live::LiveTranscripts>>,
    /// The spoken menu's ears (`None` without a Whisper model: keys only).
    pub menu_speech: Option<Arc<super::menu_speech::MenuSpeech>>,
    pub sink: SharedSink,
    pub media_counters: Arc<MediaCounters>,
    /// Free-space guard: its flag refuses new calls when the disk is nearly full.
    pub disk: Arc<super::storage::DiskGuard>,
    pub instance: String,
    /// Where calls get their reference numbers and `lookup` steps a ticket's progress.
    pub lookup: Arc<dyn crate::call::flow::TicketLookup>,
    /// Effective values of what needs a restart, as the daemon started.
    pub started_with: Arc<Config>,
}

/// Why a reload was refused; the old configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{} configuration error(s)", .0.len())]
    Config(Vec<ConfigError>),
    #[error("cannot load prompts: {0}")]
    Prompts(#[from] crate::media::prompt::PromptError),
    #[error("{0}")]
    Rules(#[from] crate::ticket::TicketError),
    #[error("reload task failed: {0}")]
    Task(String),
}

/// What a successful reload reports.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Dotted keys whose new value takes effect only after a restart.
    pub needs_restart: Vec<&'static str>,
}

/// Every language the configuration uses.
pub(super) fn languages(config: &Config) -> Vec<String> {
    let mut languages: Vec<String> = vec![config.prompts.language.clone()];
    languages.extend(config.numbers.iter().filter_map(|n| n.language.clone()));
    languages.extend(crate::config::FlowConfig::effective(config).languages());
    languages
}

pub(super) fn classification_path(config: &Config) -> Option<PathBuf> {
    (!config.tickets.classification.is_empty())
        .then(|| PathBuf::from(&config.tickets.classification))
}

/// The services calls see, from one configuration snapshot.
pub(super) fn services(config: Arc<Config>, prompts: Arc<PromptLibrary>, s: &Shared) -> Services {
    let sink = s.sink.clone();
    let on_record: RecordSink = Box::new(move |record, path| sink(record, path));
    Services {
        ivr: Arc::new(IvrSettings {
            // The flow of new calls; calls in progress keep the one they started with.
            flow: Arc::new(
                crate::call::flow::Flow::from_config(&config)
                    .with_spoken_menu(s.menu_speech.is_some()),
            ),
            lookup: s.lookup.clone(),
            menu: config.menu.clone(),
            ivr: config.ivr.clone(),
            recording: config.recording.clone(),
            max_call_duration: Duration::from_secs(config.limits.max_call_duration_secs),
            prompts,
            recordings_dir: s.started_with.storage.recordings_dir(),
            instance: s.instance.clone(),
            on_utterance: s
                .live
                .clone()
                .map(|live| -> crate::call::ivr::UtteranceSink {
                    let urgent = super::urgent::UrgentPolicy::from_config(&config);
                    Box::new(move |u| live.offer(u, Some(&urgent)))
                }),
            on_menu_speech: s
                .menu_speech
                .clone()
                .map(|m| -> crate::call::ivr::MenuListener {
                    let menu = config.menu.clone();
                    Box::new(move |r| m.hear(r, &menu))
                }),
        }),
        ports: s.ports.clone(),
        records_dir: s.records_dir.clone(),
        on_record: Some(on_record),
        media_counters: s.media_counters.clone(),
        disk_low: s.disk.low.clone(),
        config,
    }
}

/// Keys read once at start; a different value in the new file needs a restart.
fn restart_keys(old: &Config, new: &Config) -> Vec<&'static str> {
    fn differs<T: serde::Serialize>(a: &T, b: &T) -> bool {
        serde_json::to_value(a).ok() != serde_json::to_value(b).ok()
    }
    let mut keys = Vec::new();
    let mut check = |key: &'static str, changed: bool| {
        if changed {
            keys.push(key);
        }
    };
    check("sip.listen", old.sip.listen != new.sip.listen);
    check(
        "sip.t1_ms/t2_ms/t4_ms",
        (old.sip.t1_ms, old.sip.t2_ms, old.sip.t4_ms)
            != (new.sip.t1_ms, new.sip.t2_ms, new.sip.t4_ms),
    );
    check("media.rtp_ip", old.media.rtp_ip != new.media.rtp_ip);
    check(
        "media.rtp_port_min/rtp_port_max",
        (old.media.rtp_port_min, old.media.rtp_port_max)
            != (new.media.rtp_port_min, new.media.rtp_port_max),
    );
    check(
        "storage.data_dir",
        old.storage.data_dir != new.storage.data_dir,
    );
    check("intake", differs(&old.intake, &new.intake));
    check(
        "tickets.duplicate_window_secs/duplicate_threshold",
        old.tickets.duplicate_window_secs != new.tickets.duplicate_window_secs
            || old.tickets.duplicate_threshold != new.tickets.duplicate_threshold,
    );
    check("admin.listen", old.admin.listen != new.admin.listen);
    check("admin.token", old.admin.token != new.admin.token);
    check(
        "storage.retention_days/min_free_mb",
        old.storage.retention_days != new.storage.retention_days
            || old.storage.min_free_mb != new.storage.min_free_mb,
    );
    check("console", differs(&old.console, &new.console));
    check("asr", differs(&old.asr, &new.asr));
    keys
}

/// Everything that can fail, done off the runtime: read and validate the file, check the
/// files it names, load its prompts.
fn prepare(path: &Path) -> Result<(Config, PromptLibrary), ReloadError> {
    let config = Config::load(path).map_err(ReloadError::Config)?;
    let base = std::env::current_dir().unwrap_or_default();
    let file_errors = config.check_files(&base);
    if !file_errors.is_empty() {
        return Err(ReloadError::Config(file_errors));
    }
    let prompts = PromptLibrary::load(&config.prompts.dir, &languages(&config))?;
    Ok((config, prompts))
}

impl Gateway {
    /// Re-read `path` and, if it is valid, use it for new calls. On error nothing changes.
    /// Counts the result in the admin health gauges.
    pub async fn reload(&self, path: &Path) -> Result<ReloadReport, ReloadError> {
        let r = self.try_reload(path).await;
        let counter = match &r {
            Ok(_) => &self.health.reloads_ok,
            Err(_) => &self.health.reloads_failed,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        r
    }

    async fn try_reload(&self, path: &Path) -> Result<ReloadReport, ReloadError> {
        let owned = path.to_path_buf();
        let (config, prompts) = tokio::task::spawn_blocking(move || prepare(&owned))
            .await
            .map_err(|e| ReloadError::Task(e.to_string()))??;
        // Rules last among the fallible steps: storing them is the first change made.
        let tickets = self.tickets.clone();
        let rules = classification_path(&config);
        tokio::task::spawn_blocking(move || tickets.reload_rules(rules.as_deref()))
            .await
            .map_err(|e| ReloadError::Task(e.to_string()))??;
        let report = ReloadReport {
            needs_restart: restart_keys(&self.shared.started_with, &config),
        };
        // The SIP guard (rate limits, scanner list, trunk source addresses) follows too.
        self.endpoint.set_guard(config.guard_config());
        let services = services(Arc::new(config), Arc::new(prompts), &self.shared);
        self.live.store(Arc::new(services));
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_resources_need_a_restart_and_the_rest_does_not() {
        let old = Config::default();
        let mut new = Config::default();
        new.menu.max_attempts = 5;
        new.limits.max_calls = 3;
        new.prompts.language = "en".into();
        assert!(restart_keys(&old, &new).is_empty());
        new.sip.listen.set_port(5070);
        new.media.rtp_port_max = 30000;
        new.intake.url = "https://intake.example/api".into();
        assert_eq!(
            restart_keys(&old, &new),
            vec!["sip.listen", "media.rtp_port_min/rtp_port_max", "intake"]
        );
    }
}
