//! Running nft: a child process with the configured argument prefix (never
//! a shell), the batch on its standard input so it is applied as one atomic
//! transaction, and `nft -j list table` for reading grants back.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use serde_json::Value;

use super::config::{FirewallConfig, PortSpec, Profile};
use super::nft::{self, Owned};
use super::FwError;

/// The nft command of a configuration.
#[derive(Debug, Clone)]
pub(crate) struct Nft {
    argv: Vec<String>,
    table: String,
}

impl Nft {
    /// The command from `[firewall] nft` (default `["nft"]`).
    pub(crate) fn new(cfg: &FirewallConfig) -> Nft {
        Nft {
            argv: cfg.nft.clone(),
            table: cfg.table.clone(),
        }
    }

    fn command(&self, args: &[&str]) -> Result<Command, FwError> {
        let (prog, prefix) = self.argv.split_first().ok_or_else(|| FwError::Spawn {
            cmd: "nft".into(),
            source: std::io::Error::other("empty firewall.nft"),
        })?;
        let mut c = Command::new(prog);
        c.args(prefix).args(args).env("LC_ALL", "C");
        Ok(c)
    }

    fn spawn_error(&self, e: std::io::Error) -> FwError {
        FwError::Spawn {
            cmd: self.argv.join(" "),
            source: e,
        }
    }

    /// Applies a batch atomically (`nft -f -`): all of it or nothing.
    pub(crate) fn apply(&self, batch: &str) -> Result<(), FwError> {
        let mut child = self
            .command(&["-f", "-"])?
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(batch.as_bytes())
                .map_err(|e| self.spawn_error(e))?;
        }
        let out = child.wait_with_output().map_err(|e| self.spawn_error(e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(FwError::Nft(one_line(&out.stderr)))
        }
    }

    /// `nft -j list table inet TABLE`; `None` when the table does not exist.
    pub(crate) fn list(&self) -> Result<Option<Value>, FwError> {
        let out = self
            .command(&["-j", "list", "table", "inet", &self.table])?
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.spawn_error(e))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("No such file or directory") {
                return Ok(None);
            }
            return Err(FwError::Nft(one_line(&out.stderr)));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        nft::parse_listing(&text).map(Some)
    }

    /// `nft list table inet TABLE` as text (for `remod firewall status`).
    pub(crate) fn list_text(&self) -> Result<Option<String>, FwError> {
        let out = self
            .command(&["list", "table", "inet", &self.table])?
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.spawn_error(e))?;
        if !out.status.success() {
            if String::from_utf8_lossy(&out.stderr).contains("No such file or directory") {
                return Ok(None);
            }
            return Err(FwError::Nft(one_line(&out.stderr)));
        }
        Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    /// Every owner's grant: the two ledger sets only, not the whole table.
    pub(crate) fn ledger(&self) -> Result<Vec<Owned>, FwError> {
        let mut v = Vec::new();
        for v6 in [false, true] {
            let out = self
                .command(&[
                    "-j",
                    "list",
                    "set",
                    "inet",
                    &self.table,
                    &nft::ledger_name(v6),
                ])?
                .stdin(Stdio::null())
                .output()
                .map_err(|e| self.spawn_error(e))?;
            if !out.status.success() {
                if String::from_utf8_lossy(&out.stderr).contains("No such file or directory") {
                    continue;
                }
                return Err(FwError::Nft(one_line(&out.stderr)));
            }
            let j = nft::parse_listing(&String::from_utf8_lossy(&out.stdout))?;
            v.extend(nft::parse_ledger(&j, &self.table));
        }
        Ok(v)
    }
}

/// Serialises read-modify-write changes of grants within this process, so
/// two opens of one address cannot both miss each other's ledger entry.
static CHANGES: Mutex<()> = Mutex::new(());

