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
//! OWNER: config helper. The struct shapes below are the contract other modules code against;
//! add fields freely, rename only with the integrator.

pub mod env;
mod load;
#[cfg(test)]
mod tests;
mod validate;

pub use load::ConfigSource;

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// Prompt files every language directory must hold, as `<name>.wav`.
///
/// `digit_0`..`digit_9` read numbers back (a ticket number, the number called from).
pub const REQUIRED_PROMPTS: &[&str] = &[
    "greeting", "menu", "record", "thanks", "goodbye", "invalid", "no_input", "busy", "digit_0",
    "digit_1", "digit_2", "digit_3", "digit_4", "digit_5", "digit_6", "digit_7", "digit_8",
    "digit_9",
];

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
    /// Where each key came from (file line or environment variable), for error messages
    /// raised after loading (e.g. by [`Config::check_files`]). Empty for a `Default` config.
    #[serde(skip)]
    pub source: ConfigSource,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// UDP listen address, e.g. `127.0.0.1:5060`. Default `127.0.0.1:5060`.
    /// Env: `HOTLINE_SIP_LISTEN`.
    pub listen: SocketAddr,
    /// Address written into Contact/Via/SDP when the listen address is a wildcard or NATed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertised_addr: Option<IpAddr>,
    /// RFC 3261 T1 (RTT estimate), milliseconds. Default 500.
    pub t1_ms: u64,
    /// RFC 3261 T2 (max retransmit interval for non-INVITE), milliseconds. Default 4000.
    pub t2_ms: u64,
    /// RFC 3261 T4 (max message lifetime in the network), milliseconds. Default 5000.
    pub t4_ms: u64,
    /// Answer with 183 + early media before 200 instead of 180 Ringing. Default false.
    pub early_media: bool,
    /// Value of the User-Agent/Server header. Default `hotline-gateway/<version>`.
    pub user_agent: String,
    /// Also accept SIP over TCP on the `listen` address. Default true.
    pub tcp: bool,
    /// Largest SIP message accepted over TCP, bytes (a bigger one closes the connection).
    /// Default 65535.
    pub max_message_bytes: usize,
    /// Names this instance in call records and tickets (`gateway_instance`), so that with
    /// several gateways behind one balancer every ticket says which one took the call.
    /// Default: `<hostname>:<SIP port>`. Env: `HOTLINE_SIP_INSTANCE_ID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060),
            advertised_addr: None,
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            early_media: false,
            user_agent: concat!("hotline-gateway/", env!("CARGO_PKG_VERSION")).to_owned(),
            tcp: true,
            max_message_bytes: 65_535,
            instance_id: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Address RTP sockets bind to (and advertise unless `sip.advertised_addr` is set).
    /// Default `127.0.0.1`.
    pub rtp_ip: IpAddr,
    /// First port of the RTP range (inclusive, even: RTP takes even ports, RTCP the odd one
    /// above). Default 20000.
    pub rtp_port_min: u16,
    /// Last port of the RTP range (inclusive). Default 20999.
    pub rtp_port_max: u16,
    /// Codecs we accept, e.g. `["PCMU", "PCMA"]`; the caller's order decides which is used.
    /// Env: comma-separated, `HOTLINE_MEDIA_CODECS=PCMA,PCMU`.
    pub codecs: Vec<String>,
    /// Seconds without any RTP from the caller before the call is ended. Default 30.
    pub rtp_timeout_secs: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            rtp_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            rtp_port_min: 20000,
            rtp_port_max: 20999,
            codecs: vec!["PCMU".to_owned(), "PCMA".to_owned()],
            rtp_timeout_secs: 30,
        }
    }
}

/// One `[[number]]` entry. `number` and `channel` are required (checked by validation, so
/// that a missing one is reported together with every other error).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NumberConfig {
    /// The dialled number (user part of the Request-URI), e.g. `8890`.
    pub number: String,
    /// Channel the number stands for, e.g. `8890` or `12345-legacy`; goes into the call record.
    pub channel: String,
    /// Prompt language for this number (`zh`, `en`); defaults to `prompts.language`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptsConfig {
    /// Directory holding one sub-directory per language (`prompts/zh/greeting.wav`...).
    /// Relative to the process's working directory. Default `prompts`.
    pub dir: PathBuf,
    /// Default language. Default `zh`.
    pub language: String,
}

impl Default for PromptsConfig {
    fn default() -> Self {
        PromptsConfig {
            dir: PathBuf::from("prompts"),
            language: "zh".to_owned(),
        }
    }
}

