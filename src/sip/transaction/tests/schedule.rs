//! The deadline heap (`schedule.rs`): a transaction whose timers were re-armed, stopped,
//! replaced or ended must neither wake the driver early (a stale entry on top) nor be
//! forgotten (a missing entry), at any scale. `Scripted` and `Pair` also compare the heap
//! with a scan after every step of every test in this module tree.

use super::*;

/// A request our TU sends (client side), with its own Call-ID.
fn our_request(method: &str, branch: &str, call_id: &str) -> String {
    format!(
        "{method} sip:citizen@192.0.2.10:5062 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:8890@10.0.0.1>;tag=uas-tag\r\n\
         To: <sip:citizen@192.0.2.10>;tag=caller1\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 2 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn their_response(code: u16, method: &str, branch: &str, call_id: &str) -> String {
    format!(
        "SIP/2.0 {code} Whatever\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch={branch};received=10.0.0.1\r\n\
         From: <sip:8890@10.0.0.1>;tag=uas-tag\r\n\
         To: <sip:citizen@192.0.2.10>;tag=caller1\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 2 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn wake_up(h: &Scripted) -> Option<Duration> {
    h.layer.poll_timeout().map(|t| t - (h.now() - h.elapsed()))
}

#[test]
fn an_ack_moves_the_wake_up_from_timer_g_to_timer_i_and_the_stopped_timer_h_never_wakes() {
    let mut h = Scripted::new(TimerConfig::default());
    h.deliver(&invite("z9hG4bKsched1"));
    let key = h.request_key(rsip::Method::Invite);
    let req = request_of(&h, rsip::Method::Invite);
    h.respond(&key, tu_response(&req, 486, "Busy Here"));
    assert_eq!(wake_up(&h), Some(ms(500)), "Timer G");
    h.run_until(ms(200));
    h.deliver(&peer_request(
        "ACK",
        "z9hG4bKsched1",
        "call-1@192.0.2.10",
        1,
        Some("uas-tag"),
        "",
    ));
    // G (0.5 s) and H (32 s) are stale in the heap now; only Timer I (ACK + T4) counts.
    assert_eq!(wake_up(&h), Some(ms(5_200)));
    h.run_until(ms(5_200));
    assert_eq!(h.layer.len(), 0);
    assert_eq!(
        wake_up(&h),
        None,
        "the stale Timer H entry must not wake anyone"
    );
    assert_eq!(h.times_of(486), secs(&[0.0]), "no Timer G retransmission");
}

#[test]
fn a_final_response_cancels_the_retransmission_wake_ups_of_a_bye() {
    let mut h = Scripted::new(TimerConfig::default());
    h.send_request(&our_request("BYE", "z9hG4bKsched2", "c2@x"));
    assert_eq!(wake_up(&h), Some(ms(500)), "Timer E");
    h.run_until(ms(100));
    h.deliver(&their_response(200, "BYE", "z9hG4bKsched2", "c2@x"));
    assert_eq!(wake_up(&h), Some(ms(5_100)), "Timer K only");
    h.run_until(ms(60_000));
    assert_eq!(h.times_of_method(rsip::Method::Bye), secs(&[0.0]));
    assert_eq!(h.layer.len(), 0);
    assert!(h
        .events
        .iter()
        .all(|(_, e)| !matches!(e, TransactionEvent::Timeout { .. })));
}

#[test]
fn a_replaced_client_transaction_keeps_none_of_the_old_deadlines() {
    let mut h = Scripted::new(TimerConfig::default());
    h.send_request(&our_request("BYE", "z9hG4bKsched3", "c3@x"));
    h.run_until(ms(300));
    // The same key again replaces the transaction: its schedule starts over.
    let key = h.send_request(&our_request("BYE", "z9hG4bKsched3", "c3@x"));
    assert_eq!(
        wake_up(&h),
        Some(ms(800)),
        "the new Timer E, not the old one"
    );
    h.run_until(ms(60_000));
    assert_eq!(
        h.times_of_method(rsip::Method::Bye),
        secs(&[0.0, 0.3, 0.8, 1.8, 3.8, 7.8, 11.8, 15.8, 19.8, 23.8, 27.8, 31.8])
    );
    let timeouts: Vec<_> = h
        .events
        .iter()
        .filter_map(|(at, e)| match e {
            TransactionEvent::Timeout { key } => Some((*at, key.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(timeouts, [(ms(32_300), key)], "one Timer F, the new one's");
}

#[test]
fn a_provisional_leaves_a_client_invite_without_wake_ups_until_its_final() {
    let mut h = Scripted::new(TimerConfig::default());
    h.send_request(&our_request("INVITE", "z9hG4bKsched4", "c4@x"));
    assert_eq!(wake_up(&h), Some(ms(500)), "Timer A");
    h.run_until(ms(100));
    h.deliver(&their_response(180, "INVITE", "z9hG4bKsched4", "c4@x"));
    assert_eq!(wake_up(&h), None, "Proceeding: A and B stopped (§17.1.1.2)");
    h.run_until(ms(10_000));
    h.deliver(&their_response(486, "INVITE", "z9hG4bKsched4", "c4@x"));
    assert_eq!(wake_up(&h), Some(ms(42_000)), "Timer D, 32 s");
    h.run_until(ms(42_000));
    assert_eq!(h.layer.len(), 0);
    assert_eq!(wake_up(&h), None);
}

/// A small deterministic generator (no test depends on the `rand` crate's sequence).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn random_traffic_keeps_the_schedule_equal_to_a_scan() {
    // Server INVITEs answered 180/200/486, ACKed or not, CANCELled; client BYEs answered
    // or not; time jumping in between. `Scripted::drain` checks the heap after each step.
    let mut h = Scripted::new(TimerConfig::default());
    let mut rng = Lcg(7);
    let mut invites: Vec<(TransactionKey, rsip::Request, String)> = Vec::new();
    let mut byes: Vec<String> = Vec::new();
    let mut t = 0u64;
    for i in 0..1_500 {
        match rng.below(8) {
            0 | 1 => {
                let branch = format!("z9hG4bKr{i}");
                let call_id = format!("r{i}@192.0.2.10");
                h.deliver(&peer_request("INVITE", &branch, &call_id, 1, None, ""));
                let (key, req) = match &h.events.last().expect("an event").1 {
                    TransactionEvent::Request { key, request, .. } => {
                        (key.clone(), request.clone())
                    }
                    other => panic!("expected the INVITE, got {other:?}"),
                };
                invites.push((key, req, call_id));
            }
            2 if !invites.is_empty() => {
                let (key, req, _) = &invites[rng.below(invites.len() as u64) as usize];
                let code = [180, 200, 486][rng.below(3) as usize];
                let _ = h.layer.respond(h.now(), key, tu_response(req, code, "X"));
                h.drain();
            }
            3 if !invites.is_empty() => {
                let (key, _, call_id) = &invites[rng.below(invites.len() as u64) as usize];
                // Either kind of ACK: same branch (non-2xx) or a new one (2xx).
                let branch = if rng.below(2) == 0 {
                    key.branch.clone()
                } else {
                    format!("z9hG4bKack{i}")
                };
                h.deliver(&peer_request(
                    "ACK",
                    &branch,
                    call_id,
                    1,
                    Some("uas-tag"),
                    "",
                ));
            }
            4 if !invites.is_empty() => {
                let (key, _, call_id) = &invites[rng.below(invites.len() as u64) as usize];
                let branch = key.branch.clone();
                h.deliver(&peer_request("CANCEL", &branch, call_id, 1, None, ""));
            }
            5 => {
                let branch = format!("z9hG4bKb{i}");
                h.send_request(&our_request("BYE", &branch, &format!("b{i}@x")));
                byes.push(branch);
            }
            6 if !byes.is_empty() => {
                let n = rng.below(byes.len() as u64) as usize;
                let branch = byes[n].clone();
                let code = [100, 200, 481][rng.below(3) as usize];
                let call_id = format!("b{}@x", &branch["z9hG4bKb".len()..]);
                h.deliver(&their_response(code, "BYE", &branch, &call_id));
            }
            _ => {
                t += rng.below(3_000);
                h.run_until(ms(t));
            }
        }
    }
    h.run_until(ms(t + 120_000));
    // Everything the TU answered ended on its timers; only never-answered server
    // INVITEs (the TU's to end, see `TransactionLayer`) may remain, without deadlines.
    assert_eq!(h.layer.poll_timeout(), None);
}

#[test]
fn ten_thousand_transactions_fire_every_timer_once_and_in_deadline_order() {
    // 10,000 client transactions started 1 ms apart in shuffled key order: INVITEs (Timer A
    // uncapped, B) and BYEs (Timer E capped at T2, F); every third is answered 200 between
    // 100 and 399 ms after it started (then Timer K or M ends it). Driven like the endpoint
    // does it: sleep to `poll_timeout`, `handle_timeout`, drain.
    const N: usize = 10_000;
    let config = TimerConfig::default();
    let mut layer = TransactionLayer::new(config);
    let base = time_base();
    let mut rng = Lcg(42);
    let mut order: Vec<usize> = (0..N).collect();
    for i in (1..N).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let method = |i: usize| if i.is_multiple_of(2) { "INVITE" } else { "BYE" };
    // (when, transaction index, is the answer)
    let mut inputs: Vec<(Duration, usize, bool)> = Vec::new();
    for (slot, &i) in order.iter().enumerate() {
        let start = ms(slot as u64);
        inputs.push((start, i, false));
        if i.is_multiple_of(3) {
            inputs.push((start + ms(100 + rng.below(300)), i, true));
        }
    }
    inputs.sort_by_key(|(at, i, answer)| (*at, *answer, *i));
    let started_at: Vec<Duration> = {
        let mut v = vec![Duration::ZERO; N];
        for (slot, &i) in order.iter().enumerate() {
            v[i] = ms(slot as u64);
        }
        v
    };

    let mut transmits = 0usize;
    let mut timeouts: Vec<(Duration, usize)> = Vec::new();
    let mut last_wake = Duration::ZERO;
    let mut wake_ups = 0usize;
    let mut next_input = 0;
    let drain = |layer: &mut TransactionLayer, transmits: &mut usize, timeouts: &mut Vec<_>, at| {
        while layer.poll_transmit().is_some() {
            *transmits += 1;
        }
        while let Some(e) = layer.poll_event() {
            if let TransactionEvent::Timeout { key } = e {
                let i: usize = key.branch["z9hG4bKk".len()..].parse().expect("index");
                timeouts.push((at, i));
            }
        }
    };
    loop {
        let timer = layer.poll_timeout().map(|t| t - base);
        let input = inputs.get(next_input).map(|(at, _, _)| *at);
        let now = match (timer, input) {
            (None, None) => break,
            (Some(t), Some(i)) => t.min(i),
            (t, i) => t.or(i).expect("one of them"),
        };
        if input == Some(now) {
            let (_, i, answer) = inputs[next_input];
            next_input += 1;
            let branch = format!("z9hG4bKk{i}");
            let call_id = format!("k{i}@x");
            if answer {
                let text = their_response(200, method(i), &branch, &call_id);
                let rsip::SipMessage::Response(r) = parse(&text) else {
                    unreachable!()
                };
                layer.handle_response(base + now, r, addr(PEER));
            } else {
                let r = request(&our_request(method(i), &branch, &call_id));
                layer.send_request(base + now, r, addr(PEER)).expect("send");
            }
        } else {
            assert!(now >= last_wake, "wake-ups go forward");
            last_wake = now;
            wake_ups += 1;
            let (before_len, before_tx) = (layer.len(), transmits);
            layer.handle_timeout(base + now);
            let before_events = timeouts.len();
            drain(&mut layer, &mut transmits, &mut timeouts, now);
            // Every wake-up the layer asked for had work: a retransmission, a timeout or a
            // transaction ending. A stale heap entry would show as a wake-up with none.
            assert!(
                layer.len() < before_len || transmits > before_tx || timeouts.len() > before_events,
                "spurious wake-up at {now:?}"
            );
        }
        drain(&mut layer, &mut transmits, &mut timeouts, now);
        if wake_ups % 2_000 == 1 {
            layer.check_schedule();
        }
    }
    assert_eq!(layer.len(), 0);

    // Unanswered: INVITE sent at 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 (A doubles, uncapped);
    // BYE at 0, 0.5, 1.5, 3.5, 7.5, then every 4 s to 31.5 (E capped at T2): 7 and 11 sends.
    // Answered within 400 ms: sent once.
    let expected_sends: usize = (0..N)
        .map(|i| match (i.is_multiple_of(3), method(i)) {
            (true, _) => 1,
            (false, "INVITE") => 7,
            (false, _) => 11,
        })
        .sum();
    assert_eq!(transmits, expected_sends, "every retransmission fired once");
    let unanswered = (0..N).filter(|i| !i.is_multiple_of(3)).count();
    assert_eq!(
        timeouts.len(),
        unanswered,
        "one Timer B/F per unanswered request"
    );
    assert!(
        timeouts.windows(2).all(|w| w[0].0 <= w[1].0),
        "timeouts in deadline order"
    );
    for (at, i) in &timeouts {
        assert_eq!(
            *at,
            started_at[*i] + ms(32_000),
            "Timer B/F of {i} at 64·T1"
        );
    }
}
