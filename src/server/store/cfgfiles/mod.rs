//! Named configuration files (`[files.NAME]` in `REMO_CONFIG`): what the
//! `config` operation may touch. Clients name files, never paths, so the
//! server configuration alone decides which files are editable, how they
//! are validated and which service is reloaded after a change.

pub(crate) mod fsat;
pub(crate) mod store;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use log::{info, warn};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::cfgedit::Format;

/// Default number of backups kept per file.
pub(crate) const DEFAULT_BACKUPS: usize = 10;
/// Default time limit of a validation or reload command, in seconds.
pub(crate) const DEFAULT_COMMAND_TIMEOUT: u64 = 30;
/// Default largest file handled (files are edited in memory).
pub(crate) const DEFAULT_MAX_SIZE: u64 = 8 << 20;

fn yes() -> bool {
    true
}
fn default_backups() -> usize {
    DEFAULT_BACKUPS
}
fn default_timeout() -> u64 {
    DEFAULT_COMMAND_TIMEOUT
}
fn default_max_size() -> u64 {
    DEFAULT_MAX_SIZE
}

/// One `[files.NAME]` table.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// The file (absolute). Symlinks in it (owned by root) are resolved
    /// once, when the configuration is loaded: see [`FileSpec::file_path`].
    pub path: PathBuf,
    /// `ini`, `env` or `raw`.
    pub format: Format,
    /// Keep a copy of the old content before each change (default true).
    #[serde(default = "yes")]
    pub backup: bool,
    /// How many backups to keep (default 10).
    #[serde(default = "default_backups")]
    pub backups: usize,
    /// Where the `.NAME.remo-backup/` directory goes (default: the file's directory).
    pub backup_dir: Option<PathBuf>,
    /// Run on the candidate before it replaces the file; `{file}` is the
    /// candidate's path. Non-zero exit: nothing changes.
    pub validate: Option<Vec<String>>,
    /// Run after the file was replaced (`{file}` is the file's path).
    /// Non-zero exit: the old content is put back.
    pub reload: Option<Vec<String>>,
    /// Time limit of each command, in seconds (default 30).
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// Largest file or upload accepted, in bytes (default 8 MiB).
    #[serde(default = "default_max_size")]
    pub max_size: u64,
    /// `path` with its symlinks resolved at load time ([`check_specs`]);
    /// never read from the file. Empty until resolved.
    #[serde(skip)]
    pub resolved: PathBuf,
    /// The directory `.NAME.remo-backup/` goes in (`backup_dir` or the
    /// file's directory), resolved at load time. Empty until resolved.
    #[serde(skip)]
    pub backup_base: PathBuf,
}

impl FileSpec {
    /// The file remod opens: the path resolved at load time. It is opened
    /// with no symlink followed at any component, so a link swapped in
    /// later (by whoever can write the directory) is refused, not followed.
    pub(crate) fn file_path(&self) -> &Path {
        if self.resolved.as_os_str().is_empty() {
            &self.path
        } else {
            &self.resolved
        }
    }

    /// Where the backup directory is created (see [`FileSpec::backup_base`]).
    pub(crate) fn backup_base(&self) -> PathBuf {
        if !self.backup_base.as_os_str().is_empty() {
            return self.backup_base.clone();
        }
        self.backup_dir
            .clone()
            .or_else(|| self.file_path().parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("/"))
    }
}

/// Resolves `path` once, logging what a link pointed to; a link that may
/// not be followed is left in place (every request then refuses it) and
/// logged, without failing the load: anyone able to plant such a link
/// could otherwise stop remod from starting.
fn resolve_logged(name: &str, what: &str, path: &Path) -> PathBuf {
    match fsat::resolve_links(path) {
        Ok(r) => {
            if r != path {
                info!(
                    "config file {name}: {} is a symlink to {}; using {}",
                    path.display(),
                    r.display(),
                    r.display()
                );
            }
            r
        }
        Err(e) => {
            warn!("config file {name}: {what} {}: {e}", path.display());
            path.to_path_buf()
        }
    }
}

