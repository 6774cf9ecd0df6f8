//! Parsing and validation without files on disk.

use super::*;
use std::net::IpAddr;

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

#[test]
fn trunk_errors_name_key_and_line_and_never_echo_a_password() {
    let text = format!(
        "{MINIMAL}\n[[trunk]]\nname = \"carrier\"\nsources = [\"10.0.0.0/8\", \"10.0.0.300/24\"]\nusername = \"gw\"\npassword = \"\"\nalgorithms = [\"SHA-512\"]\nmax_calls = 0\nnumbers = [\"9999\"]\nmax_request_rate = 0\n\n[[trunk]]\nname = \"carrier\"\nsources = []\npassword = \"hunter2\"\n\n[security]\nunknown_source = \"ignore\"\n"
    );
    let errs = errors(parse(&text));
    for (key, needle) in [
        ("trunk[0].sources", "sources"),
        ("trunk[0].password", "password = \"\""),
        ("trunk[0].algorithms", "algorithms"),
        ("trunk[0].max_calls", "max_calls"),
        ("trunk[0].numbers", "numbers"),
        ("trunk[0].max_request_rate", "max_request_rate"),
        ("security.unknown_source", "unknown_source"),
    ] {
        let e = find(&errs, key);
        assert_eq!(e.line, line(&text, needle), "{e}");
    }
    assert!(find(&errs, "trunk[0].sources")
        .message
        .contains("10.0.0.300/24"));
    assert!(find(&errs, "trunk[1].name").message.contains("twice"));
    assert!(find(&errs, "trunk[1].sources").message.contains("missing"));
    assert!(find(&errs, "trunk[1].username")
        .message
        .contains("password"));
    assert!(errs.iter().all(|e| !e.to_string().contains("hunter2")));
}

#[test]
fn trunks_parse_with_defaults_and_cannot_come_from_the_environment() {
    let text = format!(
        "{MINIMAL}\n[[trunk]]\nname = \"a\"\nsources = [\"2001:db8::/32\", \"192.0.2.7\"]\n"
    );
    let c = parse(&text).unwrap();
    let t = &c.trunks[0];
    assert_eq!(t.realm, "hotline");
    assert_eq!(t.algorithms, ["SHA-256", "MD5"]);
    assert_eq!(t.networks().len(), 2);
    assert_eq!(
        t.max_request_rate, 200,
        "trunk sources: 200 msg/s each by default"
    );
    assert!(t.networks()[1].contains(&"192.0.2.7".parse::<IpAddr>().unwrap()));
    assert!(c.sip.tcp);
    assert_eq!(c.security.unknown_source, "reject");
    assert!(!c.log.mask_caller_numbers);
    let errs = errors(parse_env(MINIMAL, &[("HOTLINE_TRUNK_NAME", "x")]));
    assert!(errs[0].message.contains("list of tables"), "{}", errs[0]);
    let c = parse_env(
        MINIMAL,
        &[
            ("HOTLINE_SECURITY_UNKNOWN_SOURCE", "drop"),
            ("HOTLINE_LOG_MASK_CALLER_NUMBERS", "yes"),
            ("HOTLINE_SIP_TCP", "false"),
        ],
    )
    .unwrap();
    assert_eq!(c.security.unknown_source, "drop");
    assert!(c.log.mask_caller_numbers && !c.sip.tcp);
}

