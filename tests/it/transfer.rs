//! Reaching a person (issue 14), end to end: the real daemon, the built-in caller pressing
//! 0, and an "operator" that is a small hand-written UAS on sockets this test owns (raw SIP
//! and RTP), so that it can both play a voice and record what it hears.
//!
//! - answered: the caller hears the operator's voice and the operator hears the caller's
//!   (both correlated against the sources), the caller's '#' reaches the operator as RFC
//!   4733, the INVITE carries the context headers, the operator's BYE ends the caller's leg,
//!   and the ticket says `answered` with a talk time;
//! - busy (486): the caller leaves a message; the ticket says `busy`; /metrics counts it;
//! - out of hours (today is a closed date): nobody is called, the caller leaves a message,
//!   the ticket says `out_of_hours`.

use super::audio::{chunks_found, find, read_wav_8k, through_g711};
use super::harness::{free_udp_port, repo, GatewayProcess};
use super::ops::http_get;
use hotline_gateway::caller::{dial, DialOptions, DialReport};
use hotline_gateway::media::Codec;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What the operator does with the gateway's INVITE.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Answer, talk (play `caller_zh.wav` as its voice) for `talk`, then hang up.
    Answer { talk: Duration },
    /// 486 Busy Here.
    Busy,
}

#[derive(Default, Debug)]
struct OperatorReport {
    invite: String,
    heard: Vec<i16>,
    dtmf_packets: usize,
    bye_answered: bool,
}

fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.lines()
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        })
        .map(|l| l.split_once(':').unwrap().1.trim())
        .collect()
}

fn recv_text(sock: &UdpSocket, until: Instant) -> Option<(String, SocketAddr)> {
    let mut buf = [0u8; 8192];
    while Instant::now() < until {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            return Some((String::from_utf8_lossy(&buf[..n]).into_owned(), from));
        }
    }
    None
}

fn response(invite: &str, code: &str, tag: &str, extra: &str, body: &str) -> String {
    let mut r = format!("SIP/2.0 {code}\r\n");
    for v in header(invite, "Via") {
        r.push_str(&format!("Via: {v}\r\n"));
    }
    for name in ["From", "Call-ID", "CSeq"] {
        r.push_str(&format!("{name}: {}\r\n", header(invite, name)[0]));
    }
    r.push_str(&format!("To: {};tag={tag}\r\n", header(invite, "To")[0]));
    r.push_str(extra);
    r.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    r
}