impl PromptsConfig {
    /// Directory of one language's prompts, e.g. `prompts/zh`.
    pub fn language_dir(&self, language: &str) -> PathBuf {
        self.dir.join(language)
    }

    /// Path of one prompt, e.g. `prompt_path("zh", "greeting")` → `prompts/zh/greeting.wav`.
    pub fn prompt_path(&self, language: &str, name: &str) -> PathBuf {
        self.language_dir(language).join(format!("{name}.wav"))
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MenuConfig {
    /// `[[menu.option]]`: digit → choice. At least one is required.
    #[serde(rename = "option")]
    pub options: Vec<MenuOption>,
    /// Seconds to wait for a digit after the menu prompt finished. Default 6.
    pub digit_timeout_secs: u64,
    /// How many times the menu is played in total before `on_no_input` applies. Default 3.
    pub max_attempts: u32,
    /// What to do when no valid digit came: `"hangup"` or a configured digit to assume.
    /// Default `"0"`.
    pub on_no_input: String,
}

impl Default for MenuConfig {
    fn default() -> Self {
        MenuConfig {
            options: Vec::new(),
            digit_timeout_secs: 6,
            max_attempts: 3,
            on_no_input: "0".to_owned(),
        }
    }
}

/// One `[[menu.option]]`. `digit`, `id` and `label` are required (checked by validation).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MenuOption {
    /// The DTMF digit, `0`-`9`, `*` or `#`.
    pub digit: String,
    /// Stable id for machines (`complaint`, `policy`, `service`, `operator`).
    pub id: String,
    /// Label for humans, e.g. `投诉举报`.
    pub label: String,
    /// Whether the caller is asked to leave a message after choosing this option.
    /// Default true: taking messages is what the hotline is for.
    pub record: bool,
}

impl Default for MenuOption {
    fn default() -> Self {
        MenuOption {
            digit: String::new(),
            id: String::new(),
            label: String::new(),
            record: true,
        }
    }
}

/// `[ivr]`: speech barge-in, the caller talking over a prompt.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IvrConfig {
    /// Which prompts the caller's voice stops:
    /// - `"off"`: none (only a DTMF digit cuts a prompt short);
    /// - `"message"`: the "please speak after the tone" prompt (and the tone): the caller
    ///   who starts the message early is recorded at once, from the first words on;
    /// - `"all"`: the greeting and menu as well: talking there skips the menu to the
    ///   message of the `menu.on_no_input` option (which must take a message).
    ///
    /// Default `"message"`. Callers who know the hotline start their complaint over the
    /// instructions; without barge-in the first sentence is lost. `"all"` is not the
    /// default because on Chinese lines callers routinely answer a greeting with "喂？喂？"
    /// ("hello?"), which would skip the menu, and the menu choice routes the ticket.
    pub speech_barge_in: String,
    /// Speech needed before it counts as barge-in, milliseconds (clicks, coughs and a
    /// line pop are shorter). Default 250.
    pub barge_in_min_speech_ms: u64,
    /// How far above the line's noise floor (learnt during the call) speech must be, dB.
    /// Default 12.
    pub barge_in_snr_db: f32,
    /// Audio quieter than this (dBFS) never counts as barge-in. Default -35.
    pub barge_in_level_dbfs: f32,
    /// Caller audio from before the barge-in put at the start of the message, milliseconds,
    /// so the words that triggered it are in the recording. At least
    /// `barge_in_min_speech_ms`. Default 500.
    pub barge_in_preroll_ms: u64,
}

impl Default for IvrConfig {
    fn default() -> Self {
        IvrConfig {
            speech_barge_in: "message".to_owned(),
            barge_in_min_speech_ms: 250,
            barge_in_snr_db: 12.0,
            barge_in_level_dbfs: -35.0,
            barge_in_preroll_ms: 500,
        }
    }
}

