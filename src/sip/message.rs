//! Turning datagrams into `rsip` messages and back, tolerant where RFC 3261 allows and
//! strict where it must be.
//!
//! `rsip` 0.4 rejects compact header names, line folding, `Name :`, unknown methods and
//! non-UTF-8 bytes, and takes any body length. [`parse`] normalises those before `rsip`
//! sees the bytes and enforces Content-Length (RFC 3261 §18.3) after.
//!
//! What [`parse`] hands out is normalised: one header row per Via / Route / Record-Route /
//! Contact value, those values and From / To / CSeq / Max-Forwards in canonical form (no
//! optional LWS, name-addrs always in `<>`), long header names. Serialise with [`to_bytes`],
//! never with `Display`: `rsip` writes `400 BadRequest`, IPv6 hosts without brackets and
//! binary bodies lossily.
//!
//! OWNER: sip-message helper. Contract: the signatures below.

mod access;
mod build;
pub(crate) mod grammar;
mod scan;

pub use access::{
    call_id, cseq_number, from_tag, header_value, header_values, method_of_cseq, request_uri_user,
    to_tag, top_via, top_via_in, top_via_text, ViaInfo,
};
pub use build::{
    parse_uri, reason_phrase, response, response_destination, stamp_via, to_bytes, uri_to_string,
};

use grammar::{parse_cseq, parse_max_forwards, parse_name_addr, parse_via};
use rsip::headers::UntypedHeader;
use scan::Scanned;

/// Why a datagram is not a usable SIP message.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not SIP at all (or too broken to find a start line, or a broken request without a
    /// readable Via so no answer can be routed): drop and count.
    #[error("not a SIP message: {0}")]
    Garbage(String),
    /// A request we could read enough of to answer: reply with `response`
    /// (also reachable as [`ParseError::response`]).
    #[error("bad request: {reason}")]
    BadRequest {
        reason: String,
        /// A ready response built from the headers we could recover (Via, From, To,
        /// Call-ID, CSeq), with a To-tag and a `Warning: 399` carrying `reason`. Usually
        /// 400 Bad Request; 505 Version Not Supported for another SIP version (§8.2.2.3
        /// style, RFC 4475 §3.1.2.16) and 416 Unsupported URI Scheme for a Request-URI
        /// that is not `sip:`/`sips:` (§8.2.2.1; this includes `tel:`).
        response: Box<rsip::Response>,
    },
    /// A well-formed request whose method `rsip` cannot represent (its enum has 14):
    /// RFC 3261 §8.2.1 says answer 501 Not Implemented, which `response` is (built like a
    /// BadRequest's, with an `Allow` header listing what we do implement left to the caller).
    #[error("unknown method {method}")]
    UnknownMethod {
        method: String,
        response: Box<rsip::Response>,
    },
    /// A broken response: drop and count.
    #[error("bad response: {0}")]
    BadResponse(String),
}

impl ParseError {
    /// The response to send back, if this error deserves one (BadRequest, UnknownMethod);
    /// `None` means drop and count.
    pub fn response(&self) -> Option<&rsip::Response> {
        match self {
            ParseError::BadRequest { response, .. }
            | ParseError::UnknownMethod { response, .. } => Some(response),
            ParseError::Garbage(_) | ParseError::BadResponse(_) => None,
        }
    }
}

/// The 14 methods `rsip` 0.4 knows, spelt as on the wire (methods are case-sensitive).
const RSIP_METHODS: [&str; 14] = [
    "ACK",
    "BYE",
    "CANCEL",
    "INFO",
    "INVITE",
    "MESSAGE",
    "NOTIFY",
    "OPTIONS",
    "PRACK",
    "PUBLISH",
    "REFER",
    "REGISTER",
    "SUBSCRIBE",
    "UPDATE",
];

/// Parse one datagram (UDP) into a message. Never panics.
pub fn parse(bytes: &[u8]) -> Result<rsip::SipMessage, ParseError> {
    let scanned = scan::scan(bytes).map_err(ParseError::Garbage)?;
    let is_response = scanned
        .start_line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"));
    if is_response {
        parse_response(scanned).map_err(|r| ParseError::BadResponse(r.to_string()))
    } else {
        parse_request(scanned)
    }
}

/// A request failed a check: answer it if we can route an answer, else drop it.
fn reject(scanned: &Scanned, code: u16, reason: &str) -> ParseError {
    match build::error_response(scanned, code, reason) {
        Some(response) => ParseError::BadRequest {
            reason: reason.to_string(),
            response: Box::new(response),
        },
        None => ParseError::Garbage(format!("{reason} (and no Via to answer to)")),
    }
}

