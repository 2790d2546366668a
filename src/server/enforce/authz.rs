//! Authorising commands (`cmd`, `icm`) against the user's grants.
//!
//! `argv[0]` is resolved the way the child would resolve it (the child's
//! fixed `PATH`, or relative to its working directory when it holds a `/`),
//! canonicalised, and checked against `cmd:PATH` grants, which are
//! canonicalised too (so `cmd:/bin/ls` matches on a merged-/usr system). The
//! child then executes exactly that resolved file, under the grant's base
//! name as `argv[0]` (multi-call programs such as `rbash`/`bash`,
//! `rview`/`ex`, `xzcat`/`unxz` are one file): what was checked is what
//! runs, as what it was granted. `sh` strings need the `sh` grant. Admins
//! are not checked.
//!
//! Look-ups that a user could use to probe the file system (`argv[0]`, a
//! `cwd` they named) are made as the run-as account, or, for a user limited
//! to `cmd:PATH` grants, as an unprivileged identity; such a user gets one
//! fixed `forbidden` ([`NOT_PERMITTED`]) for every refusal.
//!
//! A user whose commands are limited to `cmd:PATH` grants could otherwise
//! escape the allowlist through the environment (`LD_PRELOAD`, `BASH_ENV`,
//! …), so such a user may set only harmless variables (see
//! [`RESTRICTED_ENV_OK`]).

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::perms::{Grants, Perm};
use crate::proto::response::{ErrorCode, OpError};
use crate::server::enforce::runas::Account;

/// The `PATH` every command gets (see `ops::cmd::base_env`).
pub(crate) const CHILD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Variables a program-restricted user may still set (exact names, or a
/// prefix when ending in `*`).
pub(crate) const RESTRICTED_ENV_OK: &[&str] = &["TERM", "LANG", "LC_*", "TZ", "COLUMNS", "LINES"];

fn executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds `prog` the way `execvp` would with the search path `path`
/// (relative entries and an empty entry taken from `cwd`), without
/// canonicalising. Used for commands that are not checked (admins, `sh`):
/// handing the spawn an absolute path lets it use `posix_spawn` (a vfork)
/// instead of `fork`, which in a multi-threaded daemon copies the page
/// tables and shoots down TLBs on every command.
pub(crate) fn search_path(prog: &str, path: &str, cwd: &Path) -> Option<PathBuf> {
    if prog.is_empty() || prog.contains('/') {
        return None;
    }
    path.split(':')
        .map(|d| cwd.join(d).join(prog))
        .find(|p| executable(p))
}

/// Resolves a program name as the child would, to a canonical absolute path.
pub(crate) fn resolve_program(prog: &str, cwd: &Path) -> Option<PathBuf> {
    let found = if prog.contains('/') {
        let p = cwd.join(prog);
        executable(&p).then_some(p)
    } else {
        search_path(prog, CHILD_PATH, cwd)
    }?;
    std::fs::canonicalize(found).ok()
}

fn unrestricted(grants: &Grants) -> bool {
    grants
        .perms()
        .iter()
        .any(|p| matches!(p, Perm::Admin | Perm::Cmd))
}

fn env_ok(name: &str) -> bool {
    RESTRICTED_ENV_OK
        .iter()
        .any(|ok| match ok.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *ok,
        })
}

/// The one answer a program-restricted user gets for any program, argument
/// list or working directory outside the grants, whatever the reason
/// (missing, not a directory, unreadable, not granted): the reasons would
/// otherwise tell what exists where the user may not look.
pub(crate) const NOT_PERMITTED: &str =
    "not permitted: the program, its arguments or the working directory are outside your grants";

fn not_permitted() -> OpError {
    OpError::new(ErrorCode::Forbidden, NOT_PERMITTED)
}

/// A command that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checked {
    /// The file to execute: the resolved file that was checked, or `None`
    /// to run `argv[0]` as given (admins, `sh`).
    pub exe: Option<PathBuf>,
    /// The child's `argv[0]`: for a `cmd:PATH` grant the base name of
    /// `PATH` (multi-call programs such as `rbash`, `rview`, `xzcat` choose
    /// their behaviour by it), else the client's.
    pub arg0: String,
}

/// `/`-separated path with `.` and `..` removed lexically (no look-ups).
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir => out.push("/"),
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// The base name the child sees for a grant's program.
fn base_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.to_string_lossy().into_owned())
}

