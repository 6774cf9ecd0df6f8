//! HTTP Digest for SIP (RFC 3261 §22.4 with RFC 8760's SHA-256): the header grammar and the
//! response computation, for both sides (the gateway challenging a trunk, the built-in caller
//! answering a challenge).
//!
//! Parsed here rather than with `rsip`'s digest helpers: rsip reads `nc` as a decimal `u8`
//! (`nc=0000000a` fails, `nc=00000100` overflows) and has no SHA-256, so replay protection
//! built on it would be wrong. Only `qop=auth` is supported (no `auth-int`, no `-sess`).
//! Pure functions: no clock, no state (nonce bookkeeping is the user's).

use md5::Digest as _;

/// A digest hash algorithm (RFC 8760 §2.1 / §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// Name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// `MD5`, `SHA-256` (case-insensitive); absent means MD5 (RFC 2617 §3.2.1).
    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.trim().to_ascii_uppercase().as_str() {
            "MD5" => Some(Algorithm::Md5),
            "SHA-256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    /// Lower-case hex of the hash of `data`.
    pub fn hex(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex(&md5::Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => {
                use sha2::Digest as _;
                hex(&sha2::Sha256::digest(data.as_bytes()))
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A WWW-Authenticate challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: Algorithm,
    /// Whether `qop="auth"` was offered.
    pub qop_auth: bool,
    pub opaque: Option<String>,
    /// The nonce was too old but the credentials were right (retry without asking the user).
    pub stale: bool,
}

impl Challenge {
    /// The header value, e.g. `Digest realm="hotline", nonce="…", algorithm=SHA-256, qop="auth"`.
    pub fn header_value(&self) -> String {
        let mut s = format!(
            "Digest realm=\"{}\", nonce=\"{}\", algorithm={}",
            self.realm,
            self.nonce,
            self.algorithm.name()
        );
        if self.qop_auth {
            s.push_str(", qop=\"auth\"");
        }
        if let Some(o) = &self.opaque {
            s.push_str(&format!(", opaque=\"{o}\""));
        }
        if self.stale {
            s.push_str(", stale=true");
        }
        s
    }

    /// Read a `WWW-Authenticate`/`Proxy-Authenticate` value; `None` if not a usable Digest
    /// challenge (unknown algorithm, `auth-int` only, no nonce).
    pub fn parse(value: &str) -> Option<Challenge> {
        let params = params(value)?;
        let get = |k: &str| param(&params, k);
        let algorithm = algorithm(&params)?;
        let qop_auth = match get("qop") {
            Some(q) => {
                if !q.split(',').any(|x| x.trim().eq_ignore_ascii_case("auth")) {
                    return None;
                }
                true
            }
            None => false,
        };
        Some(Challenge {
            realm: get("realm")?,
            nonce: get("nonce")?,
            algorithm,
            qop_auth,
            opaque: get("opaque"),
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }
}

/// The fields of an `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Algorithm,
    /// `auth` when present (anything else is refused by [`Credentials::parse`]).
    pub qop: Option<String>,
    /// Nonce count, as on the wire (8 hex digits) and as a number.
    pub nc: Option<(String, u32)>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
}

impl Credentials {
    /// Read an `Authorization` value; `None` when it is not a complete Digest answer.
    pub fn parse(value: &str) -> Option<Credentials> {
        let params = params(value)?;
        let get = |k: &str| param(&params, k);
        let algorithm = algorithm(&params)?;
        let qop = get("qop");
        if qop
            .as_deref()
            .is_some_and(|q| !q.eq_ignore_ascii_case("auth"))
        {
            return None;
        }
        let nc = match get("nc") {
            // RFC 7616 §3.4: exactly 8 hex digits.
            Some(nc) if nc.len() == 8 => Some((nc.clone(), u32::from_str_radix(&nc, 16).ok()?)),
            Some(_) => return None,
            None => None,
        };
        Some(Credentials {
            username: get("username")?,
            realm: get("realm")?,
            nonce: get("nonce")?,
            uri: get("uri")?,
            response: get("response")?,
            algorithm,
            qop,
            nc,
            cnonce: get("cnonce"),
            opaque: get("opaque"),
        })
    }

    /// The response these credentials should carry for `password` and `method`.
    pub fn expected_response(&self, password: &str, method: &str) -> String {
        response(
            self.algorithm,
            &self.username,
            &self.realm,
            password,
            method,
            &self.uri,
            &self.nonce,
            self.qop
                .as_ref()
                .and_then(|_| Some((self.nc.as_ref()?.0.as_str(), self.cnonce.as_deref()?))),
        )
    }

    /// Whether `response` is right for `password` (compared in constant time).
    pub fn verify(&self, password: &str, method: &str) -> bool {
        let want = self.expected_response(password, method);
        let got = self.response.to_ascii_lowercase();
        want.len() == got.len()
            && want
                .bytes()
                .zip(got.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// RFC 2617 §3.2.2.1 response, `qop=auth` when `nc_cnonce` is given, else the RFC 2069 form.
#[allow(clippy::too_many_arguments)]
pub fn response(
    algorithm: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    nc_cnonce: Option<(&str, &str)>,
) -> String {
    let ha1 = algorithm.hex(&format!("{username}:{realm}:{password}"));
    let ha2 = algorithm.hex(&format!("{method}:{uri}"));
    match nc_cnonce {
        Some((nc, cnonce)) => algorithm.hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")),
        None => algorithm.hex(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// The `Authorization` value answering `challenge` (the caller's side).
pub fn authorization(
    challenge: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
    cnonce: &str,
) -> String {
    let nc = format!("{nc:08x}");
    let resp = response(
        challenge.algorithm,
        username,
        &challenge.realm,
        password,
        method,
        uri,
        &challenge.nonce,
        challenge.qop_auth.then_some((nc.as_str(), cnonce)),
    );
    let mut s = format!(
        "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{resp}\", algorithm={}",
        challenge.realm,
        challenge.nonce,
        challenge.algorithm.name()
    );
    if challenge.qop_auth {
        s.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
    }
    if let Some(o) = &challenge.opaque {
        s.push_str(&format!(", opaque=\"{o}\""));
    }
    s
}

/// `Digest a=b, c="d, e"` → `[(a, b), (c, "d, e")]`; `None` unless the scheme is Digest.
/// Quoted strings may hold commas and `\`-escapes.
/// A parameter of a parsed Digest header, by name without case.
fn param(params: &[(String, String)], name: &str) -> Option<String> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// The `algorithm` parameter (MD5 when absent, RFC 8760 §2.4); `None` for one we do not
/// implement, so the header is not usable.
fn algorithm(params: &[(String, String)]) -> Option<Algorithm> {
    match param(params, "algorithm") {
        Some(a) => Algorithm::parse(&a),
        None => Some(Algorithm::Md5),
    }
}

fn params(value: &str) -> Option<Vec<(String, String)>> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(|c: char| c.is_ascii_whitespace())?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars
            .peek()
            .is_some_and(|c| c.is_ascii_whitespace() || *c == ',')
        {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_ascii_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || name.is_empty() {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => val.push(chars.next()?),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => val.push(c),
                }
            }
            if !closed {
                return None;
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                val.push(c);
                chars.next();
            }
            val = val.trim().to_string();
        }
        out.push((name, val));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 §3.5's example (MD5, qop=auth), the reference every implementation checks.
    #[test]
    fn rfc2617_example_response() {
        let r = response(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(("00000001", "0a4f113b")),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    /// RFC 7616 §3.9.1's SHA-256 example.
    #[test]
    fn rfc7616_sha256_example_response() {
        let r = response(
            Algorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            Some(("00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")),
        );
        assert_eq!(
            r,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn nc_is_hex_and_must_have_eight_digits() {
        let base = r#"Digest username="u", realm="r", nonce="n", uri="sip:8890@h", response="x", qop=auth, cnonce="c", nc="#;
        let c = Credentials::parse(&format!("{base}0000000a")).unwrap();
        assert_eq!(c.nc, Some(("0000000a".into(), 10)));
        let c = Credentials::parse(&format!("{base}00000100")).unwrap();
        assert_eq!(c.nc.unwrap().1, 256);
        assert!(Credentials::parse(&format!("{base}1")).is_none());
        assert!(Credentials::parse(&format!("{base}zzzzzzzz")).is_none());
    }

    #[test]
    fn quoted_values_keep_commas_and_escapes() {
        let p = params(r#"Digest realm="a, \"b\"", nonce=abc ,algorithm=MD5"#).unwrap();
        assert_eq!(p[0], ("realm".into(), "a, \"b\"".into()));
        assert_eq!(p[1], ("nonce".into(), "abc".into()));
        assert_eq!(p[2], ("algorithm".into(), "MD5".into()));
        assert!(params(r#"Digest realm="open"#).is_none());
        assert!(params("Basic dXNlcjpwYXNz").is_none());
    }

    #[test]
    fn a_caller_answer_verifies_with_the_right_password_only() {
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let ch = Challenge {
                realm: "hotline".into(),
                nonce: "abc123".into(),
                algorithm: alg,
                qop_auth: true,
                opaque: None,
                stale: false,
            };
            let parsed = Challenge::parse(&ch.header_value()).unwrap();
            assert_eq!(parsed, ch);
            let auth = authorization(
                &ch,
                "carrier",
                "pw",
                "INVITE",
                "sip:8890@127.0.0.1",
                1,
                "cn",
            );
            let cred = Credentials::parse(&auth).unwrap();
            assert_eq!(cred.algorithm, alg);
            assert!(cred.verify("pw", "INVITE"));
            assert!(!cred.verify("pw2", "INVITE"));
            assert!(!cred.verify("pw", "BYE"));
        }
    }

    #[test]
    fn stale_and_unknown_algorithms() {
        let c = Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth", stale=TRUE"#).unwrap();
        assert!(c.stale && c.qop_auth && c.algorithm == Algorithm::Md5);
        assert!(
            Challenge::parse(r#"Digest realm="r", nonce="n", algorithm=SHA-512-256"#).is_none()
        );
        assert!(Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth-int""#).is_none());
    }
}
