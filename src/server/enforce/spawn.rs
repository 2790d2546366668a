//! Starting a command's process without copying the daemon (issue 23).
//!
//! A `cmd` or `icm` child must enter its command's cgroup and, for a
//! run-as user, drop to the account before it runs anything of its own.
//! std can only do such steps in a `pre_exec` closure, and then it forks
//! the whole multi-threaded daemon: remod paid for copying its page tables
//! and both sides for the copy-on-write faults (docs/performance.md).
//! This module creates the child with `clone(CLONE_VM | CLONE_VFORK |
//! CLONE_PIDFD)` instead, as glibc's `posix_spawn` does, and runs those
//! steps in the child before `execve`. [`Child`] is the handle: it waits
//! through the pidfd (a `tokio` `AsyncFd` and `waitid(P_PIDFD)`), kills
//! through it (`pidfd_send_signal`, so never a recycled pid), and gives
//! the pipes as `tokio` pipes.
//!
//! # Safety argument
//!
//! With `CLONE_VM` the child runs in the daemon's memory; with
//! `CLONE_VFORK` the calling thread sleeps until the child has `execve`d
//! or exited (from then on the child has its own memory or none). The
//! daemon's *other* threads keep running. So the child must not touch
//! anything another thread may touch, nor leave anything half-done:
//!
//! * **Its own stack.** glibc's `clone` wrapper starts the child in
//!   [`child_main`] on a stack we map (a guard page below it), so the
//!   child never writes into the caller's frames: no `vfork` return twice,
//!   no assembly. A stack is used by one spawn at a time and reused only
//!   after `clone` has returned, when the child no longer runs in our
//!   memory.
//! * **Read-only inputs, prepared before.** Everything the child reads
//!   (the program path, `argv`, `envp`, the working directory, the
//!   descriptors, the account's ids and groups) is built by the caller
//!   before `clone`, owned by its suspended frame ([`ChildArgs`]). The
//!   child writes only its error report (two atomics in that frame) and
//!   descriptor numbers in its *own* descriptor table (no `CLONE_FILES`).
//! * **System calls only.** The child allocates nothing, takes no lock and
//!   calls no glibc function that keeps state: every step is a raw
//!   `syscall`. In particular not glibc's `setuid`/`setgid`/`setgroups`,
//!   which signal every thread of the process to change theirs; the raw
//!   calls change the credentials of the calling task, which is the child
//!   alone. (The child shares the caller's thread pointer, so `errno` is
//!   the suspended caller's; nobody else reads it meanwhile.) It cannot
//!   panic: no indexing, no formatting.
//! * **No signal handler ever runs in the child.** The caller blocks every
//!   signal in its thread (the raw `rt_sigprocmask`, so glibc's internal
//!   ones too) before `clone`; the child starts with that mask, sets every
//!   signal that has a handler in its own copy of the dispositions (taken
//!   at `clone`, so a handler another thread installs meanwhile is not
//!   missed) and `SIGPIPE` to the default, and only then unblocks, right
//!   before `execve`. What it ignores stays ignored, as with std. A
//!   signal that kills the child is harmless: the caller wakes and
//!   reports the exit.
//! * **Errors come back through memory.** A failed step stores its errno
//!   and which step it was in [`ChildArgs`] and calls `_exit(127)`; the
//!   caller reads them once `clone` returns and reaps the child (blocking:
//!   it has exited or is exiting).
//! * **No descriptor leaks.** The child's ends are dup'ed to 0, 1 and 2;
//!   `close_range(3, ~0)` then closes everything else in the child's
//!   table, so nothing of the daemon reaches the program even where a
//!   descriptor lacks `FD_CLOEXEC`. Where `close_range` fails (`ENOSYS`
//!   before Linux 5.9, `EPERM` under a seccomp filter) the child closes
//!   every number below its `RLIMIT_NOFILE` one by one; if it cannot read
//!   that limit the spawn fails.
//! * **The account never reaches the child's memory.** From its last
//!   `setresuid` to `execve` the child runs as the account, which may
//!   then signal it (`SIGSTOP` holds it there). Reading or writing its
//!   memory (`ptrace`, `/proc/PID/mem`, `process_vm_readv`/`writev`) or
//!   making it dump core also needs the memory to be dumpable, and every
//!   switch of the effective uid or gid sets that flag — the memory's,
//!   not the process's — to `fs.suid_dumpable`. So the child switches in
//!   three steps ([`switch_account`]): `setresuid(0, uid, 0)`, after
//!   which the account can neither signal nor trace it (real and saved
//!   uid root's); then `PR_SET_DUMPABLE` 0; then `setresuid(uid, uid,
//!   uid)`, which changes no effective or file-system id and so leaves
//!   the flag at 0 (and clears every capability, ambient ones included).
//!   Because the flag is the memory's, a spawn that changes the uid
//!   shares remod's memory only when `fs.suid_dumpable` is 0 (read each
//!   time; unreadable counts as not 0, [`share_memory`]): otherwise every
//!   other switch (a child's first step, a run-as file step) sets the
//!   shared flag to 1 for an instant, and a child the account holds with
//!   a core signal pending could dump remod's memory in such an instant,
//!   a race the account can run again and again. Those spawns clone
//!   without `CLONE_VM | CLONE_VFORK` (fork semantics: the child's
//!   memory, and flag, are a copy of its own) and report errors through a
//!   close-on-exec pipe.
//!
//! The child's steps, in order: signal dispositions; into the cgroup
//! (writing `0` to the command's `cgroup.procs`, still as root); its own
//! process group, or a new session; the standard descriptors;
//! `close_range` (still as root, so none of remod's other descriptors is
//! ever in a process of the account's); the account (`setgroups`,
//! `setresgid`, then `setresuid` in the three steps above); `chdir` (with
//! the account's rights); the controlling terminal; an empty signal mask;
//! `execve`. No `PATH` search: callers resolve the program first
//! (authz), and a file that is not a valid executable (no `#!`) fails
//! with `ENOEXEC` instead of being run by `/bin/sh`.
//!
//! Needs Linux 5.4 (`CLONE_PIDFD`, `waitid(P_PIDFD)`); without
//! `close_range` (5.9) the close loop above does its work. The kernel's
//! `struct sigaction` must begin with the handler, which rules out MIPS
//! and SPARC (refused at compile time). The account switch uses the raw
//! `setgroups`/`setresgid`/`setresuid`, which take 32-bit ids only on an
//! allowlist of architectures (x86_64, aarch64; on i386 and 32-bit ARM
//! they are the 16-bit calls): elsewhere it is not built and a spawn with
//! [`Credentials`] is refused ([`RAW_SETID`]). An id of `u32::MAX` (-1,
//! "unchanged" to the kernel) is refused before any child exists.

#[cfg(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
))]
compile_error!("spawn.rs: the raw rt_sigaction layout here is not this architecture's");

/// Whether the raw `setgroups`/`setresgid`/`setresuid` system calls take
/// 32-bit ids here (an allowlist: on i386 and 32-bit ARM they are the
/// 16-bit calls, and uid 131071 would become -1, "unchanged", i.e. root).
pub(crate) const RAW_SETID: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::unix::pipe;

/// Where one of the child's standard descriptors comes from.
pub(crate) enum Stdio {
    /// `/dev/null`.
    Null,
    /// A new pipe; the daemon's end is in [`Child`].
    Piped,
    /// This descriptor (a terminal's slave side).
    Fd(OwnedFd),
}

/// The account a child switches to before `execve`.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    /// User id (real, effective, saved).
    pub uid: u32,
    /// Group id (real, effective, saved).
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Credentials {
    /// Refuses what the raw calls cannot take: any architecture off the
    /// [`RAW_SETID`] allowlist, and the id -1 (`u32::MAX`), which
    /// `setresuid`/`setresgid` read as "leave unchanged" (root stays root).
    pub(crate) fn check(&self) -> io::Result<()> {
        if !RAW_SETID {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "run-as is not supported on this architecture (raw 32-bit setresuid)",
            ));
        }
        if self.uid == u32::MAX || self.gid == u32::MAX || self.groups.contains(&u32::MAX) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "run-as account with id 4294967295 (-1 means \"unchanged\" to the kernel)",
            ));
        }
        Ok(())
    }
}

