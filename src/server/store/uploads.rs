//! Staged uploads: the resumable `put`s in progress (remo's extension of
//! §6, see `server::ops::upload`), in memory, per instance.
//!
//! An upload belongs to a user, not to a session, so a client whose session
//! expired logs in again and goes on. Whoever is not the owner gets the
//! same `not_found` as for an id that never existed: ids are 128 random
//! bits, but the owner check, not their secrecy, is what keeps others out.
//! A certificate session's uploads belong to the certificate's CA and key
//! as well as the name, so neither a registered user of the same name nor
//! another CA's certificate for it can touch them.
//!
//! Everything here is bounded: entries in all and per user (checked and
//! taken in one step under the lock), and the idle time after which an
//! entry is dropped, by the periodic reaper or by the next look-up. What an
//! entry holds (the staging file's descriptor, and its journaled name where
//! the file system has no unnamed files) is released by dropping it, always
//! outside the lock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::proto::b64;
use crate::proto::response::{ErrorCode, OpError};
use crate::server::core::session::Session;
use crate::server::store::certtrust::CertInfo;

/// Who an upload belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    /// The user name.
    pub user: String,
    /// For a certificate session: the CA's and the certificate key's
    /// fingerprints.
    pub cert: Option<(String, String)>,
}

impl Owner {
    /// The owner a session's requests act as.
    pub(crate) fn of(s: &Session) -> Owner {
        Owner {
            user: s.user.clone(),
            cert: s.cert.as_ref().map(|c| (c.ca.clone(), c.key.clone())),
        }
    }
}

/// The bounds of the store, from `[limits]` (read per request, so a reload
/// applies them to the next one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Most staged uploads in the instance.
    pub total: usize,
    /// Most staged uploads of one user.
    pub per_user: usize,
    /// An upload untouched this long is dropped.
    pub idle: Duration,
}

/// Why an upload could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UploadError {
    /// No such upload for this user (never was, someone else's, expired,
    /// committed, discarded): one answer for all.
    #[error("no such upload (it may have expired, been committed or discarded)")]
    NotFound,
    /// Another request of the same upload is running.
    #[error("another request of this upload is in progress")]
    Busy,
    /// `max_uploads` are staged.
    #[error("too many staged uploads on this server (max_uploads)")]
    Full,
    /// The user has `max_uploads_per_user` staged.
    #[error("too many staged uploads for this user (max_uploads_per_user); commit or abort one, or wait for one to expire")]
    UserFull,
}

impl UploadError {
    /// The operation error it answers.
    pub(crate) fn to_op_error(&self) -> OpError {
        let code = match self {
            UploadError::NotFound => ErrorCode::NotFound,
            UploadError::Busy => ErrorCode::Conflict,
            UploadError::Full | UploadError::UserFull => ErrorCode::Unavailable,
        };
        OpError::new(code, self.to_string())
    }
}

struct Entry<T> {
    owner: Owner,
    /// The certificate of the session that last used it (the revocation
    /// watcher drops the upload when it no longer allows it).
    cert: Option<CertInfo>,
    last: Instant,
    /// `None` while a request holds it (and at the start, before the first
    /// part is in).
    slot: Option<T>,
}

/// The staged uploads of one instance (shared with the instance a reload
/// puts in its place).
pub(crate) struct Uploads<T> {
    map: Mutex<HashMap<String, Entry<T>>>,
}

impl<T> Default for Uploads<T> {
    fn default() -> Self {
        Uploads {
            map: Mutex::default(),
        }
    }
}

fn new_id() -> String {
    use rand_core::RngCore;
    let mut raw = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut raw);
    b64::encode(&raw)
}

