use super::*;

const LOCAL: &str = "192.0.2.10:30000";

fn local() -> SocketAddr {
    LOCAL.parse().unwrap()
}

fn crlf(s: &str) -> String {
    s.lines().map(|l| format!("{}\r\n", l.trim())).collect()
}

fn lines(sdp: &str) -> Vec<&str> {
    sdp.split("\r\n").filter(|l| !l.is_empty()).collect()
}

const G711: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

/// sipp's built-in uac scenario (`sipp -sd uac`), placeholders filled in.
const SIPP: &str = "v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000";

/// Captured from baresip 1.0.0 (g711 module) dialling 127.0.0.1.
const BARESIP: &str = "v=0
o=- 1193231398 777667527 IN IP4 192.0.2.2
s=-
c=IN IP4 192.0.2.2
t=0 0
a=tool:baresip 1.0.0
m=audio 15654 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=rtcp-rsize
a=ssrc:2933372880 cname:sip:tester@127.0.0.1
a=minptime:20
a=ptime:20";

const LINPHONE: &str = "v=0
o=alice 2345 3456 IN IP4 10.0.0.5
s=Talk
c=IN IP4 10.0.0.5
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
m=audio 7078 RTP/AVP 96 97 98 8 0 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp-fb:* trr-int 1000
m=video 9078 RTP/AVP 96
a=rtpmap:96 VP8/90000";

#[test]
fn answers_sipp_default() {
    let (n, text) = answer(&crlf(SIPP), &G711, local(), 42).unwrap();
    assert_eq!(n.codec, Codec::Pcmu);
    assert_eq!(n.dtmf_pt, None);
    assert_eq!(n.remote_rtp, "127.0.0.1:6000".parse().unwrap());
    assert_eq!(n.remote_direction, Direction::SendRecv);
    assert_eq!(
        lines(&text),
        vec![
            "v=0",
            "o=hotline 42 42 IN IP4 192.0.2.10",
            "s=hotline-gateway",
            "c=IN IP4 192.0.2.10",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0",
            "a=rtpmap:0 PCMU/8000",
            "a=ptime:20",
            "a=sendrecv",
        ]
    );
    assert!(text.ends_with("\r\n"));
}

#[test]
fn answers_baresip_with_telephone_event() {
    let (n, text) = answer(&crlf(BARESIP), &G711, local(), 7).unwrap();
    assert_eq!(n.codec, Codec::Pcmu);
    assert_eq!(n.dtmf_pt, Some(101));
    assert_eq!(n.remote_rtp, "192.0.2.2:15654".parse().unwrap());
    let l = lines(&text);
    assert!(l.contains(&"m=audio 30000 RTP/AVP 0 101"));
    assert!(l.contains(&"a=rtpmap:101 telephone-event/8000"));
    assert!(l.contains(&"a=fmtp:101 0-15"));
    // we only accept A-law: the caller's second choice
    let (n, text) = answer(&crlf(BARESIP), &[Codec::Pcma], local(), 7).unwrap();
    assert_eq!(n.codec, Codec::Pcma);
    assert!(lines(&text).contains(&"m=audio 30000 RTP/AVP 8 101"));
}

#[test]
fn answers_linphone_in_the_callers_order_and_declines_video() {
    let (n, text) = answer(&crlf(LINPHONE), &G711, local(), 1).unwrap();
    assert_eq!(n.codec, Codec::Pcma, "8 comes before 0 in the offer");
    assert_eq!(n.dtmf_pt, Some(100), "the 8 kHz telephone-event");
    let l = lines(&text);
    assert!(l.contains(&"m=audio 30000 RTP/AVP 8 100"));
    assert!(l.contains(&"m=video 0 RTP/AVP 96"), "{text}");
    let video = l.iter().position(|x| x.starts_with("m=video")).unwrap();
    assert_eq!(video, l.len() - 1, "declined stream carries no attributes");
}

