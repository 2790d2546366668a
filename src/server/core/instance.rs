//! A server instance: one server key, one user database, one limits file and
//! the sessions that belong to them. FastCGI requests select their instance
//! by their `REMO_*` params, so two vhosts can share one daemon.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::audit::AuditLog;
use crate::perms::Grants;
use crate::proto::handshake::REPLAY_MEMORY_SECS;
use crate::proto::identity::{IdentityKey, PublicKey};
use crate::server::core::config::{
    parse_timeout, CertSettings, CertTable, ConfigError, ConfigFile, InstanceKey, Limits,
};
use crate::server::core::session::SessionTable;
use crate::server::enforce::contain::SessionCaps;
use crate::server::enforce::trust::{self, Untrusted};
use crate::server::ops::procs::{ProcLimits, ProcTable, ShareLimits, Shares};
use crate::server::ops::upload::Staged;
use crate::server::store::certtrust::{CertTrust, CertTrustError};
use crate::server::store::uploads::Uploads;
use crate::userdb::{DbError, User, UserDb};

/// Why an instance could not be set up (→ 500 and a log line).
#[derive(Debug, thiserror::Error)]
pub(crate) enum InstanceError {
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
    /// A named file failed the ownership checks (see [`crate::server::enforce::trust`]).
    #[error("{setting}: {why}")]
    Untrusted {
        /// The setting that named it (`REMO_KEY_FILE`, …).
        setting: &'static str,
        /// Why it is not trusted.
        why: Untrusted,
    },
    /// The certificate settings are unusable.
    #[error("{0}")]
    Certs(#[from] CertTrustError),
    /// The journal of temporary files could not be opened.
    #[error("temporary-file journal {0}")]
    Journal(#[from] crate::server::store::pending::JournalError),
    /// [`Registry`] holds its most instances already.
    #[error("refusing a new instance (key {key}, users {db}): {max} instances exist, the most allowed (--max-instances)")]
    TooMany {
        /// The most instances.
        max: usize,
        /// The new instance's key file.
        key: String,
        /// The new instance's user database.
        db: String,
    },
}

/// An instance's settings after the trust checks: resolved paths that
/// passed [`crate::server::enforce::trust`] and a parsed timeout. Instances are keyed on
/// this, so aliases of the same files (`//etc/remo`, `..`, symlinks, a
/// timeout written ` 30`) share one instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Resolved {
    /// The server key.
    pub key_file: PathBuf,
    /// The user database.
    pub user_db: PathBuf,
    /// The audit database (created if missing).
    pub audit_db: PathBuf,
    /// The config file, if any.
    pub config: Option<PathBuf>,
    /// Whether the config file may be missing (`--dir`'s `remo.toml`).
    pub config_optional: bool,
    /// The session idle timeout, seconds.
    pub timeout: u64,
    /// Certificate settings from params, environment or flags (the config
    /// file's `[certificates]` fills the rest at load).
    pub certs: CertSettings,
    /// Which file's `[certificates]` applies (remod's own config file
    /// resolved, when it is not the instance's).
    pub cert_table: CertTable,
}

impl Resolved {
    /// Checks every file a key names; the first failure, with its setting.
    pub(crate) fn check(k: &InstanceKey) -> Result<(Resolved, Vec<String>), InstanceError> {
        let key_named = k
            .key_file
            .as_deref()
            .ok_or(ConfigError::Missing("REMO_KEY_FILE"))?;
        let db_named = k
            .user_db
            .as_deref()
            .ok_or(ConfigError::Missing("REMO_USER_DB"))?;
        let timeout = parse_timeout(k.session_timeout.as_deref())?;
        if let Some(name) = k.refused_param {
            return Err(ConfigError::Invalid {
                name,
                why: "is not taken from FastCGI params (any process that can reach the socket could name a public key as a CA, another revocation list or another server name); set it with remod's flags or environment, or in the config file's [certificates]".into(),
            }
            .into());
        }
        let untrusted = |setting| move |why| InstanceError::Untrusted { setting, why };
        let mut why = Vec::new();
        let key = trust::check_file(key_named).map_err(untrusted("REMO_KEY_FILE"))?;
        why.push(format!("REMO_KEY_FILE {}", key.describe(key_named)));
        let db = trust::check_file(db_named).map_err(untrusted("REMO_USER_DB"))?;
        why.push(format!("REMO_USER_DB {}", db.describe(db_named)));
        let audit_named = AuditLog::default_path(&db.path);
        let audit_db = trust::check_creatable(&audit_named).map_err(untrusted("REMO_AUDIT_DB"))?;
        why.push(format!(
            "audit database {} (its directory passes the same checks)",
            audit_db.display()
        ));
        let config = match k.config.as_deref() {
            Some(named) if k.config_optional && !named.exists() => {
                // Not there yet: its directory must be trusted, so that
                // whoever creates it later is root (or remod).
                let c = trust::check_creatable(named).map_err(untrusted("REMO_CONFIG"))?;
                why.push(format!(
                    "REMO_CONFIG {} (missing: no [limits], [files] or [firewall] until it exists and remod reloads)",
                    c.display()
                ));
                Some(c)
            }
            Some(named) => {
                let c = trust::check_file(named).map_err(untrusted("REMO_CONFIG"))?;
                why.push(format!("REMO_CONFIG {}", c.describe(named)));
                Some(c.path)
            }
            None => None,
        };
        let cert_table = match &k.cert_table {
            CertTable::Daemon {
                path: Some(own),
                optional,
            } => {
                let (own, _) = check_config(own, *optional)?;
                if config.as_ref() == Some(&own) {
                    CertTable::Own
                } else {
                    CertTable::Daemon {
                        path: Some(own),
                        optional: *optional,
                    }
                }
            }
            other => other.clone(),
        };
        Ok((
            Resolved {
                key_file: key.path,
                user_db: db.path,
                audit_db,
                config,
                config_optional: k.config_optional,
                timeout,
                certs: k.certs.clone(),
                cert_table,
            },
            why,
        ))
    }

