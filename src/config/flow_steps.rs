//! The steps of `[flow]`: one type per action with its parameters (`[flow.step.<name>]`
//! tables, told apart by `action = "..."`), what each leads to and which prompts it plays.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One step: an action and its parameters. `next` (and the other step names) left out
/// means the call ends there (the gateway hangs up, reason `completed`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum StepConfig {
    Play(PlayStep),
    Menu(MenuStep),
    Record(RecordStep),
    SayDigits(SayDigitsStep),
    CollectDigits(CollectDigitsStep),
    Lookup(LookupStep),
    Transfer(TransferStep),
    Branch(BranchStep),
    Set(SetStep),
    Goto(GotoStep),
    Hangup(HangupStep),
}

/// `play`: prompts, then `next`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PlayStep {
    pub prompts: Vec<String>,
    /// What cuts the prompts short: `none`, `dtmf` (default), `speech`, `all`.
    /// Speech only when `[ivr] speech_barge_in` is not `off`.
    pub barge_in: String,
    pub next: Option<String>,
}

/// `menu`: prompts, a digit (or, later, a phrase), the step of the option chosen.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MenuStep {
    /// Played on the first attempt. Default `["greeting", "menu"]`.
    pub prompts: Vec<String>,
    /// Played on later attempts. Default `["menu"]`.
    pub repeat_prompts: Vec<String>,
    /// After a digit no option has. Default `["invalid"]`.
    pub invalid_prompts: Vec<String>,
    /// After `timeout_secs` without a digit. Default `["no_input"]`.
    pub no_input_prompts: Vec<String>,
    /// `[[menu.option]]` id → step. The choice is the call's menu selection (and the
    /// `choice` variable).
    pub options: BTreeMap<String, String>,
    /// Digit → step, for a choice that is not a `[[menu.option]]` (a language). Stored in
    /// `var` when set.
    pub keys: BTreeMap<String, String>,
    pub var: Option<String>,
    /// Default `[menu] digit_timeout_secs`.
    pub timeout_secs: Option<u64>,
    /// Default `[menu] max_attempts`.
    pub max_attempts: Option<u32>,
    /// The digit assumed when none came, or `"hangup"` (go to `no_choice`).
    /// Default `[menu] on_no_input` for `options`, `"hangup"` for `keys`.
    pub on_no_input: Option<String>,
    /// Where a caller who chose nothing goes (`on_no_input = "hangup"`).
    pub no_choice: Option<String>,
    /// With the spoken menu (`[menu] speech`), played after `prompts` on the first
    /// attempt: the invitation to speak. Default `["menu_speech"]`.
    pub speech_prompts: Option<Vec<String>>,
}

/// `record`: "speak after the tone", the tone, the message.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecordStep {
    /// Default `["record"]`. Skipped when the caller already talked over a prompt.
    pub prompts: Vec<String>,
    /// Play the tone before recording. Default true.
    pub beep: bool,
    pub next: Option<String>,
}

impl Default for RecordStep {
    fn default() -> Self {
        RecordStep {
            prompts: vec!["record".into()],
            beep: true,
            next: None,
        }
    }
}

/// `say_digits`: a value read digit by digit with `digit_0`..`digit_9`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SayDigitsStep {
    /// Played before the digits.
    pub prompts: Vec<String>,
    /// The value: `${var}` is replaced by a variable (e.g. `"${reference}"`).
    pub value: String,
    /// Group sizes, a short pause after each group (`[6]`: YYMMDD, then the rest).
    pub groups: Vec<usize>,
    /// Played after the digits.
    pub after: Vec<String>,
    /// `none` (default), `dtmf`.
    pub barge_in: String,
    pub next: Option<String>,
    /// When the value holds no digit. Default `next`.
    pub on_failure: Option<String>,
}

/// `collect_digits`: n digits, or fewer ended by `end_key`, into a variable.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CollectDigitsStep {
    pub prompts: Vec<String>,
    pub var: String,
    /// Complete at this many digits. Default 12 (a reference).
    pub max_digits: usize,
    /// `end_key` is accepted from this many on. Default 1; 0 makes the end key alone an
    /// answer (an empty value), as in "press * to hear it again".
    pub min_digits: usize,
    /// Default `"#"`; empty = none.
    pub end_key: String,
    /// Seconds to wait for the first and each further digit. Default 6.
    pub timeout_secs: u64,
    /// Default 3.
    pub max_attempts: u32,
    pub invalid_prompts: Vec<String>,
    pub no_input_prompts: Vec<String>,
    pub next: Option<String>,
    /// After `max_attempts` without a number. Default: the call ends.
    pub on_failure: Option<String>,
}

impl Default for CollectDigitsStep {
    fn default() -> Self {
        CollectDigitsStep {
            prompts: Vec::new(),
            var: String::new(),
            max_digits: 12,
            min_digits: 1,
            end_key: "#".into(),
            timeout_secs: 6,
            max_attempts: 3,
            invalid_prompts: vec!["invalid".into()],
            no_input_prompts: vec!["no_input".into()],
            next: None,
            on_failure: None,
        }
    }
}

/// `lookup`: a ticket's progress by reference, into a variable.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LookupStep {
    /// Default `"${reference}"`.
    pub reference: String,
    /// Default `ticket_state`.
    pub var: String,
    pub next: Option<String>,
    /// No ticket has that reference. Default `next`.
    pub on_not_found: Option<String>,
    /// The store could not answer. Default `on_not_found`.
    pub on_failure: Option<String>,
}

impl Default for LookupStep {
    fn default() -> Self {
        LookupStep {
            reference: "${reference}".into(),
            var: "ticket_state".into(),
            next: None,
            on_not_found: None,
            on_failure: None,
        }
    }
}

