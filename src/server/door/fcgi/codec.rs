//! FastCGI record codec for the responder role.
//!
//! Total on purpose: every function here accepts any bytes a peer may send
//! and answers with a value or a [`CodecError`], never a panic, so the codec
//! can be fuzzed and a malformed stream can only close its own connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::server::core::request::Params;

/// The only protocol version in existence.
pub(crate) const FCGI_VERSION_1: u8 = 1;
/// Size of every record header.
pub(crate) const HEADER_LEN: usize = 8;
/// Largest content a single record can carry (16-bit length field).
pub(crate) const MAX_CONTENT_LEN: usize = 65535;

/// Record type: start of a request (web server → app).
pub(crate) const FCGI_BEGIN_REQUEST: u8 = 1;
/// Record type: the web server gives up on a request.
pub(crate) const FCGI_ABORT_REQUEST: u8 = 2;
/// Record type: end of a request (app → web server).
pub const FCGI_END_REQUEST: u8 = 3;
/// Record type: name-value parameter stream.
pub const FCGI_PARAMS: u8 = 4;
/// Record type: request body stream.
pub const FCGI_STDIN: u8 = 5;
/// Record type: response stream.
pub const FCGI_STDOUT: u8 = 6;
/// Record type: filter-role data stream (unused by responders).
#[cfg(test)]
pub(crate) const FCGI_DATA: u8 = 8;
/// Record type: management query of application variables.
pub const FCGI_GET_VALUES: u8 = 9;
/// Record type: answer to [`FCGI_GET_VALUES`].
pub const FCGI_GET_VALUES_RESULT: u8 = 10;
/// Record type: answer to a management record of an unknown type.
pub const FCGI_UNKNOWN_TYPE: u8 = 11;

/// Role: the only role this server plays.
pub const FCGI_RESPONDER: u16 = 1;
/// BEGIN_REQUEST flag: keep the connection open after the request.
pub(crate) const FCGI_KEEP_CONN: u8 = 1;

/// END_REQUEST protocol status: normal end.
pub const FCGI_REQUEST_COMPLETE: u8 = 0;
/// END_REQUEST protocol status: a second concurrent request was refused.
pub const FCGI_CANT_MPX_CONN: u8 = 1;
/// END_REQUEST protocol status: the role is not one this app plays.
pub const FCGI_UNKNOWN_ROLE: u8 = 3;

/// Default cap on the reassembled PARAMS stream of one request.
pub(crate) const DEFAULT_MAX_PARAMS_BYTES: usize = 1 << 20;

/// Why a byte stream is not valid FastCGI; each closes only its connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The header's version byte is not 1 (garbage or another protocol).
    #[error("unsupported FastCGI version {0}")]
    BadVersion(u8),
    /// A record's content is too short for its type.
    #[error("record of type {rtype} too short ({len} bytes)")]
    ShortRecord {
        /// Record type.
        rtype: u8,
        /// Content length received.
        len: usize,
    },
    /// A management record used a non-zero request id or vice versa.
    #[error("record of type {rtype} with unexpected request id {id}")]
    BadRequestId {
        /// Record type.
        rtype: u8,
        /// The offending id.
        id: u16,
    },
    /// The PARAMS stream grew beyond the configured cap.
    #[error("params exceed {limit} bytes")]
    ParamsTooLarge {
        /// The cap.
        limit: usize,
    },
    /// A name-value pair is cut short.
    #[error("truncated name-value pair")]
    TruncatedPair,
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Record type.
    pub rtype: u8,
    /// Request id (0 for management records).
    pub request_id: u16,
    /// Content bytes that follow.
    pub content_len: u16,
    /// Padding bytes after the content.
    pub padding_len: u8,
}

impl Header {
    /// Parses the first [`HEADER_LEN`] bytes; `None` if fewer are available.
    pub(crate) fn parse(buf: &[u8]) -> Result<Option<Header>, CodecError> {
        let Some(h) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let mut h = h;
        let version = h.get_u8();
        if version != FCGI_VERSION_1 {
            return Err(CodecError::BadVersion(version));
        }
        let rtype = h.get_u8();
        let request_id = h.get_u16();
        let content_len = h.get_u16();
        let padding_len = h.get_u8();
        Ok(Some(Header {
            rtype,
            request_id,
            content_len,
            padding_len,
        }))
    }

