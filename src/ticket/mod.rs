//! Tickets: every answered call becomes one structured `hotline.ticket/v2` document that
//! reaches the city's intake API exactly once in effect, whatever fails in between.
//!
//! Flow: the call layer hands over [`CallFacts`] → [`TicketService::create`] classifies the
//! transcript ([`classify`]), looks for an earlier report of the same problem
//! ([`duplicate`]), commits the ticket to SQLite ([`store`]) and returns; the delivery task
//! ([`TicketService::run_delivery`]) posts committed tickets with retries ([`delivery`]).
//! The admin CLI reads the same database through [`admin`]. Tickets know no SIP.

pub mod admin;
mod backoff;
pub mod classify;
pub mod delivery;
pub mod duplicate;
pub mod early;
pub mod facts;
pub mod fleet;
pub mod model;
pub mod progress;
pub mod query;
pub mod queue;
mod record;
pub mod reference;
mod service;
pub mod store;
pub mod v1;

pub use classify::Rules;
pub use delivery::IntakeConfig;
pub use duplicate::DuplicateConfig;
pub use facts::{
    CallFacts, HangupBy, MenuChoice, MenuSource, RecordingFacts, SegmentFacts, TranscriptFacts,
};
pub use model::{Ticket, SCHEMA_ID};
pub use service::{DeliveryCounters, FlushReport, TicketService};
pub use store::DeliveryState;
pub use v1::WireSchema;

use std::path::PathBuf;

/// `[tickets]` configuration.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketConfig {
    /// SQLite database file. Default `var/tickets.sqlite`.
    pub db_path: PathBuf,
    /// Where ticket JSON files are written when no intake URL is configured.
    pub outbox_dir: PathBuf,
    /// Written into every ticket (`gateway_instance`); distinguishes gateways feeding one intake.
    pub gateway_instance: String,
    /// Classification table; `None` = the built-in copy of `config/classification.toml`.
    pub classification_path: Option<PathBuf>,
    pub intake: IntakeConfig,
    pub duplicate: DuplicateConfig,
    /// `[console] public_url`: tickets' `recording.url` is the desk API's recording endpoint
    /// under it ([`progress::recording_url`]); `None` = no URL.
    pub public_url: Option<String>,
    /// `[tickets] store = "postgres"`: the fleet's shared store ([`fleet`]); `None` = this
    /// gateway's SQLite store is the only one.
    #[serde(skip)]
    pub fleet: Option<fleet::FleetConfig>,
}

impl Default for TicketConfig {
    fn default() -> Self {
        TicketConfig {
            db_path: PathBuf::from("var/tickets.sqlite"),
            outbox_dir: PathBuf::from("var/outbox"),
            gateway_instance: "hotline-gateway".into(),
            classification_path: None,
            intake: IntakeConfig::default(),
            duplicate: DuplicateConfig::default(),
            public_url: None,
            fleet: None,
        }
    }
}

impl TicketConfig {
    /// Applies `HOTLINE_INTAKE_URL` / `HOTLINE_INTAKE_TOKEN` (non-empty values win over the
    /// file). [`TicketService::open`] calls this itself.
    pub fn apply_env(&mut self) {
        self.apply_env_from(|k| std::env::var(k).ok());
    }

    /// [`Self::apply_env`] with an injectable environment (for tests and the config loader).
    pub fn apply_env_from(&mut self, get: impl Fn(&str) -> Option<String>) {
        if let Some(url) = get("HOTLINE_INTAKE_URL").filter(|v| !v.trim().is_empty()) {
            self.intake.url = Some(url.trim().to_owned());
        }
        if let Some(token) = get("HOTLINE_INTAKE_TOKEN").filter(|v| !v.trim().is_empty()) {
            self.intake.token = Some(token.trim().to_owned());
        }
    }
}

/// Errors of the ticket layer.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    #[error("ticket store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("ticket store schema version {found} is newer than this build knows ({known})")]
    SchemaTooNew { found: usize, known: usize },
    #[error("classification rules {}: {message}", path.display())]
    Rules { path: PathBuf, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ticket {0} not found")]
    NotFound(String),
    #[error("ticket id prefix {0} matches more than one ticket")]
    Ambiguous(String),
    #[error("stored ticket {id} is not a valid document: {message}")]
    Corrupt { id: String, message: String },
    #[error("cannot encode ticket: {0}")]
    Encode(String),
    #[error("invalid ticket configuration: {0}")]
    Config(String),
    #[error("HTTP client: {0}")]
    Http(String),
    #[error("background task failed: {0}")]
    Task(String),
    #[error("fleet ticket store: {0}")]
    Fleet(String),
}
