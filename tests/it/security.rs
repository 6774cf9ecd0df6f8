//! The gateway on a trunk: source ACLs, digest authentication (MD5 and SHA-256, stale
//! nonces, replayed nonce counts), per-trunk limits, secrets kept out of logs, and the
//! scanner/flood guard letting a real call through while a trunk address floods (throttled,
//! never banned) and a stranger floods (banned).

use super::harness::{repo, rtp_range, GatewayProcess};
use hotline_gateway::caller::{dial, DialOptions, DialReport};
use hotline_gateway::config::Config;
use hotline_gateway::gateway::Gateway;
use hotline_gateway::sip::digest::{self, Challenge};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const PASSWORD: &str = "pw-Secret-9431";
const TOKEN: &str = "tok-Secret-7710";

const TRUNKS: &str = r#"
[[trunk]]
name = "carrier"
sources = ["127.0.0.1/32", "::1/128"]
username = "gw"
password = "pw-Secret-9431"
max_calls = 1

[[trunk]]
name = "old-pbx"
sources = ["127.0.0.4"]
username = "pbx"
password = "pw-Secret-9431"
algorithms = ["MD5"]
numbers = ["12345"]

[security]
unknown_source = "reject"
nonce_ttl_secs = 1

[log]
mask_caller_numbers = true
"#;

async fn call(
    sip: SocketAddr,
    number: &str,
    bind: [u8; 4],
    auth: Option<(&str, &str)>,
    hold: Duration,
    rtp: (u16, u16),
) -> DialReport {
    dial(DialOptions {
        target: format!("sip:{number}@{sip}"),
        bind_ip: IpAddr::from(bind),
        auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
        max_duration: hold,
        rtp_ports: rtp,
        verbose: false,
        ..DialOptions::default()
    })
    .await
    .expect("dial")
}

/// A raw INVITE without SDP from `sock`: after authentication the gateway answers it 488
/// (no offer), which proves the credentials passed without setting up a call.
fn invite(sock: &UdpSocket, gw: SocketAddr, branch: &str, cseq: u32, auth: Option<&str>) -> String {
    let local = sock.local_addr().unwrap();
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "INVITE sip:8890@{gw} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:13812345678@{local}>;tag=raw\r\n\
         To: <sip:8890@{gw}>\r\n\
         Call-ID: raw-auth@127.0.0.1\r\n\
         CSeq: {cseq} INVITE\r\n\
         {auth}Content-Length: 0\r\n\r\n"
    )
}

/// The final response to the request with `cseq`, skipping 1xx and retransmissions.
fn final_for(sock: &UdpSocket, cseq: u32) -> String {
    let mut buf = [0u8; 8192];
    let want = format!("CSeq: {cseq} INVITE");
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !text.starts_with("SIP/2.0 1") && text.contains(&want) {
                return text;
            }
        }
    }
    panic!("no final response to CSeq {cseq}");
}

