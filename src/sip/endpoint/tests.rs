//! The endpoint's TCP side on real loopback sockets: framing across reads, responses on the
//! request's connection, keep-alive pongs, a broken stream closed, bans closing connections
//! (throttling a trunk does not).

use super::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
