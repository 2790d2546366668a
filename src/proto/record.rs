//! Sealed records and messages (PROTOCOL.md §4).
//!
//! A message is a sequence of `b64(N ‖ C) "\r\n"` lines (the text framing)
//! or of `u32be(L) ‖ N ‖ C` records (the binary framing of §4.1, see
//! [`super::framing`]). [`LineSplitter`] cuts a byte stream into lines with
//! the length limit applied before any decoding; [`Opener`] checks and
//! decrypts records one at a time as they arrive; [`Sealer`] produces them
//! one at a time, in either framing from the same `N ‖ C`. Nothing here
//! allocates in proportion to a message, only to a record.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::AeadInOut;
use aes_gcm::aes::Aes256Enc;
use aes_gcm::{AesGcm, KeyInit, Nonce, Tag};
use bytes::{Bytes, BytesMut};

use super::b64;
use super::framing::{Framing, LENGTH_PREFIX, MAX_RECORD_LEN, MIN_RECORD_LEN};

/// Largest plaintext in one record.
pub const MAX_PLAINTEXT: usize = 65_537;
/// Nonce length: `u64be(R) ‖ u32be(i)`.
pub(crate) const NONCE_LEN: usize = 12;
/// GCM tag length.
pub(crate) const TAG_LEN: usize = 16;
/// Longest line (without CRLF) a receiver accepts: b64 of a full record.
pub(crate) const MAX_LINE: usize = 87_420;
/// Largest data payload of a response record (one byte goes to the channel).
pub(crate) const MAX_RESPONSE_DATA: usize = MAX_PLAINTEXT - 1;
/// Channel byte for data or standard output.
pub const CHANNEL_STDOUT: u8 = 0x01;
/// Channel byte for standard error.
pub const CHANNEL_STDERR: u8 = 0x02;

/// Why a record or message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A line longer than [`MAX_LINE`] (→ 413).
    #[error("record line longer than {MAX_LINE} characters")]
    LineTooLong,
    /// Bytes after the last CRLF: the body was cut mid-line.
    #[error("body does not end with CRLF")]
    PartialLine,
    /// Not b64, or too short to hold a nonce and a tag.
    #[error("malformed record")]
    Malformed,
    /// The plaintext exceeds [`MAX_PLAINTEXT`].
    #[error("record plaintext too large")]
    TooLarge,
    /// The tag does not verify (wrong key, op, R, index, or tampering).
    #[error("record does not authenticate")]
    Auth,
    /// A record carries another request number than the message.
    #[error("record belongs to another request")]
    WrongRequest,
    /// The index is not the next one.
    #[error("record out of order")]
    OutOfOrder,
    /// A record after the `last` one.
    #[error("record after the last record")]
    AfterLast,
    /// The message ended without a `last` record.
    #[error("message truncated: no last record")]
    Truncated,
    /// The message holds no record at all.
    #[error("empty message")]
    Empty,
    /// A binary record whose length `L` is below the 28 bytes of a nonce
    /// and a tag (→ 400), refused as soon as its 4 length bytes are in.
    #[error("binary record length {0} below {MIN_RECORD_LEN}")]
    LengthTooSmall(u32),
    /// A binary record whose length `L` is above 65,565, a plaintext over
    /// [`MAX_PLAINTEXT`] (→ 413), refused before the record is read.
    #[error("binary record length {0} above {MAX_RECORD_LEN}")]
    LengthTooLarge(u32),
    /// A binary body that ends inside a record (its length or its bytes).
    #[error("body ends inside a binary record")]
    PartialRecord,
    /// The record index would pass `u32::MAX`: the `(R, i)` nonce would
    /// repeat under the same key. The last index is kept for a `last`
    /// record, so a sender can still end the message.
    #[error("too many records in one message")]
    TooManyRecords,
}

/// Length of the sealed line (with CRLF) of a record with `plaintext`
/// bytes, so a caller sealing several records can size its buffer once.
pub(crate) fn sealed_line_len(plaintext: usize) -> usize {
    let raw = NONCE_LEN + plaintext + TAG_LEN;
    (raw * 4).div_ceil(3) + 2
}

/// Builds the AAD `"remo/1 " ‖ OP ‖ (" more" | " last")`.
fn aad(op: &str, last: bool) -> Vec<u8> {
    let mut a = Vec::with_capacity(7 + op.len() + 5);
    a.extend_from_slice(b"remo/1 ");
    a.extend_from_slice(op.as_bytes());
    a.extend_from_slice(if last { b" last" } else { b" more" });
    a
}