/// The values of `ivr.speech_barge_in`.
pub const SPEECH_BARGE_IN_MODES: &[&str] = &["off", "message", "all"];

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Hard cap on a message, seconds. Default 120.
    pub max_duration_secs: u64,
    /// Silence after speech that ends the message, milliseconds. Default 1500.
    pub trailing_silence_ms: u64,
    /// If the caller says nothing for this long after the beep, the message ends empty.
    /// Default 8.
    pub no_speech_timeout_secs: u64,
    /// Frame energy above this (dBFS) counts as speech for the end-pointer. Default -40.
    pub speech_threshold_dbfs: f32,
    /// DTMF digit that ends the message. Default `"#"`.
    pub end_digit: String,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            max_duration_secs: 120,
            trailing_silence_ms: 1500,
            no_speech_timeout_secs: 8,
            speech_threshold_dbfs: -40.0,
            end_digit: "#".to_owned(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Concurrent calls; INVITEs beyond get 503 with Retry-After. Default 100.
    pub max_calls: usize,
    /// Hard cap on a call, seconds; the gateway hangs up after it. Default 600.
    pub max_call_duration_secs: u64,
    /// Retry-After value sent with 503, seconds. Default 30.
    pub retry_after_secs: u32,
    /// On SIGTERM, how long calls in progress may go on before the gateway hangs up on
    /// them (new calls get 503 meanwhile), seconds. Default 60.
    pub drain_timeout_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_calls: 100,
            max_call_duration_secs: 600,
            retry_after_secs: 30,
            drain_timeout_secs: 60,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Root for `recordings/` and `outbox/`, relative to the process's working directory.
    /// Default `var`. Env: `HOTLINE_DATA_DIR` (or `HOTLINE_STORAGE_DATA_DIR`).
    pub data_dir: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("var"),
        }
    }
}

impl StorageConfig {
    /// The callers' messages, `recordings/<date>/<call>.wav`.
    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
    }
    /// Call records (`hotline.call/v1`), one JSON per answered call.
    pub fn calls_dir(&self) -> PathBuf {
        self.data_dir.join("calls")
    }
    /// Tickets as JSON files (`hotline.ticket/v1`), for operators without an intake API.
    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }
    /// The durable ticket store (SQLite, WAL).
    pub fn ticket_db(&self) -> PathBuf {
        self.data_dir.join("tickets.sqlite")
    }
}

/// `[intake]`: the city's ticket intake API. With no `url`, tickets stay in the store and
/// the outbox folder.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeConfig {
    /// POST target, e.g. `https://intake.example.gov/api/tickets`. Env: `HOTLINE_INTAKE_URL`.
    pub url: String,
    /// Bearer token. Prefer the environment (`HOTLINE_INTAKE_TOKEN`) to the file; never logged.
    pub token: String,
    /// Posts in flight at once.
    pub concurrency: usize,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    /// First retry delay; doubles per attempt (with jitter) up to `backoff_max_ms`.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            url: String::new(),
            token: String::new(),
            concurrency: 4,
            connect_timeout_ms: 3000,
            request_timeout_ms: 15000,
            backoff_base_ms: 1000,
            backoff_max_ms: 300_000,
        }
    }
}

/// `[asr]`: transcribing callers' messages with a local Whisper model. The language of each
/// message is its number's prompt language (`zh`, `en`, or `auto` to detect).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AsrSection {
    /// Transcribe at all. Default true.
    pub enabled: bool,
    /// A whisper.cpp ggml model; `models/fetch.sh base` (or `hotline-gateway model fetch base`)
    /// puts one there.
    pub model: PathBuf,
    /// Refuse to start when the model is missing (true), or run without transcripts and say
    /// so in every ticket (false, the default: a hotline must answer even without ASR).
    pub required: bool,
    /// Whisper worker threads; 0 = one per core.
    pub workers: usize,
    /// ggml threads per message.
    pub threads_per_worker: usize,
    /// Messages waiting for a worker beyond those in progress.
    pub queue_depth: usize,
    /// Give up on one message after this long, seconds.
    pub time_budget_secs: u64,
}

impl Default for AsrSection {
    fn default() -> Self {
        AsrSection {
            enabled: true,
            model: PathBuf::from("models/ggml-base.bin"),
            required: false,
            workers: 0,
            threads_per_worker: 1,
            queue_depth: 16,
            time_budget_secs: 60,
        }
    }
}

/// `[tickets]`: classification rules and duplicate detection.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketsConfig {
    /// Rules table (keywords → category, department, urgency, deadline); empty = built-in.
    pub classification: String,
    /// Look back this far for an earlier ticket from the same caller or with similar text.
    pub duplicate_window_secs: u64,
    /// Character-bigram cosine similarity at or above which texts count as the same complaint.
    pub duplicate_threshold: f64,
}

impl Default for TicketsConfig {
    fn default() -> Self {
        TicketsConfig {
            classification: "config/classification.toml".into(),
            duplicate_window_secs: 72 * 3600,
            duplicate_threshold: 0.5,
        }
    }
}

