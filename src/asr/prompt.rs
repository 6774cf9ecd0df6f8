//! Initial prompts: the words a hotline's callers use, put in front of Whisper.
//!
//! Whisper base at 8 kHz writes homophones ("暖器" for 暖气, "然气" for 燃气); an initial
//! prompt that already contains the hotline's vocabulary tilts the decoder towards the
//! written form the classifier knows. The words come from the classification table (the
//! gateway hands them over: this module knows no tickets). The prompt is capped: whisper.cpp
//! keeps only the last 224 prompt tokens, and a long list costs decoder time on every part.

/// The prompt used for Mandarin when nothing else is configured: Simplified characters steer
/// Whisper away from Traditional output.
pub const ZH_BASE: &str = "以下是普通话的句子，这是一段市民热线的留言。";

/// Characters of vocabulary at most in a prompt (about 100–150 tokens of Whisper's BPE).
pub const MAX_VOCABULARY_CHARS: usize = 120;

/// What `[asr] initial_prompt = "auto"` (and `second_pass_prompt`) means: [`ZH_BASE`]
/// followed by the classification table's words (`groups`, as `Rules::vocabulary` gives
/// them), at most [`MAX_VOCABULARY_CHARS`] of them.
pub fn auto(groups: &[Vec<String>]) -> String {
    with_vocabulary(ZH_BASE, groups, MAX_VOCABULARY_CHARS)
}

/// A table word worth naming to Whisper: two characters or more, not ASCII (a single
/// character or an English word would steer far more than the word itself).
fn usable(w: &str) -> bool {
    w.chars().count() >= 2 && !w.is_ascii()
}

/// The words decoding is biased towards (`AsrConfig::keywords`): every word of `groups`
/// of two characters or more that is not ASCII, once. A single character is left out: a
/// bonus on it would favour that character wherever it sounds possible.
pub fn keywords(groups: &[Vec<String>]) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for w in groups.iter().flatten() {
        if usable(w) && !words.contains(w) {
            words.push(w.clone());
        }
    }
    words
}

/// `base` followed by a selection of `groups`' words (one group per category, each in its
/// table order), taken round-robin so that every category is represented before any gets a
/// second word; words of one character, ASCII words, words inside a longer chosen word
/// and repeats are skipped. Stops before `max_chars` characters of words.
pub fn with_vocabulary(base: &str, groups: &[Vec<String>], max_chars: usize) -> String {
    // Longer words first within the dedupe, so "煤气泄漏" wins over "煤气".
    let mut all: Vec<&str> = groups.iter().flatten().map(String::as_str).collect();
    all.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
    let mut chosen: Vec<&str> = Vec::new();
    let mut used = 0usize;
    let depth = groups.iter().map(Vec::len).max().unwrap_or(0);
    'outer: for i in 0..depth {
        for g in groups {
            let Some(w) = g.get(i).map(String::as_str) else {
                continue;
            };
            if !usable(w) || chosen.iter().any(|c| c.contains(w) || w.contains(c)) {
                continue;
            }
            // a shorter word covered by a longer one elsewhere in the table is left out
            if all
                .iter()
                .any(|o| o.len() > w.len() && o.contains(w) && usable(o))
            {
                continue;
            }
            let n = w.chars().count() + 1;
            if used + n > max_chars {
                break 'outer;
            }
            used += n;
            chosen.push(w);
        }
    }
    if chosen.is_empty() {
        return base.to_string();
    }
    format!("{base}{LIST_INTRO}{}。", chosen.join("、"))
}

/// What comes between the prompt's sentences and its word list.
const LIST_INTRO: &str = "可能提到：";

/// A prompt's sentences without its word list (all of it when it has none): what the echo
/// guard compares a segment with, and what keyword rescoring's judge is told
/// (`AsrConfig::judge_prompt`).
pub fn sentences(prompt: &str) -> &str {
    prompt.split(LIST_INTRO).next().unwrap_or_default()
}

/// Whether a segment is the prompt's word list read back rather than speech: Whisper given
/// a list of words and a steady hum wrote "沙灯、线、煤气泄漏、火灾、热线，煤气泄漏。…". The
/// segment's pieces (between punctuation) are counted: three or more that are exactly words
/// of the prompt's list, and at least half of all pieces, is an echo; so are two or more among
/// pieces of three characters or fewer on average (speech played backwards gave
/// "移入社会、认识,职货卫、职货、补贴、退款"). A caller's sentence holds its keywords inside
/// clauses ("好像是燃气泄漏了"), so it never looks like one.
pub fn echoes_prompt(text: &str, prompt: &str) -> bool {
    reads_sentences_back(text, prompt) || reads_list_back(text, prompt)
}

