//! Containment (issue 17 §3): every process a session starts ends with it,
//! and a command's own process tree ends with the command.
//!
//! Two backends, chosen once per daemon:
//!
//! * **cgroup v2** (preferred): remod makes `remod.PID` below its own
//!   cgroup (under systemd: `Delegate=yes`), one directory per session
//!   below that and one per command below the session's. A child moves
//!   itself into its command's cgroup before it execs
//!   ([`super::spawn`]), so nothing it starts
//!   can leave (a cgroup is not left by `setsid`, double forks or
//!   re-parenting). Ending a command, a session or remod writes `1` to
//!   the directory's `cgroup.kill`. Optional `pids.max`/`memory.max` per
//!   session when the controllers are delegated.
//! * **subreaper** (fallback; forced with `REMO_CGROUP=off`): remod is the
//!   child subreaper (PR_SET_CHILD_SUBREAPER), so orphans are re-parented
//!   to it rather than to init, and every process it starts carries
//!   `REMO_CONTAINER=TAG` in its environment. Ending a container kills
//!   every process with its tag and every descendant of one, until none is
//!   left. A process that both clears its environment and is orphaned
//!   before the kill cannot be attributed; it is killed with remod's
//!   shutdown (every remaining child of remod is).
//!
//! In both, a background thread reaps zombies re-parented to remod.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::spawn::{Child, Spawn};

/// The environment variable that tags a container's processes.
pub(crate) const TAG_VAR: &str = "REMO_CONTAINER";

/// Why a container could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ContainError {
    /// A cgroup directory or file could not be made or opened.
    #[error("cgroup {path}: {source}")]
    Cgroup {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Per-session resource caps applied through the session's cgroup.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SessionCaps {
    /// `pids.max` (0: none).
    pub pids_max: u64,
    /// `memory.max` in bytes (0: none).
    pub memory_max: u64,
}

enum Backend {
    Cgroup { base: PathBuf },
    Reaper,
}

/// The daemon-wide containment state.
pub(crate) struct Containment {
    backend: Backend,
    /// Prefix of every tag this daemon hands out.
    prefix: String,
    /// Main pids some task waits for itself (the reaper leaves them alone).
    waited: Mutex<HashSet<i32>>,
    /// cgroup directories to remove once empty.
    cleanup: Mutex<Vec<(PathBuf, Instant)>>,
    warned_caps: std::sync::atomic::AtomicBool,
    /// Spare command cgroups kept by all sessions ([`SPARE_TOTAL`]).
    spares: std::sync::atomic::AtomicUsize,
    /// Of those, the ones kept with their files open ([`SPARE_OPEN`]).
    open_spares: std::sync::atomic::AtomicUsize,
}

static GLOBAL: OnceLock<Containment> = OnceLock::new();

fn random_hex(n: usize) -> String {
    use rand_core::RngCore;
    let mut b = vec![0u8; n];
    rand_core::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Makes remod the child subreaper, picks the backend and starts the
/// reaper thread. Called once by `remod serve` before any request.
pub(crate) fn init_daemon() -> &'static Containment {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer argument
    // and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc != 0 {
        log::warn!(
            "containment: cannot become child subreaper: {}",
            std::io::Error::last_os_error()
        );
    }
    let c = GLOBAL.get_or_init(|| Containment::new(detect()));
    if let Err(e) = std::thread::Builder::new()
        .name("remod-reaper".into())
        .spawn(reaper_loop)
    {
        log::warn!("containment: cannot start the reaper thread: {e}");
    }
    match &c.backend {
        Backend::Cgroup { base } => log::info!(
            "containment: cgroup v2, sessions and commands below {}",
            base.display()
        ),
        Backend::Reaper => log::info!(
            "containment: no cgroup v2 subtree (or REMO_CGROUP=off): remod is child subreaper \
             and tracks every descendant by its {TAG_VAR} tag"
        ),
    }
    c
}