/// Whether a child may run in remod's memory until `execve`
/// (`CLONE_VM | CLONE_VFORK`): always when it keeps remod's uid; when it
/// switches to an account, only if `fs.suid_dumpable` (`suid_dumpable`,
/// the file's content, `None` when unreadable) is 0 — else every switch
/// sets the shared memory's dumpable flag to it for an instant, in which
/// a child the account holds could dump core (see the module
/// documentation).
pub(crate) fn share_memory(changes_uid: bool, suid_dumpable: Option<&str>) -> bool {
    !changes_uid || suid_dumpable.is_some_and(|v| v.trim() == "0")
}

/// Decides [`share_memory`] for one spawn (reading the sysctl each time a
/// uid changes) and says once, at warn, when remod copies instead.
fn decide_share_memory(changes_uid: bool) -> bool {
    if !changes_uid {
        return true;
    }
    let v = std::fs::read_to_string("/proc/sys/fs/suid_dumpable").ok();
    let share = share_memory(true, v.as_deref());
    if !share {
        static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !SAID.swap(true, Ordering::Relaxed) {
            log::warn!(
                "run-as commands are started by a copy of remod (fork), not in its memory \
                 (vfork): fs.suid_dumpable is {} (not 0), which the kernel applies to the \
                 memory of a child as it switches to the account (docs/security.md); \
                 fs.suid_dumpable 0 is the faster path (and 1 is unsafe for other \
                 programs)",
                v.as_deref().map_or("unreadable", str::trim)
            );
        }
    }
    share
}

/// What the child leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leader {
    /// Nothing: stays in remod's process group and session.
    Nothing,
    /// Its own process group (`setpgid(0, 0)`), so the group can be killed.
    Group,
    /// A new session with fd 0 as its controlling terminal (`pty`).
    SessionOnTerminal,
}

/// A child to start: program, arguments, a clean environment, working
/// directory, descriptors, cgroup and account. Built like std's `Command`.
pub(crate) struct Spawn {
    program: PathBuf,
    arg0: Option<OsString>,
    args: Vec<OsString>,
    env: BTreeMap<OsString, OsString>,
    cwd: Option<PathBuf>,
    stdio: [Stdio; 3],
    leader: Leader,
    cgroup_procs: Option<Arc<File>>,
    creds: Option<Credentials>,
    /// Tests: where the child records its dispositions (an address, 0: none).
    #[cfg(test)]
    probe: usize,
}

impl Spawn {
    /// Runs `program` (a path: no `PATH` search), with an empty environment
    /// and `/dev/null` for every standard descriptor.
    pub(crate) fn new(program: impl AsRef<Path>) -> Spawn {
        Spawn {
            program: program.as_ref().to_path_buf(),
            arg0: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            stdio: [Stdio::Null, Stdio::Null, Stdio::Null],
            leader: Leader::Nothing,
            cgroup_procs: None,
            creds: None,
            #[cfg(test)]
            probe: 0,
        }
    }

    /// The child's `argv[0]` (default: the program).
    pub(crate) fn arg0(&mut self, a: impl AsRef<OsStr>) -> &mut Spawn {
        self.arg0 = Some(a.as_ref().to_os_string());
        self
    }

