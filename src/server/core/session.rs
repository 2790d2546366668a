//! Sessions in memory (PROTOCOL.md §3, §5): keys, the replay window, idle
//! and lifetime limits, caps, and the cancellation that ends everything a
//! session started.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::perms::Grants;
use crate::proto::handshake::SessionKeys;
use crate::proto::record::RecordKey;
use crate::proto::replay::{ReplayError, ReplayWindow};
use crate::server::enforce::contain::{SessionBox, SessionCaps};
use crate::server::store::certtrust::CertInfo;

/// One authenticated session.
pub struct Session {
    /// Session id (b64).
    pub id: String,
    /// The user it belongs to.
    pub user: String,
    /// Key for opening requests.
    pub c2s: RecordKey,
    /// Key for sealing responses.
    pub s2c: RecordKey,
    /// When it was created.
    pub created: Instant,
    /// Idle timeout.
    pub timeout: Duration,
    /// Cancelled when the session ends: every operation and process it
    /// started watches this token.
    pub cancel: CancellationToken,
    /// The container of every process the session starts (killed when
    /// the session ends).
    pub container: Arc<SessionBox>,
    /// The certificate that authorised the session, if one did (§7): its
    /// grants are the certificate's, and it ends at its `not_after`.
    pub(crate) cert: Option<CertInfo>,
    /// When it was created, Unix seconds (for `remod status`).
    pub(crate) created_unix: i64,
    /// The address it logged in from (for `remod status`).
    remote: std::sync::OnceLock<String>,
    state: Mutex<SessionState>,
    grants: Mutex<Arc<Grants>>,
}

struct SessionState {
    last_used: Instant,
    replay: ReplayWindow,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Session {
    fn lock(&self) -> std::sync::MutexGuard<'_, SessionState> {
        // A poisoned lock only means a panic elsewhere; the state is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks `R` against the replay window and, if fresh, records it and
    /// refreshes the idle timer.
    pub(crate) fn accept_request(&self, r: u64) -> Result<(), ReplayError> {
        let mut st = self.lock();
        st.replay.check_and_mark(r)?;
        st.last_used = Instant::now();
        Ok(())
    }

    /// The user's current grants (refreshed when the user database changes).
    pub fn grants(&self) -> Arc<Grants> {
        self.grants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the grants (the database changed).
    pub(crate) fn set_grants(&self, g: Grants) {
        *self.grants.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(g);
    }

    /// Records the address the session logged in from.
    pub(crate) fn set_remote(&self, remote: &str) {
        let _ = self.remote.set(remote.to_string());
    }

    /// The address it logged in from, `-` if not recorded.
    pub(crate) fn remote(&self) -> &str {
        self.remote.get().map_or("-", String::as_str)
    }

    /// How long since its last request.
    pub(crate) fn idle(&self) -> Duration {
        Instant::now().saturating_duration_since(self.lock().last_used)
    }

    /// Refreshes the idle timer (a long operation counts as activity).
    pub(crate) fn touch(&self) {
        self.lock().last_used = Instant::now();
    }

    /// True when the idle timeout or the maximum lifetime has passed, or
    /// the certificate that authorised the session has expired.
    pub(crate) fn expired(&self, now: Instant, max_lifetime: Duration) -> bool {
        let idle = now.saturating_duration_since(self.lock().last_used);
        idle > self.timeout
            || now.saturating_duration_since(self.created) > max_lifetime
            || self
                .cert
                .as_ref()
                .is_some_and(|c| crate::server::core::instance::unix_now() > c.not_after)
    }
}

/// Why a session could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SessionError {
    /// The global cap is reached.
    #[error("too many sessions on this server")]
    TooMany,
    /// The per-user cap is reached.
    #[error("too many sessions for this user")]
    TooManyForUser,
    /// Only the sessions reserved for admins are left.
    #[error("too many sessions on this server (the rest are reserved for admins)")]
    Reserved,
}

/// All live sessions of one instance.
pub struct SessionTable {
    inner: Mutex<Tables>,
    max_sessions: usize,
    max_per_user: usize,
    max_lifetime: Duration,
    admin_reserve: usize,
    caps: SessionCaps,
}

#[derive(Default)]
struct Tables {
    by_id: HashMap<String, Arc<Session>>,
    per_user: HashMap<String, usize>,
}

impl SessionTable {
    /// An empty table with the given caps.
    pub(crate) fn new(max_sessions: usize, max_per_user: usize, max_lifetime: Duration) -> Self {
        SessionTable {
            inner: Mutex::new(Tables::default()),
            max_sessions,
            max_per_user,
            max_lifetime,
            admin_reserve: 0,
            caps: SessionCaps::default(),
        }
    }

