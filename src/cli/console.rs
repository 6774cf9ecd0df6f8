//! `hotline-gateway console hash-password`: the argon2id hash for a `[[console.user]]`.
//!
//! The password is read from stdin (one line), so it never appears in `ps` or the shell's
//! history; on a terminal the prompt goes to stderr and the hash alone to stdout.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

pub(super) fn hash_password() -> ExitCode {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password (echoed; or pipe it in): ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    if let Err(e) = stdin.lock().read_line(&mut line) {
        eprintln!("error: cannot read the password: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("error: empty password");
        return ExitCode::from(2);
    }
    match crate::console::auth::hash_password(password) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
