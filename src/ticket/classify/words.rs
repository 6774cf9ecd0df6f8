//! Word boundaries for Chinese, so that keywords and urgent words match words, not raw
//! substrings: "打不着火" (the stove will not light) is not "着火" (on fire), and "不漏气"
//! is not "漏气".
//!
//! Text is cut into clauses at punctuation and each clause into words by jieba, with the
//! hotline vocabulary (every keyword, every urgent word and the table's `[segmenter] words`)
//! added at a frequency high enough that jieba keeps them whole. A word then matches where
//! a run of whole words spells it. A topic keyword also matches at the start of a longer
//! word: Chinese compounds put the modifier first, so "公交车" and "垃圾桶" are about "公交"
//! and "垃圾", while a word that merely ends with one ("打不着火") is not about it; urgent
//! words never match inside a word. Words also match by sound, because the transcriber
//! writes homophones ("然气泄漏" for "燃气泄漏", "煤气位" for "煤气味", "超时" for "超市"):
//! urgent words of three or more characters by toned pinyin, where a chance homophone is
//! rare (a false alarm sends a crew); topic keywords of two or more characters by pinyin
//! without tones, which also catches "幽儿圆" for "幼儿园" (a wrong topic keyword only
//! weighs in the category, beside the model; cross-validated on examples written as
//! homophones by [`super::misheard`], BENCHMARKS.md §7).
//! A negation a few words before an urgent word in the same clause ("没有漏气", "不是着火")
//! cancels it; an A-not-A question ("是不是漏气") does not, because it is a worry, not a no.

use jieba_rs::Jieba;
use pinyin::{ToPinyin, ToPinyinMulti};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Frequency given to hotline words: far above jieba's common words, so a listed word is
/// never split, and a longer listed word ("打不着火") wins over a shorter one inside it.
const HOTLINE_FREQ: usize = 200_000;
/// Longest keyword, in characters, that matching looks for (longer ones never match).
const MAX_WORD_CHARS: usize = 12;
/// How many words before an urgent word a negation may stand.
const NEGATION_REACH: usize = 3;
/// Words that say "not" / "no" / "without".
const NEGATORS: &[&str] = &[
    "不",
    "没",
    "没有",
    "不是",
    "并不是",
    "并没有",
    "并非",
    "无",
    "未",
    "并未",
    "从未",
    "从没",
    "没什么",
    "no",
    "not",
    "isn't",
    "don't",
    "doesn't",
    "never",
    "without",
];

/// Questions that contain a negator but ask rather than deny.
const A_NOT_A: &[&str] = &["是不是", "有没有", "会不会", "是没是", "算不算"];

/// jieba's embedded dictionary, loaded once per process (it takes longer than training the
/// classifier) and cloned for each table, which adds its own words.
fn base_dictionary() -> &'static Jieba {
    static BASE: OnceLock<Jieba> = OnceLock::new();
    BASE.get_or_init(Jieba::new)
}

/// Lower case, no whitespace: the form in which words and keywords are compared. Latin
/// words stay apart ("street light" is not "streetlight"), as [`join`] keeps them.
pub fn normalize(s: &str) -> String {
    let mut out = String::new();
    for piece in s.split_whitespace() {
        join(&mut out, &piece.to_lowercase());
    }
    out
}

/// Appends a word to a run: a space only between two Latin words.
fn join(run: &mut String, word: &str) {
    let latin = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if latin(run.chars().last()) && latin(word.chars().next()) {
        run.push(' ');
    }
    run.push_str(word);
}

/// A clause of the text: its words, in order, normalized.
pub type Clause = Vec<String>;

/// A word or phrase found in the text.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// The listed word (as written in the table).
    pub word: String,
    /// What the text said, when it only sounded like the word.
    pub heard: Option<String>,
    /// A negation stood before it in the same clause.
    pub negated: bool,
}