/// What a look-up made with the viewer's rights found.
struct Seen {
    /// The working directory is a directory the viewer may enter.
    cwd: Result<(), std::io::Error>,
    /// `argv[0]` resolved (canonical), if asked for and found.
    exe: Option<PathBuf>,
    /// Why a path naming a program (with a `/`) was not found: the viewer
    /// may not look there, or it is not there.
    hidden: bool,
}

/// Checks the working directory and resolves `prog` with the rights of
/// `viewer` (on a short-lived thread that switches only its own
/// credentials), or with the daemon's own when there is none.
fn look(
    viewer: Option<&Account>,
    cwd: &Path,
    check_cwd: bool,
    prog: Option<&str>,
) -> Result<Seen, OpError> {
    let work = || {
        let cwd_ok = if !check_cwd {
            Ok(())
        } else {
            std::fs::metadata(cwd).and_then(|m| {
                if m.is_dir() {
                    // Entering it needs search permission (the viewer's:
                    // AT_EACCESS checks the effective ids; plain access()
                    // would check the real ones, which stay root's on the
                    // viewer's thread, see runas.rs).
                    nix::unistd::faccessat(
                        None,
                        cwd,
                        nix::unistd::AccessFlags::X_OK,
                        nix::fcntl::AtFlags::AT_EACCESS,
                    )
                    .map_err(std::io::Error::from)
                } else {
                    Err(std::io::Error::from_raw_os_error(libc::ENOTDIR))
                }
            })
        };
        let exe = prog.and_then(|p| resolve_program(p, cwd));
        let hidden = exe.is_none()
            && prog.is_some_and(|p| {
                p.contains('/')
                    && std::fs::metadata(cwd.join(p))
                        .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
            });
        Seen {
            cwd: cwd_ok,
            exe,
            hidden,
        }
    };
    let Some(v) = viewer else {
        return Ok(work());
    };
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("remod-lookas".into())
            .spawn_scoped(s, || {
                v.become_on_this_thread().map(|()| work()).map_err(|e| {
                    OpError::new(
                        ErrorCode::Internal,
                        format!("cannot act as {}: {e}", v.name),
                    )
                })
            })
            .map_err(|_| OpError::new(ErrorCode::Internal, "look-up worker failed"))?
            .join()
            .map_err(|_| OpError::new(ErrorCode::Internal, "look-up worker failed"))?
    })
}

/// The error a user who may look (admins, `cmd`, `sh`) gets for a bad
/// working directory: as the account they act as sees it.
fn cwd_error(cwd: &Path, e: &std::io::Error) -> OpError {
    if e.raw_os_error() == Some(libc::ENOTDIR) {
        OpError::bad_request(format!("cwd {} is not a directory", cwd.display()))
    } else {
        crate::server::enforce::confine::io_error(&format!("cwd {}", cwd.display()), e)
    }
}