/// Grants `ip` the profile for `secs` seconds as `who`'s own grant. The
/// packet-path elements last as long as the longest owner's grant, so
/// re-opening never shortens another user's grant (only one's own).
pub(crate) fn open_grant(
    cfg: &FirewallConfig,
    p: &Profile,
    ip: IpAddr,
    secs: u64,
    who: &str,
) -> Result<(), FwError> {
    let _g = CHANGES.lock().unwrap_or_else(|e| e.into_inner());
    let nft = Nft::new(cfg);
    let ledger = nft.ledger()?;
    let mut others = 0;
    for o in ledger.iter().filter(|o| o.ip == ip && o.profile == p.name) {
        if o.user == who {
            continue;
        }
        if nft::tag(&o.user) == nft::tag(who) {
            return Err(FwError::Conflict(format!(
                "users {:?} and {who:?} cannot both hold a grant of {} for {ip}",
                o.user, p.name
            )));
        }
        others = others.max(o.expires_in);
    }
    check_limits(cfg, p, ip, who, &ledger)?;
    nft.apply(&nft::open_batch(cfg, p, ip, secs, secs.max(others), who))
        .map_err(|e| match e {
            // The kernel's set size, the backstop of the checks above.
            FwError::Nft(m) if m.contains("Too many open files") || m.contains("No space left") => {
                FwError::TooMany(format!("the grant sets are full ({m})"))
            }
            other => other,
        })
}

/// `max_grants_per_user` (a refresh of one's own grant is not a new one)
/// and `max_grants` addresses per profile and family.
fn check_limits(
    cfg: &FirewallConfig,
    p: &Profile,
    ip: IpAddr,
    who: &str,
    ledger: &[Owned],
) -> Result<(), FwError> {
    let refresh = ledger
        .iter()
        .any(|o| o.ip == ip && o.profile == p.name && o.user == who);
    if refresh {
        return Ok(());
    }
    let mine = ledger.iter().filter(|o| o.user == who).count();
    if mine >= cfg.max_grants_per_user as usize {
        return Err(FwError::TooMany(format!(
            "{who} already holds {mine} grants (max_grants_per_user = {})",
            cfg.max_grants_per_user
        )));
    }
    let mut addrs: Vec<IpAddr> = ledger
        .iter()
        .filter(|o| o.profile == p.name && o.ip.is_ipv6() == ip.is_ipv6())
        .map(|o| o.ip)
        .collect();
    addrs.sort();
    addrs.dedup();
    if !addrs.contains(&ip) && addrs.len() >= cfg.max_grants as usize {
        return Err(FwError::TooMany(format!(
            "profile {} has {} grants for this address family (max_grants = {})",
            p.name,
            addrs.len(),
            cfg.max_grants
        )));
    }
    Ok(())
}

/// Deletes the conntrack entries of `ip`'s connections to the profile's
/// ports and forwards, so `close` cuts connections the grant let in
/// (which kept profiles' established TCP would otherwise outlive).
fn cut_connections(cfg: &FirewallConfig, p: &Profile, ip: IpAddr) -> Result<(), FwError> {
    let v6 = ip.is_ipv6();
    let specs: Vec<PortSpec> = p
        .ports
        .iter()
        .copied()
        .chain(p.forwards_for(v6).map(|f| f.public))
        .collect();
    let Some((prog, prefix)) = cfg.conntrack.split_first() else {
        return Ok(());
    };
    let ip_s = ip.to_string();
    for spec in specs {
        let port = spec.port.to_string();
        let out = Command::new(prog)
            .args(prefix)
            .args(["-D", "-f", if v6 { "ipv6" } else { "ipv4" }])
            .args([
                "-s",
                &ip_s,
                "-p",
                spec.proto.as_str(),
                "--orig-port-dst",
                &port,
            ])
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| FwError::Spawn {
                cmd: format!(
                    "{} (install the Debian package conntrack)",
                    cfg.conntrack.join(" ")
                ),
                source: e,
            })?;
        // Exit 1 with "0 flow entries have been deleted" is nothing to cut.
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && !err.contains("0 flow entries") {
            return Err(FwError::Nft(format!(
                "conntrack: {}",
                one_line(&out.stderr)
            )));
        }
    }
    Ok(())
}

