//! `play`: prompts, cut short as `barge_in` allows, then `next`. Digits pressed during
//! them stay queued for the step that asks for digits.

use crate::call::flow::engine::{Action, Ctx, Event, Next};
use crate::config::PlayStep;
use std::time::Instant;

pub struct Play {
    spec: PlayStep,
}

impl Play {
    pub fn new(spec: PlayStep) -> Self {
        Play { spec }
    }
}

impl Action for Play {
    fn start(&mut self, cx: &mut Ctx, _now: Instant) -> Next {
        let policy = cx.policy(&self.spec.barge_in);
        if cx.play(&self.spec.prompts, policy) {
            Next::Stay
        } else {
            Next::Go(self.spec.next.clone())
        }
    }

    fn on(&mut self, ev: &Event, cx: &mut Ctx, _now: Instant) -> Next {
        match ev {
            Event::PlaybackDone if !cx.playing => Next::Go(self.spec.next.clone()),
            _ => Next::Stay,
        }
    }
}
