//! The two framings of a sealed message (PROTOCOL.md §4, §4.1).
//!
//! Text: each record is `b64(N ‖ C) "\r\n"` (`application/x-remo`).
//! Binary: each record is `u32be(L) ‖ N ‖ C` with `28 ≤ L ≤ 65,565`
//! (`application/x-remo-bin`), which spares the base64 pass on each side
//! and a third of the bytes. Sealing is the same in both, so one plaintext
//! gives the same `N ‖ C` (see [`Sealer::seal_framed`]); only the cutting
//! of a byte stream into records differs: [`LineSplitter`] or
//! [`BinarySplitter`], behind the one [`RecordSplitter`].

use bytes::{Buf, BytesMut};

use super::record::{
    sealed_line_len, LineSplitter, Opener, Record, RecordError, RecordKey, Sealer, MAX_PLAINTEXT,
    NONCE_LEN, TAG_LEN,
};

/// Content type of a message in the text framing.
pub const TEXT_CONTENT_TYPE: &str = "application/x-remo";
/// Content type of a message in the binary framing.
pub const BINARY_CONTENT_TYPE: &str = "application/x-remo-bin";
/// Bytes of a binary record's length prefix `u32be(L)`.
pub(crate) const LENGTH_PREFIX: usize = 4;
/// Smallest `L`: a nonce and a tag (an empty plaintext).
pub(crate) const MIN_RECORD_LEN: usize = NONCE_LEN + TAG_LEN;
/// Largest `L`: a nonce, [`MAX_PLAINTEXT`] bytes and a tag (65,565).
pub(crate) const MAX_RECORD_LEN: usize = NONCE_LEN + MAX_PLAINTEXT + TAG_LEN;

/// The room a binary splitter takes when a record does not fit, once it
/// has cut one: four full records, so the copy into a new allocation
/// happens once per four. A message's first record gets only its own
/// room, so a body that stalls before one whole record holds no more.
const SPLIT_ROOM: usize = 4 * (LENGTH_PREFIX + MAX_RECORD_LEN);

/// How the records of one message are laid out on the wire. A request's
/// content type chooses it, and its response uses the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Framing {
    /// `b64(N ‖ C) "\r\n"` lines (§4); what every server accepts.
    #[default]
    Text,
    /// `u32be(L) ‖ N ‖ C` records (§4.1); only where `/info` offers it.
    Binary,
}

impl Framing {
    /// Both, in the order `/info` lists them.
    pub const ALL: [Framing; 2] = [Framing::Text, Framing::Binary];

    /// Its name in `/info`'s `framings`.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Framing::Text => "text",
            Framing::Binary => "binary",
        }
    }

    /// The framing named `name` in `/info`, if it is one we know.
    pub(crate) fn from_name(name: &str) -> Option<Framing> {
        Framing::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The `Content-Type` of a message in this framing.
    pub const fn content_type(self) -> &'static str {
        match self {
            Framing::Text => TEXT_CONTENT_TYPE,
            Framing::Binary => BINARY_CONTENT_TYPE,
        }
    }

    /// The framing a `Content-Type` value names: its media type (before
    /// any `;` parameter, compared ASCII case-insensitively) must be one
    /// of the two exactly — `application/x-remo-bin` does not start a
    /// text message just because it begins with `application/x-remo`.
    pub(crate) fn from_content_type(value: &[u8]) -> Option<Framing> {
        let media = value.split(|&b| b == b';').next().unwrap_or(&[]);
        let media = media.trim_ascii();
        Framing::ALL
            .into_iter()
            .find(|f| media.eq_ignore_ascii_case(f.content_type().as_bytes()))
    }

    /// Bytes on the wire of one record with `plaintext` bytes.
    pub fn sealed_len(self, plaintext: usize) -> usize {
        match self {
            Framing::Text => sealed_line_len(plaintext),
            Framing::Binary => LENGTH_PREFIX + NONCE_LEN + plaintext + TAG_LEN,
        }
    }
}

impl std::fmt::Display for Framing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Cuts a binary body into records (`N ‖ C`, length prefix removed). The
/// length is checked as soon as its 4 bytes are in, so an out-of-range `L`
/// is refused before any of its record is awaited or buffered; at most one
/// record (65,569 bytes) plus the last chunk is ever held.
#[derive(Debug, Default)]
pub struct BinarySplitter {
    buf: BytesMut,
    /// A record was cut: the buffer's allocation is shared with it.
    cut: bool,
}

