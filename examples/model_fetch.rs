//! `cargo run --example model_fetch -- [NAME...] [--dir DIR]`
//!
//! Stand-in for the `hotline-gateway model fetch` subcommand until the CLI wires
//! `hotline_gateway::asr::model::main_model_fetch` in.

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = hotline_gateway::asr::model::main_model_fetch(&args) {
        eprintln!("model fetch: {e}");
        std::process::exit(1);
    }
}
