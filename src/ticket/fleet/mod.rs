//! The fleet's shared ticket book: several gateways behind one proxy keep their tickets in
//! one PostgreSQL database, so a caller who calls twice is recognised whichever instance
//! answered, and a ticket never waits for a dead instance.
//!
//! The local SQLite store stays the durable first step: a call's ticket is committed there
//! first, exactly as with one gateway. The [`mover`] then moves committed tickets to the
//! shared store whenever it is reachable, and runs the fleet-wide duplicate look-up at that
//! moment (a duplicate found then makes a new revision of the ticket). Delivery takes tickets
//! from the shared store under a lease ([`lease`]), so each is posted by one instance at a
//! time and an instance killed mid-post hands its tickets on when the lease expires. A
//! database outage stops neither calls nor local commits: tickets wait locally, the outage
//! shows in `/metrics` (`hotline_fleet_store_up`), and `/readyz` stays ready.
//! Tickets know no SIP; this module knows no SQLite beyond the store's own methods.

mod conn;
pub mod corrections;
pub mod desk;
pub mod desk_write;
pub mod lease;
pub mod mover;
mod schema;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub use conn::PgConn;
pub use schema::MIGRATIONS;

use super::TicketError;

/// The shared store's settings (`[tickets] store = "postgres"`, `url`, `lease_secs`).
#[derive(Clone, Debug)]
pub struct FleetConfig {
    /// `postgres://user:password@host:port/db?sslmode=require` (key=value form accepted too).
    pub url: String,
    /// How long a claimed ticket belongs to the instance posting it. Longer than the intake's
    /// request timeout, so a live instance never loses a ticket mid-post; a killed instance's
    /// tickets go to another after at most this long.
    pub lease: Duration,
    /// How often the mover looks for committed tickets when nothing wakes it.
    pub move_poll: Duration,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            url: String::new(),
            lease: Duration::from_secs(60),
            move_poll: Duration::from_secs(1),
        }
    }
}

/// What `/metrics` shows of the shared store.
#[derive(Debug)]
pub struct FleetCounters {
    /// The last operation on the shared store failed (0 in `hotline_fleet_store_up`).
    pub down: AtomicBool,
    /// Failed operations on the shared store (connect, query), each retried.
    pub errors: AtomicU64,
    /// Tickets this instance moved to the shared store.
    pub moved: AtomicU64,
    /// Tickets the fleet-wide look-up found to repeat an earlier one that the local look-up
    /// had not (a new revision with `duplicate_of`).
    pub fleet_duplicates: AtomicU64,
}

impl Default for FleetCounters {
    fn default() -> Self {
        FleetCounters {
            down: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            moved: AtomicU64::new(0),
            fleet_duplicates: AtomicU64::new(0),
        }
    }
}

/// One instance's handle on the shared store.
pub struct Fleet {
    pub cfg: FleetConfig,
    /// Who holds a lease: the instance name plus a per-process id, so a restarted instance
    /// never mistakes its predecessor's leases for its own.
    pub owner: String,
    pub counters: FleetCounters,
    /// Connection of the delivery loop (claims, outcomes).
    pub(crate) delivery: PgConn,
    /// Connection of the mover (its transactions hold the move lock).
    pub(crate) mover: PgConn,
}

impl Fleet {
    /// Checks the URL; connects lazily (a database that is away at start must not stop the
    /// gateway from taking calls).
    pub fn new(cfg: FleetConfig, instance: &str) -> Result<Fleet, TicketError> {
        Ok(Fleet {
            owner: format!(
                "{instance}/{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
            delivery: PgConn::from_url(&cfg.url)?,
            mover: PgConn::from_url(&cfg.url)?,
            cfg,
            counters: FleetCounters::default(),
        })
    }

    /// Counts a failed operation; logs the first of an outage.
    pub(crate) fn failed(&self, what: &str, e: &TicketError) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        if !self.counters.down.swap(true, Ordering::Relaxed) {
            tracing::error!(error = %e, what, "fleet ticket store unreachable: tickets wait locally");
        }
    }

    pub(crate) fn ok(&self) {
        if self.counters.down.swap(false, Ordering::Relaxed) {
            tracing::info!("fleet ticket store reachable again: waiting tickets move");
        }
    }
}

/// A PostgreSQL error as a ticket error (the message names what failed).
pub(crate) fn pg_err(what: &str) -> impl Fn(tokio_postgres::Error) -> TicketError + '_ {
    move |e| {
        let detail = e
            .as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_else(|| e.to_string());
        TicketError::Fleet(format!("{what}: {detail}"))
    }
}
