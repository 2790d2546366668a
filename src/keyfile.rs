//! PEM key files (PROTOCOL.md §1), interchangeable with `openssl`.
//!
//! Private keys are read as PKCS#8 (`PRIVATE KEY`), PBES2-encrypted PKCS#8
//! (`ENCRYPTED PRIVATE KEY`, PBKDF2 or scrypt with AES-CBC, what `openssl
//! genpkey`/`openssl pkcs8 -topk8` write) or SEC1 (`EC PRIVATE KEY`, what
//! `openssl ecparam -genkey` writes); public keys as SPKI (`PUBLIC KEY`).
//! Anything that is not a P-256 key is refused with an error that names what
//! it is, so an admin who feeds in an Ed25519 or RSA key learns why at once.
//!
//! Writes use PKCS#8 (plain or PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC,
//! which every OpenSSL since 1.1 reads) and SPKI. Private key files are
//! created with mode 0600 and never replace an existing file unless asked;
//! a replacement goes through a temporary file and a rename so a crash never
//! leaves a half-written key behind.
//!
//! Parsing never panics and errors never contain key material.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::pkcs8::EncodePrivateKey;
use pkcs8::der::pem::LineEnding;
use pkcs8::pkcs5;
use pkcs8::{EncryptedPrivateKeyInfo, ObjectIdentifier, PrivateKeyInfo};
use zeroize::Zeroizing;

use crate::proto::identity::{IdentityKey, PublicKey};

/// PBKDF2 iterations for keys we encrypt: well above OpenSSL's default of
/// 2048 so that an offline guess costs real time, yet a debug build still
/// loads a key in well under a second.
pub(crate) const PBKDF2_ITERATIONS: u32 = 200_000;

/// Largest key file we read: real ones are well under 1 KiB, so anything
/// bigger is not a key file and is refused before it is buffered.
pub(crate) const MAX_KEY_FILE: u64 = 64 * 1024;

/// Largest PBKDF2 iteration count we agree to run, so a hostile file cannot
/// make `remo` spin for hours.
#[cfg(not(feature = "fuzzing"))]
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// Largest scrypt cost parameter N we agree to run (2^20).
#[cfg(not(feature = "fuzzing"))]
const MAX_SCRYPT_N: u64 = 1 << 20;
/// Largest scrypt N·r: its memory is 128·N·r bytes, so 2^23 is 1 GiB (N =
/// 2^20 with r = 8), so a hostile file cannot make `remo` allocate more.
#[cfg(not(feature = "fuzzing"))]
const MAX_SCRYPT_NR: u64 = 1 << 23;
/// Largest scrypt p: the time is N·r·p, and p would otherwise allow 65,535
/// passes over a 1 GiB block (a key file that makes `remo` spin for a day;
/// found while writing the key-file fuzz target).
#[cfg(not(feature = "fuzzing"))]
const MAX_SCRYPT_P: u64 = 16;

// The fuzzer's budget is milliseconds per input: the same checks, with
// limits small enough that an encrypted file it makes decrypts at once.
#[cfg(feature = "fuzzing")]
const MAX_PBKDF2_ITERATIONS: u32 = 4;
#[cfg(feature = "fuzzing")]
const MAX_SCRYPT_N: u64 = 16;
#[cfg(feature = "fuzzing")]
const MAX_SCRYPT_NR: u64 = 128;
#[cfg(feature = "fuzzing")]
const MAX_SCRYPT_P: u64 = 2;

/// Environment variable that supplies a passphrase to scripts.
pub(crate) const PASSPHRASE_ENV: &str = "REMO_PASSPHRASE";

// Object identifiers we recognise, to name what a refused key is.
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_SECP256K1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.10");
const OID_BRAINPOOL_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.7");
const OID_SM2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.156.10197.1.301");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_ED448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.113");
const OID_X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");
const OID_X448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.111");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_DSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10040.4.1");

const NEED_P256: &str = "remo needs an ECDSA P-256 key";

