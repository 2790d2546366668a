//! remo: a secure remote-administration backend.
//!
//! One library under two binaries: `remod` (server and admin tools) and
//! `remo` (client). Tests and benchmarks use the internals directly.

pub mod admin;
pub mod alloc;
pub mod audit;
mod catool;
pub mod certfile;
pub mod cfgedit;
pub mod client;
pub mod firewall;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz;
pub mod keyfile;
pub mod ops;
pub mod perms;
pub mod proto;
pub mod remod_cli;
pub mod server;
pub mod userdb;
