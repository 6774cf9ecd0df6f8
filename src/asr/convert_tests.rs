//! Converter tests on a tiny synthetic CTranslate2 Whisper written here, read back with a
//! minimal reader of the layout `whisper_model_load` expects.

use std::collections::BTreeMap;

use half::{bf16, f16};

use super::convert::{convert_ct2_dir, ConvertError};
use super::ct2::{self, Ct2Dtype};

const S: usize = 4; // n_state
const MELS: usize = 2;
const VOCAB_ROWS: usize = 6;

struct Ct2Writer {
    buf: Vec<u8>,
    n: u32,
    body: Vec<u8>,
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
    b.push(0);
}

impl Ct2Writer {
    fn new() -> Self {
        let mut buf = Vec::new();
        buf.extend_from_slice(&6u32.to_le_bytes());
        put_str(&mut buf, "WhisperSpec");
        buf.extend_from_slice(&3u32.to_le_bytes());
        Ct2Writer {
            buf,
            n: 0,
            body: Vec::new(),
        }
    }
    fn raw(&mut self, name: &str, dims: &[usize], dtype: Ct2Dtype, data: Vec<u8>) {
        put_str(&mut self.body, name);
        self.body.push(dims.len() as u8);
        for &d in dims {
            self.body.extend_from_slice(&(d as u32).to_le_bytes());
        }
        self.body.push(dtype.code());
        self.body
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.body.extend_from_slice(&data);
        self.n += 1;
    }
    /// A float variable whose element `i` is `base + i` (so every slice is recognisable).
    fn var(&mut self, name: &str, dims: &[usize], dtype: Ct2Dtype, base: f32) {
        let n: usize = dims.iter().product();
        let vals = (0..n).map(|i| base + i as f32);
        let data: Vec<u8> = match dtype {
            Ct2Dtype::F32 => vals.flat_map(|v| v.to_le_bytes()).collect(),
            Ct2Dtype::F16 => vals.flat_map(|v| f16::from_f32(v).to_le_bytes()).collect(),
            Ct2Dtype::Bf16 => vals.flat_map(|v| bf16::from_f32(v).to_le_bytes()).collect(),
            _ => unreachable!("test writes float vars only"),
        };
        self.raw(name, dims, dtype, data);
    }
    fn finish(mut self, aliases: &[(&str, &str)]) -> Vec<u8> {
        self.buf.extend_from_slice(&self.n.to_le_bytes());
        self.buf.extend_from_slice(&self.body);
        self.buf
            .extend_from_slice(&(aliases.len() as u32).to_le_bytes());
        for (a, t) in aliases {
            put_str(&mut self.buf, a);
            put_str(&mut self.buf, t);
        }
        self.buf
    }
}

fn linear(w: &mut Ct2Writer, name: &str, rows: usize, cols: usize, base: f32) {
    w.var(
        &format!("{name}/weight"),
        &[rows, cols],
        Ct2Dtype::F16,
        base,
    );
    w.var(
        &format!("{name}/bias"),
        &[rows],
        Ct2Dtype::F16,
        base + 500.0,
    );
}

fn norm(w: &mut Ct2Writer, name: &str, base: f32) {
    w.var(&format!("{name}/gamma"), &[S], Ct2Dtype::F32, base);
    w.var(&format!("{name}/beta"), &[S], Ct2Dtype::F32, base + 10.0);
}

