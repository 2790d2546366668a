//! Interactive processes (`icm`, `idt`, `edt`, `kill`, `resize`): a table of
//! running children per instance, each with a bounded output buffer.
//!
//! Output is never dropped: when a process's buffer is full, remod stops
//! reading from it, so the process blocks on its next write, exactly as it
//! would on a terminal that scrolls slowly (flow control). Memory per
//! process is therefore bounded by the buffer cap, and a `tar c | remo exec
//! -i 'tar x'` stream is never corrupted.
//!
//! Every child is reaped by its own waiter task (no zombies); ending a
//! session, an idle timeout or server shutdown kill the process's whole
//! container ([`crate::server::enforce::contain`]), and so does the end of its main process
//! (its leftovers). Slots are taken with [`ProcTable::reserve`], which
//! checks every cap and takes the slot in one step.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::proto::b64;
use crate::proto::record::{CHANNEL_STDERR, CHANNEL_STDOUT, MAX_RESPONSE_DATA};
use crate::server::enforce::contain::CmdBox;
use crate::server::enforce::spawn::Child;

/// Why a process could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProcError {
    /// The per-session cap is reached.
    #[error("too many interactive processes in this session")]
    TooManyInSession,
    /// The user's share is used up, or only the admins' reserve is left.
    #[error("{0}")]
    Share(ShareError),
}

/// Why a slot of a [`Shares`] pool was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ShareError {
    /// Every slot is taken.
    #[error("too many {0} running on this server")]
    Full(&'static str),
    /// Only slots reserved for admins are left.
    #[error("too many {0} running on this server (the rest are reserved for admins)")]
    Reserved(&'static str),
    /// The user holds their share.
    #[error("too many {0} running for this user")]
    User(&'static str),
}

/// The caps of a [`Shares`] pool.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShareLimits {
    /// Slots in all.
    pub total: usize,
    /// Slots one user may hold.
    pub per_user: usize,
    /// Slots only admins may take.
    pub admin_reserve: usize,
}

/// Slots shared fairly between users (commands, interactive processes):
/// checking and taking a slot is one step under one lock, so concurrent
/// requests cannot pass the check together.
pub struct Shares {
    what: &'static str,
    limits: ShareLimits,
    held: Mutex<SharesState>,
}

#[derive(Default)]
struct SharesState {
    total: usize,
    per_user: HashMap<String, usize>,
}

/// A taken slot; given back on drop.
pub(crate) struct Slot {
    pool: Arc<Shares>,
    user: String,
}

impl Shares {
    /// A pool of `what` (for messages) with the given caps.
    pub(crate) fn new(what: &'static str, limits: ShareLimits) -> Arc<Self> {
        Arc::new(Shares {
            what,
            limits,
            held: Mutex::new(SharesState::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SharesState> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot for `user` if the caps allow.
    pub(crate) fn acquire(self: &Arc<Self>, user: &str, admin: bool) -> Result<Slot, ShareError> {
        let mut st = self.lock();
        if st.total >= self.limits.total {
            return Err(ShareError::Full(self.what));
        }
        let open_to_all = self.limits.total.saturating_sub(self.limits.admin_reserve);
        if !admin && st.total >= open_to_all {
            return Err(ShareError::Reserved(self.what));
        }
        let mine = st.per_user.get(user).copied().unwrap_or(0);
        if mine >= self.limits.per_user {
            return Err(ShareError::User(self.what));
        }
        st.total += 1;
        st.per_user.insert(user.to_string(), mine + 1);
        Ok(Slot {
            pool: self.clone(),
            user: user.to_string(),
        })
    }

    /// Slots taken now (tests, metrics).
    pub(crate) fn in_use(&self) -> usize {
        self.lock().total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.pool.lock();
        st.total = st.total.saturating_sub(1);
        if let Some(n) = st.per_user.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.per_user.remove(&self.user);
            }
        }
    }
}

/// Caps and timers for interactive processes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcLimits {
    /// Live processes per instance.
    pub max_total: usize,
    /// Live processes per user.
    pub max_per_user: usize,
    /// Process slots only admins may take.
    pub admin_reserve: usize,
    /// Live processes per session.
    pub max_per_session: usize,
    /// Buffered output per process before reading pauses.
    pub buffer_bytes: usize,
    /// A process nobody asked about for this long is killed.
    pub idle: Duration,
}

/// Where a process's standard input goes.
pub(crate) enum Input {
    /// A pipe.
    Pipe(pipe::Sender),
    /// The master side of its terminal.
    Pty(Arc<AsyncFd<OwnedFd>>),
}

impl Input {
    async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Input::Pipe(p) => p.write_all(data).await,
            Input::Pty(fd) => {
                let mut rest = data;
                while !rest.is_empty() {
                    let mut guard = fd.writable().await?;
                    match guard.try_io(|f| {
                        nix::unistd::write(f.get_ref(), rest).map_err(std::io::Error::from)
                    }) {
                        Ok(Ok(n)) => rest = rest.get(n..).unwrap_or(&[]),
                        Ok(Err(e)) => return Err(e),
                        Err(_would_block) => continue,
                    }
                }
                Ok(())
            }
        }
    }
}