    /// The certificate settings that apply, given the instance's own
    /// config file (see [`CertTable`]): remod's own, whole, when it has
    /// any; else the instance's file's table, whole. A file a param named
    /// that carries a table while remod has settings of its own is
    /// refused, not merged.
    pub(crate) fn cert_settings(&self, file: &ConfigFile) -> Result<CertSettings, InstanceError> {
        let (path, optional) = match &self.cert_table {
            CertTable::Own => return Ok(self.certs.or(&file.certificates)),
            CertTable::Daemon { path, optional } => (path, *optional),
        };
        let own = match path {
            None => CertSettings::default(),
            Some(p) => read_config(p, optional)?.certificates,
        };
        let daemon = self.certs.or(&own);
        if daemon == CertSettings::default() {
            return Ok(file.certificates.clone());
        }
        // A table that repeats remod's own word for word mixes nothing.
        if file.certificates != CertSettings::default() && file.certificates != own {
            return Err(ConfigError::Invalid {
                name: "REMO_CONFIG",
                why: "was named by a FastCGI param and has a [certificates] table, while remod has certificate settings of its own (flags, environment or its own config file): they are not mixed, so that a peer on the socket cannot drop a revocation list or swap a CA by choosing a file; remove the table, or give remod no certificate settings of its own".into(),
            }
            .into());
        }
        Ok(daemon)
    }

