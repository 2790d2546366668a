//! What a server trusts for certificate logins (PROTOCOL.md §7): the CA
//! keys, the revocation list and its own name for `hosts` patterns.
//!
//! Both files pass the same ownership checks as the server key and user
//! database ([`crate::server::enforce::trust`]) every time they are read,
//! and both are watched: the instance's watcher calls
//! [`CertTrust::refresh`] a few times a second, which looks at the files'
//! identity and times and reads them again when they changed. A file that
//! becomes unreadable, untrusted or malformed fails closed: certificate
//! logins are refused and the sessions certificates authorised end, until
//! the file is fixed (registered users are not affected).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::certfile::{Revocations, MAX_REVOCATION_LEN};
use crate::proto::cert::{host_matches, CertError, Certificate};
use crate::proto::identity::PublicKey;
use crate::server::core::config::CertSettings;
use crate::server::enforce::trust;

/// Largest CA key file read (a few hundred keys).
const MAX_CA_FILE_LEN: u64 = 1 << 20;

/// Why certificate trust could not be set up (→ the instance does not load).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CertTrustError {
    /// A file is unusable.
    #[error("{setting} {path}: {why}")]
    File {
        /// `REMO_CA_KEYS` or `REMO_REVOKED`.
        setting: &'static str,
        /// As named.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The server name cannot be matched by patterns.
    #[error("REMO_SERVER_NAME {0:?} is not a server name (1 to 253 characters, no blanks or control characters)")]
    BadName(String),
    /// No name was given and the host name cannot be had.
    #[error("REMO_SERVER_NAME is not set and the host name cannot be read: {0}")]
    NoHostName(String),
}

/// Why a certificate was not accepted, or no longer is (log and audit only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertRefusal {
    /// The server trusts no CA.
    NoCa,
    /// The certificate names a CA the server does not trust.
    UntrustedCa,
    /// The CA signature does not verify.
    CaSignature,
    /// Before `NB − 300`.
    NotYetValid,
    /// After `NA`.
    Expired,
    /// No `hosts` pattern matches the server's name.
    WrongHost,
    /// The serial is on the revocation list.
    SerialRevoked,
    /// The user key is on the revocation list.
    KeyRevoked,
    /// The CA file cannot be used now (fails closed).
    CaFileUnusable,
    /// The revocation list cannot be used now (fails closed).
    ListUnusable,
}

impl CertRefusal {
    /// For the log and the audit's outcome.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CertRefusal::NoCa => "certificate: this server trusts no CA",
            CertRefusal::UntrustedCa => "certificate: untrusted CA",
            CertRefusal::CaSignature => "certificate: CA signature does not verify",
            CertRefusal::NotYetValid => "certificate: not yet valid",
            CertRefusal::Expired => "certificate: expired",
            CertRefusal::WrongHost => "certificate: not for this server",
            CertRefusal::SerialRevoked => "certificate: serial revoked",
            CertRefusal::KeyRevoked => "certificate: key revoked",
            CertRefusal::CaFileUnusable => "certificate: CA file unusable",
            CertRefusal::ListUnusable => "certificate: revocation list unusable",
        }
    }
}

/// What a session keeps of the certificate that authorised it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertInfo {
    /// The CA's fingerprint.
    pub ca: String,
    /// The serial.
    pub serial: u64,
    /// The user key's fingerprint.
    pub key: String,
    /// `NA`: the session ends then at the latest.
    pub not_after: i64,
    /// The `hosts` patterns: a reload that renames the server ends the
    /// sessions whose certificate does not name it.
    pub hosts: Vec<String>,
}

impl CertInfo {
    /// From an accepted certificate.
    pub(crate) fn of(cert: &Certificate) -> CertInfo {
        CertInfo {
            ca: cert.ca.clone(),
            serial: cert.serial,
            key: cert.key.fingerprint(),
            not_after: cert.not_after,
            hosts: cert.hosts.clone(),
        }
    }

    /// `CA-FINGERPRINT#SERIAL`, for the audit and the log.
    pub(crate) fn label(&self) -> String {
        format!("{}#{}", self.ca, self.serial)
    }
}

/// A file's identity and times: a change in any means "read it again".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    Missing,
    File {
        dev: u64,
        ino: u64,
        len: u64,
        mtime: (i64, i64),
        ctime: (i64, i64),
    },
}