    /// More arguments.
    pub(crate) fn args<I, S>(&mut self, args: I) -> &mut Spawn
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Sets one variable (a later value replaces an earlier one).
    pub(crate) fn env(&mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> &mut Spawn {
        self.env
            .insert(k.as_ref().to_os_string(), v.as_ref().to_os_string());
        self
    }

    /// Sets several variables.
    pub(crate) fn envs<I, K, V>(&mut self, vars: I) -> &mut Spawn
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    /// The working directory (entered after the account switch).
    pub(crate) fn current_dir(&mut self, d: impl AsRef<Path>) -> &mut Spawn {
        self.cwd = Some(d.as_ref().to_path_buf());
        self
    }

    /// Standard input.
    pub(crate) fn stdin(&mut self, s: Stdio) -> &mut Spawn {
        self.stdio[0] = s;
        self
    }

    /// Standard output.
    pub(crate) fn stdout(&mut self, s: Stdio) -> &mut Spawn {
        self.stdio[1] = s;
        self
    }

    /// Standard error.
    pub(crate) fn stderr(&mut self, s: Stdio) -> &mut Spawn {
        self.stdio[2] = s;
        self
    }

    /// The child leads a process group of its own (its pid is the group's).
    pub(crate) fn process_group(&mut self) -> &mut Spawn {
        self.leader = Leader::Group;
        self
    }

    /// The child starts a session with its standard input, a terminal, as
    /// the controlling terminal.
    pub(crate) fn session_on_terminal(&mut self) -> &mut Spawn {
        self.leader = Leader::SessionOnTerminal;
        self
    }

    /// The child moves itself into the cgroup of this open `cgroup.procs`
    /// first of all, while it is still root.
    pub(crate) fn cgroup(&mut self, procs: Arc<File>) -> &mut Spawn {
        self.cgroup_procs = Some(procs);
        self
    }

    /// The child switches to this account before `chdir` and `execve`.
    pub(crate) fn credentials(&mut self, c: Credentials) -> &mut Spawn {
        self.creds = Some(c);
        self
    }

    /// Whether the child switches to another account before it enters its
    /// working directory and execs. From the switch on the account owns
    /// it: it can stop it (`SIGSTOP`) or make its `chdir`/`execve` wait on
    /// a FUSE file system it runs, and [`Spawn::spawn`] returns only when
    /// the child has exec'ed or died. Callers run such a spawn on a thread
    /// of its own, never on an async worker.
    pub(crate) fn account_can_hold(&self) -> bool {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        self.creds.as_ref().is_some_and(|c| c.uid != euid)
    }

    /// Starts the child. Must run inside a tokio runtime (the pipes are
    /// registered with it, and the pidfd once the child is waited for). An error in any step of the child is
    /// returned here, with the step named unless it was `execve`; the
    /// errno's kind is kept (`NotFound`, `PermissionDenied`, …).
    pub(crate) fn spawn(self) -> io::Result<Child> {
        reap_orphans();
        if let Some(c) = &self.creds {
            c.check()?;
        }
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        let share = decide_share_memory(self.creds.as_ref().is_some_and(|c| c.uid != euid));
        let nul = |_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a spawn argument");
        let path = CString::new(self.program.as_os_str().as_bytes()).map_err(nul)?;
        let arg0 = match &self.arg0 {
            Some(a) => CString::new(a.as_bytes()).map_err(nul)?,
            None => path.clone(),
        };
        let mut argv_owned = Vec::with_capacity(self.args.len() + 1);
        argv_owned.push(arg0);
        for a in &self.args {
            argv_owned.push(CString::new(a.as_bytes()).map_err(nul)?);
        }
        let mut envp_owned = Vec::with_capacity(self.env.len());
        for (k, v) in &self.env {
            let mut kv = Vec::with_capacity(k.len() + v.len() + 1);
            kv.extend_from_slice(k.as_bytes());
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            envp_owned.push(CString::new(kv).map_err(nul)?);
        }
        let argv = null_terminated(&argv_owned);
        let envp = null_terminated(&envp_owned);
        let cwd = match &self.cwd {
            Some(d) => Some(CString::new(d.as_os_str().as_bytes()).map_err(nul)?),
            None => None,
        };

        // The descriptors: the child's ends (kept open until clone returns)
        // and ours, registered with the runtime before the child exists.
        let mut keep: Vec<OwnedFd> = Vec::new();
        let mut srcs: [c_int; 3] = [-1; 3];
        let (mut stdin, mut stdout, mut stderr) = (None, None, None);
        for (i, s) in self.stdio.into_iter().enumerate() {
            let src = match s {
                Stdio::Null => dev_null()?,
                Stdio::Fd(fd) => {
                    let fd = above_stdio(fd)?;
                    let raw = fd.as_raw_fd();
                    keep.push(fd);
                    raw
                }
                Stdio::Piped => {
                    let (r, w) = pipe_cloexec()?;
                    let (theirs, ours) = if i == 0 { (r, w) } else { (w, r) };
                    set_nonblocking(&ours)?;
                    if i == 0 {
                        stdin = Some(pipe::Sender::from_owned_fd_unchecked(ours)?);
                    } else if i == 1 {
                        stdout = Some(pipe::Receiver::from_owned_fd_unchecked(ours)?);
                    } else {
                        stderr = Some(pipe::Receiver::from_owned_fd_unchecked(ours)?);
                    }
                    // pipe2 made it close-on-exec: only a low number needs
                    // work (no fcntl per pipe on the usual path).
                    let theirs = if theirs.as_raw_fd() > 2 {
                        theirs
                    } else {
                        above_stdio(theirs)?
                    };
                    let raw = theirs.as_raw_fd();
                    keep.push(theirs);
                    raw
                }
            };
            if let Some(slot) = srcs.get_mut(i) {
                *slot = src;
            }
        }

        // Copied memory: the child's error report comes through this pipe
        // (its write end closes at execve), not through `args`.
        let report = if share {
            None
        } else {
            let (r, w) = pipe_cloexec()?;
            Some((r, above_stdio(w)?))
        };

        let groups: &[u32] = self.creds.as_ref().map_or(&[], |c| &c.groups);
        let args = ChildArgs {
            path: path.as_ptr(),
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
            cwd: cwd.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            stdio: srcs,
            cgroup_procs: self.cgroup_procs.as_ref().map_or(-1, |f| f.as_raw_fd()),
            leader: self.leader,
            switch: self.creds.is_some(),
            uid: self.creds.as_ref().map_or(0, |c| c.uid),
            gid: self.creds.as_ref().map_or(0, |c| c.gid),
            groups: groups.as_ptr(),
            ngroups: groups.len(),
            report: report.as_ref().map_or(-1, |(_, w)| w.as_raw_fd()),
            err: AtomicI32::new(0),
            stage: AtomicI32::new(0),
            #[cfg(test)]
            probe: self.probe as *mut [usize; NSIG],
        };

        let stack = Stack::take()?;
        let mut pidfd: c_int = -1;
        let flags = if share {
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD
        } else {
            libc::CLONE_PIDFD | libc::SIGCHLD
        };
        let all: u64 = !0;
        let mut old: u64 = 0;
        // SAFETY: rt_sigprocmask on the calling thread with valid pointers
        // to 8-byte sets (the kernel's sigset size on the supported arches).
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &all as *const u64,
                &mut old as *mut u64,
                8usize,
            );
        }
        // SAFETY: see the module documentation. `child_main` runs on
        // `stack` (ours alone until clone returns) and reads `args`, which
        // this frame owns and does not touch until clone returns; with
        // CLONE_VFORK that is after the child's execve or exit, without
        // CLONE_VM the child has copies of both. The pidfd pointer is
        // valid for the kernel's write.
        let pid = unsafe {
            libc::clone(
                child_main,
                stack.top(),
                flags,
                &args as *const ChildArgs as *mut c_void,
                &mut pidfd as *mut c_int,
            )
        };
        let clone_err = io::Error::last_os_error();
        // SAFETY: as above; restores the thread's own mask.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &old as *const u64,
                std::ptr::null_mut::<u64>(),
                8usize,
            );
        }
        stack.give_back();
        drop(keep);
        let report = report.map(|(r, w)| {
            drop(w);
            r
        });
        if pid < 0 {
            return Err(clone_err);
        }
        if pidfd < 0 {
            // Not expected after a successful CLONE_PIDFD clone; the child
            // is ours and unreaped (its pid cannot be reused): end it.
            // SAFETY: plain system calls on our own child's pid.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                let mut st: c_int = 0;
                while libc::waitpid(pid, &mut st, 0) < 0
                    && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
                {
                }
            }
            return Err(io::Error::other("clone returned no pidfd"));
        }
        // SAFETY: CLONE_PIDFD gave us this new descriptor; nothing else owns it.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        let (err, stage) = match report {
            None => (
                args.err.load(Ordering::Acquire),
                args.stage.load(Ordering::Acquire),
            ),
            Some(r) => match read_report(&r) {
                Ok(v) => v,
                Err(e) => {
                    send_signal(pidfd.as_raw_fd(), libc::SIGKILL);
                    let _ = wait_pidfd(pidfd.as_raw_fd(), 0);
                    return Err(e);
                }
            },
        };
        if err != 0 {
            // The child has exited or is exiting: reap it before reporting.
            let _ = wait_pidfd(pidfd.as_raw_fd(), 0);
            return Err(child_error(err, stage));
        }
        Ok(Child {
            pid,
            pidfd: Some(Pidfd::Plain(pidfd)),
            status: None,
            stdin,
            stdout,
            stderr,
        })
    }
}

/// Reads a copied child's report: (errno, stage) if it failed before
/// `execve`, (0, 0) when the pipe closed empty (it exec'ed).
fn read_report(r: &OwnedFd) -> io::Result<(i32, i32)> {
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        let rest = buf.get_mut(got..).unwrap_or_default();
        // SAFETY: reads into the unfilled part of our buffer.
        let n = unsafe { libc::read(r.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len()) };
        match n {
            0 => break,
            n if n > 0 => got += n.unsigned_abs(),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    match got {
        0 => Ok((0, 0)),
        8 => {
            let [a, b, c, d, e, f, g, h] = buf;
            Ok((
                i32::from_ne_bytes([a, b, c, d]),
                i32::from_ne_bytes([e, f, g, h]),
            ))
        }
        _ => Err(io::Error::other("short error report from the child")),
    }
}

/// `_NSIG` on the supported architectures: signals 1..=64.
const NSIG: usize = 65;

/// A null-terminated array of pointers into `v` (which must outlive it).
fn null_terminated(v: &[CString]) -> Vec<*const c_char> {
    let mut out: Vec<*const c_char> = v.iter().map(|c| c.as_ptr()).collect();
    out.push(std::ptr::null());
    out
}

/// `/dev/null`, opened once (read-write, close-on-exec, above 2).
fn dev_null() -> io::Result<RawFd> {
    static NULL: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = NULL.get() {
        return Ok(fd.as_raw_fd());
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let fd = above_stdio(OwnedFd::from(f))?;
    Ok(NULL.get_or_init(|| fd).as_raw_fd())
}

/// `fd` made close-on-exec, or a close-on-exec copy of it numbered 3 or
/// more: the child dups its sources onto 0, 1 and 2 in turn, so no source
/// may be one of them, and no other spawn may inherit it (should its
/// `close_range` fail, see [`close_above_stdio`]).
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        // SAFETY: F_GETFD/F_SETFD on an open descriptor we own.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        if flags & libc::FD_CLOEXEC == 0
            // SAFETY: as above.
            && unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags | libc::FD_CLOEXEC) } != 0
        {
            return Err(io::Error::last_os_error());
        }
        return Ok(fd);
    }
    // SAFETY: fcntl on an open descriptor; a new one is returned on success.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `n` is a new descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// A pipe, both ends close-on-exec: (read end, write end).
fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [c_int; 2] = [-1; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let [r, w] = fds;
    // SAFETY: both are new descriptors that we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(r), OwnedFd::from_raw_fd(w)) })
}

