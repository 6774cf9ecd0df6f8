//! The operator desk: tickets in the browser, and the HTTP API it shares with machine
//! clients (the intake's progress reports), on `[console] listen`.
//!
//! Server-rendered pages ([`pages`], [`ticket_page`], [`supervisor`]) with a little vanilla
//! JavaScript, all assets compiled into the binary (a city intranet has no CDN); the JSON API
//! ([`api`]), the recording with HTTP Range ([`recording`]) and Server-Sent Events
//! ([`events`]). Who may do what is [`auth`]'s job.
//!
//! **Architecture invariant:** the desk reads and writes tickets through the ticket store
//! and knows no SIP. It opens its own connection to the store (SQLite's WAL lets it read
//! beside the gateway's writer), so nothing in the call path waits for a page.

mod api;
pub mod auth;
mod events;
mod pages;
mod recording;
mod supervisor;
mod ticket_page;
mod view;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::config::{Config, ConsoleConfig};
use crate::ticket::fleet::{self, PgConn};
use crate::ticket::query::{TicketFilter, TicketPage};
use crate::ticket::store::Store;
use crate::ticket::{Rules, TicketError};
use auth::{Auth, Principal};

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub(crate) struct Desk {
    store: Arc<Store>,
    /// `[tickets] store = "postgres"`: the queue, tickets and events are the fleet's, read
    /// from the shared store ([`crate::ticket::fleet::desk`]).
    fleet: Option<Arc<PgConn>>,
    auth: Arc<Auth>,
    events: tokio::sync::broadcast::Sender<events::DeskEvent>,
    rules: Arc<Rules>,
    console: Arc<ConsoleConfig>,
    recordings_dir: PathBuf,
    calls_dir: PathBuf,
}

impl Desk {
    /// Runs a store call on a blocking thread (SQLite is synchronous).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, TicketError> + Send + 'static,
    ) -> Result<T, TicketError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| TicketError::Task(e.to_string()))?
    }

    /// One page of the queue: this instance's tickets, or in a fleet the whole fleet's.
    async fn query(&self, filter: TicketFilter) -> Result<TicketPage, TicketError> {
        match &self.fleet {
            Some(pg) => fleet::desk::query(pg, &filter).await,
            None => self.blocking(move |s| s.query(&filter)).await,
        }
    }

    /// A ticket with its delivery attempts and progress history (what both the ticket page
    /// and the API show).
    async fn load(&self, id: String) -> Result<Loaded, TicketError> {
        if let Some(pg) = &self.fleet {
            let record = fleet::desk::find(pg, &id).await?;
            let attempts = fleet::desk::attempts(pg, &record.ticket_id).await?;
            let history = fleet::desk_write::progress_history(pg, &record.ticket_id).await?;
            return Ok(Loaded {
                record,
                attempts,
                history,
            });
        }
        self.blocking(move |s| {
            let record = s.find(&id)?;
            let attempts = s.attempts(&record.ticket_id)?;
            let history = s.progress_history(&record.ticket_id)?;
            Ok(Loaded {
                record,
                attempts,
                history,
            })
        })
        .await
    }

    /// Appends to the audit log, in the store and in the log.
    async fn audit(&self, who: &Principal, action: &'static str, ticket_id: &str) {
        tracing::info!(user = who.name(), action, ticket = ticket_id, "desk audit");
        let (user, id) = (who.name().to_owned(), ticket_id.to_owned());
        let r = self
            .blocking(move |s| s.audit(&user, action, &id, None, now_ms()))
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "desk audit log not written");
        }
    }
}

/// What [`Desk::load`] returns.
pub(crate) struct Loaded {
    pub record: crate::ticket::store::TicketRecord,
    pub attempts: Vec<crate::ticket::store::AttemptRecord>,
    pub history: Vec<crate::ticket::progress::ProgressEntry>,
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A store error as an HTTP status.
pub(crate) fn status_of(e: &TicketError) -> StatusCode {
    match e {
        TicketError::NotFound(_) => StatusCode::NOT_FOUND,
        TicketError::Ambiguous(_) | TicketError::Config(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The session cookie's value, if the request has one.
pub(crate) fn cookie_token(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == auth::COOKIE)
        .map(|(_, v)| v.to_owned())
}

fn principal(parts: &Parts, desk: &Desk, bearer_allowed: bool) -> Option<Principal> {
    if bearer_allowed {
        if let Some(token) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            return desk.auth.bearer(token);
        }
    }
    desk.auth
        .session(&cookie_token(&parts.headers)?, Instant::now())
}

/// An API caller: a session or a bearer token; anything else is 401.
pub(crate) struct ApiCaller(pub Principal);

impl FromRequestParts<Desk> for ApiCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, desk: &Desk) -> Result<Self, Response> {
        principal(parts, desk, true).map(ApiCaller).ok_or_else(|| {
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(serde_json::json!({"error": "authentication required"})),
            )
                .into_response()
        })
    }
}

