//! ggml f16 → q8_0 model quantisation (whisper.cpp's `quantize` tool, for one type).
//!
//! Why: on a 2-core box the decoder is memory-bound, and beam search runs it once per token
//! for every beam. Weight matrices in 8-bit blocks are half the bytes of f16, so the decoder
//! streams half as much; whisper.cpp computes q8_0 natively. whisper.cpp ships the tool as an
//! example binary we do not build, and the file layout is small and fixed (see
//! [`super::convert`]), so this reads a ggml model and writes the same model with its weight
//! matrices in q8_0, as `examples/quantize` does: every 2-D tensor except the positional
//! embeddings and conv biases (which whisper.cpp allocates as f32), conv kernels (3-D, kept in
//! f16) and vectors untouched.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use half::f16;

use super::convert::ConvertError;

const GGML_MAGIC: u32 = 0x6767_6d6c;
const TTYPE_F32: i32 = 0;
const TTYPE_F16: i32 = 1;
/// `GGML_TYPE_Q8_0`.
const TTYPE_Q8_0: i32 = 8;
/// `GGML_FTYPE_MOSTLY_Q8_0` + `GGML_QNT_VERSION` (2) × `GGML_QNT_VERSION_FACTOR` (1000).
const FTYPE_Q8_0: i32 = 7 + 2 * 1000;
/// Values per q8_0 block (`QK8_0`).
const BLOCK: usize = 32;
/// 2-D tensors whisper.cpp allocates as f32 whatever the model's weight type.
const KEEP: [&str; 4] = [
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
];

/// What a quantisation wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantizeSummary {
    pub n_tensors: usize,
    pub n_quantized: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Quantise the f16 ggml model at `input` to q8_0 at `output` (via `output.tmp` and a rename).
