//! `get`: stream a file (or a byte range of it) to the client with flat
//! memory; the result carries the SHA-256 of exactly the bytes sent.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{io_error, OpCtx};
use crate::proto::b64;
use crate::proto::record::{CHANNEL_STDOUT, MAX_RESPONSE_DATA};
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

/// Where the reading stands between two blocking jobs.
struct Reading {
    file: std::fs::File,
    hash: Sha256,
    /// Bytes still to send (the asked length).
    left: u64,
}

/// Reads and hashes the next batch; `None` at the end of the range.
/// Whole batches (short reads are retried), so records stay full-sized and
/// each hand-off carries several of them; read into spare capacity, so
/// nothing is zero-filled first.
///
/// The batch is laid out as the records' plaintexts: each piece of file
/// data behind its channel byte (see [`ResponseWriter::pieces`]), so each
/// record is sealed straight from it, without first copying byte and data
/// together (about 6 % of remod's CPU on a get went to that copy).
fn read_batch(mut st: Reading) -> (Reading, std::io::Result<Option<Bytes>>) {
    let want = st.left.min(MAX_SEND_BATCH as u64) as usize;
    if want == 0 {
        return (st, Ok(None));
    }
    let pieces = want.div_ceil(MAX_RESPONSE_DATA);
    let mut buf = Vec::with_capacity(want + pieces);
    let mut got = 0usize;
    while got < want {
        let piece = (want - got).min(MAX_RESPONSE_DATA);
        let at = buf.len();
        buf.push(CHANNEL_STDOUT);
        let read = (&mut st.file).take(piece as u64).read_to_end(&mut buf);
        let n = buf.len() - at - 1;
        if let Err(e) = read {
            return (st, Err(e));
        }
        if n == 0 {
            buf.truncate(at);
            break;
        }
        if let Some(data) = buf.get(at + 1..) {
            st.hash.update(data);
        }
        got += n;
        if n < piece {
            break;
        }
    }
    if got == 0 {
        return (st, Ok(None));
    }
    st.left -= got as u64;
    (st, Ok(Some(Bytes::from(buf))))
}

/// Streams the file. Each batch is read and hashed by a blocking job while
/// this task seals and sends the previous one, so the two use both cores.
/// The next job starts only when a batch has been handed on: a client that
/// stops taking the answer holds no thread of the blocking pool.
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
    // A regular file: `open_read` opens nothing else.
    let meta = file.metadata().map_err(|e| io_error(&what, &e))?;
    let offset = g.offset.unwrap_or(0);
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io_error(&what, &e))?;
    }
    let lost = || OpError::new(ErrorCode::Internal, "file reader failed");
    let mut st = Reading {
        file,
        hash: Sha256::new(),
        left: g.length.unwrap_or(u64::MAX),
    };
    let mut sent: u64 = 0;
    let mut job = tokio::task::spawn_blocking(move || read_batch(st));
    loop {
        let (back, batch) = job.await.map_err(|_| lost())?;
        st = back;
        let Some(data) = batch.map_err(|e| io_error("read", &e))? else {
            break;
        };
        // Read ahead while this batch goes out.
        let reading = st;
        job = tokio::task::spawn_blocking(move || read_batch(reading));
        // On an error the read ahead finishes on its own; nothing waits.
        match ctx.watched(&what, out.pieces(&data)).await {
            Ok(Ok(n)) => sent += n,
            Ok(Err(_gone)) => return Err(OpError::new(ErrorCode::Unavailable, "client went away")),
            Err(e) => return Err(e),
        }
        ctx.session.touch();
    }
    Ok(GetResult {
        size: meta.len(),
        length: sent,
        mode: meta.mode() & 0o7777,
        mtime: meta.mtime(),
        sha256: b64::encode(&st.hash.finalize()),
    })
}
