//! `put`: receive a file of any size and replace the target atomically, only
//! after the `last` record has authenticated and any expected digest
//! matched. A failed or truncated upload leaves the old file (or no file).

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

use sha2::{Digest, Sha256};

use super::{io_error, OpCtx};
use crate::proto::b64;
use crate::proto::response::{ErrorCode, OpError};
use crate::server::core::stream::{RequestReader, ResponseWriter};
use crate::server::enforce::confine::{fs_error, locate, Access, Located};
use crate::server::enforce::runas::{account_for, fs_step};
use crate::server::store::pending::{Kind, Pending};

pub(crate) use crate::ops::put::{PutDesc, PutResult};

/// A checked `put`.
#[derive(Debug)]
pub(crate) struct PutReq {
    path: String,
    mode: Option<u32>,
    overwrite: bool,
    create_dirs: bool,
    sha256: Option<[u8; 32]>,
}

/// Checks the descriptor.
pub(crate) fn check(p: PutDesc) -> Result<PutReq, OpError> {
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

/// Removes the temporary file unless the upload was committed, then its
/// journal entry.
struct TempGuard {
    dir: Arc<OwnedFd>,
    name: Option<OsString>,
    _pending: Option<Pending>,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(n) = self.name.take() {
            let _ = nix::unistd::unlinkat(
                Some(self.dir.as_raw_fd()),
                n.as_os_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
    }
}

fn temp_name(name: &OsStr) -> OsString {
    use rand_core::RngCore;
    let mut raw = [0u8; 6];
    rand_core::OsRng.fill_bytes(&mut raw);
    let mut n = OsString::from(".");
    n.push(name);
    n.push(format!(".remo-{}", b64::encode(&raw)));
    n
}

/// What the first file-system step leaves ready for receiving.
struct Prepared {
    dir: Arc<OwnedFd>,
    name: OsString,
    old: Option<nix::sys::stat::FileStat>,
    /// An unnamed (`O_TMPFILE`) file, which a crash cannot leave behind;
    /// None where the file system has none: then a named one is made
    /// after its journal entry (see [`crate::server::store::pending`]).
    file: Option<std::fs::File>,
}

/// Opens the target's directory (below the user's root), checks the
/// target, and creates an unnamed temporary file in the same directory.
fn prepare(loc: &Located, p: &PutReq) -> Result<Prepared, OpError> {
    let what = loc.shown.as_str();
    let (dir, name) = loc.open_parent(p.create_dirs)?;
    let old = match nix::sys::stat::fstatat(
        Some(dir.as_raw_fd()),
        name.as_os_str(),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
            return Err(OpError::bad_request(format!("{what} is a directory")))
        }
        Ok(_) if !p.overwrite => {
            return Err(OpError::new(ErrorCode::Exists, format!("{what} exists")))
        }
        Ok(st) => Some(st),
        Err(Errno::ENOENT) => None,
        Err(e) => return Err(fs_error(what, e, loc.confined)),
    };
    // An unnamed file in the target's directory: linked into place on
    // commit, gone with its last descriptor if remod dies first.
    let unnamed = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        ".",
        OFlag::O_TMPFILE | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    );
    let file = match unnamed {
        // SAFETY: `openat` returned a fresh descriptor that nothing else owns.
        Ok(fd) => Some(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) })),
        // The file system has no O_TMPFILE.
        Err(Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL) => None,
        Err(e) => return Err(fs_error(what, e, loc.confined)),
    };
    Ok(Prepared {
        dir: Arc::new(dir),
        name,
        old,
        file,
    })
}

/// Creates the named temporary file `tmp` (journaled by the caller).
fn create_named(dir: &OwnedFd, tmp: &OsStr, loc: &Located) -> Result<std::fs::File, OpError> {
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        tmp,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| fs_error(&loc.shown, e, loc.confined))?;
    // SAFETY: `openat` returned a fresh descriptor that nothing else owns.
    Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Records a temporary name in the instance's journal before it is made.
