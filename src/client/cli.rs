//! Command-line parsing, target resolution and dispatch to the commands;
//! their context and session life cycle are in [`super::ctx`].

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use super::cmd;
use super::config::{self, Config, EnvValues, Overrides};
pub(crate) use super::ctx::Ctx;
use super::error::ClientError;

const AFTER_HELP: &str = "\
HOST is a host alias from ~/.config/remo/config.toml ([hosts.NAME]) or a base
URL (http://… or https://…). It may be left out when --server, REMO_SERVER or
default_host names the server. Examples:
  remo web1 exec uptime
  remo https://web1.example.org/remo exec --sh 'df -h | sort'
  echo hi | remo web1 exec cat
  tar c site | remo web1 exec -i tar x -C /srv
  remo web1 shell
  remo web1 tail -f -n 50 /var/log/syslog
  remo web1 get /var/log/syslog
  remo web1 ls -la /var/log
  remo web1 put ./site.tar.gz /srv/site.tar.gz
  remo web1 config set wg0 'Peer[PublicKey=abc=].AllowedIPs' 10.0.0.3/32
  remo web1 open ssh --for 30m
See docs/client.md for configuration, key pinning and the session cache.";

/// remo — run commands and move files on a remo server, like ssh.
#[derive(Debug, Parser)]
#[command(
    name = "remo",
    version,
    about = "remo — run commands and move files on a remo server, like ssh",
    long_about = None,
    override_usage = "remo [OPTIONS] [HOST] <COMMAND> [ARGS]...",
    after_help = AFTER_HELP
)]
pub(crate) struct Cli {
    /// Server base URL (overrides HOST's alias, REMO_SERVER and default_host).
    #[arg(long, value_name = "URL", global = true)]
    pub server: Option<String>,
    /// User name on the server [env: REMO_USER; default: $USER].
    #[arg(short = 'l', long, value_name = "USER", global = true)]
    pub user: Option<String>,
    /// Identity key file [env: REMO_KEY; default: ~/.config/remo/id_p256].
    #[arg(short = 'i', long, value_name = "FILE", global = true)]
    pub key: Option<String>,
    /// Trust the CA certificates (PEM) in FILE for this server, besides the
    /// system's (also: `cacert` in the host's entry, SSL_CERT_FILE).
    #[arg(long, value_name = "FILE", global = true)]
    pub cacert: Option<String>,
    /// Read the key's passphrase from FILE (else REMO_PASSPHRASE, else ask).
    #[arg(long, value_name = "FILE", global = true)]
    pub passphrase_file: Option<PathBuf>,
    /// Do not reuse or keep a session: log in and out around this command.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// With @HOSTS: how many hosts run at once.
    #[arg(short = 'P', long = "parallel", value_name = "N", global = true, default_value_t = 32,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub parallel: u64,
    /// With @HOSTS: show each host's output together when it ends, not
    /// line by line with the host's name.
    #[arg(long, global = true, conflicts_with = "json")]
    pub group_output: bool,
    /// With @HOSTS: one JSON object per host (host, server, exit, status,
    /// error, stdout, stderr, duration_ms) instead of text and a summary.
    /// With `ls`: the entries as the server's JSON lines.
    #[arg(long, global = true)]
    pub json: bool,
    /// With @HOSTS: an Ansible inventory (INI or YAML) whose groups and
    /// hosts @HOSTS may name (default: `inventory` in config.toml).
    #[arg(long, value_name = "FILE", global = true)]
    pub inventory: Option<PathBuf>,
    /// The host (filled from the first positional argument; see HOST below).
    #[arg(skip)]
    pub host: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// Show the server's name, version, protocol and key fingerprint (pins the key).
    Info,
    /// Run a command on the server; its exit code becomes ours (-i: interactive).
    Exec(cmd::exec::ExecArgs),
    /// Interactive terminal session (login shell, or CMD) on the server.
    Shell(cmd::shell::ShellArgs),
    /// Print the last lines of a remote file; -f follows it.
    Tail(cmd::tail::TailArgs),
    /// Download a file (REMOTE relative to the remote home).
    Get(cmd::get::GetArgs),
    /// List a remote directory (-l long, -a hidden entries too, --json).
    Ls(cmd::ls::LsArgs),
    /// Upload a file.
    Put(cmd::put::PutArgs),
    /// Read and edit the server's named configuration files.
    Config(cmd::config::ConfigArgs),
    /// End the cached session on the server and forget it.
    Logout,
    /// Open the server's firewall for this machine (or a guest) for a while.
    Open(cmd::open::OpenArgs),
    /// Close a firewall grant before it expires.
    Close(cmd::open::CloseArgs),
    /// List the active firewall grants with their remaining time.
    Grants,
    /// List the firewall profiles you may open (what each opens, for how
    /// long) and your address as the server sees it (--json: the result).
    Profiles,
    /// For admins: users (disable, enable), live sessions (end one) and the
    /// audit log (`remo admin --help`).
    Admin(cmd::admin::AdminArgs),
    /// Make a login key pair.
    Keygen(crate::admin::KeygenArgs),
    /// A certificate authority for user certificates: init, sign, revoke,
    /// show (`remo ca --help`).
    #[command(disable_help_flag = true)]
    Ca {
        /// `init`, `sign`, `revoke` or `show` and their options, parsed
        /// apart: their `--user` and `--key` are not the global ones.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
}

/// The man page's description: HOST is not a clap argument (`split_host`
/// takes it out before parsing), so it is explained here.
const LONG_ABOUT: &str = "\
remo runs commands, opens terminals and moves files on a remo server, like
ssh, over its sealed remo/1 channel (HTTP or HTTPS, usually through nginx or
Apache in front of remod).

The first positional argument before the command that is not a command name
is HOST: a host alias from ~/.config/remo/config.toml ([hosts.NAME]), a base
URL (http://... or https://...), or @SPEC for many hosts at once (groups,
Ansible inventories; see --parallel, --json, --inventory). It is taken out
before the options are parsed, so it may stand before or after them, and may
be left out when --server, REMO_SERVER or default_host names the server.";

/// remo's clap definition, for the man page and shell completions
/// (`examples/gen-assets.rs`); parsing uses [`Cli`] after [`split_host`].
pub(crate) fn remo_command() -> clap::Command {
    // `about` without the "remo — " prefix: the page's NAME line adds it.
    Cli::command()
        .about("run commands and move files on a remo server, like ssh")
        .long_about(LONG_ABOUT)
}

/// Names that are commands, never hosts.
const COMMANDS: &[&str] = &[
    "info", "exec", "shell", "tail", "get", "ls", "put", "config", "logout", "open", "close",
    "grants", "profiles", "admin", "keygen", "ca", "help",
];
/// Global options that take a separate value.
const VALUE_OPTIONS: &[&str] = &[
    "--server",
    "--cacert",
    "--user",
    "-l",
    "--key",
    "-i",
    "--passphrase-file",
    "-P",
    "--parallel",
    "--inventory",
];

/// Takes the HOST positional out of the arguments: the first positional
/// before the command that is not a command name.
pub(crate) fn split_host(args: Vec<String>) -> (Vec<String>, Option<String>) {
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            break;
        }
        if a.starts_with('-') && a.len() > 1 {
            i += if VALUE_OPTIONS.contains(&a.as_str()) {
                2
            } else {
                1
            };
            continue;
        }
        if COMMANDS.contains(&a.as_str()) {
            break;
        }
        let mut args = args;
        let host = args.remove(i);
        return (args, Some(host));
    }
    (args, None)
}

