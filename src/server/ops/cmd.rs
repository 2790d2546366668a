//! `cmd`: run a command to completion, streaming stdin in and stdout/stderr
//! out as they are produced (PROTOCOL.md §6).
//!
//! The child runs in its own process group and its own container
//! ([`crate::server::enforce::contain`]), without a shell unless `sh` is used, with
//! a clean environment. Its whole tree is killed when the client goes away,
//! the session ends, the timeout passes, the output limit is exceeded or
//! its input stays silent for `stdin_idle_timeout`; what it leaves running
//! after its main process exits is killed too (docs/limits.md).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

#[cfg(test)]
use super::parse_descriptor;
use super::OpCtx;
use crate::proto::record::{CHANNEL_STDERR, CHANNEL_STDOUT, MAX_RESPONSE_DATA};
use crate::proto::response::{ErrorCode, OpError};
use crate::server::core::stream::{ReadError, RequestReader, ResponseWriter};
use crate::server::enforce::authz::{authorize_command, search_path, CHILD_PATH};
use crate::server::enforce::contain::CmdBox;
use crate::server::enforce::runas::account_for;
use crate::server::enforce::spawn::{Child, Spawn, Stdio};

pub(crate) use crate::ops::cmd::{CmdDesc, CmdResult};
use crate::ops::ExitFields;

/// A checked `cmd` request.
#[derive(Debug, Clone)]
pub(crate) struct Cmd {
    /// Program and arguments (for `sh`: `/bin/sh -c STRING`).
    pub argv: Vec<String>,
    /// Working directory as given.
    pub cwd: Option<String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Time limit.
    pub timeout: Option<Duration>,
    /// Whether it came from `sh` (needs the `sh` grant).
    pub sh: bool,
}

impl CmdDesc {
    /// Checks the fields that every command-running operation shares.
    pub(crate) fn check(self) -> Result<Cmd, OpError> {
        let sh = self.sh.is_some();
        let argv = match (self.argv, self.sh) {
            (Some(a), None) => {
                if a.is_empty() || a.first().is_some_and(|p| p.is_empty()) {
                    return Err(OpError::bad_request("argv must name a program"));
                }
                a
            }
            (None, Some(s)) => vec!["/bin/sh".into(), "-c".into(), s],
            _ => return Err(OpError::bad_request("give exactly one of argv and sh")),
        };
        if argv.iter().any(|a| a.contains('\0')) {
            return Err(OpError::bad_request("arguments may not contain NUL"));
        }
        let env = self.env.unwrap_or_default();
        for (k, v) in &env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(OpError::bad_request(format!(
                    "invalid environment variable {k:?}"
                )));
            }
        }
        let timeout = match self.timeout {
            None => None,
            Some(t) if t.is_finite() && t > 0.0 && t < 1e9 => Some(Duration::from_secs_f64(t)),
            Some(_) => {
                return Err(OpError::bad_request(
                    "timeout must be a positive number of seconds",
                ))
            }
        };
        Ok(Cmd {
            argv,
            cwd: self.cwd,
            env,
            timeout,
            sh,
        })
    }
}

/// Parses and checks a descriptor (the router decodes once, through
/// [`crate::ops::Op`]; this is for tests).
#[cfg(test)]
pub(crate) fn parse(d: &[u8]) -> Result<Cmd, OpError> {
    parse_descriptor::<CmdDesc>(d)?.check()
}

/// The name of the account remod runs as, looked up once (a passwd lookup
/// per command would read /etc/passwd or ask NSS every time).
fn own_user_name() -> Option<&'static String> {
    static NAME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
    })
    .as_ref()
}

/// The environment every command starts from: nothing of the daemon's own
/// (which may hold configuration), a sane `PATH`, and who is acting.
pub(crate) fn base_env(ctx: &OpCtx) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ),
        (
            "HOME".to_string(),
            ctx.inst.home.to_string_lossy().into_owned(),
        ),
        ("REMO_USER".to_string(), ctx.session.user.clone()),
    ];
    if let Some(name) = own_user_name() {
        env.push(("USER".into(), name.clone()));
        env.push(("LOGNAME".into(), name.clone()));
    }
    for k in ["LANG", "LC_ALL", "TZ"] {
        if let Ok(v) = std::env::var(k) {
            env.push((k.to_string(), v));
        }
    }
    env
}

