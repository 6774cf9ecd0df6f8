//! Delivery against a real HTTP intake on 127.0.0.1: outages, refusals, rate limits.

mod tickets_common;

use hotline_gateway::ticket::{
    admin, DeliveryState, MenuSource, TicketConfig, TicketService, WireSchema,
};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};
use tickets_common::{assert_valid, facts, schema, schema_v1, Intake, Reply};
use tokio::sync::oneshot;

fn config(dir: &Path, url: Option<String>) -> TicketConfig {
    let mut cfg = TicketConfig {
        db_path: dir.join("tickets.sqlite"),
        outbox_dir: dir.join("outbox"),
        gateway_instance: "gw-test".into(),
        ..TicketConfig::default()
    };
    cfg.intake.url = url;
    cfg.intake.token = Some("test-token".into());
    cfg.intake.backoff_base_ms = 50;
    cfg.intake.backoff_max_ms = 200;
    cfg.intake.connect_timeout_ms = 300;
    cfg.intake.request_timeout_ms = 1_000;
    cfg.intake.idle_poll_ms = 50;
    cfg.intake.concurrency = 2;
    cfg
}

/// Runs the delivery loop in the background; send on the returned channel to stop it.
fn spawn_delivery(svc: &TicketService) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = oneshot::channel::<()>();
    let svc = svc.clone();
    let h = tokio::spawn(async move {
        svc.run_delivery(async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (tx, h)
}

fn state_of(svc: &TicketService, id: &str) -> hotline_gateway::ticket::store::TicketRecord {
    svc.store().get(id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_then_recovery_delivers_every_ticket_once() {
    let dir = tempfile::tempdir().unwrap();
    // 503 for the first 4 posts, then (after the refusal window) the first accepted post is
    // applied but its answer lost, then plain 200s.
    let intake = Intake::start(|n, _| match n {
        0..=3 => Reply::status(503),
        4 => Reply::AcceptThenDrop,
        _ => Reply::Accept(201),
    })
    .await;
    let svc = TicketService::open(config(dir.path(), Some(intake.url()))).unwrap();
    let (stop, task) = spawn_delivery(&svc);
    let texts = [
        "路灯坏了",
        "暖气不热",
        "停水了",
        "噪音扰民",
        "The bus never came",
    ];
    let mut ids = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let t = svc
            .create(facts(
                &format!("call-{i}"),
                &format!("1380000000{i}"),
                text,
                None,
                i as i64 * 60,
            ))
            .await
            .unwrap();
        ids.push(t.ticket_id.to_string());
    }
    intake
        .wait_for(Duration::from_secs(5), "4 posts answered 503", |s| {
            s.posts.len() >= 4
        })
        .await;
    intake.stop();
    let refused_from = Instant::now();
    tokio::time::sleep(Duration::from_millis(600)).await;
    // While the intake refuses connections, nothing is lost: tickets wait, with the error kept.
    let waiting = svc.store().list(Some(DeliveryState::Pending), 100).unwrap();
    assert!(!waiting.is_empty());
    assert!(
        waiting.iter().any(|r| r
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("connect"))),
        "{waiting:?}"
    );
    intake.resume().await;
    let report = svc
        .flush(tokio::time::Instant::now() + Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        report.undelivered,
        0,
        "all delivered after {:?}",
        refused_from.elapsed()
    );
    stop.send(()).unwrap();
    task.await.unwrap();

    let applied = intake.applied();
    let got: HashSet<String> = applied.keys().cloned().collect();
    let want: HashSet<String> = ids.iter().map(|id| format!("{id}:1")).collect();
    assert_eq!(got, want, "the intake got exactly the created tickets");
    assert!(applied.values().all(|&n| n == 1));
    let posts = intake.posts();
    let validator = schema();
    for p in &posts {
        assert_eq!(p.authorization.as_deref(), Some("Bearer test-token"));
        assert_eq!(p.content_type.as_deref(), Some("application/json"));
        let doc: serde_json::Value = serde_json::from_str(&p.body).unwrap();
        assert_eq!(
            Some(format!(
                "{}:{}",
                doc["ticket_id"].as_str().unwrap(),
                doc["revision"]
            )),
            p.idempotency_key,
            "key = ticket id : revision"
        );
        assert_valid(&validator, &doc);
    }
    // The ticket whose acknowledgement was lost was sent again and deduplicated by the intake.
    let lost = posts[4].idempotency_key.clone().unwrap();
    assert!(
        posts
            .iter()
            .filter(|p| p.idempotency_key.as_deref() == Some(&lost))
            .count()
            >= 2
    );
    let calls: HashSet<String> = intake
        .documents()
        .values()
        .map(|d| d["call"]["call_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(calls.len(), texts.len(), "one ticket per call");
    for id in &ids {
        let r = state_of(&svc, id);
        assert_eq!(r.state, DeliveryState::Delivered);
        assert!(matches!(r.last_status, Some(201)));
    }
    let lost_id = lost.split(':').next().unwrap();
    let shown: serde_json::Value =
        serde_json::from_str(&admin::show(&dir.path().join("tickets.sqlite"), lost_id).unwrap())
            .unwrap();
    assert!(
        shown["attempts"].as_array().unwrap().len() >= 2,
        "{shown:#}"
    );
    assert_eq!(shown["delivery"]["state"], "delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_error_dead_letters_with_body_and_admin_retry_resends() {
    let dir = tempfile::tempdir().unwrap();
    let intake = Intake::start(|n, _| match n {
        0 => Reply::Status {
            code: 400,
            headers: vec![],
            body: r#"{"error":"channel 8890 not enabled"}"#.into(),
        },
        _ => Reply::Accept(200),
    })
    .await;
    let svc = TicketService::open(config(dir.path(), Some(intake.url()))).unwrap();
    let (stop, task) = spawn_delivery(&svc);
    let t = svc
        .create(facts("call-400", "13800000000", "路灯坏了", None, 0))
        .await
        .unwrap();
    let id = t.ticket_id.to_string();
    let report = svc
        .flush(tokio::time::Instant::now() + Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!((report.undelivered, report.dead), (0, 1));
    // Dead means dead: no retry of a 400 even after many backoff periods.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(intake.post_count(), 1);
    let r = state_of(&svc, &id);
    assert_eq!(r.state, DeliveryState::Dead);
    assert_eq!(r.last_status, Some(400));
    assert_eq!(
        r.last_body.as_deref(),
        Some(r#"{"error":"channel 8890 not enabled"}"#)
    );
    let db = dir.path().join("tickets.sqlite");
    let listing = admin::list(&db, Some(admin::parse_state("dead").unwrap()), 10).unwrap();
    assert!(
        listing.contains(&id) && listing.contains("dead=1"),
        "{listing}"
    );

    // The operator fixed the intake; `tickets retry <prefix>` sends it again.
    let msg = admin::retry(&db, &id[..13]).unwrap();
    assert!(msg.contains("was dead"), "{msg}");
    intake
        .wait_for(Duration::from_secs(5), "second post", |s| {
            s.applied.contains_key(&format!("{id}:1"))
        })
        .await;
    svc.flush(tokio::time::Instant::now() + Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(state_of(&svc, &id).state, DeliveryState::Delivered);
    let msg = admin::retry(&db, &id).unwrap();
    assert!(msg.contains("already delivered"), "{msg}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        intake.post_count(),
        2,
        "a delivered ticket is not sent again"
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_seconds_and_http_date_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let intake = Intake::start(|n, _| match n {
        0 => Reply::Status {
            code: 429,
            headers: vec![("Retry-After".into(), "1".into())],
            body: "slow down".into(),
        },
        1 => {
            let at = chrono::Utc::now() + chrono::Duration::seconds(2);
            let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            Reply::Status {
                code: 503,
                headers: vec![("Retry-After".into(), date)],
                body: String::new(),
            }
        }
        2 => Reply::status(408),
        _ => Reply::Accept(200),
    })
    .await;
    let svc = TicketService::open(config(dir.path(), Some(intake.url()))).unwrap();
    let (stop, task) = spawn_delivery(&svc);
    svc.create(facts("call-429", "13800000000", "噪音", None, 0))
        .await
        .unwrap();
    let report = svc
        .flush(tokio::time::Instant::now() + Duration::from_secs(8))
        .await
        .unwrap();
    assert_eq!(report.undelivered, 0);
    stop.send(()).unwrap();
    task.await.unwrap();
    let posts = intake.posts();
    assert_eq!(posts.len(), 4);
    let gap = |i: usize| posts[i + 1].at - posts[i].at;
    // Backoff alone would retry after <= 50 ms; the server asked for 1 s, then for a date
    // 2 s ahead (1-2 s after truncation to whole seconds).
    assert!(
        gap(0) >= Duration::from_millis(980),
        "Retry-After: 1 gave {:?}",
        gap(0)
    );
    assert!(
        gap(1) >= Duration::from_millis(980),
        "Retry-After: <date> gave {:?}",
        gap(1)
    );
    assert!(
        gap(2) < Duration::from_millis(500),
        "408 retried by backoff: {:?}",
        gap(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_post_is_retried_and_the_intake_applies_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let intake = Intake::start(|n, _| match n {
        0 => Reply::AcceptThenStall(Duration::from_secs(3)),
        _ => Reply::Accept(200),
    })
    .await;
    let mut cfg = config(dir.path(), Some(intake.url()));
    cfg.intake.request_timeout_ms = 300;
    let svc = TicketService::open(cfg).unwrap();
    let (stop, task) = spawn_delivery(&svc);
    let t = svc
        .create(facts("call-slow", "13800000000", "路灯", None, 0))
        .await
        .unwrap();
    let report = svc
        .flush(tokio::time::Instant::now() + Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(report.undelivered, 0);
    stop.send(()).unwrap();
    task.await.unwrap();
    let posts = intake.posts();
    assert_eq!(posts.len(), 2);
    let gap = posts[1].at - posts[0].at;
    assert!(
        gap >= Duration::from_millis(300) && gap < Duration::from_secs(2),
        "retried after the timeout: {gap:?}"
    );
    assert_eq!(intake.applied().len(), 1);
    let id = t.ticket_id.to_string();
    let attempts = svc.store().attempts(&id).unwrap();
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("timeout")),
        "{attempts:?}"
    );
    assert_eq!(attempts[1].outcome, "delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_are_bounded_by_the_configured_limit() {
    let dir = tempfile::tempdir().unwrap();
    let intake =
        Intake::start_with_delay(|_, _| Reply::Accept(200), Duration::from_millis(150)).await;
    let mut cfg = config(dir.path(), Some(intake.url()));
    cfg.intake.concurrency = 3;
    let svc = TicketService::open(cfg).unwrap();
    for i in 0..9 {
        svc.create(facts(&format!("cc-{i}"), "13800000000", "路灯", None, i))
            .await
            .unwrap();
    }
    let started = Instant::now();
    let (stop, task) = spawn_delivery(&svc);
    let report = svc
        .flush(tokio::time::Instant::now() + Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(report.undelivered, 0);
    stop.send(()).unwrap();
    task.await.unwrap();
    let max = intake.state.lock().unwrap().max_in_progress;
    assert_eq!(max, 3, "the limit is used, and not exceeded");
    // 9 posts of 150 ms, 3 at a time: three rounds, not one and not nine.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(440) && took < Duration::from_millis(1300),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_intake_url_tickets_go_to_the_outbox_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let svc = TicketService::open(config(dir.path(), None)).unwrap();
    let t = svc
        .create(facts("call-ob", "13800000000", "暖气不热", None, 0))
        .await
        .unwrap();
    let id = t.ticket_id.to_string();
    let file = dir.path().join("outbox").join(format!("{id}.json"));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_valid(&schema(), &doc);
    assert_eq!(doc["ticket_id"].as_str(), Some(id.as_str()));
    assert_eq!(
        state_of(&svc, &id).state,
        DeliveryState::Pending,
        "kept in the store"
    );

    // A crash between commit and file write: the delivery task writes the missing file.
    std::fs::remove_file(&file).unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("tickets.sqlite")).unwrap();
    conn.execute("UPDATE tickets SET outbox_written_at_ms = NULL", [])
        .unwrap();
    let (stop, task) = spawn_delivery(&svc);
    let report = svc
        .flush(tokio::time::Instant::now() + Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(report.undelivered, 0);
    assert!(file.exists());
    stop.send(()).unwrap();
    task.await.unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_url_and_token_come_from_the_environment() {
    let mut cfg = config(Path::new("/nonexistent"), None);
    cfg.intake.token = None;
    cfg.apply_env_from(|k| match k {
        "HOTLINE_INTAKE_URL" => Some("http://127.0.0.1:9/x".into()),
        "HOTLINE_INTAKE_TOKEN" => Some("s3cret".into()),
        _ => None,
    });
    assert_eq!(cfg.intake.url.as_deref(), Some("http://127.0.0.1:9/x"));
    assert_eq!(cfg.intake.token.as_deref(), Some("s3cret"));
    let mut cfg2 = config(Path::new("/nonexistent"), Some("http://a/".into()));
    cfg2.apply_env_from(|_| Some("  ".into()));
    assert_eq!(
        cfg2.intake.url.as_deref(),
        Some("http://a/"),
        "blank env does not erase the file's value"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_pending_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let intake = Intake::start(|_, _| Reply::Accept(200)).await;
    intake.stop(); // down while the first run creates tickets
    let ids: Vec<String> = {
        let svc = TicketService::open(config(dir.path(), Some(intake.url()))).unwrap();
        let (stop, task) = spawn_delivery(&svc);
        let mut ids = vec![];
        for i in 0..3 {
            ids.push(
                svc.create(facts(&format!("r-{i}"), "13800000000", "路灯", None, i))
                    .await
                    .unwrap()
                    .ticket_id
                    .to_string(),
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.send(()).unwrap();
        task.await.unwrap();
        ids
    };
    intake.resume().await;
    let svc = TicketService::open(config(dir.path(), Some(intake.url()))).unwrap();
    let (stop, task) = spawn_delivery(&svc);
    let report = svc
        .flush(tokio::time::Instant::now() + Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(report.undelivered, 0);
    stop.send(()).unwrap();
    task.await.unwrap();
    let applied = intake.applied();
    assert_eq!(applied.len(), 3);
    for id in &ids {
        assert!(applied.contains_key(&format!("{id}:1")));
        assert!(
            state_of(&svc, id).attempts >= 2,
            "first run tried and failed"
        );
    }
}

/// `[intake] schema = "v1"`: an intake built for v1 keeps getting valid v1 documents under the
/// key it knew (the bare ticket id), also for tickets whose menu choice v1 cannot express;
/// the default sends v2 under `<ticket_id>:<revision>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_intake_gets_v1_documents_and_a_v2_intake_v2() {
    for wire in [WireSchema::V1, WireSchema::V2] {
        let dir = tempfile::tempdir().unwrap();
        let intake = Intake::start(|_, _| Reply::Accept(200)).await;
        let mut cfg = config(dir.path(), Some(intake.url()));
        cfg.intake.schema = wire;
        let svc = TicketService::open(cfg).unwrap();
        let (stop, task) = spawn_delivery(&svc);
        let pressed = svc
            .create(facts(
                "v-1",
                "13800000000",
                "暖气不热",
                Some("complaint"),
                0,
            ))
            .await
            .unwrap();
        let mut said = facts("v-2", "13800000001", "路灯坏了", Some("policy"), 5);
        if let Some(m) = said.menu.as_mut() {
            m.source = MenuSource::Speech;
            m.digits = None;
            m.utterance = Some("政策咨询".into());
        }
        let said = svc.create(said).await.unwrap();
        let report = svc
            .flush(tokio::time::Instant::now() + Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(report.undelivered, 0);
        stop.send(()).unwrap();
        task.await.unwrap();
        let docs = intake.documents();
        assert_eq!(docs.len(), 2, "{wire:?}");
        for t in [&pressed, &said] {
            let id = t.ticket_id.to_string();
            let (key, validator, schema_id) = match wire {
                WireSchema::V1 => (id.clone(), schema_v1(), "hotline.ticket/v1"),
                WireSchema::V2 => (format!("{id}:1"), schema(), "hotline.ticket/v2"),
            };
            let doc = docs
                .get(&key)
                .unwrap_or_else(|| panic!("{wire:?}: no {key}"));
            assert_eq!(doc["schema"], schema_id);
            assert_valid(&validator, doc);
        }
        let said_doc = &docs[&match wire {
            WireSchema::V1 => said.ticket_id.to_string(),
            WireSchema::V2 => format!("{}:1", said.ticket_id),
        }];
        match wire {
            WireSchema::V1 => assert!(said_doc["menu"].is_null(), "v1 needs digits"),
            WireSchema::V2 => assert_eq!(said_doc["menu"]["utterance"], "政策咨询"),
        }
    }
}

/// A live-transcribed message's second pass (the whole message decoded after the live text
/// was ticketed): the better text reaches the intake as the next revision of the same
/// ticket, classified anew; a second pass that no longer matches the ticket changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_pass_transcript_is_delivered_as_the_next_revision() {
    let dir = tempfile::tempdir().unwrap();
    let intake = Intake::start(|_, _| Reply::Accept(200)).await;
    let svc = TicketService::open(config(dir.path(), Some(intake.url()))).unwrap();
    let (stop, task) = spawn_delivery(&svc);
    let live_text = "我家楼下的路都坏了三天了";
    let mut facts_live = facts("call-2pass", "13800000000", live_text, None, 0);
    facts_live.reference = Some("261202000042".into());
    let first = svc.create(facts_live.clone()).await.unwrap();
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(5);
    assert_eq!(svc.flush(deadline()).await.unwrap().undelivered, 0);

    let whole_text = "我家楼下的路灯坏了三天了";
    let mut facts_whole = facts_live.clone();
    let t = facts_whole.transcript.as_mut().unwrap();
    t.text = whole_text.into();
    t.segments[0].text = whole_text.into();
    let revised = svc
        .revise_transcript(facts_whole.clone(), live_text.into())
        .await
        .unwrap()
        .expect("a different text revises the ticket");
    assert_eq!(revised.ticket_id, first.ticket_id);
    assert_eq!(revised.revision, first.revision + 1);
    assert_eq!(revised.reference.as_deref(), Some("261202000042"));
    assert_eq!(revised.transcript.text, whole_text);
    assert_eq!(revised.classification.category_id, "street_lights_roads");
    // Replayed (or raced by another revision): the ticket no longer carries the live text.
    let again = svc.revise_transcript(facts_whole, live_text.into()).await;
    assert!(again.unwrap().is_none());
    assert_eq!(
        svc.counters()
            .revised
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    assert_eq!(svc.flush(deadline()).await.unwrap().undelivered, 0);
    stop.send(()).unwrap();
    task.await.unwrap();
    let id = first.ticket_id.to_string();
    let keys: Vec<String> = intake
        .posts()
        .iter()
        .filter_map(|p| p.idempotency_key.clone())
        .collect();
    assert_eq!(
        keys,
        vec![
            format!("{id}:{}", first.revision),
            format!("{id}:{}", revised.revision)
        ]
    );
    let stored = intake.documents();
    let doc = &stored[&keys[1]];
    assert_eq!(doc["ticket_id"], id);
    assert_eq!(doc["transcript"]["text"], whole_text);
    assert_eq!(doc["revision"], revised.revision);
    assert_eq!(stored[&keys[0]]["transcript"]["text"], live_text);
}
