//! `remod serve`: options and start-up. (in progress)

/// Arguments of `remod serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

/// Runs the server; returns the exit code.
pub fn run_serve(_a: ServeArgs) -> i32 {
    eprintln!("remod: serve is not implemented yet");
    2
}
