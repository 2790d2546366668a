//! `remod firewall install|status|uninstall`: the administrator's view of
//! remod's nftables table, using the same `[firewall]` configuration as the
//! server (so the table an admin installs is the one `open` maintains).

use std::path::PathBuf;

use clap::Subcommand;

use super::backend::{self, Nft};
use super::config::FirewallConfig;
use crate::server::core::config::ConfigFile;

/// Arguments of `remod firewall`.
#[derive(Debug, clap::Args)]
pub struct FirewallArgs {
    /// The configuration file with the [firewall] table.
    #[arg(long, env = "REMO_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub cmd: FirewallCmd,
}

/// The `remod firewall` subcommands.
#[derive(Debug, Subcommand)]
pub enum FirewallCmd {
    /// Create the table, or bring its rules in line with the configuration;
    /// live grants are kept, sets of removed profiles are deleted.
    Install,
    /// Show the table and the active grants with their remaining time.
    Status {
        /// Print the grants as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete the table and every grant in it.
    Uninstall,
}

fn load(path: Option<PathBuf>) -> Result<FirewallConfig, String> {
    let path = path.ok_or("give --config FILE (or set REMO_CONFIG)")?;
    let file = ConfigFile::load(&path).map_err(|e| e.to_string())?;
    file.firewall
        .ok_or_else(|| format!("{}: no [firewall] table", path.display()))
}

/// Runs `remod firewall …`; returns the exit code.
pub fn run(a: FirewallArgs) -> i32 {
    match run_inner(a) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("remod: {}", e.replace(['\n', '\r'], " "));
            1
        }
    }
}

fn run_inner(a: FirewallArgs) -> Result<(), String> {
    let cfg = load(a.config)?;
    let nft = Nft::new(&cfg);
    match a.cmd {
        FirewallCmd::Install => {
            let removed = backend::install(&cfg).map_err(|e| e.to_string())?;
            println!(
                "table inet {} installed ({} profile(s))",
                cfg.table,
                cfg.profiles.len()
            );
            for r in removed {
                println!("removed stale set {r}");
            }
        }
        FirewallCmd::Status { json } => {
            let text = nft.list_text().map_err(|e| e.to_string())?;
            // One entry per owner, from the ledger.
            let grants = nft.ledger().map_err(|e| e.to_string())?;
            if json {
                let v: Vec<_> = grants
                    .iter()
                    .map(|g| {
                        serde_json::json!({"profile": g.profile, "ip": g.ip.to_string(),
                            "expires_in": g.expires_in, "by": g.user})
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(v));
                return Ok(());
            }
            match text {
                None => println!(
                    "table inet {} is not installed (remod firewall install)",
                    cfg.table
                ),
                Some(t) => {
                    print!("{t}");
                    println!();
                    if grants.is_empty() {
                        println!("no active grants");
                    } else {
                        println!("{:<20} {:<40} {:>10}  by", "profile", "ip", "expires");
                        for g in grants {
                            println!(
                                "{:<20} {:<40} {:>9}s  {}",
                                g.profile, g.ip, g.expires_in, g.user
                            );
                        }
                    }
                }
            }
        }
        FirewallCmd::Uninstall => {
            backend::uninstall(&cfg).map_err(|e| e.to_string())?;
            println!("table inet {} removed", cfg.table);
        }
    }
    Ok(())
}
