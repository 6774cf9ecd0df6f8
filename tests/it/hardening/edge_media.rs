//! The media edge against the running daemon (issue 11, points 1 and 6): a stranger streaming
//! RTP at a call's port, and re-offers (a re-INVITE without SDP, hold longer than the RTP
//! timeout, resume) from a hand-written SIP peer.

use super::super::audio::{chunks_found, find, read_wav_8k, through_g711};
use super::super::harness::{repo, GatewayProcess};
use super::super::ops::{free_tcp_port, http_get, metric};
use hotline_gateway::caller::{dial, DialOptions};
use hotline_gateway::media::rtp::{self, RtpSender, MAX_DATAGRAM};
use hotline_gateway::media::{Codec, FRAME_SAMPLES};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CODEC: Codec = Codec::Pcmu;

/// A stranger who found the gateway's RTP range: from its own port, with its own SSRC, it
/// streams a voice of its own (20 ms packets, consecutive sequence numbers) at every even
/// port of the range the gateway takes call ports from, until `stop`. Returns how many
/// datagrams it received back.
fn stranger(ports: Vec<u16>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let voice = through_g711(
        &read_wav_8k(&repo().join("prompts/demo/caller_en.wav")),
        CODEC,
    );
    std::thread::spawn(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        let mut senders: Vec<RtpSender> = ports
            .iter()
            .map(|&p| RtpSender::with_state(0x5757_0000 + u32::from(p), 1, 0))
            .collect();
        let (mut frame, mut out, mut inbuf) =
            ([0u8; FRAME_SAMPLES], [0u8; MAX_DATAGRAM], [0u8; 2048]);
        let (mut received, mut n) = (0u64, 0usize);
        let start = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let k = n % (voice.len() / FRAME_SAMPLES);
            CODEC.encode(
                &voice[k * FRAME_SAMPLES..(k + 1) * FRAME_SAMPLES],
                &mut frame,
            );
            for (tx, &port) in senders.iter_mut().zip(&ports) {
                let len = tx
                    .build_audio(CODEC.payload_type(), &frame, &mut out)
                    .unwrap();
                let _ = sock.send_to(&out[..len], ("127.0.0.1", port));
            }
            n += 1;
            while sock.recv_from(&mut inbuf).is_ok() {
                received += 1;
            }
            let due = start + Duration::from_millis(20 * n as u64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        received
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_streaming_at_the_calls_rtp_port_neither_takes_the_call_nor_is_recorded() {
    let admin: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let mut gw = GatewayProcess::start(&[("HOTLINE_ADMIN_LISTEN", &admin.to_string())]);
    let heard = gw.data_dir.path().join("heard.wav");
    let message = repo().join("prompts/demo/caller_zh.wav");
    let record_prompt = read_wav_8k(&repo().join("prompts/zh/record.wav"));
    // The caller's own ports are above rtp.0 + 50; the gateway's call port is below.
    let targets: Vec<u16> = (gw.rtp.0..gw.rtp.0 + 50).step_by(2).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let dial_opts = DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        codecs: vec![CODEC],
        play: Some(message.clone()),
        dtmf: "1".into(),
        dtmf_delay: Duration::from_millis(2500),
        speak_delay: Duration::from_millis(record_prompt.len() as u64 / 8 + 900),
        end_digit: Some('#'),
        record: Some(heard.clone()),
        max_duration: Duration::from_secs(60),
        rtp_ports: (gw.rtp.0 + 50, gw.rtp.1),
        verbose: true,
        ..DialOptions::default()
    };
    let call = tokio::spawn(dial(dial_opts));
    // The caller's comfort silence flows from the 200 on; once its source is learnt, the
    // stranger starts.
    assert!(
        tokio::task::block_in_place(|| gw.wait_log("RTP source latched", Duration::from_secs(10))),
        "the caller's RTP never arrived"
    );
    let stranger = stranger(targets, stop.clone());
    let report = call.await.unwrap().expect("dial");
    stop.store(true, Ordering::Relaxed);
    let stranger_received = stranger.join().unwrap();
    let (_, metrics) = http_get(admin, "/metrics");
    let records = gw.wait_records(1, Duration::from_secs(10));
    let log = gw.stop();

    assert_eq!(report.status, 200);
    assert_eq!(report.hung_up_by, Some("gateway"), "daemon log:\n{log}");
    assert_eq!(stranger_received, 0, "the stranger got our packets");
    assert_eq!(records.len(), 1, "daemon log:\n{log}");
    let rec = &records[0];
    assert_eq!(rec["hangup"]["reason"], "completed", "{rec:#}");
    assert_eq!(rec["recording"]["ended_by"], "stop_digit", "{rec:#}");

    // the caller heard the greeting
    let heard_pcm = read_wav_8k(&heard);
    let greeting = through_g711(&read_wav_8k(&repo().join("prompts/zh/greeting.wav")), CODEC);
    let (corr, overlap) = find(
        &heard_pcm[..heard_pcm.len().min(8000 * 3)],
        &greeting[..8000],
    );
    assert!(
        corr > 0.95 && overlap > 0.95,
        "heard vs greeting: corr {corr:.3}, overlap {overlap:.2}"
    );
    // the recording holds the caller's message, and nothing of the stranger's voice
    let wav = std::path::PathBuf::from(rec["recording"]["path"].as_str().unwrap());
    let recorded = read_wav_8k(&wav);
    let spoken = through_g711(&read_wav_8k(&message), CODEC);
    let theirs = through_g711(
        &read_wav_8k(&repo().join("prompts/demo/caller_en.wav")),
        CODEC,
    );
    let caller_found = chunks_found(&recorded, &spoken, 0.9);
    let stranger_found = chunks_found(&recorded, &theirs, 0.5);
    assert!(
        caller_found >= 0.9,
        "caller's audio found: {caller_found:.2}"
    );
    assert!(
        stranger_found < 0.1,
        "stranger's audio found: {stranger_found:.2}"
    );
    // and the drops are counted: 50 packets a second for the call's ~15 s at least
    let dropped = metric(&metrics, "hotline_rtp_packets_wrong_source_total").unwrap_or(0.0);
    assert!(dropped >= 200.0, "wrong-source drops: {dropped}\n{metrics}");
    assert_eq!(
        metric(&metrics, "hotline_rtp_sources_relearned_total"),
        Some(0.0)
    );
}

/// A SIP peer written by hand, for what the built-in caller never sends: re-INVITEs.
struct RawPeer {
    sip: UdpSocket,
    gw: SocketAddr,
    call_id: String,
    cseq: u32,
    /// The gateway's To tag and Contact, from its 200.
    to_tag: String,
    target: String,
    /// Requests the gateway sent us (a BYE would end the call).
    requests: Vec<String>,
}

/// Our RTP: sends PCMU silence every 20 ms while `sending`, keeps every payload it receives.
struct RawMedia {
    sending: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<u8>>>,
    packets: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn body(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// The `o=` version and the direction attribute of an SDP body.
fn version_and_direction(sdp: &str) -> (u64, String) {
    let o = sdp.lines().find(|l| l.starts_with("o=")).expect("o= line");
    let version = o.split_whitespace().nth(2).unwrap().parse().unwrap();
    let dir = sdp
        .lines()
        .find(|l| ["a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"].contains(&l.trim()))
        .map_or("a=sendrecv", str::trim);
    (version, dir.to_string())
}

fn our_sdp(rtp_port: u16, direction: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
}

impl RawPeer {
    fn local(&self) -> SocketAddr {
        self.sip.local_addr().unwrap()
    }

    fn message(&self, method: &str, cseq: u32, sdp: Option<&str>) -> String {
        let local = self.local();
        let to_tag = if self.to_tag.is_empty() {
            String::new()
        } else {
            format!(";tag={}", self.to_tag)
        };
        let (kind, body) = sdp.map_or((String::new(), ""), |s| {
            ("Content-Type: application/sdp\r\n".to_string(), s)
        });
        format!(
            "{method} {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:13800000000@{local}>;tag=peer1\r\n\
             To: <sip:8890@{gw}>{to_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:caller@{local}>\r\n\
             {kind}Content-Length: {len}\r\n\r\n{body}",
            target = self.target,
            branch = uuid::Uuid::new_v4().simple(),
            gw = self.gw,
            call_id = self.call_id,
            len = body.len(),
        )
    }

    /// Send a request and return its final response (an INVITE's 2xx is ACKed with
    /// `ack_sdp` as the body). Requests from the gateway on the way are kept and answered.
    fn transact(&mut self, method: &str, sdp: Option<&str>, ack_sdp: Option<&str>) -> String {
        self.cseq += 1;
        let cseq = self.cseq;
        let msg = self.message(method, cseq, sdp);
        self.sip.send_to(msg.as_bytes(), self.gw).unwrap();
        let want = format!("{cseq} {method}");
        let deadline = Instant::now() + Duration::from_secs(5);
        let resp = loop {
            assert!(Instant::now() < deadline, "no final response to {method}");
            let Some(text) = self.receive(Duration::from_millis(200)) else {
                continue;
            };
            if text.starts_with("SIP/2.0 ")
                && !text.starts_with("SIP/2.0 1")
                && header(&text, "CSeq") == Some(want.as_str())
            {
                break text;
            }
        };
        if method == "INVITE" && resp.starts_with("SIP/2.0 2") {
            if self.to_tag.is_empty() {
                let to = header(&resp, "To").unwrap();
                self.to_tag = to.split(";tag=").nth(1).unwrap().to_string();
                let contact = header(&resp, "Contact").unwrap();
                self.target = contact.trim_matches(['<', '>']).to_string();
            }
            let ack = self.message("ACK", cseq, ack_sdp);
            self.sip.send_to(ack.as_bytes(), self.gw).unwrap();
        }
        resp
    }

    /// One datagram within `wait`; a request from the gateway is kept and answered 200.
    fn receive(&mut self, wait: Duration) -> Option<String> {
        self.sip.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 8192];
        let (n, _) = self.sip.recv_from(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0") {
            self.requests.push(text.clone());
        }
        Some(text)
    }

    /// Listen for `d`: the gateway must not send a request (a BYE) in that time.
    fn quiet_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            self.receive(left.max(Duration::from_millis(1)));
        }
        assert!(self.requests.is_empty(), "gateway sent {:?}", self.requests);
    }
}

fn start_media(sock: UdpSocket, gw_rtp: SocketAddr) -> RawMedia {
    let media = RawMedia {
        sending: Arc::new(AtomicBool::new(true)),
        received: Arc::default(),
        packets: Arc::default(),
        stop: Arc::default(),
    };
    let (sending, received, packets, stop) = (
        media.sending.clone(),
        media.received.clone(),
        media.packets.clone(),
        media.stop.clone(),
    );
    std::thread::spawn(move || {
        sock.set_nonblocking(true).unwrap();
        let mut tx = RtpSender::with_state(0xabcd, 1, 0);
        let silence = [CODEC.encode_sample(0); FRAME_SAMPLES];
        let (mut out, mut inbuf) = ([0u8; MAX_DATAGRAM], [0u8; 2048]);
        let start = Instant::now();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            if sending.load(Ordering::Relaxed) {
                let len = tx.build_audio(0, &silence, &mut out).unwrap();
                let _ = sock.send_to(&out[..len], gw_rtp);
            } else {
                tx.start_talkspurt();
            }
            while let Ok((len, _)) = sock.recv_from(&mut inbuf) {
                if let Ok(p) = rtp::parse(&inbuf[..len]) {
                    if p.payload_type == 0 {
                        received.lock().unwrap().extend_from_slice(p.payload);
                        packets.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            n += 1;
            let due = start + Duration::from_millis(20 * n);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    });
    media
}

/// Packets the gateway sent us during `d`.
fn packets_during(media: &RawMedia, d: Duration) -> u64 {
    let before = media.packets.load(Ordering::Relaxed);
    std::thread::sleep(d);
    media.packets.load(Ordering::Relaxed) - before
}

#[test]
fn re_invite_without_sdp_then_a_hold_longer_than_the_rtp_timeout_then_resume() {
    let mut gw = GatewayProcess::start(&[("HOTLINE_MEDIA_RTP_TIMEOUT_SECS", "2")]);
    let rtp_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp_port = rtp_sock.local_addr().unwrap().port();
    let mut peer = RawPeer {
        sip: UdpSocket::bind("127.0.0.1:0").unwrap(),
        gw: gw.sip,
        call_id: format!("{}@127.0.0.1", uuid::Uuid::new_v4().simple()),
        cseq: 0,
        to_tag: String::new(),
        target: format!("sip:8890@{}", gw.sip),
        requests: Vec::new(),
    };
    let sendrecv = our_sdp(rtp_port, "sendrecv");

    // the call
    let ok = peer.transact("INVITE", Some(&sendrecv), None);
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let answer = body(&ok);
    let (v0, dir) = version_and_direction(answer);
    assert_eq!(dir, "a=sendrecv");
    let gw_port: u16 = answer
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let media = start_media(rtp_sock, SocketAddr::from(([127, 0, 0, 1], gw_port)));
    assert!(
        packets_during(&media, Duration::from_millis(500)) > 10,
        "the greeting flows"
    );

    // RFC 3261 §14.2: a re-INVITE without SDP gets our offer in the 200; the ACK answers
    let ok = peer.transact("INVITE", None, Some(&sendrecv));
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let offer = body(&ok);
    assert!(
        offer.contains("m=audio "),
        "the 200 carries an offer:\n{ok}"
    );
    assert!(
        offer.contains(" RTP/AVP 0 8 101"),
        "every codec, the one in use first:\n{offer}"
    );
    let (v1, dir) = version_and_direction(offer);
    assert_eq!((v1, dir.as_str()), (v0 + 1, "a=sendrecv"), "{offer}");
    assert!(
        packets_during(&media, Duration::from_millis(300)) > 5,
        "media goes on"
    );

    // hold: answered recvonly, the gateway falls silent, and stays in the call for more
    // than twice the RTP timeout while we send nothing either
    let ok = peer.transact("INVITE", Some(&our_sdp(rtp_port, "sendonly")), None);
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert_eq!(
        version_and_direction(body(&ok)),
        (v0 + 2, "a=recvonly".into())
    );
    media.sending.store(false, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(200)); // packets already on the way
    let before = media.packets.load(Ordering::Relaxed);
    peer.quiet_for(Duration::from_secs(5));
    assert_eq!(
        media.packets.load(Ordering::Relaxed),
        before,
        "sent while on hold"
    );

    // resume: sendrecv again, and the greeting goes on
    let ok = peer.transact("INVITE", Some(&sendrecv), None);
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert_eq!(
        version_and_direction(body(&ok)),
        (v0 + 3, "a=sendrecv".into())
    );
    media.sending.store(true, Ordering::Relaxed);
    assert!(
        packets_during(&media, Duration::from_millis(3000)) > 100,
        "media resumed"
    );
    // a refresh with the same offer: the same SDP, the same version
    let ok = peer.transact("INVITE", Some(&sendrecv), None);
    assert_eq!(
        version_and_direction(body(&ok)),
        (v0 + 3, "a=sendrecv".into())
    );
    peer.quiet_for(Duration::from_millis(100));

    let bye = peer.transact("BYE", None, None);
    assert!(bye.starts_with("SIP/2.0 200"), "{bye}");
    media.stop.store(true, Ordering::Relaxed);
    let records = gw.wait_records(1, Duration::from_secs(10));
    let log = gw.stop();
    assert_eq!(records.len(), 1, "daemon log:\n{log}");
    let rec = &records[0];
    assert_eq!(rec["hangup"]["reason"], "caller_bye", "{rec:#}");

    // The greeting paused through the hold and went on where it stopped: what we heard,
    // put end to end, holds its first 3 s without a gap.
    let heard: Vec<i16> = media
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|&b| CODEC.decode_sample(b))
        .collect();
    let greeting = through_g711(&read_wav_8k(&repo().join("prompts/zh/greeting.wav")), CODEC);
    let (corr, overlap) = find(&heard, &greeting[..8000 * 3]);
    assert!(
        corr > 0.9 && overlap > 0.95,
        "greeting across the hold: corr {corr:.3}, overlap {overlap:.2}"
    );
}
