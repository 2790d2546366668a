//! The journal of named temporary files, so that the ones a crash leaves
//! behind are removed at the next start.
//!
//! Uploads and config candidates are written to unnamed `O_TMPFILE` files,
//! which a crash cannot leave behind. Some moments still need a name: a
//! file system without `O_TMPFILE`, the instant between giving an upload a
//! temporary name and renaming it over the target, a config candidate while
//! its validator reads it. Before remod makes such a name it writes an entry
//! here (the directory's path and identity, the name, its kind and owner),
//! and removes the entry once the name is gone. When an instance is loaded,
//! [`Journal::sweep`] removes what entries of dead processes still name.
//!
//! Entries are named `PID.START.RANDOM` (START: the writer's start time in
//! clock ticks since boot), so a sweep never touches the entries of a
//! process still running, such as another instance in the same remod or a
//! second remod sharing the data directory.
//!
//! What a sweep removes must still be what the entry named: the directory
//! is reopened by path and must have the recorded device and inode (else
//! nothing is removed), and the name must be a regular file (or, for a
//! candidate, a directory) owned by the recorded user. Names carry 48
//! random bits and were created with `O_EXCL`.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};
use serde::{Deserialize, Serialize};

use crate::proto::b64;

/// The journal's directory name, beside the audit database.
pub(crate) const DIR_NAME: &str = "remo-pending";
/// An entry is a few hundred bytes; anything longer is not ours.
const MAX_ENTRY: u64 = 16 << 10;
/// At most this many entries are looked at per sweep (a directory filled
/// by someone else must not stall a start).
const MAX_SWEEP: usize = 100_000;

/// What a journaled name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// A temporary file.
    File,
    /// A private directory (a config candidate's) and what is in it.
    Dir,
}

/// Why the journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JournalError {
    /// Creating or opening its directory failed.
    #[error("{}: {}", .0.display(), .1.desc())]
    Open(PathBuf, Errno),
    /// Its directory is not remod's own private directory.
    #[error("{}: {}", .0.display(), .1)]
    Untrusted(PathBuf, &'static str),
}

/// One entry's content.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// The directory's path (b64 of its bytes) and identity.
    dir: String,
    dev: u64,
    ino: u64,
    /// The name in it (b64 of its bytes).
    name: String,
    kind: Kind,
    /// The owner the name was created with.
    uid: u32,
}

/// What a sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Swept {
    /// Leftover names removed.
    pub removed: Vec<PathBuf>,
    /// Entries left alone: their writer still runs.
    pub live: usize,
    /// Entries whose name was not removed because it no longer was what
    /// the entry recorded (directory replaced, other owner or kind).
    pub changed: Vec<PathBuf>,
}

/// The journal of one data directory.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    dir: OwnedFd,
}

/// A journaled name; dropping it removes the entry (drop it after the name
/// is gone or has been renamed into place).
#[derive(Debug)]
pub(crate) struct Pending {
    journal: Arc<Journal>,
    entry: OsString,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let _ = unlinkat(
            Some(self.journal.dir.as_raw_fd()),
            self.entry.as_os_str(),
            UnlinkatFlags::NoRemoveDir,
        );
    }
}

/// This process's start time (field 22 of `/proc/PID/stat`).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn own_start() -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    *START.get_or_init(|| start_time(std::process::id()).unwrap_or(0))
}

fn random_tag() -> String {
    use rand_core::RngCore;
    let mut raw = [0u8; 9];
    rand_core::OsRng.fill_bytes(&mut raw);
    b64::encode(&raw).replace(['/', '+'], "_")
}