async fn journal(
    ctx: &OpCtx,
    dir: &Arc<OwnedFd>,
    tmp: &OsStr,
    uid: u32,
) -> Result<Pending, OpError> {
    let (j, d, t) = (ctx.inst.pending.clone(), dir.clone(), tmp.to_os_string());
    tokio::task::spawn_blocking(move || j.record(&d, &t, Kind::File, uid))
        .await
        .map_err(|_| OpError::new(ErrorCode::Internal, "journal worker failed"))?
        .map_err(|e| {
            OpError::new(
                ErrorCode::Internal,
                format!("cannot record the temporary file: {}", e.desc()),
            )
        })
}

/// How many batches may wait for the writer.
const WRITE_QUEUE: usize = 4;
/// Opened records are handed to the writer in batches of about this many
/// bytes: one wake-up of the writer per batch, not per 64 KiB record, which
/// on two busy cores costs more than the copy it saves.
const WRITE_BATCH: usize = 256 << 10;

/// What the writer thread hands back: the temporary file, its digest and size.
struct Written {
    file: std::fs::File,
    digest: [u8; 32],
    size: u64,
}

/// Receives the file.
pub(crate) async fn apply(
    ctx: &OpCtx,
    p: PutReq,
    input: &mut RequestReader,
    _out: &mut ResponseWriter,
) -> Result<PutResult, OpError> {
    let grants = ctx.session.grants();
    let loc = locate(&grants, &ctx.inst.resolve(&p.path), Access::Write)?;
    let acct = account_for(&grants)?;
    let what = loc.shown.clone();
    let p = Arc::new(p);
    let prepared = {
        let (loc, p) = (loc.clone(), p.clone());
        fs_step(acct.clone(), move || prepare(&loc, &p)).await?
    };
    let Prepared {
        dir,
        name,
        old,
        file,
    } = prepared;
    // The owner of what this upload creates.
    let uid = acct
        .as_ref()
        .map_or_else(|| nix::unistd::geteuid().as_raw(), |a| a.uid);
    let mut guard = TempGuard {
        dir: dir.clone(),
        name: None,
        _pending: None,
    };
    let (tmp, file) = match file {
        Some(f) => (None, f),
        None => {
            let tmp = temp_name(&name);
            guard._pending = Some(journal(ctx, &dir, &tmp, uid).await?);
            let (d, t, l) = (dir.clone(), tmp.clone(), loc.clone());
            let f = fs_step(acct.clone(), move || create_named(&d, &t, &l)).await?;
            guard.name = Some(tmp.clone());
            (Some(tmp), f)
        }
    };
    // An unnamed file replacing another is linked under a temporary name
    // first (renamed over the target at once): journaled too.
    let link_tmp = match (&tmp, p.overwrite) {
        (None, true) => {
            let t = temp_name(&name);
            guard._pending = Some(journal(ctx, &dir, &t, uid).await?);
            Some(t)
        }
        _ => None,
    };
    // A pipeline: this task opens records while a blocking writer hashes
    // and writes the previous ones (up to WRITE_QUEUE chunks in between),
    // so the two run on both cores and the runtime never waits on the disk.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<bytes::Bytes>>(WRITE_QUEUE);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<Written> {
        let mut file = file;
        let mut hash = Sha256::new();
        let mut size: u64 = 0;
        while let Some(batch) = rx.blocking_recv() {
            for chunk in batch {
                hash.update(&chunk);
                size += chunk.len() as u64;
                file.write_all(&chunk)?;
            }
        }
        Ok(Written {
            file,
            digest: hash.finalize().into(),
            size,
        })
    });
    let cancel = ctx.session.cancel.clone();
    let mut batch = Vec::new();
    let mut batched = 0;
    loop {
        let next = tokio::select! {
            n = input.next_data() => n,
            _ = cancel.cancelled() => return Err(OpError::new(ErrorCode::Unavailable, "session ended")),
        };
        let chunk = next.map_err(|e| e.to_op_error())?;
        let end = chunk.is_none();
        if let Some(c) = chunk {
            batched += c.len();
            batch.push(c);
        }
        if (end || batched >= WRITE_BATCH) && !batch.is_empty() {
            batched = 0;
            if tx.send(std::mem::take(&mut batch)).await.is_err() {
                // The writer stopped on an error; it is reported below.
                break;
            }
            ctx.session.touch();
        }
        if end {
            break;
        }
    }
    drop(tx);
    let Written { file, digest, size } = writer
        .await
        .map_err(|_| OpError::new(ErrorCode::Internal, "file writer failed"))?
        .map_err(|e| io_error(&what, &e))?;
    if let Some(expected) = p.sha256 {
        if expected != digest {
            return Err(OpError::bad_request(
                "content does not match the expected sha256; file not replaced",
            ));
        }
    }
    let mut mode = p
        .mode
        .or_else(|| old.as_ref().map(|m| m.st_mode & 0o7777))
        .unwrap_or(0o644);
    if !grants.is_admin() {
        // Only admins may create set-id files: remod often runs as root.
        mode &= 0o1777;
    }
    // Copying the old owner needs root and is done only without run-as:
    // a run-as user's files belong to the account.
    let chown_to = old
        .as_ref()
        .filter(|_| acct.is_none() && nix::unistd::geteuid().is_root())
        .map(|m| (m.st_uid, m.st_gid));
    let overwrite = p.overwrite;
    let confined = loc.confined;
    let what2 = what.clone();
    fs_step(acct, move || {
        let io = |e: std::io::Error| io_error(&what2, &e);
        let at = |e: Errno| fs_error(&what2, e, confined);
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io)?;
        if let Some((uid, gid)) = chown_to {
            let _ = std::os::unix::fs::fchown(&file, Some(uid), Some(gid));
        }
        file.sync_all().map_err(io)?;
        let d = Some(dir.as_raw_fd());
        let tmp = match tmp {
            Some(t) => t,
            None => {
                // Give the unnamed file a name: the final one when it must
                // not replace anything (link() fails if the target appeared
                // meanwhile), else a temporary one renamed over the target
                // at once. /proc/self/fd works for a run-as thread too (its
                // own process), where AT_EMPTY_PATH would need a capability.
                let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
                let link = |to: &OsStr| {
                    nix::unistd::linkat(
                        None,
                        std::path::Path::new(&proc_path),
                        d,
                        std::path::Path::new(to),
                        AtFlags::AT_SYMLINK_FOLLOW,
                    )
                };
                let Some(t) = link_tmp else {
                    link(name.as_os_str()).map_err(at)?;
                    drop(file);
                    let _ = nix::unistd::fsync(dir.as_raw_fd());
                    return Ok(());
                };
                link(t.as_os_str()).map_err(at)?;
                t
            }
        };
        drop(file);
        if overwrite {
            if let Err(e) = nix::fcntl::renameat(d, tmp.as_os_str(), d, name.as_os_str()) {
                let _ = nix::unistd::unlinkat(
                    d,
                    tmp.as_os_str(),
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                );
                return Err(at(e));
            }
        } else {
            // link() fails if the target appeared meanwhile: no overwrite race.
            nix::unistd::linkat(d, tmp.as_os_str(), d, name.as_os_str(), AtFlags::empty())
                .map_err(at)?;
            nix::unistd::unlinkat(d, tmp.as_os_str(), nix::unistd::UnlinkatFlags::NoRemoveDir)
                .map_err(at)?;
        }
        let _ = nix::unistd::fsync(dir.as_raw_fd());
        Ok(())
    })
    .await?;
    guard.name = None;
    Ok(PutResult {
        size,
        sha256: b64::encode(&digest),
    })
}
