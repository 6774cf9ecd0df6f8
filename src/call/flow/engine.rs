//! The flow engine: sans-IO, like the SIP transaction layer. It is told what happened
//! ([`Event`]) and when (`now` passed in), and says what to do ([`Command`]s, polled, and
//! a [`deadline`](Engine::deadline) for its one timer). The async shell in `call::ivr`
//! carries the commands out against the media session; tests drive it on a virtual clock.
//!
//! The engine keeps what every action shares ([`Ctx`]: variables, typed-ahead digits,
//! whether a prompt plays and what may cut it short, speech barge-in) and runs one action
//! at a time; an action says where the flow goes next ([`Next`]).

use super::actions;
use super::spoken::Heard;
use super::Flow;
use crate::call::record::{FlowTrace, MenuSelection};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Steps entered in a row without waiting for the caller before the engine gives up: a
/// loop of `set`/`goto`/`branch` that check-config could not see through.
const MAX_STEPS_PER_EVENT: usize = 100;

/// What happened on the call.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A DTMF digit (RFC 4733 or SIP INFO).
    Digit(char),
    /// The play queue ran out or was stopped.
    PlaybackDone,
    /// The caller talked over a prompt that allowed it; playback has stopped.
    SpeechStarted,
    /// While listening ([`Command::Listen`]): the caller started talking; a prompt playing
    /// has stopped. [`Event::Speech`] follows when they pause.
    Listening,
    /// While listening: what the caller said (the spoken menu), as the gateway heard it.
    Speech(Heard),
    /// The recording asked for ended (for whatever reason) and the file is closed.
    RecordingDone,
    /// The recording could not be started (no directory): the flow goes on without it.
    RecordingFailed,
    /// The answer to [`Command::Lookup`]: the ticket's state, none, or why not.
    LookupDone(Result<Option<String>, String>),
    /// The answer to [`Command::Transfer`].
    TransferDone(Result<(), String>),
    /// The answer to [`Command::AllocateReference`]: the call's reference number, which
    /// becomes the variable `reference` (read back by `say_digits`, kept in the record).
    Reference(String),
    /// [`Engine::deadline`] passed.
    Timer,
    /// The call is ending under the flow (caller's BYE, RTP timeout, max duration...).
    Hangup,
}

/// What may cut a prompt short.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BargePolicy {
    pub dtmf: bool,
    pub speech: bool,
}

/// A prompt to play: `<language>/<name>`; `beep` and `pause` are made by the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptRef {
    pub language: String,
    pub name: String,
}

/// What the engine asks the shell to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Play {
        prompts: Vec<PromptRef>,
        barge_in: BargePolicy,
    },
    StopPlayback,
    /// Record the message; `preroll`: start with the audio that triggered a speech barge-in.
    StartRecording {
        preroll: bool,
    },
    StopRecording,
    /// Listen for the caller's words (`Some(language)`, the language to hear them in) or
    /// stop listening (`None`). Given by the spoken menu; the engine stops it when the step
    /// ends.
    Listen(Option<String>),
    /// Look a ticket up by reference; answered with [`Event::LookupDone`].
    Lookup {
        reference: String,
    },
    /// The call needs its reference number now (a message starts recording or a transfer
    /// starts): allocate it durably and answer with [`Event::Reference`]. Asked once a call.
    AllocateReference,
    /// Hand the call over; empty target = the gateway's default. Answered with
    /// [`Event::TransferDone`].
    Transfer {
        target: String,
    },
    /// The flow is over: hang up (the record says `completed`).
    Hangup,
}

/// How the flow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Ran to a step with nowhere to go next.
    Completed,
    /// Handed to a person.
    Transferred,
    /// Stopped from outside ([`Event::Hangup`]).
    Stopped,
}

/// Where an action sends the flow.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// Still running: waiting for an event.
    Stay,
    /// On to a step; `None` = the call ends (completed).
    Go(Option<String>),
    /// The call was transferred: the flow is over.
    Transferred,
}

/// One running action.
pub trait Action: Send {
    /// Entered: play, ask, or decide at once.
    fn start(&mut self, cx: &mut Ctx, now: Instant) -> Next;
    /// Something happened; the engine has already done its bookkeeping in `cx`.
    fn on(&mut self, ev: &Event, cx: &mut Ctx, now: Instant) -> Next;
}

