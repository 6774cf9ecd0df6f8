fn main() -> std::process::ExitCode {
    hotline_gateway::cli::main()
}
