//! The configuration as an admin meets it: the shipped example file, files on disk, and the
//! `check-config` entry point.

use hotline_gateway::config::{check_config, Config, ConfigError, REQUIRED_PROMPTS};
use std::path::{Path, PathBuf};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn example() -> PathBuf {
    repo().join("config/hotline.toml")
}

fn example_text() -> String {
    std::fs::read_to_string(example()).unwrap()
}

fn load_with(text: &str, env: &[(&str, &str)]) -> Result<Config, Vec<ConfigError>> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    Config::from_str_with_env(text, &env)
}

/// 1-based line of the first line of `text` whose trimmed form starts with `needle`.
fn line(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with(needle))
        .unwrap_or_else(|| panic!("`{needle}` not found"))
        + 1
}

fn find<'a>(errs: &'a [ConfigError], key: &str) -> &'a ConfigError {
    errs.iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("no error for `{key}` in {errs:#?}"))
}

#[test]
fn example_config_loads_and_its_prompts_exist() {
    // `load` reads the process environment; this test binary sets no HOTLINE_ variables.
    let c = Config::load(&example()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.sip.listen, "127.0.0.1:5060".parse().unwrap());
    let numbers: Vec<(&str, &str)> = c
        .numbers
        .iter()
        .map(|n| (n.number.as_str(), n.channel.as_str()))
        .collect();
    assert_eq!(numbers, [("8890", "8890"), ("12345", "12345")]);
    let menu: Vec<(&str, &str, bool)> = c
        .menu
        .options
        .iter()
        .map(|o| (o.digit.as_str(), o.id.as_str(), o.record))
        .collect();
    assert_eq!(
        menu,
        [
            ("1", "complaint", true),
            ("2", "policy", true),
            ("3", "service", true),
            ("4", "progress", true),
            ("0", "operator", true)
        ]
    );
    assert_eq!(c.menu_option('2').unwrap().label, "政策咨询");
    assert_eq!(c.prompts.language, "zh");
    let errs = c.check_files(repo());
    assert!(errs.is_empty(), "{errs:#?}");
}

#[test]
fn shipped_prompts_are_8khz_mono_16bit_and_not_silent() {
    for lang in ["zh", "en"] {
        for name in REQUIRED_PROMPTS {
            let path = repo().join(format!("prompts/{lang}/{name}.wav"));
            let mut r = hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            let spec = r.spec();
            assert_eq!(
                (spec.sample_rate, spec.channels, spec.bits_per_sample),
                (8000, 1, 16),
                "{path:?}"
            );
            let peak = r
                .samples::<i16>()
                .map(|s| s.unwrap().unsigned_abs())
                .max()
                .unwrap_or(0);
            // Normalised to about -3 dBFS (23197); anything far below is a broken synthesis.
            assert!(peak > 16000, "{path:?}: peak {peak}");
            assert!(r.duration() >= 8000 / 4, "{path:?}: shorter than 250 ms");
        }
    }
}

#[test]
fn check_files_names_each_missing_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let zh = dir.path().join("prompts/zh");
    std::fs::create_dir_all(&zh).unwrap();
    // Every prompt the example uses (the required set and the flow's own) but the menu.
    for entry in std::fs::read_dir(repo().join("prompts/zh")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wav") && !path.ends_with("menu.wav") {
            std::fs::copy(&path, zh.join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(zh.join("busy.wav"), b"not a wav").unwrap();
    let text = example_text();
    let c = load_with(&text, &[]).unwrap();
    let errs = c.check_files(dir.path());
    assert_eq!(errs.len(), 2, "{errs:#?}");
    let messages: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("menu.wav") && m.contains("missing")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("busy.wav")),
        "{messages:?}"
    );
    for e in &errs {
        assert_eq!(e.key, "prompts.language");
        assert_eq!(e.line, Some(line(&text, "language = \"zh\"")));
    }
}

