//! Parsing and validation without files on disk.

use super::*;
use std::net::IpAddr;

/// Each section's own keys: defaults, values, errors naming key and line.
mod sections;

const MINIMAL: &str = "[[number]]\nnumber = \"8890\"\nchannel = \"8890\"\n\n[[menu.option]]\ndigit = \"0\"\nid = \"operator\"\nlabel = \"人工服务\"\n";

fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
    Config::from_str_with_env(text, &[])
}

fn parse_env(text: &str, env: &[(&str, &str)]) -> Result<Config, Vec<ConfigError>> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    Config::from_str_with_env(text, &env)
}

fn errors(r: Result<Config, Vec<ConfigError>>) -> Vec<ConfigError> {
    match r {
        Ok(c) => panic!("expected errors, got {c:?}"),
        Err(e) => e,
    }
}

/// 1-based line of the first line of `text` starting with `needle`.
fn line(text: &str, needle: &str) -> Option<usize> {
    let i = text.lines().position(|l| l.starts_with(needle));
    Some(i.unwrap_or_else(|| panic!("`{needle}` not in text")) + 1)
}

fn find<'a>(errs: &'a [ConfigError], key: &str) -> &'a ConfigError {
    errs.iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("no error for `{key}` in {errs:#?}"))
}

#[test]
fn minimal_config_gets_the_documented_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.sip.listen, "127.0.0.1:5060".parse().unwrap());
    assert_eq!((c.sip.t1_ms, c.sip.t2_ms, c.sip.t4_ms), (500, 4000, 5000));
    assert_eq!(c.media.rtp_ip, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!((c.media.rtp_port_min, c.media.rtp_port_max), (20000, 20999));
    assert_eq!(c.media.codecs, ["PCMU", "PCMA"]);
    assert_eq!(c.media.rtp_timeout_secs, 30);
    assert_eq!(c.limits.max_calls, 100);
    assert_eq!(c.limits.max_call_duration_secs, 600);
    assert_eq!(c.limits.retry_after_secs, 30);
    assert_eq!(c.recording.max_duration_secs, 120);
    assert_eq!(c.recording.trailing_silence_ms, 1500);
    assert_eq!(c.recording.no_speech_timeout_secs, 8);
    assert_eq!(c.recording.speech_threshold_dbfs, -40.0);
    assert_eq!(c.recording.end_digit, "#");
    assert_eq!(c.menu.digit_timeout_secs, 6);
    assert_eq!(c.menu.max_attempts, 3);
    assert_eq!(c.menu.on_no_input, "0");
    assert!(c.menu.options[0].record);
    assert_eq!(c.storage.data_dir, PathBuf::from("var"));
    assert_eq!(c.prompts.dir, PathBuf::from("prompts"));
    assert_eq!(c.prompts.language, "zh");
    assert_eq!(c.number("8890").unwrap().channel, "8890");
    assert!(c.number("8891").is_none());
    assert_eq!(c.language_for(&c.numbers[0]), "zh");
    assert_eq!(c.menu_option('0').unwrap().id, "operator");
}

#[test]
fn only_numbers_is_not_enough_without_a_menu() {
    let errs = errors(parse("[[number]]\nnumber = \"8890\"\nchannel = \"8890\"\n"));
    find(&errs, "menu.option");
    // The default on_no_input "0" names no configured option either.
    find(&errs, "menu.on_no_input");
}

#[test]
fn value_error_names_key_and_line() {
    let text = format!("{MINIMAL}\n[media]\nrtp_port_max = 30000\nrtp_port_min = 30002\n");
    let errs = errors(parse(&text));
    let e = find(&errs, "media.rtp_port_min");
    assert_eq!(e.line, line(&text, "rtp_port_min = 30002"), "{e}");
    let at = format!("{}: key `media.rtp_port_min`", e.line.unwrap());
    assert!(e.to_string().starts_with(&at), "{e}");
}

#[test]
fn unknown_key_is_rejected_with_its_line() {
    let text = format!("{MINIMAL}\n[sip]\nlisten = \"127.0.0.1:5060\"\nlistne = \"x\"\n");
    let errs = errors(parse(&text));
    let e = find(&errs, "sip.listne");
    assert_eq!(e.line, line(&text, "listne"));
    assert!(e.message.contains("unknown field"), "{e}");
}

#[test]
fn unknown_key_inside_an_array_of_tables() {
    let text = "[[number]]\nnumber = \"1\"\nchannel = \"1\"\n\n[[number]]\nnumber = \"2\"\nchanel = \"2\"\n\n[[menu.option]]\ndigit = \"0\"\nid = \"o\"\nlabel = \"o\"\n";
    let errs = errors(parse(text));
    assert_eq!(find(&errs, "number[1].chanel").line, Some(7));
}

#[test]
fn wrong_type_names_key_and_line() {
    let text = format!("{MINIMAL}\n[limits]\nmax_calls = \"many\"\n");
    let errs = errors(parse(&text));
    assert_eq!(
        find(&errs, "limits.max_calls").line,
        line(&text, "max_calls")
    );
}

