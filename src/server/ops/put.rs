//! `put`: receive a file of any size and replace the target atomically, only
//! after the `last` record has authenticated and any expected digest
//! matched. A failed or truncated upload leaves the old file (or no file).
//!
//! The steps — [`stage`] (resolve the target, make the staging file),
//! [`receive`] (data records into it, hashed on the way) and [`commit`]
//! (mode, owner, fsync, link or rename into place) — are shared with the
//! resumable upload ([`super::upload`]), which runs them across requests.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode};

use sha2::{Digest, Sha256};

use super::{io_error, OpCtx};
use crate::proto::b64;
use crate::proto::response::{ErrorCode, OpError};
use crate::server::core::stream::{RequestReader, ResponseWriter};
use crate::server::enforce::confine::{fs_error, locate, Access, Located};
use crate::server::enforce::runas::{account_for, fs_step, Account};
use crate::server::store::pending::{Kind, Pending};

pub(crate) use crate::ops::put::{PutDesc, PutResult, UploadStep};

/// A checked `put`.
#[derive(Debug)]
pub(crate) struct PutReq {
    pub(crate) path: String,
    pub(crate) mode: Option<u32>,
    pub(crate) overwrite: bool,
    pub(crate) create_dirs: bool,
    pub(crate) sha256: Option<[u8; 32]>,
    /// `overwrite` and `create_dirs` as the client sent them (absent or
    /// not): a later part of an upload may repeat them, not change them.
    pub(crate) given: (Option<bool>, Option<bool>),
    /// A resumable upload's step, if this is one.
    pub(crate) upload: Option<UploadReq>,
}

/// A checked resumable-upload step (see [`super::upload`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UploadReq {
    /// Start one; the data is its first part.
    Start {
        /// Commit after the data.
        commit: bool,
    },
    /// Continue one: a part (with `offset`), the status (no offset, no
    /// data), or the commit.
    Step {
        /// The upload.
        id: String,
        /// Where the data goes; `None`: the request brings no data.
        offset: Option<u64>,
        /// Commit after the data.
        commit: bool,
    },
    /// Discard one.
    Abort {
        /// The upload.
        id: String,
    },
}

/// An upload id as the server makes them: b64url of 16 bytes.
fn check_id(id: &str) -> Result<String, OpError> {
    b64::decode_array::<16>(id)
        .map(|_| id.to_string())
        .map_err(|_| OpError::bad_request("upload.id is not an upload id"))
}

/// Checks an upload step's shape: what goes together.
fn check_step(u: UploadStep, sha256: bool) -> Result<UploadReq, OpError> {
    let commit = u.commit.unwrap_or(false);
    if u.abort.unwrap_or(false) {
        if commit || u.offset.is_some() || sha256 {
            return Err(OpError::bad_request(
                "upload.abort takes only the upload's id",
            ));
        }
        let id =
            u.id.ok_or_else(|| OpError::bad_request("upload.abort needs upload.id"))?;
        return Ok(UploadReq::Abort { id: check_id(&id)? });
    }
    if commit && !sha256 {
        return Err(OpError::bad_request(
            "upload.commit needs sha256: the SHA-256 of the whole content",
        ));
    }
    if !commit && sha256 {
        return Err(OpError::bad_request(
            "with upload, sha256 (of the whole content) goes with commit",
        ));
    }
    match u.id {
        None if u.offset.is_some_and(|o| o != 0) => Err(OpError::bad_request(
            "a new upload starts at offset 0 (give upload.id to continue one)",
        )),
        None => Ok(UploadReq::Start { commit }),
        Some(id) => Ok(UploadReq::Step {
            id: check_id(&id)?,
            offset: u.offset,
            commit,
        }),
    }
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
    let upload = match p.upload {
        Some(u) => Some(check_step(u, p.sha256.is_some())?),
        None => None,
    };
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
        given: (p.overwrite, p.create_dirs),
        upload,
    })
}

