//! What the Whisper tests (`tests/asr_model.rs`) and the Whisper benchmark (`benches/asr.rs`)
//! share: where the model and the shared test speech are, the speech as a phone line delivers
//! it, and how transcripts are scored (CER for Mandarin, WER for English).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hotline_gateway::asr::{audio, guards::GuardConfig, AsrConfig, AsrPool, Transcript};
use hotline_gateway::media::Codec;

/// The manifest's name for a model file is the part between `ggml-` and `.bin`
/// (`ggml-tiny.en.bin` → `tiny.en`), which is also what `model fetch` takes.
pub fn model_name(file: &str) -> &str {
    file.trim_start_matches("ggml-").trim_end_matches(".bin")
}

/// Whether a missing model or speech folder must fail the test instead of skipping it: in CI
/// (`CI=true`, which CI services set) and wherever `HOTLINE_REQUIRE_MODEL=1`. A test that
/// passes without having run would tell CI nothing.
pub fn model_required() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
        || std::env::var("HOTLINE_REQUIRE_MODEL").as_deref() == Ok("1")
}

/// `models/<file>` of this checkout, or `None` after saying why it is skipped (a panic when
/// [`model_required`]).
pub fn model(file: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(file);
    if p.is_file() {
        Some(p)
    } else {
        assert!(
            !model_required(),
            "{} is required (CI or HOTLINE_REQUIRE_MODEL=1): run `models/fetch.sh {}`",
            p.display(),
            model_name(file)
        );
        eprintln!(
            "SKIP: {} absent (run `models/fetch.sh {}` to enable it)",
            p.display(),
            model_name(file)
        );
        None
    }
}

/// Every `models/ggml-*.bin` of this checkout, smallest first.
pub fn all_models() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ggml-") && n.ends_with(".bin"))
        })
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.len(), p)))
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// The shared speech folder: `HOTLINE_SPEECH_DIR`, `../shared/speech` beside the checkout, or
/// beside a git worktree's parent (`/work/wt/NAME`); `None` after saying why it is skipped.
pub fn speech_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("HOTLINE_SPEECH_DIR").map(PathBuf::from),
        Some(root.join("../shared/speech")),
        Some(root.join("../../shared/speech")),
    ];
    let found = candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("manifest.tsv").is_file());
    if found.is_none() {
        assert!(
            !model_required(),
            "shared speech folder (../shared/speech or HOTLINE_SPEECH_DIR) is required \
             (CI or HOTLINE_REQUIRE_MODEL=1)"
        );
        eprintln!("SKIP: shared speech folder absent (../shared/speech or HOTLINE_SPEECH_DIR)");
    }
    found
}

/// One line of `manifest.tsv`.
#[derive(Clone, Debug)]
pub struct Utterance {
    pub file: String,
    pub lang: String,
    pub reference: String,
}

pub fn manifest(dir: &Path) -> Vec<Utterance> {
    let text = std::fs::read_to_string(dir.join("manifest.tsv")).expect("manifest.tsv");
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split('\t');
            Some(Utterance {
                file: cols.next()?.to_string(),
                lang: cols.next()?.to_string(),
                reference: cols.next()?.to_string(),
            })
        })
        .collect()
}

/// The `held2` split (`tests/data/speech/held2`, reported only, never chosen on): (WAV path,
/// reference text) of each message, from its `texts.tsv` (file, voice, speed, text).
pub fn held2() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/speech/held2");
    let tsv = std::fs::read_to_string(dir.join("texts.tsv")).expect("held2/texts.tsv");
    tsv.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            Some((dir.join(cols.first()?), cols.get(3)?.to_string()))
        })
        .collect()
}

/// A 16 kHz WAV as the gateway records it from a caller: 8 kHz, µ-law, decoded back.
pub fn telephone(wav: &Path) -> Arc<[i16]> {
    audio::telephone_round_trip(wav, Codec::Pcmu)
        .unwrap_or_else(|e| panic!("{}: {e}", wav.display()))
        .into()
}

/// Half a second at 8 kHz: the pause a caller leaves between two sentences.
pub const PAUSE_SAMPLES: usize = 4000;

