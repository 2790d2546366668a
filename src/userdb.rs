//! The SQLite user database: who may log in, with which key, and (later)
//! with which permissions.
//!
//! One file, opened in WAL mode so the daemon can read while `remod user …`
//! writes; foreign keys on so removing a user removes their permissions; a
//! busy timeout so the two never fail on a momentary lock. The schema is
//! versioned with `PRAGMA user_version` and upgraded step by step on open.
//!
//! A public key is registered to at most one user (enforced by a UNIQUE
//! index): a key identifies a person in audit logs and in `user list`, and
//! sharing one key between accounts would make a compromise of one a
//! compromise of all without anyone having decided so.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::proto::identity::{valid_user_name, PublicKey};

/// The schema version this code writes and reads.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// How long a writer waits for another connection's lock before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest permission string accepted (the permission syntax itself is
/// decided elsewhere; this only keeps junk out).
pub(crate) const MAX_PERMISSION_LEN: usize = 256;

/// Why a user-database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// `create` was asked for a path that exists.
    #[error("{0}: already exists (refusing to overwrite a user database)")]
    Exists(PathBuf),
    /// `open` was asked for a path that does not exist.
    #[error("{0}: no such user database (create one with: remod init DIR)")]
    Missing(PathBuf),
    /// Creating the database file failed.
    #[error("{path}: cannot create: {source}")]
    Io {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Opening, configuring or migrating the database failed (includes "not a database").
    #[error("{path}: cannot open user database: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        source: rusqlite::Error,
    },
    /// The server was given a file that is not a remo user database.
    #[error("{0}: not a remo user database (make one with: remod init DIR, or remod user --db FILE add)")]
    NotUserDb(PathBuf),
    /// The file was written by a newer remod.
    #[error(
        "user database schema version {0} is newer than this remod supports ({SCHEMA_VERSION})"
    )]
    NewerSchema(i64),
    /// The name does not match `^[A-Za-z0-9._-]{1,64}$`.
    #[error("invalid user name {0:?} (want 1-64 characters of A-Z a-z 0-9 . _ -)")]
    BadName(String),
    /// A user of that name exists.
    #[error("user {0} already exists")]
    UserExists(String),
    /// No user of that name.
    #[error("no such user: {0}")]
    NoSuchUser(String),
    /// The key is registered to another user (keys are one per user, see the module docs).
    #[error("this key is already registered to user {0}")]
    KeyInUse(String),
    /// A permission string that is empty, too long or holds control characters.
    #[error("invalid permission {0:?}")]
    BadPermission(String),
    /// A stored key blob is not a valid P-256 point: the file was damaged or edited.
    #[error("user {0}: stored public key is corrupt")]
    CorruptKey(String),
    /// Any other SQLite error.
    #[error("user database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Shows a name from user input in an error: bounded, escaped by `{:?}`.
fn shown(name: &str) -> String {
    name.chars().take(80).collect()
}

/// A registered user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    /// Login name.
    pub name: String,
    /// Identity key that signs the handshake.
    pub key: PublicKey,
    /// When the user was added (Unix seconds).
    pub created: i64,
    /// Disabled users cannot log in; kept rather than removed so the record
    /// and its permissions survive a temporary suspension.
    pub enabled: bool,
    /// Granted permissions, sorted.
    pub permissions: Vec<String>,
}

/// An open user database.
#[derive(Debug)]
pub struct UserDb {
    conn: Connection,
}

/// Sets the per-connection options every connection needs.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

/// One migration step, from schema version `from` to `from + 1`.
fn migrate_step(tx: &rusqlite::Transaction<'_>, from: i64) -> rusqlite::Result<()> {
    match from {
        0 => tx.execute_batch(
            "CREATE TABLE users (
                 id      INTEGER PRIMARY KEY,
                 name    TEXT    NOT NULL UNIQUE,
                 key     BLOB    NOT NULL UNIQUE CHECK (length(key) = 65),
                 created INTEGER NOT NULL,
                 enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1))
             );
             CREATE TABLE permissions (
                 user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                 perm    TEXT    NOT NULL,
                 UNIQUE (user_id, perm)
             );",
        ),
        // Callers only pass versions below SCHEMA_VERSION.
        _ => Ok(()),
    }
}