/// What every action shares.
pub struct Ctx {
    pub(crate) flow: Arc<Flow>,
    /// What the flow learnt; `language` is the prompts' language.
    pub vars: BTreeMap<String, String>,
    /// Digits not yet consumed, in order (typed ahead over prompts).
    pub(crate) digits: VecDeque<char>,
    pub(crate) playing: bool,
    play_dtmf: bool,
    /// A stop was asked for what plays now (one is enough).
    stopping: bool,
    /// The caller talked over a prompt: the message is recorded at once, with pre-roll.
    pub(crate) speech_barged_in: bool,
    /// For the record: `speech` or `dtmf`.
    pub barge_in: Option<&'static str>,
    pub menu: Option<MenuSelection>,
    pub(crate) timer: Option<Instant>,
    pub(crate) recording: bool,
    /// [`Command::Listen`] is on.
    listening: bool,
    pub(crate) visits: HashMap<String, u32>,
    /// [`Command::AllocateReference`] was given (once a call).
    reference_asked: bool,
    out: VecDeque<Command>,
    wall_start: DateTime<Utc>,
    start: Instant,
}

impl Ctx {
    pub(crate) fn emit(&mut self, c: Command) {
        self.out.push_back(c);
    }

    pub fn language(&self) -> &str {
        self.vars.get("language").map_or("", String::as_str)
    }

    /// `[ivr] speech_barge_in`: `off`, `message` or `all`.
    pub(crate) fn speech_mode(&self) -> &str {
        &self.flow.speech_barge_in
    }

    /// Play `names` in the current language. False (and nothing emitted) when there is
    /// nothing to play, so the action goes on at once.
    pub(crate) fn play(&mut self, names: &[String], barge_in: BargePolicy) -> bool {
        if names.is_empty() {
            return false;
        }
        let language = self.language().to_owned();
        let prompts = names
            .iter()
            .map(|n| PromptRef {
                language: language.clone(),
                name: n.clone(),
            })
            .collect();
        self.playing = true;
        self.stopping = false;
        self.play_dtmf = barge_in.dtmf;
        self.emit(Command::Play { prompts, barge_in });
        true
    }

    /// Stop what plays; the action waits for [`Event::PlaybackDone`].
    pub(crate) fn stop_playing(&mut self) {
        if self.playing && !self.stopping {
            self.stopping = true;
            self.emit(Command::StopPlayback);
        }
    }

    /// The barge-in policy named in a step (`none`, `dtmf`, `speech`, `all`; empty = `dtmf`).
    pub(crate) fn policy(&self, name: &str) -> BargePolicy {
        let speech = self.speech_mode() != "off" && matches!(name, "speech" | "all");
        BargePolicy {
            dtmf: matches!(name, "" | "dtmf" | "all"),
            speech,
        }
    }

    /// Wall-clock time at `now` (for `branch` on hours).
    pub(crate) fn wall(&self, now: Instant) -> DateTime<Utc> {
        let since = now.saturating_duration_since(self.start);
        self.wall_start + chrono::Duration::from_std(since).unwrap_or_default()
    }

