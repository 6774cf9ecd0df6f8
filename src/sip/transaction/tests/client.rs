//! Client transactions (§17.1.1 INVITE, §17.1.2 non-INVITE) against a scripted peer.

use super::*;
use crate::sip::transaction::TransactionError;

/// A request our TU sends from [`LOCAL`].
fn our_request(method: &str, branch: &str, cseq: u32) -> String {
    format!(
        "{method} sip:citizen@192.0.2.10:5062 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:8890@10.0.0.1>;tag=uas-tag\r\n\
         To: \"Caller\" <sip:citizen@192.0.2.10>;tag=caller1\r\n\
         Call-ID: call-1@192.0.2.10\r\n\
         CSeq: {cseq} {method}\r\n\
         Route: <sip:proxy.example.org;lr>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// The peer's response to [`our_request`].
fn peer_response(code: u16, reason: &str, method: &str, branch: &str, cseq: u32) -> String {
    format!(
        "SIP/2.0 {code} {reason}\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch={branch};received=10.0.0.1\r\n\
         From: <sip:8890@10.0.0.1>;tag=uas-tag\r\n\
         To: \"Caller\" <sip:citizen@192.0.2.10>;tag=callee9\r\n\
         Call-ID: call-1@192.0.2.10\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn responses_up(h: &Scripted) -> Vec<(Duration, u16)> {
    h.events
        .iter()
        .filter_map(|(at, e)| match e {
            TransactionEvent::Response { response, .. } => Some((*at, response.status_code.code())),
            _ => None,
        })
        .collect()
}

fn timeouts(h: &Scripted) -> Vec<(Duration, TransactionKey)> {
    h.events
        .iter()
        .filter_map(|(at, e)| match e {
            TransactionEvent::Timeout { key } => Some((*at, key.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn bye_under_total_loss_follows_timer_e_and_times_out_at_timer_f() {
    let mut h = Scripted::new(TimerConfig::default());
    let key = h.send_request(&our_request("BYE", "z9hG4bKbye1", 2));
    h.run_until(ms(31_999));
    assert!(timeouts(&h).is_empty());
    h.run_until(ms(60_000));
    assert_eq!(
        h.times_of_method(rsip::Method::Bye),
        secs(&[0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
    );
    assert!(h.sent.iter().all(|s| s.destination == addr(PEER)));
    assert_eq!(timeouts(&h), [(ms(32_000), key)]);
    assert_eq!(h.layer.len(), 0);
}

#[test]
fn bye_in_proceeding_retransmits_every_t2_and_passes_each_response_up_once() {
    let mut h = Scripted::new(TimerConfig::default());
    h.send_request(&our_request("BYE", "z9hG4bKbye2", 2));
    h.run_until(ms(200));
    let trying = peer_response(100, "Trying", "BYE", "z9hG4bKbye2", 2);
    h.deliver(&trying);
    h.run_until(ms(600));
    h.deliver(&trying);
    h.run_until(ms(10_000));
    // E fired at 0.5 while Proceeding, so it is reset to T2 from then on.
    assert_eq!(
        h.times_of_method(rsip::Method::Bye),
        secs(&[0.0, 0.5, 4.5, 8.5])
    );
    let ok = peer_response(200, "OK", "BYE", "z9hG4bKbye2", 2);
    h.deliver(&ok);
    h.run_until(ms(11_000));
    h.deliver(&ok);
    assert_eq!(responses_up(&h), [(ms(200), 100), (ms(10_000), 200)]);
    h.run_until(ms(14_999));
    assert_eq!(h.layer.len(), 1, "Timer K still absorbing");
    h.run_until(ms(15_000));
    assert_eq!(h.layer.len(), 0, "Timer K = T4 after the final");
    assert_eq!(h.times_of_method(rsip::Method::Bye).len(), 4);
    assert!(timeouts(&h).is_empty());
}

#[test]
fn invite_under_total_loss_follows_timer_a_and_times_out_at_timer_b() {
    let mut h = Scripted::new(TimerConfig::default());
    let key = h.send_request(&our_request("INVITE", "z9hG4bKinvA", 1));
    h.run_until(ms(60_000));
    assert_eq!(
        h.times_of_method(rsip::Method::Invite),
        secs(&[0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]),
        "Timer A doubles without the T2 cap"
    );
    assert_eq!(timeouts(&h), [(ms(32_000), key)]);
    assert_eq!(h.layer.len(), 0);
}

#[test]
fn invite_provisional_stops_timer_a() {
    let mut h = Scripted::new(TimerConfig::default());
    h.send_request(&our_request("INVITE", "z9hG4bKinvP", 1));
    h.run_until(ms(700));
    h.deliver(&peer_response(180, "Ringing", "INVITE", "z9hG4bKinvP", 1));
    h.run_until(ms(60_000));
    assert_eq!(h.times_of_method(rsip::Method::Invite), secs(&[0.0, 0.5]));
    assert!(timeouts(&h).is_empty(), "Timer B only runs while Calling");
    assert_eq!(responses_up(&h), [(ms(700), 180)]);
}

#[test]
fn invite_non_2xx_is_acked_by_the_transaction_and_retransmissions_absorbed() {
    let mut h = Scripted::new(TimerConfig::default());
    h.send_request(&our_request("INVITE", "z9hG4bKinv4", 1));
    h.run_until(ms(300));
    let busy = peer_response(486, "Busy Here", "INVITE", "z9hG4bKinv4", 1);
    h.deliver(&busy);
    h.run_until(ms(2000));
    h.deliver(&busy);
    assert_eq!(h.times_of_method(rsip::Method::Ack), secs(&[0.3, 2.0]));
    assert_eq!(responses_up(&h), [(ms(300), 486)]);

    let ack = h
        .sent
        .iter()
        .find(|s| s.method() == Some(&rsip::Method::Ack))
        .expect("ack");
    let rsip::SipMessage::Request(ack_req) = &ack.message else {
        panic!("ACK is a request");
    };
    assert_eq!(ack_req.uri.to_string(), "sip:citizen@192.0.2.10:5062");
    assert_eq!(ack.destination, addr(PEER));
    assert_eq!(
        ack.header("Via").as_deref(),
        Some("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKinv4")
    );
    assert_eq!(ack.header("CSeq").as_deref(), Some("1 ACK"));
    assert!(ack
        .header("To")
        .is_some_and(|t| t.ends_with(";tag=callee9")));
    assert_eq!(
        ack.header("Route").as_deref(),
        Some("<sip:proxy.example.org;lr>")
    );
    // Timer D: 32 s after the first final.
    h.run_until(ms(32_299));
    assert_eq!(h.layer.len(), 1);
    h.run_until(ms(32_300));
    assert_eq!(h.layer.len(), 0);
}

#[test]
fn invite_every_2xx_goes_up_and_the_layer_never_acks_it() {
    let mut h = Scripted::new(TimerConfig::default());
    h.send_request(&our_request("INVITE", "z9hG4bKinv5", 1));
    let ok = peer_response(200, "OK", "INVITE", "z9hG4bKinv5", 1);
    h.run_until(ms(100));
    h.deliver(&ok);
    h.run_until(ms(600));
    h.deliver(&ok);
    assert_eq!(responses_up(&h), [(ms(100), 200), (ms(600), 200)]);
    assert!(h.times_of_method(rsip::Method::Ack).is_empty());
    h.run_until(ms(32_099));
    assert_eq!(h.layer.len(), 1, "Accepted until Timer M");
    h.run_until(ms(32_100));
    assert_eq!(h.layer.len(), 0);
    // After Timer M a 2xx still reaches the TU so it can ACK it (stray 2xx rule).
    h.deliver(&ok);
    assert_eq!(responses_up(&h).len(), 3);
    assert_eq!(h.times_of_method(rsip::Method::Invite), secs(&[0.0]));
}

#[test]
fn stray_non_2xx_responses_are_dropped() {
    let mut h = Scripted::new(TimerConfig::default());
    h.deliver(&peer_response(486, "Busy Here", "INVITE", "z9hG4bKnone", 1));
    h.deliver(&peer_response(200, "OK", "BYE", "z9hG4bKnone", 2));
    assert!(h.events.is_empty() && h.sent.is_empty());
}

#[test]
fn ack_is_sent_statelessly() {
    let mut h = Scripted::new(TimerConfig::default());
    let key = h.send_request(&our_request("ACK", "z9hG4bKack", 1));
    assert_eq!(key.method, "ACK");
    assert_eq!(h.times_of_method(rsip::Method::Ack), secs(&[0.0]));
    assert_eq!(h.layer.len(), 0);
    assert_eq!(h.layer.poll_timeout(), None);
}

#[test]
fn requests_without_branch_or_call_id_are_refused() {
    let mut h = Scripted::new(TimerConfig::default());
    let no_branch = our_request("BYE", "z9hG4bKx", 2).replace(";branch=z9hG4bKx", "");
    assert_eq!(
        h.layer
            .send_request(h.now(), request(&no_branch), addr(PEER)),
        Err(TransactionError::NoVia)
    );
    let no_call_id =
        our_request("BYE", "z9hG4bKx", 2).replace("Call-ID: call-1@192.0.2.10\r\n", "");
    assert_eq!(
        h.layer
            .send_request(h.now(), request(&no_call_id), addr(PEER)),
        Err(TransactionError::MissingHeader("Call-ID"))
    );
    assert!(h.layer.poll_transmit().is_none());
    assert_eq!(h.layer.len(), 0);
}

#[test]
fn configured_t1_and_t2_set_the_timer_e_schedule() {
    let config = TimerConfig {
        t1: ms(200),
        t2: ms(1000),
        t4: ms(2000),
    };
    let mut h = Scripted::new(config);
    let key = h.send_request(&our_request("BYE", "z9hG4bKfast", 2));
    h.run_until(ms(20_000));
    let expected: Vec<Duration> = [0u64, 200, 600, 1400]
        .into_iter()
        .chain((1..=11).map(|k| 1400 + 1000 * k))
        .map(ms)
        .collect();
    assert_eq!(h.times_of_method(rsip::Method::Bye), expected);
    assert_eq!(timeouts(&h), [(ms(12_800), key)], "Timer F = 64 * 200 ms");
}