/// The 12-byte nonce `u64be(R) ‖ u32be(i)`.
pub(crate) fn nonce(r: u64, i: u32) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[..8].copy_from_slice(&r.to_be_bytes());
    n[8..].copy_from_slice(&i.to_be_bytes());
    n
}

/// AES-256-GCM over the encryption half of AES only: GCM never runs the
/// block cipher backwards, and `aes_gcm::Aes256Gcm` also keeps AES's
/// decryption key schedule, 240 bytes per key that a session (two keys)
/// carries for nothing. The same cipher, 384 bytes instead of 624.
type Cipher = AesGcm<Aes256Enc, U12>;

/// An AES-256-GCM key ready for use (key schedule done once per session).
///
/// Held inline: a shared `Arc` would spare each request its copy, but
/// measured 4 MiB more for 10,000 idle sessions (one more allocation per
/// key). Each copy is wiped when it is dropped (the `zeroize` feature);
/// docs/security.md says what moves leave behind.
#[derive(Clone)]
pub struct RecordKey(Cipher);

impl RecordKey {
    /// Prepares a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        RecordKey(Cipher::new(key.into()))
    }
}

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordKey(..)")
    }
}

/// Seals the records of one message in order.
#[derive(Debug)]
pub struct Sealer {
    key: RecordKey,
    r: u64,
    next: u32,
    aad_more: Vec<u8>,
    aad_last: Vec<u8>,
    finished: bool,
    scratch: Vec<u8>,
}

impl Sealer {
    /// A sealer for request/response number `r` of operation `op`.
    pub fn new(key: RecordKey, r: u64, op: &str) -> Self {
        Sealer {
            key,
            r,
            next: 0,
            aad_more: aad(op, false),
            aad_last: aad(op, true),
            finished: false,
            scratch: Vec::with_capacity(NONCE_LEN + 1024 + TAG_LEN),
        }
    }

    /// Starts the record index at `next` (tests at the u32 boundary).
    #[cfg(test)]
    pub(crate) fn starting_at(mut self, next: u32) -> Self {
        self.next = next;
        self
    }

    /// Seals one record whose plaintext is the concatenation of `parts`, and
    /// returns its line with CRLF. Fails if the plaintext is too large or the
    /// message is already finished.
    pub fn seal(&mut self, parts: &[&[u8]], last: bool) -> Result<Bytes, RecordError> {
        let mut out = String::new();
        self.seal_into(parts, last, &mut out)?;
        Ok(Bytes::from(out.into_bytes()))
    }

    /// As [`Sealer::seal`], appending the line to `out`.
    pub fn seal_into(
        &mut self,
        parts: &[&[u8]],
        last: bool,
        out: &mut String,
    ) -> Result<(), RecordError> {
        self.seal_line(parts, last, out)
    }

    /// Seals one record whose plaintext is the concatenation of `parts` and
    /// appends it to `out` in `framing`: a text line with CRLF, or
    /// `u32be(L) ‖ N ‖ C`. Both framings carry the same `N ‖ C`, sealed by
    /// the one [`seal_raw`].
    pub fn seal_framed(
        &mut self,
        parts: &[&[u8]],
        last: bool,
        framing: Framing,
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        match framing {
            Framing::Text => self.seal_line(parts, last, out),
            Framing::Binary => {
                let len = self.check(parts, last)?;
                // `check` bounds the plaintext, so L fits in a u32.
                let raw =
                    u32::try_from(NONCE_LEN + len + TAG_LEN).map_err(|_| RecordError::TooLarge)?;
                let start = out.len();
                out.reserve(LENGTH_PREFIX + raw as usize);
                out.extend_from_slice(&raw.to_be_bytes());
                // Sealed straight into `out`, after its length: no copy.
                let n = nonce(self.r, self.next);
                let aad = if last { &self.aad_last } else { &self.aad_more };
                let sealed = seal_raw(&self.key, n, aad, parts, len, out, start + LENGTH_PREFIX);
                if sealed.is_err() {
                    out.truncate(start);
                    return sealed;
                }
                self.advance(last);
                Ok(())
            }
        }
    }

