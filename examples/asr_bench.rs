//! Measure transcription speed and output on WAV files after a telephone round trip.
//!
//! `cargo run --example asr_bench -- [--model PATH] [--threads N] [--full-ctx] [--lang L] WAV...`
//! (`--full-ctx` disables the clip-sized encoder window to compare speed and text.)

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
        let mut r = hound::WavReader::open(&f).expect("wav");
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
