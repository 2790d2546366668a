//! The audit log: one SQLite row per request that reached a session (and
//! per login attempt), in its own file so the hot path never contends with
//! `remod user …` edits of the user database.
//!
//! File: `REMO_AUDIT_DB` (environment of `remod serve`), else `audit.db`
//! beside the user database. Rows are written off the hot path: operations
//! send them over a channel to one writer thread that inserts whatever has
//! queued up in one transaction.
//!
//! A row holds what was asked and how it ended — never data, environment
//! values, standard input or secrets. The session is identified by a short
//! hash of its id, not the id itself.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{params, Connection};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::proto::b64;

/// Environment variable naming the audit database.
pub(crate) const AUDIT_DB_ENV: &str = "REMO_AUDIT_DB";
/// The audit database's default file name, beside the user database.
pub(crate) const AUDIT_DB_FILE: &str = "audit.db";

/// Why the audit log could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Creating the file failed.
    #[error("{path}: cannot create audit database: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("{path}: audit database: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: rusqlite::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the audit writer: {0}")]
    Thread(std::io::Error),
    /// Reading: the directory that should hold the file does not exist (a
    /// wrong path, rather than a server that has not audited anything yet).
    #[error("{}: no such directory for the audit database", path.display())]
    NoDirectory {
        /// The directory.
        path: PathBuf,
    },
}

/// One audited event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// When it started, Unix milliseconds.
    pub time_ms: i64,
    /// The (claimed, for logins) user name, `-` if unknown.
    pub user: String,
    /// Source address.
    pub remote: String,
    /// Short hash of the session id (see [`session_tag`]), `-` if none.
    pub session: String,
    /// Operation (`auth`, `cmd`, `get`, …).
    pub op: String,
    /// What was asked: command line, path, config name, profile, process id.
    pub summary: String,
    /// `ok`, an error code, a pre-check status (`401`, `409`) or `auth-failed: REASON`.
    pub outcome: String,
    /// A command's exit code.
    pub exit: Option<i64>,
    /// Request bytes received after the descriptor.
    pub bytes_in: u64,
    /// Response data bytes sent.
    pub bytes_out: u64,
    /// How long it took.
    pub duration_ms: u64,
    /// The certificate behind the session or login, `CA-FINGERPRINT#SERIAL`
    /// (§7); empty for a registered user's key.
    pub cert: String,
}

