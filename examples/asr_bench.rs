//! Try transcription settings on any WAV files after a telephone round trip: prints each file's
//! text, language and speed.
//!
//! `cargo run --example asr_bench -- [--model PATH] [--threads N] [--full-ctx] [--margin N]
//! [--lang L] [--prompt TEXT | --no-prompt] [--concat] WAV...`
//!
//! For tuning, not for figures: `benches/asr.rs` measures the gateway's settings on fixed
//! messages (RTF, hang-up → transcript). This one takes any recordings and the knobs the bench
//! keeps fixed (encoder window and its margin, initial prompt, threads), to see what a change
//! does to the text as well as the time before making it the default.

use std::path::PathBuf;
use std::sync::Arc;

use hotline_gateway::asr::{audio, AsrConfig, AsrPool};
use hotline_gateway::media::Codec;

fn main() {
    let mut cfg = AsrConfig {
        workers: 1,
        threads_per_worker: 2,
        ..AsrConfig::default()
    };
    let mut lang = "zh".to_string();
    let mut files = Vec::new();
    let mut concat = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--model" => cfg.model_path = PathBuf::from(args.next().expect("path")),
            "--threads" => cfg.threads_per_worker = args.next().expect("n").parse().expect("n"),
            "--full-ctx" => cfg.audio_ctx_margin = None,
            "--margin" => cfg.audio_ctx_margin = Some(args.next().expect("n").parse().expect("n")),
            "--lang" => lang = args.next().expect("lang"),
            "--concat" => concat = true,
            "--no-prompt" => cfg.initial_prompts.clear(),
            "--prompt" => {
                cfg.initial_prompts
                    .insert("zh".into(), args.next().expect("prompt"));
            }
            _ => files.push(PathBuf::from(a)),
        }
    }
    let pool = AsrPool::start(cfg).expect("pool");
    let mut jobs: Vec<(String, Vec<i16>, String)> = Vec::new();
    for f in files {
        let back = audio::telephone_round_trip(&f, Codec::Pcmu)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let l = if name.contains("_en_") {
            "en"
        } else {
            lang.as_str()
        };
        if concat && !jobs.is_empty() {
            // One longer message: the pieces with half a second of pause between them.
            let (n, pcm, _) = jobs.last_mut().expect("non-empty");
            n.push('+');
            n.push_str(&name);
            pcm.extend(std::iter::repeat_n(0, 4000));
            pcm.extend_from_slice(&back);
        } else {
            jobs.push((name, back, l.to_string()));
        }
    }
    for (name, pcm, l) in jobs {
        let t = pool
            .submit(Arc::from(pcm), &l)
            .expect("queue")
            .blocking_recv()
            .expect("reply");
        println!(
            "{}\t{}\taudio_ms={}\telapsed_ms={}\trtf={:.2}\t{}\t{:?}",
            name,
            t.language,
            t.audio_ms,
            t.elapsed_ms,
            t.elapsed_ms as f64 / t.audio_ms as f64,
            t.text,
            t.empty_reason.map(|r| r.to_string())
        );
    }
}
