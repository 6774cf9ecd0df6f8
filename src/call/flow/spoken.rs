//! The spoken menu's decision: which `[[menu.option]]` a short utterance asks for, and how
//! sure that is. Sans-IO and pure: the words and the classifier's guesses come in
//! ([`Heard`], made by the gateway from Whisper and the classification table), an answer
//! ([`Choice`]) goes out; the `menu` action acts on it.
//!
//! The rules, in order:
//! 1. An option's own `phrases` (config), found in the words: one option → taken; phrases
//!    of several options ("我要投诉，也想咨询") → the one with the longest phrase is asked
//!    back (confirm). "转人工"/"人工" are the operator option's phrases in the example config.
//! 2. Otherwise a phrase that only *sounds* like the words (toneless pinyin, with the
//!    mergers of southern and accented Mandarin: zh/z, ch/c, sh/s, n/l, -ng/-n): asked
//!    back. Whisper writes homophones and near-homophones of short requests ("我要投鼠" for
//!    "我要投诉" was heard on a Kokoro voice through G.711); a two-syllable phrase matched by
//!    sound alone is likely, not sure.
//! 3. Otherwise the classification table's guess (categories mapped to options by the
//!    table's `menu_ids`, see `gateway::menu_speech`): at least [`SURE`] → taken; at least
//!    [`CONFIRM`] → asked back; below → nothing.
//! 4. Nothing: the caller is asked for a key.
//!
//! Phrases are matched on the words with spaces and punctuation removed and ASCII lowered,
//! so "转 人工。" is "转人工" and "Operator" is "operator".

use crate::config::MenuOption;
use pinyin::ToPinyin;

/// A classifier guess at least this sure chooses without asking back.
pub const SURE: f64 = 0.85;
/// A classifier guess below this is no guess: the keys.
pub const CONFIRM: f64 = 0.45;

/// What the caller said, as the gateway heard it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Heard {
    /// The words (empty: nothing understood, or the recogniser was unavailable).
    pub text: String,
    /// Menu options the classification table points to, surest first.
    pub guesses: Vec<Guess>,
}

impl Heard {
    /// Words alone, no classifier guess.
    pub fn words(text: &str) -> Heard {
        Heard {
            text: text.to_owned(),
            guesses: Vec::new(),
        }
    }
}

/// One classifier guess: an option id and the probability of the categories behind it.
#[derive(Clone, Debug, PartialEq)]
pub struct Guess {
    pub option: String,
    pub confidence: f64,
}

/// What the menu does with an utterance.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    /// This option, without asking.
    Sure(String),
    /// Probably this option: ask the caller to confirm with 1.
    Confirm(String),
    /// Nothing recognisable: back to the keys.
    Nothing,
}

/// Options with a phrase that `found` accepts (giving its length), the longest first, the
/// first in config order on a tie.
fn hits<'a>(
    options: &[&'a MenuOption],
    found: impl Fn(&str) -> Option<usize>,
) -> Vec<(&'a MenuOption, usize)> {
    let mut hits: Vec<(&MenuOption, usize)> = options
        .iter()
        .filter_map(|o| {
            o.phrases
                .iter()
                .filter_map(|p| found(p))
                .max()
                .map(|n| (*o, n))
        })
        .collect();
    hits.sort_by_key(|h| std::cmp::Reverse(h.1));
    hits
}

/// The syllables of `s` as they sound when tones and the common mergers are ignored; a
/// character without a reading stands for itself.
fn sounds(s: &str) -> Vec<String> {
    s.chars()
        .map(|c| match c.to_pinyin() {
            Some(p) => merge(p.plain()),
            None => c.to_string(),
        })
        .collect()
}

/// zh/z, ch/c, sh/s, l/n at the start; -ng/-n at the end.
fn merge(syllable: &str) -> String {
    let mut s = syllable.to_owned();
    for (from, to) in [("zh", "z"), ("ch", "c"), ("sh", "s"), ("l", "n")] {
        if let Some(rest) = s.strip_prefix(from) {
            s = format!("{to}{rest}");
            break;
        }
    }
    if s.ends_with("ng") && s.len() > 2 {
        s.pop();
    }
    s
}

fn contains(hay: &[String], needle: &[String]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Lower-case ASCII, no whitespace or punctuation (CJK punctuation included).
pub fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !c.is_ascii_punctuation() && !is_cjk_punctuation(*c))
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn is_cjk_punctuation(c: char) -> bool {
    matches!(c, '\u{3000}'..='\u{303f}' | '\u{ff00}'..='\u{ff0f}' | '\u{ff1a}'..='\u{ff20}' | '…' | '·' | '“' | '”' | '‘' | '’')
}

