//! The file side of configuration editing: reading the current content,
//! backups (timestamped, rotated, 0600), the candidate written beside the
//! file, validation, the atomic replace, reload and rollback.
//!
//! Order of a change: candidate written (original mode and owner) and
//! fsynced → validated → old content backed up → renamed over the file →
//! reload command. A failed validation changes nothing, not even the
//! backups; a failed reload puts the old content back (and reloads again).
//!
//! The file's directory may be writable by a less trusted account, which
//! can swap any name in it at any moment. So the file, the candidate and
//! the backups are reached only through directory descriptors with no
//! symlink followed at any component ([`fsat`]); files are opened
//! non-blocking and must be regular files; the rename happens only if the
//! name still holds the file that was read; and every one of these calls
//! runs in `spawn_blocking`, so a FIFO swapped in cannot stall a worker.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::fsat::{self, FileId};
use super::{version_of, FileSpec, LockKey};
use crate::proto::response::{ErrorCode, OpError};
use crate::server::enforce::confine::io_error;
use crate::server::store::pending::{Journal, Kind, Pending};

/// Most bytes of a command's output kept for the client, per stream.
const MAX_COMMAND_OUTPUT: usize = 64 << 10;

/// A configured file's place: its directory, opened with no symlink
/// followed, and its name there. Cheap to clone (the descriptor is shared).
#[derive(Debug, Clone)]
pub(crate) struct Location {
    /// The file's path (resolved at load time), for messages and commands.
    pub path: PathBuf,
    dir: Arc<OwnedFd>,
    dir_id: FileId,
    name: OsString,
}

impl Location {
    /// The key of the lock that serialises changes to this file.
    pub(crate) fn lock_key(&self) -> LockKey {
        LockKey {
            dir: self.dir_id,
            name: self.name.clone(),
        }
    }
}

/// The file as it is now.
#[derive(Debug, Clone)]
pub(crate) struct Current {
    /// Where it is.
    pub loc: Location,
    /// Its content; `None` if it does not exist.
    pub content: Option<Vec<u8>>,
    /// Permission bits, kept by every change.
    pub mode: Option<u32>,
    /// Owner and group, kept by every change when remod runs as root.
    pub owner: Option<(u32, u32)>,
    /// The file read (device, inode): a change replaces only this file.
    pub id: Option<FileId>,
    /// [`version_of`] the content.
    pub version: String,
}

fn errno_error(what: &str, e: Errno) -> OpError {
    io_error(what, &std::io::Error::from(e))
}

/// An error for a name that is a symlink (or not what it should be).
fn refused(what: &str, why: &str) -> OpError {
    OpError::bad_request(format!("{what} {why}; refused"))
}

/// Runs file-system work off the async worker threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OpError> + Send + 'static,
) -> Result<T, OpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| OpError::new(ErrorCode::Internal, "file task failed"))?
}

fn locate_now(path: PathBuf) -> Result<Location, OpError> {
    let what = path.display().to_string();
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(OpError::bad_request(format!("{what} is not a file path")));
    };
    let dir = fsat::open_dir_path(parent, None).map_err(|e| match e {
        Errno::ELOOP | Errno::ENOTDIR => refused(
            &parent.display().to_string(),
            "has a component that is a symbolic link or not a directory",
        ),
        e => errno_error(&parent.display().to_string(), e),
    })?;
    let st = fsat::stat(&dir).map_err(|e| errno_error(&what, e))?;
    Ok(Location {
        name: name.to_os_string(),
        path,
        dir: Arc::new(dir),
        dir_id: fsat::id_of(&st),
    })
}

/// Opens the file's directory (no symlink followed at any component).
pub(crate) async fn locate(spec: &FileSpec) -> Result<Location, OpError> {
    let path = spec.file_path().to_path_buf();
    blocking(move || locate_now(path)).await
}

