//! The resumable `put` (remo's extension of §6, not in PROTOCOL.md): a
//! file sent in parts, one request each, appended to a staging file beside
//! the target and committed atomically after the last part and the digest
//! check — for clients that cannot stream one request body of any size
//! (a browser's `fetch` over HTTP/1.1), and for uploads that must survive
//! a lost connection or a killed client.
//!
//! Between requests the upload is held in the instance's store
//! ([`crate::server::store::uploads`]): the staging file's descriptor (an
//! unnamed `O_TMPFILE` file where the file system has them, else a named
//! one in the pending journal), the digest state over what was received,
//! and where the target resolved at the start. It belongs to the user (see
//! the store), is bounded in number, expires when idle, and is dropped
//! when its user is disabled or removed, or its certificate revoked.
//!
//! The rules, each guarding an attack or a lost answer:
//! - a part goes at `offset` only if that is exactly what was received
//!   (`conflict` otherwise, with the received size), so a part whose answer
//!   was lost can be asked about and never lands twice;
//! - a part that fails (cut, forged, too large, disk full, session ended)
//!   is cut back off the file and the digest state is the one before it:
//!   the upload stays as it was;
//! - every request takes the user's grants and run-as account as they are
//!   now, and resolves the path again: it must lead to the same directory
//!   (device and inode) and name, as that account, below the user's roots,
//!   or the upload is discarded (`conflict`/`forbidden`). A directory or
//!   target swapped for a symlink between parts is therefore never
//!   followed to somewhere else, and the commit links into the directory
//!   just resolved and checked;
//! - the commit checks the whole content's SHA-256 (kept across parts, no
//!   second pass) before anything is replaced, and re-checks `overwrite`
//!   and what the target is at that moment; a commit that fails discards
//!   the upload and leaves the old file as it was.

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::put::{self, Commit, PutReq, PutResult, Received, Staging, TempGuard, UploadReq};
use super::OpCtx;
use crate::proto::b64;
use crate::proto::response::{ErrorCode, OpError};
use crate::server::core::config::Limits;
use crate::server::core::stream::RequestReader;
use crate::server::enforce::confine::{fs_error, locate, Access, Located};
use crate::server::enforce::runas::{account_for, fs_step, Account};
use crate::server::store::uploads::{Bounds, Owner};

/// A staged upload between its requests.
pub(crate) struct Staged {
    /// The target as resolved against home at the start (every later
    /// request must name the same).
    path: PathBuf,
    /// The options of the start, fixed for the upload.
    mode: Option<u32>,
    overwrite: bool,
    create_dirs: bool,
    /// Where the target resolved at the start: the directory's device
    /// and inode, and the name in it.
    dir_id: (u64, u64),
    name: OsString,
    /// The run-as account's uid at the start (the staging file's owner).
    run_as: Option<u32>,
    /// The staging file, and the guard of its name if it has one.
    file: Arc<std::fs::File>,
    guard: TempGuard,
    /// The digest state over the `size` bytes received.
    hash: Sha256,
    size: u64,
}

impl Staged {
    fn result(&self, id: &str) -> PutResult {
        PutResult {
            size: self.size,
            sha256: b64::encode(&self.hash.clone().finalize()),
            upload: Some(id.to_string()),
            aborted: None,
        }
    }
}

/// The store's bounds from `[limits]`.
pub(crate) fn bounds(l: &Limits) -> Bounds {
    Bounds {
        total: l.max_uploads,
        per_user: l.max_uploads_per_user,
        idle: Duration::from_secs(l.upload_idle_timeout),
    }
}

/// What a step does with the upload it took.
enum Keep {
    /// Give it back to the store.
    Staged(Box<Staged>),
    /// Forget it (committed, aborted or discarded).
    Gone,
}