#[test]
fn a_number_in_a_language_without_prompts_is_caught() {
    let text = example_text().replace("# language = \"en\"", "language = \"fr\"");
    let c = load_with(&text, &[]).unwrap();
    let errs = c.check_files(repo());
    let e = find(&errs, "number[1].language");
    assert_eq!(e.line, Some(line(&text, "language = \"fr\"")));
}

#[test]
fn port_range_error_names_key_and_line() {
    let text = example_text().replace("rtp_port_min = 20000", "rtp_port_min = 30001");
    let errs = load_with(&text, &[]).unwrap_err();
    let e = find(&errs, "media.rtp_port_min");
    let at = line(&text, "rtp_port_min = 30001");
    assert_eq!(e.line, Some(at));
    let shown = e.to_string();
    assert!(
        shown.contains(&format!("{at}:")) && shown.contains("media.rtp_port_min"),
        "{shown}"
    );
    // 30001 is also odd: both problems are reported.
    assert_eq!(
        errs.iter()
            .filter(|e| e.key == "media.rtp_port_min")
            .count(),
        2,
        "{errs:#?}"
    );
}

#[test]
fn unknown_key_is_rejected_naming_it_and_its_line() {
    let text = example_text().replace("max_calls = 100", "max_calls = 100\nmax_cals = 5");
    let errs = load_with(&text, &[]).unwrap_err();
    let e = find(&errs, "limits.max_cals");
    assert_eq!(e.line, Some(line(&text, "max_cals")));
}

#[test]
fn syntax_error_reports_its_line() {
    let text = example_text().replace("t2_ms = 4000", "t2_ms = 4000 ms");
    let errs = load_with(&text, &[]).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].line, Some(line(&text, "t2_ms")));
}

#[test]
fn load_names_the_file_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[[number]]\nnumber = \"1\"\n").unwrap();
    let errs = Config::load(&path).unwrap_err();
    let e = find(&errs, "number[0].channel");
    assert_eq!(e.file.as_deref(), Some(path.as_path()));
    assert!(
        e.to_string().starts_with(&format!("{}:1:", path.display())),
        "{e}"
    );
}

#[test]
fn env_override_changes_listen_address() {
    let c = load_with(&example_text(), &[("HOTLINE_SIP_LISTEN", "127.0.0.1:5070")]).unwrap();
    assert_eq!(c.sip.listen, "127.0.0.1:5070".parse().unwrap());
}

#[test]
fn data_dir_from_environment() {
    let c = load_with(&example_text(), &[("HOTLINE_DATA_DIR", "/var/lib/hotline")]).unwrap();
    assert_eq!(c.storage.data_dir, PathBuf::from("/var/lib/hotline"));
    assert_eq!(
        c.storage.outbox_dir(),
        PathBuf::from("/var/lib/hotline/outbox")
    );
}

#[test]
fn bad_env_value_names_the_variable() {
    let errs = load_with(&example_text(), &[("HOTLINE_MEDIA_RTP_PORT_MIN", "twenty")]).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(
        errs[0].env_var.as_deref(),
        Some("HOTLINE_MEDIA_RTP_PORT_MIN")
    );
    assert!(errs[0].to_string().contains("HOTLINE_MEDIA_RTP_PORT_MIN"));
    // A value too large for a port is caught when deserialising; still named.
    let errs = load_with(&example_text(), &[("HOTLINE_MEDIA_RTP_PORT_MAX", "70000")]).unwrap_err();
    let e = find(&errs, "media.rtp_port_max");
    assert_eq!(e.env_var.as_deref(), Some("HOTLINE_MEDIA_RTP_PORT_MAX"));
}

