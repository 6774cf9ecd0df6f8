//! Small, tolerant-where-allowed parsers for the RFC 3261 §25 productions that `rsip` 0.4
//! keeps as plain strings: Via values, name-addr / addr-spec (From, To, Contact, Route),
//! header parameters, CSeq. Each returns a canonical form (no optional LWS) so what `rsip`
//! and the layers above see is uniform, or a short reason used in the 400's Warning.
//!
//! Every function works on `&str` with char-boundary-safe slicing only, so no input panics.

/// `token` characters (RFC 3261 §25.1).
pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

/// A non-empty `token`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

fn is_lws(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Split a header value at top-level `sep` (outside quoted strings and `<...>`), trimming
/// each part. Used to split comma-joined Via / Route / Record-Route / Contact rows
/// (RFC 3261 §7.3.1: the joined and the split forms mean the same).
pub(crate) fn split_top_level(value: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut in_angle = false;
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            '<' => in_angle = true,
            '>' => in_angle = false,
            c if c == sep && !in_angle => {
                parts.push(value[start..i].trim_matches(is_lws));
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim_matches(is_lws));
    parts
}

/// A header or URI parameter: `name` or `name=value` (value kept as written, quotes included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Param {
    pub name: String,
    pub value: Option<String>,
}

impl Param {
    fn write(&self, out: &mut String) {
        out.push(';');
        out.push_str(&self.name);
        if let Some(v) = &self.value {
            out.push('=');
            out.push_str(v);
        }
    }
}

/// Find a parameter by case-insensitive name (parameter names are case-insensitive).
pub(crate) fn find_param<'a>(params: &'a [Param], name: &str) -> Option<&'a Param> {
    params.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// Parse `*( LWS ";" LWS name [ LWS "=" LWS value ] )` up to the end of `s`.
/// Values may be tokens, `[IPv6]` or quoted strings; empty parameters (`;;`) are errors.
pub(crate) fn parse_params(s: &str) -> Result<Vec<Param>, &'static str> {
    let mut params = Vec::new();
    let mut rest = s.trim_start_matches(is_lws);
    while !rest.is_empty() {
        rest = rest
            .strip_prefix(';')
            .ok_or("unexpected characters after a parameter")?
            .trim_start_matches(is_lws);
        let name_end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        let name = &rest[..name_end];
        if name.is_empty() {
            return Err("empty parameter");
        }
        rest = rest[name_end..].trim_start_matches(is_lws);
        let mut value = None;
        if let Some(after_eq) = rest.strip_prefix('=') {
            let after_eq = after_eq.trim_start_matches(is_lws);
            let (v, remaining) = take_param_value(after_eq)?;
            value = Some(v.to_string());
            rest = remaining.trim_start_matches(is_lws);
        }
        params.push(Param {
            name: name.to_string(),
            value,
        });
    }
    Ok(params)
}

fn take_param_value(s: &str) -> Result<(&str, &str), &'static str> {
    if s.starts_with('"') {
        let end = quoted_string_end(s).ok_or("unterminated quoted string")?;
        return Ok((&s[..end], &s[end..]));
    }
    if s.starts_with('[') {
        let end = s.find(']').ok_or("unterminated IPv6 reference")? + 1;
        return Ok((&s[..end], &s[end..]));
    }
    let end = s
        .find(|c: char| !(is_token_char(c) || c == ':'))
        .unwrap_or(s.len());
    if end == 0 {
        return Err("empty parameter value");
    }
    Ok((&s[..end], &s[end..]))
}

/// Byte index just past the closing quote of the quoted string `s` starts with.
fn quoted_string_end(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Some(i + 1);
        }
    }
    None
}

/// One Via value, parsed (RFC 3261 §20.42, §25.1 `via-parm`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ViaValue {
    pub protocol: String,
    pub transport: String,
    /// Host as written, without IPv6 brackets.
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<Param>,
}

impl ViaValue {
    /// Canonical text: `SIP/2.0/UDP host[:port];params`, IPv6 hosts bracketed.
    pub fn to_canonical(&self) -> String {
        let mut out = format!(
            "{}/{} {}",
            self.protocol,
            self.transport,
            host_text(&self.host)
        );
        if let Some(p) = self.port {
            out.push_str(&format!(":{p}"));
        }
        for p in &self.params {
            p.write(&mut out);
        }
        out
    }

    /// Set (or replace) a parameter, keeping the position of an existing one.
    pub fn set_param(&mut self, name: &str, value: Option<String>) {
        if let Some(p) = self
            .params
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(name))
        {
            p.value = value;
        } else {
            self.params.push(Param {
                name: name.to_string(),
                value,
            });
        }
    }
}

