//! CANCEL (§9.2), merged requests (§8.2.2.2), the non-INVITE server transaction (§17.2.2)
//! and robustness against odd input.

use super::*;
use crate::sip::transaction::TransactionError;

fn cancel(branch: &str) -> String {
    peer_request("CANCEL", branch, "call-1@192.0.2.10", 1, None, "")
}

#[test]
fn cancel_of_a_ringing_invite_gets_200_and_the_invite_487() {
    let mut h = Scripted::new(TimerConfig::default());
    h.deliver(&invite("z9hG4bKcan"));
    let key = h.request_key(rsip::Method::Invite);
    let req = request_of(&h, rsip::Method::Invite);
    h.respond(&key, tu_response(&req, 180, "Ringing"));
    h.run_until(ms(2000));
    h.deliver(&cancel("z9hG4bKcan"));

    let at_cancel: Vec<&Sent> = h.sent.iter().filter(|s| s.at == ms(2000)).collect();
    let codes: Vec<(Option<u16>, Option<String>)> = at_cancel
        .iter()
        .map(|s| (s.status(), s.header("CSeq")))
        .collect();
    assert_eq!(
        codes,
        [
            (Some(487), Some("1 INVITE".to_string())),
            (Some(200), Some("1 CANCEL".to_string()))
        ]
    );
    // §9.2: the To tag of the CANCEL's 200 is the one the INVITE's responses carry.
    for s in &at_cancel {
        assert_eq!(
            s.header("To").as_deref(),
            Some("<sip:8890@10.0.0.1>;tag=uas-tag")
        );
    }
    let cancelled: Vec<&TransactionKey> = h
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            TransactionEvent::Cancelled { invite } => Some(invite),
            _ => None,
        })
        .collect();
    assert_eq!(cancelled, [&key]);
    assert_eq!(
        h.layer.respond(h.now(), &key, tu_response(&req, 200, "OK")),
        Err(TransactionError::AlreadyFinal),
        "the TU can no longer answer a cancelled INVITE"
    );

    // A retransmitted CANCEL gets the 200 again, without a second Cancelled.
    h.run_until(ms(2100));
    h.deliver(&cancel("z9hG4bKcan"));
    assert_eq!(h.times_of(200), secs(&[2.0, 2.1]));
    // The 487 is retransmitted on Timer G like any non-2xx until its ACK.
    h.run_until(ms(4000));
    assert_eq!(h.times_of(487), secs(&[2.0, 2.5, 3.5]));
    h.deliver(&peer_request(
        "ACK",
        "z9hG4bKcan",
        "call-1@192.0.2.10",
        1,
        Some("uas-tag"),
        "",
    ));
    h.run_until(ms(60_000));
    assert_eq!(h.times_of(487).len(), 3);
    assert_eq!(
        h.events.len(),
        2,
        "INVITE and Cancelled only: {:?}",
        h.events
    );
    assert_eq!(
        h.layer.len(),
        0,
        "INVITE (Timer I) and CANCEL (Timer J) both ended"
    );
}

#[test]
fn cancel_matching_nothing_gets_481() {
    let mut h = Scripted::new(TimerConfig::default());
    h.deliver(&cancel("z9hG4bKnobody"));
    assert_eq!(h.times_of(481), secs(&[0.0]));
    assert!(h.sent[0].header("To").is_some_and(|t| t.contains(";tag=")));
    assert!(h.events.is_empty());
}

#[test]
fn cancel_after_the_final_response_gets_200_and_changes_nothing() {
    let mut h = Scripted::new(TimerConfig::default());
    h.deliver(&invite("z9hG4bKlate"));
    let key = h.request_key(rsip::Method::Invite);
    let req = request_of(&h, rsip::Method::Invite);
    h.respond(&key, tu_response(&req, 200, "OK"));
    h.run_until(ms(100));
    h.deliver(&cancel("z9hG4bKlate"));
    assert_eq!(
        h.times_of(200).len(),
        2,
        "the INVITE's 200 and the CANCEL's 200"
    );
    assert!(h.times_of(487).is_empty());
    assert_eq!(h.events.len(), 1, "no Cancelled event");
}

