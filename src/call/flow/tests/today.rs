//! The example configuration's flow, which must be today's behaviour exactly, and the
//! engine's own rules (ending, stopping, loops it cannot see through).

use super::*;
use crate::call::flow::{BargePolicy, End};
use crate::config::{FlowConfig, StepConfig};

/// The flow of config/hotline.toml.
fn example() -> Arc<Flow> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/hotline.toml");
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(c.flow.is_configured(), "the example writes its flow out");
    Arc::new(Flow::from_config(&c))
}

#[test]
fn example_flow_is_the_flow_built_from_menu() {
    // The flow before `[flow]` existed is what `FlowConfig::legacy` builds from `[menu]`;
    // the example writes it out and must be the same, step for step, but for what issue 13
    // added: the message goes on to the reference read-back, option 4 to progress by phone.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/hotline.toml");
    let c = Config::load(&path).unwrap();
    let legacy = FlowConfig::legacy(&c.menu);
    let fill = |f: &FlowConfig| -> Vec<(String, StepConfig)> {
        f.steps
            .iter()
            .map(|(n, s)| match s {
                StepConfig::Menu(m) => (n.clone(), StepConfig::Menu(m.filled())),
                s => (n.clone(), s.clone()),
            })
            .collect()
    };
    assert_eq!(c.flow.start_step(), legacy.start_step());
    let example: std::collections::BTreeMap<_, _> = fill(&c.flow).into_iter().collect();
    for (name, step) in fill(&legacy) {
        let step = match step {
            StepConfig::Record(mut r) => {
                r.next = Some("reference".into());
                StepConfig::Record(r)
            }
            StepConfig::Menu(mut m) => {
                m.options.insert("progress".into(), "progress".into());
                // The operator option reaches a person (issue 14) through the `operator`
                // and `transfer` steps, each falling back to the message.
                m.options.insert("operator".into(), "operator".into());
                StepConfig::Menu(m)
            }
            s => s,
        };
        assert_eq!(example.get(&name), Some(&step), "step {name}");
    }
}

#[test]
fn a_caller_who_chooses_leaves_a_message_then_hears_thanks_and_goodbye() {
    let (mut call, out) = Call::start(example());
    assert_eq!(played(&out), ["greeting", "menu"]);
    // "1" during the menu: the prompt stops, then the message prompt.
    let out = call.ev(Event::Digit('1'));
    assert_eq!(out, [Command::StopPlayback]);
    let out = call.ev(Event::PlaybackDone);
    assert_eq!(played(&out), ["record"]);
    assert_eq!(call.engine.ctx().menu.as_ref().unwrap().id, "complaint");
    assert_eq!(call.engine.ctx().barge_in, Some("dtmf"));
    let out = call.ev(Event::PlaybackDone);
    assert_eq!(played(&out), ["beep"]);
    let out = call.ev(Event::PlaybackDone);
    assert_eq!(
        out,
        [
            Command::AllocateReference,
            Command::StartRecording { preroll: false }
        ]
    );
    assert!(call.engine.recording());
    let out = call.ev(Event::RecordingDone);
    assert_eq!(played(&out), ["thanks", "goodbye"]);
    match &out[0] {
        Command::Play { barge_in, .. } => assert_eq!(*barge_in, BargePolicy::default()),
        _ => unreachable!(),
    }
    // A key during goodbye cuts nothing short.
    assert!(call.ev(Event::Digit('5')).is_empty());
    let out = call.ev(Event::PlaybackDone);
    assert_eq!(out, [Command::Hangup]);
    assert_eq!(call.engine.end(), Some(End::Completed));
    // No ticket store answered with a reference: nothing to read back.
    assert_eq!(
        call.engine.trace().steps,
        ["menu", "message", "reference", "goodbye"]
    );
    assert_eq!(call.var("choice"), Some("complaint"));
}

#[test]
fn speech_over_the_instructions_records_at_once_with_preroll() {
    let (mut call, _) = Call::start(example());
    call.ev(Event::PlaybackDone);
    let out = call.ev(Event::Digit('2'));
    assert_eq!(played(&out), ["record"]);
    match &out[0] {
        // `speech_barge_in = "message"`: the voice may cut the instructions short.
        Command::Play { barge_in, .. } => assert!(barge_in.speech && barge_in.dtmf),
        _ => unreachable!(),
    }
    assert!(call.ev(Event::SpeechStarted).is_empty());
    // No tone: the recording starts with the words that cut the prompt short.
    let out = call.ev(Event::PlaybackDone);
    assert_eq!(
        out,
        [
            Command::AllocateReference,
            Command::StartRecording { preroll: true }
        ]
    );
    assert_eq!(call.engine.ctx().barge_in, Some("speech"));
}