/// Runs one step of a resumable upload.
pub(crate) async fn apply(
    ctx: &OpCtx,
    p: PutReq,
    step: UploadReq,
    input: &mut RequestReader,
) -> Result<PutResult, OpError> {
    let uploads = &ctx.inst.uploads;
    let owner = Owner::of(&ctx.session);
    let b = bounds(&ctx.inst.limits);
    let (id, keep, result) = match step {
        UploadReq::Start { commit } => {
            let (id, keep, result) = start(ctx, &p, owner, &b, commit, input).await?;
            (id, keep, result)
        }
        UploadReq::Step { id, offset, commit } => {
            let staged = uploads
                .take(&id, &owner, ctx.session.cert.as_ref(), b.idle)
                .map_err(|e| e.to_op_error())?;
            let (keep, result) = step_of(ctx, &p, &id, staged, offset, commit, input).await;
            (id, keep, result)
        }
        UploadReq::Abort { id } => {
            let staged = uploads
                .take(&id, &owner, ctx.session.cert.as_ref(), b.idle)
                .map_err(|e| e.to_op_error())?;
            // Only the path: an abort may come from a client that no
            // longer knows the options the upload was started with.
            let checked = match same_path(&staged, &ctx.inst.resolve(&p.path)) {
                Ok(()) => drain_empty(ctx, input, "upload.abort").await,
                Err(e) => Err(e),
            };
            let (keep, result) = match checked {
                Err(e) => (Keep::Staged(staged.into()), Err(e)),
                Ok(()) => {
                    log::info!(
                        "{}: staged upload {id} of {} aborted at {} bytes",
                        ctx.session.user,
                        staged.path.display(),
                        staged.size
                    );
                    let mut r = staged.result(&id);
                    r.aborted = Some(true);
                    (Keep::Gone, Ok(r))
                }
            };
            (id, keep, result)
        }
    };
    match keep {
        Keep::Staged(s) => {
            if uploads.give_back(&id, *s).is_err() {
                // Dropped meanwhile: its user was disabled or removed, or
                // its certificate revoked.
                return Err(OpError::new(
                    ErrorCode::NotFound,
                    "the upload was discarded meanwhile",
                ));
            }
        }
        Keep::Gone => uploads.release(&id),
    }
    result
}

/// Reads a request that must carry no data (a status, an abort, a commit
/// without a last part) to its authenticated end.
/// A session that ends meanwhile (logout, expiry, the user disabled or
/// removed, a certificate revoked) ends the wait: a request held open must
/// not outlive the rights it was sent with.
async fn drain_empty(ctx: &OpCtx, input: &mut RequestReader, what: &str) -> Result<(), OpError> {
    let cancel = ctx.session.cancel.clone();
    loop {
        let next = tokio::select! {
            n = input.next_data() => n.map_err(|e| e.to_op_error())?,
            _ = cancel.cancelled() => return Err(ended()),
        };
        let Some(c) = next else { break };
        if !c.is_empty() {
            return Err(OpError::bad_request(format!(
                "{what}: data needs upload.offset (the bytes received so far)"
            )));
        }
    }
    Ok(())
}

fn ended() -> OpError {
    OpError::new(ErrorCode::Unavailable, "session ended")
}