impl Journal {
    /// Opens (creating, 0700) the journal directory `path`. Its parent must
    /// already have passed the trust checks; the directory itself must be
    /// remod's own and private.
    pub(crate) fn open(path: &Path) -> Result<Arc<Journal>, JournalError> {
        let err = |e| JournalError::Open(path.to_path_buf(), e);
        match nix::unistd::mkdir(path, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(err(e)),
        }
        let fd = nix::fcntl::open(
            path,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(err)?;
        // SAFETY: `open` returned a fresh descriptor that nothing else owns.
        let dir = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let st = fstat(dir.as_raw_fd()).map_err(err)?;
        if st.st_uid != nix::unistd::geteuid().as_raw() {
            return Err(JournalError::Untrusted(
                path.to_path_buf(),
                "not owned by remod's user",
            ));
        }
        if st.st_mode & 0o077 != 0 {
            return Err(JournalError::Untrusted(
                path.to_path_buf(),
                "others have access (it must be 0700)",
            ));
        }
        Ok(Arc::new(Journal {
            path: path.to_path_buf(),
            dir,
        }))
    }

    /// Records that `name` in `dir` is about to be made, owned by `uid`.
    /// Blocking (a small file in the data directory).
    pub(crate) fn record(
        self: &Arc<Self>,
        dir: &OwnedFd,
        name: &OsStr,
        kind: Kind,
        uid: u32,
    ) -> Result<Pending, Errno> {
        let st = fstat(dir.as_raw_fd())?;
        let path = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd()))
            .map_err(|e| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))?;
        let entry = Entry {
            dir: b64::encode(path.as_os_str().as_bytes()),
            dev: st.st_dev,
            ino: st.st_ino,
            name: b64::encode(name.as_bytes()),
            kind,
            uid,
        };
        let text = serde_json::to_vec(&entry).map_err(|_| Errno::EINVAL)?;
        let file_name = OsString::from(format!(
            "{}.{}.{}",
            std::process::id(),
            own_start(),
            random_tag()
        ));
        let fd = nix::fcntl::openat(
            Some(self.dir.as_raw_fd()),
            file_name.as_os_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?;
        // SAFETY: `openat` returned a fresh descriptor that nothing else owns.
        let mut f =
            std::fs::File::from(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
        let pending = Pending {
            journal: self.clone(),
            entry: file_name,
        };
        f.write_all(&text)
            .map_err(|e| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))?;
        Ok(pending)
    }

    /// Removes what the entries of processes no longer running still name,
    /// and those entries. Blocking.
    pub(crate) fn sweep(&self) -> Swept {
        let mut out = Swept::default();
        let names = match crate::server::store::cfgfiles::fsat::names(&self.dir) {
            Ok(n) => n,
            Err(e) => {
                log::warn!("{}: cannot list: {}", self.path.display(), e.desc());
                return out;
            }
        };
        for entry in names.into_iter().take(MAX_SWEEP) {
            if is_live(&entry) {
                out.live += 1;
                continue;
            }
            match self.read_entry(&entry) {
                Some(e) => match remove_named(&e) {
                    Removed::Gone(Some(p)) => out.removed.push(p),
                    Removed::Gone(None) => {}
                    Removed::Changed(p) => out.changed.push(p),
                },
                None => log::warn!(
                    "{}: {:?} is not a journal entry; removed",
                    self.path.display(),
                    entry
                ),
            }
            let _ = unlinkat(
                Some(self.dir.as_raw_fd()),
                entry.as_os_str(),
                UnlinkatFlags::NoRemoveDir,
            );
        }
        out
    }

    fn read_entry(&self, name: &OsStr) -> Option<Entry> {
        let fd = nix::fcntl::openat(
            Some(self.dir.as_raw_fd()),
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        // SAFETY: `openat` returned a fresh descriptor that nothing else owns.
        let f =
            std::fs::File::from(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
        let mut text = Vec::new();
        f.take(MAX_ENTRY).read_to_end(&mut text).ok()?;
        serde_json::from_slice(&text).ok()
    }
}

/// Whether the entry's writer (`PID.START.…`) still runs.
fn is_live(entry: &OsStr) -> bool {
    let s = entry.to_string_lossy();
    let mut parts = s.splitn(3, '.');
    let (Some(pid), Some(start)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    if pid == std::process::id() {
        return start == own_start();
    }
    start_time(pid) == Some(start)
}

enum Removed {
    /// Nothing of the name is left (the path, if something was removed).
    Gone(Option<PathBuf>),
    /// The name is no longer what the entry recorded; left alone.
    Changed(PathBuf),
}

fn remove_named(e: &Entry) -> Removed {
    let (Ok(dir), Ok(name)) = (b64::decode(&e.dir), b64::decode(&e.name)) else {
        return Removed::Gone(None);
    };
    let dir = PathBuf::from(OsString::from_vec(dir));
    let name = OsString::from_vec(name);
    let shown = dir.join(&name);
    let Ok(fd) = nix::fcntl::open(
        &dir,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return Removed::Gone(None);
    };
    // SAFETY: `open` returned a fresh descriptor that nothing else owns.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    match fstat(fd.as_raw_fd()) {
        Ok(st) if st.st_dev == e.dev && st.st_ino == e.ino => {}
        _ => return Removed::Changed(shown),
    }
    let st = match fstatat(
        Some(fd.as_raw_fd()),
        name.as_os_str(),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) => st,
        Err(_) => return Removed::Gone(None),
    };
    let fmt = st.st_mode & libc::S_IFMT;
    let ours = st.st_uid == e.uid;
    match e.kind {
        Kind::File if ours && fmt == libc::S_IFREG => {
            match unlinkat(
                Some(fd.as_raw_fd()),
                name.as_os_str(),
                UnlinkatFlags::NoRemoveDir,
            ) {
                Ok(()) => Removed::Gone(Some(shown)),
                Err(_) => Removed::Changed(shown),
            }
        }
        Kind::Dir if ours && fmt == libc::S_IFDIR && st.st_mode & 0o077 == 0 => {
            remove_private_dir(&fd, &name, &shown)
        }
        _ => Removed::Changed(shown),
    }
}