#[test]
fn multiple_errors_are_reported_together() {
    let text = example_text()
        .replace("rtp_port_min = 20000", "rtp_port_min = 30000")
        .replace("on_no_input = \"0\"", "on_no_input = \"7\"")
        .replace("end_digit = \"#\"", "end_digit = \"##\"")
        .replace("retry_after_secs = 30", "retry_after_secs = 30\nretry = 1");
    let errs = load_with(
        &text,
        &[("HOTLINE_SIP_T1_MS", "x"), ("HOTLINE_RECORDING_END", "#")],
    )
    .unwrap_err();
    assert_eq!(
        find(&errs, "media.rtp_port_min").line,
        Some(line(&text, "rtp_port_min"))
    );
    assert_eq!(
        find(&errs, "menu.on_no_input").line,
        Some(line(&text, "on_no_input"))
    );
    assert_eq!(
        find(&errs, "recording.end_digit").line,
        Some(line(&text, "end_digit"))
    );
    assert_eq!(
        find(&errs, "limits.retry").line,
        Some(line(&text, "retry = 1"))
    );
    assert_eq!(
        find(&errs, "sip.t1_ms").env_var.as_deref(),
        Some("HOTLINE_SIP_T1_MS")
    );
    assert!(errs
        .iter()
        .any(|e| e.env_var.as_deref() == Some("HOTLINE_RECORDING_END")));
    assert_eq!(errs.len(), 6, "{errs:#?}");
}