    /// Keeps `admin_reserve` sessions for admins, and caps each session's
    /// processes with `caps` (through its cgroup, where available).
    pub(crate) fn with_reserve_and_caps(mut self, admin_reserve: usize, caps: SessionCaps) -> Self {
        self.admin_reserve = admin_reserve;
        self.caps = caps;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a session after a successful handshake.
    pub(crate) fn create(
        &self,
        id: String,
        user: &str,
        keys: &SessionKeys,
        timeout: Duration,
        grants: Grants,
        cert: Option<CertInfo>,
    ) -> Result<Arc<Session>, SessionError> {
        let now = Instant::now();
        let admin = grants.is_admin();
        let session = Arc::new(Session {
            id: id.clone(),
            user: user.to_string(),
            c2s: RecordKey::new(&keys.c2s),
            s2c: RecordKey::new(&keys.s2c),
            created: now,
            timeout,
            cancel: CancellationToken::new(),
            container: crate::server::enforce::contain::global().session(self.caps),
            cert,
            created_unix: crate::server::core::instance::unix_now(),
            remote: std::sync::OnceLock::new(),
            state: Mutex::new(SessionState {
                last_used: now,
                replay: ReplayWindow::new(),
            }),
            grants: Mutex::new(Arc::new(grants)),
        });
        let room = if admin {
            self.max_sessions
        } else {
            self.max_sessions.saturating_sub(self.admin_reserve)
        };
        let mut t = self.lock();
        if t.by_id.len() >= room {
            drop(t);
            self.reap();
            t = self.lock();
            if t.by_id.len() >= self.max_sessions {
                return Err(SessionError::TooMany);
            }
            if t.by_id.len() >= room {
                return Err(SessionError::Reserved);
            }
        }
        let n = t.per_user.get(user).copied().unwrap_or(0);
        if n >= self.max_per_user {
            return Err(SessionError::TooManyForUser);
        }
        t.per_user.insert(user.to_string(), n + 1);
        t.by_id.insert(id, session.clone());
        Ok(session)
    }

    /// A live session by id; an expired one is removed and ended here.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Session>> {
        let s = self.lock().by_id.get(id).cloned()?;
        if s.expired(Instant::now(), self.max_lifetime) {
            self.end(id);
            return None;
        }
        Some(s)
    }

    /// Ends a session: removes it and cancels everything it started.
    pub(crate) fn end(&self, id: &str) -> Option<Arc<Session>> {
        let mut t = self.lock();
        let s = t.by_id.remove(id)?;
        if let Some(n) = t.per_user.get_mut(&s.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                t.per_user.remove(&s.user);
            }
        }
        drop(t);
        s.cancel.cancel();
        s.container.kill();
        Some(s)
    }

    /// Ends every session of `user` (revocation); returns how many.
    pub(crate) fn end_user(&self, user: &str) -> usize {
        let ids: Vec<String> = self
            .lock()
            .by_id
            .values()
            .filter(|s| s.user == user)
            .map(|s| s.id.clone())
            .collect();
        ids.iter().filter(|id| self.end(id).is_some()).count()
    }

    /// Ends every session (server shutdown).
    pub(crate) fn end_all(&self) -> usize {
        let ids: Vec<String> = self.lock().by_id.keys().cloned().collect();
        ids.iter().filter(|id| self.end(id).is_some()).count()
    }