/// One encoder and one decoder layer, n_state 4, 2 heads, 2 mels, 6 vocab rows.
fn synthetic_model() -> Vec<u8> {
    let mut w = Ct2Writer::new();
    w.raw(
        "decoder/num_heads",
        &[],
        Ct2Dtype::I16,
        2i16.to_le_bytes().to_vec(),
    );
    w.raw(
        "encoder/num_heads",
        &[],
        Ct2Dtype::I32,
        2i32.to_le_bytes().to_vec(),
    );
    w.raw("decoder/pre_norm", &[], Ct2Dtype::I8, vec![1]);
    w.var(
        "decoder/embeddings/weight",
        &[VOCAB_ROWS, S],
        Ct2Dtype::F16,
        1.0,
    );
    w.var(
        "decoder/position_encodings/encodings",
        &[2, S],
        Ct2Dtype::F16,
        2.0,
    );
    norm(&mut w, "decoder/layer_norm", 3.0);
    let d = "decoder/layer_0";
    norm(&mut w, &format!("{d}/self_attention/layer_norm"), 20.0);
    linear(
        &mut w,
        &format!("{d}/self_attention/linear_0"),
        3 * S,
        S,
        100.0,
    );
    linear(&mut w, &format!("{d}/self_attention/linear_1"), S, S, 200.0);
    norm(&mut w, &format!("{d}/attention/layer_norm"), 30.0);
    linear(&mut w, &format!("{d}/attention/linear_0"), S, S, 300.0);
    linear(&mut w, &format!("{d}/attention/linear_1"), 2 * S, S, 400.0);
    linear(&mut w, &format!("{d}/attention/linear_2"), S, S, 600.0);
    norm(&mut w, &format!("{d}/ffn/layer_norm"), 40.0);
    linear(&mut w, &format!("{d}/ffn/linear_0"), 4 * S, S, 700.0);
    linear(&mut w, &format!("{d}/ffn/linear_1"), S, 4 * S, 800.0);
    w.var("encoder/conv1/weight", &[S, MELS, 3], Ct2Dtype::F16, 5.0);
    w.var("encoder/conv1/bias", &[S], Ct2Dtype::F16, 6.0);
    w.var("encoder/conv2/weight", &[S, S, 3], Ct2Dtype::F16, 7.0);
    // bf16 must be widened, not copied as if it were f16.
    w.var("encoder/conv2/bias", &[S], Ct2Dtype::Bf16, 8.0);
    w.var(
        "encoder/position_encodings/encodings",
        &[3, S],
        Ct2Dtype::F32,
        9.0,
    );
    norm(&mut w, "encoder/layer_norm", 11.0);
    let e = "encoder/layer_0";
    norm(&mut w, &format!("{e}/self_attention/layer_norm"), 50.0);
    linear(
        &mut w,
        &format!("{e}/self_attention/linear_0"),
        3 * S,
        S,
        1000.0,
    );
    linear(
        &mut w,
        &format!("{e}/self_attention/linear_1"),
        S,
        S,
        1100.0,
    );
    norm(&mut w, &format!("{e}/ffn/layer_norm"), 60.0);
    linear(&mut w, &format!("{e}/ffn/linear_0"), 4 * S, S, 1200.0);
    linear(&mut w, &format!("{e}/ffn/linear_1"), S, 4 * S, 1300.0);
    w.finish(&[("decoder/projection/weight", "decoder/embeddings/weight")])
}

/// GPT-2 byte-level strings: "Ġ" is the space byte, "åľº" the UTF-8 bytes of 场.
const TOKENIZER_JSON: &str = r#"{
  "added_tokens": [
    {"id": 4, "content": "<|endoftext|>"},
    {"id": 5, "content": "<|startoftranscript|>"}
  ],
  "model": {"type": "BPE", "vocab": {"!": 0, "Ġa": 1, "åľº": 2, "": 3, "<|endoftext|>": 4}}
}"#;

#[derive(Debug)]
struct Tensor {
    ttype: i32,
    ne: Vec<usize>,
    data: Vec<f32>,
}

struct Ggml {
    hparams: Vec<i32>,
    mel_shape: (i32, i32),
    vocab: Vec<Vec<u8>>,
    tensors: BTreeMap<String, Tensor>,
}