/// Our end of a pipe is non-blocking (tokio); the child's stays blocking.
fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: F_SETFL on an open pipe end; a pipe has no other status flags.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The steps of the child, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
enum Stage {
    Exec = 1,
    Cgroup,
    ProcessGroup,
    Session,
    Stdio,
    Groups,
    Gid,
    Uid,
    Chdir,
    Terminal,
    CloseFds,
    Dumpable,
}

impl Stage {
    fn from_i32(v: i32) -> Option<Stage> {
        Some(match v {
            1 => Stage::Exec,
            2 => Stage::Cgroup,
            3 => Stage::ProcessGroup,
            4 => Stage::Session,
            5 => Stage::Stdio,
            6 => Stage::Groups,
            7 => Stage::Gid,
            8 => Stage::Uid,
            9 => Stage::Chdir,
            10 => Stage::Terminal,
            11 => Stage::CloseFds,
            12 => Stage::Dumpable,
            _ => return None,
        })
    }

    fn what(self) -> &'static str {
        match self {
            Stage::Exec => "execve",
            Stage::Cgroup => "moving into the command's cgroup",
            Stage::ProcessGroup => "setpgid",
            Stage::Session => "setsid",
            Stage::Stdio => "dup2",
            Stage::Groups => "setgroups",
            Stage::Gid => "setresgid",
            Stage::Uid => "setresuid",
            Stage::Chdir => "chdir",
            Stage::Terminal => "TIOCSCTTY",
            Stage::CloseFds => "closing remod's descriptors",
            Stage::Dumpable => "PR_SET_DUMPABLE",
        }
    }
}

/// The error a child reported: the errno itself for `execve`, else the
/// same kind with the step named.
fn child_error(errno: i32, stage: i32) -> io::Error {
    let os = io::Error::from_raw_os_error(errno);
    match Stage::from_i32(stage) {
        Some(Stage::Exec) | None => os,
        Some(s) => io::Error::new(os.kind(), format!("{}: {os}", s.what())),
    }
}

/// What [`child_main`] reads, in the caller's suspended frame.
struct ChildArgs {
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    /// Null: stay in the daemon's directory.
    cwd: *const c_char,
    /// Sources for descriptors 0, 1, 2; each is 3 or more.
    stdio: [c_int; 3],
    /// An open `cgroup.procs`, or -1.
    cgroup_procs: c_int,
    leader: Leader,
    switch: bool,
    uid: u32,
    gid: u32,
    groups: *const u32,
    ngroups: usize,
    /// Copied memory only: the write end of the report pipe (3 or more,
    /// close-on-exec), or -1.
    report: c_int,
    /// Written by the child on failure: errno, then the [`Stage`].
    err: AtomicI32,
    stage: AtomicI32,
    /// Tests: the child's dispositions after the reset, by signal number.
    #[cfg(test)]
    probe: *mut [usize; NSIG],
}

/// The kernel's `struct sigaction` as far as we use it: the handler first
/// (every supported architecture), then room for the rest, all zero when
/// we set `SIG_DFL`.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    rest: [u64; 4],
}

/// Reads the child's errno (the suspended caller's thread-local).
fn errno() -> c_int {
    // SAFETY: glibc's errno location is valid for the calling thread.
    unsafe { *libc::__errno_location() }
}

/// The child: runs on its own stack in the daemon's memory until `execve`.
/// Only raw system calls; see the module documentation.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the caller's `ChildArgs`, alive and unchanged until
    // this child has exec'ed or exited (CLONE_VFORK).
    let a = unsafe { &*(arg as *const ChildArgs) };
    // SAFETY: see `child_steps`.
    let (failed, e) = unsafe { child_steps(a) };
    let e = if e > 0 { e } else { libc::ECHILD };
    a.err.store(e, Ordering::Release);
    a.stage.store(failed as i32, Ordering::Release);
    if a.report >= 0 {
        // Copied memory: the atomics above are the child's own copy.
        let mut buf = [0u8; 8];
        let (lo, hi) = buf.split_at_mut(4);
        lo.copy_from_slice(&e.to_ne_bytes());
        hi.copy_from_slice(&(failed as i32).to_ne_bytes());
        // SAFETY: a raw write of our own buffer; one write of 8 bytes to
        // an empty pipe is atomic.
        unsafe { libc::syscall(libc::SYS_write, a.report, buf.as_ptr(), buf.len()) };
    }
    // SAFETY: ends this child only (it is a thread group of its own).
    unsafe { libc::_exit(127) }
}

/// The child's steps; returns only on failure, with the step that failed
/// and its errno (`EIO` where a call succeeded but did less than asked).
///
/// # Safety
///
/// Only in the child made by [`Spawn::spawn`], with `a` as prepared there.
unsafe fn child_steps(a: &ChildArgs) -> (Stage, c_int) {
    use libc::{syscall, SYS_chdir, SYS_dup3, SYS_execve, SYS_ioctl, SYS_write};
    let fail = |s: Stage| (s, errno());
    reset_signal_handlers();
    #[cfg(test)]
    if !a.probe.is_null() {
        probe_dispositions(&mut *a.probe);
    }
    if a.cgroup_procs >= 0 {
        match syscall(SYS_write, a.cgroup_procs, c"0".as_ptr(), 1usize) {
            1 => {}
            n if n < 0 => return fail(Stage::Cgroup),
            // A short write sets no errno: report its own error, not a
            // stale one.
            _ => return (Stage::Cgroup, libc::EIO),
        }
    }
    match a.leader {
        Leader::Nothing => {}
        Leader::Group => {
            if syscall(libc::SYS_setpgid, 0, 0) != 0 {
                return fail(Stage::ProcessGroup);
            }
        }
        Leader::SessionOnTerminal => {
            if syscall(libc::SYS_setsid) < 0 {
                return fail(Stage::Session);
            }
        }
    }
    for (target, &src) in (0 as c_int..).zip(a.stdio.iter()) {
        // Every source is above 2, so dup3 never sees src == target.
        let n = syscall(SYS_dup3, src, target, 0);
        if n < 0 {
            return fail(Stage::Stdio);
        }
        if n != libc::c_long::from(target) {
            return (Stage::Stdio, libc::EIO);
        }
    }
    // remod's other descriptors (its sockets, the cgroup files it keeps
    // open) are closed while the child is still root's: none is ever in a
    // process that runs as the account.
    if let Err(e) = close_above_stdio(a.report) {
        return (Stage::CloseFds, e);
    }
    if a.switch {
        if let Some(failed) = switch_account(a) {
            return fail(failed);
        }
    }
    if !a.cwd.is_null() && syscall(SYS_chdir, a.cwd) != 0 {
        return fail(Stage::Chdir);
    }
    if a.leader == Leader::SessionOnTerminal && syscall(SYS_ioctl, 0, libc::TIOCSCTTY, 0) != 0 {
        return fail(Stage::Terminal);
    }
    let empty: u64 = 0;
    syscall(
        libc::SYS_rt_sigprocmask,
        libc::SIG_SETMASK,
        &empty as *const u64,
        std::ptr::null_mut::<u64>(),
        8usize,
    );
    syscall(SYS_execve, a.path, a.argv, a.envp);
    fail(Stage::Exec)
}

/// `prctl(PR_SET_DUMPABLE, 0)` as a raw system call (so also in the
/// child): the caller's memory is no longer dumpable. True on success.
#[inline(always)]
pub(crate) fn clear_dumpable() -> bool {
    // SAFETY: a prctl without pointers; it changes one flag of the
    // caller's memory.
    unsafe {
        libc::syscall(
            libc::SYS_prctl,
            libc::PR_SET_DUMPABLE,
            0u64,
            0u64,
            0u64,
            0u64,
        ) == 0
    }
}