/// A container for one command of the session (issue 17 §3).
pub(crate) fn container_for(ctx: &OpCtx) -> Result<CmdBox, OpError> {
    ctx.session.container.command().map_err(|e| {
        log::error!("containment: {e}");
        OpError::new(ErrorCode::Internal, "cannot set up the command's container")
    })
}

/// Builds and spawns a command: `start` runs `build_command` (or its
/// like) and `CmdBox::spawn`, and returns the child with whatever else it
/// made.
///
/// For a run-as user, `start` runs on a thread of its own (as
/// [`crate::server::enforce::runas::fs_step`] does), never on an async
/// worker: the look-ups made as the account and the spawn, whose child
/// switches to the account before `chdir` and `execve`, take as long as
/// the account lets them (a working directory on a FUSE file system it
/// runs and stops, a `SIGSTOP`). Held there, they hold that thread and
/// `hold` (the caller's slot, taken before: a user holds at most their
/// share of threads) until the child is killed with its cgroup (session
/// end, revocation, shutdown) or let go; never the daemon. If the caller
/// goes away first, the thread drops the container, the child and the
/// slot itself. Without run-as, `start` runs here: the child is root until
/// it execs and nothing unprivileged can hold it, and a command costs no
/// thread hop (docs/performance.md).
pub(crate) async fn start<T, H, F>(
    ctx: &OpCtx,
    container: CmdBox,
    hold: H,
    start: F,
) -> Result<(CmdBox, H, T), OpError>
where
    T: Send + 'static,
    H: Send + 'static,
    F: FnOnce(&OpCtx, &CmdBox) -> Result<T, OpError> + Send + 'static,
{
    if ctx.session.grants().run_as().is_none() {
        let made = start(ctx, &container)?;
        return Ok((container, hold, made));
    }
    let lost = || OpError::new(ErrorCode::Internal, "command start worker failed");
    let ctx = ctx.clone();
    // The spawn registers the child's pipes with the runtime (waiting for
    // the child registers its pidfd).
    let rt = tokio::runtime::Handle::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("remod-spawn-as".into())
        .spawn(move || {
            let _rt = rt.enter();
            let r = start(&ctx, &container).map(|made| (container, hold, made));
            // A caller that is gone leaves all of it to be dropped here.
            drop(tx.send(r));
        })
        .map_err(|_| lost())?;
    rx.await.map_err(|_| lost())?
}

/// Builds the command with its own process group and checked working
/// directory, inside `container`.
pub(crate) fn build_command(ctx: &OpCtx, c: &Cmd, container: &CmdBox) -> Result<Spawn, OpError> {
    let mut cmd = build_command_base(ctx, c, container)?;
    cmd.process_group();
    Ok(cmd)
}