/// Removes the named temporary file unless the upload was committed, then
/// its journal entry.
pub(crate) struct TempGuard {
    dir: Arc<OwnedFd>,
    /// The named temporary file (none for an unnamed one, or once it has
    /// been renamed into place).
    pub(crate) name: Option<OsString>,
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

/// The most of the target's name a temporary name repeats: with the dot
/// and the `.remo-XXXXXXXX` suffix it stays within `NAME_MAX` (255), so a
/// target with a long name can be put too.
const TEMP_NAME_KEEPS: usize = 200;

/// `.NAME.remo-XXXXXXXX` beside the target (NAME cut to
/// [`TEMP_NAME_KEEPS`] bytes), 48 random bits.
fn temp_name(name: &OsStr) -> OsString {
    use rand_core::RngCore;
    use std::os::unix::ffi::OsStrExt;
    let mut raw = [0u8; 6];
    rand_core::OsRng.fill_bytes(&mut raw);
    let bytes = name.as_bytes();
    let kept = bytes.get(..TEMP_NAME_KEEPS).unwrap_or(bytes);
    let mut n = OsString::from(".");
    n.push(OsStr::from_bytes(kept));
    n.push(format!(".remo-{}", b64::encode(&raw)));
    n
}

/// Where a target resolves: its directory, the name in it, and what is
/// there now (not followed).
pub(crate) struct Target {
    pub(crate) dir: OwnedFd,
    pub(crate) name: OsString,
    pub(crate) old: Option<FileStat>,
}

/// Opens the target's directory below the user's root (a target that is
/// a symlink is followed, staying below the root) and looks at the name.
/// Runs as the run-as account (inside [`fs_step`]).
pub(crate) fn resolve(loc: &Located, create_dirs: bool) -> Result<Target, OpError> {
    let (dir, name) = loc.open_parent(create_dirs)?;
    let old = match nix::sys::stat::fstatat(
        Some(dir.as_raw_fd()),
        name.as_os_str(),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) => Some(st),
        Err(Errno::ENOENT) => None,
        Err(e) => return Err(fs_error(&loc.shown, e, loc.confined)),
    };
    Ok(Target { dir, name, old })
}

/// What may be replaced: not a directory, and nothing unless `overwrite`.
pub(crate) fn check_old(t: &Target, overwrite: bool, what: &str) -> Result<(), OpError> {
    match &t.old {
        Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
            Err(OpError::bad_request(format!("{what} is a directory")))
        }
        Some(_) if !overwrite => Err(OpError::new(ErrorCode::Exists, format!("{what} exists"))),
        _ => Ok(()),
    }
}

/// What the first file-system step leaves ready for receiving.
struct Prepared {
    target: Target,
    /// An unnamed (`O_TMPFILE`) file, which a crash cannot leave behind;
    /// None where the file system has none: then a named one is made
    /// after its journal entry (see [`crate::server::store::pending`]).
    file: Option<std::fs::File>,
}

/// Resolves and checks the target, and creates an unnamed temporary file
/// in its directory.
fn prepare(loc: &Located, overwrite: bool, create_dirs: bool) -> Result<Prepared, OpError> {
    let target = resolve(loc, create_dirs)?;
    check_old(&target, overwrite, &loc.shown)?;
    // An unnamed file in the target's directory: linked into place on
    // commit, gone with its last descriptor if remod dies first.
    let unnamed = nix::fcntl::openat(
        Some(target.dir.as_raw_fd()),
        ".",
        OFlag::O_TMPFILE | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    );
    let file = match unnamed {
        // SAFETY: `openat` returned a fresh descriptor that nothing else owns.
        Ok(fd) => Some(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) })),
        // The file system has no O_TMPFILE.
        Err(Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL) => None,
        Err(e) => return Err(fs_error(&loc.shown, e, loc.confined)),
    };
    Ok(Prepared { target, file })
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

/// The uid what an upload creates belongs to: the run-as account's, else
/// remod's.
pub(crate) fn owner_uid(acct: &Option<Arc<Account>>) -> u32 {
    acct.as_ref()
        .map_or_else(|| nix::unistd::geteuid().as_raw(), |a| a.uid)
}

/// A staging file beside the target, ready for [`receive`].
pub(crate) struct Staging {
    /// The target's directory.
    pub(crate) dir: Arc<OwnedFd>,
    /// Its device and inode, which later requests of an upload check.
    pub(crate) dir_id: (u64, u64),
    /// The target's name in it.
    pub(crate) name: OsString,
    /// What was at the target when it was resolved.
    pub(crate) old: Option<FileStat>,
    /// The staging file: unnamed, or named by `guard`.
    pub(crate) file: Arc<std::fs::File>,
    /// Removes a named staging file unless it was committed.
    pub(crate) guard: TempGuard,
}

