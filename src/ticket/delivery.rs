//! Delivery to the city's intake API: one POST per attempt, and what to do with the answer.
//!
//! Exactly-once *in effect* rests on two things: every attempt for a ticket revision carries
//! the same `Idempotency-Key` (`<ticket_id>:<revision>`, see [`super::v1::wire`]), so the intake applies repeats once; and the gateway
//! only stops retrying on a definite answer (2xx, or a 4xx that a retry cannot change).

use chrono::{DateTime, NaiveDateTime, Utc};
use rand::Rng;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::v1::WireSchema;
use super::TicketError;

/// `[tickets.intake]`: where and how tickets are posted.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeConfig {
    /// Intake endpoint; `None` = no delivery, tickets go to the outbox folder only.
    /// Env: `HOTLINE_INTAKE_URL`.
    pub url: Option<String>,
    /// Bearer token. Env: `HOTLINE_INTAKE_TOKEN`.
    pub token: Option<String>,
    /// Document version posted (and written to the outbox): v2, or v1 for an older intake.
    pub schema: WireSchema,
    pub connect_timeout_ms: u64,
    /// Whole-request timeout (connect + send + response).
    pub request_timeout_ms: u64,
    /// Maximum concurrent POSTs.
    pub concurrency: usize,
    /// First retry delay; doubles per attempt (with jitter) up to `backoff_max_ms`.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Cap on a server's `Retry-After`, so a bogus date cannot park a ticket for a year.
    pub max_retry_after_secs: u64,
    /// Give up (dead letter) after this many attempts; `None` = retry transient errors forever.
    pub max_attempts: Option<u32>,
    /// How often the queue is re-read when nothing wakes the delivery loop (tickets re-queued
    /// by the admin CLI from another process are seen within this time).
    pub idle_poll_ms: u64,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            url: None,
            token: None,
            schema: WireSchema::V2,
            connect_timeout_ms: 3_000,
            request_timeout_ms: 15_000,
            concurrency: 4,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            max_retry_after_secs: 3_600,
            max_attempts: None,
            idle_poll_ms: 2_000,
        }
    }
}

/// What one attempt decided.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Delivered {
        status: u16,
    },
    /// Transient: 5xx, 408, 429, timeout, connection failure; or a configuration problem of
    /// the intake (`config_problem`: 401, 403, 404, 3xx, other 4xx), which no retry of the
    /// ticket can fix but fixing the intake or our token will.
    Retry {
        status: Option<u16>,
        retry_after: Option<Duration>,
        error: String,
        config_problem: bool,
    },
    /// The intake refused the ticket itself (400, 413, 422): kept as a dead letter with the
    /// response.
    Dead {
        status: u16,
        body: String,
    },
}

/// Responses bodies kept for dead letters are cut at this size.
const MAX_KEPT_BODY: usize = 64 * 1024;

/// The HTTP client for `[intake] url` (checked: http or https), or `None` when there is no
/// intake and tickets stay in the store.
pub fn intake_client(cfg: &IntakeConfig) -> Result<Option<reqwest::Client>, TicketError> {
    let Some(url) = &cfg.url else { return Ok(None) };
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| TicketError::Config(format!("intake.url {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(TicketError::Config(format!(
            "intake.url {url:?}: not http(s)"
        )));
    }
    build_client(cfg).map(Some)
}

pub fn build_client(cfg: &IntakeConfig) -> Result<reqwest::Client, TicketError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
        .timeout(Duration::from_millis(cfg.request_timeout_ms))
        // A redirect would turn the POST into a GET or re-post elsewhere: treat as an answer.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("hotline-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| TicketError::Http(e.to_string()))
}

/// Posts one ticket document once (`body` and `idempotency_key` as [`super::v1::wire`] made them).
pub async fn post_once(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    idempotency_key: &str,
    body: String,
) -> Outcome {
    let mut req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", idempotency_key)
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Retry {
                status: None,
                retry_after: None,
                error: describe_reqwest_error(&e),
                config_problem: false,
            }
        }
    };
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, Utc::now()));
    if resp.status().is_success() {
        return Outcome::Delivered { status };
    }
    let body = read_body_bounded(resp, MAX_KEPT_BODY).await;
    match classify_status(status) {
        StatusClass::Transient | StatusClass::Intake => Outcome::Retry {
            status: Some(status),
            retry_after,
            error: format!("HTTP {status}: {}", truncate(&body, 200)),
            config_problem: classify_status(status) == StatusClass::Intake,
        },
        StatusClass::Ticket => Outcome::Dead { status, body },
    }
}

/// Whose problem a non-2xx answer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusClass {
    /// 408, 429, 5xx: the intake is busy or down; retry with backoff.
    Transient,
    /// 400, 413, 422: the intake refuses this ticket; a retry would get the same answer.
    Ticket,
    /// 401, 403, 404, 3xx and any other status: the intake (or our URL or token) is
    /// misconfigured. Every ticket would get the same answer, and it goes away once someone
    /// fixes the configuration: retry with capped backoff and alert, never dead-letter.
    Intake,
}

