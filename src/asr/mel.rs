//! The mel filterbank whisper.cpp reads from the model file.
//!
//! OpenAI's Whisper computes its log-mel input with `librosa.filters.mel(sr=16000, n_fft=400,
//! n_mels=80)` (Slaney mel scale, Slaney area normalisation) and whisper.cpp expects exactly that
//! matrix in the ggml header, so a converted model must carry it. This is librosa's algorithm
//! (`librosa/filters.py::mel`, `librosa/core/convert.py::hz_to_mel/mel_to_hz`, htk=False),
//! computed in f64 and rounded to f32 as librosa's default `dtype=np.float32` does.

/// Whisper's sample rate.
pub const SAMPLE_RATE: f64 = 16_000.0;
/// Whisper's FFT size (25 ms at 16 kHz); gives `N_FFT / 2 + 1 = 201` frequency bins.
pub const N_FFT: usize = 400;

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

/// Hz → mel on the Slaney scale: linear below 1 kHz, logarithmic above.
pub fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

/// Mel → Hz, the inverse of [`hz_to_mel`].
pub fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP * mel
    }
}

/// `n_mels × (n_fft/2 + 1)` triangular filters, row-major, as `librosa.filters.mel` returns them.
pub fn filterbank(n_mels: usize, n_fft: usize, sample_rate: f64) -> Vec<f32> {
    let n_bins = n_fft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..n_bins)
        .map(|i| i as f64 * sample_rate / n_fft as f64)
        .collect();
    let (mel_min, mel_max) = (hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0));
    // librosa: np.linspace(min_mel, max_mel, n_mels + 2), then back to Hz.
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(mel_min + (mel_max - mel_min) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut out = Vec::with_capacity(n_mels * n_bins);
    for m in 0..n_mels {
        let (lo, mid, hi) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
        let enorm = 2.0 / (hi - lo);
        for &f in &fft_freqs {
            let lower = (f - lo) / (mid - lo);
            let upper = (hi - f) / (hi - mid);
            // librosa stores the triangle in its f32 output array first, then scales that array
            // in place by the f64 norm: two roundings, reproduced for a bit-exact matrix.
            let tri = lower.min(upper).max(0.0) as f32;
            out.push((tri as f64 * enorm) as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values printed by librosa 0.11.0 (numpy 2.4.6), 9 significant digits:
    /// `librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)[row, col]`.
    /// They pin the Slaney scale (the 1 kHz knee), the area normalisation and the bin spacing.
    const LIBROSA_REFERENCE: &[(usize, usize, f64)] = include!("mel_reference.in");

    #[test]
    fn filterbank_matches_librosa_reference_points() {
        let fb = filterbank(80, N_FFT, SAMPLE_RATE);
        assert_eq!(fb.len(), 80 * 201);
        for &(row, col, want) in LIBROSA_REFERENCE {
            // Nine significant digits round-trip an f32 exactly: the match is bit for bit.
            let got = fb[row * 201 + col];
            assert_eq!(got, want as f32, "mel[{row},{col}], librosa says {want}");
        }
    }

    #[test]
    fn slaney_scale_is_linear_below_1khz_and_log_above() {
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-12);
        // 6.4 kHz is exactly 27 mels above the knee by construction of the log step.
        assert!((hz_to_mel(6400.0) - 42.0).abs() < 1e-9);
        for hz in [0.0, 123.0, 999.0, 1000.0, 4321.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9);
        }
    }
}
