//! The control socket: how `remod status` and `remod session end` reach a
//! running remod. A unix socket, mode 0600 in a directory only root (or
//! remod's user) can enter, and every peer's uid checked again (root or
//! remod's own); one JSON request line, one JSON answer line.
//!
//! Sessions are named by their tag (a hash of the id, as in the audit), so
//! the status never shows a session id.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::audit::session_tag;
use crate::server::core::instance::{Instance, Registry};

/// Longest request line.
const MAX_REQUEST: u64 = 4096;
/// How long a peer may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What a control client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlRequest {
    /// Everything live (a struct variant, so unknown fields are refused).
    Status {},
    /// End one session (by tag) or every session of a user.
    End {
        /// A session tag from the status.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        /// A user name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
}

pub use crate::ops::admin::{ProcessStatus, SessionStatus};

/// One firewall grant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantStatus {
    /// The profile.
    pub profile: String,
    /// The granted address.
    pub ip: String,
    /// Who opened it.
    pub user: String,
    /// Seconds left.
    pub expires_in: u64,
}

/// One instance and what lives in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// Its server key.
    pub key_file: String,
    /// Its user database.
    pub user_db: String,
    /// Its config file.
    pub config: Option<String>,
    /// The session idle timeout, seconds.
    pub session_timeout: u64,
    /// Certificate trust, in a line.
    pub certificates: String,
    /// The `[limits]` in force (defaults filled in).
    pub limits: serde_json::Value,
    /// Live sessions.
    pub sessions: Vec<SessionStatus>,
    /// Interactive processes.
    pub processes: Vec<ProcessStatus>,
    /// Firewall grants (empty without `[firewall]`).
    pub grants: Vec<GrantStatus>,
    /// Why the grants could not be listed, if so.
    pub grants_error: Option<String>,
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ControlAnswer {
    /// `status`.
    Status {
        /// Every loaded instance.
        instances: Vec<InstanceStatus>,
    },
    /// `end`: how many sessions ended.
    Ended {
        /// How many.
        ended: usize,
    },
    /// A refused request.
    Error {
        /// Why.
        error: String,
    },
}

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ControlError {
    /// Its directory or the socket.
    #[error("control socket {path}: {why}")]
    Setup {
        /// The socket's path.
        path: PathBuf,
        /// What failed.
        why: String,
    },
}

/// Where the control socket is: `--control`, else `DIR/control.sock` with
/// `--dir`, else `/run/remod/control.sock`.
pub fn default_path(dir: Option<&Path>) -> PathBuf {
    match dir {
        Some(d) => d.join("control.sock"),
        None => PathBuf::from("/run/remod/control.sock"),
    }
}

/// Binds the socket (its directory made 0700 if missing; a stale socket
/// replaced) with mode 0600. The directory, and every one above it, must
/// be root's (or remod's) and not writable by others: in a directory
/// another user controls, they could put their own socket in the place of
/// this one (and answer `remod status`), or a symlink for remod to follow.
pub(crate) fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
    // Relative to remod's working directory (`--metrics unix:m.sock`).
    let path = &std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let err = |why: String| ControlError::Setup {
        path: path.to_path_buf(),
        why,
    };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(err("not a file path".into()));
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| err(format!("cannot create its directory: {e}")))?;
    }
    let dir = crate::server::enforce::trust::check_dir(dir)
        .map_err(|e| err(format!("its directory is not safe: {e}")))?;
    let path = &dir.join(name);
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_socket() => std::fs::remove_file(path)
            .map_err(|e| err(format!("cannot remove the old one: {e}")))?,
        Ok(_) => return Err(err("exists and is not a socket".into())),
        Err(_) => {}
    }
    // Made 0600 from the start: no moment where another user could connect.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let l = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    l.map_err(|e| err(e.to_string()))
}

/// Serves the control socket until the runtime ends.
pub(crate) fn spawn(listener: UnixListener, registry: Arc<crate::server::core::router::Router>) {
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let router = registry.clone();
            tokio::spawn(async move {
                let _ = serve_one(stream, router.registry()).await;
            });
        }
    });
}

