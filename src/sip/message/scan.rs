//! The tolerant raw line scan that runs before anything else: finds the start line, the
//! header rows and the body, and undoes what RFC 3261 allows but `rsip` 0.4 rejects —
//! bare LF line ends, leading keep-alive CRLFs, line folding (§7.3.1), whitespace before
//! the colon, compact header names (§7.3.3). It never fails on a header row: rows it
//! cannot read are recorded in [`Scanned::problem`] so a 400 can still be built from the
//! rows it could (the response needs the Vias, From, To, Call-ID and CSeq).

use super::grammar::split_top_level;

/// A datagram split into its parts, header names made canonical.
#[derive(Debug)]
pub(crate) struct Scanned {
    pub start_line: String,
    /// (canonical name, value) in wire order; comma-joined Via/Route/Record-Route/Contact
    /// rows are split into one entry per value.
    pub headers: Vec<(String, String)>,
    /// Everything after the empty line (not yet cut to Content-Length).
    pub body: Vec<u8>,
    /// The start line or a header row held bytes that are not UTF-8.
    pub non_utf8: bool,
    /// The first header row we could not read, if any.
    pub problem: Option<String>,
}

impl Scanned {
    /// Values of all rows named `name` (canonical long name, case-insensitive).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn first<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.values(name).next()
    }
}

/// RFC 3261 §7.3.3 and the compact forms registered since (IANA "Header Fields").
pub(crate) fn long_name(name: &str) -> Option<&'static str> {
    let n = name.as_bytes();
    if n.len() != 1 {
        return None;
    }
    Some(match n[0].to_ascii_lowercase() {
        b'a' => "Accept-Contact",
        b'b' => "Referred-By",
        b'c' => "Content-Type",
        b'd' => "Request-Disposition",
        b'e' => "Content-Encoding",
        b'f' => "From",
        b'i' => "Call-ID",
        b'j' => "Reject-Contact",
        b'k' => "Supported",
        b'l' => "Content-Length",
        b'm' => "Contact",
        b'n' => "Identity-Info",
        b'o' => "Event",
        b'r' => "Refer-To",
        b's' => "Subject",
        b't' => "To",
        b'u' => "Allow-Events",
        b'v' => "Via",
        b'x' => "Session-Expires",
        b'y' => "Identity",
        _ => return None,
    })
}

/// Canonical spelling for the headers the stack reads, so lookups and output are uniform.
fn canonical_name(name: &str) -> String {
    if let Some(long) = long_name(name) {
        return long.to_string();
    }
    const KNOWN: [&str; 12] = [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Max-Forwards",
        "Content-Length",
        "Content-Type",
        "Route",
        "Record-Route",
        "Date",
    ];
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map(|k| k.to_string())
        .unwrap_or_else(|| name.to_string())
}

/// Headers whose comma-joined rows we split into one row per value.
const LIST_HEADERS: [&str; 4] = ["Via", "Route", "Record-Route", "Contact"];

/// Scan a datagram. `Err` only when there is no start line at all (empty / whitespace).
pub(crate) fn scan(bytes: &[u8]) -> Result<Scanned, String> {
    let first = bytes
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
        .ok_or_else(|| "empty datagram".to_string())?;
    // Leading CRLFs are keep-alives (RFC 5626 §4.4.1); leading SP before a start line is not SIP.
    let bytes = &bytes[first..];

    // Split into lines at LF (CR before it dropped) until the first empty line.
    let mut lines: Vec<&[u8]> = Vec::new();
    let mut pos = 0;
    let mut body_start = bytes.len();
    while pos < bytes.len() {
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| pos + i);
        let (line, next) = match end {
            Some(e) => (&bytes[pos..e], e + 1),
            None => (&bytes[pos..], bytes.len()),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos = next;
        if line.is_empty() {
            body_start = pos;
            break;
        }
        lines.push(line);
    }
    if body_start > bytes.len() {
        body_start = bytes.len();
    }

    let mut non_utf8 = false;
    let mut text = |l: &[u8]| -> String {
        match std::str::from_utf8(l) {
            Ok(s) => s.to_string(),
            Err(_) => {
                non_utf8 = true;
                String::from_utf8_lossy(l).into_owned()
            }
        }
    };

    let start_line = text(lines[0]);
    // Unfold: a row starting with SP/HT continues the previous one (§7.3.1).
    let mut rows: Vec<String> = Vec::new();
    let mut problem = None;
    for &line in &lines[1..] {
        let l = text(line);
        if l.starts_with([' ', '\t']) {
            match rows.last_mut() {
                Some(prev) => {
                    prev.push(' ');
                    prev.push_str(l.trim_matches([' ', '\t']));
                }
                None => {
                    problem.get_or_insert_with(|| "folded line before any header".to_string());
                }
            }
        } else {
            rows.push(l);
        }
    }

    let mut headers = Vec::with_capacity(rows.len());
    for row in rows {
        let Some((name, value)) = row.split_once(':') else {
            problem.get_or_insert_with(|| "header row without a colon".to_string());
            continue;
        };
        let name = name.trim_end_matches([' ', '\t']);
        if name.is_empty() || !super::grammar::is_token(name) {
            problem.get_or_insert_with(|| "malformed header name".to_string());
            continue;
        }
        let name = canonical_name(name);
        let value = value.trim_matches([' ', '\t']);
        if LIST_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(&name)) && value != "*" {
            for part in split_top_level(value, ',') {
                headers.push((name.clone(), part.to_string()));
            }
        } else {
            headers.push((name, value.to_string()));
        }
    }

    Ok(Scanned {
        start_line,
        headers,
        body: bytes[body_start..].to_vec(),
        non_utf8,
        problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfolds_expands_compact_names_and_splits_vias() {
        let raw = b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\nv: SIP/2.0/UDP h1;branch=z9hG4bK1,\n SIP/2.0/UDP h2\r\nSubject :\r\n hello\n\t world\r\ni: abc\n\nBODY";
        let s = scan(raw).unwrap();
        assert_eq!(s.start_line, "OPTIONS sip:a@b SIP/2.0");
        let vias: Vec<_> = s.values("Via").collect();
        assert_eq!(
            vias,
            vec!["SIP/2.0/UDP h1;branch=z9hG4bK1", "SIP/2.0/UDP h2"]
        );
        assert_eq!(s.first("Subject"), Some("hello world"));
        assert_eq!(s.first("Call-ID"), Some("abc"));
        assert_eq!(s.body, b"BODY");
        assert!(s.problem.is_none());
    }

    #[test]
    fn whitespace_only_is_an_error() {
        assert!(scan(b"\r\n\r\n  ").is_err());
        assert!(scan(b"").is_err());
    }

    #[test]
    fn non_utf8_is_flagged_and_rows_are_kept() {
        let s = scan(b"INVITE sip:a@b SIP/2.0\r\nSubject: \xff\xfe\r\nCall-ID: x\r\n\r\n").unwrap();
        assert!(s.non_utf8);
        assert_eq!(s.first("Call-ID"), Some("x"));
    }
}
