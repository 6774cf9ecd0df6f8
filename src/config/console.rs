//! `[console]`: the operator desk and its HTTP API (see `src/console/`).
//!
//! Off unless `listen` is set. Desk accounts are `[[console.user]]` entries with an argon2id
//! hash (made by `hotline-gateway console hash-password`), never a password in the file;
//! machine clients (the intake's progress reports) use `api_tokens` as bearer tokens.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// What a desk account may see and do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleRole {
    /// Works tickets; sees callers' numbers masked (`138****5678`).
    Operator,
    /// Also sees whole numbers and the supervisor page.
    Supervisor,
}

impl ConsoleRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsoleRole::Operator => "operator",
            ConsoleRole::Supervisor => "supervisor",
        }
    }
}

/// `[[console.user]]`: one desk account.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleUser {
    pub name: String,
    /// PHC string of an argon2id hash (`$argon2id$v=19$...`).
    pub password_hash: String,
    pub role: ConsoleRole,
}

/// `[console]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// `address:port` of the desk and the API; empty = off. Env: `HOTLINE_CONSOLE_LISTEN`.
    pub listen: String,
    /// Bearer tokens for machine clients. Env: `HOTLINE_CONSOLE_API_TOKENS` (comma-separated).
    pub api_tokens: Vec<String>,
    /// Base URL of this API as the intake reaches it (`https://desk.example.gov`); tickets'
    /// `recording.url` is `<public_url>/api/v1/tickets/<id>/recording`. Empty = no URL.
    pub public_url: String,
    #[serde(rename = "user")]
    pub users: Vec<ConsoleUser>,
}

impl ConsoleConfig {
    /// The address to listen on; `None` when off (or invalid, which validation reports).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        super::listen_addr(&self.listen)
    }

    /// The recording endpoint of a ticket as the intake should fetch it, when `public_url` is set.
    pub fn recording_url(&self, ticket_id: &str) -> Option<String> {
        crate::ticket::progress::recording_url(&self.public_url, ticket_id)
    }
}

/// Checks of `[console]`; `err(key, message)` reports with the key's line.
pub(super) fn validate(c: &ConsoleConfig, err: &mut impl FnMut(&str, String)) {
    let listen = c.listen.trim();
    if !listen.is_empty() && listen.parse::<SocketAddr>().is_err() {
        err(
            "console.listen",
            format!("`{listen}` is not an address:port (e.g. 127.0.0.1:8080), or empty for off"),
        );
    }
    for (i, t) in c.api_tokens.iter().enumerate() {
        if t.trim().len() < 16 {
            err(
                &format!("console.api_tokens[{i}]"),
                "too short: use at least 16 random characters".into(),
            );
        }
    }
    let url = c.public_url.trim();
    if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
        err(
            "console.public_url",
            format!("`{url}` must start with http:// or https://"),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, u) in c.users.iter().enumerate() {
        let at = format!("console.user[{i}]");
        if u.name.trim().is_empty() {
            err(&format!("{at}.name"), "must not be empty".into());
        } else if !seen.insert(u.name.as_str()) {
            err(
                &format!("{at}.name"),
                format!("user `{}` is configured twice", u.name),
            );
        }
        if !u.password_hash.starts_with("$argon2id$") {
            err(
                &format!("{at}.password_hash"),
                "not an argon2id hash; make one with `hotline-gateway console hash-password`"
                    .into(),
            );
        }
    }
}
