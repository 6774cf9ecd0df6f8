//! Request checks a UAS owes before acting on a request (RFC 3261 §8.2.2.3 and §8.2.3):
//! extensions the caller requires that we do not support (420), bodies we cannot read
//! (415) and answers the caller could not read (406). Pure functions of the request.

use crate::sip::message;

/// The option tags in `Require` that are not among `supported` (a comma-separated list, as
/// in our Supported header). Empty: nothing stops the request. ACK and CANCEL are never
/// checked (§8.2.2.3: a CANCEL or the ACK of a call cannot be refused).
pub fn unsupported_requirements(req: &rsip::Request, supported: &str) -> Vec<String> {
    if matches!(req.method, rsip::Method::Ack | rsip::Method::Cancel) {
        return Vec::new();
    }
    let ours: Vec<String> = tags(supported).collect();
    // Echoed as the caller wrote them (its admin greps for them), compared without case.
    message::header_values(req, "Require")
        .iter()
        .flat_map(|v| tags(v).collect::<Vec<_>>())
        .filter(|t| !ours.iter().any(|o| o.eq_ignore_ascii_case(t)))
        .collect()
}

fn tags(list: &str) -> impl Iterator<Item = String> + '_ {
    list.split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// What an INVITE's body and Accept header leave us able to do: `Some((415, ..))` when
/// its body holds no SDP we can read (§8.2.3), `Some((400, ..))` for a multipart body we
/// cannot split, `Some((406, ..))` when it accepts no SDP in the answer (§21.4.7). The text
/// goes into a Warning for the caller's admin.
pub fn unacceptable_content(req: &rsip::Request) -> Option<(u16, &'static str)> {
    if let Err(refusal) = sdp_offer(req) {
        return Some(refusal);
    }
    let accepts = message::header_values(req, "Accept");
    if accepts.is_empty() {
        return None;
    }
    let sdp_ok = accepts.iter().flat_map(|v| v.split(',')).any(|r| {
        let media = media_type(r);
        matches!(media.as_str(), "application/sdp" | "application/*" | "*/*")
    });
    (!sdp_ok).then_some((406, "the answer is application/sdp"))
}

/// The SDP offer a request carries: the whole body when it is SDP, or the `application/sdp`
/// part of a `multipart/*` body (RFC 5621). SIP-I/SIP-T trunks (RFC 3204), common on PSTN
/// interconnects, send `multipart/mixed` with the SDP beside a binary ISUP part; refusing
/// that would refuse every call from such a trunk. Other parts are ignored unless marked
/// `handling=required` (RFC 3204 §4: then we must refuse what we do not understand).
/// `Ok(None)`: no body (a late offer, or a re-INVITE that only refreshes).
pub fn sdp_offer(req: &rsip::Request) -> Result<Option<String>, (u16, &'static str)> {
    if req.body.is_empty() {
        return Ok(None);
    }
    let kind = message::header_value(req, "Content-Type").unwrap_or_default();
    let media = media_type(&kind);
    // No Content-Type on a body: RFC 3261 §20.15 says it MUST be there; read it as SDP
    // rather than refuse an old phone.
    if media.is_empty() || media == "application/sdp" {
        return Ok(Some(String::from_utf8_lossy(&req.body).into_owned()));
    }
    if !media.starts_with("multipart/") {
        return Err((415, "only application/sdp bodies are understood"));
    }
    let boundary =
        parameter(&kind, "boundary").ok_or((400, "multipart body without a boundary"))?;
    let mut sdp = None;
    for part in body_parts(&req.body, boundary.as_bytes()) {
        let (headers, content) = split_part(part);
        let part_kind = part_header(headers, "content-type").unwrap_or_default();
        if media_type(&part_kind) == "application/sdp" {
            sdp.get_or_insert_with(|| String::from_utf8_lossy(content).into_owned());
        } else if part_header(headers, "content-disposition")
            .and_then(|d| parameter(&d, "handling"))
            .is_some_and(|h| h.eq_ignore_ascii_case("required"))
        {
            return Err((
                415,
                "a body part marked handling=required is not understood",
            ));
        }
    }
    sdp.map(Some)
        .ok_or((415, "no application/sdp part in the multipart body"))
}

/// `Application/SDP; charset=x` → `application/sdp`.
fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A `;name=value` parameter of a header value, unquoted.
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The parts of a multipart body (RFC 2046 §5.1.1): what lies between `--boundary` lines,
/// without the CRLF that belongs to the next delimiter; nothing after `--boundary--`. Works
/// on bytes: an ISUP part is binary.
fn body_parts<'a>(body: &'a [u8], boundary: &[u8]) -> Vec<&'a [u8]> {
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(boundary);
    let starts: Vec<usize> = (0..body.len())
        .filter(|&i| body[i..].starts_with(&delimiter) && (i == 0 || body[..i].ends_with(b"\n")))
        .collect();
    let mut parts = Vec::new();
    for (n, &at) in starts.iter().enumerate() {
        let after = at + delimiter.len();
        if body[after..].starts_with(b"--") {
            break;
        }
        let Some(line_end) = body[after..].windows(2).position(|w| w == b"\r\n") else {
            break;
        };
        let start = after + line_end + 2;
        let end = match starts.get(n + 1) {
            Some(&next) => next.saturating_sub(2).max(start),
            None => break, // no closing delimiter: a truncated body, ignore the tail
        };
        parts.push(&body[start..end]);
    }
    parts
}

