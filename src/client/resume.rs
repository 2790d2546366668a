//! The resumable upload (`remo put --resume`; remod's `put` with
//! `upload`, docs/protocol-notes.md): the file goes in parts, one request
//! each, into an upload staged on the server, and replaces the target only
//! at the commit, after the server has checked the whole file's digest.
//!
//! The upload's id is kept in a state file, one per (server, user, remote
//! path, local file), in `$XDG_CACHE_HOME/remo/uploads/` (directory 0700,
//! file 0600), together with the local file's identity (device, inode,
//! size, modification time). Run again after an interruption — a killed
//! client, a lost connection — the same command asks the server how much it
//! has (`received`, with the SHA-256 of those bytes), checks that against
//! the local file's first bytes, and goes on from there. A local file that
//! changed, or an upload the server no longer has (expired, remod
//! restarted), starts over (and an old upload is aborted, so it does not
//! hold the server's disk until it expires). The file is locked while a
//! `remo` works on it, so two runs cannot interleave their parts.
//!
//! The parts are hashed as they are read and sent (one pass; a resumed run
//! reads what was already sent once more, to check it and carry the digest
//! on), and after every part the server's digest of what it holds must be
//! ours. The commit is a request of its own after the last part, with the
//! digest of everything sent.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::conn::{DataStream, ResponseItem};
use super::ctx::{Active, Ctx};
use super::error::ClientError;
use super::input::file_part_stream;
use super::known::{check_private_dir, create_private_dir, open_private_file};
use crate::ops::put::{PutDesc, PutResult, UploadStep};
use crate::ops::result_of;
use crate::proto::b64;
use crate::proto::response::ErrorCode;

/// The default part size: 64 MiB.
pub(crate) const DEFAULT_PART: u64 = 64 << 20;

/// What identifies a local file's content for resuming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Identity {
    fn of(m: &std::fs::Metadata) -> Identity {
        Identity {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        }
    }
}

/// The state file's content.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    server: String,
    user: String,
    remote: String,
    local: String,
    file: Identity,
    id: String,
}

/// The state file of one upload, locked for this run; removed when it is
/// dropped holding no upload (done, refused, or never started).
struct StateFile {
    path: PathBuf,
    file: Flock<std::fs::File>,
    stored: bool,
}

