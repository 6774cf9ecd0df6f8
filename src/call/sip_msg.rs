//! What the transaction user reads from requests and adds to its responses: caller identity,
//! INFO digits, the Via transport, dialog headers on 18x/2xx, and where in-dialog requests go.
//!
//! Kept apart from [`super::manager`] so the manager reads as decisions (answer what, when)
//! and these small, separately tested message facts stay in one place.

use super::manager::SUPPORTED;
use crate::config::Config;
use crate::sip::message;
use rsip::headers::UntypedHeader;
use rsip::prelude::{HeadersExt, ToTypedHeader};
use std::net::IpAddr;

/// Contact (our own reachable address, so in-dialog requests and RTP come straight to this
/// instance even behind a balancer), Supported on 2xx when we support any extension, and
/// the SDP body.
///
/// Record-Route is not added here: [`message::response`] already copies it into 101–299
/// answers to INVITE (§12.1.1). Copying it twice made callers (and proxies) see the proxy
/// twice in their route set.
pub(super) fn with_dialog_headers(
    mut resp: rsip::Response,
    contact: &rsip::Uri,
    sdp_body: Option<&str>,
) -> rsip::Response {
    push(
        &mut resp,
        rsip::headers::Contact::new(format!("<{}>", message::uri_to_string(contact))).into(),
    );
    if resp.status_code.code() == 200 && !SUPPORTED.is_empty() {
        push(&mut resp, rsip::headers::Supported::new(SUPPORTED).into());
    }
    if let Some(body) = sdp_body {
        push(
            &mut resp,
            rsip::headers::ContentType::new("application/sdp").into(),
        );
        set_body(&mut resp, body.as_bytes().to_vec());
    }
    resp
}

/// The address this instance puts into Contact, Via and SDP: `sip.advertised_addr` when
/// set, else the RTP address, else the SIP listen address (when RTP binds to a wildcard).
/// Behind a balancer this must be the instance's own address, never the proxy's, so that
/// RTP flows between caller and instance directly.
pub(super) fn advertised_ip(cfg: &Config) -> IpAddr {
    if let Some(ip) = cfg.sip.advertised_addr {
        return ip;
    }
    if !cfg.media.rtp_ip.is_unspecified() {
        return cfg.media.rtp_ip;
    }
    cfg.sip.listen.ip()
}

pub(super) fn push(resp: &mut rsip::Response, h: rsip::Header) {
    resp.headers.push(h);
}

/// Replace the body and keep Content-Length true.
pub(super) fn set_body(resp: &mut rsip::Response, body: Vec<u8>) {
    resp.headers
        .retain(|h| !matches!(h, rsip::Header::ContentLength(_)));
    resp.headers
        .push(rsip::headers::ContentLength::new(body.len().to_string()).into());
    resp.body = body;
}

pub(super) fn to_tag(req: &rsip::Request) -> Option<String> {
    req.to_header()
        .ok()?
        .tag()
        .ok()
        .flatten()
        .map(|t| t.value().to_string())
}

/// Caller number and display name from From (the trunk's P-Asserted-Identity would win
/// once trunks are configured).
pub(super) fn caller_identity(req: &rsip::Request) -> (String, Option<String>) {
    match req.from_header().ok().and_then(|f| f.typed().ok()) {
        Some(from) => (
            from.uri.user().unwrap_or("anonymous").to_string(),
            from.display_name
                .map(|d| unquote(&d))
                .filter(|d| !d.is_empty()),
        ),
        None => ("anonymous".into(), None),
    }
}

