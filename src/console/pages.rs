//! The login page and the queue: the pages every operator lives in.

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup, DOCTYPE};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use super::auth::{self, LoginError, Principal};
use super::view::{self, str_at};
use super::{Desk, PageUser};
use crate::ticket::progress::decode;
use crate::ticket::progress::PROGRESS_STATES;
use crate::ticket::query::{QueueRow, TicketPage};

/// The frame of every page: title, navigation, the user and the logout button.
pub(crate) fn layout(title: &str, who: Option<&Principal>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · 12345 desk" }
                @if let Some(Principal::User { csrf, .. }) = who {
                    meta name="csrf-token" content=(csrf);
                }
                link rel="stylesheet" href="/assets/desk.css";
                script src="/assets/desk.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "Hotline desk" }
                    @if let Some(Principal::User { name, role, csrf }) = who {
                        nav {
                            a href="/" { "Queue" }
                            @if who.is_some_and(Principal::is_supervisor) {
                                a href="/supervisor" { "Supervisor" }
                            }
                        }
                        span.user { (name) " (" (role.as_str()) ")" }
                        form.logout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn login_page(message: Option<&str>) -> Markup {
    layout(
        "Log in",
        None,
        html! {
            form.login method="post" action="/login" {
                h1 { "Log in" }
                @if let Some(m) = message { p.error { (m) } }
                label { "Name" input name="name" autocomplete="username" required autofocus; }
                label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                button type="submit" { "Log in" }
            }
        },
    )
}

pub(crate) async fn login_form() -> Markup {
    login_page(None)
}

#[derive(serde::Deserialize)]
pub(crate) struct LoginForm {
    name: String,
    password: String,
}

pub(crate) async fn login(
    State(desk): State<Desk>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<LoginForm>,
) -> Response {
    let auth = desk.auth.clone();
    let name = f.name.clone();
    let result = tokio::task::spawn_blocking(move || {
        auth.login(&f.name, &f.password, peer.ip(), Instant::now())
    })
    .await
    .unwrap_or(Err(LoginError::Invalid));
    match result {
        Ok(token) => {
            tracing::info!(user = %name, "desk login");
            let cookie = format!(
                "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                auth::COOKIE,
                auth::SESSION_TTL.as_secs()
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Err(LoginError::Invalid) => {
            tracing::warn!(user = %name, from = %peer.ip(), "desk login failed");
            (
                StatusCode::UNAUTHORIZED,
                login_page(Some("Wrong name or password.")),
            )
                .into_response()
        }
        Err(LoginError::Throttled(wait)) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, wait.as_secs().max(1).to_string())],
            login_page(Some(&format!(
                "Too many failed attempts: try again in {} s.",
                wait.as_secs().max(1)
            ))),
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct CsrfForm {
    csrf: String,
}

pub(crate) async fn logout(
    State(desk): State<Desk>,
    PageUser(who): PageUser,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !who.csrf_ok(Some(&f.csrf)) {
        return (StatusCode::FORBIDDEN, "CSRF token missing or wrong").into_response();
    }
    if let Some(t) = super::cookie_token(&headers) {
        desk.auth.logout(&t);
    }
    let cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        auth::COOKIE
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

/// The category's human name from the rules table (the id when unknown).
pub(crate) fn category_name(desk: &Desk, id: &str) -> String {
    desk.rules
        .categories
        .iter()
        .chain(std::iter::once(&desk.rules.default))
        .find(|c| c.id == id)
        .map_or_else(|| id.to_owned(), |c| c.name.clone())
}

fn excerpt(text: &str) -> String {
    let mut s: String = text.chars().take(60).collect();
    if text.chars().count() > 60 {
        s.push('…');
    }
    s
}

fn row(desk: &Desk, who: &Principal, r: &QueueRow) -> Markup {
    let doc = decode(&r.record.ticket_id, &r.record.document).unwrap_or_default();
    let (cat, dept) = view::effective_class(&doc);
    let review = doc
        .pointer("/classification/needs_review")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let id = &r.record.ticket_id;
    let reference = str_at(&doc, "/reference");
    let class = match (r.record.urgent, review) {
        (true, _) => "urgent",
        (false, true) => "review",
        _ => "",
    };
    html! {
        tr class=(class) data-id=(id) {
            td { (view::local_ms(doc.pointer("/call/started_at").and_then(|v| v.as_str())
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    .map_or(r.record.created_at_ms, |t| t.timestamp_millis()))) }
            td { a href={"/tickets/" (id)} {
                @if reference.is_empty() { (id.get(..8).unwrap_or(id)) } @else { (reference) }
            } }
            td.caller { (view::caller_for(who, &r.record.caller)) }
            td { (str_at(&doc, "/call/channel")) }
            td.category data-category=(cat) { (category_name(desk, &cat)) }
            td { (dept) }
            td {
                @if r.record.urgent { span.badge.urgent { "urgent" } }
                @if review { span.badge.review { "review" } }
            }
            td { span class={"progress " (r.progress)} { (r.progress) } }
            td { span class={"state " (r.record.state.as_str())} { (r.record.state.as_str()) } }
            td.text { (excerpt(str_at(&doc, "/transcript/text"))) }
        }
    }
}

fn rows(desk: &Desk, who: &Principal, page: &TicketPage) -> Markup {
    html! {
        @for r in &page.rows { (row(desk, who, r)) }
        @if page.rows.is_empty() { tr.empty { td colspan="10" { "No tickets." } } }
    }
}

fn select(name: &str, current: Option<&str>, options: &[(String, String)]) -> Markup {
    html! {
        select name=(name) {
            option value="" { "any" }
            @for (v, label) in options {
                option value=(v) selected[current == Some(v.as_str())] { (label) }
            }
        }
    }
}

fn query_with_page(q: &HashMap<String, String>, page: u32) -> String {
    let mut pairs: Vec<(String, String)> = q
        .iter()
        .filter(|(k, v)| k.as_str() != "page" && !v.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    pairs.sort();
    pairs.push(("page".into(), page.to_string()));
    serde_urlencoded::to_string(&pairs).unwrap_or_default()
}

/// `GET /`: the queue.
pub(crate) async fn queue(
    State(desk): State<Desk>,
    PageUser(who): PageUser,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let filter = view::filter_from_query(&q);
    let page = match desk.query(filter).await {
        Ok(p) => p,
        Err(e) => return (super::status_of(&e), e.to_string()).into_response(),
    };
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let cats: Vec<(String, String)> = desk
        .rules
        .categories
        .iter()
        .chain(std::iter::once(&desk.rules.default))
        .map(|c| (c.id.clone(), c.name.clone()))
        .collect();
    let mut depts: Vec<(String, String)> = desk
        .rules
        .categories
        .iter()
        .chain(std::iter::once(&desk.rules.default))
        .map(|c| (c.department.clone(), c.department.clone()))
        .collect();
    depts.sort();
    depts.dedup();
    let progress: Vec<(String, String)> = PROGRESS_STATES
        .iter()
        .map(|s| (s.to_string(), s.to_string()))
        .collect();
    let states: Vec<(String, String)> = ["pending", "in_flight", "delivered", "dead"]
        .iter()
        .map(|s| (s.to_string(), s.to_string()))
        .collect();
    let yes_no = vec![
        ("1".to_string(), "yes".to_string()),
        ("0".into(), "no".into()),
    ];
    let pages = page.total.div_ceil(u64::from(page.per_page)).max(1) as u32;
    let body = html! {
        form #filters.filters method="get" action="/" {
            input type="search" name="q" placeholder="search transcripts (暖气, 路灯…)" value=[get("q")];
            label { "progress " (select("progress", get("progress"), &progress)) }
            label { "delivery " (select("state", get("state"), &states)) }
            label { "category " (select("category", get("category"), &cats)) }
            label { "department " (select("department", get("department"), &depts)) }
            label { "urgent " (select("urgent", get("urgent"), &yes_no)) }
            label { "review " (select("needs_review", get("needs_review"), &yes_no)) }
            label { "channel " input name="channel" size="8" value=[get("channel")]; }
            label { "from " input type="date" name="from" value=[get("from")]; }
            label { "to " input type="date" name="to" value=[get("to")]; }
            button type="submit" { "Filter" }
            a href="/" { "clear" }
        }
        p.count { span #total { (page.total) } " tickets" span #live { " · live" } }
        table.queue {
            thead { tr {
                th { "started" } th { "reference" } th { "caller" } th { "channel" }
                th { "category" } th { "department" } th { "" } th { "progress" }
                th { "delivery" } th { "transcript" }
            } }
            tbody #rows { (rows(&desk, &who, &page)) }
        }
        nav.pager {
            @if page.page > 1 { a href={"/?" (query_with_page(&q, page.page - 1))} { "← newer" } }
            span { "page " (page.page) " of " (pages) }
            @if page.page < pages { a href={"/?" (query_with_page(&q, page.page + 1))} { "older →" } }
        }
    };
    layout("Queue", Some(&who), body).into_response()
}

/// `GET /queue/rows`: the queue's rows alone, for the page's live refresh.
pub(crate) async fn queue_rows(
    State(desk): State<Desk>,
    PageUser(who): PageUser,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let filter = view::filter_from_query(&q);
    match desk.query(filter).await {
        Ok(p) => (
            [("x-total-count", p.total.to_string())],
            rows(&desk, &who, &p),
        )
            .into_response(),
        Err(e) => (super::status_of(&e), e.to_string()).into_response(),
    }
}
