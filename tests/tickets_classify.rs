//! Classification, duplicate hints and the document schema, through the public service API.

mod tickets_common;

use hotline_gateway::ticket::model::{ClassificationSource, DuplicateReason};
use hotline_gateway::ticket::{Rules, TicketConfig, TicketService};
use std::path::Path;
use tickets_common::{assert_valid, facts, schema, t0};

type Row = (
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static str,
    bool,
    u32,
    ClassificationSource,
);

#[test]
fn classification_table_routes_chinese_and_english_reports() {
    let rules = Rules::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/classification.toml"
    )))
    .expect("shipped table loads");
    // (text, menu id, category id, department contains, urgent, deadline hours, source)
    #[rustfmt::skip]
    let table: &[Row] = &[
        ("我家楼下的路灯坏了好几天了，晚上很黑", None, "street_lights_roads", "城乡建设", false, 72, ClassificationSource::Keywords),
        ("暖气一点都不热，室温只有十二度", Some("complaint"), "heating", "供热", false, 24, ClassificationSource::Keywords),
        ("小区停水两天了，什么时候来水", None, "utilities", "供水", false, 24, ClassificationSource::Keywords),
        ("楼道里有很大的煤气味，好像燃气泄漏了", None, "utilities", "燃气", true, 2, ClassificationSource::Keywords),
        ("对面饭店着火了，冒烟很大", None, "public_safety", "公安", true, 1, ClassificationSource::Keywords),
        ("楼上装修噪音太大，晚上十一点还在施工", None, "noise", "生态环境", false, 48, ClassificationSource::Keywords),
        ("垃圾箱满了好几天没人清运，臭味很大", None, "sanitation", "城市管理", false, 48, ClassificationSource::Keywords),
        ("公交车司机不等人就开走了", None, "traffic", "交通运输", false, 72, ClassificationSource::Keywords),
        ("物业不给修电梯，还要涨物业费", None, "property_management", "物业", false, 72, ClassificationSource::Keywords),
        ("我想问一下公积金怎么提取", Some("policy"), "housing_fund", "公积金", false, 120, ClassificationSource::Keywords),
        ("单位一直不给交社保，养老保险断了", None, "social_insurance", "人力资源", false, 120, ClassificationSource::Keywords),
        ("医院挂号太难了，排了三个小时", None, "healthcare", "卫生健康", false, 72, ClassificationSource::Keywords),
        ("幼儿园乱收学费", None, "education", "教育", false, 120, ClassificationSource::Keywords),
        ("商家卖假货还不给退款", None, "consumer_rights", "市场监督", false, 120, ClassificationSource::Keywords),
        ("老人在小区门口摔倒了，头部受伤", None, "healthcare", "卫生健康", true, 2, ClassificationSource::Keywords),
        // English: case-insensitive, whole words only.
        ("The STREET LIGHT outside number 5 is broken", None, "street_lights_roads", "城乡建设", false, 72, ClassificationSource::Keywords),
        ("There is a gas leak in the basement, I can smell gas", None, "utilities", "燃气", true, 2, ClassificationSource::Keywords),
        ("My neighbours are very noisy every night", None, "noise", "生态环境", false, 48, ClassificationSource::Keywords),
        ("Our radiators have been cold all week, no heating", None, "heating", "供热", false, 24, ClassificationSource::Keywords),
        // Word boundaries: "fireworks" is not "fire", "roadside" is not "road".
        ("I want to ask about fireworks at the roadside", Some("policy"), "policy", "政策咨询", false, 72, ClassificationSource::Menu),
        // No keyword: the menu choice decides, else the default.
        ("你好，我想问一下", Some("policy"), "policy", "政策咨询", false, 72, ClassificationSource::Menu),
        ("喂喂，听得到吗", Some("service"), "service", "便民服务", false, 72, ClassificationSource::Menu),
        ("喂喂，听得到吗", None, "other", "8890", false, 120, ClassificationSource::Default),
        ("", Some("complaint"), "complaint", "投诉分拨", false, 120, ClassificationSource::Menu),
    ];
    for (text, menu, cat, dept, urgent, hours, source) in table {
        let c = rules.classify(text, *menu, t0());
        assert_eq!(
            c.category_id, *cat,
            "category of {text:?} (matched {:?})",
            c.matched_keywords
        );
        assert!(
            c.department.contains(dept),
            "department of {text:?}: {}",
            c.department
        );
        assert_eq!(
            c.urgent, *urgent,
            "urgent of {text:?} (urgent words {:?})",
            c.urgent_keywords
        );
        assert_eq!(c.response_deadline_hours, *hours, "deadline of {text:?}");
        assert_eq!(c.source, *source, "source of {text:?}");
        assert_eq!(c.due_at, t0() + chrono::Duration::hours(i64::from(*hours)));
        assert_eq!(
            c.source == ClassificationSource::Keywords,
            !c.matched_keywords.is_empty()
        );
        for k in &c.matched_keywords {
            let hay = text.to_lowercase();
            assert!(
                hay.contains(&k.to_lowercase()),
                "recorded keyword {k:?} not in {text:?}"
            );
        }
        assert_eq!(c.rules_version, rules.version);
    }
}

