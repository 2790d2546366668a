//! Reading a sealed request message from a streamed body and writing a
//! sealed response message into the response channel, record by record,
//! in the framing the request chose (PROTOCOL.md §4, §4.1).

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::proto::framing::{Framed, Framing, RecordSplitter};
use crate::proto::record::{
    Opener, Record, RecordError, Sealer, CHANNEL_STDOUT, MAX_RESPONSE_DATA,
};
use crate::proto::response::{error_result, ok_result, OpError};
use crate::server::core::request::{Body, BodyError};

/// How many sealed messages (one or more records each) may queue towards
/// the front door.
pub(crate) const RESPONSE_CHANNEL_DEPTH: usize = 8;
/// The most data a bulk sender passes to one [`ResponseWriter::send`]: four
/// full records, about 350 KB of sealed text (260 KB binary) per message,
/// so the queue above holds at most a few MiB.
pub(crate) const MAX_SEND_BATCH: usize = 4 * MAX_RESPONSE_DATA;

/// Why reading the request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReadError {
    /// A record or line problem.
    #[error("{0}")]
    Record(#[from] RecordError),
    /// The body grew past the configured limit.
    #[error("request body larger than the limit of {0} bytes")]
    TooLarge(u64),
    /// The body ended abnormally at the transport level.
    #[error("{0}")]
    Body(#[from] BodyError),
}

impl ReadError {
    /// The operation error a failed read becomes once the response has begun.
    pub(crate) fn to_op_error(&self) -> OpError {
        match self {
            ReadError::TooLarge(_) => OpError::new(
                crate::proto::response::ErrorCode::TooLarge,
                self.to_string(),
            ),
            _ => OpError::bad_request(format!("request stream failed: {self}")),
        }
    }
}

/// The request body as a sequence of sealed records (lines or binary
/// records) and, once the session is known, of opened records.
pub(crate) struct RequestReader {
    body: Body,
    split: RecordSplitter,
    received: u64,
    limit: u64,
    eof: bool,
    opener: Option<Opener>,
}

impl RequestReader {
    /// Wraps a body in `framing`; `limit` caps the bytes read from it.
    pub(crate) fn new(body: Body, limit: u64, framing: Framing) -> Self {
        RequestReader {
            body,
            split: RecordSplitter::new(framing),
            received: 0,
            limit,
            eof: false,
            opener: None,
        }
    }

    /// The next sealed record, or `None` at a clean end of the body. A
    /// binary length out of range is refused as soon as its 4 bytes are
    /// in, without waiting for more of the body.
    pub(crate) async fn next_record(&mut self) -> Result<Option<Framed>, ReadError> {
        loop {
            if let Some(rec) = self.split.next_record()? {
                return Ok(Some(rec));
            }
            if self.eof {
                self.split.finish()?;
                return Ok(None);
            }
            match self.body.chunk().await {
                Some(Ok(chunk)) => {
                    self.received += chunk.len() as u64;
                    if self.received > self.limit {
                        return Err(ReadError::TooLarge(self.limit));
                    }
                    self.split.push(&chunk);
                }
                Some(Err(e)) => return Err(e.into()),
                None => self.eof = true,
            }
        }
    }

    /// Installs the opener that record 0 was opened with, for the data records.
    pub(crate) fn set_opener(&mut self, opener: Opener) {
        self.opener = Some(opener);
    }

    /// The next data record, or `None` once the `last` record has been
    /// opened and the body has ended cleanly after it.
    pub(crate) async fn next_data(&mut self) -> Result<Option<Bytes>, ReadError> {
        let done = self.opener.as_ref().is_none_or(|o| o.done());
        if done {
            // Anything after the last record is an error, not silently ignored.
            return match self.next_record().await? {
                None => Ok(None),
                Some(_) => Err(RecordError::AfterLast.into()),
            };
        }
        let Some(sealed) = self.next_record().await? else {
            return Err(RecordError::Truncated.into());
        };
        let opener = self.opener.as_mut().ok_or(RecordError::Truncated)?;
        let rec: Record = sealed.open(opener)?;
        Ok(Some(rec.into_bytes()))
    }

    /// Reads and discards the remaining data records, so an operation that
    /// takes no data (or has stopped using it) still acts only on a message
    /// that authenticated to its `last` record.
    pub(crate) async fn drain(&mut self) -> Result<(), OpError> {
        while self
            .next_data()
            .await
            .map_err(|e| e.to_op_error())?
            .is_some()
        {}
        Ok(())
    }

    /// True once the `last` record has been opened.
    pub(crate) fn input_complete(&self) -> bool {
        self.opener.as_ref().is_none_or(|o| o.done())
    }

    /// Bytes read from the body so far.
    pub(crate) fn bytes_received(&self) -> u64 {
        self.received
    }
}

/// The client went away (the front door dropped the response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("client went away")]
pub(crate) struct Gone;

/// Seals response records and queues them towards the front door.
pub(crate) struct ResponseWriter {
    tx: mpsc::Sender<Bytes>,
    sealer: Sealer,
    framing: Framing,
    sent: u64,
}

impl ResponseWriter {
    /// A writer for one response, in the request's `framing`.
    pub(crate) fn new(tx: mpsc::Sender<Bytes>, sealer: Sealer, framing: Framing) -> Self {
        ResponseWriter {
            tx,
            sealer,
            framing,
            sent: 0,
        }
    }

    /// Sends `data` on `channel`, split into records of at most 65,536
    /// bytes. The records of one call travel as one message, so a bulk
    /// sender (get) wakes the front door once per batch, not per record;
    /// callers bound the batch (at most [`MAX_SEND_BATCH`] bytes by get).
    pub(crate) async fn send(&mut self, channel: u8, data: &[u8]) -> Result<(), Gone> {
        // Sized once for all the records, so the bytes are never moved.
        let cap = data
            .chunks(MAX_RESPONSE_DATA)
            .map(|p| self.framing.sealed_len(1 + p.len()))
            .sum();
        let mut lines = Vec::with_capacity(cap);
        let mut sealed = Ok(());
        for piece in data.chunks(MAX_RESPONSE_DATA) {
            sealed = self
                .sealer
                .seal_framed(&[&[channel], piece], false, self.framing, &mut lines);
            if sealed.is_err() {
                break;
            }
        }
        self.hand_on(lines, sealed, data.len() as u64).await
    }

    /// Queues the records sealed by one call. Those already sealed are sent
    /// even when a later one could not be (the index is exhausted): the
    /// final result record must follow them without a gap.
    async fn hand_on(
        &mut self,
        lines: Vec<u8>,
        sealed: Result<(), RecordError>,
        data: u64,
    ) -> Result<(), Gone> {
        if sealed.is_err() {
            if !lines.is_empty() {
                let _ = self.tx.send(Bytes::from(lines)).await;
            }
            return Err(Gone);
        }
        if !lines.is_empty() {
            self.tx.send(Bytes::from(lines)).await.map_err(|_| Gone)?;
            self.sent += data;
        }
        Ok(())
    }

    /// Sends a batch laid out as record plaintexts: pieces of a channel
    /// byte and at most [`MAX_RESPONSE_DATA`] bytes, back to back (every
    /// piece full but the last, as `get` reads them). Each is sealed as one
    /// part, straight from the batch. Returns the data bytes sent (without
    /// channel bytes).
    pub(crate) async fn pieces(&mut self, batch: &[u8]) -> Result<u64, Gone> {
        let cap = batch
            .chunks(1 + MAX_RESPONSE_DATA)
            .map(|p| self.framing.sealed_len(p.len()))
            .sum();
        let mut lines = Vec::with_capacity(cap);
        let mut sealed = Ok(());
        let mut data = 0u64;
        for piece in batch.chunks(1 + MAX_RESPONSE_DATA) {
            sealed = self
                .sealer
                .seal_framed(&[piece], false, self.framing, &mut lines);
            if sealed.is_err() {
                break;
            }
            data += piece.len().saturating_sub(1) as u64;
        }
        self.hand_on(lines, sealed, data).await?;
        Ok(data)
    }

    /// Shorthand for standard output / file data.
    pub(crate) async fn stdout(&mut self, data: &[u8]) -> Result<(), Gone> {
        self.send(CHANNEL_STDOUT, data).await
    }

    /// Resolves when the client has gone away.
    pub(crate) async fn closed(&self) {
        self.tx.closed().await
    }

    /// Payload bytes sent so far (without channel bytes).
    pub(crate) fn bytes_sent(&self) -> u64 {
        self.sent
    }

    /// Seals the final result record.
    pub(crate) async fn finish(
        mut self,
        result: &Result<Map<String, Value>, OpError>,
    ) -> Result<(), Gone> {
        let json = match result {
            Ok(fields) => ok_result(fields.clone()),
            Err(e) => error_result(e),
        };
        let rec = self
            .sealer
            .seal_bytes(&[&json], true, self.framing)
            .map_err(|_| Gone)?;
        self.tx.send(rec).await.map_err(|_| Gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::record::RecordKey;
    use crate::proto::response::{parse_result, ErrorCode};

    /// Near the end of the record index, data that needs more records than
    /// are left is cut off, and the message still ends, without a gap, with
    /// an error result in the last index — in either framing.
    #[tokio::test]
    async fn response_ends_with_an_error_when_the_index_runs_out() {
        for (framing, laid_out) in Framing::ALL
            .into_iter()
            .flat_map(|f| [(f, false), (f, true)])
        {
            let key = RecordKey::new(&[9u8; 32]);
            let (tx, mut rx) = mpsc::channel(16);
            let start = u32::MAX - 2;
            let sealer = Sealer::new(key.clone(), 3, "get").starting_at(start);
            let mut w = ResponseWriter::new(tx, sealer, framing);
            // Three records' worth: two fit (u32::MAX - 2, u32::MAX - 1), the
            // third would take the index kept for the result.
            let data = vec![7u8; 3 * MAX_RESPONSE_DATA];
            if laid_out {
                // The same as `get` lays it out: channel byte, piece, ….
                let batch: Vec<u8> = data
                    .chunks(MAX_RESPONSE_DATA)
                    .flat_map(|p| std::iter::once(CHANNEL_STDOUT).chain(p.iter().copied()))
                    .collect();
                assert_eq!(w.pieces(&batch).await, Err(Gone));
            } else {
                assert_eq!(w.send(CHANNEL_STDOUT, &data).await, Err(Gone));
            }
            let err = OpError::new(ErrorCode::TooLarge, "too many records");
            w.finish(&Err(err)).await.unwrap();
            let mut split = RecordSplitter::new(framing);
            while let Ok(b) = rx.try_recv() {
                split.push(&b);
            }
            let mut o = Opener::new(key, Some(3), "get").starting_at(start);
            let mut recs = Vec::new();
            while let Some(rec) = split.next_record().unwrap() {
                recs.push(rec.open(&mut o).unwrap());
            }
            assert!(o.finish().is_ok() && split.finish().is_ok(), "{framing}");
            let idx: Vec<u32> = recs.iter().map(|r| r.index).collect();
            assert_eq!(idx, [u32::MAX - 2, u32::MAX - 1, u32::MAX], "{framing}");
            for r in &recs[..2] {
                assert_eq!(r.plaintext().first(), Some(&CHANNEL_STDOUT));
                assert_eq!(r.plaintext().len(), 1 + MAX_RESPONSE_DATA);
            }
            let last = recs.last().unwrap();
            assert!(last.last);
            let res = parse_result(last.plaintext()).unwrap();
            assert_eq!(res.unwrap_err().code, ErrorCode::TooLarge);
        }
    }

    /// A binary length out of range is an error as soon as its 4 bytes
    /// are in: the reader does not wait for the rest of a body that is
    /// still open (polled once, it is ready).
    #[tokio::test]
    async fn a_bad_length_is_refused_while_the_body_is_still_open() {
        use futures_util::FutureExt;
        for (l, err) in [
            (65_566u32, RecordError::LengthTooLarge(65_566)),
            (27, RecordError::LengthTooSmall(27)),
        ] {
            let (tx, body) = Body::channel();
            let mut reader = RequestReader::new(body, 1 << 30, Framing::Binary);
            tx.send(Ok(vec![Bytes::copy_from_slice(&l.to_be_bytes())]))
                .await
                .unwrap();
            let got = reader.next_record().now_or_never();
            assert_eq!(
                got.map(|r| r.map(|_| ())),
                Some(Err(ReadError::Record(err))),
                "L={l}"
            );
            drop(tx);
        }
        // An in-range length waits for its record.
        let (tx, body) = Body::channel();
        let mut reader = RequestReader::new(body, 1 << 30, Framing::Binary);
        tx.send(Ok(vec![Bytes::from_static(&[0, 0, 0, 28])]))
            .await
            .unwrap();
        assert!(reader.next_record().now_or_never().is_none());
    }
}
