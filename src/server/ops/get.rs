//! `get`: stream a file (or a byte range of it) to the client with flat
//! memory; the result carries the SHA-256 of exactly the bytes sent.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::{io_error, OpCtx};
use crate::proto::b64;
use crate::proto::response::{ErrorCode, OpError};
use crate::server::core::stream::{RequestReader, ResponseWriter, MAX_SEND_BATCH};
use crate::server::enforce::confine::{locate, Access};
use crate::server::enforce::runas::{account_for, fs_step};

pub(crate) use crate::ops::get::{GetDesc, GetResult};

/// Checks the descriptor.
pub(crate) fn check(g: GetDesc) -> Result<GetDesc, OpError> {
    if g.path.is_empty() || g.path.contains('\0') {
        return Err(OpError::bad_request(
            "path must be a non-empty string without NUL",
        ));
    }
    Ok(g)
}

enum Chunk {
    Data(Bytes),
    Done { sha256: [u8; 32] },
    Failed(OpError),
}

/// Streams the file. Reading and hashing run on a blocking thread while
/// this task seals, so the two use both cores.
pub(crate) async fn apply(
    ctx: &OpCtx,
    g: GetDesc,
    input: &mut RequestReader,
    out: &mut ResponseWriter,
) -> Result<GetResult, OpError> {
    input.drain().await?;
    let grants = ctx.session.grants();
    let loc = locate(&grants, &ctx.inst.resolve(&g.path), Access::Read)?;
    let what = loc.shown.clone();
    // Opened below the user's root, with the run-as account's rights.
    let mut file = fs_step(account_for(&grants)?, move || loc.open_read()).await?;
    let meta = file.metadata().map_err(|e| io_error(&what, &e))?;
    if !meta.is_file() {
        return Err(OpError::bad_request(format!(
            "{what} is not a regular file"
        )));
    }
    let offset = g.offset.unwrap_or(0);
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io_error(&what, &e))?;
    }
    let length = g.length.unwrap_or(u64::MAX);
    let (tx, mut rx) = mpsc::channel::<Chunk>(4);
    let cancel = ctx.session.cancel.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let mut hash = Sha256::new();
        let mut left = length;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let want = left.min(MAX_SEND_BATCH as u64) as usize;
            if want == 0 {
                break;
            }
            // Fill whole batches (short reads are retried) so records stay
            // full-sized and each hand-off carries several of them. Read
            // into spare capacity: nothing is zero-filled first.
            let mut buf = Vec::with_capacity(want);
            if let Err(e) = (&mut file).take(want as u64).read_to_end(&mut buf) {
                let _ = tx.blocking_send(Chunk::Failed(io_error("read", &e)));
                return;
            }
            let n = buf.len();
            if n == 0 {
                break;
            }
            hash.update(&buf);
            left -= n as u64;
            if tx.blocking_send(Chunk::Data(Bytes::from(buf))).is_err() {
                return;
            }
        }
        let _ = tx.blocking_send(Chunk::Done {
            sha256: hash.finalize().into(),
        });
    });
    let mut sent: u64 = 0;
    let result = loop {
        let chunk = tokio::select! {
            c = rx.recv() => c,
            _ = out.closed() => break Err(OpError::new(ErrorCode::Unavailable, "client went away")),
        };
        match chunk {
            Some(Chunk::Data(d)) => {
                if out.stdout(&d).await.is_err() {
                    break Err(OpError::new(ErrorCode::Unavailable, "client went away"));
                }
                sent += d.len() as u64;
                ctx.session.touch();
            }
            Some(Chunk::Done { sha256 }) => {
                break Ok(GetResult {
                    size: meta.len(),
                    length: sent,
                    mode: meta.mode() & 0o7777,
                    mtime: meta.mtime(),
                    sha256: b64::encode(&sha256),
                })
            }
            Some(Chunk::Failed(e)) => break Err(e),
            None => break Err(OpError::new(ErrorCode::Unavailable, "session ended")),
        }
    };
    drop(rx);
    let _ = reader.await;
    result
}
