//! The actions, one module each; [`build`] makes the running action for a step.

mod control;
pub mod digits;
mod menu;
mod play;
mod record;
mod remote;

use super::engine::Action;
use crate::config::StepConfig;

/// The running action for step `name`.
pub fn build(name: &str, spec: StepConfig) -> Box<dyn Action> {
    match spec {
        StepConfig::Play(s) => Box::new(play::Play::new(s)),
        StepConfig::Menu(s) => Box::new(menu::Menu::new(s)),
        StepConfig::Record(s) => Box::new(record::Record::new(s)),
        StepConfig::SayDigits(s) => Box::new(digits::SayDigits::new(s)),
        StepConfig::CollectDigits(s) => Box::new(digits::CollectDigits::new(s)),
        StepConfig::Lookup(s) => Box::new(remote::Lookup::new(s)),
        StepConfig::Transfer(s) => Box::new(remote::Transfer::new(s)),
        StepConfig::Branch(s) => Box::new(control::Branch::new(s)),
        StepConfig::Set(s) => Box::new(control::Set::new(s)),
        StepConfig::Goto(s) => Box::new(control::Goto::new(name, s)),
        StepConfig::Hangup(_) => Box::new(control::Hangup),
    }
}
pub use digits::digit_prompts;