/// Ends `who`'s grant of the profile for `ip` (with `all`, an admin's
/// close, everyone's). Other owners' grants stay: the packet-path
/// elements then last as long as the longest of them.
pub(crate) fn close_grant(
    cfg: &FirewallConfig,
    p: &Profile,
    ip: IpAddr,
    who: &str,
    all: bool,
) -> Result<(), FwError> {
    let _g = CHANGES.lock().unwrap_or_else(|e| e.into_inner());
    let nft = Nft::new(cfg);
    let ledger = nft.ledger()?;
    let mut owners = vec![who.to_string()];
    let mut remaining: Option<u64> = None;
    for o in ledger.iter().filter(|o| o.ip == ip && o.profile == p.name) {
        if o.user == who {
            continue;
        }
        if all {
            owners.push(o.user.clone());
        } else {
            remaining = Some(remaining.unwrap_or(0).max(o.expires_in.max(1)));
        }
    }
    nft.apply(&nft::close_batch(cfg, p, ip, &owners, remaining))?;
    if remaining.is_none() {
        if let Err(e) = cut_connections(cfg, p, ip) {
            // Without keep_established the grant sets already stop every
            // packet; only kept connections depend on conntrack here.
            if p.keep_established {
                return Err(e);
            }
            log::warn!("firewall: closing {} for {ip}: {e}", p.name);
        }
    }
    Ok(())
}

/// nft's error output as one line, without the caret lines under the batch.
fn one_line(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr);
    let parts: Vec<&str> = s
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '^' || c == '~' || c == ' '))
        .collect();
    parts.join(" | ").chars().take(500).collect()
}

/// Installs (or repairs) the table and removes sets of profiles that are
/// no longer configured; live grants of configured profiles are kept.
pub(crate) fn install(cfg: &FirewallConfig) -> Result<Vec<String>, FwError> {
    let nft = Nft::new(cfg);
    let stale = match nft.list()? {
        Some(j) => nft::stale_sets(cfg, &j),
        None => Vec::new(),
    };
    let mut batch = nft::structure(cfg);
    batch.push_str(&nft::delete_sets(cfg, &stale));
    nft.apply(&batch)?;
    Ok(stale.into_iter().map(|(n, _)| n).collect())
}

/// Removes the table and every grant in it.
pub(crate) fn uninstall(cfg: &FirewallConfig) -> Result<(), FwError> {
    Nft::new(cfg).apply(&nft::uninstall_batch(cfg))
}

/// For `remod serve`: installs the guard of every profile in the
/// configuration file at `path` before any request is served (idempotent,
/// live grants are kept), so guarded ports are never open to everyone
/// between a start or restart and the first `open`. A file without
/// `[firewall]` does nothing; one that does not load is left to the
/// instance loader to report. An `Err` means remod must not start.
pub(crate) fn install_guard_at_start(path: &std::path::Path) -> Result<(), GuardError> {
    let Ok(file) = crate::server::core::config::ConfigFile::load(path) else {
        return Ok(());
    };
    let Some(cfg) = file.firewall else {
        return Ok(());
    };
    install_guard(&cfg, path)
}

/// Installs the guard of every profile of `cfg`, read from `path`
/// (idempotent; live grants are kept).
pub(crate) fn install_guard(
    cfg: &FirewallConfig,
    path: &std::path::Path,
) -> Result<(), GuardError> {
    install(cfg).map(|_| ()).map_err(|source| GuardError {
        table: cfg.table.clone(),
        path: path.to_path_buf(),
        source,
    })
}

/// The guard could not be installed at start: remod must not serve.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the firewall guard (table inet {table}) from {}: {source}; refusing to serve with guarded ports open", path.display())]
pub(crate) struct GuardError {
    /// The nftables table.
    pub table: String,
    /// The configuration file.
    pub path: std::path::PathBuf,
    /// What nft said.
    pub source: FwError,
}
