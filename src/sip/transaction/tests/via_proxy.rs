//! Requests that reach us through a stateful proxy (Kamailio's dispatcher): the proxy's Via
//! is on top, its Record-Route is in the INVITE, and the ACK of our 2xx and the CANCEL come
//! from the proxy, not from the caller. Every answer must go back to the proxy (§18.2.2,
//! top Via), and the ACK/CANCEL must still find their INVITE.

use super::*;

/// The proxy as Kamailio writes itself: sent-by without a port (5060), no rport.
const PROXY: &str = "198.51.100.5:5060";

/// A request as the proxy relays it: its Via on top (branch `proxy_branch`), the caller's
/// below (stamped by the proxy), its Record-Route, Max-Forwards decremented.
fn via_proxy(method: &str, proxy_branch: &str, cseq: u32, to_tag: Option<&str>) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let uri = if to_tag.is_empty() {
        "sip:8890@10.0.0.1:5060"
    } else {
        // In-dialog: the Request-URI is our Contact (loose routing kept it there).
        "sip:hotline@10.0.0.1:5060"
    };
    format!(
        "{method} {uri} SIP/2.0\r\n\
         Record-Route: <sip:198.51.100.5;lr;ftag=caller1>\r\n\
         Via: SIP/2.0/UDP 198.51.100.5;branch={proxy_branch}\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5062;received=192.0.2.10;branch=z9hG4bKua{cseq}{method};rport=5062\r\n\
         Max-Forwards: 69\r\n\
         From: \"Caller\" <sip:citizen@192.0.2.10>;tag=caller1\r\n\
         To: <sip:8890@198.51.100.5>{to_tag}\r\n\
         Call-ID: proxied-1@192.0.2.10\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn invite_via_a_proxy_is_answered_to_the_proxy_and_its_2xx_ack_from_the_proxy_stops_the_2xx() {
    let mut h = Scripted::new(TimerConfig::default());
    let proxy = addr(PROXY);
    h.deliver_from(&via_proxy("INVITE", "z9hG4bKprxinv", 1, None), proxy);
    assert_eq!(h.sent[0].status(), Some(100));
    assert_eq!(h.sent[0].destination, proxy, "answers follow the top Via");
    let key = h.request_key(rsip::Method::Invite);
    let req = request_of(&h, rsip::Method::Invite);
    h.respond(&key, tu_response(&req, 200, "OK"));
    assert!(h.sent.iter().all(|s| s.destination == proxy));
    let ok = h.sent.iter().find(|s| s.status() == Some(200)).unwrap();
    assert_eq!(
        ok.message
            .to_string()
            .lines()
            .filter(|l| l.starts_with("Via:"))
            .count(),
        2,
        "both Vias go back so the proxy can forward the 200 to the caller"
    );

    // The caller's ACK, relayed by the proxy with a branch of its own (a 2xx ACK is a new
    // transaction hop by hop).
    h.run_until(ms(300));
    h.deliver_from(
        &via_proxy("ACK", "z9hG4bKprxack", 1, Some("uas-tag")),
        proxy,
    );
    h.run_until(ms(60_000));
    assert_eq!(h.times_of(200), secs(&[0.0]), "no 2xx resent after the ACK");
    assert_eq!(h.request_key(rsip::Method::Ack).branch, "z9hG4bKprxack");
    assert!(
        !h.events
            .iter()
            .any(|(_, e)| matches!(e, TransactionEvent::AckTimeout { .. })),
        "the proxied ACK counts: {:?}",
        h.events
    );
}

#[test]
fn cancel_relayed_by_the_proxy_finds_the_invite_it_relayed() {
    let mut h = Scripted::new(TimerConfig::default());
    let proxy = addr(PROXY);
    h.deliver_from(&via_proxy("INVITE", "z9hG4bKprxcan", 1, None), proxy);
    let key = h.request_key(rsip::Method::Invite);
    let req = request_of(&h, rsip::Method::Invite);
    h.respond(&key, tu_response(&req, 180, "Ringing"));
    // §16.10: the proxy's CANCEL carries the same top Via branch as the INVITE it sent.
    h.deliver_from(&via_proxy("CANCEL", "z9hG4bKprxcan", 1, None), proxy);
    let codes: Vec<(Option<u16>, SocketAddr)> = h
        .sent
        .iter()
        .filter(|s| s.status().is_some_and(|c| c >= 200))
        .map(|s| (s.status(), s.destination))
        .collect();
    assert_eq!(codes, [(Some(487), proxy), (Some(200), proxy)]);
    assert!(h
        .events
        .iter()
        .any(|(_, e)| matches!(e, TransactionEvent::Cancelled { invite } if *invite == key)));
}

#[test]
fn bye_via_the_proxy_reaches_the_tu_and_is_answered_to_the_proxy() {
    let mut h = Scripted::new(TimerConfig::default());
    let proxy = addr(PROXY);
    h.deliver_from(
        &via_proxy("BYE", "z9hG4bKprxbye", 2, Some("uas-tag")),
        proxy,
    );
    let key = h.request_key(rsip::Method::Bye);
    let req = request_of(&h, rsip::Method::Bye);
    h.respond(&key, tu_response(&req, 200, "OK"));
    let ok: Vec<&Sent> = h.sent.iter().filter(|s| s.status() == Some(200)).collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].destination, proxy);
}
