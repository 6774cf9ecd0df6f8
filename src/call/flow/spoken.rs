//! The spoken menu's decision: which `[[menu.option]]` a short utterance asks for, and how
//! sure that is. Sans-IO and pure: the words and the classifier's guesses come in
//! ([`Heard`], made by the gateway from Whisper and the classification table), an answer
//! ([`Choice`]) goes out; the `menu` action acts on it.
//!
//! The rules, in order:
//! 1. An option's own `phrases` (config), found in the words: one option → taken; phrases
//!    of several options ("我要投诉，也想咨询") → the one with the longest phrase is asked
//!    back (confirm). "转人工"/"人工" are the operator option's phrases in the example config.
//! 2. Otherwise the classification table's guess (categories mapped to options by the
//!    table's `menu_ids`, see `gateway::menu_speech`): at least [`SURE`] → taken; at least
//!    [`CONFIRM`] → asked back; below → nothing.
//! 3. Nothing: the caller is asked for a key.
//!
//! Phrases are matched on the words with spaces and punctuation removed and ASCII lowered,
//! so "转 人工。" is "转人工" and "Operator" is "operator".

use crate::config::MenuOption;

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
    // Per option, its longest phrase found in the words.
    let mut hits: Vec<(&MenuOption, usize)> = options
        .iter()
        .filter_map(|o| {
            o.phrases
                .iter()
                .map(|p| normalize(p))
                .filter(|p| !p.is_empty() && words.contains(p.as_str()))
                .map(|p| p.chars().count())
                .max()
                .map(|len| (*o, len))
        })
        .collect();
    match hits.len() {
        0 => {}
        1 => return Choice::Sure(hits[0].0.id.clone()),
        _ => {
            // the longest phrase, the first in config order on a tie
            hits.sort_by(|a, b| b.1.cmp(&a.1));
            return Choice::Confirm(hits[0].0.id.clone());
        }
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
