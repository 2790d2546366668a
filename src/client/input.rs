//! Request input (standard input, files) as [`DataStream`]s, and a wrapper
//! that lets a request be sent again after a transparent re-login.
//!
//! A cached session can turn out to be dead only when the server answers
//! 401 — by then the request body may already have consumed some input.
//! [`Replayable`] records what was consumed until the answer is known
//! (bounded), so the retry sends exactly the same data.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::conn::DataStream;

/// Read size for input streams: one full data record.
pub(crate) const CHUNK: usize = 64 * 1024;
/// Most input bytes kept for a replay; beyond this a retry is not possible.
pub(crate) const REPLAY_LIMIT: usize = 16 * 1024 * 1024;

/// A file read for upload: four full records per chunk.
pub(crate) const FILE_CHUNK: usize = 4 * crate::proto::record::MAX_PLAINTEXT;

/// A regular file as a stream of [`FILE_CHUNK`]-sized chunks, read on one
/// blocking thread for the whole transfer (not one runtime hand-off per
/// 64 KiB read), two chunks ahead of the sender.
pub fn file_stream(file: std::fs::File) -> DataStream {
    file_stream_with(file, u64::MAX, |_| {})
}

/// The next `len` bytes of a file (from its current position) as a
/// stream, as [`file_stream`] reads them; `seen` gets every chunk as it is
/// read, then `None` at the end of the part (a part of a resumable upload,
/// hashed on the way).
pub(crate) fn file_part_stream(
    file: std::fs::File,
    len: u64,
    seen: impl FnMut(Option<&[u8]>) + Send + 'static,
) -> DataStream {
    file_stream_with(file, len, seen)
}

/// As [`file_stream`], and the SHA-256 of every byte sent, computed on the
/// reading thread as the file is read (one pass over the file, not a
/// hashing pass before the upload). The digest comes once the whole file
/// was read; a read error or a dropped stream gives none.
pub(crate) fn file_stream_hashed(
    file: std::fs::File,
) -> (DataStream, tokio::sync::oneshot::Receiver<[u8; 32]>) {
    use sha2::{Digest, Sha256};
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let mut hasher = Some(Sha256::new());
    let mut done_tx = Some(done_tx);
    let stream = file_stream_with(file, u64::MAX, move |chunk| {
        match (chunk, hasher.as_mut()) {
            (Some(b), Some(h)) => h.update(b),
            (None, _) => {
                if let (Some(h), Some(tx)) = (hasher.take(), done_tx.take()) {
                    let _ = tx.send(h.finalize().into());
                }
            }
            _ => {}
        }
    });
    (stream, done_rx)
}

/// The reading loop of [`file_stream`]: at most `limit` bytes; `seen`
/// gets every chunk read, then `None` at the end of the file (or limit).
fn file_stream_with(
    file: std::fs::File,
    limit: u64,
    mut seen: impl FnMut(Option<&[u8]>) + Send + 'static,
) -> DataStream {
    use std::io::Read;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(2);
    tokio::task::spawn_blocking(move || {
        let mut file = file.take(limit);
        loop {
            // Whole chunks (short reads retried), read into spare capacity
            // as get does on the server: nothing is zero-filled first.
            let mut buf = Vec::with_capacity(FILE_CHUNK);
            if let Err(e) = (&mut file).take(FILE_CHUNK as u64).read_to_end(&mut buf) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            if buf.is_empty() {
                seen(None);
                return;
            }
            seen(Some(&buf));
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return;
            }
        }
    });
    Box::pin(tokio_stream_from(rx))
}

/// A receiver as a stream.
fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

/// Any async reader as a stream of chunks (each read is sent as it comes,
/// so interactive input is not held back).
pub(crate) fn reader_stream<R: AsyncRead + Send + Unpin + 'static>(reader: R) -> DataStream {
    Box::pin(futures_util::stream::unfold(
        Some(reader),
        |reader| async move {
            let mut reader = reader?;
            let mut buf = vec![0u8; CHUNK];
            match reader.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some(reader)))
                }
                Err(e) => Some((Err(e), None)),
            }
        },
    ))
}

struct Shared {
    input: Option<DataStream>,
    recorded: Vec<Bytes>,
    recorded_len: usize,
    recording: bool,
    overflow: bool,
    generation: u64,
}

/// An input that can be re-sent from its start while its first attempt's
/// answer is not yet known.
#[derive(Clone)]
pub(crate) struct Replayable {
    shared: Arc<Mutex<Shared>>,
}

impl std::fmt::Debug for Replayable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Replayable(..)")
    }
}

