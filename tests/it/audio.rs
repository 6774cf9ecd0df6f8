//! Audio comparison for tests: does this recording contain that audio?
//!
//! Alignment is found on 10 ms energy envelopes (cheap, robust to codec noise), then the
//! normalised cross-correlation of the aligned samples is measured around that lag.

use hotline_gateway::media::Codec;
use std::path::Path;

pub fn read_wav_8k(path: &Path) -> Vec<i16> {
    let p = hotline_gateway::media::prompt::Prompt::from_wav_file(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    p.pcm().to_vec()
}

/// Writes mono 16-bit samples at `rate` as a WAV (the built-in caller plays any rate).
pub fn write_wav(path: &Path, pcm: &[i16], rate: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in pcm {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

/// What a listener gets after one G.711 round trip.
pub fn through_g711(pcm: &[i16], codec: Codec) -> Vec<i16> {
    pcm.iter()
        .map(|&s| codec.decode_sample(codec.encode_sample(s)))
        .collect()
}

fn envelope(x: &[i16]) -> Vec<f64> {
    x.chunks(80)
        .map(|c| (c.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
        .collect()
}

/// Correlation of the overlap, normalised by the energy of the *whole* reference, so that a
/// short overlap cannot score high by chance (a one-sample overlap always "correlates").
fn ncc(a: &[i16], b: &[i16], ref_energy: f64) -> f64 {
    let n = a.len().min(b.len());
    if n == 0 {
        return 0.0;
    }
    let (mut ab, mut aa) = (0f64, 0f64);
    for i in 0..n {
        let (x, y) = (a[i] as f64, b[i] as f64);
        ab += x * y;
        aa += x * x;
    }
    if aa == 0.0 || ref_energy == 0.0 {
        return 0.0;
    }
    ab / (aa.sqrt() * ref_energy.sqrt())
}

/// Best correlation of `reference` found inside `recording` (normalised by the whole
/// reference's energy, so audio missing from the recording lowers it), and the fraction of
/// `reference` that overlapped at that alignment. Searches all alignments where
/// `reference` starts within `recording` (or up to half of it before).
pub fn find(recording: &[i16], reference: &[i16]) -> (f64, f64) {
    let (corr, overlap, _) = find_with_lag(recording, reference);
    (corr, overlap)
}

/// Like [`find`], also giving the lag in samples (where `reference` starts in `recording`).
pub fn find_with_lag(recording: &[i16], reference: &[i16]) -> (f64, f64, i64) {
    let er = envelope(recording);
    let ef = envelope(reference);
    if er.is_empty() || ef.is_empty() {
        return (0.0, 0.0, 0);
    }
    // Coarse: envelope correlation over frame lags (lag = where reference frame 0 sits).
    let ef_energy: f64 = ef.iter().map(|f| f * f).sum();
    let mut best_lag = 0i64;
    let mut best = f64::MIN;
    let min_lag = -(ef.len() as i64 / 2);
    for lag in min_lag..er.len() as i64 {
        let mut s = 0.0;
        let mut a2 = 0.0;
        for (j, &f) in ef.iter().enumerate() {
            let i = lag + j as i64;
            if i < 0 || i as usize >= er.len() {
                continue;
            }
            let r = er[i as usize];
            s += r * f;
            a2 += r * r;
        }
        if a2 > 0.0 && ef_energy > 0.0 {
            let c = s / (a2.sqrt() * ef_energy.sqrt());
            if c > best {
                best = c;
                best_lag = lag;
            }
        }
    }
    // Fine: sample lags within ±2 frames of the coarse one.
    let ref_energy: f64 = reference.iter().map(|&s| (s as f64).powi(2)).sum();
    let mut best_fine = (0.0, 0.0, 0);
    for d in -160i64..=160 {
        let lag = best_lag * 80 + d;
        let (rec_start, ref_start) = if lag >= 0 {
            (lag as usize, 0usize)
        } else {
            (0usize, (-lag) as usize)
        };
        if rec_start >= recording.len() || ref_start >= reference.len() {
            continue;
        }
        let n = (recording.len() - rec_start).min(reference.len() - ref_start);
        let c = ncc(
            &recording[rec_start..rec_start + n],
            &reference[ref_start..ref_start + n],
            ref_energy,
        );
        if c > best_fine.0 {
            best_fine = (c, n as f64 / reference.len() as f64, lag);
        }
    }
    best_fine
}

#[test]
fn find_locates_a_delayed_copy_and_rejects_other_audio() {
    let reference: Vec<i16> = (0..8000)
        .map(|i| (((i * i) % 7919) as i16 - 3960) * 4)
        .collect();
    let mut recording = vec![0i16; 3000];
    recording.extend(through_g711(&reference, Codec::Pcmu));
    recording.extend(vec![0i16; 2000]);
    let (c, overlap) = find(&recording, &reference);
    assert!(c > 0.99, "correlation {c}");
    assert!(overlap > 0.99, "overlap {overlap}");
    let other: Vec<i16> = (0..12000)
        .map(|i| ((i * 37 % 1000) as i16 - 500) * 20)
        .collect();
    let (c, _) = find(&other, &reference);
    assert!(c < 0.5, "unrelated audio correlated {c}");
}

/// Fraction of `reference`'s half-second chunks that are found, each with correlation above
/// `threshold`, in `recording`, in order. Tolerates what real-time transport does to a stream
/// (a sender that skips RTP timestamps after a scheduling stall makes the receiver insert
/// silence) while still demanding that the caller's audio is all there.
pub fn chunks_found(recording: &[i16], reference: &[i16], threshold: f64) -> f64 {
    const CHUNK: usize = 4000;
    let (_, _, lag) = find_with_lag(recording, reference);
    let mut expected = lag; // where the next chunk should start in `recording`
    let (mut found, mut total) = (0usize, 0usize);
    for (k, chunk) in reference.chunks(CHUNK).enumerate() {
        let chunk_lag = expected + (k * CHUNK) as i64;
        if chunk.len() < CHUNK || !chunk.iter().any(|&s| s.unsigned_abs() > 500) {
            continue;
        }
        total += 1;
        // Up to 1 s inserted before this chunk, or 0.2 s lost.
        if let Some((corr, at)) =
            best_in_window(recording, chunk, chunk_lag - 1600, chunk_lag + 8000)
        {
            if corr > threshold {
                found += 1;
                expected += at - chunk_lag;
            }
        }
    }
    if total == 0 {
        return 0.0;
    }
    found as f64 / total as f64
}

/// Best correlation of `chunk` placed at sample offsets `lo..=hi` of `recording` (decimated
/// search, then a full-rate refinement).
fn best_in_window(recording: &[i16], chunk: &[i16], lo: i64, hi: i64) -> Option<(f64, i64)> {
    let energy: f64 = chunk.iter().map(|&s| (s as f64).powi(2)).sum();
    let score = |at: i64, step: usize| -> f64 {
        if at < 0 || at as usize + chunk.len() > recording.len() {
            return f64::MIN;
        }
        let seg = &recording[at as usize..at as usize + chunk.len()];
        let (mut ab, mut aa) = (0f64, 0f64);
        for i in (0..chunk.len()).step_by(step) {
            ab += seg[i] as f64 * chunk[i] as f64;
            aa += (seg[i] as f64).powi(2);
        }
        if aa == 0.0 {
            return 0.0;
        }
        ab / (aa.sqrt() * (energy / step as f64).sqrt())
    };
    let mut best: Option<(f64, i64)> = None;
    for at in (lo..=hi).step_by(2) {
        let c = score(at, 4);
        if best.is_none_or(|(b, _)| c > b) {
            best = Some((c, at));
        }
    }
    let (_, coarse) = best?;
    (coarse - 4..=coarse + 4)
        .map(|at| (score(at, 1), at))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

#[test]
fn chunks_are_found_across_an_inserted_gap_but_not_in_other_audio() {
    let reference: Vec<i16> = (0..16000)
        .map(|i| (((i * i) % 7919) as i16 - 3960) * 4)
        .collect();
    let mut recording = vec![0i16; 1000];
    recording.extend_from_slice(&reference[..6000]);
    recording.extend(vec![0i16; 640]); // what a receiver inserts after a sender's stall
    recording.extend_from_slice(&reference[6000..]);
    assert!(chunks_found(&recording, &reference, 0.9) >= 0.75);
    let other: Vec<i16> = (0..20000)
        .map(|i| ((i * 37 % 1000) as i16 - 500) * 20)
        .collect();
    assert_eq!(chunks_found(&other, &reference, 0.9), 0.0);
}