impl BinarySplitter {
    /// An empty splitter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The length of the record at the head of the buffer, checked, or
    /// `Ok(None)` while fewer than 4 bytes are in.
    fn head_len(&self) -> Result<Option<usize>, RecordError> {
        let Some(prefix) = self.buf.get(..LENGTH_PREFIX) else {
            return Ok(None);
        };
        let mut l = [0u8; LENGTH_PREFIX];
        l.copy_from_slice(prefix);
        let l = u32::from_be_bytes(l);
        match usize::try_from(l) {
            Ok(n) if n < MIN_RECORD_LEN => Err(RecordError::LengthTooSmall(l)),
            Ok(n) if n <= MAX_RECORD_LEN => Ok(Some(n)),
            _ => Err(RecordError::LengthTooLarge(l)),
        }
    }

    /// The next complete record (`N ‖ C`, mutable so it can be decrypted
    /// in place), `Ok(None)` if more input is needed.
    pub fn next_record(&mut self) -> Result<Option<BytesMut>, RecordError> {
        let Some(len) = self.head_len()? else {
            return Ok(None);
        };
        if self.buf.len() < LENGTH_PREFIX + len {
            // Room for the whole record at once, not in doublings. The
            // records cut before share the allocation until they are used,
            // so growing it means a new one and a copy of what is in: take
            // room for a few records each time, not one (about 2.7 % of
            // remod's CPU on a put went to that copy).
            let need = LENGTH_PREFIX + len - self.buf.len();
            if self.buf.capacity() - self.buf.len() < need {
                self.buf
                    .reserve(if self.cut { need.max(SPLIT_ROOM) } else { need });
            }
            return Ok(None);
        }
        self.buf.advance(LENGTH_PREFIX);
        self.cut = true;
        Ok(Some(self.buf.split_to(len)))
    }

    /// Called at the end of the stream: leftover bytes are a cut record.
    pub(crate) fn finish(&self) -> Result<(), RecordError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(RecordError::PartialRecord)
        }
    }
}

/// One record cut from a body, still sealed.
#[derive(Debug)]
pub enum Framed {
    /// A text line without its CRLF.
    Line(bytes::Bytes),
    /// A binary record's `N ‖ C`.
    Binary(BytesMut),
}

impl Framed {
    /// Opens it with `opener`, whichever its framing.
    pub fn open(self, opener: &mut Opener) -> Result<Record, RecordError> {
        match self {
            Framed::Line(line) => opener.open(&line),
            Framed::Binary(raw) => opener.open_binary(raw),
        }
    }
}

/// Cuts a body in either framing into records.
#[derive(Debug)]
pub struct RecordSplitter(Splitter);

#[derive(Debug)]
enum Splitter {
    /// CRLF lines.
    Text(LineSplitter),
    /// Length-prefixed records.
    Binary(BinarySplitter),
}

impl RecordSplitter {
    /// An empty splitter for `framing`.
    pub fn new(framing: Framing) -> Self {
        RecordSplitter(match framing {
            Framing::Text => Splitter::Text(LineSplitter::new()),
            Framing::Binary => Splitter::Binary(BinarySplitter::new()),
        })
    }

    /// Adds bytes from the stream.
    pub fn push(&mut self, data: &[u8]) {
        match &mut self.0 {
            Splitter::Text(s) => s.push(data),
            Splitter::Binary(s) => s.push(data),
        }
    }

    /// The next complete record, `Ok(None)` if more input is needed.
    pub fn next_record(&mut self) -> Result<Option<Framed>, RecordError> {
        Ok(match &mut self.0 {
            Splitter::Text(s) => s.next_line()?.map(Framed::Line),
            Splitter::Binary(s) => s.next_record()?.map(Framed::Binary),
        })
    }

    /// Called at the end of the stream: leftover bytes are a cut record.
    pub(crate) fn finish(&self) -> Result<(), RecordError> {
        match &self.0 {
            Splitter::Text(s) => s.finish(),
            Splitter::Binary(s) => s.finish(),
        }
    }
}