/// Brings the schema up to [`SCHEMA_VERSION`] in one transaction, so a
/// failed upgrade leaves the file as it was.
fn migrate(conn: &mut Connection) -> Result<(), DbError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(DbError::NewerSchema(version));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    for v in version.max(0)..SCHEMA_VERSION {
        migrate_step(&tx, v)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn check_name(name: &str) -> Result<(), DbError> {
    if valid_user_name(name) {
        Ok(())
    } else {
        Err(DbError::BadName(shown(name)))
    }
}

/// The columns `id, name, key, created, enabled` of a `users` row, as
/// every user query selects them.
type UserRow = (i64, String, Vec<u8>, i64, bool);

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

impl UserDb {
    /// Creates a new, empty database at `path` (mode 0600). Refuses an
    /// existing file so `remod init` can never wipe a user list.
    pub fn create(path: &Path) -> Result<Self, DbError> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    DbError::Exists(path.to_path_buf())
                } else {
                    DbError::Io {
                        path: path.to_path_buf(),
                        source: e,
                    }
                }
            })?;
        // An empty file is a valid empty SQLite database.
        Self::open_existing(path).inspect_err(|_| {
            let _ = std::fs::remove_file(path);
        })
    }

    /// Opens an existing database and upgrades its schema. A missing file is
    /// an error rather than silently creating an empty user list.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        if !path.exists() {
            return Err(DbError::Missing(path.to_path_buf()));
        }
        Self::open_existing(path)
    }

    /// Opens a user database for serving: the file must already be one
    /// (`remod init`, `remod user add`). A FastCGI param may name the
    /// file, and `open` would turn any root-owned empty file (or another
    /// program's SQLite database) into ours, with `-wal`/`-shm` files
    /// beside it. So it looks first, without writing anything: the
    /// header by a plain read (an empty or non-SQLite file goes no
    /// further), then, opened `immutable` (no locks, no side files, not
    /// even for a WAL database), the schema version and our tables'
    /// columns.
    pub fn open_served(path: &Path) -> Result<Self, DbError> {
        use std::io::Read;
        let not_ours = || DbError::NotUserDb(path.to_path_buf());
        let mut head = [0u8; 16];
        match std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)) {
            Ok(()) if &head == b"SQLite format 3\0" => {}
            Ok(()) => return Err(not_ours()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(not_ours()),
            Err(source) => {
                return Err(DbError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
        let version = Self::look(path).map_err(|source| DbError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        match version {
            None => return Err(not_ours()),
            Some(v) if v > SCHEMA_VERSION => return Err(DbError::NewerSchema(v)),
            Some(_) => {}
        }
        Self::open(path)
    }

    /// The schema version if `path` has our tables with (at least) the
    /// columns of schema version 1, in order; read-only and `immutable`.
    fn look(path: &Path) -> rusqlite::Result<Option<i64>> {
        use std::os::unix::ffi::OsStrExt;
        const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'/')
            .remove(b'-')
            .remove(b'_')
            .remove(b'.')
            .remove(b'~');
        let uri = format!(
            "file:{}?immutable=1",
            percent_encoding::percent_encode(path.as_os_str().as_bytes(), KEEP)
        );
        let c = Connection::open_with_flags(
            uri,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let columns = |table: &str| -> rusqlite::Result<String> {
            c.query_row(
                "SELECT coalesce(group_concat(name, ','), '') FROM \
                 (SELECT name FROM pragma_table_info(?1) ORDER BY cid)",
                [table],
                |r| r.get(0),
            )
        };
        let users = columns("users")?;
        let perms = columns("permissions")?;
        // Schema version 1's columns; later versions add at the end.
        let ours = version >= 1
            && (users == "id,name,key,created,enabled"
                || users.starts_with("id,name,key,created,enabled,"))
            && (perms == "user_id,perm" || perms.starts_with("user_id,perm,"));
        Ok(ours.then_some(version))
    }

    fn open_existing(path: &Path) -> Result<Self, DbError> {
        let wrap = |source: rusqlite::Error| DbError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(wrap)?;
        configure(&conn).map_err(wrap)?;
        migrate(&mut conn).map_err(|e| match e {
            DbError::Sqlite(source) => wrap(source),
            other => other,
        })?;
        Ok(UserDb { conn })
    }

    /// Registers a user, enabled. Errors: bad name, name taken, key already
    /// registered to someone else.
    pub fn add_user(&mut self, name: &str, key: &PublicKey) -> Result<(), DbError> {
        check_name(name)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: Option<i64> = tx
            .query_row("SELECT id FROM users WHERE name = ?1", [name], |r| r.get(0))
            .optional()?;
        if exists.is_some() {
            return Err(DbError::UserExists(name.to_string()));
        }
        let holder: Option<String> = tx
            .query_row(
                "SELECT name FROM users WHERE key = ?1",
                [&key.to_sec1()[..]],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(holder) = holder {
            return Err(DbError::KeyInUse(holder));
        }
        tx.execute(
            "INSERT INTO users (name, key, created, enabled) VALUES (?1, ?2, ?3, 1)",
            params![name, &key.to_sec1()[..], now_unix()],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn user_id(&self, name: &str) -> Result<i64, DbError> {
        self.conn
            .query_row("SELECT id FROM users WHERE name = ?1", [name], |r| r.get(0))
            .optional()?
            .ok_or_else(|| DbError::NoSuchUser(shown(name)))
    }

    fn permissions_of(&self, id: i64) -> Result<Vec<String>, DbError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT perm FROM permissions WHERE user_id = ?1 ORDER BY perm")?;
        let rows = stmt.query_map([id], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn row_to_user(&self, (id, name, blob, created, enabled): UserRow) -> Result<User, DbError> {
        let key = PublicKey::from_sec1(&blob).map_err(|_| DbError::CorruptKey(name.clone()))?;
        Ok(User {
            permissions: self.permissions_of(id)?,
            name,
            key,
            created,
            enabled,
        })
    }

    /// Looks a user up by name; `None` if there is no such user.
    pub(crate) fn get_user(&self, name: &str) -> Result<Option<User>, DbError> {
        // Cached: every login looks its user up twice (the check, then
        // `still_allowed`); parsing the SQL each time showed in its profile.
        let row = self
            .conn
            .prepare_cached("SELECT id, name, key, created, enabled FROM users WHERE name = ?1")?
            .query_row([name], user_row)
            .optional()?;
        row.map(|r| self.row_to_user(r)).transpose()
    }

    /// All users, sorted by name.
    pub(crate) fn list_users(&self) -> Result<Vec<User>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, name, key, created, enabled FROM users ORDER BY name")?;
        let rows = stmt
            .query_map([], user_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(|r| self.row_to_user(r)).collect()
    }

    /// At most `limit` users by name, after `after` (one page of the
    /// `admin` operation's `users`).
    pub(crate) fn users_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<User>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, name, key, created, enabled FROM users
              WHERE ?1 IS NULL OR name > ?1 ORDER BY name LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![after, limit], user_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(|r| self.row_to_user(r)).collect()
    }

    /// Enables or disables a user (a disabled user cannot log in).
    pub fn set_enabled(&mut self, name: &str, enabled: bool) -> Result<(), DbError> {
        let n = self.conn.execute(
            "UPDATE users SET enabled = ?1 WHERE name = ?2",
            params![enabled, name],
        )?;
        if n == 0 {
            return Err(DbError::NoSuchUser(shown(name)));
        }
        Ok(())
    }

    /// Removes a user and (by cascade) their permissions.
    pub fn remove_user(&mut self, name: &str) -> Result<(), DbError> {
        let n = self
            .conn
            .execute("DELETE FROM users WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(DbError::NoSuchUser(shown(name)));
        }
        Ok(())
    }

    fn check_permission(perm: &str) -> Result<(), DbError> {
        if perm.is_empty()
            || perm.len() > MAX_PERMISSION_LEN
            || perm
                .chars()
                .any(|c| c.is_control() || (c.is_whitespace() && c != ' '))
        {
            return Err(DbError::BadPermission(shown(perm)));
        }
        crate::perms::Perm::parse(perm)
            .map(|_| ())
            .map_err(|e| DbError::BadPermission(e.to_string()))
    }

    /// Grants a permission; returns whether it was new.
    pub fn add_permission(&mut self, name: &str, perm: &str) -> Result<bool, DbError> {
        Self::check_permission(perm)?;
        let id = self.user_id(name)?;
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO permissions (user_id, perm) VALUES (?1, ?2)",
            params![id, perm],
        )?;
        Ok(n > 0)
    }

    /// Revokes a permission; returns whether the user had it.
    pub fn remove_permission(&mut self, name: &str, perm: &str) -> Result<bool, DbError> {
        let id = self.user_id(name)?;
        let n = self.conn.execute(
            "DELETE FROM permissions WHERE user_id = ?1 AND perm = ?2",
            params![id, perm],
        )?;
        Ok(n > 0)
    }

    /// A user's permissions, sorted.
    #[cfg(test)]
    pub(crate) fn list_permissions(&self, name: &str) -> Result<Vec<String>, DbError> {
        let id = self.user_id(name)?;
        self.permissions_of(id)
    }

    /// `PRAGMA data_version`: changes whenever another connection commits,
    /// so a long-running daemon can notice `remod user …` edits cheaply.
    pub(crate) fn data_version(&self) -> Result<i64, DbError> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// The schema version of the open file (always [`SCHEMA_VERSION`] after open).
    #[cfg(test)]
    pub(crate) fn schema_version(&self) -> Result<i64, DbError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::identity::IdentityKey;

    fn key() -> PublicKey {
        IdentityKey::generate().public()
    }

    #[test]
    fn create_refuses_existing_and_open_refuses_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users.db");
        assert!(matches!(UserDb::open(&p), Err(DbError::Missing(_))));
        let db = UserDb::create(&p).unwrap();
        assert_eq!(db.schema_version().unwrap(), SCHEMA_VERSION);
        drop(db);
        assert!(matches!(UserDb::create(&p), Err(DbError::Exists(_))));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        UserDb::open(&p).unwrap();
    }

    #[test]
    fn the_server_opens_only_a_user_database_and_writes_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users.db");
        let mut db = UserDb::create(&p).unwrap();
        db.add_user("alice", &key()).unwrap();
        drop(db);
        let db = UserDb::open_served(&p).unwrap();
        assert!(db.get_user("alice").unwrap().is_some());
        drop(db);
        // A name with what a URI would misread (the look opens a URI).
        let odd = dir.path().join("a b?c=1#d%20e.db");
        std::fs::copy(&p, &odd).unwrap();
        let db = UserDb::open_served(&odd).unwrap();
        assert!(db.get_user("alice").unwrap().is_some());
        drop(db);

        let listing = |d: &Path| {
            let mut v: Vec<_> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        // An empty file (a root-owned lock file, say) and another
        // program's database: refused, and left exactly as they were.
        let other = tempfile::tempdir().unwrap();
        let empty = other.path().join(".pwd.lock");
        std::fs::write(&empty, b"").unwrap();
        let foreign = other.path().join("app.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE users (x); PRAGMA user_version = 7;")
            .unwrap();
        // In WAL mode (a read-only open would leave -wal and -shm), with
        // tables of our names but not our columns.
        let wal = other.path().join("wal.db");
        Connection::open(&wal)
            .unwrap()
            .execute_batch(
                "PRAGMA journal_mode=WAL; CREATE TABLE users (id, name); \
                 CREATE TABLE permissions (user_id, perm); PRAGMA user_version = 1;",
            )
            .unwrap();
        let text = other.path().join("notes.txt");
        std::fs::write(&text, b"not a database at all").unwrap();
        let before = std::fs::read(&foreign).unwrap();
        let before_wal = std::fs::read(&wal).unwrap();
        let names = listing(other.path());
        for f in [&empty, &foreign, &wal, &text] {
            assert!(
                matches!(UserDb::open_served(f), Err(DbError::NotUserDb(_))),
                "{}",
                f.display()
            );
        }
        assert_eq!(std::fs::read(&empty).unwrap(), b"");
        assert_eq!(std::fs::read(&foreign).unwrap(), before);
        assert_eq!(std::fs::read(&wal).unwrap(), before_wal);
        assert_eq!(listing(other.path()), names, "no -wal or -shm files left");
    }

    #[test]
    fn users_crud() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users.db");
        let mut db = UserDb::create(&p).unwrap();
        let (ka, kb) = (key(), key());
        db.add_user("alice", &ka).unwrap();
        db.add_user("bob", &kb).unwrap();
        assert!(matches!(
            db.add_user("alice", &key()),
            Err(DbError::UserExists(_))
        ));
        assert!(matches!(
            db.add_user("carol", &ka),
            Err(DbError::KeyInUse(ref u)) if u == "alice"
        ));
        assert!(matches!(
            db.add_user("bad name", &key()),
            Err(DbError::BadName(_))
        ));
        let a = db.get_user("alice").unwrap().unwrap();
        assert_eq!(a.key, ka);
        assert!(a.enabled);
        assert!(a.created > 1_600_000_000);
        assert!(db.get_user("nobody").unwrap().is_none());
        db.set_enabled("alice", false).unwrap();
        assert!(!db.get_user("alice").unwrap().unwrap().enabled);
        assert!(matches!(
            db.set_enabled("nobody", true),
            Err(DbError::NoSuchUser(_))
        ));
        let names: Vec<_> = db
            .list_users()
            .unwrap()
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["alice", "bob"]);
        db.remove_user("bob").unwrap();
        assert!(matches!(db.remove_user("bob"), Err(DbError::NoSuchUser(_))));
        assert_eq!(db.list_users().unwrap().len(), 1);
    }

    #[test]
    fn permissions_cascade() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users.db");
        let mut db = UserDb::create(&p).unwrap();
        db.add_user("alice", &key()).unwrap();
        assert!(db.add_permission("alice", "cmd").unwrap());
        assert!(!db.add_permission("alice", "cmd").unwrap());
        assert!(db.add_permission("alice", "sh").unwrap());
        for bad in ["a b", "get", "files:read:relative", "cmd:/bin/x\targ"] {
            assert!(matches!(
                db.add_permission("alice", bad),
                Err(DbError::BadPermission(_))
            ));
        }
        assert_eq!(db.list_permissions("alice").unwrap(), ["cmd", "sh"]);
        assert_eq!(
            db.get_user("alice").unwrap().unwrap().permissions,
            ["cmd", "sh"]
        );
        assert!(db.remove_permission("alice", "cmd").unwrap());
        assert!(!db.remove_permission("alice", "cmd").unwrap());
        db.remove_user("alice").unwrap();
        let left: i64 = db
            .conn
            .query_row("SELECT count(*) FROM permissions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn migrates_empty_v0_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users.db");
        std::fs::write(&p, b"").unwrap();
        let mut db = UserDb::open(&p).unwrap();
        assert_eq!(db.schema_version().unwrap(), 1);
        db.add_user("alice", &key()).unwrap();
    }

    #[test]
    fn refuses_newer_schema_and_non_database() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users.db");
        {
            let c = Connection::open(&p).unwrap();
            c.pragma_update(None, "user_version", 7).unwrap();
        }
        assert!(matches!(UserDb::open(&p), Err(DbError::NewerSchema(7))));
        let q = dir.path().join("junk.db");
        std::fs::write(&q, vec![b'x'; 4096]).unwrap();
        let e = UserDb::open(&q).unwrap_err();
        assert!(matches!(e, DbError::Open { .. }), "{e:?}");
    }

    #[test]
    fn corrupt_key_blob_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users.db");
        let mut db = UserDb::create(&p).unwrap();
        db.add_user("alice", &key()).unwrap();
        let mut bad = [0u8; 65];
        bad[0] = 4;
        db.conn
            .execute("UPDATE users SET key = ?1 WHERE name = 'alice'", [&bad[..]])
            .unwrap();
        assert!(matches!(
            db.get_user("alice"),
            Err(DbError::CorruptKey(ref u)) if u == "alice"
        ));
        assert!(matches!(db.list_users(), Err(DbError::CorruptKey(_))));
    }

    #[test]
    fn data_version_sees_other_connections() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users.db");
        let watcher = UserDb::create(&p).unwrap();
        let v0 = watcher.data_version().unwrap();
        let mut writer = UserDb::open(&p).unwrap();
        writer.add_user("alice", &key()).unwrap();
        assert_ne!(watcher.data_version().unwrap(), v0);
        assert_eq!(watcher.list_users().unwrap().len(), 1);
    }
}