#[derive(Default)]
struct State {
    buf: VecDeque<(u8, Bytes)>,
    buffered: usize,
    open_streams: usize,
    exit: Option<ExitStatus>,
    /// Output bytes handed out by [`Proc::collect`] so far (all channels).
    handed_out: u64,
    /// Exited and every output stream at its end (or given up on).
    done: bool,
    last_active: Option<Instant>,
}

/// One interactive process.
pub(crate) struct Proc {
    /// Its id on the wire.
    pub id: String,
    /// The session that owns it; other sessions get `not_found`.
    pub session: String,
    pgid: i32,
    pty: Option<Arc<AsyncFd<OwnedFd>>>,
    input: tokio::sync::Mutex<Option<Input>>,
    state: Mutex<State>,
    changed: Notify,
    space: Notify,
    cap: usize,
    forgotten: CancellationToken,
    /// Its slots in the caps, given back when it is forgotten.
    slots: Mutex<Option<Reservation>>,
}

/// What a poll of a process returned.
pub struct Collected {
    /// Output chunks with their channel bytes, oldest first.
    pub chunks: Vec<(u8, Bytes)>,
    /// False once the process has exited and all its output is in `chunks`.
    pub running: bool,
    /// Exit status, once exited.
    pub exit: Option<ExitStatus>,
    /// The stream offset of `chunks`' first byte: the output bytes handed
    /// out before this poll (all channels, in collection order). Concurrent
    /// polls can be answered out of order; this puts them back.
    pub offset: u64,
}

impl Proc {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True for a process started on a terminal.
    pub(crate) fn is_pty(&self) -> bool {
        self.pty.is_some()
    }

    /// Marks the process as used now (for the idle timeout).
    pub(crate) fn touch(&self) {
        self.lock().last_active = Some(Instant::now());
    }

    /// Writes to its standard input. Errors mean the process no longer
    /// reads (closed stdin or exited); the data is then discarded.
    pub(crate) async fn write_input(&self, data: &[u8]) -> bool {
        let mut input = self.input.lock().await;
        match input.as_mut() {
            Some(i) => {
                if i.write_all(data).await.is_err() {
                    *input = None;
                    false
                } else {
                    true
                }
            }
            None => false,
        }
    }

    /// Closes standard input; on a terminal, sends the EOF character instead.
    pub(crate) async fn close_input(&self) {
        let mut input = self.input.lock().await;
        match input.as_mut() {
            Some(i @ Input::Pty(_)) => {
                let _ = i.write_all(&[0x04]).await;
            }
            Some(Input::Pipe(_)) => *input = None,
            None => {}
        }
    }

