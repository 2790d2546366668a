//! The `remo` client. (in progress: only `keygen` is wired so far)

use clap::{Parser, Subcommand};

/// remo — the remo client.
#[derive(Parser)]
#[command(name = "remo", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make a login key pair (FILE and FILE.pub).
    Keygen(crate::admin::KeygenArgs),
}

/// Entry point of the `remo` binary; returns the exit code.
pub fn remo_main() -> i32 {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Keygen(a) => crate::admin::run_keygen(a),
    }
}