fn challenges(resp: &str) -> Vec<Challenge> {
    resp.lines()
        .filter_map(|l| l.strip_prefix("WWW-Authenticate:"))
        .filter_map(|v| Challenge::parse(v.trim()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trunks_acl_digest_auth_limits_and_no_secrets_in_logs() {
    let mut gw = GatewayProcess::start_with(Some(TRUNKS), &[("HOTLINE_INTAKE_TOKEN", TOKEN)]);
    let sip = gw.sip;
    let rtp = (gw.rtp.0 + 50, gw.rtp.1);

    // Unknown source: 403, whatever the credentials.
    let r = call(
        sip,
        "8890",
        [127, 0, 0, 5],
        Some(("gw", PASSWORD)),
        Duration::from_secs(2),
        rtp,
    )
    .await;
    assert_eq!(r.status, 403, "a source no trunk allows");
    // Allowed source without credentials: challenged (the caller has none to give).
    let r = call(
        sip,
        "8890",
        [127, 0, 0, 1],
        None,
        Duration::from_secs(2),
        rtp,
    )
    .await;
    assert_eq!(r.status, 401);
    // Wrong password: challenged again, the caller gives up after one try.
    let r = call(
        sip,
        "8890",
        [127, 0, 0, 1],
        Some(("gw", "wrong")),
        Duration::from_secs(2),
        rtp,
    )
    .await;
    assert_eq!(r.status, 401);
    // The MD5-only trunk may reach 12345 but not 8890.
    let r = call(
        sip,
        "8890",
        [127, 0, 0, 4],
        Some(("pbx", PASSWORD)),
        Duration::from_secs(2),
        rtp,
    )
    .await;
    assert_eq!(r.status, 403, "a number the trunk may not reach");
    let r = call(
        sip,
        "12345",
        [127, 0, 0, 4],
        Some(("pbx", PASSWORD)),
        Duration::from_millis(1500),
        rtp,
    )
    .await;
    assert_eq!(r.status, 200, "MD5 digest accepted");

    // Raw: both algorithms offered, a stale nonce, a replayed nonce count.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    sock.send_to(invite(&sock, sip, "r1", 1, None).as_bytes(), sip)
        .unwrap();
    let resp = final_for(&sock, 1);
    assert!(resp.starts_with("SIP/2.0 401"), "{resp}");
    let offered = challenges(&resp);
    let algs: Vec<&str> = offered.iter().map(|c| c.algorithm.name()).collect();
    assert_eq!(algs, ["SHA-256", "MD5"], "{resp}");
    assert!(offered.iter().all(|c| c.qop_auth && !c.stale));
    let uri = format!("sip:8890@{sip}");
    std::thread::sleep(Duration::from_millis(1300)); // nonce_ttl_secs = 1
    let auth = digest::authorization(&offered[0], "gw", PASSWORD, "INVITE", &uri, 1, "c1");
    sock.send_to(invite(&sock, sip, "r2", 2, Some(&auth)).as_bytes(), sip)
        .unwrap();
    let resp = final_for(&sock, 2);
    assert!(resp.starts_with("SIP/2.0 401"), "{resp}");
    let stale = challenges(&resp);
    assert!(
        stale.iter().all(|c| c.stale),
        "expired nonce: stale=true\n{resp}"
    );
    let auth = digest::authorization(&stale[1], "gw", PASSWORD, "INVITE", &uri, 1, "c2");
    sock.send_to(invite(&sock, sip, "r3", 3, Some(&auth)).as_bytes(), sip)
        .unwrap();
    let resp = final_for(&sock, 3);
    assert!(
        resp.starts_with("SIP/2.0 488"),
        "authenticated, then refused for lack of SDP: {resp}"
    );
    sock.send_to(invite(&sock, sip, "r4", 4, Some(&auth)).as_bytes(), sip)
        .unwrap();
    let resp = final_for(&sock, 4);
    assert!(
        resp.starts_with("SIP/2.0 401"),
        "a replayed nc is refused: {resp}"
    );

    // SHA-256 (offered first) on the carrier trunk, whose limit is one call: a second
    // call while the first is up gets 503.
    let first = tokio::spawn(call(
        sip,
        "8890",
        [127, 0, 0, 1],
        Some(("gw", PASSWORD)),
        Duration::from_secs(3),
        rtp,
    ));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = call(
        sip,
        "8890",
        [127, 0, 0, 1],
        Some(("gw", PASSWORD)),
        Duration::from_secs(2),
        (rtp.0 + 20, rtp.1),
    )
    .await;
    assert_eq!(second.status, 503, "per-trunk limit");
    let first = first.await.unwrap();
    assert_eq!(first.status, 200, "SHA-256 digest accepted");

    // The two answered calls are recorded and ticketed with their trunk.
    let tickets = gw.wait_tickets(2, Duration::from_secs(10));
    let log = gw.stop();
    let mut trunks: Vec<String> = tickets
        .iter()
        .map(|t| t["call"]["trunk"].as_str().unwrap_or("-").to_string())
        .collect();
    trunks.sort();
    assert_eq!(trunks, ["carrier", "old-pbx"], "daemon log:\n{log}");
    assert!(!log.contains(PASSWORD), "a digest password was logged");
    assert!(!log.contains(TOKEN), "the intake token was logged");
    assert!(log.contains("call answered"), "{log}");
    assert!(
        log.contains("138****0000"),
        "caller number masked in logs:\n{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("call answered") && l.contains("13800000000")),
        "unmasked caller number in 'call answered'"
    );
}

const FLOOD_TRUNKS: &str = r#"
[[trunk]]
name = "carrier"
sources = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
max_request_rate = 100

[security]
unknown_source = "reject"
rate_limit = 50
rate_burst = 100
ban_secs = 60
"#;

fn options(from: &UdpSocket, to: SocketAddr, ua: &str, n: usize) -> String {
    let local = from.local_addr().unwrap();
    format!(
        "OPTIONS sip:8890@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bKflood{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:100@{local}>;tag=f{n}\r\n\
         To: <sip:8890@{to}>\r\n\
         Call-ID: flood-{n}@{local}\r\n\
         CSeq: 1 OPTIONS\r\n\
         User-Agent: {ua}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Send `count` requests from `ip` over about `over`, then count every answer received.
fn blast(ip: [u8; 4], to: SocketAddr, ua: &'static str, count: usize, over: Duration) -> usize {
    let sock = UdpSocket::bind(SocketAddr::new(IpAddr::from(ip), 0)).unwrap();
    sock.set_nonblocking(true).unwrap();
    let mut answers = 0;
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    for n in 0..count {
        let _ = sock.send_to(options(&sock, to, ua, n).as_bytes(), to);
        while sock.recv_from(&mut buf).is_ok() {
            answers += 1;
        }
        let due = start + over.mul_f64((n + 1) as f64 / count as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    while sock.recv_from(&mut buf).is_ok() {
        answers += 1;
    }
    answers
}

fn answers_options(from: [u8; 4], to: SocketAddr) -> bool {
    let sock = UdpSocket::bind(SocketAddr::new(IpAddr::from(from), 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    sock.send_to(options(&sock, to, "probe", 9999).as_bytes(), to)
        .unwrap();
    let mut buf = [0u8; 4096];
    sock.recv_from(&mut buf).is_ok()
}

/// One sample of the admin listener's exposition, as `/metrics` serves it.
fn metric(gw: &Gateway, name_and_labels: &str) -> u64 {
    let text = gw.metrics().render();
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name_and_labels} not in /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_trunk_address_is_throttled_not_banned_and_a_stranger_is_banned() {
    let data = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(repo().join("config/hotline.toml")).unwrap();
    let rtp = rtp_range();
    let env: Vec<(String, String)> = [
        ("HOTLINE_SIP_LISTEN", "127.0.0.1:0".to_string()),
        ("HOTLINE_DATA_DIR", data.path().display().to_string()),
        ("HOTLINE_MEDIA_RTP_PORT_MIN", rtp.0.to_string()),
        ("HOTLINE_MEDIA_RTP_PORT_MAX", (rtp.0 + 49).to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = Config::from_str_with_env(&format!("{base}\n{FLOOD_TRUNKS}"), &env).unwrap();
    let gw = Gateway::start(config, None).await.expect("gateway");
    let sip = gw.sip_addr();
    let throttled = r#"hotline_guard_dropped_total{reason="throttled"}"#;
    assert_eq!(metric(&gw, throttled), 0);

    // 2,000 OPTIONS in 2 s from one of the trunk's addresses (10x its max_request_rate),
    // 120 requests from a scanner on another, 500 in 1 s from a source no trunk allows,
    // and a real call from the trunk's third address, all at once.
    let flood = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let answers = blast(
            [127, 0, 0, 2],
            sip,
            "hotline-load/1.0",
            2000,
            Duration::from_secs(2),
        );
        // blast waits 300 ms for late answers after the last send.
        let sending = started.elapsed().saturating_sub(Duration::from_millis(300));
        (answers, sending)
    });
    let scanner = tokio::task::spawn_blocking(move || {
        blast(
            [127, 0, 0, 3],
            sip,
            "friendly-scanner",
            120,
            Duration::from_secs(3),
        )
    });
    let stranger = tokio::task::spawn_blocking(move || {
        blast(
            [127, 0, 0, 9],
            sip,
            "Asterisk PBX",
            500,
            Duration::from_secs(1),
        )
    });
    let report = call(
        sip,
        "8890",
        [127, 0, 0, 1],
        None,
        Duration::from_secs(4),
        (rtp.0 + 50, rtp.1),
    )
    .await;
    let (flood_answers, flood_time) = flood.await.unwrap();
    let scanner_answers = scanner.await.unwrap();
    let stranger_answers = stranger.await.unwrap();
    assert_eq!(
        report.status, 200,
        "the trunk's call is answered during the flood"
    );
    assert!(report.packets_received > 100, "and has audio: {report:?}");
    assert_eq!(scanner_answers, 0, "scanners hear nothing");
    // The trunk address gets its bucket (100) and 100/s for as long as it sends (2 s, more
    // on a loaded machine): about 300 answers, the rest dropped message by message.
    let ceiling = 100 + (100.0 * flood_time.as_secs_f64()) as usize + 30;
    assert!(
        (250..=ceiling).contains(&flood_answers),
        "the trunk flood is throttled to its rate: {flood_answers} answers in {flood_time:?}"
    );
    // The stranger (unknown_source = "reject": it hears 403s) gets its burst, then a ban.
    assert!(
        (90..=130).contains(&stranger_answers),
        "the stranger's burst is answered, then nothing: {stranger_answers} answers"
    );
    assert!(
        answers_options([127, 0, 0, 2], sip),
        "the flooding trunk address is not banned: it is answered again at once"
    );
    assert!(
        !answers_options([127, 0, 0, 9], sip),
        "the stranger is banned"
    );
    assert!(answers_options([127, 0, 0, 1], sip), "the trunk is served");

    let c = gw.guard_counters().clone();
    assert_eq!(c.bans.load(Ordering::Relaxed), 1, "only the stranger");
    assert_eq!(c.banned_now.load(Ordering::Relaxed), 1);
    // All 120 unless the kernel dropped some of the flood's datagrams before we saw them.
    let scanned = c.dropped_scanner.load(Ordering::Relaxed);
    assert!((100..=120).contains(&scanned), "{scanned} scanner drops");
    let dropped = metric(&gw, throttled);
    assert!(
        dropped as usize >= 2000 - ceiling - 200 && dropped as usize + flood_answers <= 2000,
        "throttled in /metrics: {dropped}"
    );
    assert_eq!(
        metric(&gw, r#"hotline_guard_dropped_total{reason="rate"}"#),
        1
    );
    gw.shutdown().await;

    let tickets = super::harness::read_json_dir(&data.path().join("outbox"));
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["call"]["trunk"], "carrier");
}