/// A desk page's user: a session; without one the browser goes to the login page.
pub(crate) struct PageUser(pub Principal);

impl FromRequestParts<Desk> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, desk: &Desk) -> Result<Self, Response> {
        principal(parts, desk, false)
            .map(PageUser)
            .ok_or_else(|| Redirect::to("/login").into_response())
    }
}

async fn asset(
    State(_): State<Desk>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    let (body, kind) = match name.as_str() {
        "desk.css" => (include_str!("assets/desk.css"), "text/css; charset=utf-8"),
        "desk.js" => (
            include_str!("assets/desk.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

fn router(desk: Desk) -> Router {
    Router::new()
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/", get(pages::queue))
        .route("/queue/rows", get(pages::queue_rows))
        .route("/tickets/{id}", get(ticket_page::show))
        .route("/tickets/{id}/override", post(ticket_page::override_form))
        .route("/tickets/{id}/progress", post(ticket_page::progress_form))
        .route("/supervisor", get(supervisor::page))
        .route("/assets/{name}", get(asset))
        .route("/api/v1/tickets", get(api::list))
        .route("/api/v1/tickets/{id}", get(api::show).patch(api::patch))
        .route("/api/v1/tickets/{id}/recording", get(recording::serve))
        .route("/api/v1/tickets/{id}/progress", post(api::progress))
        .route("/api/v1/events", get(events::stream))
        .with_state(desk)
}

/// A running desk listener.
pub struct ConsoleServer {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Why the desk could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("cannot bind console listener {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] TicketError),
}

impl ConsoleServer {
    /// Opens the ticket store and the classification table the configuration names, binds
    /// `addr` and serves until [`ConsoleServer::stop`].
    pub async fn start(addr: SocketAddr, config: &Config) -> Result<ConsoleServer, ConsoleError> {
        let db = config.storage.ticket_db();
        let rules_path = (!config.tickets.classification.is_empty())
            .then(|| PathBuf::from(&config.tickets.classification));
        let (store, rules) = tokio::task::spawn_blocking(move || {
            let rules = match rules_path {
                Some(p) => Rules::load(&p)?,
                None => Rules::builtin(),
            };
            Ok::<_, TicketError>((Store::open(&db)?, rules))
        })
        .await
        .map_err(|e| TicketError::Task(e.to_string()))??;
        let store = Arc::new(store);
        let fleet = match config.tickets.store.as_str() {
            "postgres" => Some(Arc::new(PgConn::from_url(&config.tickets.url)?)),
            _ => None,
        };
        let (events, _) = tokio::sync::broadcast::channel(256);
        let desk = Desk {
            store: store.clone(),
            fleet: fleet.clone(),
            auth: Arc::new(Auth::new(&config.console)),
            events: events.clone(),
            rules: Arc::new(rules),
            console: Arc::new(config.console.clone()),
            recordings_dir: config.storage.recordings_dir(),
            calls_dir: config.storage.calls_dir(),
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ConsoleError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ConsoleError::Bind { addr, source })?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let poller = match fleet {
            Some(pg) => tokio::spawn(events::listen_committed(pg, events)),
            None => tokio::spawn(events::poll_committed(store, events)),
        };
        let app = router(desk).into_make_service_with_connect_info::<SocketAddr>();
        let task = tokio::spawn(async move {
            let r = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            poller.abort();
            if let Err(e) = r {
                tracing::error!(error = %e, "console listener failed");
            }
        });
        tracing::info!(%addr, "operator desk and API");
        Ok(ConsoleServer { addr, stop, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        // Open event streams would hold the graceful shutdown forever.
        let mut task = self.task;
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}