/// A name usable in `[files.NAME]`, a permission `config:NAME` and a
/// backup directory name.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "*"
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A mistake in a `[files.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SpecError {
    /// The name is not usable.
    #[error("files.{0}: names are 1-64 characters of A-Z a-z 0-9 . _ - (not starting with '.')")]
    BadName(String),
    /// `path` is relative or names no file.
    #[error("files.{0}: path must be an absolute file path")]
    PathNotAbsolute(String),
    /// `backup_dir` is relative.
    #[error("files.{0}: backup_dir must be absolute")]
    BackupDirNotAbsolute(String),
    /// `backups = 0` with backups on.
    #[error("files.{0}: backups must be at least 1 (or set backup = false)")]
    NoBackups(String),
    /// `validate` or `reload` names no program.
    #[error("files.{0}: {1} must name a program")]
    NoProgram(String, &'static str),
    /// `timeout = 0`.
    #[error("files.{0}: timeout must be at least 1 second")]
    ZeroTimeout(String),
}

/// Checks the `[files]` table at load time, so a mistake is reported when
/// the server starts rather than when someone first edits the file, and
/// resolves each path's symlinks once (`resolved`, `backup_base`).
pub(crate) fn check_specs(files: &mut BTreeMap<String, FileSpec>) -> Result<(), SpecError> {
    for (name, s) in files.iter_mut() {
        let n = || name.clone();
        if !valid_name(name) {
            return Err(SpecError::BadName(n()));
        }
        if !s.path.is_absolute() || s.path.file_name().is_none() {
            return Err(SpecError::PathNotAbsolute(n()));
        }
        if s.backup_dir.as_ref().is_some_and(|d| !d.is_absolute()) {
            return Err(SpecError::BackupDirNotAbsolute(n()));
        }
        if s.backup && s.backups == 0 {
            return Err(SpecError::NoBackups(n()));
        }
        for (what, argv) in [("validate", &s.validate), ("reload", &s.reload)] {
            if argv
                .as_ref()
                .is_some_and(|a| a.first().is_none_or(|p| p.is_empty()))
            {
                return Err(SpecError::NoProgram(n(), what));
            }
        }
        if s.timeout == 0 {
            return Err(SpecError::ZeroTimeout(n()));
        }
        s.resolved = resolve_logged(name, "path", &s.path);
        s.backup_base = match &s.backup_dir {
            Some(d) => resolve_logged(name, "backup_dir", d),
            None => s
                .resolved
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/")),
        };
    }
    Ok(())
}

/// The version of some content: a digest, so "unchanged" means "same bytes".
pub(crate) fn version_of(content: Option<&[u8]>) -> String {
    match content {
        Some(c) => format!("sha256:{}", crate::proto::b64::encode(&Sha256::digest(c))),
        None => "absent".to_string(),
    }
}

/// What a file's lock is keyed on: its directory's identity (device,
/// inode) and its name there. Not the inode of the file itself, which every
/// change replaces; not the configured path, of which there may be several
/// (a symlink, two instances' configurations) for one file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct LockKey {
    /// The directory's (device, inode).
    pub dir: fsat::FileId,
    /// The file's name in it.
    pub name: OsString,
}

type LockMap = HashMap<LockKey, Arc<tokio::sync::Mutex<()>>>;
static LOCKS: LazyLock<Mutex<LockMap>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The lock that serialises modifications of one file, for the whole
/// process.
pub(crate) fn lock_for(key: &LockKey) -> Arc<tokio::sync::Mutex<()>> {
    let mut map = LOCKS.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(key.clone()).or_default().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_check() {
        #[derive(Deserialize)]
        struct T {
            files: BTreeMap<String, FileSpec>,
        }
        let t: T = toml::from_str(
            r#"[files.wg0]
path = "/etc/wireguard/wg0.conf"
format = "ini"
validate = ["wg-quick", "strip", "{file}"]
reload = ["systemctl", "reload", "wg-quick@wg0"]
"#,
        )
        .unwrap();
        let s = t.files.get("wg0").unwrap();
        assert!(s.backup && s.backups == 10 && s.timeout == 30);
        assert!(check_specs(&mut t.files.clone()).is_ok());
        let mut bad = t.files.clone();
        bad.insert("../x".into(), s.clone());
        assert!(check_specs(&mut bad).is_err());
        let mut bad = t.files.clone();
        if let Some(s) = bad.get_mut("wg0") {
            s.path = "rel".into();
        }
        assert!(check_specs(&mut bad).is_err());
        assert!(toml::from_str::<T>(
            "[files.a]\npath=\"/a\"\nformat=\"raw\"\nresolved=\"/etc/shadow\"\n"
        )
        .is_err());
        assert!(toml::from_str::<T>("[files.a]\npath=\"/a\"\nformat=\"yaml\"\n").is_err());
        assert!(
            toml::from_str::<T>("[files.a]\npath=\"/a\"\nformat=\"raw\"\nbackup_count=1\n")
                .is_err()
        );
        assert_eq!(version_of(None), "absent");
        assert!(version_of(Some(b"x")).starts_with("sha256:"));
    }

    /// Two names for one file (one through a symlink the admin configured)
    /// share one lock; another file in the same directory does not.
    #[tokio::test]
    async fn one_lock_per_file_whatever_the_name() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().canonicalize().unwrap();
        std::fs::create_dir(base.join("app")).unwrap();
        std::fs::write(base.join("app/.env"), "A=1\n").unwrap();
        std::fs::write(base.join("app/other"), "B=1\n").unwrap();
        std::os::unix::fs::symlink(base.join("app/.env"), base.join("alias.env")).unwrap();
        std::os::unix::fs::symlink(base.join("app"), base.join("applink")).unwrap();
        let spec = |p: PathBuf| FileSpec {
            path: p,
            format: Format::Env,
            backup: true,
            backups: 1,
            backup_dir: None,
            validate: None,
            reload: None,
            timeout: 1,
            max_size: 1024,
            resolved: PathBuf::new(),
            backup_base: PathBuf::new(),
        };
        let mut files = BTreeMap::new();
        files.insert("a".to_string(), spec(base.join("app/.env")));
        files.insert("b".to_string(), spec(base.join("alias.env")));
        files.insert("c".to_string(), spec(base.join("applink/.env")));
        files.insert("d".to_string(), spec(base.join("app/other")));
        check_specs(&mut files).unwrap();
        let mut keys = Vec::new();
        for n in ["a", "b", "c", "d"] {
            let loc = store::locate(files.get(n).unwrap()).await.unwrap();
            keys.push(loc.lock_key());
        }
        assert_eq!(keys[0], keys[1]);
        assert_eq!(keys[0], keys[2]);
        assert_ne!(keys[0], keys[3]);
        assert!(Arc::ptr_eq(&lock_for(&keys[0]), &lock_for(&keys[1])));
        assert!(!Arc::ptr_eq(&lock_for(&keys[0]), &lock_for(&keys[3])));
        // Held through one name, the lock is busy through the other.
        let l = lock_for(&keys[2]);
        let _g = l.lock().await;
        assert!(lock_for(&keys[1]).try_lock().is_err());
        assert!(lock_for(&keys[3]).try_lock().is_ok());
    }
}
