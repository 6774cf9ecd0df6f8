//! Steps that decide without the caller: `branch`, `set`, `goto`, `hangup`.

use crate::call::flow::engine::{Action, Ctx, Event, Next};
use crate::config::{parse_hours, parse_utc_offset, BranchStep, Condition, GotoStep, SetStep};
use chrono::{Datelike, Timelike};
use std::time::Instant;

pub struct Branch {
    spec: BranchStep,
}

impl Branch {
    pub fn new(spec: BranchStep) -> Self {
        Branch { spec }
    }
}

/// Whether `c` holds now. A `var` condition compares the variable (unset = `""`); an
/// `hours` condition the local time; both given, both must hold.
pub fn holds(c: &Condition, cx: &Ctx, now: Instant) -> bool {
    if let Some(var) = &c.var {
        let value = cx.vars.get(var).map_or("", String::as_str);
        if !c.equals.iter().any(|e| e == value) {
            return false;
        }
    }
    if !c.hours.is_empty() {
        let offset = c
            .utc_offset
            .as_deref()
            .map_or(Ok(8 * 3600), parse_utc_offset)
            .unwrap_or(8 * 3600);
        let local = cx.wall(now) + chrono::Duration::seconds(i64::from(offset));
        let day = local.weekday().num_days_from_monday();
        let minute = local.hour() * 60 + local.minute();
        let open = c.hours.iter().filter_map(|h| parse_hours(h).ok()).any(|h| {
            (h.first_day..=h.last_day).contains(&day) && h.from_min <= minute && minute < h.to_min
        });
        if !open {
            return false;
        }
    }
    true
}

impl Action for Branch {
    fn start(&mut self, cx: &mut Ctx, now: Instant) -> Next {
        let next = match self.spec.when.iter().find(|c| holds(c, cx, now)) {
            Some(c) => c.next.clone(),
            None => self.spec.otherwise.clone(),
        };
        Next::Go(next)
    }

    fn on(&mut self, _: &Event, _: &mut Ctx, _: Instant) -> Next {
        Next::Stay
    }
}

pub struct Set {
    spec: SetStep,
}

impl Set {
    pub fn new(spec: SetStep) -> Self {
        Set { spec }
    }
}

impl Action for Set {
    fn start(&mut self, cx: &mut Ctx, _now: Instant) -> Next {
        let value = cx.expand(&self.spec.value);
        cx.vars.insert(self.spec.var.clone(), value);
        Next::Go(self.spec.next.clone())
    }

    fn on(&mut self, _: &Event, _: &mut Ctx, _: Instant) -> Next {
        Next::Stay
    }
}

pub struct Goto {
    name: String,
    spec: GotoStep,
}

impl Goto {
    pub fn new(name: &str, spec: GotoStep) -> Self {
        Goto {
            name: name.to_owned(),
            spec,
        }
    }
}

impl Action for Goto {
    fn start(&mut self, cx: &mut Ctx, _now: Instant) -> Next {
        let visits = cx.visits.get(&self.name).copied().unwrap_or(0);
        match self.spec.max_visits {
            Some(max) if visits > max => Next::Go(self.spec.on_limit.clone()),
            _ => Next::Go(self.spec.next.clone()),
        }
    }

    fn on(&mut self, _: &Event, _: &mut Ctx, _: Instant) -> Next {
        Next::Stay
    }
}

pub struct Hangup;

impl Action for Hangup {
    fn start(&mut self, _: &mut Ctx, _: Instant) -> Next {
        Next::Go(None)
    }

    fn on(&mut self, _: &Event, _: &mut Ctx, _: Instant) -> Next {
        Next::Stay
    }
}