/// The containment state. Without [`init_daemon`] (the library used in
/// process, as by tests) it is the tag-tracking backend with no reaper
/// thread and no cgroup directories.
pub(crate) fn global() -> &'static Containment {
    GLOBAL.get_or_init(|| Containment::new(Backend::Reaper))
}

impl Containment {
    fn new(backend: Backend) -> Containment {
        Containment {
            backend,
            prefix: random_hex(6),
            waited: Mutex::new(HashSet::new()),
            cleanup: Mutex::new(Vec::new()),
            warned_caps: false.into(),
            spares: 0.into(),
            open_spares: 0.into(),
        }
    }
}

/// Chooses the backend: `REMO_CGROUP=off` forces the subreaper; otherwise
/// a cgroup v2 directory below remod's own cgroup if it can be made.
fn detect() -> Backend {
    let setting = std::env::var("REMO_CGROUP").unwrap_or_default();
    if matches!(setting.as_str(), "off" | "0" | "no" | "false") {
        return Backend::Reaper;
    }
    match make_base() {
        Ok(base) => Backend::Cgroup { base },
        Err(why) => {
            log::warn!("containment: cgroup v2 not usable ({why}); using the subreaper");
            Backend::Reaper
        }
    }
}

/// The cgroup v2 mount point, from mountinfo.
pub(crate) fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        left.split_whitespace().nth(4).map(PathBuf::from)
    })
}

/// remod's own cgroup v2 path, from /proc/self/cgroup (`0::/PATH`).
pub(crate) fn own_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

fn make_base() -> Result<PathBuf, String> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    let mount = cgroup2_mount(&mi).ok_or("no cgroup2 mount")?;
    let cg = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let own = own_cgroup(&cg).ok_or("no cgroup v2 entry in /proc/self/cgroup")?;
    let own = mount.join(own.trim_start_matches('/'));
    remove_stale(&own);
    let base = own.join(format!("remod.{}", std::process::id()));
    std::fs::create_dir(&base).map_err(|e| format!("mkdir {}: {e}", base.display()))?;
    if !base.join("cgroup.kill").exists() {
        let _ = std::fs::remove_dir(&base);
        return Err("no cgroup.kill (kernel older than 5.14)".into());
    }
    // For per-session caps: pass the controllers down if they are ours to
    // pass (they are not when remod's own cgroup holds processes).
    for dir in [&own, &base] {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.subtree_control"))
        {
            for c in ["+pids", "+memory"] {
                let _ = f.write_all(c.as_bytes());
            }
        }
    }
    Ok(base)
}

/// Kills and removes the subtrees of earlier remods that did not shut
/// down (killed, crashed): `remod.PID` with no such process alive.
fn remove_stale(own: &Path) {
    let Ok(rd) = std::fs::read_dir(own) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("remod."))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let dir = e.path();
            log::warn!(
                "containment: ending what a previous remod (pid {pid}) left in {}",
                dir.display()
            );
            kill_cgroup(&dir);
            wait_empty(&dir, Duration::from_secs(2));
            remove_tree(&dir);
        }
    }
}

impl Containment {
    /// A new, empty session container.
    pub(crate) fn session(&'static self, caps: SessionCaps) -> Arc<SessionBox> {
        let tag = format!("{}.{}", self.prefix, random_hex(8));
        let dir = match &self.backend {
            Backend::Cgroup { base } => Some(base.join(format!("s-{}", random_hex(8)))),
            Backend::Reaper => None,
        };
        Arc::new(SessionBox {
            c: self,
            tag,
            dir,
            made: Mutex::new(false),
            caps,
            spare: Mutex::new(Vec::new()),
        })
    }

    fn later_rmdir(&self, dir: PathBuf) {
        self.cleanup
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((dir, Instant::now()));
    }

    /// Kills everything remod started, in every session (shutdown).
    pub(crate) fn shutdown(&self) {
        match &self.backend {
            Backend::Cgroup { base } => {
                kill_cgroup(base);
                wait_empty(base, Duration::from_secs(2));
                remove_tree(base);
            }
            Backend::Reaper => {
                kill_tagged(&self.prefix, &[]);
            }
        }
        // Whatever was re-parented to us and escaped its tag.
        let me = std::process::id() as i32;
        let kids = children_of(me);
        let waited = self
            .waited
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let roots: Vec<i32> = kids.into_iter().filter(|p| !waited.contains(p)).collect();
        if !roots.is_empty() {
            kill_tagged("\0never", &roots);
        }
        reap_once(&mut HashMap::new(), &waited);
    }
}

