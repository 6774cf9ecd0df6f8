//! `menu`: the prompts, a digit (or, with the spoken menu, words), the next step of the
//! choice. An unknown digit plays `invalid_prompts`, silence for `timeout_secs` plays
//! `no_input_prompts`, both then ask again, up to `max_attempts` in all; after that
//! `on_no_input` chooses for the caller (or sends them to `no_choice`).
//!
//! Choices are either `[[menu.option]]` ids (`options`: the choice is the call's menu
//! selection, routed on the ticket) or plain digits (`keys`: e.g. a language).
//! With `[ivr] speech_barge_in = "all"`, a caller who talks over the menu is taken to the
//! `on_no_input` option at once, and its message starts with their words.

use crate::call::flow::engine::{Action, BargePolicy, Ctx, Event, Next};
use crate::call::record::MenuSelection;
use crate::config::{MenuOption, MenuStep};
use std::time::{Duration, Instant};

/// What to do once the prompt playing now has stopped.
#[derive(Debug, PartialEq)]
enum After {
    Go(Option<String>),
    Invalid,
    Retry,
}

#[derive(Debug, PartialEq)]
enum State {
    /// Prompts playing or done, waiting for a choice.
    Asking,
    /// `invalid` or `no_input` playing; then the next attempt.
    Feedback,
    /// Stopping a prompt, then `After`.
    Stopping(After),
}

pub struct Menu {
    spec: MenuStep,
    attempt: u32,
    pressed: String,
    state: State,
}

impl Menu {
    pub fn new(spec: MenuStep) -> Self {
        Menu {
            spec: spec.filled(),
            attempt: 0,
            pressed: String::new(),
            state: State::Asking,
        }
    }

    fn max_attempts(&self, cx: &Ctx) -> u32 {
        self.spec
            .max_attempts
            .unwrap_or(cx.flow.menu.max_attempts)
            .max(1)
    }

    fn timeout(&self, cx: &Ctx) -> Duration {
        Duration::from_secs(
            self.spec
                .timeout_secs
                .unwrap_or(cx.flow.menu.digit_timeout_secs),
        )
    }

    fn ask(&mut self, cx: &mut Ctx, now: Instant) -> Next {
        if self.attempt >= self.max_attempts(cx) {
            return self.no_input(cx);
        }
        let prompts = if self.attempt == 0 {
            self.spec.prompts.clone()
        } else {
            self.spec.repeat_prompts.clone()
        };
        let policy = BargePolicy {
            dtmf: true,
            speech: cx.speech_mode() == "all" && self.spec.keys.is_empty(),
        };
        self.state = State::Asking;
        if !cx.play(&prompts, policy) {
            cx.set_timer(now, self.timeout(cx));
        }
        match cx.digits.pop_front() {
            Some(d) => self.digit(d, cx, now),
            None => Next::Stay,
        }
    }

    /// Leave for `after` once nothing plays.
    fn then(&mut self, after: After, cx: &mut Ctx, now: Instant) -> Next {
        cx.timer = None;
        if cx.playing {
            cx.stop_playing();
            self.state = State::Stopping(after);
            return Next::Stay;
        }
        match after {
            After::Go(next) => Next::Go(next),
            After::Invalid => {
                let prompts = self.spec.invalid_prompts.clone();
                self.feedback(&prompts, cx, now)
            }
            After::Retry => {
                self.attempt += 1;
                self.ask(cx, now)
            }
        }
    }

    fn feedback(&mut self, prompts: &[String], cx: &mut Ctx, now: Instant) -> Next {
        let policy = BargePolicy {
            dtmf: true,
            speech: false,
        };
        if cx.play(prompts, policy) {
            self.state = State::Feedback;
            return Next::Stay;
        }
        self.attempt += 1;
        self.ask(cx, now)
    }

    fn option(&self, cx: &Ctx, digit: &str) -> Option<MenuOption> {
        cx.flow
            .menu
            .options
            .iter()
            .find(|o| o.digit.starts_with(digit) && self.spec.options.contains_key(&o.id))
            .cloned()
    }

    fn select(&mut self, o: &MenuOption, defaulted: bool, source: &str, cx: &mut Ctx) -> After {
        tracing::info!(digit = %o.digit, id = %o.id, defaulted, source, "menu choice");
        cx.menu = Some(MenuSelection {
            digits: self.pressed.clone(),
            digit: o.digit.clone(),
            id: o.id.clone(),
            label: o.label.clone(),
            defaulted,
            utterance: None,
        });
        cx.vars.insert("choice".into(), o.id.clone());
        cx.vars.insert("choice_source".into(), source.into());
        After::Go(self.spec.options.get(&o.id).cloned())
    }

