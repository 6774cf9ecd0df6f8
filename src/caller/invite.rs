//! The INVITEs the test caller sends: the first one, and the retry with credentials after
//! a 401/407.

use crate::sip::digest::Challenge;
use crate::sip::message;
use rsip::headers::UntypedHeader;
use std::net::{IpAddr, SocketAddr};

/// The digest challenge of a 401 (`WWW-Authenticate`) or 407 (`Proxy-Authenticate`).
pub(crate) fn challenge(response: &rsip::Response) -> Option<Challenge> {
    response.headers.iter().find_map(|h| match h {
        rsip::Header::WwwAuthenticate(v) => Challenge::parse(v.value()),
        rsip::Header::ProxyAuthenticate(v) => Challenge::parse(v.value()),
        _ => None,
    })
}

/// The INVITE again with credentials: a new branch (a new transaction), the next CSeq,
/// `Authorization` (or `Proxy-Authorization` after a 407) replacing any earlier one.
pub(crate) fn with_authorization(
    invite: &rsip::Request,
    cseq: u32,
    status: u16,
    authorization: String,
) -> rsip::Request {
    let mut next = invite.clone();
    next.headers = rsip::Headers::default();
    for h in invite.headers.iter() {
        match h {
            rsip::Header::Via(v) => {
                let value = v.value();
                let head = value.split(";branch=").next().unwrap_or(value);
                next.headers.push(
                    rsip::headers::Via::new(format!(
                        "{head};branch={};rport",
                        message::new_branch()
                    ))
                    .into(),
                );
            }
            rsip::Header::CSeq(_) => next
                .headers
                .push(rsip::headers::CSeq::new(format!("{cseq} INVITE")).into()),
            rsip::Header::Authorization(_) | rsip::Header::ProxyAuthorization(_) => {}
            other => next.headers.push(other.clone()),
        }
    }
    next.headers.push(if status == 407 {
        rsip::headers::ProxyAuthorization::new(authorization).into()
    } else {
        rsip::headers::Authorization::new(authorization).into()
    });
    next
}

pub(crate) fn build_invite(
    target: &rsip::Uri,
    from_user: &str,
    local: SocketAddr,
    call_id: &str,
    sdp: &str,
) -> rsip::Request {
    let host = match local.ip() {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    let port = local.port();
    let mut headers = rsip::Headers::default();
    headers.push(
        rsip::headers::Via::new(format!(
            "SIP/2.0/UDP {host}:{port};branch={};rport",
            message::new_branch()
        ))
        .into(),
    );
    headers.push(rsip::headers::MaxForwards::new("70").into());
    headers.push(
        rsip::headers::From::new(format!(
            "<sip:{from_user}@{host}>;tag={}",
            message::new_tag()
        ))
        .into(),
    );
    headers.push(rsip::headers::To::new(format!("<{target}>")).into());
    headers.push(rsip::headers::CallId::new(call_id).into());
    headers.push(rsip::headers::CSeq::new("1 INVITE").into());
    headers.push(rsip::headers::Contact::new(format!("<sip:{from_user}@{host}:{port}>")).into());
    headers.push(
        rsip::headers::UserAgent::new(concat!("hotline-gateway-dial/", env!("CARGO_PKG_VERSION")))
            .into(),
    );
    headers.push(rsip::headers::ContentType::new("application/sdp").into());
    headers.push(rsip::headers::ContentLength::new(sdp.len().to_string()).into());
    rsip::Request {
        method: rsip::Method::Invite,
        uri: target.clone(),
        version: rsip::Version::V2,
        headers,
        body: sdp.as_bytes().to_vec(),
    }
}
