//! One reconnecting connection to the shared store, TLS by rustls when the URL asks for it
//! (`sslmode=require`; the web PKI roots verify the server). Each new connection first brings
//! the schema up to date ([`super::schema`]).

use std::path::{Path, PathBuf};
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

/// `sslrootcert=<file>` taken out of the URL (tokio-postgres does not know it): the PEM
/// certificates that verify the server instead of the web PKI roots (a private CA).
fn split_root_cert(url: &str) -> (String, Option<PathBuf>) {
    let mut root = None;
    let mut keep = |kv: &&str| match kv.strip_prefix("sslrootcert=") {
        Some(path) => {
            root = Some(PathBuf::from(path));
            false
        }
        None => true,
    };
    let url = match url.split_once('?') {
        Some((base, query)) => {
            let kept: Vec<&str> = query.split('&').filter(&mut keep).collect();
            if kept.is_empty() {
                base.to_owned()
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        }
        None => url
            .split_whitespace()
            .filter(&mut keep)
            .collect::<Vec<_>>()
            .join(" "),
    };
    (url, root)
}

/// Parses `[tickets] url` (URL or key=value form, plus `sslrootcert`).
pub(crate) fn parse_url(url: &str) -> Result<(Config, Option<PathBuf>), TicketError> {
    let (url, root) = split_root_cert(url);
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
    Ok((cfg, root))
}

/// The TLS connector: the server is verified against `root_cert` (PEM) when given, else the
/// web PKI roots.
pub(crate) fn tls(
    root_cert: Option<&Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, TicketError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| TicketError::Io {
                path: path.to_owned(),
                source,
            })?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    TicketError::Config(format!("tickets.url sslrootcert {}: {e}", path.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    TicketError::Config(format!("tickets.url sslrootcert {}: {e}", path.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(TicketError::Config(format!(
                    "tickets.url sslrootcert {}: no certificate",
                    path.display()
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A connection made on first use and again after it broke.
pub struct PgConn {
    config: Config,
    root_cert: Option<PathBuf>,
    client: Mutex<Option<Client>>,
}

impl PgConn {
    /// A connection to `[tickets] url` (checked here, made on first use).
    pub fn from_url(url: &str) -> Result<PgConn, TicketError> {
        let (config, root_cert) = parse_url(url)?;
        Ok(PgConn {
            config,
            root_cert,
            client: Mutex::new(None),
        })
    }

    /// Checks `[tickets] url` without connecting (for check-config).
    pub fn check_url(url: &str) -> Result<(), TicketError> {
        parse_url(url).map(|_| ())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The TLS connector this connection uses (for other connections to the same store).
    pub fn tls(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect, TicketError> {
        tls(self.root_cert.as_deref())
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
                .connect(self.tls()?)
                .await
                .map_err(pg_err("connect"))?;
            tokio::spawn(conn);
            c
        };
        schema::migrate(&mut client).await?;
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslrootcert_is_taken_out_of_either_url_form() {
        let (url, root) = split_root_cert("postgres://h/db?sslmode=require&sslrootcert=/ca.pem");
        assert_eq!(url, "postgres://h/db?sslmode=require");
        assert_eq!(root.as_deref(), Some(Path::new("/ca.pem")));
        let (url, root) = split_root_cert("host=h sslrootcert=/ca.pem dbname=x");
        assert_eq!((url.as_str(), root.is_some()), ("host=h dbname=x", true));
        let (url, root) = split_root_cert("postgres://h/db?sslrootcert=/c");
        assert_eq!((url.as_str(), root.is_some()), ("postgres://h/db", true));
        assert_eq!(split_root_cert("postgres://h/db").1, None);
    }
}
