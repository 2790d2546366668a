//! Every integration test, in one test binary (one link, one harness):
//! each module is one concern, run against the real `remod` and `remo`
//! binaries (and real nginx, Apache, SQLite, nftables) where it can.
//!
//! Run one module with `cargo nextest run --test it MODULE::`.

// Tests may unwrap: a panic is a failed test (see clippy.toml).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod inproc;

mod admin;
mod argv0;
mod authz;
mod binary_framing;
mod certificates;
mod client_config;
mod client_http;
mod client_interactive;
mod config_files;
mod config_links;
mod console_admin;
mod console_browser;
mod console_config;
mod console_doors;
mod console_serve;
mod console_term;
mod contain_procs;
mod containment;
mod e2e_apache;
mod e2e_deploy;
mod e2e_http;
mod e2e_nginx;
mod firewall_netns;
mod first_hour;
mod fleet;
mod frontdoor;
mod grant_roots;
mod interactive;
mod keys_cli;
mod list;
mod logging;
mod metrics;
mod operations_doc;
mod protocol_vectors;
mod put_resume;
mod revoke_http;
mod runas_spawn;
mod runas_threads;
mod server_checks;
mod spawn_fds;
mod stall;
mod status;
mod trust;
