//! The `remo` client: an ssh-like command line over remo/1.
//!
//! `conn` is the protocol client (usable by tests and benchmarks), `config`,
//! `known` and `tls` decide where to connect and whom to trust, `fleet`
//! turns `@SPEC` into many targets (groups, Ansible inventories), `cache` keeps
//! sessions between commands, `interactive` drives remote interactive
//! processes, `list` reads directory listings, `cli` and `cmd` are the
//! command line.

pub(crate) mod cache;
pub(crate) mod cli;
pub(crate) mod cmd;
pub(crate) mod config;
pub mod conn;
pub(crate) mod ctx;
pub(crate) mod error;
pub(crate) mod fleet;
pub mod input;
pub(crate) mod interactive;
pub(crate) mod known;
pub(crate) mod list;
pub(crate) mod resume;
pub(crate) mod tls;

pub use conn::{info, ResponseItem, ResponseStream, ServerInfo, Session};
pub use error::ClientError;

/// remo's clap definition (HOST is taken out before parsing, see the
/// man page's description), for the man page and shell completions.
pub fn remo_command() -> clap::Command {
    cli::remo_command()
}

/// Entry point of the `remo` binary; returns the exit code.
pub fn remo_main() -> i32 {
    cli::main_with_args(std::env::args().collect())
}
