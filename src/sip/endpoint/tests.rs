//! The endpoint's TCP side on real loopback sockets: framing across reads, responses on the
//! request's connection, keep-alive pongs, a broken stream closed, bans closing connections
//! (throttling a trunk does not).

use super::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn options(n: u32, body: &str) -> String {
    format!(
        "OPTIONS sip:8890@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKtcp{n}\r\n\
         From: <sip:a@127.0.0.1>;tag=a{n}\r\n\
         To: <sip:8890@127.0.0.1>\r\n\
         Call-ID: tcp-{n}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A TU that answers every request 200 OK.
fn answer_all(handle: EndpointHandle, mut events: mpsc::Receiver<TransactionEvent>) {
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if let TransactionEvent::Request { key, request, .. } = ev {
                handle.respond(key, message::response(&request, 200, "OK", None));
            }
        }
    });
}

async fn read_until(stream: &mut TcpStream, count: usize, needle: &str) -> String {
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while got.matches(needle).count() < count {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .expect("response in time")
            .unwrap();
        assert!(n > 0, "connection closed early; got {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    got
}

#[tokio::test]
async fn tcp_requests_split_and_joined_get_answers_on_their_connection() {
    let (handle, events) = start_with(
        "127.0.0.1:0".parse().unwrap(),
        EndpointConfig {
            tcp: true,
            ..EndpointConfig::default()
        },
    )
    .await
    .unwrap();
    assert!(handle.serves_tcp());
    let addr = handle.local_addr();
    answer_all(handle.clone(), events);
    let mut s = TcpStream::connect(addr).await.unwrap();
    // Two messages in one write, a third split across writes, a keep-alive between.
    let joined = format!("{}{}", options(1, ""), options(2, "x"));
    s.write_all(joined.as_bytes()).await.unwrap();
    let third = options(3, "");
    s.write_all(&third.as_bytes()[..20]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(&third.as_bytes()[20..]).await.unwrap();
    let got = read_until(&mut s, 3, "SIP/2.0 200 OK").await;
    for n in 1..=3 {
        assert!(
            got.contains(&format!("Call-ID: tcp-{n}@127.0.0.1")),
            "{got}"
        );
    }
    s.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    s.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"\r\n", "RFC 5626 pong");
    assert!(handle.counters().tcp_connections.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn a_stream_without_content_length_is_closed() {
    let (handle, events) = start_with(
        "127.0.0.1:0".parse().unwrap(),
        EndpointConfig {
            tcp: true,
            max_message_bytes: 2048,
            ..EndpointConfig::default()
        },
    )
    .await
    .unwrap();
    let addr = handle.local_addr();
    answer_all(handle.clone(), events);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nCall-ID: y\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "the connection is closed");
    assert_eq!(
        handle.counters().tcp_framing_errors.load(Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn a_flooding_tcp_peer_is_banned_and_disconnected() {
    let (handle, events) = start_with(
        "127.0.0.1:0".parse().unwrap(),
        EndpointConfig {
            tcp: true,
            guard: Some(GuardConfig {
                rate: 1.0,
                burst: 3.0,
                ..GuardConfig::default()
            }),
            ..EndpointConfig::default()
        },
    )
    .await
    .unwrap();
    let addr = handle.local_addr();
    answer_all(handle.clone(), events);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let burst: String = (10..20).map(|n| options(n, "")).collect();
    s.write_all(burst.as_bytes()).await.unwrap();
    // The fourth message exceeds the burst: the ban closes the connection (answers to the
    // first three may or may not make it out before it does).
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
    assert!(closed.is_ok(), "the connection is closed");
    let text = String::from_utf8_lossy(&got);
    assert!(text.matches("SIP/2.0 200 OK").count() <= 3, "{text}");
    assert_eq!(handle.guard_counters().bans.load(Ordering::Relaxed), 1);
    // A new connection from the banned address is closed at once.
    let mut again = TcpStream::connect(addr).await.unwrap();
    again.write_all(options(30, "").as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), again.read_to_end(&mut rest)).await;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
}

#[tokio::test]
async fn a_throttled_trunk_keeps_its_tcp_connection() {
    let (handle, events) = start_with(
        "127.0.0.1:0".parse().unwrap(),
        EndpointConfig {
            tcp: true,
            guard: Some(GuardConfig {
                rate: 1.0,
                burst: 3.0,
                trunks: vec![crate::sip::guard::TrunkRate {
                    networks: vec!["127.0.0.1/32".parse().unwrap()],
                    rate: 3.0,
                }],
                ..GuardConfig::default()
            }),
            ..EndpointConfig::default()
        },
    )
    .await
    .unwrap();
    let addr = handle.local_addr();
    answer_all(handle.clone(), events);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let burst: String = (40..50).map(|n| options(n, "")).collect();
    s.write_all(burst.as_bytes()).await.unwrap();
    // The bucket's three are answered; the excess is dropped, the connection stays.
    read_until(&mut s, 3, "SIP/2.0 200 OK").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.write_all(options(60, "").as_bytes()).await.unwrap();
    let got = read_until(&mut s, 1, "tcp-60@").await;
    assert!(got.contains("SIP/2.0 200 OK"), "{got}");
    let c = handle.guard_counters();
    assert_eq!(c.bans.load(Ordering::Relaxed), 0);
    assert!(c.throttled.load(Ordering::Relaxed) >= 6);
}

/// A raw UDP peer on loopback.
async fn udp_peer() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

async fn recv_text(sock: &UdpSocket, within: Duration) -> Option<String> {
    let mut buf = vec![0u8; 65_535];
    match tokio::time::timeout(within, sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    }
}

fn udp_request(method: &str, n: u32, via_transport: &str, to_tag: &str) -> String {
    format!(
        "{method} sip:8890@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/{via_transport} 127.0.0.1:5999;branch=z9hG4bKudp{n};rport\r\n\
         From: <sip:a@127.0.0.1>;tag=a{n}\r\n\
         To: <sip:8890@127.0.0.1>{to_tag}\r\n\
         Call-ID: udp-{n}@127.0.0.1\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Issue 11, point 12: the driver awaited the TU's channel inside its loop, so a stalled
/// call manager froze every timer. Here the TU never reads: our own request is still
/// retransmitted (Timer E), and a new INVITE is answered 503 by the endpoint.
#[tokio::test]
async fn a_stalled_tu_freezes_no_timer_and_new_invites_get_503() {
    let (handle, events) = start_with(
        "127.0.0.1:0".parse().unwrap(),
        EndpointConfig {
            timers: TimerConfig {
                t1: Duration::from_millis(50),
                t2: Duration::from_millis(400),
                t4: Duration::from_millis(500),
            },
            event_queue: 1,
            ..EndpointConfig::default()
        },
    )
    .await
    .unwrap();
    let _stalled = events; // held, never read
    let gw = handle.local_addr();
    let peer = udp_peer().await;
    // Two requests: the first fills the TU's channel, the second waits in the backlog.
    for n in 1..=2 {
        peer.send_to(udp_request("OPTIONS", n, "UDP", "").as_bytes(), gw)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The TU is behind: a new call is refused at once, with Retry-After.
    peer.send_to(udp_request("INVITE", 3, "UDP", "").as_bytes(), gw)
        .await
        .unwrap();
    let mut got = String::new();
    while !got.contains("SIP/2.0 503") {
        let text = recv_text(&peer, Duration::from_secs(5))
            .await
            .expect("503 to the INVITE");
        got.push_str(&text);
    }
    assert!(got.contains("Retry-After:"), "{got}");
    assert!(handle.counters().overload_refused.load(Ordering::Relaxed) >= 1);
    // Our own request to the peer keeps being retransmitted while the TU sleeps.
    let ours = message::parse(udp_request("OPTIONS", 4, "UDP", "").as_bytes()).unwrap();
    let rsip::SipMessage::Request(ours) = ours else {
        panic!("request")
    };
    handle.send(ours, peer.local_addr().unwrap());
    let mut copies = 0;
    while copies < 3 {
        let text = recv_text(&peer, Duration::from_secs(5))
            .await
            .expect("Timer E retransmissions go on");
        if text.starts_with("OPTIONS ") {
            copies += 1;
        }
    }
}

/// A TU that answers a request and shuts its endpoint down at once (the test caller
/// answering the gateway's BYE, then returning): the answer still goes out. The driver
/// took both commands in one turn and stopped before sending what the first had queued;
/// CI saw the gateway retransmit its BYE four times with no 200.
#[tokio::test]
async fn a_response_given_just_before_shutdown_is_sent() {
    let (handle, mut events) =
        start_with("127.0.0.1:0".parse().unwrap(), EndpointConfig::default())
            .await
            .unwrap();
    let peer = udp_peer().await;
    peer.send_to(
        udp_request("BYE", 8, "UDP", ";tag=b8").as_bytes(),
        handle.local_addr(),
    )
    .await
    .unwrap();
    let Some(TransactionEvent::Request { key, request, .. }) =
        tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("the BYE reaches the TU")
    else {
        panic!("a request event");
    };
    // No await in between: the driver finds both commands queued.
    handle.respond(key, message::response(&request, 200, "OK", None));
    handle.shutdown();
    let answer = recv_text(&peer, Duration::from_secs(5))
        .await
        .expect("the 200 is sent before the endpoint stops");
    assert!(answer.starts_with("SIP/2.0 200 OK"), "{answer}");
}

/// Issue 11, point 3: a UDP datagram whose Via says TCP made the endpoint open a TCP
/// connection to the sender. It is answered over UDP, and no connection is opened.
#[tokio::test]
async fn a_udp_request_claiming_tcp_is_answered_over_udp_and_opens_nothing() {
    let handle = serving(TcpLimits::default(), None).await;
    // A TCP listener where the Via's sent-by points: it must see no connection.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = udp_peer().await;
    let text = udp_request("OPTIONS", 7, "TCP", "")
        .replace("127.0.0.1:5999", &trap.local_addr().unwrap().to_string());
    peer.send_to(text.as_bytes(), handle.local_addr())
        .await
        .unwrap();
    let answer = recv_text(&peer, Duration::from_secs(5))
        .await
        .expect("answered over UDP, to the source");
    assert!(answer.starts_with("SIP/2.0 200 OK"), "{answer}");
    let accepted = tokio::time::timeout(Duration::from_millis(300), trap.accept()).await;
    assert!(
        accepted.is_err(),
        "no TCP connection opened because of a Via"
    );
    assert_eq!(handle.counters().tcp_connections.load(Ordering::Relaxed), 0);
}

/// An endpoint serving TCP with `limits` and `guard`, answering every request 200.
async fn serving(limits: TcpLimits, guard: Option<GuardConfig>) -> EndpointHandle {
    let config = EndpointConfig {
        tcp: true,
        tcp_limits: limits,
        guard,
        ..EndpointConfig::default()
    };
    let (handle, events) = start_with("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    answer_all(handle.clone(), events);
    handle
}

/// Whether the server closes `s` (EOF or reset) within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(within, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Issue 11, point 9: accepted connections are bounded per source (and globally).
#[tokio::test]
async fn tcp_connections_beyond_the_per_source_limit_are_closed_at_accept() {
    let limits = TcpLimits {
        max_connections: 10,
        max_per_source: 2,
        ..TcpLimits::default()
    };
    let handle = serving(limits, None).await;
    let addr = handle.local_addr();
    let mut a = TcpStream::connect(addr).await.unwrap();
    let mut b = TcpStream::connect(addr).await.unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut c, Duration::from_secs(5)).await,
        "third closed"
    );
    assert_eq!(handle.counters().tcp_refused.load(Ordering::Relaxed), 1);
    for (s, n) in [(&mut a, 70), (&mut b, 71)] {
        s.write_all(options(n, "").as_bytes()).await.unwrap();
        read_until(s, 1, "SIP/2.0 200 OK").await;
    }
    // One goes: room for another.
    drop(a);
    let mut d = None;
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(options(72, "").as_bytes()).await.unwrap();
        let mut buf = [0u8; 512];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await
        {
            if n > 0 {
                d = Some(s);
                break;
            }
        }
    }
    assert!(d.is_some(), "a freed slot is usable again");
}

/// Issue 11, point 9: a connection that sends no complete message in time is closed (a
/// slow-loris header, or nothing at all).
#[tokio::test]
async fn a_tcp_connection_without_a_complete_message_in_time_is_closed() {
    let limits = TcpLimits {
        message_timeout: Duration::from_millis(500),
        ..TcpLimits::default()
    };
    let handle = serving(limits, None).await;
    let addr = handle.local_addr();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"OPTIONS sip:8890@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP h")
        .await
        .unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    assert!(closed_within(&mut slow, Duration::from_secs(5)).await);
    assert_eq!(handle.counters().tcp_timeouts.load(Ordering::Relaxed), 2);
}

/// Issue 11, point 9: with `unknown_source = "drop"` a stranger's connection is closed at
/// accept, before it can send anything.
#[tokio::test]
async fn the_guards_drop_mode_applies_at_accept() {
    let guard = GuardConfig {
        allowed: Some(vec!["192.0.2.0/24".parse().unwrap()]),
        ..GuardConfig::default()
    };
    let handle = serving(TcpLimits::default(), Some(guard)).await;
    let mut s = TcpStream::connect(handle.local_addr()).await.unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    assert_eq!(handle.counters().tcp_refused.load(Ordering::Relaxed), 1);
    assert_eq!(
        handle
            .guard_counters()
            .dropped_unknown_source
            .load(Ordering::Relaxed),
        1
    );
}

/// Issue 11, point 2: the TU learns that a CANCEL crossed its INVITE from the 200 being
/// refused (`AlreadyFinal`), so it can make no call of it.
#[tokio::test]
async fn a_200_after_a_crossing_cancel_is_refused_to_the_tu() {
    let (handle, mut events) =
        start_with("127.0.0.1:0".parse().unwrap(), EndpointConfig::default())
            .await
            .unwrap();
    let peer = udp_peer().await;
    let invite = udp_request("INVITE", 90, "UDP", "");
    let cancel = invite
        .replace("INVITE sip:", "CANCEL sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    peer.send_to(invite.as_bytes(), handle.local_addr())
        .await
        .unwrap();
    let Some(TransactionEvent::Request { key, request, .. }) = events.recv().await else {
        panic!("the INVITE goes up");
    };
    peer.send_to(cancel.as_bytes(), handle.local_addr())
        .await
        .unwrap();
    assert!(matches!(
        events.recv().await,
        Some(TransactionEvent::Cancelled { .. })
    ));
    let ok = message::response(&request, 200, "OK", Some("late"));
    assert_eq!(
        handle.respond_confirmed(key.clone(), ok).await,
        Err(crate::sip::transaction::TransactionError::AlreadyFinal)
    );
    // Before any CANCEL the same call is accepted.
    let invite = udp_request("INVITE", 91, "UDP", "");
    peer.send_to(invite.as_bytes(), handle.local_addr())
        .await
        .unwrap();
    let Some(TransactionEvent::Request { key, request, .. }) = events.recv().await else {
        panic!("the INVITE goes up");
    };
    let ok = message::response(&request, 200, "OK", Some("ours"));
    assert_eq!(handle.respond_confirmed(key, ok).await, Ok(()));
}