/// Why a key file could not be read or written. Messages name the problem
/// and, where one exists, the fix; they never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The text is not a well-formed PEM key of a kind we know the shape of.
    #[error("malformed key file: {0}")]
    Malformed(String),
    /// A well-formed key, but not one remo can use (another curve or algorithm,
    /// or an encryption scheme we do not implement).
    #[error("unsupported key: {0}")]
    Unsupported(String),
    /// The key is encrypted and the passphrase does not decrypt it.
    #[error("wrong passphrase (the key file could not be decrypted)")]
    WrongPassphrase,
    /// The key is encrypted and no passphrase was available.
    #[error("the key file is encrypted and no passphrase was given (set {PASSPHRASE_ENV} or run on a terminal)")]
    PassphraseNeeded,
    /// A private key was given where a public key file was expected.
    #[error(
        "this is a private key; give the .pub file (or derive it: openssl pkey -in KEY -pubout)"
    )]
    IsPrivateKey,
    /// A public key was given where a private key file was expected.
    #[error("this is a public key; give the private key file")]
    IsPublicKey,
    /// The target file exists and overwriting was not asked for.
    #[error("{0}: file exists (refusing to overwrite)")]
    Exists(PathBuf),
    /// Reading or writing a file failed.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What we were doing ("cannot read", "cannot create", …).
        action: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Encoding or encrypting a key failed (should not happen with valid keys).
    #[error("cannot encode key: {0}")]
    Encode(String),
    /// One of the above, about a named file.
    #[error("{path}: {source}")]
    File {
        /// The key file.
        path: PathBuf,
        /// What was wrong with it.
        source: Box<KeyFileError>,
    },
}

impl KeyFileError {
    /// The error without the file context, so callers and tests can match
    /// on the kind of failure whether or not a path was attached.
    pub fn kind(&self) -> &KeyFileError {
        match self {
            KeyFileError::File { source, .. } => source.kind(),
            other => other,
        }
    }

    fn in_file(self, path: &Path) -> KeyFileError {
        match self {
            // These already name their path.
            e @ (KeyFileError::Io { .. } | KeyFileError::Exists(_) | KeyFileError::File { .. }) => {
                e
            }
            e => KeyFileError::File {
                path: path.to_path_buf(),
                source: Box::new(e),
            },
        }
    }
}

fn io_err(path: &Path, action: &'static str, source: std::io::Error) -> KeyFileError {
    KeyFileError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Where the passphrase of an encrypted private key comes from, so the
/// server (unattended, never prompts), scripts and interactive users share
/// one loader.
pub enum PassphraseSource {
    /// No passphrase: an encrypted key is an error ([`KeyFileError::PassphraseNeeded`]).
    None,
    /// This passphrase.
    Given(Zeroizing<String>),
    /// Only if the key is encrypted: `REMO_PASSPHRASE` if set, else ask on the terminal.
    Prompt,
}

impl std::fmt::Debug for PassphraseSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the passphrase.
        f.write_str(match self {
            PassphraseSource::None => "PassphraseSource::None",
            PassphraseSource::Given(_) => "PassphraseSource::Given(..)",
            PassphraseSource::Prompt => "PassphraseSource::Prompt",
        })
    }
}

// ---------------------------------------------------------------------------
// PEM framing

/// One `-----BEGIN X-----` … `-----END X-----` block.
struct PemBlock {
    label: String,
    /// RFC 1421 headers were present (`Proc-Type: 4,ENCRYPTED` of legacy
    /// OpenSSL encryption, which we do not read).
    encrypted_headers: bool,
    der: Zeroizing<Vec<u8>>,
}

/// Shows a label from a file in a message: printable ASCII only, bounded.
fn show_label(label: &str) -> String {
    label
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(40)
        .collect()
}

/// Splits PEM text into blocks. Tolerant of what OpenSSL and editors
/// produce (any line width, CRLF, text around the blocks); strict about the
/// frame itself and the base64 inside.
fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, KeyFileError> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, bool, Zeroizing<String>)> = None;
    for raw in text.lines() {
        let line = raw.trim();
        match current.take() {
            None => {
                if let Some(label) = line
                    .strip_prefix("-----BEGIN ")
                    .and_then(|l| l.strip_suffix("-----"))
                {
                    current = Some((label.to_string(), false, Zeroizing::new(String::new())));
                }
            }
            Some((label, mut headers, mut b64)) => {
                if let Some(end) = line
                    .strip_prefix("-----END ")
                    .and_then(|l| l.strip_suffix("-----"))
                {
                    if end != label {
                        return Err(KeyFileError::Malformed(format!(
                            "PEM block BEGIN {} ends with END {}",
                            show_label(&label),
                            show_label(end)
                        )));
                    }
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(b64.as_bytes())
                        .map_err(|_| {
                            KeyFileError::Malformed(format!(
                                "bad base64 in PEM block {}",
                                show_label(&label)
                            ))
                        })?;
                    blocks.push(PemBlock {
                        label,
                        encrypted_headers: headers,
                        der: Zeroizing::new(der),
                    });
                    continue;
                }
                if line.starts_with("-----") {
                    return Err(KeyFileError::Malformed(format!(
                        "PEM block {} has no END line",
                        show_label(&label)
                    )));
                }
                if line.contains(':') {
                    if line.starts_with("Proc-Type:") && line.contains("ENCRYPTED") {
                        headers = true;
                    }
                } else {
                    b64.push_str(line);
                }
                current = Some((label, headers, b64));
            }
        }
    }
    if let Some((label, _, _)) = current {
        return Err(KeyFileError::Malformed(format!(
            "PEM block {} has no END line",
            show_label(&label)
        )));
    }
    if blocks.is_empty() {
        return Err(KeyFileError::Malformed(
            "no PEM block found (want -----BEGIN PRIVATE KEY----- or similar)".into(),
        ));
    }
    Ok(blocks)
}

