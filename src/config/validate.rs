//! Checks beyond types: ranges, cross-references between keys, and (separately) files on disk.
//!
//! Every check runs and every failure is returned, each naming its dotted key; the line comes
//! from [`super::ConfigSource`].

use super::{Config, ConfigError, REQUIRED_PROMPTS};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const DTMF: &str = "0123456789*#";

pub(super) fn is_dtmf(s: &str) -> bool {
    s.len() == 1 && DTMF.contains(s)
}

/// A language name becomes a directory name: keep it to something that cannot escape
/// `prompts.dir`.
fn is_language_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub(super) fn validate(c: &Config) -> Vec<ConfigError> {
    let mut errs = Vec::new();
    let mut err = |key: &str, msg: String| errs.push(c.source.error(key, msg));

    // [sip]
    let sip = &c.sip;
    for (key, v) in [
        ("t1_ms", sip.t1_ms),
        ("t2_ms", sip.t2_ms),
        ("t4_ms", sip.t4_ms),
    ] {
        if v == 0 {
            err(&format!("sip.{key}"), "must be greater than 0".into());
        }
    }
    if sip.t1_ms > sip.t2_ms {
        err(
            "sip.t1_ms",
            format!(
                "T1 ({} ms) must not exceed T2 (sip.t2_ms = {} ms)",
                sip.t1_ms, sip.t2_ms
            ),
        );
    }
    if sip.user_agent.trim().is_empty() || sip.user_agent.contains(['\r', '\n']) {
        err("sip.user_agent", "must be a non-empty single line".into());
    }
    if let Some(id) = &sip.instance_id {
        if id.trim().is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
            err(
                "sip.instance_id",
                "must be a non-empty single line of at most 128 bytes".into(),
            );
        }
    }

    // [media]
    let m = &c.media;
    if m.rtp_port_min == 0 {
        err("media.rtp_port_min", "must be greater than 0".into());
    }
    if !m.rtp_port_min.is_multiple_of(2) {
        err(
            "media.rtp_port_min",
            format!(
                "{} is odd; RTP uses even ports (RTCP the odd one above)",
                m.rtp_port_min
            ),
        );
    }
    if m.rtp_port_min > m.rtp_port_max {
        err(
            "media.rtp_port_min",
            format!(
                "{} is greater than media.rtp_port_max ({})",
                m.rtp_port_min, m.rtp_port_max
            ),
        );
    } else if m.rtp_port_max - m.rtp_port_min < 1 {
        err(
            "media.rtp_port_max",
            format!(
                "the range {}-{} must hold at least 2 ports",
                m.rtp_port_min, m.rtp_port_max
            ),
        );
    }
    if m.codecs.is_empty() {
        err(
            "media.codecs",
            "at least one codec is needed (PCMU, PCMA)".into(),
        );
    }
    let mut seen = BTreeSet::new();
    for codec in &m.codecs {
        match crate::media::Codec::from_name(codec) {
            None => err(
                "media.codecs",
                format!("unknown codec `{codec}`; known: PCMU, PCMA"),
            ),
            Some(k) if !seen.insert(k.encoding_name()) => {
                err("media.codecs", format!("`{codec}` is listed twice"))
            }
            Some(_) => {}
        }
    }
    if m.rtp_timeout_secs == 0 {
        err("media.rtp_timeout_secs", "must be greater than 0".into());
    }
    // Shorter than a few frames, a stranger could slip in between a live caller's packets;
    // longer than the RTP timeout, the call ends before anyone could be re-learnt.
    let relearn = m.strict_rtp_relearn_ms;
    if relearn != 0 && (relearn < 200 || relearn > m.rtp_timeout_secs.saturating_mul(1000)) {
        err(
            "media.strict_rtp_relearn_ms",
            format!(
                "{relearn} is out of range: 0 (never) or 200 up to media.rtp_timeout_secs \
                 ({} ms)",
                m.rtp_timeout_secs.saturating_mul(1000)
            ),
        );
    }

    // [[number]]
    if c.numbers.is_empty() {
        err(
            "number",
            "no [[number]] entries: the gateway would answer nothing".into(),
        );
    }
    let mut numbers = BTreeSet::new();
    for (i, n) in c.numbers.iter().enumerate() {
        let at = format!("number[{i}]");
        if n.number.is_empty() {
            err(
                &format!("{at}.number"),
                "missing; every [[number]] needs `number`".into(),
            );
        } else if n.number.chars().any(|ch| ch.is_whitespace() || ch == '@') {
            err(
                &format!("{at}.number"),
                format!("`{}` is not a dialled number (user part)", n.number),
            );
        } else if !numbers.insert(n.number.as_str()) {
            err(
                &format!("{at}.number"),
                format!("`{}` is configured twice", n.number),
            );
        }
        if n.channel.trim().is_empty() {
            err(
                &format!("{at}.channel"),
                "missing; every [[number]] needs `channel`".into(),
            );
        }
        if let Some(l) = &n.language {
            if !is_language_name(l) {
                err(
                    &format!("{at}.language"),
                    format!("`{l}` is not a language name (letters, digits, - and _)"),
                );
            }
        }
    }

    // [prompts]
    if c.prompts.dir.as_os_str().is_empty() {
        err("prompts.dir", "must not be empty".into());
    }
    if !is_language_name(&c.prompts.language) {
        err(
            "prompts.language",
            format!(
                "`{}` is not a language name (letters, digits, - and _)",
                c.prompts.language
            ),
        );
    }

    // [menu]
    let menu = &c.menu;
    if menu.options.is_empty() {
        err(
            "menu.option",
            "no [[menu.option]] entries: callers could choose nothing".into(),
        );
    }
    let mut digits = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for (i, o) in menu.options.iter().enumerate() {
        let at = format!("menu.option[{i}]");
        if o.digit.is_empty() {
            err(&format!("{at}.digit"), "missing".into());
        } else if !is_dtmf(&o.digit) {
            err(
                &format!("{at}.digit"),
                format!("`{}` is not one of 0-9, * or #", o.digit),
            );
        } else if !digits.insert(o.digit.as_str()) {
            err(
                &format!("{at}.digit"),
                format!("digit `{}` is used by another option", o.digit),
            );
        }
        if o.id.trim().is_empty() {
            err(&format!("{at}.id"), "missing".into());
        } else if !ids.insert(o.id.as_str()) {
            err(
                &format!("{at}.id"),
                format!("id `{}` is used by another option", o.id),
            );
        }
        if o.label.trim().is_empty() {
            err(&format!("{at}.label"), "missing".into());
        }
    }
    if menu.digit_timeout_secs == 0 {
        err("menu.digit_timeout_secs", "must be greater than 0".into());
    }
    if menu.max_attempts == 0 {
        err("menu.max_attempts", "must be at least 1".into());
    }
    if menu.on_no_input != "hangup" && !digits.contains(menu.on_no_input.as_str()) {
        err(
            "menu.on_no_input",
            format!(
                "`{}` must be \"hangup\" or the digit of a configured option ({})",
                menu.on_no_input,
                digits.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        );
    }

    // [tickets]
    if c.tickets.instance_number > 99 {
        err(
            "tickets.instance_number",
            "must be 0-99 (the 2 digits after the date in reference numbers)".into(),
        );
    }
    validate_fleet(c, &mut err);

    // [admin]
    let admin = c.admin.listen.trim();
    match admin.parse::<std::net::SocketAddr>() {
        Err(_) if !admin.is_empty() => err(
            "admin.listen",
            format!("`{admin}` is not an address:port (e.g. 127.0.0.1:9090), or empty for off"),
        ),
        // Call volumes and error rates are for the operator only.
        Ok(a) if !a.ip().is_loopback() && c.admin.token.trim().is_empty() => err(
            "admin.listen",
            format!(
                "`{admin}` is not loopback: set admin.token (HOTLINE_ADMIN_TOKEN) to protect /metrics"
            ),
        ),
        _ => {}
    }

    super::console::validate(&c.console, &mut err);
    super::transfer::validate(&c.transfer, &mut err);
    validate_ivr(c, &mut err);

    // [recording]
    let r = &c.recording;
    for (key, v) in [
        ("max_duration_secs", r.max_duration_secs),
        ("trailing_silence_ms", r.trailing_silence_ms),
        ("no_speech_timeout_secs", r.no_speech_timeout_secs),
    ] {
        if v == 0 {
            err(&format!("recording.{key}"), "must be greater than 0".into());
        }
    }
    if !(r.speech_threshold_dbfs.is_finite() && r.speech_threshold_dbfs < 0.0) {
        err(
            "recording.speech_threshold_dbfs",
            format!(
                "{} must be below 0 dBFS (full scale), e.g. -40",
                r.speech_threshold_dbfs
            ),
        );
    }
    if r.utterance_pause_ms > 0
        && (r.utterance_pause_ms < 200 || r.utterance_pause_ms >= r.trailing_silence_ms)
    {
        err(
            "recording.utterance_pause_ms",
            format!(
                "{} ms must be 0 (off) or from 200 ms up to below recording.trailing_silence_ms ({} ms)",
                r.utterance_pause_ms, r.trailing_silence_ms
            ),
        );
    }
    if !is_dtmf(&r.end_digit) {
        err(
            "recording.end_digit",
            format!("`{}` is not one of 0-9, * or #", r.end_digit),
        );
    }

    // [asr] decoding (issue 16 §4)
    let a = &c.asr;
    for (key, beam) in [
        ("asr.beam_size", a.beam_size),
        ("asr.second_pass_beam_size", a.second_pass_beam_size),
    ] {
        if !(1..=8).contains(&beam) {
            err(key, format!("{beam} must be from 1 (greedy) to 8"));
        }
    }
    if !["off", "second_pass", "all"].contains(&a.keyword_bias.as_str()) {
        err(
            "asr.keyword_bias",
            format!(
                "`{}` is not one of \"off\", \"second_pass\", \"all\"",
                a.keyword_bias
            ),
        );
    }
    if a.context_chars > 200 {
        err(
            "asr.context_chars",
            format!("{} must be at most 200 characters", a.context_chars),
        );
    }
    for (key, prompt) in [
        ("asr.initial_prompt", &a.initial_prompt),
        ("asr.second_pass_prompt", &a.second_pass_prompt),
    ] {
        if prompt.chars().count() > 200 || prompt.contains(['\r', '\n']) {
            err(
                key,
                "must be \"auto\", empty, or one line of at most 200 characters (Whisper \
                 keeps only the last 224 prompt tokens)"
                    .into(),
            );
        }
    }

    // [limits]
    let l = &c.limits;
    if l.max_calls == 0 {
        err("limits.max_calls", "must be at least 1".into());
    }
    if l.max_call_duration_secs == 0 {
        err(
            "limits.max_call_duration_secs",
            "must be greater than 0".into(),
        );
    }
    if l.retry_after_secs == 0 {
        err("limits.retry_after_secs", "must be greater than 0".into());
    }

    super::trunk_check::validate_trunks(c, &mut err);

    // [storage]
    if c.storage.data_dir.as_os_str().is_empty() {
        err("storage.data_dir", "must not be empty".into());
    }
    errs.extend(super::flow_check::validate(c));
    errs
}