async fn serve_one(stream: UnixStream, registry: &Registry) -> std::io::Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    let uid = stream.peer_cred()?.uid();
    let (r, mut w) = stream.into_split();
    if uid != 0 && uid != me {
        log::warn!("control socket: refused a peer with uid {uid}");
        return Ok(());
    }
    let mut line = String::new();
    let read = tokio::time::timeout(
        REQUEST_TIMEOUT,
        tokio::io::AsyncReadExt::take(BufReader::new(r), MAX_REQUEST).read_line(&mut line),
    )
    .await;
    let answer = match read {
        Ok(Ok(_)) => match serde_json::from_str::<ControlRequest>(&line) {
            Ok(req) => answer(req, registry).await,
            Err(e) => ControlAnswer::Error {
                error: format!("bad request: {e}"),
            },
        },
        _ => ControlAnswer::Error {
            error: "no request line in time".into(),
        },
    };
    let mut out = serde_json::to_vec(&answer).unwrap_or_default();
    out.push(b'\n');
    w.write_all(&out).await
}

async fn answer(req: ControlRequest, registry: &Registry) -> ControlAnswer {
    match req {
        ControlRequest::Status {} => ControlAnswer::Status {
            instances: status(registry).await,
        },
        ControlRequest::End { session, user } => {
            let mut ended = 0;
            for (_, inst) in registry.entries() {
                ended += end_sessions(&inst, |tag, u| {
                    session.as_deref() == Some(tag) || user.as_deref() == Some(u)
                });
            }
            ControlAnswer::Ended { ended }
        }
    }
}

/// Ends every session of `inst` for which `hit(tag, user)` holds, with its
/// commands and processes; returns how many ended (`remod session end`
/// and the `admin` operation's `end`).
pub(crate) fn end_sessions(inst: &Instance, hit: impl Fn(&str, &str) -> bool) -> usize {
    let mut ended = 0;
    for s in inst.sessions.all() {
        let tag = session_tag(&s.id);
        if hit(&tag, &s.user) && inst.sessions.end(&s.id).is_some() {
            log::warn!("ended session {tag} of {} and its processes", s.user);
            ended += 1;
        }
    }
    ended
}

/// The live sessions of `inst` (oldest first) and its interactive
/// processes, as `remod status` and the `admin` operation show them.
pub(crate) fn sessions_of(inst: &Instance) -> (Vec<SessionStatus>, Vec<ProcessStatus>) {
    let sessions = inst.sessions.all();
    let user_of = |sid: &str| {
        sessions
            .iter()
            .find(|s| s.id == sid)
            .map(|s| s.user.clone())
            .unwrap_or_else(|| "-".into())
    };
    let processes = inst
        .procs
        .list()
        .into_iter()
        .map(|(id, sid, pty)| ProcessStatus {
            id,
            user: user_of(&sid),
            session: session_tag(&sid),
            pty,
        })
        .collect();
    let mut s: Vec<SessionStatus> = sessions
        .iter()
        .map(|s| SessionStatus {
            id: session_tag(&s.id),
            user: s.user.clone(),
            remote: s.remote().to_string(),
            since: s.created_unix,
            idle_secs: s.idle().as_secs(),
            cert: s.cert.as_ref().map(|c| c.label()),
            yours: false,
        })
        .collect();
    s.sort_by(|a, b| (a.since, &a.user, &a.id).cmp(&(b.since, &b.user, &b.id)));
    (s, processes)
}

async fn status(registry: &Registry) -> Vec<InstanceStatus> {
    let mut out = Vec::new();
    for (resolved, inst) in registry.entries() {
        let (s, processes) = sessions_of(&inst);
        let (grants, grants_error) = match inst.firewall.clone() {
            None => (Vec::new(), None),
            Some(fw) => {
                let listed = tokio::task::spawn_blocking(move || {
                    crate::firewall::backend::Nft::new(&fw).ledger()
                })
                .await;
                match listed {
                    Ok(Ok(v)) => (
                        v.into_iter()
                            .map(|o| GrantStatus {
                                profile: o.profile,
                                ip: o.ip.to_string(),
                                user: o.user,
                                expires_in: o.expires_in,
                            })
                            .collect(),
                        None,
                    ),
                    Ok(Err(e)) => (Vec::new(), Some(e.to_string())),
                    Err(e) => (Vec::new(), Some(e.to_string())),
                }
            }
        };
        out.push(InstanceStatus {
            key_file: resolved.key_file.display().to_string(),
            user_db: resolved.user_db.display().to_string(),
            config: resolved.config.as_ref().map(|c| c.display().to_string()),
            session_timeout: resolved.timeout,
            certificates: inst.certs.describe(),
            limits: serde_json::to_value(&inst.limits).unwrap_or_default(),
            sessions: s,
            processes,
            grants,
            grants_error,
        });
    }
    out
}

