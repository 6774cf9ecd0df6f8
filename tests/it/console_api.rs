//! The desk's HTTP API over real HTTP against the real daemon (issue 15): nothing without
//! credentials, CSRF on state changes, numbers masked by role, Range on recordings,
//! progress and corrections kept, search that finds one- and two-character Chinese words.

use super::desk_harness::{By, DeskProcess, Session, OPERATOR, SUPERVISOR, TOKEN};
use reqwest::header::{AUTHORIZATION, CONTENT_RANGE, COOKIE, LOCATION, RANGE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

async fn get_json(d: &DeskProcess, s: &Session, path: &str) -> Value {
    let r = d
        .send(Method::GET, path, By::SessionWithoutCsrf(s), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_only_the_login_page_answers() {
    let d = DeskProcess::start(&[]).await;
    let id = d
        .seed("c-anon", "13812345678", &["路灯坏了", "晚上很黑"])
        .await;
    for path in [
        "/api/v1/tickets".to_string(),
        format!("/api/v1/tickets/{id}"),
        format!("/api/v1/tickets/{id}/recording"),
        "/api/v1/events".to_string(),
    ] {
        for (header, value) in [
            (None, ""),
            (Some(AUTHORIZATION), "Bearer not-a-token-of-ours-at-all"),
            (Some(COOKIE), "hotline_desk=forged"),
        ] {
            let mut r = d.http.get(d.url(&path));
            if let Some(h) = header {
                r = r.header(h, value);
            }
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path} {value}");
        }
    }
    for path in ["/", "/supervisor", &format!("/tickets/{id}")] {
        let r = d.http.get(d.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.headers()[LOCATION], "/login");
    }
    let r = d
        .send(
            Method::POST,
            &format!("/api/v1/tickets/{id}/progress"),
            By::Anonymous,
            Some(json!({"state": "resolved", "note": "x"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let login = d.http.get(d.url("/login")).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    assert!(login.text().await.unwrap().contains("name=\"password\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_see_masked_numbers_supervisors_and_tokens_whole_ones() {
    let d = DeskProcess::start(&[]).await;
    let id = d
        .seed("c-mask", "13812345678", &["暖气不热", "已经三天了"])
        .await;
    let op = d.login(OPERATOR).await;
    let sup = d.login(SUPERVISOR).await;
    let list = get_json(&d, &op, "/api/v1/tickets").await;
    assert_eq!(
        list["tickets"][0]["ticket"]["call"]["caller"],
        "138****5678"
    );
    let one = get_json(&d, &op, &format!("/api/v1/tickets/{id}")).await;
    assert_eq!(one["ticket"]["call"]["caller"], "138****5678");
    let page = d
        .send(
            Method::GET,
            &format!("/tickets/{id}"),
            By::SessionWithoutCsrf(&op),
            None,
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("138****5678") && !page.contains("13812345678"));
    let queue = d
        .send(Method::GET, "/", By::SessionWithoutCsrf(&op), None)
        .await
        .text()
        .await
        .unwrap();
    assert!(queue.contains("138****5678") && !queue.contains("13812345678"));
    let one = get_json(&d, &sup, &format!("/api/v1/tickets/{id}")).await;
    assert_eq!(one["ticket"]["call"]["caller"], "13812345678");
    let by_token: Value = d
        .send(
            Method::GET,
            &format!("/api/v1/tickets/{id}"),
            By::Token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_token["ticket"]["call"]["caller"], "13812345678");
    // The supervisor page is the supervisor's.
    let r = d
        .send(
            Method::GET,
            "/supervisor",
            By::SessionWithoutCsrf(&op),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = d
        .send(
            Method::GET,
            "/supervisor",
            By::SessionWithoutCsrf(&sup),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("<svg"));
    // Who opened the ticket is in the audit log, and in the daemon's log.
    let store = hotline_gateway::ticket::store::Store::open(&d.db()).unwrap();
    let audit = store.audit_log(&id).unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.user == OPERATOR.0 && e.action == "open_ticket"),
        "{audit:?}"
    );
    assert!(d.gw.log().contains("desk audit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_without_the_csrf_token_are_refused() {
    let d = DeskProcess::start(&[]).await;
    let id = d
        .seed("c-csrf", "13812345678", &["噪音扰民", "楼下装修"])
        .await;
    let op = d.login(OPERATOR).await;
    let patch = |csrf: Option<&str>| {
        let mut r = d
            .http
            .patch(d.url(&format!("/api/v1/tickets/{id}")))
            .header(COOKIE, &op.cookie)
            .json(&json!({"category_id": "heating"}));
        if let Some(c) = csrf {
            r = r.header("X-CSRF-Token", c);
        }
        r.send()
    };
    assert_eq!(patch(None).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(
        patch(Some("wrong")).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let r = d
        .http
        .post(d.url(&format!("/tickets/{id}/progress")))
        .header(COOKIE, &op.cookie)
        .form(&[("csrf", "wrong"), ("state", "resolved"), ("note", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "form without the token");
    let r = d
        .send(
            Method::POST,
            &format!("/api/v1/tickets/{id}/progress"),
            By::SessionWithoutCsrf(&op),
            Some(json!({"state": "resolved", "note": "x"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "JSON without the token");
    // A bearer token may report progress but not correct the classification.
    let r = d
        .send(
            Method::PATCH,
            &format!("/api/v1/tickets/{id}"),
            By::Token,
            Some(json!({"category_id": "heating"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let one = get_json(&d, &op, &format!("/api/v1/tickets/{id}")).await;
    assert!(one["ticket"]["classification"]["operator_override"].is_null());
    assert!(one["progress"]["history"].as_array().unwrap().is_empty());

    // With the token: a correction, kept as operator_override, re-queued as revision 2.
    let r = patch(Some(&op.csrf)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["revision"], 2);
    let one = get_json(&d, &op, &format!("/api/v1/tickets/{id}")).await;
    let o = &one["ticket"]["classification"]["operator_override"];
    assert_eq!(o["category_id"], "heating");
    assert_eq!(o["by"], OPERATOR.0);
    assert_eq!(one["ticket"]["revision"], 2);
    let heating = get_json(&d, &op, "/api/v1/tickets?category=heating").await;
    assert_eq!(
        heating["total"], 1,
        "the queue filters on the corrected category"
    );
    let r = d
        .send(
            Method::PATCH,
            &format!("/api/v1/tickets/{id}"),
            By::Session(&op),
            Some(json!({"category_id": "no-such-category"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_from_the_intake_and_the_desk_is_kept_with_its_history() {
    let d = DeskProcess::start(&[]).await;
    let id = d
        .seed("c-prog", "13812345678", &["路灯坏了", "请派人修"])
        .await;
    let r = d
        .send(
            Method::POST,
            &format!("/api/v1/tickets/{id}/progress"),
            By::Token,
            Some(json!({"state": "in_progress", "note": "已派单"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let op = d.login(OPERATOR).await;
    let r = d
        .send(
            Method::POST,
            &format!("/api/v1/tickets/{id}/progress"),
            By::Session(&op),
            Some(json!({"state": "resolved", "note": "已修复"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = d
        .send(
            Method::POST,
            &format!("/api/v1/tickets/{id}/progress"),
            By::Token,
            Some(json!({"state": "done"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "unknown state");
    let one = get_json(&d, &op, &format!("/api/v1/tickets/{id}")).await;
    assert_eq!(one["progress"]["state"], "resolved");
    let h = one["progress"]["history"].as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[0]["by"].as_str(), h[0]["source"].as_str()),
        (Some("api"), Some("api"))
    );
    assert_eq!(h[1]["note"], "已修复");
    assert_eq!(
        get_json(&d, &op, "/api/v1/tickets?progress=resolved").await["total"],
        1
    );
    assert_eq!(
        get_json(&d, &op, "/api/v1/tickets?progress=accepted").await["total"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_served_with_range_and_gone_when_expired() {
    let d = DeskProcess::start(&[]).await;
    let id = d
        .seed("c-range", "13812345678", &["水管爆了", "快来人"])
        .await;
    let sup = d.login(SUPERVISOR).await;
    let file = d.gw.data_dir.path().join("recordings/c-range.wav");
    let bytes = std::fs::read(&file).unwrap();
    let url = d.url(&format!("/api/v1/tickets/{id}/recording"));
    // What a browser's player asks first.
    let r = d
        .http
        .get(&url)
        .header(COOKIE, &sup.cookie)
        .header(RANGE, "bytes=0-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.bytes().await.unwrap().len(), bytes.len());
    let r = d
        .http
        .get(&url)
        .header(COOKIE, &sup.cookie)
        .header(RANGE, "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.headers()[CONTENT_RANGE],
        format!("bytes 1000-1999/{}", bytes.len()).as_str()
    );
    assert_eq!(r.headers()["content-type"], "audio/wav");
    assert_eq!(&r.bytes().await.unwrap()[..], &bytes[1000..2000]);
    let r = d
        .http
        .get(&url)
        .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().len(), bytes.len());
    let r = d
        .http
        .get(&url)
        .header(COOKIE, &sup.cookie)
        .header(RANGE, format!("bytes={}-", bytes.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let store = hotline_gateway::ticket::store::Store::open(&d.db()).unwrap();
    assert!(store
        .audit_log(&id)
        .unwrap()
        .iter()
        .any(|e| e.user == SUPERVISOR.0 && e.action == "play_recording"));
    std::fs::remove_file(&file).unwrap();
    let r = d
        .http
        .get(&url)
        .header(COOKIE, &sup.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_one_and_two_character_chinese_words_and_filters_combine() {
    let d = DeskProcess::start(&[]).await;
    d.seed("c-s1", "13800000001", &["小区暖气不热", "已经三天了"])
        .await;
    d.seed("c-s2", "13800000002", &["路灯坏了", "晚上很黑"])
        .await;
    let op = d.login(OPERATOR).await;
    let total = |q: &'static str| {
        let (d, op) = (&d, &op);
        async move {
            get_json(d, op, &format!("/api/v1/tickets?q={}", urlencode(q))).await["total"]
                .as_u64()
                .unwrap()
        }
    };
    assert_eq!(total("暖气").await, 1, "two characters");
    assert_eq!(total("灯").await, 1, "one character");
    assert_eq!(total("暖气不热").await, 1, "trigram index");
    assert_eq!(total("了").await, 2);
    assert_eq!(total("路灯 很黑").await, 1, "all words");
    assert_eq!(total("下水道").await, 0);
    let heating = get_json(&d, &op, "/api/v1/tickets?category=heating").await;
    assert_eq!(heating["total"], 1);
    let page = get_json(&d, &op, "/api/v1/tickets?per_page=1&page=2").await;
    assert_eq!(
        (
            page["total"].as_u64(),
            page["tickets"].as_array().map(Vec::len)
        ),
        (Some(2), Some(1))
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_logins_are_throttled() {
    let d = DeskProcess::start(&[]).await;
    for _ in 0..5 {
        let r = d
            .http
            .post(d.url("/login"))
            .form(&[("name", OPERATOR.0), ("password", "guess")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = d
        .http
        .post(d.url("/login"))
        .form(&[("name", OPERATOR.0), ("password", OPERATOR.1)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert!(r.headers().contains_key("retry-after"));
    // The other account is not locked.
    d.login(SUPERVISOR).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_reaches_the_intake_as_a_new_revision_of_the_same_ticket() {
    use super::tickets_common::{Intake, Reply};
    let intake = Intake::start(|_, _| Reply::Accept(200)).await;
    let url = intake.url();
    let d = DeskProcess::start(&[("HOTLINE_INTAKE_URL", url.as_str())]).await;
    let id = d
        .seed("c-rev", "13812345678", &["楼下很吵", "每天半夜"])
        .await;
    let first = format!("{id}:1");
    intake
        .wait_for(Duration::from_secs(30), "revision 1", |s| {
            s.applied.contains_key(&first)
        })
        .await;
    let op = d.login(OPERATOR).await;
    let r = d
        .send(
            Method::PATCH,
            &format!("/api/v1/tickets/{id}"),
            By::Session(&op),
            Some(json!({"category_id": "noise", "department": "区环保局"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let second = format!("{id}:2");
    intake
        .wait_for(Duration::from_secs(30), "revision 2", |s| {
            s.applied.contains_key(&second)
        })
        .await;
    let post = intake
        .posts()
        .into_iter()
        .find(|p| p.idempotency_key.as_deref() == Some(&second))
        .unwrap();
    let doc: Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(doc["ticket_id"], id.as_str());
    assert_eq!(doc["revision"], 2);
    let o = &doc["classification"]["operator_override"];
    assert_eq!(
        (o["category_id"].as_str(), o["department"].as_str()),
        (Some("noise"), Some("区环保局"))
    );
    assert_eq!(o["by"], OPERATOR.0);
    // The classifier learns from it.
    let store = hotline_gateway::ticket::store::Store::open(&d.db()).unwrap();
    let learned = store.corrections().unwrap();
    assert!(
        learned
            .iter()
            .any(|c| c.ticket_id == id && c.category_id == "noise"),
        "{learned:?}"
    );
    // Progress set on the desk is not sent to the intake.
    let posts = intake.post_count();
    let r = d
        .send(
            Method::POST,
            &format!("/api/v1/tickets/{id}/progress"),
            By::Session(&op),
            Some(json!({"state": "in_progress", "note": "已联系"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let one = get_json(&d, &op, &format!("/api/v1/tickets/{id}")).await;
    assert_eq!(one["ticket"]["progress"]["state"], "in_progress");
    assert_eq!(one["ticket"]["progress"]["note"], "已联系");
    assert_eq!(one["delivery"]["state"], "delivered", "not queued again");
    assert_eq!(intake.post_count(), posts);
}
