//! Configuration: one TOML file, every key overridable from the environment.
//!
//! Loading is in two steps so that every error can name the key *and* the line:
//! the text is parsed with `toml_edit` (which keeps spans), `HOTLINE_*` environment
//! overrides are applied to that document, then it is deserialised into [`Config`] and
//! validated. A validation error carries the dotted key; its line is found from the spans.
//!
//! Every section and almost every key has a default, so a file holding only `[[number]]`
//! entries is a working configuration. Files on disk (the prompts) are checked separately by
//! [`Config::check_files`] so that parsing stays pure.
//!
//! Environment overrides (see [`env`]): `HOTLINE_<SECTION>_<KEY>` in upper case sets
//! `<section>.<key>`, e.g. `HOTLINE_SIP_LISTEN`, `HOTLINE_MEDIA_RTP_PORT_MIN`; `HOTLINE_DATA_DIR`
//! is an alias of `HOTLINE_STORAGE_DATA_DIR`. A variable that starts with a section name but
//! names no key is an error, so typos do not pass silently.
//!
//! Relative paths (`prompts.dir`, `storage.data_dir`) are relative to the process's working
//! directory; the example `config/hotline.toml` assumes the daemon runs from the repository root.
//!
//! The sections live by topic: [`network`] (SIP, media, numbers, limits, trunks, security),
//! [`ivr`] (prompts, menu, barge-in, recording), [`pipeline`] (storage, intake, ASR, tickets);
//! `[log]` and `[admin]` are here. All are re-exported, so `config::SipConfig` is the path.

mod console;
pub mod env;
mod flow;
mod flow_check;
mod flow_steps;
mod ivr;
mod load;
mod network;
mod pipeline;
#[cfg(test)]
mod tests;
pub mod transfer;
mod trunk_check;
mod validate;

pub use console::*;
pub use flow::*;
pub use ivr::*;
pub use load::ConfigSource;
pub use network::*;
pub use pipeline::*;
pub use transfer::TransferConfig;

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole daemon configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub sip: SipConfig,
    pub media: MediaConfig,
    /// `[[number]]`: dialled numbers the gateway answers.
    #[serde(rename = "number")]
    pub numbers: Vec<NumberConfig>,
    pub prompts: PromptsConfig,
    pub menu: MenuConfig,
    /// How the call flow treats a caller who talks over its prompts.
    pub ivr: IvrConfig,
    pub recording: RecordingConfig,
    /// The call flow: named steps, each an action (see [`flow`]).
    pub flow: FlowConfig,
    pub limits: LimitsConfig,
    pub storage: StorageConfig,
    /// Where tickets are delivered (the city's intake API).
    pub intake: IntakeConfig,
    /// How tickets are classified and checked for duplicates.
    pub tickets: TicketsConfig,
    /// Transcription of callers' messages (Whisper).
    pub asr: AsrSection,
    /// `[[trunk]]`: who may call. None configured = anyone may (the demo set-up).
    #[serde(rename = "trunk")]
    pub trunks: Vec<TrunkConfig>,
    /// Scanner and flood defence.
    pub security: SecurityConfig,
    /// Logging policy.
    pub log: LogConfig,
    /// The admin HTTP listener (metrics, health).
    pub admin: AdminConfig,
    /// The operator desk and its HTTP API (`src/console/`).
    pub console: ConsoleConfig,
    /// Reaching a person: the operators' target, mode and hours.
    pub transfer: TransferConfig,
    /// Where each key came from (file line or environment variable), for error messages
    /// raised after loading (e.g. by [`Config::check_files`]). Empty for a `Default` config.
    #[serde(skip)]
    pub source: ConfigSource,
}

/// `[log]`: what may appear in logs.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Mask caller numbers in logs (`13812345678` → `138****5678`). Call records and tickets
    /// keep the full number. Default false.
    pub mask_caller_numbers: bool,
}

/// `[admin]`: the HTTP listener for `/metrics`, `/healthz` and `/readyz`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// `address:port`, empty = no listener. Default `127.0.0.1:9090`: loopback. Env:
    /// `HOTLINE_ADMIN_LISTEN`.
    pub listen: String,
    /// Bearer token required for `/metrics` when set (`/healthz` and `/readyz` stay open for
    /// probes). Required for a non-loopback `listen`. Env: `HOTLINE_ADMIN_TOKEN`.
    pub token: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:9090".to_owned(),
            token: String::new(),
        }
    }
}

impl AdminConfig {
    /// The address to listen on; `None` when the listener is off (or the value is invalid,
    /// which validation reports).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        listen_addr(&self.listen)
    }
}