/// Sends one request to the control socket at `path` and reads the answer
/// (the `remod status` / `remod session end` side).
pub fn ask(path: &Path, req: &ControlRequest) -> Result<ControlAnswer, String> {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
        format!(
            "cannot reach remod's control socket {}: {e} (is remod running, and are you root? --control PATH names another socket)",
            path.display()
        )
    })?;
    // Only root's or our own remod: in a directory others could write, the
    // socket might be someone else's, who must not get the request nor
    // answer it.
    let peer = nix::sys::socket::getsockopt(&s, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| format!("{}: cannot tell who serves it: {e}", path.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if peer.uid() != 0 && peer.uid() != me {
        return Err(format!(
            "{} is served by uid {}, not by root or you: not remod's; not asking it (a remod that runs as another user: ask as that user)",
            path.display(),
            peer.uid()
        ));
    }
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut line = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    line.push(b'\n');
    s.write_all(&line).map_err(|e| e.to_string())?;
    let mut answer = String::new();
    std::io::BufReader::new(s.take_limited())
        .read_line(&mut answer)
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&answer).map_err(|e| format!("bad answer from remod: {e}"))
}

/// A reader that stops after 64 MiB (a status of many sessions is large,
/// but not endless).
trait TakeLimited: std::io::Read + Sized {
    fn take_limited(self) -> std::io::Take<Self> {
        self.take(64 << 20)
    }
}

impl<R: std::io::Read> TakeLimited for R {}

/// Where `remod status` finds the socket.
#[derive(Debug, clap::Args)]
pub struct ControlTarget {
    /// The control socket (as `remod serve --control`).
    #[arg(
        long,
        env = "REMO_CONTROL",
        value_name = "PATH",
        conflicts_with = "dir"
    )]
    pub control: Option<PathBuf>,
    /// The data directory of a `remod serve --dir DIR` (its control.sock).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

impl ControlTarget {
    fn path(&self) -> PathBuf {
        self.control
            .clone()
            .unwrap_or_else(|| default_path(self.dir.as_deref()))
    }
}

/// Arguments of `remod status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    target: ControlTarget,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// Arguments of `remod session`.
#[derive(Debug, clap::Args)]
pub struct SessionArgs {
    #[command(subcommand)]
    cmd: SessionCmd,
}

#[derive(Debug, clap::Subcommand)]
enum SessionCmd {
    /// End a session (its ID from `remod status`) or every session of a
    /// user, with their commands and processes.
    End {
        /// The session's ID. IDs are base64url and may begin with `-`.
        #[arg(
            required_unless_present = "user",
            conflicts_with = "user",
            allow_hyphen_values = true
        )]
        id: Option<String>,
        /// Every session of this user.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        #[command(flatten)]
        target: ControlTarget,
    },
}

