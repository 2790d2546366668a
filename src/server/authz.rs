//! Authorising commands (`cmd`, `icm`) against the user's grants.
//!
//! `argv[0]` is resolved the way the child would resolve it (the child's
//! fixed `PATH`, or relative to its working directory when it holds a `/`),
//! canonicalised, and checked against `cmd:PATH` grants, which are
//! canonicalised too (so `cmd:/bin/ls` matches on a merged-/usr system). The
//! child then executes exactly that resolved file: what was checked is what
//! runs. `sh` strings need the `sh` grant. Admins are not checked.
//!
//! A user whose commands are limited to `cmd:PATH` grants could otherwise
//! escape the allowlist through the environment (`LD_PRELOAD`, `BASH_ENV`,
//! …), so such a user may set only harmless variables (see
//! [`RESTRICTED_ENV_OK`]).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::perms::{Grants, Perm};
use crate::proto::response::{ErrorCode, OpError};

/// The `PATH` every command gets (see `ops::cmd::base_env`).
pub const CHILD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Variables a program-restricted user may still set (exact names, or a
/// prefix when ending in `*`).
pub const RESTRICTED_ENV_OK: &[&str] = &["TERM", "LANG", "LC_*", "TZ", "COLUMNS", "LINES"];

fn executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds `prog` the way `execvp` would with the search path `path`
/// (relative entries and an empty entry taken from `cwd`), without
/// canonicalising. Used for commands that are not checked (admins, `sh`):
/// handing the spawn an absolute path lets it use `posix_spawn` (a vfork)
/// instead of `fork`, which in a multi-threaded daemon copies the page
/// tables and shoots down TLBs on every command.
pub fn search_path(prog: &str, path: &str, cwd: &Path) -> Option<PathBuf> {
    if prog.is_empty() || prog.contains('/') {
        return None;
    }
    path.split(':')
        .map(|d| cwd.join(d).join(prog))
        .find(|p| executable(p))
}

/// Resolves a program name as the child would, to a canonical absolute path.
pub fn resolve_program(prog: &str, cwd: &Path) -> Option<PathBuf> {
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

/// Checks a command (`argv`, or `sh` when `is_sh`) against the grants.
/// Returns the executable to run: `None` to run `argv[0]` as today
/// (admins, `sh`), else the resolved file that was checked.
pub fn authorize_command<'a>(
    grants: &Grants,
    argv: &[String],
    is_sh: bool,
    env: impl IntoIterator<Item = &'a String>,
    cwd: &Path,
) -> Result<Option<PathBuf>, OpError> {
    if grants.is_admin() {
        return Ok(None);
    }
    if is_sh {
        return if grants.allow_sh() {
            Ok(None)
        } else {
            Err(OpError::new(
                ErrorCode::Forbidden,
                "you may not run shell commands (sh)",
            ))
        };
    }
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| OpError::bad_request("argv must name a program"))?;
    let exe = resolve_program(prog, cwd)
        .ok_or_else(|| OpError::new(ErrorCode::NotFound, format!("{prog}: command not found")))?;
    let allowed = grants.allow_program(&exe, args)
        || grants.perms().iter().any(|p| match p {
            Perm::CmdProgram { path, .. } => {
                std::fs::canonicalize(path).is_ok_and(|c| c == exe)
                    && grants.allow_program(path, args)
            }
            _ => false,
        });
    if !allowed {
        return Err(OpError::new(
            ErrorCode::Forbidden,
            format!("you may not run {}", exe.display()),
        ));
    }
    if !unrestricted(grants) {
        if let Some(bad) = env.into_iter().find(|k| !env_ok(k)) {
            return Err(OpError::new(
                ErrorCode::Forbidden,
                format!("you may not set the environment variable {bad}"),
            ));
        }
    }
    Ok(Some(exe))
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

    #[test]
    fn program_grants() {
        let echo = resolve_program("echo", Path::new("/")).unwrap();
        let grant = format!("cmd:{}", echo.display());
        let (g, _) = Grants::from_strings(&[grant.as_str()]);
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let none: Vec<String> = vec![];
        assert_eq!(
            authorize_command(&g, &args(&["echo", "hi"]), false, &none, Path::new("/")).unwrap(),
            Some(echo.clone())
        );
        let e = authorize_command(&g, &args(&["true"]), false, &none, Path::new("/")).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        let e = authorize_command(
            &g,
            &args(&["/bin/sh", "-c", "x"]),
            true,
            &none,
            Path::new("/"),
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        let ld = vec!["LD_PRELOAD".to_string()];
        let e = authorize_command(&g, &args(&["echo"]), false, &ld, Path::new("/")).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        let term = vec!["TERM".to_string(), "LC_ALL".to_string()];
        assert!(authorize_command(&g, &args(&["echo"]), false, &term, Path::new("/")).is_ok());
    }
}
