//! Trunk policy, the TU's half of admission: which `[[trunk]]` a request comes from (source
//! address), whether it proved who it is (digest, RFC 8760 MD5/SHA-256 with `qop=auth`),
//! which numbers it may reach and how many calls it may hold.
//!
//! Sans-IO like the protocol cores: `now` is passed in. Runs inside the call manager's task
//! before any call state or RTP port exists, so a refused INVITE costs a hash lookup.
//!
//! Nonces are ours to remember (random, 128 bits) with the highest `nc` seen: a replayed or
//! decreasing `nc` is refused, an expired or unknown nonce with otherwise correct credentials
//! gets a fresh challenge with `stale=true` (RFC 7616 §3.3) so the caller retries silently.
//! A nonce is bound to the trunk and the source address it was issued to: one answered from
//! elsewhere, or for another trunk, counts as unknown. The store is bounded and kept in
//! issue order, so expiring and evicting cost O(1) per nonce and a challenge never scans
//! the store (it used to scan all 10,000 on the manager task).

use crate::config::{Config, TrunkConfig};
use crate::sip::digest::{Algorithm, Challenge, Credentials};
use ipnet::IpNet;
use rsip::headers::UntypedHeader;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Nonces remembered at most; beyond that the oldest are forgotten (their users get
/// `stale=true` and retry).
const MAX_NONCES: usize = 10_000;

/// Index of a trunk in the configuration.
pub type TrunkId = usize;

/// Why a request is not admitted, and what to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 403: no trunk allows the source, or the trunk may not reach the number.
    Forbidden(&'static str),
    /// 401 with these WWW-Authenticate values (one per algorithm offered).
    Challenge(Vec<String>),
    /// 503 + Retry-After: the trunk holds its maximum of calls.
    TrunkFull,
}

struct Trunk {
    config: TrunkConfig,
    networks: Vec<IpNet>,
    algorithms: Vec<Algorithm>,
    active: usize,
}

struct NonceState {
    issued: Instant,
    /// Highest nonce count accepted so far (0: none yet).
    last_nc: u32,
    /// Who it was issued to: the trunk (by name, which survives a reload) and the source.
    trunk: String,
    source: IpAddr,
}

/// Issued nonces: a map for lookups and their issue order for expiry and eviction (issue
/// times only grow, so the oldest is always at the front).
#[derive(Default)]
struct Nonces {
    by_value: HashMap<String, NonceState>,
    order: VecDeque<String>,
}

impl Nonces {
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_value.len()
    }

    /// Forget expired nonces, then the oldest until there is room for one more.
    fn make_room(&mut self, now: Instant, ttl: Duration) {
        while let Some(oldest) = self.order.front() {
            let expired = self
                .by_value
                .get(oldest)
                .is_none_or(|n| now.saturating_duration_since(n.issued) >= ttl);
            if !expired && self.by_value.len() < MAX_NONCES {
                break;
            }
            if let Some(v) = self.order.pop_front() {
                self.by_value.remove(&v);
            }
        }
    }

    fn insert(&mut self, nonce: String, state: NonceState) {
        self.order.push_back(nonce.clone());
        self.by_value.insert(nonce, state);
    }
}

pub struct Trunks {
    trunks: Vec<Trunk>,
    nonces: Nonces,
    nonce_ttl: Duration,
}

impl Trunks {
    pub fn new(config: &Config) -> Trunks {
        Trunks {
            trunks: config
                .trunks
                .iter()
                .map(|t| Trunk {
                    networks: t.networks(),
                    algorithms: t
                        .algorithms
                        .iter()
                        .filter_map(|a| Algorithm::parse(a))
                        .collect(),
                    config: t.clone(),
                    active: 0,
                })
                .collect(),
            nonces: Nonces::default(),
            nonce_ttl: Duration::from_secs(config.security.nonce_ttl_secs),
        }
    }