/// The segmenter with the hotline vocabulary, and the look-up tables of listed words.
#[derive(Clone)]
pub struct Words {
    jieba: Jieba,
    /// Normalized listed word → indices into `listed`.
    exact: HashMap<String, Vec<usize>>,
    /// Toned pinyin of sound-matchable words → indices into `listed`.
    by_sound: HashMap<String, Vec<usize>>,
    /// Pinyin without tones of topic keywords → indices into `listed`.
    kw_by_sound: HashMap<String, Vec<usize>>,
    /// Per listed word: may it match at the start of a longer word.
    as_prefix: Vec<bool>,
    /// The words as the table writes them.
    listed: Vec<String>,
}

impl std::fmt::Debug for Words {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Words")
            .field("listed", &self.listed.len())
            .finish()
    }
}

impl Words {
    /// `listed`: the words to find (keywords and urgent words; index = caller's id);
    /// `urgent`: which of them are urgent words (matched by sound too, never as a prefix);
    /// `extra`: vocabulary that only shapes the segmentation (compounds like "打不着火").
    pub fn new(listed: &[String], urgent: &[bool], extra: &[String]) -> Words {
        let sound = urgent;
        let mut jieba = base_dictionary().clone();
        for w in listed.iter().chain(extra) {
            let n = normalize(w);
            if n.chars().count() >= 2 && !n.is_ascii() {
                jieba.add_word(&n, Some(HOTLINE_FREQ * n.chars().count()), None);
            }
        }
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_sound: HashMap<String, Vec<usize>> = HashMap::new();
        let mut kw_by_sound: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, w) in listed.iter().enumerate() {
            let n = normalize(w);
            if sound.get(i).copied().unwrap_or(false)
                && !n.is_ascii()
                && n.chars().count() >= MIN_SOUND_CHARS
            {
                by_sound.entry(pinyin_key(&n)).or_default().push(i);
            }
            if !sound.get(i).copied().unwrap_or(false) && !n.is_ascii() && n.chars().count() >= 2 {
                kw_by_sound.entry(toneless_key(&n)).or_default().push(i);
            }
            exact.entry(n).or_default().push(i);
        }
        Words {
            jieba,
            exact,
            by_sound,
            kw_by_sound,
            as_prefix: urgent.iter().map(|u| !u).collect(),
            listed: listed.to_vec(),
        }
    }

    /// The text in clauses of words (punctuation separates clauses and is dropped).
    pub fn clauses(&self, text: &str) -> Vec<Clause> {
        let lower = text.to_lowercase();
        lower
            .split(is_clause_break)
            .filter(|c| !c.trim().is_empty())
            .map(|c| {
                self.jieba
                    .cut(c, true)
                    .into_iter()
                    .map(|t| normalize(t.word))
                    .filter(|w| !w.is_empty())
                    .collect()
            })
            .collect()
    }

    /// Every listed word spelled (or, where allowed, sounded) by a run of whole words, with
    /// its index; a word found twice is reported once (un-negated wins).
    pub fn find(&self, clauses: &[Clause]) -> Vec<(usize, Hit)> {
        let mut found: Vec<(usize, Hit)> = Vec::new();
        let mut note = |i: usize, hit: Hit| match found.iter_mut().find(|(j, _)| *j == i) {
            Some((_, h)) => {
                if h.negated && !hit.negated {
                    *h = hit;
                }
            }
            None => found.push((i, hit)),
        };
        for clause in clauses {
            for (start, word) in clause.iter().enumerate() {
                // Topic keywords at the start of a longer Chinese word.
                if word.is_ascii() {
                    continue;
                }
                let chars: Vec<(usize, char)> = word.char_indices().collect();
                for &(cut, _) in chars.iter().skip(1) {
                    for &i in self.exact.get(&word[..cut]).into_iter().flatten() {
                        if self.as_prefix[i] {
                            let negated = negated_before(clause, start);
                            let hit = Hit {
                                word: self.listed[i].clone(),
                                heard: None,
                                negated,
                            };
                            note(i, hit);
                        }
                    }
                }
            }
            for start in 0..clause.len() {
                let mut run = String::new();
                for end in start..clause.len() {
                    join(&mut run, &clause[end]);
                    if run.chars().count() > MAX_WORD_CHARS {
                        break;
                    }
                    let (ids, heard) = match self.exact.get(&run) {
                        Some(ids) => (ids, None),
                        None => {
                            let urgent = (run.chars().count() >= MIN_SOUND_CHARS)
                                .then(|| readings(&run).find_map(|k| self.by_sound.get(&k)))
                                .flatten();
                            match urgent.or_else(|| self.kw_by_sound.get(&toneless_key(&run))) {
                                Some(ids) => (ids, Some(run.clone())),
                                None => continue,
                            }
                        }
                    };
                    let negated = negated_before(clause, start);
                    for &i in ids {
                        let hit = Hit {
                            word: self.listed[i].clone(),
                            heard: heard.clone(),
                            negated,
                        };
                        note(i, hit);
                    }
                }
            }
        }
        found
    }
}

