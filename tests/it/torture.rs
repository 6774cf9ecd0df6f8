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

const LOOPBACK: &str = "127.0.0.1";

/// Headers whose hosts the daemon may send to (`v` and `m` are the compact forms).
const ADDRESS_HEADERS: &[&str] = &["via", "v", "contact", "m", "route", "record-route"];

fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_host_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-'
}

fn starts_with_ci(v: &[u8], at: usize, what: &[u8]) -> bool {
    v.len() >= at + what.len() && v[at..at + what.len()].eq_ignore_ascii_case(what)
}

/// End of the host (a name, an IPv4 address or a bracketed IPv6 address) starting at `i`,
/// and of its `:port` when `with_port`.
fn host_end(v: &[u8], i: usize, with_port: bool) -> usize {
    let mut j = i;
    if v.get(j) == Some(&b'[') {
        while j < v.len() && v[j] != b']' {
            j += 1;
        }
        j = (j + 1).min(v.len());
    } else {
        while j < v.len() && is_host_char(v[j]) {
            j += 1;
        }
    }
    if with_port && v.get(j) == Some(&b':') && v.get(j + 1).is_some_and(u8::is_ascii_digit) {
        j += 1;
        while j < v.len() && v[j].is_ascii_digit() {
            j += 1;
        }
    }
    j
}

/// A span of the message to replace: host with the port (`true`) or the host alone.
type Span = (usize, usize, bool);

/// Via sent-by: `SIP / 2.0 / UDP <host[:port]>`, LWS (folding included) anywhere between.
fn via_sent_by(v: &[u8], base: usize, out: &mut Vec<Span>) {
    let skip_lws = |mut j: usize| {
        while j < v.len() && is_lws(v[j]) {
            j += 1;
        }
        j
    };
    let mut i = 0;
    while i < v.len() {
        if !starts_with_ci(v, i, b"SIP") || (i > 0 && is_host_char(v[i - 1])) {
            i += 1;
            continue;
        }
        let mut j = skip_lws(i + 3);
        if v.get(j) != Some(&b'/') {
            i += 1;
            continue;
        }
        j = skip_lws(j + 1);
        while j < v.len() && (v[j].is_ascii_digit() || v[j] == b'.') {
            j += 1;
        }
        j = skip_lws(j);
        if v.get(j) != Some(&b'/') {
            i += 1;
            continue;
        }
        j = skip_lws(j + 1);
        let transport = j;
        while j < v.len() && !is_lws(v[j]) && !matches!(v[j], b';' | b',') {
            j += 1;
        }
        if j == transport {
            i += 1;
            continue;
        }
        j = skip_lws(j);
        let end = host_end(v, j, true);
        if end > j {
            out.push((base + j, base + end, true));
        }
        i = end.max(i + 1);
    }
}

/// The host[:port] of every `sip:`/`sips:` URI (after the last `@` of the user part).
fn uri_hosts(v: &[u8], base: usize, out: &mut Vec<Span>) {
    let mut i = 0;
    while i < v.len() {
        let start = if starts_with_ci(v, i, b"sips:") {
            i + 5
        } else if starts_with_ci(v, i, b"sip:") {
            i + 4
        } else {
            i += 1;
            continue;
        };
        let stop = (start..v.len())
            .find(|&k| is_lws(v[k]) || matches!(v[k], b'>' | b',' | b'"' | b'?'))
            .unwrap_or(v.len());
        let host = v[start..stop]
            .iter()
            .rposition(|&b| b == b'@')
            .map_or(start, |at| start + at + 1);
        let end = host_end(v, host, true);
        if end > host {
            out.push((base + host, base + end, true));
        }
        i = end.max(start);
    }
}

/// Parameters that name a host: `received=`, `maddr=`.
fn host_params(v: &[u8], base: usize, out: &mut Vec<Span>) {
    for name in [&b"received"[..], b"maddr"] {
        let mut i = 0;
        while i < v.len() {
            if !starts_with_ci(v, i, name) {
                i += 1;
                continue;
            }
            let mut j = i + name.len();
            while j < v.len() && is_lws(v[j]) {
                j += 1;
            }
            if v.get(j) != Some(&b'=') {
                i += 1;
                continue;
            }
            j += 1;
            while j < v.len() && is_lws(v[j]) {
                j += 1;
            }
            let end = host_end(v, j, false);
            if end > j {
                out.push((base + j, base + end, false));
            }
            i = end.max(i + 1);
        }
    }
}

/// A header of the message: its lower-cased name and where its value (folding included)
/// lies in the message.
struct HeaderAt {
    name: String,
    value: std::ops::Range<usize>,
}

/// The headers (folded lines joined) and where the body starts, if the head ends.
fn headers(msg: &[u8]) -> (Vec<HeaderAt>, Option<usize>) {
    let head_end = msg.windows(4).position(|w| w == b"\r\n\r\n");
    let limit = head_end.map_or(msg.len(), |e| e + 2);
    let mut out: Vec<HeaderAt> = Vec::new();
    // Skip the start line.
    let mut at = msg[..limit]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(limit, |p| p + 2);
    while at < limit {
        let line_end = msg[at..limit]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(limit, |p| at + p);
        if matches!(msg[at], b' ' | b'\t') {
            if let Some(last) = out.last_mut() {
                last.value.end = line_end;
            }
        } else if let Some(colon) = msg[at..line_end].iter().position(|&b| b == b':') {
            out.push(HeaderAt {
                name: String::from_utf8_lossy(&msg[at..at + colon])
                    .trim()
                    .to_ascii_lowercase(),
                value: at + colon + 1..line_end,
            });
        }
        at = line_end + 2;
    }
    (out, head_end.map(|e| e + 4))
}

