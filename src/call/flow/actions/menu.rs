//! `menu`: the prompts, a digit (or, with the spoken menu, words), the next step of the
//! choice. An unknown digit plays `invalid_prompts`, silence for `timeout_secs` plays
//! `no_input_prompts`, both then ask again, up to `max_attempts` in all; after that
//! `on_no_input` chooses for the caller (or sends them to `no_choice`).
//!
//! Choices are either `[[menu.option]]` ids (`options`: the choice is the call's menu
//! selection, routed on the ticket) or plain digits (`keys`: e.g. a language).
//! With `[ivr] speech_barge_in = "all"`, a caller who talks over the menu is taken to the
//! `on_no_input` option at once, and its message starts with their words.
//!
//! The spoken menu (`[menu] speech`, when the gateway can hear): the first attempt also
//! plays `speech_prompts` ("请直接说出您要办理的事情，或按键选择") and the step listens. What the
//! caller says is decided by [`spoken::decide`]: a sure option is taken (the selection keeps
//! the words); a likely one is asked back with `confirm_<option id>` (1 = yes, anything
//! else or silence = the menu's keys again); nothing recognisable plays `invalid_prompts`
//! and the menu again. After one spoken try that did not choose, the menu is keys only. A
//! digit wins at any time, also while the words are being transcribed.

use crate::call::flow::engine::{Action, BargePolicy, Ctx, Event, Next};
use crate::call::flow::spoken::{self, Choice, Heard};
use crate::call::record::MenuSelection;
use crate::config::{MenuOption, MenuStep};
use std::time::{Duration, Instant};

/// What to do once the prompt playing now has stopped.
#[derive(Debug, PartialEq)]
enum After {
    Go(Option<String>),
    Invalid,
    Retry,
    /// Ask back whether the caller meant this option (id), having said these words.
    Confirm(String, String),
}

#[derive(Debug, PartialEq)]
enum State {
    /// Prompts playing or done, waiting for a choice.
    Asking,
    /// `invalid` or `no_input` playing; then the next attempt.
    Feedback,
    /// Stopping a prompt, then `After`.
    Stopping(After),
    /// `confirm_<id>` playing or done: 1 takes the option (id, the words said).
    Confirming(String, String),
}

pub struct Menu {
    spec: MenuStep,
    attempt: u32,
    pressed: String,
    state: State,
    /// The caller is talking or their words are being transcribed: no digit timeout.
    hearing: bool,
    /// A spoken try did not choose: keys only from now on.
    keys_only: bool,
}

impl Menu {
    pub fn new(spec: MenuStep) -> Self {
        Menu {
            spec: spec.filled(),
            attempt: 0,
            pressed: String::new(),
            state: State::Asking,
            hearing: false,
            keys_only: false,
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
        let listen = cx.flow.spoken_menu && self.spec.keys.is_empty() && !self.keys_only;
        let mut prompts = if self.attempt == 0 {
            self.spec.prompts.clone()
        } else {
            self.spec.repeat_prompts.clone()
        };
        if listen && self.attempt == 0 {
            prompts.extend(self.spec.speech_prompts.clone().unwrap_or_default());
        }
        let policy = BargePolicy {
            dtmf: true,
            // while listening, talking is heard as a request, not as the message
            speech: !listen && cx.speech_mode() == "all" && self.spec.keys.is_empty(),
        };
        cx.listen(listen);
        self.state = State::Asking;
        self.hearing = false;
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
            After::Confirm(id, words) => {
                let prompt = vec![format!("confirm_{id}")];
                let policy = BargePolicy {
                    dtmf: true,
                    speech: false,
                };
                self.state = State::Confirming(id, words);
                if !cx.play(&prompt, policy) {
                    cx.set_timer(now, self.timeout(cx));
                }
                match cx.digits.pop_front() {
                    Some(d) => self.confirm_digit(d, cx, now),
                    None => Next::Stay,
                }
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
        self.select_said(o, defaulted, source, None, cx)
    }

    /// `select`, with the words that chose it (the spoken menu).
    fn select_said(
        &mut self,
        o: &MenuOption,
        defaulted: bool,
        source: &str,
        utterance: Option<String>,
        cx: &mut Ctx,
    ) -> After {
        tracing::info!(digit = %o.digit, id = %o.id, defaulted, source, ?utterance, "menu choice");
        cx.menu = Some(MenuSelection {
            digits: self.pressed.clone(),
            digit: o.digit.clone(),
            id: o.id.clone(),
            label: o.label.clone(),
            defaulted,
            utterance,
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

    /// The options this step offers, in config order.
    fn offered<'a>(&self, cx: &'a Ctx) -> Vec<&'a MenuOption> {
        cx.flow
            .menu
            .options
            .iter()
            .filter(|o| self.spec.options.contains_key(&o.id))
            .collect()
    }

    fn by_id(&self, cx: &Ctx, id: &str) -> Option<MenuOption> {
        self.offered(cx).into_iter().find(|o| o.id == id).cloned()
    }

    /// Words from the spoken menu.
    fn words(&mut self, heard: &Heard, cx: &mut Ctx, now: Instant) -> Next {
        self.hearing = false;
        let choice = spoken::decide(heard, &self.offered(cx));
        tracing::info!(said = %heard.text, ?choice, "spoken menu");
        let after = match choice {
            Choice::Sure(id) => match self.by_id(cx, &id) {
                Some(o) => self.select_said(&o, false, "speech", Some(heard.text.clone()), cx),
                None => After::Invalid,
            },
            Choice::Confirm(id) => {
                self.keys_only = true;
                cx.listen(false);
                After::Confirm(id, heard.text.clone())
            }
            Choice::Nothing => {
                self.keys_only = true;
                cx.listen(false);
                After::Invalid
            }
        };
        self.then(after, cx, now)
    }

    /// A digit while asking back: 1 takes the option, anything else is the keys again.
    fn confirm_digit(&mut self, d: char, cx: &mut Ctx, now: Instant) -> Next {
        let State::Confirming(id, words) = std::mem::replace(&mut self.state, State::Asking) else {
            return Next::Stay;
        };
        let after = match (d, self.by_id(cx, &id)) {
            ('1', Some(o)) => self.select_said(&o, false, "speech", Some(words), cx),
            _ => After::Retry,
        };
        self.then(after, cx, now)
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
                if !self.hearing {
                    cx.set_timer(now, self.timeout(cx));
                }
                Next::Stay
            }
            (State::Asking | State::Feedback, Event::Listening) => {
                // (the media stopped any prompt; its PlaybackDone follows)
                self.state = State::Asking;
                self.hearing = true;
                cx.timer = None;
                Next::Stay
            }
            (State::Asking | State::Feedback, Event::Speech(heard)) => {
                let heard = heard.clone();
                self.words(&heard, cx, now)
            }
            (State::Confirming(..), Event::Digit(_)) => match cx.digits.pop_front() {
                Some(d) => self.confirm_digit(d, cx, now),
                None => Next::Stay,
            },
            (State::Confirming(..), Event::PlaybackDone) if !cx.playing => {
                cx.set_timer(now, self.timeout(cx));
                Next::Stay
            }
            (State::Confirming(..), Event::Timer) => {
                self.state = State::Asking;
                self.then(After::Retry, cx, now)
            }
            (State::Asking, Event::Timer) => {
                let prompts = self.spec.no_input_prompts.clone();
                self.feedback(&prompts, cx, now)
            }
            (State::Asking, Event::SpeechStarted) => self.speech(cx, now),
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