/// Resolves the target (checking `overwrite`, creating directories when
/// asked) and makes the staging file in its directory, as the run-as
/// account.
pub(crate) async fn stage(
    ctx: &OpCtx,
    loc: &Located,
    overwrite: bool,
    create_dirs: bool,
    acct: &Option<Arc<Account>>,
) -> Result<Staging, OpError> {
    let Prepared { target, file } = {
        let loc = loc.clone();
        fs_step(acct.clone(), move || prepare(&loc, overwrite, create_dirs)).await?
    };
    let Target { dir, name, old } = target;
    let st = nix::sys::stat::fstat(dir.as_raw_fd()).map_err(|e| fs_error(&loc.shown, e, false))?;
    let dir = Arc::new(dir);
    let mut guard = TempGuard {
        dir: dir.clone(),
        name: None,
        _pending: None,
    };
    let file = match file {
        Some(f) => f,
        None => {
            let tmp = temp_name(&name);
            guard._pending = Some(journal(ctx, &dir, &tmp, owner_uid(acct)).await?);
            let (d, t, l) = (dir.clone(), tmp.clone(), loc.clone());
            let f = fs_step(acct.clone(), move || create_named(&d, &t, &l)).await?;
            guard.name = Some(tmp);
            f
        }
    };
    Ok(Staging {
        dir,
        dir_id: (st.st_dev, st.st_ino),
        name,
        old,
        file: Arc::new(file),
        guard,
    })
}

/// How many bytes of opened records may wait for the writer.
const WRITE_QUEUE: usize = 4 * WRITE_BATCH;
/// Opened records are handed to the writer in batches of about this many
/// bytes: one blocking job per batch, not per 64 KiB record, which on two
/// busy cores costs more than the copy it saves.
const WRITE_BATCH: usize = 256 << 10;

/// What [`receive`] appended.
pub(crate) struct Received {
    /// The digest state over everything before and this request's data.
    pub(crate) hash: Sha256,
    /// This request's bytes.
    pub(crate) bytes: u64,
}

/// Writes the request's data records into `file` from offset `at` on,
/// continuing `hash`. The file may hold at most `cap` bytes in all
/// (`too_large` past it). On an error the writer has stopped: the caller
/// may cut the file back to `at`.
///
/// A pipeline: this task opens records while a blocking job hashes and
/// writes the previous batch, so the two run on both cores and the runtime
/// never waits on the disk. A job exists only while there is data to write:
/// a client that stalls its body holds no thread of the blocking pool
/// (hundreds of stalled uploads used to park one each, until logins and
/// the revocation watcher found none left).
pub(crate) async fn receive(
    ctx: &OpCtx,
    input: &mut RequestReader,
    file: &Arc<std::fs::File>,
    hash: Sha256,
    at: u64,
    cap: u64,
    what: &str,
) -> Result<Received, OpError> {
    let lost = || OpError::new(ErrorCode::Internal, "file writer failed");
    // The digest and the offset, handed to each job and back.
    let mut state = Some((hash, at));
    let mut job: Option<tokio::task::JoinHandle<std::io::Result<(Sha256, u64)>>> = None;
    let mut queued: Vec<bytes::Bytes> = Vec::new();
    let mut queued_bytes = 0usize;
    let mut total = at;
    let mut ended = false;
    let fed: Result<(), OpError> = loop {
        if job.is_none() && !queued.is_empty() && (ended || queued_bytes >= WRITE_BATCH) {
            let Some((h, pos)) = state.take() else {
                break Err(lost());
            };
            let batch = std::mem::take(&mut queued);
            queued_bytes = 0;
            let f = file.clone();
            job = Some(tokio::task::spawn_blocking(move || {
                write_batch(&f, h, pos, batch)
            }));
            ctx.session.touch();
        }
        if ended && job.is_none() && queued.is_empty() {
            break Ok(());
        }
        let room = !ended && queued_bytes < WRITE_QUEUE;
        tokio::select! {
            biased;
            done = async {
                match job.as_mut() {
                    Some(j) => j.await,
                    None => std::future::pending().await,
                }
            }, if job.is_some() => {
                job = None;
                match done {
                    Ok(Ok(s)) => state = Some(s),
                    Ok(Err(e)) => break Err(io_error(what, &e)),
                    Err(_) => break Err(lost()),
                }
            }
            next = ctx.watched(what, input.next_data()), if room => {
                let chunk = match next {
                    Ok(n) => match n.map_err(|e| e.to_op_error()) {
                        Ok(c) => c,
                        Err(e) => break Err(e),
                    },
                    Err(e) => break Err(e),
                };
                match chunk {
                    None => ended = true,
                    Some(c) => {
                        total = total.saturating_add(c.len() as u64);
                        if total > cap {
                            break Err(OpError::new(
                                ErrorCode::TooLarge,
                                format!("{what}: more than {cap} bytes (max_request_bytes)"),
                            ));
                        }
                        queued_bytes += c.len();
                        queued.push(c);
                    }
                }
            }
            else => break Err(lost()),
        }
    };
    // The writer has finished whatever it was given before anything else
    // touches the file (a part that failed is cut back by the caller).
    if let Some(j) = job.take() {
        match j.await {
            Ok(Ok(s)) => state = Some(s),
            Ok(Err(e)) => return Err(fed.err().unwrap_or_else(|| io_error(what, &e))),
            Err(_) => return Err(fed.err().unwrap_or_else(lost)),
        }
    }
    fed?;
    let (hash, pos) = state.ok_or_else(lost)?;
    Ok(Received {
        hash,
        bytes: pos - at,
    })
}

