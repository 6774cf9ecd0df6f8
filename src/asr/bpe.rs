//! Text → Whisper tokens the way Whisper's own tokenizer cuts them (byte-level BPE).
//!
//! Why not whisper.cpp's `whisper_tokenize`: it matches the longest vocabulary entries
//! greedily over a whole run of non-ASCII bytes, so it may cut Chinese text into tokens
//! that straddle characters and that the model never writes; scoring such a cut
//! (`rescore.rs`) gives a fluent sentence the log-probability of nonsense. OpenAI's
//! tokenizer (tiktoken) merges byte pairs in the order of their rank, and a token's rank is
//! its id, so the vocabulary alone is enough to reproduce it: split the text into runs of
//! letters, digits, spaces and other marks (GPT-2's pattern, an optional leading space
//! kept with the run after it), then in each run merge, again and again, the adjacent pair
//! whose joined bytes are the lowest-ranked token.

use std::collections::HashMap;

/// One model's vocabulary, by bytes.
#[derive(Debug)]
pub struct Bpe {
    rank: HashMap<Box<[u8]>, i32>,
}

#[derive(PartialEq, Clone, Copy)]
enum Class {
    Letter,
    Digit,
    Space,
    Other,
}

fn class(c: char) -> Class {
    if c.is_alphabetic() {
        Class::Letter
    } else if c.is_numeric() {
        Class::Digit
    } else if c.is_whitespace() {
        Class::Space
    } else {
        Class::Other
    }
}

impl Bpe {
    /// `token_bytes[id]` = the bytes of text token `id` (ids past the text tokens omitted).
    pub fn new(token_bytes: &[Box<[u8]>]) -> Bpe {
        let mut rank = HashMap::with_capacity(token_bytes.len());
        for (id, b) in token_bytes.iter().enumerate() {
            if !b.is_empty() {
                // Should bytes repeat, the first (lowest) rank is the one BPE merges by.
                rank.entry(b.clone()).or_insert(id as i32);
            }
        }
        Bpe { rank }
    }

    /// The tokens of `text`; `None` if some byte has no token (a vocabulary without
    /// single-byte tokens is not Whisper's).
    pub fn encode(&self, text: &str) -> Option<Vec<i32>> {
        let mut out = Vec::new();
        for run in runs(text) {
            self.encode_run(run.as_bytes(), &mut out)?;
        }
        Some(out)
    }

    fn encode_run(&self, bytes: &[u8], out: &mut Vec<i32>) -> Option<()> {
        // Piece boundaries: piece k is bytes[cut[k]..cut[k + 1]].
        let mut cut: Vec<usize> = (0..=bytes.len()).collect();
        loop {
            let best = (0..cut.len().saturating_sub(2))
                .filter_map(|k| {
                    self.rank
                        .get(&bytes[cut[k]..cut[k + 2]])
                        .map(|&rank| (rank, k))
                })
                .min();
            let Some((_, k)) = best else { break };
            cut.remove(k + 1);
        }
        for w in cut.windows(2) {
            out.push(*self.rank.get(&bytes[w[0]..w[1]])?);
        }
        Some(())
    }
}

/// GPT-2's pre-tokenization, without the English contractions: runs of one class, a single
/// space going with the letters, digits or marks after it.
fn runs(text: &str) -> Vec<&str> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut prev: Option<Class> = None;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        let cl = class(c);
        let Some(p) = prev else {
            prev = Some(cl);
            continue;
        };
        if cl == p {
            continue;
        }
        if p == Class::Space && cl != Class::Space {
            // The run's last space joins what follows it.
            let last_space = chars[k - 1].0;
            if last_space > start {
                runs.push(&text[start..last_space]);
                start = last_space;
            }
            prev = Some(cl);
            continue;
        }
        runs.push(&text[start..i]);
        start = i;
        prev = Some(cl);
    }
    if start < text.len() {
        runs.push(&text[start..]);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_into_runs_as_gpt2_does() {
        assert_eq!(runs("燃气泄漏了，快来"), ["燃气泄漏了", "，", "快来"]);
        assert_eq!(runs("Room 302 坏了"), ["Room", " 302", " 坏了"]);
        assert_eq!(runs("a  b"), ["a", " ", " b"]);
    }

    #[test]
    fn pairs_merge_lowest_rank_first() {
        // Bytes a, b, c, then "bc" ranked before "ab": "abc" is a + bc, not ab + c.
        let vocab: Vec<Box<[u8]>> = [&b"a"[..], b"b", b"c", b"bc", b"ab", b"abc"]
            .iter()
            .map(|b| Box::from(*b))
            .collect();
        let bpe = Bpe::new(&vocab);
        // a + bc = "abc"? Only if "abc" ranks; it does (id 5): a, bc → abc.
        assert_eq!(bpe.encode("abc"), Some(vec![5]));
        let no_abc = Bpe::new(&vocab[..5]);
        assert_eq!(no_abc.encode("abc"), Some(vec![0, 3]));
        assert_eq!(no_abc.encode("abd"), None);
    }
}