impl Drop for StateFile {
    fn drop(&mut self) {
        if !self.stored {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl StateFile {
    /// Opens (creating) and locks the state file of (server, user,
    /// remote, local); another run on it is refused.
    fn open(
        server: &str,
        user: &str,
        remote: &str,
        local: &Path,
    ) -> Result<StateFile, ClientError> {
        let dir = super::config::cache_dir()?.join("uploads");
        create_private_dir(&dir)?;
        let digest = Sha256::digest(format!(
            "{}\n{user}\n{remote}\n{}",
            server.trim_end_matches('/'),
            local.display()
        ));
        let name: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!("{name}.json"));
        check_private_dir(&dir)?;
        let f = open_private_file(&path, true)?
            .ok_or_else(|| ClientError::Local(format!("cannot create {}", path.display())))?;
        let file = Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|_| {
            ClientError::Local(format!(
                "another remo is uploading {} to {remote} (its state file {} is locked)",
                local.display(),
                path.display()
            ))
        })?;
        Ok(StateFile {
            path,
            file,
            stored: false,
        })
    }

    /// What it says, if it says anything usable.
    fn load(&mut self) -> Option<State> {
        let mut text = String::new();
        self.file.rewind().ok()?;
        self.file.read_to_string(&mut text).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn store(&mut self, s: &State) -> Result<(), ClientError> {
        let text = serde_json::to_vec(s)
            .map_err(|e| ClientError::Local(format!("cannot encode the upload state: {e}")))?;
        let path = self.path.clone();
        self.file
            .set_len(0)
            .and_then(|_| self.file.rewind())
            .and_then(|_| self.file.write_all(&text))
            .and_then(|_| self.file.sync_data())
            .map_err(|e| ClientError::io(&path, "cannot write", e))?;
        self.stored = true;
        Ok(())
    }

    /// Forgets the upload (done, or the server no longer has it).
    fn clear(&mut self) {
        let _ = self.file.set_len(0);
        self.stored = false;
    }
}

/// What a resumable upload needs.
pub(crate) struct Job<'a> {
    /// The local file.
    pub local: &'a Path,
    /// The `put` descriptor (path, mode, overwrite, create_dirs).
    pub desc: PutDesc,
    /// Bytes per request.
    pub part: u64,
    /// The digest the commit asks for, hashed before the upload
    /// (`--verify-first`); else the digest of what was sent.
    pub expect: Option<String>,
    /// Called with the bytes sent or found on the server.
    pub progress: Arc<dyn Fn(u64) + Send + Sync>,
}

/// One request's answer: a put result or an error.
async fn send(
    ctx: &Ctx,
    active: &mut Active,
    desc: &PutDesc,
    input: Option<DataStream>,
) -> Result<PutResult, ClientError> {
    let mut resp = ctx.request(active, desc, input).await?;
    while let Some(item) = resp.next().await? {
        match item {
            ResponseItem::Stdout(_) | ResponseItem::Stderr(_) => {}
            ResponseItem::Done(Err(e)) => return Err(ClientError::Op(e)),
            ResponseItem::Done(Ok(m)) => {
                return result_of::<PutDesc>(m)
                    .map_err(|e| ClientError::Protocol(format!("put result: {e}")));
            }
        }
    }
    Err(ClientError::Truncated)
}

/// A request that logs in again once if the session has ended (the
/// upload is the user's, not the session's; a part refused with 401 was
/// not received, so it is sent again whole).
async fn send_part(
    ctx: &Ctx,
    active: &mut Active,
    desc: &PutDesc,
    input: &mut dyn FnMut() -> Result<Option<DataStream>, ClientError>,
) -> Result<PutResult, ClientError> {
    match send(ctx, active, desc, input()?).await {
        Err(ClientError::SessionExpired) => {
            ctx.relogin(active).await?;
            send(ctx, active, desc, input()?).await
        }
        other => other,
    }
}

fn is_code(e: &ClientError, code: ErrorCode) -> bool {
    matches!(e, ClientError::Op(o) if o.code == code)
}

/// Hashes the first `n` bytes of `path` (to check a resumed upload's
/// prefix and carry the digest on).
fn hash_prefix(path: &Path, n: u64) -> Result<Sha256, ClientError> {
    let f = std::fs::File::open(path).map_err(|e| ClientError::io(path, "cannot open", e))?;
    let mut r = f.take(n);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    loop {
        let k = r
            .read(&mut buf)
            .map_err(|e| ClientError::io(path, "cannot read", e))?;
        if k == 0 {
            break;
        }
        h.update(buf.get(..k).unwrap_or(&[]));
        got += k as u64;
    }
    if got != n {
        return Err(ClientError::Local(format!(
            "{}: shorter than the {n} bytes already sent",
            path.display()
        )));
    }
    Ok(h)
}

fn digest_b64(h: &Sha256) -> String {
    b64::encode(&h.clone().finalize())
}

/// Uploads `job.local` in parts, resuming an interrupted upload of the
/// same file to the same place. Returns the commit's result.
pub(crate) async fn upload(
    ctx: &Ctx,
    active: &mut Active,
    job: Job<'_>,
) -> Result<PutResult, ClientError> {
    let local = job.local;
    let meta = std::fs::metadata(local).map_err(|e| ClientError::io(local, "cannot stat", e))?;
    let ident = Identity::of(&meta);
    let size = ident.size;
    let canonical = std::fs::canonicalize(local).unwrap_or_else(|_| local.to_path_buf());
    let server = ctx.target.server.clone();
    let user = ctx.target.user.clone();
    let mut state = StateFile::open(&server, &user, &job.desc.path, &canonical)?;
    let step = |id: Option<&str>, offset: Option<u64>, commit: bool| {
        let mut d = job.desc.clone();
        d.upload = Some(UploadStep {
            id: id.map(str::to_string),
            offset,
            commit: commit.then_some(true),
            abort: None,
        });
        d
    };
    // Where the server is: an interrupted upload of this file, if any.
    let mut resumed: Option<(String, u64, Sha256)> = None;
    if let Some(old) = state.load() {
        if old.file != ident {
            eprintln!(
                "remo: {} changed since the interrupted upload; starting again",
                local.display()
            );
            abort(ctx, active, &job.desc, &old.id).await;
        } else {
            match send(ctx, active, &step(Some(&old.id), None, false), None).await {
                Ok(r) if r.size <= size => {
                    let h = {
                        let (p, n) = (canonical.clone(), r.size);
                        tokio::task::spawn_blocking(move || hash_prefix(&p, n))
                            .await
                            .map_err(|e| ClientError::Local(format!("hashing failed: {e}")))??
                    };
                    if digest_b64(&h) == r.sha256 {
                        resumed = Some((old.id.clone(), r.size, h));
                    } else {
                        eprintln!(
                            "remo: the server's first {} bytes are not {}'s; starting again",
                            r.size,
                            local.display()
                        );
                        abort(ctx, active, &job.desc, &old.id).await;
                    }
                }
                Ok(r) => {
                    eprintln!(
                        "remo: the server holds {} bytes, more than {} has; starting again",
                        r.size,
                        local.display()
                    );
                    abort(ctx, active, &job.desc, &old.id).await;
                }
                Err(e) if is_code(&e, ErrorCode::NotFound) => eprintln!(
                    "remo: the server no longer has the interrupted upload (expired, or remod restarted); starting again"
                ),
                Err(e) if is_code(&e, ErrorCode::BadRequest) => {
                    eprintln!(
                        "remo: the interrupted upload was started with other options (--mode, --no-overwrite, --mkdir); starting again"
                    );
                    abort(ctx, active, &job.desc, &old.id).await;
                }
                Err(e @ ClientError::Op(_)) => {
                    // The server discarded it (the path leads elsewhere
                    // now, a grant changed): say why; the next run starts
                    // over.
                    state.clear();
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
        state.clear();
    }
    let file = std::fs::File::open(local).map_err(|e| ClientError::io(local, "cannot open", e))?;
    // The request carrying the bytes [at, at + len), hashed into `hash` as
    // they are read (a failed attempt is read again from `before`).
    let part_input = |at: u64, len: u64, hash: &Hashing| {
        let mut f = file
            .try_clone()
            .map_err(|e| ClientError::io(local, "cannot read", e))?;
        f.seek(SeekFrom::Start(at))
            .map_err(|e| ClientError::io(local, "cannot read", e))?;
        let (h, progress) = (hash.clone(), job.progress.clone());
        let s = file_part_stream(f, len, move |c| {
            if let Some(c) = c {
                if let Ok(mut h) = h.lock() {
                    h.update(c);
                }
                progress(c.len() as u64);
            }
        });
        Ok::<_, ClientError>(Some(s))
    };
    let (id, mut at, mut hash) = match resumed {
        Some((id, at, h)) => {
            eprintln!("remo: resuming the upload at {at} of {size} bytes");
            (job.progress)(at);
            (id, at, h)
        }
        None => {
            let len = size.min(job.part);
            let (r, h) = send_data(ctx, active, &step(None, None, false), Sha256::new(), &|h| {
                part_input(0, len, h)
            })
            .await?;
            let id = r.upload.clone().ok_or_else(|| {
                ClientError::Protocol("the server did not name the upload".into())
            })?;
            state.store(&State {
                server: server.clone(),
                user: user.clone(),
                remote: job.desc.path.clone(),
                local: canonical.display().to_string(),
                file: ident.clone(),
                id: id.clone(),
            })?;
            check_prefix(&r, &h, len)?;
            (id, len, h)
        }
    };
    while at < size {
        let len = (size - at).min(job.part);
        let desc = step(Some(&id), Some(at), false);
        let (r, h) = send_data(ctx, active, &desc, hash, &|h| part_input(at, len, h)).await?;
        check_prefix(&r, &h, at + len)?;
        at += len;
        hash = h;
    }
    // Everything is there: the commit, with the digest of what was sent.
    let mut desc = step(Some(&id), None, true);
    desc.sha256 = Some(job.expect.clone().unwrap_or_else(|| digest_b64(&hash)));
    match send_part(ctx, active, &desc, &mut || Ok(None)).await {
        Ok(r) => finish(r, &hash, size, state),
        Err(e @ ClientError::Op(_)) => {
            // A failed commit discards the upload on the server.
            state.clear();
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// The digest state a part's reader hashes into.
type Hashing = Arc<Mutex<Sha256>>;

/// Sends one part whose data `input` makes (hashing it into the digest
/// state it is given); returns the result and the digest state after the
/// part. An attempt that is sent again starts from `before` again, with a
/// digest state of its own (a reader of an abandoned attempt may still be
/// hashing into its old one).
async fn send_data(
    ctx: &Ctx,
    active: &mut Active,
    desc: &PutDesc,
    before: Sha256,
    input: &dyn Fn(&Hashing) -> Result<Option<DataStream>, ClientError>,
) -> Result<(PutResult, Sha256), ClientError> {
    let current = std::cell::RefCell::new(Arc::new(Mutex::new(before.clone())));
    let mut attempt = || {
        let h = Arc::new(Mutex::new(before.clone()));
        *current.borrow_mut() = h.clone();
        input(&h)
    };
    let r = send_part(ctx, active, desc, &mut attempt).await?;
    let h = current
        .borrow()
        .lock()
        .map(|g| g.clone())
        .map_err(|_| ClientError::Local("hashing failed".into()))?;
    Ok((r, h))
}

/// The server's digest of what it holds after a part must be ours.
fn check_prefix(r: &PutResult, h: &Sha256, at: u64) -> Result<(), ClientError> {
    if r.size != at || r.sha256 != digest_b64(h) {
        return Err(ClientError::Protocol(format!(
            "the server holds {} bytes with another SHA-256 than the {at} we sent",
            r.size
        )));
    }
    Ok(())
}

/// The commit's result must be the whole file we read.
fn finish(
    r: PutResult,
    h: &Sha256,
    size: u64,
    mut state: StateFile,
) -> Result<PutResult, ClientError> {
    state.clear();
    if r.upload.is_some() || r.size != size || r.sha256 != digest_b64(h) {
        return Err(ClientError::Protocol(
            "the server reports another SHA-256 than the one we sent".into(),
        ));
    }
    Ok(r)
}

/// Discards an upload on the server, best effort (it expires anyway).
async fn abort(ctx: &Ctx, active: &mut Active, desc: &PutDesc, id: &str) {
    let mut d = desc.clone();
    d.upload = Some(UploadStep {
        id: Some(id.to_string()),
        abort: Some(true),
        ..UploadStep::default()
    });
    let _ = send(ctx, active, &d, None).await;
}
