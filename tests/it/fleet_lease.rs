//! The shared store's lease and mover against a real PostgreSQL, without daemons: two
//! instances claiming at once take different tickets, an outcome counts only from the lease's
//! owner, an expired lease lets another instance take the ticket, and moving is idempotent.

use super::postgres::Postgres;
use hotline_gateway::ticket::fleet::lease::LeaseQueue;
use hotline_gateway::ticket::fleet::mover::{move_one, Moved};
use hotline_gateway::ticket::fleet::{Fleet, FleetConfig, PgConn};
use hotline_gateway::ticket::queue::{DeliveryQueue, Finished};
use hotline_gateway::ticket::store::Unmoved;
use hotline_gateway::ticket::{DeliveryState, DuplicateConfig};
use std::sync::Arc;
use std::time::Duration;

/// Six complaints with nothing in common.
const TEXTS: [&str; 6] = [
    "路灯坏了",
    "噪音扰民",
    "垃圾没人收",
    "水管漏水",
    "公交晚点",
    "占道经营",
];

fn unmoved(n: u32, caller: &str, started_at_ms: i64) -> Unmoved {
    let id = uuid::Uuid::now_v7().to_string();
    let text = TEXTS[n as usize];
    Unmoved {
        document: format!(
            r#"{{"ticket_id":"{id}","revision":1,"gateway_instance":"gw-test","duplicate":null,"transcript":{{"text":"{text}"}}}}"#
        ),
        ticket_id: id,
        call_uid: format!("call-{n}-{}", uuid::Uuid::new_v4().simple()),
        call_id: format!("cid-{n}"),
        reference: None,
        created_at_ms: started_at_ms + 60_000,
        started_at_ms,
        caller: caller.into(),
        norm_text: text.into(),
        category_id: "other".into(),
        urgent: false,
        state: DeliveryState::Pending,
        attempts: 0,
    }
}

fn member(pg: &Postgres, name: &str, lease: Duration) -> Arc<Fleet> {
    let cfg = FleetConfig {
        url: pg.url(),
        lease,
        ..FleetConfig::default()
    };
    Arc::new(Fleet::new(cfg, name).unwrap())
}