    /// Reads the config file again, after the same trust checks as at
    /// load: a missing optional file is the empty configuration.
    pub(crate) fn load_config(&self) -> Result<ConfigFile, InstanceError> {
        match &self.config {
            Some(path) => read_config(path, self.config_optional),
            None => Ok(ConfigFile::default()),
        }
    }
}

/// A config file through the trust checks, resolved; `false` when it may
/// be missing and is (then its directory is checked, so that whoever adds
/// it later is root or remod).
fn check_config(path: &Path, optional: bool) -> Result<(PathBuf, bool), InstanceError> {
    let untrusted = |why| InstanceError::Untrusted {
        setting: "REMO_CONFIG",
        why,
    };
    if optional && !path.exists() {
        return Ok((trust::check_creatable(path).map_err(untrusted)?, false));
    }
    Ok((trust::check_file(path).map_err(untrusted)?.path, true))
}

/// Reads a config file after [`check_config`]: a missing optional one is
/// the empty configuration.
fn read_config(path: &Path, optional: bool) -> Result<ConfigFile, InstanceError> {
    match check_config(path, optional)? {
        (checked, true) => Ok(ConfigFile::load(&checked)?),
        (_, false) => Ok(ConfigFile::default()),
    }
}

/// Opens the journal of named temporary files beside the audit database
/// (whose directory passed the trust checks) and removes what a crash of
/// an earlier run left behind.
fn open_journal(
    audit_db: &Path,
) -> Result<Arc<crate::server::store::pending::Journal>, InstanceError> {
    use crate::server::store::pending::{Journal, DIR_NAME};
    let dir = audit_db.parent().unwrap_or(Path::new("/")).join(DIR_NAME);
    let journal = Journal::open(&dir)?;
    let swept = journal.sweep();
    for p in &swept.removed {
        log::info!(
            "removed {}, a temporary file left by an earlier run",
            p.display()
        );
    }
    for p in &swept.changed {
        log::warn!(
            "left {} alone: a journal entry named it, but it is no longer what remod made",
            p.display()
        );
    }
    Ok(journal)
}

/// Loads an unencrypted server key (the daemon must start unattended).
pub(crate) fn load_server_key(path: &Path) -> Result<IdentityKey, InstanceError> {
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
    users: Arc<Mutex<UserDb>>,
    /// Live sessions (shared with the instance a reload replaces this one
    /// by, so they survive it).
    pub sessions: Arc<SessionTable>,
    /// Limits from the config file.
    pub limits: Limits,
    /// Session idle timeout in seconds.
    pub timeout: u64,
    /// The home directory relative paths are resolved against.
    pub home: PathBuf,
    /// Caps the commands running at once, in all and per user.
    pub commands: Arc<Shares>,
    /// Caps the transfers (`get`, `put`, `list`) in progress, in all and
    /// per user, so one user's slow or stalled requests cannot hold what
    /// everyone needs.
    pub transfers: Arc<Shares>,
    /// Interactive processes.
    pub procs: Arc<ProcTable>,
    /// Configuration files by name (`[files.NAME]`).
    pub files: std::collections::BTreeMap<String, crate::server::store::cfgfiles::FileSpec>,
    /// The `[firewall]` profiles, if configured.
    pub firewall: Option<Arc<crate::firewall::FirewallConfig>>,
    auth_seen: Arc<Mutex<AuthReplay>>,
    /// Ephemeral ECDH keys made ahead of logins.
    pub ephemerals: Arc<crate::server::core::ephemeral::EphemeralPool>,
    /// The audit log (see [`crate::audit`]).
    pub audit: Arc<AuditLog>,
    /// Named temporary files being made (see [`crate::server::store::pending`]).
    pub pending: Arc<crate::server::store::pending::Journal>,
    /// Staged resumable uploads (shared with the instance a reload puts in
    /// this one's place, like the sessions).
    pub(crate) uploads: Arc<Uploads<Staged>>,
    /// Trusted CAs, the revocation list and the server name (§7).
    pub(crate) certs: Arc<CertTrust>,
    /// The certificate settings `certs` was made from.
    cert_settings: CertSettings,
    /// Set once a reload has put another instance in this one's place:
    /// running requests finish with it, its watcher stops.
    retired: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct AuthReplay {
    seen: HashMap<[u8; 16], i64>,
    last_prune: i64,
}

impl Instance {
    /// Loads the key, opens the database and reads the config file, all
    /// from paths that passed the trust checks ([`Resolved::check`]).
    pub(crate) fn load(k: &Resolved) -> Result<Instance, InstanceError> {
        let timeout = k.timeout;
        let file = match &k.config {
            Some(p) if k.config_optional && !p.exists() => ConfigFile::default(),
            Some(p) => ConfigFile::load(p)?,
            None => ConfigFile::default(),
        };
        let cert_settings = k.cert_settings(&file)?;
        let certs = Arc::new(CertTrust::open(&cert_settings)?);
        let key = load_server_key(&k.key_file)?;
        let users = UserDb::open_served(&k.user_db).map_err(|e| InstanceError::Db {
            path: k.user_db.clone(),
            why: e.to_string(),
        })?;
        let audit = AuditLog::open(&k.audit_db)?;
        let pending = open_journal(&k.audit_db)?;
        let limits = file.limits;
        let files = file.files;
        Ok(Instance {
            audit: Arc::new(audit),
            pending,
            uploads: Arc::default(),
            public: key.public(),
            key,
            users: Arc::new(Mutex::new(users)),
            sessions: Arc::new(
                SessionTable::new(
                    limits.max_sessions,
                    limits.max_sessions_per_user,
                    Duration::from_secs(limits.max_session_lifetime),
                )
                .with_reserve_and_caps(
                    limits.sessions_admin_reserve(),
                    SessionCaps {
                        pids_max: limits.session_pids_max,
                        memory_max: limits.session_memory_max,
                    },
                ),
            ),
            commands: Shares::new(
                "commands",
                ShareLimits {
                    total: limits.max_commands,
                    per_user: limits.commands_per_user(),
                    admin_reserve: limits.commands_admin_reserve(),
                },
            ),
            transfers: Shares::new(
                "transfers",
                ShareLimits {
                    total: limits.max_transfers,
                    per_user: limits.transfers_per_user(),
                    admin_reserve: limits.transfers_admin_reserve(),
                },
            ),
            procs: ProcTable::new(ProcLimits {
                max_total: limits.max_processes,
                max_per_user: limits.processes_per_user(),
                admin_reserve: limits.processes_admin_reserve(),
                max_per_session: limits.max_processes_per_session,
                buffer_bytes: limits.process_buffer_bytes,
                idle: Duration::from_secs(limits.process_idle_timeout),
            }),
            limits,
            files,
            firewall: file.firewall.map(Arc::new),
            certs,
            cert_settings,
            timeout,
            home: home_dir(),
            auth_seen: Arc::default(),
            ephemerals: Arc::default(),
            retired: Default::default(),
        })
    }

    /// The instance a reload puts in this one's place: the new file's
    /// `[files]`, `[firewall]` and `[limits]`, and everything else — key,
    /// users, sessions and their processes, command slots, audit log —
    /// shared. Limits read per request (`max_request_bytes`,
    /// `max_output_bytes`, `max_command_timeout`, `stdin_idle_timeout`,
    /// `list_max_entries`, the staged uploads' bounds) apply to the next
    /// request; the others size tables that live on and change at the next
    /// start ([`LIVE_LIMITS`]).
    pub(crate) fn reloaded(
        &self,
        file: ConfigFile,
        certs: (CertSettings, Arc<CertTrust>),
    ) -> Instance {
        Instance {
            key: self.key.clone(),
            public: self.public.clone(),
            users: self.users.clone(),
            sessions: self.sessions.clone(),
            limits: file.limits,
            timeout: self.timeout,
            home: self.home.clone(),
            commands: self.commands.clone(),
            transfers: self.transfers.clone(),
            procs: self.procs.clone(),
            files: file.files,
            firewall: file.firewall.map(Arc::new),
            certs: certs.1,
            cert_settings: certs.0,
            auth_seen: self.auth_seen.clone(),
            ephemerals: self.ephemerals.clone(),
            audit: self.audit.clone(),
            pending: self.pending.clone(),
            uploads: self.uploads.clone(),
            retired: Default::default(),
        }
    }

    /// What a reload to `file` changes, as log text (empty: nothing), and
    /// whether the firewall profiles change.
    pub(crate) fn changes(&self, file: &ConfigFile) -> (Vec<String>, bool) {
        let mut out = Vec::new();
        let old = serde_json::to_value(&self.limits).unwrap_or_default();
        let new = serde_json::to_value(&file.limits).unwrap_or_default();
        if let (Some(old), Some(new)) = (old.as_object(), new.as_object()) {
            for (k, v) in new {
                let was = old.get(k).unwrap_or(&serde_json::Value::Null);
                if was != v {
                    let when = if LIVE_LIMITS.contains(&k.as_str()) {
                        "from the next request"
                    } else {
                        "at the next start of remod"
                    };
                    out.push(format!("[limits] {k} {was} -> {v} ({when})"));
                }
            }
        }
        for name in self.files.keys() {
            if !file.files.contains_key(name) {
                out.push(format!("[files.{name}] removed"));
            }
        }
        for (name, spec) in &file.files {
            match self.files.get(name) {
                None => out.push(format!("[files.{name}] added")),
                Some(old) if format!("{old:?}") != format!("{spec:?}") => {
                    out.push(format!("[files.{name}] changed"))
                }
                Some(_) => {}
            }
        }
        let fw_old = self.firewall.as_deref().map(|f| format!("{f:?}"));
        let fw_new = file.firewall.as_ref().map(|f| format!("{f:?}"));
        let firewall = fw_old != fw_new;
        if firewall {
            out.push("[firewall] changed".into());
        }
        (out, firewall)
    }

    /// The certificate trust a reload to `file` uses: this one's if the
    /// effective settings are the same, else a new one read from the files
    /// (an error keeps the previous configuration).
    pub(crate) fn certs_for(
        &self,
        settings: CertSettings,
    ) -> Result<(CertSettings, Arc<CertTrust>, bool), CertTrustError> {
        if settings == self.cert_settings {
            return Ok((settings, self.certs.clone(), false));
        }
        let t = Arc::new(CertTrust::open(&settings)?);
        Ok((settings, t, true))
    }

    /// Marks this instance replaced by a reload.
    pub(crate) fn retire(&self) {
        self.retired
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Looks a user up in the database.
    pub(crate) fn user(&self, name: &str) -> Result<Option<User>, DbError> {
        self.users
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_user(name)
    }

    /// Records an accepted `(user, Qc)` pair; false if it was accepted in
    /// the last 600 s (a replayed `/auth`).
    pub(crate) fn remember_auth(&self, user: &str, qc: &[u8], now: i64) -> bool {
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
    pub(crate) fn spawn_watcher(self: &Arc<Self>) {
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
                if inst.retired.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                // SQLite calls may wait on a lock: keep them off the async workers.
                let r = tokio::task::spawn_blocking(move || {
                    inst.check_certs();
                    inst.check_users(seen)
                })
                .await;
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
    pub(crate) fn check_users(&self, seen: Option<i64>) -> Option<i64> {
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
        let staging = self.uploads.users();
        let mut names: Vec<&str> = sessions.iter().map(|s| s.user.as_str()).collect();
        // A user with an upload staged and no session is looked at too.
        names.extend(staging.iter().map(String::as_str));
        // A certificate session keeps its certificate's grants; a user of
        // the same name on this server only counts if disabled (§7).
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
            let of_user = |s: &&Arc<crate::server::core::session::Session>| s.user == name;
            match user {
                Some(u) if u.enabled => {
                    let (grants, _bad) = Grants::from_strings(&u.permissions);
                    for s in sessions.iter().filter(of_user).filter(|s| s.cert.is_none()) {
                        if *s.grants() != grants {
                            s.set_grants(grants.clone());
                            log::info!("{name}: permissions changed; session updated");
                        }
                    }
                }
                Some(_) => {
                    self.end_disabled(&name);
                }
                None => {
                    // Removed (or never registered): its key sessions end,
                    // its certificate sessions do not depend on the database.
                    let mut n = 0;
                    for s in sessions.iter().filter(of_user).filter(|s| s.cert.is_none()) {
                        n += usize::from(self.sessions.end(&s.id).is_some());
                    }
                    let u = self
                        .uploads
                        .drop_where(|o, _| o.user == name && o.cert.is_none());
                    if n > 0 || u > 0 {
                        log::warn!("{name} removed: ended {n} live session(s) and their processes, discarded {u} staged upload(s)");
                    }
                }
            }
        }
        Some(now)
    }

    /// What a disabled user loses at once: their live sessions (key and
    /// certificate ones) with their processes, and their staged uploads;
    /// returns how many sessions ended.
    fn end_disabled(&self, name: &str) -> usize {
        let n = self.sessions.end_user(name);
        let u = self.uploads.drop_where(|o, _| o.user == name);
        log::warn!(
            "{name} disabled: ended {n} live session(s) and their processes, discarded {u} staged upload(s)"
        );
        n
    }

    /// Disables or enables a registered user in the database (the `admin`
    /// operation) and, for a disable, applies it at once as the revocation
    /// watcher would (the watcher only notices other connections' writes);
    /// returns how many sessions ended. Blocking (SQLite): call it off the
    /// async workers.
    pub(crate) fn set_user_enabled(&self, name: &str, enabled: bool) -> Result<usize, DbError> {
        self.users
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_enabled(name, enabled)?;
        Ok(if enabled { 0 } else { self.end_disabled(name) })
    }

    /// The registered users by name after `after`, at most `limit`
    /// (the `admin` operation's `users`). Blocking (SQLite).
    pub(crate) fn users_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<User>, DbError> {
        self.users
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .users_page(after, limit)
    }

    /// Certificate revocation: reads the CA file and revocation list again
    /// if they changed, then ends every certificate session that is no
    /// longer allowed (revoked serial or key, CA no longer trusted, a file
    /// now unusable, expired), with its processes.
    pub(crate) fn check_certs(&self) {
        let changed = self.certs.refresh();
        // No CA trusted and nothing changed: no certificate session can be
        // live (dropping the last CA was a change, which ended them), so
        // the sessions need not be walked every tick.
        if !changed && !self.certs.enabled() {
            return;
        }
        let now = unix_now();
        // A certificate's uploads go with it (its sessions may have ended
        // already; the upload is looked at with the certificate it was
        // last used with).
        let u = self
            .uploads
            .drop_where(|_, c| c.is_some_and(|c| self.certs.still_allows(c, now).is_err()));
        if u > 0 {
            log::warn!("discarded {u} staged upload(s) of certificates no longer allowed");
        }
        for s in self.sessions.all() {
            let Some(c) = &s.cert else { continue };
            if !changed && now <= c.not_after {
                continue;
            }
            if let Err(why) = self.certs.still_allows(c, now) {
                if self.sessions.end(&s.id).is_some() {
                    log::warn!(
                        "{} ({}): {}; ended the session and its processes",
                        s.user,
                        c.label(),
                        why.as_str()
                    );
                    self.audit.record(crate::audit::AuditRecord {
                        time_ms: crate::audit::now_ms(),
                        user: s.user.clone(),
                        remote: "-".into(),
                        session: crate::audit::session_tag(&s.id),
                        op: "end".into(),
                        summary: String::new(),
                        outcome: why.as_str().to_string(),
                        exit: None,
                        bytes_in: 0,
                        bytes_out: 0,
                        duration_ms: 0,
                        cert: c.label(),
                    });
                }
            }
        }
    }

    /// Resolves a client path: absolute as given, relative to the home directory.
    pub(crate) fn resolve(&self, path: &str) -> PathBuf {
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
pub(crate) fn home_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The `[limits]` a reload applies at once (read per request); the others
/// take effect at the next start.
pub(crate) const LIVE_LIMITS: &[&str] = &[
    "max_request_bytes",
    "max_output_bytes",
    "max_command_timeout",
    "stdin_idle_timeout",
    "list_max_entries",
    "max_uploads",
    "max_uploads_per_user",
    "upload_idle_timeout",
    "admin_page_max",
    "transfer_idle_timeout",
];

/// How often the revocation watcher looks at the user database.
pub(crate) const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// Default of `--max-instances`.
pub(crate) const DEFAULT_MAX_INSTANCES: usize = 16;

/// Most distinct refusals logged (each once); past it, one line says so.
const MAX_LOGGED: usize = 1024;

/// Most request settings remembered as aliases of a loaded instance (the
/// fast path); past it, a request's files are checked again each time.
const MAX_ALIASES: usize = 256;

/// Instances by their settings, created on first use from settings that
/// passed the trust checks, at most `max` of them.
pub struct Registry {
    /// Request settings (as sent) → instance: skips the checks next time.
    aliases: Mutex<HashMap<InstanceKey, Arc<Instance>>>,
    /// Resolved settings → instance: the instances themselves.
    map: Mutex<HashMap<Resolved, Arc<Instance>>>,
    max: usize,
    logged: Mutex<std::collections::HashSet<String>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_INSTANCES)
    }
}

impl Registry {
    /// An empty registry that will hold at most `max` instances.
    pub(crate) fn new(max: usize) -> Self {
        Registry {
            aliases: Mutex::default(),
            map: Mutex::default(),
            max,
            logged: Mutex::default(),
        }
    }

    /// The instance for `k`, loading it on first use. A failure is logged
    /// once per distinct reason (a peer may repeat a bad request at will)
    /// and is not cached, so fixing a file takes effect on the next request.
    pub(crate) fn get(&self, k: &InstanceKey) -> Result<Arc<Instance>, InstanceError> {
        if let Some(i) = self
            .aliases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(k)
        {
            return Ok(i.clone());
        }
        self.load(k).inspect_err(|e| self.log_once(e))
    }

    fn load(&self, k: &InstanceKey) -> Result<Arc<Instance>, InstanceError> {
        let (resolved, why) = Resolved::check(k)?;
        let existing = self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&resolved)
            .cloned();
        let inst = match existing {
            Some(i) => i,
            None => {
                if self.map.lock().unwrap_or_else(|p| p.into_inner()).len() >= self.max {
                    return Err(InstanceError::TooMany {
                        max: self.max,
                        key: format!("{:?}", resolved.key_file),
                        db: format!("{:?}", resolved.user_db),
                    });
                }
                let inst = Arc::new(Instance::load(&resolved)?);
                let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(i) = map.get(&resolved) {
                    i.clone()
                } else if map.len() >= self.max {
                    return Err(InstanceError::TooMany {
                        max: self.max,
                        key: format!("{:?}", resolved.key_file),
                        db: format!("{:?}", resolved.user_db),
                    });
                } else {
                    map.insert(resolved.clone(), inst.clone());
                    let n = map.len();
                    drop(map);
                    log::info!(
                        "instance {n} of at most {}: session timeout {} s; trusted: {}",
                        self.max,
                        resolved.timeout,
                        why.join("; ")
                    );
                    inst.spawn_watcher();
                    inst
                }
            }
        };
        let mut aliases = self.aliases.lock().unwrap_or_else(|p| p.into_inner());
        if aliases.len() < MAX_ALIASES {
            aliases.insert(k.clone(), inst.clone());
        }
        Ok(inst)
    }

    fn log_once(&self, e: &InstanceError) {
        let msg = e.to_string();
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        if logged.contains(&msg) {
            return;
        }
        if logged.len() >= MAX_LOGGED {
            if logged.len() == MAX_LOGGED {
                logged.insert(String::new());
                log::error!(
                    "{MAX_LOGGED} distinct configuration refusals logged; further ones are not"
                );
            }
            return;
        }
        log::error!("refusing a request's settings, answering 500: {msg}");
        logged.insert(msg);
    }

    /// Every loaded instance with its settings (`remod status`).
    pub(crate) fn entries(&self) -> Vec<(Resolved, Arc<Instance>)> {
        let mut v: Vec<_> = self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.key_file.cmp(&b.0.key_file));
        v
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

    /// Ends expired sessions everywhere; returns how many. Discards idle
    /// staged uploads too (logged by the store).
    pub fn reap(&self) -> usize {
        self.all()
            .iter()
            .map(|i| {
                let idle = Duration::from_secs(i.limits.upload_idle_timeout);
                i.uploads.reap(idle);
                i.sessions.reap()
            })
            .sum()
    }

    /// Reads every loaded instance's config file again (SIGHUP): the trust
    /// checks, then the file; a file that fails either is logged with its
    /// reason (file, line and column for a syntax error) and the instance
    /// keeps its configuration. Otherwise a new instance sharing the old
    /// one's sessions and processes takes its place, and what changed is
    /// logged. Returns how many instances changed.
    pub(crate) fn reload(&self) -> usize {
        let entries = self.entries();
        if entries.is_empty() {
            log::info!("reload: no instance loaded yet; each loads its files on first use");
        }
        let mut changed = 0;
        for (resolved, old) in entries {
            let Some(path) = resolved.config.as_ref() else {
                log::info!(
                    "reload: instance {} has no config file (REMO_CONFIG): nothing to read",
                    resolved.key_file.display()
                );
                continue;
            };
            let file = match resolved.load_config() {
                Ok(f) => f,
                Err(e) => {
                    log::error!("reload: {e}; keeping the previous configuration");
                    continue;
                }
            };
            let (mut what, firewall) = old.changes(&file);
            let certs = match resolved
                .cert_settings(&file)
                .and_then(|s| old.certs_for(s).map_err(InstanceError::from))
            {
                Ok((settings, trust, changed)) => {
                    if changed {
                        what.push(format!("[certificates] changed: {}", trust.describe()));
                    }
                    (settings, trust)
                }
                Err(e) => {
                    log::error!("reload: {e}; keeping the previous configuration");
                    continue;
                }
            };
            if what.is_empty() {
                log::info!("reload: {}: no change", path.display());
                continue;
            }
            // The guard of the file just read and checked, not a second
            // read of the path.
            if let (true, Some(fw)) = (firewall, &file.firewall) {
                if let Err(e) = crate::firewall::backend::install_guard(fw, path) {
                    log::error!("reload: {e}; keeping the previous configuration");
                    continue;
                }
            }
            let new = Arc::new(old.reloaded(file, certs));
            {
                let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
                map.insert(resolved.clone(), new.clone());
            }
            {
                let mut aliases = self.aliases.lock().unwrap_or_else(|p| p.into_inner());
                for v in aliases.values_mut() {
                    if Arc::ptr_eq(v, &old) {
                        *v = new.clone();
                    }
                }
            }
            old.retire();
            new.spawn_watcher();
            changed += 1;
            log::info!("reload: {}: {}", path.display(), what.join("; "));
        }
        changed
    }

    /// Ends every session everywhere (shutdown).
    pub(crate) fn end_all(&self) -> usize {
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