fn is_clause_break(c: char) -> bool {
    matches!(
        c,
        '，' | '。'
            | '！'
            | '？'
            | '；'
            | '：'
            | '、'
            | ','
            | '.'
            | '!'
            | '?'
            | ';'
            | ':'
            | '\n'
            | '…'
            | '（'
            | '）'
            | '('
            | ')'
            | '“'
            | '”'
            | '"'
    )
}

/// A negation within [`NEGATION_REACH`] words before `start` in the same clause, unless
/// it is part of an A-not-A question ("是不是", however jieba cut it).
fn negated_before(clause: &Clause, start: usize) -> bool {
    let window = &clause[start.saturating_sub(NEGATION_REACH)..start];
    let joined = window.concat();
    window.iter().any(|w| NEGATORS.contains(&w.as_str()))
        && !A_NOT_A.iter().any(|q| joined.contains(q))
}

/// The syllable a Chinese character is read as, without its tone (`None`: not Chinese).
/// The transcriber's mistakes are mostly characters of the same sound ("超时" for "超市",
/// "幽儿圆" for "幼儿园"), often with another tone ("骑火" for "起火").
pub fn toneless(c: char) -> Option<&'static str> {
    c.to_pinyin().map(|p| p.plain())
}

/// Shortest urgent word matched by its sound: a chance homophone of two characters is
/// common ("期货" sounds like 起火), of three rare, and a false alarm sends a crew.
const MIN_SOUND_CHARS: usize = 3;
/// Most reading combinations of a run tried against the urgent words' sounds.
const MAX_READINGS: usize = 16;

/// The toned keys of `run` for each combination of its characters' readings (at most
/// [`MAX_READINGS`]), the usual reading first: a character read two ways stands for either
/// ("然气泄露": 露 is lù, and lòu as in 泄漏).
fn readings(run: &str) -> impl Iterator<Item = String> {
    let mut keys = vec![String::new()];
    for c in run.chars() {
        let options: Vec<String> = match c.to_pinyin_multi() {
            Some(multi) => multi
                .into_iter()
                .map(|p| p.with_tone_num_end().to_string())
                .collect(),
            None => vec![c.to_string()],
        };
        let mut next = Vec::with_capacity(keys.len() * options.len());
        for k in &keys {
            for o in &options {
                if next.len() < MAX_READINGS {
                    next.push(format!("{k}{o} "));
                }
            }
        }
        keys = next;
    }
    keys.into_iter()
}

/// Pinyin without tones of every character ("chao shi "), as [`pinyin_key`].
fn toneless_key(s: &str) -> String {
    sound_key(s, toneless)
}

/// Toned pinyin of every character ("ran2 qi4 …").
fn pinyin_key(s: &str) -> String {
    sound_key(s, |c| c.to_pinyin().map(|p| p.with_tone_num_end()))
}

