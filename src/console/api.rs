//! The JSON API (`/api/v1/...`, documented in `docs/api.md`). Sessions and bearer tokens
//! both work, except for the correction (PATCH), which is an operator's act: session only.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;

use super::auth::Principal;
use super::events::DeskEvent;
use super::view;
use super::{now_ms, status_of, ApiCaller, Desk};
use crate::ticket::fleet;
use crate::ticket::progress::decode as doc_value;
use crate::ticket::progress::Override;
use crate::ticket::TicketError;

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn store_error(e: &TicketError) -> Response {
    error(status_of(e), e.to_string())
}

/// `GET /api/v1/tickets`: filters, search, paging.
pub(crate) async fn list(
    State(desk): State<Desk>,
    ApiCaller(who): ApiCaller,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let filter = view::filter_from_query(&q);
    let page = match desk.query(filter).await {
        Ok(p) => p,
        Err(e) => return store_error(&e),
    };
    let mut items = Vec::new();
    for row in page.rows {
        let r = row.record;
        let Ok(mut doc) = doc_value(&r.ticket_id, &r.document) else {
            continue;
        };
        view::document_for(&who, &mut doc, &desk.console);
        items.push(json!({
            "ticket": doc,
            "delivery": {"state": r.state, "attempts": r.attempts},
            "progress": row.progress,
        }));
    }
    Json(json!({
        "total": page.total,
        "page": page.page,
        "per_page": page.per_page,
        "tickets": items,
    }))
    .into_response()
}

/// `GET /api/v1/tickets/{id or reference}`. Audited.
pub(crate) async fn show(
    State(desk): State<Desk>,
    ApiCaller(who): ApiCaller,
    Path(id): Path<String>,
) -> Response {
    let (r, attempts, history) = match desk.load(id).await {
        Ok(l) => (l.record, l.attempts, l.history),
        Err(e) => return store_error(&e),
    };
    let mut doc = match doc_value(&r.ticket_id, &r.document) {
        Ok(d) => d,
        Err(e) => return store_error(&e),
    };
    desk.audit(&who, "open_ticket", &r.ticket_id).await;
    view::document_for(&who, &mut doc, &desk.console);
    let current = history.last().map_or("accepted", |p| p.state.as_str());
    Json(json!({
        "ticket": doc,
        "delivery": {
            "state": r.state,
            "attempts": r.attempts,
            "last_status": r.last_status,
            "last_error": r.last_error,
            "delivered_at_ms": r.delivered_at_ms,
            "log": attempts,
        },
        "progress": {"state": current, "history": history},
    }))
    .into_response()
}

/// The CSRF token of a JSON request (header `X-CSRF-Token`).
fn csrf_header(h: &HeaderMap) -> Option<&str> {
    h.get("x-csrf-token").and_then(|v| v.to_str().ok())
}

#[derive(serde::Deserialize)]
pub(crate) struct PatchBody {
    category_id: String,
    /// Defaults to the category's department.
    department: Option<String>,
}

/// Applies an operator's correction; shared by the API and the ticket page's form.
pub(crate) async fn apply_override(
    desk: &Desk,
    who: &Principal,
    id: String,
    category_id: String,
    department: Option<String>,
) -> Result<(String, u64), Response> {
    let Some(rule) = desk
        .rules
        .categories
        .iter()
        .chain(std::iter::once(&desk.rules.default))
        .find(|c| c.id == category_id)
    else {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("unknown category `{category_id}`"),
        ));
    };
    let department = department
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| rule.department.clone());
    let o = Override {
        category_id: category_id.clone(),
        department,
        by: who.name().to_owned(),
    };
    let (ticket_id, revision) = if let Some(pg) = &desk.fleet {
        async {
            let r = fleet::desk::find(pg, &id).await?;
            let rev =
                fleet::desk_write::override_classification(pg, &r.ticket_id, &o, now_ms()).await?;
            Ok((r.ticket_id, rev))
        }
        .await
        .map_err(|e: TicketError| store_error(&e))?
    } else {
        desk.blocking(move |s| {
            let r = s.find(&id)?;
            let rev = s.override_classification(&r.ticket_id, &o, now_ms())?;
            // The classifier learns from it (`classify retrain`, and at start-up and reload).
            s.record_correction(&r.ticket_id, &o.category_id, &o.by, chrono::Utc::now())?;
            Ok((r.ticket_id, rev))
        })
        .await
        .map_err(|e| store_error(&e))?
    };
    tracing::info!(user = who.name(), ticket = %ticket_id, category = %category_id, revision, "operator correction");
    let _ = desk.events.send(DeskEvent::Revised {
        ticket_id: ticket_id.clone(),
        revision,
    });
    Ok((ticket_id, revision))
}

/// `PATCH /api/v1/tickets/{id}`: `{category_id, department?}`; session and CSRF only.
pub(crate) async fn patch(
    State(desk): State<Desk>,
    ApiCaller(who): ApiCaller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<PatchBody>,
) -> Response {
    if matches!(who, Principal::Machine) {
        return error(
            StatusCode::FORBIDDEN,
            "corrections need an operator's session",
        );
    }
    if !who.csrf_ok(csrf_header(&headers)) {
        return error(StatusCode::FORBIDDEN, "missing or wrong X-CSRF-Token");
    }
    match apply_override(&desk, &who, id, body.category_id, body.department).await {
        Ok((ticket_id, revision)) => {
            Json(json!({"ticket_id": ticket_id, "revision": revision})).into_response()
        }
        Err(r) => r,
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct ProgressBody {
    state: String,
    #[serde(default)]
    note: String,
}

/// Sets the progress; shared by the API and the ticket page's form.
pub(crate) async fn apply_progress(
    desk: &Desk,
    who: &Principal,
    id: String,
    state: String,
    note: String,
) -> Result<Value, Response> {
    let by = who.name().to_owned();
    let source = if matches!(who, Principal::Machine) {
        "api"
    } else {
        "desk"
    };
    let (ticket_id, entry) = if let Some(pg) = &desk.fleet {
        async {
            let r = fleet::desk::find(pg, &id).await?;
            let e = fleet::desk_write::set_progress(
                pg,
                &r.ticket_id,
                &state,
                &note,
                &by,
                source,
                now_ms(),
            )
            .await?;
            Ok((r.ticket_id, e))
        }
        .await
        .map_err(|e: TicketError| store_error(&e))?
    } else {
        desk.blocking(move |s| {
            let r = s.find(&id)?;
            let e = s.set_progress(&r.ticket_id, &state, &note, &by, source, now_ms())?;
            Ok((r.ticket_id, e))
        })
        .await
        .map_err(|e| store_error(&e))?
    };
    let _ = desk.events.send(DeskEvent::Progress {
        ticket_id: ticket_id.clone(),
        state: entry.state.clone(),
    });
    Ok(json!({"ticket_id": ticket_id, "progress": entry}))
}

/// `POST /api/v1/tickets/{id}/progress`: `{state, note}`; session + CSRF, or bearer.
pub(crate) async fn progress(
    State(desk): State<Desk>,
    ApiCaller(who): ApiCaller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<ProgressBody>,
) -> Response {
    if !who.csrf_ok(csrf_header(&headers)) {
        return error(StatusCode::FORBIDDEN, "missing or wrong X-CSRF-Token");
    }
    match apply_progress(&desk, &who, id, body.state, body.note).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}
