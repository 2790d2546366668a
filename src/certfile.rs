//! The files around §7 certificates that are remo's own, not the wire
//! protocol's: the certificate file a user keeps next to their key, and the
//! revocation list a server reads. Both are written by `remo ca` and read by
//! the client (the first) or remod (the second), so they live here, once.
//!
//! A certificate file is the certificate's exact text followed by one line
//! with the CA's signature:
//!
//! ```text
//! remo/1 cert
//! ca SHA256:…
//! …
//! grant cmd:/usr/bin/uptime
//! sig <b64 of the CA signature over everything above>
//! ```
//!
//! so `cat` shows what it grants and the bytes the CA signed are the bytes
//! before the last line. A revocation list is lines of
//!
//! ```text
//! # comments and blank lines are allowed
//! serial SHA256:<CA fingerprint> <serial>
//! key SHA256:<user key fingerprint>
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::proto::b64;
use crate::proto::cert::{parse_serial, valid_fingerprint, CertError, Certificate, MAX_CERT_LEN};
use crate::proto::identity::SIG_LEN;

/// Largest certificate file: the certificate and its signature line.
pub const MAX_CERT_FILE_LEN: usize = MAX_CERT_LEN + 128;
/// Largest revocation list remod reads (about 200,000 entries).
pub const MAX_REVOCATION_LEN: u64 = 16 << 20;

/// Why a certificate file or a revocation list was refused. Messages name
/// a line, never quote the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertFileError {
    /// The certificate part does not parse (§7).
    #[error("{0}")]
    Cert(#[from] CertError),
    /// No `sig` line at the end.
    #[error("no `sig` line after the certificate (the file ends with `sig <b64>` and a newline)")]
    NoSignature,
    /// The `sig` line is not b64 of a 64-byte signature.
    #[error("the `sig` line is not b64 of a 64-byte signature")]
    BadSignature,
    /// The file is larger than a certificate can be.
    #[error("file too large for a certificate ({0} bytes)")]
    TooLarge(usize),
    /// A revocation-list line is not one of the two forms.
    #[error("line {line}: {why}")]
    BadEntry {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// The revocation list is not UTF-8.
    #[error("not valid UTF-8")]
    NotUtf8,
}

/// A certificate as a user keeps it: the parsed certificate, its exact text
/// and the CA's signature over that text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFile {
    /// The parsed certificate.
    pub cert: Certificate,
    /// Its canonical text (what the CA signed and what `/auth` sends).
    pub text: String,
    /// The CA's signature over `text`.
    pub sig: [u8; SIG_LEN],
}

impl CertFile {
    /// A certificate and its signature, for writing.
    pub fn new(cert: Certificate, sig: [u8; SIG_LEN]) -> Self {
        CertFile {
            text: cert.to_text(),
            cert,
            sig,
        }
    }

    /// Parses a certificate file. The signature is not checked here (the
    /// client has no CA key; the server checks it).
    pub fn parse(bytes: &[u8]) -> Result<CertFile, CertFileError> {
        if bytes.len() > MAX_CERT_FILE_LEN {
            return Err(CertFileError::TooLarge(bytes.len()));
        }
        let body = bytes
            .strip_suffix(b"\n")
            .ok_or(CertFileError::NoSignature)?;
        let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let (cert_bytes, sig_line) = body.split_at(start);
        let sig_b64 = sig_line
            .strip_prefix(b"sig ")
            .ok_or(CertFileError::NoSignature)?;
        let sig_text = std::str::from_utf8(sig_b64).map_err(|_| CertFileError::BadSignature)?;
        let sig: [u8; SIG_LEN] =
            b64::decode_array(sig_text).map_err(|_| CertFileError::BadSignature)?;
        let cert = Certificate::parse(cert_bytes)?;
        let text = cert.to_text();
        Ok(CertFile { cert, text, sig })
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        format!("{}sig {}\n", self.text, b64::encode(&self.sig))
    }

    /// Where the certificate for a key file lives: the key's path without a
    /// `.pub` suffix, plus `-cert` (`id_p256` and `id_p256.pub` both give
    /// `id_p256-cert`), as ssh keeps `-cert.pub` beside a key.
    pub fn path_for_key(key: &Path) -> PathBuf {
        let mut s = key.as_os_str().to_os_string();
        if let Some(stem) = key
            .to_str()
            .and_then(|k| k.strip_suffix(".pub"))
            .filter(|s| !s.is_empty())
        {
            s = stem.into();
        }
        s.push("-cert");
        PathBuf::from(s)
    }
}

