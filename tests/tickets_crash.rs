//! kill -9 at any moment loses no ticket and applies none twice.
//!
//! This binary is both sides: run normally it is the test (intake server + supervisor); run
//! with `TICKETS_CRASH_CHILD` set it is the gateway stand-in that creates tickets and
//! delivers them, and gets killed with SIGKILL mid-way, twice.

mod tickets_common;

use hotline_gateway::ticket::{DeliveryState, TicketConfig, TicketService};
use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use tickets_common::{assert_valid, facts, schema, Intake, Reply};

const CALLS: usize = 40;
const TEST_NAME: &str = "kill9_mid_creation_and_delivery_then_restart_delivers_each_ticket_once";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{TEST_NAME}: test");
        return;
    }
    // Honour `cargo test <filter>` like libtest would.
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| TEST_NAME.contains(f.as_str())) {
        println!("running 0 tests (filtered out: {TEST_NAME})");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Ok(dir) = std::env::var("TICKETS_CRASH_CHILD") {
        rt.block_on(child(Path::new(&dir)));
        return;
    }
    let started = Instant::now();
    rt.block_on(supervisor());
    println!("test {TEST_NAME} ... ok ({:?})", started.elapsed());
}

fn config(dir: &Path) -> TicketConfig {
    let mut cfg = TicketConfig {
        db_path: dir.join("tickets.sqlite"),
        outbox_dir: dir.join("outbox"),
        gateway_instance: "gw-crash".into(),
        ..TicketConfig::default()
    };
    // URL and token arrive through the environment, as in production.
    cfg.intake.backoff_base_ms = 50;
    cfg.intake.backoff_max_ms = 200;
    cfg.intake.connect_timeout_ms = 300;
    cfg.intake.request_timeout_ms = 2_000;
    cfg.intake.idle_poll_ms = 50;
    cfg.intake.concurrency = 4;
    cfg
}

/// The gateway stand-in: hands over CALLS calls (10 ms apart) and delivers them. After a
/// restart it hands over the same calls again, as a call layer replaying its journal would.
async fn child(dir: &Path) {
    let svc = TicketService::open(config(dir)).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let d = svc.clone();
    let delivery = tokio::spawn(async move {
        d.run_delivery(async {
            let _ = rx.await;
        })
        .await
        .unwrap()
    });
    for i in 0..CALLS {
        let text = ["路灯坏了", "暖气不热", "楼上噪音", "垃圾没人清运"][i % 4];
        svc.create(facts(
            &format!("crash-{i}"),
            &format!("1390000{i:04}"),
            text,
            None,
            i as i64 * 30,
        ))
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let report = svc
        .flush(tokio::time::Instant::now() + Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(report.undelivered, 0);
    tx.send(()).unwrap();
    delivery.await.unwrap();
}

fn spawn_child(dir: &Path, url: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env("TICKETS_CRASH_CHILD", dir)
        .env("HOTLINE_INTAKE_URL", url)
        .env("HOTLINE_INTAKE_TOKEN", "crash-token")
        .spawn()
        .unwrap()
}

async fn supervisor() {
    let dir = tempfile::tempdir().unwrap();
    // Answers take 40 ms, so several posts are in flight whenever the child is killed.
    let intake =
        Intake::start_with_delay(|_, _| Reply::Accept(200), Duration::from_millis(40)).await;
    let url = intake.url();

    for kill_after_posts in [8, 20] {
        let mut child = spawn_child(dir.path(), &url);
        intake
            .wait_for(Duration::from_secs(20), "posts before the kill", |s| {
                s.posts.len() >= kill_after_posts
            })
            .await;
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "child was killed, not finished: {status:?}"
        );
        // The database survived the kill intact.
        let conn = rusqlite::Connection::open(dir.path().join("tickets.sqlite")).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }
    let killed_posts = intake.post_count();

    let mut child = spawn_child(dir.path(), &url);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("final run did not finish");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "final run failed: {status:?}");

    // Every call arrived exactly once in effect.
    let applied = intake.applied();
    let docs = intake.documents();
    let posts = intake.posts();
    assert_eq!(applied.len(), CALLS, "distinct tickets applied");
    assert!(applied.values().all(|&n| n == 1));
    let calls: HashSet<String> = docs
        .values()
        .map(|d| d["call"]["call_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        calls.len(),
        CALLS,
        "one ticket per call, none created twice"
    );
    let validator = schema();
    for p in &posts {
        assert_eq!(p.authorization.as_deref(), Some("Bearer crash-token"));
        let doc: serde_json::Value =
            serde_json::from_str(&p.body).expect("no torn document was ever sent");
        assert_eq!(
            Some(format!(
                "{}:{}",
                doc["ticket_id"].as_str().unwrap(),
                doc["revision"]
            )),
            p.idempotency_key
        );
        assert_valid(&validator, &doc);
    }
    let svc = TicketService::open(config(dir.path())).unwrap();
    let records = svc.store().list(None, 1000).unwrap();
    assert_eq!(records.len(), CALLS);
    for r in &records {
        assert_eq!(r.state, DeliveryState::Delivered, "{}", r.ticket_id);
        assert!(applied.contains_key(&format!("{}:1", r.ticket_id)));
    }
    println!(
        "{CALLS} tickets, {} posts ({} before the kills, {} re-sends absorbed by Idempotency-Key)",
        posts.len(),
        killed_posts,
        posts.len() - CALLS
    );
}