    fn key(&mut self, digit: &str, cx: &mut Ctx) -> Option<After> {
        let next = self.spec.keys.get(digit)?.clone();
        if let Some(var) = &self.spec.var {
            cx.vars.insert(var.clone(), digit.to_owned());
        }
        Some(After::Go(Some(next)))
    }

    fn digit(&mut self, d: char, cx: &mut Ctx, now: Instant) -> Next {
        self.pressed.push(d);
        let digit = d.to_string();
        let after = if self.spec.keys.is_empty() {
            match self.option(cx, &digit) {
                Some(o) => self.select(&o, false, "dtmf", cx),
                None => After::Invalid,
            }
        } else {
            self.key(&digit, cx).unwrap_or(After::Invalid)
        };
        self.then(after, cx, now)
    }

    /// No valid choice after every attempt.
    fn no_input(&mut self, cx: &mut Ctx) -> Next {
        let fallback = self.spec.on_no_input.clone().unwrap_or_else(|| {
            if self.spec.keys.is_empty() {
                cx.flow.menu.on_no_input.clone()
            } else {
                "hangup".into()
            }
        });
        if fallback != "hangup" {
            if self.spec.keys.is_empty() {
                let chosen = cx.flow.menu.options.iter().find(|o| o.digit == fallback);
                if let Some(o) = chosen.cloned() {
                    if let After::Go(next) = self.select(&o, true, "default", cx) {
                        return Next::Go(next);
                    }
                }
            } else if let Some(After::Go(next)) = self.key(&fallback, cx) {
                return Next::Go(next);
            }
        }
        Next::Go(self.spec.no_choice.clone())
    }

    /// The caller talked over the menu (`speech_barge_in = "all"`): their words are the
    /// message of the default option.
    fn speech(&mut self, cx: &mut Ctx, now: Instant) -> Next {
        let default = cx
            .flow
            .menu
            .options
            .iter()
            .find(|o| o.digit == cx.flow.menu.on_no_input && self.spec.options.contains_key(&o.id))
            .cloned();
        let after = match default {
            Some(o) => self.select(&o, true, "default", cx),
            None => {
                // (config validation makes `all` require such an option)
                cx.speech_barged_in = false;
                After::Retry
            }
        };
        self.then(after, cx, now)
    }

    /// Words from the spoken menu: the first option with a phrase in them.
    fn words(&mut self, text: &str, cx: &mut Ctx, now: Instant) -> Next {
        let found = cx
            .flow
            .menu
            .options
            .iter()
            .find(|o| {
                self.spec.options.contains_key(&o.id)
                    && o.phrases
                        .iter()
                        .any(|p| !p.is_empty() && text.contains(p.as_str()))
            })
            .cloned();
        match found {
            Some(o) => {
                let after = self.select(&o, false, "speech", cx);
                if let Some(m) = cx.menu.as_mut() {
                    m.utterance = Some(text.to_owned());
                }
                self.then(after, cx, now)
            }
            None => Next::Stay,
        }
    }
}

impl Action for Menu {
    fn start(&mut self, cx: &mut Ctx, now: Instant) -> Next {
        self.ask(cx, now)
    }

    fn on(&mut self, ev: &Event, cx: &mut Ctx, now: Instant) -> Next {
        match (&self.state, ev) {
            (State::Asking, Event::Digit(_)) => match cx.digits.pop_front() {
                Some(d) => self.digit(d, cx, now),
                None => Next::Stay,
            },
            (State::Asking, Event::PlaybackDone) if !cx.playing => {
                cx.set_timer(now, self.timeout(cx));
                Next::Stay
            }
            (State::Asking, Event::Timer) => {
                let prompts = self.spec.no_input_prompts.clone();
                self.feedback(&prompts, cx, now)
            }
            (State::Asking, Event::SpeechStarted) => self.speech(cx, now),
            (State::Asking, Event::Speech(text)) => {
                let text = text.clone();
                self.words(&text, cx, now)
            }
            (State::Feedback, Event::PlaybackDone) if !cx.playing => {
                self.attempt += 1;
                self.ask(cx, now)
            }
            (State::Stopping(_), Event::PlaybackDone) if !cx.playing => {
                let State::Stopping(after) = std::mem::replace(&mut self.state, State::Asking)
                else {
                    return Next::Stay;
                };
                self.then(after, cx, now)
            }
            _ => Next::Stay,
        }
    }
}