#[test]
fn hold_reoffers_get_the_mirrored_direction() {
    let sendonly = crlf(&format!("{BARESIP}\na=sendonly")).replace("a=sendrecv\r\n", "");
    let (n, text) = answer(&sendonly, &G711, local(), 1).unwrap();
    assert_eq!(n.remote_direction, Direction::SendOnly);
    assert!(lines(&text).contains(&"a=recvonly"));

    let inactive = crlf(BARESIP).replace("a=sendrecv", "a=inactive");
    let (n, text) = answer(&inactive, &G711, local(), 1).unwrap();
    assert_eq!(n.remote_direction, Direction::Inactive);
    assert!(lines(&text).contains(&"a=inactive"));

    // RFC 2543 hold: c=0.0.0.0
    let old = crlf(BARESIP).replace("c=IN IP4 192.0.2.2", "c=IN IP4 0.0.0.0");
    let (n, text) = answer(&old, &G711, local(), 1).unwrap();
    assert!(n.remote_rtp.ip().is_unspecified());
    assert_eq!(n.remote_direction, Direction::SendOnly);
    assert!(lines(&text).contains(&"a=recvonly"));

    // session-level direction applies when the m-line has none
    let session_level = crlf(SIPP).replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
    let (n, _) = answer(&session_level, &G711, local(), 1).unwrap();
    assert_eq!(n.remote_direction, Direction::SendOnly);
}

#[test]
fn media_level_connection_and_ipv6() {
    let offer = crlf(
        "v=0
o=- 1 1 IN IP6 2001:db8::1
s=-
t=0 0
m=audio 5004 RTP/AVP 0
c=IN IP6 2001:db8::2",
    );
    let local6: SocketAddr = "[2001:db8::10]:30002".parse().unwrap();
    let (n, text) = answer(&offer, &G711, local6, 3).unwrap();
    assert_eq!(n.remote_rtp, "[2001:db8::2]:5004".parse().unwrap());
    assert!(lines(&text).contains(&"c=IN IP6 2001:db8::10"));
}

#[test]
fn errors() {
    let g729 = crlf(SIPP)
        .replace("RTP/AVP 0", "RTP/AVP 18")
        .replace("0 PCMU", "18 G729");
    assert_eq!(
        answer(&g729, &G711, local(), 1).unwrap_err(),
        SdpError::NoCommonCodec
    );
    // G.711 at a dynamic PT, or at 16 kHz, is not accepted
    let dynamic = crlf(SIPP)
        .replace("RTP/AVP 0", "RTP/AVP 96")
        .replace("0 PCMU", "96 PCMU");
    assert_eq!(
        answer(&dynamic, &G711, local(), 1).unwrap_err(),
        SdpError::NoCommonCodec
    );
    let wide = crlf(SIPP).replace("PCMU/8000", "PCMU/16000");
    assert_eq!(
        answer(&wide, &G711, local(), 1).unwrap_err(),
        SdpError::NoCommonCodec
    );
    // SRTP only
    let srtp = crlf(SIPP).replace("RTP/AVP", "RTP/SAVP");
    assert_eq!(
        answer(&srtp, &G711, local(), 1).unwrap_err(),
        SdpError::NoCommonCodec
    );
    // accepted list empty
    assert_eq!(
        answer(&crlf(SIPP), &[], local(), 1).unwrap_err(),
        SdpError::NoCommonCodec
    );
    let video_only = crlf(SIPP).replace("m=audio 6000 RTP/AVP 0", "m=video 6000 RTP/AVP 96");
    assert_eq!(
        answer(&video_only, &G711, local(), 1).unwrap_err(),
        SdpError::NoAudio
    );
    let no_c = crlf(SIPP).replace("c=IN IP4 127.0.0.1\r\n", "");
    assert!(matches!(
        answer(&no_c, &G711, local(), 1),
        Err(SdpError::Malformed(_))
    ));
    let fqdn = crlf(SIPP).replace("c=IN IP4 127.0.0.1", "c=IN IP4 pbx.example.org");
    assert!(matches!(
        answer(&fqdn, &G711, local(), 1),
        Err(SdpError::Malformed(_))
    ));
    for garbage in [
        "",
        "hello",
        "v=0\r\n",
        "v=0\r\no=x\r\n",
        "\u{0}\u{1}=",
        "m=audio x",
    ] {
        assert!(
            matches!(
                answer(garbage, &G711, local(), 1),
                Err(SdpError::Malformed(_))
            ),
            "{garbage:?}"
        );
    }
}

