//! Two transaction layers over a virtual lossy network (quinn-proto's `Pair`, str0m's netem
//! idea in miniature), and the end-to-end tests that need both sides.

use std::collections::VecDeque;

use super::*;

/// One side: its address, its layer, and what its TU saw.
pub(in crate::sip::transaction) struct Endpoint {
    pub addr: SocketAddr,
    pub layer: TransactionLayer,
    pub events: Vec<(Duration, TransactionEvent)>,
    /// Send time and start line of every datagram it sent (dropped ones included).
    pub sent: Vec<(Duration, String)>,
}

struct Datagram {
    arrive: Instant,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// Whether the network drops a datagram, given its sender and start line.
type DropRule = Box<dyn FnMut(SocketAddr, &str) -> bool>;

pub(in crate::sip::transaction) struct Pair {
    pub uac: Endpoint,
    pub uas: Endpoint,
    base: Instant,
    now: Instant,
    latency: Duration,
    in_flight: VecDeque<Datagram>,
    drop: DropRule,
    /// The UAC's TU: ACK every 2xx to INVITE (a new branch each time), as §13.2.2.4 asks.
    pub uac_acks_2xx: bool,
    acks_sent: u32,
}

impl Pair {
    pub fn new(config: TimerConfig, latency: Duration) -> Pair {
        let base = time_base();
        let endpoint = |a: &str| Endpoint {
            addr: addr(a),
            layer: TransactionLayer::new(config),
            events: Vec::new(),
            sent: Vec::new(),
        };
        Pair {
            uac: endpoint(PEER),
            uas: endpoint(LOCAL),
            base,
            now: base,
            latency,
            in_flight: VecDeque::new(),
            drop: Box::new(|_, _| false),
            uac_acks_2xx: false,
            acks_sent: 0,
        }
    }

