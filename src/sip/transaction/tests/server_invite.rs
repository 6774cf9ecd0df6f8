//! INVITE server transaction: RFC 3261 §17.2.1 and RFC 6026 Accepted, on virtual time.

use super::*;
use crate::sip::transaction::TransactionError;

fn default_layer_with_invite(branch: &str) -> (Scripted, TransactionKey, rsip::Request) {
    let mut h = Scripted::new(TimerConfig::default());
    h.deliver(&invite(branch));
    let key = h.request_key(rsip::Method::Invite);
    let req = request_of(&h, rsip::Method::Invite);
    (h, key, req)
}

const ACK_TIMES_TO_32S: [f64; 11] = [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5];

#[test]
fn new_invite_gets_100_trying_at_once_and_reaches_the_tu_once() {
    let (h, key, _) = default_layer_with_invite("z9hG4bKinv1");
    assert_eq!(h.times_of(100), secs(&[0.0]));
    let trying = &h.sent[0];
    assert_eq!(trying.destination, addr(PEER));
    assert_eq!(
        trying.header("Call-ID").as_deref(),
        Some("call-1@192.0.2.10")
    );
    assert_eq!(trying.header("CSeq").as_deref(), Some("1 INVITE"));
    assert_eq!(trying.header("To").as_deref(), Some("<sip:8890@10.0.0.1>"));
    assert!(trying
        .header("Via")
        .is_some_and(|v| v.contains("branch=z9hG4bKinv1")));
    assert_eq!(trying.header("Content-Length").as_deref(), Some("0"));
    assert_eq!(key.branch, "z9hG4bKinv1");
    assert_eq!(key.sent_by, "192.0.2.10:5062");
    assert_eq!(key.method, "INVITE");
    assert_eq!(h.events.len(), 1);
    assert_eq!(h.layer.len(), 1);
}

#[test]
fn retransmitted_invite_gets_the_latest_provisional_and_no_new_event() {
    let (mut h, key, req) = default_layer_with_invite("z9hG4bKinv2");
    h.run_until(ms(300));
    h.deliver(&invite("z9hG4bKinv2"));
    assert_eq!(
        h.times_of(100),
        secs(&[0.0, 0.3]),
        "100 repeated before any 1xx from TU"
    );
    h.respond(&key, tu_response(&req, 180, "Ringing"));
    h.run_until(ms(1000));
    h.deliver(&invite("z9hG4bKinv2"));
    assert_eq!(h.times_of(180), secs(&[0.3, 1.0]));
    assert_eq!(h.times_of(100).len(), 2, "the 180 replaced the 100");
    assert_eq!(h.events.len(), 1, "retransmissions never reach the TU");
}

#[test]
fn busy_here_is_retransmitted_on_timer_g_until_the_ack_then_timer_i_absorbs_acks() {
    let (mut h, key, req) = default_layer_with_invite("z9hG4bKbusy");
    h.respond(&key, tu_response(&req, 486, "Busy Here"));
    h.run_until(ms(2000));
    // Completed: a retransmitted INVITE gets the final again, off the Timer G schedule.
    h.deliver(&invite("z9hG4bKbusy"));
    h.run_until(ms(5000));
    assert_eq!(h.times_of(486), secs(&[0.0, 0.5, 1.5, 2.0, 3.5]));
    // ACK of a non-2xx: same branch, To tag of the 486.
    h.deliver(&peer_request(
        "ACK",
        "z9hG4bKbusy",
        "call-1@192.0.2.10",
        1,
        Some("uas-tag"),
        "",
    ));
    h.run_until(ms(7000));
    // Confirmed: a retransmitted ACK and a retransmitted INVITE are absorbed.
    h.deliver(&peer_request(
        "ACK",
        "z9hG4bKbusy",
        "call-1@192.0.2.10",
        1,
        Some("uas-tag"),
        "",
    ));
    h.deliver(&invite("z9hG4bKbusy"));
    assert_eq!(h.layer.len(), 1, "Timer I (T4 = 5 s) still running at 7 s");
    h.run_until(ms(9999));
    assert_eq!(h.layer.len(), 1);
    h.run_until(ms(10_000));
    assert_eq!(h.layer.len(), 0, "Timer I fired at ACK + T4");
    h.run_until(ms(60_000));
    assert_eq!(
        h.times_of(486),
        secs(&[0.0, 0.5, 1.5, 2.0, 3.5]),
        "no retransmission after the ACK"
    );
    assert_eq!(h.events.len(), 1, "ACKs of a non-2xx never reach the TU");
}