/// Tells whether PEM text holds an encrypted private key, so a caller knows
/// whether to ask for a passphrase before it calls a loader.
pub fn is_encrypted_pem(text: &str) -> bool {
    match pem_blocks(text) {
        Ok(blocks) => blocks
            .iter()
            .any(|b| b.label == "ENCRYPTED PRIVATE KEY" || b.encrypted_headers),
        Err(_) => false,
    }
}

// ---------------------------------------------------------------------------
// Algorithm identification

/// Names a curve OID for an error message.
fn curve_name(oid: &ObjectIdentifier) -> String {
    match *oid {
        OID_P384 => "P-384".into(),
        OID_P521 => "P-521".into(),
        OID_SECP256K1 => "secp256k1".into(),
        OID_BRAINPOOL_P256 => "brainpoolP256r1".into(),
        OID_SM2 => "SM2".into(),
        other => format!("curve {other}"),
    }
}

/// Checks a key's AlgorithmIdentifier (from PKCS#8 or SPKI) is EC on P-256.
fn check_algorithm(alg: &pkcs8::AlgorithmIdentifierRef<'_>) -> Result<(), KeyFileError> {
    let what = match alg.oid {
        OID_EC_PUBLIC_KEY => match alg.parameters_oid() {
            Ok(OID_P256) => return Ok(()),
            Ok(curve) => format!("EC key on {}", curve_name(&curve)),
            Err(_) => "EC key without a named curve".into(),
        },
        OID_ED25519 => "Ed25519 key".into(),
        OID_ED448 => "Ed448 key".into(),
        OID_X25519 => "X25519 key".into(),
        OID_X448 => "X448 key".into(),
        OID_RSA | OID_RSA_PSS => "RSA key".into(),
        OID_DSA => "DSA key".into(),
        other => format!("key of algorithm {other}"),
    };
    Err(KeyFileError::Unsupported(format!("{what}; {NEED_P256}")))
}

/// Decodes a SEC1 `ECPrivateKey` (bare, or inside PKCS#8) into a P-256 key,
/// checking any curve it names and that any public key it carries matches.
fn from_ec_private_key_der(der: &[u8]) -> Result<IdentityKey, KeyFileError> {
    let ec = sec1::EcPrivateKey::try_from(der)
        .map_err(|_| KeyFileError::Malformed("invalid EC private key structure".into()))?;
    if let Some(params) = ec.parameters {
        match params.named_curve() {
            Some(OID_P256) => {}
            Some(curve) => {
                return Err(KeyFileError::Unsupported(format!(
                    "EC key on {}; {NEED_P256}",
                    curve_name(&curve)
                )))
            }
            None => {
                return Err(KeyFileError::Unsupported(format!(
                    "EC key without a named curve; {NEED_P256}"
                )))
            }
        }
    }
    if ec.private_key.len() != 32 {
        return Err(KeyFileError::Unsupported(format!(
            "EC private key of {} bytes (not P-256); {NEED_P256}",
            ec.private_key.len()
        )));
    }
    let secret = p256::SecretKey::from_slice(ec.private_key)
        .map_err(|_| KeyFileError::Malformed("private scalar out of range".into()))?;
    if let Some(pk) = ec.public_key {
        let stated = p256::PublicKey::from_sec1_bytes(pk)
            .map_err(|_| KeyFileError::Malformed("embedded public key is not on P-256".into()))?;
        if stated != secret.public_key() {
            return Err(KeyFileError::Malformed(
                "embedded public key does not match the private key".into(),
            ));
        }
    }
    Ok(IdentityKey::from(SigningKey::from(secret)))
}

/// Decodes a plain PKCS#8 `PrivateKeyInfo`.
fn from_pkcs8_der(der: &[u8], what_if_bad: KeyFileError) -> Result<IdentityKey, KeyFileError> {
    let pki = PrivateKeyInfo::try_from(der).map_err(|_| what_if_bad)?;
    check_algorithm(&pki.algorithm)?;
    from_ec_private_key_der(pki.private_key)
}

