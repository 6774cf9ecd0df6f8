//! Environment overrides: `HOTLINE_<SECTION>_<KEY>` sets `<section>.<key>`.
//!
//! The naming rule: take the dotted key, upper-case it, replace the dot by `_` and prefix
//! `HOTLINE_`: `media.rtp_port_min` ← `HOTLINE_MEDIA_RTP_PORT_MIN`. Section names contain no
//! `_`, so the first `_` after the prefix separates section from key.
//!
//! Values are typed by the key's kind ([`Kind`]): integers, floats and booleans are parsed
//! (`true/false/1/0/yes/no/on/off`), string lists are comma-separated (`PCMA,PCMU`), and an
//! empty value unsets an optional key. Range and format checks (a port that does not fit in
//! 16 bits, an unparsable address) happen when the document is deserialised and validated,
//! and those errors also name the variable.
//!
//! Which variables are looked at: a `HOTLINE_` variable whose first word is a section name
//! (`HOTLINE_SIP_...`, `HOTLINE_MEDIA_...`, ...) must name a key in [`KEYS`], otherwise loading
//! fails naming it, so a typo such as `HOTLINE_SIP_LISTN` cannot pass silently. The reserved
//! names in [`RESERVED`] belong to other parts of the program and are accepted untouched, and
//! [`ALIASES`] are short names for keys. Any other `HOTLINE_` variable is not a configuration
//! key and is ignored here.

use super::ConfigError;

/// `HOTLINE_` variables read elsewhere (logging), never configuration keys.
pub const RESERVED: &[&str] = &["HOTLINE_LOG"];

/// Short names: variable → dotted key.
pub const ALIASES: &[(&str, &str)] = &[("HOTLINE_DATA_DIR", "storage.data_dir")];

/// Top-level sections of the file. `number` is a list of tables and cannot be set from the
/// environment; it is listed so that `HOTLINE_NUMBER_...` is reported rather than ignored.
pub const SECTIONS: &[&str] = &[
    "sip",
    "media",
    "number",
    "prompts",
    "menu",
    "ivr",
    "recording",
    "flow",
    "limits",
    "storage",
    "intake",
    "tickets",
    "asr",
    "trunk",
    "security",
    "log",
    "admin",
    "console",
    "transfer",
];

/// How an environment value is turned into a TOML value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Str,
    /// A string that may be absent; an empty value removes the key.
    OptStr,
    Int,
    Float,
    Bool,
    /// Comma-separated strings.
    StrList,
}