/// The container of one session: a cgroup directory made on first use, or
/// a tag prefix.
pub struct SessionBox {
    c: &'static Containment,
    tag: String,
    dir: Option<PathBuf>,
    made: Mutex<bool>,
    caps: SessionCaps,
    /// Emptied command cgroups kept for the session's next commands:
    /// making and removing a cgroup (and its control files) was the
    /// largest single cost left in a command. The first [`SPARE_OPEN`]
    /// with their two files open (opening them by path took about 7 % of
    /// remod's CPU per command), the rest by path.
    spare: Mutex<Vec<Spare>>,
}

/// How many emptied command cgroups a session keeps for reuse: one per
/// command it runs at once, up to this many (a client running commands
/// in parallel on one session, as `remo` fleet runs and scripts do).
const SPARE_PER_SESSION: usize = 8;

/// How many spare command cgroups the whole daemon keeps: each is a small
/// kernel object (and counts against an admin's `cgroup.max.descendants`),
/// so 10,000 idle sessions must not keep 20,000 of them.
const SPARE_TOTAL: usize = 256;

/// How many spares, daemon-wide, keep their two files open. Every
/// descriptor remod holds is copied into each child it spawns and closed
/// there (`close_range`), about 90 ns each on the project's machine: 512
/// would add some 46 µs to every command, more than the look-ups they
/// save; 64 add about 6.
const SPARE_OPEN: usize = 32;

/// A spare command cgroup: with its files open, or by its path only.
enum Spare {
    Open(CmdCgroup),
    Path(PathBuf),
}

/// A command's cgroup directory, its open `cgroup.procs` (the child
/// writes itself into it) and `cgroup.events` (read to see it is empty).
struct CmdCgroup {
    dir: PathBuf,
    procs: Arc<File>,
    events: File,
}

impl CmdCgroup {
    /// Opens the control files of an existing command cgroup.
    fn open(dir: PathBuf) -> Result<CmdCgroup, ContainError> {
        let file = |name: &str, write: bool| {
            std::fs::OpenOptions::new()
                .read(!write)
                .write(write)
                .open(dir.join(name))
                .map_err(|source| ContainError::Cgroup {
                    path: dir.clone(),
                    source,
                })
        };
        let procs = Arc::new(file("cgroup.procs", true)?);
        let events = file("cgroup.events", false)?;
        Ok(CmdCgroup { dir, procs, events })
    }

    /// Whether a process is left in it, from its open `cgroup.events`
    /// (read again from the start: the kernel makes the text anew); `None`
    /// if that cannot be read (the cgroup was removed).
    fn populated(&self) -> Option<bool> {
        use std::os::unix::fs::FileExt;
        // "populated 0\nfrozen 0\n": far less than this.
        let mut buf = [0u8; 256];
        let n = self.events.read_at(&mut buf, 0).ok()?;
        parse_populated(buf.get(..n)?)
    }
}

impl SessionBox {
    /// Marks the session as having run something; makes its cgroup.
    fn ensure_dir(&self) -> Result<Option<&Path>, ContainError> {
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        let Some(dir) = &self.dir else {
            *made = true;
            return Ok(None);
        };
        if !*made {
            std::fs::create_dir(dir).map_err(|source| ContainError::Cgroup {
                path: dir.clone(),
                source,
            })?;
            *made = true;
            self.apply_caps(dir);
        }
        Ok(Some(dir))
    }