    /// As [`Sealer::seal`] in `framing`.
    pub fn seal_bytes(
        &mut self,
        parts: &[&[u8]],
        last: bool,
        framing: Framing,
    ) -> Result<Bytes, RecordError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut out = Vec::with_capacity(framing.sealed_len(len.min(MAX_PLAINTEXT)));
        self.seal_framed(parts, last, framing, &mut out)?;
        Ok(Bytes::from(out))
    }

    /// The text framing: `N ‖ C` sealed into the scratch buffer, then
    /// appended to `out` as a base64 line with CRLF.
    fn seal_line<O: LineOut>(
        &mut self,
        parts: &[&[u8]],
        last: bool,
        out: &mut O,
    ) -> Result<(), RecordError> {
        let len = self.check(parts, last)?;
        let n = nonce(self.r, self.next);
        let aad = if last { &self.aad_last } else { &self.aad_more };
        seal_raw(&self.key, n, aad, parts, len, &mut self.scratch, 0)?;
        out.push_line(&self.scratch, sealed_line_len(len));
        self.advance(last);
        Ok(())
    }

    /// What every record must satisfy before it is sealed; the plaintext length.
    fn check(&self, parts: &[&[u8]], last: bool) -> Result<usize, RecordError> {
        if self.finished {
            return Err(RecordError::AfterLast);
        }
        // Index u32::MAX is only for the `last` record: past it the nonce
        // would repeat, and keeping it lets the message end with a result.
        if self.next == u32::MAX && !last {
            return Err(RecordError::TooManyRecords);
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > MAX_PLAINTEXT {
            return Err(RecordError::TooLarge);
        }
        Ok(len)
    }

    /// Moves to the next index once a record is sealed.
    fn advance(&mut self, last: bool) {
        // `last` at u32::MAX finishes the message, so the index is never reused.
        self.next = self.next.saturating_add(1);
        self.finished = last;
    }
}

/// Where a text line goes: a `String` or a byte buffer.
trait LineOut {
    /// Appends `b64(raw) "\r\n"`, whose length is `line_len`.
    fn push_line(&mut self, raw: &[u8], line_len: usize);
}

impl LineOut for String {
    fn push_line(&mut self, raw: &[u8], line_len: usize) {
        self.reserve(line_len);
        b64::encode_into(raw, self);
        self.push_str("\r\n");
    }
}

impl LineOut for Vec<u8> {
    fn push_line(&mut self, raw: &[u8], line_len: usize) {
        self.reserve(line_len);
        b64::encode_into_vec(raw, self);
        self.extend_from_slice(b"\r\n");
    }
}

/// Seals `N ‖ C` (nonce `n`, plaintext the `len` bytes of `parts`) into
/// `buf` from offset `start`, keeping what is before it: the one sealing
/// of both framings.
fn seal_raw(
    key: &RecordKey,
    n: [u8; NONCE_LEN],
    aad: &[u8],
    parts: &[&[u8]],
    len: usize,
    buf: &mut Vec<u8>,
    start: usize,
) -> Result<(), RecordError> {
    let tag = match parts {
        // One part (file and output data): encrypt straight from it into
        // the buffer. Resizing a reused buffer to the same size writes
        // nothing, so the plaintext is read once, not copied first.
        [one] => {
            buf.resize(start + NONCE_LEN + len, 0);
            let (head, body) = buf
                .get_mut(start..)
                .ok_or(RecordError::TooLarge)?
                .split_at_mut(NONCE_LEN);
            head.copy_from_slice(&n);
            let io = InOutBuf::new(one, body).map_err(|_| RecordError::TooLarge)?;
            key.0.encrypt_inout_detached(&Nonce::from(n), aad, io)
        }
        _ => {
            buf.truncate(start);
            buf.extend_from_slice(&n);
            for p in parts {
                buf.extend_from_slice(p);
            }
            let body = buf
                .get_mut(start + NONCE_LEN..)
                .ok_or(RecordError::TooLarge)?;
            key.0
                .encrypt_inout_detached(&Nonce::from(n), aad, body.into())
        }
    }
    .map_err(|_| RecordError::TooLarge)?;
    buf.extend_from_slice(&tag);
    Ok(())
}

/// One opened record.
#[derive(Debug, Clone)]
pub struct Record {
    /// `N ‖ plaintext ‖ tag`, decrypted in place.
    buf: Bytes,
    /// Index within the message.
    pub index: u32,
    /// Whether this is the message's last record.
    pub last: bool,
}

