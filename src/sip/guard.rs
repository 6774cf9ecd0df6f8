//! The scanner and flood guard: decides, per message and before the transaction layer, whether
//! a source is worth answering at all. Sans-IO: `now` comes in, verdicts come out.
//!
//! Checks go cheapest first, so a flood costs as little as possible:
//! 1. [`Guard::check_source`] (before parsing): banned source → drop; source outside the
//!    allowed networks (when `unknown_source = "drop"`) → drop; over its token-bucket rate →
//!    drop and ban for `ban`.
//!
//! Trunk sources (inside a `[[trunk]]`'s networks) are never banned: a carrier's signalling
//! address that bursts (a failover, a registration storm behind it) must not take the whole
//! hotline off the air for `ban`. They get a bucket of their own, at the trunk's higher
//! `max_request_rate`, and what exceeds it is dropped and counted (`throttled`), message by
//! message, so the rate stays bounded and the next message in budget passes. This is what
//! fail2ban/pike set-ups do with `ignoreip` for carriers, but with a ceiling.
//! 2. [`Guard::check_request`] (after parsing, requests only): a scanner User-Agent → drop.
//!
//! Dropping is silent on purpose: a scanner that hears nothing moves on, and an answer would
//! only amplify a flood. Every decision is counted in [`GuardCounters`] (exported by the
//! metrics side). State is bounded: idle buckets and expired bans are pruned, and the table
//! never holds more than [`MAX_TRACKED`] sources.

use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Most sources tracked at once; beyond it the idle ones are forgotten first.
pub const MAX_TRACKED: usize = 100_000;

/// What the guard is told to enforce.
#[derive(Clone, Debug)]
pub struct GuardConfig {
    /// Sustained messages per second per source address.
    pub rate: f64,
    /// Bucket size: messages a source may send at once.
    pub burst: f64,
    /// How long a source that exceeded its rate is ignored.
    pub ban: Duration,
    /// Lower-case User-Agent substrings of scanners.
    pub scanner_agents: Vec<String>,
    /// `Some`: only these networks may talk to us, everything else is dropped unseen.
    pub allowed: Option<Vec<IpNet>>,
    /// Trunk networks: their sources are throttled at their own rate, never banned.
    pub trunks: Vec<TrunkRate>,
}

/// The per-source rate of the sources in one `[[trunk]]`'s networks.
#[derive(Clone, Debug, PartialEq)]
pub struct TrunkRate {
    pub networks: Vec<IpNet>,
    /// Sustained messages per second per source address; the bucket holds one second's
    /// worth (or the general `burst`, whichever is larger).
    pub rate: f64,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            rate: 50.0,
            burst: 200.0,
            ban: Duration::from_secs(600),
            scanner_agents: SCANNER_USER_AGENTS.iter().map(|s| s.to_string()).collect(),
            allowed: None,
            trunks: Vec::new(),
        }
    }
}

impl GuardConfig {
    /// Rate and bucket size for `ip`, and whether it is a trunk source (never banned).
    fn limits_for(&self, ip: IpAddr) -> (f64, f64, bool) {
        let trunk_rate = self
            .trunks
            .iter()
            .filter(|t| t.networks.iter().any(|n| n.contains(&ip)))
            .map(|t| t.rate)
            .reduce(f64::max);
        match trunk_rate {
            Some(rate) => (rate, rate.max(self.burst), true),
            None => (self.rate, self.burst, false),
        }
    }
}

/// One counter per decision.
#[derive(Debug, Default)]
pub struct GuardCounters {
    /// Messages let through to parsing.
    pub passed: AtomicU64,
    /// Dropped because the source is banned.
    pub dropped_banned: AtomicU64,
    /// Dropped because the source exceeded its rate (the message that triggered a ban).
    pub dropped_rate: AtomicU64,
    /// Dropped because no trunk allows the source (`unknown_source = "drop"`).
    pub dropped_unknown_source: AtomicU64,
    /// Dropped because of a scanner User-Agent.
    pub dropped_scanner: AtomicU64,
    /// Dropped because a trunk source exceeded its `max_request_rate` (never banned).
    pub throttled: AtomicU64,
    /// Bans issued.
    pub bans: AtomicU64,
    /// Sources banned right now.
    pub banned_now: AtomicU64,
}