#[test]
fn urgent_keywords_are_recorded() {
    let rules = Rules::builtin();
    let c = rules.classify("邻居家燃气泄漏，有人晕倒了", None, t0());
    assert!(c.urgent);
    assert_eq!(
        c.urgent_keywords,
        vec!["燃气泄漏".to_string(), "晕倒".to_string()]
    );
    assert!(c.matched_keywords.contains(&"燃气".to_string()));
}

#[test]
fn a_broken_rules_file_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rules.toml");
    std::fs::write(
        &p,
        "version = \"x\"\ncategory = []\n[default]\nid = \"other\"\nname = \"其他\"\ndepartment = \"d\"\ndeadline_hours = 0\n[urgent]\nkeywords = []\ndeadline_hours = 2\n",
    )
    .unwrap();
    let err = Rules::load(&p).unwrap_err().to_string();
    assert!(
        err.contains("rules.toml") && err.contains("deadline_hours must be > 0"),
        "{err}"
    );
    std::fs::write(&p, "version = \"x\"\n[default\n").unwrap();
    assert!(Rules::load(&p).is_err());
}

fn service(dir: &Path, window_secs: u64) -> TicketService {
    let mut cfg = TicketConfig {
        db_path: dir.join("tickets.sqlite"),
        outbox_dir: dir.join("outbox"),
        gateway_instance: "gw-test".into(),
        ..TicketConfig::default()
    };
    cfg.duplicate.window_secs = window_secs;
    TicketService::open(cfg).unwrap()
}

#[tokio::test]
async fn duplicate_hints_for_same_caller_and_similar_text_within_window() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path(), 3600);
    let first = svc
        .create(facts(
            "c1",
            "13800000001",
            "人民路和胜利路交叉口的路灯坏了，晚上一片漆黑",
            None,
            0,
        ))
        .await
        .unwrap();
    assert!(first.duplicate.is_none());
    // (call id, caller, text, offset secs, expected: None or (dup of ticket #, reason, min sim, max sim))
    struct Case {
        call: &'static str,
        caller: &'static str,
        text: &'static str,
        offset: i64,
        expect: Option<(DuplicateReason, f64, f64)>,
    }
    #[rustfmt::skip]
    let cases = [
        // Another caller, nearly the same words: similar text.
        Case { call: "c2", caller: "13900000002", text: "人民路胜利路交叉口路灯坏了，晚上漆黑一片", offset: 600, expect: Some((DuplicateReason::SimilarText, 0.5, 1.0)) },
        // Same caller, other topic: same caller, low similarity.
        Case { call: "c3", caller: "13800000001", text: "还有我们小区垃圾没人清运", offset: 900, expect: Some((DuplicateReason::SameCaller, 0.0, 0.2)) },
        // Unrelated caller and topic: no hint.
        Case { call: "c4", caller: "13700000004", text: "医院挂号太难了", offset: 1000, expect: None },
        // Outside the window (2 h later, window 1 h): no hint even though identical.
        Case { call: "c5", caller: "13600000005", text: "人民路和胜利路交叉口的路灯坏了，晚上一片漆黑", offset: 2 * 3600 + 1000, expect: None },
        // English, same caller and similar text.
        Case { call: "c6", caller: "13500000006", text: "The street light on Renmin Road is broken", offset: 3 * 3600, expect: None },
        Case { call: "c7", caller: "13500000006", text: "the street light on renmin road is still broken!", offset: 3 * 3600 + 60, expect: Some((DuplicateReason::SameCallerSimilarText, 0.7, 1.0)) },
        // Anonymous callers are never "the same caller".
        Case { call: "c8", caller: "anonymous", text: "我要投诉出租车拒载", offset: 4 * 3600, expect: None },
        Case { call: "c9", caller: "anonymous", text: "公交车不停站", offset: 4 * 3600 + 60, expect: None },
    ];
    let mut by_call = std::collections::HashMap::new();
    by_call.insert("c1", first.ticket_id);
    let mut expected_target = std::collections::HashMap::new();
    expected_target.insert("c2", "c1");
    expected_target.insert("c7", "c6");
    // The caller's own earlier ticket, not the more similar one of another caller.
    expected_target.insert("c3", "c1");
    for case in &cases {
        let t = svc
            .create(facts(case.call, case.caller, case.text, None, case.offset))
            .await
            .unwrap();
        by_call.insert(case.call, t.ticket_id);
        match (&case.expect, &t.duplicate) {
            (None, None) => {}
            (Some((reason, lo, hi)), Some(d)) => {
                assert_eq!(d.reason, *reason, "{}", case.call);
                assert!(
                    d.similarity >= *lo && d.similarity <= *hi,
                    "{}: similarity {}",
                    case.call,
                    d.similarity
                );
                assert_eq!(
                    d.duplicate_of, by_call[expected_target[case.call]],
                    "{}",
                    case.call
                );
            }
            (e, got) => panic!("{}: expected {e:?}, got {got:?}", case.call),
        }
    }
}