/// An HTTP listener's `listen` value: `None` when empty (off) or invalid (validation says so).
fn listen_addr(listen: &str) -> Option<SocketAddr> {
    let l = listen.trim();
    if l.is_empty() {
        return None;
    }
    l.parse().ok()
}

/// A configuration error that names the key and, when known, the line.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// Dotted key, e.g. `menu.option[2].digit` (indices 0-based, in file order); empty for
    /// syntax errors and for environment variables that name no key.
    pub key: String,
    /// 1-based line in the file, when the key exists there (or, for a key left to its
    /// default, the line of the nearest enclosing table that does).
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// The file, when loaded from one.
    pub file: Option<PathBuf>,
    /// The environment variable the value came from, when it came from one.
    pub env_var: Option<String>,
}

impl ConfigError {
    /// An error about the file as a whole or its syntax (no key).
    pub(crate) fn syntax(line: Option<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            key: String::new(),
            line,
            message: message.into(),
            file: None,
            env_var: None,
        }
    }

    fn render(&self) -> String {
        let mut s = String::new();
        if let Some(f) = &self.file {
            s.push_str(&f.display().to_string());
            s.push(':');
        }
        if let Some(l) = self.line {
            s.push_str(&format!("{l}:"));
        }
        if !s.is_empty() {
            s.push(' ');
        }
        if !self.key.is_empty() {
            s.push_str(&format!("key `{}`", self.key));
            if let Some(var) = &self.env_var {
                s.push_str(&format!(" (from environment variable {var})"));
            }
            s.push_str(": ");
        } else if let Some(var) = &self.env_var {
            s.push_str(&format!("environment variable {var}: "));
        }
        s.push_str(&self.message);
        s
    }
}

impl Config {
    /// Read, apply `HOTLINE_*` overrides from the process environment, validate.
    ///
    /// Does not look at files the configuration names; call [`Config::check_files`] for that.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError {
                file: Some(path.to_owned()),
                ..ConfigError::syntax(None, format!("cannot read: {e}"))
            }]
        })?;
        // `vars()` would panic on a non-UTF-8 variable anywhere in the environment; such a
        // variable cannot be one of ours unless its name is, and then it is reported.
        let mut env = Vec::new();
        let mut bad = Vec::new();
        for (name, value) in std::env::vars_os() {
            match (name.into_string(), value.into_string()) {
                (Ok(n), Ok(v)) => env.push((n, v)),
                (Ok(n), Err(_)) if n.starts_with("HOTLINE_") => bad.push(ConfigError {
                    env_var: Some(n),
                    file: Some(path.to_owned()),
                    ..ConfigError::syntax(None, "value is not valid UTF-8")
                }),
                _ => {}
            }
        }
        if !bad.is_empty() {
            return Err(bad);
        }
        let mut config = Config::from_str_with_env(&text, &env)
            .map(|mut c| {
                c.source.file = Some(path.to_owned());
                c
            })
            .map_err(|errs| {
                errs.into_iter()
                    .map(|mut e| {
                        e.file = Some(path.to_owned());
                        e
                    })
                    .collect::<Vec<_>>()
            })?;
        if !config.flow.file.is_empty() {
            // The flow file's own checks ran without it (there was nothing to check).
            flow::load_file(&mut config, path)?;
            let errors = flow_check::validate(&config);
            if !errors.is_empty() {
                return Err(errors);
            }
        }
        Ok(config)
    }

    /// Parse `text`, apply overrides from `env` (only `HOTLINE_*` entries are looked at), validate.
    ///
    /// Every problem found is returned, not just the first: syntax errors stop everything, but
    /// bad environment variables, unknown keys, mistyped values and failed validations are
    /// collected together.
    pub fn from_str_with_env(
        text: &str,
        env: &[(String, String)],
    ) -> Result<Config, Vec<ConfigError>> {
        let mut errors = match load::parse(text, env) {
            Ok(config) => {
                let errors = validate::validate(&config);
                if errors.is_empty() {
                    return Ok(config);
                }
                errors
            }
            Err(errors) => errors,
        };
        // Environment problems (no line) first, then in file order.
        errors.sort_by_key(|e| e.line.unwrap_or(0));
        Err(errors)
    }

    /// Check the files the configuration names: every language in use (`prompts.language` and
    /// each number's `language`) has a directory under `prompts.dir` holding every one of
    /// [`REQUIRED_PROMPTS`] as a readable WAV, and `storage.data_dir` is a directory if it
    /// exists. Relative paths are resolved against `base` (the daemon passes its working
    /// directory).
    pub fn check_files(&self, base: &Path) -> Vec<ConfigError> {
        validate::check_files(self, base)
    }

    /// The numbers entry for a dialled number, if we answer it.
    pub fn number(&self, dialled: &str) -> Option<&NumberConfig> {
        self.numbers.iter().find(|n| n.number == dialled)
    }

    /// Prompt language for a number entry: its own, else `prompts.language`.
    pub fn language_for<'a>(&'a self, number: &'a NumberConfig) -> &'a str {
        number.language.as_deref().unwrap_or(&self.prompts.language)
    }

    /// The menu option for a DTMF digit.
    pub fn menu_option(&self, digit: char) -> Option<&MenuOption> {
        let mut buf = [0u8; 4];
        let digit: &str = digit.encode_utf8(&mut buf);
        self.menu.options.iter().find(|o| o.digit == digit)
    }
}

