//! Issue 18: gateways sharing one PostgreSQL ticket store (a real throwaway cluster, real
//! daemons with their own SIP/admin ports, a real HTTP intake). A caller who calls two
//! instances is a duplicate across the fleet; a killed instance's tickets are delivered by
//! another, each once in effect; a database outage loses no ticket and keeps `/readyz` 200.

use super::hardening::handoff::{get, metric, short_call};
use super::harness::GatewayProcess;
use super::postgres::{listen_port, Postgres};
use super::tickets_common::{Intake, Reply};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The environment of one fleet member.
fn member_env(pg: &Postgres, intake: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("HOTLINE_TICKETS_STORE", "postgres"),
        ("HOTLINE_INTAKE_URL", intake),
        ("HOTLINE_INTAKE_BACKOFF_BASE_MS", "200"),
        ("HOTLINE_INTAKE_BACKOFF_MAX_MS", "1000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.push(("HOTLINE_TICKETS_URL".into(), pg.url()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn start(env: &[(String, String)]) -> GatewayProcess {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    GatewayProcess::start(&env)
}

/// Posts per Idempotency-Key.
fn posts_per_key(intake: &Intake) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for p in intake.posts() {
        *n.entry(p.idempotency_key.unwrap_or_default()).or_insert(0) += 1;
    }
    n
}