    /// Bytes of the whole record, header included.
    pub(crate) fn record_len(&self) -> usize {
        HEADER_LEN + usize::from(self.content_len) + usize::from(self.padding_len)
    }
}

/// One raw record with its content (padding removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Record type.
    pub rtype: u8,
    /// Request id.
    pub request_id: u16,
    /// Content, shared with the read buffer (no copy).
    pub content: Bytes,
}

/// Takes one complete record off the front of `buf`, if one is there.
///
/// Leaves `buf` untouched when more bytes are needed, so it can be called
/// after every read; a record is at most 65,535 + 255 + 8 bytes, which bounds
/// the read buffer.
pub fn decode_record(buf: &mut BytesMut) -> Result<Option<Record>, CodecError> {
    let Some(h) = Header::parse(buf)? else {
        return Ok(None);
    };
    if buf.len() < h.record_len() {
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    let content = buf.split_to(usize::from(h.content_len)).freeze();
    buf.advance(usize::from(h.padding_len));
    Ok(Some(Record {
        rtype: h.rtype,
        request_id: h.request_id,
        content,
    }))
}

/// The content of the next record if it is already complete in `buf` and is
/// a non-empty STDIN record of request `id`; otherwise `None`, leaving `buf`
/// untouched (an end-of-body marker or any other record goes the normal way
/// through [`decode_record`]). Lets the reader pass every body record it
/// already holds to the handler at once.
pub(crate) fn take_stdin(buf: &mut BytesMut, id: u16) -> Result<Option<Bytes>, CodecError> {
    match Header::parse(buf)? {
        Some(h)
            if h.rtype == FCGI_STDIN
                && h.request_id == id
                && h.content_len > 0
                && buf.len() >= h.record_len() =>
        {
            Ok(decode_record(buf)?.map(|r| r.content))
        }
        _ => Ok(None),
    }
}

/// A record as the responder understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    /// Start of a request.
    BeginRequest {
        /// Request id.
        id: u16,
        /// Requested role (only [`FCGI_RESPONDER`] is served).
        role: u16,
        /// Whether the web server wants the connection kept open.
        keep_conn: bool,
    },
    /// The web server abandons a request.
    AbortRequest {
        /// Request id.
        id: u16,
    },
    /// A piece of the PARAMS stream; empty marks its end.
    Params {
        /// Request id.
        id: u16,
        /// Raw bytes of the name-value stream.
        data: Bytes,
    },
    /// A piece of the body; empty marks its end.
    Stdin {
        /// Request id.
        id: u16,
        /// Body bytes.
        data: Bytes,
    },
    /// A management query for application variables.
    GetValues {
        /// Names queried (values are empty by spec and ignored).
        names: Vec<Vec<u8>>,
    },
    /// A record type the responder does not accept; answered with UNKNOWN_TYPE.
    Unknown {
        /// The type byte.
        rtype: u8,
        /// Its request id.
        id: u16,
    },
}

impl Message {
    /// Interprets a raw record.
    pub(crate) fn from_record(rec: Record) -> Result<Message, CodecError> {
        let id = rec.request_id;
        let app_record = |rtype: u8| {
            if id == 0 {
                Err(CodecError::BadRequestId { rtype, id })
            } else {
                Ok(())
            }
        };
        match rec.rtype {
            FCGI_BEGIN_REQUEST => {
                app_record(rec.rtype)?;
                let mut c = rec.content.as_ref();
                if c.len() < 8 {
                    return Err(CodecError::ShortRecord {
                        rtype: rec.rtype,
                        len: c.len(),
                    });
                }
                let role = c.get_u16();
                let flags = c.get_u8();
                Ok(Message::BeginRequest {
                    id,
                    role,
                    keep_conn: flags & FCGI_KEEP_CONN != 0,
                })
            }
            FCGI_ABORT_REQUEST => {
                app_record(rec.rtype)?;
                Ok(Message::AbortRequest { id })
            }
            FCGI_PARAMS => {
                app_record(rec.rtype)?;
                Ok(Message::Params {
                    id,
                    data: rec.content,
                })
            }
            FCGI_STDIN => {
                app_record(rec.rtype)?;
                Ok(Message::Stdin {
                    id,
                    data: rec.content,
                })
            }
            FCGI_GET_VALUES => {
                if id != 0 {
                    return Err(CodecError::BadRequestId {
                        rtype: rec.rtype,
                        id,
                    });
                }
                let names = decode_pairs(&rec.content)?
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect();
                Ok(Message::GetValues { names })
            }
            rtype => Ok(Message::Unknown { rtype, id }),
        }
    }
}

