//! Issue 11, the SIP edge against the running daemon over real sockets: a peer that lies in
//! its Via (transport, `received`), a CANCEL crossing its INVITE, To tags, Replaces, where
//! our BYE goes behind NAT, TCP limits, and digest nonces bound to who they were issued to.

use super::super::harness::{options_request, GatewayProcess};
use super::super::ops::{http_get, metric, start_with_admin};
use hotline_gateway::sip::digest::{self, Challenge};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

/// A raw SIP peer on a loopback UDP socket.
struct Peer {
    sock: UdpSocket,
}

impl Peer {
    fn on(ip: &str) -> Peer {
        let sock = UdpSocket::bind(format!("{ip}:0")).unwrap();
        Peer { sock }
    }

    fn local(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    fn send(&self, gw: &GatewayProcess, text: &str) {
        self.sock.send_to(text.as_bytes(), gw.sip).unwrap();
    }

    /// Next datagram within `within`.
    fn recv(&self, within: Duration) -> Option<String> {
        self.sock
            .set_read_timeout(Some(within.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 8192];
        let (n, _) = self.sock.recv_from(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Every datagram within `window`.
    fn collect(&self, window: Duration) -> Vec<String> {
        let end = Instant::now() + window;
        let mut out = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if let Some(t) = self.recv(left) {
                out.push(t);
            }
        }
        out
    }

    /// The first datagram matching `want` within `within`.
    fn wait_for(&self, within: Duration, want: impl Fn(&str) -> bool) -> Option<String> {
        let end = Instant::now() + within;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if let Some(t) = self.recv(left) {
                if want(&t) {
                    return Some(t);
                }
            }
        }
        None
    }

    /// Send `text` and return the final response with its Call-ID and CSeq method.
    fn ask(&self, gw: &GatewayProcess, text: &str) -> String {
        self.send(gw, text);
        let call_id = header(text, "Call-ID").unwrap().to_string();
        let method = text.split(' ').next().unwrap().to_string();
        self.wait_for(Duration::from_secs(5), |t| {
            !t.starts_with("SIP/2.0 1")
                && header(t, "Call-ID") == Some(call_id.as_str())
                && header(t, "CSeq").is_some_and(|c| c.ends_with(&method))
        })
        .unwrap_or_else(|| panic!("no final response to {method}\n{}", gw.log()))
    }
}

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn status(text: &str) -> u16 {
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn to_has_tag(text: &str) -> bool {
    header(text, "To").is_some_and(|t| t.contains(";tag="))
}

/// A request from `from` (Via sent-by = `from`, with rport), `extra` headers and SDP when
/// `rtp_port` is given. (Eight plain arguments read better at the call sites than a builder.)
#[allow(clippy::too_many_arguments)]
fn request(
    method: &str,
    number: &str,
    from: SocketAddr,
    gw: SocketAddr,
    branch: &str,
    call_id: &str,
    extra: &str,
    rtp_port: Option<u16>,
) -> String {
    let sdp = rtp_port
        .map(|p| {
            format!(
                "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=audio {p} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
                 a=rtpmap:101 telephone-event/8000\r\n"
            )
        })
        .unwrap_or_default();
    let ctype = if sdp.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} sip:{number}@{gw} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:13800000000@{from}>;tag=edge\r\n\
         To: <sip:{number}@{gw}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 {method}\r\n\
         {extra}{ctype}Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

fn fresh() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Point 2: INVITE and CANCEL back to back. The caller gets 487, and then nothing of the
/// call may exist: no record (final or pending), no answered count, no ticket. A race, so
/// run it several times. When the CANCEL loses the race (our 200 went first, which RFC 3261
/// allows), that call is a real one: it is hung up and counted apart.
#[test]
fn a_cancel_crossing_the_invite_leaves_nothing_of_the_call() {
    let (gw, admin) = start_with_admin(Path::new("config/hotline.toml"));
    let peer = Peer::on("127.0.0.1");
    const ROUNDS: usize = 8;
    let mut cancelled: Vec<String> = Vec::new();
    let mut answered = 0;
    for round in 0..4 * ROUNDS {
        if cancelled.len() == ROUNDS {
            break;
        }
        let branch = format!("z9hG4bKx{}", fresh());
        let call_id = format!("cross-{round}-{}", fresh());
        let invite = request(
            "INVITE",
            "8890",
            peer.local(),
            gw.sip,
            &branch,
            &call_id,
            &format!("Contact: <sip:caller@{}>\r\n", peer.local()),
            Some(peer.local().port() + 2),
        );
        let cancel = request(
            "CANCEL",
            "8890",
            peer.local(),
            gw.sip,
            &branch,
            &call_id,
            "",
            None,
        );
        peer.send(&gw, &invite);
        peer.send(&gw, &cancel);
        let fin = peer
            .wait_for(Duration::from_secs(5), |t| {
                header(t, "Call-ID") == Some(call_id.as_str())
                    && header(t, "CSeq") == Some("1 INVITE")
                    && !t.starts_with("SIP/2.0 1")
            })
            .expect("a final answer to the INVITE");
        let to = header(&fin, "To").unwrap().to_string();
        let in_dialog = |method: &str, branch: &str, cseq: u32| {
            request(
                method,
                "8890",
                peer.local(),
                gw.sip,
                branch,
                &call_id,
                "",
                None,
            )
            .replace(&format!("To: <sip:8890@{}>", gw.sip), &format!("To: {to}"))
            .replace("CSeq: 1 ", &format!("CSeq: {cseq} "))
        };
        match status(&fin) {
            487 => {
                // ACK the 487 so the layer stops resending it.
                peer.send(&gw, &in_dialog("ACK", &branch, 1));
                cancelled.push(call_id);
            }
            200 => {
                answered += 1;
                peer.send(&gw, &in_dialog("ACK", &format!("z9hG4bKa{}", fresh()), 1));
                let bye = peer.ask(&gw, &in_dialog("BYE", &format!("z9hG4bKb{}", fresh()), 2));
                assert_eq!(status(&bye), 200, "{bye}");
            }
            other => panic!("round {round}: {other}\n{fin}"),
        }
    }
    assert_eq!(cancelled.len(), ROUNDS, "CANCEL never won the race");
    // The manager saw each cancelled INVITE after its CANCEL and made no call of it.
    let refused = "INVITE ended before our 200 (CANCEL): no call";
    let deadline = Instant::now() + Duration::from_secs(20);
    while gw.log().matches(refused).count() < ROUNDS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // An OPTIONS round trip: everything before it has been handled by the manager.
    let r = peer.ask(&gw, &options_request(peer.local(), gw.sip));
    assert_eq!(status(&r), 200, "{r}");
    let (code, m) = http_get(admin, "/metrics");
    assert_eq!(code, 200);
    assert_eq!(
        metric(&m, "hotline_calls_answered_total"),
        Some(answered as f64),
        "only the calls whose 200 went out count: {m}"
    );
    // Records and tickets of the answered calls (if any) arrive; none of a cancelled one.
    gw.wait_records(answered, Duration::from_secs(20));
    let mut leftovers = Vec::new();
    for f in files_under(&gw.calls())
        .into_iter()
        .chain(files_under(&gw.outbox()))
    {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        if cancelled.iter().any(|c| text.contains(c.as_str())) {
            leftovers.push(f);
        }
    }
    assert!(leftovers.is_empty(), "a cancelled call left {leftovers:?}");
    assert_eq!(gw.log().matches(refused).count(), ROUNDS, "{}", gw.log());
}

/// Points 3 and 4: a UDP datagram whose Via says TCP is answered over UDP (and its 404 is
/// retransmitted there, as UDP wants); a `received=` the sender wrote aims nothing: the
/// victim it names hears nothing, the real source gets the answers.
#[test]
fn a_via_cannot_choose_our_transport_or_aim_our_answers() {
    let gw = GatewayProcess::start(&[]);
    // A TCP listener where a spoofed Via points: it must never see a connection.
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let peer = Peer::on("127.0.0.1");
    for claimed in ["TCP", "TLS", "WS", "SCTP"] {
        let text = request(
            "INVITE",
            "4040404",
            peer.local(),
            gw.sip,
            &format!("z9hG4bKt{}", fresh()),
            &fresh(),
            "",
            None,
        )
        .replacen(
            &format!("SIP/2.0/UDP {}", peer.local()),
            &format!("SIP/2.0/{claimed} {}", trap.local_addr().unwrap()),
            1,
        );
        peer.send(&gw, &text);
        let got = peer.collect(Duration::from_millis(2000));
        let finals = got.iter().filter(|t| status(t) == 404).count();
        assert!(
            finals >= 2,
            "{claimed}: the 404 comes over UDP and is retransmitted (Timer G): {got:?}"
        );
        assert!(
            trap.accept().is_err(),
            "{claimed}: no TCP connection opened"
        );
    }

    // The victim at 127.0.0.2 on the peer's port: named by `received`, never answered.
    let victim = UdpSocket::bind(SocketAddr::new([127, 0, 0, 2].into(), peer.local().port()))
        .expect("loopback 127.0.0.2");
    victim
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let spoof = |method: &str, number: &str| {
        request(
            method,
            number,
            peer.local(),
            gw.sip,
            &format!("z9hG4bKr{}", fresh()),
            &fresh(),
            "",
            None,
        )
        .replacen(";rport", ";received=127.0.0.2", 1)
    };
    let r = peer.ask(&gw, &spoof("OPTIONS", "8890"));
    assert_eq!(status(&r), 200, "{r}");
    peer.send(&gw, &spoof("INVITE", "4040404"));
    let got = peer.collect(Duration::from_millis(1500));
    assert!(got.iter().any(|t| status(t) == 404), "{got:?}");
    let mut buf = [0u8; 4096];
    assert!(
        victim.recv_from(&mut buf).is_err(),
        "nothing reflected to the address in received="
    );
}

/// Points 5 and 7: every final response outside a dialog carries a To tag (§8.2.6.2), and
/// Replaces is not advertised (an INVITE requiring it gets 420).
#[test]
fn final_responses_outside_a_dialog_carry_a_to_tag_and_replaces_is_not_advertised() {
    let gw = GatewayProcess::start_with(
        Some("[[trunk]]\nname = \"edge\"\nsources = [\"127.0.0.1\"]\nusername = \"gw\"\npassword = \"pw\"\n\n[security]\nunknown_source = \"reject\"\n"),
        &[],
    );
    let peer = Peer::on("127.0.0.1");
    let stranger = Peer::on("127.0.0.3");
    let ask = |p: &Peer, method: &str, number: &str, extra: &str, sdp: bool| {
        let text = request(
            method,
            number,
            p.local(),
            gw.sip,
            &format!("z9hG4bKg{}", fresh()),
            &fresh(),
            extra,
            sdp.then_some(p.local().port() + 2),
        );
        p.ask(&gw, &text)
    };
    let options = ask(&peer, "OPTIONS", "8890", "", false);
    let mut answers = vec![
        (200, options.clone()),
        (405, ask(&peer, "REGISTER", "8890", "", false)),
        (401, ask(&peer, "INVITE", "8890", "", true)),
        (403, ask(&stranger, "OPTIONS", "8890", "", false)),
        (
            420,
            ask(&peer, "INVITE", "8890", "Require: replaces\r\n", true),
        ),
    ];
    for (want, got) in answers.drain(..) {
        assert_eq!(status(&got), want, "{got}");
        assert!(to_has_tag(&got), "{want} without a To tag:\n{got}");
    }
    assert!(
        header(&options, "Supported").is_none_or(|s| !s.contains("replaces")),
        "{options}"
    );
}

/// Point 8: a caller behind NAT: its Contact is a private address nothing reaches, its
/// requests come from loopback. Our BYE (the call hits its maximum duration) must reach
/// it at that source. The caller then wants credentials for it (407): logged, counted, and
/// the call is over anyway (its record is written).
#[test]
fn our_bye_reaches_a_caller_whose_contact_is_unreachable() {
    let admin: SocketAddr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let gw = GatewayProcess::start_with_config(
        Path::new("config/hotline.toml"),
        &[
            ("HOTLINE_LIMITS_MAX_CALL_DURATION_SECS", "2"),
            ("HOTLINE_ADMIN_LISTEN", &admin.to_string()),
        ],
    );
    let peer = Peer::on("127.0.0.1");
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let branch = format!("z9hG4bKn{}", fresh());
    let call_id = format!("nat-{}", fresh());
    let invite = request(
        "INVITE",
        "8890",
        peer.local(),
        gw.sip,
        &branch,
        &call_id,
        "Contact: <sip:citizen@10.255.255.1:5060>\r\n",
        Some(rtp.local_addr().unwrap().port()),
    )
    // The caller's own Via names its private address too; only the datagram's source
    // says where it is.
    .replacen(
        &format!("SIP/2.0/UDP {}", peer.local()),
        "SIP/2.0/UDP 10.255.255.1:5060",
        1,
    );
    let ok = peer.ask(&gw, &invite);
    assert_eq!(status(&ok), 200, "{ok}");
    let to = header(&ok, "To").unwrap();
    let ack = format!(
        "ACK sip:hotline@{gw} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.255.255.1:5060;branch=z9hG4bKa{b};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:13800000000@10.255.255.1>;tag=edge\r\n\
         To: {to}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n",
        gw = gw.sip,
        b = fresh(),
    );
    peer.send(&gw, &ack);
    let bye = peer
        .wait_for(Duration::from_secs(15), |t| t.starts_with("BYE "))
        .unwrap_or_else(|| panic!("our BYE reaches the caller's source\n{}", gw.log()));
    assert_eq!(header(&bye, "Call-ID"), Some(call_id.as_str()), "{bye}");
    assert!(bye.starts_with("BYE sip:citizen@10.255.255.1"), "{bye}");
    // Refuse it for want of credentials.
    let mut lines: Vec<&str> = bye.lines().take_while(|l| !l.is_empty()).collect();
    lines[0] = "SIP/2.0 407 Proxy Authentication Required";
    lines.retain(|l| {
        !l.starts_with("Max-Forwards") && !l.starts_with("Content-Length") && !l.is_empty()
    });
    let resp = format!(
        "{}\r\nProxy-Authenticate: Digest realm=\"nat\", nonce=\"1\"\r\nContent-Length: 0\r\n\r\n",
        lines.join("\r\n")
    );
    peer.send(&gw, &resp);
    assert_eq!(gw.wait_records(1, Duration::from_secs(15)).len(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, m) = http_get(admin, "/metrics");
        if metric(&m, "hotline_bye_failures_total{reason=\"auth\"}") == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "407 to our BYE counted:\n{m}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        gw.log()
            .contains("our BYE was refused for want of credentials"),
        "{}",
        gw.log()
    );
}

/// Point 9: TCP connections are bounded per source and must deliver a message in time;
/// the bounds are validated with key and line.
#[test]
fn tcp_connections_are_bounded_and_must_send_a_message_in_time() {
    let gw = GatewayProcess::start(&[
        ("HOTLINE_SIP_TCP_MAX_CONNECTIONS_PER_SOURCE", "2"),
        ("HOTLINE_SIP_TCP_MESSAGE_TIMEOUT_SECS", "3"),
    ]);
    let closed = |s: &mut TcpStream, within: Duration| {
        s.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    };
    let mut a = TcpStream::connect(gw.sip).unwrap();
    let mut b = TcpStream::connect(gw.sip).unwrap();
    // Over the per-source bound: closed at accept, long before the message timeout.
    let mut c = TcpStream::connect(gw.sip).unwrap();
    assert!(
        closed(&mut c, Duration::from_millis(2500)),
        "third connection closed at once"
    );
    // A complete OPTIONS in time is answered on its connection.
    let options =
        options_request(a.local_addr().unwrap(), gw.sip).replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    a.write_all(options.as_bytes()).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    let n = a.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200"));
    // A connection that never completes a message is closed after the timeout.
    b.write_all(b"OPTIONS sip:8890@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP x")
        .unwrap();
    assert!(
        closed(&mut b, Duration::from_secs(10)),
        "slow connection closed"
    );

    // The bounds are checked with key and line.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let base =
        std::fs::read_to_string(super::super::harness::repo().join("config/hotline.toml")).unwrap();
    let bad = base.replace(
        "tcp_max_connections_per_source = 32",
        "tcp_max_connections_per_source = 5000",
    );
    std::fs::write(&path, &bad).unwrap();
    let line = bad
        .lines()
        .position(|l| l.starts_with("tcp_max_connections_per_source"))
        .unwrap()
        + 1;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hotline-gateway"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("{line}: key `sip.tcp_max_connections_per_source`")),
        "{text}"
    );
}

/// Point 10: a digest nonce answered from another address than the one it was issued to
/// is stale; from its own address it authenticates.
#[test]
fn a_digest_nonce_only_works_from_where_it_was_issued() {
    let gw = GatewayProcess::start_with(
        Some("[[trunk]]\nname = \"edge\"\nsources = [\"127.0.0.1\", \"127.0.0.6\"]\nusername = \"gw\"\npassword = \"pw\"\n"),
        &[],
    );
    let home = Peer::on("127.0.0.1");
    let other = Peer::on("127.0.0.6");
    let invite = |p: &Peer, auth: Option<&str>| {
        let extra = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        // No SDP: once authenticated, the answer is 488 (no offer) and no call is set up.
        request(
            "INVITE",
            "8890",
            p.local(),
            gw.sip,
            &format!("z9hG4bKd{}", fresh()),
            &fresh(),
            &extra,
            None,
        )
    };
    let r = home.ask(&gw, &invite(&home, None));
    assert_eq!(status(&r), 401, "{r}");
    let ch = r
        .lines()
        .filter_map(|l| l.strip_prefix("WWW-Authenticate:"))
        .find_map(|v| Challenge::parse(v.trim()))
        .expect("a challenge");
    let auth = |nc| {
        digest::authorization(
            &ch,
            "gw",
            "pw",
            "INVITE",
            &format!("sip:8890@{}", gw.sip),
            nc,
            "cn",
        )
    };
    let r = other.ask(&gw, &invite(&other, Some(&auth(1))));
    assert_eq!(status(&r), 401, "another source may not spend it: {r}");
    assert!(r.contains("stale=true"), "{r}");
    let r = home.ask(&gw, &invite(&home, Some(&auth(2))));
    assert_eq!(status(&r), 488, "authenticated where it was issued: {r}");
}
