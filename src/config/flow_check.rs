//! Checks of `[flow]`: every step name leads somewhere, every step can be reached, every
//! loop can be left, every parameter makes sense; on disk, every prompt exists for every
//! language in use. Errors name `flow.step.<name>.<key>` and its line (in the flow file
//! when the flow has one).

use super::flow::{parse_hours, parse_utc_offset, FlowConfig, StepConfig};
use super::validate::is_dtmf;
use super::{Config, ConfigError};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Prompts the gateway makes itself rather than loading.
pub const GENERATED_PROMPTS: &[&str] = &["beep", "pause"];

const BARGE_IN: &[&str] = &["none", "dtmf", "speech", "all"];

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Everything about the flow that needs no file on disk.
pub(super) fn validate(c: &Config) -> Vec<ConfigError> {
    let mut errs = Vec::new();
    if !c.flow.file.is_empty() && c.flow.source.is_none() {
        return errs; // read by `Config::load`, checked then
    }
    if !c.flow.is_configured() {
        // The flow is built from [menu]; `record` is still how options are told apart.
        return errs;
    }
    for (i, _) in c.menu.options.iter().enumerate() {
        let key = format!("menu.option[{i}].record");
        if c.source.has(&key) {
            errs.push(c.source.error(
                &key,
                "`record` moved into the flow: map the option's id to a `record` step in the \
                 flow's `menu` step (`options = { id = \"message\" }`), and remove this key",
            ));
        }
    }
    let flow = &c.flow;
    let mut err = |key: String, msg: String| errs.push(flow.error(&c.source, &key, msg));
    let start = flow.start_step();
    if !flow.steps.contains_key(start) {
        err(
            "flow.start".into(),
            format!("step `{start}` does not exist (every flow needs its first step)"),
        );
    }
    for (name, step) in &flow.steps {
        let at = format!("flow.step.{name}");
        if !is_name(name) {
            err(
                at.clone(),
                "step names are letters, digits, `_` and `-`".into(),
            );
        }
        for (key, target) in step.targets() {
            if !flow.steps.contains_key(target) {
                err(format!("{at}.{key}"), format!("unknown step `{target}`"));
            }
        }
        check_params(c, &at, step, &mut err);
    }
    check_reachable(flow, &mut err);
    check_loops(flow, &mut err);
    errs
}