/// Start the operator; returns its SIP address and the thread that reports at the end.
fn operator(behaviour: Behaviour) -> (SocketAddr, std::thread::JoinHandle<OperatorReport>) {
    let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sip.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut report = OperatorReport::default();
        let Some((invite, gw)) = recv_text(&sip, Instant::now() + Duration::from_secs(40)) else {
            return report;
        };
        assert!(invite.starts_with("INVITE "), "{invite}");
        report.invite = invite.clone();
        let tag = "op-1";
        match behaviour {
            Behaviour::Busy => {
                sip.send_to(
                    response(&invite, "486 Busy Here", tag, "", "").as_bytes(),
                    gw,
                )
                .unwrap();
                // The gateway's transaction layer ACKs the 486.
                let _ = recv_text(&sip, Instant::now() + Duration::from_secs(5));
                return report;
            }
            Behaviour::Answer { talk } => {
                let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
                let rtp_port = rtp.local_addr().unwrap().port();
                let body = invite.split("\r\n\r\n").nth(1).unwrap_or_default();
                let gw_port: u16 = body
                    .lines()
                    .find_map(|l| l.strip_prefix("m=audio "))
                    .and_then(|l| l.split_whitespace().next())
                    .and_then(|p| p.parse().ok())
                    .expect("m=audio in the offer");
                let gw_rtp: SocketAddr = format!("127.0.0.1:{gw_port}").parse().unwrap();
                let sdp = format!(
                    "v=0\r\no=op 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                     m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
                     a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
                );
                let contact =
                    format!("Contact: <sip:op@{addr}>\r\nContent-Type: application/sdp\r\n");
                sip.send_to(response(&invite, "180 Ringing", tag, "", "").as_bytes(), gw)
                    .unwrap();
                std::thread::sleep(Duration::from_millis(500));
                let ok = response(&invite, "200 OK", tag, &contact, &sdp);
                sip.send_to(ok.as_bytes(), gw).unwrap();
                // ACK (or a retransmitted INVITE: answer it again).
                let until = Instant::now() + Duration::from_secs(10);
                loop {
                    match recv_text(&sip, until) {
                        Some((m, _)) if m.starts_with("ACK ") => break,
                        Some(_) => {
                            sip.send_to(ok.as_bytes(), gw).unwrap();
                        }
                        None => panic!("no ACK for the operator's 200"),
                    }
                }
                // Talk: the operator's voice out every 20 ms, the caller's voice in.
                let voice = read_wav_8k(&repo().join("prompts/demo/caller_zh.wav"));
                let mut payload = [0u8; 160];
                let mut pcm = [0i16; 160];
                let mut buf = [0u8; 2048];
                rtp.set_read_timeout(Some(Duration::from_millis(2)))
                    .unwrap();
                let start = Instant::now();
                let mut frame = 0usize;
                while start.elapsed() < talk {
                    let due = start + Duration::from_millis(20 * frame as u64);
                    while Instant::now() < due {
                        if let Ok((n, _)) = rtp.recv_from(&mut buf) {
                            if n > 12 && buf[1] & 0x7f == 0 {
                                let p = &buf[12..n];
                                Codec::Pcmu.decode(p, &mut pcm[..p.len().min(160)]);
                                report.heard.extend_from_slice(&pcm[..p.len().min(160)]);
                            } else if n > 12 && buf[1] & 0x7f == 101 {
                                report.dtmf_packets += 1;
                            }
                        }
                    }
                    let chunk: Vec<i16> = (0..160)
                        .map(|i| voice.get(frame * 160 + i).copied().unwrap_or(0))
                        .collect();
                    Codec::Pcmu.encode(&chunk, &mut payload);
                    let mut pkt = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0x0b];
                    pkt[2..4].copy_from_slice(&(frame as u16).to_be_bytes());
                    pkt[4..8].copy_from_slice(&((frame * 160) as u32).to_be_bytes());
                    pkt.extend_from_slice(&payload);
                    let _ = rtp.send_to(&pkt, gw_rtp);
                    frame += 1;
                }
                // Hang up: to the gateway's Contact, in the dialog the INVITE made.
                let from = header(&invite, "From")[0];
                let to = header(&invite, "To")[0];
                let target = header(&invite, "Contact")[0]
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_owned();
                let bye = format!(
                    "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bKopbye1\r\n\
                     Max-Forwards: 70\r\nFrom: {to};tag={tag}\r\nTo: {from}\r\nCall-ID: {}\r\n\
                     CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
                    header(&invite, "Call-ID")[0]
                );
                sip.send_to(bye.as_bytes(), gw).unwrap();
                let until = Instant::now() + Duration::from_secs(5);
                while let Some((m, _)) = recv_text(&sip, until) {
                    if m.starts_with("SIP/2.0 200") && m.contains("BYE") {
                        report.bye_answered = true;
                        break;
                    }
                }
            }
        }
        report
    });
    (addr, handle)
}

