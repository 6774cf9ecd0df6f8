use super::*;
use std::f64::consts::PI;
use std::time::Duration;

fn spec(rate: u32, channels: u16, bits: u16, float: bool) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    }
}

/// One sample of a `freq` sine at full-scale fraction `amp`.
fn sine_at(i: usize, rate: u32, freq: f64, amp: f64) -> f64 {
    amp * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()
}

/// Write `secs` of a sine to `path`; `per_channel` gives each channel's gain.
fn write_tone(
    path: &Path,
    spec: hound::WavSpec,
    freq: f64,
    secs: f64,
    amp: f64,
    per_channel: &[f64],
) {
    assert_eq!(per_channel.len(), spec.channels as usize);
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let n = (secs * f64::from(spec.sample_rate)).round() as usize;
    let full = (1u64 << (spec.bits_per_sample - 1)) as f64;
    for i in 0..n {
        let v = sine_at(i, spec.sample_rate, freq, amp);
        for &g in per_channel {
            match spec.sample_format {
                hound::SampleFormat::Float => w.write_sample((v * g) as f32).unwrap(),
                hound::SampleFormat::Int => {
                    let q = (v * g * full).round().min(full - 1.0) as i32;
                    if spec.bits_per_sample == 8 {
                        w.write_sample(q as i8).unwrap();
                    } else {
                        w.write_sample(q).unwrap();
                    }
                }
            }
        }
    }
    w.finalize().unwrap();
}

/// Frequency from upward zero crossings over the middle of the signal.
fn zero_crossing_hz(pcm: &[i16]) -> f64 {
    let mid = &pcm[pcm.len() / 10..pcm.len() * 9 / 10];
    let ups: Vec<usize> = mid
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0 && w[1] >= 0)
        .map(|(i, _)| i)
        .collect();
    let cycles = (ups.len() - 1) as f64;
    cycles * 8000.0 / (ups[ups.len() - 1] - ups[0]) as f64
}

fn rms(pcm: &[i16]) -> f64 {
    let mid = &pcm[pcm.len() / 10..pcm.len() * 9 / 10];
    (mid.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / mid.len() as f64).sqrt()
}

/// RMS of a sine at full-scale fraction `amp`, in i16 units.
fn sine_rms(amp: f64) -> f64 {
    amp * 32768.0 / 2f64.sqrt()
}

fn within_db(got: f64, want: f64, db: f64) -> bool {
    (20.0 * (got / want).log10()).abs() < db
}

#[test]
fn stereo_int16_at_44k1_becomes_8k_mono_1khz() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("greeting.wav");
    write_tone(
        &path,
        spec(44100, 2, 16, false),
        1000.0,
        1.0,
        0.5,
        &[1.0, 1.0],
    );
    let p = Prompt::from_wav_file(&path).unwrap();
    assert_eq!(p.name(), "greeting");
    assert_eq!(p.pcm().len(), 8000);
    assert_eq!(p.duration(), Duration::from_secs(1));
    let hz = zero_crossing_hz(p.pcm());
    assert!((hz - 1000.0).abs() < 5.0, "{hz} Hz");
    assert!(
        within_db(rms(p.pcm()), sine_rms(0.5), 0.5),
        "rms {}",
        rms(p.pcm())
    );
    assert_eq!(p.encoded(Codec::Pcmu).len(), 8000);
    assert_eq!(p.encoded(Codec::Pcma).len(), 8000);
    assert_eq!(
        p.encoded(Codec::Pcmu)[100],
        Codec::Pcmu.encode_sample(p.pcm()[100])
    );
}

#[test]
fn float_at_16k_becomes_8k_1khz() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("menu.wav");
    write_tone(&path, spec(16000, 1, 32, true), 1000.0, 0.5, 0.25, &[1.0]);
    let p = Prompt::from_wav_file(&path).unwrap();
    assert_eq!(p.pcm().len(), 4000);
    assert_eq!(p.duration(), Duration::from_millis(500));
    let hz = zero_crossing_hz(p.pcm());
    assert!((hz - 1000.0).abs() < 5.0, "{hz} Hz");
    assert!(within_db(rms(p.pcm()), sine_rms(0.25), 0.5));
}