/// Options of `exec` (and global ones) that take a separate value.
const EXEC_VALUE_OPTIONS: &[&str] = &["--sh", "--cwd", "--env", "--timeout"];

/// Right after `exec`, `-i` means `--interactive` (as in `docker exec -i`),
/// not the global `-i FILE` (key): the global short option is kept before
/// the command, where it has always worked. Rewrites the first `-i` among
/// `exec`'s options, before `CMD`.
pub(crate) fn rewrite_exec_i(mut args: Vec<String>) -> Vec<String> {
    let Some(pos) = args.iter().skip(1).position(|a| a == "exec") else {
        return args;
    };
    // `exec` must be the command, not a value or an argument: everything
    // before it is options (HOST was taken out already).
    let mut i = 1;
    while i < pos + 1 {
        let a = &args[i];
        if !a.starts_with('-') {
            return args;
        }
        i += if VALUE_OPTIONS.contains(&a.as_str()) {
            2
        } else {
            1
        };
    }
    if i != pos + 1 {
        return args;
    }
    let mut i = pos + 2;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" || !a.starts_with('-') || a == "-" {
            break;
        }
        if a == "-i" {
            args[i] = "--interactive".into();
            break;
        }
        i += if VALUE_OPTIONS.contains(&a) || EXEC_VALUE_OPTIONS.contains(&a) {
            2
        } else {
            1
        };
    }
    args
}