/// The account switch: groups, then gid, then uid in three steps; the step
/// that failed. Built only where the raw calls take 32-bit ids
/// ([`RAW_SETID`]).
///
/// `setresuid(0, uid, 0)` first: the effective uid leaves root (the
/// effective capabilities go, the file-system uid follows) and the
/// dumpable flag becomes `fs.suid_dumpable`, but with real and saved uid
/// still root's the account may not signal this process (which a stop in
/// this instant would need) nor trace it. Then the flag goes to 0. Then
/// `setresuid(uid, uid, uid)`: only the real and saved uid change, which
/// the kernel does not count as a switch of identity (the flag stays 0),
/// and with no uid root's any more it clears the permitted and ambient
/// capabilities. From there the account may stop the child, but not read
/// it, trace it or make it dump core; `execve` gives the program the flag
/// any program of the account gets.
///
/// # Safety
///
/// Only in the child.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
unsafe fn switch_account(a: &ChildArgs) -> Option<Stage> {
    use libc::syscall;
    if syscall(libc::SYS_setgroups, a.ngroups, a.groups) != 0 {
        return Some(Stage::Groups);
    }
    if syscall(libc::SYS_setresgid, a.gid, a.gid, a.gid) != 0 {
        return Some(Stage::Gid);
    }
    if syscall(libc::SYS_setresuid, 0u32, a.uid, 0u32) != 0 {
        return Some(Stage::Uid);
    }
    if !clear_dumpable() {
        return Some(Stage::Dumpable);
    }
    if syscall(libc::SYS_setresuid, a.uid, a.uid, a.uid) != 0 {
        return Some(Stage::Uid);
    }
    None
}

/// Elsewhere a spawn with credentials is refused before the child exists
/// ([`Credentials::check`]); this is never reached, and fails if it is.
///
/// # Safety
///
/// Only in the child.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
unsafe fn switch_account(_: &ChildArgs) -> Option<Stage> {
    *libc::__errno_location() = libc::ENOSYS;
    Some(Stage::Uid)
}

/// Closes every descriptor above 2 but `keep` (the report pipe, or -1):
/// `close_range`, or where that fails (`ENOSYS` before Linux 5.9, `EPERM`
/// under seccomp) `close` on every number below `RLIMIT_NOFILE`. Only an
/// unreadable limit fails (with its errno).
///
/// # Safety
///
/// Only in the child.
unsafe fn close_above_stdio(keep: c_int) -> Result<(), c_int> {
    use libc::syscall;
    let ranges: [(u32, u32); 2] = match u32::try_from(keep) {
        Ok(k) if k > 3 => [(3, k - 1), (k.saturating_add(1), u32::MAX)],
        Ok(3) => [(4, u32::MAX), (1, 0)],
        _ => [(3, u32::MAX), (1, 0)],
    };
    let mut ok = true;
    for (lo, hi) in ranges {
        if lo <= hi && syscall(libc::SYS_close_range, lo, hi, 0u32) != 0 {
            ok = false;
        }
    }
    if ok {
        return Ok(());
    }
    // The kernel's `struct rlimit64`: current, then maximum, 64 bits each.
    let mut lim: [u64; 2] = [0; 2];
    if syscall(
        libc::SYS_prlimit64,
        0,
        libc::RLIMIT_NOFILE,
        std::ptr::null::<[u64; 2]>(),
        &mut lim as *mut [u64; 2],
    ) != 0
    {
        return Err(errno());
    }
    let [cur, _] = lim;
    let top = c_int::try_from(cur).unwrap_or(c_int::MAX);
    for fd in 3..top {
        if fd != keep {
            syscall(libc::SYS_close, fd);
        }
    }
    Ok(())
}

/// In the child, with every signal blocked: every handled signal, and
/// `SIGPIPE` (which Rust programs ignore), back to the default; ignored
/// ones stay ignored (as std's spawn leaves them).
///
/// # Safety
///
/// Changes the calling process's dispositions: only in the child.
unsafe fn reset_signal_handlers() {
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        rest: [0; 4],
    };
    for sig in 1..NSIG as c_int {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let mut old = KernelSigaction {
            handler: libc::SIG_DFL,
            rest: [0; 4],
        };
        if libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            std::ptr::null::<KernelSigaction>(),
            &mut old as *mut KernelSigaction,
            8usize,
        ) != 0
        {
            continue;
        }
        let keep =
            old.handler == libc::SIG_DFL || (old.handler == libc::SIG_IGN && sig != libc::SIGPIPE);
        if !keep {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
    }
}

/// Tests: records the child's dispositions (its handler values).
#[cfg(test)]
unsafe fn probe_dispositions(out: &mut [usize; NSIG]) {
    for (sig, slot) in out.iter_mut().enumerate().skip(1) {
        let mut old = KernelSigaction {
            handler: usize::MAX,
            rest: [0; 4],
        };
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig as c_int,
            std::ptr::null::<KernelSigaction>(),
            &mut old as *mut KernelSigaction,
            8usize,
        );
        *slot = old.handler;
    }
}

/// A child's stack: mapped once, a guard page below it, reused.
struct Stack {
    base: *mut c_void,
    len: usize,
}

// SAFETY: the mapping belongs to the Stack alone; it is used by one spawn
// at a time (taken out of the pool, given back after clone returned).
unsafe impl Send for Stack {}

/// Stacks not in use.
static STACKS: Mutex<Vec<Stack>> = Mutex::new(Vec::new());
/// At most this many are kept (one per thread that spawns at once).
const KEPT_STACKS: usize = 16;
/// The usable size: the child's frames are small (raw system calls).
const STACK_SIZE: usize = 64 * 1024;

impl Stack {
    fn take() -> io::Result<Stack> {
        if let Some(s) = STACKS.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(s);
        }
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .unwrap_or(4096)
            .max(4096);
        let len = STACK_SIZE.div_ceil(page) * page + page;
        // SAFETY: a new private anonymous mapping; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let s = Stack { base, len };
        // The lowest page is the guard: an overflow faults instead of
        // writing into whatever is mapped below.
        // SAFETY: the first page of our own mapping.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(s)
    }

    /// The initial stack pointer (stacks grow down on every supported
    /// architecture; glibc's clone aligns it).
    fn top(&self) -> *mut c_void {
        self.base.cast::<u8>().wrapping_add(self.len).cast()
    }

    fn give_back(self) {
        let mut pool = STACKS.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < KEPT_STACKS {
            pool.push(self);
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no longer used by any child.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// `waitid(P_PIDFD, fd, WEXITED | flags)`: the status once the child has
/// ended (and is reaped), `None` with `WNOHANG` while it runs.
fn wait_pidfd(fd: RawFd, flags: c_int) -> io::Result<Option<ExitStatus>> {
    // SAFETY: an all-zero siginfo_t is valid; waitid fills it in.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointer; P_PIDFD takes the descriptor as the id.
        let rc = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                fd as libc::id_t,
                &mut info,
                libc::WEXITED | flags,
            )
        };
        if rc == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    // SAFETY: waitid filled in a SIGCHLD siginfo (or left it zero).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    let raw = match info.si_code {
        libc::CLD_KILLED => status & 0x7f,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => (status & 0xff) << 8,
    };
    Ok(Some(ExitStatus::from_raw(raw)))
}

/// `pidfd_send_signal`: never reaches another process, even after the
/// child's pid was reused.
fn send_signal(fd: RawFd, sig: c_int) -> bool {
    // SAFETY: a plain system call on our pidfd, no pointers.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        ) == 0
    }
}

/// Children dropped before they ended: killed, and reaped by the next spawn.
static ORPHANS: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());

fn reap_orphans() {
    let mut o = ORPHANS.lock().unwrap_or_else(|p| p.into_inner());
    if !o.is_empty() {
        o.retain(|fd| matches!(wait_pidfd(fd.as_raw_fd(), libc::WNOHANG), Ok(None)));
    }
}

