//! The example flow (`config/hotline.toml`): the reference number allocated when the message
//! starts, read back in groups twice, `*` for once more (bounded); progress by phone.

use super::*;

/// The shipped configuration's flow.
fn example() -> Arc<Flow> {
    let text = include_str!("../../../../config/hotline.toml");
    let c = Config::from_str_with_env(text, &[]).unwrap_or_else(|e| panic!("{e:#?}"));
    Arc::new(Flow::from_config(&c))
}

const REFERENCE: &str = "261202000007";

fn digits_of(reference: &str) -> Vec<String> {
    let mut v: Vec<String> = reference.chars().map(|d| format!("digit_{d}")).collect();
    v.insert(6, "pause".into());
    v
}

/// Menu, option 1, the message recorded: what plays next.
fn leave_a_message(call: &mut Call) -> Vec<Command> {
    call.ev(Event::PlaybackDone); // greeting + menu
    call.ev(Event::Digit('1'));
    call.ev(Event::PlaybackDone); // "please speak after the tone"
    let out = call.ev(Event::PlaybackDone); // the tone
    assert_eq!(
        out,
        [
            Command::AllocateReference,
            Command::StartRecording { preroll: false }
        ]
    );
    assert!(call.ev(Event::Reference(REFERENCE.into())).is_empty());
    assert_eq!(call.var("reference"), Some(REFERENCE));
    call.ev(Event::RecordingDone)
}

#[test]
fn the_reference_is_read_back_twice_in_groups_and_star_says_it_again() {
    let (mut call, _) = Call::start(example());
    let out = leave_a_message(&mut call);
    let mut first = vec!["reference_intro".to_owned()];
    first.extend(digits_of(REFERENCE));
    assert_eq!(played(&out), first);
    let mut again = digits_of(REFERENCE);
    again.extend(["reference_keep".into(), "reference_repeat".into()]);
    assert_eq!(played(&call.ev(Event::PlaybackDone)), again);
    call.ev(Event::PlaybackDone);
    // `*`: once more; three times at most, then goodbye.
    for _ in 0..3 {
        assert_eq!(played(&call.ev(Event::Digit('*'))), again);
        call.ev(Event::PlaybackDone);
    }
    assert_eq!(played(&call.ev(Event::Digit('*'))), ["thanks", "goodbye"]);
}

#[test]
fn silence_after_the_read_back_says_goodbye() {
    let (mut call, _) = Call::start(example());
    leave_a_message(&mut call);
    call.ev(Event::PlaybackDone);
    call.ev(Event::PlaybackDone);
    assert_eq!(played(&call.wait(secs(5))), ["thanks", "goodbye"]);
}

#[test]
fn the_reference_is_asked_for_once() {
    let (mut call, _) = Call::start(example());
    leave_a_message(&mut call);
    assert!(call.engine.trace().vars.contains_key("reference"));
    assert!(!format!("{:?}", call.drain()).contains("AllocateReference"));
}

#[test]
fn without_a_reference_the_caller_is_thanked() {
    let (mut call, _) = Call::start(example());
    call.ev(Event::PlaybackDone);
    call.ev(Event::Digit('1'));
    call.ev(Event::PlaybackDone);
    call.ev(Event::PlaybackDone);
    // The store could not give one: no Reference event comes.
    assert_eq!(
        played(&call.ev(Event::RecordingDone)),
        ["thanks", "goodbye"]
    );
}

/// Option 4 and a reference keyed with `#`: the lookup asked for.
fn ask_progress(call: &mut Call) {
    call.ev(Event::PlaybackDone);
    assert_eq!(played(&call.ev(Event::Digit('4'))), ["progress_enter"]);
    call.ev(Event::PlaybackDone);
    for d in REFERENCE.chars() {
        call.ev(Event::Digit(d));
    }
    assert_eq!(
        call.ev(Event::Digit('#')),
        [Command::Lookup {
            reference: REFERENCE.into()
        }]
    );
}

#[test]
fn progress_by_phone_says_the_state() {
    for (state, prompt) in [
        ("accepted", "progress_accepted"),
        ("in_progress", "progress_in_progress"),
        ("resolved", "progress_resolved"),
    ] {
        let (mut call, _) = Call::start(example());
        ask_progress(&mut call);
        let out = call.ev(Event::LookupDone(Ok(Some(state.into()))));
        assert_eq!(played(&out), [prompt]);
        assert_eq!(played(&call.ev(Event::PlaybackDone)), ["thanks", "goodbye"]);
    }
}

#[test]
fn an_unknown_reference_gets_one_more_try_then_the_menu() {
    let (mut call, _) = Call::start(example());
    ask_progress(&mut call);
    assert_eq!(
        played(&call.ev(Event::LookupDone(Ok(None)))),
        ["progress_not_found"]
    );
    assert_eq!(played(&call.ev(Event::PlaybackDone)), ["progress_enter"]);
    call.ev(Event::PlaybackDone);
    for d in REFERENCE.chars() {
        call.ev(Event::Digit(d));
    }
    call.ev(Event::Digit('#'));
    call.ev(Event::LookupDone(Ok(None)));
    assert_eq!(played(&call.ev(Event::PlaybackDone)), ["greeting", "menu"]);
}
