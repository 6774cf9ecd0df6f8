//! The spoken menu in the `menu` action: the invitation and listening, words that choose,
//! words asked back and confirmed with 1 (or not), words not understood, a digit that wins
//! while the words are transcribed.

use super::*;
use crate::call::flow::{Guess, Heard};

use super::menu::MENU;

/// The test flow with the spoken menu on and the example's phrases.
fn spoken() -> Arc<Flow> {
    let mut f = (*flow(MENU)).clone();
    f.spoken_menu = true;
    for o in &mut f.menu.options {
        o.phrases = match o.id.as_str() {
            "complaint" => vec!["投诉".into(), "举报".into()],
            "policy" => vec!["咨询".into()],
            "operator" => vec!["转人工".into(), "人工".into(), "接线员".into()],
            _ => vec![],
        };
    }
    Arc::new(f)
}

fn said(text: &str) -> Event {
    Event::Speech(Heard::words(text))
}

/// Started, the caller talked over the prompts (the media stopped them).
fn talking() -> Call {
    let (mut call, out) = Call::start(spoken());
    assert_eq!(out[0], Command::Listen(Some("zh".into())));
    assert_eq!(played(&out), ["greeting", "menu", "menu_speech"]);
    assert!(call.ev(Event::Listening).is_empty());
    assert!(call.ev(Event::PlaybackDone).is_empty());
    assert_eq!(
        call.engine.deadline(),
        None,
        "no digit timeout while the caller talks"
    );
    call
}

#[test]
fn words_with_an_options_phrase_choose_it_and_the_selection_keeps_them() {
    let mut call = talking();
    let out = call.ev(said("我要投诉，楼下太吵了"));
    assert_eq!(out[0], Command::Listen(None), "{out:?}");
    assert_eq!(played(&out), ["thanks"]);
    assert_eq!(call.var("choice"), Some("complaint"));
    assert_eq!(call.var("choice_source"), Some("speech"));
    let m = call.engine.ctx().menu.clone().unwrap();
    assert_eq!(m.utterance.as_deref(), Some("我要投诉，楼下太吵了"));
    assert_eq!((m.digits.as_str(), m.defaulted), ("", false));
}

#[test]
fn the_operator_words_choose_the_operator_option() {
    let mut call = talking();
    assert_eq!(
        played(&call.ev(said("转人工"))),
        ["goodbye"],
        "operator → b"
    );
    assert_eq!(call.var("choice"), Some("operator"));
    assert_eq!(call.var("choice_source"), Some("speech"));
}

#[test]
fn an_unsure_match_is_asked_back_and_1_takes_it() {
    let mut call = talking();
    // phrases of two options: the first in config order is asked back, keys only now
    let out = call.ev(said("我想投诉也想咨询"));
    assert_eq!(out[0], Command::Listen(None));
    assert_eq!(played(&out), ["confirm_complaint"]);
    assert!(call.ev(Event::PlaybackDone).is_empty());
    assert_eq!(call.engine.deadline(), Some(call.now + secs(6)));
    assert_eq!(played(&call.ev(Event::Digit('1'))), ["thanks"]);
    let m = call.engine.ctx().menu.clone().unwrap();
    assert_eq!(m.id, "complaint");
    assert_eq!(m.utterance.as_deref(), Some("我想投诉也想咨询"));
}

#[test]
fn a_classifier_guess_between_the_thresholds_is_asked_back() {
    let mut call = talking();
    let heard = Heard {
        text: "楼下饭店天天半夜放音乐".into(),
        guesses: vec![Guess {
            option: "policy".into(),
            confidence: 0.6,
        }],
    };
    assert_eq!(played(&call.ev(Event::Speech(heard))), ["confirm_policy"]);
    // 1 over the question: it stops, and the option is taken
    assert_eq!(call.ev(Event::Digit('1')), [Command::StopPlayback]);
    assert_eq!(played(&call.ev(Event::PlaybackDone)), ["thanks"]);
    assert_eq!(call.var("choice"), Some("policy"));
}

#[test]
fn another_key_or_silence_after_the_question_is_the_keys_again() {
    let mut call = talking();
    call.ev(said("投诉还是咨询"));
    call.ev(Event::PlaybackDone);
    let out = call.ev(Event::Digit('2'));
    assert_eq!(played(&out), ["menu"], "the keys, no invitation to speak");
    assert!(!out.iter().any(|c| matches!(c, Command::Listen(Some(_)))));
    assert!(call.engine.ctx().menu.is_none());
    call.ev(Event::PlaybackDone);
    call.ev(Event::Digit('2'));
    let m = call.engine.ctx().menu.clone().unwrap();
    assert_eq!((m.id.as_str(), m.utterance.as_deref()), ("policy", None));

    let mut call = talking();
    call.ev(said("投诉还是咨询"));
    call.ev(Event::PlaybackDone);
    assert_eq!(played(&call.wait(secs(6))), ["menu"]);
}

#[test]
fn words_not_understood_play_invalid_then_the_keys() {
    let mut call = talking();
    let out = call.ev(said("喂？喂？"));
    assert_eq!(out[0], Command::Listen(None));
    assert_eq!(played(&out), ["invalid"]);
    assert_eq!(played(&call.ev(Event::PlaybackDone)), ["menu"]);
    call.ev(Event::PlaybackDone);
    call.ev(Event::Digit('1'));
    let m = call.engine.ctx().menu.clone().unwrap();
    assert_eq!((m.id.as_str(), m.utterance.as_deref()), ("complaint", None));
    // and nothing understood at all (the recogniser heard nothing) is the same
    let mut call = talking();
    assert_eq!(
        played(&call.ev(Event::Speech(Heard::default()))),
        ["invalid"]
    );
}

#[test]
fn a_digit_wins_while_the_words_are_transcribed() {
    let mut call = talking();
    let out = call.ev(Event::Digit('2'));
    assert_eq!(out[0], Command::Listen(None));
    assert_eq!(played(&out), ["thanks"]);
    // the words arrive after the menu is gone: nothing happens
    assert!(call.ev(said("我要投诉")).is_empty());
    let m = call.engine.ctx().menu.clone().unwrap();
    assert_eq!((m.id.as_str(), m.digits.as_str()), ("policy", "2"));
}

#[test]
fn without_ears_the_menu_neither_invites_nor_listens() {
    // `[menu] speech` and a gateway that can hear: on; either missing: off
    let mut config_on = (*spoken()).clone();
    config_on.menu.speech = true;
    assert!(config_on.clone().with_spoken_menu(true).spoken_menu);
    assert!(!config_on.clone().with_spoken_menu(false).spoken_menu);
    config_on.menu.speech = false;
    assert!(!config_on.with_spoken_menu(true).spoken_menu);
    let f = (*spoken()).clone().with_spoken_menu(false);
    let (_, out) = Call::start(Arc::new(f));
    assert_eq!(played(&out), ["greeting", "menu"]);
    assert!(!out.iter().any(|c| matches!(c, Command::Listen(_))));
}