/// The same caller calls instance A, then instance B: B's ticket names A's as its
/// `duplicate_of` (found when B's ticket moved to the shared store: a new revision, posted
/// with its own Idempotency-Key), though B's own SQLite store never saw A's ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_calls_two_instances_is_a_duplicate_across_the_fleet() {
    let Some(pg) = Postgres::start() else { return };
    let intake = Intake::start(|_, _| Reply::Accept(201)).await;
    let env = member_env(&pg, &intake.url(), &[]);
    let mut a = start(&env);
    let mut b = start(&env);

    let first = short_call(&a, "13800000001", 50, 2).await;
    assert_eq!(first.status, 200);
    intake
        .wait_for(Duration::from_secs(60), "A's ticket", |s| {
            s.documents.len() == 1
        })
        .await;
    let second = short_call(&b, "13800000001", 50, 2).await;
    assert_eq!(second.status, 200);
    intake
        .wait_for(Duration::from_secs(60), "B's ticket", |s| {
            s.documents.len() == 2
        })
        .await;

    let docs = intake.documents();
    let (first_key, first_doc) = docs
        .iter()
        .find(|(_, d)| d["duplicate"].is_null())
        .expect("A's ticket has no duplicate");
    let (second_key, second_doc) = docs
        .iter()
        .find(|(_, d)| !d["duplicate"].is_null())
        .expect("B's ticket names a duplicate");
    assert_ne!(
        first_doc["gateway_instance"],
        second_doc["gateway_instance"]
    );
    assert_eq!(
        second_doc["duplicate"]["duplicate_of"], first_doc["ticket_id"],
        "{second_doc}"
    );
    assert_eq!(second_doc["duplicate"]["reason"], "same_caller");
    assert_eq!(
        second_doc["revision"], 2,
        "the fleet's finding is a new revision"
    );
    assert!(first_key.ends_with(":1") && second_key.ends_with(":2"));
    // The shared store says the same.
    let db = pg.client().await;
    let row = db
        .query_one(
            "SELECT duplicate_of, state, revision FROM hotline_tickets WHERE id = $1",
            &[&second_doc["ticket_id"].as_str().unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, Option<String>>(0).as_deref(),
        first_doc["ticket_id"].as_str()
    );
    assert_eq!(row.get::<_, String>(1), "delivered");
    assert_eq!(row.get::<_, i32>(2), 2);
    assert!(intake.applied().values().all(|&n| n == 1));
    // Each instance's own store learns that its ticket was delivered (retention, the CLI).
    for gw in [&a, &b] {
        let local = rusqlite::Connection::open(gw.data_dir.path().join("tickets.sqlite")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let state: String = local
                .query_row("SELECT state FROM tickets", [], |r| r.get(0))
                .unwrap();
            if state == "delivered" {
                break;
            }
            assert!(Instant::now() < deadline, "local state {state}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    a.stop();
    b.stop();
}

/// Instance A claims two tickets and is killed (SIGKILL) while the intake is still holding
/// its posts; instance B, started afterwards, takes them over once A's leases expire. The
/// intake applies each ticket once although it was posted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instances_tickets_are_delivered_by_another_once() {
    let Some(pg) = Postgres::start() else { return };
    // A's posts land but are never answered (A dies waiting); later posts are answered.
    let intake = Intake::start(|n, _| {
        if n < 2 {
            Reply::AcceptThenStall(Duration::from_secs(60))
        } else {
            Reply::Accept(201)
        }
    })
    .await;
    let env = member_env(
        &pg,
        &intake.url(),
        &[
            ("HOTLINE_TICKETS_LEASE_SECS", "8"),
            ("HOTLINE_INTAKE_REQUEST_TIMEOUT_MS", "6000"),
        ],
    );
    let mut a = start(&env);
    let (x, y) = tokio::join!(
        short_call(&a, "13800000011", 50, 2),
        short_call(&a, "13800000012", 70, 2)
    );
    assert_eq!((x.status, y.status), (200, 200));
    intake
        .wait_for(Duration::from_secs(60), "A posting both tickets", |s| {
            s.posts.len() == 2
        })
        .await;
    a.kill9();
    let killed_at = Instant::now();
    let db = pg.client().await;
    let held: i64 = db
        .query_one(
            "SELECT COUNT(*) FROM hotline_tickets WHERE lease_owner IS NOT NULL AND state = 'pending'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 2, "the killed instance held both tickets' leases");

    let mut b = start(&env);
    intake
        .wait_for(Duration::from_secs(60), "B re-posting both", |s| {
            s.posts.len() == 4
        })
        .await;
    // Not before A's leases ran out: one instance at a time.
    assert!(
        killed_at.elapsed() >= Duration::from_secs(4),
        "{:?}",
        killed_at.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let delivered: i64 = db
            .query_one(
                "SELECT COUNT(*) FROM hotline_tickets WHERE state = 'delivered' AND lease_owner IS NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if delivered == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "B records both deliveries");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let applied = intake.applied();
    assert_eq!(applied.len(), 2, "{applied:?}");
    assert!(applied.values().all(|&n| n == 1), "{applied:?}");
    assert!(posts_per_key(&intake).values().all(|&n| n == 2));
    let callers: Vec<String> = intake
        .documents()
        .values()
        .map(|d| d["call"]["caller"].as_str().unwrap_or_default().to_owned())
        .collect();
    for c in ["13800000011", "13800000012"] {
        assert!(callers.iter().any(|x| x == c), "{c} in {callers:?}");
    }
    b.stop();
}

/// PostgreSQL is stopped for 30 s while two calls end: the calls are taken, `/readyz` stays
/// 200 throughout, the outage shows as `hotline_fleet_store_up 0`, and both tickets reach
/// the intake once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_delays_tickets_but_loses_none() {
    let Some(pg) = Postgres::start() else { return };
    let intake = Intake::start(|_, _| Reply::Accept(201)).await;
    let admin = format!("127.0.0.1:{}", listen_port());
    let env = member_env(
        &pg,
        &intake.url(),
        &[("HOTLINE_ADMIN_LISTEN", admin.as_str())],
    );
    let mut gw = start(&env);
    let (readyz, metrics) = (
        format!("http://{admin}/readyz"),
        format!("http://{admin}/metrics"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, m) = get(&metrics).await;
        if get(&readyz).await.0 == 200 && metric(&m, "hotline_fleet_store_up") == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "ready and connected: {m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    pg.stop_server();
    let stopped_at = Instant::now();
    let (x, y) = tokio::join!(
        short_call(&gw, "13800000021", 50, 2),
        short_call(&gw, "13800000022", 70, 2)
    );
    assert_eq!(
        (x.status, y.status),
        (200, 200),
        "calls are taken during the outage"
    );
    let mut saw_down = false;
    while stopped_at.elapsed() < Duration::from_secs(30) {
        let (status, body) = get(&readyz).await;
        assert_eq!(status, 200, "/readyz during the outage: {body}");
        let (_, m) = get(&metrics).await;
        saw_down |= metric(&m, "hotline_fleet_store_up") == Some(0.0)
            && metric(&m, "hotline_fleet_store_errors_total").unwrap_or(0.0) >= 1.0;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(saw_down, "the outage is a metric to alert on");
    assert!(intake.documents().is_empty(), "nothing could be delivered");
    let (_, m) = get(&metrics).await;
    assert_eq!(
        metric(&m, "hotline_fleet_tickets_waiting"),
        Some(2.0),
        "{m}"
    );

    pg.start_server();
    intake
        .wait_for(
            Duration::from_secs(60),
            "both tickets after the outage",
            |s| s.documents.len() == 2,
        )
        .await;
    assert!(intake.applied().values().all(|&n| n == 1));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, m) = get(&metrics).await;
        if metric(&m, "hotline_fleet_store_up") == Some(1.0)
            && metric(&m, "hotline_fleet_tickets_waiting") == Some(0.0)
        {
            break;
        }
        assert!(Instant::now() < deadline, "up again, nothing waiting: {m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(get(&readyz).await.0, 200);
    gw.stop();
}
