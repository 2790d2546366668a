//! Which files remod may trust when a setting names them.
//!
//! remod runs as root and takes file names from FastCGI params, which any
//! process that can reach the socket may choose. A file is only as
//! trustworthy as the accounts that can change it, so, in the way of
//! sshd's StrictModes, a named file is used only if the file and every
//! directory on the way to it (symlinks followed, each link's directory
//! checked too) are owned by root or by remod's own uid and are not
//! writable by group or others. The one exception is a root-owned sticky
//! directory such as `/tmp` on the way (never the file's own directory):
//! nobody else can rename or remove the trusted entry inside it.
//!
//! The check returns the resolved path: remod then opens that, so what was
//! checked is what is used (every directory on it is trusted, so nobody
//! else can change it in between).

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Most symlinks followed while resolving one path (as the kernel's 40).
const MAX_LINKS: usize = 40;

/// Why a named file is not trusted. The messages name the offending path
/// and say what to change; they go to the server log, never to a client.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub(crate) enum Untrusted {
    /// Not an absolute path.
    #[error("{0:?}: not an absolute path")]
    Relative(PathBuf),
    /// A component does not exist (or cannot be looked at).
    #[error("{path:?}: {why}")]
    Missing {
        /// The component.
        path: PathBuf,
        /// The system's reason.
        why: String,
    },
    /// Owned by an account that is neither root nor remod's own.
    #[error("{path:?} is owned by uid {uid}; it must be owned by root (or remod's uid {own})")]
    Owner {
        /// The file or directory.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// remod's effective uid.
        own: u32,
    },
    /// Writable by group or others.
    #[error("{path:?} is writable by group or others (mode {mode:04o}); chmod go-w it")]
    Writable {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The named file is not a regular file.
    #[error("{0:?} is not a regular file")]
    NotFile(PathBuf),
    /// A component on the way is not a directory.
    #[error("{0:?} is not a directory")]
    NotDir(PathBuf),
    /// Too many symlinks.
    #[error("{0:?}: too many levels of symbolic links")]
    Loop(PathBuf),
}

/// A file that passed [`check_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Trusted {
    /// The path with every symlink resolved: open this one.
    pub path: PathBuf,
    /// The file's owner.
    pub uid: u32,
    /// The file's permission bits.
    pub mode: u32,
}

impl Trusted {
    /// One line for the start-up log: why this file is trusted.
    pub(crate) fn describe(&self, named: &Path) -> String {
        let via = if named == self.path {
            String::new()
        } else {
            format!(" (named {})", named.display())
        };
        format!(
            "{}{via}: owner uid {}, mode {:04o}, it and every directory above it owned by root or remod and not writable by group or others",
            self.path.display(),
            self.uid,
            self.mode & 0o7777
        )
    }
}

/// Which owners are trusted: root and the process's own effective uid.
pub(crate) fn trusted_uids() -> [u32; 2] {
    [0, nix::unistd::geteuid().as_raw()]
}

/// Checks an existing regular file (see the module doc).
pub(crate) fn check_file(path: &Path) -> Result<Trusted, Untrusted> {
    let (resolved, md) = walk(path, &trusted_uids())?;
    let Some(md) = md else {
        return Err(Untrusted::NotFile(path.to_path_buf()));
    };
    if !md.is_file() {
        return Err(Untrusted::NotFile(resolved));
    }
    check_entry(&resolved, &md, &trusted_uids())?;
    Ok(Trusted {
        path: resolved,
        uid: md.uid(),
        mode: md.mode(),
    })
}

/// Checks a directory remod creates files in (the control socket's): it
/// and every directory above it pass the checks. Returns it resolved.
pub(crate) fn check_dir(dir: &Path) -> Result<PathBuf, Untrusted> {
    let uids = trusted_uids();
    let (dir, md) = walk(dir, &uids)?;
    match md {
        Some(md) if md.is_dir() => check_entry(&dir, &md, &uids)?,
        _ => return Err(Untrusted::NotDir(dir)),
    }
    Ok(dir)
}

/// Checks a file that remod may create (the audit database): its directory
/// must pass the checks, and so must the file when it exists already.
pub(crate) fn check_creatable(path: &Path) -> Result<PathBuf, Untrusted> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Untrusted::Relative(path.to_path_buf()));
    };
    let full = check_dir(parent)?.join(name);
    match std::fs::symlink_metadata(&full) {
        Ok(_) => check_file(&full).map(|t| t.path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(full),
        Err(e) => Err(Untrusted::Missing {
            path: full,
            why: e.to_string(),
        }),
    }
}

