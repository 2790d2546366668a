//! Fleet commands: `remo @SPEC CMD` runs one command on many servers.
//!
//! `inventory` turns `@SPEC` into concrete targets from config.toml
//! `[groups]`, `[hosts]` aliases and an Ansible inventory (INI or YAML); it
//! is pure. This module pins the servers not yet known (listing them and
//! asking once), gets a key's passphrase once, and hands the hosts to
//! `run`, which fans the command out.

pub(crate) mod inventory;
pub(crate) mod run;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use zeroize::Zeroizing;

use super::config::{Config, EnvValues, Overrides, Target};
use super::error::ClientError;
use super::known;
use crate::keyfile::PASSPHRASE_ENV;
use inventory::{resolve_spec, Inventory};
use run::{Job, Show};

/// What the command line asked of a fleet command.
pub(crate) struct FleetArgs {
    /// The text after `@`.
    pub spec: String,
    /// `--inventory`.
    pub inventory: Option<PathBuf>,
    /// The command line's overrides (`--user`, `--key`, `--cacert`).
    pub overrides: Overrides,
    /// `-P`.
    pub parallel: usize,
    /// How output is shown.
    pub show: Show,
    /// The arguments every child gets after its target (the command line
    /// without the program and the `@SPEC`).
    pub command: Vec<String>,
    /// `--passphrase-file` was given (children read it themselves).
    pub passphrase_file: bool,
    /// The command may not run on a fleet (`shell`, `exec -i`, …): why.
    pub refused: Option<&'static str>,
}

/// The child arguments that make a `remo` target `t` exactly: the server,
/// and the user and key unless the command line gives them (it is passed
/// on to every child).
fn target_args(t: &Target, ov: &Overrides) -> Vec<String> {
    let mut a = vec!["--server".to_string(), t.server.clone()];
    if ov.user.is_none() {
        a.push("--user".into());
        a.push(t.user.clone());
    }
    if ov.key.is_none() {
        a.push("--key".into());
        a.push(t.key.display().to_string());
    }
    if ov.cacert.is_none() {
        if let Some(c) = &t.tls.cacert {
            a.push("--cacert".into());
            a.push(c.display().to_string());
        }
    }
    a
}

/// Runs a fleet command; returns the exit code.
pub(crate) async fn run_fleet(a: FleetArgs) -> Result<i32, ClientError> {
    if let Some(why) = a.refused {
        return Err(ClientError::Usage(format!(
            "{why} cannot run on a fleet (@{}); name one host",
            a.spec
        )));
    }
    let cfg = Config::load()?;
    let inv = Inventory::load_configured(a.inventory.as_deref(), &cfg)
        .map_err(|e| ClientError::Config(e.to_string()))?;
    let hosts = resolve_spec(&a.spec, &cfg, inv.as_ref())
        .map_err(|e| ClientError::Config(e.to_string()))?;
    let env = EnvValues::from_env();
    let mut jobs = Vec::with_capacity(hosts.len());
    let mut targets = Vec::with_capacity(hosts.len());
    for h in &hosts {
        let t = h.target(&cfg, &a.overrides, &env)?;
        // An alias is passed as itself, so its own settings
        // (pin_certificate) apply in the child as they would alone.
        let target_args = match &h.via {
            inventory::Via::Alias(alias) => vec![alias.clone()],
            inventory::Via::Url { .. } => target_args(&t, &a.overrides),
        };
        jobs.push(Job {
            name: h.name.clone(),
            server: t.server.clone(),
            target_args,
        });
        targets.push((h.name.clone(), t));
    }
    if !pin_new(&targets, a.parallel).await? {
        return Ok(1);
    }
    let mut child_env = Vec::new();
    if !a.passphrase_file && std::env::var_os(PASSPHRASE_ENV).is_none() {
        if let Some(p) = passphrase_once(&targets)? {
            child_env.push((PASSPHRASE_ENV.to_string(), p));
        }
    }
    Ok(run::run(jobs, a.command, child_env, a.parallel, a.show).await)
}

/// Asks for the passphrase of the first encrypted key among the hosts'
/// keys, once, so children do not each ask (they get it in their
/// environment, which only this user and root can read).
fn passphrase_once(targets: &[(String, Target)]) -> Result<Option<Zeroizing<String>>, ClientError> {
    let mut seen = std::collections::HashSet::new();
    for (_, t) in targets {
        if !seen.insert(t.key.clone()) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&t.key) else {
            continue;
        };
        if crate::keyfile::is_encrypted_pem(&text) {
            let p = rpassword::prompt_password(format!(
                "Passphrase for {} (used for every host): ",
                t.key.display()
            ))
            .map_err(|e| {
                ClientError::Key(format!(
                    "cannot read a passphrase from the terminal ({e}); set {PASSPHRASE_ENV} or use --passphrase-file"
                ))
            })?;
            return Ok(Some(Zeroizing::new(p)));
        }
    }
    Ok(None)
}

/// Pins the servers the known-servers file does not know yet: fetches
/// their `/info` (`parallel` at once), lists name, URL and fingerprint,
/// and on a terminal asks once. Without a terminal they are pinned and
/// listed, as one server is on first use. False if the user said no.
/// Servers that do not answer are left to their child to report.
async fn pin_new(targets: &[(String, Target)], parallel: usize) -> Result<bool, ClientError> {
    let known_path = known::default_path()?;
    let mut new = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (name, t) in targets {
        if seen.insert(t.server.clone()) && known::lookup(&known_path, &t.server)?.is_none() {
            new.push((name.clone(), t.clone()));
        }
    }
    if new.is_empty() {
        return Ok(true);
    }
    let pins_path = super::tls::default_pins_path()?;
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (name, t)) in new.into_iter().enumerate() {
        let (gate, pins_path) = (gate.clone(), pins_path.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.ok()?;
            let (http, _) = super::conn::http_client_for(&t.server, &t.tls, &pins_path).ok()?;
            let info = super::conn::info_with(&http, &t.server).await.ok()?;
            let key = info.public_key().ok()?;
            Some((i, name, t.server, key))
        });
    }
    let mut found = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(Some(f)) = r {
            found.push(f);
        }
    }
    if found.is_empty() {
        return Ok(true);
    }
    found.sort_by_key(|f| f.0);
    let width = found.iter().map(|f| f.1.len()).max().unwrap_or(0);
    let mut list = format!("remo: {} new server(s):\n", found.len());
    for (_, name, server, key) in &found {
        list.push_str(&format!(
            "  {name:<width$}  {server}  {}\n",
            key.fingerprint()
        ));
    }
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(list.as_bytes());
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        let _ = write!(err, "Pin these server keys? [y/N] ");
        let _ = err.flush();
        drop(err);
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("remo: nothing pinned; nothing run");
            return Ok(false);
        }
    } else {
        drop(err);
    }
    for (_, _, server, key) in &found {
        known::check_or_pin(&known_path, server, key)?;
    }
    eprintln!(
        "remo: pinned {} server key(s) in {}",
        found.len(),
        known_path.display()
    );
    Ok(true)
}