#[tokio::test]
async fn every_emitted_ticket_validates_against_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path(), 3600);
    let validator = schema();
    let wav = dir.path().join("msg.wav");
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&wav, spec).unwrap();
        for i in 0..8000 {
            w.write_sample(((i as f32 * 0.05).sin() * 8000.0) as i16)
                .unwrap();
        }
        w.finalize().unwrap();
    }
    let mut with_recording = facts("r1", "13800000001", "暖气不热", Some("complaint"), 0);
    with_recording.recording = Some(hotline_gateway::ticket::RecordingFacts {
        path: wav.clone(),
        duration_ms: 1000,
    });
    let mut missing_recording = facts("r2", "13800000002", "路灯坏了", None, 10);
    missing_recording.recording = Some(hotline_gateway::ticket::RecordingFacts {
        path: dir.path().join("gone.wav"),
        duration_ms: 500,
    });
    let mut no_asr = facts("r3", "anonymous", "", None, 20);
    no_asr.transcript = None;
    no_asr.menu = None;
    no_asr.trunk = None;
    let silent = facts("r4", "13800000004", "", Some("policy"), 30);
    let mut asr_failed = facts("r5", "13800000005", "", None, 40);
    asr_failed.transcript.as_mut().unwrap().empty_reason = Some("asr_failed".into());
    asr_failed.hangup_by = hotline_gateway::ticket::HangupBy::Gateway;
    let english = facts(
        "r6",
        "13800000006",
        "Gas leak on the third floor!",
        Some("complaint"),
        50,
    );

    let mut tickets = vec![];
    for f in [
        with_recording,
        missing_recording,
        no_asr,
        silent,
        asr_failed,
        english,
    ] {
        let t = svc.create(f).await.unwrap();
        assert_valid(&validator, &serde_json::to_value(&t).unwrap());
        tickets.push(t);
    }
    // The document carries what a receiver relies on.
    let rec = tickets[0].recording.as_ref().unwrap();
    let bytes = std::fs::read(&wav).unwrap();
    use sha2::Digest;
    let want: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(rec.sha256.as_deref(), Some(want.as_str()));
    assert_eq!(rec.size_bytes, Some(bytes.len() as u64));
    assert_eq!(
        (rec.format.as_str(), rec.sample_rate_hz, rec.channels),
        ("wav", Some(8000), Some(1))
    );
    let gone = tickets[1].recording.as_ref().unwrap();
    assert!(gone.sha256.is_none() && gone.error.is_some());
    assert_eq!(
        tickets[2].transcript.empty_reason.as_deref(),
        Some("no_asr")
    );
    assert_eq!(
        tickets[3].transcript.empty_reason.as_deref(),
        Some("no_speech")
    );
    assert_eq!(tickets[3].classification.category_id, "policy");
    assert_eq!(
        tickets[4].transcript.empty_reason.as_deref(),
        Some("asr_failed")
    );
    assert!(tickets[5].classification.urgent);
    assert_eq!(tickets[0].call.duration_ms, 75_000);
    assert_eq!(tickets[0].call.talk_ms, 73_800);
    assert_eq!(tickets[0].ticket_id.get_version_num(), 7);
    assert_eq!(tickets[0].gateway_instance, "gw-test");

    // The same call handed over twice yields the same ticket, not a second one.
    let again = svc
        .create(facts("r1", "13800000001", "暖气不热", Some("complaint"), 0))
        .await
        .unwrap();
    assert_eq!(again.ticket_id, tickets[0].ticket_id);
    let export =
        hotline_gateway::ticket::admin::export(&dir.path().join("tickets.sqlite"), None).unwrap();
    assert_eq!(export.lines().count(), 6);
    for line in export.lines() {
        assert_valid(&validator, &serde_json::from_str(line).unwrap());
    }
}

