//! See `tests/it/hardening.rs`. The hand-off (issue 11, points 13 and 14) against the running
//! daemon: a ticket store that is locked by another process, and an intake that refuses the
//! gateway (a rotated token, a moved URL) rather than the ticket. A ticket once owed arrives.

use super::super::harness::GatewayProcess;
use super::super::tickets_common::{Intake, Reply};
use hotline_gateway::caller::{dial, DialOptions, DialReport};
use std::time::{Duration, Instant};

pub(crate) fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A call that is answered and hung up by the caller after `secs`: owed a ticket.
pub(crate) async fn short_call(
    gw: &GatewayProcess,
    from: &str,
    port_offset: u16,
    secs: u64,
) -> DialReport {
    dial(DialOptions {
        target: format!("sip:8890@{}", gw.sip),
        from_user: from.into(),
        rtp_ports: (gw.rtp.0 + port_offset, gw.rtp.1),
        max_duration: Duration::from_secs(secs),
        ..DialOptions::default()
    })
    .await
    .expect("dial")
}

pub(crate) async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// The value of an unlabelled metric.
pub(crate) fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Point 13: another process holds the store's write lock for 15 s while two calls end. The
/// delivery loop used to die on the first "database is locked" (every later ticket pending
/// until a restart, `/readyz` still ready). Now `/readyz` says 503 while the store fails, the
/// errors are counted, both tickets arrive once the lock is gone, and so does a later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_store_delays_tickets_but_loses_none() {
    let intake = Intake::start(|_, _| Reply::Accept(201)).await;
    let url = intake.url();
    let admin = format!("127.0.0.1:{}", free_tcp_port());
    let mut gw = GatewayProcess::start(&[
        ("HOTLINE_INTAKE_URL", url.as_str()),
        ("HOTLINE_ADMIN_LISTEN", admin.as_str()),
    ]);
    let (readyz, metrics) = (
        format!("http://{admin}/readyz"),
        format!("http://{admin}/metrics"),
    );
    wait_until(Duration::from_secs(10), "ready", || async {
        get(&readyz).await.0 == 200
    })
    .await;

    // Take the write lock the way another process (a backup, an admin's sqlite3) would.
    let db = gw.data_dir.path().join("tickets.sqlite");
    let locker = rusqlite::Connection::open(&db).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let locked_at = Instant::now();

    let (a, b) = tokio::join!(
        short_call(&gw, "13800000001", 50, 2),
        short_call(&gw, "13800000002", 70, 2)
    );
    assert_eq!((a.status, b.status), (200, 200));
    // Not ready while the store fails (the delivery loop notices within its busy timeout).
    wait_until(
        Duration::from_secs(30),
        "/readyz 503 while the store is locked",
        || async {
            let (status, body) = get(&readyz).await;
            status == 503 && body.contains("ticket store")
        },
    )
    .await;
    let (_, m) = get(&metrics).await;
    assert_eq!(metric(&m, "hotline_ticket_store_failing"), Some(1.0), "{m}");
    assert!(
        intake.documents().is_empty(),
        "nothing can be committed yet"
    );
    let held = Duration::from_secs(15).saturating_sub(locked_at.elapsed());
    tokio::time::sleep(held).await;
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);

    intake
        .wait_for(
            Duration::from_secs(60),
            "both tickets after the lock",
            |s| s.documents.len() == 2,
        )
        .await;
    wait_until(Duration::from_secs(15), "ready again", || async {
        get(&readyz).await.0 == 200
    })
    .await;
    let (_, m) = get(&metrics).await;
    assert!(
        metric(&m, "hotline_ticket_store_errors_total").unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    assert_eq!(metric(&m, "hotline_ticket_store_failing"), Some(0.0));

    // Delivery still runs: a later call's ticket arrives too.
    let c = short_call(&gw, "13800000003", 90, 1).await;
    assert_eq!(c.status, 200);
    intake
        .wait_for(Duration::from_secs(30), "the later ticket", |s| {
            s.documents.len() == 3
        })
        .await;
    let callers: Vec<String> = intake
        .documents()
        .values()
        .map(|d| d["call"]["caller"].as_str().unwrap_or_default().to_owned())
        .collect();
    for n in ["13800000001", "13800000002", "13800000003"] {
        assert!(callers.iter().any(|c| c == n), "{n} in {callers:?}");
    }
    assert!(intake.applied().values().all(|&n| n == 1));
    gw.stop();
}

/// Point 14: 401, 403, 404 and a redirect are the intake's configuration problem (a rotated
/// token, a moved endpoint), not the ticket's: the ticket used to become a dead letter on the
/// first of them. Now it is retried with capped backoff, counted and alerted on, and arrives
/// once the intake is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_that_refuses_the_gateway_gets_the_ticket_once_fixed() {
    let intake = Intake::start(|n, _| match n {
        0 => Reply::status(401),
        1 => Reply::status(403),
        2 => Reply::status(404),
        3 => Reply::Status {
            code: 302,
            headers: vec![("Location".into(), "http://127.0.0.1:9/elsewhere".into())],
            body: String::new(),
        },
        _ => Reply::Accept(201),
    })
    .await;
    let url = intake.url();
    let admin = format!("127.0.0.1:{}", free_tcp_port());
    let mut gw = GatewayProcess::start(&[
        ("HOTLINE_INTAKE_URL", url.as_str()),
        ("HOTLINE_ADMIN_LISTEN", admin.as_str()),
        ("HOTLINE_INTAKE_BACKOFF_BASE_MS", "200"),
        ("HOTLINE_INTAKE_BACKOFF_MAX_MS", "1000"),
    ]);
    let metrics = format!("http://{admin}/metrics");
    let report = short_call(&gw, "13800000009", 50, 1).await;
    assert_eq!(report.status, 200);
    // While refused: alerted (gauge 1, log), never dead.
    wait_until(Duration::from_secs(30), "the alert", || async {
        let (_, m) = get(&metrics).await;
        metric(&m, "hotline_ticket_intake_misconfigured") == Some(1.0)
    })
    .await;
    intake
        .wait_for(
            Duration::from_secs(30),
            "the ticket once the intake is fixed",
            |s| s.documents.len() == 1,
        )
        .await;
    assert_eq!(intake.post_count(), 5, "four refusals, then the delivery");
    let (_, m) = get(&metrics).await;
    assert_eq!(
        metric(&m, "hotline_ticket_intake_misconfigured_total"),
        Some(4.0),
        "{m}"
    );
    assert!(m.contains("hotline_tickets{state=\"dead\"} 0"), "{m}");
    wait_until(Duration::from_secs(10), "the alert clears", || async {
        let (_, m) = get(&metrics).await;
        metric(&m, "hotline_ticket_intake_misconfigured") == Some(0.0)
    })
    .await;
    let log = gw.stop();
    assert!(
        log.contains("intake refuses the gateway"),
        "the alert is logged:\n{log}"
    );
}