    /// `${name}` replaced by the variable (empty when unset).
    pub(crate) fn expand(&self, template: &str) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            match rest[i + 2..].find('}') {
                Some(j) => {
                    let name = &rest[i + 2..i + 2 + j];
                    out.push_str(self.vars.get(name).map_or("", String::as_str));
                    rest = &rest[i + 3 + j..];
                }
                None => {
                    out.push_str(&rest[i..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Ask for the call's reference, unless it has one or it was asked already: the
    /// number exists from the moment the caller leaves something to follow up on.
    pub(crate) fn want_reference(&mut self) {
        if !self.reference_asked && !self.vars.contains_key("reference") {
            self.reference_asked = true;
            self.emit(Command::AllocateReference);
        }
    }

    /// Listen for the caller's words (the spoken menu) or stop; a change only.
    pub(crate) fn listen(&mut self, on: bool) {
        if on != self.listening {
            self.listening = on;
            let language = on.then(|| self.language().to_owned());
            self.emit(Command::Listen(language));
        }
    }

    pub(crate) fn set_timer(&mut self, now: Instant, after: Duration) {
        self.timer = Some(now + after);
    }
}

/// One call's flow.
pub struct Engine {
    cx: Ctx,
    current: Option<Box<dyn Action>>,
    steps: Vec<String>,
    end: Option<End>,
}

impl Engine {
    /// A flow about to start in `language`; `wall_start` is the wall-clock time at `now`.
    pub fn new(flow: Arc<Flow>, language: &str, wall_start: DateTime<Utc>, now: Instant) -> Self {
        let mut vars = BTreeMap::new();
        vars.insert("language".to_owned(), language.to_owned());
        Engine {
            cx: Ctx {
                flow,
                vars,
                digits: VecDeque::new(),
                playing: false,
                play_dtmf: false,
                stopping: false,
                speech_barged_in: false,
                barge_in: None,
                menu: None,
                timer: None,
                recording: false,
                listening: false,
                visits: HashMap::new(),
                reference_asked: false,
                out: VecDeque::new(),
                wall_start,
                start: now,
            },
            current: None,
            steps: Vec::new(),
            end: None,
        }
    }

    /// Enter the first step.
    pub fn start(&mut self, now: Instant) {
        let first = self.cx.flow.config.start_step().to_owned();
        self.enter(Some(first), now);
    }

    /// The next command to carry out.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.cx.out.pop_front()
    }

    /// When to send [`Event::Timer`], if the flow waits for the caller.
    pub fn deadline(&self) -> Option<Instant> {
        self.cx.timer
    }

    /// How the flow ended, once it has.
    pub fn end(&self) -> Option<End> {
        self.end
    }

    /// A recording was started and has not ended.
    pub fn recording(&self) -> bool {
        self.cx.recording
    }

    pub fn ctx(&self) -> &Ctx {
        &self.cx
    }

    /// For the call record.
    pub fn trace(&self) -> FlowTrace {
        FlowTrace {
            steps: self.steps.clone(),
            vars: self.cx.vars.clone(),
        }
    }

    pub fn handle(&mut self, ev: Event, now: Instant) {
        let cx = &mut self.cx;
        match &ev {
            Event::Digit(d) => {
                if cx.playing && cx.play_dtmf {
                    if cx.barge_in.is_none() {
                        cx.barge_in = Some("dtmf");
                    }
                    cx.stop_playing();
                }
                cx.digits.push_back(*d);
            }
            Event::PlaybackDone => cx.playing = false,
            Event::SpeechStarted => {
                tracing::info!("caller talked over the prompt: speech barge-in");
                cx.speech_barged_in = true;
                cx.barge_in = Some("speech");
            }
            Event::RecordingDone | Event::RecordingFailed => cx.recording = false,
            Event::Reference(r) => {
                // Bookkeeping only: no action waits for it.
                cx.vars.insert("reference".to_owned(), r.clone());
                return;
            }
            Event::Timer => match cx.timer {
                Some(t) if now >= t => cx.timer = None,
                _ => return, // stale
            },
            Event::Hangup => {
                if cx.recording {
                    cx.emit(Command::StopRecording);
                }
                cx.timer = None;
                self.current = None;
                if self.end.is_none() {
                    self.end = Some(End::Stopped);
                }
                return;
            }
            _ => {}
        }
        if self.end.is_some() {
            return;
        }
        let Some(action) = self.current.as_mut() else {
            return;
        };
        let next = action.on(&ev, &mut self.cx, now);
        self.follow(next, now);
    }

    fn follow(&mut self, next: Next, now: Instant) {
        match next {
            Next::Stay => {}
            Next::Go(step) => {
                self.current = None;
                self.cx.listen(false);
                self.enter(step, now);
            }
            Next::Transferred => self.finish(End::Transferred),
        }
    }

    fn enter(&mut self, mut step: Option<String>, now: Instant) {
        for _ in 0..MAX_STEPS_PER_EVENT {
            let Some(name) = step else {
                self.finish(End::Completed);
                return;
            };
            let Some(spec) = self.cx.flow.config.steps.get(&name).cloned() else {
                // check-config refuses unknown steps; a flow built in code might not.
                tracing::error!(step = %name, "flow goes to an unknown step: hanging up");
                self.finish(End::Completed);
                return;
            };
            *self.cx.visits.entry(name.clone()).or_default() += 1;
            self.steps.push(name.clone());
            self.cx.timer = None;
            let mut action = actions::build(&name, spec);
            match action.start(&mut self.cx, now) {
                Next::Stay => {
                    self.current = Some(action);
                    return;
                }
                Next::Go(n) => step = n,
                Next::Transferred => {
                    self.finish(End::Transferred);
                    return;
                }
            }
        }
        tracing::error!(
            "flow went through {MAX_STEPS_PER_EVENT} steps without waiting: hanging up"
        );
        self.finish(End::Completed);
    }

    fn finish(&mut self, end: End) {
        self.current = None;
        self.cx.listen(false);
        self.cx.timer = None;
        self.end = Some(end);
        if end == End::Completed {
            self.cx.emit(Command::Hangup);
        }
    }
}