/// Hashes and writes one batch at `pos`; the digest and the next offset.
fn write_batch(
    f: &std::fs::File,
    mut hash: Sha256,
    mut pos: u64,
    batch: Vec<bytes::Bytes>,
) -> std::io::Result<(Sha256, u64)> {
    for chunk in batch {
        hash.update(&chunk);
        f.write_all_at(&chunk, pos)?;
        pos += chunk.len() as u64;
    }
    Ok((hash, pos))
}

/// What [`commit`] puts in place.
pub(crate) struct Commit {
    /// The target's directory (just resolved).
    pub(crate) dir: Arc<OwnedFd>,
    /// The target's name in it.
    pub(crate) name: OsString,
    /// What is there now.
    pub(crate) old: Option<FileStat>,
    /// The complete staging file.
    pub(crate) file: Arc<std::fs::File>,
    /// Its name, if it is a named one (in `dir`).
    pub(crate) tmp: Option<OsString>,
    /// The mode asked for.
    pub(crate) mode: Option<u32>,
    /// Replace what is there.
    pub(crate) overwrite: bool,
    /// Whether the user is an admin (set-id bits).
    pub(crate) admin: bool,
    /// Whether the user is confined (for error mapping).
    pub(crate) confined: bool,
    /// The path for messages.
    pub(crate) what: String,
}