/// Reads a regular file through `fd`, at most `max` bytes.
fn read_bounded(fd: OwnedFd, max: u64, what: &str) -> Result<Vec<u8>, OpError> {
    let mut content = Vec::new();
    std::fs::File::from(fd)
        .take(max.saturating_add(1))
        .read_to_end(&mut content)
        .map_err(|e| io_error(what, &e))?;
    if content.len() as u64 > max {
        return Err(OpError::new(
            ErrorCode::TooLarge,
            format!("{what} is larger than max_size ({max} bytes)"),
        ));
    }
    Ok(content)
}

/// Opens `name` in `dir` for reading: not through a symlink, without
/// blocking on a FIFO, and only if it is a regular file.
fn open_regular(
    dir: &OwnedFd,
    name: &OsStr,
    what: &str,
) -> Result<Option<(OwnedFd, nix::sys::stat::FileStat)>, OpError> {
    let fd = match fsat::open_at(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::ELOOP) => return Err(refused(what, "is a symbolic link")),
        Err(e) => return Err(errno_error(what, e)),
    };
    let st = fsat::stat(&fd).map_err(|e| errno_error(what, e))?;
    if !fsat::is_regular(&st) {
        return Err(refused(what, "is not a regular file"));
    }
    Ok(Some((fd, st)))
}

fn read_current_now(loc: Location, max_size: u64) -> Result<Current, OpError> {
    let what = loc.path.display().to_string();
    let Some((fd, st)) = open_regular(&loc.dir, &loc.name, &what)? else {
        return Ok(Current {
            loc,
            content: None,
            mode: None,
            owner: None,
            id: None,
            version: version_of(None),
        });
    };
    // A hard link someone else put here to a file they could not read.
    if st.st_nlink > 1 && !only_ours(&fsat::stat(&loc.dir).map_err(|e| errno_error(&what, e))?) {
        return Err(refused(
            &what,
            "has other hard links and its directory is writable by others",
        ));
    }
    if st.st_size as u64 > max_size {
        return Err(OpError::new(
            ErrorCode::TooLarge,
            format!("{what} is larger than max_size ({max_size} bytes)"),
        ));
    }
    let content = read_bounded(fd, max_size, &what)?;
    Ok(Current {
        version: version_of(Some(&content)),
        loc,
        content: Some(content),
        mode: Some(st.st_mode & 0o7777),
        owner: Some((st.st_uid, st.st_gid)),
        id: Some(fsat::id_of(&st)),
    })
}

/// True when only remod's user can change names in the directory `st`.
fn only_ours(st: &nix::sys::stat::FileStat) -> bool {
    st.st_uid == nix::unistd::geteuid().as_raw() && st.st_mode & 0o022 == 0
}

/// Reads the file (bounded by `max_size`) in its located directory.
pub(crate) async fn read_current(spec: &FileSpec, loc: Location) -> Result<Current, OpError> {
    let max = spec.max_size;
    blocking(move || read_current_now(loc, max)).await
}

/// `<backup_dir or the file's directory>/.NAME.remo-backup`.
pub(crate) fn backup_dir(spec: &FileSpec, name: &str) -> PathBuf {
    spec.backup_base().join(backup_dir_name(name))
}

fn backup_dir_name(name: &str) -> String {
    format!(".{name}.remo-backup")
}

/// A backup id is a UTC timestamp like `20250102T030405.123456Z`
/// (optionally `-N`); anything else (a path, `..`) is refused.
pub(crate) fn valid_backup_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// One stored backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackupInfo {
    /// Its id (file name).
    pub id: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, Unix seconds.
    pub mtime: i64,
}

