//! Admin and key tools: `remod init`, `remod user …`, `remo keygen`.
//!
//! Each `run_*` function is a whole command: it returns the process exit
//! code (0 success, 1 failure, 2 usage) and reports a failure as a single
//! `remod: …` / `remo: …` line on stderr, so scripts can rely on both.

use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use zeroize::Zeroizing;

use crate::keyfile::{self, PASSPHRASE_ENV};
use crate::proto::identity::IdentityKey;
use crate::userdb::{User, UserDb};

/// Exit code for a failed command.
pub(crate) const EXIT_FAILURE: i32 = 1;
/// Exit code for a command used wrongly.
pub(crate) const EXIT_USAGE: i32 = 2;

/// File names inside a data directory, shared with the server so both agree.
pub(crate) const SERVER_KEY_FILE: &str = "server.key";
/// The server's public key, for distributing to clients out of band.
pub(crate) const SERVER_PUB_FILE: &str = "server.pub";
/// The user database.
pub(crate) const USER_DB_FILE: &str = "users.db";

/// Arguments of `remod init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The data directory to create (mode 0700 if it does not exist).
    pub dir: PathBuf,
}

/// Arguments of `remod user`.
#[derive(Debug, clap::Args)]
pub struct UserArgs {
    /// The user database file.
    #[arg(long, env = "REMO_USER_DB", global = true, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub cmd: UserCmd,
}

/// The `remod user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Register a user with their public key (SPKI PEM, e.g. from `remo keygen`).
    Add {
        /// User name (1-64 of A-Z a-z 0-9 . _ -).
        name: String,
        /// The user's public key file.
        #[arg(long, value_name = "PUB.pem")]
        key: PathBuf,
        /// Grant a permission (repeatable; see docs/permissions.md).
        #[arg(long = "allow", value_name = "PERM")]
        allow: Vec<String>,
    },
    /// Grant a permission (see docs/permissions.md); a running daemon
    /// applies it to live sessions within a second.
    Allow {
        /// User name.
        name: String,
        /// The permission, e.g. `cmd:/usr/bin/systemctl restart nginx`.
        perm: String,
    },
    /// Revoke a permission; a running daemon applies it to live sessions
    /// within a second.
    Deny {
        /// User name.
        name: String,
        /// The permission, exactly as granted.
        perm: String,
    },
    /// List users.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Disable a user (they cannot log in; the record is kept).
    Disable {
        /// User name.
        name: String,
    },
    /// Enable a disabled user.
    Enable {
        /// User name.
        name: String,
    },
    /// Remove a user and their permissions.
    Remove {
        /// User name.
        name: String,
    },
}

/// Arguments of `remo keygen`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// Private key file to write; the public key goes to FILE.pub.
    /// Default: ~/.config/remo/id_p256.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write the private key unencrypted.
    #[arg(long)]
    pub no_passphrase: bool,
    /// Overwrite existing key files.
    #[arg(long)]
    pub force: bool,
}

/// A failure with the exit code it maps to.
pub(crate) struct Failure {
    code: i32,
    message: String,
}

impl Failure {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: EXIT_FAILURE,
            message: e.to_string(),
        }
    }
}

/// Prints the one-line error and returns the exit code.
pub(crate) fn finish(prog: &str, r: Result<(), Failure>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(f) => {
            // One line, whatever the message holds.
            let line = f.message.replace(['\n', '\r'], " ");
            eprintln!("{prog}: {line}");
            f.code
        }
    }
}

// ---------------------------------------------------------------------------
// remod init

/// Runs `remod init`; returns the exit code.
pub fn run_init(a: InitArgs) -> i32 {
    finish("remod", init(&a.dir))
}

/// Removes what a failed `init` created, newest first.
struct Cleanup {
    files: Vec<PathBuf>,
    dir: Option<PathBuf>,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for f in self.files.iter().rev() {
            let _ = std::fs::remove_file(f);
            for suffix in ["-wal", "-shm", "-journal"] {
                let mut s = f.clone().into_os_string();
                s.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(s));
            }
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn init(dir: &Path) -> Result<(), Failure> {
    let key_path = dir.join(SERVER_KEY_FILE);
    let pub_path = dir.join(SERVER_PUB_FILE);
    let db_path = dir.join(USER_DB_FILE);
    for p in [&key_path, &db_path] {
        if p.exists() {
            return Err(
                format!("{}: already exists; refusing to re-initialise", p.display()).into(),
            );
        }
    }
    let mut cleanup = Cleanup {
        files: Vec::new(),
        dir: None,
        armed: true,
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("{}: cannot create directory: {e}", dir.display()))?;
        cleanup.dir = Some(dir.to_path_buf());
    } else if !dir.is_dir() {
        return Err(format!("{}: not a directory", dir.display()).into());
    }

