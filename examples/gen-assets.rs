//! Writes what the Debian package installs besides the binaries, from the
//! same definitions the binaries use, so nothing drifts:
//!
//! - `man/`: remo(1) and remod(8) with a page per subcommand (clap_mangen,
//!   from the clap definitions), and remo.toml(5) (hand-written roff,
//!   `deploy/debian/remo.toml.5`);
//! - `completions/`: bash, zsh and fish completions (clap_complete);
//! - `deb/`: the systemd units and the nginx and Apache snippets of
//!   `deploy/`, `nginx/` and `apache/` with their `@PLACEHOLDER@`s filled in
//!   with the package's paths.
//!
//! `cargo run --example gen-assets [DIR]` (default `target/assets`); the
//! package's `[package.metadata.deb]` assets point into that directory.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// The package's paths (the units, the snippets and the postinst agree).
const REMOD: &str = "/usr/bin/remod";
const SOCKET: &str = "/run/remo/remod.sock";
const KEY_FILE: &str = "/var/lib/remo/server.key";
const USER_DB: &str = "/var/lib/remo/users.db";
const CONFIG: &str = "/etc/remo/remo.toml";

type Res<T> = Result<T, Box<dyn Error>>;

fn main() -> Res<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = match std::env::args_os().nth(1) {
        Some(d) => PathBuf::from(d),
        None => root.join("target/assets"),
    };
    let (man, comp, deb) = (out.join("man"), out.join("completions"), out.join("deb"));
    for d in [&man, &comp, &deb] {
        // Stale pages of removed subcommands must not be packaged.
        if d.exists() {
            fs::remove_dir_all(d)?;
        }
        fs::create_dir_all(d)?;
    }

    man_pages(remo::client::remo_command(), "1", &man)?;
    man_pages(remo::remod_cli::remod_command(), "8", &man)?;
    fs::copy(
        root.join("deploy/debian/remo.toml.5"),
        man.join("remo.toml.5"),
    )?;

    for (name, mut cmd) in [
        ("remo", remo::client::remo_command()),
        ("remod", remo::remod_cli::remod_command()),
    ] {
        for (shell, file) in [
            (Shell::Bash, format!("{name}.bash")),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let mut f = fs::File::create(comp.join(file))?;
            clap_complete::generate(shell, &mut cmd, name, &mut f);
        }
    }

    let vars = [
        ("REMOD", REMOD),
        ("SOCKET", SOCKET),
        ("KEY_FILE", KEY_FILE),
        ("USER_DB", USER_DB),
    ];
    let service = render(&root.join("deploy/remod.service"), &vars)?;
    // The package's remo.toml (a conffile) is the default for requests
    // that name none, and the docs are the installed ones.
    let service = replace_once(
        &service,
        &format!("# Environment=REMO_CONFIG={CONFIG}\n"),
        &format!("Environment=REMO_CONFIG={CONFIG}\n"),
    )?;
    let service = replace_once(
        &service,
        "Documentation=file:///usr/share/doc/remo/README.md\n",
        "Documentation=man:remod(8) man:remo.toml(5) file:///usr/share/doc/remod/README.md\n",
    )?;
    fs::write(deb.join("remod.service"), service)?;
    fs::write(
        deb.join("remod.socket"),
        render(&root.join("deploy/remod.socket"), &vars)?,
    )?;
    fs::write(
        deb.join("nginx-remo.conf"),
        render(&root.join("nginx/remo.conf"), &vars)?,
    )?;
    fs::write(
        deb.join("apache-remo.conf"),
        render(&root.join("apache/remo-proxy-fcgi.conf"), &vars)?,
    )?;
    println!("{}", out.display());
    Ok(())
}

/// One page for `cmd` and one for each visible subcommand, all levels
/// (`remod-user-add.8`), in `section`.
fn man_pages(cmd: clap::Command, section: &str, dir: &Path) -> Res<()> {
    fn walk(cmd: clap::Command, section: &str, dir: &Path) -> Res<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, section, dir)?;
        }
        let page = clap_mangen::Man::new(cmd)
            .section(section)
            .source(format!("remo {}", env!("CARGO_PKG_VERSION")))
            .manual(if section == "8" {
                "System Administration"
            } else {
                "User Commands"
            });
        page.generate_to(dir)?;
        Ok(())
    }
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    walk(cmd, section, dir)
}

/// `path` with every `@NAME@` of `vars` replaced; a placeholder left over
/// (a new one in the shipped file) is an error, not a broken package.
fn render(path: &Path, vars: &[(&str, &str)]) -> Res<String> {
    let mut s = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for (k, v) in vars {
        s = s.replace(&format!("@{k}@"), v);
    }
    let parts: Vec<&str> = s.split('@').collect();
    let mut inner = parts.iter().skip(1).take(parts.len().saturating_sub(2));
    if let Some(name) =
        inner.find(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
    {
        return Err(format!("{}: placeholder @{name}@ not filled in", path.display()).into());
    }
    Ok(s)
}

/// `s` with `from` replaced by `to`, which must occur exactly once (the
/// shipped file changed otherwise: look again).
fn replace_once(s: &str, from: &str, to: &str) -> Res<String> {
    match s.matches(from).count() {
        1 => Ok(s.replacen(from, to, 1)),
        n => Err(format!("expected {from:?} once in the unit, found it {n} times").into()),
    }
}