#[test]
fn all_integer_depths_are_scaled_to_the_same_level() {
    let dir = tempfile::tempdir().unwrap();
    for bits in [8u16, 16, 24, 32] {
        let path = dir.path().join(format!("t{bits}.wav"));
        write_tone(&path, spec(22050, 1, bits, false), 1000.0, 0.5, 0.5, &[1.0]);
        let p = Prompt::from_wav_file(&path).unwrap();
        assert_eq!(p.pcm().len(), 4000, "{bits}-bit");
        assert!(
            within_db(rms(p.pcm()), sine_rms(0.5), 0.5),
            "{bits}-bit: rms {}",
            rms(p.pcm())
        );
    }
}

#[test]
fn mono_int16_at_8k_loads_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exact.wav");
    let samples: Vec<i16> = (0..1600)
        .map(|i| ((i * 37) % 65536 - 32768) as i16)
        .collect();
    let mut w = hound::WavWriter::create(&path, spec(8000, 1, 16, false)).unwrap();
    for &s in &samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    assert_eq!(Prompt::from_wav_file(&path).unwrap().pcm(), &samples[..]);
}

#[test]
fn stereo_is_downmixed_by_averaging() {
    let dir = tempfile::tempdir().unwrap();
    let one_side = dir.path().join("left.wav");
    write_tone(
        &one_side,
        spec(8000, 2, 16, false),
        1000.0,
        0.5,
        0.5,
        &[1.0, 0.0],
    );
    let p = Prompt::from_wav_file(&one_side).unwrap();
    assert!(within_db(rms(p.pcm()), sine_rms(0.25), 0.1), "half level");
    let opposed = dir.path().join("opposed.wav");
    write_tone(
        &opposed,
        spec(8000, 2, 16, false),
        1000.0,
        0.5,
        0.5,
        &[1.0, -1.0],
    );
    let p = Prompt::from_wav_file(&opposed).unwrap();
    assert!(p.pcm().iter().all(|&s| s.abs() <= 1), "cancels out");
}

#[test]
fn float_over_full_scale_clips_instead_of_wrapping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hot.wav");
    let mut w = hound::WavWriter::create(&path, spec(8000, 1, 32, true)).unwrap();
    for v in [1.5f32, -1.5, 0.5, f32::NAN, 1.0, -1.0] {
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
    let p = Prompt::from_wav_file(&path).unwrap();
    assert_eq!(p.pcm(), &[32767, -32768, 16384, 0, 32767, -32768]);
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.wav");
    let err = Prompt::from_wav_file(&path).unwrap_err();
    assert!(matches!(err, PromptError::Wav { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.wav"), "{err}");
}

#[test]
fn garbage_and_truncated_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.wav");
    std::fs::write(&garbage, b"this is not a RIFF file at all, just some text").unwrap();
    assert!(matches!(
        Prompt::from_wav_file(&garbage),
        Err(PromptError::Wav { .. })
    ));

    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    assert!(Prompt::from_wav_file(&empty).is_err());

    // A valid header whose data chunk is cut short.
    let good = dir.path().join("good.wav");
    write_tone(&good, spec(8000, 1, 16, false), 1000.0, 0.5, 0.5, &[1.0]);
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.wav");
    std::fs::write(&cut, &bytes[..bytes.len() / 2 + 1]).unwrap();
    let err = Prompt::from_wav_file(&cut).unwrap_err();
    assert!(err.to_string().contains("cut.wav"), "{err}");

    // Random bytes after a plausible RIFF/WAVE header.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..200 {
        let mut b = bytes[..44].to_vec();
        for _ in 0..(round % 40 + 1) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let pos = 12 + (state % 32) as usize;
            b[pos] = (state >> 32) as u8;
        }
        let f = dir.path().join("fuzz.wav");
        std::fs::write(&f, &b).unwrap();
        let _ = Prompt::from_wav_file(&f); // must return, Ok or Err
    }
}