    let key = IdentityKey::generate();
    keyfile::write_private_key(&key_path, &key, None, false)?;
    cleanup.files.push(key_path.clone());
    keyfile::write_public_key(&pub_path, &key.public(), false)?;
    cleanup.files.push(pub_path.clone());
    cleanup.files.push(db_path.clone());
    let db = UserDb::create(&db_path)?;
    drop(db);
    cleanup.armed = false;

    println!("initialised {}", dir.display());
    println!("  server key:    {}", key_path.display());
    println!("  server pubkey: {}", pub_path.display());
    println!("  user database: {}", db_path.display());
    println!("server fingerprint: {}", key.public().fingerprint());
    Ok(())
}

// ---------------------------------------------------------------------------
// remod user

/// Runs `remod user …`; returns the exit code.
pub fn run_user(a: UserArgs) -> i32 {
    finish("remod", user(a))
}

/// Tells the admin at once when a `files:` grant's directory is reached
/// through a symbolic link: every file operation under it will be refused.
fn warn_link_on_root(perm: &str) {
    let Some(link) = crate::perms::Perm::parse(perm)
        .ok()
        .and_then(|p| p.link_on_root())
    else {
        return;
    };
    eprintln!(
        "remod: warning: {} is a symbolic link: get, put and list under {perm:?} will be \
         refused until the grant names the real path (without links)",
        link.display()
    );
}

fn user(a: UserArgs) -> Result<(), Failure> {
    let Some(db_path) = a.db else {
        return Err(Failure::usage(
            "no user database given: use --db FILE or set REMO_USER_DB",
        ));
    };
    let mut db = UserDb::open(&db_path)?;
    match a.cmd {
        UserCmd::Add { name, key, allow } => {
            let pk = keyfile::read_public_key(&key)?;
            // Check every permission before the user exists, so a typo
            // does not leave a half-configured account.
            for p in &allow {
                crate::perms::Perm::parse(p)?;
            }
            db.add_user(&name, &pk)?;
            for p in &allow {
                db.add_permission(&name, p)?;
            }
            println!("added user {name} ({})", pk.fingerprint());
            if !allow.is_empty() {
                println!("  permissions: {}", allow.join(", "));
            }
            allow.iter().for_each(|p| warn_link_on_root(p));
        }
        UserCmd::Allow { name, perm } => {
            if db.add_permission(&name, &perm)? {
                println!("granted {perm:?} to {name}");
            } else {
                println!("{name} already has {perm:?}");
            }
            warn_link_on_root(&perm);
        }
        UserCmd::Deny { name, perm } => {
            if db.remove_permission(&name, &perm)? {
                println!("revoked {perm:?} from {name}");
            } else {
                return Err(format!("{name} does not have {perm:?}").into());
            }
        }
        UserCmd::List { json } => {
            let users = db.list_users()?;
            let out = if json {
                users_json(&users)
            } else {
                users_table(&users)
            };
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| format!("cannot write output: {e}"))?;
        }
        UserCmd::Disable { name } => {
            db.set_enabled(&name, false)?;
            println!("disabled user {name}");
        }
        UserCmd::Enable { name } => {
            db.set_enabled(&name, true)?;
            println!("enabled user {name}");
        }
        UserCmd::Remove { name } => {
            db.remove_user(&name)?;
            println!("removed user {name}");
        }
    }
    Ok(())
}

/// JSON for scripts: one object per user, stable field names.
fn users_json(users: &[User]) -> String {
    let list: Vec<serde_json::Value> = users
        .iter()
        .map(|u| {
            serde_json::json!({
                "name": u.name,
                "enabled": u.enabled,
                "created": u.created,
                "created_utc": iso8601_utc(u.created),
                "fingerprint": u.key.fingerprint(),
                "key": u.key.to_b64(),
                "permissions": u.permissions,
            })
        })
        .collect();
    let mut s = serde_json::Value::Array(list).to_string();
    s.push('\n');
    s
}