    /// New trunk definitions (configuration reload). Calls in progress keep counting against
    /// the trunk of the same name; nonces already issued stay valid.
    pub fn reload(&mut self, config: &Config) {
        let mut next = Trunks::new(config);
        for t in &mut next.trunks {
            if let Some(old) = self.trunks.iter().find(|o| o.config.name == t.config.name) {
                t.active = old.active;
            }
        }
        next.nonces = std::mem::take(&mut self.nonces);
        *self = next;
    }

    /// No trunks configured: anyone may call (the demo and test set-up).
    pub fn open(&self) -> bool {
        self.trunks.is_empty()
    }

    pub fn name(&self, id: TrunkId) -> &str {
        &self.trunks[id].config.name
    }

    /// Whether any trunk allows `ip` (for requests other than INVITE).
    pub fn source_allowed(&self, ip: IpAddr) -> bool {
        self.open() || self.trunks.iter().any(|t| t.allows(ip))
    }

    /// Who is calling: the trunk for `source` that the request authenticates as.
    /// `Ok(None)` when no trunks are configured.
    pub fn identify(
        &mut self,
        now: Instant,
        source: IpAddr,
        req: &rsip::Request,
    ) -> Result<Option<TrunkId>, Refusal> {
        if self.open() {
            return Ok(None);
        }
        let candidates: Vec<TrunkId> = (0..self.trunks.len())
            .filter(|i| self.trunks[*i].allows(source))
            .collect();
        let Some(&first) = candidates.first() else {
            return Err(Refusal::Forbidden("source address not allowed"));
        };
        let creds: Vec<Credentials> = req
            .headers
            .iter()
            .filter_map(|h| match h {
                rsip::Header::Authorization(a) => Credentials::parse(a.value()),
                _ => None,
            })
            .collect();
        // Several trunks may share addresses (one carrier, several accounts): the one
        // named by the credentials wins, then one without authentication.
        let by_user = candidates.iter().copied().find(|i| {
            let t = &self.trunks[*i].config;
            t.username.is_some()
                && creds
                    .iter()
                    .any(|c| Some(&c.username) == t.username.as_ref() && c.realm == t.realm)
        });
        let without_auth = candidates
            .iter()
            .copied()
            .find(|i| self.trunks[*i].config.username.is_none());
        let id = by_user.or(without_auth).unwrap_or(first);
        if self.trunks[id].config.username.is_none() {
            return Ok(Some(id));
        }
        self.authenticate(now, id, source, req, &creds)
            .map(|()| Some(id))
    }

    fn authenticate(
        &mut self,
        now: Instant,
        id: TrunkId,
        source: IpAddr,
        req: &rsip::Request,
        creds: &[Credentials],
    ) -> Result<(), Refusal> {
        let t = &self.trunks[id];
        let (user, password) = (
            t.config.username.clone().unwrap_or_default(),
            t.config.password.clone().unwrap_or_default(),
        );
        let method = req.method.to_string();
        let uri = req.uri.to_string();
        let Some(c) = creds.iter().find(|c| {
            c.username == user && c.realm == t.config.realm && t.algorithms.contains(&c.algorithm)
        }) else {
            return Err(self.challenge(now, id, source, false));
        };
        // qop=auth is required: without nc/cnonce there is no replay protection.
        let (Some(_), Some((_, nc)), Some(_)) = (&c.qop, &c.nc, &c.cnonce) else {
            return Err(self.challenge(now, id, source, false));
        };
        // The digest must cover this request: its method (by construction) and its URI.
        let right = c.verify(&password, &method) && same_uri(&c.uri, &uri);
        if !right {
            tracing::info!(trunk = %t.config.name, "digest authentication failed");
            return Err(self.challenge(now, id, source, false));
        }
        // Ours, unexpired, and issued to this trunk at this address: else a stranger who
        // saw a challenge (or another trunk's) could spend it.
        let trunk_name = &self.trunks[id].config.name;
        let fresh = self.nonces.by_value.get(&c.nonce).is_some_and(|n| {
            now.saturating_duration_since(n.issued) < self.nonce_ttl
                && n.trunk == *trunk_name
                && n.source == source
        });
        if !fresh {
            return Err(self.challenge(now, id, source, true));
        }
        let Some(state) = self.nonces.by_value.get_mut(&c.nonce) else {
            return Err(self.challenge(now, id, source, true));
        };
        if *nc <= state.last_nc {
            tracing::info!(trunk = %self.trunks[id].config.name, nc, last = state.last_nc, "digest nonce count replayed");
            return Err(self.challenge(now, id, source, false));
        }
        state.last_nc = *nc;
        Ok(())
    }

