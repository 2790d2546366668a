//! `config` against links and special files swapped in by an account that
//! can write the directory of a configured file (issue 16 §3), with the
//! real binaries (`remod serve --http --dir`, `remo config …`):
//!
//! * the file replaced by a symlink to a root-only file: nothing of that
//!   file is read, and it is not rewritten;
//! * the backup directory replaced by a symlink to a root-only directory
//!   holding digit-named files: nothing is written, deleted or read there;
//! * an admin-configured symlink is resolved once, when the configuration
//!   is loaded, not at each request;
//! * a FIFO swapped in (also racing with a regular file): every request
//!   ends promptly and the server keeps answering.

// Test harness: a failed unwrap is a failed test.

use crate::common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{text, HttpServer as Server};

const ENV: &str = "# app\nDB_HOST=db1\nDB_PORT=5432\n";
const SECRET: &str = "ROOT_ONLY_SECRET=hunter2-do-not-leak\n";
const OLD_BACKUP: &str = "ROOT_ONLY_BACKUP=also-secret\n";

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// The directory a less trusted account can write (0777).
    app: PathBuf,
    /// A root-only 0600 file outside it.
    secret: PathBuf,
    server: Server,
}

impl Setup {
    fn env(&self) -> PathBuf {
        self.app.join(".env")
    }
    fn remo(&self, args: &[&str]) -> Output {
        run_limited(self.command(args), Duration::from_secs(60))
            .unwrap_or_else(|| panic!("remo {args:?} did not finish within 60 s"))
    }
    fn command(&self, args: &[&str]) -> Command {
        let mut c = common::remo_in(
            &self.root,
            &self.server.data.join("client/admin.key"),
            &self.server.url,
            args,
        );
        c.stdin(Stdio::null());
        c
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("remod.log")).unwrap_or_default()
    }
}

/// Runs a command, killing it after `limit`: `None` if it had to be killed.
fn run_limited(mut cmd: Command, limit: Duration) -> Option<Output> {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(r) => Some(r.unwrap()),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            None
        }
    }
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn start() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    chmod(&root, 0o755);
    let data = root.join("data");
    let srv = root.join("srv");
    let app = srv.join("app");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&app).unwrap();
    // The application's directory: writable by an unprivileged account.
    chmod(&app, 0o777);
    std::fs::write(app.join(".env"), ENV).unwrap();
    std::fs::write(app.join("other.env"), "X=1\n").unwrap();
    std::fs::write(app.join("checked.env"), "C=1\n").unwrap();
    // A root-only secret elsewhere.
    let vault = root.join("vault");
    std::fs::create_dir_all(&vault).unwrap();
    chmod(&vault, 0o700);
    let secret = vault.join("secret.env");
    std::fs::write(&secret, SECRET).unwrap();
    chmod(&secret, 0o600);
    std::fs::write(vault.join("checked.env"), SECRET).unwrap();
    chmod(&vault.join("checked.env"), 0o600);
    // An admin-configured symlink (in a root-owned directory) to the file.
    std::os::unix::fs::symlink(app.join(".env"), srv.join("alias.env")).unwrap();
    std::fs::write(
        data.join("remo.toml"),
        format!(
            "[files.app]\npath = \"{a}/.env\"\nformat = \"env\"\nbackups = 1\n\n\
             [files.other]\npath = \"{a}/other.env\"\nformat = \"env\"\n\n\
             [files.checked]\npath = \"{a}/checked.env\"\nformat = \"env\"\n\
             validate = [\"/bin/sh\", \"-c\", \"sleep 2; cat \\\"$0\\\" >&2; exit 1\", \"{{file}}\"]\n\n\
             [files.alias]\npath = \"{s}/alias.env\"\nformat = \"env\"\nbackup = false\n",
            a = app.display(),
            s = srv.display(),
        ),
    )
    .unwrap();
    let server = common::serve_http(&data, common::free_port(), &root.join("remod.log"));
    Setup {
        _dir: dir,
        root,
        app,
        secret,
        server,
    }
}

#[track_caller]
fn assert_failed_without(o: &Output, what: &str, secret: &str) {
    assert_ne!(
        o.status.code(),
        Some(0),
        "{what} succeeded:\nstdout: {}\nstderr: {}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(
        !out.contains(secret) && !err.contains(secret),
        "{what} leaked the secret:\nstdout: {out}\nstderr: {err}"
    );
}

