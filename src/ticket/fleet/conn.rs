//! One reconnecting connection to the shared store, TLS by rustls when the URL asks for it
//! (`sslmode=require`; the web PKI roots verify the server). Each new connection first brings
//! the schema up to date ([`super::schema`]).

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config};

use super::{pg_err, schema};
use crate::ticket::TicketError;

/// Longest wait for a connection (and the schema check) before the operation counts as a
/// failure and the tickets wait.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Parses `[tickets] url` (URL or key=value form).
pub(crate) fn parse_url(url: &str) -> Result<Config, TicketError> {
    let mut cfg: Config = url
        .parse()
        .map_err(|e| TicketError::Config(format!("tickets.url: {e}")))?;
    if cfg.get_hosts().is_empty() {
        return Err(TicketError::Config("tickets.url: no host".into()));
    }
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(CONNECT_TIMEOUT);
    }
    // A database host that vanishes without closing the connection is noticed.
    cfg.keepalives(true)
        .keepalives_idle(Duration::from_secs(30));
    if cfg.get_application_name().is_none() {
        cfg.application_name("hotline-gateway");
    }
    Ok(cfg)
}

pub(crate) fn tls() -> tokio_postgres_rustls::MakeRustlsConnect {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

/// A connection made on first use and again after it broke.
pub struct PgConn {
    config: Config,
    client: Mutex<Option<Client>>,
}

impl PgConn {
    pub fn new(config: Config) -> PgConn {
        PgConn {
            config,
            client: Mutex::new(None),
        }
    }

    /// A connection to `[tickets] url` (checked here, made on first use).
    pub fn from_url(url: &str) -> Result<PgConn, TicketError> {
        Ok(PgConn::new(parse_url(url)?))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The connection, (re)connecting and migrating when needed. Held exclusively: a
    /// transaction needs `&mut Client`, and the operations are short.
    pub async fn get(&self) -> Result<MappedMutexGuard<'_, Client>, TicketError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = None;
            let client = tokio::time::timeout(CONNECT_TIMEOUT * 2, self.connect())
                .await
                .map_err(|_| TicketError::Fleet("connect: timed out".into()))??;
            *guard = Some(client);
        }
        Ok(MutexGuard::map(guard, |c| {
            c.as_mut().expect("connected just above")
        }))
    }

    async fn connect(&self) -> Result<Client, TicketError> {
        // The connection task ends when the client is dropped or the server goes away; the
        // client then reports `is_closed` and the next `get` reconnects.
        let mut client = if self.config.get_ssl_mode() == SslMode::Disable {
            let (c, conn) = self
                .config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(pg_err("connect"))?;
            tokio::spawn(conn);
            c
        } else {
            let (c, conn) = self
                .config
                .connect(tls())
                .await
                .map_err(pg_err("connect"))?;
            tokio::spawn(conn);
            c
        };
        schema::migrate(&mut client).await?;
        Ok(client)
    }
}
