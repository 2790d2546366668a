//! `remo get`: download a file. The local file appears only complete and
//! verified: data goes to a temporary file in the destination directory,
//! which is fsynced and renamed once the server's SHA-256 matches ours.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{basename, digest_b64, emit, on_terminal, progress, summary};
use crate::client::conn::ResponseItem;
use crate::client::ctx::Ctx;
use crate::client::error::ClientError;
use crate::client::known::open_options_private;
use crate::ops::get::GetDesc;
use crate::ops::result_of;
use crate::proto::record::MAX_RESPONSE_DATA;

/// Arguments of `remo get`.
#[derive(Debug, clap::Args)]
pub(crate) struct GetArgs {
    /// Remote file (relative to the remote home).
    pub remote: String,
    /// Local destination (a file or a directory; `-` for stdout; default: REMOTE's base name).
    pub local: Option<String>,
}

/// A temporary file removed unless kept (any failure, including a panic or
/// an early return, leaves no partial file behind).
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn destination(a: &GetArgs) -> Result<Option<PathBuf>, ClientError> {
    let base = || {
        basename(&a.remote).ok_or_else(|| {
            ClientError::Usage(format!(
                "cannot name a local file after '{}'; give LOCAL",
                a.remote
            ))
        })
    };
    match a.local.as_deref() {
        Some("-") => Ok(None),
        Some(l) => {
            let p = PathBuf::from(l);
            if p.is_dir() {
                Ok(Some(p.join(base()?)))
            } else {
                Ok(Some(p))
            }
        }
        None => Ok(Some(PathBuf::from(base()?))),
    }
}

fn temp_in(dest: &Path) -> Result<(TempFile, std::fs::File), ClientError> {
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".into());
    let mut last_err = None;
    for attempt in 0..16u32 {
        let nonce: u32 = rand_core::RngCore::next_u32(&mut rand_core::OsRng);
        let path = dir.join(format!(".{name}.remo-{nonce:08x}{attempt}.part"));
        match open_options_private()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((TempFile { path, keep: false }, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) => return Err(ClientError::io(&path, "cannot create", e)),
        }
    }
    Err(ClientError::io(
        &dir,
        "cannot create a temporary file",
        last_err.unwrap_or_else(|| std::io::Error::other("name collision")),
    ))
}

/// What the download came to once the data has ended.
struct Stored {
    digest: String,
    received: u64,
    file: Option<std::fs::File>,
}

/// Hashes a download as its chunks arrive (each still in cache from its
/// decryption) and stores them on a thread of its own, so the next records
/// are read, decrypted and hashed while the last ones are written.
struct Sink {
    tx: tokio::sync::mpsc::Sender<Vec<Bytes>>,
    /// Chunks not yet handed over: they go in batches of [`SINK_BATCH`]
    /// bytes, so the storing thread wakes once per batch, not per record.
    batch: Vec<Bytes>,
    hasher: Sha256,
    received: u64,
    worker: std::thread::JoinHandle<Result<Option<std::fs::File>, ClientError>>,
}

/// Batches queued between the response and the storing thread.
const SINK_DEPTH: usize = 4;

/// Bytes handed to the storing thread at a time (four full records).
const SINK_BATCH: usize = 4 * MAX_RESPONSE_DATA;

impl Sink {
    /// Stores into `file` (at `path`, for messages), or stdout when `None`.
    fn start(file: Option<(PathBuf, std::fs::File)>) -> Result<Sink, ClientError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(SINK_DEPTH);
        let worker = std::thread::Builder::new()
            .name("remo-get".into())
            .spawn(move || {
                let mut file = file;
                while let Some(batch) = rx.blocking_recv() {
                    for b in batch {
                        match &mut file {
                            Some((path, f)) => f
                                .write_all(&b)
                                .map_err(|e| ClientError::io(&*path, "cannot write", e))?,
                            None => emit(false, &b)?,
                        }
                    }
                }
                Ok(file.map(|(_, f)| f))
            })
            .map_err(|e| ClientError::Local(format!("cannot start a thread: {e}")))?;
        Ok(Sink {
            tx,
            batch: Vec::new(),
            hasher: Sha256::new(),
            received: 0,
            worker,
        })
    }

    /// Hashes a chunk and queues it; fails if the storing thread stopped
    /// (on an error, which [`Sink::finish`] returns).
    async fn send(&mut self, b: Bytes) -> Result<(), ()> {
        self.hasher.update(&b);
        self.received += b.len() as u64;
        self.batch.push(b);
        if self.batch.iter().map(Bytes::len).sum::<usize>() < SINK_BATCH {
            return Ok(());
        }
        self.flush().await
    }

    /// Hands the pending chunks to the storing thread.
    async fn flush(&mut self) -> Result<(), ()> {
        let batch = std::mem::take(&mut self.batch);
        self.tx.send(batch).await.map_err(|_| ())
    }

    /// Ends the data and waits for the thread: the digest, the byte count
    /// and the file, or the error that stopped it.
    async fn finish(mut self) -> Result<Stored, ClientError> {
        // A failed hand-over means the thread stopped on an error, which
        // joining it returns below.
        let _ = self.flush().await;
        let Sink {
            tx,
            hasher,
            received,
            worker,
            ..
        } = self;
        drop(tx);
        let file = tokio::task::spawn_blocking(move || worker.join())
            .await
            .map_err(|e| ClientError::Local(format!("storing failed: {e}")))?
            .map_err(|_| ClientError::Local("the storing thread failed".into()))??;
        Ok(Stored {
            digest: digest_b64(&hasher.finalize()),
            received,
            file,
        })
    }
}

