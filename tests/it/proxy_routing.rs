//! The gateway behind a stateful proxy (RFC 3261 §12, §16), with the test playing the proxy
//! on a UDP socket: requests arrive with the proxy's Via on top and its Record-Route; the
//! answers, the ACK, our BYE and the caller's BYE must all go through the proxy, while RTP
//! goes straight between the caller and the gateway.

use super::harness::GatewayProcess;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// The test's proxy: one socket for SIP. The caller behind it is only an address in the
/// Vias and the Contact, plus a real socket for its RTP.
struct Proxy {
    sip: UdpSocket,
    caller_rtp: UdpSocket,
    /// The caller's SIP address as it appears in Via and Contact (nothing listens there:
    /// anything the gateway sent to it directly would be lost, which is the point).
    caller_sip: SocketAddr,
}

impl Proxy {
    fn new() -> Proxy {
        let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
        let caller_rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let caller_sip = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        Proxy {
            sip,
            caller_rtp,
            caller_sip,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.sip.local_addr().unwrap()
    }

    fn record_route(&self) -> String {
        format!("<sip:{};lr;ftag=caller-tag>", self.addr())
    }

    fn invite(&self, gw: &GatewayProcess, call_id: &str) -> String {
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n",
            self.caller_rtp.local_addr().unwrap().port()
        );
        format!(
            "INVITE sip:8890@{gw} SIP/2.0\r\n\
             Record-Route: {rr}\r\n\
             Via: SIP/2.0/UDP {proxy};branch=z9hG4bKprx{b}\r\n\
             Via: SIP/2.0/UDP {caller};received=127.0.0.1;rport={port};branch=z9hG4bKua{b}\r\n\
             Max-Forwards: 69\r\n\
             From: \"Citizen\" <sip:13911112222@{caller}>;tag=caller-tag\r\n\
             To: <sip:8890@{proxy}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:citizen@{caller}>\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{sdp}",
            gw = gw.sip,
            rr = self.record_route(),
            proxy = self.addr(),
            caller = self.caller_sip,
            port = self.caller_sip.port(),
            b = uuid::Uuid::new_v4().simple(),
            len = sdp.len(),
        )
    }

    /// An in-dialog request from the caller as the proxy relays it after loose_route():
    /// Request-URI = the gateway's Contact, the proxy's own Route removed.
    fn in_dialog(&self, method: &str, cseq: u32, target: &str, to: &str, call_id: &str) -> String {
        format!(
            "{method} {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {proxy};branch=z9hG4bKprx{b}\r\n\
             Via: SIP/2.0/UDP {caller};received=127.0.0.1;rport={port};branch=z9hG4bKua{b}\r\n\
             Max-Forwards: 69\r\n\
             From: \"Citizen\" <sip:13911112222@{caller}>;tag=caller-tag\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Content-Length: 0\r\n\r\n",
            proxy = self.addr(),
            caller = self.caller_sip,
            port = self.caller_sip.port(),
            b = uuid::Uuid::new_v4().simple(),
        )
    }

    fn send(&self, to: SocketAddr, msg: &str) {
        self.sip.send_to(msg.as_bytes(), to).unwrap();
    }

    /// Next datagram on the proxy's SIP socket within `timeout`.
    fn recv(&self, timeout: Duration) -> Option<(String, SocketAddr)> {
        self.sip.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 8192];
        let (n, from) = self.sip.recv_from(&mut buf).ok()?;
        Some((String::from_utf8_lossy(&buf[..n]).into_owned(), from))
    }

    /// Everything arriving within `window`.
    fn collect(&self, window: Duration) -> Vec<String> {
        let end = Instant::now() + window;
        let mut out = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.recv(left.max(Duration::from_millis(1))) {
                Some((m, _)) => out.push(m),
                None => break,
            }
        }
        out
    }

    /// Wait for a message whose first line starts with `start` (skipping others).
    fn wait_for(&self, start: &str, timeout: Duration) -> Option<(String, Instant)> {
        let end = Instant::now() + timeout;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let (m, _) = self.recv(left.max(Duration::from_millis(1)))?;
            if m.starts_with(start) {
                return Some((m, Instant::now()));
            }
        }
        None
    }
}

fn headers<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    headers(msg, name)
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no {name} in\n{msg}"))
}

fn uri_in(name_addr: &str) -> &str {
    let start = name_addr.find('<').map_or(0, |i| i + 1);
    let end = name_addr.find('>').unwrap_or(name_addr.len());
    &name_addr[start..end]
}

/// The answer to the INVITE from the proxy's side: 200 OK with everything §12 needs.
fn answer(proxy: &Proxy, gw: &GatewayProcess, call_id: &str) -> String {
    proxy.send(gw.sip, &proxy.invite(gw, call_id));
    let (ok, _) = proxy
        .wait_for("SIP/2.0 200", Duration::from_secs(5))
        .expect("200 OK through the proxy");
    ok
}

