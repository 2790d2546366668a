//! Confining `get`/`list`/`put` to the directory roots a user was granted
//! (`files:read:DIR`, `files:write:DIR`).
//!
//! The client's path (relative paths are relative to the home directory)
//! must lie, as written, below one of the roots; the rest of it is then
//! resolved by the kernel *relative to a descriptor of the root* with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: `..` that climbs out,
//! an absolute symlink, a relative symlink that leads outside, or a
//! `/proc/…/fd` magic link all fail with `EXDEV`/`ELOOP`, however the tree
//! changes between a check and the use — there is no separate check.
//! The root itself is opened with `RESOLVE_NO_SYMLINKS`: a link anywhere
//! in the granted name (one a local account swapped in above the root, or
//! one the operator wrote) is refused, so the grant stays where it was
//! given.
//! Every later step of `put` (`mkdirat`, `openat(O_CREAT|O_EXCL)`,
//! `renameat`, `linkat`) works on a directory descriptor obtained that way.
//!
//! Admins are not confined: their root is `/` with ordinary resolution,
//! through the same code.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use crate::perms::Grants;
use crate::proto::response::{ErrorCode, OpError};

/// Which grant a file operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// `get`, `list`: `files:read:DIR`.
    Read,
    /// `put`: `files:write:DIR`.
    Write,
}

/// A client path located below a root.
#[derive(Debug, Clone)]
pub(crate) struct Located {
    /// The root directory (`/` for admins).
    pub root: PathBuf,
    /// The path below it (never absolute; may still hold `..`, which the
    /// kernel resolves beneath the root).
    pub rel: PathBuf,
    /// Whether resolution is confined to the root.
    pub confined: bool,
    /// The path as the client gave it, resolved against home, for messages.
    pub shown: String,
}

/// Finds the root `path` (already made absolute) lies below, or answers
/// `forbidden`. Admins get `/`, unconfined.
pub(crate) fn locate(grants: &Grants, path: &Path, access: Access) -> Result<Located, OpError> {
    let shown = path.display().to_string();
    if grants.is_admin() {
        return Ok(Located {
            root: PathBuf::from("/"),
            rel: path.strip_prefix("/").unwrap_or(path).to_path_buf(),
            confined: false,
            shown,
        });
    }
    let roots = match access {
        Access::Read => grants.read_roots(),
        Access::Write => grants.write_roots(),
    };
    // The longest root that is a prefix of the path, compared component by
    // component (so `/var/backups2` is not below `/var/backups`).
    let best = roots
        .into_iter()
        .filter(|r| path.starts_with(r))
        .max_by_key(|r| r.components().count());
    let Some(root) = best else {
        return Err(outside(&shown));
    };
    let rel = path
        .strip_prefix(root)
        .unwrap_or(Path::new(""))
        .to_path_buf();
    Ok(Located {
        root: root.to_path_buf(),
        rel,
        confined: true,
        shown,
    })
}

/// The one answer for a path outside the user's roots, whether it is
/// refused as written or only when the kernel finds it climbs out: the
/// same code and text (with the client's own path, never a resolved one),
/// so the reasons do not tell what exists outside.
fn outside(shown: &str) -> OpError {
    OpError::new(
        ErrorCode::Forbidden,
        format!("{shown}: outside the directories you were granted"),
    )
}

/// Maps a file-system error to a result, with "escapes the root" errors as
/// `forbidden`.
pub(crate) fn fs_error(what: &str, e: Errno, confined: bool) -> OpError {
    match e {
        Errno::EXDEV if confined => outside(what),
        Errno::ELOOP if confined => OpError::new(
            ErrorCode::Forbidden,
            format!("{what}: symbolic link not allowed here"),
        ),
        Errno::ENOSYS => OpError::new(
            ErrorCode::Internal,
            format!("{what}: openat2 is not available (Linux 5.6 or later is needed)"),
        ),
        other => io_error(what, &std::io::Error::from(other)),
    }
}

impl Located {
    fn resolve_flags(&self) -> ResolveFlag {
        if self.confined {
            ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS
        } else {
            ResolveFlag::empty()
        }
    }

    fn err(&self, e: Errno) -> OpError {
        fs_error(&self.shown, e, self.confined)
    }