#[test]
fn shipped_examples_validate_against_the_schema() {
    let validator = schema();
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples"));
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let doc: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert_valid(&validator, &doc);
            // And the typed model reads them back unchanged.
            let t: hotline_gateway::ticket::Ticket = serde_json::from_value(doc.clone()).unwrap();
            assert_eq!(serde_json::to_value(&t).unwrap(), doc, "{}", path.display());
            n += 1;
        }
    }
    assert!(n >= 3, "expected at least 3 examples, found {n}");
}

#[test]
fn schema_rejects_malformed_tickets() {
    let validator = schema();
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/examples/heating-zh.json"
    ));
    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(validator.is_valid(&good));
    type Mutation = Box<dyn Fn(&mut serde_json::Value)>;
    #[rustfmt::skip]
    let mutations: Vec<(&str, Mutation)> = vec![
        ("wrong schema id", Box::new(|v| v["schema"] = "hotline.ticket/v1".into())),
        ("revision 0", Box::new(|v| v["revision"] = 0.into())),
        ("short reference", Box::new(|v| v["reference"] = "2611260".into())),
        ("menu without source", Box::new(|v| { v["menu"].as_object_mut().unwrap().remove("source"); })),
        ("unknown progress state", Box::new(|v| v["progress"]["state"] = "closed".into())),
        ("confidence > 1", Box::new(|v| v["classification"]["confidence"] = 1.5.into())),
        ("transfer without outcome", Box::new(|v| v["transfer"] = serde_json::json!({"mode": "bridge", "target": "sip:op@pbx", "started_at": "2026-11-26T01:00:00Z", "answered_at": null, "talk_ms": null}))),
        ("missing call_uid", Box::new(|v| { v["call"].as_object_mut().unwrap().remove("call_uid"); })),
        ("v4 ticket id", Box::new(|v| v["ticket_id"] = "0b6a1d9e-3c7f-4d2a-9e1b-2f8c6a4d5e7f".into())),
        ("empty text without reason", Box::new(|v| v["transcript"]["text"] = "".into())),
        ("reason with text", Box::new(|v| v["transcript"]["empty_reason"] = "no_speech".into())),
        ("unknown field", Box::new(|v| v["extra"] = 1.into())),
        ("bad hangup side", Box::new(|v| v["call"]["hangup"]["by"] = "callee".into())),
        ("similarity > 1", Box::new(|v| v["duplicate"] = serde_json::json!({"duplicate_of": v["ticket_id"].clone(), "similarity": 1.5, "reason": "similar_text"}))),
        ("missing classification", Box::new(|v| { v.as_object_mut().unwrap().remove("classification"); })),
    ];
    for (what, mutate) in mutations {
        let mut bad = good.clone();
        mutate(&mut bad);
        assert!(!validator.is_valid(&bad), "schema accepted: {what}");
    }
}

/// Issue 11.11: two dialogs may share a SIP Call-ID (different tags). Each call has its own
/// `call_uid`, so each gets its own ticket carrying the shared Call-ID; handing the same call
/// over again still yields its first ticket.
#[tokio::test]
async fn two_calls_sharing_a_call_id_get_a_ticket_each() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path(), 3600);
    let mut first = facts("shared@10.0.0.9", "13800000001", "暖气不热", None, 0);
    first.call_uid = "019ac1d2-0000-7000-8000-000000000001".into();
    let mut second = facts("shared@10.0.0.9", "13900000002", "路灯坏了", None, 30);
    second.call_uid = "019ac1d2-0000-7000-8000-000000000002".into();
    let a = svc.create(first.clone()).await.unwrap();
    let b = svc.create(second).await.unwrap();
    assert_ne!(
        a.ticket_id, b.ticket_id,
        "the second call got its own ticket"
    );
    assert_eq!(a.call.call_id, b.call.call_id);
    assert_eq!(b.call.call_uid, "019ac1d2-0000-7000-8000-000000000002");
    assert_eq!(b.call.caller, "13900000002");
    let again = svc.create(first).await.unwrap();
    assert_eq!(
        again.ticket_id, a.ticket_id,
        "creation is idempotent per call_uid"
    );
    assert_eq!(svc.store().list(None, 10).unwrap().len(), 2);
}