/// An aligned table for people.
fn users_table(users: &[User]) -> String {
    let header = ["NAME", "ENABLED", "CREATED", "FINGERPRINT", "PERMISSIONS"];
    let rows: Vec<[String; 5]> = users
        .iter()
        .map(|u| {
            [
                u.name.clone(),
                if u.enabled { "yes" } else { "no" }.to_string(),
                iso8601_utc(u.created),
                u.key.fingerprint(),
                if u.permissions.is_empty() {
                    "-".to_string()
                } else {
                    u.permissions.join(",")
                },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let w = widths.get(i).copied().unwrap_or(0);
                l.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

/// The civil (proleptic Gregorian) date of a day count since 1970-01-01,
/// as `(year, month, day)` — Howard Hinnant's `civil_from_days`, so no date
/// crate is needed for log and backup timestamps.
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC), without a date crate.
pub(crate) fn iso8601_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------
// remod audit

/// Arguments of `remod audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The audit database (default: REMO_AUDIT_DB, else audit.db beside the user database).
    #[arg(long, env = "REMO_AUDIT_DB", value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// The user database whose audit.db to read.
    #[arg(long, env = "REMO_USER_DB", value_name = "FILE")]
    pub user_db: Option<PathBuf>,
    /// Only this user's rows.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Only rows since T: Unix seconds, RFC 3339 (2025-06-01T12:00:00Z) or relative (30m, 2h, 7d).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Only this operation (auth, cmd, get, put, …).
    #[arg(long, value_name = "OP")]
    pub op: Option<String>,
    /// At most N rows (the newest).
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Print JSON (one array) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `remod audit`; returns the exit code.
pub fn run_audit(a: AuditArgs) -> i32 {
    finish("remod", audit(a))
}

/// Parses `--since`: Unix seconds, RFC 3339, or a relative age (`90s`,
/// `30m`, `2h`, `7d`) before `now`.
pub(crate) fn parse_since(s: &str, now: i64) -> Option<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    if let Some(unit) = s.chars().last().filter(|c| "smhdw".contains(*c)) {
        if let Some(n) = s.get(..s.len() - 1).and_then(|x| x.parse::<i64>().ok()) {
            let mul = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => 604_800,
            };
            return Some(now - n.checked_mul(mul)?);
        }
    }
    parse_rfc3339(s)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD[(T| )HH:MM[:SS[.frac]]][Z|±HH:MM]` → Unix seconds (UTC when no offset).
fn parse_rfc3339(s: &str) -> Option<i64> {
    let num = |t: &str| t.parse::<i64>().ok();
    let (date, rest) = s.split_at_checked(10)?;
    let mut dp = date.split('-');
    let (y, m, d) = (num(dp.next()?)?, num(dp.next()?)?, num(dp.next()?)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if rest.is_empty() {
        return Some(secs);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (clock, offset) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut cp = clock.split(':');
    let h = num(cp.next()?)?;
    let mi = num(cp.next()?)?;
    let sec = match cp.next() {
        Some(x) => num(x.split('.').next()?)?,
        None => 0,
    };
    secs += h * 3600 + mi * 60 + sec;
    match offset {
        "" | "Z" | "z" => Some(secs),
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let (oh, om) = o.get(1..)?.split_once(':')?;
            Some(secs - sign * (num(oh)? * 3600 + num(om)? * 60))
        }
    }
}

fn audit(a: AuditArgs) -> Result<(), Failure> {
    let path = match (a.db, a.user_db) {
        (Some(p), _) => p,
        (None, Some(u)) => u
            .parent()
            .unwrap_or(Path::new("."))
            .join(crate::audit::AUDIT_DB_FILE),
        (None, None) => return Err(Failure::usage(
            "no audit database given: use --db FILE, --user-db FILE, REMO_AUDIT_DB or REMO_USER_DB",
        )),
    };
    let since = match &a.since {
        Some(s) => Some(
            parse_since(s, crate::server::core::instance::unix_now()).ok_or_else(|| {
                Failure::usage(format!(
                    "--since {s:?}: want Unix seconds, RFC 3339 or an age like 2h"
                ))
            })?,
        ),
        None => None,
    };
    let rows = crate::audit::query(
        &path,
        &crate::audit::AuditFilter {
            user: a.user,
            since,
            op: a.op,
            limit: a.limit,
        },
    )?;
    if rows.is_empty() && !path.exists() {
        eprintln!(
            "remod: no audit rows: {} does not exist yet (remod creates it when it first serves)",
            path.display()
        );
    }
    let out = if a.json {
        let mut s = serde_json::to_string(&rows).map_err(|e| e.to_string())?;
        s.push('\n');
        s
    } else {
        audit_table(&rows)
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write output: {e}"))?;
    Ok(())
}

fn audit_table(rows: &[crate::audit::AuditRecord]) -> String {
    let mut out = String::from("TIME                  USER        FROM             OP      OUTCOME          EXIT   IN     OUT    MS     SUMMARY\n");
    for r in rows {
        let exit = r.exit.map(|e| e.to_string()).unwrap_or_else(|| "-".into());
        let line = format!(
            "{:<21} {:<11} {:<16} {:<7} {:<16} {:<6} {:<6} {:<6} {:<6} {}",
            iso8601_utc(r.time_ms.div_euclid(1000)),
            r.user,
            r.remote,
            r.op,
            r.outcome,
            exit,
            r.bytes_in,
            r.bytes_out,
            r.duration_ms,
            r.summary
        );
        // A certificate session's rows name its CA and serial (§7).
        let line = if r.cert.is_empty() {
            line
        } else {
            format!("{} [cert {}]", line.trim_end(), r.cert)
        };
        out.push_str(line.replace(['\n', '\r'], " ").trim_end());
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------
// remo keygen

/// Runs `remo keygen`; returns the exit code.
pub(crate) fn run_keygen(a: KeygenArgs) -> i32 {
    finish("remo", keygen(a))
}

/// Where `remo keygen` writes by default: `$XDG_CONFIG_HOME/remo/id_p256`,
/// i.e. `~/.config/remo/id_p256`. Also where the client looks for its key.
pub(crate) fn default_identity_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("remo").join("id_p256"))
}

/// `FILE.pub` beside `FILE`.
pub(crate) fn pub_path_for(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".pub");
    PathBuf::from(s)
}

/// Gets the new key's passphrase: `REMO_PASSPHRASE` if set, else asked twice
/// on the terminal.
fn new_passphrase() -> Result<Zeroizing<String>, Failure> {
    const EMPTY: &str =
        "empty passphrase; use --no-passphrase to write an unencrypted key on purpose";
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        let p = Zeroizing::new(p);
        if p.is_empty() {
            return Err(format!("{PASSPHRASE_ENV} is set but {EMPTY}").into());
        }
        return Ok(p);
    }
    let read = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|e| {
                Failure::from(format!(
                    "cannot read a passphrase from the terminal ({e}); set {PASSPHRASE_ENV} or use --no-passphrase"
                ))
            })
    };
    let first = read("Passphrase for the new key: ")?;
    if first.is_empty() {
        return Err(EMPTY.into());
    }
    let second = read("Same passphrase again: ")?;
    if *first != *second {
        return Err("the passphrases do not match".into());
    }
    Ok(first)
}

/// Makes a key pair and writes it to `path` and `path.pub`, the private
/// key encrypted unless `no_passphrase` (`remo keygen`, `remo ca init`).
pub(crate) fn write_new_key(
    path: &Path,
    no_passphrase: bool,
    force: bool,
) -> Result<(IdentityKey, PathBuf), Failure> {
    let pub_path = pub_path_for(path);
    if !force {
        for p in [path, pub_path.as_path()] {
            if p.exists() {
                return Err(
                    format!("{}: file exists (use --force to replace it)", p.display()).into(),
                );
            }
        }
    }
    let passphrase = if no_passphrase {
        None
    } else {
        Some(new_passphrase()?)
    };
    let key = IdentityKey::generate();
    keyfile::write_private_key(path, &key, passphrase.as_ref().map(|p| p.as_bytes()), force)?;
    if let Err(e) = keyfile::write_public_key(&pub_path, &key.public(), force) {
        // Do not leave a private key without its public half.
        let _ = std::fs::remove_file(path);
        return Err(e.into());
    }
    Ok((key, pub_path))
}

/// `FILE` in the client's configuration directory (made, mode 0700, if
/// missing): where `remo keygen` and `remo ca init` write by default.
pub(crate) fn default_key_file(name: &str) -> Result<PathBuf, Failure> {
    let p = default_identity_path()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .ok_or_else(|| Failure::usage("cannot find the config directory; give -o FILE"))?;
    if let Some(dir) = p.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("{}: cannot create directory: {e}", dir.display()))?;
    }
    Ok(p)
}

fn keygen(a: KeygenArgs) -> Result<(), Failure> {
    let path = match a.output {
        Some(p) => p,
        None => default_key_file("id_p256")?,
    };
    let (key, pub_path) = write_new_key(&path, a.no_passphrase, a.force)?;
    println!("wrote private key {}", path.display());
    println!("wrote public key  {}", pub_path.display());
    println!("fingerprint: {}", key.public().fingerprint());
    println!(
        "give {} to the server admin: remod user add NAME --key {}",
        pub_path.display(),
        pub_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601_utc(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(iso8601_utc(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn since_forms() {
        assert_eq!(parse_since("1700000000", 0), Some(1_700_000_000));
        assert_eq!(parse_since("2h", 10_000), Some(10_000 - 7200));
        assert_eq!(parse_since("2000-02-29T00:00:00Z", 0), Some(951_782_400));
        assert_eq!(parse_since("2000-02-29", 0), Some(951_782_400));
        assert_eq!(
            parse_since("2000-02-29T01:30:00+01:30", 0),
            Some(951_782_400)
        );
        assert_eq!(parse_since("yesterday", 0), None);
    }

    #[test]
    fn pub_path() {
        assert_eq!(
            pub_path_for(Path::new("/a/id_p256")),
            PathBuf::from("/a/id_p256.pub")
        );
    }
}