#[test]
fn ivr_speech_barge_in_defaults_values_and_errors() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.ivr.speech_barge_in, "message");
    assert_eq!(c.ivr.barge_in_min_speech_ms, 250);
    assert_eq!(c.ivr.barge_in_preroll_ms, 500);
    assert_eq!(c.ivr.barge_in_snr_db, 12.0);
    assert_eq!(c.ivr.barge_in_level_dbfs, -35.0);

    let text = format!(
        "[ivr]\nspeech_barge_in = \"always\"\nbarge_in_min_speech_ms = 10\nbarge_in_snr_db = 0.0\nbarge_in_level_dbfs = 3.0\nbarge_in_preroll_ms = 9000\n\n{MINIMAL}"
    );
    let errs = errors(parse(&text));
    assert_eq!(find(&errs, "ivr.speech_barge_in").line, Some(2));
    assert!(find(&errs, "ivr.speech_barge_in")
        .message
        .contains("\"message\""));
    assert_eq!(find(&errs, "ivr.barge_in_min_speech_ms").line, Some(3));
    assert_eq!(find(&errs, "ivr.barge_in_snr_db").line, Some(4));
    assert_eq!(find(&errs, "ivr.barge_in_level_dbfs").line, Some(5));
    assert_eq!(find(&errs, "ivr.barge_in_preroll_ms").line, Some(6));
    // shorter than the speech that triggers barge-in: those words would be lost
    let short = format!("[ivr]\nbarge_in_preroll_ms = 100\n\n{MINIMAL}");
    let errs = errors(parse(&short));
    assert_eq!(find(&errs, "ivr.barge_in_preroll_ms").line, Some(2));
    assert_eq!(errs.len(), 1, "{errs:#?}");

    // "all" needs a default option that takes a message
    let all = format!("[ivr]\nspeech_barge_in = \"all\"\n\n{MINIMAL}");
    let c = parse(&all).unwrap();
    assert_eq!(c.ivr.speech_barge_in, "all");
    let hangup = format!("{all}\n[menu]\non_no_input = \"hangup\"\n");
    let errs = errors(parse(&hangup));
    assert_eq!(find(&errs, "ivr.speech_barge_in").line, Some(2));
    let no_message = all.replace(
        "label = \"人工服务\"",
        "label = \"人工服务\"\nrecord = false",
    );
    errors(parse(&no_message));

    let c = parse_env(
        MINIMAL,
        &[
            ("HOTLINE_IVR_SPEECH_BARGE_IN", "off"),
            ("HOTLINE_IVR_BARGE_IN_PREROLL_MS", "800"),
        ],
    )
    .unwrap();
    assert_eq!(c.ivr.speech_barge_in, "off");
    assert_eq!(c.ivr.barge_in_preroll_ms, 800);
    let errs = errors(parse_env(
        MINIMAL,
        &[("HOTLINE_IVR_SPEECH_BARGE_IN", "loud")],
    ));
    assert_eq!(
        find(&errs, "ivr.speech_barge_in").env_var.as_deref(),
        Some("HOTLINE_IVR_SPEECH_BARGE_IN")
    );
}

#[test]
fn strict_rtp_relearn_default_values_and_errors() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.media.strict_rtp_relearn_ms, 2000);
    let never = format!("[media]\nstrict_rtp_relearn_ms = 0\n\n{MINIMAL}");
    assert_eq!(parse(&never).unwrap().media.strict_rtp_relearn_ms, 0);
    for bad in ["50", "31000"] {
        let text =
            format!("[media]\nrtp_timeout_secs = 30\nstrict_rtp_relearn_ms = {bad}\n\n{MINIMAL}");
        let errs = errors(parse(&text));
        let e = find(&errs, "media.strict_rtp_relearn_ms");
        assert_eq!(e.line, Some(3), "{e}");
        assert_eq!(errs.len(), 1, "{errs:#?}");
    }
    let env = parse_env(MINIMAL, &[("HOTLINE_MEDIA_STRICT_RTP_RELEARN_MS", "5000")]).unwrap();
    assert_eq!(env.media.strict_rtp_relearn_ms, 5000);
}

