//! Actions answered by the gateway rather than the caller: `lookup` (a ticket's state by
//! reference, through the [`TicketLookup`](crate::call::flow::TicketLookup) the gateway
//! supplies) and `transfer` (to a person; until transfer exists the shell answers
//! "unavailable" and the flow takes `on_failure`).

use crate::call::flow::engine::{Action, Command, Ctx, Event, Next};
use crate::config::{LookupStep, TransferStep};
use std::time::Instant;

pub struct Lookup {
    spec: LookupStep,
}

impl Lookup {
    pub fn new(spec: LookupStep) -> Self {
        Lookup { spec }
    }

    fn not_found(&self) -> Option<String> {
        self.spec.on_not_found.clone().or(self.spec.next.clone())
    }
}

impl Action for Lookup {
    fn start(&mut self, cx: &mut Ctx, _now: Instant) -> Next {
        let reference = cx.expand(&self.spec.reference);
        if reference.is_empty() {
            cx.vars.insert(self.spec.var.clone(), "not_found".into());
            return Next::Go(self.not_found());
        }
        cx.emit(Command::Lookup { reference });
        Next::Stay
    }

    fn on(&mut self, ev: &Event, cx: &mut Ctx, _now: Instant) -> Next {
        let Event::LookupDone(result) = ev else {
            return Next::Stay;
        };
        let var = self.spec.var.clone();
        match result {
            Ok(Some(state)) => {
                cx.vars.insert(var, state.clone());
                Next::Go(self.spec.next.clone())
            }
            Ok(None) => {
                cx.vars.insert(var, "not_found".into());
                Next::Go(self.not_found())
            }
            Err(why) => {
                tracing::warn!(error = %why, "ticket lookup failed");
                cx.vars.insert(var, "unavailable".into());
                Next::Go(self.spec.on_failure.clone().or(self.not_found()))
            }
        }
    }
}

pub struct Transfer {
    spec: TransferStep,
}

impl Transfer {
    pub fn new(spec: TransferStep) -> Self {
        Transfer { spec }
    }
}

impl Action for Transfer {
    fn start(&mut self, cx: &mut Ctx, _now: Instant) -> Next {
        cx.want_reference();
        cx.emit(Command::Transfer {
            target: cx.expand(&self.spec.target),
        });
        Next::Stay
    }

    fn on(&mut self, ev: &Event, cx: &mut Ctx, _now: Instant) -> Next {
        match ev {
            Event::TransferDone(Ok(())) => {
                cx.vars.insert("transfer".into(), "answered".into());
                Next::Transferred
            }
            Event::TransferDone(Err(why)) => {
                cx.vars.insert("transfer".into(), why.clone());
                Next::Go(self.spec.on_failure.clone())
            }
            _ => Next::Stay,
        }
    }
}