/// A short, stable tag for a session id: enough to group a session's rows,
/// without writing the id (a bearer value) to the log.
pub(crate) fn session_tag(sid: &str) -> String {
    let d = Sha256::digest(sid.as_bytes());
    b64::encode(d.get(..6).unwrap_or(&[]))
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Quotes a word for a POSIX shell when it needs it, so a summary reads as
/// the command line it was.
pub(crate) fn shell_quote(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// Longest summary kept (a long shell script is cut).
pub(crate) const MAX_SUMMARY: usize = 1000;

/// The descriptor summary for an operation: only the fields that say what
/// was asked (`argv`/`sh`, `action`, `path`, `name`, `section`, `key`,
/// `profile`, `id`, `signal`, and a resumable upload's id, offset and
/// commit or abort), never `env`, values, data or anything else.
pub(crate) fn summarize(descriptor: &[u8]) -> String {
    let Ok(Value::Object(d)) = serde_json::from_slice::<Value>(descriptor) else {
        return String::new();
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(Value::Array(argv)) = d.get("argv") {
        let words: Vec<String> = argv
            .iter()
            .map(|a| shell_quote(a.as_str().unwrap_or("?")))
            .collect();
        parts.push(words.join(" "));
    }
    if let Some(Value::String(s)) = d.get("sh") {
        parts.push(format!("sh -c {}", shell_quote(s)));
    }
    // Config edits: action, file, section and key name — never the value.
    for k in [
        "action", "path", "name", "section", "key", "profile", "id", "signal",
    ] {
        match d.get(k) {
            Some(Value::String(s)) => parts.push(s.clone()),
            Some(v @ Value::Number(_)) => parts.push(v.to_string()),
            _ => {}
        }
    }
    // A resumable upload's step (`put`): which upload, where, and what.
    if let Some(Value::Object(u)) = d.get("upload") {
        parts.push(match u.get("id") {
            Some(Value::String(id)) => format!("upload={id}"),
            _ => "upload=new".into(),
        });
        if let Some(v @ Value::Number(_)) = u.get("offset") {
            parts.push(format!("offset={v}"));
        }
        for flag in ["commit", "abort"] {
            if u.get(flag) == Some(&Value::Bool(true)) {
                parts.push(flag.into());
            }
        }
    }
    let mut s = parts.join(" ");
    if s.len() > MAX_SUMMARY {
        let mut cut = MAX_SUMMARY;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

enum Msg {
    Row(Box<AuditRecord>),
    Flush(mpsc::Sender<()>),
}

/// The writing side, held by an instance. Cheap to call from async code:
/// `record` only queues.
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    /// Rows queued and not yet written (the metrics' queue depth).
    queued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The file, for reading it back (the `admin` operation's `audit`).
    path: PathBuf,
}

fn open_conn(path: &Path) -> Result<Connection, AuditError> {
    let sq = |source| AuditError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    if !path.exists() {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|source| AuditError::Io {
                path: path.to_path_buf(),
                source,
            })?;
    }
    let conn = Connection::open(path).map_err(sq)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(sq)?;
    let _mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(sq)?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS audit (
             id          INTEGER PRIMARY KEY,
             time_ms     INTEGER NOT NULL,
             user        TEXT    NOT NULL,
             remote      TEXT    NOT NULL,
             session     TEXT    NOT NULL,
             op          TEXT    NOT NULL,
             summary     TEXT    NOT NULL,
             outcome     TEXT    NOT NULL,
             exit        INTEGER,
             bytes_in    INTEGER NOT NULL,
             bytes_out   INTEGER NOT NULL,
             duration_ms INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS audit_time ON audit(time_ms);",
    )
    .map_err(sq)?;
    // Databases from before certificates lack the column.
    if !has_cert_column(&conn).map_err(sq)? {
        conn.execute_batch("ALTER TABLE audit ADD COLUMN cert TEXT NOT NULL DEFAULT ''")
            .map_err(sq)?;
    }
    Ok(conn)
}

fn has_cert_column(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('audit') WHERE name = 'cert'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn write_batch(conn: &mut Connection, rows: &[AuditRecord]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut st = tx.prepare_cached(
            "INSERT INTO audit (time_ms, user, remote, session, op, summary, outcome, exit,
                                bytes_in, bytes_out, duration_ms, cert)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        for r in rows {
            st.execute(params![
                r.time_ms,
                r.user,
                r.remote,
                r.session,
                r.op,
                r.summary,
                r.outcome,
                r.exit,
                to_i64(r.bytes_in),
                to_i64(r.bytes_out),
                to_i64(r.duration_ms),
                r.cert,
            ])?;
        }
    }
    tx.commit()
}

/// Largest number of rows written in one transaction.
const BATCH: usize = 512;

/// How long the writer waits after a first row before it commits what has
/// queued up. Bounds how late a row reaches the file (besides the commit
/// itself) and how often the writer wakes: at most 1 / LINGER commits per
/// second however busy the server is.
const LINGER: Duration = Duration::from_millis(5);

/// Where audit rows also go (`remod serve --audit-syslog`), if anywhere.
static SYSLOG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Sends every audit row, from now on, to the syslog socket at `path` too.
pub(crate) fn send_to_syslog(path: PathBuf) {
    let _ = SYSLOG.set(path);
}

/// A value for a `key=value` syslog line: bare if plain, else quoted with
/// `"` and `\` escaped and control characters as `\xNN`, so a command
/// line cannot forge another field or another line.
fn syslog_value(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\' && c != '=');
    if plain {
        return v.to_string();
    }
    let mut o = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if c.is_control() => o.push_str(&format!("\\x{:02x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// One row as a syslog datagram (the local `/dev/log` form: `<PRI>TAG:
/// MSG`), facility authpriv, `info` for `ok` and `notice` otherwise.
pub(crate) fn syslog_line(r: &AuditRecord) -> String {
    let severity = if r.outcome == "ok" { 6 } else { 5 };
    let mut msg = format!(
        "<{}>remod[{}]: audit",
        10 * 8 + severity,
        std::process::id()
    );
    for (k, v) in [
        ("user", r.user.as_str()),
        ("remote", r.remote.as_str()),
        ("session", r.session.as_str()),
        ("op", r.op.as_str()),
        ("outcome", r.outcome.as_str()),
    ] {
        msg.push_str(&format!(" {k}={}", syslog_value(v)));
    }
    if let Some(e) = r.exit {
        msg.push_str(&format!(" exit={e}"));
    }
    msg.push_str(&format!(
        " in={} out={} ms={}",
        r.bytes_in, r.bytes_out, r.duration_ms
    ));
    if !r.cert.is_empty() {
        msg.push_str(&format!(" cert={}", syslog_value(&r.cert)));
    }
    msg.push_str(&format!(" summary={}", syslog_value(&r.summary)));
    msg
}

fn to_syslog(sock: &mut Option<std::os::unix::net::UnixDatagram>, rows: &[AuditRecord]) {
    let Some(path) = SYSLOG.get() else { return };
    if sock.is_none() {
        *sock = std::os::unix::net::UnixDatagram::unbound().ok();
    }
    let Some(s) = sock.as_ref() else { return };
    for r in rows {
        if let Err(e) = s.send_to(syslog_line(r).as_bytes(), path) {
            log::warn!(
                "audit: cannot send a row to syslog at {}: {e}",
                path.display()
            );
            return;
        }
    }
}

fn writer(
    mut conn: Connection,
    rx: mpsc::Receiver<Msg>,
    path: PathBuf,
    queued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let mut syslog = None;
    while let Ok(first) = rx.recv() {
        // Group commit: let the rows of requests running alongside this one
        // arrive before opening a transaction. Senders do not wake a writer
        // that sleeps, so under load this is one wake-up and one commit
        // (one fsync) per LINGER instead of per request.
        if matches!(first, Msg::Row(_)) {
            std::thread::sleep(LINGER);
        }
        let mut rows = Vec::new();
        let mut acks = Vec::new();
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Msg::Row(r) => rows.push(*r),
                Msg::Flush(a) => acks.push(a),
            }
            if rows.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !rows.is_empty() {
            let written = write_batch(&mut conn, &rows);
            to_syslog(&mut syslog, &rows);
            queued.fetch_sub(rows.len(), std::sync::atomic::Ordering::Relaxed);
            if let Err(e) = written {
                log::error!(
                    "audit: cannot write {} row(s) to {}: {e}",
                    rows.len(),
                    path.display()
                );
            }
        }
        for a in acks {
            let _ = a.send(());
        }
    }
}

impl AuditLog {
    /// The audit file for a user database: `REMO_AUDIT_DB`, else `audit.db` beside it.
    pub(crate) fn default_path(user_db: &Path) -> PathBuf {
        match std::env::var_os(AUDIT_DB_ENV).filter(|v| !v.is_empty()) {
            Some(p) => PathBuf::from(p),
            None => user_db
                .parent()
                .unwrap_or(Path::new("."))
                .join(AUDIT_DB_FILE),
        }
    }

    /// Opens (creating, mode 0600) the audit database and starts its writer.
    pub(crate) fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let conn = open_conn(path)?;
        let (tx, rx) = mpsc::channel();
        let p = path.to_path_buf();
        let queued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let q = queued.clone();
        std::thread::Builder::new()
            .name("remod-audit".into())
            .spawn(move || writer(conn, rx, p, q))
            .map_err(AuditError::Thread)?;
        Ok(AuditLog {
            tx,
            queued,
            path: path.to_path_buf(),
        })
    }

    /// Queues a row; never blocks.
    pub(crate) fn record(&self, r: AuditRecord) {
        self.queued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.tx.send(Msg::Row(Box::new(r))).is_err() {
            self.queued
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            log::error!("audit: writer is gone; a row was lost");
        }
    }

    /// Rows queued and not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The audit database's file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Waits until every row queued so far is written (tests, shutdown).
    /// Blocking: call it off the async workers.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
    }
}

/// What `remod audit` selects.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this user.
    pub user: Option<String>,
    /// Only rows at or after this Unix time (seconds).
    pub since: Option<i64>,
    /// Only this operation.
    pub op: Option<String>,
    /// At most this many (the newest), oldest first.
    pub limit: Option<u64>,
}

/// Reads rows from an audit database, oldest first.
pub fn query(path: &Path, f: &AuditFilter) -> Result<Vec<AuditRecord>, AuditError> {
    let sq = |source| AuditError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    if !path.exists() {
        // remod creates the file when it first audits something: a data
        // directory it has not served from yet has no rows, not an error.
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if dir.is_dir() {
            return Ok(Vec::new());
        }
        return Err(AuditError::NoDirectory {
            path: dir.to_path_buf(),
        });
    }
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sq)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(sq)?;
    let limit = f.limit.map(to_i64).unwrap_or(-1);
    // A database no remod with certificates has written to yet (read-only
    // here, so not migrated) has no `cert` column.
    let cert = if has_cert_column(&conn).map_err(sq)? {
        "cert"
    } else {
        "''"
    };
    let mut st = conn
        .prepare(&format!(
            "SELECT time_ms, user, remote, session, op, summary, outcome, exit,
                    bytes_in, bytes_out, duration_ms, {cert} FROM (
               SELECT * FROM audit
                WHERE (?1 IS NULL OR user = ?1)
                  AND (?2 IS NULL OR time_ms >= ?2 * 1000)
                  AND (?3 IS NULL OR op = ?3)
                ORDER BY id DESC LIMIT ?4)
             ORDER BY id"
        ))
        .map_err(sq)?;
    let rows = st
        .query_map(params![f.user, f.since, f.op, limit], |r| {
            Ok(AuditRecord {
                time_ms: r.get(0)?,
                user: r.get(1)?,
                remote: r.get(2)?,
                session: r.get(3)?,
                op: r.get(4)?,
                summary: r.get(5)?,
                outcome: r.get(6)?,
                exit: r.get(7)?,
                bytes_in: r.get::<_, i64>(8)?.max(0) as u64,
                bytes_out: r.get::<_, i64>(9)?.max(0) as u64,
                duration_ms: r.get::<_, i64>(10)?.max(0) as u64,
                cert: r.get(11)?,
            })
        })
        .map_err(sq)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sq)?;
    Ok(rows)
}

/// What one page of the `admin` operation's `audit` selects.
#[derive(Debug, Clone, Default)]
pub(crate) struct PageFilter {
    /// Only this user.
    pub user: Option<String>,
    /// Only this operation.
    pub op: Option<String>,
    /// This outcome, or one whose first word (before a space or `:`) it is.
    pub outcome: Option<String>,
    /// Only rows at or after this Unix time (seconds).
    pub since: Option<i64>,
    /// Only rows before this Unix time (seconds).
    pub until: Option<i64>,
    /// Only rows whose number is below this.
    pub before: Option<i64>,
    /// At most this many rows.
    pub limit: u32,
}

/// One page of rows, newest first, each with its row number; `more` when
/// older rows match too. Reads its own connection (read-only).
pub(crate) fn page(
    path: &Path,
    f: &PageFilter,
) -> Result<(Vec<(i64, AuditRecord)>, bool), AuditError> {
    let sq = |source| AuditError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sq)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(sq)?;
    // Times in seconds, compared in milliseconds, saturating (no overflow
    // from a huge value).
    let ms = |s: Option<i64>| s.map(|s| s.saturating_mul(1000));
    let mut st = conn
        .prepare_cached(
            "SELECT id, time_ms, user, remote, session, op, summary, outcome, exit,
                    bytes_in, bytes_out, duration_ms, cert FROM audit
              WHERE (?1 IS NULL OR user = ?1)
                AND (?2 IS NULL OR op = ?2)
                AND (?3 IS NULL OR outcome = ?3
                     OR substr(outcome, 1, length(?3) + 1) IN (?3 || ' ', ?3 || ':'))
                AND (?4 IS NULL OR time_ms >= ?4)
                AND (?5 IS NULL OR time_ms < ?5)
                AND (?6 IS NULL OR id < ?6)
              ORDER BY id DESC LIMIT ?7",
        )
        .map_err(sq)?;
    let want = i64::from(f.limit) + 1;
    let mut rows = st
        .query_map(
            params![
                f.user,
                f.op,
                f.outcome,
                ms(f.since),
                ms(f.until),
                f.before,
                want
            ],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    AuditRecord {
                        time_ms: r.get(1)?,
                        user: r.get(2)?,
                        remote: r.get(3)?,
                        session: r.get(4)?,
                        op: r.get(5)?,
                        summary: r.get(6)?,
                        outcome: r.get(7)?,
                        exit: r.get(8)?,
                        bytes_in: r.get::<_, i64>(9)?.max(0) as u64,
                        bytes_out: r.get::<_, i64>(10)?.max(0) as u64,
                        duration_ms: r.get::<_, i64>(11)?.max(0) as u64,
                        cert: r.get(12)?,
                    },
                ))
            },
        )
        .map_err(sq)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sq)?;
    let more = rows.len() > f.limit as usize;
    rows.truncate(f.limit as usize);
    Ok((rows, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_hold_no_data() {
        assert_eq!(
            summarize(br#"{"argv":["echo","a b","it's"],"env":{"SECRET":"x"}}"#),
            r#"echo 'a b' 'it'\''s'"#
        );
        assert_eq!(summarize(br#"{"sh":"ls -l"}"#), "sh -c 'ls -l'");
        assert_eq!(summarize(br#"{"path":"/etc/x","mode":420}"#), "/etc/x");
        assert_eq!(summarize(br#"{"id":"p1","signal":"TERM"}"#), "p1 TERM");
        assert_eq!(
            summarize(
                br#"{"path":"/a","upload":{"id":"U","offset":65536,"commit":true},"sha256":"x"}"#
            ),
            "/a upload=U offset=65536 commit"
        );
        assert_eq!(summarize(br#"{"path":"/a","upload":{}}"#), "/a upload=new");
        assert_eq!(summarize(b"not json"), "");
        assert_eq!(
            summarize(br#"{"action":"set","name":"app","section":"db","key":"password","value":"hunter2"}"#),
            "set app db password"
        );
    }

    #[test]
    fn writes_and_queries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.db");
        let log = AuditLog::open(&p).unwrap();
        for (i, user) in ["a", "b", "a"].iter().enumerate() {
            log.record(AuditRecord {
                time_ms: 1000 * i as i64,
                user: user.to_string(),
                remote: "-".into(),
                session: "-".into(),
                op: "cmd".into(),
                summary: format!("n{i}"),
                outcome: "ok".into(),
                exit: Some(0),
                bytes_in: 0,
                bytes_out: 0,
                duration_ms: 1,
                cert: if i == 1 {
                    "SHA256:x#3".into()
                } else {
                    String::new()
                },
            });
        }
        log.flush();
        let all = query(&p, &AuditFilter::default()).unwrap();
        assert_eq!(all.len(), 3);
        let a = query(
            &p,
            &AuditFilter {
                user: Some("a".into()),
                since: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].summary, "n2");
        assert_eq!(all[1].cert, "SHA256:x#3");
        assert_eq!(all[0].cert, "");
        let last = query(
            &p,
            &AuditFilter {
                limit: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            last.iter().map(|r| r.summary.as_str()).collect::<Vec<_>>(),
            ["n1", "n2"]
        );
    }

    #[test]
    fn pages_filter_and_go_back_in_time() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.db");
        let log = AuditLog::open(&p).unwrap();
        for (i, (user, op, outcome)) in [
            ("a", "cmd", "ok"),
            ("b", "auth", "auth-failed: bad signature"),
            ("a", "get", "not_found"),
            ("a", "cmd", "401 unknown or expired session"),
            ("a", "cmd", "ok"),
        ]
        .iter()
        .enumerate()
        {
            log.record(AuditRecord {
                time_ms: 1000 * i as i64,
                user: user.to_string(),
                remote: "-".into(),
                session: "-".into(),
                op: op.to_string(),
                summary: format!("n{i}"),
                outcome: outcome.to_string(),
                exit: None,
                bytes_in: 0,
                bytes_out: 0,
                duration_ms: 1,
                cert: String::new(),
            });
        }
        log.flush();
        let sums = |f: &PageFilter| {
            let (rows, more) = page(&p, f).unwrap();
            let s: Vec<String> = rows.iter().map(|(_, r)| r.summary.clone()).collect();
            (s, more, rows.last().map(|r| r.0))
        };
        let f = PageFilter {
            limit: 2,
            ..Default::default()
        };
        let (s, more, last) = sums(&f);
        assert_eq!((s, more), (vec!["n4".into(), "n3".into()], true));
        let f2 = PageFilter {
            before: last,
            ..f.clone()
        };
        let (s, more, last) = sums(&f2);
        assert_eq!((s, more), (vec!["n2".into(), "n1".into()], true));
        let (s, more, _) = sums(&PageFilter { before: last, ..f });
        assert_eq!((s, more), (vec!["n0".into()], false));
        let all = |f: PageFilter| sums(&PageFilter { limit: 10, ..f }).0;
        assert_eq!(
            all(PageFilter {
                user: Some("a".into()),
                op: Some("cmd".into()),
                ..Default::default()
            }),
            ["n4", "n3", "n0"]
        );
        for (o, want) in [
            ("ok", vec!["n4", "n0"]),
            ("auth-failed", vec!["n1"]),
            ("401", vec!["n3"]),
            ("40", vec![]),
            ("not_found", vec!["n2"]),
        ] {
            let got = all(PageFilter {
                outcome: Some(o.into()),
                ..Default::default()
            });
            assert_eq!(got, want, "outcome {o}");
        }
        assert_eq!(
            all(PageFilter {
                since: Some(1),
                until: Some(3),
                ..Default::default()
            }),
            ["n2", "n1"]
        );
        assert!(all(PageFilter {
            since: Some(i64::MAX),
            ..Default::default()
        })
        .is_empty());
        assert!(sums(&PageFilter::default()).0.is_empty());
    }

    #[test]
    fn databases_from_before_certificates_are_read_and_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.db");
        let old = Connection::open(&p).unwrap();
        old.execute_batch(
            "CREATE TABLE audit (id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL,
               user TEXT NOT NULL, remote TEXT NOT NULL, session TEXT NOT NULL,
               op TEXT NOT NULL, summary TEXT NOT NULL, outcome TEXT NOT NULL,
               exit INTEGER, bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL,
               duration_ms INTEGER NOT NULL);
             INSERT INTO audit VALUES (1, 5, 'old', '-', '-', 'cmd', '', 'ok', 0, 0, 0, 1);",
        )
        .unwrap();
        drop(old);
        // Read-only, as `remod audit` reads it: the old row, no certificate.
        let rows = query(&p, &AuditFilter::default()).unwrap();
        assert_eq!(
            (rows.len(), rows[0].user.as_str(), rows[0].cert.as_str()),
            (1, "old", "")
        );
        // remod opening it adds the column and writes certificate rows.
        let log = AuditLog::open(&p).unwrap();
        let mut r = rows[0].clone();
        r.cert = "SHA256:c#1".into();
        log.record(r);
        log.flush();
        let rows = query(&p, &AuditFilter::default()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].cert, "SHA256:c#1");
    }

    #[test]
    fn syslog_lines_cannot_forge_fields() {
        let r = AuditRecord {
            time_ms: 0,
            user: "alice".into(),
            remote: "192.0.2.1".into(),
            session: "abc".into(),
            op: "cmd".into(),
            summary: "echo 'x' op=auth\nfake".into(),
            outcome: "ok".into(),
            exit: Some(0),
            bytes_in: 1,
            bytes_out: 2,
            duration_ms: 3,
            cert: String::new(),
        };
        let l = syslog_line(&r);
        assert!(l.starts_with("<86>remod["), "{l}");
        assert!(l.ends_with(r#" summary="echo 'x' op=auth\x0afake""#), "{l}");
        assert!(!l.contains('\n'));
        assert!(l.contains(" user=alice remote=192.0.2.1 session=abc op=cmd outcome=ok exit=0 in=1 out=2 ms=3 "), "{l}");
        let failed = AuditRecord {
            outcome: "auth-failed: bad signature".into(),
            cert: "SHA256:x#4".into(),
            ..r
        };
        let l = syslog_line(&failed);
        assert!(l.starts_with("<85>"), "{l}");
        assert!(l.contains(r#"outcome="auth-failed: bad signature""#), "{l}");
        assert!(l.contains(" cert=SHA256:x#4 "), "{l}");
    }
}
