//! `hotline-gateway load`: many real calls over loopback, set-up and pacing figures.

use super::secs;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub(super) struct LoadArgs {
    /// Where to call; loopback only, e.g. sip:8890@127.0.0.1:5060.
    #[arg(long)]
    target: String,
    /// Calls to place in total.
    #[arg(long, default_value_t = 10)]
    calls: usize,
    /// Calls in progress at most.
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
    /// New calls per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// WAV each caller speaks after the digits.
    #[arg(long)]
    play: Option<PathBuf>,
    /// Digits each caller presses.
    #[arg(long, default_value = "1")]
    dtmf: String,
    #[arg(long, default_value_t = 1.0)]
    dtmf_delay: f64,
    /// Seconds after the digits before speaking (the "speak after the tone" prompt).
    #[arg(long, default_value_t = 8.0)]
    speak_delay: f64,
    /// Digit pressed after speaking ('' for none).
    #[arg(long, default_value = "#")]
    end_digit: String,
    /// Each call hangs up itself after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    max_call_duration: f64,
    /// The whole run stops after this many seconds.
    #[arg(long, default_value_t = 600.0)]
    max_time: f64,
    /// Callers' RTP port range, e.g. 40000-49999.
    #[arg(long, default_value = "40000-49999")]
    rtp_ports: String,
    /// Gateway pid: report its CPU and RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Digest user name, for a trunk that requires authentication.
    #[arg(long, requires = "password")]
    user: Option<String>,
    /// Digest password (or HOTLINE_DIAL_PASSWORD, which keeps it out of `ps`).
    #[arg(
        long,
        env = "HOTLINE_DIAL_PASSWORD",
        hide_env_values = true,
        requires = "user"
    )]
    password: Option<String>,
}

pub(super) async fn run(args: LoadArgs) -> ExitCode {
    use crate::caller::load;
    let Some((lo, hi)) = args
        .rtp_ports
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
    else {
        eprintln!("error: --rtp-ports must look like 40000-49999");
        return ExitCode::from(2);
    };
    let opts = load::LoadOptions {
        target: args.target,
        calls: args.calls,
        concurrency: args.concurrency,
        rate: args.rate,
        play: args.play,
        dtmf: args.dtmf,
        dtmf_delay: secs(args.dtmf_delay),
        speak_delay: secs(args.speak_delay),
        end_digit: args.end_digit.chars().next(),
        max_call_duration: secs(args.max_call_duration),
        max_run_time: secs(args.max_time),
        bind_ip: args.bind,
        rtp_ports: (lo, hi),
        gateway_pid: args.pid,
        auth: args.user.zip(args.password),
        ..load::LoadOptions::default()
    };
    if let Err(e) = load::validate(&opts) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match load::run(opts).await {
        Ok(report) => {
            print!("{}", report.table());
            if let Some(path) = args.json {
                let text = serde_json::to_string_pretty(&report).unwrap_or_default();
                if let Err(e) = std::fs::write(&path, text) {
                    eprintln!("error: writing {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            if report.answered == report.calls_requested {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
