//! `remod serve`: options, the quick-start data directory, logging, the
//! choice of front door, and an orderly shutdown.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use log::{error, info};

use crate::keyfile;
use crate::proto::identity::IdentityKey;
use crate::server::core::config::{Defaults, InstanceKey};
use crate::server::core::instance::DEFAULT_MAX_INSTANCES;
use crate::server::core::request::Params;
use crate::server::core::router::Router;
use crate::server::core::router::{
    RouterLimits, DEFAULT_AUTH_TIMEOUT, DEFAULT_MAX_UNAUTHENTICATED,
};
use crate::server::door::fcgi::{FcgiLimits, DEFAULT_REQUEST_TIMEOUT};
use crate::server::door::http::HttpLimits;
use crate::server::door::listen::{Listener, UnixOptions};
use crate::userdb::UserDb;

/// Arguments of `remod serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Serve the embedded HTTP/1.1 front door on ADDR (e.g. 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR", conflicts_with = "fcgi")]
    pub http: Option<String>,
    /// Serve FastCGI on unix:PATH or HOST:PORT. Without --http or --fcgi,
    /// remod serves a socket inherited from systemd (LISTEN_FDS) or from
    /// mod_fcgid (fd 0).
    #[arg(long, value_name = "SPEC")]
    pub fcgi: Option<String>,
    /// Mode of the FastCGI unix socket, octal.
    #[arg(long, value_name = "OCTAL", default_value = "0660")]
    pub socket_mode: String,
    /// Group of the FastCGI unix socket (so the web server's user can connect).
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,
    /// Data directory: DIR/server.key, DIR/users.db and, if present,
    /// DIR/remo.toml. Created on first run with a first user whose client
    /// key is written to DIR/client/.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Name of the first user created with a new --dir.
    #[arg(long, value_name = "NAME", default_value = "admin")]
    pub first_user: String,
    /// Server private key (default for requests without REMO_KEY_FILE).
    #[arg(long, env = "REMO_KEY_FILE", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// User database (default for requests without REMO_USER_DB).
    #[arg(long, env = "REMO_USER_DB", value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Limits and features file, TOML (default for requests without REMO_CONFIG).
    #[arg(long, env = "REMO_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Trusted certificate authorities: a PEM file of one or more CA
    /// public keys (default for requests without REMO_CA_KEYS; also
    /// `[certificates] ca_keys`). See docs/fleet.md.
    #[arg(long, env = "REMO_CA_KEYS", value_name = "FILE")]
    pub ca_keys: Option<PathBuf>,
    /// The certificate revocation list, re-read when it changes (default
    /// for requests without REMO_REVOKED; may be missing: nothing revoked).
    #[arg(long, env = "REMO_REVOKED", value_name = "FILE")]
    pub revoked: Option<PathBuf>,
    /// This server's name for certificates' `hosts` patterns (default for
    /// requests without REMO_SERVER_NAME; default: the host name).
    #[arg(long, env = "REMO_SERVER_NAME", value_name = "NAME")]
    pub server_name: Option<String>,
    /// The control socket `remod status` and `remod session end` use
    /// (mode 0600; root or remod's user only). Default: DIR/control.sock
    /// with --dir, else /run/remod/control.sock. `none`: no control socket.
    #[arg(long, env = "REMO_CONTROL", value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Also send every audit row to syslog (the local datagram socket
    /// PATH, default /dev/log; facility authpriv), for the site's log
    /// pipeline. The audit database is still written.
    #[arg(long, env = "REMO_AUDIT_SYSLOG", value_name = "PATH", num_args = 0..=1,
          default_missing_value = "/dev/log")]
    pub audit_syslog: Option<PathBuf>,
    /// Serve Prometheus metrics at /metrics on ADDR: a loopback IP:PORT or
    /// unix:PATH (default: none). Never on the front door.
    #[arg(long, env = "REMO_METRICS", value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Session idle timeout in seconds.
    #[arg(long, env = "REMO_SESSION_TIMEOUT", value_name = "SECS")]
    pub session_timeout: Option<String>,
    /// Mount prefix, e.g. /remo. With --http remod answers only under it
    /// (default /) and 404 elsewhere; for FastCGI it is the default for
    /// requests without a REMO_BASE param (none: the operation is the last
    /// path segment).
    #[arg(long, env = "REMO_BASE", value_name = "PREFIX")]
    pub base: Option<String>,
    /// Most instances (distinct key, user database, config file and session
    /// timeout settings) one daemon serves; a request for a new one past
    /// this gets 500.
    #[arg(long, env = "REMO_MAX_INSTANCES", value_name = "N", default_value_t = DEFAULT_MAX_INSTANCES as u64,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub max_instances: u64,
    /// Serve FastCGI on a TCP address other hosts can reach. DANGEROUS:
    /// whoever can connect to the FastCGI listener chooses remod's settings
    /// through params; see docs/security.md.
    #[arg(long)]
    pub fcgi_allow_remote: bool,
    /// Connections each front door serves at once (clamped so that a
    /// reserve of descriptors stays for commands and files). When full, a
    /// new connection evicts the oldest idle one.
    #[arg(long, env = "REMO_MAX_CONNECTIONS", value_name = "N", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// `/auth` requests in progress at once; when full, a new one evicts the
    /// oldest (a slow or endless body cannot lock logins out).
    #[arg(long, env = "REMO_MAX_UNAUTHENTICATED", value_name = "N", default_value_t = DEFAULT_MAX_UNAUTHENTICATED as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_unauthenticated: u64,
    /// Longest an `/auth` request may take, body included, in seconds.
    #[arg(long, env = "REMO_AUTH_TIMEOUT", value_name = "SECS", default_value_t = DEFAULT_AUTH_TIMEOUT,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub auth_timeout: u64,
    /// Longest a connection may take to send a request's head (HTTP) or
    /// params (FastCGI), counted from its start or its previous request, in
    /// seconds; also the idle time of a kept-alive connection.
    #[arg(long, env = "REMO_REQUEST_TIMEOUT", value_name = "SECS", default_value_t = DEFAULT_REQUEST_TIMEOUT,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout: u64,
    /// On SIGTERM or SIGINT, how long running requests may take to finish
    /// before their sessions and processes are ended, in seconds.
    #[arg(
        long,
        env = "REMO_SHUTDOWN_GRACE",
        value_name = "SECS",
        default_value_t = 10
    )]
    pub shutdown_grace: u64,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    /// Bad options.
    #[error("{0}")]
    Usage(String),
    /// Setting up the data directory failed.
    #[error("{0}")]
    Setup(String),
    /// The listening socket could not be set up.
    #[error("{0}")]
    Listen(String),
}

