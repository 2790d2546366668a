//! PEM key files. (temporary minimal version; replaced by the full one)

use std::path::Path;

use p256::pkcs8::DecodePrivateKey;

use crate::proto::identity::IdentityKey;

/// Key file errors.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// I/O.
    #[error("{0}")]
    Io(String),
    /// Bad PEM.
    #[error("not a P-256 private key in PEM")]
    Malformed,
}

/// Where a passphrase comes from.
pub enum PassphraseSource {
    /// None: the key must be unencrypted.
    None,
}

/// Loads a private key.
pub fn load_identity(path: &Path, _p: PassphraseSource) -> Result<IdentityKey, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| KeyFileError::Io(e.to_string()))?;
    if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(&text) {
        return Ok(k.into());
    }
    let k = p256::SecretKey::from_sec1_pem(&text).map_err(|_| KeyFileError::Malformed)?;
    Ok(p256::ecdsa::SigningKey::from(k).into())
}
