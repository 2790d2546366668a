//! The file side of configuration editing: reading the current content,
//! backups (timestamped, rotated, 0600), the candidate written beside the
//! file, validation, the atomic replace, reload and rollback.
//!
//! Order of a change: candidate written (original mode and owner) and
//! fsynced → validated → old content backed up → renamed over the file →
//! reload command. A failed validation changes nothing, not even the
//! backups; a failed reload puts the old content back (and reloads again).

use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::{version_of, FileSpec};
use crate::proto::response::{ErrorCode, OpError};
use crate::server::ops::io_error;

/// Most bytes of a command's output kept for the client, per stream.
const MAX_COMMAND_OUTPUT: usize = 64 << 10;

/// The file as it is now.
#[derive(Debug, Clone)]
pub struct Current {
    /// The file edited: the configured path, or what its symlink points to.
    pub path: PathBuf,
    /// Its content; `None` if it does not exist.
    pub content: Option<Vec<u8>>,
    /// Permission bits, kept by every change.
    pub mode: Option<u32>,
    /// Owner and group, kept by every change when remod runs as root.
    pub owner: Option<(u32, u32)>,
    /// [`version_of`] the content.
    pub version: String,
}

/// The file a spec names, following a symlink as `cp` would.
pub fn target_path(spec: &FileSpec) -> PathBuf {
    let p = &spec.path;
    if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()) {
        if let Ok(t) = std::fs::canonicalize(p) {
            return t;
        }
    }
    p.clone()
}

/// Reads the file (bounded by `max_size`).
pub fn read_current(spec: &FileSpec) -> Result<Current, OpError> {
    let path = target_path(spec);
    let what = path.display().to_string();
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Current {
                path,
                content: None,
                mode: None,
                owner: None,
                version: version_of(None),
            })
        }
        Err(e) => return Err(io_error(&what, &e)),
    };
    if !meta.is_file() {
        return Err(OpError::bad_request(format!(
            "{what} is not a regular file"
        )));
    }
    if meta.len() > spec.max_size {
        return Err(OpError::new(
            ErrorCode::TooLarge,
            format!("{what} is larger than max_size ({} bytes)", spec.max_size),
        ));
    }
    let content = std::fs::read(&path).map_err(|e| io_error(&what, &e))?;
    Ok(Current {
        version: version_of(Some(&content)),
        path,
        content: Some(content),
        mode: Some(meta.mode() & 0o7777),
        owner: Some((meta.uid(), meta.gid())),
    })
}

/// `<backup_dir or the file's directory>/.NAME.remo-backup`.
pub fn backup_dir(spec: &FileSpec, name: &str) -> PathBuf {
    let base = spec
        .backup_dir
        .clone()
        .or_else(|| spec.path.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("/"));
    base.join(format!(".{name}.remo-backup"))
}

/// A backup id is a UTC timestamp like `20250102T030405.123456Z`
/// (optionally `-N`); anything else (a path, `..`) is refused.
pub fn valid_backup_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// One stored backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// Its id (file name).
    pub id: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, Unix seconds.
    pub mtime: i64,
}

/// The backups of a file, newest first.
pub fn list_backups(spec: &FileSpec, name: &str) -> Result<Vec<BackupInfo>, OpError> {
    let dir = backup_dir(spec, name);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(&dir.display().to_string(), &e)),
    };
    let mut out = Vec::new();
    for entry in rd.flatten() {
        let Ok(id) = entry.file_name().into_string() else {
            continue;
        };
        if !valid_backup_id(&id) {
            continue;
        }
        if let Ok(m) = entry.metadata() {
            if m.is_file() {
                out.push(BackupInfo {
                    id,
                    size: m.len(),
                    mtime: m.mtime(),
                });
            }
        }
    }
    out.sort_by(|a, b| b.id.cmp(&a.id));
    Ok(out)
}

/// The content of one backup.
pub fn read_backup(spec: &FileSpec, name: &str, id: &str) -> Result<Vec<u8>, OpError> {
    if !valid_backup_id(id) {
        return Err(OpError::bad_request(format!("invalid backup id {id:?}")));
    }
    let path = backup_dir(spec, name).join(id);
    let meta = std::fs::metadata(&path).map_err(|e| io_error(&format!("backup {id}"), &e))?;
    if !meta.is_file() || meta.len() > spec.max_size {
        return Err(OpError::bad_request(format!("backup {id} is not usable")));
    }
    std::fs::read(&path).map_err(|e| io_error(&format!("backup {id}"), &e))
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

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Stores `content` as a new backup (0600 in a 0700 directory) and deletes
/// the oldest ones beyond `keep`. Returns the new backup's id.
fn write_backup(dir: &Path, content: &[u8], keep: usize) -> std::io::Result<String> {
    use std::io::Write;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let stamp = timestamp();
    let mut n = 0u32;
    let (id, mut file) = loop {
        let id = if n == 0 {
            stamp.clone()
        } else {
            format!("{stamp}-{n}")
        };
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join(&id))
        {
            Ok(f) => break (id, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => n += 1,
            Err(e) => return Err(e),
        }
    };
    file.write_all(content)?;
    file.sync_all()?;
    drop(file);
    let mut ids: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|i| valid_backup_id(i))
        .collect();
    ids.sort();
    let excess = ids.len().saturating_sub(keep);
    for old in ids.iter().take(excess) {
        let _ = std::fs::remove_file(dir.join(old));
    }
    sync_dir(dir);
    Ok(id)
}

