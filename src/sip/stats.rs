//! SIP message counters: requests by method and responses by method and status code, in
//! each direction, kept in fixed tables of atomics.
//!
//! The endpoint counts from the bytes on the wire (the start line and the CSeq method), so
//! counting costs a short scan and one atomic add: no parsing, no allocation, no lock, and
//! outgoing messages (already serialised by the transaction layer) are counted the same way
//! as incoming ones. Retransmissions are messages on the wire and are counted as such.

use std::sync::atomic::{AtomicU64, Ordering};

/// Methods with their own row; anything else is counted as `OTHER`.
pub const METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "INFO",
    "UPDATE",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "OTHER",
];
const OTHER: usize = METHODS.len() - 1;
/// Status codes 100..=699 each have a slot.
const CODES: usize = 600;

/// Which way a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    In = 0,
    Out = 1,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// Requests per (direction, method); responses per (direction, CSeq method, code).
#[derive(Debug)]
pub struct SipCounters {
    requests: Box<[AtomicU64]>,
    responses: Box<[AtomicU64]>,
}

impl Default for SipCounters {
    fn default() -> Self {
        let table = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect();
        SipCounters {
            requests: table(2 * METHODS.len()),
            responses: table(2 * METHODS.len() * CODES),
        }
    }
}

/// One counted message, as read from its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    Request { method: usize },
    Response { method: usize, code: u16 },
}

impl SipCounters {
    /// Count one message by its bytes; returns what it was counted as (`None`: not a SIP
    /// start line, nothing counted).
    pub fn count(&self, dir: Direction, bytes: &[u8]) -> Option<Counted> {
        let counted = classify(bytes)?;
        let slot = match counted {
            Counted::Request { method } => &self.requests[dir as usize * METHODS.len() + method],
            Counted::Response { method, code } => {
                let i = (dir as usize * METHODS.len() + method) * CODES + usize::from(code - 100);
                &self.responses[i]
            }
        };
        slot.fetch_add(1, Ordering::Relaxed);
        Some(counted)
    }

    /// Non-zero request counters: `(direction, method, count)`.
    pub fn requests(&self) -> Vec<(Direction, &'static str, u64)> {
        let mut out = Vec::new();
        for dir in [Direction::In, Direction::Out] {
            for (m, name) in METHODS.iter().enumerate() {
                let n = self.requests[dir as usize * METHODS.len() + m].load(Ordering::Relaxed);
                if n > 0 {
                    out.push((dir, *name, n));
                }
            }
        }
        out
    }

    /// Non-zero response counters: `(direction, method, code, count)`.
    pub fn responses(&self) -> Vec<(Direction, &'static str, u16, u64)> {
        let mut out = Vec::new();
        for dir in [Direction::In, Direction::Out] {
            for (m, name) in METHODS.iter().enumerate() {
                let row = (dir as usize * METHODS.len() + m) * CODES;
                for c in 0..CODES {
                    let n = self.responses[row + c].load(Ordering::Relaxed);
                    if n > 0 {
                        out.push((dir, *name, c as u16 + 100, n));
                    }
                }
            }
        }
        out
    }
}

fn method_index(token: &[u8]) -> usize {
    METHODS[..OTHER]
        .iter()
        .position(|m| m.as_bytes() == token)
        .unwrap_or(OTHER)
}

/// Start line → request method or response code; the CSeq method for responses.
fn classify(bytes: &[u8]) -> Option<Counted> {
    let line_end = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(bytes.len());
    let line = &bytes[..line_end];
    if let Some(rest) = line.strip_prefix(b"SIP/2.0 ") {
        let digits = rest.get(..3)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let code = digits
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
        if !(100..=699).contains(&code) {
            return None;
        }
        let headers = bytes.get(line_end + 2..).unwrap_or_default();
        let method = cseq_method(headers).map_or(OTHER, method_index);
        return Some(Counted::Response { method, code });
    }
    let space = line.iter().position(|&b| b == b' ')?;
    if !line.ends_with(b" SIP/2.0") {
        return None;
    }
    Some(Counted::Request {
        method: method_index(&line[..space]),
    })
}

/// The method of the CSeq header (`CSeq: 1 INVITE`), case-insensitive name, no allocation.
fn cseq_method(headers: &[u8]) -> Option<&[u8]> {
    headers
        .split(|&b| b == b'\n')
        .take_while(|l| !(l.is_empty() || *l == b"\r"))
        .find_map(|l| {
            let colon = l.iter().position(|&b| b == b':')?;
            if !l[..colon].trim_ascii().eq_ignore_ascii_case(b"cseq") {
                return None;
            }
            let value = l[colon + 1..].trim_ascii();
            let space = value.iter().position(|&b| b == b' ')?;
            Some(value[space..].trim_ascii())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_are_counted_by_method_and_code() {
        let c = SipCounters::default();
        let invite = b"INVITE sip:8890@127.0.0.1 SIP/2.0\r\nVia: x\r\nCSeq: 1 INVITE\r\n\r\n";
        let ok = b"SIP/2.0 200 OK\r\nVia: x\r\ncseq :  1   INVITE\r\n\r\n";
        let busy = b"SIP/2.0 503 Service Unavailable\r\nCSeq: 7 OPTIONS\r\n\r\n";
        assert_eq!(
            c.count(Direction::In, invite),
            Some(Counted::Request { method: 0 })
        );
        c.count(Direction::In, invite);
        c.count(Direction::Out, ok);
        c.count(Direction::Out, busy);
        c.count(Direction::In, b"FOO sip:x SIP/2.0\r\n\r\n");
        assert_eq!(c.count(Direction::In, b"\x00garbage"), None);
        assert_eq!(c.count(Direction::In, b"SIP/2.0 999 Nope\r\n\r\n"), None);
        assert_eq!(
            c.requests(),
            vec![(Direction::In, "INVITE", 2), (Direction::In, "OTHER", 1)]
        );
        assert_eq!(
            c.responses(),
            vec![
                (Direction::Out, "INVITE", 200, 1),
                (Direction::Out, "OPTIONS", 503, 1)
            ]
        );
    }

    #[test]
    fn a_response_without_cseq_is_counted_as_other() {
        let c = SipCounters::default();
        c.count(
            Direction::In,
            b"SIP/2.0 180 Ringing\r\nVia: x\r\n\r\nCSeq: 1 BYE",
        );
        assert_eq!(c.responses(), vec![(Direction::In, "OTHER", 180, 1)]);
    }
}