/// Opens the backup directory: never through a symlink, and only one owned
/// by remod's user (root) and writable by nobody else, since remod writes,
/// reads back and deletes files there. With `create`, remod makes it
/// (0700, and `backup_dir` itself if missing); without, a missing one is
/// `None`.
fn open_backup_dir(
    spec: &FileSpec,
    loc: &Location,
    name: &str,
    create: bool,
) -> Result<Option<OwnedFd>, OpError> {
    let dir_path = backup_dir(spec, name);
    let what = dir_path.display().to_string();
    let base_path = spec.backup_base();
    let base = if spec.backup_dir.is_none() && Some(base_path.as_path()) == loc.path.parent() {
        // The file's own directory, already open.
        None
    } else {
        match fsat::open_dir_path(&base_path, create.then_some(0o700)) {
            Ok(fd) => Some(fd),
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                return Err(refused(
                    &base_path.display().to_string(),
                    "has a component that is a symbolic link or not a directory",
                ))
            }
            Err(e) => return Err(errno_error(&base_path.display().to_string(), e)),
        }
    };
    let base = base.as_ref().unwrap_or(&loc.dir);
    let dname = OsString::from(backup_dir_name(name));
    let mut made = false;
    if create {
        match nix::sys::stat::mkdirat(
            Some(base.as_raw_fd()),
            dname.as_os_str(),
            Mode::from_bits_truncate(0o700),
        ) {
            Ok(()) => made = true,
            Err(Errno::EEXIST) => {}
            Err(e) => return Err(errno_error(&what, e)),
        }
    }
    let fd = match fsat::open_dir_at(base, &dname) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) if !create => return Ok(None),
        Err(Errno::ELOOP | Errno::ENOTDIR) => {
            return Err(refused(&what, "is a symbolic link or not a directory"))
        }
        Err(e) => return Err(errno_error(&what, e)),
    };
    let st = fsat::stat(&fd).map_err(|e| errno_error(&what, e))?;
    let euid = nix::unistd::geteuid().as_raw();
    if st.st_uid != euid {
        return Err(refused(
            &what,
            &format!(
                "is owned by uid {}, not by remod's user ({euid})",
                st.st_uid
            ),
        ));
    }
    if st.st_mode & 0o022 != 0 {
        return Err(refused(&what, "is writable by group or others"));
    }
    check_marker(&fd, base, name, made, &what)?;
    Ok(Some(fd))
}

/// The file in a backup directory naming the configured file it belongs
/// to. Only remod can write there, but whoever may write the directory
/// around it can rename one backup directory into another's place (a
/// same-directory rename needs no write access to the directory moved):
/// `.db.remo-backup` renamed to `.app.remo-backup` would show db's
/// backups to a user granted `config:app` and restore them into app's
/// file. Not a valid backup id, so never listed or rotated.
const BACKUP_MARKER: &str = ".remo-backup-of";

/// Checks (or, in a directory just made, writes) the marker. A directory
/// from before markers is adopted only where nobody else can rename
/// directories into its place.
fn check_marker(
    dir: &OwnedFd,
    base: &OwnedFd,
    name: &str,
    made: bool,
    what: &str,
) -> Result<(), OpError> {
    let want = format!("{name}\n");
    let marker = OsStr::new(BACKUP_MARKER);
    let write = || -> Result<(), Errno> {
        let fd = fsat::open_at(
            dir,
            marker,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
            Mode::from_bits_truncate(0o600),
        )?;
        std::fs::File::from(fd)
            .write_all(want.as_bytes())
            .map_err(io_errno)
    };
    let euid = nix::unistd::geteuid().as_raw();
    // Just made, the directory is empty: one that is not was renamed into
    // its place between the mkdir and the open (a rename may replace an
    // empty directory), and is someone else's.
    let made = made && fsat::names(dir).is_ok_and(|n| n.is_empty());
    let adopt = made || fsat::stat(base).is_ok_and(|b| b.st_uid == euid && b.st_mode & 0o022 == 0);
    match fsat::open_at(dir, marker, OFlag::O_RDONLY | OFlag::O_NONBLOCK, Mode::empty()) {
        Ok(fd) => {
            let st = fsat::stat(&fd).map_err(|e| errno_error(what, e))?;
            let mut got = Vec::new();
            if fsat::is_regular(&st) {
                let _ = std::fs::File::from(fd).take(256).read_to_end(&mut got);
            }
            if got != want.as_bytes() {
                return Err(refused(
                    what,
                    &format!("belongs to another configured file (its {BACKUP_MARKER} does not name {name}); was it renamed?"),
                ));
            }
            Ok(())
        }
        Err(Errno::ENOENT) if adopt => write().map_err(|e| errno_error(what, e)),
        Err(Errno::ENOENT) => Err(refused(
            what,
            &format!(
                "has no {BACKUP_MARKER} (made by an older remod) and lies where others can rename directories; if it holds {name}'s backups: echo {name} > DIR/{BACKUP_MARKER}"
            ),
        )),
        Err(e) => Err(errno_error(what, e)),
    }
}

