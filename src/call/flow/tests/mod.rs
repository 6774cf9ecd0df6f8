//! Virtual-clock tests of the engine and each action: the flow is written in TOML as an
//! admin would, events are fed one by one with the time passed in, and the commands the
//! engine gives are what is checked. No sockets, no sleeping.

mod collect;
mod control;
mod menu;
mod record;
mod reference;
mod remote;
mod spoken;
mod today;

use super::{Command, Engine, Event, Flow};
use crate::config::Config;
use chrono::{TimeZone, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The example's four options; every test flow picks from them.
const OPTIONS: &str = r#"
[[number]]
number = "8890"
channel = "8890"

[menu]
digit_timeout_secs = 6
max_attempts = 3
on_no_input = "0"

[[menu.option]]
digit = "1"
id = "complaint"
label = "投诉举报"
phrases = ["投诉"]

[[menu.option]]
digit = "2"
id = "policy"
label = "政策咨询"

[[menu.option]]
digit = "0"
id = "operator"
label = "人工服务"
"#;

/// A flow from `[flow]` TOML (with [`OPTIONS`] and `extra` sections), validated.
pub fn flow_with(flow: &str, extra: &str) -> Arc<Flow> {
    let text = format!("{OPTIONS}\n{extra}\n{flow}");
    let c = Config::from_str_with_env(&text, &[]).unwrap_or_else(|e| panic!("{e:#?}"));
    Arc::new(Flow::from_config(&c))
}

pub fn flow(flow: &str) -> Arc<Flow> {
    flow_with(flow, "")
}

/// One call on a virtual clock.
pub struct Call {
    pub engine: Engine,
    pub now: Instant,
}

impl Call {
    /// Starts at Wednesday 2026-12-02 10:00 Beijing time (02:00 UTC).
    pub fn start(flow: Arc<Flow>) -> (Call, Vec<Command>) {
        let wall = Utc.with_ymd_and_hms(2026, 12, 2, 2, 0, 0).unwrap();
        Call::start_at(flow, wall)
    }

    pub fn start_at(flow: Arc<Flow>, wall: chrono::DateTime<Utc>) -> (Call, Vec<Command>) {
        let now = Instant::now();
        let mut engine = Engine::new(flow, "zh", wall, now);
        engine.start(now);
        let mut call = Call { engine, now };
        let out = call.drain();
        (call, out)
    }

    pub fn drain(&mut self) -> Vec<Command> {
        std::iter::from_fn(|| self.engine.poll_command()).collect()
    }

    pub fn ev(&mut self, ev: Event) -> Vec<Command> {
        self.engine.handle(ev, self.now);
        self.drain()
    }

    /// Let `d` pass; the timer fires if it is due.
    pub fn wait(&mut self, d: Duration) -> Vec<Command> {
        self.now += d;
        match self.engine.deadline() {
            Some(t) if t <= self.now => self.ev(Event::Timer),
            _ => Vec::new(),
        }
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.engine.ctx().vars.get(name).map(String::as_str)
    }
}

/// The prompt names of a `Play` command, or panic.
pub fn played(cmds: &[Command]) -> Vec<String> {
    let plays: Vec<_> = cmds
        .iter()
        .filter_map(|c| match c {
            Command::Play { prompts, .. } => Some(prompts),
            _ => None,
        })
        .collect();
    assert_eq!(plays.len(), 1, "one Play expected in {cmds:?}");
    plays[0].iter().map(|p| p.name.clone()).collect()
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