/// A child's pidfd, registered with the runtime only once something waits
/// for the child's end: a command whose output closed first is usually
/// collected with one `waitid`, without the two `epoll_ctl` and the
/// wake-up of a registered pidfd.
enum Pidfd {
    Plain(OwnedFd),
    Watched(AsyncFd<OwnedFd>),
}

impl Pidfd {
    fn raw(&self) -> RawFd {
        match self {
            Pidfd::Plain(fd) => fd.as_raw_fd(),
            Pidfd::Watched(fd) => fd.as_raw_fd(),
        }
    }

    fn into_owned(self) -> OwnedFd {
        match self {
            Pidfd::Plain(fd) => fd,
            Pidfd::Watched(fd) => fd.into_inner(),
        }
    }
}

/// Registers a pidfd with the current runtime (readable once the process
/// has exited); on failure the descriptor comes back with the error.
fn register(fd: OwnedFd) -> Result<AsyncFd<OwnedFd>, (OwnedFd, io::Error)> {
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the same
    // descriptor until the AsyncFd is dropped or unwrapped.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|e| e.into_parts())
}

/// A started child. Killed (`SIGKILL`) if dropped before it ended, and
/// reaped in any case.
pub(crate) struct Child {
    pid: i32,
    pidfd: Option<Pidfd>,
    status: Option<ExitStatus>,
    /// Our end of its standard input, if piped.
    pub(crate) stdin: Option<pipe::Sender>,
    /// Our end of its standard output, if piped.
    pub(crate) stdout: Option<pipe::Receiver>,
    /// Our end of its standard error, if piped.
    pub(crate) stderr: Option<pipe::Receiver>,
}

impl Child {
    /// The child's pid (and, after `process_group`, its group's id).
    pub(crate) fn id(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// The exit status if the child has ended (reaping it), else `None`.
    pub(crate) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let Some(fd) = &self.pidfd else {
            return Err(io::Error::other("child handle without a pidfd"));
        };
        let s = wait_pidfd(fd.raw(), libc::WNOHANG)?;
        self.status = s;
        Ok(s)
    }

    /// The pidfd, registered with the runtime (on first use: a command
    /// whose status is collected without waiting never registers it).
    fn watched(&mut self) -> io::Result<&AsyncFd<OwnedFd>> {
        if let Some(Pidfd::Plain(fd)) = self.pidfd.take_if(|p| matches!(p, Pidfd::Plain(_))) {
            match register(fd) {
                Ok(fd) => self.pidfd = Some(Pidfd::Watched(fd)),
                Err((fd, e)) => {
                    self.pidfd = Some(Pidfd::Plain(fd));
                    return Err(e);
                }
            }
        }
        match &self.pidfd {
            Some(Pidfd::Watched(fd)) => Ok(fd),
            _ => Err(io::Error::other("child handle without a pidfd")),
        }
    }