/// Issue 11: the TCP limits are validated with key and line.
#[test]
fn tcp_limits_are_validated_with_key_and_line() {
    let text = format!(
        "{MINIMAL}\n[sip]\ntcp_max_connections = 10\ntcp_max_connections_per_source = 11\ntcp_message_timeout_secs = 0\n"
    );
    let errs = errors(parse(&text));
    let e = find(&errs, "sip.tcp_max_connections_per_source");
    assert_eq!(
        e.line,
        line(&text, "tcp_max_connections_per_source = 11"),
        "{e}"
    );
    let e = find(&errs, "sip.tcp_message_timeout_secs");
    assert_eq!(e.line, line(&text, "tcp_message_timeout_secs = 0"), "{e}");
    let ok = parse(&format!(
        "{MINIMAL}\n[sip]\ntcp_max_connections = 10\ntcp_max_connections_per_source = 10\n"
    ));
    let limits = ok.expect("valid").sip.tcp_limits();
    assert_eq!((limits.max_connections, limits.max_per_source), (10, 10));
}

#[test]
fn transfer_keys_are_checked_with_their_line_and_env_sets_the_target() {
    let text = format!(
        "{MINIMAL}\n[transfer]\ntarget = \"sip:8000@pbx.example.gov\"\nurgent_action = \"transfer\"\nhours = [\"mon-fri 8-20\"]\n"
    );
    let errs = errors(parse(&text));
    let e = find(&errs, "transfer.urgent_action");
    assert_eq!(e.line, line(&text, "urgent_action"));
    assert!(e.message.contains("urgent_target"), "{}", e.message);
    assert_eq!(find(&errs, "transfer.hours[0]").line, line(&text, "hours"));
    let c = parse_env(
        MINIMAL,
        &[
            ("HOTLINE_TRANSFER_TARGET", "sip:queue@10.0.0.5"),
            ("HOTLINE_TRANSFER_MODE", "refer"),
        ],
    )
    .unwrap();
    assert_eq!(c.transfer.target, "sip:queue@10.0.0.5");
    assert_eq!(c.transfer.mode, "refer");
    let errs = errors(parse_env(MINIMAL, &[("HOTLINE_TRANSFER_MODE", "blind")]));
    assert_eq!(
        find(&errs, "transfer.mode").env_var.as_deref(),
        Some("HOTLINE_TRANSFER_MODE")
    );
}

/// Issue 11.18: `/metrics` off loopback needs `[admin] token`; loopback or a token is fine.
#[test]
fn a_non_loopback_admin_listener_needs_a_token() {
    let text = format!("{MINIMAL}\n[admin]\nlisten = \"0.0.0.0:9090\"\n");
    let errs = errors(parse(&text));
    let e = find(&errs, "admin.listen");
    assert_eq!(e.line, line(&text, "listen"));
    assert!(e.message.contains("admin.token"), "{e:?}");
    let c = parse_env(&text, &[("HOTLINE_ADMIN_TOKEN", "s3cret")]).unwrap();
    assert_eq!(c.admin.token, "s3cret");
    let local = format!("{MINIMAL}\n[admin]\nlisten = \"127.0.0.1:9090\"\n");
    assert!(parse(&local).is_ok());
    let c = parse(&format!(
        "{MINIMAL}\n[storage]\nretention_days = 30\nmin_free_mb = 64\n"
    ))
    .unwrap();
    assert_eq!((c.storage.retention_days, c.storage.min_free_mb), (30, 64));
    assert_eq!(parse(MINIMAL).unwrap().storage.min_free_mb, 1024);
}

/// Issue 16: the utterance pause is 0 (off) or shorter than the pause that ends the message.
#[test]
fn utterance_pause_is_validated_with_key_and_line() {
    let text =
        format!("{MINIMAL}\n[recording]\ntrailing_silence_ms = 1000\nutterance_pause_ms = 1000\n");
    let errs = errors(parse(&text));
    let e = find(&errs, "recording.utterance_pause_ms");
    assert_eq!(e.line, line(&text, "utterance_pause_ms = 1000"), "{e}");
    assert!(e.message.contains("trailing_silence_ms"), "{e}");
    let off = parse(&format!("{MINIMAL}\n[recording]\nutterance_pause_ms = 0\n")).expect("valid");
    assert_eq!(off.recording.utterance_pause_ms, 0);
    assert_eq!(
        parse(MINIMAL).expect("valid").recording.utterance_pause_ms,
        600
    );
}