/// The file or directory itself: owner and write bits.
fn check_entry(path: &Path, md: &std::fs::Metadata, uids: &[u32]) -> Result<(), Untrusted> {
    check_owner(path, md, uids)?;
    if md.mode() & 0o022 != 0 {
        return Err(Untrusted::Writable {
            path: path.to_path_buf(),
            mode: md.mode() & 0o7777,
        });
    }
    Ok(())
}

fn missing(path: &Path, e: std::io::Error) -> Untrusted {
    Untrusted::Missing {
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

/// Resolves `path` one component at a time from `/`, never trusting a
/// directory that someone else could change. Returns the resolved path and
/// the metadata of its last component (None for `/` itself). The last
/// component's own owner and mode are left to the caller.
fn walk(path: &Path, uids: &[u32]) -> Result<(PathBuf, Option<std::fs::Metadata>), Untrusted> {
    if !path.is_absolute() {
        return Err(Untrusted::Relative(path.to_path_buf()));
    }
    let root = Path::new("/");
    let root_md = std::fs::symlink_metadata(root).map_err(|e| missing(root, e))?;
    // The directory we are in, with its metadata.
    let mut dirs: Vec<(PathBuf, std::fs::Metadata)> = vec![(root.to_path_buf(), root_md)];
    let mut pending: Vec<OsString> = components(path);
    pending.reverse();
    let mut links = 0usize;
    let mut last: Option<std::fs::Metadata> = None;
    while let Some(c) = pending.pop() {
        if c.as_bytes() == b".." {
            if dirs.len() > 1 {
                dirs.pop();
            }
            last = None;
            continue;
        }
        let Some((dir, dir_md)) = dirs.last() else {
            return Err(Untrusted::Relative(path.to_path_buf()));
        };
        if !dir_md.is_dir() {
            return Err(Untrusted::NotDir(dir.clone()));
        }
        let next = dir.join(&c);
        let md = std::fs::symlink_metadata(&next).map_err(|e| missing(&next, e))?;
        // The directory holding `next` must be trusted. A sticky one that
        // others may write is fine on the way (they cannot replace a
        // trusted entry in it), but not as the final file's directory,
        // where remod (and SQLite) create files.
        check_owner(dir, dir_md, uids)?;
        let final_entry = pending.is_empty() && !md.file_type().is_symlink() && !md.is_dir();
        let sticky_ok = dir_md.mode() & 0o1000 != 0 && uids.contains(&md.uid()) && !final_entry;
        if dir_md.mode() & 0o022 != 0 && !sticky_ok {
            return Err(Untrusted::Writable {
                path: dir.clone(),
                mode: dir_md.mode() & 0o7777,
            });
        }
        if md.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(Untrusted::Loop(path.to_path_buf()));
            }
            let target = std::fs::read_link(&next).map_err(|e| missing(&next, e))?;
            if target.is_absolute() {
                dirs.truncate(1);
            }
            let mut t = components(&target);
            t.reverse();
            pending.extend(t);
            last = None;
            continue;
        }
        if md.is_dir() {
            dirs.push((next, md.clone()));
        } else if !pending.is_empty() {
            return Err(Untrusted::NotDir(next));
        } else {
            return Ok((next, Some(md)));
        }
        last = Some(md);
    }
    let resolved = dirs.last().map(|(p, _)| p.clone()).unwrap_or_default();
    if last.is_none() {
        // Ended on `/` or after `..`: the directory's own metadata.
        last = dirs.last().map(|(_, m)| m.clone());
    }
    Ok((resolved, last))
}

fn check_owner(path: &Path, md: &std::fs::Metadata, uids: &[u32]) -> Result<(), Untrusted> {
    if uids.contains(&md.uid()) {
        Ok(())
    } else {
        Err(Untrusted::Owner {
            path: path.to_path_buf(),
            uid: md.uid(),
            own: uids.last().copied().unwrap_or(0),
        })
    }
}