fn finished(id: &str, attempt: u32, now_ms: i64) -> Finished {
    Finished {
        ticket_id: id.into(),
        attempt,
        now_ms,
        state: DeliveryState::Delivered,
        next_attempt_at_ms: now_ms,
        status: Some(201),
        error: None,
        body: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_give_each_ticket_to_one_instance_at_a_time() {
    let Some(pg) = Postgres::start() else { return };
    let (a, b) = (
        member(&pg, "gw-a", Duration::from_secs(10)),
        member(&pg, "gw-b", Duration::from_secs(10)),
    );
    let mut db = pg.client().await;
    // The first connection migrates; moving the same ticket twice inserts it once.
    let now = chrono::Utc::now().timestamp_millis();
    let dup = DuplicateConfig::default();
    let (qa, qb) = (LeaseQueue(a.clone()), LeaseQueue(b.clone()));
    // A member's first connection migrates the database.
    assert_eq!(qa.next_due_ms(now).await.unwrap(), None);
    let mut ids = Vec::new();
    for n in 0..6 {
        let t = unmoved(n, &format!("1380000{n:04}"), now - 120_000 + i64::from(n));
        assert_eq!(
            move_one(&mut db, &t, &dup, "test").await.unwrap(),
            Moved::New { revised: false }
        );
        assert_eq!(
            move_one(&mut db, &t, &dup, "test").await.unwrap(),
            Moved::AlreadyThere
        );
        ids.push(t.ticket_id);
    }
    // Moved tickets are due from the moment they moved.
    let now = chrono::Utc::now().timestamp_millis();
    let (ca, cb) = tokio::join!(qa.claim_due(now, 4), qb.claim_due(now, 4));
    let (ca, cb) = (ca.unwrap(), cb.unwrap());
    assert_eq!(ca.len() + cb.len(), 6, "every due ticket claimed once");
    for c in &ca {
        assert!(
            cb.iter().all(|d| d.ticket_id != c.ticket_id),
            "{} twice",
            c.ticket_id
        );
    }
    assert!(
        qa.claim_due(now, 10).await.unwrap().is_empty(),
        "leased tickets are not due"
    );

    // Only the owner's outcome counts.
    let theirs = &cb[0];
    qa.finish_attempt(finished(&theirs.ticket_id, theirs.attempts, now))
        .await
        .unwrap();
    let state: String = db
        .query_one(
            "SELECT state FROM hotline_tickets WHERE id = $1",
            &[&theirs.ticket_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        state, "pending",
        "a non-owner cannot finish a leased ticket"
    );
    qb.finish_attempt(finished(&theirs.ticket_id, theirs.attempts, now))
        .await
        .unwrap();
    let (state, owner): (String, Option<String>) = {
        let r = db
            .query_one(
                "SELECT state, lease_owner FROM hotline_tickets WHERE id = $1",
                &[&theirs.ticket_id],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((state.as_str(), owner), ("delivered", None));

    // An expired lease (its instance died) makes the ticket due for the other instance.
    let later = now + 10_001;
    let retaken = qb.claim_due(later, 10).await.unwrap();
    assert_eq!(
        retaken.len(),
        5,
        "A's and B's other leases expired: {retaken:?}"
    );
    assert!(
        retaken.iter().all(|c| c.attempts == 2),
        "a second attempt each"
    );
    // A shutting down releases nothing of B's.
    assert_eq!(qa.release_all(later).await.unwrap(), 0);
    assert_eq!(qb.release_all(later).await.unwrap(), 5);
    assert!(ids.contains(&theirs.ticket_id));
}

/// TLS to the database by rustls: with `sslmode=require` and the database's CA named by
/// `sslrootcert` the connection is encrypted; a server the roots do not vouch for is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_store_is_reached_over_verified_tls() {
    let Some(pg) = Postgres::start() else { return };
    let Some(ca) = pg.enable_tls() else { return };
    let url = format!("{}?sslmode=require&sslrootcert={}", pg.url(), ca.display());
    let conn = PgConn::from_url(&url).unwrap();
    let client = conn.get().await.expect("TLS connection with the CA");
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the connection is encrypted");
    drop(client);
    // The web PKI roots do not know the test CA: refused, not silently trusted.
    let untrusted = PgConn::from_url(&format!("{}?sslmode=require", pg.url())).unwrap();
    let Err(err) = untrusted.get().await else {
        panic!("an unknown CA is refused");
    };
    assert!(err.to_string().contains("connect"), "{err}");
}

/// A ticket revised locally after its move (e.g. its transcript arrived after an early commit)
/// moves again: the shared store takes the later document as a new revision, due for delivery
/// again, and an unchanged ticket is not moved twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_revised_locally_after_its_move_is_moved_again() {
    let Some(pg) = Postgres::start() else { return };
    let a = member(&pg, "gw-a", Duration::from_secs(10));
    let qa = LeaseQueue(a.clone());
    let now = chrono::Utc::now().timestamp_millis();
    assert_eq!(qa.next_due_ms(now).await.unwrap(), None, "migrated");
    let mut db = pg.client().await;
    let dup = DuplicateConfig::default();
    let t = unmoved(0, "13800000000", now - 60_000);
    assert_eq!(
        move_one(&mut db, &t, &dup, "test").await.unwrap(),
        Moved::New { revised: false }
    );
    // Delivered by the fleet as revision 1.
    let claimed = qa
        .claim_due(chrono::Utc::now().timestamp_millis(), 1)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    qa.finish_attempt(finished(
        &t.ticket_id,
        1,
        chrono::Utc::now().timestamp_millis(),
    ))
    .await
    .unwrap();
    let mut later = t.clone();
    let mut doc: serde_json::Value = serde_json::from_str(&t.document).unwrap();
    doc["revision"] = 2.into();
    doc["transcript"]["text"] = "路灯坏了，已经三天了".into();
    later.document = doc.to_string();
    assert_eq!(
        move_one(&mut db, &later, &dup, "test").await.unwrap(),
        Moved::Updated { revision: 2 }
    );
    assert_eq!(
        move_one(&mut db, &later, &dup, "test").await.unwrap(),
        Moved::AlreadyThere
    );
    let row = db
        .query_one(
            "SELECT revision, state, transcript FROM hotline_tickets WHERE id = $1",
            &[&t.ticket_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
    assert_eq!(row.get::<_, String>(1), "pending", "due again");
    assert_eq!(row.get::<_, String>(2), "路灯坏了，已经三天了");
    let again = qa
        .claim_due(chrono::Utc::now().timestamp_millis(), 5)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    let v: serde_json::Value = serde_json::from_str(&again[0].document).unwrap();
    assert_eq!(v["revision"], 2, "posted with the key <id>:2");
}

/// Runs `classify` from the repository with the example config, a fresh data folder and the
/// fleet store at `url`.
fn classify_in_fleet(url: &str, data: &std::path::Path, args: &[&str]) -> (String, String, bool) {
    let repo = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hotline-gateway"))
        .current_dir(repo)
        .env("HOTLINE_DATA_DIR", data)
        .env("HOTLINE_TICKETS_STORE", "postgres")
        .env("HOTLINE_TICKETS_URL", url)
        .args([
            "classify",
            "--config",
            &format!("{repo}/config/hotline.toml"),
        ])
        .args(args)
        .output()
        .expect("run hotline-gateway");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

/// A correction made on another instance's desk lives only in the shared store: this
/// instance's retrain folds it in, and says so when the shared store cannot be read rather
/// than retraining without the fleet's corrections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_made_on_any_desk_retrains_every_instance() {
    let Some(pg) = Postgres::start() else { return };
    let a = member(&pg, "gw-a", Duration::from_secs(10));
    let now = chrono::Utc::now().timestamp_millis();
    assert_eq!(LeaseQueue(a.clone()).next_due_ms(now).await.unwrap(), None);
    let mut db = pg.client().await;
    let text = "小区对面那条街能不能画一条斑马线";
    let mut t = unmoved(0, "13800000077", now - 60_000);
    t.norm_text = text.into();
    move_one(&mut db, &t, &DuplicateConfig::default(), "test")
        .await
        .unwrap();

    let data = tempfile::tempdir().unwrap();
    let url = pg.url();
    let (out, err, ok) = classify_in_fleet(&url, data.path(), &["text", text]);
    assert!(ok, "{err}");
    let before: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let before = before["category_id"].as_str().unwrap().to_owned();
    let target = if before == "traffic" {
        "education"
    } else {
        "traffic"
    };
    // What `PATCH /api/v1/tickets/{id}` on a fleet desk writes (fleet::desk_write).
    db.execute(
        "INSERT INTO hotline_classification_corrections
             (ticket_id, category_id, text, corrected_by, corrected_at_ms)
         VALUES ($1, $2, $3, 'operator-on-b', $4)",
        &[&t.ticket_id, &target, &text, &now],
    )
    .await
    .unwrap();

    let (out, err, ok) = classify_in_fleet(&url, data.path(), &["retrain"]);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["corrections_used"], 1, "{r}");
    let (out, err, ok) = classify_in_fleet(&url, data.path(), &["text", text]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("\"category_id\":\"{target}\"")),
        "{out}"
    );

    pg.stop_server();
    let (_, err, ok) = classify_in_fleet(&url, data.path(), &["retrain"]);
    assert!(
        !ok,
        "a retrain that cannot read the fleet's corrections fails"
    );
    assert!(err.contains("fleet's corrections"), "{err}");
}