/// Each character's reading by `reading`, a space after each; characters without a reading
/// stand for themselves, so only Chinese can sound alike.
fn sound_key(s: &str, reading: impl Fn(char) -> Option<&'static str>) -> String {
    let mut key = String::new();
    for c in s.chars() {
        match reading(c) {
            Some(p) => key.push_str(p),
            None => key.push(c),
        }
        key.push(' ');
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(listed: &[&str], extra: &[&str]) -> Words {
        let listed: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
        let sound = vec![true; listed.len()];
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Words::new(&listed, &sound, &extra)
    }

    fn found(w: &Words, text: &str) -> Vec<(String, bool)> {
        w.find(&w.clauses(text))
            .into_iter()
            .map(|(_, h)| (h.word, h.negated))
            .collect()
    }

    #[test]
    fn a_word_inside_a_longer_word_is_not_that_word() {
        let w = words(&["着火", "漏气"], &["打不着火"]);
        assert!(found(&w, "家里的天然气突然打不着火了").is_empty());
        assert_eq!(found(&w, "对面楼着火了"), vec![("着火".to_string(), false)]);
    }

    #[test]
    fn negation_before_an_urgent_word_in_the_same_clause_cancels_it() {
        let w = words(&["漏气", "着火", "煤气味"], &[]);
        assert_eq!(found(&w, "检查过了没有漏气"), vec![("漏气".into(), true)]);
        assert_eq!(found(&w, "不是着火，是烧垃圾"), vec![("着火".into(), true)]);
        assert_eq!(found(&w, "我们没闻到煤气味"), vec![("煤气味".into(), true)]);
        // A worried question is not a denial; a negation in another clause does not reach.
        assert_eq!(
            found(&w, "不知道是不是漏气了"),
            vec![("漏气".into(), false)]
        );
        assert_eq!(
            found(&w, "我没事，但是着火了"),
            vec![("着火".into(), false)]
        );
    }

    #[test]
    fn long_urgent_words_match_their_homophones() {
        let w = words(&["燃气泄漏", "煤气味", "着火"], &[]);
        let hits = w.find(&w.clauses("然气泄漏了快来人"));
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].1.word, "燃气泄漏");
        assert_eq!(hits[0].1.heard.as_deref(), Some("然气泄漏"));
        assert_eq!(found(&w, "屋里有煤气位"), vec![("煤气味".into(), false)]);
        // A character with two readings stands for either: 露 (lù) is also lòu, as in 泄漏.
        assert_eq!(
            found(&w, "然气泄露了快来人"),
            vec![("燃气泄漏".into(), false)]
        );
        // Two-character words match only as written.
        assert!(found(&w, "我在找货").is_empty());
    }

    #[test]
    fn topic_keywords_match_homophones_in_any_tone_urgent_words_of_two_characters_do_not() {
        let listed: Vec<String> = ["超市", "幼儿园", "起火"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let w = Words::new(&listed, &[false, false, true], &[]);
        let hits = w.find(&w.clauses("超时卖过期的牛奶"));
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].1.word, "超市");
        assert_eq!(hits[0].1.heard.as_deref(), Some("超时"));
        // Another tone on every syllable: 幽 yōu for 幼 yòu, 圆 yuán for 园 yuán.
        assert_eq!(found(&w, "幽儿圆收费太高"), vec![("幼儿园".into(), false)]);
        // Only whole words make the run: 市场 does not hold a sound of 超市.
        assert!(found(&w, "菜市场很吵").is_empty());
        // A two-character urgent word is never matched by its sound ("骑火" is no fire
        // alarm: 期货 and 其货 sound the same).
        assert!(found(&w, "电动车骑火了").is_empty());
        assert!(found(&w, "我在做期货").is_empty());
    }

    #[test]
    fn topic_keywords_match_at_the_start_of_a_word_urgent_words_do_not() {
        let listed: Vec<String> = ["公交", "着火"].iter().map(|s| s.to_string()).collect();
        let w = Words::new(&listed, &[false, true], &["着火点".to_string()]);
        assert_eq!(
            found(&w, "公交车司机不等人"),
            vec![("公交".to_string(), false)]
        );
        assert!(found(&w, "找到着火点了").is_empty());
    }

    #[test]
    fn english_keywords_match_whole_words_case_insensitively() {
        let w = words(&["street light", "fire"], &[]);
        assert_eq!(
            found(&w, "The STREET LIGHT is out"),
            vec![("street light".into(), false)]
        );
        assert!(found(&w, "fireworks at the roadside").is_empty());
        assert_eq!(found(&w, "There is no fire"), vec![("fire".into(), true)]);
    }
}