/// The path's components as names and `..` (`.` and `/` dropped).
fn components(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A 0755 scratch directory under /tmp (a root-owned sticky directory).
    fn scratch() -> tempfile::TempDir {
        let d = tempfile::Builder::new()
            .prefix("remo-trust-")
            .tempdir_in("/tmp")
            .unwrap();
        chmod(d.path(), 0o755);
        d
    }

    fn file(p: &Path, mode: u32) {
        std::fs::write(p, b"x").unwrap();
        chmod(p, mode);
    }

    #[test]
    fn a_file_in_a_private_tree_is_trusted_and_resolved() {
        let d = scratch();
        let sub = d.path().join("etc");
        std::fs::create_dir(&sub).unwrap();
        chmod(&sub, 0o755);
        let f = sub.join("server.key");
        file(&f, 0o600);
        let t = check_file(&f).unwrap();
        assert_eq!(t.path, f);
        assert_eq!(t.mode & 0o777, 0o600);
        // Through `.`, `..` and a symlink in a trusted directory.
        let link = d.path().join("link");
        symlink("etc/./server.key", &link).unwrap();
        assert_eq!(check_file(&link).unwrap().path, f);
        let dotted = d.path().join("etc/../etc/./server.key");
        assert_eq!(check_file(&dotted).unwrap().path, f);
        assert!(t.describe(&link).contains("named"));
    }

    #[test]
    fn writable_files_and_directories_are_refused() {
        let d = scratch();
        let f = d.path().join("k");
        file(&f, 0o620);
        assert!(matches!(check_file(&f), Err(Untrusted::Writable { .. })));
        chmod(&f, 0o600);
        assert!(check_file(&f).is_ok());
        // The file's own directory may not be writable by others, sticky or not.
        chmod(d.path(), 0o1777);
        assert!(
            matches!(check_file(&f), Err(Untrusted::Writable { ref path, .. }) if path == d.path())
        );
        chmod(d.path(), 0o775);
        assert!(matches!(check_file(&f), Err(Untrusted::Writable { .. })));
        // A sticky writable directory on the way is fine (as /tmp itself).
        chmod(d.path(), 0o1777);
        let sub = d.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        chmod(&sub, 0o700);
        let g = sub.join("k");
        file(&g, 0o600);
        assert!(check_file(&g).is_ok());
        // ...but a non-sticky one is not.
        chmod(d.path(), 0o777);
        assert!(matches!(check_file(&g), Err(Untrusted::Writable { .. })));
        chmod(d.path(), 0o755);
    }

    #[test]
    fn other_owners_are_refused_anywhere_on_the_way() {
        let d = scratch();
        let sub = d.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let f = sub.join("k");
        file(&f, 0o600);
        let nobody = 65534;
        std::os::unix::fs::lchown(&f, Some(nobody), None).unwrap();
        assert!(matches!(
            check_file(&f),
            Err(Untrusted::Owner { uid: 65534, .. })
        ));
        std::os::unix::fs::lchown(&f, Some(0), None).unwrap();
        std::os::unix::fs::lchown(&sub, Some(nobody), None).unwrap();
        assert!(matches!(check_file(&f), Err(Untrusted::Owner { ref path, .. }) if *path == sub));
    }

    #[test]
    fn a_symlink_leads_only_to_what_is_trusted() {
        let d = scratch();
        // An untrusted directory holding a link to a trusted file: the
        // link's own directory is checked, so the name is refused.
        let open = d.path().join("open");
        std::fs::create_dir(&open).unwrap();
        chmod(&open, 0o777);
        let f = d.path().join("k");
        file(&f, 0o600);
        symlink(&f, open.join("k")).unwrap();
        assert!(matches!(
            check_file(&open.join("k")),
            Err(Untrusted::Writable { .. })
        ));
        // A trusted link to a file in an untrusted directory: refused too.
        file(&open.join("evil"), 0o600);
        symlink(open.join("evil"), d.path().join("l2")).unwrap();
        assert!(matches!(
            check_file(&d.path().join("l2")),
            Err(Untrusted::Writable { .. })
        ));
        // Loops end.
        symlink("loop", d.path().join("loop")).unwrap();
        assert!(matches!(
            check_file(&d.path().join("loop")),
            Err(Untrusted::Loop(_))
        ));
    }

    #[test]
    fn relative_missing_and_non_files_are_refused() {
        assert!(matches!(
            check_file(Path::new("etc/passwd")),
            Err(Untrusted::Relative(_))
        ));
        let d = scratch();
        assert!(matches!(
            check_file(&d.path().join("none")),
            Err(Untrusted::Missing { .. })
        ));
        assert!(matches!(check_file(d.path()), Err(Untrusted::NotFile(_))));
        assert!(matches!(
            check_file(Path::new("/")),
            Err(Untrusted::NotFile(_))
        ));
        let f = d.path().join("f");
        file(&f, 0o600);
        assert!(matches!(
            check_file(&f.join("x")),
            Err(Untrusted::NotDir(_))
        ));
    }

    #[test]
    fn creatable_files_need_a_private_directory() {
        let d = scratch();
        let a = d.path().join("audit.db");
        assert_eq!(check_creatable(&a).unwrap(), a);
        file(&a, 0o600);
        assert_eq!(check_creatable(&a).unwrap(), a);
        chmod(&a, 0o666);
        assert!(check_creatable(&a).is_err());
        std::fs::remove_file(&a).unwrap();
        chmod(d.path(), 0o1777);
        assert!(matches!(
            check_creatable(&a),
            Err(Untrusted::Writable { .. })
        ));
        chmod(d.path(), 0o755);
    }
}