fn ago(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

/// The status as text: per instance, its settings, then sessions,
/// processes and grants.
pub fn status_text(instances: &[InstanceStatus], now: i64) -> String {
    let mut out = String::new();
    if instances.is_empty() {
        out.push_str("no instance loaded yet (each loads on its first request)\n");
    }
    for i in instances {
        out.push_str(&format!(
            "instance {} (users {}, config {}, session timeout {} s)\n  {}\n",
            i.key_file,
            i.user_db,
            i.config.as_deref().unwrap_or("none"),
            i.session_timeout,
            i.certificates
        ));
        let limit = |k: &str| i.limits.get(k).map(|v| v.to_string()).unwrap_or_default();
        out.push_str(&format!(
            "  limits: {} sessions ({} per user), {} commands, {} interactive processes (all: remod status --json)\n",
            limit("max_sessions"),
            limit("max_sessions_per_user"),
            limit("max_commands"),
            limit("max_processes")
        ));
        out.push_str(&format!("  sessions: {}\n", i.sessions.len()));
        if !i.sessions.is_empty() {
            out.push_str(
                "    ID        USER         FROM              SINCE     IDLE      CERTIFICATE\n",
            );
        }
        for s in &i.sessions {
            out.push_str(&format!(
                "    {:<9} {:<12} {:<17} {:<9} {:<9} {}\n",
                s.id,
                s.user,
                s.remote,
                ago(now.saturating_sub(s.since).unsigned_abs()),
                ago(s.idle_secs),
                s.cert.as_deref().unwrap_or("-")
            ));
        }
        out.push_str(&format!("  interactive processes: {}\n", i.processes.len()));
        for p in &i.processes {
            out.push_str(&format!(
                "    {:<12} session {:<9} {:<12} {}\n",
                p.id,
                p.session,
                p.user,
                if p.pty { "terminal" } else { "pipes" }
            ));
        }
        match &i.grants_error {
            Some(e) => out.push_str(&format!("  firewall grants: cannot list ({e})\n")),
            None => out.push_str(&format!("  firewall grants: {}\n", i.grants.len())),
        }
        for g in &i.grants {
            out.push_str(&format!(
                "    {:<12} {:<20} {:<12} {} left\n",
                g.profile,
                g.ip,
                g.user,
                ago(g.expires_in)
            ));
        }
    }
    out
}

/// Says why an answer is not the one asked for; exit code 1.
fn refused(a: Result<ControlAnswer, String>) -> i32 {
    match a {
        Ok(ControlAnswer::Error { error }) => eprintln!("remod: {error}"),
        Ok(_) => eprintln!("remod: unexpected answer from remod"),
        Err(e) => eprintln!("remod: {e}"),
    }
    1
}

/// Runs `remod status`; returns the exit code.
pub fn run_status(a: StatusArgs) -> i32 {
    match ask(&a.target.path(), &ControlRequest::Status {}) {
        Ok(ControlAnswer::Status { instances }) => {
            if a.json {
                println!("{}", serde_json::to_string(&instances).unwrap_or_default());
            } else {
                print!(
                    "{}",
                    status_text(&instances, crate::server::core::instance::unix_now())
                );
            }
            0
        }
        other => refused(other),
    }
}

/// Runs `remod session …`; returns the exit code.
pub fn run_session(a: SessionArgs) -> i32 {
    let SessionCmd::End { id, user, target } = a.cmd;
    let req = ControlRequest::End {
        session: id.clone(),
        user: user.clone(),
    };
    match ask(&target.path(), &req) {
        Ok(ControlAnswer::Ended { ended }) => {
            let what = match (&id, &user) {
                (Some(i), _) => format!("session {i}"),
                (_, Some(u)) => format!("the sessions of {u}"),
                _ => String::new(),
            };
            println!("ended {ended} session(s) ({what}) and their processes");
            if ended == 0 {
                eprintln!("remod: no such live session");
                return 1;
            }
            0
        }
        other => refused(other),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// `remod session …` alone, to parse its arguments.
    #[derive(Debug, clap::Parser)]
    struct Session {
        #[command(flatten)]
        a: super::SessionArgs,
    }

    fn end(args: &[&str]) -> Result<(Option<String>, Option<String>), clap::Error> {
        let s = Session::try_parse_from(["session"].iter().chain(args))?;
        let super::SessionCmd::End { id, user, .. } = s.a.cmd;
        Ok((id, user))
    }

    /// A session ID may begin with `-` (base64url): it is still an ID,
    /// and the options around it still parse.
    #[test]
    fn session_ids_may_begin_with_a_hyphen() {
        let r = end(&["end", "-nQ2xZw1", "--dir", "d"]).unwrap();
        assert_eq!(r, (Some("-nQ2xZw1".into()), None));
        let r = end(&["end", "--dir", "d", "-nQ2xZw1"]).unwrap();
        assert_eq!(r.0.as_deref(), Some("-nQ2xZw1"));
        let r = end(&["end", "--user", "bob", "--dir", "d"]).unwrap();
        assert_eq!(r, (None, Some("bob".into())));
        assert!(end(&["end", "-x", "--user", "bob"]).is_err());
    }

    use super::*;

    #[test]
    fn requests_and_answers_round_trip() {
        for (text, req) in [
            (r#"{"op":"status"}"#, ControlRequest::Status {}),
            (
                r#"{"op":"end","user":"bob"}"#,
                ControlRequest::End {
                    session: None,
                    user: Some("bob".into()),
                },
            ),
        ] {
            assert_eq!(serde_json::from_str::<ControlRequest>(text).unwrap(), req);
        }
        assert!(serde_json::from_str::<ControlRequest>(r#"{"op":"reboot"}"#).is_err());
        assert!(serde_json::from_str::<ControlRequest>(r#"{"op":"status","x":1}"#).is_err());
        let a: ControlAnswer = serde_json::from_str(r#"{"ended":2}"#).unwrap();
        assert!(matches!(a, ControlAnswer::Ended { ended: 2 }));
        assert_eq!(ago(59), "59s");
        assert_eq!(ago(61), "1m01s");
        assert_eq!(ago(3725), "1h02m");
    }
}
