//! Pointing a torture message at loopback, on the bytes: every host the daemon could send
//! to (Via sent-by, `received`/`maddr`, URIs in Contact, Route and Record-Route, SDP `c=`)
//! becomes 127.0.0.1 (with the test's port where a port belongs), and nothing else changes
//! but Content-Length, which follows the body by the same amount.

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
pub fn rewrite(msg: &[u8], port: u16) -> Vec<u8> {
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
pub fn foreign_addresses(msg: &[u8]) -> Vec<String> {
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
