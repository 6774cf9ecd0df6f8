//! The few messages the layer writes itself: 100 Trying, the 487/481/482 and CANCEL 200
//! answers, and the ACK of a non-2xx final response. Everything else comes from the TU.
//!
//! Built here rather than with `sip::message::response` so that the transaction layer does
//! not depend on the message module's policy (and can be tested on its own).

use rsip::headers::UntypedHeader;
use rsip::Header;

use super::key::{tag_of, top_via_value};

/// A response to `request` per §8.2.6.2: all Vias, From, To (with `to_tag` added when To
/// has no tag), Call-ID and CSeq copied; empty body.
pub(super) fn response_to(
    request: &rsip::Request,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
) -> rsip::Response {
    let mut headers = rsip::Headers::default();
    for header in request.headers.iter() {
        match header {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(header.clone())
            }
            Header::To(to) => headers.push(Header::To(with_tag(to.value(), to_tag).into())),
            _ => {}
        }
    }
    headers.push(Header::ContentLength(
        rsip::headers::ContentLength::default(),
    ));
    rsip::Response {
        // `Other` keeps the RFC reason phrase on the wire (rsip would print `RequestTerminated`).
        status_code: rsip::StatusCode::Other(code, reason.to_string()),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

fn with_tag(to: &str, tag: Option<&str>) -> String {
    match tag {
        Some(tag) if tag_of(to).is_none() => format!("{to};tag={tag}"),
        _ => to.to_string(),
    }
}

/// The ACK for a non-2xx final response (§17.1.1.3): same Request-URI, top Via only (same
/// branch), From, Call-ID and CSeq number of the INVITE, To of the response, the INVITE's
/// Route headers.
pub(super) fn ack_for(
    invite: &rsip::Request,
    response: &rsip::Response,
    cseq: u32,
) -> rsip::Request {
    let mut headers = rsip::Headers::default();
    if let Some(via) = top_via_value(&invite.headers) {
        headers.push(Header::Via(via.into()));
    }
    for header in invite.headers.iter() {
        match header {
            Header::From(_) | Header::CallId(_) | Header::Route(_) => headers.push(header.clone()),
            _ => {}
        }
    }
    if let Some(to) = response.headers.iter().find(|h| matches!(h, Header::To(_))) {
        headers.push(to.clone());
    }
    headers.push(Header::CSeq(format!("{cseq} ACK").into()));
    headers.push(Header::MaxForwards("70".into()));
    headers.push(Header::ContentLength(
        rsip::headers::ContentLength::default(),
    ));
    rsip::Request {
        method: rsip::Method::Ack,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// Wire bytes of a message. Not rsip's `Display`: it writes wrong reason phrases and drops
/// IPv6 brackets; `message::to_bytes` fixes both and keeps Content-Length true.
pub(super) fn bytes_of<M: Clone + Into<rsip::SipMessage>>(message: &M) -> Vec<u8> {
    crate::sip::message::to_bytes(&message.clone().into())
}
