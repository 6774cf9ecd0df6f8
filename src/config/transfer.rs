//! `[transfer]`: reaching a person (issue 14). The target is the operators' queue on the
//! city's PBX/ACD; `mode` says how the caller gets there (the gateway bridges the call as a
//! B2BUA, or asks the caller's side to move the call with a REFER). The office hours are
//! parsed here once, so that a bad entry is a check-config error with its key and line,
//! and the call path only asks [`TransferConfig::open_at`].

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Timelike, Utc, Weekday};
use serde::{Deserialize, Serialize};

/// `[transfer]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TransferConfig {
    /// A SIP URI (`sip:8000@pbx.example.gov:5060`); empty = no transfer: the operator
    /// option leaves a message. Env `HOTLINE_TRANSFER_TARGET`.
    pub target: String,
    /// `bridge` (default: the gateway calls the target and relays the media) or `refer`
    /// (RFC 3515: the caller's side is asked to call the target). Env `HOTLINE_TRANSFER_MODE`.
    pub mode: String,
    /// Office hours, `"mon-fri 08:00-20:00"`-style entries; empty = always open.
    pub hours: Vec<String>,
    /// The hours' time zone: `Asia/Shanghai` (default), `UTC`, or a fixed offset `+08:00`.
    /// No tz database is linked: China has one offset and no daylight saving time.
    pub timezone: String,
    /// `YYYY-MM-DD` days closed whatever `hours` say (holidays).
    pub closed_dates: Vec<String>,
    /// `YYYY-MM-DD` days open on the weekday hours although `hours` close them (make-up
    /// working days on a weekend take the hours of Monday).
    pub open_dates: Vec<String>,
    /// How long the target may ring before we CANCEL (no answer).
    pub ring_timeout_secs: u64,
    /// Where the caller's number goes on the bridged INVITE: `pai` (P-Asserted-Identity,
    /// default) or `from`.
    pub caller_id: String,
    /// Digest credentials toward the target (empty = none).
    pub username: String,
    pub password: String,
    /// Record the bridged conversation (stereo WAV: caller left, operator right).
    pub record_bridged: bool,
    /// Where an urgent call goes (empty = `target`).
    pub urgent_target: String,
    /// What an urgent word does: `flag` (default) or `transfer`.
    pub urgent_action: String,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            target: String::new(),
            mode: "bridge".into(),
            hours: Vec::new(),
            timezone: "Asia/Shanghai".into(),
            closed_dates: Vec::new(),
            open_dates: Vec::new(),
            ring_timeout_secs: 30,
            caller_id: "pai".into(),
            username: String::new(),
            password: String::new(),
            record_bridged: false,
            urgent_target: String::new(),
            urgent_action: "flag".into(),
        }
    }
}

pub use super::flow::parse_hours;

/// `Asia/Shanghai`, `UTC`, `+08:00`.
pub fn parse_timezone(s: &str) -> Result<FixedOffset, String> {
    let secs = match s {
        "Asia/Shanghai" | "Asia/Chongqing" | "Asia/Harbin" | "Asia/Urumqi" | "PRC" => 8 * 3600,
        "UTC" | "Etc/UTC" => 0,
        _ => super::flow::parse_utc_offset(s).map_err(|_| {
            format!("`{s}` is not Asia/Shanghai, UTC or a fixed offset like +08:00")
        })?,
    };
    FixedOffset::east_opt(secs).ok_or_else(|| format!("`{s}`: offset out of range"))
}

pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| format!("`{s}` is not YYYY-MM-DD"))
}

impl TransferConfig {
    /// Whether a transfer is configured at all.
    pub fn enabled(&self) -> bool {
        !self.target.trim().is_empty()
    }

    /// Whether the operators are there at `now`. Unset hours = always. A closed date
    /// wins over everything; an open date (a make-up working day) takes Monday's hours.
    /// Entries that do not parse were refused by check-config; here they never open.
    pub fn open_at(&self, now: DateTime<Utc>) -> bool {
        if self.hours.is_empty() {
            return true;
        }
        let tz = parse_timezone(&self.timezone)
            .unwrap_or_else(|_| FixedOffset::east_opt(8 * 3600).expect("valid"));
        let local = now.with_timezone(&tz);
        let date = local.date_naive();
        let is = |list: &[String]| list.iter().any(|d| parse_date(d).ok() == Some(date));
        if is(&self.closed_dates) {
            return false;
        }
        let day = if is(&self.open_dates) {
            Weekday::Mon.num_days_from_monday()
        } else {
            local.weekday().num_days_from_monday()
        };
        let minute = local.hour() * 60 + local.minute();
        self.hours
            .iter()
            .filter_map(|h| parse_hours(h).ok())
            .any(|h| {
                (h.first_day..=h.last_day).contains(&day)
                    && minute >= h.from_min
                    && minute < h.to_min
            })
    }
}