/// Reads one FastCGI length (1 byte if < 128, else 4 bytes, top bit masked).
fn read_len(buf: &mut &[u8]) -> Result<usize, CodecError> {
    let first = *buf.first().ok_or(CodecError::TruncatedPair)?;
    if first & 0x80 == 0 {
        buf.advance(1);
        return Ok(usize::from(first));
    }
    if buf.len() < 4 {
        return Err(CodecError::TruncatedPair);
    }
    let n = buf.get_u32() & 0x7fff_ffff;
    usize::try_from(n).map_err(|_| CodecError::TruncatedPair)
}

/// Takes `n` bytes off the front of `buf`.
fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], CodecError> {
    if buf.len() < n {
        return Err(CodecError::TruncatedPair);
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

/// One name-value pair as raw bytes (FastCGI never promises UTF-8).
pub(crate) type Pair = (Vec<u8>, Vec<u8>);

/// Decodes a complete name-value stream into pairs of raw bytes.
pub fn decode_pairs(mut data: &[u8]) -> Result<Vec<Pair>, CodecError> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let nlen = read_len(&mut data)?;
        let vlen = read_len(&mut data)?;
        let name = take(&mut data, nlen)?.to_vec();
        let value = take(&mut data, vlen)?.to_vec();
        out.push((name, value));
    }
    Ok(out)
}

/// Reassembles a PARAMS stream split over several records, with a size cap,
/// because pairs may straddle record boundaries.
#[derive(Debug)]
pub(crate) struct ParamsAssembler {
    buf: Vec<u8>,
    limit: usize,
}