/// A host for the wire: IPv6 literals get their brackets.
pub(crate) fn host_text(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Parse one Via value, tolerating the LWS RFC 3261 allows around `/`, `;` and `=`.
pub(crate) fn parse_via(value: &str) -> Result<ViaValue, &'static str> {
    let mut rest = value.trim_matches(is_lws);
    let mut fields = Vec::with_capacity(3);
    for i in 0..3 {
        let end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        if end == 0 {
            return Err("malformed Via sent-protocol");
        }
        fields.push(&rest[..end]);
        rest = rest[end..].trim_start_matches(is_lws);
        if i < 2 {
            rest = rest
                .strip_prefix('/')
                .ok_or("malformed Via sent-protocol")?
                .trim_start_matches(is_lws);
        }
    }
    if !fields[0].eq_ignore_ascii_case("SIP") || fields[1] != "2.0" {
        return Err("unsupported Via protocol version");
    }
    let sent_by_end = rest
        .find(|c: char| c == ';' || is_lws(c))
        .unwrap_or(rest.len());
    let (host, port) = parse_host_port(&rest[..sent_by_end]).ok_or("malformed Via sent-by")?;
    let params = parse_params(&rest[sent_by_end..]).map_err(|_| "malformed Via parameters")?;
    Ok(ViaValue {
        protocol: "SIP/2.0".to_string(),
        transport: fields[2].to_ascii_uppercase(),
        host,
        port,
        params,
    })
}

/// `host [ ":" port ]` with `[IPv6]` support; host returned without brackets.
pub(crate) fn parse_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port_text) = if let Some(inner) = s.strip_prefix('[') {
        let close = inner.find(']')?;
        let host = &inner[..close];
        host.parse::<std::net::Ipv6Addr>().ok()?;
        let after = &inner[close + 1..];
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return None,
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ':');
    if !host_ok {
        return None;
    }
    let port = match port_text {
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok()?)
        }
        Some(_) => return None,
        None => None,
    };
    Some((host.to_string(), port))
}

/// A parsed From / To / Contact / Route value (RFC 3261 §25.1 `name-addr / addr-spec`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NameAddr {
    /// Display name as written (quoted string keeps its quotes), if any.
    pub display: Option<String>,
    /// The URI without the angle brackets.
    pub uri: String,
    /// Header parameters after the URI (`tag`, `lr` is a URI param and stays in `uri`).
    pub params: Vec<Param>,
}

impl NameAddr {
    /// Canonical text, always in name-addr form (`<uri>`) so URI parameters can never be
    /// mistaken for header parameters later.
    pub fn to_canonical(&self) -> String {
        let mut out = String::new();
        if let Some(d) = &self.display {
            out.push_str(d);
            out.push(' ');
        }
        out.push('<');
        out.push_str(&self.uri);
        out.push('>');
        for p in &self.params {
            p.write(&mut out);
        }
        out
    }

    pub fn tag(&self) -> Option<&str> {
        find_param(&self.params, "tag").and_then(|p| p.value.as_deref())
    }
}

fn check_uri_text(uri: &str) -> Result<(), &'static str> {
    if uri.is_empty() || uri.chars().any(|c| c.is_whitespace()) {
        return Err("whitespace inside an addr-spec");
    }
    if uri.contains(['<', '>', '"']) {
        return Err("<, > or \" inside an addr-spec");
    }
    let scheme = uri.split_once(':').map(|(s, _)| s).unwrap_or("");
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return Err("URI without a scheme");
    }
    Ok(())
}

/// Parse a name-addr or addr-spec with header parameters.
pub(crate) fn parse_name_addr(value: &str) -> Result<NameAddr, &'static str> {
    let s = value.trim_matches(is_lws);
    let (display, after_display) = if s.starts_with('"') {
        let end = quoted_string_end(s).ok_or("unterminated quoted string in display name")?;
        let rest = s[end..].trim_start_matches(is_lws);
        if !rest.starts_with('<') {
            return Err("quoted display name not followed by <URI>");
        }
        (Some(s[..end].to_string()), rest)
    } else if let Some(lt) = s.find('<') {
        let display = s[..lt].trim_matches(is_lws);
        if !display
            .split(is_lws)
            .filter(|w| !w.is_empty())
            .all(is_token)
        {
            return Err("display name is neither tokens nor a quoted string");
        }
        let display = (!display.is_empty()).then(|| display.to_string());
        (display, &s[lt..])
    } else {
        // addr-spec: the URI ends at the first `;` or LWS; it may not carry `?` or `,`.
        let end = s.find(|c: char| c == ';' || is_lws(c)).unwrap_or(s.len());
        let uri = &s[..end];
        check_uri_text(uri)?;
        if uri.contains('?') || uri.contains(',') {
            return Err("addr-spec with ? or , must be enclosed in <>");
        }
        let params = parse_params(&s[end..]).map_err(|_| "malformed header parameters")?;
        return Ok(NameAddr {
            display: None,
            uri: uri.to_string(),
            params,
        });
    };
    let inner = &after_display[1..];
    let gt = inner.find('>').ok_or("unterminated <URI>")?;
    let uri = &inner[..gt];
    check_uri_text(uri)?;
    let params = parse_params(&inner[gt + 1..]).map_err(|_| "malformed header parameters")?;
    Ok(NameAddr {
        display,
        uri: uri.to_string(),
        params,
    })
}