impl Stamp {
    fn of(md: &std::fs::Metadata) -> Stamp {
        Stamp::File {
            dev: md.dev(),
            ino: md.ino(),
            len: md.len(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
        }
    }
}

/// A watched file's last reading.
#[derive(Debug)]
struct Loaded<T> {
    stamp: Option<Stamp>,
    value: Result<Arc<T>, String>,
}

/// What [`reload`] compares a file with: the stamp of the last reading, or
/// why it was unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Last {
    stamp: Option<Stamp>,
    error: Option<String>,
}

impl<T> Loaded<T> {
    fn last(&self) -> Last {
        Last {
            stamp: self.stamp,
            error: self.value.as_ref().err().cloned(),
        }
    }
}

type CaKeys = HashMap<String, PublicKey>;

#[derive(Debug)]
struct State {
    cas: Loaded<CaKeys>,
    revoked: Loaded<Revocations>,
}

/// The certificate trust of one instance.
#[derive(Debug)]
pub(crate) struct CertTrust {
    server_name: String,
    ca_file: Option<PathBuf>,
    revoked_file: Option<PathBuf>,
    state: RwLock<State>,
    /// Set by the first [`CertTrust::refresh`]: until then every session
    /// is checked against this trust (a reload that drops a CA ends its
    /// sessions at the new instance's first look).
    looked: std::sync::atomic::AtomicBool,
}

/// The host name, for the default server name.
fn host_name() -> Result<String, CertTrustError> {
    let name = nix::unistd::gethostname().map_err(|e| CertTrustError::NoHostName(e.to_string()))?;
    name.into_string()
        .map_err(|_| CertTrustError::NoHostName("not UTF-8".into()))
}

/// A name `hosts` patterns can be matched against.
fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Opens a watched file after the trust checks; `None` if it may be and is
/// missing.
fn open_trusted(path: &Path, may_be_missing: bool) -> Result<Option<std::fs::File>, String> {
    if may_be_missing {
        let resolved = trust::check_creatable(path).map_err(|e| e.to_string())?;
        match std::fs::File::open(&resolved) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    } else {
        let t = trust::check_file(path).map_err(|e| e.to_string())?;
        std::fs::File::open(&t.path)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

/// Reads at most `max` bytes; more is an error.
fn read_capped(f: &mut std::fs::File, max: u64) -> Result<Vec<u8>, String> {
    crate::certfile::read_at_most(f, max)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("larger than {max} bytes"))
}

fn parse_cas(bytes: &[u8]) -> Result<CaKeys, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let keys = crate::keyfile::parse_public_keys_pem(text).map_err(|e| e.to_string())?;
    Ok(keys.into_iter().map(|k| (k.fingerprint(), k)).collect())
}

fn parse_revoked(bytes: &[u8]) -> Result<Revocations, String> {
    Revocations::parse(bytes).map_err(|e| e.to_string())
}

/// Reads a watched file again if its stamp changed since `old`; `None`
/// when it did not.
fn reload<T>(
    path: &Path,
    may_be_missing: bool,
    max: u64,
    parse: fn(&[u8]) -> Result<T, String>,
    old: Option<&Last>,
) -> Option<Loaded<T>>
where
    T: Default,
{
    let mut file = match open_trusted(path, may_be_missing) {
        Ok(f) => f,
        Err(why) => {
            // Unchanged if it was already unusable for the same reason.
            if let Some(Last {
                stamp: None,
                error: Some(was),
            }) = old
            {
                if *was == why {
                    return None;
                }
            }
            return Some(Loaded {
                stamp: None,
                value: Err(why),
            });
        }
    };
    let stamp = match &file {
        None => Stamp::Missing,
        Some(f) => match f.metadata() {
            Ok(md) => Stamp::of(&md),
            Err(e) => {
                return Some(Loaded {
                    stamp: None,
                    value: Err(e.to_string()),
                })
            }
        },
    };
    if old.is_some_and(|o| o.stamp == Some(stamp)) {
        return None;
    }
    let value = match file.as_mut() {
        None => Ok(T::default()),
        Some(f) => read_capped(f, max).and_then(|b| parse(&b)),
    };
    Some(Loaded {
        stamp: Some(stamp),
        value: value.map(Arc::new),
    })
}