/// Downloads REMOTE to LOCAL.
pub(crate) async fn run(ctx: &Ctx, a: GetArgs) -> Result<i32, ClientError> {
    let dest = destination(&a)?;
    let (mut temp, file) = match &dest {
        Some(d) => {
            let (t, f) = temp_in(d)?;
            let path = t.path.clone();
            (Some(t), Some((path, f)))
        }
        None => (None, None),
    };
    let mut active = ctx.session().await?;
    let outcome = async {
        // The size comes only with the final result: on a terminal, where a
        // progress bar with a total and an ETA is worth a round trip, ask
        // for it first with a zero-length `get` (a stat in remo/1 terms).
        let total = if on_terminal() {
            size_of(ctx, &mut active, &a.remote).await?
        } else {
            None
        };
        let started = std::time::Instant::now();
        let desc = GetDesc {
            path: a.remote.clone(),
            ..Default::default()
        };
        let mut resp = ctx.request(&mut active, &desc, None).await?;
        let pb = progress(total, &a.remote);
        let mut sink = Sink::start(file)?;
        while let Some(item) = resp.next().await? {
            match item {
                ResponseItem::Stdout(b) => {
                    pb.inc(b.len() as u64);
                    if sink.send(b).await.is_err() {
                        // The thread stops early only on an error: report it.
                        return Err(match sink.finish().await {
                            Err(e) => e,
                            Ok(_) => ClientError::Local("the storing thread stopped early".into()),
                        });
                    }
                }
                ResponseItem::Stderr(b) => emit(true, &b)?,
                ResponseItem::Done(Err(e)) => {
                    pb.finish_and_clear();
                    return Err(ClientError::Op(e));
                }
                ResponseItem::Done(Ok(m)) => {
                    pb.finish_and_clear();
                    let stored = sink.finish().await?;
                    let ours = stored.digest;
                    let r = result_of::<GetDesc>(m)
                        .map_err(|e| ClientError::Protocol(format!("get result: {e}")))?;
                    let theirs = r.sha256.as_str();
                    if theirs != ours {
                        return Err(ClientError::Local(format!(
                            "{}: SHA-256 mismatch after {} bytes (server {}, received {ours}); nothing written",
                            a.remote,
                            stored.received,
                            crate::client::conn::sanitize(theirs)
                        )));
                    }
                    let shown = match &dest {
                        Some(d) => d.display().to_string(),
                        None => "-".to_string(),
                    };
                    if let (Some(mut t), Some(f), Some(d)) = (temp.take(), stored.file, &dest) {
                        f.sync_all()
                            .map_err(|e| ClientError::io(&t.path, "cannot sync", e))?;
                        drop(f);
                        std::fs::rename(&t.path, d)
                            .map_err(|e| ClientError::io(d, "cannot rename into place", e))?;
                        t.keep = true;
                        if let Some(dir) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
                            if let Ok(df) = std::fs::File::open(dir) {
                                let _ = df.sync_all();
                            }
                        }
                    }
                    if on_terminal() {
                        eprintln!(
                            "{}",
                            summary(
                                &format!("get {} → {shown}", a.remote),
                                stored.received,
                                started.elapsed(),
                                &ours
                            )
                        );
                    }
                    return Ok(0);
                }
            }
        }
        Err(ClientError::Truncated)
    };
    // A local SIGINT/SIGTERM/SIGHUP ends the download through the normal
    // return path, so the partial file is removed (TempFile's drop).
    let outcome = tokio::select! {
        r = outcome => r,
        sig = interrupted() => Err(ClientError::Interrupted(sig)),
    };
    drop(temp);
    ctx.done(active).await;
    outcome
}

/// The size of a remote file from a zero-length `get`, or `None` when the
/// server does not say (the download then shows a spinner). An operation
/// error is left for the download itself to report.
async fn size_of(
    ctx: &Ctx,
    active: &mut crate::client::ctx::Active,
    remote: &str,
) -> Result<Option<u64>, ClientError> {
    let desc = GetDesc {
        path: remote.to_string(),
        length: Some(0),
        ..Default::default()
    };
    let done = ctx.request(active, &desc, None).await?.collect().await?;
    Ok(done
        .result
        .ok()
        .and_then(|m| result_of::<GetDesc>(m).ok())
        .map(|r| r.size))
}

/// Resolves with the number of the first SIGINT, SIGTERM or SIGHUP; never,
/// if the handlers cannot be installed (the default action then applies).
async fn interrupted() -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => libc::SIGINT,
        _ = term.recv() => libc::SIGTERM,
        _ = hup.recv() => libc::SIGHUP,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks of every size around the batch boundary reach the file whole
    /// and in order, and the digest and count are those of all of them,
    /// including a last batch shorter than [`SINK_BATCH`].
    #[tokio::test(flavor = "current_thread")]
    async fn the_sink_stores_and_hashes_every_chunk_in_order() {
        let dir = std::env::temp_dir().join(format!("remo-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out");
        let file = std::fs::File::create(&path).unwrap();
        let mut sink = Sink::start(Some((path.clone(), file))).unwrap();
        let mut all = Vec::new();
        let sizes = [
            1,
            65_536,
            65_535,
            3,
            SINK_BATCH,
            SINK_BATCH - 1,
            0,
            70_000,
            17,
        ];
        for (i, n) in sizes.iter().enumerate() {
            let chunk: Vec<u8> = (0..*n).map(|j| (i * 31 + j) as u8).collect();
            all.extend_from_slice(&chunk);
            sink.send(Bytes::from(chunk)).await.unwrap();
        }
        let stored = sink.finish().await.unwrap();
        drop(stored.file);
        assert_eq!(stored.received, all.len() as u64);
        assert_eq!(stored.digest, digest_b64(&Sha256::digest(&all)));
        assert_eq!(std::fs::read(&path).unwrap(), all);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