/// Every key that can be set from the environment, as `(section, key, kind)`.
pub const KEYS: &[(&str, &str, Kind)] = &[
    ("sip", "listen", Kind::Str),
    ("sip", "advertised_addr", Kind::OptStr),
    ("sip", "t1_ms", Kind::Int),
    ("sip", "t2_ms", Kind::Int),
    ("sip", "t4_ms", Kind::Int),
    ("sip", "early_media", Kind::Bool),
    ("sip", "user_agent", Kind::Str),
    ("sip", "tcp", Kind::Bool),
    ("sip", "max_message_bytes", Kind::Int),
    ("sip", "tcp_max_connections", Kind::Int),
    ("sip", "tcp_max_connections_per_source", Kind::Int),
    ("sip", "tcp_message_timeout_secs", Kind::Int),
    ("sip", "instance_id", Kind::OptStr),
    ("media", "rtp_ip", Kind::Str),
    ("media", "rtp_port_min", Kind::Int),
    ("media", "rtp_port_max", Kind::Int),
    ("media", "codecs", Kind::StrList),
    ("media", "rtp_timeout_secs", Kind::Int),
    ("media", "strict_rtp_relearn_ms", Kind::Int),
    ("prompts", "dir", Kind::Str),
    ("prompts", "language", Kind::Str),
    ("menu", "digit_timeout_secs", Kind::Int),
    ("menu", "max_attempts", Kind::Int),
    ("menu", "on_no_input", Kind::Str),
    ("menu", "speech", Kind::Bool),
    ("ivr", "speech_barge_in", Kind::Str),
    ("ivr", "barge_in_min_speech_ms", Kind::Int),
    ("ivr", "barge_in_snr_db", Kind::Float),
    ("ivr", "barge_in_level_dbfs", Kind::Float),
    ("ivr", "barge_in_preroll_ms", Kind::Int),
    ("recording", "max_duration_secs", Kind::Int),
    ("recording", "trailing_silence_ms", Kind::Int),
    ("recording", "no_speech_timeout_secs", Kind::Int),
    ("recording", "speech_threshold_dbfs", Kind::Float),
    ("recording", "end_digit", Kind::Str),
    ("recording", "utterance_pause_ms", Kind::Int),
    ("flow", "file", Kind::Str),
    ("flow", "start", Kind::Str),
    ("limits", "max_calls", Kind::Int),
    ("limits", "max_call_duration_secs", Kind::Int),
    ("limits", "retry_after_secs", Kind::Int),
    ("limits", "drain_timeout_secs", Kind::Int),
    ("storage", "data_dir", Kind::Str),
    ("storage", "retention_days", Kind::Int),
    ("storage", "min_free_mb", Kind::Int),
    ("intake", "url", Kind::Str),
    ("intake", "token", Kind::Str),
    ("intake", "schema", Kind::Str),
    ("intake", "concurrency", Kind::Int),
    ("intake", "connect_timeout_ms", Kind::Int),
    ("intake", "request_timeout_ms", Kind::Int),
    ("intake", "backoff_base_ms", Kind::Int),
    ("intake", "backoff_max_ms", Kind::Int),
    ("tickets", "classification", Kind::Str),
    ("tickets", "duplicate_window_secs", Kind::Int),
    ("tickets", "duplicate_threshold", Kind::Float),
    ("tickets", "instance_number", Kind::Int),
    ("tickets", "store", Kind::Str),
    ("tickets", "url", Kind::Str),
    ("tickets", "lease_secs", Kind::Int),
    ("asr", "enabled", Kind::Bool),
    ("asr", "model", Kind::Str),
    ("asr", "required", Kind::Bool),
    ("asr", "workers", Kind::Int),
    ("asr", "threads_per_worker", Kind::Int),
    ("asr", "queue_depth", Kind::Int),
    ("asr", "time_budget_secs", Kind::Int),
    ("asr", "beam_size", Kind::Int),
    ("asr", "initial_prompt", Kind::Str),
    ("asr", "context_chars", Kind::Int),
    ("asr", "second_pass", Kind::Bool),
    ("asr", "second_pass_beam_size", Kind::Int),
    ("asr", "second_pass_prompt", Kind::Str),
    ("asr", "keyword_bias", Kind::Str),
    ("asr", "keyword_rescoring", Kind::Bool),
    ("asr", "homophones", Kind::Bool),
    ("security", "unknown_source", Kind::Str),
    ("security", "rate_limit", Kind::Int),
    ("security", "rate_burst", Kind::Int),
    ("security", "ban_secs", Kind::Int),
    ("security", "scanner_user_agents", Kind::StrList),
    ("security", "nonce_ttl_secs", Kind::Int),
    ("log", "mask_caller_numbers", Kind::Bool),
    ("admin", "listen", Kind::Str),
    ("admin", "token", Kind::Str),
    ("console", "listen", Kind::Str),
    ("console", "api_tokens", Kind::StrList),
    ("console", "public_url", Kind::Str),
    ("transfer", "target", Kind::Str),
    ("transfer", "mode", Kind::Str),
    ("transfer", "hours", Kind::StrList),
    ("transfer", "timezone", Kind::Str),
    ("transfer", "closed_dates", Kind::StrList),
    ("transfer", "open_dates", Kind::StrList),
    ("transfer", "ring_timeout_secs", Kind::Int),
    ("transfer", "caller_id", Kind::Str),
    ("transfer", "username", Kind::Str),
    ("transfer", "password", Kind::Str),
    ("transfer", "record_bridged", Kind::Bool),
    ("transfer", "urgent_target", Kind::Str),
    ("transfer", "urgent_action", Kind::Str),
];

/// The variable that sets `section.key`, e.g. `("sip", "listen")` → `HOTLINE_SIP_LISTEN`.
pub fn var_name(section: &str, key: &str) -> String {
    format!("HOTLINE_{}_{}", section, key).to_ascii_uppercase()
}