/// The delivery policy per intake status (documented in docs/ticket.md and the README).
pub fn classify_status(status: u16) -> StatusClass {
    match status {
        408 | 429 | 500..=599 => StatusClass::Transient,
        400 | 413 | 422 => StatusClass::Ticket,
        _ => StatusClass::Intake,
    }
}

/// The response body up to `max` bytes: what an intake answers is kept for the operator,
/// but an endless or huge body must not fill the gateway's memory.
async fn read_body_bounded(mut resp: reqwest::Response, max: usize) -> String {
    let mut kept = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = max - kept.len();
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if kept.len() >= max {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) if kept.is_empty() => return format!("<body unreadable: {e}>"),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

fn describe_reqwest_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "request"
    };
    let mut msg = format!("{kind}: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `Retry-After` as delta-seconds or HTTP-date (IMF-fixdate, RFC 850, asctime; RFC 9110
/// §10.2.3). A date in the past means "now".
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(v)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            let formats = ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"];
            formats
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(v, f).ok())
                .map(|n| n.and_utc())
        })?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Delay before attempt `attempts + 1`: exponential from `base`, capped at `max`, with
/// "equal jitter" (half fixed, half random) so a recovering intake is not hit in lockstep.
pub fn backoff_delay(attempts: u32, base: Duration, max: Duration) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exp).min(max);
    let half = full / 2;
    let jitter_ms = rand::thread_rng().gen_range(0..=half.as_millis().min(u64::MAX as u128) as u64);
    half + Duration::from_millis(jitter_ms)
}

/// Writes `<dir>/<ticket_id>.json` atomically: temp file, fsync, rename, fsync the folder.
/// A reader never sees a half-written ticket, and after a crash the file is whole or absent.
pub fn write_outbox_file(
    dir: &Path,
    ticket_id: &str,
    document: &str,
) -> Result<PathBuf, TicketError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| TicketError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let final_path = dir.join(format!("{ticket_id}.json"));
    let tmp_path = dir.join(format!(".{ticket_id}.json.tmp"));
    let pretty = serde_json::from_str::<serde_json::Value>(document)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| document.to_owned());
    {
        let mut f = std::fs::File::create(&tmp_path).map_err(io(&tmp_path))?;
        f.write_all(pretty.as_bytes()).map_err(io(&tmp_path))?;
        f.write_all(b"\n").map_err(io(&tmp_path))?;
        f.sync_all().map_err(io(&tmp_path))?;
    }
    std::fs::rename(&tmp_path, &final_path).map_err(io(&final_path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(final_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_accepts_seconds_and_all_three_http_date_forms() {
        let now = Utc.with_ymd_and_hms(1994, 11, 6, 8, 49, 7).unwrap();
        let cases = [
            ("120", Some(120)),
            (" 0 ", Some(0)),
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(30)),
            ("Sunday, 06-Nov-94 08:49:37 GMT", Some(30)),
            ("Sun Nov  6 08:49:37 1994", Some(30)),
            ("Sun, 06 Nov 1994 08:00:00 GMT", Some(0)), // in the past: now
            ("soon", None),
            ("-5", None),
            ("", None),
        ];
        for (value, want) in cases {
            assert_eq!(
                parse_retry_after(value, now),
                want.map(Duration::from_secs),
                "{value:?}"
            );
        }
    }

    #[test]
    fn only_a_refusal_of_the_ticket_itself_is_final() {
        use StatusClass::*;
        for (status, want) in [
            (400, Ticket),
            (413, Ticket),
            (422, Ticket),
            (401, Intake),
            (403, Intake),
            (404, Intake),
            (301, Intake),
            (302, Intake),
            (307, Intake),
            (405, Intake),
            (408, Transient),
            (429, Transient),
            (500, Transient),
            (503, Transient),
        ] {
            assert_eq!(classify_status(status), want, "{status}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(100);
        let max = Duration::from_millis(1_000);
        for attempts in 1..=8u32 {
            let full = (100u64 << (attempts - 1)).min(1_000);
            for _ in 0..50 {
                let d = backoff_delay(attempts, base, max).as_millis() as u64;
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempts}: {d} ms not in [{}, {full}]",
                    full / 2
                );
            }
        }
        // Huge attempt counts neither overflow nor exceed the cap.
        assert!(backoff_delay(u32::MAX, base, max) <= max);
    }

    #[test]
    fn outbox_file_is_complete_json_and_no_temp_file_remains() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_outbox_file(dir.path(), "abc", r#"{"a":"热"}"#).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v["a"], "热");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("abc.json")]);
    }
}