#[test]
fn random_bytes_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let base = crlf(LINPHONE);
    for _ in 0..2000 {
        let mut b = base.clone().into_bytes();
        for _ in 0..rng.gen_range(1..6) {
            let i = rng.gen_range(0..b.len());
            b[i] = *b"= /:\r\n0aIPm9-".get(rng.gen_range(0..13)).unwrap();
        }
        b.truncate(rng.gen_range(1..b.len()));
        let _ = answer(&String::from_utf8_lossy(&b), &G711, local(), 1);
    }
}

#[test]
fn offer_and_answer_round_trip() {
    let caller: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let o = offer(&[Codec::Pcma, Codec::Pcmu], 101, caller, 99);
    assert_eq!(
        lines(&o)[5..],
        [
            "m=audio 40000 RTP/AVP 8 0 101",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            "a=ptime:20",
            "a=sendrecv",
        ]
    );
    let (ours, text) = answer(&o, &G711, local(), 5).unwrap();
    assert_eq!(ours.codec, Codec::Pcma);
    assert_eq!(ours.dtmf_pt, Some(101));
    assert_eq!(ours.remote_rtp, caller);
    let theirs = parse_answer(&text).unwrap();
    assert_eq!(
        theirs,
        Negotiated {
            codec: Codec::Pcma,
            dtmf_pt: Some(101),
            remote_rtp: local(),
            remote_direction: Direction::SendRecv,
        }
    );
}

#[test]
fn parse_answer_errors() {
    let declined = crlf(SIPP).replace("m=audio 6000", "m=audio 0");
    assert_eq!(
        parse_answer(&declined).unwrap_err(),
        SdpError::NoCommonCodec
    );
    let video = crlf(SIPP).replace("m=audio", "m=video");
    assert_eq!(parse_answer(&video).unwrap_err(), SdpError::NoAudio);
    assert!(matches!(parse_answer("nope"), Err(SdpError::Malformed(_))));
}

/// The `o=` version of an SDP text.
fn o_version(sdp: &str) -> u64 {
    let o = lines(sdp)
        .into_iter()
        .find(|l| l.starts_with("o="))
        .unwrap();
    o.split_whitespace().nth(2).unwrap().parse().unwrap()
}

fn attribute_direction(sdp: &str) -> &str {
    lines(sdp)
        .into_iter()
        .find(|l| {
            matches!(
                *l,
                "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive"
            )
        })
        .unwrap()
}

#[test]
fn o_version_goes_up_by_one_per_change_and_stays_for_the_same_sdp() {
    let mut s = LocalSdp::new(1000, local());
    let offer = crlf(BARESIP);
    let (_, first) = s.answer(&offer, &G711).unwrap();
    assert_eq!(o_version(&first), 1000);
    // a session refresh with the same offer: same answer, same version
    let (_, again) = s.answer(&offer, &G711).unwrap();
    assert_eq!(again, first);
    // hold: our answer changes to recvonly, version + 1
    let hold = offer.replace("a=sendrecv", "a=sendonly");
    let (n, held) = s.answer(&hold, &G711).unwrap();
    assert_eq!(n.remote_direction, Direction::SendOnly);
    assert_eq!(attribute_direction(&held), "a=recvonly");
    assert_eq!(o_version(&held), 1001);
    let (_, held_again) = s.answer(&hold, &G711).unwrap();
    assert_eq!(o_version(&held_again), 1001);
    // resume: sendrecv again, + 1
    let (n, resumed) = s.answer(&offer, &G711).unwrap();
    assert_eq!(n.remote_direction, Direction::SendRecv);
    assert_eq!(attribute_direction(&resumed), "a=sendrecv");
    assert_eq!(o_version(&resumed), 1002);
    assert_eq!(s.version(), 1002);
    // the session id never changes
    for sdp in [&first, &held, &resumed] {
        assert!(sdp.contains("o=hotline 1000 "), "{sdp}");
    }
}