/// CSeq (RFC 3261 §8.1.1.5): number below 2^31 and a method token.
pub(crate) fn parse_cseq(value: &str) -> Result<(u32, String), &'static str> {
    let mut parts = value.split(is_lws).filter(|p| !p.is_empty());
    let (Some(num), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("malformed CSeq");
    };
    if !num.bytes().all(|b| b.is_ascii_digit()) || !is_token(method) {
        return Err("malformed CSeq");
    }
    let trimmed = num.trim_start_matches('0');
    if trimmed.len() > 10 {
        return Err("CSeq number too large");
    }
    let n: u64 = if trimmed.is_empty() {
        0
    } else {
        trimmed.parse().map_err(|_| "malformed CSeq")?
    };
    if n >= 1 << 31 {
        return Err("CSeq number too large");
    }
    Ok((n as u32, method.to_string()))
}

/// Max-Forwards: 1*DIGIT, 0..=255 (RFC 3261 §20.22 / §25.1).
pub(crate) fn parse_max_forwards(value: &str) -> Result<u8, &'static str> {
    let v = value.trim_matches(is_lws);
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err("malformed Max-Forwards");
    }
    let t = v.trim_start_matches('0');
    if t.len() > 3 {
        return Err("Max-Forwards out of range");
    }
    if t.is_empty() {
        return Ok(0);
    }
    t.parse::<u8>().map_err(|_| "Max-Forwards out of range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_lws_everywhere_canonicalises() {
        let v =
            parse_via("SIP  / 2.0  / TCP     spindle.example.com   ;\t branch  =   z9hG4bK9ikj8")
                .unwrap();
        assert_eq!(
            v.to_canonical(),
            "SIP/2.0/TCP spindle.example.com;branch=z9hG4bK9ikj8"
        );
    }

    #[test]
    fn via_ipv6_keeps_brackets_and_port() {
        let v = parse_via("SIP/2.0/UDP [2001:db8::1]:5070;rport;branch=z9hG4bKx").unwrap();
        assert_eq!(v.host, "2001:db8::1");
        assert_eq!(v.port, Some(5070));
        assert_eq!(
            v.to_canonical(),
            "SIP/2.0/UDP [2001:db8::1]:5070;rport;branch=z9hG4bKx"
        );
    }

    #[test]
    fn via_with_empty_params_is_rejected() {
        assert!(parse_via("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(parse_via("SIP/2.0/UDP").is_err());
    }

    #[test]
    fn name_addr_forms() {
        let n = parse_name_addr("sip:u@example.com ;   tag    = 1918").unwrap();
        assert_eq!(n.uri, "sip:u@example.com");
        assert_eq!(n.tag(), Some("1918"));
        let n = parse_name_addr(r#""J \"R\"" <sip:j@example.com>;tag=9"#).unwrap();
        assert_eq!(n.to_canonical(), r#""J \"R\"" <sip:j@example.com>;tag=9"#);
        assert!(parse_name_addr(r#""Mr. J. User <sip:j.user@example.com>"#).is_err());
        assert!(parse_name_addr("Bell, Alexander <sip:a@example.com>").is_err());
        assert!(parse_name_addr("< sip:t.watson@example.org >").is_err());
        assert!(parse_name_addr("sip:user@example.com?Route=%3Csip:x%3E").is_err());
    }

    #[test]
    fn cseq_limits() {
        assert_eq!(
            parse_cseq("0009 INVITE").unwrap(),
            (9, "INVITE".to_string())
        );
        assert!(parse_cseq("36893488147419103232 REGISTER").is_err());
        assert!(parse_cseq("2147483648 INVITE").is_err());
        assert!(parse_cseq("INVITE").is_err());
    }

    #[test]
    fn split_respects_quotes_and_angles() {
        let parts = split_top_level(r#""a, b" <sip:x,y@h>, <sip:z@h>"#, ',');
        assert_eq!(parts, vec![r#""a, b" <sip:x,y@h>"#, "<sip:z@h>"]);
    }
}