    fn apply_caps(&self, dir: &Path) {
        let mut ok = true;
        for (file, v) in [
            ("pids.max", self.caps.pids_max),
            ("memory.max", self.caps.memory_max),
        ] {
            if v > 0 && std::fs::write(dir.join(file), v.to_string()).is_err() {
                ok = false;
            }
        }
        if !ok && !self.c.warned_caps.swap(true, Ordering::Relaxed) {
            log::warn!(
                "containment: session_pids_max/session_memory_max not applied: the pids and \
                 memory controllers are not delegated to remod's cgroup"
            );
        }
    }

    /// A container for one command of this session.
    pub(crate) fn command(self: &Arc<Self>) -> Result<CmdBox, ContainError> {
        let tag = format!("{}.{}", self.tag, random_hex(8));
        let cgroup = match self.ensure_dir()? {
            Some(sdir) => {
                let spare = self.spare.lock().unwrap_or_else(|p| p.into_inner()).pop();
                if spare.is_some() {
                    self.c.spares.fetch_sub(1, Ordering::Relaxed);
                }
                match spare {
                    Some(Spare::Open(cg)) => {
                        self.c.open_spares.fetch_sub(1, Ordering::Relaxed);
                        Some(cg)
                    }
                    Some(Spare::Path(dir)) => match CmdCgroup::open(dir.clone()) {
                        Ok(cg) => Some(cg),
                        Err(e) => {
                            self.c.later_rmdir(dir);
                            return Err(e);
                        }
                    },
                    None => Some(make_cmd_cgroup(sdir)?),
                }
            }
            None => None,
        };
        Ok(CmdBox {
            session: self.clone(),
            tag,
            cgroup,
            main: Mutex::new(None),
            ran: false.into(),
            clean: false.into(),
        })
    }

    /// Kills every process of the session (its end). A session that never
    /// ran anything costs nothing here.
    pub(crate) fn kill(&self) {
        if !*self.made.lock().unwrap_or_else(|p| p.into_inner()) {
            return;
        }
        match &self.dir {
            Some(dir) => kill_cgroup(dir),
            None => kill_tagged(&self.tag, &[]),
        }
    }
}

/// Makes a command's cgroup below the session's and opens its control
/// files.
fn make_cmd_cgroup(sdir: &Path) -> Result<CmdCgroup, ContainError> {
    let dir = sdir.join(format!("c-{}", random_hex(8)));
    std::fs::create_dir(&dir).map_err(|source| ContainError::Cgroup {
        path: dir.clone(),
        source,
    })?;
    CmdCgroup::open(dir.clone()).inspect_err(|_| {
        let _ = std::fs::remove_dir(&dir);
    })
}

impl Drop for SessionBox {
    fn drop(&mut self) {
        let spare = std::mem::take(&mut *self.spare.lock().unwrap_or_else(|p| p.into_inner()));
        self.c.spares.fetch_sub(spare.len(), Ordering::Relaxed);
        for s in spare {
            let dir = match s {
                Spare::Open(cg) => {
                    self.c.open_spares.fetch_sub(1, Ordering::Relaxed);
                    cg.dir
                }
                Spare::Path(dir) => dir,
            };
            let _ = std::fs::remove_dir(&dir);
        }
        if let Some(dir) = self.dir.take() {
            if *self.made.lock().unwrap_or_else(|p| p.into_inner()) {
                kill_cgroup(&dir);
                if std::fs::remove_dir(&dir).is_err() {
                    self.c.later_rmdir(dir);
                }
            }
        }
    }
}

/// Held (shared) while a command's main process is spawned and recorded,
/// and (exclusive) while remod's children are checked for leftovers.
/// Only spawns that stay root until `execve` take it: a run-as spawn can
/// be held by its account for as long as it likes (see
/// [`Spawn::account_can_hold`]), and a held reader would make the next
/// check wait, and every spawn behind that writer (the lock prefers
/// writers). An unrecorded run-as child only makes a check see a child no
/// one waits for, i.e. scan: never the other way round.
static SPAWNING: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// The container of one command (batch or interactive).
pub(crate) struct CmdBox {
    session: Arc<SessionBox>,
    tag: String,
    /// With the cgroup backend: the command's own cgroup, new or a spare
    /// of the session's that was empty when it was put back.
    cgroup: Option<CmdCgroup>,
    main: Mutex<Option<i32>>,
    ran: std::sync::atomic::AtomicBool,
    /// Checked after the main process was reaped: nothing is left.
    clean: std::sync::atomic::AtomicBool,
}