    /// A 401's challenges: one fresh nonce, offered with every algorithm of the trunk.
    fn challenge(&mut self, now: Instant, id: TrunkId, source: IpAddr, stale: bool) -> Refusal {
        self.nonces.make_room(now, self.nonce_ttl);
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        self.nonces.insert(
            nonce.clone(),
            NonceState {
                issued: now,
                last_nc: 0,
                trunk: self.trunks[id].config.name.clone(),
                source,
            },
        );
        let t = &self.trunks[id];
        Refusal::Challenge(
            t.algorithms
                .iter()
                .map(|a| {
                    Challenge {
                        realm: t.config.realm.clone(),
                        nonce: nonce.clone(),
                        algorithm: *a,
                        qop_auth: true,
                        opaque: None,
                        stale,
                    }
                    .header_value()
                })
                .collect(),
        )
    }

    /// Whether the trunk may reach the dialled number (`numbers` empty = all).
    pub fn may_reach(&self, id: Option<TrunkId>, dialled: &str) -> bool {
        id.is_none_or(|id| {
            let n = &self.trunks[id].config.numbers;
            n.is_empty() || n.iter().any(|x| x == dialled)
        })
    }

    /// Whether the trunk holds its maximum of calls.
    pub fn at_limit(&self, id: Option<TrunkId>) -> bool {
        id.is_some_and(|id| {
            let t = &self.trunks[id];
            t.config.max_calls.is_some_and(|m| t.active >= m)
        })
    }

    pub fn call_started(&mut self, id: Option<TrunkId>) {
        if let Some(t) = id.and_then(|id| self.trunks.get_mut(id)) {
            t.active += 1;
        }
    }

    /// By name, not id: ids change when the configuration is reloaded mid-call.
    pub fn call_ended(&mut self, name: Option<&str>) {
        if let Some(t) = self
            .trunks
            .iter_mut()
            .find(|t| Some(t.config.name.as_str()) == name)
        {
            t.active = t.active.saturating_sub(1);
        }
    }
}

impl Trunk {
    fn allows(&self, ip: IpAddr) -> bool {
        // An IPv4 peer reaching a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.networks.iter().any(|n| n.contains(&ip))
    }
}

