//! `hotline-gateway classify`: try the classifier on texts, measure it on a labelled set,
//! and retrain it with the operators' corrections, with the configuration's table and
//! ticket store, exactly as the daemon would classify.

use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::Config;
use crate::ticket::classify::evaluate::{self, Report};
use crate::ticket::classify::Correction;
use crate::ticket::fleet::corrections as fleet_corrections;
use crate::ticket::fleet::FleetConfig;
use crate::ticket::store::Store;
use crate::ticket::Rules;

#[derive(clap::Args, Debug)]
pub struct ClassifyArgs {
    #[arg(long, short, default_value = "config/hotline.toml")]
    config: PathBuf,
    /// Leave the operators' corrections in the ticket store out (examples only).
    #[arg(long, global = true)]
    no_corrections: bool,
    #[command(subcommand)]
    action: ClassifyAction,
}

#[derive(Subcommand, Debug)]
enum ClassifyAction {
    /// Classify each text; one JSON line per text (category_id, category, department,
    /// urgent, confidence, matched_keywords, and the rest of the evidence).
    Text {
        /// The caller's menu choice (option id), as evidence.
        #[arg(long)]
        menu: Option<String>,
        #[arg(required = true)]
        texts: Vec<String>,
    },
    /// Measure on a labelled set (header `expected<TAB>urgent<TAB>text`): accuracy, urgent
    /// hits and false alarms, the confusion, and every mistake.
    Eval {
        file: PathBuf,
        /// Keywords and menu only, as without a `[model]` (for comparison).
        #[arg(long)]
        rules_only: bool,
        /// Print the report as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Fold the operators' corrections into the model with the examples and report how the
    /// retrained model agrees with them (and, with `--eval`, the accuracy before and after).
    Retrain {
        #[arg(long)]
        eval: Option<PathBuf>,
    },
    /// k-fold cross-validation on the table's examples (tune here, not on a held-out set).
    Crossval {
        #[arg(long, default_value_t = 5)]
        folds: usize,
        /// Rate (0..1) at which the evaluated examples' characters are written as homophones,
        /// as the transcriber does: robustness to mis-hearing without the held-out set.
        #[arg(long, default_value_t = 0.0)]
        misheard: f64,
    },
}

pub fn run(args: ClassifyArgs) -> ExitCode {
    match execute(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn execute(args: ClassifyArgs) -> Result<(), String> {
    let cfg = Config::load(&args.config).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let base = load_rules(&cfg)?;
    let corrections = if args.no_corrections {
        Vec::new()
    } else {
        stored_corrections(&cfg)?
    };
    let (rules, _) = base.with_corrections(&corrections);
    match args.action {
        ClassifyAction::Text { menu, texts } => {
            for text in texts {
                let a = rules.assess(&text, menu.as_deref());
                let mut v = serde_json::to_value(&a).map_err(|e| e.to_string())?;
                v["text"] = text.into();
                println!("{v}");
            }
            Ok(())
        }
        ClassifyAction::Eval {
            file,
            rules_only,
            json,
        } => {
            let set = labelled(&file)?;
            let rules = if rules_only { base.rules_only() } else { rules };
            let report = evaluate::evaluate(&rules, &set);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
                );
            } else {
                print!("{}", describe(&report));
            }
            Ok(())
        }
        ClassifyAction::Retrain { eval } => {
            let summary = retrain(&base, &rules, &corrections, eval.as_deref())?;
            println!("{summary}");
            Ok(())
        }
        ClassifyAction::Crossval { folds, misheard } => {
            if !(0.0..=1.0).contains(&misheard) {
                return Err(format!("--misheard {misheard}: a rate between 0 and 1"));
            }
            // The examples carry no urgency: only the category figures mean anything.
            let r = evaluate::cross_validate(&base, folds, misheard);
            let v = serde_json::json!({
                "examples": r.requests,
                "folds": folds,
                "misheard": misheard,
                "accuracy": round3(r.accuracy),
                "needs_review": r.needs_review,
                "needs_review_wrong": r.needs_review_wrong,
                "wrong": r.requests - r.correct,
                "confusion": r.confusion,
            });
            println!("{v}");
            Ok(())
        }
    }
}

/// The configuration's table (`[tickets] classification`; empty: the built-in one).
fn load_rules(cfg: &Config) -> Result<Rules, String> {
    if cfg.tickets.classification.is_empty() {
        Ok(Rules::builtin())
    } else {
        Rules::load(Path::new(&cfg.tickets.classification)).map_err(|e| e.to_string())
    }
}

/// Corrections in the ticket store, and in a fleet (`[tickets] store = "postgres"`) the
/// shared store's too: the desks of a fleet write theirs there. An unreachable shared store
/// is an error here (a retrain that silently missed the fleet's corrections would mislead).
/// No local store yet: none of its own (it is not created).
fn stored_corrections(cfg: &Config) -> Result<Vec<Correction>, String> {
    let db = cfg.storage.ticket_db();
    let fleet = (cfg.tickets.store == "postgres").then(|| FleetConfig {
        url: cfg.tickets.url.clone(),
        ..Default::default()
    });
    if !db.exists() {
        return match &fleet {
            Some(f) => fleet_corrections::read_blocking(f).map_err(|e| e.to_string()),
            None => Ok(Vec::new()),
        };
    }
    let store = Store::open(&db).map_err(|e| e.to_string())?;
    fleet_corrections::gather(&store, fleet.as_ref(), true).map_err(|e| e.to_string())
}

fn labelled(file: &Path) -> Result<Vec<evaluate::Labelled>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    evaluate::parse_labelled(&text, file).map_err(|e| e.to_string())
}