impl CmdBox {
    /// Puts the child into this container: the tag in its environment and,
    /// with cgroups, the command's `cgroup.procs`, which the child writes
    /// before it execs (before anything else runs in it, while it is
    /// still root).
    pub(crate) fn prepare(&self, cmd: &mut Spawn) {
        cmd.env(TAG_VAR, &self.tag);
        if let Some(cg) = &self.cgroup {
            cmd.cgroup(cg.procs.clone());
        }
    }

    /// Spawns the command's main process and records it, in one step as
    /// far as [`CmdBox::may_have_left_some`] can tell: a child that exists
    /// but is not yet recorded would look like something a command left.
    ///
    /// A run-as spawn does this without [`SPAWNING`]: its account may hold
    /// it half-way, and other users' spawns must not wait for that.
    pub(crate) fn spawn(&self, cmd: Spawn) -> std::io::Result<Child> {
        let _spawning = if cmd.account_can_hold() {
            None
        } else {
            Some(SPAWNING.read().unwrap_or_else(|p| p.into_inner()))
        };
        let child = cmd.spawn()?;
        self.started(child.id());
        Ok(child)
    }

    /// Records the main process (its own waiter reaps it, not the reaper).
    fn started(&self, pid: u32) {
        self.ran.store(true, Ordering::Relaxed);
        if let Ok(pid) = i32::try_from(pid) {
            *self.main.lock().unwrap_or_else(|p| p.into_inner()) = Some(pid);
            self.session
                .c
                .waited
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(pid);
        }
    }

    /// The main process has been reaped: its pid may now be reused, so it
    /// is no longer a root of the tree (the tag still finds the rest).
    pub(crate) fn reaped(&self) {
        if let Some(pid) = self.main.lock().unwrap_or_else(|p| p.into_inner()).take() {
            self.session
                .c
                .waited
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&pid);
        }
    }

    /// Kills every process of the command: what is left when its main
    /// process has ended, or all of it when the command is cut short.
    pub(crate) fn kill(&self) {
        match &self.cgroup {
            Some(cg) => kill_cgroup(&cg.dir),
            None => {
                let main: Vec<i32> = self
                    .main
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .copied()
                    .collect();
                // Nothing was started (refused, failed to spawn), or the
                // main process was reaped and nothing can be left: no scan.
                if !main.is_empty() || self.may_have_left_some() {
                    kill_tagged(&self.tag, &main);
                }
            }
        }
    }

    /// After the main process was reaped: whether anything of this command
    /// may still run. remod is the child subreaper, so when the main process
    /// exits its children are re-parented to remod before the main process
    /// can be reaped; everything the command left is therefore below a
    /// child of remod that no task waits for. With no such child, the /proc
    /// scan (every process's stat and environment, about a millisecond)
    /// would find nothing; it is skipped. Commands' main processes that
    /// stay root until they exec are spawned and recorded under
    /// [`SPAWNING`], so none is caught half-way; a run-as child being
    /// spawned (possibly held there by its account) or any other child of
    /// remod (a validation command, `nft`) only costs a scan.
    ///
    /// A process some other daemon started on the command's behalf (an `at`
    /// job, a `systemd-run` unit) is not below remod and is not ended: the
    /// same as with the cgroup backend, where it runs in that daemon's
    /// cgroup.
    fn may_have_left_some(&self) -> bool {
        if !self.ran.load(Ordering::Relaxed) {
            return false;
        }
        if self.clean.load(Ordering::Relaxed) {
            return false;
        }
        let waited = self
            .session
            .c
            .waited
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let me = std::process::id() as i32;
        // No main process is between its spawn and its record meanwhile.
        let _no_spawns = SPAWNING.write().unwrap_or_else(|p| p.into_inner());
        let stray = match children_within_a_page(me) {
            Some(kids) => kids
                .into_iter()
                .any(|p| !waited.contains(&p) && stat_of(p).is_some_and(|i| !i.zombie)),
            None => true,
        };
        if !stray {
            self.clean.store(true, Ordering::Relaxed);
        }
        stray
    }
}