    /// Sends a signal to the whole process group, by number: only while
    /// the leader is unreaped (its pid, the group's number, is reserved
    /// until then). The lock is held across the signal, and the leader is
    /// reaped under it ([`reap`]), so the number is never a reused one.
    pub(crate) fn signal(&self, sig: nix::sys::signal::Signal) -> bool {
        let st = self.lock();
        if st.exit.is_some() {
            return false;
        }
        let sent = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.pgid), sig).is_ok();
        drop(st);
        sent
    }

    /// Sets the terminal size; the kernel sends SIGWINCH to the foreground group.
    pub(crate) fn resize(&self, rows: u16, cols: u16) -> std::io::Result<()> {
        let Some(fd) = &self.pty else {
            return Err(std::io::Error::other("not a terminal"));
        };
        set_winsize(fd.get_ref(), rows, cols)
    }

    /// Waits up to `wait` for output (returning as soon as there is some, or
    /// the process has finished), then takes everything buffered.
    pub(crate) async fn collect(
        &self,
        wait: Duration,
        gone: impl std::future::Future<Output = ()>,
    ) -> Collected {
        let deadline = Instant::now() + wait;
        tokio::pin!(gone);
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.lock();
                if !st.buf.is_empty() || st.done {
                    break;
                }
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => break,
                _ = &mut gone => break,
            }
        }
        let mut st = self.lock();
        st.last_active = Some(Instant::now());
        let chunks: Vec<(u8, Bytes)> = st.buf.drain(..).collect();
        st.buffered = 0;
        let offset = st.handed_out;
        let bytes: usize = chunks.iter().map(|(_, d)| d.len()).sum();
        st.handed_out = offset.saturating_add(bytes as u64);
        let done = st.done;
        let exit = st.exit;
        drop(st);
        self.space.notify_waiters();
        Collected {
            chunks,
            running: !done,
            exit: if done { exit } else { None },
            offset,
        }
    }

    async fn push(&self, channel: u8, data: Bytes) {
        loop {
            let space = self.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            {
                let mut st = self.lock();
                if st.buffered < self.cap {
                    st.buffered += data.len();
                    st.buf.push_back((channel, data));
                    drop(st);
                    self.changed.notify_waiters();
                    return;
                }
            }
            // Full: stop reading until a poll drains the buffer.
            space.await;
        }
    }

    fn stream_ended(&self) {
        {
            let mut st = self.lock();
            st.open_streams = st.open_streams.saturating_sub(1);
        }
        self.changed.notify_waiters();
    }
}

/// The signal names `kill` accepts.
pub(crate) fn parse_signal(name: &str) -> Option<nix::sys::signal::Signal> {
    use nix::sys::signal::Signal;
    Some(match name {
        "TERM" => Signal::SIGTERM,
        "KILL" => Signal::SIGKILL,
        "INT" => Signal::SIGINT,
        "HUP" => Signal::SIGHUP,
        _ => return None,
    })
}

fn set_winsize(fd: &OwnedFd, rows: u16, cols: u16) -> std::io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which is valid
    // for the duration of the call; the fd is owned and open.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A pseudo-terminal pair for a new process.
pub(crate) struct PtyPair {
    /// Our side.
    pub master: OwnedFd,
    /// The child's side (its stdin/stdout/stderr and controlling terminal).
    pub slave: OwnedFd,
}

/// Opens a pseudo-terminal with the given size. Both sides are
/// close-on-exec from the moment they exist (`O_CLOEXEC` on `/dev/ptmx`,
/// the slave through `TIOCGPTPEER` with `O_CLOEXEC`), so no command
/// started meanwhile by another session can inherit them; the master is
/// non-blocking (tokio).
pub(crate) fn open_pty(rows: u16, cols: u16) -> std::io::Result<PtyPair> {
    use std::os::fd::FromRawFd;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: open with a valid C string; the result is checked.
    let m = unsafe { libc::open(c"/dev/ptmx".as_ptr(), flags | libc::O_NONBLOCK) };
    if m < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that we own.
    let master = unsafe { OwnedFd::from_raw_fd(m) };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from a valid pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: TIOCGPTPEER (Linux 4.13) takes open flags and returns a new
    // descriptor for the slave.
    let sl = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if sl < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that we own.
    let slave = unsafe { OwnedFd::from_raw_fd(sl) };
    set_winsize(&master, rows, cols)?;
    Ok(PtyPair { master, slave })
}

