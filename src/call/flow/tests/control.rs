//! `play`, `branch`, `set`, `goto`, `hangup`.

use super::*;
use crate::call::flow::End;

#[test]
fn play_with_dtmf_barge_in_stops_on_a_key_and_keeps_it() {
    let f = flow(
        r#"
[flow]
start = "hello"
[flow.step.hello]
action = "play"
prompts = ["greeting"]
barge_in = "dtmf"
next = "menu"
[flow.step.menu]
action = "menu"
prompts = ["menu"]
options = { complaint = "bye" }
on_no_input = "hangup"
[flow.step.bye]
action = "hangup"
"#,
    );
    let (mut call, out) = Call::start(f);
    assert_eq!(played(&out), ["greeting"]);
    assert_eq!(call.ev(Event::Digit('1')), [Command::StopPlayback]);
    // The key typed over the greeting is the menu's choice.
    let out = call.ev(Event::PlaybackDone);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(call.ev(Event::PlaybackDone), [Command::Hangup]);
    assert_eq!(call.var("choice"), Some("complaint"));
    assert_eq!(call.engine.trace().steps, ["hello", "menu", "bye"]);
}

const HOURS: &str = r#"
[flow]
start = "open"
[flow.step.open]
action = "branch"
when = [
  { var = "vip", equals = ["yes"], next = "day" },
  { hours = ["mon-fri 08:00-20:00"], utc_offset = "+08:00", next = "day" },
]
otherwise = "night"
[flow.step.day]
action = "play"
prompts = ["greeting"]
[flow.step.night]
action = "play"
prompts = ["busy"]
"#;

#[test]
fn branch_on_hours_in_local_time() {
    use chrono::TimeZone;
    // Wednesday 10:00 in Beijing.
    let (_, out) = Call::start(flow(HOURS));
    assert_eq!(played(&out), ["greeting"]);
    // Wednesday 21:00 in Beijing (13:00 UTC).
    let late = Utc.with_ymd_and_hms(2026, 12, 2, 13, 0, 0).unwrap();
    let (_, out) = Call::start_at(flow(HOURS), late);
    assert_eq!(played(&out), ["busy"]);
    // Saturday 10:00 in Beijing.
    let sat = Utc.with_ymd_and_hms(2026, 12, 5, 2, 0, 0).unwrap();
    let (_, out) = Call::start_at(flow(HOURS), sat);
    assert_eq!(played(&out), ["busy"]);
}

#[test]
fn branch_on_a_variable_set_before() {
    let late = {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2026, 12, 2, 13, 0, 0).unwrap()
    };
    let text = HOURS.replace(
        "start = \"open\"",
        "start = \"mark\"\n[flow.step.mark]\naction = \"set\"\nvar = \"vip\"\nvalue = \"yes\"\nnext = \"open\"",
    );
    let (call, out) = Call::start_at(flow(&text), late);
    assert_eq!(played(&out), ["greeting"]);
    assert_eq!(call.var("vip"), Some("yes"));
}

#[test]
fn goto_with_a_limit_leaves_the_loop() {
    let f = flow(
        r#"
[flow]
start = "ask"
[flow.step.ask]
action = "play"
prompts = ["menu"]
next = "again"
[flow.step.again]
action = "goto"
next = "ask"
max_visits = 2
on_limit = "bye"
[flow.step.bye]
action = "hangup"
"#,
    );
    let (mut call, _) = Call::start(f);
    assert_eq!(played(&call.ev(Event::PlaybackDone)), ["menu"]);
    assert_eq!(played(&call.ev(Event::PlaybackDone)), ["menu"]);
    assert_eq!(call.ev(Event::PlaybackDone), [Command::Hangup]);
    assert_eq!(call.engine.end(), Some(End::Completed));
    assert_eq!(
        call.engine.trace().steps,
        ["ask", "again", "ask", "again", "ask", "again", "bye"]
    );
}