fn parse_request(mut scanned: Scanned) -> Result<rsip::SipMessage, ParseError> {
    let bad = |s: &Scanned, reason: &str| reject(s, 400, reason);
    if scanned.non_utf8 {
        return Err(bad(&scanned, "non-UTF-8 bytes in the header"));
    }
    if let Some(problem) = scanned.problem.clone() {
        return Err(bad(&scanned, &problem));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly single spaces (§25.1).
    let start = scanned.start_line.clone();
    let parts: Vec<&str> = start.split(' ').collect();
    let [method, uri, version] = parts[..] else {
        return Err(bad(&scanned, "malformed Request-Line"));
    };
    if method.is_empty() || uri.is_empty() || !grammar::is_token(method) {
        return Err(bad(&scanned, "malformed Request-Line"));
    }
    if version != "SIP/2.0" {
        let looks_like_sip = version
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"));
        return Err(if looks_like_sip {
            reject(&scanned, 505, "SIP version not supported")
        } else {
            bad(&scanned, "malformed SIP-Version")
        });
    }
    check_request_uri(&scanned, uri)?;
    let body = cut_body(&scanned).map_err(|r| bad(&scanned, r))?;

    for name in ["From", "To", "Call-ID", "CSeq"] {
        match scanned.values(name).count() {
            0 => return Err(bad(&scanned, &format!("missing {name}"))),
            1 => {}
            _ => return Err(bad(&scanned, &format!("more than one {name}"))),
        }
    }
    if scanned.values("Via").next().is_none() {
        return Err(ParseError::Garbage("request without Via".into()));
    }
    canonicalise(&mut scanned).map_err(|r| bad(&scanned, &r))?;
    let (_, cseq_method) = scanned
        .first("CSeq")
        .and_then(|v| parse_cseq(v).ok())
        .unwrap_or_default();
    if cseq_method != method {
        return Err(bad(&scanned, "CSeq method does not match the Request-Line"));
    }
    if !RSIP_METHODS.contains(&method) {
        let response = build::error_response(&scanned, 501, "")
            .ok_or_else(|| ParseError::Garbage("request without Via".into()))?;
        return Err(ParseError::UnknownMethod {
            method: method.to_string(),
            response: Box::new(response),
        });
    }
    let Some(request_uri) = build::parse_uri(uri) else {
        return Err(bad(&scanned, "unparseable Request-URI"));
    };
    let original_start = std::mem::replace(
        &mut scanned.start_line,
        format!("{method} {} SIP/2.0", build::rsip_safe_uri(uri)),
    );
    let wire = assemble(&scanned, &body);
    scanned.start_line = original_start;
    match rsip::SipMessage::try_from(wire.as_slice()) {
        Ok(rsip::SipMessage::Request(mut request)) => {
            request.uri = request_uri;
            Ok(rsip::SipMessage::Request(request))
        }
        Ok(rsip::SipMessage::Response(_)) => Err(bad(&scanned, "unparseable request")),
        Err(e) => Err(bad(
            &scanned,
            &format!("unparseable request ({})", short(&e)),
        )),
    }
}

/// rsip errors quote the whole message; keep the first line, briefly, for the Warning.
fn short(e: &rsip::Error) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or("");
    line.chars().take(80).collect()
}

/// §8.2.2.1 / §19.1.1: `sip:`/`sips:` only (else 416); no `<>`, no URI headers.
fn check_request_uri(scanned: &Scanned, uri: &str) -> Result<(), ParseError> {
    if uri.starts_with('<') {
        return Err(reject(scanned, 400, "Request-URI enclosed in <>"));
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(reject(scanned, 400, "Request-URI without a scheme"));
    };
    if !grammar::is_token(scheme) {
        return Err(reject(scanned, 400, "malformed Request-URI scheme"));
    }
    if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
        return Err(reject(scanned, 416, "unsupported Request-URI scheme"));
    }
    let host_part = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    if host_part.contains('?') {
        return Err(reject(scanned, 400, "header fields in the Request-URI"));
    }
    Ok(())
}

/// RFC 3261 §18.3 on UDP: Content-Length may be absent (body = rest); a larger value than
/// the bytes we have is an error; extra bytes beyond it are discarded.
fn cut_body(scanned: &Scanned) -> Result<Vec<u8>, &'static str> {
    let mut values = scanned.values("Content-Length");
    let Some(v) = values.next() else {
        return Ok(scanned.body.clone());
    };
    if values.next().is_some() {
        return Err("more than one Content-Length");
    }
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err("malformed Content-Length");
    }
    let n = v.trim_start_matches('0').parse::<usize>().unwrap_or(
        if v.trim_start_matches('0').is_empty() {
            0
        } else {
            usize::MAX
        },
    );
    if n > scanned.body.len() {
        return Err("Content-Length larger than the body");
    }
    Ok(scanned.body[..n].to_vec())
}