#[test]
fn busy_here_without_ack_ends_at_timer_h() {
    let (mut h, key, req) = default_layer_with_invite("z9hG4bKnoack");
    h.respond(&key, tu_response(&req, 486, "Busy Here"));
    h.run_until(ms(31_999));
    assert_eq!(h.layer.len(), 1);
    h.run_until(ms(32_000));
    assert_eq!(h.layer.len(), 0, "Timer H at 64*T1");
    h.run_until(ms(100_000));
    assert_eq!(h.times_of(486), secs(&ACK_TIMES_TO_32S));
    assert_eq!(h.events.len(), 1, "Timer H has no event");
    assert_eq!(
        h.layer
            .respond(h.now(), &key, tu_response(&req, 486, "Busy Here")),
        Err(TransactionError::NoSuchTransaction)
    );
}

#[test]
fn ok_is_retransmitted_until_its_ack_which_reaches_the_tu_once() {
    let (mut h, key, req) = default_layer_with_invite("z9hG4bKok");
    h.respond(&key, tu_response(&req, 200, "OK"));
    h.run_until(ms(2000));
    // The ACK of a 2xx is its own transaction: new branch, To tag of the 2xx.
    let ack = peer_request(
        "ACK",
        "z9hG4bKack1",
        "call-1@192.0.2.10",
        1,
        Some("uas-tag"),
        "",
    );
    h.deliver(&ack);
    let acks = h
        .events
        .iter()
        .filter(|(_, e)| {
            matches!(e, TransactionEvent::Request { request, .. } if request.method == rsip::Method::Ack)
        })
        .count();
    assert_eq!(acks, 1);
    // The peer missed nothing, but a duplicate ACK (e.g. from a retransmitted 2xx still in
    // flight) must not reach the TU again.
    h.run_until(ms(3000));
    h.deliver(&ack);
    h.run_until(ms(100_000));
    assert_eq!(h.times_of(200), secs(&[0.0, 0.5, 1.5]));
    assert_eq!(h.events.len(), 2, "INVITE and one ACK: {:?}", h.events);
    assert!(
        !h.events
            .iter()
            .any(|(_, e)| matches!(e, TransactionEvent::AckTimeout { .. })),
        "acked 2xx gives no AckTimeout"
    );
    assert_eq!(h.layer.len(), 0);
}

#[test]
fn ok_without_ack_is_retransmitted_t1_doubling_to_t2_then_ack_timeout_at_32s() {
    let (mut h, key, req) = default_layer_with_invite("z9hG4bKlost");
    h.respond(&key, tu_response(&req, 200, "OK"));
    h.run_until(ms(31_999));
    assert!(h.events.len() == 1 && h.layer.len() == 1);
    h.run_until(ms(32_000));
    assert_eq!(h.times_of(200), secs(&ACK_TIMES_TO_32S));
    match h.events.last() {
        Some((at, TransactionEvent::AckTimeout { key: k })) => {
            assert_eq!(*at, ms(32_000));
            assert_eq!(*k, key);
        }
        other => panic!("expected AckTimeout, got {other:?}"),
    }
    assert_eq!(h.layer.len(), 0);
    h.run_until(ms(100_000));
    assert_eq!(h.times_of(200).len(), ACK_TIMES_TO_32S.len());
}

#[test]
fn retransmitted_invite_in_accepted_gets_the_2xx() {
    let (mut h, key, req) = default_layer_with_invite("z9hG4bKacc");
    h.respond(&key, tu_response(&req, 200, "OK"));
    h.run_until(ms(200));
    h.deliver(&invite("z9hG4bKacc"));
    assert_eq!(h.times_of(200), secs(&[0.0, 0.2]));
    assert_eq!(h.events.len(), 1);
    assert_eq!(
        h.layer
            .respond(h.now(), &key, tu_response(&req, 486, "Busy Here")),
        Err(TransactionError::AlreadyFinal)
    );
}

#[test]
fn configured_t1_and_t2_set_the_retransmission_schedule() {
    let config = TimerConfig {
        t1: ms(100),
        t2: ms(400),
        t4: ms(1000),
    };
    let mut h = Scripted::new(config);
    h.deliver(&invite("z9hG4bKfast"));
    let key = h.request_key(rsip::Method::Invite);
    let req = request_of(&h, rsip::Method::Invite);
    h.respond(&key, tu_response(&req, 603, "Decline"));
    h.run_until(ms(6399));
    assert_eq!(h.layer.len(), 1);
    h.run_until(ms(6400));
    assert_eq!(h.layer.len(), 0, "Timer H = 64 * 100 ms");
    let expected: Vec<Duration> = [0u64, 100, 300, 700]
        .into_iter()
        .chain((1..=14).map(|k| 700 + 400 * k))
        .map(ms)
        .collect();
    assert_eq!(h.times_of(603), expected);
}