/// What `hotline-gateway check-config` runs: load `path` with the process environment, check the
/// files it names relative to the working directory, and summarise what the daemon would do.
pub fn check_config(path: &Path) -> Result<String, Vec<ConfigError>> {
    let config = Config::load(path)?;
    let base = std::env::current_dir().map_err(|e| {
        vec![ConfigError::syntax(
            None,
            format!("cannot determine working directory: {e}"),
        )]
    })?;
    let errors = config.check_files(&base);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(config.summary())
}

impl Config {
    /// A short human summary: listen address, numbers, menu.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "SIP listen: udp{} {}",
            if self.sip.tcp { "+tcp" } else { "" },
            self.sip.listen
        );
        if let Some(a) = self.sip.advertised_addr {
            let _ = writeln!(s, "advertised address: {a}");
        }
        let _ = writeln!(
            s,
            "RTP: {} ports {}-{}, codecs {}",
            self.media.rtp_ip,
            self.media.rtp_port_min,
            self.media.rtp_port_max,
            self.media.codecs.join(",")
        );
        let _ = writeln!(s, "numbers:");
        for n in &self.numbers {
            let _ = writeln!(
                s,
                "  {} -> channel {} (prompts {})",
                n.number,
                n.channel,
                self.prompts.language_dir(self.language_for(n)).display()
            );
        }
        if self.trunks.is_empty() {
            let _ = writeln!(
                s,
                "trunks: none configured, calls accepted from any address"
            );
        } else {
            let _ = writeln!(s, "trunks (others: {}):", self.security.unknown_source);
            for t in &self.trunks {
                let _ = writeln!(
                    s,
                    "  {} from {}{}{}, up to {} msg/s per source (throttled, never banned)",
                    t.name,
                    t.sources.join(", "),
                    if t.username.is_some() {
                        ", digest auth"
                    } else {
                        ""
                    },
                    t.max_calls
                        .map(|m| format!(", max {m} calls"))
                        .unwrap_or_default(),
                    t.max_request_rate
                );
            }
        }
        let _ = writeln!(s, "menu:");
        let legacy = !self.flow.is_configured();
        for o in &self.menu.options {
            let _ = writeln!(
                s,
                "  {} {} ({}){}",
                o.digit,
                o.label,
                o.id,
                if legacy && o.record {
                    ", records a message"
                } else {
                    ""
                }
            );
        }
        let fallback = match self.menu.on_no_input.as_str() {
            "hangup" => "hang up".to_owned(),
            d => format!("take option {d}"),
        };
        let _ = writeln!(
            s,
            "  no valid key after {} attempts: {fallback}",
            self.menu.max_attempts
        );
        let _ = match self.ivr.speech_barge_in.as_str() {
            "off" => writeln!(s, "  talking over prompts: ignored (keys only)"),
            mode => writeln!(
                s,
                "  talking over {} stops it after {} ms; the message keeps {} ms before that",
                if mode == "all" {
                    "any prompt before the message"
                } else {
                    "the message prompt"
                },
                self.ivr.barge_in_min_speech_ms,
                self.ivr.barge_in_preroll_ms
            ),
        };
        s.push_str(&flow::summary(self));
        let _ = writeln!(
            s,
            "limits: {} calls, {} s per call, {} s drain on SIGTERM; data in {}",
            self.limits.max_calls,
            self.limits.max_call_duration_secs,
            self.limits.drain_timeout_secs,
            self.storage.data_dir.display()
        );
        let _ = match self.admin.listen_addr() {
            Some(a) => writeln!(s, "admin: http://{a}/metrics, /healthz, /readyz"),
            None => writeln!(s, "admin: off"),
        };
        let _ = match self.console.listen_addr() {
            Some(a) => writeln!(
                s,
                "operator desk: http://{a}/ ({} accounts, {} API tokens)",
                self.console.users.len(),
                self.console.api_tokens.len()
            ),
            None => writeln!(s, "operator desk: off"),
        };
        s
    }
}