/// Decide among `options` (those the menu step offers, in config order).
pub fn decide(heard: &Heard, options: &[&MenuOption]) -> Choice {
    let words = normalize(&heard.text);
    if words.is_empty() {
        return Choice::Nothing;
    }
    // Per option, its longest phrase found in the words: as written, else by sound.
    let exact = hits(options, |p| {
        let p = normalize(p);
        (!p.is_empty() && words.contains(p.as_str())).then(|| p.chars().count())
    });
    match exact.len() {
        0 => {}
        1 => return Choice::Sure(exact[0].0.id.clone()),
        _ => return Choice::Confirm(exact[0].0.id.clone()),
    }
    let by_sound = sounds(&words);
    let alike = hits(options, |p| {
        let p = sounds(&normalize(p));
        (p.len() >= 2 && contains(&by_sound, &p)).then_some(p.len())
    });
    if let Some((o, _)) = alike.first() {
        return Choice::Confirm(o.id.clone());
    }
    let offered = |g: &&Guess| options.iter().any(|o| o.id == g.option);
    match heard.guesses.iter().find(offered) {
        Some(g) if g.confidence >= SURE => Choice::Sure(g.option.clone()),
        Some(g) if g.confidence >= CONFIRM => Choice::Confirm(g.option.clone()),
        _ => Choice::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(id: &str, phrases: &[&str]) -> MenuOption {
        MenuOption {
            id: id.into(),
            phrases: phrases.iter().map(|p| p.to_string()).collect(),
            ..MenuOption::default()
        }
    }

    fn menu() -> Vec<MenuOption> {
        vec![
            option("complaint", &["投诉", "举报"]),
            option("policy", &["咨询", "政策"]),
            option("service", &["报修", "公共服务"]),
            option(
                "operator",
                &["转人工", "人工", "人工服务", "接线员", "operator"],
            ),
        ]
    }

    fn decide_words(text: &str, guesses: &[(&str, f64)]) -> Choice {
        let m = menu();
        let options: Vec<&MenuOption> = m.iter().collect();
        let heard = Heard {
            text: text.into(),
            guesses: guesses
                .iter()
                .map(|(o, c)| Guess {
                    option: o.to_string(),
                    confidence: *c,
                })
                .collect(),
        };
        decide(&heard, &options)
    }

    #[test]
    fn one_options_phrase_chooses_it() {
        assert_eq!(
            decide_words("我要投诉。", &[]),
            Choice::Sure("complaint".into())
        );
        assert_eq!(
            decide_words("我想咨询一下社保的问题", &[]),
            Choice::Sure("policy".into())
        );
        // a phrase beats a classifier that points elsewhere
        assert_eq!(
            decide_words("我要报修，小区的路灯坏了", &[("complaint", 0.9)]),
            Choice::Sure("service".into())
        );
    }

    #[test]
    fn the_operator_words_reach_the_operator_option() {
        for said in [
            "转人工",
            "人工",
            "人工服务",
            "请帮我转接线员",
            "转 人工！",
            "Operator, please",
        ] {
            assert_eq!(
                decide_words(said, &[]),
                Choice::Sure("operator".into()),
                "{said}"
            );
        }
    }

    #[test]
    fn phrases_of_two_options_are_asked_back_longest_first() {
        assert_eq!(
            decide_words("我要投诉，也想咨询", &[]),
            Choice::Confirm("complaint".into())
        );
        // "公共服务" (4) is longer than "投诉" (2)
        assert_eq!(
            decide_words("投诉公共服务", &[]),
            Choice::Confirm("service".into())
        );
    }

    #[test]
    fn a_phrase_heard_only_by_sound_is_asked_back() {
        // Whisper's "投鼠" (tou2 shu3) for "投诉" (tou2 su4): sh/s and the tones merged
        assert_eq!(
            decide_words("我要投鼠。", &[]),
            Choice::Confirm("complaint".into())
        );
        // "资询" (zi1 xun2) for "咨询"
        assert_eq!(
            decide_words("我想资询一下", &[]),
            Choice::Confirm("policy".into())
        );
        // "转人公" for "转人工"
        assert_eq!(
            decide_words("转人公", &[]),
            Choice::Confirm("operator".into())
        );
        // one syllable alike is not a phrase
        assert_eq!(decide_words("我要头", &[]), Choice::Nothing);
        // a phrase as written wins over one by sound
        assert_eq!(
            decide_words("我要投鼠举报", &[]),
            Choice::Sure("complaint".into())
        );
    }

    #[test]
    fn the_classifier_decides_by_its_confidence_when_no_phrase_is_said() {
        let said = "小区门口的垃圾好几天没人清理";
        assert_eq!(
            decide_words(said, &[("service", 0.9)]),
            Choice::Sure("service".into())
        );
        assert_eq!(
            decide_words(said, &[("service", 0.6), ("complaint", 0.3)]),
            Choice::Confirm("service".into())
        );
        assert_eq!(decide_words(said, &[("service", 0.3)]), Choice::Nothing);
        // an option the step does not offer is no guess
        assert_eq!(decide_words(said, &[("progress", 0.99)]), Choice::Nothing);
    }

    #[test]
    fn nothing_understood_is_nothing() {
        assert_eq!(decide_words("", &[("service", 0.99)]), Choice::Nothing);
        assert_eq!(decide_words("。 ", &[]), Choice::Nothing);
        assert_eq!(decide_words("喂？喂？", &[]), Choice::Nothing);
    }
}