fn empty<T: Default>() -> Loaded<T> {
    Loaded {
        stamp: Some(Stamp::Missing),
        value: Ok(Arc::new(T::default())),
    }
}

impl CertTrust {
    /// Reads the files named by `s` (after the trust checks); an unusable
    /// file at this point stops the instance from loading, so a mistake is
    /// seen at once rather than as refused logins.
    pub(crate) fn open(s: &CertSettings) -> Result<CertTrust, CertTrustError> {
        let server_name = match &s.server_name {
            Some(n) => n.clone(),
            None => host_name()?,
        };
        if !valid_server_name(&server_name) {
            return Err(CertTrustError::BadName(server_name));
        }
        let file_err = |setting, path: &Path, why| CertTrustError::File {
            setting,
            path: path.to_path_buf(),
            why,
        };
        let cas = match &s.ca_keys {
            None => empty(),
            Some(p) => {
                let l = reload(p, false, MAX_CA_FILE_LEN, parse_cas, None).unwrap_or_else(empty);
                if let Err(why) = &l.value {
                    return Err(file_err("REMO_CA_KEYS", p, why.clone()));
                }
                l
            }
        };
        let revoked = match &s.revoked {
            None => empty(),
            Some(p) => {
                let l =
                    reload(p, true, MAX_REVOCATION_LEN, parse_revoked, None).unwrap_or_else(empty);
                if let Err(why) = &l.value {
                    return Err(file_err("REMO_REVOKED", p, why.clone()));
                }
                l
            }
        };
        Ok(CertTrust {
            server_name,
            ca_file: s.ca_keys.clone(),
            revoked_file: s.revoked.clone(),
            state: RwLock::new(State { cas, revoked }),
            looked: Default::default(),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether at least one CA is trusted now (`/info`'s `certificates`).
    pub(crate) fn enabled(&self) -> bool {
        self.read().cas.value.as_ref().is_ok_and(|c| !c.is_empty())
    }

    /// One line for the start-up log.
    pub(crate) fn describe(&self) -> String {
        let st = self.read();
        let cas = match &st.cas.value {
            Ok(c) => format!("{} CA key(s)", c.len()),
            Err(e) => format!("CA file unusable: {e}"),
        };
        let revoked = match &st.revoked.value {
            Ok(r) => format!("{} revocation(s)", r.len()),
            Err(e) => format!("revocation list unusable: {e}"),
        };
        format!(
            "certificates: server name {:?}, {cas}, {revoked}",
            self.server_name
        )
    }

    /// The §7 checks that are the server's own: a trusted CA whose
    /// signature verifies, the validity window, the host pattern and the
    /// revocation list. (The user name, the login signature under the
    /// certificate's key and the replay check are the handshake's.)
    pub(crate) fn authorize(
        &self,
        cert: &Certificate,
        cert_sig: &[u8],
        now: i64,
    ) -> Result<(), CertRefusal> {
        let st = self.read();
        let cas = Self::cas(&st)?;
        if cas.is_empty() {
            return Err(CertRefusal::NoCa);
        }
        let ca = cas.get(&cert.ca).ok_or(CertRefusal::UntrustedCa)?;
        cert.verify_issuer(ca, cert_sig)
            .map_err(|_| CertRefusal::CaSignature)?;
        match cert.check_validity(now) {
            Ok(()) => {}
            Err(CertError::NotYetValid { .. }) => return Err(CertRefusal::NotYetValid),
            Err(_) => return Err(CertRefusal::Expired),
        }
        if !cert.matches_host(&self.server_name) {
            return Err(CertRefusal::WrongHost);
        }
        Self::not_revoked(&st, &cert.ca, cert.serial, &cert.key.fingerprint())
    }

    /// The trusted CAs, or the refusal while the CA file is unusable.
    fn cas(st: &State) -> Result<&CaKeys, CertRefusal> {
        st.cas
            .value
            .as_deref()
            .map_err(|_| CertRefusal::CaFileUnusable)
    }

    fn not_revoked(st: &State, ca: &str, serial: u64, key: &str) -> Result<(), CertRefusal> {
        let list = st
            .revoked
            .value
            .as_ref()
            .map_err(|_| CertRefusal::ListUnusable)?;
        if list.serial_revoked(ca, serial) {
            return Err(CertRefusal::SerialRevoked);
        }
        if list.key_revoked(key) {
            return Err(CertRefusal::KeyRevoked);
        }
        Ok(())
    }

    /// Whether a live certificate session may go on: its CA is still
    /// trusted, nothing of it is revoked, it has not expired, and it still
    /// names this server (which a reload may have renamed).
    pub(crate) fn still_allows(&self, c: &CertInfo, now: i64) -> Result<(), CertRefusal> {
        if now > c.not_after {
            return Err(CertRefusal::Expired);
        }
        if !c.hosts.iter().any(|p| host_matches(p, &self.server_name)) {
            return Err(CertRefusal::WrongHost);
        }
        let st = self.read();
        if !Self::cas(&st)?.contains_key(&c.ca) {
            return Err(CertRefusal::UntrustedCa);
        }
        Self::not_revoked(&st, &c.ca, c.serial, &c.key)
    }

    /// Reads the files again if they changed; true if anything did. Every
    /// change is logged (never the files' contents).
    pub(crate) fn refresh(&self) -> bool {
        let first = !self.looked.swap(true, std::sync::atomic::Ordering::Relaxed);
        let cas = self.ca_file.as_deref().is_some_and(|p| {
            self.refresh_one(
                p,
                "CA keys",
                false,
                MAX_CA_FILE_LEN,
                parse_cas,
                |s| &mut s.cas,
                |c| format!("{} key(s) trusted", c.len()),
            )
        });
        let revoked = self.revoked_file.as_deref().is_some_and(|p| {
            self.refresh_one(
                p,
                "revocation list",
                true,
                MAX_REVOCATION_LEN,
                parse_revoked,
                |s| &mut s.revoked,
                |r| format!("{} entries", r.len()),
            )
        });
        first || cas || revoked
    }

    /// One watched file of [`CertTrust::refresh`]: read again if it
    /// changed, swapped in, logged.
    #[allow(clippy::too_many_arguments)]
    fn refresh_one<T: Default>(
        &self,
        path: &Path,
        what: &str,
        may_be_missing: bool,
        max: u64,
        parse: fn(&[u8]) -> Result<T, String>,
        slot: fn(&mut State) -> &mut Loaded<T>,
        describe: fn(&T) -> String,
    ) -> bool {
        // What the last reading was, taken under the lock; the file is
        // read without it, so logins are not held up by the I/O.
        let last = {
            let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
            slot(&mut st).last()
        };
        let new = reload(path, may_be_missing, max, parse, Some(&last));
        let Some(new) = new else { return false };
        match &new.value {
            Ok(v) => log::info!("{what} {}: {}", path.display(), describe(v)),
            Err(e) => log::error!(
                "{what} {}: {e}; certificate logins refused and certificate sessions ended until it is fixed",
                path.display()
            ),
        }
        *slot(&mut self.state.write().unwrap_or_else(|p| p.into_inner())) = new;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certfile::CertFile;
    use crate::proto::identity::IdentityKey;

    fn cert(ca: &IdentityKey, user: &IdentityKey, hosts: &str, nb: i64, na: i64) -> CertFile {
        let c = Certificate {
            ca: ca.public().fingerprint(),
            serial: 9,
            user: "alice".into(),
            key: user.public(),
            not_before: nb,
            not_after: na,
            hosts: hosts.split(' ').map(str::to_string).collect(),
            grants: vec!["cmd:/usr/bin/true".into()],
        };
        let sig = c.sign(ca).unwrap();
        CertFile::new(c, sig)
    }

    /// A directory the trust checks accept (mode 0700 under a temp dir we own).
    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn write(p: &Path, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::rename(&tmp, p).unwrap();
    }

    #[test]
    fn authorizes_and_refuses_each_check() {
        let d = dir();
        let (ca, other_ca, user) = (
            IdentityKey::generate(),
            IdentityKey::generate(),
            IdentityKey::generate(),
        );
        let ca_file = d.path().join("ca.pub");
        write(&ca_file, &crate::keyfile::public_key_to_pem(&ca.public()));
        let revoked = d.path().join("revoked");
        let t = CertTrust::open(&CertSettings {
            ca_keys: Some(ca_file.clone()),
            revoked: Some(revoked.clone()),
            server_name: Some("web1".into()),
        })
        .unwrap();
        assert!(t.enabled());
        let now = 10_000;
        let good = cert(&ca, &user, "db* WEB*", now - 10, now + 100);
        assert_eq!(t.authorize(&good.cert, &good.sig, now), Ok(()));
        let info = CertInfo::of(&good.cert);
        assert_eq!(t.still_allows(&info, now), Ok(()));
        assert_eq!(t.still_allows(&info, now + 101), Err(CertRefusal::Expired));
        // The same files, the server renamed (a reload): the session's
        // certificate names web* and db*, not this name.
        let renamed = |name: &str| {
            CertTrust::open(&CertSettings {
                ca_keys: Some(ca_file.clone()),
                revoked: Some(revoked.clone()),
                server_name: Some(name.into()),
            })
            .unwrap()
        };
        assert_eq!(renamed("db7").still_allows(&info, now), Ok(()));
        assert_eq!(
            renamed("mail1").still_allows(&info, now),
            Err(CertRefusal::WrongHost)
        );
        let cases = [
            (
                cert(&other_ca, &user, "*", now - 10, now + 100),
                CertRefusal::UntrustedCa,
            ),
            (
                cert(&ca, &user, "db*", now - 10, now + 100),
                CertRefusal::WrongHost,
            ),
            (
                cert(&ca, &user, "*", now + 301, now + 400),
                CertRefusal::NotYetValid,
            ),
            (
                cert(&ca, &user, "*", now - 100, now - 1),
                CertRefusal::Expired,
            ),
        ];
        for (c, why) in cases {
            assert_eq!(t.authorize(&c.cert, &c.sig, now), Err(why));
        }
        let mut forged = good.sig;
        forged[5] ^= 1;
        assert_eq!(
            t.authorize(&good.cert, &forged, now),
            Err(CertRefusal::CaSignature)
        );
        // Revocation by serial, then by key, read when the file changes.
        assert!(t.refresh(), "the first look checks every session");
        assert!(!t.refresh());
        write(
            &revoked,
            &format!("serial {} 9\n", ca.public().fingerprint()),
        );
        assert!(t.refresh());
        assert_eq!(
            t.authorize(&good.cert, &good.sig, now),
            Err(CertRefusal::SerialRevoked)
        );
        assert_eq!(t.still_allows(&info, now), Err(CertRefusal::SerialRevoked));
        write(&revoked, &format!("key {}\n", user.public().fingerprint()));
        assert!(t.refresh());
        assert_eq!(t.still_allows(&info, now), Err(CertRefusal::KeyRevoked));
        // A broken list fails closed; fixing it restores logins.
        write(&revoked, "serial nonsense\n");
        assert!(t.refresh());
        assert_eq!(
            t.authorize(&good.cert, &good.sig, now),
            Err(CertRefusal::ListUnusable)
        );
        std::fs::remove_file(&revoked).unwrap();
        assert!(t.refresh());
        assert_eq!(t.authorize(&good.cert, &good.sig, now), Ok(()));
        // The CA taken out of the file ends its sessions.
        write(
            &ca_file,
            &crate::keyfile::public_key_to_pem(&other_ca.public()),
        );
        assert!(t.refresh());
        assert_eq!(t.still_allows(&info, now), Err(CertRefusal::UntrustedCa));
    }

    #[test]
    fn bad_settings_stop_the_instance() {
        assert!(matches!(
            CertTrust::open(&CertSettings {
                server_name: Some("a b".into()),
                ..Default::default()
            }),
            Err(CertTrustError::BadName(_))
        ));
        let t = CertTrust::open(&CertSettings::default()).unwrap();
        assert!(!t.enabled());
        assert!(!t.server_name.is_empty());
        let now = 5;
        let (ca, user) = (IdentityKey::generate(), IdentityKey::generate());
        let c = cert(&ca, &user, "*", 0, 10);
        assert_eq!(t.authorize(&c.cert, &c.sig, now), Err(CertRefusal::NoCa));
        assert!(matches!(
            CertTrust::open(&CertSettings {
                ca_keys: Some("/nonexistent/ca.pub".into()),
                ..Default::default()
            }),
            Err(CertTrustError::File { .. })
        ));
    }
}
