use super::*;
use crate::sip::message::{parse, to_bytes};

const INVITE: &str = "INVITE sip:8890@gw.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP p2.example.com;branch=z9hG4bKp2\r\n\
Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKua\r\n\
Record-Route: <sip:p2.example.com;lr>\r\n\
Record-Route: <sip:p1.example.com;lr;ftag=x>\r\n\
Max-Forwards: 68\r\n\
From: \"Citizen\" <sip:alice@example.com>;tag=caller-tag\r\n\
To: <sip:8890@gw.example.com>\r\n\
Call-ID: dlg-1@192.0.2.10\r\n\
CSeq: 10 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5062;transport=udp>\r\n\
Content-Length: 0\r\n\r\n";

fn req(text: &str) -> rsip::Request {
    match parse(text.as_bytes()) {
        Ok(rsip::SipMessage::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn resp(text: &str) -> rsip::Response {
    match parse(text.as_bytes()) {
        Ok(rsip::SipMessage::Response(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn our_contact() -> rsip::Uri {
    parse_uri("sip:gw@127.0.0.1:5060").unwrap()
}

fn routes(r: &rsip::Request) -> Vec<String> {
    header_values(r, "Route")
}

#[test]
fn uas_bye_follows_record_route_in_order_to_the_callers_contact() {
    let mut d = Dialog::uas(&req(INVITE), "our-tag", our_contact()).unwrap();
    assert_eq!(
        d.id(),
        &DialogId {
            call_id: "dlg-1@192.0.2.10".into(),
            local_tag: "our-tag".into(),
            remote_tag: "caller-tag".into(),
        }
    );
    let (bye, next_hop) = d.new_request(rsip::Method::Bye, "127.0.0.1", 5060, rsip::Transport::Udp);
    assert_eq!(
        routes(&bye),
        vec!["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr;ftag=x>"]
    );
    assert_eq!(
        uri_to_string(&bye.uri),
        "sip:alice@192.0.2.10:5062;transport=UDP"
    );
    assert_eq!(uri_to_string(&next_hop), "sip:p2.example.com;lr");
    assert_eq!(
        header_value(&bye, "From").unwrap(),
        "<sip:8890@gw.example.com>;tag=our-tag"
    );
    assert_eq!(
        header_value(&bye, "To").unwrap(),
        "\"Citizen\" <sip:alice@example.com>;tag=caller-tag"
    );
    assert_eq!(header_value(&bye, "CSeq").unwrap(), "1 BYE");
    assert_eq!(header_value(&bye, "Max-Forwards").unwrap(), "70");
    assert!(
        header_value(&bye, "Contact").is_none(),
        "BYE is no target refresh"
    );
    let via = message::top_via(&bye).unwrap();
    assert!(via.branch.as_deref().unwrap().starts_with("z9hG4bK"));
    assert_eq!(via.sent_by(), "127.0.0.1:5060");

    // The BYE is well-formed on the wire and the next request increments CSeq.
    assert!(parse(&to_bytes(&bye.clone().into())).is_ok());
    let (info, _) = d.new_request(rsip::Method::Info, "127.0.0.1", 5060, rsip::Transport::Udp);
    assert_eq!(message::cseq_number(&info), Some(2));
    assert_ne!(message::top_via(&info).unwrap().branch, via.branch);
}

const OUR_INVITE: &str = "INVITE sip:agent@pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKours\r\n\
Max-Forwards: 70\r\n\
From: <sip:8890@gw.example.com>;tag=uac-tag\r\n\
To: <sip:agent@pbx.example.com>\r\n\
Call-ID: out-1@127.0.0.1\r\n\
CSeq: 41 INVITE\r\n\
Contact: <sip:gw@127.0.0.1:5060>\r\n\
Content-Length: 0\r\n\r\n";

const OK_200: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKours\r\n\
Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n\
From: <sip:8890@gw.example.com>;tag=uac-tag\r\n\
To: <sip:agent@pbx.example.com>;tag=agent-tag\r\n\
Call-ID: out-1@127.0.0.1\r\n\
CSeq: 41 INVITE\r\n\
Contact: <sip:agent@[2001:db8::20]:5080>\r\n\
Content-Length: 0\r\n\r\n";

#[test]
fn uac_reverses_the_route_set_and_acks_with_the_invite_cseq() {
    let mut d = Dialog::uac(&req(OUR_INVITE), &resp(OK_200)).unwrap();
    assert_eq!(d.id().local_tag, "uac-tag");
    assert_eq!(d.id().remote_tag, "agent-tag");
    let (ack, hop) = d.ack_for_2xx(41, "127.0.0.1", 5060, rsip::Transport::Udp);
    assert_eq!(ack.method, rsip::Method::Ack);
    assert_eq!(header_value(&ack, "CSeq").unwrap(), "41 ACK");
    assert_eq!(
        routes(&ack),
        vec!["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    );
    assert_eq!(uri_to_string(&hop), "sip:p1.example.com;lr");
    let wire = String::from_utf8(to_bytes(&ack.into())).unwrap();
    assert!(
        wire.starts_with("ACK sip:agent@[2001:db8::20]:5080 SIP/2.0\r\n"),
        "{wire}"
    );

    let (bye, _) = d.new_request(rsip::Method::Bye, "127.0.0.1", 5060, rsip::Transport::Udp);
    assert_eq!(header_value(&bye, "CSeq").unwrap(), "42 BYE");
    assert_eq!(
        header_value(&bye, "From").unwrap(),
        "<sip:8890@gw.example.com>;tag=uac-tag"
    );
    assert_eq!(
        header_value(&bye, "To").unwrap(),
        "<sip:agent@pbx.example.com>;tag=agent-tag"
    );
}

fn in_dialog(
    method: &str,
    cseq: u32,
    from_tag: &str,
    to_tag: &str,
    call_id: &str,
) -> rsip::Request {
    req(&format!(
        "{method} sip:gw@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK{cseq}{method}\r\n\
From: <sip:alice@example.com>;tag={from_tag}\r\n\
To: <sip:8890@gw.example.com>;tag={to_tag}\r\n\
Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    ))
}

#[test]
fn matches_uses_call_id_and_both_tags_from_our_side() {
    let d = Dialog::uas(&req(INVITE), "our-tag", our_contact()).unwrap();
    assert!(d.matches(&in_dialog(
        "BYE",
        11,
        "caller-tag",
        "our-tag",
        "dlg-1@192.0.2.10"
    )));
    assert!(!d.matches(&in_dialog(
        "BYE",
        11,
        "our-tag",
        "caller-tag",
        "dlg-1@192.0.2.10"
    )));
    assert!(!d.matches(&in_dialog("BYE", 11, "caller-tag", "our-tag", "other@x")));
    assert!(!d.matches(&in_dialog(
        "BYE",
        11,
        "caller-tag",
        "stranger",
        "dlg-1@192.0.2.10"
    )));
}

#[test]
fn lower_remote_cseq_is_out_of_order() {
    let mut d = Dialog::uas(&req(INVITE), "our-tag", our_contact()).unwrap();
    let ack = in_dialog("ACK", 10, "caller-tag", "our-tag", "dlg-1@192.0.2.10");
    assert_eq!(d.check_remote_cseq(&ack), Ok(()));
    let bye = in_dialog("BYE", 11, "caller-tag", "our-tag", "dlg-1@192.0.2.10");
    assert_eq!(d.check_remote_cseq(&bye), Ok(()));
    assert_eq!(d.remote_cseq(), Some(11));
    let stale = in_dialog("INFO", 9, "caller-tag", "our-tag", "dlg-1@192.0.2.10");
    assert_eq!(
        d.check_remote_cseq(&stale),
        Err(DialogError::CSeqOutOfOrder { got: 9, last: 11 })
    );
}

#[test]
fn strict_route_goes_into_the_request_uri() {
    let invite = INVITE.replace("<sip:p2.example.com;lr>", "<sip:p2.example.com>");
    let mut d = Dialog::uas(&req(&invite), "our-tag", our_contact()).unwrap();
    let (bye, hop) = d.new_request(rsip::Method::Bye, "127.0.0.1", 5060, rsip::Transport::Udp);
    assert_eq!(uri_to_string(&bye.uri), "sip:p2.example.com");
    assert_eq!(uri_to_string(&hop), "sip:p2.example.com");
    assert_eq!(
        routes(&bye),
        vec![
            "<sip:p1.example.com;lr;ftag=x>",
            "<sip:alice@192.0.2.10:5062;transport=UDP>"
        ]
    );
}

#[test]
fn reinvite_contact_refreshes_the_target_and_carries_ours() {
    let mut d = Dialog::uas(&req(INVITE), "our-tag", our_contact()).unwrap();
    let mut reinvite = in_dialog("INVITE", 12, "caller-tag", "our-tag", "dlg-1@192.0.2.10");
    reinvite
        .headers
        .push(Header::Contact(rsip::headers::Contact::new(
            "<sip:alice@192.0.2.99:5070>",
        )));
    d.refresh_remote_target(&reinvite);
    let (inv, hop) = d.new_request(
        rsip::Method::Invite,
        "127.0.0.1",
        5060,
        rsip::Transport::Udp,
    );
    assert_eq!(uri_to_string(&inv.uri), "sip:alice@192.0.2.99:5070");
    assert_eq!(uri_to_string(&hop), "sip:p2.example.com;lr");
    assert_eq!(
        header_value(&inv, "Contact").unwrap(),
        "<sip:gw@127.0.0.1:5060>"
    );
}

#[test]
fn missing_contact_is_an_error_not_a_panic() {
    let invite = INVITE.replace("Contact: <sip:alice@192.0.2.10:5062;transport=udp>\r\n", "");
    assert_eq!(
        Dialog::uas(&req(&invite), "t", our_contact()).unwrap_err(),
        DialogError::Malformed("Contact")
    );
}

#[test]
fn lr_with_a_value_is_still_loose_routing() {
    // Older Kamailio/OpenSER write `;lr=on` (rr `enable_full_lr`); RFC 3261 §19.1.1 only
    // asks for the parameter's presence, so it must not be taken for a strict router.
    for rr in [
        "<sip:127.0.0.1:5070;lr=on;ftag=caller-tag>",
        "<sip:127.0.0.1:5070;LR>",
    ] {
        let invite = INVITE
            .replace("Record-Route: <sip:p2.example.com;lr>\r\n", "")
            .replace("<sip:p1.example.com;lr;ftag=x>", rr);
        let mut d = Dialog::uas(&req(&invite), "our-tag", our_contact()).unwrap();
        let (bye, hop) = d.new_request(rsip::Method::Bye, "127.0.0.1", 5060, rsip::Transport::Udp);
        assert_eq!(
            uri_to_string(&bye.uri),
            "sip:alice@192.0.2.10:5062;transport=UDP",
            "{rr}: the Request-URI stays the caller's Contact"
        );
        assert_eq!(routes(&bye).len(), 1, "{rr}");
        assert_eq!(hop.host().to_string(), "127.0.0.1", "{rr}");
    }
}

#[test]
fn next_hop_must_be_an_ip() {
    let u = rsip::Uri::try_from("sip:alice@127.0.0.1:5070;transport=udp").unwrap();
    assert_eq!(uri_socket_addr(&u), Some("127.0.0.1:5070".parse().unwrap()));
    let u = rsip::Uri::try_from("sip:alice@10.1.2.3").unwrap();
    assert_eq!(uri_socket_addr(&u), Some("10.1.2.3:5060".parse().unwrap()));
    let u = rsip::Uri::try_from("sip:alice@example.com").unwrap();
    assert_eq!(uri_socket_addr(&u), None);
}
