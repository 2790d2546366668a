//! The permission model: what a user may do, as stored in the user
//! database (one string per grant) and checked on every operation.
//!
//! | grant | allows |
//! |---|---|
//! | `admin` | everything |
//! | `cmd` | `cmd`/`icm` with any program (`argv`) |
//! | `cmd:PATH` | only the program at `PATH` (matched on the resolved executable), any arguments |
//! | `cmd:PATH ARG…` | only that program with exactly these arguments (space-separated) |
//! | `sh` | `sh` strings (`/bin/sh -c`), which can run anything |
//! | `files:read:DIR` | `get` and `list` below `DIR` |
//! | `files:write:DIR` | `put` below `DIR` |
//! | `config:NAME` | the configuration file `NAME` (`*`: every configured file) |
//! | `open:PROFILE` | the firewall profile `PROFILE` (`*`: every profile) |
//! | `run-as:ACCOUNT` | commands and file operations run as that system account |

use std::path::{Component, Path, PathBuf};

/// Why a grant string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PermError {
    /// Not one of the forms in the table.
    #[error("unknown permission {0:?} (see docs/permissions.md)")]
    Unknown(String),
    /// A path that is not absolute or not normal.
    #[error("permission {0:?}: the path must be absolute, without '.' or '..'")]
    BadPath(String),
    /// An empty name.
    #[error("permission {0:?}: missing name")]
    Empty(String),
}

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Perm {
    /// Everything.
    Admin,
    /// Any program.
    Cmd,
    /// One program, optionally with fixed arguments.
    CmdProgram {
        /// Absolute path of the executable.
        path: PathBuf,
        /// Exactly these arguments, if given.
        args: Option<Vec<String>>,
    },
    /// Shell strings.
    Sh,
    /// `get` and `list` below a directory.
    FilesRead(PathBuf),
    /// `put` below a directory.
    FilesWrite(PathBuf),
    /// A configured file by name (`*` for all).
    Config(String),
    /// A firewall profile by name (`*` for all).
    Open(String),
    /// Run as this system account.
    RunAs(String),
}

fn abs_path(full: &str, p: &str) -> Result<PathBuf, PermError> {
    let path = Path::new(p);
    let normal = path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if normal {
        Ok(path.to_path_buf())
    } else {
        Err(PermError::BadPath(full.to_string()))
    }
}

fn name(full: &str, n: &str) -> Result<String, PermError> {
    if n.is_empty() {
        Err(PermError::Empty(full.to_string()))
    } else {
        Ok(n.to_string())
    }
}

impl Perm {
    /// Parses a grant string.
    pub(crate) fn parse(s: &str) -> Result<Perm, PermError> {
        Ok(match s {
            "admin" => Perm::Admin,
            "cmd" => Perm::Cmd,
            "sh" => Perm::Sh,
            _ => {
                if let Some(rest) = s.strip_prefix("cmd:") {
                    let mut parts = rest.split(' ');
                    let path = abs_path(s, parts.next().unwrap_or(""))?;
                    let args: Vec<String> = parts.map(str::to_string).collect();
                    Perm::CmdProgram {
                        path,
                        args: if rest.contains(' ') { Some(args) } else { None },
                    }
                } else if let Some(p) = s.strip_prefix("files:read:") {
                    Perm::FilesRead(abs_path(s, p)?)
                } else if let Some(p) = s.strip_prefix("files:write:") {
                    Perm::FilesWrite(abs_path(s, p)?)
                } else if let Some(n) = s.strip_prefix("config:") {
                    Perm::Config(name(s, n)?)
                } else if let Some(n) = s.strip_prefix("open:") {
                    Perm::Open(name(s, n)?)
                } else if let Some(n) = s.strip_prefix("run-as:") {
                    Perm::RunAs(name(s, n)?)
                } else {
                    return Err(PermError::Unknown(s.to_string()));
                }
            }
        })
    }
}

impl Perm {
    /// For a `files:` grant: the first symbolic link on the way to its
    /// directory as the file system stands now. File operations refuse a
    /// root reached through a link (`confine`), so an admin granting one
    /// is told at once, not by the user's first refusal.
    pub(crate) fn link_on_root(&self) -> Option<PathBuf> {
        let (Perm::FilesRead(dir) | Perm::FilesWrite(dir)) = self else {
            return None;
        };
        let mut at = PathBuf::from("/");
        for c in dir.components().skip(1) {
            at.push(c);
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => return Some(at),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }
}

/// A user's grants, parsed once per session (and again when the database changes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    perms: Vec<Perm>,
}

impl Grants {
    /// Parses stored grant strings; unparsable ones are skipped (and
    /// returned, so the caller can log them) rather than widening access.
    pub(crate) fn from_strings<S: AsRef<str>>(list: &[S]) -> (Grants, Vec<String>) {
        let mut perms = Vec::new();
        let mut bad = Vec::new();
        for s in list {
            match Perm::parse(s.as_ref()) {
                Ok(p) => perms.push(p),
                Err(_) => bad.push(s.as_ref().to_string()),
            }
        }
        (Grants { perms }, bad)
    }