/// Starts an upload: the put checks now, a place in the store, the staging
/// file, and the request's data as the first part.
async fn start(
    ctx: &OpCtx,
    p: &PutReq,
    owner: Owner,
    b: &Bounds,
    commit: bool,
    input: &mut RequestReader,
) -> Result<(String, Keep, Result<PutResult, OpError>), OpError> {
    let grants = ctx.session.grants();
    let path = ctx.inst.resolve(&p.path);
    let loc = locate(&grants, &path, Access::Write)?;
    let acct = account_for(&grants)?;
    let id = ctx
        .inst
        .uploads
        .reserve(owner, ctx.session.cert.clone(), b)
        .map_err(|e| e.to_op_error())?;
    let first = async {
        let Staging {
            dir_id,
            name,
            file,
            guard,
            ..
        } = put::stage(ctx, &loc, p.overwrite, p.create_dirs, &acct).await?;
        let cap = ctx.inst.limits.max_request_bytes;
        let Received { hash, bytes } =
            put::receive(ctx, input, &file, Sha256::new(), 0, cap, &loc.shown).await?;
        Ok::<_, OpError>(Staged {
            path,
            mode: p.mode,
            overwrite: p.overwrite,
            create_dirs: p.create_dirs,
            dir_id,
            name,
            run_as: acct.as_ref().map(|a| a.uid),
            file,
            guard,
            hash,
            size: bytes,
        })
    }
    .await;
    let staged = match first {
        Ok(s) => s,
        Err(e) => {
            // Nothing the client could resume: it never learnt the id.
            ctx.inst.uploads.release(&id);
            return Err(e);
        }
    };
    log::info!(
        "{}: staged upload {id} of {} started, {} bytes",
        ctx.session.user,
        staged.path.display(),
        staged.size
    );
    if commit {
        let (keep, result) = finish(ctx, p, &id, staged).await;
        return Ok((id, keep, result));
    }
    let r = staged.result(&id);
    Ok((id, Keep::Staged(staged.into()), Ok(r)))
}

/// A later request must name the path the upload was started for.
fn same_path(s: &Staged, path: &std::path::Path) -> Result<(), OpError> {
    if path != s.path {
        return Err(OpError::new(
            ErrorCode::Conflict,
            format!(
                "this upload is for {}, not {}",
                s.path.display(),
                path.display()
            ),
        ));
    }
    Ok(())
}

/// The checks of a later request against what the upload was started
/// with: the same path, the same options.
fn same_request(p: &PutReq, s: &Staged, path: &std::path::Path) -> Result<(), OpError> {
    same_path(s, path)?;
    let differs = p.mode.is_some_and(|m| Some(m) != s.mode)
        || p.given.0.is_some_and(|o| o != s.overwrite)
        || p.given.1.is_some_and(|c| c != s.create_dirs);
    if differs {
        return Err(OpError::bad_request(
            "mode, overwrite and create_dirs are the upload's from its start; a later request may repeat them, not change them",
        ));
    }
    Ok(())
}

/// Where the target leads now, for a later request of `s`: under the
/// user's grants and run-as account as they are now, to the same directory
/// and name as at the start. Any other answer discards the upload.
async fn verify(
    ctx: &OpCtx,
    s: &Staged,
) -> Result<(put::Target, Located, Option<Arc<Account>>), OpError> {
    let grants = ctx.session.grants();
    let loc = locate(&grants, &s.path, Access::Write)?;
    let acct = account_for(&grants)?;
    if acct.as_ref().map(|a| a.uid) != s.run_as {
        return Err(OpError::new(
            ErrorCode::Conflict,
            "your run-as account changed since the upload started; upload discarded",
        ));
    }
    let (l, dir_id, name) = (loc.clone(), s.dir_id, s.name.clone());
    let t = fs_step(acct.clone(), move || {
        let t = put::resolve(&l, false)?;
        let st =
            nix::sys::stat::fstat(t.dir.as_raw_fd()).map_err(|e| fs_error(&l.shown, e, false))?;
        if (st.st_dev, st.st_ino) != dir_id || t.name != name {
            return Err(OpError::new(
                ErrorCode::Conflict,
                format!(
                    "{} no longer leads where it did when the upload started; upload discarded",
                    l.shown
                ),
            ));
        }
        Ok(t)
    })
    .await?;
    Ok((t, loc, acct))
}

