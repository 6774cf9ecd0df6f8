//! The operator desk in a real browser (Debian's chromium through chromedriver, issue 15):
//! log in, see a real call's ticket appear in the open queue without a reload, play a
//! transcript segment from the ticket page, search a two-character word, filter by
//! category, and an operator sees the caller's number masked.
//!
//! With `HOTLINE_DESK_SCREENSHOTS=<dir>` the pages are saved there as PNG (how the
//! screenshots in docs/ were made).

use super::desk_harness::{DeskProcess, OPERATOR, SUPERVISOR};
use super::harness::{peer_available, repo};
use fantoccini::{Client, ClientBuilder, Locator};
use hotline_gateway::caller::{dial, DialOptions};
use hotline_gateway::media::Codec;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// chromedriver on its own port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_browser() -> (Driver, Client) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,900", "--autoplay-policy=no-user-gesture-required",
                     "--lang=zh-CN"]
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&driver.url)
            .await
        {
            Ok(c) => return (driver, c),
            Err(e) => {
                assert!(Instant::now() < deadline, "no WebDriver session: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Polls a script until it returns something truthy (generous limit; not a timed assertion).
async fn wait_js(c: &Client, script: &str, limit: Duration, what: &str) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let v = c.execute(script, vec![]).await.unwrap();
        if !(v.is_null() || v == json!(false) || v == json!(0)) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn login(c: &Client, base: &str, (name, password): (&str, &str)) {
    c.goto(&format!("{base}/login")).await.unwrap();
    for (field, value) in [
        ("input[name=name]", name),
        ("input[name=password]", password),
    ] {
        let input = c.find(Locator::Css(field)).await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    click(c, "form.login button").await;
    wait_js(
        c,
        "return document.getElementById('rows') !== null",
        Duration::from_secs(20),
        "the queue after login",
    )
    .await;
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn screenshot(c: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("HOTLINE_DESK_SCREENSHOTS") {
        let png = c.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join(name), png).unwrap();
    }
}

const ROW_IDS: &str =
    "return [...document.querySelectorAll('#rows tr[data-id]')].map(tr => tr.dataset.id)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_works_the_queue_and_a_ticket_in_the_browser() {
    if !peer_available("chromedriver") || !peer_available("chromium") {
        return;
    }
    let Some((model, speech)) = super::asr::inputs() else {
        return;
    };
    let model = model.display().to_string();
    let d = DeskProcess::start(&[
        ("HOTLINE_ASR_ENABLED", "true"),
        ("HOTLINE_ASR_REQUIRED", "true"),
        ("HOTLINE_ASR_MODEL", model.as_str()),
        ("HOTLINE_CONSOLE_PUBLIC_URL", "https://desk.example.gov/"),
    ])
    .await;
    // Two tickets with known segments: the player and the search need exact times and words.
    let heating = d
        .seed(
            "seed-heating",
            "13812345678",
            &["小区暖气一直不热", "已经三天了请尽快派人来看看"],
        )
        .await;
    d.seed(
        "seed-light",
        "13800001111",
        &["路口的路灯坏了", "晚上很黑很危险"],
    )
    .await;
    let (_driver, c) = start_browser().await;
    login(&c, &d.base, OPERATOR).await;
    let before: Vec<String> =
        serde_json::from_value(c.execute(ROW_IDS, vec![]).await.unwrap()).unwrap();
    assert_eq!(before.len(), 2);
    // Marks this page load: a reload would lose it.
    c.execute("window.__sameLoad = true; return true", vec![])
        .await
        .unwrap();
    wait_js(
        &c,
        "return document.getElementById('live').classList.contains('on')",
        Duration::from_secs(20),
        "the event stream to open",
    )
    .await;

    // A real call with the built-in caller: its ticket must appear in this open page.
    let record_prompt = hotline_gateway::media::prompt::Prompt::from_wav_file(
        &repo().join("prompts/zh/record.wav"),
    )
    .unwrap()
    .duration();
    let report = dial(DialOptions {
        target: format!("sip:8890@{}", d.gw.sip),
        from_user: "13912345678".into(),
        codecs: vec![Codec::Pcmu],
        play: Some(speech),
        dtmf: "1".into(),
        dtmf_delay: Duration::from_millis(1500),
        speak_delay: record_prompt + Duration::from_millis(900),
        end_digit: Some('#'),
        rtp_ports: (d.gw.rtp.0 + 50, d.gw.rtp.1),
        max_duration: Duration::from_secs(60),
        ..DialOptions::default()
    })
    .await
    .expect("dial");
    assert_eq!(report.status, 200);
    wait_js(
        &c,
        "return document.querySelectorAll('#rows tr[data-id]').length === 3",
        Duration::from_secs(180),
        "the call's ticket in the open queue",
    )
    .await;
    assert_eq!(
        c.execute("return window.__sameLoad === true", vec![])
            .await
            .unwrap(),
        json!(true),
        "the row arrived without a reload"
    );
    wait_js(
        &c,
        "return document.getElementById('total').textContent === '3'",
        Duration::from_secs(10),
        "the count to follow",
    )
    .await;
    // The ticket the gateway made points the intake at the desk's recording endpoint.
    let newest: Value = d
        .http
        .get(d.url("/api/v1/tickets?per_page=1"))
        .bearer_auth(super::desk_harness::TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t = &newest["tickets"][0]["ticket"];
    assert_eq!(
        t["recording"]["url"].as_str().unwrap_or_default(),
        format!(
            "https://desk.example.gov/api/v1/tickets/{}/recording",
            t["ticket_id"].as_str().unwrap_or_default()
        )
    );
    let new_row_caller = c
        .execute(
            "return document.querySelector('#rows tr[data-id] td.caller').textContent",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(new_row_caller, json!("139****5678"), "newest first, masked");
    let callers = c
        .execute(
            "return [...document.querySelectorAll('#rows td.caller')].map(td => td.textContent).join(' ')",
            vec![],
        )
        .await
        .unwrap();
    let callers = callers.as_str().unwrap();
    assert!(
        callers.contains("138****5678") && !callers.contains("13812345678"),
        "{callers}"
    );
    screenshot(&c, "desk-queue.png").await;

    // The ticket page: click the second segment, the player seeks there and highlights it.
    click(&c, &format!("tr[data-id='{heating}'] a")).await;
    let second = c
        .wait()
        .for_element(Locator::Css("#segments li.segment:nth-child(2)"))
        .await
        .unwrap();
    let start: f64 = second
        .attr("data-start")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    let end: f64 = second
        .attr("data-end")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(start, 3.0);
    second.click().await.unwrap();
    wait_js(
        &c,
        "return document.getElementById('player').readyState >= 1",
        Duration::from_secs(20),
        "the recording's metadata",
    )
    .await;
    wait_js(
        &c,
        "return document.querySelector('#segments li.segment:nth-child(2)').classList.contains('playing')",
        Duration::from_secs(20),
        "the second segment highlighted",
    )
    .await;
    let t = c
        .execute(
            "return document.getElementById('player').currentTime",
            vec![],
        )
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(
        t >= start && t < end,
        "currentTime {t} within [{start}, {end})"
    );
    let first_playing = c
        .execute(
            "return document.querySelector('#segments li.segment:nth-child(1)').classList.contains('playing')",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(first_playing, json!(false));
    assert!(
        d.gw.log().contains("recording range served") && d.gw.log().contains("status=206"),
        "the player's request was answered with 206:\n{}",
        d.gw.log()
    );
    assert!(c.source().await.unwrap().contains("138****5678"));
    screenshot(&c, "desk-ticket.png").await;

    // Search a two-character word, then filter by category.
    c.goto(&format!("{}/", d.base)).await.unwrap();
    let search = c.find(Locator::Css("input[name=q]")).await.unwrap();
    search.send_keys("路灯").await.unwrap();
    click(&c, "#filters button").await;
    wait_js(
        &c,
        "return location.search.includes('q=')",
        Duration::from_secs(10),
        "search",
    )
    .await;
    let rows: Vec<String> =
        serde_json::from_value(c.execute(ROW_IDS, vec![]).await.unwrap()).unwrap();
    assert_eq!(
        rows.len(),
        1,
        "only the street-light ticket says 路灯: {rows:?}"
    );
    assert_ne!(rows[0], heating);
    c.goto(&format!("{}/?category=heating", d.base))
        .await
        .unwrap();
    let cats = c
        .execute(
            "return [...document.querySelectorAll('#rows td.category')].map(td => td.dataset.category)",
            vec![],
        )
        .await
        .unwrap();
    let cats: Vec<String> = serde_json::from_value(cats).unwrap();
    assert!(
        !cats.is_empty() && cats.iter().all(|c| c == "heating"),
        "{cats:?}"
    );
    assert!(c
        .execute(ROW_IDS, vec![])
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .contains(&json!(heating)));

    // The supervisor's page (and whole numbers for the supervisor).
    click(&c, "form.logout button").await;
    wait_js(
        &c,
        "return location.pathname === '/login'",
        Duration::from_secs(10),
        "logout",
    )
    .await;
    login(&c, &d.base, SUPERVISOR).await;
    assert!(c.source().await.unwrap().contains("13912345678"));
    c.goto(&format!("{}/supervisor", d.base)).await.unwrap();
    assert!(c.find(Locator::Css("svg.chart")).await.is_ok());
    screenshot(&c, "desk-supervisor.png").await;
    c.close().await.unwrap();
}