/// Refuses KDF parameters that would cost unbounded time or memory.
fn check_kdf(params: &pkcs5::pbes2::Parameters<'_>) -> Result<(), KeyFileError> {
    match &params.kdf {
        pkcs5::pbes2::Kdf::Pbkdf2(p) if p.iteration_count > MAX_PBKDF2_ITERATIONS => {
            Err(KeyFileError::Unsupported(format!(
                "PBKDF2 iteration count {} is above the limit of {MAX_PBKDF2_ITERATIONS}",
                p.iteration_count
            )))
        }
        pkcs5::pbes2::Kdf::Scrypt(p)
            if p.cost_parameter > MAX_SCRYPT_N
                || p.cost_parameter.saturating_mul(u64::from(p.block_size)) > MAX_SCRYPT_NR
                || u64::from(p.parallelization) > MAX_SCRYPT_P =>
        {
            Err(KeyFileError::Unsupported(format!(
                "scrypt parameters N = {}, r = {}, p = {} above the limit (N ≤ {MAX_SCRYPT_N}, N·r ≤ {MAX_SCRYPT_NR}, p ≤ {MAX_SCRYPT_P})",
                p.cost_parameter, p.block_size, p.parallelization
            )))
        }
        _ => Ok(()),
    }
}

/// Decrypts an `EncryptedPrivateKeyInfo`.
fn from_encrypted_pkcs8_der(der: &[u8], passphrase: &[u8]) -> Result<IdentityKey, KeyFileError> {
    let epki = EncryptedPrivateKeyInfo::try_from(der)
        .map_err(|_| KeyFileError::Malformed("invalid ENCRYPTED PRIVATE KEY structure".into()))?;
    let Some(params) = epki.encryption_algorithm.pbes2() else {
        return Err(KeyFileError::Unsupported(
            "PBES1 encryption (obsolete); re-encrypt with: openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD -out NEW"
                .into(),
        ));
    };
    check_kdf(params)?;
    let doc = match epki.decrypt(passphrase) {
        Ok(doc) => doc,
        Err(pkcs8::Error::EncryptedPrivateKey(pkcs5::Error::UnsupportedAlgorithm { .. })) => {
            return Err(KeyFileError::Unsupported(
                "key-file encryption algorithm not supported (want PBES2 with PBKDF2-HMAC-SHA256 or scrypt, and AES-CBC); re-encrypt with: openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD -out NEW"
                    .into(),
            ))
        }
        Err(pkcs8::Error::EncryptedPrivateKey(pkcs5::Error::AlgorithmParametersInvalid {
            ..
        })) => {
            return Err(KeyFileError::Malformed(
                "invalid key-file encryption parameters".into(),
            ))
        }
        // Bad padding, or a decrypted blob that is not DER: both what a wrong
        // passphrase produces.
        Err(_) => return Err(KeyFileError::WrongPassphrase),
    };
    // A wrong passphrase gives valid CBC padding about once in 256 tries;
    // the garbage then fails to parse, and that too is a wrong passphrase.
    from_pkcs8_der(doc.as_bytes(), KeyFileError::WrongPassphrase)
}

/// Finds the private key block, skipping OpenSSL's `EC PARAMETERS` preamble,
/// and refuses the kinds of block we know are not usable.
fn private_block(blocks: &[PemBlock]) -> Result<&PemBlock, KeyFileError> {
    let mut first_other: Option<&PemBlock> = None;
    for b in blocks {
        match b.label.as_str() {
            "PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" | "EC PRIVATE KEY" => return Ok(b),
            "EC PARAMETERS" => {}
            _ => {
                first_other.get_or_insert(b);
            }
        }
    }
    let Some(b) = first_other else {
        return Err(KeyFileError::Malformed(
            "no private key in the PEM text".into(),
        ));
    };
    Err(match b.label.as_str() {
        "PUBLIC KEY" => KeyFileError::IsPublicKey,
        "RSA PRIVATE KEY" => KeyFileError::Unsupported(format!("RSA key; {NEED_P256}")),
        "DSA PRIVATE KEY" => KeyFileError::Unsupported(format!("DSA key; {NEED_P256}")),
        "OPENSSH PRIVATE KEY" => KeyFileError::Unsupported(format!(
            "OpenSSH key format; {NEED_P256} in PKCS#8 PEM (make one with: remo keygen)"
        )),
        other => KeyFileError::Malformed(format!(
            "PEM block {} is not a private key (want PRIVATE KEY, ENCRYPTED PRIVATE KEY or EC PRIVATE KEY)",
            show_label(other)
        )),
    })
}