impl CmdBox {
    /// Ends the container (kills what is left) off the async threads when
    /// that means scanning /proc.
    pub(crate) async fn finish(self) {
        let scan = self.cgroup.is_none()
            && (self
                .main
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some()
                || self.may_have_left_some());
        if !scan {
            drop(self);
        } else {
            let _ = tokio::task::spawn_blocking(move || drop(self)).await;
        }
    }
}

impl Drop for CmdBox {
    fn drop(&mut self) {
        let Some(cg) = self.cgroup.take() else {
            self.kill();
            self.reaped();
            return;
        };
        self.reaped();
        // Empty (the usual end: the main process was reaped and left
        // nothing): nothing to kill, and the session may reuse it. Only
        // remod can put a process into it (its `cgroup.procs` is root's),
        // and a cgroup without processes has none that could fork into it.
        if cg.populated() == Some(false) {
            let c = self.session.c;
            let mut spare = self.session.spare.lock().unwrap_or_else(|p| p.into_inner());
            if spare.len() < SPARE_PER_SESSION && take_slot(&c.spares, SPARE_TOTAL) {
                spare.push(if take_slot(&c.open_spares, SPARE_OPEN) {
                    Spare::Open(cg)
                } else {
                    Spare::Path(cg.dir)
                });
                return;
            }
        } else {
            kill_cgroup(&cg.dir);
        }
        if std::fs::remove_dir(&cg.dir).is_err() {
            self.session.c.later_rmdir(cg.dir);
        }
    }
}

/// Counts one more against `cap` in `count`; false (and no change) when
/// the count is already there.
fn take_slot(count: &std::sync::atomic::AtomicUsize, cap: usize) -> bool {
    count
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < cap).then_some(n + 1)
        })
        .is_ok()
}

fn kill_cgroup(dir: &Path) {
    if let Err(e) = std::fs::write(dir.join("cgroup.kill"), "1") {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("containment: cannot kill {}: {e}", dir.display());
        }
    }
}

/// True once no process is left in the cgroup (or it is gone).
fn cgroup_empty(dir: &Path) -> bool {
    populated(dir) != Some(true)
}

/// Whether the cgroup (or one below it) has a process, from its
/// `cgroup.events`; `None` if that cannot be read.
fn populated(dir: &Path) -> Option<bool> {
    parse_populated(&std::fs::read(dir.join("cgroup.events")).ok()?)
}

/// The `populated` line of a `cgroup.events` text.
fn parse_populated(text: &[u8]) -> Option<bool> {
    text.split(|&b| b == b'\n')
        .find_map(|l| match l.trim_ascii() {
            b"populated 0" => Some(false),
            b"populated 1" => Some(true),
            _ => None,
        })
}

fn wait_empty(dir: &Path, limit: Duration) {
    let t0 = Instant::now();
    while !cgroup_empty(dir) && t0.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Removes a cgroup directory and the ones below it, deepest first.
fn remove_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// One process as /proc shows it.
pub(super) struct ProcInfo {
    ppid: i32,
    pub(super) zombie: bool,
}

/// A process's parent and whether it is a zombie, from `/proc/PID/stat`.
pub(super) fn stat_of(pid: i32) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start
    // after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut it = rest.split_whitespace();
    let state = it.next()?;
    let ppid = it.next()?.parse().ok()?;
    Some(ProcInfo {
        ppid,
        zombie: state == "Z" || state == "X",
    })
}

fn tag_of(pid: i32) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let want = format!("{TAG_VAR}=");
    env.split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(want.as_bytes()))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// Children of `pid` (all its threads), from /proc.
fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
    }
    out
}