    /// Opens the root directory itself. A granted root is opened with
    /// `RESOLVE_NO_SYMLINKS`: the grant names a directory, and a symbolic
    /// link anywhere in that name, which whoever may write to one of its
    /// parents could put there (`/home/alice/incoming` swapped for a link
    /// to `/`), would move the whole grant. Admins' `/`: ordinary `open`.
    fn open_root(&self) -> Result<OwnedFd, OpError> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = if self.confined {
            let how = OpenHow::new()
                .flags(flags)
                .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
            nix::fcntl::openat2(libc::AT_FDCWD, &self.root, how).map_err(|e| self.root_error(e))?
        } else {
            nix::fcntl::open(&self.root, flags, Mode::empty())
                .map_err(|e| fs_error(&self.root.display().to_string(), e, false))?
        };
        // SAFETY: `open`/`openat2` returned a fresh descriptor that nothing
        // else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Why a granted root did not open. A symbolic link on its way is
    /// refused (`forbidden`, and a warning for the operator: a
    /// misconfigured grant or a swap by a local account); anything else
    /// as before.
    fn root_error(&self, e: Errno) -> OpError {
        let root = self.root.display();
        if e == Errno::ELOOP {
            log::warn!(
                "file access refused: the granted directory {root} is reached through a \
                 symbolic link (a grant must name the real path; was it replaced by a link?)"
            );
            return OpError::new(
                ErrorCode::Forbidden,
                format!(
                    "{}: the granted directory {root} is reached through a symbolic link; \
                     grants must name the real path",
                    self.shown
                ),
            );
        }
        fs_error(&root.to_string(), e, false)
    }

    /// `openat2` below `dir` with this location's resolve flags.
    fn open_below(
        &self,
        dir: RawFd,
        rel: &Path,
        flags: OFlag,
        mode: Mode,
    ) -> Result<OwnedFd, Errno> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let fd = if self.confined {
            let how = OpenHow::new()
                .flags(flags | OFlag::O_CLOEXEC)
                .mode(mode)
                .resolve(self.resolve_flags());
            nix::fcntl::openat2(dir, rel, how)?
        } else {
            // Unconfined (admins): plain openat, which older kernels have too.
            nix::fcntl::openat(Some(dir), rel, flags | OFlag::O_CLOEXEC, mode)?
        };
        // SAFETY: `openat2` returned a fresh descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Opens the file for reading (`get`). Looked at first through an
    /// `O_PATH` descriptor, which opens nothing: a device's driver is not
    /// called (a tape would rewind, a watchdog arm) and a FIFO is not
    /// waited on. Only a regular file is then opened, through that
    /// descriptor (`/proc/self/fd/N`, also on a run-as thread: its own
    /// process), so it is the file that was looked at.
    pub(crate) fn open_read(&self) -> Result<std::fs::File, OpError> {
        let root = self.open_root()?;
        let found = self
            .open_below(root.as_raw_fd(), &self.rel, OFlag::O_PATH, Mode::empty())
            .map_err(|e| self.err(e))?;
        let st = nix::sys::stat::fstat(found.as_raw_fd()).map_err(|e| self.err(e))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(OpError::bad_request(format!(
                "{} is not a regular file",
                self.shown
            )));
        }
        let fd = nix::fcntl::open(
            format!("/proc/self/fd/{}", found.as_raw_fd()).as_str(),
            // Non-blocking: a lease the file's owner holds on it makes a
            // blocking open wait (`lease-break-time`, 45 s by default).
            OFlag::O_RDONLY | OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.err(e))?;
        // SAFETY: `open` returned a fresh descriptor that nothing else owns.
        Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Opens the directory for `list`, resolved exactly as `get` resolves
    /// a file (a symbolic link to a directory is followed, within the
    /// root). `O_DIRECTORY`, so nothing else is ever opened — no device,
    /// no FIFO — and anything else is `bad_request`.
    pub(crate) fn open_dir(&self) -> Result<OwnedFd, OpError> {
        let root = self.open_root()?;
        self.open_below(
            root.as_raw_fd(),
            &self.rel,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ENOTDIR => OpError::bad_request(format!("{} is not a directory", self.shown)),
            e => self.err(e),
        })
    }

    /// Opens the parent directory of the target for `put`, creating missing
    /// directories one `mkdirat` at a time when asked; follows a target that
    /// is a symlink (as `cp` would), staying below the root. Returns the
    /// directory and the file name in it.
    pub(crate) fn open_parent(&self, create_dirs: bool) -> Result<(OwnedFd, OsString), OpError> {
        let root = self.open_root()?;
        let (dir, name) = self.parent_of(root.as_raw_fd(), &self.rel, create_dirs)?;
        // A target that is a symlink: replace the file it points to.
        if is_symlink_at(dir.as_raw_fd(), &name) {
            match self.open_below(root.as_raw_fd(), &self.rel, OFlag::O_PATH, Mode::empty()) {
                Ok(target) => {
                    if let Some(rel) = self.rel_of(root.as_raw_fd(), target.as_raw_fd()) {
                        return self.parent_of(root.as_raw_fd(), &rel, false);
                    }
                }
                // Leads outside the root.
                Err(e @ (Errno::EXDEV | Errno::ELOOP)) if self.confined => return Err(self.err(e)),
                Err(_) => {}
            }
            // Dangling: the link itself is replaced.
        }
        Ok((dir, name))
    }

    /// Splits `rel` into its directory and name, and opens the directory.
    fn parent_of(
        &self,
        root: RawFd,
        rel: &Path,
        create_dirs: bool,
    ) -> Result<(OwnedFd, OsString), OpError> {
        let not_file = || OpError::bad_request(format!("{} is not a file path", self.shown));
        let name = match rel.components().next_back() {
            Some(Component::Normal(n)) => n.to_os_string(),
            _ => return Err(not_file()),
        };
        let parent = rel.parent().unwrap_or(Path::new(""));
        let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
        if create_dirs {
            let mut prefix = PathBuf::new();
            let mut cur = self
                .open_below(root, Path::new(""), dir_flags, Mode::empty())
                .map_err(|e| self.err(e))?;
            for c in parent.components() {
                prefix.push(c.as_os_str());
                cur = match self.open_below(root, &prefix, dir_flags, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(Errno::ENOENT) => {
                        if let Component::Normal(n) = c {
                            match nix::sys::stat::mkdirat(
                                Some(cur.as_raw_fd()),
                                n,
                                Mode::from_bits_truncate(0o777),
                            ) {
                                Ok(()) | Err(Errno::EEXIST) => {}
                                Err(e) => return Err(self.err(e)),
                            }
                        }
                        self.open_below(root, &prefix, dir_flags, Mode::empty())
                            .map_err(|e| self.err(e))?
                    }
                    Err(e) => return Err(self.err(e)),
                };
            }
            Ok((cur, name))
        } else {
            let dir = self
                .open_below(root, parent, dir_flags, Mode::empty())
                .map_err(|e| self.err(e))?;
            Ok((dir, name))
        }
    }

    /// The path of an open descriptor relative to the root, if it is
    /// below the root (via `/proc/self/fd`).
    fn rel_of(&self, root: RawFd, fd: RawFd) -> Option<PathBuf> {
        let root_path = std::fs::read_link(format!("/proc/self/fd/{root}")).ok()?;
        let path = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
        path.strip_prefix(&root_path).ok().map(Path::to_path_buf)
    }
}

