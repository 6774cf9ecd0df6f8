//! Who is asking: desk accounts with sessions, machine clients with bearer tokens.
//!
//! Sessions live in memory (a restart logs everyone out, which is acceptable for a desk and
//! keeps no secrets on disk). The session cookie is HttpOnly and SameSite=Strict; every
//! state change made with a session must also carry the session's CSRF token (a form field
//! or the `X-CSRF-Token` header), because a cookie alone proves nothing about which page
//! sent the request. Failed logins are throttled per name and address: after
//! [`FREE_FAILURES`] the next try must wait, doubling up to [`MAX_LOCK`].

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{ConsoleConfig, ConsoleRole, ConsoleUser};

/// Name of the session cookie.
pub const COOKIE: &str = "hotline_desk";
/// A session ends this long after login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Failed logins allowed before the throttle starts.
pub const FREE_FAILURES: u32 = 5;
const FIRST_LOCK: Duration = Duration::from_secs(30);
pub const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// Name/address pairs with failures remembered at most (beyond, unlocked ones are dropped).
const MAX_TRACKED: usize = 10_000;

/// The caller of a request, once authenticated.
#[derive(Clone, Debug)]
pub enum Principal {
    User {
        name: String,
        role: ConsoleRole,
        csrf: String,
    },
    /// A bearer token (the intake): no session, so no CSRF; sees whole numbers.
    Machine,
}

impl Principal {
    /// Whether callers' numbers are shown whole (supervisors and machine clients).
    pub fn sees_whole_numbers(&self) -> bool {
        !matches!(
            self,
            Principal::User {
                role: ConsoleRole::Operator,
                ..
            }
        )
    }

    /// Name for the audit log and for `by` fields.
    pub fn name(&self) -> &str {
        match self {
            Principal::User { name, .. } => name,
            Principal::Machine => "api",
        }
    }

    pub fn is_supervisor(&self) -> bool {
        matches!(
            self,
            Principal::User {
                role: ConsoleRole::Supervisor,
                ..
            }
        )
    }

    /// The CSRF check of a state change: `given` must be the session's token; a machine
    /// client has no session and needs none.
    pub fn csrf_ok(&self, given: Option<&str>) -> bool {
        match self {
            Principal::User { csrf, .. } => given.is_some_and(|g| constant_eq(g, csrf)),
            Principal::Machine => true,
        }
    }
}

struct Session {
    name: String,
    role: ConsoleRole,
    csrf: String,
    expires: Instant,
}

#[derive(Default)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

/// Why a login did not succeed.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong name or password (not said which).
    Invalid,
    /// Too many failures: try again after this long.
    Throttled(Duration),
}

/// Accounts, tokens, sessions and the login throttle.
pub struct Auth {
    users: HashMap<String, ConsoleUser>,
    tokens: Vec<String>,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<(String, IpAddr), Failures>>,
    /// Verified against when the name is unknown, so that a wrong name costs as much time as
    /// a wrong password and does not reveal which names exist.
    dummy_hash: String,
}

/// A random token, hex-encoded (32 bytes from the OS-seeded CSPRNG).
pub fn random_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Comparison whose time does not depend on where the strings differ.
pub fn constant_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An argon2id PHC string for `password` (what `console hash-password` prints).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = argon2::password_hash::generate_salt();
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string `hash`. Slow on purpose (argon2id): call it
/// on a blocking thread.
pub fn verify_password(password: &str, hash: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

impl Auth {
    pub fn new(cfg: &ConsoleConfig) -> Auth {
        Auth {
            users: cfg
                .users
                .iter()
                .map(|u| (u.name.clone(), u.clone()))
                .collect(),
            tokens: cfg
                .api_tokens
                .iter()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
            sessions: Mutex::default(),
            failures: Mutex::default(),
            dummy_hash: hash_password(&random_token()).unwrap_or_default(),
        }
    }

    /// The principal of an `Authorization: Bearer` token, if it is one of ours.
    pub fn bearer(&self, token: &str) -> Option<Principal> {
        let token = token.trim();
        self.tokens
            .iter()
            .any(|t| constant_eq(t, token))
            .then_some(Principal::Machine)
    }

    /// The principal of a session cookie, if the session is live.
    pub fn session(&self, token: &str, now: Instant) -> Option<Principal> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| s.expires > now);
        sessions.get(token).map(|s| Principal::User {
            name: s.name.clone(),
            role: s.role,
            csrf: s.csrf.clone(),
        })
    }

    pub fn logout(&self, token: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
    }

    /// Checks the throttle, then the password (blocking: argon2), and on success opens a
    /// session and returns its token.
    pub fn login(
        &self,
        name: &str,
        password: &str,
        from: IpAddr,
        now: Instant,
    ) -> Result<String, LoginError> {
        let key = (name.to_lowercase(), from);
        {
            let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(until) = failures.get(&key).and_then(|f| f.locked_until) {
                if until > now {
                    return Err(LoginError::Throttled(until - now));
                }
            }
        }
        let user = self.users.get(name);
        let hash = user.map_or(self.dummy_hash.as_str(), |u| u.password_hash.as_str());
        let ok = verify_password(password, hash) && user.is_some();
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(user) = user.filter(|_| ok) else {
            // Many names from many addresses must not grow the table without bound: forget
            // the failures that no longer lock anything.
            if failures.len() > MAX_TRACKED {
                failures.retain(|_, f| f.locked_until.is_some_and(|u| u > now));
            }
            let f = failures.entry(key).or_default();
            f.count += 1;
            if f.count >= FREE_FAILURES {
                let extra = (f.count - FREE_FAILURES).min(16);
                let lock = FIRST_LOCK.saturating_mul(1 << extra).min(MAX_LOCK);
                f.locked_until = Some(now + lock);
            }
            return Err(LoginError::Invalid);
        };
        failures.remove(&key);
        drop(failures);
        let token = random_token();
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                token.clone(),
                Session {
                    name: user.name.clone(),
                    role: user.role,
                    csrf: random_token(),
                    expires: now + SESSION_TTL,
                },
            );
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(&ConsoleConfig {
            users: vec![ConsoleUser {
                name: "li".into(),
                password_hash: hash_password("secret").unwrap(),
                role: ConsoleRole::Operator,
            }],
            api_tokens: vec!["0123456789abcdef0123".into()],
            ..Default::default()
        })
    }

    #[test]
    fn login_opens_a_session_and_failures_are_throttled() {
        let a = auth();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let now = Instant::now();
        let token = a.login("li", "secret", ip, now).unwrap();
        let p = a.session(&token, now).unwrap();
        assert!(!p.sees_whole_numbers());
        assert!(!p.csrf_ok(None) && !p.csrf_ok(Some("x")));
        assert!(a.session(&token, now + SESSION_TTL).is_none(), "expired");
        for _ in 0..FREE_FAILURES {
            assert_eq!(a.login("li", "wrong", ip, now), Err(LoginError::Invalid));
        }
        // Even the right password waits now; another address does not.
        assert!(matches!(
            a.login("li", "secret", ip, now),
            Err(LoginError::Throttled(_))
        ));
        assert!(a
            .login("li", "secret", "10.0.0.1".parse().unwrap(), now)
            .is_ok());
        assert!(a.login("li", "secret", ip, now + FIRST_LOCK).is_ok());
        assert_eq!(
            a.login("nobody", "secret", ip, now),
            Err(LoginError::Invalid)
        );
    }

    #[test]
    fn bearer_tokens_match_exactly() {
        let a = auth();
        assert!(a.bearer("0123456789abcdef0123").is_some());
        assert!(a.bearer("0123456789abcdef012").is_none());
    }
}