/// Parses a private key from PEM text. `passphrase` is used only if the key
/// is encrypted; an encrypted key without one is [`KeyFileError::PassphraseNeeded`].
pub fn parse_private_key_pem(
    text: &str,
    passphrase: Option<&[u8]>,
) -> Result<IdentityKey, KeyFileError> {
    let blocks = pem_blocks(text)?;
    let block = private_block(&blocks)?;
    parse_private_block(block, || Ok(passphrase.map(|p| Zeroizing::new(p.to_vec()))))
}

/// Decodes a private key block, asking `passphrase` only if it is encrypted.
fn parse_private_block(
    block: &PemBlock,
    passphrase: impl FnOnce() -> Result<Option<Zeroizing<Vec<u8>>>, KeyFileError>,
) -> Result<IdentityKey, KeyFileError> {
    if block.encrypted_headers {
        return Err(KeyFileError::Unsupported(
            "legacy OpenSSL PEM encryption (Proc-Type/DEK-Info headers); convert with: openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD -out NEW"
                .into(),
        ));
    }
    match block.label.as_str() {
        "PRIVATE KEY" => from_pkcs8_der(
            &block.der,
            KeyFileError::Malformed("invalid PRIVATE KEY structure".into()),
        ),
        "EC PRIVATE KEY" => from_ec_private_key_der(&block.der),
        "ENCRYPTED PRIVATE KEY" => {
            // Check the structure before asking for a passphrase, so a broken
            // file is not blamed on the passphrase.
            EncryptedPrivateKeyInfo::try_from(block.der.as_slice()).map_err(|_| {
                KeyFileError::Malformed("invalid ENCRYPTED PRIVATE KEY structure".into())
            })?;
            let pass = passphrase()?.ok_or(KeyFileError::PassphraseNeeded)?;
            from_encrypted_pkcs8_der(&block.der, &pass)
        }
        other => Err(KeyFileError::Malformed(format!(
            "PEM block {} is not a private key",
            show_label(other)
        ))),
    }
}

/// Parses an SPKI `PUBLIC KEY` from PEM text; a private key is refused with a
/// hint, since registering a user must never involve their private key.
pub fn parse_public_key_pem(text: &str) -> Result<PublicKey, KeyFileError> {
    let blocks = pem_blocks(text)?;
    let Some(block) = blocks.iter().find(|b| b.label == "PUBLIC KEY") else {
        if blocks.iter().any(|b| is_private_label(&b.label)) {
            return Err(KeyFileError::IsPrivateKey);
        }
        let labels: Vec<String> = blocks.iter().map(|b| show_label(&b.label)).collect();
        return Err(KeyFileError::Malformed(format!(
            "no PUBLIC KEY block (found {})",
            labels.join(", ")
        )));
    };
    public_key_from_spki(&block.der)
}

/// Whether a PEM label is a private key's.
fn is_private_label(label: &str) -> bool {
    matches!(
        label,
        "PRIVATE KEY"
            | "ENCRYPTED PRIVATE KEY"
            | "EC PRIVATE KEY"
            | "RSA PRIVATE KEY"
            | "OPENSSH PRIVATE KEY"
    )
}

/// Every `PUBLIC KEY` block of a PEM file, in order (a file of trusted
/// certificate authorities holds one or more). Any block that is not a
/// P-256 key refuses the whole file; other labels are refused too, so a
/// private key pasted in by mistake is said, not skipped.
pub fn parse_public_keys_pem(text: &str) -> Result<Vec<PublicKey>, KeyFileError> {
    let blocks = pem_blocks(text)?;
    if let Some(b) = blocks.iter().find(|b| b.label != "PUBLIC KEY") {
        return Err(if is_private_label(&b.label) {
            KeyFileError::IsPrivateKey
        } else {
            KeyFileError::Malformed(format!(
                "a {} block among the public keys",
                show_label(&b.label)
            ))
        });
    }
    if blocks.is_empty() {
        return Err(KeyFileError::Malformed("no PUBLIC KEY block".into()));
    }
    blocks
        .iter()
        .map(|b| public_key_from_spki(&b.der))
        .collect()
}

fn public_key_from_spki(der: &[u8]) -> Result<PublicKey, KeyFileError> {
    let spki = pkcs8::SubjectPublicKeyInfoRef::try_from(der)
        .map_err(|_| KeyFileError::Malformed("invalid PUBLIC KEY structure".into()))?;
    check_algorithm(&spki.algorithm)?;
    let point = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| KeyFileError::Malformed("invalid PUBLIC KEY bit string".into()))?;
    let vk = VerifyingKey::from_sec1_bytes(point)
        .map_err(|_| KeyFileError::Malformed("public key is not a point on P-256".into()))?;
    Ok(PublicKey::from(vk))
}

// ---------------------------------------------------------------------------
// Encoding

