//! Keyword biasing: while Whisper decodes, the tokens that would spell one of the hotline's
//! words get a bonus, most of all once the word is under way.
//!
//! Why: an initial prompt with the table's words (`prompt.rs`) tilts the whole decoding a
//! little; the words themselves still lose to a same-sounding everyday word ("运气表" for
//! 燃气表, "不办" for 补办, "叫不行" for 叫不醒). The misses that matter most are those words:
//! the classifier routes on them and an urgent word acts at once. Contextual biasing as ASR
//! systems do it with a prefix tree (a "context graph"): at every decoding step each suffix
//! of the text so far that is the beginning of a listed word makes that word's next token
//! likelier. The bonus is added to logits before whisper.cpp's softmax, so it only moves
//! probability between tokens the audio already allows. That is not nothing on sound that
//! resembles speech: beam 5 with the bias wrote "住房公积金" into speech played backwards
//! that greedy decoding had rejected, and the bonus also raises the token probabilities the
//! guards judge by. So the bias serves the second pass, which runs only on a message whose
//! live text survived the guards (`AsrConfig::second_pass_wanted`; BENCHMARKS.md §6).
//!
//! Byte-level, because Whisper's tokens are bytes: a rare character may be two tokens, and
//! "燃气" may be one token or two. The table maps each listed word's prefixes (in bytes) to
//! the vocabulary tokens that continue it within the word; the decoder hook looks up the
//! suffixes of the text it has written. A listed word already whole is not pushed further
//! into a longer listed word: measured, "燃气师傅" became "燃气泄漏" (a false urgent word).
//! Building the table once per model costs a few milliseconds; a step costs one lookup per
//! suffix length, no allocation.

use std::collections::HashMap;

/// Longest word biased, in bytes (a word of 8 Han characters); longer words are skipped.
const MAX_WORD_BYTES: usize = 24;

/// The bonus table of one model's vocabulary and one list of words.
#[derive(Debug)]
pub struct Bias {
    /// A word's first `p` bytes (empty: no word begun yet) → the tokens that continue it.
    next: HashMap<Box<[u8]>, Vec<i32>>,
    /// Text tokens' bytes, by id (ids at and past end-of-text are not text).
    token_bytes: Vec<Box<[u8]>>,
    /// Longest prefix worth looking up.
    longest: usize,
    /// Logits per decoding step: the whole vocabulary, special tokens included.
    pub n_vocab: usize,
    /// Logit bonus of a token that begins a word.
    start_bonus: f32,
    /// Logit bonus of a token that continues a word already begun.
    continue_bonus: f32,
}

impl Bias {
    /// The table for `words` in a vocabulary whose text tokens are `token_bytes` (index =
    /// token id; end-of-text's id is the length; `n_vocab` counts the special tokens too).
    /// A token begins a word only if it holds at least the word's whole first character (a
    /// lone lead byte would favour every character that shares it); inside a word any
    /// continuing token counts.
    pub fn new(
        words: &[String],
        token_bytes: Vec<Box<[u8]>>,
        n_vocab: usize,
        (start_bonus, continue_bonus): (f32, f32),
    ) -> Bias {
        let by_bytes: HashMap<&[u8], i32> = token_bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| !b.is_empty())
            .map(|(id, b)| (&b[..], id as i32))
            .collect();
        let mut next: HashMap<Box<[u8]>, Vec<i32>> = HashMap::new();
        let mut longest = 0;
        let listed = |prefix: &[u8]| words.iter().any(|w| w.as_bytes() == prefix);
        for word in words {
            let w = word.as_bytes();
            if w.is_empty() || w.len() > MAX_WORD_BYTES {
                continue;
            }
            longest = longest.max(w.len() - 1);
            let first_char = word.chars().next().map_or(1, char::len_utf8);
            for p in 0..w.len() {
                // A word already whole is not pushed to grow into a longer one: "燃气" is
                // found either way, and "燃气师傅" must not become "燃气泄漏", an urgent word.
                if p > 0 && listed(&w[..p]) {
                    break;
                }
                let min_len = if p == 0 { first_char } else { 1 };
                for end in p + min_len..=w.len() {
                    if let Some(&id) = by_bytes.get(&w[p..end]) {
                        let ids = next.entry(w[..p].into()).or_default();
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                }
            }
        }
        Bias {
            next,
            token_bytes,
            longest,
            n_vocab,
            start_bonus,
            continue_bonus,
        }
    }

    /// Add the bonuses for the next token after `history` (the tokens decoded so far in
    /// this window, oldest first) to `logits` (one per vocabulary entry).
    pub fn apply(&self, history: impl DoubleEndedIterator<Item = i32>, logits: &mut [f32]) {
        // The last `longest` bytes of text, back to the last non-text token (a timestamp
        // ends a segment: no word spans it).
        let mut tail = [0u8; MAX_WORD_BYTES];
        let mut len = 0;
        'collect: for id in history.rev() {
            let Some(bytes) = usize::try_from(id)
                .ok()
                .and_then(|i| self.token_bytes.get(i))
            else {
                break;
            };
            for &b in bytes.iter().rev() {
                if len == self.longest {
                    break 'collect;
                }
                len += 1;
                tail[MAX_WORD_BYTES - len] = b;
            }
        }
        let tail = &tail[MAX_WORD_BYTES - len..];
        for p in 0..=tail.len() {
            // A word begins only where a character does.
            let bonus = if p == 0 {
                if !ends_at_char_boundary(tail) {
                    continue;
                }
                self.start_bonus
            } else {
                self.continue_bonus
            };
            if let Some(ids) = self.next.get(&tail[tail.len() - p..]) {
                for &id in ids {
                    if let Some(l) = logits.get_mut(id as usize) {
                        *l += bonus;
                    }
                }
            }
        }
    }
}

