//! The classifier against the held-out requests (tests/data/classify/heldout.tsv, written
//! and committed before any tuning, never shared with the training examples): category
//! accuracy, every urgent request flagged, at most one false alarm in fifty ordinary ones;
//! the fixed cases of issue 17; negation and confidence.

use hotline_gateway::ticket::classify::evaluate::{
    cross_validate, evaluate, parse_examples, parse_labelled,
};
use hotline_gateway::ticket::Rules;
use std::path::Path;

fn heldout() -> Vec<hotline_gateway::ticket::classify::evaluate::Labelled> {
    labelled("heldout.tsv")
}

fn labelled(name: &str) -> Vec<hotline_gateway::ticket::classify::evaluate::Labelled> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/classify")
        .join(name);
    parse_labelled(&std::fs::read_to_string(&path).unwrap(), &path).unwrap()
}

/// One line per mistake, for failure messages.
fn mistakes_of(r: &hotline_gateway::ticket::classify::evaluate::Report) -> String {
    r.mistakes
        .iter()
        .map(|m| format!("{} → {} {}", m.expected, m.got, m.text))
        .collect::<Vec<_>>()
        .join("\n")
}

fn shipped() -> Rules {
    Rules::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/classification.toml"
    )))
    .expect("shipped table and examples load")
}

#[test]
fn heldout_accuracy_urgent_hits_and_false_alarms_meet_the_targets() {
    let set = heldout();
    assert!(set.len() >= 100, "held-out set has {} requests", set.len());
    let rules = shipped();
    let r = evaluate(&rules, &set);
    let mistakes = mistakes_of(&r);
    assert!(
        r.accuracy >= 0.90,
        "accuracy {:.3}; mistakes:\n{mistakes}",
        r.accuracy
    );
    assert!(r.urgent >= 10 && r.ordinary >= 50);
    assert_eq!(
        r.urgent_flagged, r.urgent,
        "urgent requests missed:\n{mistakes}"
    );
    assert!(
        r.false_alarms * 50 <= r.ordinary,
        "{} false alarms in {} ordinary requests",
        r.false_alarms,
        r.ordinary
    );
    // Keywords alone (the table without its model) do much worse on the same requests:
    // the model is what generalises.
    let rules_only = evaluate(&rules.rules_only(), &set);
    assert!(
        rules_only.accuracy + 0.1 < r.accuracy,
        "{}",
        rules_only.accuracy
    );
}

/// The held-out requests spoken by a Kokoro voice through a real call and transcribed by
/// Whisper base (the transcripts are kept: re-running Whisper is an hour, BENCHMARKS.md §7):
/// all 124 with the shipped greedy decoding, and 21 of them also with beam 5 and the table's
/// words.
#[test]
fn transcripts_from_the_phone_path_are_routed_right_at_85_percent() {
    let rules = shipped();
    for (file, rows) in [
        ("phone-heldout-greedy.tsv", 124),
        ("phone-whisper-base-greedy.tsv", 21),
        ("phone-whisper-base.tsv", 21),
    ] {
        let set = labelled(file);
        assert_eq!(set.len(), rows, "{file}");
        let r = evaluate(&rules, &set);
        let mistakes = mistakes_of(&r);
        assert!(
            r.accuracy >= 0.85,
            "{file}: accuracy {:.3}; mistakes:\n{mistakes}",
            r.accuracy
        );
        assert!(r.false_alarms * 50 <= r.ordinary, "{file}: {mistakes}");
        if rows == 124 {
            // Not every urgent request survives the transcriber (BENCHMARKS.md §7: two are
            // unreadable, two need two-character sound matches); these 13 of 17 must stay,
            // among them "然气泄露" (露 read lòu, as in 泄漏).
            assert!(
                r.urgent == 17 && r.urgent_flagged >= 13,
                "{file}: {mistakes}"
            );
        }
    }
    // How a homophone still finds its category: the keyword by its sound, and the ticket
    // shows what was heard (phrasings of our own, not in the held-out set).
    for (text, want, keyword, heard) in [
        ("孩子的幽儿圆乱收费", "education", "幼儿园", "幽儿圆"),
        (
            "小区的路等坏了好几天",
            "street_lights_roads",
            "路灯",
            "路等",
        ),
    ] {
        let a = rules.assess(text, None);
        assert_eq!(a.category_id, want, "{a:?}");
        assert!(
            a.heard_as
                .contains(&(keyword.to_string(), heard.to_string())),
            "{a:?}"
        );
    }
}