    pub fn set_drop(&mut self, rule: impl FnMut(SocketAddr, &str) -> bool + 'static) {
        self.drop = Box::new(rule);
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// The UAC's TU sends `text` to the UAS.
    pub fn uac_send(&mut self, text: &str) -> TransactionKey {
        let key = self
            .uac
            .layer
            .send_request(self.now, request(text), self.uas.addr)
            .expect("send_request");
        self.flush();
        key
    }

    pub fn uas_respond(&mut self, key: &TransactionKey, response: rsip::Response) {
        assert_eq!(self.uas.layer.respond(self.now, key, response), Ok(()));
        self.flush();
    }

    /// Jump to the next event (arrival or timer) up to `offset`; `false` when none is due.
    fn step(&mut self, limit: Instant) -> bool {
        let next = [
            self.in_flight.iter().map(|d| d.arrive).min(),
            self.uac.layer.poll_timeout(),
            self.uas.layer.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next.filter(|t| *t <= limit) else {
            return false;
        };
        self.now = self.now.max(next);
        let now = self.now;
        let (due, later): (VecDeque<_>, VecDeque<_>) =
            self.in_flight.drain(..).partition(|d| d.arrive <= now);
        self.in_flight = later;
        for d in due {
            let target = if d.to == self.uac.addr {
                &mut self.uac
            } else {
                &mut self.uas
            };
            let text = String::from_utf8(d.bytes).expect("UTF-8");
            match parse(&text) {
                rsip::SipMessage::Request(r) => target.layer.handle_request(now, r, d.from),
                rsip::SipMessage::Response(r) => target.layer.handle_response(now, r, d.from),
            }
        }
        self.uac.layer.handle_timeout(now);
        self.uas.layer.handle_timeout(now);
        self.flush();
        true
    }

    pub fn run_until(&mut self, offset: Duration) {
        let limit = self.base + offset;
        while self.step(limit) {}
        self.now = self.now.max(limit);
    }

    /// Move everything both layers want sent onto the network and their events to the TUs.
    fn flush(&mut self) {
        // Every step also checks both layers' heaps against a scan.
        self.uac.layer.check_schedule();
        self.uas.layer.check_schedule();
        loop {
            let at = self.elapsed();
            let mut progressed = false;
            for side in [&mut self.uac, &mut self.uas] {
                while let Some(t) = side.layer.poll_transmit() {
                    progressed = true;
                    let text = String::from_utf8_lossy(&t.bytes).to_string();
                    let start = text.lines().next().unwrap_or_default().to_string();
                    side.sent.push((at, start.clone()));
                    if !(self.drop)(side.addr, &start) {
                        self.in_flight.push_back(Datagram {
                            arrive: self.now + self.latency,
                            from: side.addr,
                            to: t.destination,
                            bytes: t.bytes,
                        });
                    }
                }
                while let Some(e) = side.layer.poll_event() {
                    progressed = true;
                    side.events.push((at, e));
                }
            }
            let acked = self.uac_acks_2xx && self.ack_new_2xx();
            if !acked && !progressed {
                return;
            }
        }
    }

    /// Send an ACK for each 2xx the UAC's TU has not acknowledged yet.
    fn ack_new_2xx(&mut self) -> bool {
        let oks: Vec<rsip::Response> = self
            .uac
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                TransactionEvent::Response { response, key }
                    if key.method == "INVITE" && response.status_code.code() / 100 == 2 =>
                {
                    Some(response.clone())
                }
                _ => None,
            })
            .collect();
        let fresh = &oks[self.acks_sent as usize..];
        if fresh.is_empty() {
            return false;
        }
        for ok in fresh {
            self.acks_sent += 1;
            let text = ok.to_string();
            let header = |name: &str| {
                text.lines()
                    .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
                    .unwrap_or_default()
                    .to_string()
            };
            let ack = format!(
                "ACK sip:8890@10.0.0.1 SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKack{n};rport=5062\r\n\
                 {from}\r\n{to}\r\n{call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
                n = self.acks_sent,
                from = header("from"),
                to = header("to"),
                call_id = header("call-id"),
            );
            self.uac
                .layer
                .send_request(self.now, request(&ack), self.uas.addr)
                .expect("ACK");
        }
        true
    }
}

fn event_names(events: &[(Duration, TransactionEvent)]) -> Vec<(Duration, String)> {
    events
        .iter()
        .map(|(at, e)| {
            let name = match e {
                TransactionEvent::Request { request, .. } => request.method.to_string(),
                TransactionEvent::Response { response, .. } => {
                    response.status_code.code().to_string()
                }
                TransactionEvent::Cancelled { .. } => "Cancelled".into(),
                TransactionEvent::Timeout { .. } => "Timeout".into(),
                TransactionEvent::AckTimeout { .. } => "AckTimeout".into(),
            };
            (*at, name)
        })
        .collect()
}

fn named(list: &[(u64, &str)]) -> Vec<(Duration, String)> {
    list.iter().map(|(t, n)| (ms(*t), n.to_string())).collect()
}

fn sent_times(side: &Endpoint, start: &str) -> Vec<Duration> {
    side.sent
        .iter()
        .filter(|(_, s)| s.starts_with(start))
        .map(|(t, _)| *t)
        .collect()
}

#[test]
fn rejected_invite_end_to_end_with_the_first_final_lost() {
    let mut pair = Pair::new(TimerConfig::default(), ms(10));
    let mut busy_seen = 0;
    pair.set_drop(move |_, start| {
        if start.starts_with("SIP/2.0 486") {
            busy_seen += 1;
            return busy_seen == 1;
        }
        false
    });
    pair.uac_send(&invite("z9hG4bKe2e1"));
    pair.run_until(ms(1000));
    let key = {
        let (_, TransactionEvent::Request { key, .. }) = &pair.uas.events[0] else {
            panic!("INVITE expected first");
        };
        key.clone()
    };
    let req = request(&invite("z9hG4bKe2e1"));
    pair.uas_respond(&key, tu_response(&req, 486, "Busy Here"));
    pair.run_until(ms(60_000));

    // 100 Trying (back at 20 ms) stopped Timer A before its first firing at 500 ms.
    assert_eq!(sent_times(&pair.uac, "INVITE"), [ms(0)]);
    // The lost 486 was repeated on Timer G; the ACK it drew stopped Timer G.
    assert_eq!(sent_times(&pair.uas, "SIP/2.0 486"), [ms(1000), ms(1500)]);
    assert_eq!(sent_times(&pair.uac, "ACK"), [ms(1510)]);
    assert_eq!(
        event_names(&pair.uac.events),
        named(&[(20, "100"), (1510, "486")])
    );
    assert_eq!(event_names(&pair.uas.events), named(&[(10, "INVITE")]));
    assert!(pair.uac.layer.is_empty() && pair.uas.layer.is_empty());
}

#[test]
fn bye_whose_responses_are_all_lost_times_out_on_virtual_time_only() {
    let mut pair = Pair::new(TimerConfig::default(), ms(10));
    let uas_addr = pair.uas.addr;
    pair.set_drop(move |from, _| from == uas_addr);
    let bye = peer_request(
        "BYE",
        "z9hG4bKe2e2",
        "call-1@192.0.2.10",
        2,
        Some("uas-tag"),
        "",
    );
    let uac_key = pair.uac_send(&bye);
    pair.run_until(ms(100));
    let (_, TransactionEvent::Request { key, request, .. }) = &pair.uas.events[0] else {
        panic!("BYE expected");
    };
    let (key, req) = (key.clone(), request.clone());
    pair.uas_respond(&key, tu_response(&req, 200, "OK"));
    pair.run_until(ms(120_000));

    let bye_times = sent_times(&pair.uac, "BYE");
    assert_eq!(
        bye_times,
        secs(&[0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
    );
    // Each retransmission reached the UAS and was answered from Completed, never the TU.
    let mut expected_ok = vec![ms(100)];
    expected_ok.extend(bye_times[1..].iter().map(|t| *t + ms(10)));
    assert_eq!(sent_times(&pair.uas, "SIP/2.0 200"), expected_ok);
    assert_eq!(event_names(&pair.uas.events), named(&[(10, "BYE")]));
    match pair.uac.events.as_slice() {
        [(at, TransactionEvent::Timeout { key })] => {
            assert_eq!(*at, ms(32_000));
            assert_eq!(*key, uac_key);
        }
        other => panic!("expected one Timeout, got {other:?}"),
    }
    assert!(pair.uac.layer.is_empty() && pair.uas.layer.is_empty());
    assert_eq!(pair.elapsed(), ms(120_000), "two virtual minutes");
}

#[test]
fn lost_2xx_is_repeated_until_the_ack_which_the_uas_tu_sees_once() {
    let mut pair = Pair::new(TimerConfig::default(), ms(10));
    pair.uac_acks_2xx = true;
    let mut oks = 0;
    pair.set_drop(move |_, start| {
        if start.starts_with("SIP/2.0 200") {
            oks += 1;
            return oks <= 2;
        }
        false
    });
    pair.uac_send(&invite("z9hG4bKe2e3"));
    pair.run_until(ms(50));
    let (_, TransactionEvent::Request { key, request, .. }) = &pair.uas.events[0] else {
        panic!("INVITE expected");
    };
    let (key, req) = (key.clone(), request.clone());
    pair.uas_respond(&key, tu_response(&req, 200, "OK"));
    pair.run_until(ms(60_000));

    // Sent at 50 ms, lost; 550 ms, lost; 1550 ms, delivered and ACKed at 1560 ms.
    assert_eq!(
        sent_times(&pair.uas, "SIP/2.0 200"),
        [ms(50), ms(550), ms(1550)]
    );
    assert_eq!(sent_times(&pair.uac, "ACK"), [ms(1560)]);
    assert_eq!(
        event_names(&pair.uas.events),
        named(&[(10, "INVITE"), (1570, "ACK")])
    );
    assert_eq!(
        event_names(&pair.uac.events),
        named(&[(20, "100"), (1560, "200")])
    );
    assert!(pair.uac.layer.is_empty() && pair.uas.layer.is_empty());
}