#[test]
fn merged_invite_gets_482_and_never_reaches_the_tu() {
    let mut h = Scripted::new(TimerConfig::default());
    h.deliver(&invite("z9hG4bKpath1"));
    // Same From tag, Call-ID and CSeq, no To tag, other branch: forked back to us.
    h.deliver(&invite("z9hG4bKpath2"));
    assert_eq!(h.times_of(482), secs(&[0.0]));
    assert_eq!(h.events.len(), 1);
    let original = h.request_key(rsip::Method::Invite);
    assert_eq!(original.branch, "z9hG4bKpath1");
    // The 482 is a normal non-2xx: retransmitted until ACKed.
    h.run_until(ms(600));
    assert_eq!(h.times_of(482), secs(&[0.0, 0.5]));
    // A new CSeq is a new request, not a merge.
    h.deliver(&peer_request(
        "INVITE",
        "z9hG4bKpath3",
        "call-1@192.0.2.10",
        2,
        None,
        "",
    ));
    assert_eq!(h.events.len(), 2);
}

#[test]
fn merged_non_invite_gets_482() {
    let mut h = Scripted::new(TimerConfig::default());
    h.deliver(&peer_request("OPTIONS", "z9hG4bKo1", "opt-1", 7, None, ""));
    h.deliver(&peer_request("OPTIONS", "z9hG4bKo2", "opt-1", 7, None, ""));
    assert_eq!(h.times_of(482), secs(&[0.0]));
    assert_eq!(h.events.len(), 1);
}

#[test]
fn non_invite_absorbs_retransmissions_then_repeats_its_final_until_timer_j() {
    let mut h = Scripted::new(TimerConfig::default());
    let bye = peer_request(
        "BYE",
        "z9hG4bKbye",
        "call-1@192.0.2.10",
        2,
        Some("uas-tag"),
        "",
    );
    h.deliver(&bye);
    let key = h.request_key(rsip::Method::Bye);
    let req = request_of(&h, rsip::Method::Bye);
    h.run_until(ms(500));
    h.deliver(&bye);
    assert!(
        h.sent.is_empty(),
        "Trying: retransmission absorbed, nothing to repeat"
    );
    h.run_until(ms(1000));
    h.respond(&key, tu_response(&req, 200, "OK"));
    h.run_until(ms(2000));
    h.deliver(&bye);
    assert_eq!(h.times_of(200), secs(&[1.0, 2.0]));
    assert_eq!(h.events.len(), 1);
    assert_eq!(
        h.layer
            .respond(h.now(), &key, tu_response(&req, 500, "Oops")),
        Err(TransactionError::AlreadyFinal)
    );
    h.run_until(ms(32_999));
    assert_eq!(h.layer.len(), 1);
    h.run_until(ms(33_000));
    assert_eq!(h.layer.len(), 0, "Timer J = 64*T1 after the final");
    // After Timer J the same branch is a new request again.
    h.deliver(&bye);
    assert_eq!(h.events.len(), 2);
}

#[test]
fn non_invite_provisional_is_repeated_for_retransmissions() {
    let mut h = Scripted::new(TimerConfig::default());
    let opts = peer_request("OPTIONS", "z9hG4bKslow", "opt-2", 1, None, "");
    h.deliver(&opts);
    let key = h.request_key(rsip::Method::Options);
    let req = request_of(&h, rsip::Method::Options);
    h.respond(&key, tu_response(&req, 100, "Trying"));
    h.run_until(ms(500));
    h.deliver(&opts);
    assert_eq!(h.times_of(100), secs(&[0.0, 0.5]));
}

#[test]
fn requests_missing_via_or_cseq_are_dropped_without_panic() {
    let mut h = Scripted::new(TimerConfig::default());
    let no_via = invite("z9hG4bKx").replace(
        "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKx;rport=5062\r\n",
        "",
    );
    let no_cseq = invite("z9hG4bKy").replace("CSeq: 1 INVITE\r\n", "");
    let bad_cseq = invite("z9hG4bKz").replace("CSeq: 1 INVITE", "CSeq: one INVITE");
    let bad_via = invite("z9hG4bKw").replace("SIP/2.0/UDP 192.0.2.10:5062", "garbage");
    for text in [no_via, no_cseq, bad_cseq, bad_via] {
        h.deliver(&text);
    }
    let stray = "SIP/2.0 200 OK\r\nTo: <sip:a@h>\r\nFrom: <sip:b@h>;tag=1\r\nCall-ID: x\r\n\
                 Content-Length: 0\r\n\r\n";
    h.deliver(stray);
    assert!(h.sent.is_empty() && h.events.is_empty());
    assert_eq!(h.layer.len(), 0);
    assert_eq!(h.layer.poll_timeout(), None);
}

