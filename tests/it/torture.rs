//! The RFC 4475 torture messages against the running daemon, over a real UDP socket: each is
//! answered with the status the shared table (`tests/torture_common`) says, or dropped, and
//! the daemon keeps answering OPTIONS after every batch.
//!
//! The messages name hosts such as 192.0.2.x and *.example.com. Before one is sent, every
//! address the daemon could send to (Via sent-by, `received`/`maddr`, URIs in Contact, Route
//! and Record-Route, SDP `c=`) is rewritten on the bytes to 127.0.0.1 and this test's port;
//! everything else stays byte for byte (the malformation is the point of most messages), and
//! Content-Length follows the body when the body changes. Each rewritten message is checked
//! twice before it leaves: no foreign address is left in an address-bearing header, and
//! `parse` still makes of it what the table says (the rewrite repaired nothing).
//!
//! A top Via naming TCP or TLS makes the daemon answer over TCP (RFC 3261 §18.2.2: no
//! connection exists, so it opens one to the source address and the sent-by port), so the
//! test also listens on TCP at its UDP port number. Each message goes from a socket of its
//! own, as it would from its own host.

use super::harness::{options_request, GatewayProcess};
use super::torture_common::{self, outcome, torture_dir, Wire, TABLE};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod rewrite;
use rewrite::{foreign_addresses, rewrite};

/// The first value of a header in a message as text (`Call-ID`/`i`, ...).
fn header_value(text: &str, names: &[&str]) -> Option<String> {
    text.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        names
            .iter()
            .any(|n| k.trim().eq_ignore_ascii_case(n))
            .then(|| v.trim().to_string())
    })
}

fn branch(text: &str) -> Option<String> {
    let via = header_value(text, &["via", "v"])?;
    let at = via.to_ascii_lowercase().find("branch")?;
    let rest = via[at + 6..].trim_start().strip_prefix('=')?.trim_start();
    Some(
        rest.chars()
            .take_while(|c| !matches!(c, ';' | ',' | ' ' | '\r' | '\n'))
            .collect(),
    )
}

/// Our end: a UDP socket, and a TCP listener on the same port for answers the daemon sends
/// over TCP, framed by Content-Length.
struct Peer {
    udp: UdpSocket,
    tcp: mpsc::Receiver<String>,
}

impl Peer {
    fn new() -> Peer {
        let (udp, listener) = (0..50)
            .find_map(|_| {
                let udp = UdpSocket::bind("127.0.0.1:0").ok()?;
                let port = udp.local_addr().ok()?.port();
                let tcp = TcpListener::bind(("127.0.0.1", port)).ok()?;
                Some((udp, tcp))
            })
            .expect("a port free for both UDP and TCP");
        udp.set_read_timeout(Some(Duration::from_millis(40)))
            .unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    while let Ok(n) = stream.read(&mut chunk) {
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(msg) = take_framed(&mut buf) {
                            if tx.send(msg).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Peer { udp, tcp: rx }
    }

    fn port(&self) -> u16 {
        self.udp.local_addr().unwrap().port()
    }

    fn local(&self) -> SocketAddr {
        self.udp.local_addr().unwrap()
    }

    /// The next message from the daemon on either transport, until `deadline`.
    fn next(&self, deadline: Instant) -> Option<(String, &'static str)> {
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            if let Ok(text) = self.tcp.try_recv() {
                return Some((text, "tcp"));
            }
            if let Ok((n, _)) = self.udp.recv_from(&mut buf) {
                return Some((String::from_utf8_lossy(&buf[..n]).into_owned(), "udp"));
            }
        }
        None
    }

    /// The final response to `request` (matched by Call-ID, else by top-Via branch), skipping
    /// 1xx and retransmitted answers to earlier messages.
    fn final_response(&self, request: &str, wait: Duration) -> Option<(String, &'static str)> {
        let call_id = header_value(request, &["call-id", "i"]);
        let want_branch = branch(request);
        let deadline = Instant::now() + wait;
        while let Some((text, transport)) = self.next(deadline) {
            assert!(
                text.starts_with("SIP/2.0 "),
                "the daemon sent a request, which no torture message should cause:\n{text}"
            );
            if text.starts_with("SIP/2.0 1") {
                continue;
            }
            let ours = match &call_id {
                Some(id) => header_value(&text, &["call-id", "i"]).as_ref() == Some(id),
                None => branch(&text) == want_branch,
            };
            if ours {
                return Some((text, transport));
            }
        }
        None
    }

    fn options_answered_200(&self, gw: &GatewayProcess) -> bool {
        let req = options_request(self.local(), gw.sip);
        self.udp.send_to(req.as_bytes(), gw.sip).unwrap();
        self.final_response(&req, Duration::from_secs(2))
            .is_some_and(|(r, _)| r.starts_with("SIP/2.0 200"))
    }
}

/// One whole message off the front of a TCP byte stream.
fn take_framed(buf: &mut Vec<u8>) -> Option<String> {
    let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&buf[..head]).into_owned();
    let length: usize = header_value(&text, &["content-length", "l"])
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if buf.len() < head + length {
        return None;
    }
    let msg: Vec<u8> = buf.drain(..head + length).collect();
    Some(String::from_utf8_lossy(&msg).into_owned())
}