/// [`children_of`], but `None` when a thread's list is near a page long:
/// the kernel hands a longer list out in parts, and a child that exits
/// between two parts can make it skip another one.
fn children_within_a_page(pid: i32) -> Option<Vec<i32>> {
    let mut out = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    for t in tasks.flatten() {
        let Ok(s) = std::fs::read_to_string(t.path().join("children")) else {
            continue;
        };
        if s.len() > 3_500 {
            return None;
        }
        out.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
    }
    Some(out)
}

/// True if `tag` is `prefix` or below it (`prefix.…`).
fn tag_matches(tag: &str, prefix: &str) -> bool {
    tag == prefix
        || tag
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// Kills every process tagged `prefix` (or below), every descendant of one
/// and of `roots`, until a scan finds none (so forks during the kill are
/// caught on the next round).
fn kill_tagged(prefix: &str, roots: &[i32]) {
    let me = std::process::id() as i32;
    for _round in 0..50 {
        let mut parent: HashMap<i32, i32> = HashMap::new();
        let mut victims: HashSet<i32> = roots.iter().copied().collect();
        for pid in all_pids() {
            if pid == me || pid == 1 {
                continue;
            }
            let Some(info) = stat_of(pid) else { continue };
            if info.zombie {
                continue;
            }
            parent.insert(pid, info.ppid);
            if tag_of(pid).is_some_and(|t| tag_matches(&t, prefix)) {
                victims.insert(pid);
            }
        }
        // Descendants: anything whose ancestor chain reaches a victim.
        let mut grew = true;
        while grew {
            grew = false;
            for (&pid, &pp) in &parent {
                if !victims.contains(&pid) && victims.contains(&pp) {
                    victims.insert(pid);
                    grew = true;
                }
            }
        }
        victims.retain(|p| parent.contains_key(p) && *p != me);
        if victims.is_empty() {
            return;
        }
        for pid in &victims {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    log::warn!("containment: processes of {prefix} still appear after 50 rounds of SIGKILL");
}

/// Reaps zombie children of remod that no task waits for. A zombie is
/// left to its waiter for two seconds first (children remod spawned for
/// other purposes are waited for promptly by their own code).
fn reap_once(seen: &mut HashMap<i32, Instant>, waited: &HashSet<i32>) {
    let me = std::process::id() as i32;
    let now = Instant::now();
    let mut zombies = HashSet::new();
    for pid in children_of(me) {
        if waited.contains(&pid) {
            continue;
        }
        if stat_of(pid).is_some_and(|i| i.zombie) {
            zombies.insert(pid);
            let first = *seen.entry(pid).or_insert(now);
            if now.duration_since(first) >= Duration::from_secs(2) {
                let _ = nix::sys::wait::waitpid(
                    nix::unistd::Pid::from_raw(pid),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                );
            }
        }
    }
    seen.retain(|p, _| zombies.contains(p));
}

fn reaper_loop() {
    let mut seen = HashMap::new();
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let Some(c) = GLOBAL.get() else { continue };
        let waited = c.waited.lock().unwrap_or_else(|p| p.into_inner()).clone();
        reap_once(&mut seen, &waited);
        let mut pending = std::mem::take(&mut *c.cleanup.lock().unwrap_or_else(|p| p.into_inner()));
        pending.retain(|(dir, since)| {
            if !dir.exists() {
                return false;
            }
            if cgroup_empty(dir) {
                remove_tree(dir);
            }
            dir.exists() && since.elapsed() < Duration::from_secs(120)
        });
        c.cleanup
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(pending);
    }
}

/// Makes a cgroup below this test process's own, for the tests that need
/// real ones (as root): its directory and its path as `/proc/PID/cgroup`
/// shows it.
#[cfg(test)]
pub(super) fn test_cgroup(name: &str) -> (PathBuf, String) {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mount = cgroup2_mount(&mi).expect("a cgroup2 mount (tests/run runs as root)");
    let cg = std::fs::read_to_string("/proc/self/cgroup").expect("cgroup");
    let own = own_cgroup(&cg).expect("own cgroup");
    let rel = format!(
        "{}/remo-{name}-{}",
        own.trim_end_matches('/'),
        std::process::id()
    );
    let dir = mount.join(rel.trim_start_matches('/'));
    std::fs::create_dir(&dir).expect("mkdir cgroup");
    (dir, rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_and_own_path() {
        let mi = "25 30 0:22 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                  31 30 0:28 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(mi),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(cgroup2_mount("1 2 0:1 / / rw - ext4 /dev/x rw\n"), None);
        let cg = "4:memory:/x\n0::/system.slice/remod.service\n";
        assert_eq!(
            own_cgroup(cg).as_deref(),
            Some("/system.slice/remod.service")
        );
        assert_eq!(own_cgroup("1:cpu:/\n"), None);
    }

    #[test]
    fn tags_match_their_prefix_only() {
        assert!(tag_matches("a.b.c", "a.b"));
        assert!(tag_matches("a.b", "a.b"));
        assert!(!tag_matches("a.bc", "a.b"));
        assert!(!tag_matches("x", "a"));
    }

    /// A spare's open `cgroup.events`, read again from the start, follows
    /// the cgroup: empty, with a process, empty again, gone (no answer,
    /// so a removed spare is never reused). Real cgroup, as root.
    #[test]
    fn an_open_cgroup_events_follows_the_cgroup() {
        use std::io::Write as _;
        let (dir, _) = test_cgroup("contain-events");
        let cg = CmdCgroup::open(dir.clone()).expect("open its files");
        assert_eq!(cg.populated(), Some(false));
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        (&*cg.procs)
            .write_all(child.id().to_string().as_bytes())
            .expect("move the child in");
        assert_eq!(cg.populated(), Some(true));
        child.kill().expect("kill");
        child.wait().expect("wait");
        let t0 = Instant::now();
        while cg.populated() != Some(false) {
            assert!(t0.elapsed() < Duration::from_secs(5), "still populated");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::fs::remove_dir(&dir).expect("rmdir");
        assert_eq!(cg.populated(), None);
    }

    /// Spares beyond [`SPARE_OPEN`] are kept by path and still reused, and
    /// the counts come back to zero when the sessions end.
    #[test]
    fn spares_beyond_the_open_cap_are_kept_by_path() {
        let (base, _) = test_cgroup("contain-spares");
        let c: &'static Containment = Box::leak(Box::new(Containment::new(Backend::Cgroup {
            base: base.clone(),
        })));
        let sessions: Vec<_> = (0..5).map(|_| c.session(SessionCaps::default())).collect();
        let mut made = std::collections::HashSet::new();
        for round in 0..2 {
            for s in &sessions {
                let boxes: Vec<CmdBox> = (0..SPARE_PER_SESSION)
                    .map(|_| s.command().expect("a command cgroup"))
                    .collect();
                for b in &boxes {
                    let dir = b.cgroup.as_ref().expect("cgroup backend").dir.clone();
                    if round == 0 {
                        made.insert(dir);
                    } else {
                        assert!(made.contains(&dir), "round 2 made a new cgroup: {dir:?}");
                    }
                }
                // Never ran anything: empty, so each becomes a spare.
                drop(boxes);
            }
            assert_eq!(c.spares.load(Ordering::Relaxed), 5 * SPARE_PER_SESSION);
            assert_eq!(c.open_spares.load(Ordering::Relaxed), SPARE_OPEN);
        }
        drop(sessions);
        assert_eq!(c.spares.load(Ordering::Relaxed), 0);
        assert_eq!(c.open_spares.load(Ordering::Relaxed), 0);
        remove_tree(&base);
        assert!(!base.exists(), "cgroups left below {base:?}");
    }

    #[test]
    fn reads_the_populated_line_and_nothing_else() {
        assert_eq!(parse_populated(b"populated 0\nfrozen 0\n"), Some(false));
        assert_eq!(parse_populated(b"frozen 1\npopulated 1\n"), Some(true));
        for bad in [
            &b""[..],
            b"populated 2\n",
            b"populated",
            b"\xff\xfe",
            b"populated 10\n",
        ] {
            assert_eq!(parse_populated(bad), None, "{bad:?}");
        }
    }
}