#[test]
fn caller_hanging_up_while_recording_stops_the_recording() {
    let (mut call, _) = Call::start(example());
    call.ev(Event::Digit('1'));
    call.ev(Event::PlaybackDone);
    call.ev(Event::PlaybackDone);
    call.ev(Event::PlaybackDone);
    assert!(call.engine.recording());
    let out = call.ev(Event::Hangup);
    assert_eq!(out, [Command::StopRecording]);
    assert_eq!(call.engine.end(), Some(End::Stopped));
    // Nothing more after the end.
    assert!(call.ev(Event::Digit('1')).is_empty());
}

#[test]
fn caller_hanging_up_during_the_menu_stops_nothing() {
    let (mut call, _) = Call::start(example());
    assert!(call.ev(Event::Hangup).is_empty());
    assert_eq!(call.engine.end(), Some(End::Stopped));
    assert!(call.engine.ctx().menu.is_none());
}

#[test]
fn a_step_loop_without_waiting_is_cut_off() {
    // `goto` with a limit the checks accept, but one that is never reached in a call
    // (max_visits far above the engine's cap): the engine ends the call, not the CPU.
    let f = flow(
        r#"
[flow]
start = "a"
[flow.step.a]
action = "set"
var = "x"
value = "1"
next = "b"
[flow.step.b]
action = "goto"
next = "a"
max_visits = 100000
on_limit = "end"
[flow.step.end]
action = "hangup"
"#,
    );
    let (call, out) = Call::start(f);
    assert_eq!(out, [Command::Hangup]);
    assert_eq!(call.engine.end(), Some(End::Completed));
}

#[test]
fn a_stale_timer_does_nothing() {
    let (mut call, _) = Call::start(example());
    assert!(
        call.ev(Event::Timer).is_empty(),
        "the menu is still playing"
    );
    assert_eq!(call.engine.deadline(), None);
}

#[test]
fn a_step_missing_at_run_time_ends_the_call() {
    // check-config refuses this; a flow built in code might not be checked.
    let mut f = (*example()).clone();
    if let Some(StepConfig::Record(r)) = f.config.steps.get_mut("message") {
        r.next = Some("nowhere".into());
    }
    let (mut call, _) = Call::start(Arc::new(f));
    call.ev(Event::Digit('1'));
    call.ev(Event::PlaybackDone);
    call.ev(Event::PlaybackDone);
    call.ev(Event::PlaybackDone);
    assert_eq!(call.ev(Event::RecordingDone), [Command::Hangup]);
    assert_eq!(call.engine.end(), Some(End::Completed));
}

#[test]
fn an_operator_who_cannot_be_reached_is_explained_before_the_tone() {
    // The caller pressed 0; the transfer failed: they hear why, then the tone, then record.
    for (why, prompt, step) in [
        ("busy", "transfer_busy", "busy_message"),
        ("no_answer", "transfer_busy", "busy_message"),
        ("failed", "transfer_busy", "busy_message"),
        ("out_of_hours", "out_of_hours", "closed_message"),
        ("unavailable", "record", "message"),
    ] {
        let (mut call, _) = Call::start(example());
        call.ev(Event::Digit('0'));
        let out = call.ev(Event::PlaybackDone);
        assert!(
            out.iter().any(|c| matches!(c, Command::Transfer { .. })),
            "{out:?}"
        );
        let out = call.ev(Event::TransferDone(Err(why.into())));
        assert_eq!(played(&out), [prompt], "{why}");
        assert_eq!(played(&call.ev(Event::PlaybackDone)), ["beep"], "{why}");
        let out = call.ev(Event::PlaybackDone);
        assert!(
            out.contains(&Command::StartRecording { preroll: false }),
            "{why}: {out:?}"
        );
        assert_eq!(
            call.engine.trace().steps,
            ["menu", "operator", "transfer", "transfer_failed", step],
            "{why}"
        );
    }
}
