//! The few messages the layer writes itself: 100 Trying, the 487/481/482 and CANCEL 200
//! answers, and the ACK of a non-2xx final response. Everything else comes from the TU.
//! Responses use `sip::message::response`, the one §8.2.6 builder, so the layer and the TU
//! cannot drift apart.

use rsip::Header;

use super::key::top_via_value;

/// A response the layer writes itself (100 Trying, 487, 481, 482, 200 to CANCEL): the same
/// §8.2.6 construction the TU uses.
pub(super) fn response_to(
    request: &rsip::Request,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
) -> rsip::Response {
    crate::sip::message::response(request, code, reason, to_tag)
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
