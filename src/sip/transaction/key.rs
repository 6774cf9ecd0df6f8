//! Reading the few header fields the transaction layer matches on, without trusting `rsip`'s
//! typed forms.
//!
//! `rsip` 0.4 keeps a comma-joined Via as one header and its `typed()` then reports the branch
//! of the wrong element, and typed From/To fail on inputs the RFC allows. So the top Via, the
//! tags and CSeq are read here from the raw header text with small total parsers: every
//! function returns `None` on odd input rather than panicking (network input never panics).

use std::net::{IpAddr, SocketAddr};

use rsip::headers::UntypedHeader;
use rsip::Header;

use super::TransactionKey;

/// RFC 3261 §8.1.1.7: branches starting with this cookie are globally unique.
const MAGIC_COOKIE: &str = "z9hG4bK";
/// §18.2.2: the port a response goes to when the Via names none.
const DEFAULT_SIP_PORT: u16 = 5060;

/// The fields of the topmost Via that §17 and §18.2.2 use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TopVia {
    pub branch: Option<String>,
    /// Host part of sent-by, lower-cased, IPv6 without brackets.
    pub host: String,
    pub port: Option<u16>,
    /// `received=` (RFC 3261 §18.2.1).
    pub received: Option<String>,
    /// `rport` (RFC 3581): `Some(None)` when present without a value.
    pub rport: Option<Option<u16>>,
    /// From the sent-protocol (`SIP/2.0/TCP`); anything not reliable counts as UDP.
    pub transport: super::Transport,
}

impl TopVia {
    /// Sent-by in a canonical `host:port` form so that `h:5060` and `h` match.
    pub fn sent_by(&self) -> String {
        let port = self.port.unwrap_or(DEFAULT_SIP_PORT);
        if self.host.contains(':') {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
        }
    }

    /// Where a response goes (RFC 3261 §18.2.2 for unreliable transports, RFC 3581 §4):
    /// the `received` address, else the sent-by host; the `rport` value, else the sent-by
    /// port, else 5060. `None` when the host is a name: resolving it would be I/O.
    pub fn response_destination(&self) -> Option<SocketAddr> {
        let host = self.received.as_deref().unwrap_or(&self.host);
        let ip: IpAddr = host.trim_matches(|c| c == '[' || c == ']').parse().ok()?;
        let port = match self.rport {
            Some(Some(port)) => port,
            _ => self.port.unwrap_or(DEFAULT_SIP_PORT),
        };
        Some(SocketAddr::new(ip, port))
    }
}

/// The topmost Via of a message: the first value of the first Via header line.
pub(super) fn top_via(headers: &rsip::Headers) -> Option<TopVia> {
    parse_via_value(top_via_value(headers)?)
}

/// The text of the topmost Via value (the ACK of a non-2xx copies exactly this, §17.1.1.3).
pub(super) fn top_via_value(headers: &rsip::Headers) -> Option<&str> {
    let value = headers.iter().find_map(|h| match h {
        Header::Via(via) => Some(via.value()),
        _ => None,
    })?;
    Some(first_list_element(value).trim())
}

/// The first element of a comma-separated header value (commas inside `[...]` or quotes
/// do not separate).
fn first_list_element(value: &str) -> &str {
    let mut in_quotes = false;
    let mut in_brackets = false;
    for (i, c) in value.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '[' if !in_quotes => in_brackets = true,
            ']' if !in_quotes => in_brackets = false,
            ',' if !in_quotes && !in_brackets => return &value[..i],
            _ => {}
        }
    }
    value
}