    /// Grants everything (tests, the quick-start user).
    #[cfg(test)]
    pub(crate) fn admin() -> Grants {
        Grants {
            perms: vec![Perm::Admin],
        }
    }

    /// The grants themselves.
    pub(crate) fn perms(&self) -> &[Perm] {
        &self.perms
    }

    /// True for `admin`.
    pub(crate) fn is_admin(&self) -> bool {
        self.perms.contains(&Perm::Admin)
    }

    /// May the user run `sh` strings?
    pub(crate) fn allow_sh(&self) -> bool {
        self.is_admin() || self.perms.contains(&Perm::Sh)
    }

    /// May the user run the program resolved to `exe` with `args`
    /// (`argv[1..]`)? The caller resolves `argv[0]` through `PATH` first.
    #[cfg(test)]
    pub(crate) fn allow_program(&self, exe: &Path, args: &[String]) -> bool {
        self.is_admin()
            || self.perms.iter().any(|p| match p {
                Perm::Cmd => true,
                Perm::CmdProgram { path, args: fixed } => {
                    path == exe && fixed.as_ref().is_none_or(|f| f.as_slice() == args)
                }
                _ => false,
            })
    }

    /// The directories `get` and `list` may read below (empty: none, unless admin).
    pub(crate) fn read_roots(&self) -> Vec<&Path> {
        self.perms
            .iter()
            .filter_map(|p| match p {
                Perm::FilesRead(d) => Some(d.as_path()),
                _ => None,
            })
            .collect()
    }

    /// The directories `put` may write below.
    pub(crate) fn write_roots(&self) -> Vec<&Path> {
        self.perms
            .iter()
            .filter_map(|p| match p {
                Perm::FilesWrite(d) => Some(d.as_path()),
                _ => None,
            })
            .collect()
    }

    /// May the user use the configuration file `name`?
    pub fn allow_config(&self, name: &str) -> bool {
        self.is_admin()
            || self
                .perms
                .iter()
                .any(|p| matches!(p, Perm::Config(n) if n == name || n == "*"))
    }

    /// May the user use the firewall profile `profile`?
    pub fn allow_open(&self, profile: &str) -> bool {
        self.is_admin()
            || self
                .perms
                .iter()
                .any(|p| matches!(p, Perm::Open(n) if n == profile || n == "*"))
    }

    /// The system account to act as, if one is configured.
    pub(crate) fn run_as(&self) -> Option<&str> {
        self.perms.iter().find_map(|p| match p {
            Perm::RunAs(a) => Some(a.as_str()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_on_the_way_to_a_files_root_is_found() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        std::fs::create_dir_all(real.join("sub")).unwrap();
        std::os::unix::fs::symlink(&real, t.path().join("link")).unwrap();
        let base = std::fs::canonicalize(t.path()).unwrap();
        let grant = |s: &str| Perm::parse(&format!("files:read:{}/{s}", base.display())).unwrap();
        assert_eq!(grant("real/sub").link_on_root(), None);
        assert_eq!(grant("link/sub").link_on_root(), Some(base.join("link")));
        assert_eq!(grant("link").link_on_root(), Some(base.join("link")));
        // Not there (yet): nothing to say.
        assert_eq!(grant("missing/sub").link_on_root(), None);
        assert_eq!(Perm::parse("cmd").unwrap().link_on_root(), None);
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(Perm::parse("admin"), Ok(Perm::Admin));
        assert_eq!(
            Perm::parse("cmd:/usr/bin/systemctl restart nginx"),
            Ok(Perm::CmdProgram {
                path: "/usr/bin/systemctl".into(),
                args: Some(vec!["restart".into(), "nginx".into()])
            })
        );
        assert_eq!(
            Perm::parse("cmd:/usr/bin/uptime"),
            Ok(Perm::CmdProgram {
                path: "/usr/bin/uptime".into(),
                args: None
            })
        );
        assert_eq!(
            Perm::parse("files:read:/var/backups"),
            Ok(Perm::FilesRead("/var/backups".into()))
        );
        assert!(matches!(
            Perm::parse("files:read:var"),
            Err(PermError::BadPath(_))
        ));
        assert!(matches!(
            Perm::parse("files:write:/a/../b"),
            Err(PermError::BadPath(_))
        ));
        assert!(matches!(Perm::parse("config:"), Err(PermError::Empty(_))));
        assert!(matches!(Perm::parse("root"), Err(PermError::Unknown(_))));
    }

    #[test]
    fn checks() {
        let (g, bad) = Grants::from_strings(&[
            "cmd:/usr/bin/systemctl restart nginx",
            "config:wg0",
            "open:*",
            "bogus",
        ]);
        assert_eq!(bad, ["bogus"]);
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(g.allow_program(
            Path::new("/usr/bin/systemctl"),
            &args(&["restart", "nginx"])
        ));
        assert!(!g.allow_program(Path::new("/usr/bin/systemctl"), &args(&["stop", "nginx"])));
        assert!(!g.allow_program(Path::new("/bin/sh"), &[]));
        assert!(!g.allow_sh());
        assert!(g.allow_config("wg0") && !g.allow_config("nginx"));
        assert!(g.allow_open("ssh"));
        assert!(Grants::admin().allow_config("x") && Grants::admin().allow_sh());
    }
}
