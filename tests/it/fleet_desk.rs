//! The desk in a fleet: the desk of instance B lists, shows and searches the tickets of the
//! whole fleet (a call taken by instance A included), and its live events come from the
//! database (`LISTEN`/`NOTIFY`), so A's ticket appears on B's event stream.

use super::hardening::handoff::short_call;
use super::harness::GatewayProcess;
use super::postgres::{listen_port, Postgres};
use hotline_gateway::ticket::fleet::mover::move_one;
use hotline_gateway::ticket::store::Unmoved;
use hotline_gateway::ticket::{DeliveryState, DuplicateConfig};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "fleet-desk-test-token";

async fn api(base: &str, path: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{path}");
    r.json().await.unwrap()
}

fn ids(list: &Value) -> Vec<String> {
    list["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ticket"]["ticket_id"].as_str().unwrap().to_owned())
        .collect()
}

/// A copy of `doc` as another call's ticket saying `text`, moved into the shared store.
async fn seed_copy(db: &mut tokio_postgres::Client, doc: &Value, n: u32, text: &str) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    let mut d = doc.clone();
    d["ticket_id"] = id.clone().into();
    d["transcript"]["text"] = text.into();
    d["call"]["call_uid"] = format!("seed-{n}").into();
    let t = Unmoved {
        ticket_id: id.clone(),
        call_uid: format!("seed-{n}"),
        call_id: format!("seed-{n}"),
        reference: None,
        created_at_ms: chrono::Utc::now().timestamp_millis(),
        started_at_ms: chrono::Utc::now().timestamp_millis(),
        caller: format!("1390000000{n}"),
        norm_text: text.into(),
        category_id: "other".into(),
        urgent: false,
        document: d.to_string(),
        state: DeliveryState::Pending,
        attempts: 0,
    };
    move_one(db, &t, &DuplicateConfig::default(), "test")
        .await
        .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_instances_desk_shows_and_searches_the_fleets_tickets_live() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.url();
    let member = [
        ("HOTLINE_TICKETS_STORE", "postgres"),
        ("HOTLINE_TICKETS_URL", url.as_str()),
    ];
    let mut a = GatewayProcess::start(&member);
    let listen = format!("127.0.0.1:{}", listen_port());
    let mut env = member.to_vec();
    env.extend([
        ("HOTLINE_CONSOLE_LISTEN", listen.as_str()),
        ("HOTLINE_CONSOLE_API_TOKENS", TOKEN),
    ]);
    let mut b = GatewayProcess::start(&env);
    let base = format!("http://{listen}");

    // B's event stream, read in the background.
    let seen = Arc::new(Mutex::new(String::new()));
    let mut stream = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while stream.is_none() {
        if let Ok(r) = reqwest::Client::new()
            .get(format!("{base}/api/v1/events"))
            .bearer_auth(TOKEN)
            .send()
            .await
        {
            if r.status().as_u16() == 200 {
                stream = Some(r);
                break;
            }
        }
        assert!(Instant::now() < deadline, "B's desk answers");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut stream = stream.unwrap();
    let sink = seen.clone();
    tokio::spawn(async move {
        while let Ok(Some(chunk)) = stream.chunk().await {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk));
        }
    });
    // The listener may start after the stream opened: give it a moment to be LISTENing.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let call = short_call(&a, "13800000031", 50, 2).await;
    assert_eq!(call.status, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    let id = loop {
        let text = seen.lock().unwrap().clone();
        if let Some(line) = text
            .lines()
            .find(|l| l.starts_with("data:") && l.contains("committed"))
        {
            let v: Value = serde_json::from_str(line.trim_start_matches("data:").trim()).unwrap();
            break v["ticket_id"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "A's ticket on B's event stream: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let list = api(&base, "/api/v1/tickets").await;
    assert_eq!(ids(&list), vec![id.clone()], "{list}");
    let one = api(&base, &format!("/api/v1/tickets/{id}")).await;
    let doc = one["ticket"].clone();
    assert_eq!(doc["call"]["caller"], "13800000031", "{one}");
    assert_ne!(
        doc["gateway_instance"],
        Value::Null,
        "the ticket names the instance that took it"
    );

    // Progress reported on B's API for A's ticket is the fleet's.
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/tickets/{id}/progress"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"state": "in_progress", "note": "已派单"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "{}",
        r.text().await.unwrap_or_default()
    );
    let one = api(&base, &format!("/api/v1/tickets/{id}")).await;
    assert_eq!(one["ticket"]["progress"]["state"], "in_progress", "{one}");
    let in_progress = api(&base, "/api/v1/tickets?progress=in_progress").await;
    assert_eq!(ids(&in_progress), vec![id.clone()]);

    // Chinese search over the fleet: 1-2 character terms and longer ones.
    let mut db = pg.client().await;
    let lamp = seed_copy(&mut db, &doc, 1, "楼下的路灯坏了三天").await;
    let noise = seed_copy(&mut db, &doc, 2, "小区晚上施工噪音扰民").await;
    let q = |s: &str| format!("/api/v1/tickets?q={}", urlencode(s));
    assert_eq!(ids(&api(&base, &q("路灯")).await), vec![lamp.clone()]);
    assert_eq!(ids(&api(&base, &q("灯")).await), vec![lamp.clone()]);
    assert_eq!(ids(&api(&base, &q("噪音扰民")).await), vec![noise.clone()]);
    assert_eq!(ids(&api(&base, &q("晚上 施工")).await), vec![noise]);
    assert!(ids(&api(&base, &q("暖气")).await).is_empty());
    assert_eq!(api(&base, "/api/v1/tickets").await["total"], 3);
    a.stop();
    b.stop();
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
