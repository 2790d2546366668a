//! The `remo` client: an ssh-like command line over remo/1.
//!
//! `conn` is the protocol client (usable by tests and benchmarks), `config`,
//! `known` and `tls` decide where to connect and whom to trust, `cache` keeps
//! sessions between commands, `interactive` drives remote interactive
//! processes, `cli` and `cmd` are the command line.

pub mod cache;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod conn;
pub mod ctx;
pub mod error;
pub mod input;
pub mod interactive;
pub mod known;
pub mod tls;

pub use conn::{info, ResponseItem, ResponseStream, ServerInfo, Session};
pub use error::ClientError;

/// Entry point of the `remo` binary; returns the exit code.
pub fn remo_main() -> i32 {
    cli::main_with_args(std::env::args().collect())
}