#[test]
fn check_config_summarises_the_example() {
    // check_config resolves prompts against the working directory; cargo runs integration
    // tests from the package root, where the example's relative paths point.
    assert_eq!(std::env::current_dir().unwrap(), repo());
    let summary = check_config(&example()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(summary.contains("127.0.0.1:5060"), "{summary}");
    assert!(summary.contains("8890 -> channel 8890"), "{summary}");
    assert!(summary.contains("12345 -> channel 12345"), "{summary}");
    assert!(summary.contains("0 人工服务 (operator)"), "{summary}");
}

// ---- [flow] (issue 12): named steps, validated with key and line ----

/// The example with its `[flow]` tables replaced by `flow`.
fn example_with_flow(flow: &str) -> String {
    let text = example_text();
    let start = text.find("\n[flow]\n").expect("the example has a [flow]");
    let end = text[start..].find("\n[ivr]\n").unwrap() + start;
    format!("{}\n{flow}\n{}", &text[..start], &text[end..])
}

#[test]
fn flow_unknown_unreachable_and_inescapable_steps_are_named_with_their_lines() {
    let text = example_with_flow(
        r#"[flow]
start = "menu"

[flow.step.menu]
action = "menu"
options = { complaint = "mesage", policy = "spin", service = "spin", operator = "spin" }

[flow.step.spin]
action = "goto"
next = "spin2"

[flow.step.spin2]
action = "set"
var = "x"
value = "1"
next = "spin"

[flow.step.orphan]
action = "hangup"
"#,
    );
    let errs = load_with(&text, &[]).unwrap_err();
    let e = find(&errs, "flow.step.menu.options.complaint");
    assert!(e.message.contains("unknown step `mesage`"), "{e}");
    assert_eq!(e.line, Some(line(&text, "options = { complaint")));
    let e = find(&errs, "flow.step.orphan");
    assert!(e.message.contains("unreachable"), "{e}");
    assert_eq!(e.line, Some(line(&text, "[flow.step.orphan]")));
    let e = find(&errs, "flow.step.spin");
    assert!(e.message.contains("no way out"), "{e}");
    assert_eq!(e.line, Some(line(&text, "[flow.step.spin]")));
    assert_eq!(errs.len(), 3, "{errs:#?}");
}

#[test]
fn flow_loop_with_a_limit_is_accepted() {
    let text = example_with_flow(
        r#"[flow]
start = "menu"
[flow.step.menu]
action = "menu"
options = { complaint = "again", policy = "again", service = "again", operator = "again" }
[flow.step.again]
action = "goto"
next = "menu"
max_visits = 3
on_limit = "bye"
[flow.step.bye]
action = "hangup"
"#,
    );
    load_with(&text, &[]).unwrap_or_else(|e| panic!("{e:#?}"));
}

#[test]
fn flow_actions_and_parameters_are_checked() {
    let text = example_with_flow(
        r#"[flow]
start = "menu"
[flow.step.menu]
action = "menu"
options = { complaint = "ask", nobody = "ask" }
[flow.step.ask]
action = "collect_digits"
var = "reference"
max_digits = 0
end_key = "x"
next = "open"
[flow.step.open]
action = "branch"
when = [{ hours = ["weekdays 8-20"], next = "ask" }]
"#,
    );
    let errs = load_with(&text, &[]).unwrap_err();
    assert_eq!(
        find(&errs, "flow.step.menu.options.nobody").line,
        Some(line(&text, "options = { complaint"))
    );
    assert_eq!(
        find(&errs, "flow.step.ask.max_digits").line,
        Some(line(&text, "max_digits = 0"))
    );
    assert_eq!(
        find(&errs, "flow.step.ask.end_key").line,
        Some(line(&text, "end_key = \"x\""))
    );
    assert!(find(&errs, "flow.step.open.when[0].hours")
        .message
        .contains("mon-fri 08:00-20:00"));

    // An unknown action names its step and line.
    let text =
        example_with_flow("[flow]\nstart = \"menu\"\n[flow.step.menu]\naction = \"dance\"\n");
    let errs = load_with(&text, &[]).unwrap_err();
    let e = errs
        .iter()
        .find(|e| e.message.contains("dance"))
        .unwrap_or_else(|| panic!("{errs:#?}"));
    assert!(e.key.starts_with("flow.step.menu"), "{e}");
    assert!(
        e.message.contains("collect_digits"),
        "the known actions are listed: {e}"
    );
    assert!(
        [
            line(&text, "[flow.step.menu]"),
            line(&text, "action = \"dance\"")
        ]
        .contains(&e.line.unwrap()),
        "{e}"
    );
}

#[test]
fn record_on_an_option_is_deprecated_without_a_flow_and_refused_with_one() {
    // No [flow]: `record` still decides (record = false: no message), with a warning.
    let text = example_with_flow("").replacen(
        "label = \"政策咨询\"\n",
        "label = \"政策咨询\"\nrecord = false\n",
        1,
    );
    let c = load_with(&text, &[]).unwrap_or_else(|e| panic!("{e:#?}"));
    let flow = hotline_gateway::config::FlowConfig::effective(&c);
    let hotline_gateway::config::StepConfig::Menu(menu) = &flow.steps[flow.start_step()] else {
        panic!("{flow:?}");
    };
    assert_eq!(menu.options["policy"], "goodbye");
    assert_eq!(menu.options["complaint"], "message");
    let warnings = hotline_gateway::config::deprecations(&c);
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].key, "menu.option[1].record");
    assert_eq!(warnings[0].line, Some(line(&text, "record = false")));

    // With a [flow], the same key is an error naming it.
    let text = example_text().replacen(
        "label = \"政策咨询\"\n",
        "label = \"政策咨询\"\nrecord = true\n",
        1,
    );
    let errs = load_with(&text, &[]).unwrap_err();
    let e = find(&errs, "menu.option[1].record");
    assert_eq!(e.line, Some(line(&text, "record = true")));
    assert!(e.message.contains("moved into the flow"), "{e}");
}