/// Removes a candidate's private directory: the regular files in it (the
/// candidate, or the old file after an exchange) and the directory.
fn remove_private_dir(parent: &OwnedFd, name: &OsStr, shown: &Path) -> Removed {
    use crate::server::store::cfgfiles::fsat;
    let Ok(dir) = fsat::open_dir_at(parent, name) else {
        return Removed::Changed(shown.to_path_buf());
    };
    for n in fsat::names(&dir).unwrap_or_default().into_iter().take(16) {
        if fsat::stat_at(&dir, &n).is_ok_and(|st| fsat::is_regular(&st)) {
            let _ = unlinkat(
                Some(dir.as_raw_fd()),
                n.as_os_str(),
                UnlinkatFlags::NoRemoveDir,
            );
        }
    }
    match unlinkat(Some(parent.as_raw_fd()), name, UnlinkatFlags::RemoveDir) {
        Ok(()) => Removed::Gone(Some(shown.to_path_buf())),
        Err(_) => Removed::Changed(shown.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_fd(p: &Path) -> OwnedFd {
        crate::server::store::cfgfiles::fsat::open_dir_path(&p.canonicalize().unwrap(), None)
            .unwrap()
    }

    #[test]
    fn own_entries_are_live_and_dead_ones_swept() {
        let d = tempfile::tempdir().unwrap();
        let j = Journal::open(&d.path().join(DIR_NAME)).unwrap();
        let target = tempfile::tempdir().unwrap();
        let fd = dir_fd(target.path());
        let uid = nix::unistd::geteuid().as_raw();
        let p = j
            .record(&fd, OsStr::new(".a.remo-x"), Kind::File, uid)
            .unwrap();
        std::fs::write(target.path().join(".a.remo-x"), "tmp").unwrap();
        // Our own entry: the writer runs, nothing is touched.
        let s = j.sweep();
        assert_eq!((s.live, s.removed.len()), (1, 0));
        assert!(target.path().join(".a.remo-x").exists());
        // Pretend the writer died: rename the entry to a dead pid's.
        let dead = std::fs::read_dir(d.path().join(DIR_NAME))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::mem::forget(p);
        std::fs::rename(&dead, d.path().join(DIR_NAME).join("999999999.1.x")).unwrap();
        let s = j.sweep();
        assert_eq!(s.removed.len(), 1, "{s:?}");
        assert!(!target.path().join(".a.remo-x").exists());
        assert_eq!(
            std::fs::read_dir(d.path().join(DIR_NAME)).unwrap().count(),
            0
        );
    }

    #[test]
    fn a_replaced_directory_or_other_owner_is_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let jdir = d.path().join(DIR_NAME);
        let j = Journal::open(&jdir).unwrap();
        let target = tempfile::tempdir().unwrap();
        std::fs::write(target.path().join("t"), "keep").unwrap();
        let fd = dir_fd(target.path());
        // Recorded for another uid: not removed.
        std::mem::forget(j.record(&fd, OsStr::new("t"), Kind::File, 4242).unwrap());
        // The directory replaced by another of the same path.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("u"), "keep").unwrap();
        let ofd = dir_fd(other.path());
        let uid = nix::unistd::geteuid().as_raw();
        std::mem::forget(j.record(&ofd, OsStr::new("u"), Kind::File, uid).unwrap());
        drop(ofd);
        let moved = other.path().with_extension("moved");
        std::fs::rename(other.path(), &moved).unwrap();
        std::fs::create_dir(other.path()).unwrap();
        std::fs::write(other.path().join("u"), "keep").unwrap();
        for e in std::fs::read_dir(&jdir).unwrap() {
            let p = e.unwrap().path();
            let n = p.file_name().unwrap().to_string_lossy().replacen(
                &std::process::id().to_string(),
                "999999999",
                1,
            );
            std::fs::rename(&p, jdir.join(n)).unwrap();
        }
        let s = j.sweep();
        assert_eq!(s.removed.len(), 0, "{s:?}");
        assert_eq!(s.changed.len(), 2, "{s:?}");
        assert!(target.path().join("t").exists() && other.path().join("u").exists());
        std::fs::remove_dir_all(&moved).unwrap();
    }

    #[test]
    fn garbage_entries_are_removed_and_others_dirs_refused() {
        let d = tempfile::tempdir().unwrap();
        let jdir = d.path().join(DIR_NAME);
        let j = Journal::open(&jdir).unwrap();
        std::fs::write(jdir.join("1.2.x"), "not json").unwrap();
        std::fs::write(jdir.join("junk"), "{}").unwrap();
        let s = j.sweep();
        assert_eq!(s, Swept::default());
        assert_eq!(std::fs::read_dir(&jdir).unwrap().count(), 0);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&jdir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            Journal::open(&jdir),
            Err(JournalError::Untrusted(..))
        ));
    }
}
