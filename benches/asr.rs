//! Whisper speed on the gateway's own path: real-time factor and hang-up → transcript latency
//! of a caller's message of about 10 s, for every model in `models/`.
//!
//! Run: `cargo bench --bench asr` (all of `models/ggml-*.bin`; add `-- tiny.en` or `-- base/zh`
//! for one). Each benchmark iteration is one message through [`AsrPool`] (1 worker, 2 ggml
//! threads), from `submit` to the transcript in hand: after the caller hangs up, the gateway
//! submits the recorded message, so this is the hang-up → transcript latency of an idle pool,
//! and divided by the message's length it is the real-time factor (RTF). The messages are the
//! shared test utterances after the 8 kHz µ-law round trip (`asr::audio::telephone_round_trip`)
//! joined with half-second pauses: Mandarin `dev_zh_02` + `dev_zh_03` (multilingual models) and
//! the three English ones (every model; the only one for `.en` models, so tiny.en and base are
//! compared on the same audio).
//!
//! A transcription takes seconds, so each of the 10 samples is a single iteration (criterion's
//! "Unable to complete 10 samples" warning is expected) after one warm-up iteration, which also
//! shows the text and its error rate. Throughput is in milliseconds of audio
//! (`elem/s` = audio ms per second: RTF = 1000 / that); the summary line after each benchmark
//! prints the RTF and latency directly. Whisper's time dwarfs criterion's, so the wall time of the
//! ~11 transcriptions per benchmark is the run time: about 15 s for tiny.en, 1–2.5 minutes for base
//! (both messages) on the 2-core dev box. Without a model or the speech folder it says what it
//! skipped and exits 0 (CI only builds benches).
//!
//! Finding the speech: `HOTLINE_SPEECH_DIR`, or `../shared/speech` beside the checkout (or beside
//! a git worktree's parent). `HOTLINE_ASR_BENCH_THREADS=1` measures one ggml thread instead of
//! two: the gateway's default (`[asr] workers` = one per core, `threads_per_worker = 1`) gives a
//! message one thread so that two messages run at once.

#[path = "../tests/asr_common/mod.rs"]
mod asr_common;

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use asr_common::{error_kind, error_rate, manifest, message, model_name, Utterance};
use criterion::{Criterion, SamplingMode, Throughput};
use hotline_gateway::asr::{AsrConfig, AsrPool, Transcript};

/// The Mandarin message: two complaints, about 14 s with the pause.
const ZH_FILES: [&str; 2] = ["dev_zh_02_heating.wav", "dev_zh_03_construction_noise.wav"];

struct Message {
    lang: &'static str,
    pcm: Arc<[i16]>,
    reference: String,
}

impl Message {
    fn audio_ms(&self) -> u64 {
        self.pcm.len() as u64 * 1000 / 8000
    }

    fn load(dir: &Path, lang: &'static str, pick: impl Fn(&Utterance) -> bool) -> Option<Self> {
        let all = manifest(dir);
        let chosen: Vec<&Utterance> = all.iter().filter(|u| pick(u)).collect();
        if chosen.is_empty() {
            println!("asr bench: no {lang} utterances in {}", dir.display());
            return None;
        }
        let (pcm, reference) = message(dir, &chosen);
        Some(Message {
            lang,
            pcm,
            reference,
        })
    }
}

/// One run: wall time from `submit` to the transcript, and the transcript.
type Run = (Duration, Transcript);