/// Per action: what its parameters must be.
fn check_params(c: &Config, at: &str, step: &StepConfig, err: &mut impl FnMut(String, String)) {
    let option_digits: BTreeMap<&str, &str> = c
        .menu
        .options
        .iter()
        .map(|o| (o.id.as_str(), o.digit.as_str()))
        .collect();
    match step {
        StepConfig::Play(s) => {
            if s.prompts.is_empty() {
                err(
                    format!("{at}.prompts"),
                    "a `play` step needs prompts".into(),
                );
            }
            if !s.barge_in.is_empty() && !BARGE_IN.contains(&s.barge_in.as_str()) {
                err(
                    format!("{at}.barge_in"),
                    format!("`{}` must be one of {}", s.barge_in, BARGE_IN.join(", ")),
                );
            }
        }
        StepConfig::Menu(s) => {
            if s.options.is_empty() == s.keys.is_empty() {
                err(
                    at.to_owned(),
                    "a `menu` step needs either `options` (ids of [[menu.option]]) or `keys` \
                     (digits), not both"
                        .into(),
                );
            }
            for id in s.options.keys() {
                if !option_digits.contains_key(id.as_str()) {
                    err(
                        format!("{at}.options.{id}"),
                        format!("`{id}` is not the id of a [[menu.option]]"),
                    );
                }
            }
            for d in s.keys.keys() {
                if !is_dtmf(d) {
                    err(
                        format!("{at}.keys.{d}"),
                        format!("`{d}` is not one of 0-9, * or #"),
                    );
                }
            }
            let fallback = s.on_no_input.clone().unwrap_or_else(|| {
                if s.keys.is_empty() {
                    c.menu.on_no_input.clone()
                } else {
                    "hangup".into()
                }
            });
            let known = if s.keys.is_empty() {
                s.options
                    .keys()
                    .any(|id| option_digits.get(id.as_str()) == Some(&fallback.as_str()))
            } else {
                s.keys.contains_key(&fallback)
            };
            // A [menu] value that is no option's digit is reported for [menu] itself.
            let menu_default_bad = s.on_no_input.is_none()
                && s.keys.is_empty()
                && !option_digits.values().any(|d| *d == fallback);
            if fallback != "hangup" && !known && !menu_default_bad {
                let key = if s.on_no_input.is_some() {
                    format!("{at}.on_no_input")
                } else {
                    "menu.on_no_input".into()
                };
                err(
                    key,
                    format!("`{fallback}` must be \"hangup\" or a digit this menu offers"),
                );
            }
            if s.timeout_secs == Some(0) {
                err(
                    format!("{at}.timeout_secs"),
                    "must be greater than 0".into(),
                );
            }
            if s.max_attempts == Some(0) {
                err(format!("{at}.max_attempts"), "must be at least 1".into());
            }
        }
        StepConfig::CollectDigits(s) => {
            if !is_name(&s.var) {
                err(format!("{at}.var"), "the variable to collect into".into());
            }
            if s.max_digits == 0 || s.max_digits > 32 || s.min_digits > s.max_digits {
                err(
                    format!("{at}.max_digits"),
                    format!(
                        "{} must be 1 to 32 and at least min_digits ({})",
                        s.max_digits, s.min_digits
                    ),
                );
            }
            if !s.end_key.is_empty() && !is_dtmf(&s.end_key) {
                err(
                    format!("{at}.end_key"),
                    format!("`{}` is not one of 0-9, * or #", s.end_key),
                );
            }
            if s.timeout_secs == 0 {
                err(
                    format!("{at}.timeout_secs"),
                    "must be greater than 0".into(),
                );
            }
            if s.max_attempts == 0 {
                err(format!("{at}.max_attempts"), "must be at least 1".into());
            }
        }
        StepConfig::SayDigits(s) => {
            if s.value.is_empty() {
                err(
                    format!("{at}.value"),
                    "what to read, e.g. \"${reference}\"".into(),
                );
            }
            if s.groups.contains(&0) {
                err(
                    format!("{at}.groups"),
                    "group sizes must be at least 1".into(),
                );
            }
            if !matches!(s.barge_in.as_str(), "" | "none" | "dtmf") {
                err(
                    format!("{at}.barge_in"),
                    "must be \"none\" or \"dtmf\"".into(),
                );
            }
        }
        StepConfig::Lookup(s) => {
            if !is_name(&s.var) {
                err(
                    format!("{at}.var"),
                    "the variable for the ticket's state".into(),
                );
            }
        }
        StepConfig::Set(s) => {
            if !is_name(&s.var) {
                err(format!("{at}.var"), "the variable to set".into());
            }
            if s.var == "language" && !is_name(&s.value) {
                err(
                    format!("{at}.value"),
                    format!("`{}` is not a language (a prompts directory name)", s.value),
                );
            }
        }
        StepConfig::Branch(s) => {
            for (i, w) in s.when.iter().enumerate() {
                let wat = format!("{at}.when[{i}]");
                if w.var.is_none() && w.hours.is_empty() {
                    err(wat.clone(), "a condition needs `var` or `hours`".into());
                }
                for h in &w.hours {
                    if let Err(e) = parse_hours(h) {
                        err(format!("{wat}.hours"), e);
                    }
                }
                if let Some(o) = &w.utc_offset {
                    if let Err(e) = parse_utc_offset(o) {
                        err(format!("{wat}.utc_offset"), e);
                    }
                }
            }
        }
        StepConfig::Goto(s) => {
            if s.next.is_none() {
                err(format!("{at}.next"), "a `goto` needs `next`".into());
            }
            if s.max_visits == Some(0) {
                err(format!("{at}.max_visits"), "must be at least 1".into());
            }
        }
        StepConfig::Record(_) | StepConfig::Transfer(_) | StepConfig::Hangup(_) => {}
    }
}