#[test]
fn the_language_first_flow_file_loads_and_its_prompts_exist() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    std::fs::copy(
        repo().join("config/flows/language-first.toml"),
        dir.path().join("flows/language-first.toml"),
    )
    .unwrap();
    let config = dir.path().join("hotline.toml");
    std::fs::write(
        &config,
        example_with_flow("[flow]\nfile = \"flows/language-first.toml\"\n"),
    )
    .unwrap();
    let c = Config::load(&config).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.flow.start_step(), "language");
    assert!(c.flow.steps.contains_key("english"));
    let errs = c.check_files(repo());
    assert!(errs.is_empty(), "{errs:#?}");
    let summary = c.summary();
    assert!(summary.contains("language-first.toml"), "{summary}");
    assert!(summary.contains("english: set (next → menu)"), "{summary}");

    // Without the English language prompt, check-config names the step, the key and the
    // flow file's line.
    let prompts = dir.path().join("prompts");
    for lang in ["zh", "en"] {
        std::fs::create_dir_all(prompts.join(lang)).unwrap();
        for e in std::fs::read_dir(repo().join("prompts").join(lang)).unwrap() {
            let e = e.unwrap();
            if !(lang == "en" && e.file_name() == "language.wav") {
                std::fs::copy(e.path(), prompts.join(lang).join(e.file_name())).unwrap();
            }
        }
    }
    let errs = c.check_files(dir.path());
    // `prompts` and `repeat_prompts` both play it.
    assert_eq!(errs.len(), 2, "{errs:#?}");
    let e = &errs[0];
    assert_eq!(e.key, "flow.step.language.prompts");
    assert_eq!(
        e.file.as_deref(),
        Some(dir.path().join("flows/language-first.toml").as_path())
    );
    let flow_text = std::fs::read_to_string(dir.path().join("flows/language-first.toml")).unwrap();
    assert_eq!(e.line, Some(line(&flow_text, "prompts = [\"language\"]")));
    assert!(e.message.contains("`en`"), "{e}");
}

#[test]
fn errors_in_a_flow_file_name_that_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let flow =
        "start = \"a\"\n\n[step.a]\naction = \"play\"\nprompts = [\"thanks\"]\nnext = \"b\"\n";
    std::fs::write(dir.path().join("flow.toml"), flow).unwrap();
    let config = dir.path().join("hotline.toml");
    std::fs::write(&config, example_with_flow("[flow]\nfile = \"flow.toml\"\n")).unwrap();
    let errs = Config::load(&config).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].key, "flow.step.a.next");
    assert_eq!(errs[0].line, Some(6));
    assert_eq!(
        errs[0].file.as_deref(),
        Some(dir.path().join("flow.toml").as_path())
    );
    assert!(errs[0].to_string().contains("flow.toml:6:"), "{}", errs[0]);

    // A missing file is named with the `file` key's line in the configuration.
    std::fs::remove_file(dir.path().join("flow.toml")).unwrap();
    let errs = Config::load(&config).unwrap_err();
    assert_eq!(errs[0].key, "flow.file");
    assert!(errs[0].line.is_some());
}

#[test]
fn the_spoken_menu_needs_its_invitation_and_a_confirm_prompt_per_option() {
    let text = example_text();
    let c = load_with(&text, &[]).unwrap();
    assert!(c.menu.speech, "the example turns the spoken menu on");
    let operator = c.menu.options.iter().find(|o| o.id == "operator").unwrap();
    for said in ["转人工", "人工", "接线员"] {
        assert!(operator.phrases.iter().any(|p| p == said), "{said}");
    }
    let dir = tempfile::tempdir().unwrap();
    let zh = dir.path().join("prompts/zh");
    std::fs::create_dir_all(&zh).unwrap();
    for entry in std::fs::read_dir(repo().join("prompts/zh")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".wav") && name != "confirm_policy.wav" && name != "menu_speech.wav" {
            std::fs::copy(&path, zh.join(&name)).unwrap();
        }
    }
    let errs = c.check_files(dir.path());
    let messages: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert_eq!(errs.len(), 2, "{messages:#?}");
    let confirm = find(&errs, "flow.step.menu.options");
    assert!(confirm.to_string().contains("confirm_policy"), "{confirm}");
    assert_eq!(confirm.line, Some(line(&text, "options = { complaint")));
    let invite = find(&errs, "flow.step.menu.speech_prompts");
    assert!(invite.to_string().contains("menu_speech"), "{invite}");
    // keys only: neither is needed
    let c = load_with(&text, &[("HOTLINE_MENU_SPEECH", "false")]).unwrap();
    assert!(!c.menu.speech);
    assert!(c.check_files(dir.path()).is_empty());
}
