//! The session cache (like ssh's ControlMaster): a session outlives one
//! `remo` command, so a passphrase is not asked on every command and
//! `remo logout` ends something real.
//!
//! One file per (server, user) in `$XDG_RUNTIME_DIR/remo/` (directory 0700,
//! files 0600, both on the per-user tmpfs). The file holds the session keys,
//! so it is as sensitive as an unlocked key for the session's lifetime; it
//! is never printed. Request numbers are allocated under an exclusive
//! `flock` on the file, so concurrent `remo` processes sharing a session
//! never reuse an `R`.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::conn::{RequestNumbers, SessionParams};
use super::error::ClientError;
use super::known::{check_private_dir, create_private_dir, open_private_file};
use crate::proto::b64;
use crate::proto::framing::Framing;
use crate::proto::identity::PublicKey;

/// Seconds of slack: a session about to expire is not worth resuming.
const EXPIRY_SLACK: i64 = 5;

/// `$XDG_RUNTIME_DIR/remo`, if the runtime directory exists.
pub(crate) fn default_dir() -> Option<PathBuf> {
    let d = PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR")?);
    (d.is_absolute() && d.is_dir()).then(|| d.join("remo"))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[derive(Serialize, Deserialize)]
struct CacheRecord {
    base_url: String,
    user: String,
    sid: String,
    c2s: String,
    s2c: String,
    server_key: String,
    next_r: u64,
    timeout: u64,
    expires: i64,
    /// The framing the server offered (`text`, `binary`); a file written
    /// before framings existed has none, which reads as text.
    #[serde(default)]
    framing: Option<String>,
}

impl Drop for CacheRecord {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.c2s.zeroize();
        self.s2c.zeroize();
    }
}

/// The cache file of one (server, user).
#[derive(Debug, Clone)]
pub(crate) struct SessionCache {
    path: PathBuf,
}

fn lock(path: &Path, create: bool) -> Result<Option<Flock<std::fs::File>>, ClientError> {
    if let Some(dir) = path.parent() {
        match check_private_dir(dir) {
            Ok(()) => {}
            // No directory yet: nothing cached (a store creates it first).
            // Decided on this one look: a second one (`dir.exists()`) can
            // find the directory that a parallel remo (a fleet command's
            // children) created meanwhile, and turned "nothing cached"
            // into an error.
            Err(ClientError::Io { source, .. })
                if !create && source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
    }
    let Some(f) = open_private_file(path, create)? else {
        return Ok(None);
    };
    Flock::lock(f, FlockArg::LockExclusive)
        .map(Some)
        .map_err(|(_, e)| ClientError::io(path, "cannot lock", e.into()))
}

fn read_record(f: &mut std::fs::File) -> Option<CacheRecord> {
    let mut text = Zeroizing::new(String::new());
    f.rewind().ok()?;
    f.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_record(f: &mut std::fs::File, rec: &CacheRecord, path: &Path) -> Result<(), ClientError> {
    let text = Zeroizing::new(
        serde_json::to_string(rec)
            .map_err(|e| ClientError::Local(format!("cannot encode session cache: {e}")))?,
    );
    f.set_len(0)
        .and_then(|_| f.rewind())
        .and_then(|_| f.write_all(text.as_bytes()))
        .map_err(|e| ClientError::io(path, "cannot write", e))
}

fn key32(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    b64::decode_array::<32>(text).ok().map(Zeroizing::new)
}

impl SessionCache {
    /// The cache file for `base_url` and `user` under `dir`.
    pub(crate) fn new(dir: &Path, base_url: &str, user: &str) -> Self {
        let digest = Sha256::digest(format!("{}\n{user}", base_url.trim_end_matches('/')));
        let name: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        SessionCache {
            path: dir.join(format!("{name}.session")),
        }
    }

    /// The file's path.
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The cached session, if there is one for this server and user that
    /// has not expired and was verified against `pinned`. Anything else
    /// (missing, corrupt, expired, other key) is `None`: just log in again.
    pub(crate) fn load(
        &self,
        base_url: &str,
        user: &str,
        pinned: &PublicKey,
    ) -> Result<Option<SessionParams>, ClientError> {
        let Some(mut f) = lock(&self.path, false)? else {
            return Ok(None);
        };
        let Some(rec) = read_record(&mut f) else {
            return Ok(None);
        };
        if rec.base_url != base_url.trim_end_matches('/')
            || rec.user != user
            || rec.expires <= now() + EXPIRY_SLACK
            || rec.server_key != pinned.to_b64()
        {
            return Ok(None);
        }
        let (Some(c2s), Some(s2c)) = (key32(&rec.c2s), key32(&rec.s2c)) else {
            return Ok(None);
        };
        Ok(Some(SessionParams {
            base_url: rec.base_url.clone(),
            user: rec.user.clone(),
            sid: rec.sid.clone(),
            c2s,
            s2c,
            timeout: rec.timeout,
            server_key: pinned.clone(),
            framing: rec
                .framing
                .as_deref()
                .and_then(Framing::from_name)
                .unwrap_or_default(),
        }))
    }

    /// Stores a session whose next unused request number is `next_r`.
    pub(crate) fn store(&self, params: &SessionParams, next_r: u64) -> Result<(), ClientError> {
        if let Some(dir) = self.path.parent() {
            create_private_dir(dir)?;
        }
        let Some(mut f) = lock(&self.path, true)? else {
            return Err(ClientError::Local("cannot create session cache".into()));
        };
        let rec = CacheRecord {
            base_url: params.base_url.clone(),
            user: params.user.clone(),
            sid: params.sid.clone(),
            c2s: b64::encode(params.c2s.as_ref()),
            s2c: b64::encode(params.s2c.as_ref()),
            server_key: params.server_key.to_b64(),
            next_r,
            timeout: params.timeout,
            expires: now().saturating_add(params.timeout as i64),
            framing: Some(params.framing.name().to_string()),
        };
        write_record(&mut f, &rec, &self.path)
    }

    /// Deletes the file (after logout, or when the session is found dead).
    pub(crate) fn remove(&self) -> Result<(), ClientError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ClientError::io(&self.path, "cannot remove", e)),
        }
    }

    /// Request numbers allocated from this file, for the session `sid`.
    pub(crate) fn numbers(&self, sid: &str) -> Arc<dyn RequestNumbers> {
        Arc::new(FileNumbers {
            path: self.path.clone(),
            sid: sid.to_string(),
        })
    }
}

