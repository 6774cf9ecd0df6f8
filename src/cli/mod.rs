//! Command line: `serve`, `check-config`, `dial`, `demo`.
//!
//! The only place that turns errors into exit codes and messages for people; everything
//! below returns typed errors.

use crate::caller::{self, DialOptions};
use crate::config::Config;
use crate::gateway::Gateway;
use crate::media::Codec;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "hotline-gateway",
    version,
    about = "SIP/RTP front door of a citizen-service hotline"
)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway until SIGINT/SIGTERM.
    Serve {
        #[arg(long, short, default_value = "config/hotline.toml")]
        config: PathBuf,
    },
    /// Validate a configuration file; every error names the key and the line.
    CheckConfig { file: PathBuf },
    /// Place a test call: press digits, speak a WAV, record what the gateway plays.
    Dial(DialArgs),
    /// Start the gateway in-process and place one demo call to it, then show the result.
    Demo {
        #[arg(long, short, default_value = "config/hotline.toml")]
        config: PathBuf,
        /// Caller audio to speak after choosing from the menu.
        #[arg(long, default_value = "prompts/demo/caller_zh.wav")]
        play: PathBuf,
        /// Menu digit to press.
        #[arg(long, default_value = "1")]
        dtmf: String,
    },
}

#[derive(clap::Args, Debug)]
struct DialArgs {
    /// Where to call, e.g. sip:8890@127.0.0.1:5060.
    target: String,
    /// WAV file to speak (any rate; converted to 8 kHz).
    #[arg(long)]
    play: Option<PathBuf>,
    /// Digits to press (RFC 4733), e.g. 1.
    #[arg(long, default_value = "")]
    dtmf: String,
    /// Save what the caller hears to this WAV.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Caller number in From.
    #[arg(long, default_value = "13800000000")]
    from: String,
    /// Seconds after answer before the first digit.
    #[arg(long, default_value_t = 1.0)]
    dtmf_delay: f64,
    /// Seconds after the digits before speaking.
    #[arg(long, default_value_t = 5.0)]
    speak_delay: f64,
    /// Digit to press after speaking, e.g. '#'.
    #[arg(long)]
    end_digit: Option<char>,
    /// Hang up after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    max_duration: f64,
    /// Offer only this codec (PCMU or PCMA).
    #[arg(long)]
    codec: Option<String>,
    /// Local IP for SIP and RTP.
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Print the report as JSON at the end.
    #[arg(long)]
    json: bool,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve { config } => rt.block_on(serve(&config)),
        Command::CheckConfig { file } => check_config(&file),
        Command::Dial(args) => rt.block_on(dial(args)),
        Command::Demo { config, play, dtmf } => rt.block_on(demo(&config, &play, &dtmf)),
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOTLINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Load and check a config (prompt files included); print every error.
fn load_config(path: &Path) -> Result<Config, ExitCode> {
    let report = |errors: &[crate::config::ConfigError]| {
        for e in errors {
            eprintln!("error: {e}");
        }
        ExitCode::from(2)
    };
    let cfg = Config::load(path).map_err(|e| report(&e))?;
    let cwd = std::env::current_dir().unwrap_or_default();
    let file_errors = cfg.check_files(&cwd);
    if !file_errors.is_empty() {
        return Err(report(&file_errors));
    }
    Ok(cfg)
}

fn check_config(path: &Path) -> ExitCode {
    match crate::config::check_config(path) {
        Ok(summary) => {
            println!("{}: OK\n{summary}", path.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            ExitCode::from(2)
        }
    }
}

async fn serve(path: &Path) -> ExitCode {
    let cfg = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let gw = match Gateway::start(cfg, None).await {
        Ok(gw) => gw,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("hotline-gateway answering SIP on udp:{}", gw.sip_addr());
    wait_for_stop_signal().await;
    tracing::info!("stopping: ending calls");
    gw.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

async fn dial(args: DialArgs) -> ExitCode {
    let codecs = match &args.codec {
        Some(name) => match Codec::from_name(name) {
            Some(c) => vec![c],
            None => {
                eprintln!("error: unknown codec {name} (PCMU or PCMA)");
                return ExitCode::from(2);
            }
        },
        None => vec![Codec::Pcmu, Codec::Pcma],
    };
    let opts = DialOptions {
        target: args.target,
        from_user: args.from,
        bind_ip: args.bind,
        codecs,
        play: args.play,
        dtmf: args.dtmf,
        dtmf_delay: secs(args.dtmf_delay),
        speak_delay: secs(args.speak_delay),
        end_digit: args.end_digit,
        record: args.record,
        max_duration: secs(args.max_duration),
        ..DialOptions::default()
    };
    match caller::dial(opts).await {
        Ok(report) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            }
            if report.status == 200 {
                ExitCode::SUCCESS
            } else {
                eprintln!("call not answered: {}", report.status);
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn demo(config: &Path, play: &Path, dtmf: &str) -> ExitCode {
    let mut cfg = match load_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // The demo must not collide with a gateway already running on the configured port.
    cfg.sip.listen.set_port(0);
    let number = cfg
        .numbers
        .first()
        .map(|n| n.number.clone())
        .unwrap_or_else(|| "8890".into());
    let record_prompt = crate::media::prompt::Prompt::from_wav_file(
        &cfg.prompts
            .dir
            .join(&cfg.prompts.language)
            .join("record.wav"),
    )
    .map(|p| p.duration())
    .unwrap_or(Duration::from_secs(5));
    let records: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
    let sink = records.clone();
    let gw = match Gateway::start(
        cfg,
        Some(Box::new(move |_, path| {
            sink.lock().unwrap().push(path.to_path_buf())
        })),
    )
    .await
    {
        Ok(gw) => gw,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let target = format!("sip:{number}@{}", gw.sip_addr());
    println!(
        "== gateway answering on udp:{}; calling {target}",
        gw.sip_addr()
    );
    let heard = std::env::temp_dir().join("hotline-demo-heard.wav");
    let opts = DialOptions {
        target,
        play: Some(play.to_path_buf()),
        dtmf: dtmf.to_string(),
        dtmf_delay: Duration::from_millis(1500),
        // The "speak after the tone" prompt, the beep, and a little margin.
        speak_delay: record_prompt + Duration::from_millis(800),
        end_digit: Some('#'),
        record: Some(heard.clone()),
        max_duration: Duration::from_secs(90),
        ..DialOptions::default()
    };
    let report = caller::dial(opts).await;
    // The record is written just after the BYE; give the call task a moment.
    for _ in 0..50 {
        if !records.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gw.shutdown().await;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: demo call failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let records = records.lock().unwrap().clone();
    let Some(record_path) = records.first() else {
        eprintln!(
            "error: the demo call produced no call record (status {})",
            report.status
        );
        return ExitCode::FAILURE;
    };
    let text = std::fs::read_to_string(record_path).unwrap_or_default();
    println!("== call record: {}", record_path.display());
    println!("{text}");
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        if let Some(rec) = v["recording"]["path"].as_str() {
            println!("== caller's message: {rec}");
        }
    }
    println!("== what the caller heard: {}", heard.display());
    ExitCode::SUCCESS
}
