//! Admin and key tools: `remod init`, `remod user …`, `remo keygen`. (in progress)

/// Arguments of `remod init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The data directory to create.
    pub dir: std::path::PathBuf,
}

/// Arguments of `remod user`.
#[derive(Debug, clap::Args)]
pub struct UserArgs {}

/// Arguments of `remo keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {}

/// Runs `remod init`; returns the exit code.
pub fn run_init(_a: InitArgs) -> i32 {
    eprintln!("remod: init is not implemented yet");
    2
}

/// Runs `remod user …`; returns the exit code.
pub fn run_user(_a: UserArgs) -> i32 {
    eprintln!("remod: user is not implemented yet");
    2
}

/// Runs `remo keygen`; returns the exit code.
pub fn run_keygen(_a: KeygenArgs) -> i32 {
    eprintln!("remo: keygen is not implemented yet");
    2
}