impl Record {
    /// The plaintext.
    pub fn plaintext(&self) -> &[u8] {
        self.buf
            .get(NONCE_LEN..self.buf.len().saturating_sub(TAG_LEN))
            .unwrap_or(&[])
    }

    /// The plaintext as `Bytes`, without copying.
    pub(crate) fn into_bytes(self) -> Bytes {
        let end = self.buf.len().saturating_sub(TAG_LEN);
        if end >= NONCE_LEN {
            self.buf.slice(NONCE_LEN..end)
        } else {
            Bytes::new()
        }
    }
}

/// The request number carried by a line, read without decrypting, so a
/// server can pick the session state before it authenticates the record.
#[cfg(test)]
pub(crate) fn peek_request_number(line: &[u8]) -> Result<u64, RecordError> {
    if line.len() > MAX_LINE {
        return Err(RecordError::LineTooLong);
    }
    // The first 12 characters of b64 are exactly the first 9 bytes.
    let head = line.get(..12).ok_or(RecordError::Malformed)?;
    let raw = b64::decode_bytes(head).map_err(|_| RecordError::Malformed)?;
    let r: [u8; 8] = raw
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .ok_or(RecordError::Malformed)?;
    Ok(u64::from_be_bytes(r))
}

/// Opens the records of one message in order, checking numbering and `last`.
#[derive(Debug)]
pub struct Opener {
    key: RecordKey,
    r: Option<u64>,
    next: u32,
    aad_more: Vec<u8>,
    aad_last: Vec<u8>,
    done: bool,
}

impl Opener {
    /// An opener for operation `op`. With `r = Some(R)` every record must
    /// carry `R` (a client opening a response); with `None` the first record
    /// fixes it (a server opening a request, which then checks freshness).
    pub fn new(key: RecordKey, r: Option<u64>, op: &str) -> Self {
        Opener {
            key,
            r,
            next: 0,
            aad_more: aad(op, false),
            aad_last: aad(op, true),
            done: false,
        }
    }

    /// The request number, once known.
    pub(crate) fn request_number(&self) -> Option<u64> {
        self.r
    }

    /// True once the `last` record has been opened.
    pub(crate) fn done(&self) -> bool {
        self.done
    }

    /// Expects the first record at index `next` (tests at the u32 boundary).
    #[cfg(test)]
    pub(crate) fn starting_at(mut self, next: u32) -> Self {
        self.next = next;
        self
    }

    /// Opens the next line (without its CRLF).
    pub fn open(&mut self, line: &[u8]) -> Result<Record, RecordError> {
        if line.len() > MAX_LINE {
            return Err(RecordError::LineTooLong);
        }
        if self.done {
            return Err(RecordError::AfterLast);
        }
        let mut buf = Vec::with_capacity(line.len() / 4 * 3 + 3);
        b64::decode_into(line, &mut buf).map_err(|_| RecordError::Malformed)?;
        let (index, last) = self.open_in_place(&mut buf)?;
        Ok(Record {
            buf: Bytes::from(buf),
            index,
            last,
        })
    }

    /// Opens the next binary record, `N ‖ C` without its length prefix
    /// (as [`super::framing::BinarySplitter`] cuts it), decrypting in place.
    pub(crate) fn open_binary(&mut self, mut raw: BytesMut) -> Result<Record, RecordError> {
        if self.done {
            return Err(RecordError::AfterLast);
        }
        let (index, last) = self.open_in_place(&mut raw)?;
        Ok(Record {
            buf: raw.freeze(),
            index,
            last,
        })
    }

