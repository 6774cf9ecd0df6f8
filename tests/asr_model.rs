//! ASR end to end on the real model: the shared test utterances after a telephone round trip
//! (16 kHz → 8 kHz → G.711 µ-law → 8 kHz PCM), through the worker pool.
//!
//! Gated: needs `models/ggml-base.bin` (CI runs `models/fetch.sh base` first) and the shared
//! speech folder (`../shared/speech`, or HOTLINE_SPEECH_DIR); each test prints why it skipped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use hotline_gateway::asr::{audio, AsrConfig, AsrPool, EmptyReason, Transcript};
use hotline_gateway::media::Codec;

fn model_path() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ggml-base.bin");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "SKIP: {} absent (run models/fetch.sh base to enable the model tests)",
            p.display()
        );
        None
    }
}

fn speech_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("HOTLINE_SPEECH_DIR").map(PathBuf::from),
        Some(root.join("../shared/speech")),
        // A git worktree one level further down (/work/wt/NAME).
        Some(root.join("../../shared/speech")),
    ];
    let found = candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("manifest.tsv").is_file());
    if found.is_none() {
        eprintln!("SKIP: shared speech folder absent (../shared/speech or HOTLINE_SPEECH_DIR)");
    }
    found
}

/// Model tests take turns: each runs Whisper on two threads, and libtest would otherwise run
/// them all at once on a 2-core box, timing each other out.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

fn pool(model: PathBuf, workers: usize, threads: usize, queue: usize) -> AsrPool {
    AsrPool::start(AsrConfig {
        model_path: model,
        workers,
        threads_per_worker: threads,
        queue_depth: queue,
        // Tests check text, not speed; a CI box busy with other builds must not turn a slow
        // pass into an empty transcript (the budget itself has its own test).
        time_budget: std::time::Duration::from_secs(600),
        ..AsrConfig::default()
    })
    .expect("pool starts")
}