/// Sets the mode (and the old owner, as root without run-as), fsyncs, and
/// links or renames the staging file into place; fsyncs the directory.
pub(crate) async fn commit(
    ctx: &OpCtx,
    acct: Option<Arc<Account>>,
    c: Commit,
) -> Result<(), OpError> {
    // An unnamed file replacing another is linked under a temporary name
    // first (renamed over the target at once): journaled.
    let (link_tmp, _pending) = match (&c.tmp, c.overwrite) {
        (None, true) => {
            let t = temp_name(&c.name);
            let p = journal(ctx, &c.dir, &t, owner_uid(&acct)).await?;
            (Some(t), Some(p))
        }
        _ => (None, None),
    };
    let mut mode = c
        .mode
        .or_else(|| c.old.as_ref().map(|m| m.st_mode & 0o7777))
        .unwrap_or(0o644);
    if !c.admin {
        // Only admins may create set-id files: remod often runs as root.
        mode &= 0o1777;
    }
    // Copying the old owner needs root and is done only without run-as:
    // a run-as user's files belong to the account.
    let chown_to = c
        .old
        .as_ref()
        .filter(|_| acct.is_none() && nix::unistd::geteuid().is_root())
        .map(|m| (m.st_uid, m.st_gid));
    let Commit {
        dir,
        name,
        file,
        tmp,
        overwrite,
        confined,
        what,
        ..
    } = c;
    fs_step(acct, move || {
        let io = |e: std::io::Error| io_error(&what, &e);
        let at = |e: Errno| fs_error(&what, e, confined);
        let chmod = || file.set_permissions(std::fs::Permissions::from_mode(mode));
        let chown = || {
            if let Some((uid, gid)) = chown_to {
                let _ = std::os::unix::fs::fchown(&*file, Some(uid), Some(gid));
            }
        };
        if tmp.is_none() {
            // Unnamed (O_TMPFILE): nobody can open it. The owner first, as
            // a chown clears set-id bits, even root's.
            chown();
            chmod().map_err(io)?;
        } else {
            // A named staging file can be opened by its new owner once it
            // is theirs: the mode first, so any set-id bits are cleared by
            // the chown rather than kept on what that owner may write
            // before the rename.
            chmod().map_err(io)?;
            chown();
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
        // A named staging file is replaced by its name: it must still be
        // the file written here. Whoever can write the directory may have
        // renamed another in its place meanwhile (FUSE and other file
        // systems without O_TMPFILE, or a run-as account's directory).
        let ours = nix::sys::stat::fstat(file.as_raw_fd()).map_err(at)?;
        match nix::sys::stat::fstatat(d, tmp.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if (st.st_dev, st.st_ino) == (ours.st_dev, ours.st_ino) => {}
            Ok(_) | Err(Errno::ENOENT) => {
                return Err(OpError::new(
                    ErrorCode::Conflict,
                    format!(
                    "{what}: the staging file was replaced or removed; nothing was put in place"
                ),
                ))
            }
            Err(e) => return Err(at(e)),
        }
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
    .await
}

/// Receives the file.
pub(crate) async fn apply(
    ctx: &OpCtx,
    mut p: PutReq,
    input: &mut RequestReader,
    _out: &mut ResponseWriter,
) -> Result<PutResult, OpError> {
    if let Some(step) = p.upload.take() {
        return super::upload::apply(ctx, p, step, input).await;
    }
    let grants = ctx.session.grants();
    let loc = locate(&grants, &ctx.inst.resolve(&p.path), Access::Write)?;
    let acct = account_for(&grants)?;
    let what = loc.shown.clone();
    let Staging {
        dir,
        name,
        old,
        file,
        mut guard,
        ..
    } = stage(ctx, &loc, p.overwrite, p.create_dirs, &acct).await?;
    let Received { hash, bytes: size } =
        receive(ctx, input, &file, Sha256::new(), 0, u64::MAX, &what).await?;
    let digest: [u8; 32] = hash.finalize().into();
    if let Some(expected) = p.sha256 {
        if expected != digest {
            return Err(OpError::bad_request(
                "content does not match the expected sha256; file not replaced",
            ));
        }
    }
    let c = Commit {
        dir,
        name,
        old,
        file,
        tmp: guard.name.clone(),
        mode: p.mode,
        overwrite: p.overwrite,
        admin: grants.is_admin(),
        confined: loc.confined,
        what,
    };
    commit(ctx, acct, c).await?;
    guard.name = None;
    Ok(PutResult {
        size,
        sha256: b64::encode(&digest),
        ..PutResult::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(v: serde_json::Value) -> Result<PutReq, OpError> {
        let mut d = serde_json::json!({"path": "/x"});
        if let (Some(o), Some(add)) = (d.as_object_mut(), v.as_object()) {
            o.extend(add.clone());
        }
        check(serde_json::from_value(d).unwrap())
    }

    #[test]
    fn upload_steps_are_checked_for_what_goes_together() {
        let id = b64::encode(&[1u8; 16]);
        let digest = b64::encode(&[2u8; 32]);
        let ok = |v| step(v).unwrap().upload.unwrap();
        assert_eq!(
            ok(serde_json::json!({"upload": {}})),
            UploadReq::Start { commit: false }
        );
        assert_eq!(
            ok(serde_json::json!({"upload": {"offset": 0, "commit": true}, "sha256": digest})),
            UploadReq::Start { commit: true }
        );
        assert_eq!(
            ok(serde_json::json!({"upload": {"id": id, "offset": 5}})),
            UploadReq::Step {
                id: id.clone(),
                offset: Some(5),
                commit: false
            }
        );
        assert_eq!(
            ok(serde_json::json!({"upload": {"id": id, "abort": true}})),
            UploadReq::Abort { id: id.clone() }
        );
        for bad in [
            serde_json::json!({"upload": {"offset": 3}}),
            serde_json::json!({"upload": {"id": id, "commit": true}}),
            serde_json::json!({"upload": {"id": id}, "sha256": digest}),
            serde_json::json!({"upload": {"abort": true}}),
            serde_json::json!({"upload": {"id": id, "abort": true, "offset": 0}}),
            serde_json::json!({"upload": {"id": id, "abort": true, "commit": true}, "sha256": digest}),
            serde_json::json!({"upload": {"id": "../../etc"}}),
            serde_json::json!({"upload": {"id": b64::encode(&[1u8; 15])}}),
        ] {
            assert_eq!(
                step(bad.clone()).unwrap_err().code,
                ErrorCode::BadRequest,
                "{bad}"
            );
        }
        // A plain put is unchanged.
        assert!(step(serde_json::json!({"sha256": digest}))
            .unwrap()
            .upload
            .is_none());
    }
}
