//! Strict base64url without padding (PROTOCOL.md §1).
//!
//! The wire format allows exactly one spelling of every byte string, so the
//! decoder rejects padding, characters outside the URL-safe alphabet and
//! non-zero trailing bits instead of quietly repairing them.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Why a b64 string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum B64Error {
    /// A character outside `A-Z a-z 0-9 - _`, padding, or a bad length.
    #[error("invalid base64url (no padding, URL-safe alphabet only)")]
    Invalid,
    /// The decoded value has the wrong length for its field.
    #[error("wrong length: expected {expected} bytes, got {got}")]
    Length {
        /// The length the field needs.
        expected: usize,
        /// The decoded length.
        got: usize,
    },
}

/// Encodes bytes as unpadded base64url.
pub fn encode(data: &[u8]) -> String {
    ENGINE.encode(data)
}

/// Appends the unpadded base64url of `data` to `out`, for hot paths that reuse a buffer.
pub fn encode_into(data: &[u8], out: &mut String) {
    ENGINE.encode_string(data, out)
}

/// Decodes unpadded base64url, refusing anything but the canonical spelling.
pub fn decode(text: &str) -> Result<Vec<u8>, B64Error> {
    decode_bytes(text.as_bytes())
}

/// As [`decode`], for text that has not been checked to be UTF-8.
pub fn decode_bytes(text: &[u8]) -> Result<Vec<u8>, B64Error> {
    ENGINE.decode(text).map_err(|_| B64Error::Invalid)
}

/// Decodes into `out` (cleared first), so a record loop needs no fresh allocation.
pub fn decode_into(text: &[u8], out: &mut Vec<u8>) -> Result<(), B64Error> {
    out.clear();
    ENGINE.decode_vec(text, out).map_err(|_| B64Error::Invalid)
}

/// Decodes a field that must have exactly `N` bytes.
pub fn decode_array<const N: usize>(text: &str) -> Result<[u8; N], B64Error> {
    let v = decode(text)?;
    let got = v.len();
    v.try_into()
        .map_err(|_| B64Error::Length { expected: N, got })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_padding_and_foreign_characters() {
        assert_eq!(decode("YWI"), Ok(b"ab".to_vec()));
        assert_eq!(decode("YWI="), Err(B64Error::Invalid));
        assert_eq!(decode("YWI=="), Err(B64Error::Invalid));
        assert_eq!(decode("YW+"), Err(B64Error::Invalid));
        assert_eq!(decode("YW/"), Err(B64Error::Invalid));
        assert_eq!(decode("YW I"), Err(B64Error::Invalid));
        // "YWJ" has non-zero trailing bits: not the canonical spelling of "ab".
        assert_eq!(decode("YWJ"), Err(B64Error::Invalid));
        assert_eq!(decode("Y"), Err(B64Error::Invalid));
        assert_eq!(decode(""), Ok(vec![]));
    }

    #[test]
    fn round_trips() {
        for n in 0..70 {
            let data: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(decode(&encode(&data)).as_deref(), Ok(&data[..]));
        }
    }
}
