//! Hand-written datagrams against the daemon: what each kind of request gets back.

use super::harness::{options_request, GatewayProcess};
use std::net::UdpSocket;
use std::time::Duration;

struct Peer {
    sock: UdpSocket,
}

impl Peer {
    fn new() -> Peer {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        Peer { sock }
    }

    fn local(&self) -> std::net::SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// Send and return the final response to it (skipping 1xx and retransmissions of
    /// earlier answers, told apart by Call-ID), or None on silence.
    fn ask(&self, gw: &GatewayProcess, msg: &str) -> Option<String> {
        let call_id = header(msg, "Call-ID").map(str::to_owned);
        self.sock.send_to(msg.as_bytes(), gw.sip).unwrap();
        let mut buf = [0u8; 8192];
        loop {
            let (n, _) = self.sock.recv_from(&mut buf).ok()?;
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !text.starts_with("SIP/2.0 1")
                && header(&text, "Call-ID").map(str::to_owned) == call_id
            {
                return Some(text);
            }
        }
    }
}

fn request(method: &str, peer: &Peer, gw: &GatewayProcess, extra: &str) -> String {
    let local = peer.local();
    format!(
        "{method} sip:8890@{gw} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{b};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:13800000000@{local}>;tag=abc\r\n\
         To: <sip:8890@{gw}>{extra}\r\n\
         Call-ID: {b}@127.0.0.1\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: 0\r\n\r\n",
        gw = gw.sip,
        b = uuid::Uuid::new_v4().simple(),
    )
}

fn header<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    resp.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

#[test]
fn each_request_kind_gets_the_right_answer() {
    let gw = GatewayProcess::start(&[]);
    let peer = Peer::new();

    let r = peer
        .ask(&gw, &options_request(peer.local(), gw.sip))
        .expect("OPTIONS answered");
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let allow = header(&r, "Allow").expect("Allow");
    for m in ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE"] {
        assert!(allow.contains(m), "Allow lacks {m}: {allow}");
    }
    assert!(
        header(&r, "Accept").is_some_and(|a| a.contains("application/sdp")),
        "{r}"
    );
    // Nothing is advertised that is not implemented (Replaces, RFC 3891: issue 11).
    assert!(
        header(&r, "Supported").is_none_or(|s| !s.to_ascii_lowercase().contains("replaces")),
        "{r}"
    );

    let r = peer
        .ask(&gw, &request("REGISTER", &peer, &gw, ""))
        .expect("REGISTER answered");
    assert!(r.starts_with("SIP/2.0 405"), "{r}");
    assert!(
        header(&r, "Allow").is_some(),
        "405 must say what is allowed: {r}"
    );

    let r = peer
        .ask(&gw, &request("BYE", &peer, &gw, ";tag=nosuchdialog"))
        .expect("BYE answered");
    assert!(r.starts_with("SIP/2.0 481"), "{r}");

    // Responses follow rport back to the source port (RFC 3581).
    assert!(r.contains(&format!("rport={}", peer.local().port())), "{r}");

    // Garbage gets no answer, and the daemon keeps serving.
    peer.sock
        .send_to(b"\x00\x01hello world\r\n\r\n", gw.sip)
        .unwrap();
    let mut buf = [0u8; 512];
    peer.sock
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        peer.sock.recv_from(&mut buf).is_err(),
        "garbage must be dropped silently"
    );
    peer.sock
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let r = peer
        .ask(&gw, &options_request(peer.local(), gw.sip))
        .expect("still answering");
    assert!(r.starts_with("SIP/2.0 200"), "{r}");

    // An INVITE without SDP (late offer) is refused cleanly, not half-answered.
    let r = peer
        .ask(&gw, &request("INVITE", &peer, &gw, ""))
        .expect("INVITE answered");
    assert!(r.starts_with("SIP/2.0 488"), "{r}");

    // Max-Forwards 0 is a loop.
    let invite = request("INVITE", &peer, &gw, "").replace("Max-Forwards: 70", "Max-Forwards: 0");
    let r = peer.ask(&gw, &invite).expect("answered");
    assert!(r.starts_with("SIP/2.0 483"), "{r}");
}

fn invite_with_sdp(peer: &Peer, gw: &GatewayProcess) -> String {
    let local = peer.local();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        local.port() + 2
    );
    let contact = format!("Max-Forwards: 70\r\nContact: <sip:caller@{local}>\r\n");
    request("INVITE", peer, gw, "")
        .replace("Max-Forwards: 70\r\n", &contact)
        .replace(
            "Content-Length: 0\r\n",
            &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n",
                sdp.len()
            ),
        )
        + &sdp
}

#[test]
fn at_the_call_limit_invites_get_503_with_retry_after_and_options_says_busy() {
    let gw = GatewayProcess::start(&[
        ("HOTLINE_LIMITS_MAX_CALLS", "1"),
        ("HOTLINE_LIMITS_RETRY_AFTER_SECS", "42"),
    ]);
    let first = Peer::new();
    let r = first
        .ask(&gw, &invite_with_sdp(&first, &gw))
        .expect("first INVITE answered");
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    assert!(r.contains("m=audio "), "200 carries the SDP answer: {r}");

    let second = Peer::new();
    let r = second
        .ask(&gw, &invite_with_sdp(&second, &gw))
        .expect("second INVITE answered");
    assert!(r.starts_with("SIP/2.0 503"), "{r}");
    assert_eq!(header(&r, "Retry-After"), Some("42"), "{r}");

    // Load balancers probe with OPTIONS: a full gateway says so.
    let r = second
        .ask(&gw, &options_request(second.local(), gw.sip))
        .expect("OPTIONS answered");
    assert!(r.starts_with("SIP/2.0 503"), "{r}");
}

/// A SIP-I trunk (RFC 3204) sends its offer as `multipart/mixed`: the SDP beside an ISUP
/// IAM. The call is answered from the SDP part; an ISUP part marked `handling=required`
/// cannot be honoured and gets 415.
#[test]
fn a_sip_i_multipart_offer_is_answered_from_its_sdp_part() {
    let gw = GatewayProcess::start(&[]);
    for (handling, code) in [("optional", 200), ("required", 415)] {
        let peer = Peer::new();
        let plain = invite_with_sdp(&peer, &gw);
        let (head, sdp) = plain.split_once("\r\n\r\n").unwrap();
        let body = format!(
            "--sipi-1\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--sipi-1\r\n\
             Content-Type: application/isup; version=itu-t92+\r\n\
             Content-Disposition: signal; handling={handling}\r\n\r\n\
             \x01\x00\x60\x01\x0a\x00\x02\x0a\x08\x03\x10\r\n--sipi-1--\r\n"
        );
        let head = head
            .replace(
                "Content-Type: application/sdp",
                "Content-Type: multipart/mixed;boundary=sipi-1",
            )
            .replace(
                &format!("Content-Length: {}", sdp.len()),
                &format!("Content-Length: {}", body.len()),
            );
        let r = peer
            .ask(&gw, &format!("{head}\r\n\r\n{body}"))
            .unwrap_or_else(|| panic!("no answer\n{}", gw.log()));
        assert!(
            r.starts_with(&format!("SIP/2.0 {code} ")),
            "{handling}: {r}"
        );
        if code == 200 {
            assert_eq!(header(&r, "Content-Type"), Some("application/sdp"), "{r}");
            assert!(r.contains("m=audio ") && r.contains("PCMU/8000"), "{r}");
        }
    }
}
