//! Descriptor-relative file-system steps for configuration files.
//!
//! A configured file often lives in a directory a less trusted account can
//! write (`/srv/app/.env`); that account can swap any name in it for a
//! symlink, a FIFO or its own directory between two calls. So every step
//! here works on directory descriptors, each component opened with
//! `O_NOFOLLOW` (no symlink is followed anywhere), files are opened
//! non-blocking and checked with `fstat` on the descriptor itself, and
//! identities are compared as (device, inode).
//!
//! All of these calls block; callers run them in `spawn_blocking`.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode};

/// A file's identity: (device, inode).
pub(crate) type FileId = (u64, u64);

/// The identity of a `stat` result.
pub(crate) fn id_of(st: &FileStat) -> FileId {
    (st.st_dev, st.st_ino)
}

/// True when `st` is a regular file.
pub(crate) fn is_regular(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG
}

/// True when `st` is a directory.
#[cfg(test)]
pub(crate) fn is_dir(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn owned(fd: std::os::fd::RawFd) -> OwnedFd {
    // SAFETY: every caller passes a descriptor a syscall just returned,
    // which nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `openat(dir, name, flags | O_NOFOLLOW | O_CLOEXEC)`.
pub(crate) fn open_at(
    dir: &OwnedFd,
    name: &OsStr,
    flags: OFlag,
    mode: Mode,
) -> Result<OwnedFd, Errno> {
    nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        mode,
    )
    .map(owned)
}

/// Opens the directory `name` in `dir` without following a symlink.
pub(crate) fn open_dir_at(dir: &OwnedFd, name: &OsStr) -> Result<OwnedFd, Errno> {
    open_at(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
}

/// `fstat` of a descriptor.
pub(crate) fn stat(fd: &OwnedFd) -> Result<FileStat, Errno> {
    nix::sys::stat::fstat(fd.as_raw_fd())
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub(crate) fn stat_at(dir: &OwnedFd, name: &OsStr) -> Result<FileStat, Errno> {
    nix::sys::stat::fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW)
}

/// Opens an absolute directory path one component at a time with
/// `O_NOFOLLOW`, so no component may be a symlink. With `create`, missing
/// components are made with `mode` by `mkdirat` on their parent.
pub(crate) fn open_dir_path(path: &Path, create: Option<u32>) -> Result<OwnedFd, Errno> {
    if !path.is_absolute() {
        return Err(Errno::EINVAL);
    }
    let mut cur = nix::fcntl::open(
        "/",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(owned)?;
    for c in path.components() {
        let name = match c {
            Component::RootDir | Component::CurDir => continue,
            Component::Normal(n) => n,
            // Resolved paths have no `..`; refuse rather than guess.
            Component::ParentDir | Component::Prefix(_) => return Err(Errno::EINVAL),
        };
        cur = match (open_dir_at(&cur, name), create) {
            (Ok(fd), _) => fd,
            (Err(Errno::ENOENT), Some(mode)) => {
                let mode = Mode::from_bits_truncate(mode);
                match nix::sys::stat::mkdirat(Some(cur.as_raw_fd()), name, mode) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                open_dir_at(&cur, name)?
            }
            (Err(e), _) => return Err(e),
        };
    }
    Ok(cur)
}

/// Renames `from` in `from_dir` over `to` in `to_dir` only if `to` is still
/// the file `expect` (or, for `None`, still absent): with `RENAME_EXCHANGE`
/// the file taken out is checked after the swap and swapped back if it was
/// not the expected one, so there is no window between check and rename.
/// `Err(EBUSY)` means "not the expected file"; nothing changed.
pub(crate) fn replace_if(
    from_dir: &OwnedFd,
    from: &OsStr,
    to_dir: &OwnedFd,
    to: &OsStr,
    expect: Option<FileId>,
) -> Result<(), Errno> {
    use nix::fcntl::{renameat2, RenameFlags};
    let (fd_a, fd_b) = (Some(from_dir.as_raw_fd()), Some(to_dir.as_raw_fd()));
    match expect {
        None => match renameat2(fd_a, from, fd_b, to, RenameFlags::RENAME_NOREPLACE) {
            Err(Errno::EEXIST) => Err(Errno::EBUSY),
            Err(Errno::EINVAL) => {
                // A file system without renameat2 flags: check, then rename.
                match stat_at(to_dir, to) {
                    Err(Errno::ENOENT) => nix::fcntl::renameat(fd_a, from, fd_b, to),
                    Ok(_) => Err(Errno::EBUSY),
                    Err(e) => Err(e),
                }
            }
            other => other,
        },
        Some(id) => match renameat2(fd_a, from, fd_b, to, RenameFlags::RENAME_EXCHANGE) {
            Ok(()) => {
                let out = stat_at(from_dir, from)?;
                if id_of(&out) == id {
                    Ok(())
                } else {
                    renameat2(fd_a, from, fd_b, to, RenameFlags::RENAME_EXCHANGE)?;
                    Err(Errno::EBUSY)
                }
            }
            Err(Errno::ENOENT) => Err(Errno::EBUSY),
            Err(Errno::EINVAL) => match stat_at(to_dir, to) {
                Ok(st) if id_of(&st) == id => nix::fcntl::renameat(fd_a, from, fd_b, to),
                Ok(_) | Err(Errno::ENOENT) => Err(Errno::EBUSY),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
    }
}

/// The names in a directory (not `.` and `..`), read through its
/// descriptor (`/proc/self/fd/N` is that directory, whatever its path now
/// leads to).
pub(crate) fn names(dir: &OwnedFd) -> Result<Vec<OsString>, Errno> {
    let rd = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))
        .map_err(|e| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))?;
        out.push(e.file_name());
    }
    Ok(out)
}

/// Why a configured path was not (fully) resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResolveError {
    /// A symlink owned by an account other than root (or remod's user):
    /// that account could re-point it, so it is not followed.
    #[error("{link} is a symlink owned by uid {uid}, not root: not followed")]
    UntrustedLink {
        /// The link.
        link: PathBuf,
        /// Its owner.
        uid: u32,
    },
    /// Too many links (a loop).
    #[error("{0}: too many levels of symbolic links")]
    Loop(PathBuf),
}

