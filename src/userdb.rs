//! The SQLite user database. (temporary minimal version; replaced by the full one)

use std::path::Path;

use crate::proto::identity::PublicKey;

/// Database errors.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite failed.
    #[error("user database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored key is corrupt.
    #[error("user database: corrupt key for {0}")]
    CorruptKey(String),
}

/// A registered user.
#[derive(Debug, Clone)]
pub struct User {
    /// Name.
    pub name: String,
    /// Public key.
    pub key: PublicKey,
    /// Creation time.
    pub created: i64,
    /// Enabled flag.
    pub enabled: bool,
    /// Permissions.
    pub permissions: Vec<String>,
}

/// An open user database.
pub struct UserDb {
    conn: rusqlite::Connection,
}

impl UserDb {
    /// Opens an existing database.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
        )?;
        Ok(UserDb { conn })
    }

    /// Creates a new database.
    pub fn create(path: &Path) -> Result<Self, DbError> {
        let conn = rusqlite::Connection::open(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, \
             pubkey BLOB NOT NULL, created INTEGER NOT NULL, enabled INTEGER NOT NULL DEFAULT 1);",
        )?;
        Ok(UserDb { conn })
    }

    /// Adds a user.
    pub fn add_user(&self, name: &str, key: &PublicKey) -> Result<(), DbError> {
        self.conn.execute(
            "INSERT INTO users (name, pubkey, created, enabled) VALUES (?1, ?2, strftime('%s','now'), 1)",
            rusqlite::params![name, key.to_sec1().to_vec()],
        )?;
        Ok(())
    }

    /// Looks a user up.
    pub fn get_user(&self, name: &str) -> Result<Option<User>, DbError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT name, pubkey, created, enabled FROM users WHERE name = ?1")?;
        let mut rows = st.query([name])?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        let blob: Vec<u8> = row.get(1)?;
        let key = PublicKey::from_sec1(&blob).map_err(|_| DbError::CorruptKey(name.into()))?;
        Ok(Some(User {
            name: row.get(0)?,
            key,
            created: row.get(2)?,
            enabled: row.get::<_, i64>(3)? != 0,
            permissions: vec![],
        }))
    }
}