/// As [`build_command`] but without the process group, for callers that
/// start a new session instead (a PTY child calls `setsid`, which fails in
/// a process-group leader).
pub(crate) fn build_command_base(
    ctx: &OpCtx,
    c: &Cmd,
    container: &CmdBox,
) -> Result<Spawn, OpError> {
    let grants = ctx.session.grants();
    let acct = account_for(&grants)?;
    let cwd = match (&c.cwd, &acct) {
        (Some(d), Some(a)) if !Path::new(d).is_absolute() => a.default_cwd().join(d),
        (Some(d), _) => ctx.inst.resolve(d),
        (None, Some(a)) => a.default_cwd(),
        (None, None) => ctx.inst.home.clone(),
    };
    let (prog, args) = c
        .argv
        .split_first()
        .ok_or_else(|| OpError::bad_request("argv must name a program"))?;
    // What is checked is what runs: the resolved executable, under the
    // name the grant gives it (see authz::Checked::arg0). The working
    // directory and the program are looked up as the run-as account.
    let checked = authorize_command(
        &grants,
        acct.as_deref(),
        &c.argv,
        c.sh,
        c.env.keys(),
        &cwd,
        c.cwd.is_some(),
    )?;
    let mut cmd = match &checked.exe {
        Some(exe) => {
            let mut cmd = Spawn::new(exe);
            cmd.arg0(&checked.arg0);
            cmd
        }
        // Unchecked (admin, or the `sh` wrapper): resolve a bare name here,
        // with the PATH the child will have: the spawner runs a path and
        // does not search (see authz::search_path).
        None => match search_path(
            prog,
            c.env.get("PATH").map_or(CHILD_PATH, String::as_str),
            &cwd,
        ) {
            Some(found) => {
                let mut cmd = Spawn::new(found);
                cmd.arg0(prog);
                cmd
            }
            // Relative to the working directory, which the child enters
            // before it execs.
            None if prog.contains('/') => Spawn::new(prog),
            None => {
                return Err(OpError::new(
                    ErrorCode::NotFound,
                    format!("{prog}: command not found"),
                ))
            }
        },
    };
    // The environment starts empty; a dropped child is killed.
    cmd.args(args).envs(base_env(ctx));
    if let Some(a) = &acct {
        cmd.env("HOME", &a.home)
            .env("USER", &a.name)
            .env("LOGNAME", &a.name);
    }
    cmd.envs(&c.env).current_dir(&cwd);
    // The child moves into the cgroup first (as root), then switches to the
    // account, then enters `cwd` with the account's rights.
    container.prepare(&mut cmd);
    if let Some(a) = &acct {
        a.apply_to_command(&mut cmd);
    }
    Ok(cmd)
}

/// Maps a spawn failure to a result.
pub(crate) fn spawn_error(prog: &str, e: &std::io::Error) -> OpError {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            OpError::new(ErrorCode::NotFound, format!("{prog}: command not found"))
        }
        std::io::ErrorKind::PermissionDenied => {
            OpError::new(ErrorCode::Forbidden, format!("{prog}: permission denied"))
        }
        _ => OpError::new(ErrorCode::Internal, format!("{prog}: cannot start: {e}")),
    }
}

/// Sends SIGKILL to the child through its pidfd, then to its process
/// group by number — only while the child is unreaped: its pid, the
/// group's number, cannot be reused before that. Once its status is
/// collected the number may belong to someone else, and the command's
/// container ends whatever is left instead.
fn kill_group(child: &Child) {
    child.start_kill();
    if !child.is_reaped() {
        if let Ok(pid) = i32::try_from(child.id()) {
            crate::server::ops::procs::kill_group(pid);
        }
    }
}

/// Why the input pump stopped early.
enum InputEnd {
    /// The body was malformed or the client went away.
    Read(ReadError),
    /// No byte for the idle time (`stdin_idle_timeout`).
    Idle,
}

/// Copies data records into the child's stdin, then closes it. If the child
/// stops reading (closes stdin), the rest is read and discarded so the
/// message is still checked to the end. A body that brings nothing for
/// `idle` ends the command (it would hold its slot forever).
async fn pump_stdin(
    input: &mut RequestReader,
    stdin: Option<pipe::Sender>,
    idle: Option<Duration>,
) -> Result<(), InputEnd> {
    let mut stdin = stdin;
    loop {
        let next = match idle {
            Some(t) => match tokio::time::timeout(t, input.next_data()).await {
                Ok(r) => r,
                Err(_) => return Err(InputEnd::Idle),
            },
            None => input.next_data().await,
        };
        let Some(chunk) = next.map_err(InputEnd::Read)? else {
            break;
        };
        if let Some(s) = stdin.as_mut() {
            if s.write_all(&chunk).await.is_err() {
                stdin = None;
            }
        }
    }
    Ok(())
}

/// How long a batch command runs before remod watches its main process's
/// end apart from its output. Most commands close their output as they
/// exit; their status is then collected with one `waitid`, without
/// registering the pidfd (two `epoll_ctl` and a wake-up per command). One
/// whose output stays open after it exited (a background process holding
/// it) is noticed from then on, and its grace period starts then.
const EXIT_WATCH_AFTER: Duration = Duration::from_millis(50);

/// How long output held open by something a command left (a background
/// grandchild) is still read after the main process exited.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