/// A 16 kHz WAV as it would arrive from a caller: 8 kHz µ-law, decoded back to PCM.
fn telephone(wav: &Path) -> Arc<[i16]> {
    let mut r = hound::WavReader::open(wav).expect("wav");
    assert_eq!(r.spec().sample_rate, 16000, "{}", wav.display());
    let x: Vec<f32> = r
        .samples::<i16>()
        .map(|s| s.expect("sample") as f32 / 32768.0)
        .collect();
    let pcm: Vec<i16> = audio::downsample_16k_to_8k(&x)
        .into_iter()
        .map(|v| (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect();
    let mut ulaw = vec![0u8; pcm.len()];
    Codec::Pcmu.encode(&pcm, &mut ulaw);
    let mut back = vec![0i16; pcm.len()];
    Codec::Pcmu.decode(&ulaw, &mut back);
    back.into()
}

fn transcribe(pool: &AsrPool, pcm: Arc<[i16]>, lang: &str) -> Transcript {
    pool.submit(pcm, lang)
        .expect("queue has room")
        .blocking_recv()
        .expect("worker replies")
}

/// Chinese numerals for 0–9999, so "11点" and "十一点" score the same.
fn zh_number(mut n: u32) -> String {
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
fn normalise_zh(s: &str) -> Vec<char> {
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

fn normalise_en(s: &str) -> Vec<String> {
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

fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
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

fn error_rate(lang: &str, reference: &str, hyp: &str) -> f64 {
    if lang == "zh" {
        let (r, h) = (normalise_zh(reference), normalise_zh(hyp));
        edit_distance(&r, &h) as f64 / r.len() as f64
    } else {
        let (r, h) = (normalise_en(reference), normalise_en(hyp));
        edit_distance(&r, &h) as f64 / r.len() as f64
    }
}

/// Words a ticket must carry for the operator to route it, per test file.
fn key_words(file: &str) -> &'static [&'static str] {
    match file {
        "dev_en_01_streetlight.wav" => &["street", "broken"],
        "dev_en_02_heating.wav" => &["heating", "apartment"],
        "dev_en_03_pothole.wav" => &["pothole", "main street"],
        // 路灯 comes out as 路都 with base on this synthetic voice (also at 16 kHz, full
        // window): the model's limit, not something to tune the test around.
        "dev_zh_01_streetlight.wav" => &["坏了", "晚上很黑"],
        "dev_zh_02_heating.wav" => &["暖气"],
        "dev_zh_03_construction_noise.wav" => &["施工", "噪音"],
        "dev_zh_04_pothole.wav" => &["路口", "大坑"],
        "dev_zh_05_social_insurance.wav" => &["社会保险"],
        _ => &[],
    }
}

#[test]
fn number_normalisation_spells_digits_as_hanzi() {
    assert_eq!(zh_number(11), "十一");
    assert_eq!(zh_number(3), "三");
    assert_eq!(zh_number(105), "一百零五");
    assert_eq!(
        normalise_zh("晚上11点，3天。"),
        "晚上十一点三天".chars().collect::<Vec<_>>()
    );
    assert_eq!(normalise_en("For 3 days."), vec!["for", "three", "days"]);
}

#[test]
fn test_utterances_transcribe_with_key_words_and_bounded_error() {
    let (Some(model), Some(dir)) = (model_path(), speech_dir()) else {
        return;
    };
    let _turn = turn();
    // One worker with two threads: the latency of one message on this 2-core box.
    let pool = pool(model, 1, 2, 4);
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).expect("manifest");
    let (mut zh_errors, mut en_errors) = (Vec::new(), Vec::new());
    let (mut total_audio, mut total_elapsed) = (0u64, 0u64);
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, lang, reference) = (cols[0], cols[1], cols[2]);
        let pcm = telephone(&dir.join(file));
        let started = Instant::now();
        let t = transcribe(&pool, pcm, lang);
        let wall = started.elapsed().as_millis();
        let er = error_rate(lang, reference, &t.text);
        eprintln!(
            "{file}: {lang} {:.2} ({}) audio {} ms, elapsed {} ms (wall {wall} ms), RTF {:.2}: {:?}",
            er,
            if lang == "zh" { "CER" } else { "WER" },
            t.audio_ms,
            t.elapsed_ms,
            t.elapsed_ms as f64 / t.audio_ms as f64,
            t.text
        );
        total_audio += t.audio_ms;
        total_elapsed += t.elapsed_ms;
        assert!(t.empty_reason.is_none(), "{file}: {:?}", t.empty_reason);
        for w in key_words(file) {
            assert!(
                t.text.to_lowercase().contains(w),
                "{file}: {w:?} missing in {:?}",
                t.text
            );
        }
        // Segments lie inside the message, in order, with a confidence.
        let mut last = 0;
        for s in &t.segments {
            assert!(s.start_ms >= last && s.start_ms <= s.end_ms && s.end_ms <= t.audio_ms);
            assert!((0.0..=1.0).contains(&s.confidence));
            last = s.start_ms;
        }
        if lang == "zh" {
            // Simplified output: none of the Traditional forms of these sentences' characters.
            assert!(
                !t.text
                    .chars()
                    .any(|c| "燈壞氣從開們區裡請險諮詢繳納員靈業".contains(c)),
                "{file}: Traditional characters in {:?}",
                t.text
            );
            zh_errors.push(er);
        } else {
            en_errors.push(er);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    eprintln!(
        "mean CER zh {:.3}, mean WER en {:.3}, overall RTF {:.2}",
        mean(&zh_errors),
        mean(&en_errors),
        total_elapsed as f64 / total_audio as f64
    );
    assert_eq!(zh_errors.len(), 5);
    assert_eq!(en_errors.len(), 3);
    assert!(mean(&zh_errors) <= 0.20, "zh CER {:.3}", mean(&zh_errors));
    assert!(
        zh_errors.iter().all(|&e| e <= 0.35),
        "zh CERs {zh_errors:?}"
    );
    assert!(mean(&en_errors) <= 0.20, "en WER {:.3}", mean(&en_errors));
}

#[test]
fn silence_and_noise_give_an_empty_transcript_with_a_reason() {
    let Some(model) = model_path() else { return };
    let _turn = turn();
    let pool = pool(model, 1, 2, 4);
    let silence: Arc<[i16]> = vec![0i16; 8000 * 8].into();
    let mut state = 0x9e37_79b9u32;
    // White noise at about -30 dBFS, the hiss of a bad line.
    let noise: Arc<[i16]> = (0..8000 * 8)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            ((state as f32 / u32::MAX as f32 - 0.5) * 2000.0) as i16
        })
        .collect::<Vec<_>>()
        .into();
    for (what, pcm) in [("silence", silence), ("noise", noise)] {
        for lang in ["zh", "en"] {
            let t = transcribe(&pool, pcm.clone(), lang);
            eprintln!("{what}/{lang}: {:?}", t.empty_reason);
            assert_eq!(t.text, "", "{what}/{lang} produced text");
            assert!(t.segments.is_empty());
            assert!(t.empty_reason.is_some(), "{what}/{lang}: no reason");
            // Digital silence must not even reach the model; line hiss may pass the VAD,
            // and then the guards must drop what Whisper makes of it.
            if what == "silence" {
                assert_eq!(t.empty_reason, Some(EmptyReason::NoSpeech), "{what}/{lang}");
            }
            assert_eq!(t.audio_ms, 8000);
        }
    }
}

#[test]
fn a_full_queue_hands_the_audio_back() {
    let (Some(model), Some(dir)) = (model_path(), speech_dir()) else {
        return;
    };
    let _turn = turn();
    let pool = pool(model, 1, 2, 1);
    let pcm = telephone(&dir.join("dev_en_03_pothole.wav"));
    // One job running, one queued; the queue then has no room.
    let mut accepted = Vec::new();
    let mut rejected = None;
    for _ in 0..3 {
        match pool.submit(pcm.clone(), "en") {
            Ok(rx) => accepted.push(rx),
            Err(full) => {
                rejected = Some(full);
                break;
            }
        }
    }
    let full = rejected.expect("third submission is rejected");
    assert!(Arc::ptr_eq(&full.pcm_8k, &pcm), "the same audio comes back");
    assert!(accepted.len() <= 2);
    for rx in accepted {
        let t = rx.blocking_recv().expect("accepted jobs complete");
        assert!(t.text.to_lowercase().contains("pothole"), "{:?}", t.text);
    }
}

#[test]
fn the_time_budget_stops_whisper_and_says_so() {
    let (Some(model), Some(dir)) = (model_path(), speech_dir()) else {
        return;
    };
    let _turn = turn();
    let pool = AsrPool::start(AsrConfig {
        model_path: model,
        workers: 1,
        threads_per_worker: 2,
        // Far less than one encoder pass takes.
        time_budget: std::time::Duration::from_millis(1),
        ..AsrConfig::default()
    })
    .expect("pool starts");
    let t = transcribe(&pool, telephone(&dir.join("dev_zh_02_heating.wav")), "zh");
    assert_eq!(t.text, "");
    assert_eq!(t.empty_reason, Some(EmptyReason::TimeBudget(1)));
    assert_eq!(
        t.empty_reason.map(|r| r.to_string()).as_deref(),
        Some("time_budget:1ms")
    );
}

#[test]
fn auto_language_detects_english_when_configured() {
    let (Some(model), Some(dir)) = (model_path(), speech_dir()) else {
        return;
    };
    let _turn = turn();
    let pool = pool(model, 1, 2, 4);
    let t = transcribe(&pool, telephone(&dir.join("dev_en_03_pothole.wav")), "auto");
    assert_eq!(t.language, "en");
    assert!(t.text.to_lowercase().contains("pothole"), "{:?}", t.text);
    let json = serde_json::to_value(&t).expect("serialises");
    assert_eq!(json["language"], "en");
    assert!(json["empty_reason"].is_null());
    assert_eq!(
        json["segments"][0]["text"].as_str().map(|s| !s.is_empty()),
        Some(true)
    );
}