fn list_backups_now(dir: &OwnedFd, what: &str) -> Result<Vec<BackupInfo>, OpError> {
    let mut out = Vec::new();
    for n in fsat::names(dir).map_err(|e| errno_error(what, e))? {
        let Ok(id) = n.into_string() else {
            continue;
        };
        if !valid_backup_id(&id) {
            continue;
        }
        if let Ok(st) = fsat::stat_at(dir, OsStr::new(&id)) {
            if fsat::is_regular(&st) {
                out.push(BackupInfo {
                    id,
                    size: st.st_size as u64,
                    mtime: st.st_mtime,
                });
            }
        }
    }
    out.sort_by(|a, b| b.id.cmp(&a.id));
    Ok(out)
}

/// The backups of a file, newest first.
pub(crate) async fn list_backups(
    spec: &FileSpec,
    loc: &Location,
    name: &str,
) -> Result<Vec<BackupInfo>, OpError> {
    let (spec, loc, name) = (spec.clone(), loc.clone(), name.to_string());
    blocking(move || {
        let what = backup_dir(&spec, &name).display().to_string();
        match open_backup_dir(&spec, &loc, &name, false)? {
            Some(dir) => list_backups_now(&dir, &what),
            None => Ok(Vec::new()),
        }
    })
    .await
}

/// The content of one backup.
pub(crate) async fn read_backup(
    spec: &FileSpec,
    loc: &Location,
    name: &str,
    id: &str,
) -> Result<Vec<u8>, OpError> {
    if !valid_backup_id(id) {
        return Err(OpError::bad_request(format!("invalid backup id {id:?}")));
    }
    let (spec, loc, name, id) = (spec.clone(), loc.clone(), name.to_string(), id.to_string());
    blocking(move || {
        let what = format!("backup {id}");
        let not_found = || OpError::new(ErrorCode::NotFound, format!("{what}: not found"));
        let dir = open_backup_dir(&spec, &loc, &name, false)?.ok_or_else(not_found)?;
        let (fd, st) = open_regular(&dir, OsStr::new(&id), &what)?.ok_or_else(not_found)?;
        if st.st_size as u64 > spec.max_size {
            return Err(OpError::bad_request(format!("{what} is not usable")));
        }
        read_bounded(fd, spec.max_size, &what)
    })
    .await
}

/// `YYYYMMDDTHHMMSS.ffffffZ` for the current UTC time.
fn timestamp() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = crate::admin::civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

fn sync_fd(fd: &OwnedFd) {
    let _ = nix::unistd::fsync(fd.as_raw_fd());
}

