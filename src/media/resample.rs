//! Sample-rate conversion with a proper anti-aliasing low-pass (windowed sinc).
//!
//! Used off the hot path: prompts at load time (any rate → 8 kHz) and, for ASR,
//! 8 → 16 kHz on the recorded message.
//!
//! The converter is a polyphase FIR: the ratio `to/from` is reduced to `L/M`, and output
//! sample `n` sits at input time `n·M/L`, whose fractional part selects one of `L` phases of
//! a Kaiser-windowed sinc. When `L` is too large for a table (odd rates such as 44 099 Hz)
//! the bank is sampled at [`MAX_PHASES`] and neighbouring phases are interpolated linearly,
//! which costs a second dot product but keeps memory bounded.
//!
//! OWNER: media-dsp helper.

/// Low-pass cutoff (−6 dB point) as a fraction of the lower of the two rates. 0.45 leaves
/// a transition band that ends just below the output Nyquist frequency, so aliases land
/// above the passband instead of in it.
const CUTOFF: f64 = 0.45;
/// Sinc zero crossings on each side of the centre tap. With the Kaiser window below this
/// gives a transition band of about 0.09 × the lower rate (≈ 3.2–4.0 kHz at 8 kHz).
const ZERO_CROSSINGS: f64 = 24.0;
/// Kaiser β for ≈ 80 dB stopband attenuation (β = 0.1102·(A − 8.7)).
const KAISER_BETA: f64 = 7.857;
/// Largest phase table; beyond this, phases are interpolated (see module docs).
pub const MAX_PHASES: usize = 1024;

/// Convert mono `input` at `from_hz` to `to_hz`. Band-limits to 0.45 × the lower rate.
///
/// The output has `round(len · to / from)` samples and is time-aligned with the input
/// (no group delay: the filter is centred on each output instant, the signal is taken as
/// zero outside `input`). A zero rate or empty input gives an empty vector; equal rates
/// return a copy.
pub fn resample(input: &[f32], from_hz: u32, to_hz: u32) -> Vec<f32> {
    if input.is_empty() || from_hz == 0 || to_hz == 0 {
        return Vec::new();
    }
    if from_hz == to_hz {
        return input.to_vec();
    }
    let (from, to) = (u64::from(from_hz), u64::from(to_hz));
    let g = gcd(from, to);
    let (l, m) = (to / g, from / g);
    let n = input.len() as u64;
    let out_len = ((n * to + from / 2) / from) as usize;

    let bank = FilterBank::design(from_hz, to_hz, l);
    let taps = bank.taps;
    // Input sample k lives at padded[k + half - 1]; the window for the output at input time
    // idx + d is padded[idx .. idx + taps] (see `FilterBank::design`).
    let mut padded = vec![0.0f32; input.len() + taps + 1];
    padded[bank.half - 1..bank.half - 1 + input.len()].copy_from_slice(input);

    let mut out = Vec::with_capacity(out_len);
    for o in 0..out_len as u64 {
        let pos = o * m;
        let idx = (pos / l) as usize;
        let rem = pos % l;
        let window = &padded[idx..idx + taps];
        out.push(bank.filter(window, rem, l));
    }
    out
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Polyphase bank of a Kaiser-windowed sinc low-pass.
#[derive(Clone, Debug)]
struct FilterBank {
    /// Taps per phase (`2 · half`).
    taps: usize,
    /// Taps on each side of the output instant.
    half: usize,
    /// Phases in the table (excluding the extra row for interpolation).
    phases: usize,
    /// Whether `phases` equals the ratio's `L`, i.e. every phase is in the table.
    exact: bool,
    /// `(phases + 1) × taps` coefficients; row `p` is the filter for fractional delay
    /// `p / phases`. The last row (delay 1.0) only serves interpolation.
    coeffs: Vec<f32>,
}

impl FilterBank {
    fn design(from_hz: u32, to_hz: u32, l: u64) -> FilterBank {
        // Cutoff in cycles per input sample.
        let fc = CUTOFF * f64::from(from_hz.min(to_hz)) / f64::from(from_hz);
        let half_width = ZERO_CROSSINGS / (2.0 * fc);
        let half = half_width.ceil() as usize;
        let taps = 2 * half;
        let exact = l <= MAX_PHASES as u64;
        let phases = if exact { l as usize } else { MAX_PHASES };
        let i0_beta = bessel_i0(KAISER_BETA);

        let mut coeffs = vec![0.0f32; (phases + 1) * taps];
        let mut row64 = Vec::with_capacity(taps);
        for (p, row) in coeffs.chunks_exact_mut(taps).enumerate() {
            let d = p as f64 / phases as f64;
            let mut sum = 0.0f64;
            row64.clear();
            for j in 0..taps {
                // Tap j multiplies input sample idx + 1 - half + j; its distance from the
                // output instant idx + d is x.
                let x = d + half as f64 - 1.0 - j as f64;
                let h = if x.abs() >= half_width {
                    0.0
                } else {
                    let r = x / half_width;
                    let window = bessel_i0(KAISER_BETA * (1.0 - r * r).sqrt()) / i0_beta;
                    2.0 * fc * sinc(2.0 * fc * x) * window
                };
                sum += h;
                row64.push(h);
            }
            // Unit DC gain in every phase, so a constant stays exactly constant.
            for (c, h) in row.iter_mut().zip(&row64) {
                *c = (h / sum) as f32;
            }
        }
        FilterBank {
            taps,
            half,
            phases,
            exact,
            coeffs,
        }
    }

    fn row(&self, p: usize) -> &[f32] {
        &self.coeffs[p * self.taps..(p + 1) * self.taps]
    }

    /// One output sample for phase `rem / l` from a `taps`-long window.
    #[inline]
    fn filter(&self, window: &[f32], rem: u64, l: u64) -> f32 {
        if self.exact {
            return dot(window, self.row(rem as usize));
        }
        let p = rem as f64 * self.phases as f64 / l as f64;
        let p0 = p as usize;
        let mu = (p - p0 as f64) as f32;
        let a = dot(window, self.row(p0));
        let b = dot(window, self.row(p0 + 1));
        a + mu * (b - a)
    }
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// Modified Bessel function of the first kind, order 0 (power series; converges fast for
/// the arguments a Kaiser window needs).
fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut k = 1.0;
    while term > sum * 1e-16 {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

/// Dot product with eight independent accumulators so the compiler can vectorise it
/// (a plain iterator sum is sequential because float addition is not associative).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (xa, xb) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += xa[i] * xb[i];
        }
    }
    let s = (acc[0] + acc[4]) + (acc[1] + acc[5]) + (acc[2] + acc[6]) + (acc[3] + acc[7]);
    s + tail
}