/// Why a message was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    Banned,
    RateExceeded,
    /// A trunk source over its rate: this message only, no ban.
    Throttled,
    UnknownSource,
    Scanner,
}

/// The guard's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Drop(DropReason),
}

#[derive(Debug)]
struct Source {
    tokens: f64,
    last: Instant,
    banned_until: Option<Instant>,
    /// The bucket's rate and size when last seen (for pruning).
    rate: f64,
    burst: f64,
    /// A trunk source is being throttled (logged once per episode, not per message).
    throttling: bool,
}

pub struct Guard {
    config: GuardConfig,
    sources: HashMap<IpAddr, Source>,
    counters: Arc<GuardCounters>,
    last_prune: Option<Instant>,
}

impl Guard {
    pub fn new(config: GuardConfig) -> Guard {
        Guard {
            config,
            sources: HashMap::new(),
            counters: Arc::new(GuardCounters::default()),
            last_prune: None,
        }
    }

    pub fn counters(&self) -> &Arc<GuardCounters> {
        &self.counters
    }

    /// Replace the rules (a configuration reload); bans and buckets are kept.
    pub fn set_config(&mut self, config: GuardConfig) {
        self.config = config;
    }

    /// Whether `ip` is banned at `now`.
    pub fn is_banned(&self, now: Instant, ip: IpAddr) -> bool {
        self.sources
            .get(&ip)
            .and_then(|s| s.banned_until)
            .is_some_and(|t| t > now)
    }

    /// At TCP accept: a banned source, or one outside the allowed networks (drop mode), is
    /// not let in. No token is taken: the connection's messages pay for themselves, and
    /// connection floods are bounded by the endpoint's per-source limit.
    pub fn check_connection(&self, now: Instant, ip: IpAddr) -> Verdict {
        let c = &self.counters;
        if let Some(allowed) = &self.config.allowed {
            if !allowed.iter().any(|n| n.contains(&ip)) {
                c.dropped_unknown_source.fetch_add(1, Ordering::Relaxed);
                return Verdict::Drop(DropReason::UnknownSource);
            }
        }
        if self.is_banned(now, ip) {
            c.dropped_banned.fetch_add(1, Ordering::Relaxed);
            return Verdict::Drop(DropReason::Banned);
        }
        Verdict::Pass
    }