/// `transfer`: hand the call to a person. On success the flow is over.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TransferStep {
    /// Empty = the gateway's default target.
    pub target: String,
    /// When the transfer failed or is unavailable.
    pub on_failure: Option<String>,
}

/// `branch`: the first `when` that holds, else `otherwise`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BranchStep {
    pub when: Vec<Condition>,
    pub otherwise: Option<String>,
}

/// One condition of a `branch`: `var` equal to one of `equals`, or the time within
/// `hours`, or both.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Condition {
    pub var: Option<String>,
    /// Values that match; an empty string matches an unset variable.
    pub equals: Vec<String>,
    /// `"mon-fri 08:00-20:00"`-style entries.
    pub hours: Vec<String>,
    /// Offset of local time for `hours`. Default `"+08:00"`.
    pub utc_offset: Option<String>,
    pub next: Option<String>,
}

/// `set`: a variable (`language` also switches the prompts).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SetStep {
    pub var: String,
    pub value: String,
    pub next: Option<String>,
}

/// `goto`: on to `next`, at most `max_visits` times per call, then `on_limit`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GotoStep {
    pub next: Option<String>,
    pub max_visits: Option<u32>,
    pub on_limit: Option<String>,
}

/// `hangup`: the call ends here.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HangupStep {}

impl StepConfig {
    /// The action's name, as written in `action =`.
    pub fn action(&self) -> &'static str {
        match self {
            StepConfig::Play(_) => "play",
            StepConfig::Menu(_) => "menu",
            StepConfig::Record(_) => "record",
            StepConfig::SayDigits(_) => "say_digits",
            StepConfig::CollectDigits(_) => "collect_digits",
            StepConfig::Lookup(_) => "lookup",
            StepConfig::Transfer(_) => "transfer",
            StepConfig::Branch(_) => "branch",
            StepConfig::Set(_) => "set",
            StepConfig::Goto(_) => "goto",
            StepConfig::Hangup(_) => "hangup",
        }
    }

    /// Every step this one can lead to, with the key naming it (for errors).
    pub fn targets(&self) -> Vec<(String, &str)> {
        fn one<'a>(out: &mut Vec<(String, &'a str)>, key: &str, t: &'a Option<String>) {
            if let Some(t) = t {
                out.push((key.to_owned(), t));
            }
        }
        let mut out = Vec::new();
        match self {
            StepConfig::Play(s) => one(&mut out, "next", &s.next),
            StepConfig::Menu(s) => {
                for (id, t) in &s.options {
                    out.push((format!("options.{id}"), t.as_str()));
                }
                for (d, t) in &s.keys {
                    out.push((format!("keys.{d}"), t.as_str()));
                }
                one(&mut out, "no_choice", &s.no_choice);
            }
            StepConfig::Record(s) => one(&mut out, "next", &s.next),
            StepConfig::SayDigits(s) => {
                one(&mut out, "next", &s.next);
                one(&mut out, "on_failure", &s.on_failure);
            }
            StepConfig::CollectDigits(s) => {
                one(&mut out, "next", &s.next);
                one(&mut out, "on_failure", &s.on_failure);
            }
            StepConfig::Lookup(s) => {
                one(&mut out, "next", &s.next);
                one(&mut out, "on_not_found", &s.on_not_found);
                one(&mut out, "on_failure", &s.on_failure);
            }
            StepConfig::Transfer(s) => one(&mut out, "on_failure", &s.on_failure),
            StepConfig::Branch(s) => {
                for (i, c) in s.when.iter().enumerate() {
                    one(&mut out, &format!("when[{i}].next"), &c.next);
                }
                one(&mut out, "otherwise", &s.otherwise);
            }
            StepConfig::Set(s) => one(&mut out, "next", &s.next),
            StepConfig::Goto(s) => {
                one(&mut out, "next", &s.next);
                one(&mut out, "on_limit", &s.on_limit);
            }
            StepConfig::Hangup(_) => {}
        }
        out
    }

    /// Prompt names the step plays, with the key naming them.
    pub fn prompts(&self) -> Vec<(&'static str, &[String])> {
        match self {
            StepConfig::Play(s) => vec![("prompts", &s.prompts)],
            StepConfig::Menu(s) => vec![
                ("prompts", &s.prompts),
                ("repeat_prompts", &s.repeat_prompts),
                ("invalid_prompts", &s.invalid_prompts),
                ("no_input_prompts", &s.no_input_prompts),
            ],
            StepConfig::Record(s) => vec![("prompts", &s.prompts)],
            StepConfig::SayDigits(s) => vec![("prompts", &s.prompts), ("after", &s.after)],
            StepConfig::CollectDigits(s) => vec![
                ("prompts", &s.prompts),
                ("invalid_prompts", &s.invalid_prompts),
                ("no_input_prompts", &s.no_input_prompts),
            ],
            _ => Vec::new(),
        }
    }
}

impl MenuStep {
    /// Prompts with their defaults filled in.
    pub fn filled(&self) -> MenuStep {
        let or = |v: &Vec<String>, d: &[&str]| {
            if v.is_empty() {
                d.iter().map(|s| s.to_string()).collect()
            } else {
                v.clone()
            }
        };
        MenuStep {
            prompts: or(&self.prompts, &["greeting", "menu"]),
            repeat_prompts: or(&self.repeat_prompts, &["menu"]),
            invalid_prompts: or(&self.invalid_prompts, &["invalid"]),
            no_input_prompts: or(&self.no_input_prompts, &["no_input"]),
            speech_prompts: Some(
                self.speech_prompts
                    .clone()
                    .unwrap_or_else(|| vec!["menu_speech".into()]),
            ),
            ..self.clone()
        }
    }
}