/// Point 17: below `[storage] min_free_mb` a message could not be stored, so no call is
/// taken: new INVITEs get 503, `/readyz` says why, and the alert metric is raised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_new_calls_with_503() {
    let admin = format!("127.0.0.1:{}", free_tcp_port());
    let mut gw = GatewayProcess::start(&[
        ("HOTLINE_ADMIN_LISTEN", admin.as_str()),
        // More than any test machine has free.
        ("HOTLINE_STORAGE_MIN_FREE_MB", "1000000000"),
    ]);
    let readyz = format!("http://{admin}/readyz");
    wait_until(
        Duration::from_secs(15),
        "/readyz 503 for storage",
        || async {
            let (status, body) = get(&readyz).await;
            status == 503 && body.contains("storage")
        },
    )
    .await;
    let (_, m) = get(&format!("http://{admin}/metrics")).await;
    assert_eq!(metric(&m, "hotline_storage_low"), Some(1.0), "{m}");
    let report = short_call(&gw, "13800000010", 50, 2).await;
    assert_eq!(report.status, 503);
    assert!(gw.wait_records(1, Duration::from_millis(500)).is_empty());
    gw.stop();
}

/// An in-dialog request from caller `i` (tag `tag`) of a test dialog.
#[allow(clippy::too_many_arguments)]
fn in_dialog(
    method: &str,
    cseq: u32,
    gw: std::net::SocketAddr,
    local: std::net::SocketAddr,
    i: usize,
    tag: &str,
    to: &str,
    call_id: &str,
) -> String {
    format!(
        "{method} sip:8890@{gw} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-{tag}-{cseq}-{method};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:1380000000{i}@{local}>;tag={tag}\r\n\
         To: {to}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Point 11: two dialogs may share a Call-ID (different From tags). The second used to
/// overwrite the first's record and recording and got no ticket (`call_id UNIQUE`). Each call
/// now has its own `call_uid`: two records, two tickets, both carrying the shared Call-ID.
#[test]
fn two_dialogs_sharing_a_call_id_both_get_tickets() {
    use std::net::UdpSocket;
    let gw = GatewayProcess::start(&[]);
    let call_id = format!("{}@127.0.0.1", uuid::Uuid::new_v4().simple());
    let field = |msg: &str, name: &str| -> Option<String> {
        msg.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let mut dialogs = Vec::new();
    for (i, tag) in ["first", "second"].iter().enumerate() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let local = sock.local_addr().unwrap();
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            gw.rtp.0 + 50 + 10 * i as u16
        );
        let invite = format!(
            "INVITE sip:8890@{gw} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-{tag}-inv;rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:1380000000{i}@{local}>;tag={tag}\r\n\
             To: <sip:8890@{gw}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:caller@{local}>\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len(),
            gw = gw.sip,
        );
        sock.send_to(invite.as_bytes(), gw.sip).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let ok = loop {
            assert!(
                Instant::now() < deadline,
                "no final answer to the {tag} INVITE"
            );
            let mut buf = [0u8; 8192];
            let Ok((n, _)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("SIP/2.0 1") {
                continue;
            }
            break text;
        };
        assert!(ok.starts_with("SIP/2.0 200"), "{tag}: {ok}");
        let to = field(&ok, "To").unwrap();
        let ack = in_dialog("ACK", 1, gw.sip, local, i, tag, &to, &call_id);
        sock.send_to(ack.as_bytes(), gw.sip).unwrap();
        dialogs.push((sock, local, to, i, *tag));
    }
    std::thread::sleep(Duration::from_millis(500));
    for (sock, local, to, i, tag) in &dialogs {
        let bye = in_dialog("BYE", 2, gw.sip, *local, *i, tag, to, &call_id);
        sock.send_to(bye.as_bytes(), gw.sip).unwrap();
    }
    let tickets = gw.wait_tickets(2, Duration::from_secs(60));
    assert_eq!(tickets.len(), 2, "a ticket for each dialog:\n{}", gw.log());
    let uids: std::collections::HashSet<&str> = tickets
        .iter()
        .map(|t| t["call"]["call_uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids.len(), 2, "each call its own call_uid");
    for t in &tickets {
        assert_eq!(t["call"]["call_id"], call_id.as_str());
    }
    let callers: std::collections::HashSet<&str> = tickets
        .iter()
        .map(|t| t["call"]["caller"].as_str().unwrap())
        .collect();
    assert_eq!(callers.len(), 2, "{callers:?}");
    assert_eq!(
        gw.wait_records(2, Duration::from_secs(10)).len(),
        2,
        "two records"
    );
}