    /// Before parsing: one message (datagram, or TCP message) from `ip`.
    pub fn check_source(&mut self, now: Instant, ip: IpAddr) -> Verdict {
        self.prune(now);
        let c = &self.counters;
        if let Some(allowed) = &self.config.allowed {
            if !allowed.iter().any(|n| n.contains(&ip)) {
                c.dropped_unknown_source.fetch_add(1, Ordering::Relaxed);
                return Verdict::Drop(DropReason::UnknownSource);
            }
        }
        let (rate, burst, trunk) = self.config.limits_for(ip);
        let src = self.sources.entry(ip).or_insert(Source {
            tokens: burst,
            last: now,
            banned_until: None,
            rate,
            burst,
            throttling: false,
        });
        (src.rate, src.burst) = (rate, burst);
        if trunk && src.banned_until.is_some() {
            // Banned before a reload made it a trunk source: trunks are never banned.
            src.banned_until = None;
            c.banned_now.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(until) = src.banned_until {
            if until > now {
                c.dropped_banned.fetch_add(1, Ordering::Relaxed);
                return Verdict::Drop(DropReason::Banned);
            }
            // The ban is over: start afresh with a full bucket.
            src.banned_until = None;
            src.tokens = burst;
            c.banned_now.fetch_sub(1, Ordering::Relaxed);
        }
        let elapsed = now.saturating_duration_since(src.last).as_secs_f64();
        src.tokens = (src.tokens + elapsed * rate).min(burst);
        src.last = now;
        if src.tokens >= 1.0 {
            src.tokens -= 1.0;
            src.throttling = false;
            c.passed.fetch_add(1, Ordering::Relaxed);
            Verdict::Pass
        } else if trunk {
            c.throttled.fetch_add(1, Ordering::Relaxed);
            if !std::mem::replace(&mut src.throttling, true) {
                tracing::warn!(source = %ip, rate, "trunk source over its max_request_rate: excess dropped (trunks are never banned)");
            }
            Verdict::Drop(DropReason::Throttled)
        } else {
            src.banned_until = Some(now + self.config.ban);
            c.dropped_rate.fetch_add(1, Ordering::Relaxed);
            c.bans.fetch_add(1, Ordering::Relaxed);
            c.banned_now.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(source = %ip, ban_secs = self.config.ban.as_secs(), "SIP rate exceeded: source banned");
            Verdict::Drop(DropReason::RateExceeded)
        }
    }

    /// After parsing a request: its User-Agent, if any.
    pub fn check_request(&mut self, user_agent: Option<&str>) -> Verdict {
        let Some(ua) = user_agent else {
            return Verdict::Pass;
        };
        let ua = ua.to_ascii_lowercase();
        if self
            .config
            .scanner_agents
            .iter()
            .any(|s| !s.is_empty() && ua.contains(s.as_str()))
        {
            self.counters
                .dropped_scanner
                .fetch_add(1, Ordering::Relaxed);
            return Verdict::Drop(DropReason::Scanner);
        }
        Verdict::Pass
    }

    /// Forget sources whose bucket has refilled and whose ban is over; at most once a second,
    /// and at once when the table is full.
    fn prune(&mut self, now: Instant) {
        let due = self
            .last_prune
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if !due && self.sources.len() < MAX_TRACKED {
            return;
        }
        self.last_prune = Some(now);
        let mut unbanned = 0;
        self.sources.retain(|_, s| {
            if let Some(until) = s.banned_until {
                if until > now {
                    return true;
                }
                unbanned += 1;
                return false;
            }
            let idle = now.saturating_duration_since(s.last).as_secs_f64();
            s.tokens + idle * s.rate < s.burst
        });
        self.counters
            .banned_now
            .fetch_sub(unbanned, Ordering::Relaxed);
        if self.sources.len() >= MAX_TRACKED {
            // Still full of live sources (a spoofed flood): forget the unbanned ones.
            self.sources.retain(|_, s| s.banned_until.is_some());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(rate: f64, burst: f64) -> Guard {
        Guard::new(GuardConfig {
            rate,
            burst,
            ban: Duration::from_secs(60),
            ..GuardConfig::default()
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_burst_passes_then_the_source_is_banned_until_the_ban_ends() {
        let mut g = guard(10.0, 20.0);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..20 {
            assert_eq!(g.check_source(t0, a), Verdict::Pass);
        }
        assert_eq!(
            g.check_source(t0, a),
            Verdict::Drop(DropReason::RateExceeded)
        );
        assert!(g.is_banned(t0, a));
        // Banned even though the bucket would have refilled.
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(g.check_source(t1, a), Verdict::Drop(DropReason::Banned));
        // Others are not affected.
        assert_eq!(g.check_source(t1, ip("192.0.2.2")), Verdict::Pass);
        let t2 = t0 + Duration::from_secs(61);
        assert_eq!(g.check_source(t2, a), Verdict::Pass);
        let c = g.counters();
        assert_eq!(c.bans.load(Ordering::Relaxed), 1);
        assert_eq!(c.dropped_rate.load(Ordering::Relaxed), 1);
        assert_eq!(c.dropped_banned.load(Ordering::Relaxed), 1);
        assert_eq!(c.passed.load(Ordering::Relaxed), 22);
        assert_eq!(c.banned_now.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_steady_rate_at_the_limit_is_never_banned() {
        let mut g = guard(10.0, 10.0);
        let t0 = Instant::now();
        let a = ip("2001:db8::1");
        for i in 0..1000u64 {
            let now = t0 + Duration::from_millis(100 * i);
            assert_eq!(g.check_source(now, a), Verdict::Pass, "message {i}");
        }
    }

    #[test]
    fn unknown_sources_are_dropped_when_an_allow_list_is_set() {
        let mut g = Guard::new(GuardConfig {
            allowed: Some(vec![
                "203.0.113.0/28".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ]),
            ..GuardConfig::default()
        });
        let now = Instant::now();
        assert_eq!(g.check_source(now, ip("203.0.113.14")), Verdict::Pass);
        assert_eq!(g.check_source(now, ip("2001:db8:1::5")), Verdict::Pass);
        assert_eq!(
            g.check_source(now, ip("203.0.113.16")),
            Verdict::Drop(DropReason::UnknownSource)
        );
        assert_eq!(
            g.counters().dropped_unknown_source.load(Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn scanner_user_agents_match_case_insensitively_as_substrings() {
        let mut g = guard(10.0, 10.0);
        for ua in [
            "friendly-scanner",
            "SIPVicious 0.3.4",
            "sipcli/v1.8",
            "VaxSIPUserAgent/3.1",
            "PPLSIP",
        ] {
            assert_eq!(
                g.check_request(Some(ua)),
                Verdict::Drop(DropReason::Scanner),
                "{ua}"
            );
        }
        assert_eq!(g.check_request(Some("Asterisk PBX 18.0")), Verdict::Pass);
        assert_eq!(g.check_request(None), Verdict::Pass);
        assert_eq!(g.counters().dropped_scanner.load(Ordering::Relaxed), 5);
    }

    fn with_trunk(rate: f64, net: &str) -> GuardConfig {
        GuardConfig {
            rate: 10.0,
            burst: 20.0,
            ban: Duration::from_secs(60),
            trunks: vec![TrunkRate {
                networks: vec![net.parse().unwrap()],
                rate,
            }],
            ..GuardConfig::default()
        }
    }

    #[test]
    fn a_flooding_trunk_source_is_throttled_at_its_own_rate_and_never_banned() {
        let mut g = Guard::new(with_trunk(200.0, "203.0.113.0/28"));
        let t0 = Instant::now();
        let carrier = ip("203.0.113.5");
        let stranger = ip("198.51.100.7");
        // 2,000 messages in one second (every 0.5 ms) from each.
        let (mut passed, mut throttled) = (0, 0);
        for i in 0..2000u64 {
            let now = t0 + Duration::from_micros(500 * i);
            match g.check_source(now, carrier) {
                Verdict::Pass => passed += 1,
                Verdict::Drop(DropReason::Throttled) => throttled += 1,
                v => panic!("message {i}: {v:?}"),
            }
            g.check_source(now, stranger);
        }
        // A full bucket (200) plus 200 per second: about 400 in the second, the rest dropped.
        assert!((395..=405).contains(&passed), "{passed} passed");
        assert_eq!(passed + throttled, 2000);
        assert!(!g.is_banned(t0 + Duration::from_secs(1), carrier));
        // The stranger got its 20 + 10/s, then a ban.
        assert!(g.is_banned(t0 + Duration::from_secs(1), stranger));
        // The carrier's next message within its rate passes at once: no ban to sit out.
        let later = t0 + Duration::from_millis(1010);
        assert_eq!(g.check_source(later, carrier), Verdict::Pass);
        assert_eq!(
            g.check_source(later, stranger),
            Verdict::Drop(DropReason::Banned)
        );
        let c = g.counters();
        assert_eq!(c.throttled.load(Ordering::Relaxed), throttled);
        assert_eq!(c.bans.load(Ordering::Relaxed), 1, "only the stranger");
    }

    #[test]
    fn a_trunk_source_within_its_rate_always_passes() {
        let mut g = Guard::new(with_trunk(200.0, "2001:db8::/32"));
        let t0 = Instant::now();
        let carrier = ip("2001:db8::1");
        // 150 messages a second for a minute: far above the general 10/s.
        for i in 0..9000u64 {
            let now = t0 + Duration::from_micros(6667 * i);
            assert_eq!(g.check_source(now, carrier), Verdict::Pass, "message {i}");
        }
        assert_eq!(g.counters().throttled.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_reload_that_makes_a_banned_source_a_trunk_lifts_its_ban_and_uses_the_new_rate() {
        let mut g = guard(10.0, 20.0);
        let t0 = Instant::now();
        let a = ip("192.0.2.9");
        for _ in 0..21 {
            g.check_source(t0, a);
        }
        assert!(g.is_banned(t0, a));
        assert_eq!(g.counters().banned_now.load(Ordering::Relaxed), 1);
        // SIGHUP: the address now belongs to a trunk with 500/s.
        g.set_config(with_trunk(500.0, "192.0.2.0/24"));
        let t1 = t0 + Duration::from_secs(1);
        let passed = (0..600)
            .filter(|_| g.check_source(t1, a) == Verdict::Pass)
            .count();
        assert_eq!(passed, 500, "a full bucket at the trunk's rate");
        assert!(!g.is_banned(t1, a));
        assert_eq!(g.counters().banned_now.load(Ordering::Relaxed), 0);
        // And back: removed from the trunk, it is an ordinary source again and can be banned.
        g.set_config(with_trunk(500.0, "198.51.100.0/24"));
        let t2 = t1 + Duration::from_secs(10);
        for _ in 0..21 {
            g.check_source(t2, a);
        }
        assert!(g.is_banned(t2, a));
    }

    #[test]
    fn idle_trunk_sources_are_forgotten_by_their_own_rate() {
        let mut g = Guard::new(with_trunk(200.0, "10.1.0.0/16"));
        let t0 = Instant::now();
        for _ in 0..150 {
            g.check_source(t0, ip("10.1.0.1"));
        }
        // At the next prune (at most once a second) its bucket has refilled at 200/s.
        g.check_source(t0 + Duration::from_millis(1500), ip("10.0.1.1"));
        assert_eq!(g.sources.len(), 1);
    }

    #[test]
    fn from_config_gives_each_trunk_its_rate_as_a_reload_hands_it_to_the_endpoint() {
        let base = include_str!("../../config/hotline.toml");
        let text = format!(
            "{base}\n[[trunk]]\nname = \"a\"\nsources = [\"203.0.113.0/28\"]\nmax_request_rate = 750\n\n[[trunk]]\nname = \"b\"\nsources = [\"2001:db8::1\"]\n"
        );
        let c = crate::config::Config::from_str_with_env(&text, &[]).unwrap();
        let g = c.guard_config();
        assert_eq!(g.trunks.len(), 2);
        assert_eq!(g.trunks[0].rate, 750.0);
        assert_eq!(g.trunks[1].rate, 200.0, "the default");
        assert_eq!(g.limits_for(ip("203.0.113.9")), (750.0, 750.0, true));
        assert_eq!(g.limits_for(ip("2001:db8::1")), (200.0, 200.0, true));
        assert_eq!(g.limits_for(ip("203.0.113.16")), (50.0, 200.0, false));
        assert!(
            g.allowed.is_none(),
            "unknown_source = reject: everyone reaches the TU"
        );
    }

    #[test]
    fn idle_sources_are_forgotten() {
        let mut g = guard(10.0, 10.0);
        let t0 = Instant::now();
        for i in 0..100u8 {
            g.check_source(t0, IpAddr::from([10, 0, 0, i]));
        }
        assert_eq!(g.sources.len(), 100);
        g.check_source(t0 + Duration::from_secs(5), ip("10.0.1.1"));
        assert_eq!(g.sources.len(), 1, "only the fresh source is still tracked");
    }
}
