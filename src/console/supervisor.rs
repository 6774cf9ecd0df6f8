//! The supervisor page: today at a glance, drawn as server-side SVG (no chart library, no
//! script): calls and tickets per hour, tickets per category, urgent count, empty
//! transcripts by reason, the delivery backlog and the dead letters.
//!
//! Calls are counted from the call records (`<data>/calls/*.json`, one per answered call),
//! tickets from the store; "today" is the server's local day.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{Local, TimeZone, Timelike};
use maud::{html, Markup, PreEscaped};
use std::collections::BTreeMap;
use std::path::Path;

use super::pages::{category_name, layout};
use super::{Desk, PageUser};
use crate::ticket::store::DeliveryState;

/// Hour (0..24, local) of each call record written today.
fn call_hours(dir: &Path, from_ms: i64) -> Vec<u32> {
    let from = std::time::UNIX_EPOCH + std::time::Duration::from_millis(from_ms.max(0) as u64);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut hours = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let recent = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= from);
        if !recent || path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if let Some(t) = v["started_at"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        {
            if t.timestamp_millis() >= from_ms {
                hours.push(t.with_timezone(&Local).hour());
            }
        }
    }
    hours
}

/// Vertical bars per hour, two series side by side.
fn hour_chart(calls: &[u64; 24], tickets: &[u64; 24]) -> Markup {
    let max = calls
        .iter()
        .chain(tickets)
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let (w, h, bw) = (24.0 * 26.0 + 40.0, 160.0, 11.0);
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {w} {}" role="img" aria-label="calls and tickets per hour">"#,
        h + 24.0
    );
    for i in 0..24 {
        let x = 30.0 + i as f64 * 26.0;
        for (k, (v, class)) in [(calls[i], "calls"), (tickets[i], "tickets")]
            .iter()
            .enumerate()
        {
            let bh = *v as f64 / max * h;
            svg.push_str(&format!(
                r#"<rect class="{class}" x="{}" y="{}" width="{bw}" height="{bh}"><title>{i}:00 {class} {v}</title></rect>"#,
                x + k as f64 * bw,
                h - bh
            ));
        }
        if i % 3 == 0 {
            svg.push_str(&format!(
                r#"<text x="{x}" y="{}" class="axis">{i:02}</text>"#,
                h + 16.0
            ));
        }
    }
    svg.push_str(&format!(
        r#"<text x="0" y="12" class="axis">{max}</text></svg>"#
    ));
    html! { (PreEscaped(svg)) }
}

/// Horizontal bars, one per label.
fn bar_chart(label: &str, items: &[(String, u64)]) -> Markup {
    let max = items.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1) as f64;
    let row = 22.0;
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 460 {}" role="img" aria-label="{label}">"#,
        (items.len().max(1) as f64) * row + 4.0
    );
    for (i, (name, v)) in items.iter().enumerate() {
        let y = i as f64 * row;
        let bw = *v as f64 / max * 280.0;
        let name = maud::html! { (name) }.into_string();
        svg.push_str(&format!(
            r#"<text x="0" y="{}" class="label">{name}</text><rect class="bar" x="130" y="{}" width="{bw}" height="16"></rect><text x="{}" y="{}" class="value">{v}</text>"#,
            y + 14.0,
            y + 2.0,
            136.0 + bw,
            y + 14.0
        ));
    }
    svg.push_str("</svg>");
    html! { (PreEscaped(svg)) }
}

pub(crate) async fn page(State(desk): State<Desk>, PageUser(who): PageUser) -> Response {
    if !who.is_supervisor() {
        return (StatusCode::FORBIDDEN, "supervisors only").into_response();
    }
    let today = Local::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .and_then(|t| Local.from_local_datetime(&t).earliest())
        .map_or(0, |t| t.timestamp_millis());
    let calls_dir = desk.calls_dir.clone();
    let facts = desk
        .blocking(move |s| {
            let facts = s.day_facts(today, today + 86_400_000)?;
            let counts = s.counts()?;
            let dead = s.list(Some(DeliveryState::Dead), 20)?;
            Ok((facts, counts, dead, call_hours(&calls_dir, today)))
        })
        .await;
    let (facts, counts, dead, hours) = match facts {
        Ok(x) => x,
        Err(e) => return (super::status_of(&e), e.to_string()).into_response(),
    };
    let mut calls = [0u64; 24];
    for h in hours {
        calls[h as usize % 24] += 1;
    }
    let mut tickets = [0u64; 24];
    let mut per_cat: BTreeMap<String, u64> = BTreeMap::new();
    let mut empty: BTreeMap<String, u64> = BTreeMap::new();
    let mut urgent = 0;
    for f in &facts {
        if let Some(t) = Local.timestamp_millis_opt(f.started_at_ms).single() {
            tickets[t.hour() as usize % 24] += 1;
        }
        *per_cat
            .entry(category_name(&desk, &f.category_id))
            .or_default() += 1;
        if let Some(r) = &f.empty_reason {
            *empty.entry(r.clone()).or_default() += 1;
        }
        urgent += u64::from(f.urgent);
    }
    let count = |s: DeliveryState| counts.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n);
    let backlog = count(DeliveryState::Pending) + count(DeliveryState::InFlight);
    let mut cats: Vec<(String, u64)> = per_cat.into_iter().collect();
    cats.sort_by_key(|c| std::cmp::Reverse(c.1));
    let body = html! {
        h1 { "Today" }
        div.tiles {
            div.tile { b { (calls.iter().sum::<u64>()) } " calls" }
            div.tile { b { (facts.len()) } " tickets" }
            div.tile.urgent { b #urgent-count { (urgent) } " urgent" }
            div.tile { b #backlog { (backlog) } " awaiting delivery" }
            div.tile.dead { b #dead-count { (count(DeliveryState::Dead)) } " dead letters" }
        }
        section { h2 { "Calls " span.key.calls { "■" } " and tickets " span.key.tickets { "■" } " per hour" } (hour_chart(&calls, &tickets)) }
        div.charts {
            section { h2 { "Tickets per category" } (bar_chart("tickets per category", &cats)) }
            section { h2 { "Empty transcripts by reason" }
                @if empty.is_empty() { p { "None." } }
                @else { (bar_chart("empty transcripts by reason", &empty.into_iter().collect::<Vec<_>>())) }
            }
        }
        section {
            h2 { "Dead letters" }
            @if dead.is_empty() { p { "None." } }
            ul { @for d in &dead {
                li { a href={"/tickets/" (d.ticket_id)} { (d.ticket_id.get(..8).unwrap_or(&d.ticket_id)) }
                     " " (d.last_error.clone().unwrap_or_default()) }
            } }
        }
    };
    layout("Supervisor", Some(&who), body).into_response()
}
