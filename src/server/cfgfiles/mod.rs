//! Named configuration files (`[files.NAME]` in `REMO_CONFIG`): what the
//! `config` operation may touch. Clients name files, never paths, so the
//! server configuration alone decides which files are editable, how they
//! are validated and which service is reloaded after a change.

pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::cfgedit::Format;

/// Default number of backups kept per file.
pub const DEFAULT_BACKUPS: usize = 10;
/// Default time limit of a validation or reload command, in seconds.
pub const DEFAULT_COMMAND_TIMEOUT: u64 = 30;
/// Default largest file handled (files are edited in memory).
pub const DEFAULT_MAX_SIZE: u64 = 8 << 20;

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
    /// The file (absolute). A symlink is followed: its target is edited.
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
}

/// A name usable in `[files.NAME]`, a permission `config:NAME` and a
/// backup directory name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "*"
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Checks the `[files]` table at load time, so a mistake is reported when
/// the server starts rather than when someone first edits the file.
pub fn check_specs(files: &BTreeMap<String, FileSpec>) -> Result<(), String> {
    for (name, s) in files {
        if !valid_name(name) {
            return Err(format!(
                "files.{name}: names are 1-64 characters of A-Z a-z 0-9 . _ - (not starting with '.')"
            ));
        }
        if !s.path.is_absolute() || s.path.file_name().is_none() {
            return Err(format!("files.{name}: path must be an absolute file path"));
        }
        if s.backup_dir.as_ref().is_some_and(|d| !d.is_absolute()) {
            return Err(format!("files.{name}: backup_dir must be absolute"));
        }
        if s.backup && s.backups == 0 {
            return Err(format!(
                "files.{name}: backups must be at least 1 (or set backup = false)"
            ));
        }
        for (what, argv) in [("validate", &s.validate), ("reload", &s.reload)] {
            if argv
                .as_ref()
                .is_some_and(|a| a.first().is_none_or(|p| p.is_empty()))
            {
                return Err(format!("files.{name}: {what} must name a program"));
            }
        }
        if s.timeout == 0 {
            return Err(format!("files.{name}: timeout must be at least 1 second"));
        }
    }
    Ok(())
}

/// The version of some content: a digest, so "unchanged" means "same bytes".
pub fn version_of(content: Option<&[u8]>) -> String {
    match content {
        Some(c) => format!("sha256:{}", crate::proto::b64::encode(&Sha256::digest(c))),
        None => "absent".to_string(),
    }
}

static LOCKS: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The lock that serialises modifications of one file. Keyed by path for
/// the whole process, so two instances naming the same file share it.
pub fn lock_for(path: &Path) -> Arc<tokio::sync::Mutex<()>> {
    let mut map = LOCKS.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(path.to_path_buf()).or_default().clone()
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
        assert!(check_specs(&t.files).is_ok());
        let mut bad = t.files.clone();
        bad.insert("../x".into(), s.clone());
        assert!(check_specs(&bad).is_err());
        let mut bad = t.files.clone();
        if let Some(s) = bad.get_mut("wg0") {
            s.path = "rel".into();
        }
        assert!(check_specs(&bad).is_err());
        assert!(toml::from_str::<T>("[files.a]\npath=\"/a\"\nformat=\"yaml\"\n").is_err());
        assert!(
            toml::from_str::<T>("[files.a]\npath=\"/a\"\nformat=\"raw\"\nbackup_count=1\n")
                .is_err()
        );
        assert_eq!(version_of(None), "absent");
        assert!(version_of(Some(b"x")).starts_with("sha256:"));
    }
}