/// Issue 16 §4: the decoding keys are checked, each error naming its key and line.
#[test]
fn asr_decoding_keys_are_validated_with_key_and_line() {
    let text = format!(
        "{MINIMAL}\n[asr]\nbeam_size = 0\ncontext_chars = 500\ninitial_prompt = \"{}\"\n",
        "字".repeat(201)
    );
    let errs = errors(parse(&text));
    for (key, at) in [
        ("asr.beam_size", "beam_size = 0"),
        ("asr.context_chars", "context_chars = 500"),
        ("asr.initial_prompt", "initial_prompt ="),
    ] {
        let e = find(&errs, key);
        assert_eq!(e.line, line(&text, at), "{e}");
    }
    let ok = parse(&format!(
        "{MINIMAL}\n[asr]\nbeam_size = 5\ncontext_chars = 100\ninitial_prompt = \"auto\"\n"
    ))
    .expect("valid")
    .asr;
    assert_eq!(
        (ok.beam_size, ok.initial_prompt.as_str(), ok.context_chars),
        (5, "auto", 100)
    );
    // the defaults: greedy, the fixed Simplified-Chinese sentence, no context
    let d = parse(MINIMAL).expect("valid").asr;
    assert_eq!((d.beam_size, d.context_chars), (1, 0));
    assert_eq!(d.initial_prompt, crate::asr::prompt::ZH_BASE);
}

#[test]
fn instance_number_is_two_digits_from_the_file_or_the_environment() {
    let text = format!("{MINIMAL}\n[tickets]\ninstance_number = 100\n");
    let errs = errors(parse(&text));
    let e = find(&errs, "tickets.instance_number");
    assert_eq!(e.line, line(&text, "instance_number = 100"), "{e}");
    let c = parse_env(MINIMAL, &[("HOTLINE_TICKETS_INSTANCE_NUMBER", "7")]).unwrap();
    assert_eq!(c.tickets.instance_number, 7);
    assert_eq!(parse(MINIMAL).unwrap().tickets.instance_number, 0);
}

#[test]
fn the_fleet_store_is_checked_with_key_and_line() {
    let text = format!("{MINIMAL}\n[tickets]\nstore = \"mysql\"\n");
    let e = errors(parse(&text));
    assert_eq!(
        find(&e, "tickets.store").line,
        line(&text, "store = \"mysql\"")
    );
    let text = format!("{MINIMAL}\n[tickets]\nstore = \"postgres\"\n");
    let e = errors(parse(&text));
    assert!(find(&e, "tickets.url")
        .message
        .contains("HOTLINE_TICKETS_URL"));
    let text = format!(
        "{MINIMAL}\n[tickets]\nstore = \"postgres\"\nurl = \"postgres://h/db\"\nlease_secs = 10\n"
    );
    let e = errors(parse(&text));
    let lease = find(&e, "tickets.lease_secs");
    assert_eq!(lease.line, line(&text, "lease_secs = 10"), "{lease}");
    assert!(lease.message.contains("request_timeout_ms"), "{lease}");
    let c = parse_env(
        MINIMAL,
        &[
            ("HOTLINE_TICKETS_STORE", "postgres"),
            (
                "HOTLINE_TICKETS_URL",
                "postgres://gw@db.example:5432/hotline?sslmode=require",
            ),
        ],
    )
    .expect("valid");
    assert_eq!(
        (c.tickets.store.as_str(), c.tickets.lease_secs),
        ("postgres", 60)
    );
    assert_eq!(parse(MINIMAL).unwrap().tickets.store, "sqlite");
}