/// Streaming 2× upsampler (8 → 16 kHz for ASR) with the same filter as
/// `resample(_, 8000, 16000)`, for audio that arrives in chunks.
///
/// Output lags input by [`Upsampler2x::latency`] samples; [`Upsampler2x::finish`] flushes
/// the tail, after which the concatenated output equals `resample` over the whole input.
/// After construction nothing allocates except growth of the caller's output vector.
#[derive(Clone, Debug)]
pub struct Upsampler2x {
    bank: FilterBank,
    /// The last `taps` input samples, stored twice (`ring[i] == ring[i + taps]`) so the
    /// window is always one contiguous slice: `ring[write .. write + taps]`.
    ring: Vec<f32>,
    write: usize,
    /// Samples pushed into the ring, including flush zeros.
    pushed: u64,
    /// Real input samples since the last reset.
    input: u64,
    /// Output pairs emitted since the last reset.
    emitted: u64,
}

impl Default for Upsampler2x {
    fn default() -> Self {
        Self::new()
    }
}

impl Upsampler2x {
    pub fn new() -> Self {
        let bank = FilterBank::design(8000, 16000, 2);
        let ring = vec![0.0; 2 * bank.taps];
        Upsampler2x {
            bank,
            ring,
            write: 0,
            pushed: 0,
            input: 0,
            emitted: 0,
        }
    }

    /// Delay of the streamed output, in output samples.
    pub fn latency(&self) -> usize {
        2 * self.bank.half
    }

    /// Feed input samples; appends two output samples per input sample, minus the latency
    /// still held back.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        for &x in input {
            self.input += 1;
            self.push(x, out);
        }
    }

    /// Flush the held-back tail (as if zeros followed) and reset for the next stream.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        while self.emitted < self.input {
            self.push(0.0, out);
        }
        self.reset();
    }

    /// Forget all state, start a new stream.
    pub fn reset(&mut self) {
        self.ring.fill(0.0);
        self.write = 0;
        self.pushed = 0;
        self.input = 0;
        self.emitted = 0;
    }

    #[inline]
    fn push(&mut self, x: f32, out: &mut Vec<f32>) {
        let taps = self.bank.taps;
        self.ring[self.write] = x;
        self.ring[self.write + taps] = x;
        self.write = (self.write + 1) % taps;
        self.pushed += 1;
        // The newest sample in the window of output pair i is input i + half.
        if self.pushed > self.bank.half as u64 {
            let window = &self.ring[self.write..self.write + taps];
            out.push(dot(window, self.bank.row(0)));
            out.push(dot(window, self.bank.row(1)));
            self.emitted += 1;
        }
    }
}

#[cfg(test)]
#[path = "resample_tests.rs"]
mod tests;
