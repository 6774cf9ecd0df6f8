//! Assembles the daemon from its parts: config → prompts → SIP endpoint → call manager.
//! Used by `serve`, by `demo`, and by tests that want a gateway in-process.

use crate::call::ivr::IvrSettings;
use crate::call::manager::{CallCounters, CallManager, RecordSink, Services};
use crate::call::prompts::PromptLibrary;
use crate::config::Config;
use crate::media::session::PortPool;
use crate::sip::endpoint::{self, EndpointCounters, EndpointHandle};
use crate::sip::transaction::TimerConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

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
    shutdown: watch::Sender<bool>,
    manager: tokio::task::JoinHandle<()>,
    calls: Arc<CallCounters>,
}

impl Gateway {
    /// Load prompts, bind the SIP socket, start answering. `on_record` receives every
    /// finished call's record.
    pub async fn start(
        config: Config,
        on_record: Option<RecordSink>,
    ) -> Result<Gateway, GatewayError> {
        let config = Arc::new(config);
        let mut languages: Vec<String> = vec![config.prompts.language.clone()];
        languages.extend(config.numbers.iter().filter_map(|n| n.language.clone()));
        let prompts = Arc::new(PromptLibrary::load(&config.prompts.dir, &languages)?);
        for dir in [config.storage.recordings_dir(), config.storage.outbox_dir()] {
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
        let (endpoint, events) =
            endpoint::start(config.sip.listen, timers)
                .await
                .map_err(|source| GatewayError::Bind {
                    addr: config.sip.listen,
                    source,
                })?;
        let instance = instance_id(endpoint.local_addr());
        let services = Arc::new(Services {
            ivr: Arc::new(IvrSettings {
                menu: config.menu.clone(),
                recording: config.recording.clone(),
                max_call_duration: Duration::from_secs(config.limits.max_call_duration_secs),
                prompts,
                recordings_dir: config.storage.recordings_dir(),
                instance,
            }),
            ports: Arc::new(PortPool::new(
                config.media.rtp_ip,
                config.media.rtp_port_min,
                config.media.rtp_port_max,
            )),
            outbox_dir: config.storage.outbox_dir(),
            on_record,
            config: config.clone(),
        });
        let manager = CallManager::new(endpoint.clone(), services);
        let calls = manager.counters();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let drain = Duration::from_secs(10);
        let manager = tokio::spawn(manager.run(events, shutdown_rx, drain));
        tracing::info!(sip = %endpoint.local_addr(), "gateway answering");
        Ok(Gateway {
            endpoint,
            shutdown,
            manager,
            calls,
        })
    }

    /// Where SIP is answered.
    pub fn sip_addr(&self) -> SocketAddr {
        self.endpoint.local_addr()
    }

    pub fn sip_counters(&self) -> &Arc<EndpointCounters> {
        self.endpoint.counters()
    }

    pub fn call_counters(&self) -> &Arc<CallCounters> {
        &self.calls
    }

    /// End every call (BYE), wait for their records, stop the endpoint.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.manager.await;
        self.endpoint.shutdown();
    }
}

/// Names this gateway in call records: host name plus SIP port, unique on one machine.
fn instance_id(sip: SocketAddr) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "gateway".into());
    format!("{host}:{}", sip.port())
}
