//! Building responses, fixing up Vias on receipt, and serialising to the wire.

use std::net::{IpAddr, SocketAddr};

use rsip::headers::UntypedHeader;
use rsip::message::HasHeaders;
use rsip::Header;

use super::grammar::{host_text, parse_name_addr, parse_via, split_top_level};
use super::scan::Scanned;

/// RFC 3261 §21 reason phrases, for the wire (rsip's `Display` writes `BadRequest`).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match code / 100 {
            1 => "Progress",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

/// `rsip` status code for `code`: the named variant when `reason` is the standard phrase
/// (so other layers can match on it), else `Other(code, reason)` to keep the phrase.
fn status_code(code: u16, reason: &str) -> rsip::StatusCode {
    let named = rsip::StatusCode::from(code);
    if reason.is_empty() || reason == reason_phrase(code) {
        if let rsip::StatusCode::Other(c, _) = named {
            return rsip::StatusCode::Other(c, reason_phrase(code).to_string());
        }
        return named;
    }
    rsip::StatusCode::Other(code, reason.to_string())
}

fn with_to_tag(to: &str, tag: &str) -> String {
    let has_tag = parse_name_addr(to)
        .map(|n| n.tag().is_some())
        .unwrap_or(false);
    if has_tag {
        to.to_string()
    } else {
        format!("{to};tag={tag}")
    }
}