/// A part's header block and its content (RFC 2046: a part that starts with CRLF has no
/// headers and is `text/plain`).
fn split_part(part: &[u8]) -> (&str, &[u8]) {
    if let Some(rest) = part.strip_prefix(b"\r\n") {
        return ("", rest);
    }
    match part.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (
            std::str::from_utf8(&part[..i]).unwrap_or(""),
            &part[i + 4..],
        ),
        None => (std::str::from_utf8(part).unwrap_or(""), &[]),
    }
}

fn part_header(headers: &str, name: &str) -> Option<String> {
    headers.split("\r\n").find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, extra: &str, body: &str) -> rsip::Request {
        let text = format!(
            "{method} sip:8890@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKx\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:8890@127.0.0.1>\r\n\
             Call-ID: c@127.0.0.1\r\nCSeq: 1 {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match message::parse(text.as_bytes()) {
            Ok(rsip::SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn required_extensions_we_lack_are_listed_and_ours_pass() {
        let r = request(
            "OPTIONS",
            "Require: nothingSupportsThis, REPLACES\r\nRequire: 100rel\r\n",
            "",
        );
        assert_eq!(
            unsupported_requirements(&r, "replaces"),
            ["nothingSupportsThis", "100rel"]
        );
        let r = request("INVITE", "Require: replaces\r\n", "");
        assert!(unsupported_requirements(&r, "replaces").is_empty());
        let r = request("INVITE", "", "");
        assert!(unsupported_requirements(&r, "replaces").is_empty());
    }

    #[test]
    fn bodies_other_than_sdp_get_415_and_accept_without_sdp_406() {
        let sdp = "v=0\r\n";
        let r = request(
            "INVITE",
            "Content-Type: application/unknownformat\r\n",
            "<a/>",
        );
        assert_eq!(unacceptable_content(&r).map(|x| x.0), Some(415));
        let r = request("INVITE", "Content-Type: Application/SDP;charset=x\r\n", sdp);
        assert_eq!(unacceptable_content(&r), None);
        let r = request(
            "INVITE",
            "Content-Type: application/sdp\r\nAccept: text/nobodyKnowsThis\r\n",
            sdp,
        );
        assert_eq!(unacceptable_content(&r).map(|x| x.0), Some(406));
        let r = request(
            "INVITE",
            "Content-Type: application/sdp\r\nAccept: application/isup, application/sdp;level=1\r\n",
            sdp,
        );
        assert_eq!(unacceptable_content(&r), None);
        let r = request("INVITE", "Accept: */*\r\n", "");
        assert_eq!(unacceptable_content(&r), None);
    }

    /// An INVITE body as a SIP-I gateway sends it: SDP beside a binary ISUP IAM.
    fn sip_i_body(isup_handling: &str) -> Vec<u8> {
        let mut b = b"--unique-boundary-1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n\r\n--unique-boundary-1\r\nContent-Type: application/isup; version=itu-t92+\r\nContent-Disposition: signal; handling=".to_vec();
        b.extend_from_slice(isup_handling.as_bytes());
        b.extend_from_slice(
            b"\r\n\r\n\x01\x00\x60\x01\x0a\x00\x02\x0d\x0a\x2d\x2d\r\n--unique-boundary-1--\r\n",
        );
        b
    }

    fn with_body(content_type: &str, body: Vec<u8>) -> rsip::Request {
        let mut r = request("INVITE", &format!("Content-Type: {content_type}\r\n"), "");
        r.body = body;
        r
    }

    #[test]
    fn the_sdp_part_of_a_sip_i_multipart_body_is_the_offer() {
        let r = with_body(
            "multipart/mixed;boundary=unique-boundary-1",
            sip_i_body("optional"),
        );
        assert_eq!(
            sdp_offer(&r),
            Ok(Some("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n".to_string())),
            "the SDP, without the CRLF that belongs to the next delimiter"
        );
        assert_eq!(unacceptable_content(&r), None);
        // Quoted boundary, other case.
        let r = with_body(
            "Multipart/Mixed; boundary=\"unique-boundary-1\"",
            sip_i_body("optional"),
        );
        assert!(matches!(sdp_offer(&r), Ok(Some(s)) if s.starts_with("v=0")));
    }

    #[test]
    fn multipart_without_sdp_or_with_a_required_unknown_part_is_refused() {
        let r = with_body(
            "multipart/mixed;boundary=unique-boundary-1",
            sip_i_body("required"),
        );
        assert_eq!(sdp_offer(&r).map_err(|e| e.0), Err(415));
        let only_isup =
            b"--b\r\nContent-Type: application/isup\r\n\r\n\x01\x02\r\n--b--\r\n".to_vec();
        let r = with_body("multipart/mixed; boundary=b", only_isup.clone());
        assert_eq!(sdp_offer(&r).map_err(|e| e.0), Err(415));
        let r = with_body("multipart/mixed", only_isup);
        assert_eq!(sdp_offer(&r).map_err(|e| e.0), Err(400));
        // A truncated body (no closing delimiter) yields no part rather than a panic.
        let r = with_body(
            "multipart/mixed; boundary=b",
            b"--b\r\nContent-Type: application/sdp\r\n\r\nv=0".to_vec(),
        );
        assert_eq!(sdp_offer(&r).map_err(|e| e.0), Err(415));
        assert_eq!(sdp_offer(&request("INVITE", "", "")), Ok(None));
    }
}