    /// Ends expired sessions; returns how many. Called periodically.
    pub(crate) fn reap(&self) -> usize {
        let now = Instant::now();
        let ids: Vec<String> = self
            .lock()
            .by_id
            .values()
            .filter(|s| s.expired(now, self.max_lifetime))
            .map(|s| s.id.clone())
            .collect();
        ids.iter().filter(|id| self.end(id).is_some()).count()
    }

    /// Every live session (revocation checks, tests).
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.lock().by_id.values().cloned().collect()
    }

    /// Number of live sessions.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::derive_session_keys;

    fn keys() -> SessionKeys {
        derive_session_keys(&[1; 32], &[4; 65], &[4; 65], "x")
    }

    #[test]
    fn caps_and_end() {
        let t = SessionTable::new(3, 2, Duration::from_secs(60));
        let to = Duration::from_secs(60);
        t.create("a".into(), "u", &keys(), to, Grants::admin(), None)
            .unwrap();
        let b = t
            .create("b".into(), "u", &keys(), to, Grants::admin(), None)
            .unwrap();
        assert_eq!(
            t.create("c".into(), "u", &keys(), to, Grants::admin(), None)
                .unwrap_err(),
            SessionError::TooManyForUser
        );
        t.create("d".into(), "v", &keys(), to, Grants::admin(), None)
            .unwrap();
        assert_eq!(
            t.create("e".into(), "w", &keys(), to, Grants::admin(), None)
                .unwrap_err(),
            SessionError::TooMany
        );
        assert!(t.end("b").is_some());
        assert!(b.cancel.is_cancelled());
        assert!(t.get("b").is_none());
        t.create("c".into(), "u", &keys(), to, Grants::admin(), None)
            .unwrap();
        assert_eq!(t.end_user("u"), 2);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn admin_reserve_of_sessions() {
        let t = SessionTable::new(3, 3, Duration::from_secs(60))
            .with_reserve_and_caps(1, SessionCaps::default());
        let to = Duration::from_secs(60);
        let user = || Grants::from_strings(&["cmd:/usr/bin/cat"]).0;
        t.create("a".into(), "u", &keys(), to, user(), None)
            .unwrap();
        t.create("b".into(), "v", &keys(), to, user(), None)
            .unwrap();
        assert_eq!(
            t.create("c".into(), "w", &keys(), to, user(), None)
                .unwrap_err(),
            SessionError::Reserved
        );
        t.create("c".into(), "adm", &keys(), to, Grants::admin(), None)
            .unwrap();
        assert_eq!(
            t.create("d".into(), "adm", &keys(), to, Grants::admin(), None)
                .unwrap_err(),
            SessionError::TooMany
        );
    }

    #[test]
    fn idle_expiry() {
        let t = SessionTable::new(10, 10, Duration::from_secs(60));
        let s = t
            .create(
                "a".into(),
                "u",
                &keys(),
                Duration::from_millis(1),
                Grants::admin(),
                None,
            )
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(t.get("a").is_none());
        assert!(s.cancel.is_cancelled());
        assert!(s.accept_request(1).is_ok());
    }

    #[test]
    fn a_certificate_session_ends_at_not_after() {
        let t = SessionTable::new(10, 10, Duration::from_secs(3600));
        let to = Duration::from_secs(3600);
        let now = crate::server::core::instance::unix_now();
        let cert = |not_after| {
            Some(CertInfo {
                ca: "SHA256:x".into(),
                serial: 1,
                key: "SHA256:k".into(),
                not_after,
                hosts: vec!["*".into()],
            })
        };
        let live = t
            .create(
                "a".into(),
                "u",
                &keys(),
                to,
                Grants::admin(),
                cert(now + 60),
            )
            .unwrap();
        let dead = t
            .create("b".into(), "u", &keys(), to, Grants::admin(), cert(now - 1))
            .unwrap();
        assert!(t.get("a").is_some());
        assert!(t.get("b").is_none());
        assert!(dead.cancel.is_cancelled() && !live.cancel.is_cancelled());
    }
}