/// A response built from a raw scan (for requests `rsip` will not get to see).
pub(super) fn error_response(scanned: &Scanned, code: u16, detail: &str) -> Option<rsip::Response> {
    let vias: Vec<&str> = scanned.values("Via").collect();
    if vias.is_empty() {
        return None;
    }
    let mut headers: Vec<Header> = vias
        .iter()
        .map(|v| Header::Via(rsip::headers::Via::new(*v)))
        .collect();
    if let Some(v) = scanned.first("From") {
        headers.push(Header::From(rsip::headers::From::new(v)));
    }
    if let Some(v) = scanned.first("To") {
        // §8.2.6.2: the UAS adds a To-tag; for a To we cannot read, append one anyway.
        let to = if parse_name_addr(v).is_ok() {
            with_to_tag(v, &super::new_tag())
        } else if v.contains(";tag=") {
            v.to_string()
        } else {
            format!("{v};tag={}", super::new_tag())
        };
        headers.push(Header::To(rsip::headers::To::new(to)));
    }
    if let Some(v) = scanned.first("Call-ID") {
        headers.push(Header::CallId(rsip::headers::CallId::new(v)));
    }
    if let Some(v) = scanned.first("CSeq") {
        headers.push(Header::CSeq(rsip::headers::CSeq::new(v)));
    }
    if !detail.is_empty() {
        let escaped = detail.replace('\\', "\\\\").replace('"', "\\\"");
        headers.push(Header::Warning(rsip::headers::Warning::new(format!(
            "399 hotline-gateway \"{escaped}\""
        ))));
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    Some(rsip::Response {
        status_code: status_code(code, ""),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    })
}

/// Build a response to `request` (§8.2.6): copies Via (all), From, To (adding `to_tag` if
/// To has none and `to_tag` is given), Call-ID, CSeq; sets Content-Length 0.
///
/// §8.2.6.2: every response but 100 to a request without a To tag MUST carry one. When the
/// caller gives none (an OPTIONS 200, a 405 outside any dialog) a fresh one is made here,
/// so no path of the TU or the layer can forget it.
///
/// Also copies Record-Route for 101–299 answers to INVITE: §12.1.1 requires it in
/// dialog-creating responses, and proxies (kamailio) drop the ACK without it.
/// `reason` is kept as given; a registered code with its standard phrase (or `""`) gets
/// the named `rsip::StatusCode` variant.
pub fn response(
    request: &rsip::Request,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
) -> rsip::Response {
    let copy_rr = request.method == rsip::Method::Invite && (101..300).contains(&code);
    let fresh_tag;
    let to_tag = match to_tag {
        Some(tag) => Some(tag),
        None if code > 100 => {
            fresh_tag = super::new_tag();
            Some(fresh_tag.as_str())
        }
        None => None,
    };
    let mut headers = Vec::new();
    for h in request.headers().iter() {
        let keep = match h {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => true,
            Header::RecordRoute(_) => copy_rr,
            Header::To(to) => {
                if let Some(tag) = to_tag {
                    headers.push(Header::To(rsip::headers::To::new(with_to_tag(
                        to.value(),
                        tag,
                    ))));
                    continue;
                }
                true
            }
            _ => false,
        };
        if keep {
            headers.push(h.clone());
        }
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    rsip::Response {
        status_code: status_code(code, reason),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

/// RFC 3261 §18.2.1 + RFC 3581: stamp `received=` (when the source IP differs from the
/// top Via's sent-by, or the peer wrote one) and fill an empty `rport` with the source port.
///
/// With `rport` present, `received` is always added (RFC 3581 §4). A Via we cannot parse
/// is left alone (parse has already rejected those for requests it produced).
pub fn stamp_via(request: &mut rsip::Request, source: SocketAddr) {
    let Some(via) = request.headers_mut().iter_mut().find_map(|h| match h {
        Header::Via(v) => Some(v),
        _ => None,
    }) else {
        return;
    };
    let parts = split_top_level(via.value(), ',');
    let Ok(mut top) = parse_via(parts[0]) else {
        return;
    };
    let rport = top
        .params
        .iter()
        .any(|p| p.name.eq_ignore_ascii_case("rport"));
    let same_ip = top.host.parse::<IpAddr>().ok() == Some(source.ip());
    if rport {
        top.set_param("rport", Some(source.port().to_string()));
    }
    // A `received` the peer wrote itself is overwritten with the truth: nothing reads it
    // as an address, but a proxy above us or a log must not see a lie as if we wrote it.
    let claimed = top
        .params
        .iter()
        .any(|p| p.name.eq_ignore_ascii_case("received"));
    if rport || !same_ip || claimed {
        top.set_param("received", Some(source.ip().to_string()));
    }
    let mut joined = top.to_canonical();
    for p in &parts[1..] {
        joined.push_str(", ");
        joined.push_str(p);
    }
    via.replace(joined);
}

/// Where a response to `request`, which came from `source` over UDP, goes (RFC 3261
/// §18.2.2 + RFC 3581): see [`super::ViaInfo::response_destination`]. `None` without a
/// readable Via.
pub fn response_destination(request: &rsip::Request, source: SocketAddr) -> Option<SocketAddr> {
    Some(super::top_via(request)?.response_destination(source))
}

/// A URI as it goes on the wire: IPv6 hosts bracketed, `scheme:` (rsip writes
/// `scheme://` for schemes it does not know). URI `?headers` are not kept by rsip.
pub fn uri_to_string(uri: &rsip::Uri) -> String {
    let mut out = String::new();
    match &uri.scheme {
        Some(rsip::Scheme::Sip) => out.push_str("sip:"),
        Some(rsip::Scheme::Sips) => out.push_str("sips:"),
        Some(rsip::Scheme::Other(s)) => {
            out.push_str(s);
            out.push(':');
        }
        None => {}
    }
    if let Some(auth) = &uri.auth {
        out.push_str(&auth.to_string());
        out.push('@');
    }
    match &uri.host_with_port.host {
        rsip::Host::IpAddr(IpAddr::V6(ip)) => out.push_str(&format!("[{ip}]")),
        host => out.push_str(&host_text(&host.to_string())),
    }
    if let Some(port) = &uri.host_with_port.port {
        out.push_str(&format!(":{port}"));
    }
    for p in &uri.params {
        out.push_str(&p.to_string());
    }
    out
}

/// Serialise for the wire: proper reason phrases, bracketed IPv6 Request-URIs, exactly one
/// Content-Length equal to the body length (written last), body bytes untouched.
pub fn to_bytes(message: &rsip::SipMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + message.body().len());
    match message {
        rsip::SipMessage::Request(r) => {
            out.extend_from_slice(
                format!("{} {} SIP/2.0\r\n", r.method, uri_to_string(&r.uri)).as_bytes(),
            );
        }
        rsip::SipMessage::Response(r) => {
            let code = r.status_code.code();
            let reason = match &r.status_code {
                rsip::StatusCode::Other(_, reason) => reason.as_str(),
                _ => reason_phrase(code),
            };
            out.extend_from_slice(format!("SIP/2.0 {code} {reason}\r\n").as_bytes());
        }
    }
    for h in message.headers().iter() {
        if matches!(h, Header::ContentLength(_)) {
            continue;
        }
        out.extend_from_slice(h.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", message.body().len()).as_bytes());
    out.extend_from_slice(message.body());
    out
}

/// Parse a SIP URI into `rsip::Uri`, working around rsip 0.4: it cannot read a user part
/// containing `.` (its user tokenizer stops there) nor an `[IPv6]` host. We hand it `.` as
/// `%2E` and a placeholder host, then put the user text and the IPv6 address back.
/// URI `?headers` are dropped (rsip has no place for them).
pub fn parse_uri(text: &str) -> Option<rsip::Uri> {
    let (scheme, rest) = text.split_once(':')?;
    let (userinfo, hostpart) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let mut v6 = None;
    let hostpart = if let Some(inner) = hostpart.strip_prefix('[') {
        let close = inner.find(']')?;
        v6 = Some(inner[..close].parse::<std::net::Ipv6Addr>().ok()?);
        format!("ipv6.invalid{}", &inner[close + 1..])
    } else {
        hostpart.to_string()
    };
    let encoded = match userinfo {
        Some(u) => format!("{scheme}:{}@{hostpart}", u.replace('.', "%2E")),
        None => format!("{scheme}:{hostpart}"),
    };
    let mut uri = rsip::Uri::try_from(encoded.as_str()).ok()?;
    if let (Some(u), Some(auth)) = (userinfo, uri.auth.as_mut()) {
        let (user, password) = match u.split_once(':') {
            Some((user, pw)) => (user, Some(pw.to_string())),
            None => (u, None),
        };
        auth.user = user.to_string();
        auth.password = password;
    }
    if let Some(ip) = v6 {
        uri.host_with_port.host = rsip::Host::IpAddr(IpAddr::V6(ip));
    }
    Some(uri)
}

/// The Request-URI as we give it to rsip's start-line parser (see [`parse_uri`]).
pub(super) fn rsip_safe_uri(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once(':') else {
        return text.to_string();
    };
    let (userinfo, hostpart) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let hostpart = match hostpart
        .strip_prefix('[')
        .and_then(|i| i.find(']').map(|c| (i, c)))
    {
        Some((inner, close)) => format!("ipv6.invalid{}", &inner[close + 1..]),
        None => hostpart.to_string(),
    };
    match userinfo {
        Some(u) => format!("{scheme}:{}@{hostpart}", u.replace('.', "%2E")),
        None => format!("{scheme}:{hostpart}"),
    }
}