/// `"Zhang San"` → `Zhang San`, with `\"` and `\\` unescaped (RFC 3261 quoted-string).
pub(super) fn unquote(s: &str) -> String {
    let s = s.trim();
    let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return s.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A digit from SIP INFO: `application/dtmf-relay` (`Signal=5`) or `application/dtmf` (`5`).
pub(super) fn info_digit(req: &rsip::Request) -> Option<char> {
    let body = std::str::from_utf8(&req.body).ok()?;
    let value = body
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then_some(v.trim())
        })
        .unwrap_or(body.trim());
    let c = value.chars().next()?;
    (value.chars().count() == 1 && matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::dialog::{uri_socket_addr, Dialog};

    fn info(body: &str) -> rsip::Request {
        rsip::Request {
            method: rsip::Method::Info,
            uri: rsip::Uri::try_from("sip:8890@127.0.0.1").unwrap(),
            version: rsip::Version::V2,
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn sip_info_digits_in_both_body_formats() {
        assert_eq!(info_digit(&info("Signal=5\r\nDuration=160\r\n")), Some('5'));
        assert_eq!(info_digit(&info("Signal= #\r\n")), Some('#'));
        assert_eq!(info_digit(&info("7")), Some('7'));
        assert_eq!(info_digit(&info("Signal=55")), None);
        assert_eq!(info_digit(&info("hello")), None);
    }

    #[test]
    fn display_names_are_unquoted() {
        assert_eq!(unquote("\"sipp caller\""), "sipp caller");
        assert_eq!(unquote("\"a \\\"b\\\" c\""), "a \"b\" c");
        assert_eq!(unquote("Bob"), "Bob");
    }

    /// An INVITE as Kamailio's dispatcher relays it: its Record-Route (with `lr` and the
    /// From-tag it appends) and its Via on top.
    const PROXIED_INVITE: &str = "INVITE sip:8890@127.0.0.1:5071 SIP/2.0\r\n\
Record-Route: <sip:127.0.0.1:5070;lr;ftag=caller1>\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKprx\r\n\
Via: SIP/2.0/UDP 127.0.0.1:6000;received=127.0.0.1;rport=6000;branch=z9hG4bKua\r\n\
Max-Forwards: 69\r\n\
From: \"sipp caller\" <sip:13700000000@127.0.0.1:6000>;tag=caller1\r\n\
To: <sip:8890@127.0.0.1:5070>\r\n\
Call-ID: proxied-1@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:sipp@127.0.0.1:6000>\r\n\
Content-Length: 0\r\n\r\n";

    fn proxied_invite() -> rsip::Request {
        match message::parse(PROXIED_INVITE.as_bytes()) {
            Ok(rsip::SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dialog_responses_carry_the_record_route_once_and_our_own_contact() {
        let invite = proxied_invite();
        let contact = rsip::Uri::try_from("sip:hotline@10.0.0.7:5071").unwrap();
        for code in [180, 183, 200] {
            let resp = message::response(&invite, code, "", Some("ourtag"));
            let resp = with_dialog_headers(resp, &contact, (code != 180).then_some("v=0\r\n"));
            assert_eq!(
                message::header_values(&resp, "Record-Route"),
                vec!["<sip:127.0.0.1:5070;lr;ftag=caller1>"],
                "{code}: exactly the proxy's Record-Route, once"
            );
            assert_eq!(
                message::header_values(&resp, "Contact"),
                vec!["<sip:hotline@10.0.0.7:5071>"],
                "{code}: the instance, not the proxy"
            );
        }
        // A non-dialog answer (an OPTIONS, a rejection) has no Record-Route.
        let busy = message::response(&invite, 503, "", Some("ourtag"));
        assert!(message::header_values(&busy, "Record-Route").is_empty());
    }

    #[test]
    fn our_bye_goes_to_the_proxy_with_its_route_and_targets_the_callers_contact() {
        let invite = proxied_invite();
        let contact = rsip::Uri::try_from("sip:hotline@127.0.0.1:5071").unwrap();
        let mut dialog = Dialog::uas(&invite, "ourtag", contact).unwrap();
        let (bye, next_hop) =
            dialog.new_request(rsip::Method::Bye, "127.0.0.1", 5071, rsip::Transport::Udp);
        assert_eq!(
            uri_socket_addr(&next_hop),
            Some("127.0.0.1:5070".parse().unwrap()),
            "loose routing: sent to the first Route, the proxy"
        );
        assert_eq!(
            message::header_values(&bye, "Route"),
            vec!["<sip:127.0.0.1:5070;lr;ftag=caller1>"]
        );
        assert_eq!(message::uri_to_string(&bye.uri), "sip:sipp@127.0.0.1:6000");
        let wire = String::from_utf8(message::to_bytes(&bye.into())).unwrap();
        assert!(
            wire.starts_with("BYE sip:sipp@127.0.0.1:6000 SIP/2.0\r\n"),
            "{wire}"
        );
    }

    #[test]
    fn advertised_address_is_the_instances_own() {
        let mut cfg = Config::default();
        cfg.sip.listen = "10.0.0.7:5060".parse().unwrap();
        cfg.media.rtp_ip = "10.0.0.8".parse().unwrap();
        assert_eq!(advertised_ip(&cfg), "10.0.0.8".parse::<IpAddr>().unwrap());
        cfg.media.rtp_ip = "0.0.0.0".parse().unwrap();
        assert_eq!(
            advertised_ip(&cfg),
            "10.0.0.7".parse::<IpAddr>().unwrap(),
            "RTP on a wildcard: the SIP address, never 0.0.0.0"
        );
        cfg.sip.advertised_addr = Some("192.0.2.10".parse().unwrap());
        assert_eq!(advertised_ip(&cfg), "192.0.2.10".parse::<IpAddr>().unwrap());
    }
}