/// Creates a quick-start data directory on first run; returns whether it did.
pub(crate) fn bootstrap_dir(dir: &Path, first_user: &str) -> Result<bool, ServeError> {
    let key_path = dir.join("server.key");
    let db_path = dir.join("users.db");
    if key_path.exists() || db_path.exists() {
        return Ok(false);
    }
    if !crate::proto::identity::valid_user_name(first_user) {
        return Err(ServeError::Usage(format!(
            "--first-user {first_user:?} is not a valid user name"
        )));
    }
    let setup = |what: &str, e: &dyn std::fmt::Display| ServeError::Setup(format!("{what}: {e}"));
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir.join("client"))
        .map_err(|e| setup(&dir.display().to_string(), &e))?;
    let server = IdentityKey::generate();
    keyfile::write_private_key(&key_path, &server, None, false)
        .map_err(|e| setup("server key", &e))?;
    keyfile::write_public_key(&dir.join("server.pub"), &server.public(), false)
        .map_err(|e| setup("server key", &e))?;
    let user = IdentityKey::generate();
    let ukey = dir.join("client").join(format!("{first_user}.key"));
    keyfile::write_private_key(&ukey, &user, None, false).map_err(|e| setup("client key", &e))?;
    keyfile::write_public_key(
        &dir.join("client").join(format!("{first_user}.key.pub")),
        &user.public(),
        false,
    )
    .map_err(|e| setup("client key", &e))?;
    let mut db = UserDb::create(&db_path).map_err(|e| setup("user database", &e))?;
    db.add_user(first_user, &user.public())
        .map_err(|e| setup("user database", &e))?;
    db.add_permission(first_user, "admin")
        .map_err(|e| setup("user database", &e))?;
    eprintln!("remod: created {} (first run)", dir.display());
    eprintln!(
        "  user {first_user:?} (permission: admin) with client key {}",
        ukey.display()
    );
    Ok(true)
}