impl Replayable {
    /// Wraps an input; recording starts now.
    pub(crate) fn new(input: DataStream) -> Self {
        Replayable {
            shared: Arc::new(Mutex::new(Shared {
                input: Some(input),
                recorded: Vec::new(),
                recorded_len: 0,
                recording: true,
                overflow: false,
                generation: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A stream for one attempt: what earlier attempts consumed, then the
    /// rest of the input. Earlier attempts' streams stop (with an error, so
    /// their requests are aborted rather than ended cleanly).
    pub(crate) fn attempt(&self) -> DataStream {
        let mut s = self.lock();
        s.generation += 1;
        let mine = s.generation;
        let mut replay: VecDeque<Bytes> = s.recorded.iter().cloned().collect();
        if mine > 1 {
            s.recording = false;
            s.recorded.clear();
        }
        drop(s);
        let shared = self.shared.clone();
        Box::pin(futures_util::stream::poll_fn(move |cx| {
            if let Some(b) = replay.pop_front() {
                return Poll::Ready(Some(Ok(b)));
            }
            let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
            if s.generation != mine {
                return Poll::Ready(Some(Err(std::io::Error::other("request abandoned"))));
            }
            let Some(input) = s.input.as_mut() else {
                return Poll::Ready(None);
            };
            match input.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(b))) => {
                    if s.recording {
                        if s.recorded_len + b.len() > REPLAY_LIMIT {
                            s.recording = false;
                            s.overflow = true;
                            s.recorded.clear();
                        } else {
                            s.recorded_len += b.len();
                            s.recorded.push(b.clone());
                        }
                    }
                    Poll::Ready(Some(Ok(b)))
                }
                Poll::Ready(None) => {
                    s.input = None;
                    Poll::Ready(None)
                }
                other => other,
            }
        }))
    }

    /// The first attempt was accepted: stop recording and free the copy.
    pub(crate) fn commit(&self) {
        let mut s = self.lock();
        s.recording = false;
        s.recorded = Vec::new();
    }

    /// Whether another attempt can send the complete input.
    pub(crate) fn can_replay(&self) -> bool {
        let s = self.lock();
        !s.overflow && s.generation <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn second_attempt_resends_everything() {
        let chunks: Vec<std::io::Result<Bytes>> =
            (0..5u8).map(|i| Ok(Bytes::from(vec![i; 3]))).collect();
        let r = Replayable::new(Box::pin(futures_util::stream::iter(chunks)));
        let mut a1 = r.attempt();
        let first: Vec<u8> = a1.next().await.unwrap().unwrap().to_vec();
        let _ = a1.next().await.unwrap().unwrap();
        assert_eq!(first, vec![0; 3]);
        assert!(r.can_replay());
        let a2 = r.attempt();
        assert!(a1.next().await.unwrap().is_err());
        let all: Vec<Bytes> = a2.map(|c| c.unwrap()).collect().await;
        assert_eq!(
            all.concat(),
            (0..5u8).flat_map(|i| [i; 3]).collect::<Vec<_>>()
        );
        assert!(!r.can_replay());
    }

    #[tokio::test]
    async fn file_stream_reads_all_in_full_chunks() {
        use std::io::Write;
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..FILE_CHUNK * 2 + 12345)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        f.write_all(&data).unwrap();
        use std::io::Seek;
        f.rewind().unwrap();
        let all: Vec<Bytes> = file_stream(f).map(|c| c.unwrap()).collect().await;
        let sizes: Vec<usize> = all.iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![FILE_CHUNK, FILE_CHUNK, 12345]);
        assert_eq!(all.concat(), data);
    }

    #[tokio::test]
    async fn reader_stream_reads_all() {
        let data = vec![7u8; CHUNK * 2 + 5];
        let s = reader_stream(std::io::Cursor::new(data.clone()));
        let all: Vec<Bytes> = s.map(|c| c.unwrap()).collect().await;
        assert_eq!(all.concat(), data);
    }

    /// One pass: the stream gives the file's bytes and the digest is theirs,
    /// from a FIFO that can be read only once.
    #[tokio::test]
    async fn a_file_is_hashed_as_it_is_read_once() {
        use futures_util::StreamExt;
        use sha2::{Digest, Sha256};
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let data: Vec<u8> = (0..3 * FILE_CHUNK + 123)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let (path, expect) = (fifo.clone(), data.clone());
        let writer = std::thread::spawn(move || std::fs::write(path, expect).unwrap());
        let file = tokio::task::spawn_blocking(move || std::fs::File::open(fifo).unwrap())
            .await
            .unwrap();
        let (mut stream, digest) = file_stream_hashed(file);
        let mut got = Vec::new();
        while let Some(c) = stream.next().await {
            got.extend_from_slice(&c.unwrap());
        }
        writer.join().unwrap();
        assert_eq!(got, data);
        let d: [u8; 32] = Sha256::digest(&data).into();
        assert_eq!(digest.await.unwrap(), d);
    }
}