/// The index of `name` when it is the command: everything before it is
/// options (HOST was taken out already).
fn command_at(args: &[String], name: &str) -> Option<usize> {
    let pos = args.iter().skip(1).position(|a| a == name)? + 1;
    let mut i = 1;
    while i < pos {
        let a = args.get(i)?;
        if !a.starts_with('-') {
            return None;
        }
        i += if VALUE_OPTIONS.contains(&a.as_str()) {
            2
        } else {
            1
        };
    }
    (i == pos).then_some(pos)
}

/// After `ls`, `-l` means `--long` (as in `ls -l`), not the global `-l
/// USER`, which keeps working before the command; `-la`, `-al` and `-a`
/// are spelled out too. Up to `--`; the values of global options are
/// skipped.
pub(crate) fn rewrite_ls_flags(args: Vec<String>) -> Vec<String> {
    let Some(pos) = command_at(&args, "ls") else {
        return args;
    };
    let mut out: Vec<String> = args.iter().take(pos + 1).cloned().collect();
    let mut rest = args.into_iter().skip(pos + 1);
    while let Some(a) = rest.next() {
        if a == "--" {
            out.push(a);
            out.extend(rest);
            break;
        }
        let short = a.strip_prefix('-').filter(|s| {
            !s.is_empty() && !s.starts_with('-') && s.chars().all(|c| c == 'l' || c == 'a')
        });
        if let Some(flags) = short {
            for c in flags.chars() {
                out.push(if c == 'l' { "--long" } else { "--all" }.to_string());
            }
            continue;
        }
        let takes_value = a != "-l" && VALUE_OPTIONS.contains(&a.as_str());
        out.push(a);
        if takes_value {
            out.extend(rest.next());
        }
    }
    out
}

/// Parses the process arguments and runs; returns the exit code.
pub(crate) fn main_with_args(args: Vec<String>) -> i32 {
    let (args, host) = split_host(args);
    let args = rewrite_ls_flags(rewrite_exec_i(args));
    // A fleet command gives every host's child this command line.
    let child_args: Vec<String> = args.iter().skip(1).cloned().collect();
    let mut cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    cli.host = host;
    // Local commands: no server, no runtime.
    match std::mem::replace(&mut cli.cmd, Cmd::Info) {
        Cmd::Keygen(a) => return crate::admin::run_keygen(a),
        Cmd::Ca { args } => return crate::catool::run(args),
        other => cli.cmd = other,
    }
    // One thread runs the runtime: a command talks to one server (a fleet
    // command to its children), and the work that pays for a thread of its
    // own has one (`remo get` stores on a thread, standard input is read on
    // the blocking pool). With worker threads, every socket read woke this
    // thread from a worker: a 1 GiB `remo get` cost about 10 % more CPU.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("remo: cannot start the async runtime: {e}");
            return 255;
        }
    };
    let code = match cli.host.as_deref().and_then(|h| h.strip_prefix('@')) {
        Some(spec) => {
            let a = fleet_args(&cli, spec, child_args);
            rt.block_on(super::fleet::run_fleet(a))
        }
        None => rt.block_on(run(cli)),
    };
    // Standard input may be blocked in a read on a runtime thread; do not wait for it.
    rt.shutdown_background();
    match code {
        Ok(c) => c,
        Err(e) => {
            eprintln!("remo: {e}");
            e.exit_code()
        }
    }
}