/// Request numbers from the cache file, under its lock; each allocation also
/// pushes the local idea of the idle expiry forward.
struct FileNumbers {
    path: PathBuf,
    sid: String,
}

impl RequestNumbers for FileNumbers {
    fn allocate(&self) -> Result<u64, ClientError> {
        let Some(mut f) = lock(&self.path, false)? else {
            return Err(ClientError::Local(format!(
                "session cache {} disappeared (remo logout ran meanwhile?); run the command again",
                self.path.display()
            )));
        };
        let Some(mut rec) = read_record(&mut f) else {
            return Err(ClientError::Local(format!(
                "session cache {} is corrupt; run the command again",
                self.path.display()
            )));
        };
        if rec.sid != self.sid {
            return Err(ClientError::Local(
                "the cached session was replaced by another remo process; run the command again"
                    .into(),
            ));
        }
        let r = rec.next_r;
        rec.next_r = r.saturating_add(1);
        rec.expires = now().saturating_add(rec.timeout as i64);
        write_record(&mut f, &rec, &self.path)?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::identity::IdentityKey;

    fn params(key: &PublicKey) -> SessionParams {
        SessionParams {
            base_url: "http://h/remo".into(),
            user: "u".into(),
            sid: "SID".into(),
            c2s: Zeroizing::new([1; 32]),
            s2c: Zeroizing::new([2; 32]),
            timeout: 600,
            server_key: key.clone(),
            framing: Framing::Binary,
        }
    }

    #[test]
    fn only_a_missing_directory_means_nothing_cached() {
        let dir = tempfile::tempdir().unwrap();
        let k = IdentityKey::generate().public();
        let missing = SessionCache::new(&dir.path().join("remo"), "http://h/remo", "u");
        assert!(missing.load("http://h/remo", "u", &k).unwrap().is_none());
        // Something else in its place is an error, not an empty cache.
        std::fs::write(dir.path().join("remo"), b"").unwrap();
        let file = SessionCache::new(&dir.path().join("remo"), "http://h/remo", "u");
        assert!(file.load("http://h/remo", "u", &k).is_err());
    }

    #[test]
    fn store_load_allocate_remove() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cdir = dir.path().join("remo");
        let k = IdentityKey::generate().public();
        let c = SessionCache::new(&cdir, "http://h/remo/", "u");
        assert!(c.load("http://h/remo", "u", &k).unwrap().is_none());
        c.store(&params(&k), 1).unwrap();
        let mode = std::fs::metadata(c.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = std::fs::metadata(&cdir).unwrap().permissions().mode();
        assert_eq!(dmode & 0o777, 0o700);
        let p = c.load("http://h/remo", "u", &k).unwrap().unwrap();
        assert_eq!((p.sid.as_str(), *p.c2s, *p.s2c), ("SID", [1; 32], [2; 32]));
        assert_eq!(p.framing, Framing::Binary, "the offered framing is cached");
        let other = IdentityKey::generate().public();
        assert!(c.load("http://h/remo", "u", &other).unwrap().is_none());
        let n = c.numbers("SID");
        let rs: Vec<u64> = (0..3).map(|_| n.allocate().unwrap()).collect();
        assert_eq!(rs, vec![1, 2, 3]);
        assert!(c.numbers("OTHER").allocate().is_err());
        c.remove().unwrap();
        assert!(n.allocate().is_err());
        assert!(c.load("http://h/remo", "u", &k).unwrap().is_none());
    }
}
