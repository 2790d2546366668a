//! `put`: receive a file of any size and replace the target atomically, only
//! after the `last` record has authenticated and any expected digest
//! matched. A failed or truncated upload leaves the old file (or no file).

use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{fields, io_error, parse_descriptor, OpCtx, OpResult};
use crate::proto::b64;
use crate::proto::response::{ErrorCode, OpError};
use crate::server::stream::{RequestReader, ResponseWriter};

/// The `put` descriptor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Put {
    /// Target file.
    pub path: String,
    /// Permission bits for the new file.
    pub mode: Option<u32>,
    /// Replace an existing file (default true).
    pub overwrite: Option<bool>,
    /// Create missing parent directories (default false).
    pub create_dirs: Option<bool>,
    /// Expected SHA-256 of the content (b64).
    pub sha256: Option<String>,
}

/// A checked `put`.
#[derive(Debug)]
pub struct PutReq {
    path: String,
    mode: Option<u32>,
    overwrite: bool,
    create_dirs: bool,
    sha256: Option<[u8; 32]>,
}

/// Parses the descriptor.
pub fn parse(d: &[u8]) -> Result<PutReq, OpError> {
    let p: Put = parse_descriptor(d)?;
    if p.path.is_empty() || p.path.contains('\0') {
        return Err(OpError::bad_request(
            "path must be a non-empty string without NUL",
        ));
    }
    if p.mode.is_some_and(|m| m > 0o7777) {
        return Err(OpError::bad_request("mode must be at most 0o7777"));
    }
    let sha256 = match p.sha256 {
        Some(s) => Some(
            b64::decode_array::<32>(&s)
                .map_err(|e| OpError::bad_request(format!("sha256: {e}")))?,
        ),
        None => None,
    };
    Ok(PutReq {
        path: p.path,
        mode: p.mode,
        overwrite: p.overwrite.unwrap_or(true),
        create_dirs: p.create_dirs.unwrap_or(false),
        sha256,
    })
}

/// Removes the temporary file unless the upload was committed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn temp_name(dir: &Path, name: &std::ffi::OsStr) -> PathBuf {
    use rand_core::RngCore;
    let mut raw = [0u8; 6];
    rand_core::OsRng.fill_bytes(&mut raw);
    let mut n = std::ffi::OsString::from(".");
    n.push(name);
    n.push(format!(".remo-{}", b64::encode(&raw)));
    dir.join(n)
}

/// Receives the file.
pub async fn apply(
    ctx: &OpCtx,
    p: PutReq,
    input: &mut RequestReader,
    _out: &mut ResponseWriter,
) -> OpResult {
    let mut target = ctx.inst.resolve(&p.path);
    // Writing through a symlink updates what it points to, as `cp` would.
    if let Ok(t) = std::fs::canonicalize(&target) {
        if std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
            target = t;
        }
    }
    let what = target.display().to_string();
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(OpError::bad_request(format!("{what} is not a file path")));
    };
    if p.create_dirs {
        std::fs::create_dir_all(dir).map_err(|e| io_error(&dir.display().to_string(), &e))?;
    }
    let old = match std::fs::metadata(&target) {
        Ok(m) if m.is_dir() => return Err(OpError::bad_request(format!("{what} is a directory"))),
        Ok(_) if !p.overwrite => {
            return Err(OpError::new(ErrorCode::Exists, format!("{what} exists")))
        }
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(&what, &e)),
    };
    let tmp = temp_name(dir, name);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_error(&dir.display().to_string(), &e))?;
    let mut guard = TempGuard(Some(tmp.clone()));
    let mut file = tokio::fs::File::from_std(file);
    let mut hash = Sha256::new();
    let mut size: u64 = 0;
    let cancel = ctx.session.cancel.clone();
    loop {
        let next = tokio::select! {
            n = input.next_data() => n,
            _ = cancel.cancelled() => return Err(OpError::new(ErrorCode::Unavailable, "session ended")),
        };
        let Some(chunk) = next.map_err(|e| e.to_op_error())? else {
            break;
        };
        hash.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk)
            .await
            .map_err(|e| io_error(&what, &e))?;
        ctx.session.touch();
    }
    let digest: [u8; 32] = hash.finalize().into();
    if let Some(expected) = p.sha256 {
        if expected != digest {
            return Err(OpError::bad_request(
                "content does not match the expected sha256; file not replaced",
            ));
        }
    }
    file.flush().await.map_err(|e| io_error(&what, &e))?;
    let file = file.into_std().await;
    let mode = p
        .mode
        .or_else(|| old.as_ref().map(|m| m.mode() & 0o7777))
        .unwrap_or(0o644);
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| io_error(&what, &e))?;
    if let Some(m) = &old {
        if nix::unistd::geteuid().is_root() {
            let _ = std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()));
        }
    }
    let target2 = target.clone();
    let overwrite = p.overwrite;
    let committed = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        file.sync_all()?;
        drop(file);
        if overwrite {
            std::fs::rename(&tmp, &target2)?;
        } else {
            // link() fails if the target appeared meanwhile: no overwrite race.
            std::fs::hard_link(&tmp, &target2)?;
            std::fs::remove_file(&tmp)?;
        }
        if let Some(dir) = target2.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })
    .await
    .map_err(|_| OpError::new(ErrorCode::Internal, "commit task failed"))?;
    committed.map_err(|e| io_error(&what, &e))?;
    guard.0 = None;
    Ok(fields([
        ("size", Value::from(size)),
        ("sha256", Value::from(b64::encode(&digest))),
    ]))
}
