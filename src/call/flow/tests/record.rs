//! `record`: instructions, tone, recording; the failure path when no recording can start.

use super::*;

const REC: &str = r#"
[flow]
start = "rec"
[flow.step.rec]
action = "record"
next = "bye"
[flow.step.bye]
action = "play"
prompts = ["thanks"]
"#;

#[test]
fn a_hash_over_the_instructions_does_not_end_the_message() {
    let (mut call, out) = Call::start(flow(REC));
    assert_eq!(played(&out), ["record"]);
    assert_eq!(call.ev(Event::Digit('#')), [Command::StopPlayback]);
    let out = call.ev(Event::PlaybackDone);
    match &out[0] {
        // The tone: a key does not cut it short.
        Command::Play { prompts, barge_in } => {
            assert_eq!(prompts[0].name, "beep");
            assert!(!barge_in.dtmf);
        }
        c => panic!("{c:?}"),
    }
    assert_eq!(
        call.ev(Event::PlaybackDone),
        [
            Command::AllocateReference,
            Command::StartRecording { preroll: false }
        ]
    );
    assert!(call.engine.ctx().digits.is_empty(), "the # was dropped");
    assert_eq!(played(&call.ev(Event::RecordingDone)), ["thanks"]);
}

#[test]
fn no_recording_directory_goes_on_to_the_next_step() {
    let (mut call, _) = Call::start(flow(REC));
    call.ev(Event::PlaybackDone);
    call.ev(Event::PlaybackDone);
    assert!(call.engine.recording());
    assert_eq!(played(&call.ev(Event::RecordingFailed)), ["thanks"]);
    assert!(!call.engine.recording());
}

#[test]
fn without_a_tone_the_recording_follows_the_instructions() {
    let f = flow(&REC.replace("next = \"bye\"", "beep = false\nnext = \"bye\""));
    let (mut call, _) = Call::start(f);
    assert_eq!(
        call.ev(Event::PlaybackDone),
        [
            Command::AllocateReference,
            Command::StartRecording { preroll: false }
        ]
    );
}

#[test]
fn with_speech_barge_in_off_the_voice_cuts_nothing() {
    let f = flow_with(REC, "[ivr]\nspeech_barge_in = \"off\"\n");
    let (_, out) = Call::start(f);
    match &out[0] {
        Command::Play { barge_in, .. } => assert!(!barge_in.speech && barge_in.dtmf),
        c => panic!("{c:?}"),
    }
}