/// Whether a segment is one of the prompt's own sentences (before its word list) read back:
/// on 6 s of line hiss and on a hum the shipped prompt came back as "这一段市民热线的留言。"
/// (BENCHMARKS.md §6, session 10), which made a silent call's transcript and let the second
/// pass decode the noise. A segment of four characters or more that shares a run of at
/// least four fifths of its characters with one of those sentences is that: a caller who
/// names the hotline says more around it ("我想投诉市民热线的接线员").
fn reads_sentences_back(text: &str, prompt: &str) -> bool {
    let said: Vec<char> = text.chars().filter(|c| c.is_alphanumeric()).collect();
    if said.len() < 4 {
        return false;
    }
    sentences(prompt)
        .split(|c: char| !c.is_alphanumeric())
        .map(|s| s.chars().collect::<Vec<char>>())
        .any(|s| longest_common_run(&said, &s) * 5 >= said.len() * 4)
}

/// Length of the longest run of characters `a` and `b` share.
fn longest_common_run(a: &[char], b: &[char]) -> usize {
    let mut best = 0;
    let mut prev = vec![0usize; b.len() + 1];
    for &x in a {
        let mut cur = vec![0usize; b.len() + 1];
        for (j, &y) in b.iter().enumerate() {
            if x == y {
                cur[j + 1] = prev[j] + 1;
                best = best.max(cur[j + 1]);
            }
        }
        prev = cur;
    }
    best
}

/// The word list read back (see [`echoes_prompt`]).
fn reads_list_back(text: &str, prompt: &str) -> bool {
    let is_sep = |c: char| !c.is_alphanumeric();
    let words: Vec<&str> = prompt
        .split(is_sep)
        .filter(|w| w.chars().count() >= 2)
        .collect();
    if words.is_empty() {
        return false;
    }
    let pieces: Vec<&str> = text.split(is_sep).filter(|p| !p.is_empty()).collect();
    let hits = pieces.iter().filter(|p| words.contains(p)).count();
    let chars: usize = pieces.iter().map(|p| p.chars().count()).sum();
    let short = chars <= 3 * pieces.len();
    (hits >= 3 && hits * 2 >= pieces.len()) || (hits >= 2 && short)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn keywords_are_every_listed_word_of_two_characters_or_more_once() {
        let groups = [g(&["燃气", "fire", "吵"]), g(&["燃气泄漏", "燃气"])];
        assert_eq!(keywords(&groups), g(&["燃气", "燃气泄漏"]));
    }

    #[test]
    fn every_category_first_then_second_words_within_the_cap() {
        let groups = [
            g(&["路灯", "井盖", "人行道"]),
            g(&["暖气", "供暖"]),
            g(&["着火", "fire", "吵"]),
        ];
        let p = with_vocabulary("前。", &groups, 100);
        assert_eq!(p, "前。可能提到：路灯、暖气、着火、井盖、供暖、人行道。");
        // the cap keeps the first of each category
        let p = with_vocabulary("前。", &groups, 9);
        assert_eq!(p, "前。可能提到：路灯、暖气、着火。");
    }

    #[test]
    fn the_word_list_read_back_is_an_echo_a_sentence_with_keywords_is_not() {
        let groups = [
            g(&["路灯", "煤气泄漏"]),
            g(&["火灾", "自来水"]),
            g(&["停水", "停电"]),
        ];
        let p = with_vocabulary(ZH_BASE, &groups, 100);
        let hum = "沙灯、线、煤气泄漏、火灾、热线，煤气泄漏。煤气泄漏、火灾、火灾、自来水。";
        assert!(echoes_prompt(hum, &p));
        assert!(echoes_prompt("移入社会、认识,职货卫、职货、停水、路灯", &p));
        for speech in [
            "我闻到很浓的煤气味，好像是煤气泄漏了，请赶快派人来。",
            "停水，停电，什么都没有了，已经三天了，请你们管一管",
            "停水",
            "路灯坏了",
        ] {
            assert!(!echoes_prompt(speech, &p), "{speech}");
        }
        assert!(!echoes_prompt(hum, ""));
    }

    #[test]
    fn the_prompt_sentence_read_back_is_an_echo_a_caller_naming_the_hotline_is_not() {
        let p = with_vocabulary(ZH_BASE, &[g(&["停水", "停电"]), g(&["需要什么材料"])], 100);
        for echo in [
            "这一段市民热线的留言。",
            "以下是普通话的句子",
            "这是一段市民热线的留言",
        ] {
            assert!(echoes_prompt(echo, &p), "{echo}");
            assert!(echoes_prompt(echo, ZH_BASE), "{echo}");
        }
        for speech in [
            "我想投诉市民热线的接线员",
            "市民热线的留言怎么查",
            "停水停电",
            "需要什么材料",
            "留言",
        ] {
            assert!(!echoes_prompt(speech, &p), "{speech}");
        }
    }

    #[test]
    fn a_word_inside_a_longer_one_is_left_to_it() {
        let groups = [g(&["煤气", "暖气"]), g(&["煤气泄漏", "煤气泄漏"])];
        let p = with_vocabulary("", &groups, 100);
        assert_eq!(p, "可能提到：煤气泄漏、暖气。");
        assert_eq!(with_vocabulary("前。", &[], 100), "前。");
    }
}