/// Encodes a private key as PKCS#8 PEM, encrypted with PBES2 (PBKDF2-HMAC-
/// SHA256, [`PBKDF2_ITERATIONS`], AES-256-CBC, random salt and IV) if a
/// passphrase is given. The result is zeroized on drop.
pub(crate) fn private_key_to_pem(
    key: &IdentityKey,
    passphrase: Option<&[u8]>,
) -> Result<Zeroizing<String>, KeyFileError> {
    let plain = key
        .as_signing_key()
        .to_pkcs8_der()
        .map_err(|e| KeyFileError::Encode(e.to_string()))?;
    let Some(pass) = passphrase else {
        return plain
            .to_pem("PRIVATE KEY", LineEnding::LF)
            .map_err(|e| KeyFileError::Encode(e.to_string()));
    };
    use rand_core::RngCore;
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut salt);
    rand_core::OsRng.fill_bytes(&mut iv);
    let params = pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(PBKDF2_ITERATIONS, &salt, &iv)
        .map_err(|e| KeyFileError::Encode(e.to_string()))?;
    let pki = PrivateKeyInfo::try_from(plain.as_bytes())
        .map_err(|e| KeyFileError::Encode(e.to_string()))?;
    let enc = pki
        .encrypt_with_params(params, pass)
        .map_err(|e| KeyFileError::Encode(e.to_string()))?;
    enc.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
        .map_err(|e| KeyFileError::Encode(e.to_string()))
}

/// Encodes a public key as SPKI `PUBLIC KEY` PEM, what `openssl pkey -pubout` writes.
pub fn public_key_to_pem(key: &PublicKey) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(key.to_spki_der());
    let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END PUBLIC KEY-----\n");
    out
}

// ---------------------------------------------------------------------------
// Files

/// Reads a key file as text, bounded by [`MAX_KEY_FILE`]; zeroized on drop.
fn read_key_text(path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
    let file = std::fs::File::open(path).map_err(|e| io_err(path, "cannot open", e))?;
    let mut buf = Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_err(path, "cannot read", e))?;
    if buf.len() as u64 > MAX_KEY_FILE {
        return Err(KeyFileError::Malformed(format!(
            "larger than {MAX_KEY_FILE} bytes, not a key file"
        ))
        .in_file(path));
    }
    match std::str::from_utf8(&buf) {
        Ok(s) => Ok(Zeroizing::new(s.to_string())),
        Err(_) => Err(KeyFileError::Malformed("not a PEM text file".into()).in_file(path)),
    }
}

/// Reads a private key file with an optional passphrase (used only if the
/// file is encrypted).
pub fn read_private_key(
    path: &Path,
    passphrase: Option<&[u8]>,
) -> Result<IdentityKey, KeyFileError> {
    let text = read_key_text(path)?;
    parse_private_key_pem(&text, passphrase).map_err(|e| e.in_file(path))
}

/// Reads an SPKI public key file (a user's `.pub`).
pub fn read_public_key(path: &Path) -> Result<PublicKey, KeyFileError> {
    let text = read_key_text(path)?;
    parse_public_key_pem(&text).map_err(|e| e.in_file(path))
}

/// Loads an identity key the way the client and server need it: the
/// passphrase is fetched only if the file turns out to be encrypted, and
/// from the source the caller chose (the server never prompts).
pub fn load_identity(
    path: &Path,
    passphrase: &PassphraseSource,
) -> Result<IdentityKey, KeyFileError> {
    let text = read_key_text(path)?;
    let inner = || -> Result<IdentityKey, KeyFileError> {
        let blocks = pem_blocks(&text)?;
        let block = private_block(&blocks)?;
        parse_private_block(block, || match passphrase {
            PassphraseSource::None => Ok(None),
            PassphraseSource::Given(p) => Ok(Some(Zeroizing::new(p.as_bytes().to_vec()))),
            PassphraseSource::Prompt => {
                if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
                    let p = Zeroizing::new(p);
                    return Ok(Some(Zeroizing::new(p.as_bytes().to_vec())));
                }
                let prompt = format!("Passphrase for {}: ", path.display());
                match rpassword::prompt_password(prompt) {
                    Ok(p) => {
                        let p = Zeroizing::new(p);
                        Ok(Some(Zeroizing::new(p.as_bytes().to_vec())))
                    }
                    Err(_) => Err(KeyFileError::PassphraseNeeded),
                }
            }
        })
    };
    inner().map_err(|e| e.in_file(path))
}