/// Resolves the symlinks in an absolute path once (at load time), as
/// `realpath` would, but follows only links owned by root or remod's own
/// user. Components that do not exist are kept as they are.
pub(crate) fn resolve_links(path: &Path) -> Result<PathBuf, ResolveError> {
    use std::collections::VecDeque;
    use std::os::unix::fs::MetadataExt;
    let euid = nix::unistd::geteuid().as_raw();
    let mut out = PathBuf::from("/");
    let mut pending: VecDeque<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::RootDir | Component::Prefix(_) => None,
            other => Some(other.as_os_str().to_os_string()),
        })
        .collect();
    let mut hops = 0;
    while let Some(c) = pending.pop_front() {
        if c == "." {
            continue;
        }
        if c == ".." {
            out.pop();
            continue;
        }
        let next = out.join(&c);
        match std::fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() => {
                if m.uid() != 0 && m.uid() != euid {
                    return Err(ResolveError::UntrustedLink {
                        link: next,
                        uid: m.uid(),
                    });
                }
                hops += 1;
                let target = match std::fs::read_link(&next) {
                    Ok(t) if hops <= 40 => t,
                    _ => return Err(ResolveError::Loop(path.to_path_buf())),
                };
                if target.is_absolute() {
                    out = PathBuf::from("/");
                }
                for t in target.components().rev() {
                    match t {
                        Component::RootDir | Component::Prefix(_) => {}
                        other => pending.push_front(other.as_os_str().to_os_string()),
                    }
                }
            }
            _ => out = next,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_trusted_links_and_refuses_symlinked_components() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().canonicalize().unwrap();
        std::fs::create_dir(base.join("real")).unwrap();
        std::fs::write(base.join("real/f"), "x").unwrap();
        std::os::unix::fs::symlink("real", base.join("dirlink")).unwrap();
        std::os::unix::fs::symlink("../real/f", base.join("real/rel")).unwrap();
        // Links made by this process's user are trusted.
        assert_eq!(
            resolve_links(&base.join("dirlink/f")).unwrap(),
            base.join("real/f")
        );
        assert_eq!(
            resolve_links(&base.join("dirlink/rel")).unwrap(),
            base.join("real/f")
        );
        assert_eq!(
            resolve_links(&base.join("dirlink/missing")).unwrap(),
            base.join("real/missing")
        );
        std::os::unix::fs::symlink("loop", base.join("loop")).unwrap();
        assert!(matches!(
            resolve_links(&base.join("loop")),
            Err(ResolveError::Loop(_))
        ));
        // Descriptor-relative opens refuse any symlinked component.
        assert!(open_dir_path(&base.join("real"), None).is_ok());
        // (O_DIRECTORY|O_NOFOLLOW on a symlink: ENOTDIR.)
        assert!(matches!(
            open_dir_path(&base.join("dirlink"), None),
            Err(Errno::ELOOP | Errno::ENOTDIR)
        ));
        assert!(open_dir_path(&base.join("dirlink/x"), None).is_err());
        let made = open_dir_path(&base.join("real/a/b"), Some(0o700)).unwrap();
        assert!(is_dir(&stat(&made).unwrap()));
        assert!(open_dir_path(&base.join("dirlink/c"), Some(0o700)).is_err());
        assert!(!base.join("real/c").exists());
        assert!(open_dir_path(Path::new("rel"), None).is_err());
    }

    #[test]
    fn replace_if_checks_the_identity() {
        let d = tempfile::tempdir().unwrap();
        let dir = open_dir_path(&d.path().canonicalize().unwrap(), None).unwrap();
        std::fs::write(d.path().join("t"), "old").unwrap();
        std::fs::write(d.path().join("c"), "new").unwrap();
        std::fs::write(d.path().join("c2"), "new2").unwrap();
        let old = id_of(&stat_at(&dir, OsStr::new("t")).unwrap());
        let other = id_of(&stat_at(&dir, OsStr::new("c2")).unwrap());
        // Not the file expected: nothing changes.
        assert_eq!(
            replace_if(&dir, OsStr::new("c"), &dir, OsStr::new("t"), Some(other)),
            Err(Errno::EBUSY)
        );
        assert_eq!(std::fs::read_to_string(d.path().join("t")).unwrap(), "old");
        assert_eq!(std::fs::read_to_string(d.path().join("c")).unwrap(), "new");
        assert_eq!(
            replace_if(&dir, OsStr::new("c"), &dir, OsStr::new("t"), None),
            Err(Errno::EBUSY)
        );
        replace_if(&dir, OsStr::new("c"), &dir, OsStr::new("t"), Some(old)).unwrap();
        assert_eq!(std::fs::read_to_string(d.path().join("t")).unwrap(), "new");
        replace_if(&dir, OsStr::new("c2"), &dir, OsStr::new("u"), None).unwrap();
        assert_eq!(std::fs::read_to_string(d.path().join("u")).unwrap(), "new2");
        let mut n = names(&dir).unwrap();
        n.sort();
        assert_eq!(n, ["c", "t", "u"]);
    }
}
