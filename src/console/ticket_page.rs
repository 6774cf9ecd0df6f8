//! The ticket page: everything about one call, the recording beside its transcript
//! (clicking a segment plays from there; the segment being played is highlighted by
//! `desk.js`), and the two actions: correct the classification, set the progress.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde_json::Value;

use super::api::{apply_override, apply_progress};
use super::pages::{category_name, layout};
use super::view::{self, str_at};
use super::{Desk, PageUser};
use crate::ticket::progress::decode;
use crate::ticket::progress::PROGRESS_STATES;

fn field(label: &str, value: Markup) -> Markup {
    html! { dt { (label) } dd { (value) } }
}

pub(crate) async fn show(
    State(desk): State<Desk>,
    PageUser(who): PageUser,
    Path(id): Path<String>,
) -> Response {
    let (r, attempts, history) = match desk.load(id).await {
        Ok(l) => (l.record, l.attempts, l.history),
        Err(e) => return (super::status_of(&e), e.to_string()).into_response(),
    };
    desk.audit(&who, "open_ticket", &r.ticket_id).await;
    let mut doc = decode(&r.ticket_id, &r.document).unwrap_or_default();
    view::document_for(&who, &mut doc, &desk.console);
    let (cat, dept) = view::effective_class(&doc);
    let c = &doc["classification"];
    let kw = |k: &str| -> Vec<String> {
        c[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let progress = history.last().map_or("accepted", |p| p.state.as_str());
    let csrf = match &who {
        super::auth::Principal::User { csrf, .. } => csrf.clone(),
        super::auth::Principal::Machine => String::new(),
    };
    let segments = doc
        .pointer("/transcript/segments")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let reference = str_at(&doc, "/reference");
    let title = if reference.is_empty() {
        r.ticket_id.clone()
    } else {
        reference.to_owned()
    };
    let body = html! {
        h1 {
            "Ticket " (title)
            @if r.urgent { " " span.badge.urgent { "urgent" } }
            @if c["needs_review"].as_bool() == Some(true) { " " span.badge.review { "needs review" } }
        }
        div.ticket {
            section.facts {
                dl {
                    (field("caller", html! { span.caller { (str_at(&doc, "/call/caller")) } }))
                    (field("channel", html! { (str_at(&doc, "/call/channel")) " (dialled " (str_at(&doc, "/call/called")) ")" }))
                    (field("reference", html! { (reference) }))
                    (field("ticket id", html! { code { (r.ticket_id) } }))
                    (field("started", html! { (view::local_rfc3339(str_at(&doc, "/call/started_at"))) }))
                    (field("ended", html! { (view::local_rfc3339(str_at(&doc, "/call/ended_at"))) " (" (str_at(&doc, "/call/hangup/reason")) ")" }))
                    (field("menu", html! { (str_at(&doc, "/menu/label")) " " small { (str_at(&doc, "/menu/id")) } }))
                    (field("category", html! {
                        span #category { (category_name(&desk, &cat)) } " → " (dept)
                        @if c.get("operator_override").is_some_and(|o| !o.is_null()) {
                            " " small { "(corrected by " (str_at(c, "/operator_override/by")) "; classifier said "
                                (str_at(c, "/category")) ")" }
                        }
                    }))
                    (field("matched", html! { (kw("matched_keywords").join(", ")) }))
                    @if !kw("urgent_keywords").is_empty() {
                        (field("urgent words", html! { (kw("urgent_keywords").join(", ")) }))
                    }
                    @if let Some(conf) = c["confidence"].as_f64() {
                        (field("confidence", html! { (format!("{conf:.2}")) }))
                    }
                    @if let Some(dup) = doc.pointer("/duplicate/duplicate_of").and_then(Value::as_str) {
                        (field("duplicate of", html! { a href={"/tickets/" (dup)} { (dup.get(..8).unwrap_or(dup)) } " (" (str_at(&doc, "/duplicate/reason")) ")" }))
                    }
                    @if let Some(t) = doc.get("transfer").filter(|t| !t.is_null()) {
                        (field("transfer", html! { (str_at(t, "/outcome")) " → " (str_at(t, "/target")) }))
                    }
                    (field("delivery", html! {
                        span class={"state " (r.state.as_str())} { (r.state.as_str()) }
                        " · " (r.attempts) " attempt(s)"
                        @if let Some(e) = &r.last_error { " · " small { (e) } }
                        @if let Some(rev) = doc["revision"].as_u64() { " · revision " (rev) }
                    }))
                }
                @if !attempts.is_empty() {
                    table.attempts {
                        tr { th { "#" } th { "at" } th { "outcome" } th { "status" } th { "error" } }
                        @for a in &attempts {
                            tr { td { (a.attempt) } td { (view::local_ms(a.at_ms)) } td { (a.outcome) }
                                 td { (a.status.map(|s| s.to_string()).unwrap_or_default()) }
                                 td { (a.error.clone().unwrap_or_default()) } }
                        }
                    }
                }
            }
            section.listen {
                @if doc.get("recording").is_some_and(|r| !r.is_null()) {
                    audio #player controls preload="metadata" src={"/api/v1/tickets/" (r.ticket_id) "/recording"} {}
                } @else {
                    p { "No recording." }
                }
                @let empty = str_at(&doc, "/transcript/empty_reason");
                @if !empty.is_empty() { p.empty { "No transcript: " (empty) } }
                ol #segments.segments {
                    @for s in &segments {
                        @let start = s["start_ms"].as_u64().unwrap_or(0);
                        @let end = s["end_ms"].as_u64().unwrap_or(start);
                        li.segment data-start=(start as f64 / 1000.0) data-end=(end as f64 / 1000.0) {
                            span.time { (view::clock(start)) }
                            " " (s["text"].as_str().unwrap_or(""))
                        }
                    }
                }
            }
            section.actions {
                form #override method="post" action={"/tickets/" (r.ticket_id) "/override"} {
                    h2 { "Correct the classification" }
                    input type="hidden" name="csrf" value=(csrf);
                    select name="category_id" {
                        @for cr in desk.rules.categories.iter().chain(std::iter::once(&desk.rules.default)) {
                            option value=(cr.id) selected[cr.id == cat] { (cr.name) " — " (cr.department) }
                        }
                    }
                    input name="department" placeholder="department (default: the category's)";
                    button type="submit" { "Correct and re-send" }
                }
                form #progress method="post" action={"/tickets/" (r.ticket_id) "/progress"} {
                    h2 { "Progress: " span #progress-state { (progress) } }
                    input type="hidden" name="csrf" value=(csrf);
                    select name="state" {
                        @for s in PROGRESS_STATES { option value=(s) selected[*s == progress] { (s) } }
                    }
                    input name="note" placeholder="note (what the caller hears when asking)";
                    button type="submit" { "Set" }
                }
                @if !history.is_empty() {
                    table.history {
                        tr { th { "at" } th { "state" } th { "note" } th { "by" } }
                        @for p in &history {
                            tr { td { (view::local_ms(p.at_ms)) } td { (p.state) } td { (p.note) } td { (p.by) " (" (p.source) ")" } }
                        }
                    }
                }
            }
        }
    };
    layout(&format!("Ticket {title}"), Some(&who), body).into_response()
}

