//! `GET /api/v1/events`: Server-Sent Events for the open queues.
//!
//! `committed` comes from polling the store once a second: tickets are committed by the
//! gateway's ticket service (or, in a fleet, another process), which the desk does not
//! hook into; a one-second poll of an indexed rowid is cheap and catches every writer.
//! `revised` and `progress` are sent by the desk's own handlers as they change a ticket;
//! changes made through another instance's desk arrive on that instance's stream.

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

use super::{ApiCaller, Desk};
use crate::ticket::fleet::{self, PgConn};
use crate::ticket::store::Store;

/// What the desk's clients are told.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeskEvent {
    Committed { ticket_id: String },
    Revised { ticket_id: String, revision: u64 },
    Progress { ticket_id: String, state: String },
}

impl DeskEvent {
    fn name(&self) -> &'static str {
        match self {
            DeskEvent::Committed { .. } => "committed",
            DeskEvent::Revised { .. } => "revised",
            DeskEvent::Progress { .. } => "progress",
        }
    }
}

/// Sends `committed` for every ticket that appears in the store from now on.
pub(crate) async fn poll_committed(store: Arc<Store>, tx: broadcast::Sender<DeskEvent>) {
    let s = store.clone();
    let mut last = tokio::task::spawn_blocking(move || s.last_rowid())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = store.clone();
        let new = match tokio::task::spawn_blocking(move || s.committed_since(last)).await {
            Ok(Ok(new)) => new,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "desk event poll failed");
                continue;
            }
            Err(_) => continue,
        };
        for (rowid, ticket_id) in new {
            last = last.max(rowid);
            // No receiver (no desk open) is not an error.
            let _ = tx.send(DeskEvent::Committed { ticket_id });
        }
    }
}

/// In a fleet: sends `committed` for every ticket any instance moves into the shared store
/// (`LISTEN`/`NOTIFY`), so a ticket taken by another instance appears on this desk too.
/// Listens again after the database went away.
pub(crate) async fn listen_committed(pg: Arc<PgConn>, tx: broadcast::Sender<DeskEvent>) {
    loop {
        let r = fleet::desk::listen(&pg, |ticket_id| {
            let _ = tx.send(DeskEvent::Committed { ticket_id });
        })
        .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "desk: fleet ticket events interrupted");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The event stream of one client.
pub(crate) async fn stream(
    State(desk): State<Desk>,
    ApiCaller(_): ApiCaller,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = desk.events.subscribe();
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(ev) => {
                let data = serde_json::to_string(&ev).unwrap_or_default();
                Event::default().event(ev.name()).data(data)
            }
            // A slow client missed some: tell it to reload rather than pretend.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                Event::default().event("lagged").data("{}")
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
