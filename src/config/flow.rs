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

pub use super::flow_steps::*;
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