/// Transcribers write homophones (the phone-path transcripts above: 13–16 % of characters):
/// cross-validated on the examples written that way, the classifier keeps most of its
/// clean-text accuracy (it fell from 74.5 % to 69.2 % at a rate of 0.15, and to 56 % at 0.3,
/// before keywords matched by sound).
#[test]
fn examples_written_as_homophones_are_still_routed() {
    let rules = shipped();
    let clean = cross_validate(&rules, 5, 0.0);
    let misheard = cross_validate(&rules, 5, 0.15);
    let heavy = cross_validate(&rules, 5, 0.3);
    assert!(clean.accuracy >= 0.70, "clean {:.3}", clean.accuracy);
    assert!(
        misheard.accuracy >= clean.accuracy - 0.03,
        "clean {:.3}, misheard at 0.15 {:.3}",
        clean.accuracy,
        misheard.accuracy
    );
    assert!(
        heavy.accuracy >= 0.65,
        "misheard at 0.3 {:.3}",
        heavy.accuracy
    );
}

#[test]
fn the_fixed_cases_of_the_issue() {
    let rules = Rules::builtin();
    for (text, want) in [
        ("工地晚上十二点了还在打桩", "noise"),
        ("街边的公共厕所又脏又臭", "sanitation"),
        ("我要投诉街道办事处的工作人员", "staff_conduct"),
        ("请问办理居住证需要哪些材料", "government_service"),
        ("家里的天然气突然打不着火了", "utilities"),
    ] {
        let a = rules.assess(text, None);
        assert_eq!(a.category_id, want, "{text}: {a:?}");
    }
    let stove = rules.assess("家里的天然气突然打不着火了", None);
    assert!(!stove.urgent, "打不着火 is not 着火: {stove:?}");
    assert!(stove.urgent_keywords.is_empty());
}

#[test]
fn no_heldout_request_is_a_training_example() {
    let rules = Rules::builtin();
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/classification/examples.tsv"
    ));
    let examples = parse_examples(&std::fs::read_to_string(path).unwrap(), path, &rules).unwrap();
    assert!(examples.len() >= 18 * 15);
    for l in heldout() {
        assert!(
            !examples.iter().any(|(_, t)| *t == l.text),
            "held-out request is also a training example: {}",
            l.text
        );
    }
}

#[test]
fn negated_and_mis_heard_urgent_words() {
    let rules = Rules::builtin();
    // Negations phrased unlike any example: not urgent, and the negated word is reported.
    for text in [
        "师傅检查过了，管子没有漏气",
        "不是着火，是邻居家在熏腊肉",
        "我家并没有闻到煤气味，就是想换个灶",
    ] {
        let a = rules.assess(text, None);
        assert!(!a.urgent, "{text}: {a:?}");
        assert!(!a.negated_urgent.is_empty(), "{text}: {a:?}");
    }
    // A worried question is no denial; a negation in an earlier clause does not reach.
    for text in [
        "我也不知道是不是漏气了，味道很怪",
        "我们都没事，可是厨房着火了",
    ] {
        assert!(rules.assess(text, None).urgent, "{text}");
    }
    // What the transcriber writes for 燃气泄漏 and 煤气味.
    let a = rules.assess("楼下好像然气泄漏了", None);
    assert!(a.urgent, "{a:?}");
    assert!(a
        .heard_as
        .contains(&("燃气泄漏".to_string(), "然气泄漏".to_string())));
    assert!(rules.assess("进门就闻到一股煤气位", None).urgent);
}