/// Check `[transfer]`; `err(key, message)` for each problem.
pub(super) fn validate(t: &TransferConfig, err: &mut dyn FnMut(&str, String)) {
    let target = t.target.trim();
    if !target.is_empty() && !is_sip_uri(target) {
        err(
            "transfer.target",
            format!("`{target}` is not a SIP URI (sip:queue@pbx.example.gov)"),
        );
    }
    if !matches!(t.mode.as_str(), "bridge" | "refer") {
        err(
            "transfer.mode",
            format!("`{}` must be \"bridge\" or \"refer\"", t.mode),
        );
    }
    for (i, h) in t.hours.iter().enumerate() {
        if let Err(e) = parse_hours(h) {
            err(&format!("transfer.hours[{i}]"), e);
        }
    }
    if let Err(e) = parse_timezone(&t.timezone) {
        err("transfer.timezone", e);
    }
    for (key, list) in [
        ("closed_dates", &t.closed_dates),
        ("open_dates", &t.open_dates),
    ] {
        for (i, d) in list.iter().enumerate() {
            if let Err(e) = parse_date(d) {
                err(&format!("transfer.{key}[{i}]"), e);
            }
        }
    }
    if t.ring_timeout_secs == 0 || t.ring_timeout_secs > 300 {
        err(
            "transfer.ring_timeout_secs",
            "must be between 1 and 300".into(),
        );
    }
    if !matches!(t.caller_id.as_str(), "pai" | "from") {
        err(
            "transfer.caller_id",
            format!("`{}` must be \"pai\" or \"from\"", t.caller_id),
        );
    }
    if t.username.is_empty() != t.password.is_empty() {
        err(
            if t.username.is_empty() {
                "transfer.username"
            } else {
                "transfer.password"
            },
            "username and password go together".into(),
        );
    }
    let urgent = t.urgent_target.trim();
    if !urgent.is_empty() && !is_sip_uri(urgent) {
        err(
            "transfer.urgent_target",
            format!("`{urgent}` is not a SIP URI"),
        );
    }
    match t.urgent_action.as_str() {
        "flag" => {}
        "transfer" if urgent.is_empty() => err(
            "transfer.urgent_action",
            "\"transfer\" needs transfer.urgent_target".into(),
        ),
        "transfer" => {}
        other => err(
            "transfer.urgent_action",
            format!("`{other}` must be \"flag\" or \"transfer\""),
        ),
    }
}

fn is_sip_uri(s: &str) -> bool {
    (s.starts_with("sip:") || s.starts_with("sips:"))
        && !s.contains(['\r', '\n', ' ', '<', '>', '"'])
        && rsip::Uri::try_from(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn hours_follow_the_weekday_the_local_time_and_the_holiday_lists() {
        let t = TransferConfig {
            hours: vec!["mon-fri 08:00-20:00".into(), "sat 09:00-12:00".into()],
            closed_dates: vec!["2026-10-01".into()],
            open_dates: vec!["2026-10-11".into()],
            ..TransferConfig::default()
        };
        // Wednesday 2026-12-02 09:00 in Beijing is 01:00 UTC.
        assert!(t.open_at(at("2026-12-02T01:00:00Z")));
        // 07:59 Beijing: not yet.
        assert!(!t.open_at(at("2026-12-01T23:59:00Z")));
        // 20:00 Beijing: closed (the end is exclusive).
        assert!(!t.open_at(at("2026-12-02T12:00:00Z")));
        // Saturday 10:00 open, Sunday closed.
        assert!(t.open_at(at("2026-12-05T02:00:00Z")));
        assert!(!t.open_at(at("2026-12-06T02:00:00Z")));
        // National Day (a Thursday) is closed; the make-up Sunday is open.
        assert!(!t.open_at(at("2026-10-01T02:00:00Z")));
        assert!(t.open_at(at("2026-10-11T02:00:00Z")));
        assert!(TransferConfig::default().open_at(at("2026-12-06T02:00:00Z")));
    }

    #[test]
    fn validation_names_each_bad_key() {
        let t = TransferConfig {
            target: "http://x".into(),
            mode: "blind".into(),
            hours: vec!["weekdays".into()],
            timezone: "Mars/Base".into(),
            urgent_action: "transfer".into(),
            ..TransferConfig::default()
        };
        let mut keys = Vec::new();
        validate(&t, &mut |k, _| keys.push(k.to_owned()));
        assert_eq!(
            keys,
            [
                "transfer.target",
                "transfer.mode",
                "transfer.hours[0]",
                "transfer.timezone",
                "transfer.urgent_action"
            ]
        );
        let mut n = 0;
        validate(&TransferConfig::default(), &mut |_, _| n += 1);
        assert_eq!(n, 0);
    }
}