/// The digest `uri` names the Request-URI (compared without case in scheme and host, which
/// proxies sometimes rewrite).
fn same_uri(digest_uri: &str, request_uri: &str) -> bool {
    digest_uri.eq_ignore_ascii_case(request_uri)
        || digest_uri
            .trim_start_matches("sip:")
            .eq_ignore_ascii_case(request_uri.trim_start_matches("sip:"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::digest;

    fn config(trunks: &str) -> Config {
        let text = format!(
            "[[number]]\nnumber = \"8890\"\nchannel = \"8890\"\n[[number]]\nnumber = \"12345\"\nchannel = \"legacy\"\n\
             [[menu.option]]\ndigit = \"1\"\nid = \"x\"\nlabel = \"x\"\n[menu]\non_no_input = \"1\"\n{trunks}"
        );
        Config::from_str_with_env(&text, &[]).unwrap()
    }

    fn invite(auth: Option<String>) -> rsip::Request {
        let mut headers = rsip::Headers::default();
        if let Some(a) = auth {
            headers.push(rsip::headers::Authorization::new(a).into());
        }
        rsip::Request {
            method: rsip::Method::Invite,
            uri: rsip::Uri::try_from("sip:8890@127.0.0.1:5060").unwrap(),
            version: rsip::Version::V2,
            headers,
            body: Vec::new(),
        }
    }

    const AUTH: &str = "[[trunk]]\nname = \"carrier\"\nsources = [\"192.0.2.0/24\", \"2001:db8::/32\"]\nusername = \"gw\"\npassword = \"pw\"\n";

    fn answer(challenge: &str, password: &str, nc: u32) -> String {
        let ch = Challenge::parse(challenge).unwrap();
        digest::authorization(
            &ch,
            "gw",
            password,
            "INVITE",
            "sip:8890@127.0.0.1:5060",
            nc,
            "cn1",
        )
    }

    fn challenges(r: Result<Option<TrunkId>, Refusal>) -> Vec<String> {
        match r {
            Err(Refusal::Challenge(c)) => c,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    #[test]
    fn no_trunks_means_anyone() {
        let mut t = Trunks::new(&config(""));
        assert!(t.open());
        assert_eq!(
            t.identify(
                Instant::now(),
                "198.51.100.1".parse().unwrap(),
                &invite(None)
            ),
            Ok(None)
        );
    }

    #[test]
    fn sources_are_matched_by_cidr_v4_and_v6() {
        let mut t = Trunks::new(&config(
            "[[trunk]]\nname = \"a\"\nsources = [\"192.0.2.0/24\", \"2001:db8::/32\", \"198.51.100.7\"]\n",
        ));
        let now = Instant::now();
        for ok in [
            "192.0.2.200",
            "2001:db8:5::1",
            "198.51.100.7",
            "::ffff:192.0.2.9",
        ] {
            assert_eq!(
                t.identify(now, ok.parse().unwrap(), &invite(None)),
                Ok(Some(0)),
                "{ok}"
            );
        }
        for bad in ["192.0.3.1", "2001:db9::1", "198.51.100.8"] {
            assert_eq!(
                t.identify(now, bad.parse().unwrap(), &invite(None)),
                Err(Refusal::Forbidden("source address not allowed")),
                "{bad}"
            );
        }
    }

    #[test]
    fn digest_round_with_both_algorithms_and_nc_replay() {
        let src: IpAddr = "192.0.2.5".parse().unwrap();
        let now = Instant::now();
        for pick in [0, 1] {
            let mut t = Trunks::new(&config(AUTH));
            let ch = challenges(t.identify(now, src, &invite(None)));
            assert_eq!(ch.len(), 2);
            assert!(ch[0].contains("algorithm=SHA-256") && ch[1].contains("algorithm=MD5"));
            assert!(ch
                .iter()
                .all(|c| c.contains("qop=\"auth\"") && !c.contains("stale")));
            let auth = answer(&ch[pick], "pw", 1);
            assert_eq!(
                t.identify(now, src, &invite(Some(auth.clone()))),
                Ok(Some(0))
            );
            // The same nc again is a replay; a higher one is fine; a lower one is not.
            challenges(t.identify(now, src, &invite(Some(auth))));
            assert_eq!(
                t.identify(now, src, &invite(Some(answer(&ch[pick], "pw", 5)))),
                Ok(Some(0))
            );
            challenges(t.identify(now, src, &invite(Some(answer(&ch[pick], "pw", 3)))));
        }
    }

    #[test]
    fn wrong_password_is_challenged_again_and_old_nonces_are_stale() {
        let src: IpAddr = "192.0.2.5".parse().unwrap();
        let now = Instant::now();
        let mut t = Trunks::new(&config(AUTH));
        let ch = challenges(t.identify(now, src, &invite(None)));
        let again = challenges(t.identify(now, src, &invite(Some(answer(&ch[0], "nope", 1)))));
        assert!(!again[0].contains("stale"));
        let later = now + Duration::from_secs(301);
        let stale = challenges(t.identify(later, src, &invite(Some(answer(&ch[0], "pw", 1)))));
        assert!(stale.iter().all(|c| c.contains("stale=true")), "{stale:?}");
        // A nonce we never issued (e.g. before a restart) with right credentials: stale too.
        let forged = ch[0].replace(&Challenge::parse(&ch[0]).unwrap().nonce, "0123");
        let stale = challenges(t.identify(now, src, &invite(Some(answer(&forged, "pw", 1)))));
        assert!(stale[0].contains("stale=true"));
        // Right credentials on a fresh nonce pass.
        assert_eq!(
            t.identify(now, src, &invite(Some(answer(&stale[0], "pw", 1)))),
            Ok(Some(0))
        );
    }

    /// Issue 11: a nonce answered from another address, or for another trunk, is not one
    /// we issued to that peer.
    #[test]
    fn a_nonce_is_bound_to_the_trunk_and_source_it_was_issued_to() {
        let two = format!(
            "{AUTH}[[trunk]]\nname = \"other\"\nsources = [\"198.51.100.0/24\"]\nusername = \"gw\"\npassword = \"pw\"\n"
        );
        let mut t = Trunks::new(&config(&two));
        let now = Instant::now();
        let src: IpAddr = "192.0.2.5".parse().unwrap();
        let ch = challenges(t.identify(now, src, &invite(None)));
        // Right password, right nonce, but from another address of the same trunk.
        let elsewhere: IpAddr = "192.0.2.6".parse().unwrap();
        let r = challenges(t.identify(now, elsewhere, &invite(Some(answer(&ch[0], "pw", 1)))));
        assert!(r[0].contains("stale=true"), "{r:?}");
        // Or from the other trunk's address.
        let other: IpAddr = "198.51.100.9".parse().unwrap();
        let r = challenges(t.identify(now, other, &invite(Some(answer(&ch[0], "pw", 1)))));
        assert!(r[0].contains("stale=true"), "{r:?}");
        // Where it was issued it works.
        assert_eq!(
            t.identify(now, src, &invite(Some(answer(&ch[0], "pw", 1)))),
            Ok(Some(0))
        );
    }

    /// The store stays bounded, and what goes is the oldest, taken from the front of the
    /// issue order (no scan of the store per challenge).
    #[test]
    fn the_nonce_store_is_bounded_and_evicts_oldest_first() {
        let mut t = Trunks::new(&config(AUTH));
        let now = Instant::now();
        let src: IpAddr = "192.0.2.5".parse().unwrap();
        let first = challenges(t.identify(now, src, &invite(None)));
        for i in 0..(MAX_NONCES as u64 + 10) {
            let _ = t.identify(now + Duration::from_micros(i), src, &invite(None));
        }
        assert_eq!(t.nonces.len(), MAX_NONCES);
        assert_eq!(t.nonces.order.len(), MAX_NONCES);
        // The first was evicted: right credentials on it are stale.
        let r = challenges(t.identify(now, src, &invite(Some(answer(&first[0], "pw", 1)))));
        assert!(r[0].contains("stale=true"));
        // Expiry empties the store from the front.
        let later = now + Duration::from_secs(301);
        let _ = t.identify(later + Duration::from_secs(1), src, &invite(None));
        assert_eq!(t.nonces.len(), 1);
    }

    #[test]
    fn numbers_and_limits_per_trunk() {
        let mut t = Trunks::new(&config(
            "[[trunk]]\nname = \"a\"\nsources = [\"192.0.2.0/24\"]\nmax_calls = 1\nnumbers = [\"12345\"]\n",
        ));
        assert!(t.may_reach(Some(0), "12345"));
        assert!(!t.may_reach(Some(0), "8890"));
        assert!(t.may_reach(None, "8890"));
        assert!(!t.at_limit(Some(0)));
        t.call_started(Some(0));
        assert!(t.at_limit(Some(0)));
        t.call_ended(Some("a"));
        assert!(!t.at_limit(Some(0)));
        assert_eq!(t.name(0), "a");
        // A reload keeps the calls in progress counted against the trunk of that name.
        t.call_started(Some(0));
        let mut c = config(
            "[[trunk]]\nname = \"b\"\nsources = [\"198.51.100.0/24\"]\n[[trunk]]\nname = \"a\"\nsources = [\"192.0.2.0/24\"]\nmax_calls = 1\n",
        );
        c.security.nonce_ttl_secs = 300;
        t.reload(&c);
        assert_eq!(t.name(1), "a");
        assert!(t.at_limit(Some(1)));
        t.call_ended(Some("a"));
        assert!(!t.at_limit(Some(1)));
    }
}