async fn call_operator(gw: &GatewayProcess, heard: Option<PathBuf>, ports: u16) -> DialReport {
    dial(DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        from_user: "13912345678".into(),
        codecs: vec![Codec::Pcmu],
        play: Some(repo().join("prompts/demo/caller_en.wav")),
        dtmf: "0".into(),
        dtmf_delay: Duration::from_millis(1500),
        speak_delay: Duration::from_millis(3000),
        end_digit: Some('#'),
        record: heard,
        max_duration: Duration::from_secs(40),
        rtp_ports: (gw.rtp.0 + ports, gw.rtp.1),
        verbose: true,
        ..DialOptions::default()
    })
    .await
    .expect("dial")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_the_caller_talks_with_the_operator_both_ways() {
    let (op, op_thread) = operator(Behaviour::Answer {
        talk: Duration::from_secs(14),
    });
    let target = format!("sip:queue@{op}");
    let mut gw = GatewayProcess::start(&[("HOTLINE_TRANSFER_TARGET", &target)]);
    let heard_path = gw.data_dir.path().join("heard.wav");
    let report = call_operator(&gw, Some(heard_path.clone()), 40).await;
    let op_report = tokio::task::spawn_blocking(move || op_thread.join().unwrap())
        .await
        .unwrap();
    let records = gw.wait_records(1, Duration::from_secs(15));
    let tickets = gw.wait_tickets(1, Duration::from_secs(15));
    let log = gw.stop();
    assert_eq!(report.status, 200, "{log}");
    assert_eq!(
        report.hung_up_by,
        Some("gateway"),
        "the operator's BYE ends the caller's leg too\n{log}"
    );
    assert!(
        op_report.bye_answered,
        "the gateway answers the operator's BYE\n{log}"
    );

    // The context on the INVITE.
    let inv = &op_report.invite;
    assert_eq!(header(inv, "X-Hotline-Caller"), ["13912345678"], "{inv}");
    assert_eq!(header(inv, "X-Hotline-Menu"), ["operator"], "{inv}");
    assert_eq!(header(inv, "P-Asserted-Identity").len(), 1, "{inv}");
    assert!(
        header(inv, "User-to-User")[0].ends_with(";encoding=hex;purpose=hotline"),
        "{inv}"
    );
    // The reference is allocated before the INVITE, so the operator can quote it.
    let reference = header(inv, "X-Hotline-Reference");
    assert!(
        reference.len() == 1
            && reference[0].len() >= 12
            && reference[0].chars().all(|c| c.is_ascii_digit()),
        "{inv}"
    );

    // The operator heard the caller, the caller heard the operator.
    let caller_voice = through_g711(
        &read_wav_8k(&repo().join("prompts/demo/caller_en.wav")),
        Codec::Pcmu,
    );
    // Half-second chunks, in order (as tests/it/sipp.rs): a scheduling stall on this
    // shared machine shifts the stream by a frame or two, which a whole-file correlation
    // punishes but a listener does not notice.
    let (corr, overlap) = find(&op_report.heard, &caller_voice);
    let found = chunks_found(&op_report.heard, &caller_voice, 0.9);
    eprintln!("operator heard the caller: corr {corr:.3}, overlap {overlap:.2}, chunks {found:.2}");
    assert!(
        found >= 0.8,
        "the operator did not hear the caller: {:.0}% of it found\n{log}",
        found * 100.0
    );
    let operator_voice = through_g711(
        &read_wav_8k(&repo().join("prompts/demo/caller_zh.wav")),
        Codec::Pcmu,
    );
    let heard = read_wav_8k(&heard_path);
    let (corr, overlap) = find(&heard, &operator_voice);
    let found = chunks_found(&heard, &operator_voice, 0.9);
    eprintln!("caller heard the operator: corr {corr:.3}, overlap {overlap:.2}, chunks {found:.2}");
    assert!(
        found >= 0.8,
        "the caller did not hear the operator: {:.0}% of it found\n{log}",
        found * 100.0
    );
    assert!(
        op_report.dtmf_packets >= 3,
        "the caller's '#' reaches the operator as RFC 4733: {} packets",
        op_report.dtmf_packets
    );

    let rec = &records[0];
    assert_eq!(rec["transfer"]["outcome"], "answered", "{rec:#}");
    assert!(rec["recording"].is_null(), "no message was left: {rec:#}");
    let t = &tickets[0];
    assert_eq!(t["transfer"]["mode"], "bridge", "{t:#}");
    assert_eq!(t["transfer"]["outcome"], "answered", "{t:#}");
    assert_eq!(t["transfer"]["target"], target.as_str());
    assert!(t["transfer"]["talk_ms"].as_u64().unwrap() > 10_000, "{t:#}");
    assert!(t["transfer"]["answered_at"].is_string(), "{t:#}");
    assert_eq!(t["transcript"]["empty_reason"], "transferred", "{t:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_busy_the_caller_leaves_a_message_and_metrics_count_it() {
    let (op, op_thread) = operator(Behaviour::Busy);
    let admin = format!("127.0.0.1:{}", free_udp_port());
    let gw = GatewayProcess::start(&[
        ("HOTLINE_TRANSFER_TARGET", &format!("sip:queue@{op}")),
        ("HOTLINE_ADMIN_LISTEN", &admin),
    ]);
    let report = call_operator(&gw, None, 60).await;
    let op_report = tokio::task::spawn_blocking(move || op_thread.join().unwrap())
        .await
        .unwrap();
    assert!(op_report.invite.starts_with("INVITE "));
    assert_eq!(report.status, 200);
    let records = gw.wait_records(1, Duration::from_secs(15));
    let tickets = gw.wait_tickets(1, Duration::from_secs(15));
    let rec = &records[0];
    assert_eq!(rec["transfer"]["outcome"], "busy", "{rec:#}");
    assert!(
        rec["recording"].is_object(),
        "the caller left a message: {rec:#}"
    );
    assert_eq!(tickets[0]["transfer"]["outcome"], "busy");
    assert!(tickets[0]["transfer"]["answered_at"].is_null());
    let (code, body) = http_get(admin.parse().unwrap(), "/metrics");
    assert_eq!(code, 200);
    assert!(
        body.contains("hotline_transfers_total{outcome=\"busy\"} 1"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_hours_nobody_is_called_and_the_caller_leaves_a_message() {
    // Today (and its neighbours, whatever the clock's zone) is a holiday.
    let today = chrono::Utc::now().date_naive();
    let days: Vec<String> = [-1i64, 0, 1]
        .iter()
        .map(|d| (today + chrono::Duration::days(*d)).to_string())
        .collect();
    let gw = GatewayProcess::start(&[
        ("HOTLINE_TRANSFER_TARGET", "sip:queue@127.0.0.1:9"),
        ("HOTLINE_TRANSFER_HOURS", "mon-sun 00:00-23:59"),
        ("HOTLINE_TRANSFER_CLOSED_DATES", &days.join(",")),
    ]);
    let report = call_operator(&gw, None, 80).await;
    assert_eq!(report.status, 200);
    let records = gw.wait_records(1, Duration::from_secs(15));
    let tickets = gw.wait_tickets(1, Duration::from_secs(15));
    let rec = &records[0];
    assert_eq!(rec["transfer"]["outcome"], "out_of_hours", "{rec:#}");
    assert!(rec["recording"].is_object(), "{rec:#}");
    assert_eq!(tickets[0]["transfer"]["outcome"], "out_of_hours");
}

/// REFER mode against sipp as the caller: `scenario` under tests/sipp/.
async fn refer_call(scenario: &str) -> (std::process::Output, Vec<serde_json::Value>, String) {
    let mut gw = GatewayProcess::start(&[
        ("HOTLINE_TRANSFER_TARGET", "sip:queue@192.0.2.10"),
        ("HOTLINE_TRANSFER_MODE", "refer"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let sip_port = free_udp_port();
    let media_port = gw.rtp.0 + 100;
    let mut sipp = std::process::Command::new("sipp");
    sipp.current_dir(dir.path())
        .arg(gw.sip.to_string())
        .args(["-sf", repo().join(scenario).to_str().unwrap(), "-s", "8890"])
        .args(["-m", "1", "-l", "1"])
        .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args(["-p", &sip_port.to_string(), "-mp", &media_port.to_string()])
        .args(["-timeout", "90", "-timeout_error", "-nostdin", "-trace_err"])
        .stdin(std::process::Stdio::null());
    let out = tokio::task::spawn_blocking(move || sipp.output().expect("run sipp"))
        .await
        .unwrap();
    let tickets = gw.wait_tickets(1, Duration::from_secs(15));
    let log = gw.stop();
    let tail = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        out.status.success(),
        "sipp failed ({}):\n{tail}\n{}\ndaemon:\n{log}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (out, tickets, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refer_accepted_with_a_200_sipfrag_then_our_bye() {
    if !super::harness::peer_available("sipp") {
        return;
    }
    let (_, tickets, log) = refer_call("tests/sipp/uac_refer_accept.xml").await;
    assert_eq!(tickets.len(), 1, "{log}");
    let t = &tickets[0];
    assert_eq!(t["transfer"]["mode"], "refer", "{t:#}");
    assert_eq!(t["transfer"]["outcome"], "referred", "{t:#}");
    assert!(t["transfer"]["talk_ms"].is_null(), "{t:#}");
    assert_eq!(t["transcript"]["empty_reason"], "transferred", "{t:#}");
    assert_eq!(
        t["call"]["hangup"]["by"], "gateway",
        "our BYE after the 200 sipfrag: {t:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refer_refused_falls_back_to_the_message_path() {
    if !super::harness::peer_available("sipp") {
        return;
    }
    let (_, tickets, log) = refer_call("tests/sipp/uac_refer_refuse.xml").await;
    assert_eq!(tickets.len(), 1, "{log}");
    let t = &tickets[0];
    assert_eq!(t["transfer"]["mode"], "refer", "{t:#}");
    assert_eq!(t["transfer"]["outcome"], "failed", "{t:#}");
    assert!(
        t["recording"].is_object(),
        "the caller was offered the message: {t:#}"
    );
}