#[test]
fn file_swapped_for_a_symlink_is_neither_read_nor_written() {
    let s = start();
    let o = s.remo(&["config", "get", "app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), ENV);

    // The unprivileged account swaps the file for a link to the secret.
    std::fs::remove_file(s.env()).unwrap();
    std::os::unix::fs::symlink(&s.secret, s.env()).unwrap();
    let before = std::fs::metadata(&s.secret).unwrap();

    let o = s.remo(&["config", "get", "app"]);
    assert_failed_without(&o, "config get app", "hunter2");
    let o = s.remo(&["config", "get", "app", "ROOT_ONLY_SECRET"]);
    assert_failed_without(&o, "config get app KEY", "hunter2");
    let o = s.remo(&["config", "set", "app", "PWNED", "1"]);
    assert_failed_without(&o, "config set app", "hunter2");
    let o = s.remo(&["config", "unset", "app", "ROOT_ONLY_SECRET"]);
    assert_failed_without(&o, "config unset app", "hunter2");
    // A whole-file write replaces the link itself, never the secret.
    let mut c = s.command(&["config", "write", "app", "-"]);
    c.stdin(Stdio::piped());
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut w = child.stdin.take().unwrap();
        w.write_all(b"REPLACED=1\n").unwrap();
    }
    let o = common::wait_with_timeout(child, Duration::from_secs(60), "config write");
    assert!(!text(&o.stdout).contains("hunter2") && !text(&o.stderr).contains("hunter2"));

    let after = std::fs::metadata(&s.secret).unwrap();
    assert_eq!(std::fs::read_to_string(&s.secret).unwrap(), SECRET);
    assert_eq!(
        (before.ino(), before.mode(), before.uid()),
        (after.ino(), after.mode(), after.uid()),
        "the secret file was replaced"
    );
    // A hard link to the secret in its place is not read either.
    std::fs::remove_file(s.env()).unwrap();
    std::fs::hard_link(&s.secret, s.env()).unwrap();
    let o = s.remo(&["config", "get", "app"]);
    assert_failed_without(&o, "config get app (hard link)", "hunter2");
    std::fs::remove_file(s.env()).unwrap();
    // Nothing was put beside the secret either.
    let mut names: Vec<_> = std::fs::read_dir(s.secret.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["checked.env", "secret.env"]);
    assert!(!s.log().contains("hunter2"));
}

#[test]
fn backup_dir_swapped_for_a_symlink_is_not_used() {
    let s = start();
    // A root-only directory with digit-named files (valid backup ids).
    let target = s.root.join("vault/rootonly");
    std::fs::create_dir_all(&target).unwrap();
    chmod(&target, 0o700);
    let ids = ["1000", "2000", "20200101T000000.000000Z"];
    for id in ids {
        std::fs::write(target.join(id), OLD_BACKUP).unwrap();
        chmod(&target.join(id), 0o600);
    }
    std::os::unix::fs::symlink(&target, s.app.join(".app.remo-backup")).unwrap();

    // An edit: refused (the backup cannot be taken), the file untouched.
    let o = s.remo(&["config", "set", "app", "DB_HOST", "db2"]);
    assert_failed_without(&o, "config set app", "also-secret");
    assert_eq!(std::fs::read_to_string(s.env()).unwrap(), ENV);
    let mut left: Vec<String> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ids, "files were added to or deleted from the target");
    for id in ids {
        assert_eq!(
            std::fs::read_to_string(target.join(id)).unwrap(),
            OLD_BACKUP
        );
    }

    // Listing, diff and restore do not read through the link.
    let o = s.remo(&["config", "backups", "app"]);
    assert!(
        o.status.code() != Some(0) || !text(&o.stdout).contains("2020"),
        "backups listed through the link: {}",
        text(&o.stdout)
    );
    let o = s.remo(&["config", "diff", "app", "20200101T000000.000000Z"]);
    assert_failed_without(&o, "config diff app ID", "also-secret");
    let o = s.remo(&["config", "restore", "app", "20200101T000000.000000Z"]);
    assert_failed_without(&o, "config restore app ID", "also-secret");
    assert_eq!(std::fs::read_to_string(s.env()).unwrap(), ENV);

    // A directory the account made itself (not root's) is refused too.
    std::fs::remove_file(s.app.join(".app.remo-backup")).unwrap();
    std::fs::create_dir(s.app.join(".app.remo-backup")).unwrap();
    std::os::unix::fs::chown(s.app.join(".app.remo-backup"), Some(65534), Some(65534)).unwrap();
    let o = s.remo(&["config", "set", "app", "DB_HOST", "db2"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("remo-backup"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(std::fs::read_to_string(s.env()).unwrap(), ENV);
    assert_eq!(
        std::fs::read_dir(s.app.join(".app.remo-backup"))
            .unwrap()
            .count(),
        0
    );

    // Once it is gone remod creates its own, 0700, and the edit works.
    std::fs::remove_dir(s.app.join(".app.remo-backup")).unwrap();
    let o = s.remo(&["config", "set", "app", "DB_HOST", "db2"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let m = std::fs::symlink_metadata(s.app.join(".app.remo-backup")).unwrap();
    assert!(m.is_dir());
    assert_eq!((m.mode() & 0o777, m.uid()), (0o700, 0));
    assert_eq!(
        std::fs::read_to_string(s.env()).unwrap(),
        ENV.replace("db1", "db2")
    );
}

#[test]
fn configured_symlink_is_resolved_once_at_start() {
    let s = start();
    let o = s.remo(&["config", "get", "alias"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), ENV);
    let log = s.log();
    assert!(
        log.contains("config file alias:") && log.contains("is a symlink to"),
        "{log}"
    );
    // Re-pointing the link later changes nothing: remod uses what it
    // resolved when it loaded its configuration.
    let link = s.root.join("srv/alias.env");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&s.secret, &link).unwrap();
    let o = s.remo(&["config", "get", "alias"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), ENV);
    let o = s.remo(&["config", "set", "alias", "DB_PORT", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(&s.secret).unwrap(), SECRET);
    assert_eq!(
        std::fs::read_to_string(s.env()).unwrap(),
        ENV.replace("5432", "1")
    );
}

#[test]
fn fifo_swapped_in_does_not_stall_the_server() {
    let s = start();
    let fifo = s.app.join(".env.alt");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    let limit = Duration::from_secs(10);

    // A FIFO in place of the file: refused at once.
    nix::fcntl::renameat2(
        None,
        &s.env(),
        None,
        &fifo,
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    )
    .unwrap();
    for args in [
        &["config", "get", "app"][..],
        &["config", "set", "app", "A", "1"][..],
    ] {
        let t = Instant::now();
        let o = run_limited(s.command(args), limit)
            .unwrap_or_else(|| panic!("remo {args:?} hung on a FIFO"));
        assert_ne!(o.status.code(), Some(0), "{args:?}");
        assert!(t.elapsed() < limit);
    }
    nix::fcntl::renameat2(
        None,
        &s.env(),
        None,
        &fifo,
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    )
    .unwrap();

    // The account swaps a FIFO and the file back and forth as fast as it
    // can while requests come in: each ends promptly (with the content or
    // an error), none blocks on the FIFO.
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let (stop, env, fifo) = (stop.clone(), s.env(), fifo.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = nix::fcntl::renameat2(
                    None,
                    &env,
                    None,
                    &fifo,
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                );
            }
        })
    };
    let mut hung = Vec::new();
    let (mut ok, mut refused) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(90);
    for i in 0..60 {
        if Instant::now() > deadline {
            break;
        }
        let args: &[&str] = if i % 3 == 2 {
            &["config", "get", "app", "DB_HOST"]
        } else {
            &["config", "get", "app"]
        };
        match run_limited(s.command(args), limit) {
            None => hung.push(i),
            Some(o) if o.status.code() == Some(0) => ok += 1,
            Some(_) => refused += 1,
        }
        if hung.len() >= 2 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    racer.join().unwrap();
    eprintln!(
        "racing a FIFO: {ok} answered, {refused} refused, {} hung",
        hung.len()
    );
    assert!(
        hung.is_empty(),
        "requests {hung:?} hung on the FIFO ({ok} answered, {refused} refused)"
    );
    // The server still answers.
    let t = Instant::now();
    let o = run_limited(s.command(&["config", "get", "other"]), limit)
        .expect("the server stopped answering");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "X=1\n");
    assert!(t.elapsed() < limit);
}

#[test]
fn validator_reads_the_candidate_not_a_swapped_directory() {
    let s = start();
    // While the validator runs, the account renames remod's private
    // candidate directory away and puts a symlink to a root-only directory
    // holding a file of the same name in its place. The validator (which
    // prints the file it checked when it refuses it) must still see the
    // candidate.
    let child = s
        .command(&["config", "set", "checked", "C", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let cand = loop {
        let found = std::fs::read_dir(&s.app)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .find(|n| n.starts_with(".remo-"));
        if let Some(n) = found {
            break n;
        }
        assert!(Instant::now() < deadline, "no candidate directory appeared");
        std::thread::sleep(Duration::from_millis(5));
    };
    std::fs::rename(s.app.join(&cand), s.app.join(".moved-away")).unwrap();
    std::os::unix::fs::symlink(s.root.join("vault"), s.app.join(&cand)).unwrap();
    let o = common::wait_with_timeout(child, Duration::from_secs(60), "config set checked");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("validation failed"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "the validator read the swapped-in file: {err}"
    );
    assert!(
        err.contains("C=2"),
        "the validator did not see the candidate: {err}"
    );
    assert_eq!(
        std::fs::read_to_string(s.app.join("checked.env")).unwrap(),
        "C=1\n"
    );
}
