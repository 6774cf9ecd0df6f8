//! `say_digits` and `collect_digits`.

use super::*;
use crate::call::flow::actions::digit_prompts;

#[test]
fn a_reference_is_read_in_groups() {
    assert_eq!(
        digit_prompts("26120200", &[6]),
        [
            "digit_2", "digit_6", "digit_1", "digit_2", "digit_0", "digit_2", "pause", "digit_0",
            "digit_0"
        ]
    );
    assert_eq!(digit_prompts("123", &[]), ["digit_1", "digit_2", "digit_3"]);
    assert_eq!(
        digit_prompts("1234", &[2, 1]),
        ["digit_1", "digit_2", "pause", "digit_3", "pause", "digit_4"]
    );
}

const SAY: &str = r#"
[flow]
start = "set"
[flow.step.set]
action = "set"
var = "reference"
value = "2612-0200"
next = "say"
[flow.step.say]
action = "say_digits"
prompts = ["thanks"]
value = "${reference}"
groups = [6]
after = ["goodbye"]
on_failure = "none"
[flow.step.none]
action = "play"
prompts = ["invalid"]
"#;

#[test]
fn say_digits_reads_a_variable_between_its_prompts() {
    let (mut call, out) = Call::start(flow(SAY));
    let names = played(&out);
    assert_eq!(names.first().map(String::as_str), Some("thanks"));
    assert_eq!(names.last().map(String::as_str), Some("goodbye"));
    assert_eq!(names.iter().filter(|n| n.starts_with("digit_")).count(), 8);
    assert_eq!(names.iter().filter(|n| *n == "pause").count(), 1);
    assert_eq!(call.ev(Event::PlaybackDone), [Command::Hangup]);
}

#[test]
fn say_digits_with_nothing_to_read_takes_on_failure() {
    let (_, out) = Call::start(flow(&SAY.replace("2612-0200", "none yet")));
    assert_eq!(played(&out), ["invalid"]);
}

const COLLECT: &str = r#"
[flow]
start = "ask"
[flow.step.ask]
action = "collect_digits"
prompts = ["menu"]
var = "reference"
max_digits = 4
min_digits = 2
timeout_secs = 5
max_attempts = 2
next = "ok"
on_failure = "fail"
[flow.step.ok]
action = "play"
prompts = ["thanks"]
[flow.step.fail]
action = "play"
prompts = ["goodbye"]
"#;

#[test]
fn collect_digits_completes_at_max_digits_typed_over_the_prompt() {
    let (mut call, _) = Call::start(flow(COLLECT));
    assert_eq!(call.ev(Event::Digit('1')), [Command::StopPlayback]);
    call.ev(Event::Digit('2'));
    call.ev(Event::Digit('3'));
    assert!(call.ev(Event::PlaybackDone).is_empty());
    assert_eq!(call.engine.deadline(), Some(call.now + secs(5)));
    assert_eq!(played(&call.ev(Event::Digit('4'))), ["thanks"]);
    assert_eq!(call.var("reference"), Some("1234"));
}

#[test]
fn collect_digits_ends_at_the_end_key() {
    let (mut call, _) = Call::start(flow(COLLECT));
    call.ev(Event::PlaybackDone);
    call.ev(Event::Digit('4'));
    call.ev(Event::Digit('2'));
    assert_eq!(played(&call.ev(Event::Digit('#'))), ["thanks"]);
    assert_eq!(call.var("reference"), Some("42"));
}

#[test]
fn collect_digits_too_short_then_silence_fails_after_the_attempts() {
    let (mut call, _) = Call::start(flow(COLLECT));
    call.ev(Event::PlaybackDone);
    call.ev(Event::Digit('4'));
    // `#` after one digit, min 2: invalid, asked again.
    assert_eq!(played(&call.ev(Event::Digit('#'))), ["invalid"]);
    assert_eq!(played(&call.ev(Event::PlaybackDone)), ["menu"]);
    call.ev(Event::PlaybackDone);
    assert!(call.wait(secs(4)).is_empty());
    assert_eq!(played(&call.wait(secs(1))), ["no_input"]);
    assert_eq!(played(&call.ev(Event::PlaybackDone)), ["goodbye"]);
    assert_eq!(call.var("reference"), None);
}

#[test]
fn collect_digits_timeout_with_enough_digits_accepts_them() {
    let (mut call, _) = Call::start(flow(COLLECT));
    call.ev(Event::PlaybackDone);
    call.ev(Event::Digit('7'));
    call.ev(Event::Digit('7'));
    assert_eq!(played(&call.wait(secs(5))), ["thanks"]);
    assert_eq!(call.var("reference"), Some("77"));
}