/// A revocation list: certificate serials per CA, and user keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revocations {
    serials: HashSet<(String, u64)>,
    keys: HashSet<String>,
    /// The lines as read, so `remo ca revoke` keeps comments and order.
    lines: Vec<String>,
}

/// Reads at most `max` bytes from `r`; `None` if there are more (the
/// files around certificates are bounded so that a huge or endless file is
/// refused rather than read).
pub(crate) fn read_at_most(r: impl std::io::Read, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut buf = Vec::new();
    r.take(max.saturating_add(1)).read_to_end(&mut buf)?;
    Ok((buf.len() as u64 <= max).then_some(buf))
}

impl Revocations {
    /// Parses a list; any bad line refuses the whole list (a server must
    /// not go on without an entry it could not read).
    pub fn parse(bytes: &[u8]) -> Result<Revocations, CertFileError> {
        let text = std::str::from_utf8(bytes).map_err(|_| CertFileError::NotUtf8)?;
        let mut r = Revocations::default();
        for (i, line) in text.lines().enumerate() {
            let bad = |why| CertFileError::BadEntry { line: i + 1, why };
            let t = line.trim();
            // Kept trimmed: what is printed parses back to the same lines
            // (a `\r` before the newline would otherwise be eaten one per
            // round).
            if t.is_empty() || t.starts_with('#') {
                r.lines.push(t.to_string());
                continue;
            }
            let mut words = t.split_ascii_whitespace();
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some("serial"), Some(ca), Some(n), None) => {
                    if !valid_fingerprint(ca) {
                        return Err(bad("the CA is not a SHA256: fingerprint"));
                    }
                    let n = parse_serial(n).map_err(|_| bad("not a serial (1 to 2^63-1)"))?;
                    r.serials.insert((ca.to_string(), n));
                }
                (Some("key"), Some(fp), None, None) => {
                    if !valid_fingerprint(fp) {
                        return Err(bad("not a SHA256: key fingerprint"));
                    }
                    r.keys.insert(fp.to_string());
                }
                _ => {
                    return Err(bad(
                        "expected `serial CA-FINGERPRINT N` or `key FINGERPRINT`",
                    ))
                }
            }
            r.lines.push(t.to_string());
        }
        Ok(r)
    }

    /// Whether certificate `serial` of the CA `ca` is revoked.
    pub fn serial_revoked(&self, ca: &str, serial: u64) -> bool {
        self.serials.contains(&(ca.to_string(), serial))
    }

    /// Whether the user key with this fingerprint is revoked.
    pub fn key_revoked(&self, fingerprint: &str) -> bool {
        self.keys.contains(fingerprint)
    }

    /// Adds a serial; false if it was there already.
    pub fn add_serial(&mut self, ca: &str, serial: u64) -> Result<bool, CertFileError> {
        let line = format!("serial {ca} {serial}");
        let parsed = Revocations::parse(line.as_bytes())?;
        if self.serial_revoked(ca, serial) {
            return Ok(false);
        }
        self.serials.extend(parsed.serials);
        self.lines.push(line);
        Ok(true)
    }

    /// Adds a key; false if it was there already.
    pub fn add_key(&mut self, fingerprint: &str) -> Result<bool, CertFileError> {
        let line = format!("key {fingerprint}");
        let parsed = Revocations::parse(line.as_bytes())?;
        if self.key_revoked(fingerprint) {
            return Ok(false);
        }
        self.keys.extend(parsed.keys);
        self.lines.push(line);
        Ok(true)
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.serials.len() + self.keys.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The list's text (its lines as read, then the added ones).
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        if self.lines.is_empty() {
            s.push_str("# remo revocation list (docs/fleet.md): serial CA-FINGERPRINT N | key FINGERPRINT\n");
        }
        for l in &self.lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::identity::IdentityKey;

    fn cert(ca: &IdentityKey, user: &IdentityKey) -> Certificate {
        Certificate {
            ca: ca.public().fingerprint(),
            serial: 7,
            user: "alice".into(),
            key: user.public(),
            not_before: 1000,
            not_after: 2000,
            hosts: vec!["web*".into()],
            grants: vec!["cmd:/usr/bin/uptime".into(), "get:/var/log".into()],
        }
    }

    #[test]
    fn cert_file_round_trip_and_refusals() {
        let (ca, user) = (IdentityKey::generate(), IdentityKey::generate());
        let c = cert(&ca, &user);
        let sig = c.sign(&ca).unwrap();
        let f = CertFile::new(c.clone(), sig);
        let text = f.to_text();
        assert!(text.starts_with("remo/1 cert\n") && text.ends_with("\n"));
        let back = CertFile::parse(text.as_bytes()).unwrap();
        assert_eq!(back, f);
        assert!(back.cert.verify_issuer(&ca.public(), &back.sig).is_ok());
        // No signature line, a bad one, a cut file, a bad certificate.
        assert_eq!(
            CertFile::parse(c.to_text().as_bytes()).unwrap_err(),
            CertFileError::NoSignature
        );
        let bad_sig = text.replace("\nsig ", "\nsig x");
        assert_eq!(
            CertFile::parse(bad_sig.as_bytes()).unwrap_err(),
            CertFileError::BadSignature
        );
        assert_eq!(
            CertFile::parse(text.trim_end().as_bytes()).unwrap_err(),
            CertFileError::NoSignature
        );
        let other = text.replace("serial 7", "serial 07");
        assert!(matches!(
            CertFile::parse(other.as_bytes()).unwrap_err(),
            CertFileError::Cert(_)
        ));
        // Every prefix of the file is refused without a panic.
        for n in 0..text.len() {
            assert!(CertFile::parse(&text.as_bytes()[..n]).is_err(), "{n}");
        }
    }

    #[test]
    fn cert_path_beside_the_key() {
        for (key, cert) in [
            ("/h/.config/remo/id_p256", "/h/.config/remo/id_p256-cert"),
            (
                "/h/.config/remo/id_p256.pub",
                "/h/.config/remo/id_p256-cert",
            ),
            ("client/admin.key", "client/admin.key-cert"),
            (".pub", ".pub-cert"),
        ] {
            assert_eq!(CertFile::path_for_key(Path::new(key)), Path::new(cert));
        }
    }

    #[test]
    fn revocation_list() {
        let ca = IdentityKey::generate().public().fingerprint();
        let key = IdentityKey::generate().public().fingerprint();
        let text = format!("# list\n\nserial {ca} 42\r\n  key {key}  \n");
        let r = Revocations::parse(text.as_bytes()).unwrap();
        assert!(r.serial_revoked(&ca, 42));
        assert!(!r.serial_revoked(&ca, 43));
        assert!(!r.serial_revoked(&key, 42));
        assert!(r.key_revoked(&key));
        assert!(!r.key_revoked(&ca));
        assert_eq!(r.len(), 2);
        assert_eq!(
            r.to_text(),
            format!("# list\n\nserial {ca} 42\nkey {key}\n")
        );
        // Printing is a fixed point (found by the fuzzer: "\r\r\r").
        for odd in ["\r\r\r", "#\r\r\n\r", " \r"] {
            let once = Revocations::parse(odd.as_bytes()).unwrap().to_text();
            let twice = Revocations::parse(once.as_bytes()).unwrap().to_text();
            assert_eq!(once, twice, "{odd:?}");
        }
        for (bad, line) in [
            (format!("serial {ca} 042\n"), 1),
            (format!("serial {ca} 0\n"), 1),
            (format!("serial {ca} 9223372036854775808\n"), 1),
            ("# x\nserial SHA256:abc 1\n".to_string(), 2),
            (format!("key {key} extra\n"), 1),
            ("revoke everything\n".to_string(), 1),
            (format!("key {}\n", &key[..key.len() - 1]), 1),
        ] {
            match Revocations::parse(bad.as_bytes()) {
                Err(CertFileError::BadEntry { line: l, .. }) => assert_eq!(l, line, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert_eq!(
            Revocations::parse(b"\xff\n").unwrap_err(),
            CertFileError::NotUtf8
        );
        let mut r = Revocations::default();
        assert!(r.add_serial(&ca, 5).unwrap());
        assert!(!r.add_serial(&ca, 5).unwrap());
        assert!(r.add_key(&key).unwrap());
        assert!(r.add_serial("nope", 5).is_err());
        let again = Revocations::parse(r.to_text().as_bytes()).unwrap();
        assert!(again.serial_revoked(&ca, 5) && again.key_revoked(&key));
        assert_eq!(again.len(), 2);
    }
}