/// One longer message: the utterances' telephone audio with a pause between them, and the
/// reference text (the transcripts joined by a space).
pub fn message(dir: &Path, utterances: &[&Utterance]) -> (Arc<[i16]>, String) {
    let mut pcm: Vec<i16> = Vec::new();
    let mut text: Vec<&str> = Vec::new();
    for (i, u) in utterances.iter().enumerate() {
        if i > 0 {
            pcm.extend(std::iter::repeat_n(0, PAUSE_SAMPLES));
        }
        pcm.extend_from_slice(&telephone(&dir.join(&u.file)));
        text.push(&u.reference);
    }
    (pcm.into(), text.join(" "))
}

/// Chinese numerals for 0–9999, so "11点" and "十一点" score the same.
pub fn zh_number(mut n: u32) -> String {
    const D: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];
    if n == 0 {
        return "零".into();
    }
    let mut out = String::new();
    let units = [(1000, "千"), (100, "百"), (10, "十"), (1, "")];
    let mut zero_pending = false;
    for (u, name) in units {
        let d = n / u;
        n %= u;
        if d == 0 {
            zero_pending = !out.is_empty();
            continue;
        }
        if zero_pending {
            out.push('零');
            zero_pending = false;
        }
        // 十一 rather than 一十一 at the start.
        if !(u == 10 && d == 1 && out.is_empty()) {
            out.push(D[d as usize]);
        }
        out.push_str(name);
    }
    out
}

/// Characters that count for CER: hanzi and letters/digits, numbers spelled in hanzi.
pub fn normalise_zh(s: &str) -> Vec<char> {
    let mut out = String::new();
    let mut digits = String::new();
    for c in s.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if !digits.is_empty() {
            out.push_str(&zh_number(digits.parse().unwrap_or(0)));
            digits.clear();
        }
        if c.is_alphanumeric() {
            out.push(c);
        }
    }
    out.chars().collect()
}

pub fn normalise_en(s: &str) -> Vec<String> {
    const NUM: [&str; 11] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    s.to_lowercase()
        .replace("streetlight", "street light")
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(|w| match w.parse::<usize>() {
            Ok(n) if n <= 10 => NUM[n].to_string(),
            _ => w.to_string(),
        })
        .collect()
}

/// Levenshtein distance between two token sequences.
pub fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// CER for `zh`, WER otherwise, of `hyp` against `reference`.
pub fn error_rate(lang: &str, reference: &str, hyp: &str) -> f64 {
    if lang == "zh" {
        let (r, h) = (normalise_zh(reference), normalise_zh(hyp));
        edit_distance(&r, &h) as f64 / r.len() as f64
    } else {
        let (r, h) = (normalise_en(reference), normalise_en(hyp));
        edit_distance(&r, &h) as f64 / r.len() as f64
    }
}

/// "CER" or "WER", as `error_rate` scores `lang`.
pub fn error_kind(lang: &str) -> &'static str {
    if lang == "zh" {
        "CER"
    } else {
        "WER"
    }
}

/// A pool for tests: they check text, not speed, so a CI box busy with other builds must not
/// turn a slow pass into an empty transcript (the budget itself has its own test).
pub fn pool(
    model: PathBuf,
    workers: usize,
    threads: usize,
    queue: usize,
    guards: GuardConfig,
) -> AsrPool {
    AsrPool::start(pool_config(model, workers, threads, queue, guards)).expect("pool starts")
}

/// The settings [`pool`] starts with, for a test that changes one more.
pub fn pool_config(
    model: PathBuf,
    workers: usize,
    threads: usize,
    queue: usize,
    guards: GuardConfig,
) -> AsrConfig {
    AsrConfig {
        model_path: model,
        workers,
        threads_per_worker: threads,
        queue_depth: queue,
        time_budget: std::time::Duration::from_secs(600),
        guards,
        ..AsrConfig::default()
    }
}

pub fn transcribe(pool: &AsrPool, pcm: Arc<[i16]>, lang: &str) -> Transcript {
    pool.submit(pcm, lang)
        .expect("queue has room")
        .blocking_recv()
        .expect("worker replies")
}
