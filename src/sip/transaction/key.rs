//! The few header fields the transaction layer matches on.
//!
//! The top Via comes from [`crate::sip::message::top_via_in`], the one reader the TU uses too
//! (`rsip` 0.4 keeps a comma-joined Via as one header and its `typed()` reports the branch
//! of the wrong element). The tags and CSeq are read here from the raw header text with
//! small total parsers: every function returns `None` on odd input rather than panicking
//! (network input never panics).

use rsip::headers::UntypedHeader;
use rsip::Header;

use crate::sip::message::ViaInfo;
pub(super) use crate::sip::message::{top_via_in as top_via, top_via_text as top_via_value};

use super::TransactionKey;

/// RFC 3261 §8.1.1.7: branches starting with this cookie are globally unique.
const MAGIC_COOKIE: &str = "z9hG4bK";

/// The header fields a transaction is identified and merged by, read once per message.
#[derive(Debug, Clone)]
pub(super) struct MessageIds {
    pub via: ViaInfo,
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
            sent_by: self.via.sent_by_key(),
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
    use std::net::SocketAddr;

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
        assert_eq!(via.sent_by_key(), "10.0.0.1:5070");
        assert_eq!(via.rport, Some(None));
    }

    fn source() -> SocketAddr {
        "203.0.113.9:41000".parse().expect("addr")
    }

    #[test]
    fn response_destination_is_the_source_ip_at_the_sent_by_port_without_rport() {
        let h = headers("Via: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1\r\n");
        let dest = top_via(&h).map(|v| v.response_destination(source()));
        assert_eq!(dest, Some("203.0.113.9:5060".parse().expect("addr")));
    }

    #[test]
    fn response_destination_with_rport_is_the_source() {
        let h = headers("Via: SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1;rport\r\n");
        let dest = top_via(&h).map(|v| v.response_destination(source()));
        assert_eq!(dest, Some(source()));
    }

    /// Issue 11: a `received` the sender wrote (no rport) aimed our answers, and their
    /// Timer G resends, at a third party.
    #[test]
    fn received_written_by_the_sender_is_never_believed() {
        let h = headers("Via: SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1;received=198.51.100.9\r\n");
        let dest = top_via(&h).map(|v| v.response_destination(source()));
        assert_eq!(dest, Some("203.0.113.9:5062".parse().expect("addr")));
        let h = headers(
            "Via: SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1;received=198.51.100.9;rport=40000\r\n",
        );
        let dest = top_via(&h).map(|v| v.response_destination(source()));
        assert_eq!(dest, Some(source()), "nor an rport value it filled in");
    }

    #[test]
    fn hostname_sent_by_is_answered_at_the_source() {
        let h = headers("Via: SIP/2.0/UDP PBX.example.org:5060;branch=z9hG4bK1\r\n");
        let via = top_via(&h).expect("via");
        assert_eq!(via.response_destination(source()).ip(), source().ip());
        assert_eq!(via.sent_by_key(), "pbx.example.org:5060");
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