/// `[ivr]`: the speech barge-in policy and its thresholds.
/// `[tickets] store`, `url`, `lease_secs`: the fleet's shared store.
fn validate_fleet(c: &Config, err: &mut impl FnMut(&str, String)) {
    let t = &c.tickets;
    match t.store.as_str() {
        "sqlite" => {}
        "postgres" => {
            if t.url.trim().is_empty() {
                err(
                    "tickets.url",
                    "store = \"postgres\" needs the database URL (HOTLINE_TICKETS_URL)".into(),
                );
            } else if let Err(e) = crate::ticket::fleet::PgConn::check_url(&t.url) {
                err(
                    "tickets.url",
                    format!("not a PostgreSQL URL (postgres://user@host:5432/db): {e}"),
                );
            }
            if t.lease_secs.saturating_mul(1000) <= c.intake.request_timeout_ms {
                err(
                    "tickets.lease_secs",
                    format!(
                        "{} s must be longer than intake.request_timeout_ms ({} ms): a live \
                         instance must not lose a ticket while posting it",
                        t.lease_secs, c.intake.request_timeout_ms
                    ),
                );
            }
        }
        other => err(
            "tickets.store",
            format!("`{other}` must be \"sqlite\" or \"postgres\""),
        ),
    }
}

fn validate_ivr(c: &Config, err: &mut impl FnMut(&str, String)) {
    let v = &c.ivr;
    if !super::SPEECH_BARGE_IN_MODES.contains(&v.speech_barge_in.as_str()) {
        err(
            "ivr.speech_barge_in",
            format!(
                "`{}` must be \"off\", \"message\" or \"all\"",
                v.speech_barge_in
            ),
        );
    }
    if v.speech_barge_in == "all" {
        let default = c
            .menu
            .options
            .iter()
            .find(|o| o.digit == c.menu.on_no_input);
        if !default.is_some_and(|o| super::flow_check::takes_message(c, o)) {
            err(
                "ivr.speech_barge_in",
                format!(
                    "\"all\" sends a caller who talks over the menu to the message of the \
                     `menu.on_no_input` option, but `{}` is not an option that takes a message",
                    c.menu.on_no_input
                ),
            );
        }
    }
    if !(60..=5000).contains(&v.barge_in_min_speech_ms) {
        err(
            "ivr.barge_in_min_speech_ms",
            format!(
                "{} must be between 60 and 5000 (a click is 20 ms, a syllable about 250)",
                v.barge_in_min_speech_ms
            ),
        );
    }
    if !(v.barge_in_snr_db.is_finite() && v.barge_in_snr_db > 0.0 && v.barge_in_snr_db <= 60.0) {
        err(
            "ivr.barge_in_snr_db",
            format!("{} must be above 0 and at most 60 dB", v.barge_in_snr_db),
        );
    }
    if !(v.barge_in_level_dbfs.is_finite() && v.barge_in_level_dbfs < 0.0) {
        err(
            "ivr.barge_in_level_dbfs",
            format!(
                "{} must be below 0 dBFS (full scale), e.g. -35",
                v.barge_in_level_dbfs
            ),
        );
    }
    if v.barge_in_preroll_ms < v.barge_in_min_speech_ms || v.barge_in_preroll_ms > 5000 {
        err(
            "ivr.barge_in_preroll_ms",
            format!(
                "{} must be between barge_in_min_speech_ms ({}) and 5000: shorter loses the \
                 words that triggered the barge-in",
                v.barge_in_preroll_ms, v.barge_in_min_speech_ms
            ),
        );
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

pub(super) fn check_files(c: &Config, base: &Path) -> Vec<ConfigError> {
    let mut errs = Vec::new();
    // Each language in use, with the key that asked for it (for the error's line).
    let mut languages: Vec<(String, &str)> = vec![("prompts.language".into(), &c.prompts.language)];
    for (i, n) in c.numbers.iter().enumerate() {
        if let Some(l) = &n.language {
            languages.push((format!("number[{i}].language"), l));
        }
    }
    let mut checked = BTreeSet::new();
    let prompts_dir = resolve(base, &c.prompts.dir);
    for (key, lang) in languages {
        if !checked.insert(lang) {
            continue;
        }
        let dir = prompts_dir.join(lang);
        if !dir.is_dir() {
            errs.push(c.source.error(
                &key,
                format!(
                    "no prompts directory {} for language `{lang}`",
                    dir.display()
                ),
            ));
            continue;
        }
        for name in REQUIRED_PROMPTS {
            let path = dir.join(format!("{name}.wav"));
            if let Err(why) = check_wav(&path) {
                errs.push(c.source.error(
                    &key,
                    format!("prompt {} for language `{lang}`: {why}", path.display()),
                ));
            }
        }
    }
    errs.extend(super::flow_check::check_prompts(c, &prompts_dir));
    let data = resolve(base, &c.storage.data_dir);
    if data.exists() && !data.is_dir() {
        errs.push(c.source.error(
            "storage.data_dir",
            format!("{} exists and is not a directory", data.display()),
        ));
    }
    errs
}

/// The prompt exists, is a WAV hound can read, and holds some audio.
fn check_wav(path: &Path) -> Result<(), String> {
    if !path.is_file() {
        return Err("missing".into());
    }
    let reader = hound::WavReader::open(path).map_err(|e| format!("not a readable WAV: {e}"))?;
    if reader.duration() == 0 {
        return Err("holds no audio".into());
    }
    Ok(())
}