fn retrain(
    base: &Rules,
    retrained: &Rules,
    corrections: &[Correction],
    eval: Option<&Path>,
) -> Result<serde_json::Value, String> {
    let agree = |r: &Rules| {
        corrections
            .iter()
            .filter(|c| !c.text.trim().is_empty())
            .filter(|c| r.assess(&c.text, None).category_id == c.category_id)
            .count()
    };
    let (examples, used) = retrained.trained_on();
    // Training alone (the segmenter's dictionary is loaded already): what a reload costs.
    let started = std::time::Instant::now();
    let _ = base.with_corrections(corrections);
    let train_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut v = serde_json::json!({
        "train_ms": round3(train_ms),
        "examples": examples,
        "corrections": corrections.len(),
        "corrections_used": used,
        "corrections_skipped": corrections.len() - used,
        "agree_with_operators_before": agree(base),
        "agree_with_operators_after": agree(retrained),
    });
    if let Some(file) = eval {
        let set = labelled(file)?;
        v["accuracy_before"] = round3(evaluate::evaluate(base, &set).accuracy).into();
        v["accuracy_after"] = round3(evaluate::evaluate(retrained, &set).accuracy).into();
    }
    Ok(v)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The report for a person.
fn describe(r: &Report) -> String {
    let mut s = format!(
        "accuracy: {}/{} = {:.1} %\nurgent flagged: {}/{}\nfalse alarms: {}/{} ordinary\nneeds review: {} ({} of them wrong)\ntime per request: {:.0} µs\n",
        r.correct,
        r.requests,
        100.0 * r.accuracy,
        r.urgent_flagged,
        r.urgent,
        r.false_alarms,
        r.ordinary,
        r.needs_review,
        r.needs_review_wrong,
        r.micros_per_request,
    );
    if !r.confusion.is_empty() {
        s.push_str("confusion (expected → got):\n");
        for (pair, n) in &r.confusion {
            s.push_str(&format!("  {pair}: {n}\n"));
        }
    }
    if !r.mistakes.is_empty() {
        s.push_str("mistakes:\n");
        for m in &r.mistakes {
            s.push_str(&format!(
                "  {} → {} ({:.2}){}  {}\n",
                m.expected,
                m.got,
                m.confidence,
                match (m.expected_urgent, m.urgent) {
                    (true, false) => " URGENT MISSED",
                    (false, true) => " FALSE ALARM",
                    _ => "",
                },
                m.text
            ));
        }
    }
    s
}
