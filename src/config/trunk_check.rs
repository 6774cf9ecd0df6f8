//! Validation of `[[trunk]]`, `[security]` and the SIP transport limits: who may call and how
//! hard. Kept apart from `validate.rs` (the rest of the file) by topic; errors name key and line
//! like every other check.

use super::Config;
use std::collections::BTreeSet;

/// `[[trunk]]`, `[security]` and the TCP limits of `[sip]`.
pub(super) fn validate_trunks(c: &Config, err: &mut impl FnMut(&str, String)) {
    let mut names = BTreeSet::new();
    for (i, t) in c.trunks.iter().enumerate() {
        let at = format!("trunk[{i}]");
        if t.name.trim().is_empty() {
            err(
                &format!("{at}.name"),
                "missing; every [[trunk]] needs `name`".into(),
            );
        } else if !names.insert(t.name.as_str()) {
            err(
                &format!("{at}.name"),
                format!("trunk `{}` is configured twice", t.name),
            );
        }
        if t.sources.is_empty() {
            err(
                &format!("{at}.sources"),
                "missing; list the addresses the trunk sends from (CIDR, e.g. \"203.0.113.0/28\")"
                    .into(),
            );
        }
        for s in &t.sources {
            if super::parse_net(s).is_none() {
                err(
                    &format!("{at}.sources"),
                    format!(
                        "`{s}` is not an address or CIDR network (e.g. 10.0.0.0/8, 2001:db8::/32)"
                    ),
                );
            }
        }
        match (&t.username, &t.password) {
            (Some(u), Some(p)) => {
                if u.is_empty() || u.contains(['"', '\\', '\r', '\n']) {
                    err(
                        &format!("{at}.username"),
                        "must be non-empty, without quotes or line breaks".into(),
                    );
                }
                if p.is_empty() {
                    // The value itself is a secret: never echo it.
                    err(&format!("{at}.password"), "must not be empty".into());
                }
            }
            (Some(_), None) => err(
                &format!("{at}.password"),
                "`username` is set but `password` is not".into(),
            ),
            (None, Some(_)) => err(
                &format!("{at}.username"),
                "`password` is set but `username` is not".into(),
            ),
            (None, None) => {}
        }
        if t.realm.is_empty() || t.realm.contains(['"', '\\', '\r', '\n']) {
            err(
                &format!("{at}.realm"),
                "must be non-empty, without quotes or line breaks".into(),
            );
        }
        if t.algorithms.is_empty() {
            err(
                &format!("{at}.algorithms"),
                "at least one of SHA-256, MD5".into(),
            );
        }
        for a in &t.algorithms {
            if !matches!(a.to_ascii_uppercase().as_str(), "SHA-256" | "MD5") {
                err(
                    &format!("{at}.algorithms"),
                    format!("unknown algorithm `{a}`; known: SHA-256, MD5"),
                );
            }
        }
        if t.max_calls == Some(0) {
            err(
                &format!("{at}.max_calls"),
                "must be at least 1 (remove the key for no own limit)".into(),
            );
        }
        if !(1..=100_000).contains(&t.max_request_rate) {
            err(
                &format!("{at}.max_request_rate"),
                format!(
                    "{} is out of range: 1 to 100000 messages per second per source",
                    t.max_request_rate
                ),
            );
        }
        for n in &t.numbers {
            if c.number(n).is_none() {
                err(
                    &format!("{at}.numbers"),
                    format!("`{n}` is not a configured [[number]]"),
                );
            }
        }
    }
    let s = &c.security;
    if !matches!(s.unknown_source.as_str(), "reject" | "drop") {
        err(
            "security.unknown_source",
            format!("`{}` must be \"reject\" or \"drop\"", s.unknown_source),
        );
    }
    if s.rate_limit == 0 {
        err(
            "security.rate_limit",
            "must be at least 1 message per second".into(),
        );
    }
    if s.rate_burst < s.rate_limit {
        err(
            "security.rate_burst",
            format!("must be at least security.rate_limit ({})", s.rate_limit),
        );
    }
    if s.ban_secs == 0 {
        err("security.ban_secs", "must be greater than 0".into());
    }
    if s.nonce_ttl_secs == 0 {
        err("security.nonce_ttl_secs", "must be greater than 0".into());
    }
    if s.scanner_user_agents.iter().any(|u| u.trim().is_empty()) {
        err(
            "security.scanner_user_agents",
            "entries must not be empty".into(),
        );
    }
    if c.sip.max_message_bytes < 1024 {
        err("sip.max_message_bytes", "must be at least 1024".into());
    }
    if c.sip.tcp_max_connections == 0 {
        err("sip.tcp_max_connections", "must be greater than 0".into());
    }
    if c.sip.tcp_max_connections_per_source == 0
        || c.sip.tcp_max_connections_per_source > c.sip.tcp_max_connections
    {
        err(
            "sip.tcp_max_connections_per_source",
            format!(
                "must be between 1 and sip.tcp_max_connections ({})",
                c.sip.tcp_max_connections
            ),
        );
    }
    if !(1..=600).contains(&c.sip.tcp_message_timeout_secs) {
        err(
            "sip.tcp_message_timeout_secs",
            "must be between 1 and 600".into(),
        );
    }
}