/// `SIP/2.0/UDP host[:port];param[=value]...`
fn parse_via_value(value: &str) -> Option<TopVia> {
    let mut parts = value.split(';');
    let head = parts.next()?.trim();
    // sent-protocol, LWS, sent-by: sent-by is the last word (tolerates `SIP / 2.0 / UDP`).
    let (protocol, sent_by) = head.rsplit_once(|c: char| c.is_ascii_whitespace())?;
    if !protocol.trim().to_ascii_uppercase().starts_with("SIP") {
        return None;
    }
    let (host, port) = split_host_port(sent_by.trim())?;
    let proto = protocol.rsplit('/').next().unwrap_or("").trim();
    let transport = if ["TCP", "TLS", "SCTP", "WS", "WSS"]
        .iter()
        .any(|t| proto.eq_ignore_ascii_case(t))
    {
        super::Transport::Tcp
    } else {
        super::Transport::Udp
    };
    let mut via = TopVia {
        branch: None,
        host,
        port,
        received: None,
        rport: None,
        transport,
    };
    for param in parts {
        let (name, val) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (param.trim(), None),
        };
        if name.eq_ignore_ascii_case("branch") {
            via.branch = val.filter(|v| !v.is_empty()).map(str::to_string);
        } else if name.eq_ignore_ascii_case("received") {
            via.received = val.filter(|v| !v.is_empty()).map(str::to_string);
        } else if name.eq_ignore_ascii_case("rport") {
            via.rport = Some(val.and_then(|v| v.parse().ok()));
        }
    }
    Some(via)
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`; a bare IPv6 (as `rsip` writes it) has no port.
fn split_host_port(sent_by: &str) -> Option<(String, Option<u16>)> {
    if sent_by.is_empty() {
        return None;
    }
    if let Some(rest) = sent_by.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host.to_ascii_lowercase(), port));
    }
    match sent_by.matches(':').count() {
        0 => Some((sent_by.to_ascii_lowercase(), None)),
        1 => {
            let (host, port) = sent_by.split_once(':')?;
            Some((host.to_ascii_lowercase(), Some(port.parse().ok()?)))
        }
        _ => Some((sent_by.to_ascii_lowercase(), None)),
    }
}

/// The header fields a transaction is identified and merged by, read once per message.
#[derive(Debug, Clone)]
pub(super) struct MessageIds {
    pub via: TopVia,
    pub call_id: String,
    pub cseq: u32,
    /// CSeq method, as on the wire (upper case).
    pub cseq_method: String,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
}

impl MessageIds {
    /// `None` when a field every SIP message must carry is missing or unreadable; the
    /// caller drops such messages.
    pub fn read(headers: &rsip::Headers) -> Option<MessageIds> {
        let via = top_via(headers)?;
        let mut call_id = None;
        let mut cseq = None;
        let mut from_tag = None;
        let mut to_tag = None;
        for header in headers.iter() {
            match header {
                Header::CallId(h) if call_id.is_none() => call_id = Some(value_of(h)),
                Header::CSeq(h) if cseq.is_none() => cseq = parse_cseq(&value_of(h)),
                Header::From(h) if from_tag.is_none() => from_tag = Some(tag_of(&value_of(h))),
                Header::To(h) if to_tag.is_none() => to_tag = Some(tag_of(&value_of(h))),
                _ => {}
            }
        }
        let call_id = call_id.filter(|c| !c.is_empty())?;
        let (cseq, cseq_method) = cseq?;
        Some(MessageIds {
            via,
            call_id,
            cseq,
            cseq_method,
            from_tag: from_tag?,
            to_tag: to_tag?,
        })
    }

    /// §17.2.3 / §17.1.3 key: branch + sent-by + method. A branch without the RFC 3261
    /// cookie comes from an RFC 2543 peer and is not unique, so the key then uses the
    /// request's identity instead (a simplification of §17.2.3's RFC 2543 rules that keeps
    /// retransmissions, ACK and CANCEL on the same transaction).
    pub fn key(&self, method: &str) -> TransactionKey {
        let branch = match &self.via.branch {
            Some(b) if b.starts_with(MAGIC_COOKIE) => b.clone(),
            _ => format!(
                "rfc2543;{};{};{}",
                self.call_id,
                self.from_tag.as_deref().unwrap_or(""),
                self.cseq
            ),
        };
        TransactionKey {
            branch,
            sent_by: self.via.sent_by(),
            method: method.to_string(),
        }
    }

    /// §8.2.2.2 identity of a request: From tag, Call-ID and CSeq.
    pub fn request_id(&self) -> RequestId {
        RequestId {
            call_id: self.call_id.clone(),
            from_tag: self.from_tag.clone().unwrap_or_default(),
            cseq: self.cseq,
            method: self.cseq_method.clone(),
        }
    }
}

/// From tag + Call-ID + CSeq (number and method): what §8.2.2.2 compares to detect merged
/// requests, and (with method INVITE) what ties a 2xx ACK, which has its own branch, to the
/// INVITE it acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct RequestId {
    pub call_id: String,
    pub from_tag: String,
    pub cseq: u32,
    pub method: String,
}

fn value_of<'a, H: UntypedHeader<'a>>(header: &H) -> String {
    header.value().trim().to_string()
}

/// `123 INVITE` → (123, "INVITE").
fn parse_cseq(value: &str) -> Option<(u32, String)> {
    let mut words = value.split_ascii_whitespace();
    let seq = words.next()?.parse().ok()?;
    let method = words.next()?.to_ascii_uppercase();
    Some((seq, method))
}

/// The `tag` parameter of a From/To value. Parameters inside `<...>` belong to the URI;
/// in the addr-spec form (no angle brackets) every `;` parameter is a header parameter.
pub(super) fn tag_of(value: &str) -> Option<String> {
    let params = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value.split_once(';').map(|(_, p)| p).unwrap_or(""),
    };
    params.split(';').find_map(|p| {
        let (name, val) = p.split_once('=')?;
        (name.trim().eq_ignore_ascii_case("tag") && !val.trim().is_empty())
            .then(|| val.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(text: &str) -> rsip::Headers {
        let msg = format!("OPTIONS sip:a@127.0.0.1 SIP/2.0\r\n{text}Content-Length: 0\r\n\r\n");
        match rsip::SipMessage::try_from(msg.as_str()) {
            Ok(rsip::SipMessage::Request(r)) => r.headers,
            other => panic!("test message did not parse: {other:?}"),
        }
    }

    #[test]
    fn top_via_is_the_first_element_of_a_comma_joined_via() {
        let h = headers(
            "Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKtop;rport, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKlow\r\n",
        );
        let via = top_via(&h).expect("via");
        assert_eq!(via.branch.as_deref(), Some("z9hG4bKtop"));
        assert_eq!(via.sent_by(), "10.0.0.1:5070");
        assert_eq!(via.rport, Some(None));
    }

    #[test]
    fn response_destination_uses_sent_by_without_received_or_rport() {
        let h = headers("Via: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1\r\n");
        let dest = top_via(&h).and_then(|v| v.response_destination());
        assert_eq!(dest, Some("192.0.2.7:5060".parse().expect("addr")));
    }

    #[test]
    fn response_destination_prefers_received_and_rport() {
        let h = headers(
            "Via: SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1;received=198.51.100.9;rport=40000\r\n",
        );
        let dest = top_via(&h).and_then(|v| v.response_destination());
        assert_eq!(dest, Some("198.51.100.9:40000".parse().expect("addr")));
    }

    #[test]
    fn response_destination_with_received_but_empty_rport_keeps_sent_by_port() {
        let h = headers("Via: SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1;received=198.51.100.9\r\n");
        let dest = top_via(&h).and_then(|v| v.response_destination());
        assert_eq!(dest, Some("198.51.100.9:5062".parse().expect("addr")));
    }

    #[test]
    fn hostname_sent_by_has_no_destination_without_received() {
        let h = headers("Via: SIP/2.0/UDP pbx.example.org:5060;branch=z9hG4bK1\r\n");
        let via = top_via(&h).expect("via");
        assert_eq!(via.response_destination(), None);
        assert_eq!(via.sent_by(), "pbx.example.org:5060");
    }

    #[test]
    fn bracketed_ipv6_sent_by() {
        assert_eq!(
            split_host_port("[2001:db8::1]:5080"),
            Some(("2001:db8::1".to_string(), Some(5080)))
        );
        assert_eq!(split_host_port("[2001:db8::1"), None);
        assert_eq!(split_host_port("host:notaport"), None);
    }

    #[test]
    fn tags_ignore_uri_parameters() {
        assert_eq!(
            tag_of("\"A\" <sip:a@h;tag=uri>;tag=hdr"),
            Some("hdr".to_string())
        );
        assert_eq!(tag_of("<sip:a@h;tag=uri>"), None);
        assert_eq!(tag_of("sip:a@h;tag=x"), Some("x".to_string()));
    }

    #[test]
    fn missing_cseq_or_call_id_gives_no_ids() {
        let h = headers("Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\n");
        assert!(MessageIds::read(&h).is_none(), "no CSeq");
        let h = headers("Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCSeq: 1 OPTIONS\r\n");
        assert!(MessageIds::read(&h).is_none(), "no Call-ID");
    }
}