/// Validate the headers the stack reads and rewrite them canonically.
fn canonicalise(scanned: &mut Scanned) -> Result<(), String> {
    let mut max_forwards = 0;
    for (name, value) in scanned.headers.iter_mut() {
        let canonical = match name.as_str() {
            "Via" => parse_via(value).map(|v| v.to_canonical()),
            "From" | "To" | "Route" | "Record-Route" => {
                parse_name_addr(value).map(|n| n.to_canonical())
            }
            "Contact" if value.as_str() == "*" => Ok(value.clone()),
            "Contact" => parse_name_addr(value).map(|n| n.to_canonical()),
            "CSeq" => parse_cseq(value).map(|(n, m)| format!("{n} {m}")),
            "Max-Forwards" => {
                max_forwards += 1;
                parse_max_forwards(value).map(|n| n.to_string())
            }
            "Call-ID" => {
                if value.is_empty() || value.contains([' ', '\t']) {
                    Err("malformed Call-ID")
                } else {
                    Ok(value.clone())
                }
            }
            _ => continue,
        };
        *value = canonical.map_err(|e| format!("{name}: {e}"))?;
    }
    if max_forwards > 1 {
        return Err("more than one Max-Forwards".into());
    }
    Ok(())
}

/// Rebuild the bytes `rsip` will parse: canonical start line, one row per header, the body.
fn assemble(scanned: &Scanned, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + body.len());
    out.extend_from_slice(scanned.start_line.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &scanned.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        if name == "Content-Length" {
            out.extend_from_slice(body.len().to_string().as_bytes());
        } else {
            out.extend_from_slice(value.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn parse_response(mut scanned: Scanned) -> Result<rsip::SipMessage, String> {
    if scanned.non_utf8 {
        return Err("non-UTF-8 bytes in the header".into());
    }
    if let Some(p) = &scanned.problem {
        return Err(p.clone());
    }
    // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (the reason may be empty).
    let line = scanned.start_line.clone();
    let (version, rest) = line.split_once(' ').ok_or("malformed Status-Line")?;
    if version != "SIP/2.0" {
        return Err("unsupported SIP version".into());
    }
    let code_text = rest.get(..3).ok_or("malformed Status-Code")?;
    let after = &rest[3..];
    if !code_text.bytes().all(|b| b.is_ascii_digit())
        || !(after.is_empty() || after.starts_with(' '))
    {
        return Err("malformed Status-Code".into());
    }
    let code: u16 = code_text.parse().map_err(|_| "malformed Status-Code")?;
    if !(100..=699).contains(&code) {
        return Err("Status-Code out of range".into());
    }
    scanned.start_line = format!("SIP/2.0 {code} {}", after.trim_start_matches(' '));
    let body = cut_body(&scanned)?;
    for name in ["From", "To", "Call-ID", "CSeq"] {
        match scanned.values(name).count() {
            0 => return Err(format!("missing {name}")),
            1 => {}
            _ => return Err(format!("more than one {name}")),
        }
    }
    // §8.1.3.3: a UAC discards a response with more than one Via; we are never a proxy.
    match scanned.values("Via").count() {
        0 => return Err("response without Via".into()),
        1 => {}
        _ => return Err("more than one Via in a response (§8.1.3.3)".into()),
    }
    canonicalise(&mut scanned)?;
    let wire = assemble(&scanned, &body);
    rsip::SipMessage::try_from(wire.as_slice()).map_err(|e| format!("unparseable ({})", short(&e)))
}

/// A fresh RFC 3261 branch (`z9hG4bK` + random) for Vias we create.
pub fn new_branch() -> String {
    format!("z9hG4bK{}", uuid::Uuid::new_v4().simple())
}

/// A fresh From/To tag.
pub fn new_tag() -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    u[..16].to_string()
}

/// The value of a typed-as-string `rsip` header, for code that holds an [`rsip::Header`].
pub(crate) fn untyped_value(header: &rsip::Header) -> Option<&str> {
    use rsip::Header as H;
    Some(match header {
        H::Via(h) => h.value(),
        H::From(h) => h.value(),
        H::To(h) => h.value(),
        H::CallId(h) => h.value(),
        H::CSeq(h) => h.value(),
        H::Contact(h) => h.value(),
        H::Route(h) => h.value(),
        H::RecordRoute(h) => h.value(),
        H::MaxForwards(h) => h.value(),
        H::ContentLength(h) => h.value(),
        H::Other(_, v) => v.as_str(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