/// Stores `content` as a new backup (0600) in the backup directory `dir`
/// and deletes the oldest ones beyond `keep`, all through `dir`'s
/// descriptor. Returns the new backup's id.
fn write_backup(dir: &OwnedFd, content: &[u8], keep: usize) -> Result<String, Errno> {
    let stamp = timestamp();
    let mut n = 0u32;
    let (id, fd) = loop {
        let id = if n == 0 {
            stamp.clone()
        } else {
            format!("{stamp}-{n}")
        };
        match fsat::open_at(
            dir,
            OsStr::new(&id),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(fd) => break (id, fd),
            Err(Errno::EEXIST) if n < 100 => n += 1,
            Err(e) => return Err(e),
        }
    };
    let mut file = std::fs::File::from(fd);
    file.write_all(content).map_err(io_errno)?;
    file.sync_all().map_err(io_errno)?;
    drop(file);
    let mut ids: Vec<String> = fsat::names(dir)?
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .filter(|i| valid_backup_id(i))
        .collect();
    ids.sort();
    let excess = ids.len().saturating_sub(keep);
    for old in ids.iter().take(excess) {
        let _ = nix::unistd::unlinkat(
            Some(dir.as_raw_fd()),
            old.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
    sync_fd(dir);
    Ok(id)
}

fn io_errno(e: std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

/// A candidate file: `<dir>/.remo-XXXX/<file name>`, so it is on the same
/// file system as the target (rename is atomic) and keeps the target's
/// name (validators such as `wg-quick strip` look at it). The private
/// directory is made and used through descriptors. Removed on drop (after
/// a replace, what is left in it is the old file).
struct Candidate {
    /// The file's directory.
    parent: Arc<OwnedFd>,
    /// The private directory's name there, descriptor and identity.
    dir_name: OsString,
    dir: OwnedFd,
    dir_id: FileId,
    /// The file's name.
    name: OsString,
    /// The candidate's identity (kept by the rename).
    id: FileId,
    /// Its path, for the validator (see [`candidate_path`]).
    path: PathBuf,
    /// The private directory's journal entry, removed after it (last field:
    /// dropped after `Drop::drop` has removed the directory).
    _pending: Pending,
}

/// The path the validator is given. Beside the file when only remod's
/// user can write the file's directory. Otherwise someone could rename the
/// private directory away (a rename within one directory needs no write
/// access to the directory renamed) and put a symlink in its place, making
/// the validator read, and print to the client, another file of that name;
/// so the path goes through remod's own descriptor of the private
/// directory, `/proc/PID/fd/N/NAME`, which keeps the file name.
fn candidate_path(loc: &Location, dir_name: &OsStr, dir: &OwnedFd) -> Result<PathBuf, Errno> {
    let base = if only_ours(&fsat::stat(&loc.dir)?) {
        loc.path.parent().unwrap_or(Path::new("/")).join(dir_name)
    } else {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            dir.as_raw_fd()
        ))
    };
    Ok(base.join(&loc.name))
}

impl Drop for Candidate {
    fn drop(&mut self) {
        use nix::unistd::{unlinkat, UnlinkatFlags};
        let _ = unlinkat(
            Some(self.dir.as_raw_fd()),
            self.name.as_os_str(),
            UnlinkatFlags::NoRemoveDir,
        );
        // Only our own directory, should the name have been swapped.
        if fsat::stat_at(&self.parent, &self.dir_name)
            .is_ok_and(|st| fsat::id_of(&st) == self.dir_id)
        {
            let _ = unlinkat(
                Some(self.parent.as_raw_fd()),
                self.dir_name.as_os_str(),
                UnlinkatFlags::RemoveDir,
            );
        }
    }
}

fn random_suffix() -> String {
    use rand_core::RngCore;
    let mut raw = [0u8; 6];
    rand_core::OsRng.fill_bytes(&mut raw);
    crate::proto::b64::encode(&raw)
}

/// Writes `content` as a candidate beside the file, with `mode` and
/// `owner`, fsynced: first to an unnamed file, which a crash cannot leave
/// behind, then linked into a private directory (journaled, see
/// [`crate::server::store::pending`]) for the validator and the rename. Where the
/// file system has no `O_TMPFILE`, written in the private directory.
fn write_candidate(
    loc: &Location,
    content: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
    journal: &Arc<Journal>,
) -> Result<Candidate, Errno> {
    let fill = |f: &mut std::fs::File| -> Result<FileId, Errno> {
        f.write_all(content).map_err(io_errno)?;
        // The owner first: a chown clears set-id bits, even root's. The
        // candidate is unnamed or in remod's private directory, so its
        // new owner cannot open it in between.
        if let Some((uid, gid)) = owner {
            if nix::unistd::geteuid().is_root() {
                std::os::unix::fs::fchown(&*f, Some(uid), Some(gid)).map_err(io_errno)?;
            }
        }
        nix::sys::stat::fchmod(f.as_raw_fd(), Mode::from_bits_truncate(mode))?;
        f.sync_all().map_err(io_errno)?;
        Ok(fsat::id_of(&nix::sys::stat::fstat(f.as_raw_fd())?))
    };
    let mut unnamed = match fsat::open_at(
        &loc.dir,
        OsStr::new("."),
        OFlag::O_TMPFILE | OFlag::O_WRONLY,
        Mode::from_bits_truncate(0o600),
    ) {
        Ok(fd) => Some(std::fs::File::from(fd)),
        Err(Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL) => None,
        Err(e) => return Err(e),
    };
    let early_id = match &mut unnamed {
        Some(f) => Some(fill(f)?),
        None => None,
    };
    let dir_name = OsString::from(format!(".remo-{}", random_suffix()));
    let euid = nix::unistd::geteuid().as_raw();
    let pending = journal.record(&loc.dir, &dir_name, Kind::Dir, euid)?;
    nix::sys::stat::mkdirat(
        Some(loc.dir.as_raw_fd()),
        dir_name.as_os_str(),
        Mode::from_bits_truncate(0o700),
    )?;
    let dir = fsat::open_dir_at(&loc.dir, &dir_name)?;
    let st = fsat::stat(&dir)?;
    // Someone swapped in a directory of their own between mkdir and open.
    if st.st_uid != euid || st.st_mode & 0o077 != 0 {
        return Err(Errno::EBUSY);
    }
    let mut cand = Candidate {
        parent: loc.dir.clone(),
        dir_id: fsat::id_of(&st),
        path: candidate_path(loc, &dir_name, &dir)?,
        dir_name,
        dir,
        name: loc.name.clone(),
        id: (0, 0),
        _pending: pending,
    };
    match (unnamed, early_id) {
        (Some(f), Some(id)) => {
            // /proc/self/fd: AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH.
            let from = PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
            nix::unistd::linkat(
                None,
                from.as_path(),
                Some(cand.dir.as_raw_fd()),
                Path::new(&cand.name),
                nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
            )?;
            cand.id = id;
        }
        _ => {
            let fd = fsat::open_at(
                &cand.dir,
                &cand.name,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                Mode::from_bits_truncate(0o600),
            )?;
            cand.id = fill(&mut std::fs::File::from(fd))?;
        }
    }
    Ok(cand)
}

/// Renames a candidate over the file, but only if the name still holds
/// the file `expect` (`None`: still no file); fsyncs the directory.
fn install(cand: Candidate, loc: &Location, expect: Option<FileId>) -> Result<(), OpError> {
    let what = loc.path.display().to_string();
    match fsat::replace_if(&cand.dir, &cand.name, &loc.dir, &loc.name, expect) {
        Ok(()) => {
            sync_fd(&loc.dir);
            Ok(())
        }
        Err(Errno::EBUSY) => Err(OpError::new(
            ErrorCode::Conflict,
            format!("{what} was replaced by something else meanwhile; nothing changed"),
        )),
        Err(e) => Err(errno_error(&what, e)),
    }
}

fn candidate_error(what: &str, e: Errno) -> OpError {
    match e {
        Errno::EBUSY => OpError::new(
            ErrorCode::Conflict,
            format!("{what}: the candidate directory was swapped; nothing changed"),
        ),
        Errno::ELOOP => refused(what, "candidate: a symbolic link was swapped in"),
        e => errno_error(what, e),
    }
}

/// What a validation or reload command did.
#[derive(Debug, Clone)]
pub(crate) struct CommandRun {
    /// It exited with status 0 within its time limit.
    pub ok: bool,
    /// How it ended, for messages (`exit 1`, `timed out after 30 s`, …).
    pub status: String,
    /// Its standard output then standard error (bounded).
    pub output: Vec<u8>,
}

/// Runs a configured command without a shell, `{file}` replaced by
/// `file`, with a clean environment, in its own process group, killed at
/// the time limit.
pub(crate) async fn run_command(
    argv: &[String],
    file: &Path,
    name: &str,
    timeout: u64,
) -> CommandRun {
    let fail = |status: String| CommandRun {
        ok: false,
        status,
        output: Vec::new(),
    };
    let file_s = file.to_string_lossy();
    let args: Vec<String> = argv.iter().map(|a| a.replace("{file}", &file_s)).collect();
    let Some((prog, rest)) = args.split_first() else {
        return fail("no program configured".into());
    };
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(rest)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("REMO_CONFIG_NAME", name)
        // Not the file's directory, which others may write: a reload
        // such as `python3 -m app.reload` would import from it as root.
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for k in ["LANG", "LC_ALL", "TZ", "HOME"] {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return fail(format!("{prog}: cannot start: {e}")),
    };
    let pid = child.id();
    match tokio::time::timeout(Duration::from_secs(timeout), child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let mut output = out.stdout;
            output.truncate(MAX_COMMAND_OUTPUT);
            output.extend_from_slice(out.stderr.get(..MAX_COMMAND_OUTPUT).unwrap_or(&out.stderr));
            let status = match (
                out.status.code(),
                std::os::unix::process::ExitStatusExt::signal(&out.status),
            ) {
                (Some(c), _) => format!("exit {c}"),
                (None, Some(s)) => format!("signal {s}"),
                _ => "unknown status".into(),
            };
            CommandRun {
                ok: out.status.success(),
                status: format!("{prog}: {status}"),
                output,
            }
        }
        Ok(Err(e)) => fail(format!("{prog}: {e}")),
        Err(_) => {
            if let Some(pgid) = pid.and_then(|p| i32::try_from(p).ok()) {
                crate::server::ops::procs::kill_group(pgid);
            }
            fail(format!("{prog}: timed out after {timeout} s"))
        }
    }
}