/// `bytes` end with a whole UTF-8 character (or are empty).
fn ends_at_char_boundary(bytes: &[u8]) -> bool {
    // Walk back over continuation bytes (10xxxxxx) to the lead byte.
    let cont = bytes
        .iter()
        .rev()
        .take_while(|&&b| b & 0xc0 == 0x80)
        .count();
    let Some(&lead) = bytes.len().checked_sub(cont + 1).map(|i| &bytes[i]) else {
        return cont == 0;
    };
    let need = match lead {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    };
    cont + 1 == need
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy vocabulary: whole characters, two words, and the three bytes of 燃 split up.
    fn vocab() -> Vec<Box<[u8]>> {
        let mut v: Vec<Box<[u8]>> = [
            "气", "泄", "漏", "运", "燃", "燃气", "表", "。", "补", "办", "不",
        ]
        .iter()
        .map(|s| s.as_bytes().into())
        .collect();
        let ran = "燃".as_bytes();
        v.push(ran[..2].into());
        v.push(ran[2..].into());
        v
    }

    fn id(v: &[Box<[u8]>], s: &[u8]) -> usize {
        v.iter().position(|b| &b[..] == s).unwrap()
    }

    fn bonuses(words: &[&str], history: &[&str]) -> Vec<(String, f32)> {
        let v = vocab();
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let bias = Bias::new(&words, v.clone(), v.len() + 5, (1.0, 3.0));
        let history: Vec<i32> = history
            .iter()
            .map(|s| id(&v, s.as_bytes()) as i32)
            .collect();
        let mut logits = vec![0.0; v.len() + 5];
        bias.apply(history.into_iter(), &mut logits);
        logits
            .iter()
            .enumerate()
            .filter(|(_, &l)| l != 0.0)
            .map(|(i, &l)| (String::from_utf8_lossy(&v[i]).into_owned(), l))
            .collect()
    }

    #[test]
    fn a_word_begins_with_a_whole_character_and_continues_with_any_token() {
        // Nothing written yet: 燃 and 燃气 may begin 燃气泄漏; the lone lead bytes may not.
        assert_eq!(
            bonuses(&["燃气泄漏"], &[]),
            vec![("燃".into(), 1.0), ("燃气".into(), 1.0)]
        );
        // After 燃: 气 continues the word (and, a new word could begin again: 燃).
        assert_eq!(
            bonuses(&["燃气泄漏"], &["运", "燃"]),
            vec![("气".into(), 3.0), ("燃".into(), 1.0), ("燃气".into(), 1.0)]
        );
        // After 燃气泄, whatever token spelled the start: 漏.
        let after = bonuses(&["燃气泄漏"], &["燃气", "泄"]);
        assert!(after.contains(&("漏".into(), 3.0)), "{after:?}");
    }

    #[test]
    fn a_whole_word_is_not_pushed_into_a_longer_one() {
        // After 燃气 (a word of its own) nothing favours 泄漏; a new word may begin.
        assert_eq!(
            bonuses(&["燃气", "燃气泄漏"], &["燃气"]),
            vec![("燃".into(), 1.0), ("燃气".into(), 1.0)]
        );
        // Without 燃气 listed, 燃气泄漏 is under way after 燃气: 泄 continues it.
        assert!(bonuses(&["燃气泄漏"], &["燃气"]).contains(&("泄".into(), 3.0)));
    }

    #[test]
    fn inside_a_split_character_only_its_own_bytes_continue() {
        let v = vocab();
        let ran = "燃".as_bytes();
        let words = vec!["燃气".to_string()];
        let bias = Bias::new(&words, v.clone(), v.len() + 5, (1.0, 3.0));
        let mut logits = vec![0.0; v.len()];
        bias.apply([id(&v, &ran[..2]) as i32].into_iter(), &mut logits);
        // Mid-character: no word may begin, the character's last byte continues it.
        let boosted: Vec<usize> = (0..v.len()).filter(|&i| logits[i] != 0.0).collect();
        assert_eq!(boosted, vec![id(&v, &ran[2..])]);
    }

    #[test]
    fn a_timestamp_or_other_special_token_ends_the_word() {
        let v = vocab();
        let words = vec!["燃气".to_string()];
        let bias = Bias::new(&words, v.clone(), v.len() + 5, (1.0, 3.0));
        let mut logits = vec![0.0; v.len() + 5];
        let special = v.len() as i32 + 2;
        bias.apply(
            [id(&v, "燃".as_bytes()) as i32, special].into_iter(),
            &mut logits,
        );
        assert_eq!(logits[id(&v, "气".as_bytes())], 0.0);
        assert_eq!(logits[id(&v, "燃".as_bytes())], 1.0);
    }

    #[test]
    fn utf8_boundaries() {
        assert!(ends_at_char_boundary(b""));
        assert!(ends_at_char_boundary("a燃".as_bytes()));
        assert!(!ends_at_char_boundary(&"燃".as_bytes()[..2]));
        assert!(!ends_at_char_boundary(&"燃".as_bytes()[1..]));
    }
}
