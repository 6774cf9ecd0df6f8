//! `[flow]`: the call flow as data. Named steps, each one action with its parameters and
//! the names of the steps that follow; `src/call/flow` runs it.
//!
//! The flow lives in the main file (`[flow.step.<name>]` tables) or in a file of its own
//! named by `[flow] file`, relative to the configuration file, holding the same keys at
//! its top level (`start = ...`, `[step.<name>]`). Errors in either name the key
//! (`flow.step.<name>.<key>`) and the line of the file it is in.
//!
//! Without a `[flow]`, the flow of the gateway before flows existed is built from `[menu]`
//! ([`FlowConfig::legacy`]): greeting and menu, a message for each option with
//! `record = true`, thanks and goodbye. `record` is accepted there with a deprecation
//! warning; next to a `[flow]` it is an error, since the flow decides what an option does.

use super::{Config, ConfigError, ConfigSource, MenuConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// `[flow]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowConfig {
    /// A flow file, relative to the configuration file; empty = the steps below.
    pub file: String,
    /// The first step. Default `start`.
    pub start: String,
    /// `[flow.step.<name>]`: the steps by name.
    #[serde(rename = "step")]
    pub steps: BTreeMap<String, StepConfig>,
    /// Lines of the flow file's keys, when the flow came from `file` (keys already
    /// prefixed `flow.`), so that errors name that file and its lines.
    #[serde(skip)]
    pub source: Option<ConfigSource>,
}

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
    /// `end_key` is accepted from this many on. Default 1.
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
            ..self.clone()
        }
    }
}

impl FlowConfig {
    /// The name of the first step.
    pub fn start_step(&self) -> &str {
        if self.start.is_empty() {
            "start"
        } else {
            &self.start
        }
    }

    /// Whether a flow is configured (inline or from a file) rather than built from `[menu]`.
    pub fn is_configured(&self) -> bool {
        !self.steps.is_empty() || !self.file.is_empty()
    }

    /// The flow calls run: the configured one, or today's built from `[menu]`.
    pub fn effective(c: &Config) -> FlowConfig {
        if c.flow.steps.is_empty() {
            FlowConfig::legacy(&c.menu)
        } else {
            c.flow.clone()
        }
    }

    /// The flow before `[flow]` existed: greeting and menu; the message for options with
    /// `record = true`; thanks and goodbye (also for a caller who chose nothing).
    pub fn legacy(menu: &MenuConfig) -> FlowConfig {
        let mut steps = BTreeMap::new();
        let options = menu
            .options
            .iter()
            .map(|o| {
                let next = if o.record { "message" } else { "goodbye" };
                (o.id.clone(), next.to_owned())
            })
            .collect();
        steps.insert(
            "menu".to_owned(),
            StepConfig::Menu(MenuStep {
                options,
                no_choice: Some("goodbye".into()),
                ..MenuStep::default()
            }),
        );
        steps.insert(
            "message".to_owned(),
            StepConfig::Record(RecordStep {
                next: Some("goodbye".into()),
                ..RecordStep::default()
            }),
        );
        steps.insert(
            "goodbye".to_owned(),
            StepConfig::Play(PlayStep {
                prompts: vec!["thanks".into(), "goodbye".into()],
                barge_in: "none".into(),
                next: None,
            }),
        );
        FlowConfig {
            start: "menu".into(),
            steps,
            ..FlowConfig::default()
        }
    }