fn read_ggml(b: &[u8]) -> Ggml {
    let mut pos = 0;
    let i32_at = |pos: &mut usize| {
        let v = i32::from_le_bytes(b[*pos..*pos + 4].try_into().unwrap());
        *pos += 4;
        v
    };
    assert_eq!(i32_at(&mut pos) as u32, 0x6767_6d6c, "magic");
    let hparams: Vec<i32> = (0..11).map(|_| i32_at(&mut pos)).collect();
    let mel_shape = (i32_at(&mut pos), i32_at(&mut pos));
    pos += (mel_shape.0 * mel_shape.1) as usize * 4;
    let n_vocab = i32_at(&mut pos);
    let mut vocab = Vec::new();
    for _ in 0..n_vocab {
        let len = i32_at(&mut pos) as usize;
        vocab.push(b[pos..pos + len].to_vec());
        pos += len;
    }
    let mut tensors = BTreeMap::new();
    while pos < b.len() {
        let n_dims = i32_at(&mut pos) as usize;
        let name_len = i32_at(&mut pos) as usize;
        let ttype = i32_at(&mut pos);
        let ne: Vec<usize> = (0..n_dims).map(|_| i32_at(&mut pos) as usize).collect();
        let name = String::from_utf8(b[pos..pos + name_len].to_vec()).unwrap();
        pos += name_len;
        let n: usize = ne.iter().product();
        let data = if ttype == 1 {
            let d = b[pos..pos + 2 * n]
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect();
            pos += 2 * n;
            d
        } else {
            let d = b[pos..pos + 4 * n]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            pos += 4 * n;
            d
        };
        tensors.insert(name, Tensor { ttype, ne, data });
    }
    Ggml {
        hparams,
        mel_shape,
        vocab,
        tensors,
    }
}

fn convert_synthetic() -> Ggml {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.bin"), synthetic_model()).unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), TOKENIZER_JSON).unwrap();
    let out = dir.path().join("ggml.bin");
    let summary = convert_ct2_dir(dir.path(), &out).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(summary.bytes, bytes.len() as u64);
    read_ggml(&bytes)
}

fn seq(base: f32, from: usize, to: usize) -> Vec<f32> {
    (from..to).map(|i| base + i as f32).collect()
}

#[test]
fn header_carries_hparams_in_whisper_cpp_order() {
    let g = convert_synthetic();
    // n_vocab, audio ctx/state/head/layer, text ctx/state/head/layer, n_mels, ftype f16.
    assert_eq!(g.hparams, vec![6, 3, 4, 2, 1, 2, 4, 2, 1, 2, 1]);
    assert_eq!(g.mel_shape, (2, 201));
}

#[test]
fn vocab_is_raw_bytes_below_endoftext() {
    let g = convert_synthetic();
    let want: Vec<Vec<u8>> = vec![
        b"!".to_vec(),
        b" a".to_vec(),
        "场".as_bytes().to_vec(),
        vec![],
    ];
    assert_eq!(g.vocab, want);
}