#[test]
fn responses_go_to_received_and_rport_of_the_top_via() {
    let mut h = Scripted::new(TimerConfig::default());
    // Behind NAT: sent-by is private; the driver stamped what it saw.
    let text = invite("z9hG4bKnat").replace(
        "192.0.2.10:5062;branch=z9hG4bKnat;rport=5062",
        "10.9.9.9:5062;branch=z9hG4bKnat;received=198.51.100.7;rport=40000",
    );
    h.deliver_from(&text, addr("198.51.100.7:40000"));
    assert_eq!(h.sent[0].destination, addr("198.51.100.7:40000"));
}

#[test]
fn responses_go_to_sent_by_when_via_has_no_received_or_rport() {
    let mut h = Scripted::new(TimerConfig::default());
    let text = invite("z9hG4bKplain").replace(
        "192.0.2.10:5062;branch=z9hG4bKplain;rport=5062",
        "192.0.2.20;branch=z9hG4bKplain",
    );
    h.deliver_from(&text, addr("192.0.2.20:33333"));
    assert_eq!(
        h.sent[0].destination,
        addr("192.0.2.20:5060"),
        "default port 5060"
    );
}

#[test]
fn invite_with_hostname_via_and_no_received_is_answered_at_its_source() {
    let mut h = Scripted::new(TimerConfig::default());
    let text = invite("z9hG4bKname").replace(
        "192.0.2.10:5062;branch=z9hG4bKname;rport=5062",
        "phone.example.org:5062;branch=z9hG4bKname",
    );
    h.deliver_from(&text, addr("192.0.2.30:5062"));
    assert_eq!(h.sent[0].destination, addr("192.0.2.30:5062"));
}

/// An INVITE exactly as SIPp 3.6.1's built-in `uac` scenario sent it (captured on loopback).
const SIPP_INVITE: &str = concat!(
    "INVITE sip:service@127.0.0.1:5099 SIP/2.0\r\n",
    "Via: SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bK-20665-1-0\r\n",
    "From: sipp <sip:sipp@127.0.0.1:5098>;tag=20665SIPpTag001\r\n",
    "To: service <sip:service@127.0.0.1:5099>\r\n",
    "Call-ID: 1-20665@127.0.0.1\r\n",
    "CSeq: 1 INVITE\r\n",
    "Contact: sip:sipp@127.0.0.1:5098\r\n",
    "Max-Forwards: 70\r\n",
    "Subject: Performance Test\r\n",
    "Content-Type: application/sdp\r\n",
    "Content-Length:   129\r\n",
    "\r\n",
    "v=0\r\n",
    "o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n",
    "s=-\r\n",
    "c=IN IP4 127.0.0.1\r\n",
    "t=0 0\r\n",
    "m=audio 6000 RTP/AVP 0\r\n",
    "a=rtpmap:0 PCMU/8000\r\n",
);

#[test]
fn sipp_invite_is_answered_at_its_via_and_its_2xx_ack_passed_up() {
    let mut h = Scripted::new(TimerConfig::default());
    let sipp = addr("127.0.0.1:5098");
    h.deliver_from(SIPP_INVITE, sipp);
    assert_eq!(h.sent[0].status(), Some(100));
    assert_eq!(h.sent[0].destination, sipp, "no rport/received: sent-by");
    let key = h.request_key(rsip::Method::Invite);
    assert_eq!(key.branch, "z9hG4bK-20665-1-0");
    let req = request_of(&h, rsip::Method::Invite);
    assert_eq!(req.body.len(), 129);
    h.respond(&key, tu_response(&req, 200, "OK"));
    // SIPp's ACK for the 2xx: its own branch, the 2xx's To tag.
    let ack = "ACK sip:service@127.0.0.1:5099 SIP/2.0\r\n\
               Via: SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bK-20665-1-5\r\n\
               From: sipp <sip:sipp@127.0.0.1:5098>;tag=20665SIPpTag001\r\n\
               To: service <sip:service@127.0.0.1:5099>;tag=uas-tag\r\n\
               Call-ID: 1-20665@127.0.0.1\r\n\
               CSeq: 1 ACK\r\n\
               Contact: sip:sipp@127.0.0.1:5098\r\n\
               Max-Forwards: 70\r\n\
               Subject: Performance Test\r\n\
               Content-Length: 0\r\n\r\n";
    h.run_until(ms(40));
    h.deliver_from(ack, sipp);
    h.run_until(ms(60_000));
    assert_eq!(
        h.times_of(200),
        secs(&[0.0]),
        "ACK arrived before the first resend"
    );
    assert_eq!(h.request_key(rsip::Method::Ack).branch, "z9hG4bK-20665-1-5");
    assert_eq!(h.layer.len(), 0);
}