    /// Waits for the child to end. Cancel-safe: a status read is kept.
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(s) = self.status {
                return Ok(s);
            }
            // Ended already (a command whose output has closed, usually):
            // collected without registering the pidfd.
            if !matches!(self.pidfd, Some(Pidfd::Watched(_))) {
                if let Some(s) = self.try_wait()? {
                    return Ok(s);
                }
            }
            let fd = self.watched()?;
            // Readable once the child has ended (also when it ended before
            // the pidfd was registered: epoll reports the state on ADD).
            let mut ready = fd.readable().await?;
            match wait_pidfd(fd.as_raw_fd(), libc::WNOHANG)? {
                Some(s) => self.status = Some(s),
                None => ready.clear_ready(),
            }
        }
    }

    /// Whether the child's status has been collected (its pid, and the
    /// number of a group it led, may then be reused).
    pub(crate) fn is_reaped(&self) -> bool {
        self.status.is_some()
    }

    /// Waits until the child has ended, without reaping it (so its pid
    /// stays reserved until [`Child::try_wait`]). Cancel-safe.
    pub(crate) async fn ended(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        let fd = self.watched()?;
        // A pidfd is readable once its process has exited (and stays so).
        let _ready = fd.readable().await?;
        Ok(())
    }

    /// Sends `SIGKILL` to the child (not its group) unless it has been
    /// reaped.
    pub(crate) fn start_kill(&self) -> bool {
        match (&self.pidfd, self.status) {
            (Some(fd), None) => send_signal(fd.raw(), libc::SIGKILL),
            _ => false,
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        self.start_kill();
        if let Ok(Some(_)) = self.try_wait() {
            return;
        }
        let Some(fd) = self.pidfd.take() else {
            return;
        };
        // Reaped when it has died: by a task when there is a runtime, else
        // by the next spawn.
        let orphan = |fd: OwnedFd| ORPHANS.lock().unwrap_or_else(|p| p.into_inner()).push(fd);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let fd = match fd {
                        Pidfd::Watched(fd) => fd,
                        Pidfd::Plain(fd) => match register(fd) {
                            Ok(fd) => fd,
                            Err((fd, _)) => return orphan(fd),
                        },
                    };
                    if fd.readable().await.is_ok() {
                        let _ = wait_pidfd(fd.as_raw_fd(), 0);
                    }
                });
            }
            Err(_) => orphan(fd.into_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Real children, as root (tests/run runs as root): exit statuses,
    //! signals, pipes, exec failures, the cgroup, the account, signal state
    //! and descriptors, each read back from the child itself.
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn need_root() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the spawn tests need root (tests/run runs as root)"
        );
    }

    /// Runs `s` with pipes on all three descriptors, feeding `input`.
    async fn run(mut s: Spawn, input: &[u8]) -> (ExitStatus, String, String) {
        s.stdin(Stdio::Piped)
            .stdout(Stdio::Piped)
            .stderr(Stdio::Piped);
        let mut c = s.spawn().expect("spawn");
        let mut stdin = c.stdin.take().expect("stdin");
        let mut stdout = c.stdout.take().expect("stdout");
        let mut stderr = c.stderr.take().expect("stderr");
        let input = input.to_vec();
        let feed = async move {
            let _ = stdin.write_all(&input).await;
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (_, o, e) = tokio::join!(
            feed,
            stdout.read_to_end(&mut out),
            stderr.read_to_end(&mut err)
        );
        o.expect("read stdout");
        e.expect("read stderr");
        let st = c.wait().await.expect("wait");
        (
            st,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    fn sh(script: &str) -> Spawn {
        let mut s = Spawn::new("/bin/sh");
        s.args(["-c", script]);
        s
    }

    fn status_field<'a>(status: &'a str, name: &str) -> &'a str {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    }

    #[tokio::test]
    async fn exit_status_and_pipes() {
        need_root();
        let (st, out, err) = run(sh("cat; echo oops >&2; exit 7"), b"hello\n").await;
        assert_eq!(st.code(), Some(7));
        assert_eq!(out, "hello\n");
        assert_eq!(err, "oops\n");
        let (st, out, _) = run(sh("true"), b"").await;
        assert_eq!((st.code(), st.signal(), out.as_str()), (Some(0), None, ""));
    }

    /// A child that has ended when it is waited for is collected without
    /// registering its pidfd; one still running is registered and waited.
    #[tokio::test]
    async fn the_pidfd_is_registered_only_to_wait() {
        need_root();
        let mut c = sh("exit 3").spawn().expect("spawn");
        assert!(
            matches!(c.pidfd, Some(Pidfd::Plain(_))),
            "registered at spawn"
        );
        let zombie =
            |pid: i32| crate::server::enforce::contain::stat_of(pid).is_some_and(|i| i.zombie);
        let t0 = std::time::Instant::now();
        while !zombie(c.pid) {
            assert!(t0.elapsed().as_secs() < 5, "the child did not exit");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(c.wait().await.expect("wait").code(), Some(3));
        assert!(
            matches!(c.pidfd, Some(Pidfd::Plain(_))),
            "registered to collect an ended child"
        );

        // Held until its input closes: running whatever the machine's load.
        let mut s = sh("read x; exit 4");
        s.stdin(Stdio::Piped);
        let mut c = s.spawn().expect("spawn");
        let stdin = c.stdin.take().expect("stdin");
        let waited = tokio::time::timeout(std::time::Duration::from_millis(100), c.wait()).await;
        assert!(waited.is_err(), "a child waiting for input ended");
        assert!(
            matches!(c.pidfd, Some(Pidfd::Watched(_))),
            "waited without registering"
        );
        drop(stdin);
        assert_eq!(c.wait().await.expect("wait").code(), Some(4));
    }

    #[tokio::test]
    async fn death_by_signal_and_kill() {
        need_root();
        let (st, _, _) = run(sh("kill -TERM $$; sleep 5"), b"").await;
        assert_eq!((st.code(), st.signal()), (None, Some(libc::SIGTERM)));
        let mut s = Spawn::new("/bin/sleep");
        s.args(["30"]);
        let mut c = s.spawn().expect("spawn");
        assert_eq!(c.try_wait().expect("try_wait"), None);
        assert!(c.start_kill());
        let st = tokio::time::timeout(std::time::Duration::from_secs(5), c.wait())
            .await
            .expect("killed child ends")
            .expect("wait");
        assert_eq!(st.signal(), Some(libc::SIGKILL));
        // Reaped: a second wait gives the same, a kill reaches nothing.
        assert_eq!(c.wait().await.expect("wait").signal(), Some(libc::SIGKILL));
        assert!(!c.start_kill());
    }

    #[tokio::test]
    async fn argv0_arguments_environment_and_directory() {
        need_root();
        let mut s = Spawn::new("/bin/cat");
        s.arg0("mycat").args(["/proc/self/cmdline"]);
        let (_, out, _) = run(s, b"").await;
        assert_eq!(out, "mycat\0/proc/self/cmdline\0");
        let mut s = Spawn::new("/usr/bin/env");
        s.env("A", "1").envs([("B", "2"), ("A", "3")]);
        let (_, out, _) = run(s, b"").await;
        assert_eq!(out, "A=3\nB=2\n", "only what was set, later values winning");
        let mut s = Spawn::new("/bin/pwd");
        s.current_dir("/usr/share");
        let (_, out, _) = run(s, b"").await;
        assert_eq!(out, "/usr/share\n");
    }

    #[tokio::test]
    async fn exec_failures_are_errors() {
        need_root();
        let e = Spawn::new("/nonexistent/program")
            .spawn()
            .err()
            .expect("ENOENT");
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
        let dir = tempfile::tempdir().expect("tempdir");
        // Not executable: even root may not run a file without an x bit.
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "#!/bin/sh\ntrue\n").expect("write");
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = Spawn::new(&plain).spawn().err().expect("EACCES");
        assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
        // No `#!` and not a binary: no /bin/sh fallback.
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "true\n").expect("write");
        std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let e = Spawn::new(&junk).spawn().err().expect("ENOEXEC");
        assert_eq!(e.raw_os_error(), Some(libc::ENOEXEC), "{e}");
        // A step before exec names itself and keeps the kind.
        let mut s = Spawn::new("/bin/true");
        s.current_dir(dir.path().join("missing"));
        let e = s.spawn().err().expect("chdir fails");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().starts_with("chdir: "), "{e}");
    }

    #[tokio::test]
    async fn own_process_group_or_session_on_a_terminal() {
        need_root();
        let stat_fields = |out: &str| -> Vec<i64> {
            let rest = &out[out.rfind(')').expect("stat") + 1..];
            rest.split_whitespace()
                .skip(1)
                .take(4)
                .map(|f| f.parse().expect("number"))
                .collect()
        };
        // Fields after the state: ppid, pgrp, session, tty_nr.
        let mut s = Spawn::new("/bin/cat");
        s.args(["/proc/self/stat"]).process_group();
        s.stdout(Stdio::Piped);
        let mut c = s.spawn().expect("spawn");
        let pid = i64::from(c.id());
        let mut out = String::new();
        c.stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out)
            .await
            .expect("read");
        c.wait().await.expect("wait");
        let f = stat_fields(&out);
        assert_eq!(f[1], pid, "own process group");
        assert_ne!(f[2], pid, "same session as remod");

        let pty = crate::server::ops::procs::open_pty(24, 80).expect("pty");
        let mut s = Spawn::new("/bin/cat");
        s.args(["/proc/self/stat"])
            .stdin(Stdio::Fd(pty.slave.try_clone().expect("dup")))
            .stdout(Stdio::Fd(pty.slave.try_clone().expect("dup")))
            .stderr(Stdio::Fd(pty.slave))
            .session_on_terminal();
        let mut c = s.spawn().expect("spawn");
        let pid = i64::from(c.id());
        c.wait().await.expect("wait");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        for _ in 0..200 {
            match nix::unistd::read(pty.master.as_raw_fd(), &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EIO) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
        let f = stat_fields(&String::from_utf8_lossy(&got));
        assert_eq!((f[1], f[2]), (pid, pid), "session and group leader");
        assert_ne!(f[3], 0, "a controlling terminal");
    }

    /// A cgroup below the test's own, removed on drop.
    struct TestCgroup {
        dir: PathBuf,
        rel: String,
    }

    impl TestCgroup {
        fn new(tag: &str) -> TestCgroup {
            let (dir, rel) =
                crate::server::enforce::contain::test_cgroup(&format!("spawn-test-{tag}"));
            TestCgroup { dir, rel }
        }

        fn procs(&self) -> Arc<File> {
            Arc::new(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(self.dir.join("cgroup.procs"))
                    .expect("cgroup.procs"),
            )
        }
    }

    impl Drop for TestCgroup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }

    fn nobody() -> Credentials {
        Credentials {
            uid: 65_534,
            gid: 65_534,
            groups: vec![65_534, 100],
        }
    }

    /// A spawn as `nobody` into a root-only directory: its error, checked
    /// to be `PermissionDenied` (the directory is entered as the account).
    fn chdir_as_nobody_error() -> io::Error {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let mut s = Spawn::new("/bin/true");
        s.credentials(nobody()).current_dir(dir.path());
        let e = s.spawn().err().expect("chdir as nobody fails");
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        e
    }

    #[tokio::test]
    async fn the_child_lands_in_its_cgroup() {
        need_root();
        let cg = TestCgroup::new("a");
        let mut s = Spawn::new("/bin/cat");
        s.args(["/proc/self/cgroup"]).cgroup(cg.procs());
        let (st, out, _) = run(s, b"").await;
        assert!(st.success());
        assert!(out.lines().any(|l| l == format!("0::{}", cg.rel)), "{out}");
        // The daemon itself did not move.
        let mine = std::fs::read_to_string("/proc/self/cgroup").expect("cgroup");
        assert!(!mine.contains("remo-spawn-test"), "{mine}");
    }

    #[tokio::test]
    async fn run_as_drops_uid_gid_and_groups() {
        need_root();
        let cg = TestCgroup::new("b");
        let mut s = Spawn::new("/bin/sh");
        s.args(["-c", "cat /proc/self/status /proc/self/cgroup; id"])
            .cgroup(cg.procs())
            .credentials(nobody())
            .current_dir("/");
        let (st, out, err) = run(s, b"").await;
        assert!(st.success(), "{err}");
        assert_eq!(status_field(&out, "Uid"), "65534\t65534\t65534\t65534");
        assert_eq!(status_field(&out, "Gid"), "65534\t65534\t65534\t65534");
        assert_eq!(status_field(&out, "Groups"), "100 65534");
        assert!(out.contains("uid=65534"), "{out}");
        // Still lands in the cgroup. (The move comes first, as root; this
        // kernel checks a cgroup.procs write with the credentials of the
        // descriptor's opener, so the order is not visible here.)
        assert!(out.lines().any(|l| l == format!("0::{}", cg.rel)), "{out}");
        // The spawning thread and the daemon keep theirs.
        assert!(nix::unistd::geteuid().is_root() && nix::unistd::getuid().is_root());
        let me = std::fs::read_to_string("/proc/thread-self/status").expect("status");
        assert_eq!(status_field(&me, "Uid"), "0\t0\t0\t0");
        // The directory is entered with the account's rights.
        chdir_as_nobody_error();
    }

    extern "C" fn on_usr1(_: c_int) {}

    #[tokio::test]
    async fn signal_mask_and_handlers_are_reset() {
        need_root();
        // A handler in the daemon (process-wide; nothing sends SIGUSR1 in
        // the tests) and signals blocked in the spawning thread.
        // SAFETY: installs an empty handler; blocks signals in this thread.
        unsafe {
            libc::signal(libc::SIGUSR1, on_usr1 as *const () as usize);
        }
        let mut block = nix::sys::signal::SigSet::empty();
        block.add(nix::sys::signal::Signal::SIGUSR2);
        block.add(nix::sys::signal::Signal::SIGTERM);
        let mut old = nix::sys::signal::SigSet::empty();
        nix::sys::signal::pthread_sigmask(
            nix::sys::signal::SigmaskHow::SIG_BLOCK,
            Some(&block),
            Some(&mut old),
        )
        .expect("block");
        let mut seen = Box::new([usize::MAX; NSIG]);
        let mut s = Spawn::new("/bin/cat");
        s.args(["/proc/self/status"]);
        s.probe = &mut *seen as *mut [usize; NSIG] as usize;
        let (st, out, _) = run(s, b"").await;
        nix::sys::signal::pthread_sigmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&old),
            None,
        )
        .expect("restore");
        assert!(st.success());
        // Before execve: no handler left, SIGPIPE (ignored by Rust) default.
        for (sig, h) in seen.iter().enumerate().skip(1) {
            assert!(
                *h == libc::SIG_DFL || *h == libc::SIG_IGN,
                "signal {sig}: {h:#x}"
            );
        }
        assert_eq!(seen[libc::SIGUSR1 as usize], libc::SIG_DFL);
        assert_eq!(seen[libc::SIGPIPE as usize], libc::SIG_DFL);
        // After it: nothing blocked, SIGPIPE not ignored, nothing caught.
        assert_eq!(status_field(&out, "SigBlk"), "0000000000000000");
        assert_eq!(status_field(&out, "SigCgt"), "0000000000000000");
        let ign = u64::from_str_radix(status_field(&out, "SigIgn"), 16).expect("hex");
        assert_eq!(ign & (1 << (libc::SIGPIPE - 1)), 0, "SigIgn {ign:x}");
        // The spawning thread got its own mask back.
        let me = std::fs::read_to_string("/proc/thread-self/status").expect("status");
        let blk = u64::from_str_radix(status_field(&me, "SigBlk"), 16).expect("hex");
        assert_eq!(blk & (1 << (libc::SIGUSR2 - 1)), 0);
    }

    #[tokio::test]
    async fn no_descriptor_reaches_the_child() {
        need_root();
        // A descriptor of the daemon without FD_CLOEXEC.
        let null = std::fs::File::open("/dev/null").expect("open");
        // SAFETY: F_DUPFD makes a new descriptor (no close-on-exec).
        let leaky = unsafe { libc::fcntl(null.as_raw_fd(), libc::F_DUPFD, 300) };
        assert!(leaky >= 300);
        // SAFETY: the new descriptor is ours.
        let leaky = unsafe { OwnedFd::from_raw_fd(leaky) };
        let mut s = Spawn::new("/bin/ls");
        s.args(["/proc/self/fd"]);
        let (st, out, _) = run(s, b"").await;
        drop(leaky);
        assert!(st.success());
        // 0, 1, 2 and ls's own directory handle.
        let fds: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(fds, ["0", "1", "2", "3"], "{out}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_at_once() {
        need_root();
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                tokio::spawn(async move {
                    let (st, out, _) = run(sh(&format!("echo {i}")), b"").await;
                    assert!(st.success());
                    assert_eq!(out, format!("{i}\n"));
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        assert!(STACKS.lock().unwrap().len() <= KEPT_STACKS);
    }

    #[tokio::test]
    async fn id_minus_one_is_refused_before_any_child() {
        need_root();
        // -1 is "unchanged" to setresuid/setresgid: the child would stay root.
        for (uid, gid) in [(u32::MAX, 65_534), (65_534, u32::MAX)] {
            let mut s = Spawn::new("/bin/sh");
            s.args(["-c", "id -u > /dev/null"])
                .credentials(Credentials {
                    uid,
                    gid,
                    groups: Vec::new(),
                });
            let e = s.spawn().err().expect("an id of -1 is refused");
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        }
    }

    #[test]
    fn memory_is_shared_only_when_the_account_cannot_reach_it() {
        assert!(share_memory(false, None));
        assert!(share_memory(false, Some("2\n")));
        assert!(share_memory(true, Some("0\n")));
        assert!(!share_memory(true, Some("1\n")));
        assert!(!share_memory(true, Some("2\n")));
        assert!(!share_memory(true, Some("")));
        assert!(!share_memory(true, None), "unreadable counts as not 0");
    }

    /// Sets `fs.suid_dumpable` for one test and puts the old value back,
    /// also when the test panics. The lock file (the integration tests'
    /// too) keeps parallel test processes from interleaving changes.
    struct SuidDumpable {
        old: String,
        _lock: nix::fcntl::Flock<std::fs::File>,
    }

    impl SuidDumpable {
        fn set(v: &str) -> SuidDumpable {
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open("/tmp/remo-tests-suid_dumpable.lock")
                .expect("open the lock file");
            let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
                .unwrap_or_else(|(_, e)| panic!("lock suid_dumpable: {e}"));
            let old = std::fs::read_to_string(SUID_DUMPABLE).expect("read suid_dumpable");
            std::fs::write(SUID_DUMPABLE, v).expect("write suid_dumpable");
            SuidDumpable {
                old: old.trim().to_string(),
                _lock: lock,
            }
        }
    }

    impl Drop for SuidDumpable {
        fn drop(&mut self) {
            let _ = std::fs::write(SUID_DUMPABLE, &self.old);
        }
    }

    const SUID_DUMPABLE: &str = "/proc/sys/fs/suid_dumpable";

    #[tokio::test]
    async fn a_reachable_run_as_child_gets_a_copy_of_the_memory() {
        need_root();
        for v in ["1", "2"] {
            let _g = SuidDumpable::set(v);
            // The child records its dispositions into `seen` before it
            // switches: in our memory if it shares it, else in its copy.
            let mut seen = Box::new([usize::MAX; NSIG]);
            let mut s = Spawn::new("/bin/sh");
            s.args(["-c", "grep -E '^(Uid|CapPrm|CapAmb):' /proc/self/status"])
                .credentials(nobody())
                .current_dir("/");
            s.probe = &mut *seen as *mut [usize; NSIG] as usize;
            let (st, out, err) = run(s, b"").await;
            assert!(st.success(), "{err}");
            assert!(
                seen.iter().all(|&h| h == usize::MAX),
                "suid_dumpable {v}: the run-as child wrote into our memory"
            );
            // The program as the account alone: every uid its, no capability.
            assert_eq!(
                out,
                "Uid:\t65534\t65534\t65534\t65534\nCapPrm:\t0000000000000000\nCapAmb:\t0000000000000000\n"
            );
            // Errors still come back, through the pipe: chdir as the
            // account, and execve.
            let e = chdir_as_nobody_error();
            assert!(e.to_string().contains("chdir"), "{e}");
            let mut s = Spawn::new("/nonexistent/program");
            s.credentials(nobody());
            let e = s.spawn().err().expect("no such program");
            assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        }
    }
}
