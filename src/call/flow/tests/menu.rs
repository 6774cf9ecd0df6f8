//! `menu`: a choice by digit, by typed-ahead digit, by words; invalid keys, silence,
//! the default after the last attempt, `hangup` to `no_choice`, plain `keys`.

use super::*;

pub(super) const MENU: &str = r#"
[flow]
start = "menu"
[flow.step.menu]
action = "menu"
options = { complaint = "a", policy = "a", operator = "b" }
no_choice = "b"
[flow.step.a]
action = "play"
prompts = ["thanks"]
[flow.step.b]
action = "play"
prompts = ["goodbye"]
"#;

#[test]
fn a_digit_after_the_prompt_chooses_its_option() {
    let (mut call, out) = Call::start(flow(MENU));
    assert_eq!(played(&out), ["greeting", "menu"]);
    assert!(call.ev(Event::PlaybackDone).is_empty());
    assert_eq!(call.engine.deadline(), Some(call.now + secs(6)));
    call.now += secs(2);
    let out = call.ev(Event::Digit('2'));
    assert_eq!(played(&out), ["thanks"]);
    let m = call.engine.ctx().menu.clone().unwrap();
    assert_eq!(
        (m.digits.as_str(), m.id.as_str(), m.defaulted),
        ("2", "policy", false)
    );
    assert_eq!(call.engine.ctx().barge_in, None, "nothing was playing");
}

#[test]
fn an_invalid_key_plays_invalid_then_the_menu_again() {
    let (mut call, _) = Call::start(flow(MENU));
    let out = call.ev(Event::Digit('7'));
    assert_eq!(out, [Command::StopPlayback]);
    let out = call.ev(Event::PlaybackDone);
    assert_eq!(played(&out), ["invalid"]);
    let out = call.ev(Event::PlaybackDone);
    assert_eq!(played(&out), ["menu"], "the greeting only once");
    call.ev(Event::PlaybackDone);
    call.ev(Event::Digit('0'));
    let m = call.engine.ctx().menu.clone().unwrap();
    assert_eq!((m.digits.as_str(), m.id.as_str()), ("70", "operator"));
}

#[test]
fn a_key_typed_over_the_invalid_prompt_is_the_next_choice() {
    let (mut call, _) = Call::start(flow(MENU));
    call.ev(Event::Digit('9'));
    call.ev(Event::PlaybackDone);
    // "1" over "invalid": it stops, the menu starts and takes the 1 at once.
    assert_eq!(call.ev(Event::Digit('1')), [Command::StopPlayback]);
    let out = call.ev(Event::PlaybackDone);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[1], Command::StopPlayback);
    assert_eq!(call.engine.ctx().menu.clone().unwrap().id, "complaint");
    assert_eq!(played(&call.ev(Event::PlaybackDone)), ["thanks"]);
}

#[test]
fn silence_on_every_attempt_takes_the_on_no_input_option() {
    let (mut call, _) = Call::start(flow(MENU));
    for attempt in 0..3 {
        call.ev(Event::PlaybackDone);
        assert!(call.wait(secs(5)).is_empty());
        let out = call.wait(secs(1));
        assert_eq!(played(&out), ["no_input"], "attempt {attempt}");
        let out = call.ev(Event::PlaybackDone);
        if attempt < 2 {
            assert_eq!(played(&out), ["menu"]);
        } else {
            assert_eq!(played(&out), ["goodbye"], "operator → b");
        }
    }
    let m = call.engine.ctx().menu.clone().unwrap();
    assert_eq!(
        (m.digits.as_str(), m.id.as_str(), m.defaulted),
        ("", "operator", true)
    );
    assert_eq!(call.var("choice_source"), Some("default"));
}

#[test]
fn on_no_input_hangup_goes_to_no_choice_without_a_selection() {
    let f = flow_with(MENU, "");
    let mut cfg = (*f).clone();
    cfg.menu.on_no_input = "hangup".into();
    cfg.menu.max_attempts = 1;
    let (mut call, _) = Call::start(Arc::new(cfg));
    call.ev(Event::PlaybackDone);
    call.wait(secs(6));
    let out = call.ev(Event::PlaybackDone);
    assert_eq!(played(&out), ["goodbye"]);
    assert!(call.engine.ctx().menu.is_none());
}

#[test]
fn speech_over_the_menu_with_barge_in_all_takes_the_default_option() {
    // `all` needs the default option (operator) to lead to a message.
    let text = MENU.replace("operator = \"b\"", "operator = \"rec\"")
        + "[flow.step.rec]\naction = \"record\"\nnext = \"b\"\n";
    let f = flow_with(&text, "[ivr]\nspeech_barge_in = \"all\"\n");
    let (mut call, out) = Call::start(f);
    match &out[0] {
        Command::Play { barge_in, .. } => assert!(barge_in.speech),
        c => panic!("{c:?}"),
    }
    assert_eq!(call.ev(Event::SpeechStarted), [Command::StopPlayback]);
    // Straight to recording: no instructions, no tone, the pre-roll kept.
    assert_eq!(
        call.ev(Event::PlaybackDone),
        [
            Command::AllocateReference,
            Command::StartRecording { preroll: true }
        ]
    );
    let m = call.engine.ctx().menu.clone().unwrap();
    assert_eq!((m.id.as_str(), m.defaulted), ("operator", true));
    assert_eq!(call.engine.ctx().barge_in, Some("speech"));
}

#[test]
fn keys_choose_a_step_and_set_the_variable() {
    let f = flow(
        r#"
[flow]
start = "lang"
[flow.step.lang]
action = "menu"
prompts = ["greeting"]
keys = { "1" = "zh", "2" = "en" }
var = "lang_key"
on_no_input = "1"
[flow.step.zh]
action = "set"
var = "language"
value = "zh"
next = "bye"
[flow.step.en]
action = "set"
var = "language"
value = "en"
next = "bye"
[flow.step.bye]
action = "play"
prompts = ["goodbye"]
"#,
    );
    let (mut call, _) = Call::start(f.clone());
    call.ev(Event::PlaybackDone);
    let out = call.ev(Event::Digit('2'));
    match &out[0] {
        Command::Play { prompts, .. } => assert_eq!(prompts[0].language, "en"),
        c => panic!("{c:?}"),
    }
    assert_eq!(call.var("lang_key"), Some("2"));
    assert!(
        call.engine.ctx().menu.is_none(),
        "a key is not a menu selection"
    );

    // Nothing pressed: `on_no_input` picks key 1.
    let (mut call, _) = Call::start(f);
    for _ in 0..3 {
        call.ev(Event::PlaybackDone);
        call.wait(secs(6));
    }
    let out = call.ev(Event::PlaybackDone);
    match &out[0] {
        Command::Play { prompts, .. } => assert_eq!(prompts[0].language, "zh"),
        c => panic!("{c:?}"),
    }
}