#[test]
fn the_rewrite_points_every_address_at_loopback_and_repairs_nothing() {
    let Some(dir) = torture_dir() else {
        return;
    };
    for case in TABLE {
        let original = torture_common::read(&dir, case.name);
        let rewritten = rewrite(&original, 40000);
        let left = foreign_addresses(&rewritten);
        assert!(left.is_empty(), "{}: {left:?}", case.name);
        assert_eq!(
            outcome(&rewritten),
            Ok(case.parser),
            "{}: the rewrite changed what the parser makes of it",
            case.name
        );
        // Only addresses changed: everything outside them is the same bytes.
        let strip = |b: &[u8]| -> String {
            String::from_utf8_lossy(b)
                .replace("127.0.0.1:40000", "")
                .replace("127.0.0.1", "")
        };
        assert!(
            strip(&rewritten).len() <= strip(&original).len(),
            "{}",
            case.name
        );
    }
    // The tortuous INVITE's folded Vias are all found, and its body length still holds.
    let wsinv = String::from_utf8(rewrite(&torture_common::read(&dir, "wsinv"), 40000)).unwrap();
    assert!(
        wsinv.contains("/UDP\r\n    127.0.0.1:40000;branch=390skdjuw"),
        "{wsinv}"
    );
    assert!(wsinv.contains("/ TCP     127.0.0.1:40000   ;"), "{wsinv}");
    assert!(
        wsinv.contains("/ UDP  127.0.0.1:40000   ; branch="),
        "{wsinv}"
    );
    assert!(wsinv.contains("Content-Length   : 150\r\n"), "{wsinv}");
    let inv2543 =
        String::from_utf8(rewrite(&torture_common::read(&dir, "inv2543"), 40000)).unwrap();
    assert!(
        inv2543.contains("<sip:UserB@127.0.0.1:40000;maddr=127.0.0.1>"),
        "{inv2543}"
    );
}

#[test]
fn every_torture_message_is_answered_or_dropped_as_rfc_4475_expects() {
    let Some(dir) = torture_dir() else {
        return;
    };
    let mut gw = GatewayProcess::start(&[]);
    let peer = Peer::new();
    assert!(peer.options_answered_200(&gw), "OPTIONS before the batch");

    let mut failures = Vec::new();
    for (i, case) in TABLE.iter().enumerate() {
        // A socket of its own per message: many of them share a branch (z9hG4bKkdjuw), and
        // with one sent-by for all they would be one transaction (§17.2.3) and get the
        // first one's answer again.
        let sender = Peer::new();
        let bytes = rewrite(&torture_common::read(&dir, case.name), sender.port());
        let left = foreign_addresses(&bytes);
        assert!(left.is_empty(), "{}: would reach {left:?}", case.name);
        assert_eq!(outcome(&bytes), Ok(case.parser), "{}", case.name);
        sender.udp.send_to(&bytes, gw.sip).unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let wait = match case.daemon {
            Wire::Answer(_) => Duration::from_secs(3),
            // Long enough for an answer to have come back, had there been one.
            Wire::Silent => Duration::from_millis(600),
        };
        let got = sender.final_response(&text, wait);
        match (case.daemon, &got) {
            (Wire::Silent, None) => {}
            (Wire::Answer(code), Some((r, _))) if r.starts_with(&format!("SIP/2.0 {code} ")) => {
                if case.name == "bext01" {
                    let unsupported = header_value(r, &["unsupported"]).unwrap_or_default();
                    assert!(
                        unsupported.contains("nothingSupportsThis")
                            && unsupported.contains("nothingSupportsThisEither"),
                        "420 names what is unsupported: {r}"
                    );
                }
            }
            _ => failures.push(format!(
                "{}: expected {:?}, got {:?} ({})",
                case.name,
                case.daemon,
                got.as_ref()
                    .map(|(r, t)| format!("{t}: {}", r.lines().next().unwrap_or(""))),
                case.why
            )),
        }
        if i % 10 == 9 {
            assert!(
                peer.options_answered_200(&gw),
                "OPTIONS after message {} ({})\n{}",
                i + 1,
                case.name,
                gw.log()
            );
        }
    }
    assert!(
        failures.is_empty(),
        "\n{}\n--- daemon log:\n{}",
        failures.join("\n"),
        gw.log()
    );
    assert!(peer.options_answered_200(&gw), "OPTIONS after all 49");
    assert!(
        gw.wait_exit(Duration::ZERO).is_none(),
        "the daemon is still running"
    );
    let log = gw.stop();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn once_the_number_is_served_the_content_checks_answer_415_and_406() {
    let Some(dir) = torture_dir() else {
        return;
    };
    // `invut` and `sdp01` call sip:user@..., which no [[number]] serves, so in the run above
    // the Request-URI check (404) comes first, as §8.2.2.1 orders it. Dialling 8890 instead
    // (the only change besides the addresses) reaches the content checks of §8.2.3/§21.4.7.
    let gw = GatewayProcess::start(&[]);
    for (name, code) in [("invut", 415), ("sdp01", 406)] {
        let peer = Peer::new();
        let bytes = rewrite(&torture_common::read(&dir, name), peer.port());
        let text = String::from_utf8_lossy(&bytes).replacen(
            "INVITE sip:user@example.com SIP/2.0",
            "INVITE sip:8890@example.com SIP/2.0",
            1,
        );
        assert!(text.starts_with("INVITE sip:8890@"), "{text}");
        peer.udp.send_to(text.as_bytes(), gw.sip).unwrap();
        let (r, _) = peer
            .final_response(&text, Duration::from_secs(3))
            .unwrap_or_else(|| panic!("{name}: no answer\n{}", gw.log()));
        assert!(r.starts_with(&format!("SIP/2.0 {code} ")), "{name}: {r}");
        if code == 415 {
            assert_eq!(
                header_value(&r, &["accept"]).as_deref(),
                Some("application/sdp"),
                "{r}"
            );
        }
    }
}