fn init_logging() {
    let env = env_logger::Env::default().default_filter_or("info");
    let mut b = env_logger::Builder::from_env(env);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        // Under systemd, stderr goes to the journal, which stamps each
        // line itself: no second timestamp, and the level as the
        // `<N>` prefix journald reads as the priority (sd-daemon(3)).
        b.format(|buf, r| {
            use std::io::Write;
            writeln!(buf, "<{}>{}", journal_priority(r.level()), r.args())
        });
    } else {
        b.format_timestamp_millis().format_target(false);
    }
    let _ = b.try_init();
}

/// The syslog priority of a log level (sd-daemon(3)).
fn journal_priority(l: log::Level) -> u8 {
    match l {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

fn defaults_from(a: &ServeArgs) -> Defaults {
    // The daemon's own flags and environment may name files relative to
    // its working directory (`--dir ./remo-data`); they are made absolute
    // once here. Paths from FastCGI params must be absolute (server::trust).
    let abs = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    let dir = a.dir.as_ref().map(abs);
    let from_dir = |name: &str| dir.as_ref().map(|d| d.join(name));
    // DIR/remo.toml may come later: named even while missing, so that a
    // reload (SIGHUP) picks it up without changing the instance.
    let dir_config = from_dir("remo.toml");
    Defaults {
        instance: InstanceKey {
            key_file: a.key.as_ref().map(abs).or_else(|| from_dir("server.key")),
            user_db: a.db.as_ref().map(abs).or_else(|| from_dir("users.db")),
            config_optional: a.config.is_none() && dir_config.is_some(),
            config: a.config.as_ref().map(abs).or(dir_config),
            session_timeout: a.session_timeout.clone(),
            certs: crate::server::core::config::CertSettings {
                ca_keys: a.ca_keys.as_ref().map(abs),
                revoked: a.revoked.as_ref().map(abs),
                server_name: a.server_name.clone(),
            },
            cert_table: Default::default(),
            refused_param: None,
        },
        // The embedded door is the whole server: it answers exactly under
        // its prefix, so one server has one URL (a second URL would pin a
        // second known-servers entry for the same key).
        base: a
            .base
            .clone()
            .or_else(|| a.http.as_ref().map(|_| "/".to_string())),
    }
}

/// Runs the server; returns the exit code.
pub fn run_serve(a: ServeArgs) -> i32 {
    init_logging();
    match serve(a) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("remod: {e}");
            1
        }
    }
}