/// True when `name` in `dir` is a symbolic link (not followed).
pub(crate) fn is_symlink_at(dir: RawFd, name: &OsStr) -> bool {
    nix::sys::stat::fstatat(Some(dir), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
}

/// Maps an I/O error on a client-named path to a result code.
pub(crate) fn io_error(what: &str, e: &std::io::Error) -> OpError {
    use crate::proto::response::ErrorCode;
    use std::io::ErrorKind;
    let code = match e.kind() {
        ErrorKind::NotFound => ErrorCode::NotFound,
        ErrorKind::PermissionDenied => ErrorCode::Forbidden,
        ErrorKind::AlreadyExists => ErrorCode::Exists,
        ErrorKind::InvalidInput | ErrorKind::InvalidData => ErrorCode::BadRequest,
        _ => match e.raw_os_error() {
            Some(libc::EISDIR)
            | Some(libc::ENOTDIR)
            | Some(libc::ENAMETOOLONG)
            | Some(libc::ELOOP) => ErrorCode::BadRequest,
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => ErrorCode::TooLarge,
            _ => ErrorCode::Internal,
        },
    };
    OpError::new(code, format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_picks_longest_root_and_refuses_outside() {
        let (g, _) = Grants::from_strings(&["files:read:/srv", "files:read:/srv/a"]);
        let l = locate(&g, Path::new("/srv/a/b/c"), Access::Read).unwrap();
        assert_eq!(l.root, Path::new("/srv/a"));
        assert_eq!(l.rel, Path::new("b/c"));
        assert!(l.confined);
        assert_eq!(
            locate(&g, Path::new("/srv2/x"), Access::Read)
                .unwrap_err()
                .code,
            ErrorCode::Forbidden
        );
        assert_eq!(
            locate(&g, Path::new("/srv/x"), Access::Write)
                .unwrap_err()
                .code,
            ErrorCode::Forbidden
        );
        let l = locate(&Grants::admin(), Path::new("/etc/x"), Access::Write).unwrap();
        assert!(!l.confined && l.rel == Path::new("etc/x"));
    }
}