/// A later request: the part at `offset` (if any), then the commit if
/// asked for.
async fn step_of(
    ctx: &OpCtx,
    p: &PutReq,
    id: &str,
    mut s: Staged,
    offset: Option<u64>,
    commit: bool,
    input: &mut RequestReader,
) -> (Keep, Result<PutResult, OpError>) {
    if let Err(e) = same_request(p, &s, &ctx.inst.resolve(&p.path)) {
        return (Keep::Staged(s.into()), Err(e));
    }
    if let Some(o) = offset {
        if o != s.size {
            let e = OpError::new(
                ErrorCode::Conflict,
                format!(
                    "upload.offset {o} is not where the upload is: {} bytes received",
                    s.size
                ),
            );
            return (Keep::Staged(s.into()), Err(e));
        }
    }
    if let Err(e) = verify(ctx, &s).await {
        discarded(ctx, id, &s, &e);
        return (Keep::Gone, Err(e));
    }
    match offset {
        None => {
            if let Err(e) = drain_empty(ctx, input, "upload").await {
                return (Keep::Staged(s.into()), Err(e));
            }
        }
        Some(_) => {
            let cap = ctx.inst.limits.max_request_bytes;
            let shown = s.path.display().to_string();
            match put::receive(ctx, input, &s.file, s.hash.clone(), s.size, cap, &shown).await {
                Ok(Received { hash, bytes }) => {
                    s.hash = hash;
                    s.size += bytes;
                }
                Err(e) => {
                    // The part is cut off again; the digest state is the
                    // one before it.
                    if let Err(cut) = s.file.set_len(s.size) {
                        let e2 = super::io_error(&shown, &cut);
                        discarded(ctx, id, &s, &e2);
                        return (Keep::Gone, Err(e));
                    }
                    return (Keep::Staged(s.into()), Err(e));
                }
            }
        }
    }
    if commit {
        return finish(ctx, p, id, s).await;
    }
    let r = s.result(id);
    (Keep::Staged(s.into()), Ok(r))
}

fn discarded(ctx: &OpCtx, id: &str, s: &Staged, why: &OpError) {
    log::info!(
        "{}: staged upload {id} of {} discarded: {why}",
        ctx.session.user,
        s.path.display()
    );
}

/// The commit: the digest, then the target resolved once more and put in
/// place. Whatever happens, the upload is gone afterwards.
async fn finish(
    ctx: &OpCtx,
    p: &PutReq,
    id: &str,
    s: Staged,
) -> (Keep, Result<PutResult, OpError>) {
    let r = commit_staged(ctx, p, id, &s).await;
    match &r {
        Ok(_) => log::info!(
            "{}: staged upload {id} of {} committed, {} bytes",
            ctx.session.user,
            s.path.display(),
            s.size
        ),
        Err(e) => discarded(ctx, id, &s, e),
    }
    let mut s = s;
    if r.is_ok() {
        // Renamed into place: nothing to remove.
        s.guard.name = None;
    }
    (Keep::Gone, r)
}

async fn commit_staged(
    ctx: &OpCtx,
    p: &PutReq,
    id: &str,
    s: &Staged,
) -> Result<PutResult, OpError> {
    let digest: [u8; 32] = s.hash.clone().finalize().into();
    if p.sha256 != Some(digest) {
        return Err(OpError::bad_request(
            "content does not match the expected sha256; upload discarded, file not replaced",
        ));
    }
    let (t, loc, acct) = verify(ctx, s).await?;
    // The last check before the target is replaced: the session still
    // stands and the upload was not discarded meanwhile (the user disabled
    // or removed, a certificate revoked: the store dropped it).
    if ctx.session.cancel.is_cancelled() {
        return Err(ended());
    }
    if !ctx.inst.uploads.held(id) {
        return Err(OpError::new(
            ErrorCode::Unavailable,
            "the upload was discarded meanwhile",
        ));
    }
    put::check_old(&t, s.overwrite, &loc.shown)?;
    let c = Commit {
        dir: Arc::new(t.dir),
        name: t.name,
        old: t.old,
        file: s.file.clone(),
        tmp: s.guard.name.clone(),
        mode: s.mode,
        overwrite: s.overwrite,
        admin: ctx.session.grants().is_admin(),
        confined: loc.confined,
        what: loc.shown.clone(),
    };
    put::commit(ctx, acct, c).await?;
    Ok(PutResult {
        size: s.size,
        sha256: b64::encode(&digest),
        upload: None,
        aborted: None,
    })
}
