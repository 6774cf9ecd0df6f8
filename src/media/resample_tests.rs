use super::*;
use std::f64::consts::PI;

fn sine(freq: f64, rate: u32, secs: f64, amp: f64) -> Vec<f32> {
    let n = (secs * f64::from(rate)).round() as usize;
    (0..n)
        .map(|i| (amp * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()) as f32)
        .collect()
}

/// The middle of a signal, away from the zero-padded edges where the filter ramps.
fn middle(x: &[f32], rate: u32) -> &[f32] {
    let skip = (rate / 10) as usize; // 100 ms
    &x[skip..x.len() - skip]
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64).sqrt()
}

/// Amplitude of the `freq` component (projection on sin/cos over a whole number of cycles).
fn amplitude_at(x: &[f32], rate: u32, freq: f64) -> f64 {
    let period = f64::from(rate) / freq;
    let cycles = (x.len() as f64 / period).floor();
    let n = (cycles * period).round() as usize;
    let (mut c, mut s) = (0.0, 0.0);
    for (i, &v) in x[..n].iter().enumerate() {
        let ph = 2.0 * PI * freq * i as f64 / f64::from(rate);
        c += f64::from(v) * ph.cos();
        s += f64::from(v) * ph.sin();
    }
    2.0 * (c * c + s * s).sqrt() / n as f64
}

fn db(ratio: f64) -> f64 {
    20.0 * ratio.log10()
}

#[test]
fn tone_1khz_keeps_amplitude_48k_to_8k() {
    let x = sine(1000.0, 48000, 1.0, 0.5);
    let y = resample(&x, 48000, 8000);
    let gain = db(amplitude_at(middle(&y, 8000), 8000, 1000.0) / 0.5);
    assert!(gain.abs() < 0.5, "gain {gain:.3} dB");
}

#[test]
fn tone_1khz_keeps_amplitude_8k_to_16k() {
    let x = sine(1000.0, 8000, 1.0, 0.5);
    let y = resample(&x, 8000, 16000);
    let gain = db(amplitude_at(middle(&y, 16000), 16000, 1000.0) / 0.5);
    assert!(gain.abs() < 0.5, "gain {gain:.3} dB");
}

#[test]
fn output_is_time_aligned_with_input() {
    // No group delay: the 8 kHz output must be the same sine sampled at 8 kHz.
    for from in [48000, 44100, 22050, 16000] {
        let x = sine(1000.0, from, 0.5, 0.5);
        let y = resample(&x, from, 8000);
        let expect = sine(1000.0, 8000, 0.5, 0.5);
        let skip = 800;
        let worst = y[skip..y.len() - skip]
            .iter()
            .zip(&expect[skip..])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 2e-3, "{from} Hz: max error {worst}");
    }
}

#[test]
fn passband_edge_3khz_survives_44k1_to_8k() {
    let x = sine(3000.0, 44100, 1.0, 0.5);
    let y = resample(&x, 44100, 8000);
    let gain = db(amplitude_at(middle(&y, 8000), 8000, 3000.0) / 0.5);
    assert!(gain.abs() < 0.5, "gain {gain:.3} dB");
}

#[test]
fn tone_6khz_at_48k_does_not_alias_into_8k() {
    let x = sine(6000.0, 48000, 1.0, 0.5);
    let y = resample(&x, 48000, 8000);
    // 6 kHz would fold to 2 kHz; everything left is leakage.
    let att = db(rms(middle(&y, 8000)) / rms(&x));
    assert!(att <= -40.0, "only {att:.1} dB");
}

#[test]
fn tones_just_above_output_nyquist_are_suppressed() {
    // 4.4 kHz folds to 3.6 kHz, inside the telephone band; the transition band must end
    // before the output Nyquist frequency for this to hold.
    for from in [44100, 22050, 16000] {
        let x = sine(4400.0, from, 1.0, 0.5);
        let y = resample(&x, from, 8000);
        let att = db(rms(middle(&y, 8000)) / rms(&x));
        assert!(att <= -40.0, "{from} Hz: only {att:.1} dB");
    }
}