/// One override to apply to the document.
#[derive(Clone, Debug)]
pub(crate) struct Override {
    pub var: String,
    pub section: &'static str,
    pub key: &'static str,
    /// `None` removes the key (empty value for an optional key).
    pub value: Option<toml_edit::Value>,
}

/// Turn the `HOTLINE_*` entries of `env` into overrides, collecting every bad variable.
/// Output is sorted by variable name so that errors come out in a stable order.
pub(crate) fn overrides(env: &[(String, String)]) -> (Vec<Override>, Vec<ConfigError>) {
    let mut vars: Vec<&(String, String)> = env
        .iter()
        .filter(|(name, _)| name.starts_with("HOTLINE_"))
        .collect();
    vars.sort();
    let mut out: Vec<Override> = Vec::new();
    let mut errors = Vec::new();
    for (name, value) in vars {
        match override_for(name, value) {
            Ok(Some(o)) => {
                // An alias and the full name both set: only an error if they disagree.
                if let Some(prev) = out
                    .iter()
                    .find(|p| p.section == o.section && p.key == o.key)
                {
                    if prev.value.as_ref().map(|v| v.to_string())
                        != o.value.as_ref().map(|v| v.to_string())
                    {
                        errors.push(env_error(
                            name,
                            format!(
                                "conflicts with {} (both set `{}.{}` to different values)",
                                prev.var, o.section, o.key
                            ),
                        ));
                    }
                    continue;
                }
                out.push(o);
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    (out, errors)
}

fn env_error(var: &str, message: String) -> ConfigError {
    ConfigError {
        env_var: Some(var.to_owned()),
        ..ConfigError::syntax(None, message)
    }
}

/// `Ok(None)`: not a configuration variable (reserved, or no section prefix).
fn override_for(name: &str, value: &str) -> Result<Option<Override>, ConfigError> {
    if RESERVED.contains(&name) {
        return Ok(None);
    }
    let (section, key) = if let Some((_, dotted)) = ALIASES.iter().find(|(a, _)| *a == name) {
        dotted.split_once('.').unwrap_or((dotted, ""))
    } else {
        let rest = name["HOTLINE_".len()..].to_ascii_lowercase();
        let (section, key) = rest.split_once('_').unwrap_or((rest.as_str(), ""));
        let Some(section) = SECTIONS.iter().find(|s| **s == section) else {
            return Ok(None);
        };
        match KEYS.iter().find(|(s, k, _)| s == section && *k == key) {
            Some((s, k, _)) => (*s, *k),
            None => return Err(unknown_key(name, section, key)),
        }
    };
    let (section, key, kind) = KEYS
        .iter()
        .find(|(s, k, _)| *s == section && *k == key)
        .copied()
        .expect("aliases name keys listed in KEYS");
    let value = parse_value(kind, value).map_err(|m| ConfigError {
        key: format!("{section}.{key}"),
        env_var: Some(name.to_owned()),
        ..ConfigError::syntax(None, m)
    })?;
    Ok(Some(Override {
        var: name.to_owned(),
        section,
        key,
        value,
    }))
}

fn unknown_key(name: &str, section: &str, key: &str) -> ConfigError {
    let message = if section == "number"
        || section == "trunk"
        || (section == "menu" && key == "option")
    {
        format!("`{section}` entries are a list of tables and cannot be set from the environment; edit the file")
    } else {
        let known: Vec<String> = KEYS
            .iter()
            .filter(|(s, _, _)| *s == section)
            .map(|(s, k, _)| var_name(s, k))
            .collect();
        format!(
            "no configuration key `{section}.{key}`; variables for [{section}] are: {}",
            known.join(", ")
        )
    };
    env_error(name, message)
}

fn parse_value(kind: Kind, raw: &str) -> Result<Option<toml_edit::Value>, String> {
    let t = raw.trim();
    Ok(Some(match kind {
        Kind::Str => raw.into(),
        Kind::OptStr if t.is_empty() => return Ok(None),
        Kind::OptStr => t.into(),
        Kind::Int => t
            .parse::<i64>()
            .map_err(|_| format!("expected an integer, got `{raw}`"))?
            .into(),
        Kind::Float => t
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| format!("expected a number, got `{raw}`"))?
            .into(),
        Kind::Bool => match t.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true.into(),
            "false" | "0" | "no" | "off" => false.into(),
            _ => return Err(format!("expected true or false, got `{raw}`")),
        },
        Kind::StrList => {
            let items = t.split(',').map(str::trim).filter(|s| !s.is_empty());
            toml_edit::Value::Array(items.collect())
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn variable_names_follow_the_dotted_key() {
        assert_eq!(
            var_name("media", "rtp_port_min"),
            "HOTLINE_MEDIA_RTP_PORT_MIN"
        );
        let (o, e) = overrides(&env(&[("HOTLINE_MEDIA_RTP_PORT_MIN", "20000")]));
        assert!(e.is_empty(), "{e:?}");
        assert_eq!((o[0].section, o[0].key), ("media", "rtp_port_min"));
        assert_eq!(o[0].value.as_ref().unwrap().as_integer(), Some(20000));
    }

    #[test]
    fn reserved_and_foreign_variables_are_left_alone() {
        let (o, e) = overrides(&env(&[
            ("HOTLINE_LOG", "debug"),
            ("HOTLINE_WHISPER_MODEL", "/models/x.bin"),
            ("PATH", "/bin"),
        ]));
        assert!(o.is_empty() && e.is_empty(), "{o:?} {e:?}");
    }

    #[test]
    fn typo_in_a_key_is_an_error_naming_the_variable() {
        let (_, e) = overrides(&env(&[("HOTLINE_SIP_LISTN", "127.0.0.1:5070")]));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].env_var.as_deref(), Some("HOTLINE_SIP_LISTN"));
        assert!(e[0].to_string().contains("HOTLINE_SIP_LISTEN"), "{}", e[0]);
    }

    #[test]
    fn values_are_typed_by_kind() {
        let (o, e) = overrides(&env(&[
            ("HOTLINE_MEDIA_CODECS", "PCMA, PCMU"),
            ("HOTLINE_SIP_EARLY_MEDIA", "yes"),
            ("HOTLINE_RECORDING_SPEECH_THRESHOLD_DBFS", "-35.5"),
            ("HOTLINE_SIP_ADVERTISED_ADDR", ""),
        ]));
        assert!(e.is_empty(), "{e:?}");
        let get = |k: &str| o.iter().find(|x| x.key == k).unwrap().value.clone();
        let codecs: Vec<String> = get("codecs")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(codecs, ["PCMA", "PCMU"]);
        assert_eq!(get("early_media").unwrap().as_bool(), Some(true));
        assert_eq!(
            get("speech_threshold_dbfs").unwrap().as_float(),
            Some(-35.5)
        );
        assert!(get("advertised_addr").is_none());
    }

    #[test]
    fn bad_values_name_the_variable_and_key() {
        let (_, e) = overrides(&env(&[
            ("HOTLINE_LIMITS_MAX_CALLS", "lots"),
            ("HOTLINE_SIP_EARLY_MEDIA", "maybe"),
        ]));
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0].env_var.as_deref(), Some("HOTLINE_LIMITS_MAX_CALLS"));
        assert_eq!(e[0].key, "limits.max_calls");
        assert_eq!(e[1].env_var.as_deref(), Some("HOTLINE_SIP_EARLY_MEDIA"));
    }

    #[test]
    fn alias_and_full_name_must_agree() {
        let (o, e) = overrides(&env(&[
            ("HOTLINE_DATA_DIR", "/srv/a"),
            ("HOTLINE_STORAGE_DATA_DIR", "/srv/a"),
        ]));
        assert!(e.is_empty() && o.len() == 1, "{o:?} {e:?}");
        let (_, e) = overrides(&env(&[
            ("HOTLINE_DATA_DIR", "/srv/a"),
            ("HOTLINE_STORAGE_DATA_DIR", "/srv/b"),
        ]));
        assert_eq!(e.len(), 1, "{e:?}");
    }

    #[test]
    fn list_sections_cannot_be_set() {
        let (_, e) = overrides(&env(&[("HOTLINE_NUMBER_NUMBER", "1")]));
        assert_eq!(e.len(), 1);
        assert!(e[0].message.contains("list of tables"), "{}", e[0]);
    }
}