#[test]
fn syntax_error_has_its_line() {
    let text = "[sip]\nlisten = \"127.0.0.1:5060\"\nt1_ms = = 5\n";
    let errs = errors(parse(text));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].key, "");
    assert_eq!(errs[0].line, Some(3), "{}", errs[0]);
}

#[test]
fn all_errors_are_reported_together() {
    let text = "[sip]\nt1_ms = 0\nbogus = 1\n\n[media]\nrtp_port_min = 20001\ncodecs = [\"PCMU\", \"G729\"]\n\n[[number]]\nnumber = \"8890\"\nchannel = \"a\"\n[[number]]\nnumber = \"8890\"\nchannel = \"b\"\n\n[[menu.option]]\ndigit = \"12\"\nid = \"x\"\nlabel = \"x\"\n\n[recording]\nend_digit = \"x\"\n";
    let errs = errors(parse(text));
    assert_eq!(find(&errs, "sip.bogus").line, Some(3));
    assert_eq!(find(&errs, "media.rtp_port_min").line, Some(6));
    assert_eq!(find(&errs, "media.codecs").line, Some(7));
    assert_eq!(find(&errs, "number[1].number").line, Some(13));
    assert_eq!(find(&errs, "menu.option[0].digit").line, Some(17));
    assert_eq!(find(&errs, "recording.end_digit").line, Some(22));
    // sip has a structural error, so its validation (t1 = 0) is held back rather than
    // reported against a default.
    assert!(errs.iter().all(|e| e.key != "sip.t1_ms"), "{errs:#?}");
}

#[test]
fn validation_errors_are_all_collected() {
    let text = format!(
        "{MINIMAL}\n[sip]\nt1_ms = 5000\nt2_ms = 4000\n\n[media]\nrtp_port_min = 20000\nrtp_port_max = 20000\n\n[limits]\nmax_calls = 0\n"
    );
    let errs = errors(parse(&text));
    assert_eq!(find(&errs, "sip.t1_ms").line, line(&text, "t1_ms"));
    assert_eq!(
        find(&errs, "media.rtp_port_max").line,
        line(&text, "rtp_port_max")
    );
    assert_eq!(
        find(&errs, "limits.max_calls").line,
        line(&text, "max_calls")
    );
}

#[test]
fn menu_rules() {
    let text = "[[number]]\nnumber = \"1\"\nchannel = \"1\"\n\n[menu]\non_no_input = \"9\"\n\n[[menu.option]]\ndigit = \"1\"\nid = \"a\"\nlabel = \"A\"\n\n[[menu.option]]\ndigit = \"1\"\nid = \"a\"\n";
    let errs = errors(parse(text));
    assert_eq!(find(&errs, "menu.on_no_input").line, Some(6));
    assert_eq!(find(&errs, "menu.option[1].digit").line, Some(14));
    assert_eq!(find(&errs, "menu.option[1].id").line, Some(15));
    // A missing required key points at its table.
    assert_eq!(find(&errs, "menu.option[1].label").line, Some(13));
    let ok = text.replace("on_no_input = \"9\"", "on_no_input = \"hangup\"");
    let ok = format!(
        "{}digit = \"#\"\nid = \"b\"\nlabel = \"B\"\n",
        &ok[..ok.rfind("digit").unwrap()]
    );
    let c = parse(&ok).unwrap();
    assert_eq!(c.menu_option('#').unwrap().id, "b");
}

#[test]
fn missing_number_fields_are_reported() {
    let text = "[[number]]\nchannel = \"1\"\n\n[[menu.option]]\ndigit = \"0\"\nid = \"o\"\nlabel = \"o\"\n";
    let errs = errors(parse(text));
    assert_eq!(find(&errs, "number[0].number").line, Some(1));
}

#[test]
fn env_override_sets_keys_typed_like_the_field() {
    let c = parse_env(
        MINIMAL,
        &[
            ("HOTLINE_SIP_LISTEN", "127.0.0.1:5070"),
            ("HOTLINE_MEDIA_RTP_PORT_MIN", "30000"),
            ("HOTLINE_MEDIA_RTP_PORT_MAX", "30099"),
            ("HOTLINE_LIMITS_MAX_CALLS", "5"),
            ("HOTLINE_MEDIA_CODECS", "PCMA"),
            ("HOTLINE_SIP_EARLY_MEDIA", "true"),
            ("HOTLINE_LOG", "debug"),
        ],
    )
    .unwrap();
    assert_eq!(c.sip.listen, "127.0.0.1:5070".parse().unwrap());
    assert_eq!((c.media.rtp_port_min, c.media.rtp_port_max), (30000, 30099));
    assert_eq!(c.limits.max_calls, 5);
    assert_eq!(c.media.codecs, ["PCMA"]);
    assert!(c.sip.early_media);
}

#[test]
fn env_override_replaces_a_value_in_the_file() {
    let text = format!("{MINIMAL}\n[sip]\nlisten = \"127.0.0.1:5060\"\n");
    let c = parse_env(&text, &[("HOTLINE_SIP_LISTEN", "127.0.0.1:5071")]).unwrap();
    assert_eq!(c.sip.listen.port(), 5071);
}