fn check_reachable(flow: &FlowConfig, err: &mut impl FnMut(String, String)) {
    let mut seen = BTreeSet::new();
    let mut todo = vec![flow.start_step()];
    while let Some(n) = todo.pop() {
        if !seen.insert(n) {
            continue;
        }
        if let Some(step) = flow.steps.get(n) {
            todo.extend(step.targets().into_iter().map(|(_, t)| t));
        }
    }
    for name in flow.steps.keys() {
        if !seen.contains(name.as_str()) {
            err(
                format!("flow.step.{name}"),
                format!(
                    "unreachable: no step leads here from `{}`",
                    flow.start_step()
                ),
            );
        }
    }
}

/// A loop is fine when some step in it can leave it (a menu option, a failure path, the
/// call ending) or a `goto` in it has `max_visits`. Loops are the strongly connected
/// components of the step graph (Tarjan's algorithm, small graphs).
fn check_loops(flow: &FlowConfig, err: &mut impl FnMut(String, String)) {
    let names: Vec<&str> = flow.steps.keys().map(String::as_str).collect();
    let index: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let edges: Vec<Vec<usize>> = names
        .iter()
        .map(|n| {
            flow.steps[*n]
                .targets()
                .iter()
                .filter_map(|(_, t)| index.get(t).copied())
                .collect()
        })
        .collect();
    for comp in sccs(&edges) {
        let looping = comp.len() > 1 || edges[comp[0]].contains(&comp[0]);
        if !looping {
            continue;
        }
        let inside: BTreeSet<usize> = comp.iter().copied().collect();
        let exits = comp.iter().any(|&i| {
            let step = &flow.steps[names[i]];
            let limited = matches!(step, StepConfig::Goto(g) if g.max_visits.is_some());
            limited || ends_call(step) || edges[i].iter().any(|t| !inside.contains(t))
        });
        if !exits {
            let mut members: Vec<&str> = comp.iter().map(|&i| names[i]).collect();
            members.sort();
            err(
                format!("flow.step.{}", members[0]),
                format!(
                    "the steps {} loop with no way out: give a `goto` in the loop \
                     `max_visits` and `on_limit`, or lead one of them elsewhere",
                    members.join(" → ")
                ),
            );
        }
    }
}

/// Whether a step can end the call itself (a left-out next step, a transfer).
fn ends_call(step: &StepConfig) -> bool {
    match step {
        StepConfig::Hangup(_) | StepConfig::Transfer(_) => true,
        StepConfig::Play(s) => s.next.is_none(),
        StepConfig::Record(s) => s.next.is_none(),
        StepConfig::Set(s) => s.next.is_none(),
        StepConfig::SayDigits(s) => s.next.is_none() || s.on_failure.is_none(),
        StepConfig::CollectDigits(s) => s.next.is_none() || s.on_failure.is_none(),
        StepConfig::Lookup(s) => s.next.is_none(),
        StepConfig::Menu(s) => s.no_choice.is_none(),
        StepConfig::Branch(s) => s.otherwise.is_none() || s.when.iter().any(|w| w.next.is_none()),
        StepConfig::Goto(s) => s.next.is_none(),
    }
}

fn sccs(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct T<'a> {
        edges: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(t: &mut T, v: usize) {
        t.index[v] = Some(t.next);
        t.low[v] = t.next;
        t.next += 1;
        t.stack.push(v);
        t.on[v] = true;
        for &w in &t.edges[v] {
            match t.index[w] {
                None => {
                    visit(t, w);
                    t.low[v] = t.low[v].min(t.low[w]);
                }
                Some(iw) if t.on[w] => t.low[v] = t.low[v].min(iw),
                _ => {}
            }
        }
        if Some(t.low[v]) == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            t.out.push(comp);
        }
    }
    let n = edges.len();
    let mut t = T {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            visit(&mut t, v);
        }
    }
    t.out
}