/// Seals a whole message from its plaintexts in `framing` (tests and small
/// messages).
pub fn seal_message_framed(
    key: &RecordKey,
    r: u64,
    op: &str,
    plaintexts: &[&[u8]],
    framing: Framing,
) -> Result<Vec<u8>, RecordError> {
    let n = plaintexts.len();
    if n == 0 {
        return Err(RecordError::Empty);
    }
    let mut sealer = Sealer::new(key.clone(), r, op);
    let size = plaintexts.iter().map(|p| framing.sealed_len(p.len())).sum();
    let mut out = Vec::with_capacity(size);
    for (k, p) in plaintexts.iter().enumerate() {
        sealer.seal_framed(&[p], k + 1 == n, framing, &mut out)?;
    }
    Ok(out)
}

/// Opens a whole message held in memory in `framing` (tests and small
/// messages): every record in order, the last one `last`, nothing after it.
pub fn open_message_framed(
    key: &RecordKey,
    r: Option<u64>,
    op: &str,
    body: &[u8],
    framing: Framing,
) -> Result<Vec<Vec<u8>>, RecordError> {
    let mut split = RecordSplitter::new(framing);
    split.push(body);
    let mut opener = Opener::new(key.clone(), r, op);
    let mut out = Vec::new();
    while let Some(rec) = split.next_record()? {
        out.push(rec.open(&mut opener)?.plaintext().to_vec());
    }
    split.finish()?;
    opener.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::b64;

    fn key(b: u8) -> RecordKey {
        RecordKey::new(&[b; 32])
    }

    #[test]
    fn content_types_name_exactly_one_framing() {
        for (ct, f) in [
            (&b"application/x-remo"[..], Some(Framing::Text)),
            (b"application/x-remo-bin", Some(Framing::Binary)),
            (
                b"Application/X-Remo-Bin; charset=binary",
                Some(Framing::Binary),
            ),
            (b" application/x-remo ;q=1", Some(Framing::Text)),
            (b"application/x-remo-binary", None),
            (b"application/x-remo-bi", None),
            (b"application/octet-stream", None),
            (b"", None),
        ] {
            assert_eq!(Framing::from_content_type(ct), f, "{ct:?}");
        }
        for f in Framing::ALL {
            assert_eq!(
                Framing::from_content_type(f.content_type().as_bytes()),
                Some(f)
            );
            assert_eq!(Framing::from_name(f.name()), Some(f));
        }
        assert_eq!(Framing::from_name("Binary"), None);
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "seals 64 KiB records: hours under Miri; small records cover the same code"
    )]
    fn both_framings_carry_the_same_sealed_bytes() {
        let pts: Vec<Vec<u8>> = [0usize, 1, 100, 65_536, MAX_PLAINTEXT, 3]
            .iter()
            .map(|&n| (0..n).map(|i| (i % 253) as u8).collect())
            .collect();
        let refs: Vec<&[u8]> = pts.iter().map(Vec::as_slice).collect();
        let text = seal_message_framed(&key(2), 7, "put", &refs, Framing::Text).unwrap();
        let bin = seal_message_framed(&key(2), 7, "put", &refs, Framing::Binary).unwrap();
        // Re-frame the text message record by record: the same bytes.
        let mut reframed = Vec::new();
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let raw = b64::decode_bytes(&line[..line.len() - 1]).unwrap();
            reframed.extend_from_slice(&(raw.len() as u32).to_be_bytes());
            reframed.extend_from_slice(&raw);
        }
        assert_eq!(reframed, bin);
        let sizes: usize = pts
            .iter()
            .map(|p| Framing::Binary.sealed_len(p.len()))
            .sum();
        assert_eq!(bin.len(), sizes);
        let opened = open_message_framed(&key(2), Some(7), "put", &bin, Framing::Binary).unwrap();
        assert_eq!(opened, pts);
        // Each framing refuses the other's body.
        assert!(open_message_framed(&key(2), Some(7), "put", &bin, Framing::Text).is_err());
        assert_eq!(
            open_message_framed(&key(2), Some(7), "put", &text, Framing::Binary),
            Err(RecordError::LengthTooLarge(u32::from_be_bytes(
                text[..4].try_into().unwrap()
            )))
        );
    }

    #[test]
    fn lengths_out_of_range_are_refused_from_their_four_bytes() {
        for (l, err) in [
            (0u32, RecordError::LengthTooSmall(0)),
            (27, RecordError::LengthTooSmall(27)),
            (65_566, RecordError::LengthTooLarge(65_566)),
            (u32::MAX, RecordError::LengthTooLarge(u32::MAX)),
        ] {
            let mut s = BinarySplitter::new();
            // Three bytes are not a length yet.
            s.push(&l.to_be_bytes()[..3]);
            assert_eq!(s.next_record(), Ok(None));
            s.push(&l.to_be_bytes()[3..]);
            assert_eq!(s.next_record(), Err(err), "L={l}");
        }
        for l in [28u32, 65_565] {
            let mut s = BinarySplitter::new();
            s.push(&l.to_be_bytes());
            assert_eq!(s.next_record(), Ok(None), "L={l} is in range");
            s.push(&vec![0u8; l as usize - 1]);
            assert_eq!(s.next_record(), Ok(None));
            assert_eq!(s.finish(), Err(RecordError::PartialRecord));
            s.push(&[0]);
            assert_eq!(s.next_record().unwrap().map(|r| r.len()), Some(l as usize));
            assert_eq!(s.finish(), Ok(()));
        }
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "seals 64 KiB records: hours under Miri; small records cover the same code"
    )]
    fn records_split_across_chunks_of_any_size() {
        let k = key(4);
        let big = vec![9u8; MAX_PLAINTEXT];
        let pts: [&[u8]; 4] = [b"{}", b"", &big, b"end"];
        let body = seal_message_framed(&k, 3, "cmd", &pts, Framing::Binary).unwrap();
        for chunk in [1usize, 3, 4, 5, 27, 28, 4096, body.len()] {
            let mut s = RecordSplitter::new(Framing::Binary);
            let mut o = Opener::new(k.clone(), Some(3), "cmd");
            let mut got = Vec::new();
            for c in body.chunks(chunk) {
                s.push(c);
                while let Some(r) = s.next_record().unwrap() {
                    got.push(r.open(&mut o).unwrap().into_bytes().to_vec());
                }
            }
            assert!(s.finish().is_ok() && o.finish().is_ok(), "chunk {chunk}");
            assert_eq!(got, pts.map(<[u8]>::to_vec), "chunk {chunk}");
        }
    }

    #[test]
    fn cut_missing_last_and_trailing_records_are_refused() {
        let k = key(6);
        let body = seal_message_framed(&k, 2, "put", &[b"a", b"b", b"c"], Framing::Binary).unwrap();
        let open = |b: &[u8]| open_message_framed(&k, None, "put", b, Framing::Binary);
        assert_eq!(
            open(&body[..body.len() - 1]),
            Err(RecordError::PartialRecord)
        );
        assert_eq!(open(&body[..2]), Err(RecordError::PartialRecord));
        let second_end = 2 * Framing::Binary.sealed_len(1);
        assert_eq!(open(&body[..second_end]), Err(RecordError::Truncated));
        let mut trailing = body.clone();
        trailing.extend_from_slice(&body[second_end..]);
        assert_eq!(open(&trailing), Err(RecordError::AfterLast));
        let mut junk = body.clone();
        junk.push(0);
        assert_eq!(open(&junk), Err(RecordError::PartialRecord));
        assert_eq!(open(b""), Err(RecordError::Empty));
        // A record whose nonce or tag is altered does not authenticate.
        let mut bad = body.clone();
        bad[LENGTH_PREFIX + 3] ^= 1;
        assert_eq!(open(&bad), Err(RecordError::Auth));
        let mut bad = body;
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert_eq!(open(&bad), Err(RecordError::Auth));
    }

    /// The splitter's answer does not depend on how the body is chunked,
    /// and nothing a peer sends makes it panic.
    fn split_all(body: &[u8], chunk: usize) -> Result<Vec<Vec<u8>>, RecordError> {
        let mut s = BinarySplitter::new();
        let mut out = Vec::new();
        for c in body.chunks(chunk.max(1)) {
            s.push(c);
            while let Some(r) = s.next_record()? {
                out.push(r.to_vec());
            }
        }
        s.finish()?;
        Ok(out)
    }

    proptest::proptest! {
        #[test]
        fn any_body_any_chunking(
            mut body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            lens in proptest::collection::vec(0u32..70, 0..4),
            chunk in 1usize..64,
        ) {
            // Mostly in-range lengths in front, so records do get cut.
            let mut framed = Vec::new();
            for l in lens {
                framed.extend_from_slice(&(l + 20).to_be_bytes());
                framed.extend(body.iter().copied().cycle().take(l as usize + 20));
            }
            framed.append(&mut body);
            let whole = split_all(&framed, framed.len());
            proptest::prop_assert_eq!(split_all(&framed, chunk), whole.clone());
            let _ = open_message_framed(&key(1), None, "cmd", &framed, Framing::Binary);
        }
    }
}