#[test]
fn absurd_sample_rate_is_a_format_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fast.wav");
    write_tone(&path, spec(8000, 1, 16, false), 1000.0, 0.01, 0.5, &[1.0]);
    let mut bytes = std::fs::read(&path).unwrap();
    // Sample rate and byte rate live at offsets 24 and 28 of the canonical header;
    // claim 1 GHz (consistently, or hound rejects the header itself).
    bytes[24..28].copy_from_slice(&1_000_000_000u32.to_le_bytes());
    bytes[28..32].copy_from_slice(&2_000_000_000u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = Prompt::from_wav_file(&path).unwrap_err();
    assert!(matches!(err, PromptError::Format { .. }), "{err:?}");
}

#[test]
fn wav_without_samples_is_a_format_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.wav");
    hound::WavWriter::create(&path, spec(8000, 1, 16, false))
        .unwrap()
        .finalize()
        .unwrap();
    let err = Prompt::from_wav_file(&path).unwrap_err();
    assert!(matches!(err, PromptError::Format { .. }), "{err:?}");
}

#[test]
fn tone_has_the_asked_frequency_length_level_and_soft_edges() {
    let p = Prompt::tone("beep", 1000.0, 400, 0.5);
    assert_eq!(p.name(), "beep");
    assert_eq!(p.pcm().len(), 3200);
    assert_eq!(p.duration(), Duration::from_millis(400));
    let hz = zero_crossing_hz(p.pcm());
    assert!((hz - 1000.0).abs() < 5.0, "{hz} Hz");
    let peak = p.pcm().iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!((16000..=16384).contains(&peak), "peak {peak}");
    // Fades: the first and last samples are near zero, the envelope reaches full level
    // only after the fade.
    let pcm = p.pcm();
    assert!(pcm[0].abs() < 100 && pcm[pcm.len() - 1].abs() < 300);
    let env = |r: std::ops::Range<usize>| pcm[r].iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(env(0..16) < 4000, "first 2 ms {}", env(0..16));
    assert!(env(100..116) > 16000, "after the fade {}", env(100..116));
    assert!(env(3184..3200) < 4000, "last 2 ms {}", env(3184..3200));
    // Amplitude is clamped to full scale.
    let loud = Prompt::tone("loud", 1000.0, 100, 3.0);
    assert!(loud.pcm().iter().all(|&s| s > -32768));
}

#[test]
fn prompt_set_loads_named_files_and_shares_them() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["greeting", "menu"] {
        write_tone(
            &dir.path().join(format!("{name}.wav")),
            spec(16000, 1, 16, false),
            1000.0,
            0.2,
            0.5,
            &[1.0],
        );
    }
    let mut set = PromptSet::load(dir.path(), &["greeting", "menu"]).unwrap();
    assert_eq!(set.len(), 2);
    let g = set.get("greeting").unwrap();
    assert_eq!(g.name(), "greeting");
    assert_eq!(g.pcm().len(), 1600);
    assert!(
        Arc::ptr_eq(&g, &set.get("greeting").unwrap()),
        "shared, not copied"
    );
    assert!(set.get("goodbye").is_none());

    assert!(set.insert(Prompt::tone("beep", 1000.0, 200, 0.3)).is_none());
    assert!(set.contains("beep"));
    let old = set.insert(Prompt::tone("beep", 800.0, 200, 0.3)).unwrap();
    assert_eq!(old.pcm().len(), 1600);
    assert_eq!(set.len(), 3);
}

#[test]
fn prompt_set_names_the_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    write_tone(
        &dir.path().join("greeting.wav"),
        spec(8000, 1, 16, false),
        1000.0,
        0.1,
        0.5,
        &[1.0],
    );
    let err = PromptSet::load(dir.path(), &["greeting", "goodbye"]).unwrap_err();
    assert!(err.to_string().contains("goodbye.wav"), "{err}");
}