/// Checks a command (`argv`, or `sh` when `is_sh`) and its working
/// directory `cwd` against the grants, with the look-ups made as `acct`
/// (the run-as account) when there is one. Returns what to execute and
/// under which `argv[0]`. `cwd_given`: the client named the working
/// directory; the default one (chosen by the server) is not a probe, so it
/// is checked only with the daemon's rights.
///
/// A user limited to `cmd:PATH` grants has every look-up made as the
/// run-as account or, without one, as an unprivileged identity, and gets
/// [`NOT_PERMITTED`] for every failure: what such a user learns about the
/// file system is what any local account could.
pub(crate) fn authorize_command<'a>(
    grants: &Grants,
    acct: Option<&Account>,
    argv: &[String],
    is_sh: bool,
    env: impl IntoIterator<Item = &'a String>,
    cwd: &Path,
    cwd_given: bool,
) -> Result<Checked, OpError> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| OpError::bad_request("argv must name a program"))?;
    let as_given = || Checked {
        exe: None,
        arg0: prog.clone(),
    };
    if grants.is_admin() || is_sh {
        if is_sh && !grants.allow_sh() {
            return Err(OpError::new(
                ErrorCode::Forbidden,
                "you may not run shell commands (sh)",
            ));
        }
        look(acct, cwd, true, None)?
            .cwd
            .map_err(|e| cwd_error(cwd, &e))?;
        return Ok(as_given());
    }
    if unrestricted(grants) {
        // `cmd`: any program the account can see, under any name.
        let seen = look(acct, cwd, true, Some(prog))?;
        seen.cwd.map_err(|e| cwd_error(cwd, &e))?;
        let exe = match seen.exe {
            Some(exe) => exe,
            // Where the account may not look, missing and present are alike.
            None if seen.hidden => {
                return Err(OpError::new(
                    ErrorCode::Forbidden,
                    format!("{prog}: permission denied"),
                ))
            }
            None => {
                return Err(OpError::new(
                    ErrorCode::NotFound,
                    format!("{prog}: command not found"),
                ))
            }
        };
        return Ok(Checked {
            exe: Some(exe),
            arg0: prog.clone(),
        });
    }
    let nobody;
    let viewer = match acct {
        Some(a) => a,
        None => {
            nobody = Account::unprivileged();
            &nobody
        }
    };
    if !cwd_given {
        look(None, cwd, true, None)?
            .cwd
            .map_err(|e| cwd_error(cwd, &e))?;
    }
    let seen = look(Some(viewer), cwd, cwd_given, Some(prog))?;
    seen.cwd.map_err(|_| not_permitted())?;
    // A path that names a grant's program as written needs no look-up (the
    // operator named it, even where the viewer cannot see).
    let named = prog.contains('/').then(|| lexical(&cwd.join(prog)));
    let mut matching = grants.perms().iter().filter_map(|p| match p {
        Perm::CmdProgram { path, args: fixed } if fixed.as_ref().is_none_or(|f| f == args) => {
            let canon = std::fs::canonicalize(path).ok()?;
            let hit = named.as_deref() == Some(path.as_path())
                || seen.exe.as_deref() == Some(canon.as_path());
            hit.then_some((path, canon))
        }
        _ => None,
    });
    // Several grants for one file: the one the client named, else the first.
    let wanted = base_name(Path::new(prog));
    let first = matching.next().ok_or_else(not_permitted)?;
    let (path, exe) = std::iter::once(first.clone())
        .chain(matching)
        .find(|(p, _)| base_name(p) == wanted)
        .unwrap_or(first);
    if let Some(bad) = env.into_iter().find(|k| !env_ok(k)) {
        return Err(OpError::new(
            ErrorCode::Forbidden,
            format!("you may not set the environment variable {bad}"),
        ));
    }
    Ok(Checked {
        exe: Some(exe),
        arg0: base_name(path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_finds_like_execvp() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let exe = bin.join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Relative entries are taken from the working directory.
        assert_eq!(
            search_path("tool", "/nonexistent:bin", d.path()),
            Some(exe.clone())
        );
        assert_eq!(search_path("tool", "/nonexistent", d.path()), None);
        // Names with a slash are not searched; neither is the empty name.
        assert_eq!(search_path("bin/tool", "bin", d.path()), None);
        assert_eq!(search_path("", "bin", d.path()), None);
        // A directory of that name is not a program.
        assert_eq!(search_path("bin", ".", d.path()), None);
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(search_path("tool", "bin", d.path()), None);
    }

    #[test]
    fn resolves_through_path_and_cwd() {
        let sh = resolve_program("sh", Path::new("/")).unwrap();
        assert!(sh.is_absolute());
        assert_eq!(resolve_program("no-such-program-xyz", Path::new("/")), None);
        assert_eq!(
            resolve_program("../bin/sh", Path::new("/usr/lib")),
            Some(sh.clone())
        );
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn program_grants() {
        let echo = resolve_program("echo", Path::new("/")).unwrap();
        let grant = format!("cmd:{}", echo.display());
        let (g, _) = Grants::from_strings(&[grant.as_str()]);
        let none: Vec<String> = vec![];
        let auth = |argv: &[&str], sh: bool, env: &[String]| {
            authorize_command(&g, None, &args(argv), sh, env, Path::new("/"), true)
        };
        assert_eq!(
            auth(&["echo", "hi"], false, &none).unwrap(),
            Checked {
                exe: Some(echo.clone()),
                arg0: base_name(&echo)
            }
        );
        let e = auth(&["true"], false, &none).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::Forbidden, NOT_PERMITTED)
        );
        let e = auth(&["/bin/sh", "-c", "x"], true, &none).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        let ld = vec!["LD_PRELOAD".to_string()];
        let e = auth(&["echo"], false, &ld).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        let term = vec!["TERM".to_string(), "LC_ALL".to_string()];
        assert!(auth(&["echo"], false, &term).is_ok());
    }

    /// A tree anyone may read: `tool`, and the links `rtool`, `other` to it.
    fn multi_call_tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let tool = d.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("tool", d.path().join("rtool")).unwrap();
        std::os::unix::fs::symlink("tool", d.path().join("other")).unwrap();
        d
    }

    #[test]
    fn argv0_comes_from_the_grant() {
        let d = multi_call_tree();
        let p = |n: &str| d.path().join(n).display().to_string();
        let tool = std::fs::canonicalize(d.path().join("tool")).unwrap();
        let none: Vec<String> = vec![];
        // Any name for the granted file runs under the grant's base name.
        let (g, _) = Grants::from_strings(&[format!("cmd:{}", p("rtool"))]);
        for argv0 in [
            p("other"),
            p("tool"),
            p("rtool"),
            format!("{}/./x/../rtool", p("")),
        ] {
            let c = authorize_command(
                &g,
                None,
                &args(&[&argv0, "f"]),
                false,
                &none,
                d.path(),
                true,
            )
            .unwrap();
            assert_eq!(c.exe.as_deref(), Some(tool.as_path()), "{argv0}");
            assert_eq!(c.arg0, "rtool", "{argv0}");
        }
        // Relative to the working directory, too.
        let c =
            authorize_command(&g, None, &args(&["./other"]), false, &none, d.path(), true).unwrap();
        assert_eq!(c.arg0, "rtool");
        // Two grants for the file: the one the client names, else the first.
        let (g, _) =
            Grants::from_strings(&[format!("cmd:{}", p("rtool")), format!("cmd:{}", p("tool"))]);
        let name = |argv0: &str| {
            authorize_command(&g, None, &args(&[argv0]), false, &none, d.path(), true)
                .unwrap()
                .arg0
        };
        assert_eq!(name(&p("tool")), "tool");
        assert_eq!(name(&p("rtool")), "rtool");
        assert_eq!(name(&p("other")), "rtool");
        // Fixed arguments pick among grants as well.
        let (g, _) = Grants::from_strings(&[
            format!("cmd:{} a", p("rtool")),
            format!("cmd:{} b", p("tool")),
        ]);
        let c = authorize_command(
            &g,
            None,
            &args(&[&p("rtool"), "b"]),
            false,
            &none,
            d.path(),
            true,
        )
        .unwrap();
        assert_eq!(c.arg0, "tool");
        // `cmd`: any program under any name, so the client's stays.
        let (g, _) = Grants::from_strings(&["cmd", &format!("cmd:{}", p("rtool"))]);
        let c = authorize_command(
            &g,
            None,
            &args(&[&p("other")]),
            false,
            &none,
            d.path(),
            true,
        )
        .unwrap();
        assert_eq!((c.exe, c.arg0), (Some(tool), p("other")));
    }

    #[test]
    fn restricted_look_ups_are_made_unprivileged() {
        assert!(nix::unistd::geteuid().is_root(), "needs root");
        let d = multi_call_tree();
        // Make the tree root's alone.
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let p = |n: &str| d.path().join(n).display().to_string();
        let none: Vec<String> = vec![];
        let (g, _) = Grants::from_strings(&[format!("cmd:{}", p("rtool"))]);
        let auth = |argv0: &str, cwd: &Path| {
            authorize_command(&g, None, &args(&[argv0]), false, &none, cwd, true)
        };
        // The grant's own path still works (the operator named it) ...
        assert_eq!(auth(&p("rtool"), Path::new("/")).unwrap().arg0, "rtool");
        // ... but nothing is looked up where nobody may look: another name
        // for the file, a missing file, a directory or a file as cwd all
        // give the same answer.
        for (argv0, cwd) in [
            (p("other"), PathBuf::from("/")),
            (p("missing"), PathBuf::from("/")),
            (format!("{}/../bin/sh", p("")), PathBuf::from("/")),
            ("echo".to_string(), PathBuf::from("/")),
            (p("rtool"), d.path().to_path_buf()),
            (p("rtool"), d.path().join("tool")),
            (p("rtool"), d.path().join("missing")),
        ] {
            let e = auth(&argv0, &cwd).unwrap_err();
            assert_eq!(
                (e.code, e.message.as_str()),
                (ErrorCode::Forbidden, NOT_PERMITTED),
                "{argv0} in {}",
                cwd.display()
            );
        }
        // A user with `cmd` (as root) is told what is missing.
        let (g, _) = Grants::from_strings(&["cmd"]);
        let e = authorize_command(
            &g,
            None,
            &args(&[&p("missing")]),
            false,
            &none,
            Path::new("/"),
            true,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        // This thread's credentials are untouched.
        assert!(nix::unistd::geteuid().is_root());
    }

    #[test]
    fn lexical_paths() {
        assert_eq!(lexical(Path::new("/a/./b/../c")), Path::new("/a/c"));
        assert_eq!(lexical(Path::new("/../../a")), Path::new("/a"));
        assert_eq!(base_name(Path::new("/usr/bin/rbash")), "rbash");
    }
}
