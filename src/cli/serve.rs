//! `serve`: the daemon as an operator runs it: signals, drain, reload, the admin endpoint
//! and the desk.

use super::*;

/// `serve`: run until SIGTERM (drain: new calls get 503, calls in progress finish until
/// `limits.drain_timeout_secs`, then BYE) or SIGINT (BYE at once: the operator at a terminal
/// wants it to stop now). A second SIGTERM/SIGINT while draining hangs up at once. SIGHUP
/// reloads the configuration file.
pub(super) async fn serve(path: &Path) -> ExitCode {
    let cfg = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let admin_addr = cfg.admin.listen_addr();
    let mut signals = match signals::Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let gw = match Gateway::start(cfg, None).await {
        Ok(gw) => gw,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let admin = match admin_addr {
        Some(addr) => match AdminServer::start_with_token(
            addr,
            gw.metrics(),
            gw.health().clone(),
            Some(gw.config().admin.token.clone()).filter(|t| !t.trim().is_empty()),
        )
        .await
        {
            Ok(a) => Some(a),
            Err(e) => {
                eprintln!("error: cannot bind admin listener {addr}: {e}");
                gw.shutdown_now().await;
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let desk = match start_desk(&gw.config()).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            gw.shutdown_now().await;
            return ExitCode::FAILURE;
        }
    };
    eprintln!("hotline-gateway answering SIP on udp:{}", gw.sip_addr());
    let stop = loop {
        match signals.next().await {
            signals::Signal::Reload => reload(&gw, path).await,
            stop => break stop,
        }
    };
    let control = gw.drain_control();
    if stop == signals::Signal::Terminate {
        let secs = gw.config().limits.drain_timeout_secs;
        tracing::info!(drain_timeout_secs = secs, "SIGTERM: draining");
        control.drain(Duration::from_secs(secs));
    } else {
        tracing::info!("SIGINT: ending calls now");
        control.drain(Duration::ZERO);
    }
    let finish = gw.finish();
    tokio::pin!(finish);
    loop {
        tokio::select! {
            _ = &mut finish => break,
            sig = signals.next() => {
                if sig != signals::Signal::Reload {
                    tracing::warn!("second stop signal: ending calls now");
                    control.drain(Duration::ZERO);
                }
            }
        }
    }
    if let Some(admin) = admin {
        admin.stop().await;
    }
    if let Some(desk) = desk {
        desk.stop().await;
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// The operator desk on `[console] listen`, when set.
async fn start_desk(
    cfg: &Config,
) -> Result<Option<crate::console::ConsoleServer>, crate::console::ConsoleError> {
    match cfg.console.listen_addr() {
        Some(addr) => crate::console::ConsoleServer::start(addr, cfg)
            .await
            .map(Some),
        None => Ok(None),
    }
}

/// SIGHUP: reload, or keep the running configuration and say why.
async fn reload(gw: &Gateway, path: &Path) {
    tracing::info!(config = %path.display(), "SIGHUP: reloading configuration");
    match gw.reload(path).await {
        Ok(report) => {
            for key in &report.needs_restart {
                tracing::warn!(%key, "changed in the file but needs restart; old value kept");
            }
            tracing::info!("configuration reloaded; new calls use it");
        }
        Err(ReloadError::Config(errors)) => {
            for e in &errors {
                tracing::error!("config reload rejected: {e}");
            }
            tracing::error!(
                errors = errors.len(),
                "configuration NOT reloaded; the running one stays"
            );
        }
        Err(e) => {
            tracing::error!("config reload rejected: {e}; the running configuration stays")
        }
    }
}
