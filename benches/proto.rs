//! Cost of the per-message protocol work: SIP parse and transaction handling, SDP offer →
//! answer, RTP parse/build, RFC 4733 parse.
//!
//! Run: `cargo bench --bench proto -- --warm-up-time 1 --measurement-time 2`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hotline_gateway::media::dtmf::{DtmfReceiver, TelephoneEvent};
use hotline_gateway::media::rtp::{self, RtpSender, MAX_DATAGRAM};
use hotline_gateway::media::{sdp, Codec, FRAME_SAMPLES};
use hotline_gateway::sip::message;
use hotline_gateway::sip::transaction::{TimerConfig, TransactionEvent, TransactionLayer};
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const OFFER: &str = "v=0\r\n\
o=- 53655765 2353687637 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 30000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

/// A typical trunk INVITE (what every call starts with).
fn invite(branch: &str, call: u64) -> Vec<u8> {
    format!(
        "INVITE sip:8890@10.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Citizen\" <sip:13800000000@192.0.2.10>;tag=from{call}\r\n\
         To: <sip:8890@10.0.0.1>\r\n\
         Call-ID: {call}-bench@192.0.2.10\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:13800000000@192.0.2.10:5060>\r\n\
         User-Agent: bench\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{OFFER}",
        OFFER.len()
    )
    .into_bytes()
}

fn parsed_request(bytes: &[u8]) -> rsip::Request {
    match message::parse(bytes).expect("bench INVITE parses") {
        rsip::SipMessage::Request(r) => r,
        rsip::SipMessage::Response(_) => unreachable!("bench INVITE is a request"),
    }
}

fn source() -> SocketAddr {
    "192.0.2.10:5060".parse().unwrap()
}

/// A layer holding `n` answered INVITE server transactions (what ~n/32 calls per second
/// leave behind: RFC 6026 keeps each for 64·T1 after its 2xx).
fn busy_layer(n: u64, now: Instant) -> TransactionLayer {
    let mut layer = TransactionLayer::new(TimerConfig::default());
    for i in 0..n {
        let req = parsed_request(&invite(&format!("z9hG4bKfill{i}"), 1_000_000 + i));
        layer.handle_request(now, req, source());
        while layer.poll_transmit().is_some() {}
        while let Some(ev) = layer.poll_event() {
            if let TransactionEvent::Request { key, request, .. } = ev {
                let ok = message::response(&request, 200, "OK", None);
                layer.respond(now, &key, ok).unwrap();
            }
        }
        while layer.poll_transmit().is_some() {}
    }
    layer
}

fn sip(c: &mut Criterion) {
    let mut group = c.benchmark_group("sip");
    group.throughput(Throughput::Elements(1));
    let bytes = invite("z9hG4bKbench1", 1);
    group.bench_function("parse_invite", |b| {
        b.iter(|| message::parse(black_box(&bytes)).unwrap())
    });

    let now = Instant::now();
    // A new call: parse, new server transaction, 100 Trying, event up, 200 OK down, and the
    // layer's earliest timer, which the endpoint asks after every turn. A fresh layer per
    // call, so the figure does not drift as the layer fills up (see poll_timeout below for
    // what a full one costs).
    let mut n = 0u64;
    group.bench_function("new_invite_to_200", |b| {
        b.iter_batched(
            || {
                n += 1;
                (
                    TransactionLayer::new(TimerConfig::default()),
                    invite(&format!("z9hG4bKnew{n}"), n),
                )
            },
            |(mut layer, bytes)| {
                let req = parsed_request(&bytes);
                layer.handle_request(now, req, source());
                while let Some(ev) = layer.poll_event() {
                    if let TransactionEvent::Request { key, request, .. } = ev {
                        let ok = message::response(&request, 200, "OK", None);
                        let _ = layer.respond(now, &key, ok);
                    }
                }
                while let Some(t) = layer.poll_transmit() {
                    let _ = black_box(t);
                }
                black_box(layer.poll_timeout());
                layer
            },
            BatchSize::SmallInput,
        )
    });
    for live in [1_000u64, 10_000] {
        // A retransmitted INVITE: parse, match the live transaction, resend its response.
        let mut layer = busy_layer(live, now);
        let retrans = invite("z9hG4bKfill0", 1_000_000);
        {
            group.bench_function(format!("parse_and_match_retransmission/{live}_live"), |b| {
                b.iter(|| {
                    let req = parsed_request(black_box(&retrans));
                    layer.handle_request(now, req, source());
                    while let Some(t) = layer.poll_transmit() {
                        let _ = black_box(t);
                    }
                })
            });
        }
        // The endpoint asks for the earliest timer twice per loop turn.
        group.bench_function(format!("poll_timeout/{live}_live"), |b| {
            b.iter(|| black_box(layer.poll_timeout()))
        });
    }
    timers(&mut group, now);
    group.finish();
}