/// What a fleet command needs from the command line.
fn fleet_args(cli: &Cli, spec: &str, command: Vec<String>) -> super::fleet::FleetArgs {
    use super::fleet::run::Show;
    let refused = match &cli.cmd {
        Cmd::Shell(_) => Some("shell"),
        Cmd::Exec(e) if e.interactive => Some("exec -i"),
        Cmd::Get(_) => Some("get (every host would write the same local file)"),
        _ if cli.server.is_some() => Some("--server"),
        _ => None,
    };
    super::fleet::FleetArgs {
        spec: spec.to_string(),
        inventory: cli.inventory.clone(),
        overrides: Overrides {
            host: None,
            server: None,
            user: cli.user.clone(),
            key: cli.key.clone(),
            cacert: cli.cacert.clone(),
        },
        parallel: usize::try_from(cli.parallel).unwrap_or(32),
        show: if cli.json {
            Show::Json
        } else if cli.group_output {
            Show::Grouped
        } else {
            Show::Lines
        },
        command,
        passphrase_file: cli.passphrase_file.is_some(),
        refused,
    }
}

async fn run(cli: Cli) -> Result<i32, ClientError> {
    let cfg = Config::load()?;
    let ov = Overrides {
        host: cli.host.clone(),
        server: cli.server.clone(),
        user: cli.user.clone(),
        key: cli.key.clone(),
        cacert: cli.cacert.clone(),
    };
    let target = config::resolve(&cfg, &ov, &EnvValues::from_env())?;
    let ctx = Ctx::new(target, cli.no_cache, cli.passphrase_file.clone())?;
    let result = dispatch(&ctx, cli.cmd, cli.json).await;
    // A connection refused over a certificate that is not the pinned one
    // is said as loudly as a changed server key.
    if let Err(ClientError::Connect { .. }) = &result {
        if let Some(e) = ctx.pinning.as_ref().and_then(|p| p.changed()) {
            return Err(e);
        }
    }
    result
}

