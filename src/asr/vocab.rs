//! Whisper's vocabulary as whisper.cpp wants it: raw token bytes, by id.
//!
//! `tokenizer.json` (Hugging Face format) stores GPT-2 byte-level BPE tokens as strings in which
//! every byte is replaced by a printable code point (`bytes_to_unicode` in OpenAI's GPT-2
//! `encoder.py`). whisper.cpp reads the original bytes, so the mapping is inverted here. Only
//! ids below `<|endoftext|>` are written; whisper.cpp names the special tokens itself.

use std::collections::HashMap;

use super::convert::ConvertError;

/// GPT-2's byte → code point table: printable Latin-1 bytes map to themselves, the other 68
/// bytes to U+0100.. in byte order.
pub fn bytes_to_unicode() -> [char; 256] {
    let printable = |b: u32| (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let cp = if printable(b) {
            b
        } else {
            n += 1;
            255 + n
        };
        table[b as usize] = char::from_u32(cp).expect("code points below U+0200 are valid");
    }
    table
}

/// Decode one byte-level token string back to bytes.
pub fn token_bytes(token: &str, inverse: &HashMap<char, u8>) -> Result<Vec<u8>, ConvertError> {
    token
        .chars()
        .map(|c| {
            inverse
                .get(&c)
                .copied()
                .ok_or_else(|| ConvertError::Tokenizer(format!("{token:?}: {c:?} is not a byte")))
        })
        .collect()
}

/// Token bytes for ids `0..id(<|endoftext|>)`; ids without an entry (Whisper's multilingual
/// vocabulary has a hole at 50256) are empty, as in whisper.cpp's own models.
pub fn vocab_from_tokenizer_json(json: &str) -> Result<Vec<Vec<u8>>, ConvertError> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| ConvertError::Tokenizer(e.to_string()))?;
    let eot = v["added_tokens"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["content"] == "<|endoftext|>"))
        .and_then(|t| t["id"].as_u64())
        .or_else(|| v["model"]["vocab"]["<|endoftext|>"].as_u64())
        .ok_or_else(|| ConvertError::Tokenizer("no <|endoftext|> token".into()))?
        as usize;
    let map = v["model"]["vocab"]
        .as_object()
        .ok_or_else(|| ConvertError::Tokenizer("no model.vocab object".into()))?;
    let inverse: HashMap<char, u8> = bytes_to_unicode()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect();
    let mut out = vec![Vec::new(); eot];
    for (tok, id) in map {
        let id = id
            .as_u64()
            .ok_or_else(|| ConvertError::Tokenizer(format!("{tok:?}: id is not a number")))?
            as usize;
        if id < eot {
            out[id] = token_bytes(tok, &inverse)?;
        }
    }
    Ok(out)
}
