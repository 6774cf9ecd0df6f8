//! `record`: "please speak after the tone", the tone, the message until `#`, trailing
//! silence, no speech, the maximum duration or the caller hanging up (the end conditions
//! are `[recording]`'s, carried out by the media session).
//!
//! A caller who talks over the instructions or the tone (speech barge-in, `[ivr]
//! speech_barge_in` `message` or `all`) is recorded at once, the recording starting with
//! the pre-roll, so it holds the words that triggered the barge-in.

use crate::call::flow::engine::{Action, BargePolicy, Command, Ctx, Event, Next};
use crate::config::RecordStep;
use std::time::Instant;

#[derive(Debug, PartialEq)]
enum State {
    Instructions,
    Tone,
    Recording,
}

pub struct Record {
    spec: RecordStep,
    state: State,
}

impl Record {
    pub fn new(spec: RecordStep) -> Self {
        Record {
            spec,
            state: State::Instructions,
        }
    }

    fn policy(cx: &Ctx, dtmf: bool) -> BargePolicy {
        BargePolicy {
            dtmf,
            speech: matches!(cx.speech_mode(), "message" | "all"),
        }
    }

    fn after_instructions(&mut self, cx: &mut Ctx) -> Next {
        // A digit pressed during the instructions must not end the message before it starts.
        cx.digits.clear();
        if !cx.speech_barged_in && self.spec.beep {
            let policy = Self::policy(cx, false);
            if cx.play(&["beep".to_owned()], policy) {
                self.state = State::Tone;
                return Next::Stay;
            }
        }
        self.record(cx)
    }

    fn record(&mut self, cx: &mut Ctx) -> Next {
        self.state = State::Recording;
        cx.want_reference();
        cx.recording = true;
        cx.emit(Command::StartRecording {
            preroll: cx.speech_barged_in,
        });
        Next::Stay
    }
}

impl Action for Record {
    fn start(&mut self, cx: &mut Ctx, _now: Instant) -> Next {
        if !cx.speech_barged_in {
            let policy = Self::policy(cx, true);
            if cx.play(&self.spec.prompts, policy) {
                return Next::Stay;
            }
        }
        self.after_instructions(cx)
    }

    fn on(&mut self, ev: &Event, cx: &mut Ctx, _now: Instant) -> Next {
        match (&self.state, ev) {
            (State::Instructions, Event::PlaybackDone) if !cx.playing => {
                self.after_instructions(cx)
            }
            (State::Tone, Event::PlaybackDone) if !cx.playing => self.record(cx),
            (State::Recording, Event::RecordingDone | Event::RecordingFailed) => {
                // `#` ended the message; it is not a choice for the next step.
                cx.digits.clear();
                Next::Go(self.spec.next.clone())
            }
            _ => Next::Stay,
        }
    }
}