#[test]
fn upsampling_suppresses_the_image() {
    // 8 → 16 kHz without a proper filter leaves a mirror of 1 kHz at 7 kHz.
    let x = sine(1000.0, 8000, 1.0, 0.5);
    let y = resample(&x, 8000, 16000);
    let image = amplitude_at(middle(&y, 16000), 16000, 7000.0);
    assert!(
        db(image / 0.5) <= -40.0,
        "image at {:.1} dB",
        db(image / 0.5)
    );
}

#[test]
fn odd_ratio_uses_interpolated_phases_and_still_works() {
    // 44 099 / 8 000 is irreducible: L = 8000 > MAX_PHASES.
    let x = sine(1000.0, 44099, 1.0, 0.5);
    let y = resample(&x, 44099, 8000);
    assert_eq!(y.len(), 8000);
    let gain = db(amplitude_at(middle(&y, 8000), 8000, 1000.0) / 0.5);
    assert!(gain.abs() < 0.5, "gain {gain:.3} dB");
    let x = sine(6000.0, 44099, 1.0, 0.5);
    let att = db(rms(middle(&resample(&x, 44099, 8000), 8000)) / rms(&x));
    assert!(att <= -40.0, "only {att:.1} dB");
}

#[test]
fn output_length_is_rounded_ratio() {
    let rates = [8000u32, 11025, 16000, 22050, 44100, 48000, 44099];
    for &from in &rates {
        for &to in &[8000u32, 16000] {
            for n in [1usize, 2, 7, 159, 160, 441, 1000, 4999] {
                let x = vec![0.1f32; n];
                let y = resample(&x, from, to);
                let expect = (n as f64 * f64::from(to) / f64::from(from)).round();
                assert!(
                    (y.len() as f64 - expect).abs() <= 1.0,
                    "{n} samples {from}->{to}: {} (want {expect})",
                    y.len()
                );
            }
        }
    }
}

#[test]
fn empty_input_and_zero_rates_give_empty_output() {
    assert!(resample(&[], 44100, 8000).is_empty());
    assert!(resample(&[], 8000, 16000).is_empty());
    assert!(resample(&[0.5; 10], 0, 8000).is_empty());
    assert!(resample(&[0.5; 10], 8000, 0).is_empty());
}

#[test]
fn equal_rates_are_a_copy() {
    let x = sine(440.0, 8000, 0.1, 0.3);
    assert_eq!(resample(&x, 8000, 8000), x);
}

#[test]
fn constant_stays_constant() {
    for (from, to) in [(44100, 8000), (8000, 16000), (22050, 8000), (44099, 8000)] {
        let y = resample(&[0.25f32; 20000], from, to);
        for &v in middle(&y, to) {
            assert!((v - 0.25).abs() < 1e-4, "{from}->{to}: {v}");
        }
    }
}

#[test]
fn upsampler2x_streamed_in_chunks_equals_resample() {
    let x = sine(1234.0, 8000, 0.5, 0.7);
    let whole = resample(&x, 8000, 16000);
    let mut up = Upsampler2x::new();
    let mut out = Vec::new();
    for chunk in x.chunks(97) {
        up.process(chunk, &mut out);
    }
    assert_eq!(out.len(), 2 * x.len() - up.latency());
    up.finish(&mut out);
    assert_eq!(out.len(), whole.len());
    for (i, (a, b)) in out.iter().zip(&whole).enumerate() {
        assert!((a - b).abs() < 1e-6, "sample {i}: {a} vs {b}");
    }
}

#[test]
fn upsampler2x_is_reusable_after_finish() {
    let x = sine(700.0, 8000, 0.1, 0.5);
    let mut up = Upsampler2x::new();
    let (mut first, mut second) = (Vec::new(), Vec::new());
    up.process(&x, &mut first);
    up.finish(&mut first);
    up.process(&x, &mut second);
    up.finish(&mut second);
    assert_eq!(first, second);
    assert_eq!(first.len(), 2 * x.len());
}

#[test]
fn upsampler2x_short_input_flushes_completely() {
    let mut up = Upsampler2x::new();
    let mut out = Vec::new();
    up.process(&[0.5, -0.5, 0.25], &mut out);
    assert!(out.is_empty(), "held back by the latency");
    up.finish(&mut out);
    assert_eq!(out, resample(&[0.5, -0.5, 0.25], 8000, 16000));
}