fn serve(a: ServeArgs) -> Result<(), ServeError> {
    if let Some(p) = &a.audit_syslog {
        crate::audit::send_to_syslog(p.clone());
        info!("audit rows also go to syslog at {}", p.display());
    }
    if let Some(dir) = &a.dir {
        bootstrap_dir(dir, &a.first_user)?;
    }
    let defaults = defaults_from(&a);
    if let Some(cfg) = &defaults.instance.config {
        crate::firewall::backend::install_guard_at_start(cfg)
            .map_err(|e| ServeError::Setup(e.to_string()))?;
    }
    let mode = u32::from_str_radix(a.socket_mode.trim_start_matches("0o"), 8).map_err(|_| {
        ServeError::Usage(format!("--socket-mode {:?} is not octal", a.socket_mode))
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ServeError::Setup(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let router = Router::with_limits(
            defaults.clone(),
            RouterLimits {
                max_instances: to_usize(a.max_instances),
                max_unauthenticated: to_usize(a.max_unauthenticated),
                auth_timeout: Duration::from_secs(a.auth_timeout),
            },
        );
        let max_conns = connection_cap(to_usize(a.max_connections));
        let request_timeout = Duration::from_secs(a.request_timeout);
        log_trust(&defaults, a.max_instances);
        let containment = crate::server::enforce::contain::init_daemon();
        router.spawn_reaper();
        let control = match &a.control {
            Some(p) if p.as_os_str() == "none" => None,
            Some(p) => Some(std::path::absolute(p).unwrap_or_else(|_| p.clone())),
            None => Some(crate::server::control::default_path(
                a.dir
                    .as_ref()
                    .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone()))
                    .as_deref(),
            )),
        };
        if let Some(path) = &control {
            match crate::server::control::bind(path) {
                Ok(l) => {
                    info!(
                        "control socket {} (remod status, remod session end)",
                        path.display()
                    );
                    crate::server::control::spawn(l, router.clone());
                }
                Err(e) => log::warn!("{e}; remod status will not reach this remod"),
            }
        }
        if let Some(m) = &a.metrics {
            let addr = crate::server::metrics::parse_addr(m).map_err(ServeError::Usage)?;
            let l = crate::server::metrics::listen(&addr)
                .await
                .map_err(ServeError::Listen)?;
            info!("metrics at {m} (GET /metrics)");
            tokio::spawn(crate::server::metrics::serve(l, router.clone()));
        }
        // Before listening: a SIGHUP once clients can connect must reload,
        // not end remod (the default action).
        spawn_reload_on_hangup(router.clone());
        let handler: Arc<dyn crate::server::core::request::Handler> = router.clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let stopped = async move {
            let _ = stop_rx.await;
        };
        let mut socket_file = None;
        let mut server = if let Some(addr) = &a.http {
            // The embedded front door has no params of its own: check the
            // configuration now so a mistake is reported at start, not per request.
            let inst = router
                .registry()
                .get(&defaults.instance)
                .map_err(|e| ServeError::Setup(e.to_string()))?;
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| ServeError::Listen(format!("cannot listen on {addr}: {e}")))?;
            let local = l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| addr.clone());
            info!(
                "remod {} serving HTTP on {local}",
                env!("CARGO_PKG_VERSION")
            );
            // On every start, not only the first: the fingerprint to compare
            // with what a client pins, and the exact command to try.
            eprintln!(
                "remod: server key fingerprint: {}",
                inst.public.fingerprint()
            );
            let client_key = a.dir.as_ref().map(|d| {
                std::path::absolute(d)
                    .unwrap_or_else(|_| d.clone())
                    .join("client")
                    .join(format!("{}.key", a.first_user))
            });
            if let Some(key) = client_key.filter(|k| k.exists()) {
                let base = defaults
                    .base
                    .as_deref()
                    .unwrap_or("/")
                    .trim_end_matches('/');
                eprintln!(
                    "remod: try: remo --server http://{local}{base} --user {} --key {} info",
                    a.first_user,
                    key.display()
                );
            }
            drop(inst);
            let limits = HttpLimits {
                max_conns,
                request_timeout,
            };
            tokio::spawn(crate::server::door::http::serve_with(
                l,
                handler,
                Params::new(),
                limits,
                stopped,
            ))
        } else {
            let listener = match &a.fcgi {
                Some(spec) => {
                    let opts = UnixOptions {
                        mode,
                        group: a.socket_group.clone(),
                    };
                    Listener::bind(spec, &opts).map_err(|e| ServeError::Listen(e.to_string()))?
                }
                None => inherited_listener()?,
            };
            if let Some(addr) = listener.reachable_from_network() {
                if !a.fcgi_allow_remote {
                    return Err(ServeError::Usage(format!(
                        "refusing to serve FastCGI on {addr}, which other hosts can reach: \
                         whoever connects sets remod's params; use unix:PATH or a loopback \
                         address, or --fcgi-allow-remote if the network is yours alone \
                         (see docs/security.md)"
                    )));
                }
                log::warn!(
                    "serving FastCGI on {addr}, reachable from the network (--fcgi-allow-remote): \
                     every host that can connect chooses remod's params"
                );
            }
            info!("remod {} serving FastCGI", env!("CARGO_PKG_VERSION"));
            // Only a socket remod bound itself is its to remove.
            if a.fcgi.as_deref().is_some_and(|s| s.starts_with("unix:")) {
                socket_file = listener.unix_file();
            }
            let limits = FcgiLimits {
                max_conns: u32::try_from(max_conns).unwrap_or(u32::MAX),
                request_timeout,
                ..FcgiLimits::default()
            };
            tokio::spawn(crate::server::door::fcgi::serve_until(
                listener, handler, limits, stopped,
            ))
        };
        shutdown_signal().await;
        // Stop accepting; running requests may finish within the grace time.
        let grace = Duration::from_secs(a.shutdown_grace);
        info!(
            "shutting down: no new connections; waiting up to {} s for running requests",
            a.shutdown_grace
        );
        let _ = stop_tx.send(());
        if let Some((path, id)) = &socket_file {
            remove_socket(path, *id);
        }
        let drained = tokio::time::timeout(grace, &mut server).await.is_ok();
        if !drained {
            log::warn!(
                "shutting down: requests still running after {} s are ended",
                a.shutdown_grace
            );
        }
        // Ending the sessions kills their commands and interactive processes.
        let n = router.registry().end_all();
        // And whatever is left in remod's containers (cgroup or tracked).
        let _ = tokio::task::spawn_blocking(move || containment.shutdown()).await;
        info!("shutting down: ended {n} session(s) and their processes");
        if !drained {
            // Responses of killed commands close as their processes die.
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut server).await;
            server.abort();
        }
        // The audit writer commits in groups: wait for the last one, so
        // exiting does not drop the rows of the final few milliseconds.
        let instances = router.registry().all();
        let _ = tokio::task::spawn_blocking(move || {
            for i in instances {
                i.audit.flush();
            }
        })
        .await;
        Ok::<(), ServeError>(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// Descriptors kept for commands (pipes), files, SQLite and the logs, out
/// of reach of connections.
const FD_RESERVE: u64 = 1024;

/// Raises the soft descriptor limit to the hard one, and clamps the
/// connection cap so that [`FD_RESERVE`] descriptors stay free: running out
/// of descriptors fails logged-in users' commands, not only new connections.
fn connection_cap(wanted: usize) -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
    let soft = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    let room = if soft > 2 * FD_RESERVE {
        soft - FD_RESERVE
    } else {
        soft / 2
    };
    let room = usize::try_from(room).unwrap_or(usize::MAX).max(1);
    if wanted > room {
        log::warn!(
            "--max-connections {wanted} lowered to {room}: the descriptor limit is {soft} \
             and {} are kept for commands and files",
            soft.saturating_sub(u64::try_from(room).unwrap_or(0))
        );
        room
    } else {
        info!("descriptor limit {soft}; at most {wanted} connections per front door");
        wanted
    }
}

