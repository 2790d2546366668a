//! Identity key loading for the client, until `crate::keyfile` lands with
//! the full reader (same signature, so switching is one `use`).

use std::path::Path;

use p256::pkcs8::DecodePrivateKey;
use zeroize::Zeroizing;

use crate::proto::identity::IdentityKey;

/// Where the passphrase of an encrypted key comes from.
pub enum PassphraseSource {
    /// No passphrase available.
    None,
    /// This passphrase.
    Given(Zeroizing<String>),
    /// `REMO_PASSPHRASE`, else ask on the terminal.
    Prompt,
}

/// Why a key file could not be loaded (never contains key material).
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// Not a key we can read.
    #[error("{0}: not a P-256 private key in PEM (PKCS#8 or SEC1), or wrong passphrase")]
    Bad(String),
    /// Encrypted, and no passphrase.
    #[error("{0}: the key file is encrypted and no passphrase was given (set REMO_PASSPHRASE or run on a terminal)")]
    PassphraseNeeded(String),
}

/// Loads a P-256 private key from a PEM file.
pub fn load_identity(path: &Path, pass: &PassphraseSource) -> Result<IdentityKey, KeyFileError> {
    let name = path.display().to_string();
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| KeyFileError::Io(name.clone(), e))?,
    );
    if text.contains("ENCRYPTED PRIVATE KEY") {
        let pw: Zeroizing<String> = match pass {
            PassphraseSource::Given(p) => p.clone(),
            PassphraseSource::None => return Err(KeyFileError::PassphraseNeeded(name)),
            PassphraseSource::Prompt => match std::env::var("REMO_PASSPHRASE") {
                Ok(p) => Zeroizing::new(p),
                Err(_) => Zeroizing::new(
                    rpassword::prompt_password(format!("Passphrase for {name}: "))
                        .map_err(|_| KeyFileError::PassphraseNeeded(name.clone()))?,
                ),
            },
        };
        let sk = p256::SecretKey::from_pkcs8_encrypted_pem(&text, pw.as_bytes())
            .map_err(|_| KeyFileError::Bad(name))?;
        return Ok(IdentityKey::from(p256::ecdsa::SigningKey::from(sk)));
    }
    let sk = p256::SecretKey::from_pkcs8_pem(&text)
        .or_else(|_| p256::SecretKey::from_sec1_pem(&text))
        .map_err(|_| KeyFileError::Bad(name))?;
    Ok(IdentityKey::from(p256::ecdsa::SigningKey::from(sk)))
}
