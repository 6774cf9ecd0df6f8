//! Cost of the per-packet DSP (G.711, end-pointing) and of the off-path resampler.
//!
//! Run: `cargo bench --bench dsp -- --warm-up-time 1 --measurement-time 2`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hotline_gateway::media::resample::{resample, Upsampler2x};
use hotline_gateway::media::vad::{Endpointer, EndpointerConfig};
use hotline_gateway::media::{Codec, FRAME_SAMPLES, SAMPLE_RATE};
use std::hint::black_box;
use std::time::Duration;

/// A 20 ms frame of speech-like level: a 440 Hz tone at about -12 dBFS.
fn frame() -> [i16; FRAME_SAMPLES] {
    let mut f = [0i16; FRAME_SAMPLES];
    for (i, s) in f.iter_mut().enumerate() {
        let t = i as f32 / SAMPLE_RATE as f32;
        *s = (8000.0 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()) as i16;
    }
    f
}

fn g711(c: &mut Criterion) {
    let pcm = frame();
    let mut group = c.benchmark_group("g711_frame");
    group.throughput(Throughput::Elements(FRAME_SAMPLES as u64));
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let name = codec.encoding_name();
        let mut payload = [0u8; FRAME_SAMPLES];
        group.bench_function(format!("encode_{name}"), |b| {
            b.iter(|| codec.encode(black_box(&pcm), black_box(&mut payload)))
        });
        codec.encode(&pcm, &mut payload);
        let mut out = [0i16; FRAME_SAMPLES];
        group.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| codec.decode(black_box(&payload), black_box(&mut out)))
        });
    }
    group.finish();
}

fn resampling(c: &mut Criterion) {
    let one_second: Vec<f32> = (0..SAMPLE_RATE as usize)
        .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 8000.0).sin() * 0.5)
        .collect();
    let mut group = c.benchmark_group("resample_1s");
    group.throughput(Throughput::Elements(one_second.len() as u64));
    group.bench_function("resample_8k_to_16k", |b| {
        b.iter(|| resample(black_box(&one_second), 8000, 16000))
    });
    let mut up = Upsampler2x::new();
    let mut out = Vec::with_capacity(2 * one_second.len());
    group.bench_function("upsampler2x_8k_to_16k", |b| {
        b.iter(|| {
            out.clear();
            up.process(black_box(&one_second), &mut out);
            up.finish(&mut out);
            black_box(out.len())
        })
    });
    let at_44k1 = resample(&one_second, 8000, 44100);
    group.bench_function("resample_44k1_to_8k", |b| {
        b.iter(|| resample(black_box(&at_44k1), 44100, 8000))
    });
    group.finish();
}

fn endpointer(c: &mut Criterion) {
    let cfg = EndpointerConfig {
        speech_threshold_dbfs: -40.0,
        trailing_silence: Duration::from_millis(800),
        // Never ends during the benchmark: every frame does the full work.
        no_speech_timeout: Duration::from_secs(1 << 40),
    };
    let speech = frame();
    let mut ep = Endpointer::new(cfg);
    c.bench_function("endpointer_push_frame", |b| {
        b.iter(|| black_box(ep.push_frame(black_box(&speech))))
    });
}

criterion_group!(benches, g711, resampling, endpointer);
criterion_main!(benches);
