//! Issue 16 §2 and §4 through the real router with real children:
//! a `cmd:PATH` grant runs that program under the grant's name whatever
//! `argv[0]` the client sends (multi-call programs `rview`/`ex`,
//! `xzcat`/`unxz`, `rbash`/`bash`), and errors do not map the file system
//! for restricted or run-as users.
//!
//! Needs root, vim (or vim-tiny: `rview`, `ex`), xz-utils and bash; tests/run
//! installs them.

// Test harness: a failed unwrap is a failed test.

use crate::inproc;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use inproc::*;
use remo::proto::handshake::ClientSession;
use remo::proto::response::{ErrorCode, OpError};
use serde_json::{json, Value};

async fn session(f: &Fixture, name: &str, grants: &[&str]) -> ClientSession {
    let key = add_user(f, name, grants);
    login_as(f, name, &key, now()).await.2.unwrap()
}

fn need(bin: &str, package: &str) {
    assert!(
        Path::new(bin).exists(),
        "{bin} is missing: install the Debian package {package} (tests/run does)"
    );
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A throwaway system account, removed on drop.
struct Account {
    name: String,
}

impl Account {
    /// Fails (never skips) without root or `useradd` (Debian package `passwd`).
    fn create(tag: &str) -> Account {
        assert!(nix::unistd::geteuid().is_root(), "needs root (tests/run)");
        let name = format!("remo{tag}{}", std::process::id() % 100_000);
        let ok = std::process::Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/bin/sh", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "useradd failed (Debian package passwd) for {name}");
        Account { name }
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel")
            .arg(&self.name)
            .status();
    }
}

fn ok_exit(r: &Reply) -> Option<i64> {
    r.result.as_ref().ok().and_then(|m| m["exit"].as_i64())
}

/// §2: under `cmd:/usr/bin/rview FILE`, `ex FILE` (the same file on disk)
/// would run a shell command from standard input as root.
#[tokio::test]
async fn rview_grant_runs_as_rview_not_ex() {
    need("/usr/bin/rview", "vim-tiny");
    need("/usr/bin/ex", "vim-tiny");
    let f = fixture();
    let file = f.root.join("notes.txt");
    std::fs::write(&file, "hello\n").unwrap();
    let file = file.display().to_string();
    let s = session(&f, "viewer", &[&format!("cmd:/usr/bin/rview {file}")]).await;
    for (r, argv0) in [(1, "ex"), (2, "/usr/bin/ex"), (3, "rview")] {
        let pwned = f.root.join(format!("pwned{r}"));
        let stdin = format!(":!id > {}\n:q!\n", pwned.display());
        let res = request(
            &f,
            &s,
            r,
            "cmd",
            json!({"argv": [argv0, &file], "timeout": 20}),
            &[stdin.as_bytes()],
        )
        .await;
        assert!(res.result.is_ok(), "{argv0}: {:?}", res.result);
        assert!(
            !pwned.exists(),
            "{argv0} {file} under an rview grant ran a shell command"
        );
    }
}

/// §2: under `cmd:/usr/bin/xzcat FILE`, `unxz FILE` would delete the file.
#[tokio::test]
async fn xzcat_grant_does_not_unxz() {
    need("/usr/bin/xzcat", "xz-utils");
    need("/usr/bin/unxz", "xz-utils");
    let f = fixture();
    let plain = f.root.join("log");
    std::fs::write(&plain, "line one\n").unwrap();
    let st = std::process::Command::new("xz")
        .arg(&plain)
        .status()
        .unwrap();
    assert!(st.success());
    let xz = f.root.join("log.xz");
    let xzs = xz.display().to_string();
    let s = session(&f, "reader", &[&format!("cmd:/usr/bin/xzcat {xzs}")]).await;
    for (r, argv0) in [(1, "unxz"), (2, "/usr/bin/xz")] {
        let res = request(&f, &s, r, "cmd", json!({"argv": [argv0, &xzs]}), &[]).await;
        assert_eq!(ok_exit(&res), Some(0), "{argv0}: {:?}", res.result);
        assert!(xz.exists(), "{argv0} {xzs} under an xzcat grant removed it");
        assert!(!plain.exists(), "{argv0} decompressed into a file");
        assert_eq!(res.stdout, b"line one\n", "{argv0}");
    }
}

/// `bash -c 'cd /tmp && pwd'` prints /tmp; as rbash `cd` is refused.
fn restricted_shell_ran(r: &Reply) -> bool {
    !String::from_utf8_lossy(&r.stdout).contains("/tmp")
        && String::from_utf8_lossy(&r.stderr).contains("restricted")
}

/// §2: under `cmd:/usr/bin/rbash`, `bash -c …` would lose the restrictions;
/// also for run-as and for `icm` (pipes and a terminal).
#[tokio::test]
async fn rbash_grant_stays_restricted_for_cmd_run_as_and_icm() {
    need("/usr/bin/rbash", "bash");
    let acct = Account::create("rb");
    let f = fixture();
    let argv = json!(["bash", "-c", "cd /tmp && pwd"]);
    let plain = session(&f, "rsh", &["cmd:/usr/bin/rbash"]).await;
    let runas = session(
        &f,
        "rsh2",
        &["cmd:/usr/bin/rbash", &format!("run-as:{}", acct.name)],
    )
    .await;
    for (who, s) in [("as root", &plain), ("run-as", &runas)] {
        let r = request(&f, s, 1, "cmd", json!({ "argv": argv }), &[]).await;
        assert!(
            restricted_shell_ran(&r) && ok_exit(&r) != Some(0),
            "{who}: bash ran unrestricted: {:?} {:?} {:?}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr),
            r.result
        );
        // icm with pipes.
        let r = request(&f, s, 2, "icm", json!({"argv": argv, "wait_ms": 1000}), &[]).await;
        let (r, exit) = until_exit(&f, s, 100, r).await;
        assert!(
            restricted_shell_ran(&r) && exit != Some(0),
            "{who}: icm bash ran unrestricted: {:?} {:?}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
        // icm with a terminal: everything arrives on stdout.
        let r = request(
            &f,
            s,
            3,
            "icm",
            json!({"argv": argv, "pty": {"rows": 24, "cols": 80}, "wait_ms": 1000}),
            &[],
        )
        .await;
        let (r, _) = until_exit(&f, s, 200, r).await;
        let out = String::from_utf8_lossy(&r.stdout).to_string();
        assert!(
            out.contains("restricted") && !out.contains("/tmp\r\n"),
            "{who}: icm pty bash ran unrestricted: {out:?}"
        );
    }
}

/// Polls an `icm` process (request numbers from `r`) until it has ended;
/// returns all its output and its exit code.
async fn until_exit(
    f: &Fixture,
    s: &ClientSession,
    mut r: u64,
    first: Reply,
) -> (Reply, Option<i64>) {
    let mut all = Reply {
        stdout: first.stdout,
        stderr: first.stderr,
        result: first.result,
    };
    let id = all.result.as_ref().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..20 {
        let res = all.result.as_ref().unwrap();
        if res["running"] == false {
            let exit = res["exit"].as_i64();
            return (all, exit);
        }
        r += 1;
        let next = request(f, s, r, "idt", json!({"id": id, "wait_ms": 500}), &[]).await;
        all.stdout.extend_from_slice(&next.stdout);
        all.stderr.extend_from_slice(&next.stderr);
        all.result = next.result;
    }
    panic!("icm process did not end");
}

/// A user with `cmd` (any program) keeps the name they give: they could run
/// any program anyway.
#[tokio::test]
async fn cmd_grant_keeps_the_clients_argv0() {
    let f = fixture();
    let s = session(&f, "any", &["cmd"]).await;
    let r = request(
        &f,
        &s,
        1,
        "cmd",
        json!({"argv": ["bash", "-c", "echo $0"]}),
        &[],
    )
    .await;
    assert_eq!(r.stdout, b"bash\n");
}

/// `<secret>` for the test's root-only directory, so messages can be
/// compared apart from the path the client itself sent.
fn scrub(e: &OpError, secret: &Path) -> (ErrorCode, String) {
    (
        e.code,
        e.message.replace(&secret.display().to_string(), "<secret>"),
    )
}

/// A root-only directory with a program, a file and a directory in it,
/// beside a directory anyone may enter; the fixture's root opened up.
fn probe_tree(f: &Fixture) -> (PathBuf, PathBuf) {
    chmod(&f.root, 0o755);
    let public = f.root.join("public");
    std::fs::create_dir(&public).unwrap();
    chmod(&public, 0o755);
    let secret = f.root.join("secret");
    std::fs::create_dir(&secret).unwrap();
    chmod(&secret, 0o700);
    std::fs::write(secret.join("prog"), "#!/bin/sh\necho secret\n").unwrap();
    chmod(&secret.join("prog"), 0o755);
    std::fs::write(secret.join("file"), "x").unwrap();
    std::fs::create_dir(secret.join("dir")).unwrap();
    (public, secret)
}

/// §4: a user with only `cmd:/usr/bin/id` cannot tell what exists in a
/// root-only directory: every probe gets the same `forbidden` and the same
/// message, which does not name the resolved path.
#[tokio::test]
async fn restricted_user_cannot_probe_root_only_paths() {
    let f = fixture();
    let (public, secret) = probe_tree(&f);
    let s = session(&f, "idonly", &["cmd:/usr/bin/id"]).await;
    let p = |n: &str| secret.join(n).display().to_string();
    // What the user may do still works.
    let r = request(&f, &s, 1, "cmd", json!({"argv": ["id", "-u"]}), &[]).await;
    assert_eq!(r.stdout, b"0\n");
    let r = request(
        &f,
        &s,
        2,
        "cmd",
        json!({"argv": ["id", "-u"], "cwd": public.display().to_string()}),
        &[],
    )
    .await;
    assert_eq!(r.stdout, b"0\n", "{:?}", r.result);
    let probes: Vec<Value> = vec![
        json!({"argv": [p("missing")]}),
        json!({"argv": [p("prog")]}),
        json!({"argv": [p("file")]}),
        json!({"argv": [p("dir")]}),
        json!({"argv": ["no-such-program-xyz"]}),
        json!({"argv": ["prog"], "cwd": p("")}),
        json!({"argv": ["./prog"], "cwd": p("")}),
        json!({"argv": ["id"], "cwd": p("missing")}),
        json!({"argv": ["id"], "cwd": p("file")}),
        json!({"argv": ["id"], "cwd": p("dir")}),
        json!({"argv": ["id"], "cwd": p("")}),
        json!({"argv": ["/usr/bin/id", "-u"], "cwd": p("dir")}),
    ];
    let mut answers = Vec::new();
    for (i, d) in probes.iter().enumerate() {
        let r = request(&f, &s, 10 + i as u64, "cmd", d.clone(), &[]).await;
        let e = r
            .result
            .as_ref()
            .expect_err(&format!("probe {d} succeeded"));
        assert!(
            !e.message.contains("secret"),
            "{d}: message reveals the path: {}",
            e.message
        );
        answers.push((d.to_string(), e.code, e.message.clone()));
    }
    let first = (answers[0].1, answers[0].2.clone());
    assert_eq!(first.0, ErrorCode::Forbidden);
    for (d, code, msg) in &answers {
        assert_eq!((*code, msg.clone()), first, "{d} answered differently");
    }
    // A path through the directory that names the granted program: the
    // same outcome whether the directory exists or not.
    let through = |dir: &str| format!("{}/../../../../../../../../usr/bin/id", p(dir));
    for (r, dir) in [(40, "dir"), (41, "missing")] {
        let res = request(&f, &s, r, "cmd", json!({"argv": [through(dir), "-u"]}), &[]).await;
        assert_eq!(res.stdout, b"0\n", "{dir}: {:?}", res.result);
    }
    // icm answers alike.
    let r = request(&f, &s, 50, "icm", json!({"argv": [p("prog")]}), &[]).await;
    let e = r.result.unwrap_err();
    assert_eq!((e.code, e.message), first);
    let r = request(
        &f,
        &s,
        51,
        "icm",
        json!({"argv": ["id"], "cwd": p("dir")}),
        &[],
    )
    .await;
    let e = r.result.unwrap_err();
    assert_eq!((e.code, e.message), first);
}

/// §4: a user running as an unprivileged account cannot tell what exists
/// where the account may not look, even with `cmd`: the working directory
/// and the program are looked up as the account.
#[tokio::test]
async fn run_as_user_cannot_probe_through_the_daemon() {
    let acct = Account::create("pr");
    let f = fixture();
    let (public, secret) = probe_tree(&f);
    let s = session(&f, "ra", &["cmd", &format!("run-as:{}", acct.name)]).await;
    let p = |n: &str| secret.join(n).display().to_string();
    let r = request(
        &f,
        &s,
        1,
        "cmd",
        json!({"argv": ["pwd"], "cwd": public.display().to_string()}),
        &[],
    )
    .await;
    assert_eq!(ok_exit(&r), Some(0), "{:?}", r.result);
    for (n, group) in [
        // Working directories.
        vec![
            json!({"argv": ["true"], "cwd": p("missing")}),
            json!({"argv": ["true"], "cwd": p("file")}),
            json!({"argv": ["true"], "cwd": p("dir")}),
        ],
        // Programs.
        vec![
            json!({"argv": [p("missing")]}),
            json!({"argv": [p("prog")]}),
            json!({"argv": [p("dir")]}),
        ],
    ]
    .into_iter()
    .enumerate()
    {
        let mut seen = Vec::new();
        for (i, d) in group.iter().enumerate() {
            let r = request(&f, &s, 10 + (n * 10 + i) as u64, "cmd", d.clone(), &[]).await;
            let e = r.result.expect_err(&format!("{d} succeeded"));
            // Only the path the client sent may differ.
            let scrubbed = scrub(&e, &secret);
            let scrubbed = (
                scrubbed.0,
                ["missing", "file", "dir", "prog"]
                    .iter()
                    .fold(scrubbed.1, |m, n| {
                        m.replace(&format!("<secret>/{n}"), "<x>")
                    }),
            );
            assert_eq!(scrubbed.0, ErrorCode::Forbidden, "{d}: {}", e.message);
            seen.push((d.to_string(), scrubbed));
        }
        for (d, a) in &seen {
            assert_eq!(a, &seen[0].1, "{d} answered differently from {}", seen[0].0);
        }
    }
}

/// §4 for files: outside the roots, missing, present and `..` escapes all
/// give the same `forbidden` (apart from the path the client sent).
#[tokio::test]
async fn file_grants_do_not_tell_what_is_outside() {
    let f = fixture();
    let (public, secret) = probe_tree(&f);
    let s = session(&f, "files", &[&format!("files:read:{}", public.display())]).await;
    let pubs = public.display().to_string();
    let paths = [
        secret.join("file").display().to_string(),
        secret.join("missing").display().to_string(),
        format!("{pubs}/../secret/file"),
        format!("{pubs}/../secret/missing"),
    ];
    let mut seen = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let r = request(&f, &s, 1 + i as u64, "get", json!({ "path": path }), &[]).await;
        let e = r.result.expect_err(path);
        seen.push((e.code, e.message.replace(path.as_str(), "<path>")));
    }
    for a in &seen {
        assert_eq!(a, &seen[0], "{seen:?}");
    }
    assert_eq!(seen[0].0, ErrorCode::Forbidden);
}
