//! A server instance: one server key, one user database, one limits file and
//! the sessions that belong to them. FastCGI requests select their instance
//! by their `REMO_*` params, so two vhosts can share one daemon.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::config::{parse_timeout, ConfigError, ConfigFile, InstanceKey, Limits};
use super::procs::{ProcLimits, ProcTable};
use super::session::SessionTable;
use crate::audit::AuditLog;
use crate::perms::Grants;
use crate::proto::handshake::REPLAY_MEMORY_SECS;
use crate::proto::identity::{IdentityKey, PublicKey};
use crate::userdb::{DbError, User, UserDb};

/// Why an instance could not be set up (→ 500 and a log line).
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// Settings problem.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The server key could not be loaded.
    #[error("server key {path}: {why}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The audit database could not be opened.
    #[error("{0}")]
    Audit(#[from] crate::audit::AuditError),
    /// The user database could not be opened.
    #[error("user database {path}: {why}")]
    Db {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Loads an unencrypted server key (the daemon must start unattended).
pub fn load_server_key(path: &Path) -> Result<IdentityKey, InstanceError> {
    crate::keyfile::load_identity(path, &crate::keyfile::PassphraseSource::None).map_err(|e| {
        InstanceError::Key {
            path: path.to_path_buf(),
            why: e.to_string(),
        }
    })
}

/// One configured server.
pub struct Instance {
    /// The server identity key.
    pub key: IdentityKey,
    /// Its public half, for `/info`.
    pub public: PublicKey,
    users: Mutex<UserDb>,
    /// Live sessions.
    pub sessions: SessionTable,
    /// Limits from the config file.
    pub limits: Limits,
    /// Session idle timeout in seconds.
    pub timeout: u64,
    /// The home directory relative paths are resolved against.
    pub home: PathBuf,
    /// Caps the commands running at once.
    pub commands: Arc<Semaphore>,
    /// Interactive processes.
    pub procs: Arc<ProcTable>,
    /// Configuration files by name (`[files.NAME]`).
    pub files: std::collections::BTreeMap<String, super::cfgfiles::FileSpec>,
    /// The `[firewall]` profiles, if configured.
    pub firewall: Option<Arc<crate::firewall::FirewallConfig>>,
    auth_seen: Mutex<AuthReplay>,
    /// Ephemeral ECDH keys made ahead of logins.
    pub ephemerals: super::auth::EphemeralPool,
    /// The audit log (see [`crate::audit`]).
    pub audit: AuditLog,
}

#[derive(Default)]
struct AuthReplay {
    seen: HashMap<[u8; 16], i64>,
    last_prune: i64,
}

impl Instance {
    /// Loads the key, opens the database and reads the config file.
    pub fn load(k: &InstanceKey) -> Result<Instance, InstanceError> {
        let key_file = k
            .key_file
            .as_deref()
            .ok_or(ConfigError::Missing("REMO_KEY_FILE"))?;
        let db_file = k
            .user_db
            .as_deref()
            .ok_or(ConfigError::Missing("REMO_USER_DB"))?;
        let timeout = parse_timeout(k.session_timeout.as_deref())?;
        let file = match &k.config {
            Some(p) => ConfigFile::load(p)?,
            None => ConfigFile::default(),
        };
        let key = load_server_key(key_file)?;
        let users = UserDb::open(db_file).map_err(|e| InstanceError::Db {
            path: db_file.to_path_buf(),
            why: e.to_string(),
        })?;
        let audit = AuditLog::open(&AuditLog::default_path(db_file))?;
        let limits = file.limits;
        let files = file.files;
        Ok(Instance {
            audit,
            public: key.public(),
            key,
            users: Mutex::new(users),
            sessions: SessionTable::new(
                limits.max_sessions,
                limits.max_sessions_per_user,
                Duration::from_secs(limits.max_session_lifetime),
            ),
            commands: Arc::new(Semaphore::new(limits.max_commands)),
            procs: ProcTable::new(ProcLimits {
                max_total: limits.max_processes,
                max_per_session: limits.max_processes_per_session,
                buffer_bytes: limits.process_buffer_bytes,
                idle: Duration::from_secs(limits.process_idle_timeout),
            }),
            limits,
            files,
            firewall: file.firewall.map(Arc::new),
            timeout,
            home: home_dir(),
            auth_seen: Mutex::new(AuthReplay::default()),
            ephemerals: super::auth::EphemeralPool::default(),
        })
    }

    /// Looks a user up in the database.
    pub fn user(&self, name: &str) -> Result<Option<User>, DbError> {
        self.users
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_user(name)
    }

    /// Records an accepted `(user, Qc)` pair; false if it was accepted in
    /// the last 600 s (a replayed `/auth`).
    pub fn remember_auth(&self, user: &str, qc: &[u8], now: i64) -> bool {
        let mut h = Sha256::new();
        h.update(user.as_bytes());
        h.update([0u8]);
        h.update(qc);
        let digest = h.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        let mut st = self.auth_seen.lock().unwrap_or_else(|p| p.into_inner());
        if now - st.last_prune > 10 {
            st.seen.retain(|_, t| now - *t <= REPLAY_MEMORY_SECS);
            st.last_prune = now;
        }
        match st.seen.get(&id) {
            Some(t) if now - *t <= REPLAY_MEMORY_SECS => false,
            _ => {
                st.seen.insert(id, now);
                true
            }
        }
    }

    /// Starts the revocation watcher (see [`Instance::check_users`]) on the
    /// current tokio runtime, if there is one; it ends with the instance.
    pub fn spawn_watcher(self: &Arc<Self>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(self);
        rt.spawn(async move {
            let mut seen: Option<i64> = None;
            let mut tick = tokio::time::interval(WATCH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inst) = weak.upgrade() else { break };
                // SQLite calls may wait on a lock: keep them off the async workers.
                let r = tokio::task::spawn_blocking(move || inst.check_users(seen)).await;
                if let Ok(v) = r {
                    seen = v.or(seen);
                }
            }
        });
    }

    /// Revocation: when the user database changed since `seen` (its
    /// `data_version`), re-reads every user with a live session: a removed
    /// or disabled user's sessions are ended (which kills their commands
    /// and interactive processes); the others get their current grants.
    /// Returns the version seen now (`None` on a database error).
    pub fn check_users(&self, seen: Option<i64>) -> Option<i64> {
        let db = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let now = match db.data_version() {
            Ok(v) => v,
            Err(e) => {
                log::warn!("revocation check: {e}");
                return None;
            }
        };
        if seen == Some(now) {
            return Some(now);
        }
        let sessions = self.sessions.all();
        let mut names: Vec<&str> = sessions.iter().map(|s| s.user.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut looked_up = Vec::new();
        for name in names {
            match db.get_user(name) {
                Ok(u) => looked_up.push((name.to_string(), u)),
                Err(e) => {
                    log::warn!("revocation check for {name}: {e}");
                    return None;
                }
            }
        }
        drop(db);
        for (name, user) in looked_up {
            match user {
                Some(u) if u.enabled => {
                    let (grants, _bad) = Grants::from_strings(&u.permissions);
                    for s in sessions.iter().filter(|s| s.user == name) {
                        if *s.grants() != grants {
                            s.set_grants(grants.clone());
                            log::info!("{name}: permissions changed; session updated");
                        }
                    }
                }
                other => {
                    let why = if other.is_some() {
                        "disabled"
                    } else {
                        "removed"
                    };
                    let n = self.sessions.end_user(&name);
                    log::warn!("{name} {why}: ended {n} live session(s) and their processes");
                }
            }
        }
        Some(now)
    }

    /// Resolves a client path: absolute as given, relative to the home directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.home.join(p)
        }
    }
}