#[test]
fn respond_to_an_unknown_key_fails() {
    let mut h = Scripted::new(TimerConfig::default());
    let key = TransactionKey {
        branch: "z9hG4bKnope".into(),
        sent_by: "192.0.2.10:5062".into(),
        method: "INVITE".into(),
    };
    let req = request(&invite("z9hG4bKnope"));
    assert_eq!(
        h.layer.respond(h.now(), &key, tu_response(&req, 200, "OK")),
        Err(TransactionError::NoSuchTransaction)
    );
    h.deliver(&invite("z9hG4bKnope"));
    assert_eq!(
        h.layer
            .respond(h.now(), &key, tu_response(&req, 99, "Nonsense")),
        Err(TransactionError::InvalidResponse)
    );
}

/// Mutate valid messages at random (seeded, so failures reproduce) and feed whatever rsip
/// still parses, with the TU answering every request and time running on: nothing panics,
/// and once every timer has run out no transaction is left (memory stays bounded).
#[test]
fn mutated_messages_never_panic_and_every_transaction_ends() {
    use rand::{rngs::StdRng, Rng, SeedableRng};

    const ALPHABET: &[u8] = b";,=:<>[] \r\n0123456789abcz@.zZ9hG4bK-/";
    let mut rng = StdRng::seed_from_u64(0x5195);
    let templates = [
        invite("z9hG4bKf1"),
        peer_request("CANCEL", "z9hG4bKf1", "call-1@192.0.2.10", 1, None, ""),
        peer_request("ACK", "z9hG4bKf1", "call-1@192.0.2.10", 1, Some("t"), ""),
        peer_request("ACK", "z9hG4bKf9", "call-1@192.0.2.10", 1, Some("t"), ""),
        peer_request("BYE", "z9hG4bKf2", "call-1@192.0.2.10", 2, Some("t"), ""),
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKours\r\n\
         From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: x\r\nCSeq: 5 BYE\r\n\
         Content-Length: 0\r\n\r\n"
            .to_string(),
    ];
    let mut h = Scripted::new(TimerConfig::default());
    let mut parsed = 0;
    for round in 0..4000u64 {
        if round % 500 == 0 {
            let bye = "BYE sip:x@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;\
                       branch=z9hG4bKours\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\n\
                       Call-ID: x\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n";
            h.send_request(bye);
        }
        let mut bytes = templates[rng.gen_range(0..templates.len())]
            .clone()
            .into_bytes();
        for _ in 0..rng.gen_range(1..4) {
            let i = rng.gen_range(0..bytes.len());
            match rng.gen_range(0..3) {
                0 => bytes[i] = ALPHABET[rng.gen_range(0..ALPHABET.len())],
                1 => {
                    let end = (i + rng.gen_range(1..8)).min(bytes.len());
                    bytes.drain(i..end);
                }
                _ => bytes.insert(i, ALPHABET[rng.gen_range(0..ALPHABET.len())]),
            }
            if bytes.is_empty() {
                break;
            }
        }
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        let Ok(message) = rsip::SipMessage::try_from(text.as_str()) else {
            continue;
        };
        parsed += 1;
        let before = h.events.len();
        match message {
            rsip::SipMessage::Request(r) => h.layer.handle_request(h.now(), r, addr(PEER)),
            rsip::SipMessage::Response(r) => h.layer.handle_response(h.now(), r, addr(PEER)),
        }
        h.drain();
        let new_requests: Vec<(TransactionKey, rsip::Request)> = h.events[before..]
            .iter()
            .filter_map(|(_, e)| match e {
                TransactionEvent::Request { key, request, .. }
                    if request.method != rsip::Method::Ack =>
                {
                    Some((key.clone(), request.clone()))
                }
                _ => None,
            })
            .collect();
        for (key, req) in new_requests {
            let code = [180, 200, 486][rng.gen_range(0..3)];
            let _ = h
                .layer
                .respond(h.now(), &key, tu_response(&req, code, "Fuzz"));
            if code == 180 {
                let _ = h
                    .layer
                    .respond(h.now(), &key, tu_response(&req, 603, "Fuzz"));
            }
            h.drain();
        }
        let step = h.elapsed() + ms(rng.gen_range(0..300));
        h.run_until(step);
    }
    assert!(
        parsed > 500,
        "the mutations should mostly stay parsable ({parsed})"
    );
    let end = h.elapsed() + ms(200_000);
    h.run_until(end);
    assert_eq!(h.layer.len(), 0);
    assert_eq!(h.layer.poll_timeout(), None);
}