    /// Checks and decrypts `N ‖ C` in place (the plaintext replaces the
    /// ciphertext); the record's index and whether it is the last one.
    fn open_in_place(&mut self, buf: &mut [u8]) -> Result<(u32, bool), RecordError> {
        if buf.len() < NONCE_LEN + TAG_LEN {
            return Err(RecordError::Malformed);
        }
        if buf.len() > NONCE_LEN + MAX_PLAINTEXT + TAG_LEN {
            return Err(RecordError::TooLarge);
        }
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(buf.get(..NONCE_LEN).ok_or(RecordError::Malformed)?);
        let r = u64::from_be_bytes(n[..8].try_into().map_err(|_| RecordError::Malformed)?);
        let i = u32::from_be_bytes(n[8..].try_into().map_err(|_| RecordError::Malformed)?);
        match self.r {
            Some(expected) if expected != r => return Err(RecordError::WrongRequest),
            _ => {}
        }
        if i != self.next {
            return Err(RecordError::OutOfOrder);
        }
        let tag_at = buf.len() - TAG_LEN;
        let tag = Tag::try_from(&buf[tag_at..]).map_err(|_| RecordError::Malformed)?;
        let body = &mut buf[NONCE_LEN..tag_at];
        // Try "more" first: every record but the last is one, so a long
        // message pays for the second attempt once. A failed attempt leaves
        // the buffer untouched (the tag is checked before decryption).
        let last = if self
            .key
            .0
            .decrypt_inout_detached(&Nonce::from(n), &self.aad_more, (&mut *body).into(), &tag)
            .is_ok()
        {
            false
        } else if self
            .key
            .0
            .decrypt_inout_detached(&Nonce::from(n), &self.aad_last, body.into(), &tag)
            .is_ok()
        {
            true
        } else {
            return Err(RecordError::Auth);
        };
        // A message that goes on past index u32::MAX would reuse a nonce; a
        // correct sender ends at u32::MAX with `last` (see `Sealer`).
        if i == u32::MAX && !last {
            return Err(RecordError::TooManyRecords);
        }
        self.r = Some(r);
        self.next = self.next.saturating_add(1);
        self.done = last;
        Ok((i, last))
    }

    /// Called at the end of the input: a message must have ended with `last`.
    pub(crate) fn finish(&self) -> Result<(), RecordError> {
        if self.done {
            Ok(())
        } else if self.next == 0 {
            Err(RecordError::Empty)
        } else {
            Err(RecordError::Truncated)
        }
    }
}

/// The position of the first CRLF in `hay`.
fn find_crlf(hay: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', hay.get(from..)?) {
        let nl = from + i;
        if nl > 0 && hay.get(nl - 1) == Some(&b'\r') {
            return Some(nl - 1);
        }
        from = nl + 1;
    }
    None
}

/// Cuts a byte stream into CRLF-terminated lines, refusing an overlong line
/// as soon as it is known to be overlong (before it is buffered whole).
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    buf: BytesMut,
    scanned: usize,
}

impl LineSplitter {
    /// An empty splitter.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds bytes from the stream.
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete line without its CRLF, `Ok(None)` if more input is needed.
    pub(crate) fn next_line(&mut self) -> Result<Option<Bytes>, RecordError> {
        // Resume the scan where the last call stopped (minus one byte, in case
        // a CR ended the previous chunk).
        let from = self.scanned.saturating_sub(1);
        let hay = self.buf.get(from..).unwrap_or(&[]);
        match find_crlf(hay) {
            Some(pos) => {
                let end = from + pos;
                if end > MAX_LINE {
                    return Err(RecordError::LineTooLong);
                }
                let line = self.buf.split_to(end + 2).freeze();
                self.scanned = 0;
                Ok(Some(line.slice(..end)))
            }
            None => {
                self.scanned = self.buf.len();
                if self.buf.len() > MAX_LINE + 1 {
                    return Err(RecordError::LineTooLong);
                }
                Ok(None)
            }
        }
    }

    /// Called at the end of the stream: leftover bytes mean a cut line.
    pub(crate) fn finish(&self) -> Result<(), RecordError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(RecordError::PartialLine)
        }
    }
}

/// Seals a whole message from its plaintexts (tests and small messages).
pub fn seal_message(
    key: &RecordKey,
    r: u64,
    op: &str,
    plaintexts: &[&[u8]],
) -> Result<Vec<u8>, RecordError> {
    super::framing::seal_message_framed(key, r, op, plaintexts, super::framing::Framing::Text)
}