/// On disk: every prompt the flow plays exists for every language in use (the
/// `[prompts]` language, the numbers' languages, and those the flow switches to). The
/// required prompts of the first two are `check_files`' business already.
pub(super) fn check_prompts(c: &Config, prompts_dir: &Path) -> Vec<ConfigError> {
    let flow = FlowConfig::effective(c);
    let mut base: Vec<String> = vec![c.prompts.language.clone()];
    base.extend(c.numbers.iter().filter_map(|n| n.language.clone()));
    let mut languages = base.clone();
    languages.extend(flow.languages());
    languages.sort();
    languages.dedup();
    let mut errs = Vec::new();
    let mut missing = |key: String, prompt: &str, lang: &str| {
        let path = prompts_dir.join(lang).join(format!("{prompt}.wav"));
        if !path.is_file() {
            errs.push(flow.error(
                &c.source,
                &key,
                format!(
                    "prompt `{prompt}` does not exist for language `{lang}` ({})",
                    path.display()
                ),
            ));
        }
    };
    for (name, step) in &flow.steps {
        let at = format!("flow.step.{name}");
        let step = match step {
            StepConfig::Menu(m) => StepConfig::Menu(m.filled()),
            s => s.clone(),
        };
        let mut lists: Vec<(&str, Vec<String>)> = step
            .prompts()
            .into_iter()
            .map(|(k, l)| (k, l.to_vec()))
            .collect();
        if matches!(step, StepConfig::SayDigits(_)) {
            lists.push(("value", (0..10).map(|d| format!("digit_{d}")).collect()));
        }
        // The spoken menu's invitation, and its "did you mean…? press 1" per option.
        if let StepConfig::Menu(m) = &step {
            if c.menu.speech && m.keys.is_empty() {
                lists.push((
                    "speech_prompts",
                    m.speech_prompts.clone().unwrap_or_default(),
                ));
                let confirm = m.options.keys().map(|id| format!("confirm_{id}"));
                lists.push(("options", confirm.collect()));
            }
        }
        for (key, list) in lists {
            for prompt in &list {
                if GENERATED_PROMPTS.contains(&prompt.as_str()) {
                    continue;
                }
                for lang in &languages {
                    let required = super::REQUIRED_PROMPTS.contains(&prompt.as_str());
                    if !(required && base.contains(lang)) {
                        missing(format!("{at}.{key}"), prompt, lang);
                    }
                }
            }
        }
        if let StepConfig::Set(s) = &step {
            if s.var == "language" && !base.contains(&s.value) {
                for prompt in super::REQUIRED_PROMPTS {
                    missing(format!("{at}.value"), prompt, &s.value);
                }
            }
        }
    }
    errs
}

/// Whether the `menu.on_no_input` option, chosen for a caller, leads to a `record` step (what
/// `ivr.speech_barge_in = "all"` needs): directly, or through a `branch` that sends a
/// defaulted choice (`choice_source = "default"`) to one, as the example's operator option does.
pub(super) fn takes_message(c: &Config, option: &super::MenuOption) -> bool {
    let flow = FlowConfig::effective(c);
    let is_record = |name: &str| matches!(flow.steps.get(name), Some(StepConfig::Record(_)));
    let records_when_defaulted = |name: &str| match flow.steps.get(name) {
        Some(StepConfig::Record(_)) => true,
        Some(StepConfig::Branch(b)) => b
            .when
            .iter()
            .find(|w| {
                w.var.as_deref() == Some("choice_source")
                    && w.hours.is_empty()
                    && w.equals.iter().any(|v| v == "default")
            })
            .and_then(|w| w.next.as_deref())
            .is_some_and(is_record),
        _ => false,
    };
    flow.steps.values().any(|s| match s {
        StepConfig::Menu(m) => m
            .options
            .get(&option.id)
            .is_some_and(|t| records_when_defaulted(t)),
        _ => false,
    })
}