fn run_once(pool: &AsrPool, m: &Message) -> Run {
    let started = Instant::now();
    let t = pool
        .submit(m.pcm.clone(), m.lang)
        .expect("idle pool has room")
        .blocking_recv()
        .expect("worker replies");
    (started.elapsed(), t)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// What the runs of one benchmark say, in the units BENCHMARKS.md quotes.
fn summarise(id: &str, m: &Message, runs: &[Run]) {
    let Some((_, first)) = runs.first() else {
        return; // filtered out
    };
    let er = error_rate(m.lang, &m.reference, &first.text);
    println!(
        "{id}: {} {er:.3}, text {:?}{}",
        error_kind(m.lang),
        first.text,
        first
            .empty_reason
            .as_ref()
            .map(|r| format!(" (EMPTY: {r}: the figures below are not a transcription's)"))
            .unwrap_or_default()
    );
    // The first run is criterion's warm-up; the rest are its samples.
    let timed = if runs.len() > 1 { &runs[1..] } else { runs };
    let audio_s = m.audio_ms() as f64 / 1000.0;
    let walls: Vec<f64> = timed.iter().map(|(d, _)| d.as_secs_f64()).collect();
    let whisper: Vec<f64> = timed
        .iter()
        .map(|(_, t)| t.elapsed_ms as f64 / 1000.0)
        .collect();
    let (lo, hi) = walls
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), &w| (lo.min(w), hi.max(w)));
    let each: Vec<String> = walls.iter().map(|w| format!("{w:.2}")).collect();
    let wall = median(walls);
    let texts = if runs.iter().all(|(_, t)| t.text == first.text) {
        "same text in every run".to_string()
    } else {
        let mut distinct: Vec<&str> = runs.iter().map(|(_, t)| t.text.as_str()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        format!("{} different texts", distinct.len())
    };
    println!(
        "{id}: {audio_s:.2} s message, {} runs: submit → transcript median {wall:.2} s \
         [{lo:.2}, {hi:.2}], RTF {:.3} [{:.3}, {:.3}] (engine alone median {:.2} s); {texts}; each run (s): {}",
        timed.len(),
        wall / audio_s,
        lo / audio_s,
        hi / audio_s,
        median(whisper),
        each.join(" "),
    );
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    let Some(dir) = asr_common::speech_dir() else {
        println!(
            "asr bench: SKIPPED all: the shared speech folder was not found \
             (../shared/speech beside the checkout, or set HOTLINE_SPEECH_DIR)"
        );
        return;
    };
    let models = asr_common::all_models();
    if models.is_empty() {
        println!(
            "asr bench: SKIPPED all: no models/ggml-*.bin \
             (run `models/fetch.sh base` and/or `models/fetch.sh tiny.en`)"
        );
        return;
    }
    let threads: usize = match std::env::var("HOTLINE_ASR_BENCH_THREADS") {
        Ok(v) => match v.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                println!("asr bench: HOTLINE_ASR_BENCH_THREADS={v:?} is not a thread count");
                std::process::exit(2);
            }
        },
        Err(_) => 2,
    };
    let zh = Message::load(&dir, "zh", |u| ZH_FILES.contains(&u.file.as_str()));
    let en = Message::load(&dir, "en", |u| u.lang == "en");
    for model in models {
        let file = model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = model_name(&file).to_string();
        let pool = match AsrPool::start(AsrConfig {
            model_path: model.clone(),
            workers: 1,
            threads_per_worker: threads,
            queue_depth: 1,
            // Measure however long it takes; the production budget would turn a slow run
            // into a fast empty one.
            time_budget: Duration::from_secs(600),
            ..AsrConfig::default()
        }) {
            Ok(p) => p,
            Err(e) => {
                println!("asr bench: SKIPPED {}: {e}", model.display());
                continue;
            }
        };
        let english_only = name.ends_with(".en");
        let messages = [zh.as_ref().filter(|_| !english_only), en.as_ref()];
        let mut group = c.benchmark_group(format!("asr/{name}"));
        group.sampling_mode(SamplingMode::Flat);
        for m in messages.into_iter().flatten() {
            let secs = m.audio_ms() as f64 / 1000.0;
            let id = format!("{}_{secs:.1}s_{threads}threads", m.lang);
            group.throughput(Throughput::Elements(m.audio_ms()));
            let runs: RefCell<Vec<Run>> = RefCell::new(Vec::new());
            group.bench_function(&id, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let run = run_once(&pool, m);
                        total += run.0;
                        runs.borrow_mut().push(run);
                    }
                    total
                })
            });
            summarise(&format!("asr/{name}/{id}"), m, &runs.into_inner());
        }
        group.finish();
    }
    c.final_summary();
}