/// `live` answered INVITEs whose 2xx is retransmitted until an ACK that never comes,
/// started 1 ms apart, so their timers are spread over time as a running gateway's are.
fn staggered_layer(live: u64, start: Instant) -> TransactionLayer {
    let mut layer = TransactionLayer::new(TimerConfig::default());
    for i in 0..live {
        let at = start + Duration::from_millis(i);
        let req = parsed_request(&invite(&format!("z9hG4bKst{i}"), 2_000_000 + i));
        layer.handle_request(at, req, source());
        while let Some(ev) = layer.poll_event() {
            if let TransactionEvent::Request { key, request, .. } = ev {
                let ok = message::response(&request, 200, "OK", None);
                layer.respond(at, &key, ok).unwrap();
            }
        }
        while layer.poll_transmit().is_some() {}
    }
    layer
}

/// One endpoint loop turn with 10,000 live transactions: `poll_timeout` twice (before the
/// wait and after the work) and `handle_timeout` at the deadline it named, which fires one
/// transaction's timer (a 2xx retransmission, or Timer L ending it). Virtual time follows
/// the deadlines; the clock is stopped while a drained layer is rebuilt.
fn timers(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    start: Instant,
) {
    const LIVE: u64 = 10_000;
    // One layer across criterion's calls (building one takes ~0.5 s); rebuilt, off the
    // clock, when a tenth of it has ended.
    let mut layer = staggered_layer(LIVE, start);
    group.bench_function(format!("timer_turn/{LIVE}_live"), |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                if layer.len() < (LIVE * 9 / 10) as usize {
                    layer = staggered_layer(LIVE, start);
                }
                let began = Instant::now();
                while done < iters && layer.len() >= (LIVE * 9 / 10) as usize {
                    let Some(at) = layer.poll_timeout() else {
                        break;
                    };
                    layer.handle_timeout(at);
                    while let Some(t) = layer.poll_transmit() {
                        let _ = black_box(t);
                    }
                    black_box(layer.poll_timeout());
                    done += 1;
                }
                spent += began.elapsed();
            }
            spent
        })
    });
}

fn sdp_answer(c: &mut Criterion) {
    let local: SocketAddr = "10.0.0.1:20000".parse().unwrap();
    let accepted = [Codec::Pcmu, Codec::Pcma];
    c.bench_function("sdp_offer_to_answer", |b| {
        b.iter(|| sdp::answer(black_box(OFFER), &accepted, local, 42).unwrap())
    });
    let offer = sdp::offer(&accepted, 101, local, 7);
    let (_, answer) = sdp::answer(&offer, &accepted, local, 42).unwrap();
    c.bench_function("sdp_parse_answer", |b| {
        b.iter(|| sdp::parse_answer(black_box(&answer)).unwrap())
    });
}

fn rtp_and_dtmf(c: &mut Criterion) {
    let mut group = c.benchmark_group("rtp");
    group.throughput(Throughput::Elements(1));
    let mut tx = RtpSender::with_state(1, 2, 3);
    let payload = [0x55u8; FRAME_SAMPLES];
    let mut buf = [0u8; MAX_DATAGRAM];
    group.bench_function("build_audio_20ms", |b| {
        b.iter(|| tx.build_audio(0, black_box(&payload), &mut buf).unwrap())
    });
    let n = tx.build_audio(0, &payload, &mut buf).unwrap();
    let packet = buf[..n].to_vec();
    group.bench_function("parse_audio_20ms", |b| {
        b.iter(|| rtp::parse(black_box(&packet)).unwrap())
    });
    let mut ev = [0u8; MAX_DATAGRAM];
    let n = tx
        .build_at(101, true, 8000, &[1, 0x8a, 0x03, 0x20], &mut ev)
        .unwrap();
    let event_packet = ev[..n].to_vec();
    let mut rx = DtmfReceiver::new();
    group.bench_function("parse_telephone_event", |b| {
        b.iter(|| {
            let p = rtp::parse(black_box(&event_packet)).unwrap();
            let e = TelephoneEvent::parse(p.payload).unwrap();
            black_box(rx.on_event(p.timestamp, &e))
        })
    });
    group.finish();
}

criterion_group!(
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = sip, sdp_answer, rtp_and_dtmf
);
criterion_main!(benches);