/// A change that was made.
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    /// False when the new content equals the old (nothing was done).
    pub changed: bool,
    /// The backup taken of the old content.
    pub backup: Option<String>,
    /// A reload command ran and succeeded.
    pub reloaded: bool,
    /// The version of the new content.
    pub version: String,
}

/// Why a change was not made (or was undone).
#[derive(Debug)]
pub(crate) enum CommitError {
    /// The validator refused the candidate; nothing changed.
    Invalid(CommandRun),
    /// The reload failed; the old content was put back (`restored`), and
    /// `again` is the reload run after restoring.
    Reload {
        /// The failed reload.
        run: CommandRun,
        /// The old content is in place again.
        restored: Result<(), String>,
        /// The reload after restoring, if one ran.
        again: Option<CommandRun>,
    },
    /// A file-system failure (nothing changed unless the message says so).
    Op(OpError),
}

/// Replaces the file's content with `new` following the order in the
/// module comment. The caller holds the file's lock and has checked the
/// version.
pub(crate) async fn commit(
    spec: &FileSpec,
    name: &str,
    cur: &Current,
    new: Vec<u8>,
    journal: &Arc<Journal>,
) -> Result<Committed, CommitError> {
    let version = version_of(Some(&new));
    if cur.content.as_deref() == Some(new.as_slice()) {
        return Ok(Committed {
            changed: false,
            backup: None,
            reloaded: false,
            version,
        });
    }
    let loc = cur.loc.clone();
    let target = loc.path.clone();
    let what = target.display().to_string();
    let mode = cur.mode.unwrap_or(0o644);
    let owner = cur.owner;
    let (l2, w2, j2) = (loc.clone(), what.clone(), journal.clone());
    let cand = blocking(move || {
        write_candidate(&l2, &new, mode, owner, &j2).map_err(|e| candidate_error(&w2, e))
    })
    .await
    .map_err(CommitError::Op)?;
    if let Some(argv) = &spec.validate {
        let run = run_command(argv, &cand.path, name, spec.timeout).await;
        if !run.ok {
            drop_blocking(cand).await;
            return Err(CommitError::Invalid(run));
        }
    }
    let mut backup = None;
    if let (true, Some(old)) = (spec.backup, cur.content.clone()) {
        let (s2, l2, n2) = (spec.clone(), loc.clone(), name.to_string());
        let keep = spec.backups;
        let taken = blocking(move || {
            let what = backup_dir(&s2, &n2).display().to_string();
            let dir = open_backup_dir(&s2, &l2, &n2, true)?
                .ok_or_else(|| OpError::new(ErrorCode::NotFound, format!("{what}: missing")))?;
            write_backup(&dir, &old, keep).map_err(|e| errno_error(&what, e))
        })
        .await;
        match taken {
            Ok(id) => backup = Some(id),
            Err(e) => {
                drop_blocking(cand).await;
                return Err(CommitError::Op(e));
            }
        }
    }
    let new_id = cand.id;
    let (l2, expect) = (loc.clone(), cur.id);
    blocking(move || install(cand, &l2, expect))
        .await
        .map_err(CommitError::Op)?;
    let Some(argv) = &spec.reload else {
        return Ok(Committed {
            changed: true,
            backup,
            reloaded: false,
            version,
        });
    };
    let run = run_command(argv, &target, name, spec.timeout).await;
    if run.ok {
        return Ok(Committed {
            changed: true,
            backup,
            reloaded: true,
            version,
        });
    }
    // Roll back: the old content (or no file) again, then reload again so
    // the service runs what is on disk. Only over the file installed above.
    let old = cur.content.clone();
    let (l2, j2) = (loc.clone(), journal.clone());
    let restored = blocking(move || match old {
        Some(old) => {
            let cand = write_candidate(&l2, &old, mode, owner, &j2)
                .map_err(|e| candidate_error(&what, e))?;
            install(cand, &l2, Some(new_id))
        }
        None => match fsat::stat_at(&l2.dir, &l2.name) {
            Ok(st) if fsat::id_of(&st) == new_id => nix::unistd::unlinkat(
                Some(l2.dir.as_raw_fd()),
                l2.name.as_os_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            )
            .map_err(|e| errno_error(&what, e)),
            Ok(_) => Err(OpError::new(
                ErrorCode::Conflict,
                format!("{what} was replaced by something else meanwhile"),
            )),
            Err(e) => Err(errno_error(&what, e)),
        },
    })
    .await
    .map_err(|e| e.message);
    let again = if restored.is_ok() {
        Some(run_command(argv, &target, name, spec.timeout).await)
    } else {
        None
    };
    Err(CommitError::Reload {
        run,
        restored,
        again,
    })
}

/// Removes a candidate (its `Drop` unlinks) off the async workers.
async fn drop_blocking(cand: Candidate) {
    let _ = tokio::task::spawn_blocking(move || drop(cand)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_ids() {
        let t = timestamp();
        assert!(valid_backup_id(&t), "{t}");
        assert_eq!(t.len(), "20250102T030405.123456Z".len());
        assert!(!valid_backup_id("../x") && !valid_backup_id(".x") && !valid_backup_id(""));
    }

    #[test]
    fn backups_rotate() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join(".x.remo-backup");
        std::fs::create_dir(&dir).unwrap();
        let fd = fsat::open_dir_path(&dir.canonicalize().unwrap(), None).unwrap();
        let mut ids = vec![];
        for i in 0..5 {
            ids.push(write_backup(&fd, format!("{i}").as_bytes(), 3).unwrap());
        }
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ids[2..].to_vec());
        let m = std::fs::metadata(dir.join(&ids[4])).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(m.mode() & 0o777, 0o600);
    }
}
