//! Pure accessors the transaction and call layers need, reading `rsip`'s string headers
//! with our own grammar (rsip's typed Via picks the wrong branch on comma-joined rows and
//! fails on IPv6).

use rsip::headers::UntypedHeader;
use rsip::message::HasHeaders;
use rsip::Header;

use super::grammar::{find_param, parse_cseq, parse_name_addr, parse_via, split_top_level};
use super::scan::long_name;
use super::untyped_value;
use std::net::SocketAddr;

/// The top Via, read explicitly (RFC 3261 §17.1.3 / §17.2.3 key material, §18.2.2 routing).
///
/// The one reader of the top Via: the transaction layer keys and routes with it, the TU and
/// the endpoint read it through it, so no two places can disagree about what a peer wrote
/// (the transport spoof of issue 11 came from four readers with four rules).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViaInfo {
    /// `branch` parameter, if any (RFC 2543 peers send none).
    pub branch: Option<String>,
    /// sent-by host without IPv6 brackets.
    pub sent_by_host: String,
    /// sent-by port; `None` means the transport default (5060 for UDP).
    pub sent_by_port: Option<u16>,
    /// Transport token, upper-cased (`UDP`, `TCP`, ...). What the peer *says*: how a
    /// message travels is the socket it came on, never this.
    pub transport: String,
    /// `received` parameter, if any.
    pub received: Option<String>,
    /// RFC 3581 `rport`: `None` absent, `Some(None)` requested (empty), `Some(Some(p))` filled.
    pub rport: Option<Option<u16>>,
}

/// §18.2.2: the port a response goes to when the Via names none.
const DEFAULT_SIP_PORT: u16 = 5060;

impl ViaInfo {
    /// sent-by as written for transaction matching: `host[:port]`, IPv6 bracketed.
    pub fn sent_by(&self) -> String {
        let host = super::grammar::host_text(&self.sent_by_host);
        match self.sent_by_port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }

    /// sent-by in the canonical form transaction keys compare: lower-case host, port 5060
    /// filled in, so `H` and `h:5060` match.
    pub fn sent_by_key(&self) -> String {
        let host = super::grammar::host_text(&self.sent_by_host.to_ascii_lowercase());
        format!("{host}:{}", self.sent_by_port.unwrap_or(DEFAULT_SIP_PORT))
    }

    /// Where a response to a request that came from `source` goes over UDP (RFC 3261
    /// §18.2.2 with RFC 3581): the source's address, since the `received` we stamp is
    /// exactly that and one the peer wrote itself is never believed (a reflection
    /// amplifier otherwise); the source's port with `rport`, else the sent-by port, else
    /// 5060. The IP is never taken from the message, so a Via cannot aim our answers (and
    /// their Timer G resends) at a third party.
    pub fn response_destination(&self, source: SocketAddr) -> SocketAddr {
        let port = match self.rport {
            Some(_) => source.port(),
            None => self.sent_by_port.unwrap_or(DEFAULT_SIP_PORT),
        };
        SocketAddr::new(source.ip(), port)
    }
}

/// The text of the topmost Via value: the first element of the first Via row (the ACK of
/// a non-2xx copies exactly this, §17.1.1.3).
pub fn top_via_text(headers: &rsip::Headers) -> Option<&str> {
    let raw = headers.iter().find_map(|h| match h {
        Header::Via(v) => Some(v.value()),
        _ => None,
    })?;
    Some(split_top_level(raw, ',')[0].trim())
}

/// The first value of the first Via row (comma-joined rows handled), parsed.
pub fn top_via(message: &impl HasHeaders) -> Option<ViaInfo> {
    top_via_in(message.headers())
}

/// [`top_via`] on a header list.
pub fn top_via_in(headers: &rsip::Headers) -> Option<ViaInfo> {
    let via = parse_via(top_via_text(headers)?).ok()?;
    let param = |name: &str| find_param(&via.params, name).map(|p| p.value.clone());
    Some(ViaInfo {
        branch: param("branch").flatten().filter(|b| !b.is_empty()),
        received: param("received")
            .flatten()
            .map(|r| r.trim_start_matches('[').trim_end_matches(']').to_string()),
        rport: param("rport").map(|v| v.and_then(|p| p.parse().ok())),
        sent_by_host: via.host,
        sent_by_port: via.port,
        transport: via.transport,
    })
}

/// Value of the first header named `name` (case-insensitive; compact forms like `i`
/// accepted), as a string.
pub fn header_value(message: &impl HasHeaders, name: &str) -> Option<String> {
    header_values(message, name).into_iter().next()
}

/// Values of all headers named `name`, in order (one per row; rows are not split here).
pub fn header_values(message: &impl HasHeaders, name: &str) -> Vec<String> {
    let wanted = long_name(name).unwrap_or(name);
    message
        .headers()
        .iter()
        .filter_map(|h| {
            let text = h.to_string();
            let (n, v) = text.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(wanted)
                .then(|| v.trim().to_string())
        })
        .collect()
}

/// Call-ID value.
pub fn call_id(message: &impl HasHeaders) -> Option<String> {
    message.headers().iter().find_map(|h| match h {
        Header::CallId(_) => untyped_value(h).map(str::to_string),
        _ => None,
    })
}

fn cseq(message: &impl HasHeaders) -> Option<(u32, String)> {
    let v = message.headers().iter().find_map(|h| match h {
        Header::CSeq(_) => untyped_value(h),
        _ => None,
    })?;
    parse_cseq(v).ok()
}

/// CSeq sequence number.
pub fn cseq_number(message: &impl HasHeaders) -> Option<u32> {
    cseq(message).map(|(n, _)| n)
}

/// CSeq method as on the wire (for responses: which transaction they answer).
pub fn method_of_cseq(message: &impl HasHeaders) -> Option<String> {
    cseq(message).map(|(_, m)| m)
}

fn tag_of(message: &impl HasHeaders, from: bool) -> Option<String> {
    let v = message.headers().iter().find_map(|h| match (h, from) {
        (Header::From(_), true) | (Header::To(_), false) => untyped_value(h),
        _ => None,
    })?;
    parse_name_addr(v).ok()?.tag().map(str::to_string)
}

/// From-tag.
pub fn from_tag(message: &impl HasHeaders) -> Option<String> {
    tag_of(message, true)
}

/// To-tag (absent on out-of-dialog requests).
pub fn to_tag(message: &impl HasHeaders) -> Option<String> {
    tag_of(message, false)
}

/// The dialled number / user of the Request-URI: the user part up to its first `;`
/// (so `sip:8890;phone-context=+4930@gw` gives `8890`), percent-decoded. `None` without
/// a user part. (`tel:` Request-URIs never get here: [`super::parse`] answers them 416.)
pub fn request_uri_user(request: &rsip::Request) -> Option<String> {
    let user = request.uri.auth.as_ref()?.user.as_str();
    let user = user.split(';').next().unwrap_or("");
    let decoded = percent_decode(user);
    (!decoded.is_empty()).then_some(decoded)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