#[test]
fn a_failed_re_offer_changes_neither_version_nor_state() {
    let mut s = LocalSdp::new(7, local());
    s.answer(&crlf(BARESIP), &G711).unwrap();
    let bad = crlf(BARESIP).replace("RTP/AVP 0 8 101", "RTP/AVP 18");
    assert_eq!(s.answer(&bad, &G711), Err(SdpError::NoCommonCodec));
    assert_eq!(s.version(), 7);
    assert_eq!(s.current().unwrap().codec, Codec::Pcmu);
}

#[test]
fn inactive_offer_is_answered_inactive() {
    let mut s = LocalSdp::new(7, local());
    let inactive = crlf(BARESIP).replace("a=sendrecv", "a=inactive");
    let (n, text) = s.answer(&inactive, &G711).unwrap();
    assert_eq!(n.remote_direction, Direction::Inactive);
    assert_eq!(attribute_direction(&text), "a=inactive");
}

#[test]
fn re_invite_without_sdp_gets_our_offer_and_the_ack_carries_the_answer() {
    let mut s = LocalSdp::new(500, local());
    // the call was set up with PCMA and telephone-event at 101
    let pcma_first = crlf(BARESIP).replace("RTP/AVP 0 8 101", "RTP/AVP 8 0 101");
    let (n, _) = s.answer(&pcma_first, &G711).unwrap();
    assert_eq!(n.codec, Codec::Pcma);
    let offer = s.offer(&G711);
    assert_eq!(o_version(&offer), 501, "{offer}");
    assert!(
        offer.contains("m=audio 30000 RTP/AVP 8 0 101\r\n"),
        "{offer}"
    );
    assert!(
        offer.contains("a=rtpmap:101 telephone-event/8000"),
        "{offer}"
    );
    assert_eq!(attribute_direction(&offer), "a=sendrecv");
    // the answer in the ACK: the caller holds, at a new address
    let answer = "v=0\r\no=- 1 2 IN IP4 192.0.2.99\r\ns=-\r\nc=IN IP4 192.0.2.99\r\nt=0 0\r\n\
                  m=audio 7000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n";
    match s.on_ack(Some(answer)) {
        AckAnswer::Answer(n) => {
            assert_eq!(n.codec, Codec::Pcma);
            assert_eq!(n.remote_rtp, "192.0.2.99:7000".parse().unwrap());
            assert_eq!(n.remote_direction, Direction::SendOnly);
            assert_eq!(n.dtmf_pt, Some(101));
        }
        other => panic!("{other:?}"),
    }
    // a retransmitted or later ACK expects nothing
    assert_eq!(s.on_ack(Some(answer)), AckAnswer::NotExpected);
    // the same offer again (another refresh without SDP): same version
    let again = s.offer(&G711);
    assert_eq!(o_version(&again), 501);
}

#[test]
fn an_ack_without_answer_or_with_a_bad_one_leaves_the_session_as_it_was() {
    let mut s = LocalSdp::new(9, local());
    s.answer(&crlf(BARESIP), &G711).unwrap();
    s.offer(&G711);
    assert_eq!(s.on_ack(None), AckAnswer::Missing);
    assert_eq!(
        s.current().unwrap().remote_rtp,
        "192.0.2.2:15654".parse().unwrap()
    );
    s.offer(&[Codec::Pcmu]);
    let g729 = "v=0\r\no=- 1 2 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
                m=audio 7000 RTP/AVP 8\r\n";
    assert_eq!(
        s.on_ack(Some(g729)),
        AckAnswer::Unusable(SdpError::NoCommonCodec),
        "PCMA was not offered"
    );
    s.offer(&G711);
    assert!(matches!(
        s.on_ack(Some("garbage")),
        AckAnswer::Unusable(SdpError::Malformed(_))
    ));
    assert_eq!(
        s.current().unwrap().remote_rtp,
        "192.0.2.2:15654".parse().unwrap()
    );
    // an ACK to a 2xx that carried our answer is not an answer
    assert_eq!(s.on_ack(None), AckAnswer::NotExpected);
}

#[test]
fn answer_to_our_offer_with_c_zero_is_a_hold() {
    let answer = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
                  m=audio 7000 RTP/AVP 0\r\na=sendrecv\r\n";
    assert_eq!(
        parse_answer(answer).unwrap().remote_direction,
        Direction::SendOnly
    );
}
