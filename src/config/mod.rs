//! Configuration: one TOML file, every key overridable from the environment.
//!
//! Loading is in two steps so that every error can name the key *and* the line:
//! the text is parsed with `toml_edit` (which keeps spans), `HOTLINE_*` environment
//! overrides are applied to that document, then it is deserialised into [`Config`] and
//! validated. A validation error carries the dotted key; its line is found from the spans.
//!
//! OWNER: config helper. The struct shapes below are the contract other modules code against;
//! add fields freely, rename only with the integrator.

use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// The whole daemon configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub sip: SipConfig,
    pub media: MediaConfig,
    /// `[[number]]`: dialled numbers the gateway answers.
    #[serde(rename = "number")]
    pub numbers: Vec<NumberConfig>,
    pub prompts: PromptsConfig,
    pub menu: MenuConfig,
    pub recording: RecordingConfig,
    pub limits: LimitsConfig,
    pub storage: StorageConfig,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// UDP listen address, e.g. `127.0.0.1:5060`. Env: `HOTLINE_SIP_LISTEN`.
    pub listen: SocketAddr,
    /// Address written into Contact/Via/SDP when the listen address is a wildcard or NATed.
    pub advertised_addr: Option<IpAddr>,
    /// RFC 3261 T1 (RTT estimate), milliseconds. Default 500.
    pub t1_ms: u64,
    /// RFC 3261 T2 (max retransmit interval for non-INVITE), milliseconds. Default 4000.
    pub t2_ms: u64,
    /// RFC 3261 T4 (max message lifetime in the network), milliseconds. Default 5000.
    pub t4_ms: u64,
    /// Answer with 183 + early media before 200 instead of 180 Ringing.
    pub early_media: bool,
    /// Value of the User-Agent/Server header.
    pub user_agent: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// Address RTP sockets bind to (and advertise unless `sip.advertised_addr` is set).
    pub rtp_ip: IpAddr,
    /// First port of the RTP range (inclusive, even).
    pub rtp_port_min: u16,
    /// Last port of the RTP range (inclusive).
    pub rtp_port_max: u16,
    /// Codecs we accept, e.g. `["PCMU", "PCMA"]`; the caller's order decides which is used.
    pub codecs: Vec<String>,
    /// Seconds without any RTP from the caller before the call is ended.
    pub rtp_timeout_secs: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberConfig {
    /// The dialled number (user part of the Request-URI), e.g. `8890`.
    pub number: String,
    /// Channel the number stands for, e.g. `8890` or `12345-legacy`; goes into the call record.
    pub channel: String,
    /// Prompt language for this number (`zh`, `en`); defaults to `prompts.language`.
    pub language: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptsConfig {
    /// Directory holding one sub-directory per language (`prompts/zh/greeting.wav`...).
    pub dir: PathBuf,
    /// Default language.
    pub language: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MenuConfig {
    /// `[[menu.option]]`: digit → choice.
    #[serde(rename = "option")]
    pub options: Vec<MenuOption>,
    /// Seconds to wait for a digit after the menu prompt finished.
    pub digit_timeout_secs: u64,
    /// How many times the menu is played in total before `on_no_input` applies.
    pub max_attempts: u32,
    /// What to do when no valid digit came: `"hangup"` or a digit to assume (e.g. `"0"`).
    pub on_no_input: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MenuOption {
    /// The DTMF digit, `0`-`9`, `*` or `#`.
    pub digit: String,
    /// Stable id for machines (`complaint`, `policy`, `service`, `operator`).
    pub id: String,
    /// Label for humans, e.g. `投诉举报`.
    pub label: String,
    /// Whether the caller is asked to leave a message after choosing this option.
    pub record: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// Hard cap on a message, seconds.
    pub max_duration_secs: u64,
    /// Silence after speech that ends the message, milliseconds.
    pub trailing_silence_ms: u64,
    /// If the caller says nothing for this long after the beep, the message ends empty.
    pub no_speech_timeout_secs: u64,
    /// Frame energy above this (dBFS) counts as speech for the end-pointer.
    pub speech_threshold_dbfs: f32,
    /// DTMF digit that ends the message.
    pub end_digit: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Concurrent calls; INVITEs beyond get 503 with Retry-After.
    pub max_calls: usize,
    /// Hard cap on a call, seconds; the gateway hangs up after it.
    pub max_call_duration_secs: u64,
    /// Retry-After value sent with 503, seconds.
    pub retry_after_secs: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Root for `recordings/` and `outbox/`. Env: `HOTLINE_DATA_DIR`.
    pub data_dir: PathBuf,
}

impl StorageConfig {
    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
    }
    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }
}

/// A configuration error that names the key and, when known, the line.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// Dotted key, e.g. `menu.option[2].digit`; empty for syntax errors.
    pub key: String,
    /// 1-based line in the file, when the key exists there.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// The file, when loaded from one.
    pub file: Option<PathBuf>,
}

impl ConfigError {
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
            s.push_str(&format!("key `{}`: ", self.key));
        }
        s.push_str(&self.message);
        s
    }
}

impl Config {
    /// Read, apply `HOTLINE_*` overrides from the process environment, validate.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError {
                key: String::new(),
                line: None,
                message: format!("cannot read: {e}"),
                file: Some(path.to_owned()),
            }]
        })?;
        let env: Vec<(String, String)> = std::env::vars().collect();
        Config::from_str_with_env(&text, &env).map_err(|errs| {
            errs.into_iter()
                .map(|mut e| {
                    e.file = Some(path.to_owned());
                    e
                })
                .collect()
        })
    }

    /// Parse `text`, apply overrides from `env` (only `HOTLINE_*` entries are looked at), validate.
    pub fn from_str_with_env(
        text: &str,
        env: &[(String, String)],
    ) -> Result<Config, Vec<ConfigError>> {
        let _ = env;
        toml::from_str(text).map_err(|e| {
            vec![ConfigError {
                key: String::new(),
                line: None,
                message: e.to_string(),
                file: None,
            }]
        })
    }

    /// The numbers entry for a dialled number, if we answer it.
    pub fn number(&self, dialled: &str) -> Option<&NumberConfig> {
        self.numbers.iter().find(|n| n.number == dialled)
    }
}
