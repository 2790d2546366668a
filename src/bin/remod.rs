//! `remod`: the remo server and its admin tools.

use clap::{Parser, Subcommand};

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
    Init(remo::admin::InitArgs),
    /// Manage users in the user database.
    User(remo::admin::UserArgs),
    /// Query the audit log.
    Audit(remo::admin::AuditArgs),
    /// Run the server (FastCGI or embedded HTTP).
    Serve(Box<remo::server::cli::ServeArgs>),
    /// Install, show or remove remod's nftables table (docs/firewall.md).
    Firewall(remo::firewall::cli::FirewallArgs),
    /// What a running remod has live: sessions, processes, firewall grants, instances.
    Status(remo::server::control::StatusArgs),
    /// End live sessions of a running remod (`remod session end ID|--user NAME`).
    Session(remo::server::control::SessionArgs),
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

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Init(a) => remo::admin::run_init(a),
        Cmd::User(a) => remo::admin::run_user(a),
        Cmd::Audit(a) => remo::admin::run_audit(a),
        Cmd::Serve(a) => remo::server::cli::run_serve(*a),
        Cmd::Firewall(a) => remo::firewall::cli::run(a),
        Cmd::Status(a) => remo::server::control::run_status(a),
        Cmd::Session(a) => remo::server::control::run_session(a),
        Cmd::Schema(a) => {
            if a.markdown {
                print!("{}", remo::ops::markdown());
            } else {
                let s = serde_json::to_string_pretty(&remo::ops::schema()).unwrap_or_default();
                println!("{s}");
            }
            0
        }
    };
    std::process::exit(code);
}