/// Writes `data` to `path` with `mode`. Without `overwrite` the file must not
/// exist (`create_new`, so no race can make us write through someone else's
/// file or symlink); with it, a temporary file in the same directory is
/// written and renamed over the target, so readers see the old or the new
/// file, never a half-written one. A failed write leaves nothing behind.
pub(crate) fn write_file_atomic(
    path: &Path,
    data: &[u8],
    mode: u32,
    overwrite: bool,
) -> Result<(), KeyFileError> {
    fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), KeyFileError> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    KeyFileError::Exists(path.to_path_buf())
                } else {
                    io_err(path, "cannot create", e)
                }
            })?;
        let res = f
            .write_all(data)
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err(path, "cannot write", e));
        if res.is_err() {
            drop(f);
            let _ = std::fs::remove_file(path);
        }
        res
    }

    if !overwrite {
        return write_new(path, data, mode);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| {
            io_err(
                path,
                "cannot write",
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
            )
        })?
        .to_string_lossy()
        .into_owned();
    let tmp = {
        use rand_core::RngCore;
        let mut r = [0u8; 6];
        rand_core::OsRng.fill_bytes(&mut r);
        dir.join(format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            crate::proto::b64::encode(&r)
        ))
    };
    write_new(&tmp, data, mode)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err(path, "cannot replace", e)
    })
}

/// Writes a private key file (mode 0600), encrypted if a passphrase is given.
pub fn write_private_key(
    path: &Path,
    key: &IdentityKey,
    passphrase: Option<&[u8]>,
    overwrite: bool,
) -> Result<(), KeyFileError> {
    let pem = private_key_to_pem(key, passphrase)?;
    write_file_atomic(path, pem.as_bytes(), 0o600, overwrite)
}

