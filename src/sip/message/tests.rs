use super::*;
use std::net::SocketAddr;

const INVITE: &str = "INVITE sip:8890@gw.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKaaa;rport\r\n\
Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKbbb\r\n\
Record-Route: <sip:p1.example.com;lr>\r\n\
Max-Forwards: 70\r\n\
From: \"Citizen\" <sip:alice@example.com>;tag=from1\r\n\
To: <sip:8890@gw.example.com>\r\n\
Call-ID: call-1@192.0.2.10\r\n\
CSeq: 7 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5062>\r\n\
Content-Length: 4\r\n\r\nv=0\n";

fn request(text: &str) -> rsip::Request {
    match parse(text.as_bytes()) {
        Ok(rsip::SipMessage::Request(r)) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn bad_request(bytes: &[u8]) -> (String, rsip::Response) {
    match parse(bytes) {
        Err(ParseError::BadRequest { reason, response }) => (reason, *response),
        other => panic!("expected BadRequest, got {other:?}"),
    }
}

#[test]
fn tolerant_forms_are_normalised() {
    // Keep-alive CRLFs, bare LF, compact names, folding, `Name :`, comma-joined Via.
    let raw = "\r\n\r\nOPTIONS sip:8890@gw SIP/2.0\n\
v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1 ,\n SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK2\n\
f : <sip:a@example.com>\n  ;tag=ft\n\
t: sip:8890@gw\ni: abc@host\nCSeq :\n 3 OPTIONS\nl: 0\n\n";
    let r = request(raw);
    assert_eq!(call_id(&r).as_deref(), Some("abc@host"));
    assert_eq!(from_tag(&r).as_deref(), Some("ft"));
    assert_eq!(to_tag(&r), None);
    assert_eq!(cseq_number(&r), Some(3));
    assert_eq!(method_of_cseq(&r).as_deref(), Some("OPTIONS"));
    let vias = header_values(&r, "v");
    assert_eq!(vias.len(), 2, "comma-joined Via split into rows: {vias:?}");
    assert_eq!(top_via(&r).unwrap().branch.as_deref(), Some("z9hG4bK1"));
}

#[test]
fn empty_and_whitespace_datagrams_are_garbage() {
    for raw in [&b""[..], b"\r\n\r\n", b" \t\r\n"] {
        let err = parse(raw).unwrap_err();
        assert!(matches!(err, ParseError::Garbage(_)), "{raw:?}");
        assert!(err.response().is_none());
    }
}

#[test]
fn unknown_method_gets_a_ready_501() {
    let raw = INVITE.replace("INVITE", "FROBNICATE");
    match parse(raw.as_bytes()) {
        Err(ParseError::UnknownMethod { method, response }) => {
            assert_eq!(method, "FROBNICATE");
            assert_eq!(response.status_code.code(), 501);
            assert_eq!(header_values(&*response, "Via").len(), 2);
            assert!(to_tag(&*response).is_some(), "501 carries a To-tag");
            assert_eq!(call_id(&*response).as_deref(), Some("call-1@192.0.2.10"));
            let wire = String::from_utf8(to_bytes(&(*response).into())).unwrap();
            assert!(
                wire.starts_with("SIP/2.0 501 Not Implemented\r\n"),
                "{wire}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn non_utf8_header_bytes_give_400() {
    let mut raw = INVITE.as_bytes().to_vec();
    let pos = INVITE.find("Citizen").unwrap();
    raw[pos] = 0xff;
    let (reason, resp) = bad_request(&raw);
    assert!(reason.contains("UTF-8"), "{reason}");
    assert_eq!(resp.status_code.code(), 400);
}

#[test]
fn content_length_rules_for_udp() {
    let short = INVITE.replace("Content-Length: 4", "Content-Length: 40");
    assert!(bad_request(short.as_bytes()).0.contains("Content-Length"));
    for v in ["-1", "abc", "4 4"] {
        let raw = INVITE.replace("Content-Length: 4", &format!("Content-Length: {v}"));
        assert!(
            bad_request(raw.as_bytes()).0.contains("Content-Length"),
            "{v}"
        );
    }
    let long = INVITE.replace("Content-Length: 4", "Content-Length: 2");
    assert_eq!(request(&long).body, b"v=");
    let none = INVITE.replace("Content-Length: 4\r\n", "");
    assert_eq!(request(&none).body, b"v=0\n");
}

#[test]
fn missing_or_mismatched_headers_give_400_with_warning() {
    let raw = INVITE.replace("Call-ID: call-1@192.0.2.10\r\n", "");
    let err = parse(raw.as_bytes()).unwrap_err();
    assert_eq!(err.response().map(|r| r.status_code.code()), Some(400));
    let (reason, resp) = bad_request(raw.as_bytes());
    assert_eq!(reason, "missing Call-ID");
    let wire = String::from_utf8(to_bytes(&resp.into())).unwrap();
    assert!(wire.starts_with("SIP/2.0 400 Bad Request\r\n"), "{wire}");
    assert!(
        wire.contains("Warning: 399 hotline-gateway \"missing Call-ID\"\r\n"),
        "{wire}"
    );
    assert!(wire.contains("Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKaaa;rport\r\nVia: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKbbb\r\n"));

    let raw = INVITE.replace("CSeq: 7 INVITE", "CSeq: 7 BYE");
    assert!(bad_request(raw.as_bytes()).0.contains("CSeq method"));

    let no_via = INVITE
        .replace(
            "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKaaa;rport\r\n",
            "",
        )
        .replace(
            "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKbbb\r\n",
            "",
        )
        .replace("Call-ID: call-1@192.0.2.10\r\n", "");
    assert!(matches!(
        parse(no_via.as_bytes()),
        Err(ParseError::Garbage(_))
    ));
}

#[test]
fn max_forwards_zero_and_absent_are_the_tus_business() {
    let zero = INVITE.replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert!(parse(zero.as_bytes()).is_ok());
    let absent = INVITE.replace("Max-Forwards: 70\r\n", "");
    assert!(parse(absent.as_bytes()).is_ok());
    let huge = INVITE.replace("Max-Forwards: 70", "Max-Forwards: 256");
    assert_eq!(bad_request(huge.as_bytes()).1.status_code.code(), 400);
}

#[test]
fn tel_request_uri_gets_416() {
    let raw = INVITE.replace("INVITE sip:8890@gw.example.com", "INVITE tel:8890");
    assert_eq!(bad_request(raw.as_bytes()).1.status_code.code(), 416);
}

#[test]
fn stamp_via_adds_received_and_rport() {
    let mut r = request(INVITE);
    let source: SocketAddr = "203.0.113.5:40000".parse().unwrap();
    stamp_via(&mut r, source);
    let via = top_via(&r).unwrap();
    assert_eq!(via.received.as_deref(), Some("203.0.113.5"));
    assert_eq!(via.rport, Some(Some(40000)));
    assert_eq!(via.branch.as_deref(), Some("z9hG4bKaaa"));
    assert_eq!(response_destination(&r, source), Some(source));

    // Same IP, no rport: nothing to add; the response goes to the sent-by port.
    let raw = INVITE.replace(";rport", "");
    let mut r = request(&raw);
    let source: SocketAddr = "192.0.2.10:40001".parse().unwrap();
    stamp_via(&mut r, source);
    assert_eq!(top_via(&r).unwrap().received, None);
    assert_eq!(
        response_destination(&r, source),
        Some("192.0.2.10:5062".parse().unwrap())
    );
}

/// Issue 11: a `received` the sender wrote itself is replaced by the truth, and never
/// aims a response.
#[test]
fn a_received_written_by_the_sender_is_overwritten_and_not_believed() {
    let raw = INVITE.replace(";rport", ";received=198.51.100.66");
    let mut r = request(&raw);
    let source: SocketAddr = "192.0.2.10:5062".parse().unwrap();
    assert_eq!(
        response_destination(&r, source),
        Some(source),
        "the source's address, not the claimed one"
    );
    stamp_via(&mut r, source);
    assert_eq!(top_via(&r).unwrap().received.as_deref(), Some("192.0.2.10"));
}

#[test]
fn response_destination_defaults_and_domains() {
    let source: SocketAddr = "192.0.2.10:40000".parse().unwrap();
    let raw = INVITE.replace(
        "192.0.2.10:5062;branch=z9hG4bKaaa;rport",
        "192.0.2.10;branch=z9hG4bKaaa",
    );
    assert_eq!(
        response_destination(&request(&raw), source),
        Some("192.0.2.10:5060".parse().unwrap())
    );
    let raw = INVITE.replace(
        "192.0.2.10:5062;branch=z9hG4bKaaa;rport",
        "ua.example.com;branch=z9hG4bKaaa",
    );
    assert_eq!(
        response_destination(&request(&raw), source),
        Some("192.0.2.10:5060".parse().unwrap()),
        "a name is not resolved: the source's address"
    );
}

#[test]
fn top_via_of_a_comma_joined_row_is_the_first_value() {
    let mut r = request(INVITE);
    r.headers.retain(|h| !matches!(h, rsip::Header::Via(_)));
    r.headers.push(rsip::Header::Via(rsip::headers::Via::new(
        "SIP/2.0/UDP [2001:db8::1]:5080;branch=z9hG4bKtop, SIP/2.0/UDP b;branch=z9hG4bKlow",
    )));
    let via = top_via(&r).unwrap();
    assert_eq!(via.branch.as_deref(), Some("z9hG4bKtop"));
    assert_eq!(via.sent_by_host, "2001:db8::1");
    assert_eq!(via.sent_by(), "[2001:db8::1]:5080");
}

#[test]
fn response_copies_dialog_headers() {
    let r = request(INVITE);
    let resp = response(&r, 200, "OK", Some("ourtag"));
    let wire = String::from_utf8(to_bytes(&resp.clone().into())).unwrap();
    let expected = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKaaa;rport\r\n\
Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKbbb\r\n\
Record-Route: <sip:p1.example.com;lr>\r\n\
From: \"Citizen\" <sip:alice@example.com>;tag=from1\r\n\
To: <sip:8890@gw.example.com>;tag=ourtag\r\n\
Call-ID: call-1@192.0.2.10\r\n\
CSeq: 7 INVITE\r\n\
Content-Length: 0\r\n\r\n";
    assert_eq!(wire, expected);
    // An existing To-tag is kept; non-dialog answers carry no Record-Route.
    let again = response(
        &request(&wire_request_with_to_tag()),
        486,
        "Busy Here",
        Some("x"),
    );
    assert_eq!(to_tag(&again).as_deref(), Some("have"));
    assert!(header_value(&again, "Record-Route").is_none());
    assert!(matches!(again.status_code, rsip::StatusCode::BusyHere));
    let custom = response(&r, 480, "Hotline closed", None);
    let wire = String::from_utf8(to_bytes(&custom.into())).unwrap();
    assert!(wire.starts_with("SIP/2.0 480 Hotline closed\r\n"));
}

fn wire_request_with_to_tag() -> String {
    INVITE.replace(
        "To: <sip:8890@gw.example.com>",
        "To: <sip:8890@gw.example.com>;tag=have",
    )
}

#[test]
fn to_bytes_round_trips_and_fixes_content_length() {
    let mut r = request(INVITE);
    r.body = vec![0, 159, 146, 150, b'\n'];
    let msg: rsip::SipMessage = r.clone().into();
    let wire = to_bytes(&msg);
    assert!(wire.ends_with(b"Content-Length: 5\r\n\r\n\x00\x9f\x92\x96\n"));
    match parse(&wire) {
        Ok(rsip::SipMessage::Request(back)) => {
            assert_eq!(back.body, r.body);
            assert_eq!(back.uri, r.uri);
            assert_eq!(call_id(&back), call_id(&r));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ipv6_and_dotted_user_request_uris() {
    let raw = INVITE.replace(
        "INVITE sip:8890@gw.example.com",
        "INVITE sip:j.user@[2001:db8::5]:5070;transport=udp",
    );
    let r = request(&raw);
    assert_eq!(r.uri.user(), Some("j.user"));
    let wire = String::from_utf8(to_bytes(&r.into())).unwrap();
    assert!(
        // rsip re-spells the transport value in upper case (it is case-insensitive).
        wire.starts_with("INVITE sip:j.user@[2001:db8::5]:5070;transport=UDP SIP/2.0\r\n"),
        "{wire}"
    );
}

#[test]
fn dialled_number_from_request_uri() {
    let cases = [
        ("sip:8890@gw.example.com", Some("8890")),
        (
            "sip:8890;phone-context=+49.30@gw.example.com;user=phone",
            Some("8890"),
        ),
        ("sip:%2B49308890@gw.example.com", Some("+49308890")),
        ("sip:gw.example.com", None),
    ];
    for (uri, want) in cases {
        let raw = INVITE.replace("sip:8890@gw.example.com SIP/2.0", &format!("{uri} SIP/2.0"));
        assert_eq!(request_uri_user(&request(&raw)).as_deref(), want, "{uri}");
    }
}

#[test]
fn responses_with_two_vias_or_bad_codes_are_dropped() {
    let ok = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
    assert!(matches!(
        parse(ok.as_bytes()),
        Ok(rsip::SipMessage::Response(_))
    ));
    let two = ok.replace("Via:", "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKy\r\nVia:");
    assert!(matches!(
        parse(two.as_bytes()),
        Err(ParseError::BadResponse(_))
    ));
    let code = ok.replace("180 Ringing", "18 Ringing");
    assert!(matches!(
        parse(code.as_bytes()),
        Err(ParseError::BadResponse(_))
    ));
}

/// Issue 11: §8.2.6.2, every response but 100 to a request without a To tag carries one,
/// even when the TU gives none (an OPTIONS 200, a 405, a 503).
#[test]
fn final_responses_outside_a_dialog_always_get_a_to_tag() {
    let r = request(INVITE);
    assert_eq!(to_tag(&response(&r, 100, "Trying", None)), None);
    for code in [180, 200, 403, 404, 405, 503] {
        let resp = response(&r, code, "", None);
        assert!(to_tag(&resp).is_some_and(|t| !t.is_empty()), "{code}");
    }
    // One the caller gives, or one the request has, is kept.
    assert_eq!(
        to_tag(&response(&r, 200, "OK", Some("mine"))).as_deref(),
        Some("mine")
    );
    let in_dialog = request(&wire_request_with_to_tag());
    assert_eq!(
        to_tag(&response(&in_dialog, 200, "OK", None)).as_deref(),
        Some("have")
    );
}
