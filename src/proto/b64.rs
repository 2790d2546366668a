//! Strict base64url without padding (PROTOCOL.md §1).
//!
//! The wire format allows exactly one spelling of every byte string, so the
//! decoder rejects padding, characters outside the URL-safe alphabet and
//! non-zero trailing bits instead of quietly repairing them.
//!
//! The record path moves every byte through here twice, so it uses the
//! SIMD codec (`base64-simd`, runtime-dispatched AVX2/SSE/NEON); the test
//! module cross-checks it against the scalar `base64` crate.

use base64_simd::URL_SAFE_NO_PAD as ENGINE;

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
    ENGINE.encode_to_string(data)
}

/// Appends the unpadded base64url of `data` to `out`, for hot paths that reuse a buffer.
pub fn encode_into(data: &[u8], out: &mut String) {
    ENGINE.encode_append(data, out)
}

/// As [`encode_into`], appending to a byte buffer (a framed message).
pub fn encode_into_vec(data: &[u8], out: &mut Vec<u8>) {
    ENGINE.encode_append(data, out)
}

/// Decodes unpadded base64url, refusing anything but the canonical spelling.
pub fn decode(text: &str) -> Result<Vec<u8>, B64Error> {
    decode_bytes(text.as_bytes())
}

/// As [`decode`], for text that has not been checked to be UTF-8.
pub(crate) fn decode_bytes(text: &[u8]) -> Result<Vec<u8>, B64Error> {
    ENGINE.decode_to_vec(text).map_err(|_| B64Error::Invalid)
}

/// Decodes into `out` (cleared first), so a record loop needs no fresh allocation.
pub fn decode_into(text: &[u8], out: &mut Vec<u8>) -> Result<(), B64Error> {
    out.clear();
    let r = ENGINE
        .decode_append(text, out)
        .map_err(|_| B64Error::Invalid);
    if r.is_err() {
        out.clear();
    }
    r
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

    /// The scalar crate configured as strictly as the spec asks: the
    /// reference the SIMD codec must agree with on every input.
    fn reference() -> base64::engine::GeneralPurpose {
        use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
        base64::engine::GeneralPurpose::new(
            &base64::alphabet::URL_SAFE,
            GeneralPurposeConfig::new()
                .with_encode_padding(false)
                .with_decode_padding_mode(DecodePaddingMode::RequireNone)
                .with_decode_allow_trailing_bits(false),
        )
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_the_scalar_codec_on_bytes(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            use base64::Engine;
            let ours = encode(&data);
            proptest::prop_assert_eq!(&ours, &reference().encode(&data));
            let mut s = String::from("x");
            encode_into(&data, &mut s);
            proptest::prop_assert_eq!(&s[1..], &ours[..]);
            proptest::prop_assert_eq!(decode(&ours).ok(), Some(data));
        }

        #[test]
        fn agrees_with_the_scalar_codec_on_text(text in "[A-Za-z0-9_+/=. -]{0,120}") {
            use base64::Engine;
            let ours = decode(&text).ok();
            proptest::prop_assert_eq!(ours.clone(), reference().decode(&text).ok());
            let mut v = vec![1, 2, 3];
            let r = decode_into(text.as_bytes(), &mut v);
            proptest::prop_assert_eq!(r.is_ok(), ours.is_some());
            if let Some(o) = ours {
                proptest::prop_assert_eq!(v, o);
            }
        }

        #[test]
        fn agrees_on_near_valid_text(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200), pos in 0usize..300, c in proptest::sample::select(b"A_-=+/ \r\n\0\xff".to_vec())) {
            use base64::Engine;
            let mut t = encode(&data).into_bytes();
            if !t.is_empty() {
                let i = pos % t.len();
                t[i] = c;
            }
            proptest::prop_assert_eq!(decode_bytes(&t).ok(), reference().decode(&t).ok());
        }
    }

    #[test]
    fn round_trips() {
        for n in 0..70 {
            let data: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(decode(&encode(&data)).as_deref(), Ok(&data[..]));
        }
    }
}
