//! The admin HTTP listener: `/metrics` (Prometheus text), `/healthz` (the process answers)
//! and `/readyz` (SIP is bound, the gateway is not draining and nothing it needs to keep a
//! call's ticket is failing: load balancers and orchestrators stop sending calls on 503).
//!
//! Loopback by default (`[admin] listen`); what `/metrics` shows (call volumes, error rates)
//! is for the operator only, so with `[admin] token` set it wants `Authorization: Bearer
//! <token>` (and `check-config` refuses a non-loopback listener without one). `/healthz` and
//! `/readyz` stay open: probes carry no secrets and reveal nothing. axum on its own small
//! task; a scrape renders the registry on a blocking thread because the ticket depth comes
//! from SQLite.

pub mod metrics;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics::Registry;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// A condition that makes the gateway not ready while it lasts (the ticket store failing,
/// the disk nearly full): a call taken now might not get its ticket.
pub trait ReadinessCheck: Send + Sync {
    /// `Some(why)` while not ready.
    fn not_ready(&self) -> Option<&'static str>;
}

/// What `/readyz` and the gateway's own gauges report; shared with the gateway, which
/// flips the flags.
#[derive(Default)]
pub struct Health {
    /// Checks registered by the gateway's parts, asked on every `/readyz`.
    checks: RwLock<Vec<Arc<dyn ReadinessCheck>>>,
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

    /// Makes `/readyz` also depend on `check`.
    pub fn add_check(&self, check: Arc<dyn ReadinessCheck>) {
        self.checks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(check);
    }

    /// Why a registered check says not ready, if one does.
    pub fn failing_check(&self) -> Option<&'static str> {
        self.checks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find_map(|c| c.not_ready())
    }

    /// Ready to take calls.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.is_draining() && self.failing_check().is_none()
    }
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("ready", &self.ready)
            .field("draining", &self.draining)
            .field("failing_check", &self.failing_check())
            .finish()
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
    /// Bearer token `/metrics` wants; `None` = open.
    token: Option<Arc<str>>,
}

/// Whether `headers` carry `Authorization: Bearer <token>`, compared in constant time.
fn authorised(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A running admin listener.
pub struct AdminServer {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl AdminServer {
    /// Bind `addr` and serve until [`AdminServer::stop`], `/metrics` open to all.
    pub async fn start(
        addr: SocketAddr,
        registry: Registry,
        health: Arc<Health>,
    ) -> std::io::Result<AdminServer> {
        AdminServer::start_with_token(addr, registry, health, None).await
    }

    /// [`AdminServer::start`], with `/metrics` behind `token` when given.
    pub async fn start_with_token(
        addr: SocketAddr,
        registry: Registry,
        health: Arc<Health>,
        token: Option<String>,
    ) -> std::io::Result<AdminServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = AdminState {
            registry: Arc::new(registry),
            health,
            token: token.map(Arc::from),
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

async fn metrics_handler(State(s): State<AdminState>, headers: HeaderMap) -> impl IntoResponse {
    if let Some(token) = &s.token {
        if !authorised(&headers, token) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "admin token required\n".to_string(),
            );
        }
    }
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

async fn readyz(State(s): State<AdminState>) -> (StatusCode, String) {
    if s.health.is_ready() {
        (StatusCode::OK, "ready\n".into())
    } else if s.health.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n".into())
    } else if let Some(why) = s.health.failing_check() {
        (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing;
    impl ReadinessCheck for Failing {
        fn not_ready(&self) -> Option<&'static str> {
            Some("ticket store failing")
        }
    }

    async fn get(url: String, token: Option<&str>) -> (u16, String) {
        let mut req = reqwest::Client::new().get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Issue 11.18: with a token, `/metrics` answers 401 without it (or with a wrong one)
    /// and the probes stay open; a failing check makes `/readyz` 503 with its reason.
    #[tokio::test]
    async fn the_token_guards_metrics_and_leaves_the_probes_open() {
        let health = Arc::new(Health::default());
        health.set_ready(true);
        let server = AdminServer::start_with_token(
            "127.0.0.1:0".parse().unwrap(),
            Registry::default(),
            health.clone(),
            Some("s3cret".into()),
        )
        .await
        .unwrap();
        let base = format!("http://{}", server.local_addr());
        assert_eq!(get(format!("{base}/metrics"), None).await.0, 401);
        assert_eq!(get(format!("{base}/metrics"), Some("s3cre")).await.0, 401);
        assert_eq!(get(format!("{base}/metrics"), Some("s3cret")).await.0, 200);
        assert_eq!(get(format!("{base}/healthz"), None).await.0, 200);
        assert_eq!(
            get(format!("{base}/readyz"), None).await,
            (200, "ready\n".into())
        );
        health.add_check(Arc::new(Failing));
        assert_eq!(
            get(format!("{base}/readyz"), None).await,
            (503, "ticket store failing\n".into())
        );
        server.stop().await;
    }
}
