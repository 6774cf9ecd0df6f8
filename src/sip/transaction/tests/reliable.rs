//! Reliable transport (TCP, RFC 3261 §17): no retransmissions in either direction and no
//! absorbing state once a transaction is done, and responses go back to the connection the
//! request came on whatever its Via says.

use super::*;
use crate::sip::transaction::Transport;

fn over_tcp(text: &str) -> String {
    text.replace("SIP/2.0/UDP", "SIP/2.0/TCP")
}

/// A harness whose peer's requests arrive on a TCP connection.
fn tcp_peer() -> Scripted {
    let mut h = Scripted::new(TimerConfig::default());
    h.transport = Transport::Tcp;
    h
}

#[test]
fn invite_server_over_tcp_sends_each_response_once_and_forgets_at_once() {
    let mut h = tcp_peer();
    h.deliver(&over_tcp(&invite("z9hG4bKtcp1")));
    let key = h.request_key(rsip::Method::Invite);
    let req = request_of(&h, rsip::Method::Invite);
    h.respond(&key, tu_response(&req, 486, "Busy Here"));
    h.run_until(ms(20_000));
    assert_eq!(h.times_of(486), secs(&[0.0]), "no Timer G over TCP");
    assert!(h.sent.iter().all(|s| s.destination == addr(PEER)));
    // The ACK confirms and Timer I is zero: the transaction is gone at once.
    h.deliver(&over_tcp(&peer_request(
        "ACK",
        "z9hG4bKtcp1",
        "call-1@192.0.2.10",
        1,
        Some("uas-tag"),
        "",
    )));
    h.run_until(ms(20_000));
    assert!(h.layer.is_empty(), "Timer I is 0 on TCP");
}

#[test]
fn a_2xx_over_tcp_is_not_resent_and_the_ack_timeout_still_fires() {
    let mut h = tcp_peer();
    h.deliver(&over_tcp(&invite("z9hG4bKtcp2")));
    let key = h.request_key(rsip::Method::Invite);
    let req = request_of(&h, rsip::Method::Invite);
    h.respond(&key, tu_response(&req, 200, "OK"));
    h.run_until(ms(40_000));
    assert_eq!(h.times_of(200), secs(&[0.0]));
    assert!(h
        .events
        .iter()
        .any(|(at, e)| matches!(e, TransactionEvent::AckTimeout { .. }) && *at == ms(32_000)));
}

#[test]
fn responses_over_tcp_go_to_the_connection_not_the_via() {
    let mut h = tcp_peer();
    // The Via names port 5062; the connection's far end is another port.
    let conn = addr("192.0.2.10:40001");
    h.deliver_from(
        &over_tcp(&peer_request("OPTIONS", "z9hG4bKtcp3", "o@x", 1, None, "")),
        conn,
    );
    let key = h.request_key(rsip::Method::Options);
    let req = request_of(&h, rsip::Method::Options);
    h.respond(&key, tu_response(&req, 200, "OK"));
    assert_eq!(h.sent.len(), 1);
    assert_eq!(h.sent[0].destination, conn);
    h.run_until(ms(1));
    assert!(h.layer.is_empty(), "Timer J is 0 on TCP");
}

#[test]
fn client_requests_over_tcp_are_sent_once_and_still_time_out() {
    let mut h = tcp_peer();
    let bye = over_tcp(&peer_request("BYE", "z9hG4bKtcp4", "b@x", 2, Some("t"), ""));
    h.send_request(&bye);
    let invite = over_tcp(&invite("z9hG4bKtcp5"));
    h.send_request(&invite);
    h.run_until(ms(40_000));
    assert_eq!(
        h.times_of_method(rsip::Method::Bye),
        secs(&[0.0]),
        "no Timer E"
    );
    assert_eq!(
        h.times_of_method(rsip::Method::Invite),
        secs(&[0.0]),
        "no Timer A"
    );
    let timeouts = h
        .events
        .iter()
        .filter(|(at, e)| matches!(e, TransactionEvent::Timeout { .. }) && *at == ms(32_000))
        .count();
    assert_eq!(timeouts, 2, "Timers B and F still bound the wait");
    let t = Transport::Tcp;
    assert!(t.is_reliable() && !Transport::Udp.is_reliable());
}

#[test]
fn a_final_response_over_tcp_ends_the_client_transaction_at_once() {
    let mut h = tcp_peer();
    let bye = over_tcp(&peer_request("BYE", "z9hG4bKtcp6", "b@x", 2, Some("t"), ""));
    h.send_request(&bye);
    let resp = bye
        .replacen("BYE sip:8890@10.0.0.1 SIP/2.0", "SIP/2.0 200 OK", 1)
        .replace("Max-Forwards: 70\r\n", "");
    h.deliver(&resp);
    h.run_until(ms(1));
    assert!(h.layer.is_empty(), "Timer K is 0 on TCP");
}

/// Issue 11: a UDP datagram whose Via says `SIP/2.0/TCP` made the layer treat the request
/// as TCP (no retransmissions; the endpoint then opened a connection to the sender). The
/// transport is the socket's; TLS, WS and SCTP Vias are no different.
#[test]
fn a_udp_request_whose_via_claims_another_transport_is_answered_over_udp() {
    for claimed in ["TCP", "TLS", "WS", "WSS", "SCTP"] {
        let mut h = Scripted::new(TimerConfig::default());
        let text = invite(&format!("z9hG4bKspoof{claimed}"))
            .replace("SIP/2.0/UDP", &format!("SIP/2.0/{claimed}"));
        h.deliver(&text);
        let key = h.request_key(rsip::Method::Invite);
        let req = request_of(&h, rsip::Method::Invite);
        match h.events.last() {
            Some((_, TransactionEvent::Request { transport, .. })) => {
                assert_eq!(*transport, Transport::Udp, "{claimed}: the TU hears UDP")
            }
            other => panic!("{claimed}: {other:?}"),
        }
        h.respond(&key, tu_response(&req, 486, "Busy Here"));
        h.run_until(ms(2_000));
        assert!(
            h.sent.iter().all(|s| s.transport == Transport::Udp),
            "{claimed}: nothing goes over TCP"
        );
        assert!(
            h.times_of(486).len() > 1,
            "{claimed}: Timer G retransmits over UDP"
        );
    }
}

/// Issue 11: `received=` written by the sender (no rport) aimed the answer, and its Timer G
/// resends, at another host. Answers go to the datagram's source address.
#[test]
fn received_written_by_the_sender_does_not_aim_our_answers() {
    let mut h = Scripted::new(TimerConfig::default());
    let text = invite("z9hG4bKrefl").replacen(
        ";branch=z9hG4bKrefl",
        ";branch=z9hG4bKrefl;received=198.51.100.77",
        1,
    );
    let source = addr("192.0.2.10:5062");
    h.deliver_from(&text, source);
    let key = h.request_key(rsip::Method::Invite);
    let req = request_of(&h, rsip::Method::Invite);
    h.respond(&key, tu_response(&req, 401, "Unauthorized"));
    h.run_until(ms(8_000));
    assert!(h.sent.len() > 2, "100, 401 and its resends");
    for s in &h.sent {
        assert_eq!(s.destination.ip(), source.ip(), "{:?}", s.status());
    }
}