#[test]
fn confidence_says_when_a_person_should_look() {
    let rules = Rules::builtin();
    let clear = rules.assess("暖气片一点都不热，供暖公司也不来修", None);
    assert_eq!(clear.category_id, "heating");
    assert!(clear.confidence >= rules.review_threshold, "{clear:?}");
    assert!(!clear.needs_review);
    assert!(!clear.matched_keywords.is_empty());
    assert!(!clear.top_features.is_empty());
    // Nothing to go on: the default category, low confidence, review.
    let vague = rules.assess("嗯嗯", None);
    assert!(vague.needs_review, "{vague:?}");
    assert!(rules.assess("喂喂，听得到吗", None).needs_review);
    assert!(vague.confidence < rules.review_threshold);
    let empty = rules.assess("", None);
    assert_eq!(empty.category_id, "other");
    assert!(empty.needs_review);
    // The menu choice alone decides an empty transcript, still below a sure text.
    let menu_only = rules.assess("", Some("policy"));
    assert_eq!(menu_only.category_id, "policy");
    assert!(menu_only.confidence < clear.confidence);
    // Every probability is a probability.
    for a in [&clear, &vague, &empty, &menu_only] {
        assert!((0.0..=1.0).contains(&a.confidence));
        assert_eq!(a.needs_review, a.confidence < rules.review_threshold);
    }
}

#[test]
fn a_sure_text_outweighs_the_menu_and_a_vague_one_follows_it() {
    let rules = Rules::builtin();
    // Callers press "complaint" for anything; the text names the department.
    let a = rules.assess("楼上天天半夜装修，电钻吵得睡不着", Some("complaint"));
    assert_eq!(a.category_id, "noise");
    let b = rules.assess("你好，我想问一下", Some("policy"));
    assert_eq!(b.category_id, "policy");
}

#[test]
fn corrections_of_one_half_of_the_heldout_set_do_not_hurt_the_other() {
    use hotline_gateway::ticket::classify::Correction;
    let set = heldout();
    let (a, b): (Vec<_>, Vec<_>) = set
        .iter()
        .cloned()
        .enumerate()
        .partition(|(i, _)| i % 2 == 0);
    let a: Vec<_> = a.into_iter().map(|(_, l)| l).collect();
    let b: Vec<_> = b.into_iter().map(|(_, l)| l).collect();
    let rules = shipped();
    // Operators correct the tickets of half A that the classifier got wrong.
    let corrections: Vec<Correction> = a
        .iter()
        .filter(|l| rules.assess(&l.text, None).category_id != l.expected)
        .enumerate()
        .map(|(i, l)| Correction {
            ticket_id: format!("t{i}"),
            category_id: l.expected.clone(),
            text: l.text.clone(),
            by: "operator".into(),
            at: chrono::Utc::now(),
        })
        .collect();
    let (retrained, skipped) = rules.with_corrections(&corrections);
    assert_eq!(skipped, 0);
    let (before_a, after_a) = (evaluate(&rules, &a), evaluate(&retrained, &a));
    let (before_b, after_b) = (evaluate(&rules, &b), evaluate(&retrained, &b));
    println!(
        "corrections {}: half A {:.3} → {:.3}, half B (unseen) {:.3} → {:.3}",
        corrections.len(),
        before_a.accuracy,
        after_a.accuracy,
        before_b.accuracy,
        after_b.accuracy
    );
    // The corrected requests are now classified as the operators said.
    for c in &corrections {
        assert_eq!(
            retrained.assess(&c.text, None).category_id,
            c.category_id,
            "{}",
            c.text
        );
    }
    assert!(after_a.accuracy > before_a.accuracy);
    assert!(after_b.accuracy >= before_b.accuracy - 0.02);
}
