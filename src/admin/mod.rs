//! The admin HTTP listener: `/metrics` (Prometheus text), `/healthz` (the process answers)
//! and `/readyz` (SIP is bound and the gateway is not draining: load balancers and
//! orchestrators stop sending calls on 503).
//!
//! Loopback by default (`[admin] listen`): the endpoints have no authentication, and what
//! they show (call volumes, error rates) is for the operator only. axum on its own small
//! task; a scrape renders the registry on a blocking thread because the ticket depth comes
//! from SQLite.

pub mod metrics;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics::Registry;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// What `/readyz` and the gateway's own gauges report; shared with the gateway, which
/// flips the flags.
#[derive(Debug, Default)]
pub struct Health {
    /// SIP socket bound and the call manager running.
    ready: AtomicBool,
    /// SIGTERM received: new calls are refused.
    draining: AtomicBool,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Ready to take calls.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.is_draining()
    }
}

impl metrics::MetricSource for Health {
    fn collect(&self, out: &mut metrics::Exposition) {
        out.gauge(
            "hotline_ready",
            "1 when taking calls (SIP bound, not draining).",
            u8::from(self.is_ready()),
        );
        out.gauge(
            "hotline_draining",
            "1 while stopping: new calls get 503.",
            u8::from(self.is_draining()),
        );
        let n = "hotline_config_reloads_total";
        out.family(n, "counter", "SIGHUP configuration reloads by result.");
        out.sample(
            n,
            &[("result", "ok")],
            self.reloads_ok.load(Ordering::Relaxed),
        );
        out.sample(
            n,
            &[("result", "rejected")],
            self.reloads_failed.load(Ordering::Relaxed),
        );
    }
}

#[derive(Clone)]
struct AdminState {
    registry: Arc<Registry>,
    health: Arc<Health>,
}

/// A running admin listener.
pub struct AdminServer {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl AdminServer {
    /// Bind `addr` and serve until [`AdminServer::stop`].
    pub async fn start(
        addr: SocketAddr,
        registry: Registry,
        health: Arc<Health>,
    ) -> std::io::Result<AdminServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = AdminState {
            registry: Arc::new(registry),
            health,
        };
        let app = Router::new()
            .route("/metrics", get(metrics_handler))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .with_state(state);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let r = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "admin listener failed");
            }
        });
        tracing::info!(%addr, "admin listener (metrics, healthz, readyz)");
        Ok(AdminServer { addr, stop, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn metrics_handler(State(s): State<AdminState>) -> impl IntoResponse {
    let registry = s.registry.clone();
    match tokio::task::spawn_blocking(move || registry.render()).await {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
            text,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("metrics failed: {e}\n"),
        ),
    }
}

async fn readyz(State(s): State<AdminState>) -> (StatusCode, &'static str) {
    if s.health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else if s.health.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}