impl ParamsAssembler {
    /// A new assembler refusing streams longer than `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        ParamsAssembler {
            buf: Vec::new(),
            limit,
        }
    }

    /// Appends one non-empty PARAMS record.
    pub(crate) fn push(&mut self, data: &[u8]) -> Result<(), CodecError> {
        if self.buf.len().saturating_add(data.len()) > self.limit {
            return Err(CodecError::ParamsTooLarge { limit: self.limit });
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Decodes the whole stream once the empty PARAMS record has arrived.
    pub(crate) fn finish(self) -> Result<Params, CodecError> {
        let mut params = Params::new();
        for (n, v) in decode_pairs(&self.buf)? {
            params.push(n, v);
        }
        Ok(params)
    }
}

/// Appends one FastCGI length in the shortest form.
fn put_len(out: &mut BytesMut, n: usize) {
    if n < 0x80 {
        // n < 128 fits a byte.
        out.put_u8(n as u8);
    } else {
        // Lengths above 2^31 - 1 cannot be represented; callers never produce
        // them (params are capped far below). A release build saturates
        // rather than panic.
        debug_assert!(n <= 0x7fff_ffff, "name-value length {n}");
        let n = u32::try_from(n).unwrap_or(u32::MAX).min(0x7fff_ffff);
        out.put_u32(n | 0x8000_0000);
    }
}

/// Encodes name-value pairs as a FastCGI name-value stream.
pub fn encode_pairs<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> BytesMut {
    let mut out = BytesMut::new();
    for (n, v) in pairs {
        put_len(&mut out, n.len());
        put_len(&mut out, v.len());
        out.extend_from_slice(n);
        out.extend_from_slice(v);
    }
    out
}

/// Appends one record, padded to a multiple of 8. The content must fit one
/// record (≤ 65,535 bytes): streams go through [`encode_stream`], and every
/// other record is small. More is an encoder bug: a debug build stops on
/// it, a release build cuts the content rather than panic.
fn put_record(out: &mut BytesMut, rtype: u8, id: u16, content: &[u8]) {
    debug_assert!(
        content.len() <= MAX_CONTENT_LEN,
        "record of type {rtype} with {} bytes of content",
        content.len()
    );
    let len = u16::try_from(content.len()).unwrap_or(u16::MAX);
    let content = content.get(..usize::from(len)).unwrap_or(content);
    // `len % 8` is below 8, so the cast is exact.
    let pad = (8 - (len % 8) as u8) % 8;
    out.reserve(HEADER_LEN + content.len() + usize::from(pad));
    out.put_u8(FCGI_VERSION_1);
    out.put_u8(rtype);
    out.put_u16(id);
    out.put_u16(len);
    out.put_u8(pad);
    out.put_u8(0);
    out.extend_from_slice(content);
    out.put_bytes(0, usize::from(pad));
}

/// Appends a stream (STDOUT, STDIN, PARAMS…) split into ≤ 65,535-byte
/// records; empty data writes nothing (use [`encode_stream_end`] for that).
pub fn encode_stream(out: &mut BytesMut, rtype: u8, id: u16, data: &[u8]) {
    for piece in data.chunks(MAX_CONTENT_LEN) {
        put_record(out, rtype, id, piece);
    }
}

/// Appends the empty record that ends a stream.
pub fn encode_stream_end(out: &mut BytesMut, rtype: u8, id: u16) {
    put_record(out, rtype, id, &[]);
}

/// Zeros for the padding of records sent as pieces.
static PADDING: [u8; 7] = [0; 7];

/// STDOUT records carrying `data`, as pieces for one vectored write: each
/// record's header (and padding) around a slice of `data`, which is not
/// copied. The same bytes as [`encode_stdout`]; copying every byte of a
/// download into records was about 4 % of remod's CPU on a get.
pub(crate) fn stdout_pieces(id: u16, data: &Bytes, pieces: &mut Vec<Bytes>) {
    let records = data.len().div_ceil(MAX_CONTENT_LEN);
    // Header, data and padding: at most three pieces a record.
    pieces.reserve(3 * records);
    let mut heads = BytesMut::with_capacity(records * HEADER_LEN);
    let mut rest = data.clone();
    while !rest.is_empty() {
        let piece = rest.split_to(rest.len().min(MAX_CONTENT_LEN));
        let len = u16::try_from(piece.len()).unwrap_or(u16::MAX);
        // `len % 8` is below 8, so the cast is exact.
        let pad = (8 - (len % 8) as u8) % 8;
        heads.put_u8(FCGI_VERSION_1);
        heads.put_u8(FCGI_STDOUT);
        heads.put_u16(id);
        heads.put_u16(len);
        heads.put_u8(pad);
        heads.put_u8(0);
        pieces.push(heads.split().freeze());
        pieces.push(piece);
        if let Some(zeros) = PADDING.get(..usize::from(pad)).filter(|z| !z.is_empty()) {
            pieces.push(Bytes::from_static(zeros));
        }
    }
}

/// Appends STDOUT records carrying `data`.
pub(crate) fn encode_stdout(out: &mut BytesMut, id: u16, data: &[u8]) {
    encode_stream(out, FCGI_STDOUT, id, data);
}

/// Appends an END_REQUEST record.
pub(crate) fn encode_end_request(
    out: &mut BytesMut,
    id: u16,
    app_status: u32,
    protocol_status: u8,
) {
    let mut c = [0u8; 8];
    c[..4].copy_from_slice(&app_status.to_be_bytes());
    c[4] = protocol_status;
    put_record(out, FCGI_END_REQUEST, id, &c);
}

/// Appends an UNKNOWN_TYPE record answering a record of type `rtype`.
pub(crate) fn encode_unknown_type(out: &mut BytesMut, rtype: u8) {
    let mut c = [0u8; 8];
    c[0] = rtype;
    put_record(out, FCGI_UNKNOWN_TYPE, 0, &c);
}

/// Appends a GET_VALUES_RESULT answering the queried names this app knows.
pub(crate) fn encode_get_values_result(out: &mut BytesMut, names: &[Vec<u8>], max_conns: u32) {
    let max = max_conns.to_string();
    let mut pairs: Vec<(&[u8], &[u8])> = Vec::new();
    for n in names {
        let v: &[u8] = match n.as_slice() {
            b"FCGI_MAX_CONNS" | b"FCGI_MAX_REQS" => max.as_bytes(),
            b"FCGI_MPXS_CONNS" => b"0",
            _ => continue,
        };
        // Each name once, however often the query repeats it.
        if !pairs.iter().any(|(known, _)| *known == n.as_slice()) {
            pairs.push((n.as_slice(), v));
        }
    }
    let content = encode_pairs(pairs);
    // At most three known names: far below one record.
    put_record(out, FCGI_GET_VALUES_RESULT, 0, &content);
}

/// Appends a BEGIN_REQUEST record (client side: tests and tools).
pub fn encode_begin_request(out: &mut BytesMut, id: u16, role: u16, keep_conn: bool) {
    let mut c = [0u8; 8];
    c[..2].copy_from_slice(&role.to_be_bytes());
    c[2] = if keep_conn { FCGI_KEEP_CONN } else { 0 };
    put_record(out, FCGI_BEGIN_REQUEST, id, &c);
}

/// Appends a complete PARAMS stream for `params` (client side: tests and tools).
pub fn encode_params(out: &mut BytesMut, id: u16, params: &Params) {
    let stream = encode_pairs(params.iter());
    encode_stream(out, FCGI_PARAMS, id, &stream);
    encode_stream_end(out, FCGI_PARAMS, id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(mut buf: BytesMut) -> Result<Vec<Message>, CodecError> {
        let mut out = Vec::new();
        while let Some(r) = decode_record(&mut buf)? {
            out.push(Message::from_record(r)?);
        }
        Ok(out)
    }

    /// The pieces of a vectored write are the bytes the copying encoder
    /// writes, at every length around a record's and the padding's edges,
    /// and they point into the data instead of copying it.
    #[test]
    fn stdout_pieces_are_the_encoded_records_without_a_copy() {
        for len in [
            0, 1, 7, 8, 9, 65_534, 65_535, 65_536, 65_543, 131_070, 262_148,
        ] {
            let data = Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
            let mut pieces = Vec::new();
            stdout_pieces(3, &data, &mut pieces);
            let joined: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
            let mut want = BytesMut::new();
            encode_stdout(&mut want, 3, &data);
            assert_eq!(joined, &want[..], "{len} bytes");
            let range = data.as_ptr_range();
            let inside = pieces
                .iter()
                .filter(|p| range.contains(&p.as_ptr()))
                .map(|p| p.len())
                .sum::<usize>();
            assert_eq!(
                inside, len,
                "{len} bytes: data pieces are slices of the data"
            );
        }
    }

    #[test]
    fn begin_request_roundtrip() {
        let mut b = BytesMut::new();
        encode_begin_request(&mut b, 7, FCGI_RESPONDER, true);
        assert_eq!(b.len(), 16);
        let m = decode_all(b).unwrap();
        assert_eq!(
            m,
            vec![Message::BeginRequest {
                id: 7,
                role: 1,
                keep_conn: true
            }]
        );
    }

    #[test]
    fn take_stdin_takes_only_complete_body_records_of_the_request() {
        let mut buf = BytesMut::new();
        encode_stream(&mut buf, FCGI_STDIN, 3, b"abc");
        encode_stream(&mut buf, FCGI_STDIN, 4, b"other");
        assert_eq!(
            take_stdin(&mut buf, 3).unwrap(),
            Some(Bytes::from_static(b"abc"))
        );
        // Another request's record stays for decode_record.
        assert_eq!(take_stdin(&mut buf, 3).unwrap(), None);
        assert!(matches!(decode_record(&mut buf), Ok(Some(r)) if r.request_id == 4));
        // The end-of-body marker and a partial record stay too.
        encode_stream_end(&mut buf, FCGI_STDIN, 3);
        assert_eq!(take_stdin(&mut buf, 3).unwrap(), None);
        assert_eq!(buf.len(), HEADER_LEN);
        let mut part = BytesMut::new();
        encode_stream(&mut part, FCGI_STDIN, 3, b"xyz");
        let mut cut = BytesMut::from(&part[..part.len() - 1]);
        assert_eq!(take_stdin(&mut cut, 3).unwrap(), None);
        assert_eq!(cut.len(), part.len() - 1);
        assert!(take_stdin(&mut BytesMut::from(&[9u8; 8][..]), 3).is_err());
    }

    #[test]
    fn partial_record_waits() {
        let mut b = BytesMut::new();
        encode_stdout(&mut b, 1, b"hello");
        let full = b.clone();
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full[..cut]);
            assert_eq!(decode_record(&mut part).unwrap(), None);
            assert_eq!(part.len(), cut);
        }
    }

    #[test]
    fn bad_version() {
        let mut b = BytesMut::from(&[2u8, 1, 0, 1, 0, 0, 0, 0][..]);
        assert_eq!(decode_record(&mut b), Err(CodecError::BadVersion(2)));
    }

    #[test]
    fn short_begin_request() {
        let mut b = BytesMut::new();
        put_record(&mut b, FCGI_BEGIN_REQUEST, 1, &[0, 1]);
        assert!(matches!(decode_all(b), Err(CodecError::ShortRecord { .. })));
    }

    #[test]
    fn stdout_split_and_padded() {
        let mut b = BytesMut::new();
        let data = vec![0xabu8; 70000];
        encode_stdout(&mut b, 3, &data);
        let mut got = Vec::new();
        let mut n = 0;
        while let Some(r) = decode_record(&mut b).unwrap() {
            assert_eq!(r.rtype, FCGI_STDOUT);
            assert!(r.content.len() <= MAX_CONTENT_LEN);
            got.extend_from_slice(&r.content);
            n += 1;
        }
        assert_eq!(n, 2);
        assert_eq!(got, data);
        assert!(b.is_empty());
    }

    #[test]
    fn long_lengths_and_binary_values() {
        let mut p = Params::new();
        p.push(b"HTTP_X_BIN".to_vec(), vec![0xff, 0x00, 0x80]);
        p.push(vec![b'N'; 200], vec![b'v'; 100_000]);
        let mut b = BytesMut::new();
        encode_params(&mut b, 1, &p);
        let mut asm = ParamsAssembler::new(DEFAULT_MAX_PARAMS_BYTES);
        while let Some(r) = decode_record(&mut b).unwrap() {
            match Message::from_record(r).unwrap() {
                Message::Params { data, .. } if !data.is_empty() => asm.push(&data).unwrap(),
                Message::Params { .. } => break,
                m => panic!("{m:?}"),
            }
        }
        let q = asm.finish().unwrap();
        assert_eq!(q.get("HTTP_X_BIN"), Some(&[0xff, 0x00, 0x80][..]));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn params_cap() {
        let mut asm = ParamsAssembler::new(10);
        asm.push(&[0; 8]).unwrap();
        assert_eq!(
            asm.push(&[0; 3]),
            Err(CodecError::ParamsTooLarge { limit: 10 })
        );
    }

    #[test]
    fn truncated_pairs() {
        assert_eq!(decode_pairs(&[5, 1, b'a']), Err(CodecError::TruncatedPair));
        assert_eq!(decode_pairs(&[0x80, 0]), Err(CodecError::TruncatedPair));
        assert_eq!(
            decode_pairs(&[0xff, 0xff, 0xff, 0xff, 0]),
            Err(CodecError::TruncatedPair)
        );
    }

    #[test]
    fn get_values_and_unknown() {
        let mut b = BytesMut::new();
        let q = encode_pairs([
            (&b"FCGI_MPXS_CONNS"[..], &b""[..]),
            (&b"FCGI_MAX_CONNS"[..], &b""[..]),
            (&b"OTHER"[..], &b""[..]),
        ]);
        put_record(&mut b, FCGI_GET_VALUES, 0, &q);
        put_record(&mut b, 42, 0, b"");
        let m = decode_all(b).unwrap();
        let Message::GetValues { names } = &m[0] else {
            panic!()
        };
        assert_eq!(m[1], Message::Unknown { rtype: 42, id: 0 });
        let mut out = BytesMut::new();
        encode_get_values_result(&mut out, names, 50);
        let r = decode_record(&mut out).unwrap().unwrap();
        assert_eq!(r.rtype, FCGI_GET_VALUES_RESULT);
        let pairs = decode_pairs(&r.content).unwrap();
        assert_eq!(
            pairs,
            vec![
                (b"FCGI_MPXS_CONNS".to_vec(), b"0".to_vec()),
                (b"FCGI_MAX_CONNS".to_vec(), b"50".to_vec())
            ]
        );
        let mut u = BytesMut::new();
        encode_unknown_type(&mut u, 42);
        assert_eq!(&u[..], &[1, 11, 0, 0, 0, 8, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0]);
    }

    /// A query may repeat a name as often as one record allows; the answer
    /// names it once (repeating it overflowed the answer's record, which was
    /// cut into an undecodable one).
    #[test]
    fn get_values_answers_a_repeated_name_once() {
        let names: Vec<Vec<u8>> = (0..3600)
            .map(|i| {
                if i % 2 == 0 {
                    b"FCGI_MAX_CONNS".to_vec()
                } else {
                    b"FCGI_MPXS_CONNS".to_vec()
                }
            })
            .collect();
        let q = encode_pairs(names.iter().map(|n| (n.as_slice(), &b""[..])));
        assert!(q.len() <= MAX_CONTENT_LEN);
        let mut out = BytesMut::new();
        encode_get_values_result(&mut out, &names, 4096);
        let r = decode_record(&mut out).unwrap().unwrap();
        assert!(out.is_empty(), "one record");
        assert_eq!(
            decode_pairs(&r.content).unwrap(),
            vec![
                (b"FCGI_MAX_CONNS".to_vec(), b"4096".to_vec()),
                (b"FCGI_MPXS_CONNS".to_vec(), b"0".to_vec())
            ]
        );
    }

    #[test]
    fn end_request_layout() {
        let mut b = BytesMut::new();
        encode_end_request(&mut b, 0x0102, 0x0a0b0c0d, FCGI_CANT_MPX_CONN);
        assert_eq!(
            &b[..],
            &[1, 3, 1, 2, 0, 8, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d, 1, 0, 0, 0]
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut buf = BytesMut::from(&data[..]);
            let mut asm = ParamsAssembler::new(512);
            while let Ok(Some(r)) = decode_record(&mut buf) {
                if let Ok(Message::Params { data, .. }) = Message::from_record(r) {
                    if asm.push(&data).is_err() {
                        break;
                    }
                }
            }
            let _ = asm.finish();
            let _ = decode_pairs(&data);
        }

        #[test]
        fn random_records_never_panic(
            recs in proptest::collection::vec((any::<u8>(), any::<u16>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..20)
        ) {
            let mut buf = BytesMut::new();
            for (t, id, c) in &recs {
                put_record(&mut buf, *t, *id, c);
            }
            let mut n = 0;
            while let Some(r) = decode_record(&mut buf).unwrap() {
                let _ = Message::from_record(r);
                n += 1;
            }
            prop_assert_eq!(n, recs.len());
        }

        #[test]
        fn params_roundtrip(
            pairs in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..300), proptest::collection::vec(any::<u8>(), 0..300)),
                0..40),
            split in 1usize..500,
        ) {
            let mut p = Params::new();
            for (n, v) in &pairs {
                p.push(n.clone(), v.clone());
            }
            let stream = encode_pairs(p.iter());
            // Split the stream at arbitrary points, as a web server may.
            let mut buf = BytesMut::new();
            for piece in stream.chunks(split) {
                put_record(&mut buf, FCGI_PARAMS, 9, piece);
            }
            encode_stream_end(&mut buf, FCGI_PARAMS, 9);
            let mut asm = ParamsAssembler::new(DEFAULT_MAX_PARAMS_BYTES);
            loop {
                let r = decode_record(&mut buf).unwrap().unwrap();
                match Message::from_record(r).unwrap() {
                    Message::Params { data, id: 9 } if !data.is_empty() => asm.push(&data).unwrap(),
                    Message::Params { id: 9, .. } => break,
                    m => panic!("{m:?}"),
                }
            }
            let q = asm.finish().unwrap();
            let got: Vec<_> = q.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
            prop_assert_eq!(got, pairs);
        }
    }
}