#[derive(serde::Deserialize)]
pub(crate) struct OverrideForm {
    csrf: String,
    category_id: String,
    #[serde(default)]
    department: String,
}

pub(crate) async fn override_form(
    State(desk): State<Desk>,
    PageUser(who): PageUser,
    Path(id): Path<String>,
    Form(f): Form<OverrideForm>,
) -> Response {
    if !who.csrf_ok(Some(&f.csrf)) {
        return (StatusCode::FORBIDDEN, "CSRF token missing or wrong").into_response();
    }
    match apply_override(&desk, &who, id, f.category_id, Some(f.department)).await {
        Ok((ticket_id, _)) => Redirect::to(&format!("/tickets/{ticket_id}")).into_response(),
        Err(r) => r,
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct ProgressForm {
    csrf: String,
    state: String,
    #[serde(default)]
    note: String,
}

pub(crate) async fn progress_form(
    State(desk): State<Desk>,
    PageUser(who): PageUser,
    Path(id): Path<String>,
    Form(f): Form<ProgressForm>,
) -> Response {
    if !who.csrf_ok(Some(&f.csrf)) {
        return (StatusCode::FORBIDDEN, "CSRF token missing or wrong").into_response();
    }
    match apply_progress(&desk, &who, id, f.state, f.note).await {
        Ok(v) => Redirect::to(&format!(
            "/tickets/{}",
            v["ticket_id"].as_str().unwrap_or_default()
        ))
        .into_response(),
        Err(r) => r,
    }
}
