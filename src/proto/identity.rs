//! P-256 identity keys, P1363 signatures, SEC1 points and fingerprints (PROTOCOL.md §1).
//!
//! Wrappers rather than raw `p256` types so that every place that touches a
//! key speaks the wire encodings and nothing else: SEC1 uncompressed points,
//! 64-byte `r ‖ s` signatures, `SHA256:` fingerprints of the SPKI DER.

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::EncodePublicKey;
use sha2::{Digest, Sha256};

use super::b64;

/// Length of a SEC1 uncompressed P-256 point.
pub(crate) const POINT_LEN: usize = 65;
/// Length of a P1363 signature.
pub(crate) const SIG_LEN: usize = 64;

/// Why a key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The bytes are not an uncompressed point on P-256.
    #[error("invalid P-256 public key (want a 65-byte uncompressed SEC1 point on the curve)")]
    InvalidPoint,
    /// The signature is not 64 bytes or has r/s out of range.
    #[error("malformed signature (want 64-byte r||s)")]
    MalformedSignature,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// A field was not valid base64url.
    #[error("{0}")]
    B64(#[from] b64::B64Error),
}

/// A user's or the server's public identity key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses a SEC1 uncompressed point; compressed and identity points are refused
    /// because the wire format has exactly one encoding.
    pub(crate) fn from_sec1(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != POINT_LEN || bytes.first() != Some(&0x04) {
            return Err(KeyError::InvalidPoint);
        }
        VerifyingKey::from_sec1_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| KeyError::InvalidPoint)
    }

    /// Parses the b64 of a SEC1 point, as it travels in JSON.
    pub fn from_b64(text: &str) -> Result<Self, KeyError> {
        Self::from_sec1(&b64::decode(text)?)
    }

    /// The 65-byte uncompressed SEC1 encoding.
    pub(crate) fn to_sec1(&self) -> [u8; POINT_LEN] {
        let point = self.0.to_encoded_point(false);
        let mut out = [0u8; POINT_LEN];
        out.copy_from_slice(point.as_bytes());
        out
    }

    /// b64 of the SEC1 encoding.
    pub fn to_b64(&self) -> String {
        b64::encode(&self.to_sec1())
    }

    /// DER SubjectPublicKeyInfo, the form fingerprints and PEM files use.
    pub(crate) fn to_spki_der(&self) -> Vec<u8> {
        // Encoding a valid P-256 key as SPKI cannot fail; fall back to an empty
        // vector rather than panic if the library ever disagrees.
        self.0
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default()
    }

    /// `SHA256:` ‖ b64(SHA-256(SPKI DER)): what admins compare out of band.
    pub fn fingerprint(&self) -> String {
        format!(
            "SHA256:{}",
            b64::encode(&Sha256::digest(self.to_spki_der()))
        )
    }

    /// Verifies a P1363 signature over `msg` (ECDSA P-256, SHA-256).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), KeyError> {
        let sig = Signature::from_slice(sig).map_err(|_| KeyError::MalformedSignature)?;
        self.0.verify(msg, &sig).map_err(|_| KeyError::BadSignature)
    }
}

impl From<VerifyingKey> for PublicKey {
    fn from(k: VerifyingKey) -> Self {
        PublicKey(k)
    }
}

/// A private identity key (the user's login key or the server's key).
#[derive(Clone)]
pub struct IdentityKey(SigningKey);

impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret scalar.
        write!(f, "IdentityKey({})", self.public().fingerprint())
    }
}

impl IdentityKey {
    /// A fresh random key from the OS generator.
    pub fn generate() -> Self {
        IdentityKey(SigningKey::random(&mut rand_core::OsRng))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(*self.0.verifying_key())
    }

    /// Signs `msg` and returns the 64-byte P1363 form.
    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; SIG_LEN] {
        let sig: Signature = self.0.sign(msg);
        let mut out = [0u8; SIG_LEN];
        out.copy_from_slice(&sig.to_bytes());
        out
    }

    /// The underlying `p256` key, for key-file code.
    pub(crate) fn as_signing_key(&self) -> &SigningKey {
        &self.0
    }
}

impl From<SigningKey> for IdentityKey {
    fn from(k: SigningKey) -> Self {
        IdentityKey(k)
    }
}

/// Checks a user name against `^[A-Za-z0-9._-]{1,64}$`.
pub(crate) fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_round_trip() {
        let k = IdentityKey::generate();
        let sig = k.sign(b"hello");
        assert!(k.public().verify(b"hello", &sig).is_ok());
        assert_eq!(
            k.public().verify(b"hellp", &sig),
            Err(KeyError::BadSignature)
        );
        assert_eq!(
            k.public().verify(b"hello", &sig[..63]),
            Err(KeyError::MalformedSignature)
        );
        let p = PublicKey::from_sec1(&k.public().to_sec1()).unwrap();
        assert_eq!(p, k.public());
    }

    #[test]
    fn rejects_bad_points() {
        let k = IdentityKey::generate().public().to_sec1();
        let mut off = k;
        off[64] ^= 1; // almost surely not on the curve
        assert_eq!(PublicKey::from_sec1(&off), Err(KeyError::InvalidPoint));
        assert_eq!(PublicKey::from_sec1(&k[..33]), Err(KeyError::InvalidPoint));
        assert_eq!(
            PublicKey::from_sec1(&[0u8; 65]),
            Err(KeyError::InvalidPoint)
        );
    }

    #[test]
    fn user_names() {
        assert!(valid_user_name("alice"));
        assert!(valid_user_name("a.b_c-9"));
        assert!(valid_user_name(&"x".repeat(64)));
        assert!(!valid_user_name(&"x".repeat(65)));
        assert!(!valid_user_name(""));
        assert!(!valid_user_name("al ice"));
        assert!(!valid_user_name("alice\n"));
        assert!(!valid_user_name("é"));
    }
}