/// One `[[trunk]]`: a carrier or PBX allowed to send us calls. `name` and `sources` are
/// required (checked by validation).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrunkConfig {
    /// Goes into the call record and the ticket, e.g. `carrier-a`.
    pub name: String,
    /// Source addresses the trunk sends from, as CIDR (`203.0.113.0/28`, `2001:db8::/48`) or
    /// single addresses (`198.51.100.7`).
    pub sources: Vec<String>,
    /// Digest user name (RFC 8760); with `password`, INVITEs must authenticate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Digest password. Prefer a file readable only by the daemon; never logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Digest realm. Default `hotline`.
    pub realm: String,
    /// Digest algorithms offered, in order of preference: `SHA-256`, `MD5`.
    /// Default both, SHA-256 first (RFC 8760 §2.4).
    pub algorithms: Vec<String>,
    /// Concurrent calls from this trunk; more get 503 + Retry-After. Default: no own limit
    /// (only `limits.max_calls`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<usize>,
    /// The dialled numbers (`[[number]]` entries) this trunk may reach; empty = all.
    pub numbers: Vec<String>,
}

impl Default for TrunkConfig {
    fn default() -> Self {
        TrunkConfig {
            name: String::new(),
            sources: Vec::new(),
            username: None,
            password: None,
            realm: "hotline".to_owned(),
            algorithms: vec!["SHA-256".to_owned(), "MD5".to_owned()],
            max_calls: None,
            numbers: Vec::new(),
        }
    }
}

impl TrunkConfig {
    /// Parsed `sources`; invalid entries are skipped (validation reports them).
    pub fn networks(&self) -> Vec<ipnet::IpNet> {
        self.sources.iter().filter_map(|s| parse_net(s)).collect()
    }
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a single address (a /32 or /128).
pub fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
}

/// `[security]`: what happens to traffic that is not a call from a trunk.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Requests from an address no `[[trunk]]` allows: `"reject"` (403) or `"drop"` (no
    /// answer at all, so scanners learn nothing). Only applies when trunks are configured.
    /// Default `"reject"`.
    pub unknown_source: String,
    /// Sustained SIP messages per second allowed from one source address. Default 50.
    pub rate_limit: u32,
    /// Messages a source may send in a burst above `rate_limit`. Default 200.
    pub rate_burst: u32,
    /// A source that exceeds its rate is ignored for this long, seconds. Default 600.
    pub ban_secs: u64,
    /// Requests whose User-Agent contains one of these (case-insensitive) are dropped
    /// silently. Default: the well-known SIP scanners.
    pub scanner_user_agents: Vec<String>,
    /// Lifetime of a digest nonce, seconds; an older one gets `stale=true`. Default 300.
    pub nonce_ttl_secs: u64,
}

/// User-Agent substrings of SIP scanners seen on the Internet.
pub const SCANNER_USER_AGENTS: &[&str] = &[
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sundayddr",
    "iwar",
    "vaxsipuseragent",
    "pplsip",
    "sip-scan",
    "sipsak",
    "smap",
];

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            unknown_source: "reject".to_owned(),
            rate_limit: 50,
            rate_burst: 200,
            ban_secs: 600,
            scanner_user_agents: SCANNER_USER_AGENTS.iter().map(|s| s.to_string()).collect(),
            nonce_ttl_secs: 300,
        }
    }
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
    /// `address:port`, empty = no listener. Default `127.0.0.1:9090`: loopback, because the
    /// endpoints are unauthenticated. Env: `HOTLINE_ADMIN_LISTEN`.
    pub listen: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:9090".to_owned(),
        }
    }
}

impl AdminConfig {
    /// The address to listen on; `None` when the listener is off (or the value is invalid,
    /// which validation reports).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        let l = self.listen.trim();
        if l.is_empty() {
            return None;
        }
        l.parse().ok()
    }
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
        Config::from_str_with_env(&text, &env)
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
                    .collect()
            })
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
                    "  {} from {}{}{}",
                    t.name,
                    t.sources.join(", "),
                    if t.username.is_some() {
                        ", digest auth"
                    } else {
                        ""
                    },
                    t.max_calls
                        .map(|m| format!(", max {m} calls"))
                        .unwrap_or_default()
                );
            }
        }
        let _ = writeln!(s, "menu:");
        for o in &self.menu.options {
            let _ = writeln!(
                s,
                "  {} {} ({}){}",
                o.digit,
                o.label,
                o.id,
                if o.record { ", records a message" } else { "" }
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
        s
    }
}
