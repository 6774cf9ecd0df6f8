//! The keys of one section at a time (trunks, barge-in, RTP, TCP, transfer, admin, recording,
//! ASR, tickets): their defaults, and errors that name the key and its line.

use super::*;

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
        "{MINIMAL}\n[asr]\nbeam_size = 0\ncontext_chars = 500\ninitial_prompt = \"{}\"\n\
         keyword_bias = \"live\"\n",
        "字".repeat(201)
    );
    let errs = errors(parse(&text));
    for (key, at) in [
        ("asr.beam_size", "beam_size = 0"),
        ("asr.context_chars", "context_chars = 500"),
        ("asr.initial_prompt", "initial_prompt ="),
        ("asr.keyword_bias", "keyword_bias ="),
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
    // the keyword bias: the second pass only, unless set otherwise (file or environment)
    assert_eq!(d.keyword_bias, "second_pass");
    let all = parse_env(MINIMAL, &[("HOTLINE_ASR_KEYWORD_BIAS", "all")]).unwrap();
    assert_eq!(all.asr.keyword_bias, "all");
    // keyword rescoring: on unless turned off, by file or environment; not a bool is an error
    assert!(d.keyword_rescoring);
    let off = parse(&format!("{MINIMAL}\n[asr]\nkeyword_rescoring = false\n")).unwrap();
    assert!(!off.asr.keyword_rescoring);
    let env_off = parse_env(MINIMAL, &[("HOTLINE_ASR_KEYWORD_RESCORING", "false")]).unwrap();
    assert!(!env_off.asr.keyword_rescoring);
    let text = format!("{MINIMAL}\n[asr]\nkeyword_rescoring = \"yes\"\n");
    let e = errors(parse(&text));
    assert!(
        e.iter()
            .any(|e| e.line == line(&text, "keyword_rescoring =")),
        "{e:?}"
    );
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
