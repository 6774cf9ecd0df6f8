//! Turning datagrams into `rsip` messages and back, tolerant where RFC 3261 allows and
//! strict where it must be.
//!
//! `rsip` 0.4 rejects compact header names, line folding, `Name :`, unknown methods and
//! non-UTF-8 bytes, and takes any body length. [`parse`] normalises those before `rsip`
//! sees the bytes and enforces Content-Length (RFC 3261 §18.3) after.
//!
//! OWNER: sip-message helper. Contract: the signatures below.

use std::net::SocketAddr;

/// Why a datagram is not a usable SIP message.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not SIP at all (or too broken to find a start line): drop and count.
    #[error("not a SIP message: {0}")]
    Garbage(String),
    /// A request we could read enough of to answer: reply with [`ParseError::response`] (400).
    #[error("bad request: {reason}")]
    BadRequest {
        reason: String,
        /// A ready 400 built from the headers we could recover (Via, From, To, Call-ID, CSeq).
        response: Box<rsip::Response>,
    },
    /// A request with a method rsip cannot represent: answer with the ready 501.
    #[error("unknown method {method}")]
    UnknownMethod {
        method: String,
        response: Box<rsip::Response>,
    },
    /// A broken response: drop and count.
    #[error("bad response: {0}")]
    BadResponse(String),
}

/// Parse one datagram (UDP) into a message. Never panics.
pub fn parse(bytes: &[u8]) -> Result<rsip::SipMessage, ParseError> {
    let _ = bytes;
    todo!("sip-message helper")
}

/// RFC 3261 §18.2.1 + RFC 3581: stamp `received=` (when the source IP differs from the
/// top Via's sent-by) and fill an empty `rport` with the source port.
pub fn stamp_via(request: &mut rsip::Request, source: SocketAddr) {
    let _ = (request, source);
    todo!("sip-message helper")
}

/// Where a response to `request` goes (RFC 3261 §18.2.2 + RFC 3581): the top Via's
/// `received`/`rport` when present, else its sent-by (default port 5060).
pub fn response_destination(request: &rsip::Request) -> Option<SocketAddr> {
    let _ = request;
    todo!("sip-message helper")
}

/// Build a response to `request` (§8.2.6): copies Via (all), From, To (adding `to_tag` if
/// To has none and `to_tag` is given), Call-ID, CSeq; sets Content-Length 0.
pub fn response(
    request: &rsip::Request,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
) -> rsip::Response {
    let _ = (request, code, reason, to_tag);
    todo!("sip-message helper")
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