pub fn quantize_file(input: &Path, output: &Path) -> Result<QuantizeSummary, ConvertError> {
    let bytes = std::fs::read(input)?;
    let tmp = output.with_extension("bin.tmp");
    let summary = {
        let mut w = BufWriter::new(File::create(&tmp)?);
        let s = quantize(&bytes, &mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        s
    };
    std::fs::rename(&tmp, output)?;
    Ok(summary)
}

/// Quantise a whole ggml Whisper model held in `input`, writing the result to `w`.
pub fn quantize<W: Write>(input: &[u8], w: &mut W) -> Result<QuantizeSummary, ConvertError> {
    let mut r = Reader { b: input, at: 0 };
    if r.u32()? != GGML_MAGIC {
        return Err(ConvertError::Format("not a ggml model (bad magic)".into()));
    }
    let mut out = Vec::with_capacity(input.len() / 2 + (1 << 20));
    out.extend_from_slice(&GGML_MAGIC.to_le_bytes());
    // Ten hparams, then the model's ftype.
    let hparams = r.take(10 * 4)?;
    let n_vocab = i32::from_le_bytes(hparams[..4].try_into().expect("4 bytes"));
    out.extend_from_slice(hparams);
    let ftype = r.i32()?;
    if ftype != 1 {
        return Err(ConvertError::Unsupported(format!(
            "model ftype {ftype}: only an f16 model (ftype 1) is quantised"
        )));
    }
    out.extend_from_slice(&FTYPE_Q8_0.to_le_bytes());
    // Mel filterbank: n_mel, n_fft, n_mel × n_fft f32.
    let n_mel = r.len()?;
    let n_fft = r.len()?;
    out.extend_from_slice(&(n_mel as i32).to_le_bytes());
    out.extend_from_slice(&(n_fft as i32).to_le_bytes());
    out.extend_from_slice(r.take(n_mel * n_fft * 4)?);
    // Vocabulary: count, then length-prefixed token bytes.
    let n_tokens = r.len()?;
    if n_tokens > n_vocab.max(0) as usize {
        return Err(ConvertError::Format(format!(
            "{n_tokens} vocabulary entries for n_vocab {n_vocab}"
        )));
    }
    out.extend_from_slice(&(n_tokens as i32).to_le_bytes());
    for _ in 0..n_tokens {
        let len = r.u32()? as usize;
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(r.take(len)?);
    }
    let (mut n_tensors, mut n_quantized) = (0, 0);
    while r.at < input.len() {
        n_tensors += 1;
        n_quantized += usize::from(tensor(&mut r, &mut out)?);
    }
    w.write_all(&out)?;
    Ok(QuantizeSummary {
        n_tensors,
        n_quantized,
        bytes_in: input.len() as u64,
        bytes_out: out.len() as u64,
    })
}

/// Copy one tensor record, its data in q8_0 when it is a weight matrix. True if quantised.
fn tensor(r: &mut Reader, out: &mut Vec<u8>) -> Result<bool, ConvertError> {
    let n_dims = r.len()?;
    let name_len = r.len()?;
    let ttype = r.i32()?;
    if !(1..=4).contains(&n_dims) {
        return Err(ConvertError::Format(format!("tensor with {n_dims} dims")));
    }
    let mut ne = Vec::with_capacity(n_dims);
    for _ in 0..n_dims {
        ne.push(r.len()?);
    }
    let name = r.take(name_len)?.to_vec();
    let n: usize = ne.iter().product();
    let elem = match ttype {
        TTYPE_F32 => 4,
        TTYPE_F16 => 2,
        other => {
            return Err(ConvertError::Unsupported(format!(
                "tensor {} of type {other}",
                String::from_utf8_lossy(&name)
            )))
        }
    };
    let data = r.take(n * elem)?;
    let quantise =
        n_dims == 2 && ne[0] % BLOCK == 0 && !KEEP.iter().any(|k| k.as_bytes() == name.as_slice());
    for v in [n_dims, name_len] {
        out.extend_from_slice(&(v as i32).to_le_bytes());
    }
    out.extend_from_slice(&(if quantise { TTYPE_Q8_0 } else { ttype }).to_le_bytes());
    for &d in &ne {
        out.extend_from_slice(&(d as i32).to_le_bytes());
    }
    out.extend_from_slice(&name);
    if !quantise {
        out.extend_from_slice(data);
        return Ok(false);
    }
    let value = |i: usize| -> f32 {
        if ttype == TTYPE_F16 {
            f16::from_le_bytes([data[2 * i], data[2 * i + 1]]).to_f32()
        } else {
            f32::from_le_bytes(data[4 * i..4 * i + 4].try_into().expect("4 bytes"))
        }
    };
    let mut block = [0f32; BLOCK];
    for start in (0..n).step_by(BLOCK) {
        for (j, x) in block.iter_mut().enumerate() {
            *x = value(start + j);
        }
        out.extend_from_slice(&q8_0_block(&block));
    }
    Ok(true)
}

/// One q8_0 block: the f16 scale, then 32 signed bytes (ggml's `quantize_row_q8_0_ref`).
fn q8_0_block(x: &[f32; BLOCK]) -> [u8; 2 + BLOCK] {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut b = [0u8; 2 + BLOCK];
    b[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    for (slot, v) in b[2..].iter_mut().zip(x) {
        *slot = ((v * id).round() as i8) as u8;
    }
    b
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ConvertError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| ConvertError::Format("truncated ggml model".into()))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, ConvertError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn i32(&mut self) -> Result<i32, ConvertError> {
        Ok(i32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    /// A non-negative i32 count or size.
    fn len(&mut self) -> Result<usize, ConvertError> {
        let v = self.i32()?;
        usize::try_from(v).map_err(|_| ConvertError::Format(format!("negative size {v}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_round_trips_within_half_a_step() {
        let mut x = [0f32; BLOCK];
        for (i, v) in x.iter_mut().enumerate() {
            *v = (i as f32 - 15.5) * 0.013;
        }
        let b = q8_0_block(&x);
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        for (j, v) in x.iter().enumerate() {
            let back = (b[2 + j] as i8) as f32 * d;
            assert!(
                (back - v).abs() <= d / 2.0 + 1e-6,
                "{v} came back as {back}"
            );
        }
        // The largest magnitude maps to ±127.
        assert_eq!(b[2] as i8, -127);
    }

    /// A ggml record: dims innermost-first, as whisper.cpp reads them.
    fn record(out: &mut Vec<u8>, name: &str, ttype: i32, ne: &[usize], data: &[u8]) {
        for v in [ne.len() as i32, name.len() as i32, ttype] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for &d in ne {
            out.extend_from_slice(&(d as i32).to_le_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
    }

    fn tiny_model(ftype: i32) -> (Vec<u8>, usize) {
        let mut m = GGML_MAGIC.to_le_bytes().to_vec();
        for v in [2i32, 1, 32, 1, 1, 1, 32, 1, 1, 1, ftype] {
            m.extend_from_slice(&v.to_le_bytes());
        }
        for v in [1i32, 1] {
            m.extend_from_slice(&v.to_le_bytes()); // n_mel, n_fft
        }
        m.extend_from_slice(&0.5f32.to_le_bytes());
        m.extend_from_slice(&1i32.to_le_bytes());
        m.extend_from_slice(&2u32.to_le_bytes());
        m.extend_from_slice("hi".as_bytes());
        let header = m.len();
        let w: Vec<u8> = (0..64)
            .flat_map(|i| f16::from_f32(i as f32 / 64.0 - 0.5).to_le_bytes())
            .collect();
        record(
            &mut m,
            "decoder.blocks.0.mlp.0.weight",
            TTYPE_F16,
            &[32, 2],
            &w,
        );
        let bias: Vec<u8> = (0..32).flat_map(|i| (i as f32).to_le_bytes()).collect();
        record(
            &mut m,
            "decoder.blocks.0.mlp.0.bias",
            TTYPE_F32,
            &[32],
            &bias,
        );
        let pe: Vec<u8> = (0..64).flat_map(|i| (i as f32).to_le_bytes()).collect();
        record(
            &mut m,
            "decoder.positional_embedding",
            TTYPE_F32,
            &[32, 2],
            &pe,
        );
        (m, header)
    }

    #[test]
    fn only_weight_matrices_become_q8_0_and_the_rest_is_copied() {
        let (model, header) = tiny_model(1);
        let mut out = Vec::new();
        let s = quantize(&model, &mut out).expect("quantises");
        assert_eq!((s.n_tensors, s.n_quantized), (3, 1));
        // ftype now says q8_0 with the quantisation version; the rest of the header is as read
        assert_eq!(&out[44..48], &FTYPE_Q8_0.to_le_bytes());
        assert_eq!(&out[..44], &model[..44]);
        assert_eq!(&out[48..header], &model[48..header]);
        // the matrix: type 8, two blocks of 34 bytes
        let name = "decoder.blocks.0.mlp.0.weight";
        let at = header + 12 + 8 + name.len();
        assert_eq!(&out[header + 8..header + 12], &TTYPE_Q8_0.to_le_bytes());
        let back = f16::from_le_bytes([out[at], out[at + 1]]).to_f32() * (out[at + 2] as i8) as f32;
        assert!(
            (back - -0.5).abs() < 0.01,
            "first weight came back as {back}"
        );
        // the bias and the positional embedding (2-D, but f32 in whisper.cpp) are copied
        let tail = at + 2 * 34;
        assert_eq!(&out[tail..], &model[header + 12 + 8 + name.len() + 128..]);
        assert_eq!(s.bytes_out as usize, out.len());
    }

    #[test]
    fn a_model_that_is_not_f16_or_not_whole_is_refused() {
        let (f32_model, _) = tiny_model(0);
        assert!(matches!(
            quantize(&f32_model, &mut Vec::new()),
            Err(ConvertError::Unsupported(_))
        ));
        let (model, _) = tiny_model(1);
        assert!(matches!(
            quantize(&model[..model.len() - 3], &mut Vec::new()),
            Err(ConvertError::Format(_))
        ));
    }

    #[test]
    fn a_zero_block_has_a_zero_scale_and_zero_values() {
        let b = q8_0_block(&[0.0; BLOCK]);
        assert!(b.iter().all(|&v| v == 0));
    }
}