#[test]
fn tensor_set_is_exactly_what_whisper_cpp_allocates() {
    let g = convert_synthetic();
    let mut want = vec![
        "encoder.conv1.weight",
        "encoder.conv1.bias",
        "encoder.conv2.weight",
        "encoder.conv2.bias",
        "encoder.positional_embedding",
        "encoder.ln_post.weight",
        "encoder.ln_post.bias",
        "decoder.token_embedding.weight",
        "decoder.positional_embedding",
        "decoder.ln.weight",
        "decoder.ln.bias",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    let attn = |p: &str| {
        [
            "ln.weight",
            "ln.bias",
            ".query.weight",
            ".query.bias",
            ".key.weight",
            ".value.weight",
            ".value.bias",
            ".out.weight",
            ".out.bias",
        ]
        .map(|s| format!("{p}{s}"))
    };
    let mlp = |b: &str| {
        [
            "mlp_ln.weight",
            "mlp_ln.bias",
            "mlp.0.weight",
            "mlp.0.bias",
            "mlp.2.weight",
            "mlp.2.bias",
        ]
        .map(|s| format!("{b}.{s}"))
    };
    let fix = |v: [String; 9]| v.map(|s| s.replace("attnln", "attn_ln"));
    want.extend(fix(attn("encoder.blocks.0.attn")));
    want.extend(mlp("encoder.blocks.0"));
    want.extend(fix(attn("decoder.blocks.0.attn")));
    want.extend(fix(attn("decoder.blocks.0.cross_attn")));
    want.extend(mlp("decoder.blocks.0"));
    want.sort();
    let got: Vec<String> = g.tensors.keys().cloned().collect();
    assert_eq!(got, want);
    // whisper.cpp's count: 11 per model, 15 per encoder layer, 24 per decoder layer.
    assert_eq!(got.len(), 11 + 15 + 24);
}

#[test]
fn fused_qkv_is_split_by_rows_and_key_bias_dropped() {
    let g = convert_synthetic();
    let t = |n: &str| &g.tensors[&format!("encoder.blocks.0.attn.{n}")];
    // Fused weight is [3S, S] with element i = 1000 + i: rows of q, then k, then v.
    assert_eq!(t("query.weight").data, seq(1000.0, 0, S * S));
    assert_eq!(t("key.weight").data, seq(1000.0, S * S, 2 * S * S));
    assert_eq!(t("value.weight").data, seq(1000.0, 2 * S * S, 3 * S * S));
    assert_eq!(t("query.bias").data, seq(1500.0, 0, S));
    assert_eq!(t("value.bias").data, seq(1500.0, 2 * S, 3 * S));
    assert!(!g.tensors.contains_key("encoder.blocks.0.attn.key.bias"));
    // Cross attention: K|V fused in linear_1 (base 400), key first.
    let c = |n: &str| &g.tensors[&format!("decoder.blocks.0.cross_attn.{n}")];
    assert_eq!(c("query.weight").data, seq(300.0, 0, S * S));
    assert_eq!(c("key.weight").data, seq(400.0, 0, S * S));
    assert_eq!(c("value.weight").data, seq(400.0, S * S, 2 * S * S));
    assert_eq!(c("value.bias").data, seq(900.0, S, 2 * S));
    assert_eq!(c("out.bias").data, seq(1100.0, 0, S));
    assert_eq!(
        g.tensors["decoder.blocks.0.attn.out.weight"].data,
        seq(200.0, 0, S * S)
    );
}

#[test]
fn storage_types_and_dims_follow_whisper_cpp() {
    let g = convert_synthetic();
    let t = |n: &str| &g.tensors[n];
    // Weights f16, dims innermost-first.
    assert_eq!(
        (
            t("encoder.conv1.weight").ttype,
            &t("encoder.conv1.weight").ne[..]
        ),
        (1, &[3, MELS, S][..])
    );
    assert_eq!(t("encoder.blocks.0.mlp.0.weight").ne, vec![S, 4 * S]);
    assert_eq!(t("encoder.blocks.0.mlp.0.weight").ttype, 1);
    assert_eq!(t("decoder.token_embedding.weight").ttype, 1);
    assert_eq!(t("decoder.token_embedding.weight").ne, vec![S, VOCAB_ROWS]);
    // Conv biases are [n_state, 1] in f32: ne = [1, n_state].
    assert_eq!(
        (
            t("encoder.conv1.bias").ttype,
            &t("encoder.conv1.bias").ne[..]
        ),
        (0, &[1, S][..])
    );
    assert_eq!(t("encoder.conv2.bias").ttype, 0);
    // bf16 source widened exactly (small integers are exact in bf16).
    assert_eq!(t("encoder.conv2.bias").data, seq(8.0, 0, S));
    // Positional embeddings f32 even though they are 2-D.
    assert_eq!(t("encoder.positional_embedding").ttype, 0);
    assert_eq!(t("encoder.positional_embedding").ne, vec![S, 3]);
    assert_eq!(t("decoder.positional_embedding").ttype, 0);
    // 1-D tensors f32.
    for n in [
        "encoder.ln_post.weight",
        "decoder.blocks.0.attn.query.bias",
        "decoder.ln.bias",
    ] {
        assert_eq!((t(n).ttype, t(n).ne.len()), (0, 1), "{n}");
    }
    assert_eq!(t("decoder.ln.bias").data, seq(13.0, 0, S));
}

#[test]
fn malformed_ct2_input_is_an_error_not_a_panic() {
    let good = synthetic_model();
    for cut in [0, 3, 10, 40, good.len() / 2, good.len() - 1] {
        assert!(ct2::parse(&good[..cut]).is_err(), "cut at {cut}");
    }
    let mut bad_version = good.clone();
    bad_version[0] = 99;
    assert!(matches!(
        ct2::parse(&bad_version),
        Err(ConvertError::Unsupported(_))
    ));
}