/// Writes a public key file (mode 0644: it is meant to be handed around).
pub fn write_public_key(path: &Path, key: &PublicKey, overwrite: bool) -> Result<(), KeyFileError> {
    write_file_atomic(path, public_key_to_pem(key).as_bytes(), 0o644, overwrite)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_round_trip() {
        let k = IdentityKey::generate();
        let pem = private_key_to_pem(&k, None).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(!is_encrypted_pem(&pem));
        let back = parse_private_key_pem(&pem, None).unwrap();
        assert_eq!(back.public(), k.public());
        let pubpem = public_key_to_pem(&k.public());
        assert_eq!(parse_public_key_pem(&pubpem).unwrap(), k.public());
    }

    #[test]
    fn encrypted_round_trip() {
        let k = IdentityKey::generate();
        let pem = private_key_to_pem(&k, Some(b"s3cret")).unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
        assert!(is_encrypted_pem(&pem));
        let back = parse_private_key_pem(&pem, Some(b"s3cret")).unwrap();
        assert_eq!(back.public(), k.public());
        assert!(matches!(
            parse_private_key_pem(&pem, Some(b"wrong")),
            Err(KeyFileError::WrongPassphrase)
        ));
        assert!(matches!(
            parse_private_key_pem(&pem, None),
            Err(KeyFileError::PassphraseNeeded)
        ));
    }

    /// A scrypt key file whose p (time) or N·r (memory) is hostile is
    /// refused before the KDF runs; p was unbounded (65,535 passes).
    #[test]
    #[cfg(not(feature = "fuzzing"))]
    fn scrypt_parameters_beyond_the_limits_are_refused_before_the_kdf() {
        use pkcs5::scrypt::Params;
        let k = IdentityKey::generate();
        let der = k.as_signing_key().to_pkcs8_der().unwrap();
        let info = PrivateKeyInfo::try_from(der.as_bytes()).unwrap();
        let scrypt = |log_n: u8, r: u32, p: u32| {
            pkcs5::pbes2::Parameters::scrypt_aes256cbc(
                Params::new(log_n, r, p, 32).unwrap(),
                &[1u8; 16],
                &[2u8; 16],
            )
            .unwrap()
        };
        let file = |log_n: u8, r: u32, p: u32| {
            let enc = info
                .encrypt_with_params(scrypt(log_n, r, p), b"pw")
                .unwrap();
            pkcs8::der::pem::encode_string("ENCRYPTED PRIVATE KEY", LineEnding::LF, enc.as_bytes())
                .unwrap()
        };
        // Within the limits: decrypts.
        let ok = parse_private_key_pem(&file(4, 1, 16), Some(b"pw")).unwrap();
        assert_eq!(ok.public(), k.public());
        // p = 17 (cheap here, but p is a multiplier: 65,535 is a day).
        let e = parse_private_key_pem(&file(4, 1, 17), Some(b"pw")).unwrap_err();
        assert!(
            matches!(&e, KeyFileError::Unsupported(m) if m.contains("p = 17")),
            "{e}"
        );
        // N = 2^20 with r = 16: 2 GiB. Refused before any allocation. The
        // file is made without running its KDF (encrypting with these
        // parameters took 2 GiB and 20 s); the ciphertext is never reached.
        let unrun = |log_n: u8, r: u32, p: u32| {
            use pkcs8::der::Encode;
            let epki = EncryptedPrivateKeyInfo {
                encryption_algorithm: scrypt(log_n, r, p).into(),
                encrypted_data: &[0u8; 144],
            };
            pkcs8::der::pem::encode_string(
                "ENCRYPTED PRIVATE KEY",
                LineEnding::LF,
                &epki.to_der().unwrap(),
            )
            .unwrap()
        };
        let e = parse_private_key_pem(&unrun(20, 16, 1), Some(b"pw")).unwrap_err();
        assert!(
            matches!(&e, KeyFileError::Unsupported(m) if m.contains("r = 16")),
            "{e}"
        );
    }

    #[test]
    fn private_and_public_are_not_confused() {
        let k = IdentityKey::generate();
        let pem = private_key_to_pem(&k, None).unwrap();
        assert!(matches!(
            parse_public_key_pem(&pem),
            Err(KeyFileError::IsPrivateKey)
        ));
        let pubpem = public_key_to_pem(&k.public());
        assert!(matches!(
            parse_private_key_pem(&pubpem, None),
            Err(KeyFileError::IsPublicKey)
        ));
    }

    #[test]
    fn garbage_is_malformed_not_panic() {
        let k = IdentityKey::generate();
        let good = private_key_to_pem(&k, None).unwrap().to_string();
        let cases = [
            String::new(),
            "hello".into(),
            "-----BEGIN PRIVATE KEY-----\n".into(),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into(),
            "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n".into(),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
                .into(),
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n".into(),
            good.replace("M", "N"),
            good[..good.len() / 2].to_string(),
        ];
        for c in &cases {
            let e = parse_private_key_pem(c, Some(b"x")).unwrap_err();
            assert!(matches!(e, KeyFileError::Malformed(_)), "{c:?} gave {e:?}");
            assert!(parse_public_key_pem(c).is_err());
        }
        // Every truncation of a valid file fails cleanly or (for whitespace cuts) succeeds.
        for n in 0..good.len() {
            let _ = parse_private_key_pem(&good[..n], None);
        }
    }

    #[test]
    fn legacy_encrypted_pem_is_refused_with_a_hint() {
        let text = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert!(is_encrypted_pem(text));
        let e = parse_private_key_pem(text, Some(b"x")).unwrap_err();
        assert!(matches!(e, KeyFileError::Unsupported(_)));
        assert!(e.to_string().contains("openssl pkcs8"));
    }

    #[test]
    fn write_refuses_existing_and_sets_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id");
        let k = IdentityKey::generate();
        write_private_key(&path, &k, None, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let e = write_private_key(&path, &IdentityKey::generate(), None, false).unwrap_err();
        assert!(matches!(e, KeyFileError::Exists(_)));
        assert_eq!(read_private_key(&path, None).unwrap().public(), k.public());
        let k2 = IdentityKey::generate();
        write_private_key(&path, &k2, Some(b"pw"), true).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let got =
            load_identity(&path, &PassphraseSource::Given(Zeroizing::new("pw".into()))).unwrap();
        assert_eq!(got.public(), k2.public());
        let e = load_identity(&path, &PassphraseSource::None).unwrap_err();
        assert!(matches!(e.kind(), KeyFileError::PassphraseNeeded));
        assert!(e.to_string().contains(&path.display().to_string()));
        // Only the key file is left: no temporary files.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            let _ = parse_private_key_pem(&text, Some(b"x"));
            let _ = parse_public_key_pem(&text);
            let _ = is_encrypted_pem(&text);
        }

        #[test]
        fn arbitrary_der_in_pem_never_panics(
            der in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            label in 0usize..5,
        ) {
            let label = ["PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY", "PUBLIC KEY", "X"][label];
            let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
            let text = format!("-----BEGIN {label}-----\n{b64}\n-----END {label}-----\n");
            let _ = parse_private_key_pem(&text, Some(b"x"));
            let _ = parse_public_key_pem(&text);
        }

        #[test]
        fn bit_flips_in_a_valid_key_never_panic(pos in 0usize..200, bit in 0u8..8) {
            let k = IdentityKey::from(SigningKey::from_slice(&[7u8; 32]).unwrap());
            let pem = private_key_to_pem(&k, None).unwrap();
            let blocks = pem_blocks(&pem).unwrap();
            let mut der = blocks[0].der.to_vec();
            let i = pos % der.len();
            der[i] ^= 1 << bit;
            let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
            let text = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
            let _ = parse_private_key_pem(&text, None);
        }
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = read_public_key(Path::new("/nonexistent/x.pub")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.pub"));
    }
}