enum End {
    Exited(std::process::ExitStatus),
    /// The main process's end could not be waited for (its pidfd could not
    /// be registered or read): it is killed, and no status is made up.
    WaitFailed(std::io::Error),
    TimedOut,
    TooMuchOutput,
    InputFailed(ReadError),
    InputIdle,
    SessionEnded,
    ClientGone,
}

/// Runs the command.
pub(crate) async fn apply(
    ctx: &OpCtx,
    c: Cmd,
    input: &mut RequestReader,
    out: &mut ResponseWriter,
) -> Result<CmdResult, OpError> {
    let _slot = ctx
        .inst
        .commands
        .acquire(&ctx.session.user, ctx.session.grants().is_admin())
        .map_err(|e| OpError::new(ErrorCode::Unavailable, format!("{e}; try again later")))?;
    let container = container_for(ctx)?;
    let has_input = !input.input_complete();
    let c = std::sync::Arc::new(c);
    let cc = c.clone();
    let (container, _slot, mut child): (_, _, Child) =
        start(ctx, container, _slot, move |ctx, container| {
            let mut cmd = build_command(ctx, &cc, container)?;
            cmd.stdin(if has_input { Stdio::Piped } else { Stdio::Null })
                .stdout(Stdio::Piped)
                .stderr(Stdio::Piped);
            let prog = cc.argv.first().map(String::as_str).unwrap_or("");
            container.spawn(cmd).map_err(|e| spawn_error(prog, &e))
        })
        .await?;
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        kill_group(&child);
        return Err(OpError::new(ErrorCode::Internal, "child pipes missing"));
    };
    let stdin = child.stdin.take();
    let limit = ctx.inst.limits.max_output_bytes;
    // A configured cap applies to commands that ask for more, or for nothing.
    let cap = ctx.inst.limits.max_command_timeout;
    let timeout = match (c.timeout, cap) {
        (t, 0) => t,
        (Some(t), cap) => Some(t.min(Duration::from_secs(cap))),
        (None, cap) => Some(Duration::from_secs(cap)),
    };
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    // Read into spare capacity: a command with little output touches (and
    // the allocator faults in) only what it writes, nothing is zero-filled.
    let mut buf_out: Vec<u8> = Vec::with_capacity(MAX_RESPONSE_DATA);
    let mut buf_err: Vec<u8> = Vec::with_capacity(MAX_RESPONSE_DATA);
    let (mut out_done, mut err_done) = (false, false);
    let mut status: Option<std::process::ExitStatus> = None;
    let mut grace: Option<tokio::time::Instant> = None;
    // The main process's end is watched once its output has closed, or
    // from EXIT_WATCH_AFTER on (see there).
    let mut watch_exit = false;
    let watch = tokio::time::sleep(EXIT_WATCH_AFTER);
    tokio::pin!(watch);
    let mut produced: u64 = 0;
    let idle = match ctx.inst.limits.stdin_idle_timeout {
        0 => None,
        n => Some(Duration::from_secs(n)),
    };
    let stdin_fut = pump_stdin(input, stdin, idle);
    tokio::pin!(stdin_fut);
    let mut stdin_done = !has_input;
    let cancel = ctx.session.cancel.clone();

    let end = loop {
        if status.is_some() && out_done && err_done {
            break End::Exited(status.unwrap_or_default());
        }
        tokio::select! {
            r = stdout.read_buf(&mut buf_out), if !out_done => match r {
                Ok(0) | Err(_) => out_done = true,
                Ok(n) => {
                    produced += n as u64;
                    if produced > limit { break End::TooMuchOutput; }
                    let sent = out.send(CHANNEL_STDOUT, &buf_out).await;
                    buf_out.clear();
                    if sent.is_err() {
                        break End::ClientGone;
                    }
                }
            },
            r = stderr.read_buf(&mut buf_err), if !err_done => match r {
                Ok(0) | Err(_) => err_done = true,
                Ok(n) => {
                    produced += n as u64;
                    if produced > limit { break End::TooMuchOutput; }
                    let sent = out.send(CHANNEL_STDERR, &buf_err).await;
                    buf_err.clear();
                    if sent.is_err() {
                        break End::ClientGone;
                    }
                }
            },
            s = child.wait(), if status.is_none() && (watch_exit || (out_done && err_done)) => match s {
                Ok(s) => {
                    container.reaped();
                    status = Some(s);
                    // Output still held open by a background grandchild is
                    // not waited for forever.
                    grace = Some(tokio::time::Instant::now() + OUTPUT_GRACE);
                }
                Err(e) => break End::WaitFailed(e),
            },
            r = &mut stdin_fut, if !stdin_done => {
                stdin_done = true;
                match r {
                    Ok(()) => {}
                    Err(InputEnd::Read(e)) => break End::InputFailed(e),
                    Err(InputEnd::Idle) => break End::InputIdle,
                }
            },
            _ = &mut watch, if !watch_exit && status.is_none() && !(out_done && err_done) => {
                watch_exit = true;
            },
            _ = sleep_until_opt(grace), if grace.is_some() => {
                break End::Exited(status.unwrap_or_default());
            },
            _ = sleep_until_opt(deadline), if deadline.is_some() && status.is_none() => {
                // A main process that has exited (something it left holds
                // its output, and the deadline came before the exit watch)
                // did not time out.
                match child.try_wait() {
                    Ok(Some(s)) => {
                        container.reaped();
                        status = Some(s);
                        grace = Some(tokio::time::Instant::now() + OUTPUT_GRACE);
                    }
                    _ => break End::TimedOut,
                }
            },
            _ = out.closed() => break End::ClientGone,
            _ = cancel.cancelled() => break End::SessionEnded,
        }
    };
    // The command's own tree ends with it: leftovers of a command that
    // exited (backgrounded, setsid) and everything of one cut short.
    let status = match end {
        End::Exited(s) => {
            container.finish().await;
            s
        }
        other => {
            // A child reaped during the grace period is not signalled.
            kill_group(&child);
            container.kill();
            let s = child.wait().await.ok();
            container.reaped();
            container.finish().await;
            match other {
                End::TimedOut => {
                    return Ok(cmd_result(s, true));
                }
                End::TooMuchOutput => {
                    return Err(OpError::new(
                        ErrorCode::TooLarge,
                        format!("output exceeded the limit of {limit} bytes; command killed"),
                    ))
                }
                End::InputFailed(e) => return Err(e.to_op_error()),
                End::InputIdle => {
                    return Err(OpError::new(
                        ErrorCode::Timeout,
                        format!(
                            "no input for {} s (stdin_idle_timeout); command killed",
                            ctx.inst.limits.stdin_idle_timeout
                        ),
                    ))
                }
                End::SessionEnded => {
                    return Err(OpError::new(ErrorCode::Unavailable, "session ended"))
                }
                End::ClientGone => {
                    return Err(OpError::new(ErrorCode::Unavailable, "client went away"))
                }
                End::WaitFailed(e) => {
                    return Err(OpError::new(
                        ErrorCode::Internal,
                        format!("cannot wait for the command: {e}; command killed"),
                    ))
                }
                End::Exited(s) => s,
            }
        }
    };
    Ok(cmd_result(Some(status), false))
}

async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The result: how the command ended.
fn cmd_result(s: Option<std::process::ExitStatus>, timed_out: bool) -> CmdResult {
    CmdResult {
        ended: ExitFields::of(s),
        timed_out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_checks() {
        assert!(parse(br#"{"argv":["echo","hi"]}"#).is_ok());
        assert_eq!(
            parse(br#"{"sh":"echo hi"}"#).unwrap().argv,
            ["/bin/sh", "-c", "echo hi"]
        );
        for bad in [
            &br#"{"argv":["a"],"sh":"b"}"#[..],
            br#"{}"#,
            br#"{"argv":[]}"#,
            br#"{"argv":[""]}"#,
            br#"{"argv":["a"],"bogus":1}"#,
            br#"{"argv":["a"],"timeout":-1}"#,
            br#"{"argv":["a"],"env":{"A=B":"c"}}"#,
            br#"{"argv":["a\u0000b"]}"#,
            br#"[1]"#,
        ] {
            assert_eq!(
                parse(bad).unwrap_err().code,
                ErrorCode::BadRequest,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