/// The body as Content-Length declares it (octets after it are another matter, §18.3:
/// the daemon discards them); the rest of the datagram when the length is not a plain
/// number or is larger than what is there.
fn body_range(
    msg: &[u8],
    hdrs: &[HeaderAt],
    body_start: Option<usize>,
) -> Option<std::ops::Range<usize>> {
    let start = body_start?;
    let declared = hdrs
        .iter()
        .filter(|h| h.name == "content-length" || h.name == "l")
        .map(|h| {
            String::from_utf8_lossy(&msg[h.value.clone()])
                .trim()
                .parse::<usize>()
        })
        .collect::<Vec<_>>();
    let end = match declared.as_slice() {
        [Ok(n)] => (start + n).min(msg.len()),
        _ => msg.len(),
    };
    Some(start..end)
}

/// `msg` with every address the daemon could send to pointed at `127.0.0.1:port`.
fn rewrite(msg: &[u8], port: u16) -> Vec<u8> {
    let (hdrs, body_start) = headers(msg);
    let mut spans: Vec<Span> = Vec::new();
    for h in &hdrs {
        if !ADDRESS_HEADERS.contains(&h.name.as_str()) {
            continue;
        }
        let v = &msg[h.value.clone()];
        if matches!(h.name.as_str(), "via" | "v") {
            via_sent_by(v, h.value.start, &mut spans);
        } else {
            uri_hosts(v, h.value.start, &mut spans);
        }
        host_params(v, h.value.start, &mut spans);
    }
    // SDP connection addresses (where RTP would go), in any body part.
    if let Some(body) = body_range(msg, &hdrs, body_start) {
        let needle = b"c=IN IP4 ";
        let mut i = body.start;
        while let Some(p) = msg[i..body.end]
            .windows(needle.len())
            .position(|w| w == needle)
        {
            let host = i + p + needle.len();
            let end = host_end(msg, host, false);
            spans.push((host, end, false));
            i = end.max(host);
        }
    }
    let replacement = |with_port: bool| {
        if with_port {
            format!("{LOOPBACK}:{port}")
        } else {
            LOOPBACK.to_string()
        }
    };
    let body_delta: i64 = spans
        .iter()
        .filter(|(s, _, _)| body_start.is_some_and(|b| *s >= b))
        .map(|(s, e, p)| replacement(*p).len() as i64 - (e - s) as i64)
        .sum();
    // Content-Length follows the body, by the same amount, when it says a plain number: a
    // deliberately wrong one stays as wrong as it was, a negative or doubled one untouched.
    let lengths: Vec<&HeaderAt> = hdrs
        .iter()
        .filter(|h| h.name == "content-length" || h.name == "l")
        .collect();
    let mut length_span = None;
    if body_delta != 0 && lengths.len() == 1 {
        let r = lengths[0].value.clone();
        let text = &msg[r.clone()];
        let first = text.iter().position(|b| !is_lws(*b));
        if let Some(first) = first {
            let digits = text[first..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if let Ok(old) = std::str::from_utf8(&text[first..first + digits])
                .unwrap()
                .parse::<i64>()
            {
                length_span = Some((r.start + first, r.start + first + digits, old + body_delta));
            }
        }
    }
    let mut edits: Vec<(usize, usize, String)> = spans
        .into_iter()
        .map(|(s, e, p)| (s, e, replacement(p)))
        .collect();
    if let Some((s, e, n)) = length_span {
        edits.push((s, e, n.to_string()));
    }
    edits.sort_by_key(|(s, _, _)| std::cmp::Reverse(*s));
    let mut out = msg.to_vec();
    for (s, e, text) in edits {
        out.splice(s..e, text.into_bytes());
    }
    out
}

/// Addresses other than loopback left in address-bearing headers or SDP `c=` lines.
fn foreign_addresses(msg: &[u8]) -> Vec<String> {
    let (hdrs, body_start) = headers(msg);
    let mut found = Vec::new();
    let mut check = |what: &str, text: &str| {
        let lower = text.to_ascii_lowercase();
        for word in [
            "example", "examle", ".com", ".net", ".org", "192.168.", "192.0.2.",
        ] {
            if lower.contains(word) {
                found.push(format!("{what}: {text}"));
                return;
            }
        }
        // Any IPv4 literal must be loopback.
        for token in lower.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
            if token.matches('.').count() == 3 && token != LOOPBACK {
                found.push(format!("{what}: {text}"));
                return;
            }
        }
    };
    for h in &hdrs {
        if ADDRESS_HEADERS.contains(&h.name.as_str()) {
            check(&h.name, &String::from_utf8_lossy(&msg[h.value.clone()]));
        }
    }
    if let Some(b) = body_range(msg, &hdrs, body_start) {
        for line in String::from_utf8_lossy(&msg[b]).lines() {
            if line.starts_with("c=") {
                check("sdp", line);
            }
        }
    }
    found
}

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
        eprintln!("SKIPPED: RFC 4475 messages not found next to the crate");
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
        eprintln!("SKIPPED: RFC 4475 messages not found next to the crate");
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
        eprintln!("SKIPPED: RFC 4475 messages not found next to the crate");
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