/// The processes of one instance.
pub struct ProcTable {
    map: Mutex<HashMap<String, Arc<Proc>>>,
    limits: ProcLimits,
    users: Arc<Shares>,
    sessions: Arc<Shares>,
}

/// The slots one interactive process holds (see [`ProcTable::reserve`]).
pub(crate) struct Reservation {
    _user: Slot,
    _session: Slot,
}

/// How a started child is wired.
pub(crate) enum Wiring {
    /// Pipes for stdin (optional), stdout and stderr.
    Pipes,
    /// A terminal (the master side).
    Pty(OwnedFd),
}

impl ProcTable {
    /// An empty table.
    pub(crate) fn new(limits: ProcLimits) -> Arc<Self> {
        Arc::new(ProcTable {
            map: Mutex::new(HashMap::new()),
            limits,
            users: Shares::new(
                "interactive processes",
                ShareLimits {
                    total: limits.max_total,
                    per_user: limits.max_per_user,
                    admin_reserve: limits.admin_reserve,
                },
            ),
            sessions: Shares::new(
                "interactive processes",
                ShareLimits {
                    total: usize::MAX,
                    per_user: limits.max_per_session,
                    admin_reserve: 0,
                },
            ),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Proc>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a process slot for `user` in `session`, checking every cap in
    /// the same step (so concurrent `icm`s cannot exceed them). Given back
    /// when the process is forgotten, or when the reservation is dropped
    /// unused.
    pub(crate) fn reserve(
        &self,
        session: &str,
        user: &str,
        admin: bool,
    ) -> Result<Reservation, ProcError> {
        let user_slot = self.users.acquire(user, admin).map_err(ProcError::Share)?;
        let session_slot = self
            .sessions
            .acquire(session, true)
            .map_err(|_| ProcError::TooManyInSession)?;
        Ok(Reservation {
            _user: user_slot,
            _session: session_slot,
        })
    }

    /// Registers a started child and its reader and waiter tasks.
    ///
    /// `container` holds the child's whole process tree: it is killed when
    /// the child has exited (its leftovers), the session ends or it idles out.
    pub(crate) fn register(
        self: &Arc<Self>,
        session: &str,
        session_end: CancellationToken,
        mut child: Child,
        wiring: Wiring,
        slots: Reservation,
        container: CmdBox,
    ) -> std::io::Result<Arc<Proc>> {
        use rand_core::RngCore;
        let mut raw = [0u8; 12];
        rand_core::OsRng.fill_bytes(&mut raw);
        let id = b64::encode(&raw);
        let pgid = i32::try_from(child.id())
            .map_err(|_| std::io::Error::other("child pid out of range"))?;
        let (pty, input, streams): (Option<Arc<AsyncFd<OwnedFd>>>, Option<Input>, usize) =
            match wiring {
                Wiring::Pipes => (None, child.stdin.take().map(Input::Pipe), 2),
                Wiring::Pty(master) => {
                    // SAFETY: `master` is an owned, open, non-blocking descriptor
                    // that nothing else closes or replaces while the AsyncFd owns it.
                    let fd = Arc::new(unsafe { AsyncFd::register(master)? });
                    (Some(fd.clone()), Some(Input::Pty(fd)), 1)
                }
            };
        let proc = Arc::new(Proc {
            id: id.clone(),
            session: session.to_string(),
            pgid,
            pty: pty.clone(),
            input: tokio::sync::Mutex::new(input),
            state: Mutex::new(State {
                open_streams: streams,
                last_active: Some(Instant::now()),
                ..State::default()
            }),
            changed: Notify::new(),
            space: Notify::new(),
            cap: self.limits.buffer_bytes.max(1),
            forgotten: CancellationToken::new(),
            slots: Mutex::new(Some(slots)),
        });
        match &pty {
            Some(fd) => {
                tokio::spawn(read_pty(proc.clone(), fd.clone()));
            }
            None => {
                let out = child.stdout.take();
                let err = child.stderr.take();
                tokio::spawn(read_pipe(proc.clone(), CHANNEL_STDOUT, out));
                tokio::spawn(read_pipe(proc.clone(), CHANNEL_STDERR, err));
            }
        }
        self.lock().insert(id, proc.clone());
        tokio::spawn(wait_child(
            self.clone(),
            proc.clone(),
            child,
            session_end,
            self.limits.idle,
            container,
        ));
        Ok(proc)
    }

    /// The process `id` if it belongs to `session`.
    pub(crate) fn get(&self, session: &str, id: &str) -> Option<Arc<Proc>> {
        self.lock()
            .get(id)
            .filter(|p| p.session == session)
            .cloned()
    }

    /// Forgets a process whose end has been reported.
    pub(crate) fn remove(&self, id: &str) {
        if let Some(p) = self.lock().remove(id) {
            p.forgotten.cancel();
            p.slots.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }

    /// Every process: its id, its session's id and whether it has a
    /// terminal (for `remod status`).
    pub(crate) fn list(&self) -> Vec<(String, String, bool)> {
        self.lock()
            .values()
            .map(|p| (p.id.clone(), p.session.clone(), p.is_pty()))
            .collect()
    }

    /// Number of processes in the table.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

async fn read_pipe<R: AsyncRead + Unpin>(proc: Arc<Proc>, channel: u8, pipe: Option<R>) {
    if let Some(mut pipe) = pipe {
        let mut buf = vec![0u8; MAX_RESPONSE_DATA];
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let data = Bytes::copy_from_slice(buf.get(..n).unwrap_or(&[]));
                    proc.push(channel, data).await;
                }
            }
        }
    }
    proc.stream_ended();
}

async fn read_pty(proc: Arc<Proc>, fd: Arc<AsyncFd<OwnedFd>>) {
    let mut buf = vec![0u8; MAX_RESPONSE_DATA];
    loop {
        let Ok(mut guard) = fd.readable().await else {
            break;
        };
        match guard.try_io(|f| {
            nix::unistd::read(f.get_ref().as_raw_fd(), &mut buf).map_err(std::io::Error::from)
        }) {
            // EIO once the last slave descriptor is closed: the terminal's end.
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                let data = Bytes::copy_from_slice(buf.get(..n).unwrap_or(&[]));
                proc.push(CHANNEL_STDOUT, data).await;
            }
            Err(_would_block) => continue,
        }
    }
    proc.stream_ended();
}

/// Sends SIGKILL to the process group `pgid` (a child's own group; never
/// 0 or 1, which would be remod's own group or init's). Callers do so only
/// while the group's leader is unreaped, so the number is still its own.
pub(crate) fn kill_group(pgid: i32) {
    debug_assert!(pgid > 1, "kill_group({pgid})");
    if pgid > 1 {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Waits for the child to end, then reaps it and records its exit in one
/// step under the process's lock, so [`Proc::signal`] never signals the
/// group's number after the leader's pid was freed.
async fn reap(proc: &Proc, child: &mut Child) -> Option<ExitStatus> {
    if child.ended().await.is_ok() {
        let mut st = proc.lock();
        if let Ok(Some(s)) = child.try_wait() {
            st.exit = Some(s);
            return Some(s);
        }
    }
    // Not reapable yet (a spurious readiness) or no pidfd: plain wait.
    child.wait().await.ok()
}

/// Reaps the child; kills its group when the session ends or it idles out;
/// marks the process done once its output has ended.
async fn wait_child(
    table: Arc<ProcTable>,
    proc: Arc<Proc>,
    mut child: Child,
    session_end: CancellationToken,
    idle: Duration,
    container: CmdBox,
) {
    let status = loop {
        let last = proc.lock().last_active.unwrap_or_else(Instant::now);
        tokio::select! {
            _ = child.ended() => break reap(&proc, &mut child).await,
            _ = session_end.cancelled() => {
                child.start_kill();
                kill_group(proc.pgid);
                container.kill();
                break reap(&proc, &mut child).await;
            }
            _ = tokio::time::sleep_until(last + idle) => {
                let last_now = proc.lock().last_active.unwrap_or_else(Instant::now);
                if last_now + idle <= Instant::now() {
                    log::info!("killing idle interactive process {}", proc.id);
                    child.start_kill();
                    kill_group(proc.pgid);
                    container.kill();
                    break reap(&proc, &mut child).await;
                }
            }
        }
    };
    container.reaped();
    {
        let mut st = proc.lock();
        st.exit = Some(status.unwrap_or_else(|| ExitStatus::from_raw(0)));
    }
    proc.changed.notify_waiters();
    // Output still held open by a background grandchild is not waited for
    // forever; on a terminal the group is gone with the session leader.
    let grace = Instant::now() + Duration::from_millis(500);
    loop {
        let changed = proc.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if proc.lock().open_streams == 0 {
            break;
        }
        tokio::select! {
            _ = &mut changed => {}
            _ = tokio::time::sleep_until(grace) => break,
        }
    }
    // The process's own tree ends with it: whatever it left running
    // (backgrounded, setsid) is killed now (docs/limits.md).
    container.finish().await;
    proc.lock().done = true;
    proc.changed.notify_waiters();
    // Drop our handle on the input so the pipe/terminal closes.
    *proc.input.lock().await = None;
    if session_end.is_cancelled() {
        table.remove(&proc.id);
        return;
    }
    // A finished process nobody collects is forgotten after the idle time.
    loop {
        let last = proc.lock().last_active.unwrap_or_else(Instant::now);
        tokio::select! {
            _ = proc.forgotten.cancelled() => return,
            _ = session_end.cancelled() => break,
            _ = tokio::time::sleep_until(last + idle) => {
                if proc.lock().last_active.unwrap_or_else(Instant::now) + idle <= Instant::now() { break; }
            }
        }
    }
    table.remove(&proc.id);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(total: usize, per_user: usize, admin_reserve: usize) -> Arc<Shares> {
        Shares::new(
            "things",
            ShareLimits {
                total,
                per_user,
                admin_reserve,
            },
        )
    }

    #[test]
    fn per_user_share_and_release() {
        let p = pool(10, 2, 0);
        let a1 = p.acquire("a", false).unwrap();
        let _a2 = p.acquire("a", false).unwrap();
        assert_eq!(
            p.acquire("a", false).err(),
            Some(ShareError::User("things"))
        );
        let _b = p.acquire("b", false).unwrap();
        drop(a1);
        let _a3 = p.acquire("a", false).unwrap();
        assert_eq!(p.in_use(), 3);
    }

    #[test]
    fn the_reserve_is_for_admins_and_the_total_for_all() {
        let p = pool(3, 3, 1);
        let _u1 = p.acquire("u", false).unwrap();
        let _u2 = p.acquire("v", false).unwrap();
        assert_eq!(
            p.acquire("w", false).err(),
            Some(ShareError::Reserved("things"))
        );
        let _adm = p.acquire("root", true).unwrap();
        assert_eq!(
            p.acquire("root", true).err(),
            Some(ShareError::Full("things"))
        );
    }

    #[test]
    fn concurrent_acquires_never_exceed() {
        let p = pool(5, 100, 0);
        let got = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for i in 0..32 {
                let p = p.clone();
                let got = &got;
                s.spawn(move || {
                    if let Ok(slot) = p.acquire(&format!("u{i}"), false) {
                        got.lock().unwrap().push(slot);
                    }
                });
            }
        });
        assert_eq!(got.lock().unwrap().len(), 5);
        assert_eq!(p.in_use(), 5);
        got.lock().unwrap().clear();
        assert_eq!(p.in_use(), 0);
    }
}
