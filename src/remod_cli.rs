//! `remod`'s command line: the server and its admin tools. In the library
//! (not in the binary) so the man page and shell completions are made from
//! the same definitions (`examples/gen-assets.rs`).

use clap::{CommandFactory, Parser, Subcommand};

/// remod — the remo server (FastCGI responder or embedded HTTP) and its admin tools.
#[derive(Parser)]
#[command(name = "remod", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a data directory: server key pair and an empty user database.
    Init(crate::admin::InitArgs),
    /// Manage users in the user database.
    User(crate::admin::UserArgs),
    /// Query the audit log.
    Audit(crate::admin::AuditArgs),
    /// Run the server (FastCGI or embedded HTTP).
    Serve(Box<crate::server::cli::ServeArgs>),
    /// Install, show or remove remod's nftables table (docs/firewall.md).
    Firewall(crate::firewall::cli::FirewallArgs),
    /// What a running remod has live: sessions, processes, firewall grants, instances.
    Status(crate::server::control::StatusArgs),
    /// End live sessions of a running remod (`remod session end ID|--user NAME`).
    Session(crate::server::control::SessionArgs),
    /// Print the JSON Schema of every operation's descriptor and result
    /// (for other clients; docs/operations.md is made from it).
    Schema(SchemaArgs),
}

#[derive(clap::Args)]
struct SchemaArgs {
    /// Print docs/operations.md instead of JSON.
    #[arg(long)]
    markdown: bool,
}

/// The man page's description: how the pieces fit when remod is installed.
const LONG_ABOUT: &str = "\
remod serves the remo/1 protocol (a sealed, authenticated channel for
commands, interactive terminals, files, configuration edits and firewall
grants) as a FastCGI responder behind nginx or Apache, or as its own HTTP
server (serve --http). Installed from the Debian package, systemd starts
`remod serve` on the first request to /run/remo/remod.sock (remod.socket,
remod.service) with the server key and user database in /var/lib/remo and
its limits and features in /etc/remo/remo.toml (remo.toml(5)). The web
server includes /etc/nginx/snippets/remo.conf, or Apache enables it with
`a2enconf remo`; clients then use https://HOST/remo. Users are added with
`remod user add`; `remod status` shows what a running remod has live.";

/// remod's clap definition, for the man page and shell completions.
pub fn remod_command() -> clap::Command {
    Cli::command().long_about(LONG_ABOUT)
}

/// Entry point of the `remod` binary; returns the exit code.
pub fn remod_main() -> i32 {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Init(a) => crate::admin::run_init(a),
        Cmd::User(a) => crate::admin::run_user(a),
        Cmd::Audit(a) => crate::admin::run_audit(a),
        Cmd::Serve(a) => crate::server::cli::run_serve(*a),
        Cmd::Firewall(a) => crate::firewall::cli::run(a),
        Cmd::Status(a) => crate::server::control::run_status(a),
        Cmd::Session(a) => crate::server::control::run_session(a),
        Cmd::Schema(a) => {
            if a.markdown {
                print!("{}", crate::ops::markdown());
            } else {
                let s = serde_json::to_string_pretty(&crate::ops::schema()).unwrap_or_default();
                println!("{s}");
            }
            0
        }
    }
}
