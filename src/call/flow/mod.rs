//! The call flow as data: named steps from `[flow]`, each one action, run by a sans-IO
//! [`engine`] and driven by the async shell in [`super::ivr`].
//!
//! The actions (one module each under [`actions`]): `play`, `menu`, `record`,
//! `say_digits`, `collect_digits`, `lookup`, `transfer`, `branch`, `set`, `goto`, `hangup`.
//! A new IVR feature is a new action (or a new parameter), not a branch in the shell.

pub mod actions;
pub mod engine;
pub mod lookup;
pub mod spoken;
#[cfg(test)]
mod tests;

pub use engine::{BargePolicy, Command, Ctx, End, Engine, Event, Next, PromptRef};
pub use lookup::{NoTickets, TicketLookup};
pub use spoken::{Guess, Heard};

use crate::config::{Config, FlowConfig, MenuConfig};

/// A flow ready to run: its steps and what they read from the rest of the configuration.
/// Built once per configuration (start and SIGHUP); each call keeps the `Arc` it started
/// with, so a reload changes the flow of new calls only.
#[derive(Clone, Debug)]
pub struct Flow {
    pub config: FlowConfig,
    /// `[[menu.option]]` and the `[menu]` defaults of `menu` steps.
    pub menu: MenuConfig,
    /// `[ivr] speech_barge_in`.
    pub speech_barge_in: String,
    /// The spoken menu is on: `[menu] speech`, and the gateway can hear (a Whisper model
    /// is loaded); see [`Flow::with_spoken_menu`].
    pub spoken_menu: bool,
}

impl Flow {
    /// The flow of `c`; deprecated keys are logged here, since this runs at start and on
    /// every reload.
    pub fn from_config(c: &Config) -> Flow {
        for d in crate::config::deprecations(c) {
            tracing::warn!("{d}");
        }
        Flow {
            config: FlowConfig::effective(c),
            menu: c.menu.clone(),
            speech_barge_in: c.ivr.speech_barge_in.clone(),
            // off until the gateway says it can hear
            spoken_menu: false,
        }
    }

    /// The spoken menu needs ears: off when the gateway has no speech recogniser, so that
    /// callers are not invited to talk to a menu that cannot hear them.
    pub fn with_spoken_menu(mut self, can_hear: bool) -> Flow {
        self.spoken_menu = self.menu.speech && can_hear;
        self
    }
}