/// Removes the unix socket remod bound, if the path still names that very
/// socket (not one a newer remod bound in the meantime).
fn remove_socket(path: &Path, id: (u64, u64)) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_socket() && (md.dev(), md.ino()) == id => {
            if let Err(e) = std::fs::remove_file(path) {
                log::warn!("cannot remove {}: {e}", path.display());
            }
        }
        _ => {}
    }
}

/// Says at start which files remod trusts and why, before any request.
fn log_trust(defaults: &Defaults, max: u64) {
    let own = nix::unistd::geteuid();
    info!(
        "trust: a file named by a param or setting is used only if it and every directory \
         above it are owned by root or uid {own} and not writable by group or others \
         (a root-owned sticky directory such as /tmp is allowed on the way); at most {max} instances"
    );
    let d = &defaults.instance;
    if d.key_file.is_none() && d.user_db.is_none() {
        info!("trust: no default key or user database; every instance comes from FastCGI params");
        return;
    }
    match crate::server::core::instance::Resolved::check(d) {
        Ok((resolved, why)) => {
            for w in why {
                info!("trust: default {w}");
            }
            if let Ok(key) = crate::server::core::instance::load_server_key(&resolved.key_file) {
                info!(
                    "server key fingerprint (default key): {}",
                    key.public().fingerprint()
                );
            }
        }
        Err(e) => log::warn!("trust: the default settings will be refused: {e}"),
    }
}

/// The socket systemd (LISTEN_FDS) or mod_fcgid (fd 0) handed us.
fn inherited_listener() -> Result<Listener, ServeError> {
    match Listener::from_systemd() {
        Ok(Some(l)) => return Ok(l),
        Ok(None) => {}
        Err(e) => return Err(ServeError::Listen(e.to_string())),
    }
    Listener::from_fd0().map_err(|e| {
        ServeError::Usage(format!(
            "give --http ADDR or --fcgi unix:PATH|HOST:PORT (no socket was inherited from systemd or mod_fcgid: {e})"
        ))
    })
}

/// SIGHUP (`systemctl reload remod`) reads the loaded instances' config
/// files again; see [`crate::server::core::instance::Registry::reload`].
fn spawn_reload_on_hangup(router: Arc<Router>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        log::warn!("cannot install the SIGHUP handler: configuration changes need a restart");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            info!("SIGHUP: reading the configuration files again");
            let r = router.clone();
            let n = tokio::task::spawn_blocking(move || r.registry().reload())
                .await
                .unwrap_or(0);
            info!("reload done: {n} instance(s) changed");
        }
    });
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot install signal handlers; stop remod with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