impl<T> Uploads<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry<T>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves an entry for a new upload of `owner`, held (busy) by the
    /// caller until [`Uploads::give_back`]; checks both bounds and takes
    /// the place in one step. Idle entries are dropped first.
    pub(crate) fn reserve(
        &self,
        owner: Owner,
        cert: Option<CertInfo>,
        b: &Bounds,
    ) -> Result<String, UploadError> {
        let mut expired = Vec::new();
        let mut map = self.lock();
        Self::expire(&mut map, b.idle, &mut expired);
        let res = if map.len() >= b.total {
            Err(UploadError::Full)
        } else if map.values().filter(|e| e.owner.user == owner.user).count() >= b.per_user {
            Err(UploadError::UserFull)
        } else {
            let mut id = new_id();
            while map.contains_key(&id) {
                id = new_id();
            }
            map.insert(
                id.clone(),
                Entry {
                    owner,
                    cert,
                    last: Instant::now(),
                    slot: None,
                },
            );
            Ok(id)
        };
        drop(map);
        drop(expired);
        res
    }

    /// Takes the upload `id` of `owner` for one request (it is busy until
    /// given back or released). An idle one is dropped here.
    pub(crate) fn take(
        &self,
        id: &str,
        owner: &Owner,
        cert: Option<&CertInfo>,
        idle: Duration,
    ) -> Result<T, UploadError> {
        let mut map = self.lock();
        let Some(e) = map.get_mut(id) else {
            return Err(UploadError::NotFound);
        };
        if &e.owner != owner {
            return Err(UploadError::NotFound);
        }
        if e.slot.is_some() && e.last.elapsed() > idle {
            let gone = map.remove(id);
            drop(map);
            drop(gone);
            return Err(UploadError::NotFound);
        }
        let v = e.slot.take().ok_or(UploadError::Busy)?;
        e.cert = cert.cloned();
        e.last = Instant::now();
        Ok(v)
    }

    /// Puts a taken upload back; its idle time starts now. `Err` gives the
    /// value back when the entry was dropped meanwhile (revocation): the
    /// caller discards it.
    pub(crate) fn give_back(&self, id: &str, v: T) -> Result<(), T> {
        let mut map = self.lock();
        match map.get_mut(id) {
            Some(e) if e.slot.is_none() => {
                e.slot = Some(v);
                e.last = Instant::now();
                Ok(())
            }
            _ => Err(v),
        }
    }

    /// Whether the taken upload `id` is still in the store (a revocation
    /// drops entries even while a request holds them).
    pub(crate) fn held(&self, id: &str) -> bool {
        self.lock().get(id).is_some_and(|e| e.slot.is_none())
    }

    /// Forgets a taken upload (committed, aborted, discarded, or a start
    /// whose first part failed).
    pub(crate) fn release(&self, id: &str) {
        let gone = self.lock().remove(id);
        drop(gone);
    }

    fn expire(map: &mut HashMap<String, Entry<T>>, idle: Duration, out: &mut Vec<Entry<T>>) {
        let old: Vec<String> = map
            .iter()
            .filter(|(_, e)| e.slot.is_some() && e.last.elapsed() > idle)
            .map(|(k, _)| k.clone())
            .collect();
        for k in old {
            if let Some(e) = map.remove(&k) {
                log::info!("staged upload {k} of {} expired; discarded", e.owner.user);
                out.push(e);
            }
        }
    }

    /// Drops the uploads idle longer than `idle`; returns how many.
    pub(crate) fn reap(&self, idle: Duration) -> usize {
        let mut expired = Vec::new();
        Self::expire(&mut self.lock(), idle, &mut expired);
        expired.len()
    }

    /// Drops every upload for which `gone(owner, cert)` holds, held by a
    /// request or not (that request then discards it); returns how many.
    pub(crate) fn drop_where(&self, gone: impl Fn(&Owner, Option<&CertInfo>) -> bool) -> usize {
        let mut map = self.lock();
        let ids: Vec<String> = map
            .iter()
            .filter(|(_, e)| gone(&e.owner, e.cert.as_ref()))
            .map(|(k, _)| k.clone())
            .collect();
        let dropped: Vec<Entry<T>> = ids.iter().filter_map(|k| map.remove(k)).collect();
        drop(map);
        dropped.len()
    }

    /// The names of the users who have uploads staged.
    pub(crate) fn users(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lock().values().map(|e| e.owner.user.clone()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// How many uploads are staged.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(u: &str) -> Owner {
        Owner {
            user: u.into(),
            cert: None,
        }
    }

    const B: Bounds = Bounds {
        total: 3,
        per_user: 2,
        idle: Duration::from_secs(60),
    };

    #[test]
    fn owners_bounds_and_busy() {
        let s: Uploads<u32> = Uploads::default();
        let a = s.reserve(owner("a"), None, &B).unwrap();
        assert_eq!(a.len(), 22);
        // Held by the start until given back.
        assert_eq!(
            s.take(&a, &owner("a"), None, B.idle),
            Err(UploadError::Busy)
        );
        s.give_back(&a, 7).unwrap();
        // Someone else, or the same name from a certificate: not found.
        assert_eq!(
            s.take(&a, &owner("b"), None, B.idle),
            Err(UploadError::NotFound)
        );
        let cert_a = Owner {
            user: "a".into(),
            cert: Some(("ca".into(), "k".into())),
        };
        assert_eq!(
            s.take(&a, &cert_a, None, B.idle),
            Err(UploadError::NotFound)
        );
        assert_eq!(
            s.take("nope", &owner("a"), None, B.idle),
            Err(UploadError::NotFound)
        );
        assert_eq!(s.take(&a, &owner("a"), None, B.idle), Ok(7));
        assert_eq!(
            s.take(&a, &owner("a"), None, B.idle),
            Err(UploadError::Busy)
        );
        s.give_back(&a, 8).unwrap();
        let _a2 = s.reserve(owner("a"), None, &B).unwrap();
        assert_eq!(s.reserve(owner("a"), None, &B), Err(UploadError::UserFull));
        let _b = s.reserve(owner("b"), None, &B).unwrap();
        assert_eq!(s.reserve(owner("c"), None, &B), Err(UploadError::Full));
        s.release(&a);
        assert_eq!(
            s.take(&a, &owner("a"), None, B.idle),
            Err(UploadError::NotFound)
        );
        assert!(s.reserve(owner("c"), None, &B).is_ok());
    }

    #[test]
    fn idle_uploads_go_and_dropped_ones_are_not_given_back() {
        let s: Uploads<u32> = Uploads::default();
        let a = s.reserve(owner("a"), None, &B).unwrap();
        s.give_back(&a, 1).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        // A held one is never reaped.
        let b = s.reserve(owner("b"), None, &B).unwrap();
        assert_eq!(s.reap(Duration::from_millis(5)), 1);
        assert_eq!(
            s.take(&a, &owner("a"), None, B.idle),
            Err(UploadError::NotFound)
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s.drop_where(|o, _| o.user == "b"), 1);
        assert_eq!(s.give_back(&b, 2), Err(2));
        assert_eq!(s.len(), 0);
    }
}
