//! `lookup` and `transfer`: answered by the gateway, with their failure paths.

use super::*;

const LOOKUP: &str = r#"
[flow]
start = "set"
[flow.step.set]
action = "set"
var = "reference"
value = "261202000001"
next = "look"
[flow.step.look]
action = "lookup"
next = "found"
on_not_found = "missing"
on_failure = "broken"
[flow.step.found]
action = "play"
prompts = ["thanks"]
[flow.step.missing]
action = "play"
prompts = ["invalid"]
[flow.step.broken]
action = "play"
prompts = ["busy"]
"#;

#[test]
fn lookup_asks_the_gateway_and_keeps_the_state() {
    let (mut call, out) = Call::start(flow(LOOKUP));
    assert_eq!(
        out,
        [Command::Lookup {
            reference: "261202000001".into()
        }]
    );
    let out = call.ev(Event::LookupDone(Ok(Some("in_progress".into()))));
    assert_eq!(played(&out), ["thanks"]);
    assert_eq!(call.var("ticket_state"), Some("in_progress"));
    assert_eq!(call.engine.trace().vars["ticket_state"], "in_progress");
}

#[test]
fn lookup_not_found_and_failure_take_their_steps() {
    let (mut call, _) = Call::start(flow(LOOKUP));
    assert_eq!(played(&call.ev(Event::LookupDone(Ok(None)))), ["invalid"]);
    assert_eq!(call.var("ticket_state"), Some("not_found"));
    let (mut call, _) = Call::start(flow(LOOKUP));
    assert_eq!(
        played(&call.ev(Event::LookupDone(Err("db".into())))),
        ["busy"]
    );
    assert_eq!(call.var("ticket_state"), Some("unavailable"));
}

#[test]
fn lookup_without_a_reference_is_not_found_without_asking() {
    let (_, out) = Call::start(flow(&LOOKUP.replace("261202000001", "")));
    assert_eq!(played(&out), ["invalid"]);
}

const TRANSFER: &str = r#"
[flow]
start = "xfer"
[flow.step.xfer]
action = "transfer"
target = "sip:desk@pbx"
on_failure = "sorry"
[flow.step.sorry]
action = "play"
prompts = ["busy"]
"#;

#[test]
fn transfer_unavailable_follows_on_failure() {
    let (mut call, out) = Call::start(flow(TRANSFER));
    assert_eq!(
        out,
        [
            // A transfer is something to follow up on: the call gets its reference.
            Command::AllocateReference,
            Command::Transfer {
                target: "sip:desk@pbx".into()
            }
        ]
    );
    let out = call.ev(Event::TransferDone(Err("unavailable".into())));
    assert_eq!(played(&out), ["busy"]);
    assert_eq!(call.var("transfer"), Some("unavailable"));
}

#[test]
fn transfer_answered_ends_the_flow_without_hanging_up() {
    let (mut call, _) = Call::start(flow(TRANSFER));
    assert!(call.ev(Event::TransferDone(Ok(()))).is_empty());
    assert_eq!(call.engine.end(), Some(crate::call::flow::End::Transferred));
}
