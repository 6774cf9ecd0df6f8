//! Sample-rate conversion with a proper anti-aliasing low-pass (windowed sinc).
//!
//! Used off the hot path: prompts at load time (any rate → 8 kHz) and, for ASR,
//! 8 → 16 kHz on the recorded message.
//!
//! OWNER: media-dsp helper.

/// Convert mono `input` at `from_hz` to `to_hz`. Band-limits to 0.45 × the lower rate.
pub fn resample(input: &[f32], from_hz: u32, to_hz: u32) -> Vec<f32> {
    let _ = (input, from_hz, to_hz);
    todo!("media-dsp helper")
}