    /// Languages the flow switches to (`set` of `language`).
    pub fn languages(&self) -> Vec<String> {
        self.steps
            .values()
            .filter_map(|s| match s {
                StepConfig::Set(s) if s.var == "language" && !s.value.contains("${") => {
                    Some(s.value.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// Every prompt name the flow plays (without the generated `beep` and `pause`).
    pub fn prompt_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for step in self.steps.values() {
            let filled;
            let step = match step {
                StepConfig::Menu(m) => {
                    filled = StepConfig::Menu(m.filled());
                    &filled
                }
                s => s,
            };
            for (_, list) in step.prompts() {
                names.extend(list.iter().cloned());
            }
            if matches!(step, StepConfig::SayDigits(_)) {
                names.extend((0..10).map(|d| format!("digit_{d}")));
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// An error about a flow key: in the flow file when there is one, else in the main file.
    pub fn error(&self, main: &ConfigSource, key: &str, message: String) -> ConfigError {
        match &self.source {
            Some(s) => s.error(key, message),
            None => main.error(key, message),
        }
    }
}

/// Read `[flow] file` (relative to the configuration file `config_path`) into `c.flow`.
pub(super) fn load_file(c: &mut Config, config_path: &Path) -> Result<(), Vec<ConfigError>> {
    let rel = c.flow.file.clone();
    let path = config_path
        .parent()
        .unwrap_or_else(|| Path::new(""))
        .join(&rel);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        vec![c
            .source
            .error("flow.file", format!("cannot read {}: {e}", path.display()))]
    })?;
    let (file, mut source) =
        super::load::parse_part::<FlowFile>(&text, "flow").map_err(|errs| {
            errs.into_iter()
                .map(|mut e| {
                    e.file = Some(path.clone());
                    e
                })
                .collect::<Vec<_>>()
        })?;
    source.file = Some(path.clone());
    if !c.flow.steps.is_empty() {
        return Err(vec![c.source.error(
            "flow.file",
            "a flow file and [flow.step] tables in the same configuration: keep one",
        )]);
    }
    c.flow.start = file.start;
    c.flow.steps = file.step;
    c.flow.source = Some(source);
    Ok(())
}

/// A flow file: `[flow]`'s keys at the top level.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FlowFile {
    start: String,
    step: BTreeMap<String, StepConfig>,
}

/// One `hours` entry: days of the week (0 = Monday) and a time window in minutes of the day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoursSpec {
    pub first_day: u32,
    pub last_day: u32,
    pub from_min: u32,
    pub to_min: u32,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `"mon-fri 08:00-20:00"`, `"sat 09:00-12:00"`.
pub fn parse_hours(s: &str) -> Result<HoursSpec, String> {
    let bad = || format!("`{s}` is not like \"mon-fri 08:00-20:00\"");
    let (days, times) = s.trim().split_once(' ').ok_or_else(bad)?;
    let day = |d: &str| DAYS.iter().position(|x| *x == d).map(|p| p as u32);
    let (a, b) = days.split_once('-').unwrap_or((days, days));
    let (first_day, last_day) = (day(a).ok_or_else(bad)?, day(b).ok_or_else(bad)?);
    let minute = |t: &str| -> Option<u32> {
        let (h, m) = t.split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
    };
    let (f, t) = times.trim().split_once('-').ok_or_else(bad)?;
    let (from_min, to_min) = (minute(f).ok_or_else(bad)?, minute(t).ok_or_else(bad)?);
    if first_day > last_day || from_min >= to_min {
        return Err(format!("`{s}`: days and times must run forwards"));
    }
    Ok(HoursSpec {
        first_day,
        last_day,
        from_min,
        to_min,
    })
}

/// `"+08:00"`, `"-05:30"`, `"Z"` → seconds east of UTC.
pub fn parse_utc_offset(s: &str) -> Result<i32, String> {
    if s == "Z" || s == "+00:00" {
        return Ok(0);
    }
    let bad = || format!("`{s}` is not an offset like \"+08:00\"");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

/// Keys still accepted but on their way out, as warnings naming key and line: `record` on
/// `[[menu.option]]` (without a `[flow]`; next to one it is an error).
pub fn deprecations(c: &Config) -> Vec<ConfigError> {
    if c.flow.is_configured() {
        return Vec::new();
    }
    (0..c.menu.options.len())
        .map(|i| format!("menu.option[{i}].record"))
        .filter(|k| c.source.has(k))
        .map(|k| {
            c.source.error(
                &k,
                "deprecated: what an option leads to belongs in [flow] (a `menu` step's \
                 `options`); without a [flow] it still builds the flow from [menu]",
            )
        })
        .collect()
}

/// For check-config: where the flow comes from and each step with where it leads.
pub(super) fn summary(c: &Config) -> String {
    use std::fmt::Write;
    let flow = FlowConfig::effective(c);
    let mut s = String::new();
    let origin = match (&flow.source, c.flow.is_configured()) {
        (Some(src), _) => src
            .file
            .as_ref()
            .map_or("a flow file".to_owned(), |f| f.display().to_string()),
        (None, true) => "[flow]".to_owned(),
        (None, false) => "built from [menu] (no [flow]; `record` is deprecated)".to_owned(),
    };
    let _ = writeln!(s, "flow: {origin}, starts at `{}`", flow.start_step());
    for d in deprecations(c) {
        let _ = writeln!(s, "  warning: {d}");
    }
    for (name, step) in &flow.steps {
        let targets: Vec<String> = step
            .targets()
            .into_iter()
            .map(|(k, t)| format!("{k} → {t}"))
            .collect();
        let _ = writeln!(
            s,
            "  {name}: {}{}",
            step.action(),
            if targets.is_empty() {
                String::new()
            } else {
                format!(" ({})", targets.join(", "))
            }
        );
    }
    s
}