async fn dispatch(ctx: &Ctx, cmd: Cmd, json: bool) -> Result<i32, ClientError> {
    match cmd {
        Cmd::Info => cmd::info::run(ctx).await,
        Cmd::Exec(a) => cmd::exec::run(ctx, a).await,
        Cmd::Shell(a) => cmd::shell::run(ctx, a).await,
        Cmd::Tail(a) => cmd::tail::run(ctx, a).await,
        Cmd::Get(a) => cmd::get::run(ctx, a).await,
        Cmd::Ls(a) => cmd::ls::run(ctx, a, json).await,
        Cmd::Put(a) => cmd::put::run(ctx, a).await,
        Cmd::Config(a) => cmd::config::run(ctx, a).await,
        Cmd::Logout => cmd::logout::run(ctx).await,
        Cmd::Open(a) => cmd::open::run_open(ctx, a).await,
        Cmd::Close(a) => cmd::open::run_close(ctx, a).await,
        Cmd::Grants => cmd::open::run_grants(ctx).await,
        Cmd::Profiles => cmd::open::run_profiles(ctx, json).await,
        Cmd::Admin(a) => cmd::admin::run(ctx, a, json).await,
        Cmd::Keygen(_) | Cmd::Ca { .. } => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn host_is_the_first_positional_that_is_not_a_command() {
        let (a, h) = split_host(v(&["remo", "web1", "exec", "ls", "-l"]));
        assert_eq!(
            (a, h.as_deref()),
            (v(&["remo", "exec", "ls", "-l"]), Some("web1"))
        );
        let (a, h) = split_host(v(&["remo", "-l", "bob", "http://x/r", "info"]));
        assert_eq!(
            (a, h.as_deref()),
            (v(&["remo", "-l", "bob", "info"]), Some("http://x/r"))
        );
        let (_, h) = split_host(v(&["remo", "--server", "http://x", "exec", "web1"]));
        assert_eq!(h, None);
        let (_, h) = split_host(v(&["remo", "--no-cache", "exec", "x"]));
        assert_eq!(h, None);
    }

    #[test]
    fn exec_dash_i_is_interactive_only_right_after_exec() {
        let r = rewrite_exec_i(v(&["remo", "exec", "-i", "cat", "-i"]));
        assert_eq!(r, v(&["remo", "exec", "--interactive", "cat", "-i"]));
        let r = rewrite_exec_i(v(&["remo", "-i", "k", "exec", "--cwd", "/", "-i", "x"]));
        assert_eq!(
            r,
            v(&[
                "remo",
                "-i",
                "k",
                "exec",
                "--cwd",
                "/",
                "--interactive",
                "x"
            ])
        );
        let r = rewrite_exec_i(v(&["remo", "exec", "--sh", "-i", "x"]));
        assert_eq!(r, v(&["remo", "exec", "--sh", "-i", "x"]));
        let r = rewrite_exec_i(v(&["remo", "exec", "cat", "-i"]));
        assert_eq!(r, v(&["remo", "exec", "cat", "-i"]));
        let r = rewrite_exec_i(v(&["remo", "get", "exec", "-i"]));
        assert_eq!(r, v(&["remo", "get", "exec", "-i"]));
        let cli = Cli::try_parse_from(rewrite_exec_i(v(&["remo", "exec", "-i", "cat"]))).unwrap();
        match cli.cmd {
            Cmd::Exec(e) => assert!(e.interactive && e.command == v(&["cat"])),
            _ => panic!(),
        }
    }

    #[test]
    fn ls_dash_l_is_long_after_ls() {
        let r = rewrite_ls_flags(v(&["remo", "-l", "bob", "ls", "-la", "/srv", "-a"]));
        assert_eq!(
            r,
            v(&["remo", "-l", "bob", "ls", "--long", "--all", "/srv", "--all"])
        );
        let r = rewrite_ls_flags(v(&["remo", "ls", "--key", "-l", "-l", "--", "-l"]));
        assert_eq!(r, v(&["remo", "ls", "--key", "-l", "--long", "--", "-l"]));
        // `ls` as a value or an argument is not the command.
        let r = rewrite_ls_flags(v(&["remo", "exec", "ls", "-l"]));
        assert_eq!(r, v(&["remo", "exec", "ls", "-l"]));
        let r = rewrite_ls_flags(v(&["remo", "--user", "ls", "info", "-l"]));
        assert_eq!(r, v(&["remo", "--user", "ls", "info", "-l"]));
        let cli = Cli::try_parse_from(rewrite_ls_flags(v(&["remo", "ls", "-al", "x"]))).unwrap();
        match cli.cmd {
            Cmd::Ls(a) => assert!(a.long && a.all && a.path == "x"),
            _ => panic!(),
        }
        let cli = Cli::try_parse_from(v(&["remo", "ls", "--json"])).unwrap();
        match cli.cmd {
            Cmd::Ls(a) => assert!(cli.json && !a.long && a.path == "."),
            _ => panic!(),
        }
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let (a, _) = split_host(v(&["remo", "web1", "exec", "ls", "-la", "--x"]));
        let cli = Cli::try_parse_from(a).unwrap();
        match cli.cmd {
            Cmd::Exec(e) => assert_eq!(e.command, v(&["ls", "-la", "--x"])),
            _ => panic!(),
        }
    }
}
