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
/// its body is not SDP (we read nothing else, §8.2.3), `Some((406, ..))` when it accepts no
/// SDP in the answer (§21.4.7). The text goes into a Warning for the caller's admin.
pub fn unacceptable_content(req: &rsip::Request) -> Option<(u16, &'static str)> {
    if !req.body.is_empty() {
        let kind = message::header_value(req, "Content-Type").unwrap_or_default();
        let media = kind.split(';').next().unwrap_or("").trim();
        // No Content-Type on a body: RFC 3261 §20.15 says it MUST be there; read it as SDP
        // rather than refuse an old phone.
        if !media.is_empty() && !media.eq_ignore_ascii_case("application/sdp") {
            return Some((415, "only application/sdp bodies are understood"));
        }
    }
    let accepts = message::header_values(req, "Accept");
    if accepts.is_empty() {
        return None;
    }
    let sdp_ok = accepts.iter().flat_map(|v| v.split(',')).any(|r| {
        let media = r
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        matches!(media.as_str(), "application/sdp" | "application/*" | "*/*")
    });
    (!sdp_ok).then_some((406, "the answer is application/sdp"))
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
}