/// A candidate file: `<dir>/.remo-XXXX/<file name>`, so it is on the same
/// file system as the target (rename is atomic) and keeps the target's
/// name (validators such as `wg-quick strip` look at it). Removed on drop
/// unless committed.
struct Candidate {
    dir: PathBuf,
    file: PathBuf,
}

impl Drop for Candidate {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn random_suffix() -> String {
    use rand_core::RngCore;
    let mut raw = [0u8; 6];
    rand_core::OsRng.fill_bytes(&mut raw);
    crate::proto::b64::encode(&raw)
}

/// Writes `content` as a candidate beside `target`, with `mode` and `owner`, fsynced.
fn write_candidate(
    target: &Path,
    content: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> std::io::Result<Candidate> {
    use std::io::Write;
    let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file path",
        ));
    };
    let dir = parent.join(format!(".remo-{}", random_suffix()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let cand = Candidate {
        file: dir.join(name),
        dir,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&cand.file)?;
    f.write_all(content)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = owner {
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
        }
    }
    f.sync_all()?;
    Ok(cand)
}

/// Renames a candidate over its target and fsyncs the directory.
fn install(cand: Candidate, target: &Path) -> std::io::Result<()> {
    std::fs::rename(&cand.file, target)?;
    if let Some(d) = target.parent() {
        sync_dir(d);
    }
    Ok(())
}

/// What a validation or reload command did.
#[derive(Debug, Clone)]
pub struct CommandRun {
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
pub async fn run_command(argv: &[String], file: &Path, name: &str, timeout: u64) -> CommandRun {
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
        .current_dir(file.parent().unwrap_or(Path::new("/")))
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
            crate::server::ops::cmd::kill_group(pid);
            fail(format!("{prog}: timed out after {timeout} s"))
        }
    }
}

/// A change that was made.
#[derive(Debug, Clone)]
pub struct Committed {
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
pub enum CommitError {
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

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    what: String,
) -> Result<T, OpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| OpError::new(ErrorCode::Internal, "file task failed"))?
        .map_err(|e| io_error(&what, &e))
}

/// Replaces the file's content with `new` following the order in the
/// module comment. The caller holds the file's lock and has checked the
/// version.
pub async fn commit(
    spec: &FileSpec,
    name: &str,
    cur: &Current,
    new: Vec<u8>,
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
    let target = cur.path.clone();
    let what = target.display().to_string();
    let mode = cur.mode.unwrap_or(0o644);
    let owner = cur.owner;
    let (t2, n2) = (target.clone(), new);
    let cand = blocking(move || write_candidate(&t2, &n2, mode, owner), what.clone())
        .await
        .map_err(CommitError::Op)?;
    if let Some(argv) = &spec.validate {
        let run = run_command(argv, &cand.file, name, spec.timeout).await;
        if !run.ok {
            return Err(CommitError::Invalid(run));
        }
    }
    let mut backup = None;
    if let (true, Some(old)) = (spec.backup, cur.content.clone()) {
        let dir = backup_dir(spec, name);
        let keep = spec.backups;
        let d2 = dir.clone();
        backup = Some(
            blocking(
                move || write_backup(&d2, &old, keep),
                dir.display().to_string(),
            )
            .await
            .map_err(CommitError::Op)?,
        );
    }
    let t2 = target.clone();
    blocking(move || install(cand, &t2), what.clone())
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
    // the service runs what is on disk.
    let old = cur.content.clone();
    let t2 = target.clone();
    let restored = blocking(
        move || match old {
            Some(old) => install(write_candidate(&t2, &old, mode, owner)?, &t2),
            None => std::fs::remove_file(&t2),
        },
        what,
    )
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
        let mut ids = vec![];
        for i in 0..5 {
            ids.push(write_backup(&dir, format!("{i}").as_bytes(), 3).unwrap());
        }
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ids[2..].to_vec());
        let m = std::fs::metadata(dir.join(&ids[4])).unwrap();
        assert_eq!(m.mode() & 0o777, 0o600);
    }
}