/// The server process's home directory: `$HOME`, else the password
/// database, else `/`.
pub fn home_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// How often the revocation watcher looks at the user database.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// Instances by their settings, created on first use.
#[derive(Default)]
pub struct Registry {
    map: Mutex<HashMap<InstanceKey, Arc<Instance>>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The instance for `k`, loading it on first use. Failures are not
    /// cached, so fixing a file takes effect on the next request.
    pub fn get(&self, k: &InstanceKey) -> Result<Arc<Instance>, InstanceError> {
        if let Some(i) = self.map.lock().unwrap_or_else(|p| p.into_inner()).get(k) {
            return Ok(i.clone());
        }
        let inst = Arc::new(Instance::load(k)?);
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = map.get(k) {
            return Ok(i.clone());
        }
        map.insert(k.clone(), inst.clone());
        drop(map);
        inst.spawn_watcher();
        Ok(inst)
    }

    /// Every loaded instance (reaping, shutdown).
    pub fn all(&self) -> Vec<Arc<Instance>> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Ends expired sessions everywhere; returns how many.
    pub fn reap(&self) -> usize {
        self.all().iter().map(|i| i.sessions.reap()).sum()
    }

    /// Ends every session everywhere (shutdown).
    pub fn end_all(&self) -> usize {
        self.all().iter().map(|i| i.sessions.end_all()).sum()
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Monotonic "now", re-exported for ops that time things.
pub fn mono_now() -> Instant {
    Instant::now()
}
