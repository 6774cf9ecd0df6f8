//! The network-facing sections: `[sip]`, `[media]`, `[[number]]`, `[limits]`, `[[trunk]]`
//! and `[security]`: who may call which number, over what, and how much.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

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
    /// TCP connections accepted at once; more are closed at accept. Default 1024.
    pub tcp_max_connections: usize,
    /// TCP connections accepted at once from one source address. Default 32.
    pub tcp_max_connections_per_source: usize,
    /// A TCP connection must send a complete message within this many seconds of opening
    /// (and of starting each message), or it is closed. Default 10.
    pub tcp_message_timeout_secs: u64,
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
            tcp_max_connections: 1024,
            tcp_max_connections_per_source: 32,
            tcp_message_timeout_secs: 10,
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
    /// Strict RTP source: once a call has learnt where the caller's RTP comes from, packets
    /// from anywhere else are dropped; another source is learnt only after a re-INVITE with
    /// a new address, or after the learnt one has been silent this long (ms) and the new one
    /// sent 5 consecutive packets. 0: never on silence. Default 2000.
    pub strict_rtp_relearn_ms: u64,
}

impl SipConfig {
    /// The endpoint's TCP bounds.
    pub fn tcp_limits(&self) -> crate::sip::endpoint::TcpLimits {
        crate::sip::endpoint::TcpLimits {
            max_connections: self.tcp_max_connections,
            max_per_source: self.tcp_max_connections_per_source,
            message_timeout: std::time::Duration::from_secs(self.tcp_message_timeout_secs),
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            rtp_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            rtp_port_min: 20000,
            rtp_port_max: 20999,
            codecs: vec!["PCMU".to_owned(), "PCMA".to_owned()],
            rtp_timeout_secs: 30,
            strict_rtp_relearn_ms: crate::media::session::DEFAULT_STRICT_RTP_RELEARN.as_millis()
                as u64,
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
    /// SIP messages per second each of the trunk's source addresses may send. What exceeds
    /// it is dropped and counted (`hotline_guard_dropped_total{reason="throttled"}`), but a
    /// trunk source is never banned (`security.rate_limit` and `ban_secs` are for everyone
    /// else). Default 200.
    pub max_request_rate: u32,
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
            max_request_rate: 200,
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

/// The guard's list is the default of `security.scanner_user_agents`.
pub use crate::sip::guard::SCANNER_USER_AGENTS;

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

impl super::Config {
    /// The flood guard's rules: `[security]`, and with `unknown_source = "drop"` the union
    /// of every `[[trunk]]`'s sources. The guard takes its own type, so `sip` knows nothing
    /// of the daemon's configuration.
    pub fn guard_config(&self) -> crate::sip::guard::GuardConfig {
        use crate::sip::guard::{GuardConfig, TrunkRate};
        let s = &self.security;
        let allowed = (s.unknown_source == "drop" && !self.trunks.is_empty())
            .then(|| self.trunks.iter().flat_map(|t| t.networks()).collect());
        GuardConfig {
            rate: f64::from(s.rate_limit),
            burst: f64::from(s.rate_burst.max(1)),
            ban: std::time::Duration::from_secs(s.ban_secs),
            scanner_agents: s
                .scanner_user_agents
                .iter()
                .map(|a| a.to_ascii_lowercase())
                .collect(),
            allowed,
            trunks: self
                .trunks
                .iter()
                .map(|t| TrunkRate {
                    networks: t.networks(),
                    rate: f64::from(t.max_request_rate),
                })
                .collect(),
        }
    }
}