/// Opens a whole message held in memory (tests and small messages).
pub fn open_message(
    key: &RecordKey,
    r: Option<u64>,
    op: &str,
    body: &[u8],
) -> Result<Vec<Vec<u8>>, RecordError> {
    super::framing::open_message_framed(key, r, op, body, super::framing::Framing::Text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encryption-only cipher is AES-256-GCM: the same records as
    /// `aes_gcm::Aes256Gcm`, and it opens what that seals.
    #[test]
    fn record_key_is_aes_256_gcm_and_small() {
        use aes_gcm::aead::Aead;
        let (k, n) = ([9u8; 32], [4u8; NONCE_LEN]);
        let full = aes_gcm::Aes256Gcm::new((&k).into());
        let ours = RecordKey::new(&k);
        for len in [0usize, 1, 15, 16, 17, 1000] {
            let pt = vec![0x5au8; len];
            let want = full.encrypt((&n).into(), pt.as_slice());
            let got = ours.0.encrypt((&n).into(), pt.as_slice());
            assert_eq!(got, want, "plaintext of {len} bytes");
            let sealed = want.unwrap_or_default();
            assert_eq!(
                ours.0.decrypt((&n).into(), sealed.as_slice()).ok(),
                Some(pt)
            );
        }
        // Two per session, 10,000 idle sessions in the memory target.
        assert!(std::mem::size_of::<RecordKey>() <= 400);
    }

    /// A dropped key schedule is wiped (the `zeroize` feature of
    /// `aes-gcm`): a session's keys, and a request's copy of them, are
    /// not left in freed memory when they are dropped in place.
    #[test]
    fn a_dropped_key_schedule_is_wiped() {
        use std::mem::MaybeUninit;
        let mut slot = MaybeUninit::<Cipher>::zeroed();
        // One pointer for every access, so none invalidates another.
        let p = slot.as_mut_ptr();
        let len = std::mem::size_of::<Cipher>();
        // SAFETY: `p` points to `slot`, which is large enough, aligned,
        // and lives to the end of the test; the cipher is written once,
        // dropped once in place, and not used after the drop; the reads
        // stay inside `slot` and see only bytes that were written (the
        // slot was zeroed, then the cipher written, then wiped).
        let (before, after) = unsafe {
            p.write(Cipher::new((&[0xa5u8; 32]).into()));
            let before = std::slice::from_raw_parts(p.cast::<u8>(), len).to_vec();
            p.drop_in_place();
            let after = std::slice::from_raw_parts(p.cast::<u8>(), len).to_vec();
            (before, after)
        };
        assert!(
            before.iter().any(|&b| b != 0),
            "a key schedule is not all zero"
        );
        assert!(
            after.iter().all(|&b| b == 0),
            "key material left after drop"
        );
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "seals 64 KiB records: hours under Miri; small records cover the same code"
    )]
    fn sealed_line_len_is_exact() {
        let key = RecordKey::new(&[3u8; 32]);
        let mut s = Sealer::new(key, 1, "get");
        for n in [0usize, 1, 2, 3, 4, 100, 65_535, MAX_PLAINTEXT] {
            let line = s.seal(&[&vec![7u8; n]], false).unwrap();
            assert_eq!(line.len(), sealed_line_len(n), "plaintext {n}");
        }
    }

    fn key(b: u8) -> RecordKey {
        RecordKey::new(&[b; 32])
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "seals 64 KiB records: hours under Miri; small records cover the same code"
    )]
    fn one_part_and_several_parts_seal_alike() {
        // The one-part path encrypts out of place, the others in place: the
        // same plaintext must give the same line either way, record after
        // record (a shorter record after a longer one shrinks the buffer).
        let (mut one, mut many) = (Sealer::new(key(5), 9, "put"), Sealer::new(key(5), 9, "put"));
        for n in [65_536usize, 10, 0, MAX_PLAINTEXT, 3] {
            let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let (head, tail) = data.split_at(n / 2);
            let a = one.seal(&[&data], false).unwrap();
            let b = many.seal(&[head, tail], false).unwrap();
            assert_eq!(a, b, "plaintext {n}");
        }
        // The same in the binary framing, sealed straight into a buffer
        // that already holds records.
        let (mut one, mut many) = (Sealer::new(key(5), 9, "put"), Sealer::new(key(5), 9, "put"));
        let (mut a, mut b) = (vec![1u8, 2], vec![1u8, 2]);
        for n in [65_536usize, 10, 0, MAX_PLAINTEXT, 3] {
            let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let (head, tail) = data.split_at(n / 2);
            one.seal_framed(&[&data], false, Framing::Binary, &mut a)
                .unwrap();
            many.seal_framed(&[head, tail], false, Framing::Binary, &mut b)
                .unwrap();
            assert_eq!(a, b, "plaintext {n}");
        }
        let mut c = vec![1u8, 2];
        assert_eq!(
            one.seal_framed(&[&[0u8; MAX_PLAINTEXT + 1]], true, Framing::Binary, &mut c),
            Err(RecordError::TooLarge)
        );
        assert_eq!(c, [1, 2], "a refused record leaves the buffer as it was");
        let mut o = Opener::new(key(5), Some(9), "put");
        let line = Sealer::new(key(5), 9, "put").seal(&[b"abc"], true).unwrap();
        let rec = o.open(&line[..line.len() - 2]).unwrap();
        assert_eq!(rec.plaintext(), b"abc");
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "seals 64 KiB records: hours under Miri; small records cover the same code"
    )]
    fn seal_open_round_trip() {
        let k = key(7);
        let parts: Vec<&[u8]> = vec![b"{}", b"", b"abc", &[0u8; MAX_PLAINTEXT]];
        let body = seal_message(&k, 42, "put", &parts).unwrap();
        let got = open_message(&k, None, "put", &body).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[2], b"abc");
        assert_eq!(got[3].len(), MAX_PLAINTEXT);
        assert!(body.split(|&b| b == b'\n').all(|l| l.len() <= MAX_LINE + 1));
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "seals 64 KiB records: hours under Miri; small records cover the same code"
    )]
    fn max_record_is_exactly_max_line() {
        let k = key(1);
        let mut s = Sealer::new(k, 1, "get");
        let line = s.seal(&[&[0u8; MAX_PLAINTEXT]], true).unwrap();
        assert_eq!(line.len(), MAX_LINE + 2);
        let mut s = Sealer::new(key(1), 1, "get");
        assert_eq!(
            s.seal(&[&[0u8; MAX_PLAINTEXT + 1]], true),
            Err(RecordError::TooLarge)
        );
    }

    #[test]
    fn wrong_op_key_or_r_fails() {
        let body = seal_message(&key(1), 5, "cmd", &[b"{}"]).unwrap();
        assert_eq!(
            open_message(&key(1), None, "get", &body),
            Err(RecordError::Auth)
        );
        assert_eq!(
            open_message(&key(2), None, "cmd", &body),
            Err(RecordError::Auth)
        );
        assert_eq!(
            open_message(&key(1), Some(6), "cmd", &body),
            Err(RecordError::WrongRequest)
        );
        assert!(open_message(&key(1), Some(5), "cmd", &body).is_ok());
    }

    #[test]
    fn truncation_reorder_and_after_last() {
        let k = key(3);
        let body = seal_message(&k, 1, "put", &[b"a", b"b", b"c"]).unwrap();
        let lines: Vec<&[u8]> = body.split_inclusive(|&b| b == b'\n').collect();
        let cut: Vec<u8> = lines[..2].concat();
        assert_eq!(
            open_message(&k, None, "put", &cut),
            Err(RecordError::Truncated)
        );
        let swapped: Vec<u8> = [lines[1], lines[0], lines[2]].concat();
        assert_eq!(
            open_message(&k, None, "put", &swapped),
            Err(RecordError::OutOfOrder)
        );
        let doubled: Vec<u8> = [&body[..], lines[2]].concat();
        assert_eq!(
            open_message(&k, None, "put", &doubled),
            Err(RecordError::AfterLast)
        );
        let partial = &body[..body.len() - 1];
        assert_eq!(
            open_message(&k, None, "put", partial),
            Err(RecordError::PartialLine)
        );
        assert_eq!(open_message(&k, None, "put", b""), Err(RecordError::Empty));
    }

    #[test]
    fn splitter_handles_crlf_split_across_chunks() {
        let mut s = LineSplitter::new();
        s.push(b"abc\r");
        assert_eq!(s.next_line().unwrap(), None);
        s.push(b"\nde");
        assert_eq!(s.next_line().unwrap().as_deref(), Some(&b"abc"[..]));
        assert_eq!(s.next_line().unwrap(), None);
        s.push(b"f\r\n");
        assert_eq!(s.next_line().unwrap().as_deref(), Some(&b"def"[..]));
        assert!(s.finish().is_ok());
    }

    #[test]
    fn splitter_splits_only_on_crlf() {
        let mut s = LineSplitter::new();
        s.push(b"a\nb\rc\r\n\r\n");
        assert_eq!(s.next_line().unwrap().as_deref(), Some(&b"a\nb\rc"[..]));
        assert_eq!(s.next_line().unwrap().as_deref(), Some(&b""[..]));
        assert_eq!(s.next_line().unwrap(), None);
    }

    #[test]
    fn splitter_refuses_overlong_lines_early() {
        let mut s = LineSplitter::new();
        s.push(&vec![b'A'; MAX_LINE + 2]);
        assert_eq!(s.next_line(), Err(RecordError::LineTooLong));
        let mut s = LineSplitter::new();
        let mut l = vec![b'A'; MAX_LINE + 1];
        l.extend_from_slice(b"\r\n");
        s.push(&l);
        assert_eq!(s.next_line(), Err(RecordError::LineTooLong));
        let mut s = LineSplitter::new();
        let mut l = vec![b'A'; MAX_LINE];
        l.extend_from_slice(b"\r\n");
        s.push(&l);
        assert_eq!(s.next_line().unwrap().map(|l| l.len()), Some(MAX_LINE));
    }

    /// Seals one record at index `i` (a sealer started there).
    fn sealed_at(i: u32, last: bool) -> Bytes {
        Sealer::new(key(4), 8, "get")
            .starting_at(i)
            .seal(&[b"x"], last)
            .unwrap()
    }

    fn crlf_less(line: &Bytes) -> &[u8] {
        &line[..line.len() - 2]
    }

    #[test]
    fn sealer_keeps_the_last_index_for_the_last_record() {
        let mut s = Sealer::new(key(4), 8, "get").starting_at(u32::MAX - 1);
        // u32::MAX - 1: an ordinary record.
        let line = s.seal(&[b"a"], false).unwrap();
        let n = b64::decode_bytes(crlf_less(&line)).unwrap();
        assert_eq!(n[8..12], (u32::MAX - 1).to_be_bytes());
        // u32::MAX: only `last`; refusing a data record leaves it usable.
        assert_eq!(s.seal(&[b"b"], false), Err(RecordError::TooManyRecords));
        let line = s.seal(&[b"{}"], true).unwrap();
        let n = b64::decode_bytes(crlf_less(&line)).unwrap();
        assert_eq!(n[8..12], u32::MAX.to_be_bytes());
        // Nothing after it: the index never wraps to 0.
        assert_eq!(s.seal(&[b"c"], false), Err(RecordError::AfterLast));
        assert_eq!(s.seal(&[b"c"], true), Err(RecordError::AfterLast));
    }

    #[test]
    fn opener_refuses_a_message_that_passes_the_last_index() {
        // u32::MAX - 1 then u32::MAX as `last`: a complete message.
        let mut o = Opener::new(key(4), Some(8), "get").starting_at(u32::MAX - 1);
        assert_eq!(
            o.open(crlf_less(&sealed_at(u32::MAX - 1, false)))
                .unwrap()
                .index,
            u32::MAX - 1
        );
        let rec = o.open(crlf_less(&sealed_at(u32::MAX, true))).unwrap();
        assert!(rec.last && rec.index == u32::MAX && o.finish().is_ok());
        // A record after it, even one that authenticates at index 0
        // (where a wrapping counter would have gone), is refused.
        assert_eq!(
            o.open(crlf_less(&sealed_at(0, false))).unwrap_err(),
            RecordError::AfterLast
        );
        // A (forged or buggy) message going on at u32::MAX without `last`.
        let mut o = Opener::new(key(4), Some(8), "get").starting_at(u32::MAX);
        assert_eq!(
            o.open(&sealed_at_unchecked(u32::MAX)).unwrap_err(),
            RecordError::TooManyRecords
        );
        assert!(o.finish().is_err());
    }

    /// A non-last record at `i` sealed by hand (the `Sealer` refuses it at
    /// u32::MAX), as a buggy or hostile sender would.
    fn sealed_at_unchecked(i: u32) -> Vec<u8> {
        let n = nonce(8, i);
        let mut body = b"\x01x".to_vec();
        let tag = key(4)
            .0
            .encrypt_inout_detached(&Nonce::from(n), &aad("get", false), (&mut body[..]).into())
            .unwrap();
        let mut raw = n.to_vec();
        raw.extend_from_slice(&body);
        raw.extend_from_slice(&tag);
        let mut out = String::new();
        b64::encode_into(&raw, &mut out);
        out.into_bytes()
    }

    #[test]
    fn peek_reads_r() {
        let body = seal_message(&key(1), 0x0102_0304_0506_0708, "cmd", &[b"{}"]).unwrap();
        assert_eq!(peek_request_number(&body), Ok(0x0102_0304_0506_0708));
        assert_eq!(peek_request_number(b"AAA"), Err(RecordError::Malformed));
        assert_eq!(
            peek_request_number(b"!!!!!!!!!!!!"),
            Err(RecordError::Malformed)
        );
    }
}
