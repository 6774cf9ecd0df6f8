//! The manager's run loop: serve, then drain (refuse new calls, let calls end, hang up on
//! the rest at the deadline, wait for their records).

use super::*;
use tokio::sync::watch;

impl CallManager {
    /// Serve until `state` says [`RunState::Draining`] (or its sender is gone: drain with
    /// no delay), then drain: refuse new calls, let the calls in progress finish until the
    /// deadline, then end the rest (BYE, hang-up reason `shutdown`) and wait up to `grace`
    /// for their records to be written.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<TransactionEvent>,
        mut state: watch::Receiver<RunState>,
        grace: Duration,
    ) {
        let drain_deadline = |s: &watch::Receiver<RunState>| match *s.borrow() {
            RunState::Draining { deadline } => Some(deadline),
            RunState::Serving => None,
        };
        let mut deadline = loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(ev) => self.handle_event(ev).await,
                    None => break tokio::time::Instant::now(),
                },
                Some(done) = self.finished_rx.recv() => self.call_finished(done),
                changed = state.changed() => {
                    if changed.is_err() {
                        break tokio::time::Instant::now();
                    }
                    if let Some(d) = drain_deadline(&state) {
                        break d;
                    }
                }
            }
        };
        self.draining = true;
        tracing::info!(
            calls = self.calls.len(),
            wait_secs = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .as_secs(),
            "draining: new calls get 503; calls in progress may finish"
        );
        while !self.calls.is_empty() {
            tokio::select! {
                Some(done) = self.finished_rx.recv() => self.call_finished(done),
                Some(ev) = events.recv() => self.handle_event(ev).await,
                Ok(()) = state.changed() => {
                    if let Some(d) = drain_deadline(&state) {
                        deadline = deadline.min(d);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        if !self.calls.is_empty() {
            tracing::warn!(
                calls = self.calls.len(),
                "drain deadline reached: hanging up on the calls still in progress"
            );
            for call in self.calls.values() {
                let _ = call.signals.send(CallSignal::Shutdown);
            }
        }
        let records_deadline = tokio::time::Instant::now() + grace;
        while !self.calls.is_empty() {
            tokio::select! {
                Some(done) = self.finished_rx.recv() => self.call_finished(done),
                Some(ev) = events.recv() => self.handle_event(ev).await,
                _ = tokio::time::sleep_until(records_deadline) => break,
            }
        }
        // Give the endpoint a moment to put the last BYEs on the wire.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
