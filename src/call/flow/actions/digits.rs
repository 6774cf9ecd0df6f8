//! Numbers by keypad and by voice: `say_digits` reads a value back with the prompts
//! `digit_0`..`digit_9` (a short pause between groups, as people read a reference), and
//! `collect_digits` takes a number from the keypad into a variable.

use crate::call::flow::engine::{Action, BargePolicy, Ctx, Event, Next};
use crate::config::{CollectDigitsStep, SayDigitsStep};
use std::time::{Duration, Instant};

pub struct SayDigits {
    spec: SayDigitsStep,
}

impl SayDigits {
    pub fn new(spec: SayDigitsStep) -> Self {
        SayDigits { spec }
    }
}

/// The prompts that read `digits` in `groups` (the rest after the last group is one more).
pub fn digit_prompts(digits: &str, groups: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    let mut bounds = Vec::new();
    let mut at = 0;
    for g in groups {
        at += g;
        bounds.push(at);
    }
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && bounds.contains(&i) {
            out.push("pause".to_owned());
        }
        out.push(format!("digit_{d}"));
    }
    out
}

impl Action for SayDigits {
    fn start(&mut self, cx: &mut Ctx, _now: Instant) -> Next {
        let value = cx.expand(&self.spec.value);
        let digits: String = value.chars().filter(char::is_ascii_digit).collect();
        if digits.is_empty() {
            tracing::warn!(value = %self.spec.value, "nothing to read back");
            return Next::Go(self.spec.on_failure.clone().or(self.spec.next.clone()));
        }
        let mut prompts = self.spec.prompts.clone();
        prompts.extend(digit_prompts(&digits, &self.spec.groups));
        prompts.extend(self.spec.after.iter().cloned());
        let policy = BargePolicy {
            dtmf: self.spec.barge_in == "dtmf",
            speech: false,
        };
        cx.play(&prompts, policy);
        Next::Stay
    }

    fn on(&mut self, ev: &Event, cx: &mut Ctx, _now: Instant) -> Next {
        match ev {
            Event::PlaybackDone if !cx.playing => Next::Go(self.spec.next.clone()),
            _ => Next::Stay,
        }
    }
}

#[derive(Debug, PartialEq)]
enum State {
    Asking,
    /// Stopping the prompt, then these feedback prompts.
    Stopping(Vec<String>),
    Feedback,
    Leaving,
}

/// `max_digits` digits, or at least `min_digits` ended by `end_key`; a timeout with at least
/// `min_digits` is taken as the end too. Too few plays `invalid_prompts`, none
/// `no_input_prompts`; `max_attempts` in all, then `on_failure`.
pub struct CollectDigits {
    spec: CollectDigitsStep,
    attempt: u32,
    got: String,
    state: State,
}

impl CollectDigits {
    pub fn new(spec: CollectDigitsStep) -> Self {
        CollectDigits {
            spec,
            attempt: 0,
            got: String::new(),
            state: State::Asking,
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.spec.timeout_secs)
    }

    fn ask(&mut self, cx: &mut Ctx, now: Instant) -> Next {
        if self.attempt >= self.spec.max_attempts.max(1) {
            cx.vars.remove(&self.spec.var);
            return Next::Go(self.spec.on_failure.clone());
        }
        self.got.clear();
        self.state = State::Asking;
        let policy = BargePolicy {
            dtmf: true,
            speech: false,
        };
        if !cx.play(&self.spec.prompts.clone(), policy) {
            cx.set_timer(now, self.timeout());
        }
        self.take(cx, now)
    }

    /// Consume queued digits.
    fn take(&mut self, cx: &mut Ctx, now: Instant) -> Next {
        while let Some(d) = cx.digits.pop_front() {
            let end = self.spec.end_key.starts_with(d);
            // `min_digits = 0`: the end key alone is an answer ("press * to hear it again").
            if end && self.got.len() >= self.spec.min_digits {
                return self.done(cx);
            }
            if end {
                let prompts = self.spec.invalid_prompts.clone();
                return self.feedback(&prompts, cx, now);
            }
            if d.is_ascii_digit() {
                self.got.push(d);
                if self.got.len() >= self.spec.max_digits {
                    return self.done(cx);
                }
            }
        }
        if !cx.playing && !self.got.is_empty() {
            cx.set_timer(now, self.timeout());
        }
        Next::Stay
    }

    fn done(&mut self, cx: &mut Ctx) -> Next {
        cx.timer = None;
        cx.vars.insert(self.spec.var.clone(), self.got.clone());
        if cx.playing {
            cx.stop_playing();
            self.state = State::Leaving;
            return Next::Stay;
        }
        Next::Go(self.spec.next.clone())
    }

    fn feedback(&mut self, prompts: &[String], cx: &mut Ctx, now: Instant) -> Next {
        cx.timer = None;
        cx.digits.clear();
        if cx.playing {
            cx.stop_playing();
            self.state = State::Stopping(prompts.to_vec());
            return Next::Stay;
        }
        let policy = BargePolicy {
            dtmf: true,
            speech: false,
        };
        self.state = State::Feedback;
        if !cx.play(prompts, policy) {
            self.attempt += 1;
            return self.ask(cx, now);
        }
        Next::Stay
    }
}

impl Action for CollectDigits {
    fn start(&mut self, cx: &mut Ctx, now: Instant) -> Next {
        self.ask(cx, now)
    }

    fn on(&mut self, ev: &Event, cx: &mut Ctx, now: Instant) -> Next {
        match (&self.state, ev) {
            (State::Asking, Event::Digit(_)) => {
                cx.timer = None;
                self.take(cx, now)
            }
            (State::Asking, Event::PlaybackDone) if !cx.playing => {
                cx.set_timer(now, self.timeout());
                Next::Stay
            }
            (State::Asking, Event::Timer) => {
                if !self.got.is_empty() && self.got.len() >= self.spec.min_digits {
                    return self.done(cx);
                }
                let prompts = if self.got.is_empty() {
                    self.spec.no_input_prompts.clone()
                } else {
                    self.spec.invalid_prompts.clone()
                };
                self.feedback(&prompts, cx, now)
            }
            (State::Stopping(_), Event::PlaybackDone) if !cx.playing => {
                let State::Stopping(prompts) = std::mem::replace(&mut self.state, State::Feedback)
                else {
                    return Next::Stay;
                };
                self.feedback(&prompts, cx, now)
            }
            (State::Feedback, Event::PlaybackDone) if !cx.playing => {
                self.attempt += 1;
                self.ask(cx, now)
            }
            (State::Leaving, Event::PlaybackDone) if !cx.playing => {
                Next::Go(self.spec.next.clone())
            }
            _ => Next::Stay,
        }
    }
}