#[test]
fn behind_a_proxy_ack_and_byes_follow_the_route_set_and_rtp_goes_direct() {
    let gw = GatewayProcess::start(&[
        ("HOTLINE_LIMITS_MAX_CALL_DURATION_SECS", "2"),
        ("HOTLINE_SIP_INSTANCE_ID", "gw-behind-proxy"),
    ]);
    let proxy = Proxy::new();

    // Call 1: the gateway hangs up (max duration) and its BYE goes through the proxy.
    let ok = answer(&proxy, &gw, "proxied-1@test");
    assert_eq!(
        headers(&ok, "Record-Route"),
        vec![proxy.record_route().as_str()],
        "the proxy's Record-Route, exactly once:\n{ok}"
    );
    assert_eq!(headers(&ok, "Via").len(), 2, "{ok}");
    let contact = uri_in(header(&ok, "Contact")).to_string();
    assert!(
        contact.ends_with(&format!("@{}", gw.sip)),
        "Contact is the instance itself, not the proxy: {contact}"
    );
    let body = ok.split("\r\n\r\n").nth(1).unwrap_or("");
    assert!(body.contains("c=IN IP4 127.0.0.1"), "{body}");
    let rtp_port: u16 = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("m=audio port");
    assert!((gw.rtp.0..=gw.rtp.1).contains(&rtp_port), "{rtp_port}");
    let to = header(&ok, "To").to_string();

    proxy.send(
        gw.sip,
        &proxy.in_dialog("ACK", 1, &contact, &to, "proxied-1@test"),
    );
    let acked = Instant::now();

    // RTP from the gateway arrives at the caller's media address straight from the
    // instance's advertised media port: the proxy relays no media.
    proxy
        .caller_rtp
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = proxy
        .caller_rtp
        .recv_from(&mut buf)
        .expect("RTP at the caller");
    assert!(n > 12 && buf[0] >> 6 == 2, "an RTP packet");
    assert_eq!(from, SocketAddr::from(([127, 0, 0, 1], rtp_port)));

    // The 2xx is not retransmitted after the proxied ACK, and the BYE comes through the
    // proxy soon after the 2 s limit.
    let (bye, bye_at) = proxy
        .wait_for("BYE ", Duration::from_secs(6))
        .expect("the gateway's BYE reaches the proxy");
    let waited = bye_at - acked;
    assert!(
        waited < Duration::from_millis(3300),
        "BYE {waited:?} after the ACK; the limit is 2 s"
    );
    assert!(
        bye.starts_with(&format!("BYE sip:citizen@{} SIP/2.0\r\n", proxy.caller_sip)),
        "Request-URI is the caller's Contact (loose routing):\n{bye}"
    );
    assert_eq!(headers(&bye, "Route"), vec![proxy.record_route().as_str()]);
    assert!(header(&bye, "Via").contains(&gw.sip.to_string()), "{bye}");
    let bye_ok = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        header(&bye, "Via"),
        header(&bye, "From"),
        header(&bye, "To"),
        header(&bye, "Call-ID"),
        header(&bye, "CSeq"),
    );
    proxy.send(gw.sip, &bye_ok);
    let late = proxy.collect(Duration::from_millis(1200));
    assert!(
        late.iter().all(|m| !m.starts_with("BYE ")),
        "our 200 stopped the BYE: {late:?}"
    );

    // Call 2: the caller hangs up; its BYE arrives via the proxy and is answered there.
    let ok = answer(&proxy, &gw, "proxied-2@test");
    let contact = uri_in(header(&ok, "Contact")).to_string();
    let to = header(&ok, "To").to_string();
    proxy.send(
        gw.sip,
        &proxy.in_dialog("ACK", 1, &contact, &to, "proxied-2@test"),
    );
    std::thread::sleep(Duration::from_millis(300));
    proxy.send(
        gw.sip,
        &proxy.in_dialog("BYE", 2, &contact, &to, "proxied-2@test"),
    );
    let (bye_ok, _) = proxy
        .wait_for("SIP/2.0 200", Duration::from_secs(3))
        .expect("200 to the caller's BYE");
    assert_eq!(header(&bye_ok, "CSeq"), "2 BYE", "{bye_ok}");
    assert_eq!(headers(&bye_ok, "Via").len(), 2, "{bye_ok}");

    let records = gw.wait_records(2, Duration::from_secs(10));
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r["instance"], "gw-behind-proxy");
        let expected = if r["call_id"] == "proxied-1@test" {
            "gateway"
        } else {
            "caller"
        };
        assert_eq!(r["hangup"]["by"], expected, "{r:#}");
    }
}