#[test]
fn env_value_errors_name_the_variable() {
    // Rejected when typed, before deserialising.
    let errs = errors(parse_env(MINIMAL, &[("HOTLINE_LIMITS_MAX_CALLS", "five")]));
    assert_eq!(errs[0].env_var.as_deref(), Some("HOTLINE_LIMITS_MAX_CALLS"));
    assert!(errs[0].to_string().contains("HOTLINE_LIMITS_MAX_CALLS"));
    // Rejected by deserialisation: not an address.
    let errs = errors(parse_env(MINIMAL, &[("HOTLINE_SIP_LISTEN", "localhost")]));
    let e = find(&errs, "sip.listen");
    assert_eq!(e.env_var.as_deref(), Some("HOTLINE_SIP_LISTEN"));
    assert_eq!(
        e.line, None,
        "the line in the file is not where the value came from"
    );
    // Rejected by validation: out of range for the field.
    let errs = errors(parse_env(
        MINIMAL,
        &[("HOTLINE_MEDIA_RTP_PORT_MIN", "20001")],
    ));
    let e = find(&errs, "media.rtp_port_min");
    assert!(e.to_string().contains("HOTLINE_MEDIA_RTP_PORT_MIN"), "{e}");
}

#[test]
fn misspelt_env_variable_is_an_error_with_file_errors() {
    let text = format!("{MINIMAL}\n[limits]\nmax_calls = 0\n");
    let errs = errors(parse_env(&text, &[("HOTLINE_SIP_LISTN", "127.0.0.1:5070")]));
    assert!(errs
        .iter()
        .any(|e| e.env_var.as_deref() == Some("HOTLINE_SIP_LISTN")));
    assert_eq!(
        find(&errs, "limits.max_calls").line,
        line(&text, "max_calls")
    );
}

#[test]
fn data_dir_alias() {
    let c = parse_env(MINIMAL, &[("HOTLINE_DATA_DIR", "/srv/hotline")]).unwrap();
    assert_eq!(c.storage.data_dir, PathBuf::from("/srv/hotline"));
    assert_eq!(
        c.storage.recordings_dir(),
        PathBuf::from("/srv/hotline/recordings")
    );
}

#[test]
fn instance_id_from_file_or_env_and_validated() {
    assert_eq!(
        parse(MINIMAL).unwrap().sip.instance_id,
        None,
        "default: host:port"
    );
    let text = format!("[sip]\ninstance_id = \"gw-a\"\n{MINIMAL}");
    assert_eq!(
        parse(&text).unwrap().sip.instance_id.as_deref(),
        Some("gw-a")
    );
    let c = parse_env(MINIMAL, &[("HOTLINE_SIP_INSTANCE_ID", "gw-b")]).unwrap();
    assert_eq!(c.sip.instance_id.as_deref(), Some("gw-b"));
    let bad = format!("[sip]\ninstance_id = \"  \"\n{MINIMAL}");
    let errs = errors(parse(&bad));
    assert_eq!(find(&errs, "sip.instance_id").line, Some(2));
}

#[test]
fn every_env_key_exists_in_the_config_and_every_scalar_has_one() {
    // KEYS must stay in step with the structs: setting each (to its default) must deserialise,
    // and every scalar key of the default config must be settable.
    let defaults = toml::to_string(&Config {
        sip: SipConfig {
            advertised_addr: Some("192.0.2.1".parse().unwrap()),
            instance_id: Some("gw-a".into()),
            ..SipConfig::default()
        },
        ..Config::default()
    })
    .unwrap();
    let doc: toml_edit::DocumentMut = defaults.parse().unwrap();
    let mut from_defaults = Vec::new();
    for (section, item) in doc.iter() {
        let Some(t) = item.as_table() else { continue };
        for (key, v) in t.iter() {
            if (v.is_value() && !v.is_array())
                || matches!(
                    key,
                    "codecs"
                        | "scanner_user_agents"
                        | "api_tokens"
                        | "hours"
                        | "closed_dates"
                        | "open_dates"
                )
            {
                from_defaults.push((section.to_owned(), key.to_owned()));
            }
        }
    }
    let listed: Vec<(String, String)> = env::KEYS
        .iter()
        .map(|(s, k, _)| (s.to_string(), k.to_string()))
        .collect();
    for k in &from_defaults {
        assert!(
            listed.contains(k),
            "{k:?} cannot be set from the environment"
        );
    }
    for k in &listed {
        assert!(
            from_defaults.contains(k),
            "env::KEYS lists {k:?}, not a config key"
        );
    }
}

#[test]
fn check_files_reports_a_missing_language_directory() {
    let dir = std::env::temp_dir().join(format!("hotline-cfg-{}", std::process::id()));
    let text = format!(
        "{MINIMAL}\n[prompts]\ndir = {:?}\nlanguage = \"xx\"\n",
        dir.display().to_string()
    );
    let c = parse(&text).unwrap();
    let errs = c.check_files(Path::new("/"));
    let e = find(&errs, "prompts.language");
    assert_eq!(e.line, line(&text, "language"));
    assert!(e.message.contains("xx"), "{e}");
}
