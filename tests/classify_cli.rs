//! The `classify` command as a person runs it (the real binary, a real config and ticket
//! store), and the operator-correction loop: a correction stored in the ticket store changes
//! what the retrained classifier says, in the daemon after a reload and in the command.

mod tickets_common;

use hotline_gateway::ticket::{TicketConfig, TicketService};
use std::path::{Path, PathBuf};
use std::process::Command;
use tickets_common::facts;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The example configuration (the shipped table); each test moves its data folder.
fn config() -> PathBuf {
    PathBuf::from(format!("{REPO}/config/hotline.toml"))
}

/// Runs `classify` from the repository (where the config's relative paths point) with the
/// data folder of `data`.
fn classify(config: &Path, data: &Path, args: &[&str]) -> (String, String, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_hotline-gateway"))
        .current_dir(REPO)
        .env("HOTLINE_DATA_DIR", data)
        .arg("classify")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run hotline-gateway");
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn text_prints_one_json_line_per_text() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config();
    let (out, err, ok) = classify(
        &cfg,
        dir.path(),
        &["text", "工地晚上十二点了还在打桩", "对面楼着火了，火很大"],
    );
    assert!(ok, "{err}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2, "{out}");
    for key in [
        "category_id",
        "category",
        "department",
        "urgent",
        "confidence",
        "matched_keywords",
        "needs_review",
        "top_features",
    ] {
        assert!(lines[0].get(key).is_some(), "{key} missing: {}", lines[0]);
    }
    assert_eq!(lines[0]["category_id"], "noise");
    assert_eq!(lines[0]["urgent"], false);
    assert_eq!(lines[1]["urgent"], true);
    assert!(lines[1]["urgent_keywords"].to_string().contains("着火"));
    // No store was created by looking.
    assert!(!dir.path().join("tickets.sqlite").exists());
}

#[test]
fn eval_reports_accuracy_urgent_hits_false_alarms_and_confusion() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config();
    let set = format!("{REPO}/tests/data/classify/heldout.tsv");
    let (out, err, ok) = classify(&cfg, dir.path(), &["eval", &set, "--json"]);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(r["accuracy"].as_f64().unwrap() >= 0.9, "{r}");
    assert_eq!(r["urgent_flagged"], r["urgent"]);
    assert!(r["confusion"].is_object());
    let (text, _, ok) = classify(&cfg, dir.path(), &["eval", &set]);
    assert!(ok);
    for want in ["accuracy:", "urgent flagged:", "false alarms:"] {
        assert!(text.contains(want), "{want} in {text}");
    }
    // A broken set is refused with its line.
    let bad = dir.path().join("bad.tsv");
    std::fs::write(&bad, "expected\turgent\ttext\nnoise\tmaybe\t太吵了\n").unwrap();
    let (_, err, ok) = classify(&cfg, dir.path(), &["eval", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("bad.tsv") && err.contains("line 2"), "{err}");
}

#[test]
fn crossval_measures_the_examples_clean_and_written_as_homophones() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config();
    let run = |args: &[&str]| {
        let (out, err, ok) = classify(&cfg, dir.path(), args);
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v
    };
    let clean = run(&["crossval"]);
    let misheard = run(&["crossval", "--misheard", "0.3"]);
    assert_eq!(clean["examples"], misheard["examples"]);
    assert!(clean["examples"].as_u64().unwrap() >= 300, "{clean}");
    assert_eq!(misheard["misheard"], 0.3);
    // Mis-hearing costs something, and the same seed gives the same figure.
    let (a, b) = (
        clean["accuracy"].as_f64().unwrap(),
        misheard["accuracy"].as_f64().unwrap(),
    );
    assert!(b < a && b > 0.5, "clean {a}, misheard {b}");
    assert_eq!(run(&["crossval", "--misheard", "0.3"])["accuracy"], b);
    let (_, err, ok) = classify(&cfg, dir.path(), &["crossval", "--misheard", "1.5"]);
    assert!(!ok && err.contains("--misheard"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_correction_changes_the_retrained_classification() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = config();
    let svc = TicketService::open(TicketConfig {
        db_path: dir.path().join("tickets.sqlite"),
        outbox_dir: dir.path().join("outbox"),
        classification_path: Some(PathBuf::from(format!("{REPO}/config/classification.toml"))),
        ..TicketConfig::default()
    })
    .unwrap();
    let text = "小区对面那条街能不能画一条斑马线";
    let first = svc
        .create(facts("c1", "13800000001", text, None, 0))
        .await
        .unwrap();
    let before = first.classification.category_id.clone();
    let target = if before == "traffic" {
        "education"
    } else {
        "traffic"
    };
    // The desk's PATCH records the operator's choice.
    let c = svc
        .store()
        .record_correction(
            &first.ticket_id.to_string(),
            target,
            "operator-7",
            chrono::Utc::now(),
        )
        .unwrap();
    assert_eq!(c.text, text);
    assert_eq!(svc.store().corrections().unwrap(), vec![c]);

    // The command sees it: `text` folds the store in, `--no-corrections` does not.
    let (out, err, ok) = classify(&cfg_path, dir.path(), &["text", text]);
    assert!(ok, "{err}");
    assert_eq!(json_lines(&out)[0]["category_id"], target, "{out}");
    let (out, _, _) = classify(&cfg_path, dir.path(), &["--no-corrections", "text", text]);
    assert_eq!(json_lines(&out)[0]["category_id"], before.as_str());
    let (out, err, ok) = classify(&cfg_path, dir.path(), &["retrain"]);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["corrections_used"], 1, "{r}");
    assert_eq!(r["agree_with_operators_before"], 0, "{r}");
    assert_eq!(r["agree_with_operators_after"], 1, "{r}");

    // The running service learns it on reload (SIGHUP), not before.
    let again = svc
        .create(facts("c2", "13800000002", text, None, 60))
        .await
        .unwrap();
    assert_eq!(again.classification.category_id, before);
    svc.reload_rules(Some(&PathBuf::from(format!(
        "{REPO}/config/classification.toml"
    ))))
    .unwrap();
    let after = svc
        .create(facts("c3", "13800000003", text, None, 120))
        .await
        .unwrap();
    assert_eq!(after.classification.category_id, target);
}
