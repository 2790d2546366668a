//! The resumable `put` (issue 20: remo's extension, docs/protocol-notes.md)
//! against the real `remod serve --http` and the real `remo`: parts
//! appended to a staged upload and committed atomically after the digest
//! check, and every way another user, a stale client, a swapped path or
//! time could abuse the state remod keeps between the parts.
//!
//! Protocol-level steps go through `RawSession` (the library's sealing and
//! curl, no client logic); `remo put --resume` is run as a child and
//! killed mid-way.

// Test harness: a failed unwrap is a failed test.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A running `remod serve --http --dir` with a config file. Dropped in
/// this order: remod, then the FUSE mounts (which remod's open files keep
/// busy), then the directory.
struct Srv {
    remod: Proc,
    mounts: Vec<Bindfs>,
    scratch: Scratch,
    data: DataDir,
    url: String,
}

impl Srv {
    fn start(name: &str, toml: &str) -> Srv {
        let scratch = Scratch::new(name);
        let cfg = scratch.path().join("remo.toml");
        std::fs::write(&cfg, toml).unwrap();
        let port = free_port();
        let dir = scratch.path().join("quick");
        let mut cmd = remod_http_command(&dir, port);
        cmd.env("RUST_LOG", "info")
            .env("REMO_CONFIG", &cfg)
            .current_dir(scratch.path());
        let mut remod = Proc::spawn("remod", cmd, &scratch.path().join("remod.log"));
        remod.wait_port(port);
        Srv {
            remod,
            mounts: Vec::new(),
            data: quick_data_dir(&dir),
            scratch,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    fn remod_user(&self, args: &[&str]) {
        run_ok(
            Command::new(REMOD)
                .args(["user", "--db"])
                .arg(&self.data.user_db)
                .args(args),
        );
    }

    /// Registers `name` with `grants`; its data-directory view (user and
    /// key) for `RawSession::login` and `Client`.
    fn user(&self, name: &str, grants: &[&str]) -> DataDir {
        let key = self.scratch.sub("keys").join(format!("{name}.key"));
        run_ok(
            Command::new(REMO)
                .envs(client_env(&self.scratch))
                .args(["keygen", "--no-passphrase", "-o"])
                .arg(&key),
        );
        let pubkey = format!("{}.pub", key.display());
        let mut args = vec!["add", name, "--key", &pubkey];
        for g in grants {
            args.extend(["--allow", g]);
        }
        self.remod_user(&args);
        DataDir {
            dir: self.data.dir.clone(),
            key_file: self.data.key_file.clone(),
            user_db: self.data.user_db.clone(),
            user: name.to_string(),
            client_key: key,
        }
    }

    /// A FUSE (bindfs) directory: no `O_TMPFILE` there.
    fn fuse(&mut self, name: &str) -> PathBuf {
        let backing = self.scratch.sub(&format!("{name}.backing"));
        let at = self.scratch.sub(name);
        self.mounts.push(Bindfs::mount(&backing, &at));
        at
    }

    fn login(&self, who: &DataDir) -> RawSession {
        RawSession::login(&self.url, who)
    }

    /// The descriptors of remod's open files in `dir` (the staged files:
    /// unnamed ones show as `dir/#INODE (deleted)`).
    fn open_below(&self, dir: &Path) -> usize {
        let prefix = format!("{}/", dir.display());
        std::fs::read_dir(format!("/proc/{}/fd", self.remod.pid()))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|l| l.to_string_lossy().starts_with(&prefix))
            .count()
    }

    fn audit(&self) -> Vec<Value> {
        let o = remod_command()
            .args(["audit", "--json", "--op", "put", "--user-db"])
            .arg(&self.data.user_db)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        serde_json::from_slice::<Value>(&o.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.path().join("remod.log")).unwrap_or_default()
    }
}

/// A FUSE mount (bindfs) of `backing` at `at`: a file system without
/// `O_TMPFILE`, where the staging file has a (journaled) name. Unmounted
/// on drop.
struct Bindfs(PathBuf);

impl Bindfs {
    fn mount(backing: &Path, at: &Path) -> Bindfs {
        require("/usr/bin/bindfs", "bindfs");
        run_ok(Command::new("bindfs").arg(backing).arg(at));
        Bindfs(at.to_path_buf())
    }
}

impl Drop for Bindfs {
    fn drop(&mut self) {
        let _ = Command::new("fusermount").arg("-u").arg(&self.0).status();
    }
}

fn b64(d: &[u8]) -> String {
    remo::proto::b64::encode(d)
}

fn sha(d: &[u8]) -> String {
    b64(&Sha256::digest(d))
}

/// One `put` through `s`: the descriptor, then `data` in records of at
/// most 64 KiB; the final result as JSON.
fn put(s: &mut RawSession, desc: Value, data: &[u8]) -> Value {
    let d = desc.to_string();
    let mut recs: Vec<&[u8]> = vec![d.as_bytes()];
    recs.extend(data.chunks(64 << 10));
    let (status, opened) = s.request_with("put", &recs);
    assert_eq!(status, 200, "put {desc}");
    serde_json::from_str(&opened.unwrap().result).unwrap()
}

/// The error code of a result (`None` for `ok`).
fn code(r: &Value) -> Option<&str> {
    r["error"]["code"].as_str()
}

#[track_caller]
fn ok(r: &Value) -> &Value {
    assert_eq!(r["ok"], true, "{r}");
    r
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let t = Instant::now();
    while !check() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

/// Starts an upload of `path` with `first` as its first part; its id.
fn start(s: &mut RawSession, path: &Path, first: &[u8]) -> String {
    let r = put(s, json!({"path": path, "upload": {}}), first);
    ok(&r);
    assert_eq!(r["size"], first.len());
    r["upload"].as_str().unwrap().to_string()
}

fn status(s: &mut RawSession, path: &Path, id: &str) -> Value {
    put(s, json!({"path": path, "upload": {"id": id}}), &[])
}

/// Three parts, the last with the commit: the target is the bytes sent,
/// with the mode asked for; nothing else is left in the directory or open
/// in remod, and the id is gone.
#[test]
fn three_parts_are_committed_byte_identical_with_the_mode() {
    let srv = Srv::start("resume-3parts", "");
    let root = srv.scratch.sub("root");
    let alice = srv.user("alice", &[&format!("files:write:{}", root.display())]);
    let mut s = srv.login(&alice);
    let target = root.join("site.tar");
    std::fs::write(&target, b"old").unwrap();
    let (a, b, c) = (bytes(150_000, 1), bytes(70_000, 2), bytes(33_333, 3));
    let all = [a.clone(), b.clone(), c.clone()].concat();
    let r = put(
        &mut s,
        json!({"path": target, "mode": 0o640, "upload": {}}),
        &a,
    );
    let id = ok(&r)["upload"].as_str().unwrap().to_string();
    assert_eq!(
        (r["size"].as_u64(), r["sha256"].as_str()),
        (Some(150_000), Some(sha(&a).as_str()))
    );
    // Until the commit the old file is there.
    assert_eq!(std::fs::read(&target).unwrap(), b"old");
    let r = put(
        &mut s,
        json!({"path": target, "upload": {"id": id, "offset": a.len()}}),
        &b,
    );
    assert_eq!(ok(&r)["size"], a.len() + b.len());
    assert_eq!(r["sha256"], sha(&[a.clone(), b.clone()].concat()));
    let r = put(
        &mut s,
        json!({"path": target, "sha256": sha(&all),
               "upload": {"id": id, "offset": a.len() + b.len(), "commit": true}}),
        &c,
    );
    assert_eq!(ok(&r)["size"], all.len());
    assert_eq!(r["sha256"], sha(&all));
    assert!(r.get("upload").is_none(), "{r}");
    assert_eq!(std::fs::read(&target).unwrap(), all);
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
    assert_eq!(names_in(&root), vec!["site.tar"]);
    assert_eq!(srv.open_below(&root), 0);
    assert_eq!(code(&status(&mut s, &target, &id)), Some("not_found"));
    // Audited like put, each step with its upload and offset.
    let rows = srv.audit();
    let sums: Vec<&str> = rows
        .iter()
        .map(|r| r["summary"].as_str().unwrap())
        .collect();
    let t = target.display();
    assert!(
        sums.contains(&format!("{t} upload=new").as_str()),
        "{sums:?}"
    );
    assert!(
        sums.contains(&format!("{t} upload={id} offset=220000 commit").as_str()),
        "{sums:?}"
    );
}

/// A part at another offset than what was received (a resent part whose
/// answer was lost, a client that skipped one) is refused with the size
/// the server has, and changes nothing.
#[test]
fn a_part_at_the_wrong_offset_is_a_conflict() {
    let srv = Srv::start("resume-offset", "");
    let root = srv.scratch.sub("root");
    let mut s = srv.login(&srv.data);
    let target = root.join("f");
    let (a, b) = (bytes(1000, 1), bytes(500, 2));
    let id = start(&mut s, &target, &a);
    for wrong in [0u64, 999, 1001, 5000] {
        let r = put(
            &mut s,
            json!({"path": target, "upload": {"id": id, "offset": wrong}}),
            &b,
        );
        assert_eq!(code(&r), Some("conflict"), "{r}");
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(msg.contains("1000 bytes received"), "{msg}");
    }
    let r = status(&mut s, &target, &id);
    assert_eq!(
        (ok(&r)["size"].as_u64(), r["sha256"].as_str()),
        (Some(1000), Some(sha(&a).as_str()))
    );
    // Data without an offset is refused too; the right offset works.
    let r = put(&mut s, json!({"path": target, "upload": {"id": id}}), &b);
    assert_eq!(code(&r), Some("bad_request"), "{r}");
    let whole = [a.clone(), b.clone()].concat();
    let r = put(
        &mut s,
        json!({"path": target, "sha256": sha(&whole), "upload": {"id": id, "offset": 1000, "commit": true}}),
        &b,
    );
    ok(&r);
    assert_eq!(std::fs::read(&target).unwrap(), whole);
}

/// A part whose message is cut before its `last` record fails, and its
/// bytes are not left in the staged file: committing what was there
/// before gives exactly that.
#[test]
fn a_part_cut_short_leaves_the_upload_as_it_was() {
    use remo::proto::record::seal_message;
    let srv = Srv::start("resume-cut", "");
    let root = srv.scratch.sub("root");
    let mut s = srv.login(&srv.data);
    let target = root.join("f");
    let a = bytes(10, 1);
    let id = start(&mut s, &target, &a);
    let desc = json!({"path": target, "upload": {"id": id, "offset": 10}}).to_string();
    let junk = bytes(300_000, 9);
    let mut recs: Vec<&[u8]> = vec![desc.as_bytes()];
    recs.extend(junk.chunks(64 << 10));
    let r = s.next_r();
    let body = seal_message(s.c2s(), r, "put", &recs).unwrap();
    // Text framing: one record a line; the `last` one is dropped.
    let text = String::from_utf8(body).unwrap();
    let lines: Vec<&str> = text.split_inclusive("\r\n").collect();
    let cut = lines[..lines.len() - 1].concat();
    let (status_code, _) = curl(
        "POST",
        &format!("{}/put", srv.url),
        &[
            format!("Remo-Session: {}", s.sid()),
            "Content-Type: application/x-remo".into(),
        ],
        Some(cut.as_bytes()),
    );
    assert_eq!(status_code, 200);
    let st = status(&mut s, &target, &id);
    assert_eq!(
        (ok(&st)["size"].as_u64(), st["sha256"].as_str()),
        (Some(10), Some(sha(&a).as_str()))
    );
    let r = put(
        &mut s,
        json!({"path": target, "sha256": sha(&a), "upload": {"id": id, "commit": true}}),
        &[],
    );
    ok(&r);
    assert_eq!(
        std::fs::read(&target).unwrap(),
        a,
        "the cut part's bytes landed"
    );
}

/// A wrong digest at the commit discards the upload: the old file is
/// intact and nothing is left beside it — on a file system with unnamed
/// files and on one (FUSE) where the staging file has a name.
#[test]
fn a_wrong_digest_discards_the_upload_and_keeps_the_old_file() {
    let mut srv = Srv::start("resume-digest", "");
    let plain = srv.scratch.sub("plain");
    let fuse = srv.fuse("fuse");
    let mut s = srv.login(&srv.data);
    for dir in [&plain, &fuse] {
        let target = dir.join("app.bin");
        std::fs::write(&target, b"old content").unwrap();
        let a = bytes(100_000, 4);
        let id = start(&mut s, &target, &a);
        if dir == &fuse {
            assert_eq!(
                names_in(dir).len(),
                2,
                "the named staging file: {:?}",
                names_in(dir)
            );
        }
        let r = put(
            &mut s,
            json!({"path": target, "sha256": sha(b"something else"), "upload": {"id": id, "commit": true}}),
            &[],
        );
        assert_eq!(code(&r), Some("bad_request"), "{r}");
        assert_eq!(std::fs::read(&target).unwrap(), b"old content");
        assert_eq!(names_in(dir), vec!["app.bin"]);
        assert_eq!(srv.open_below(dir), 0);
        assert_eq!(code(&status(&mut s, &target, &id)), Some("not_found"));
    }
}

/// Another user cannot use, probe, commit or abort an upload whose id
/// they learnt: the answer is the one for an id that never existed, and
/// the owner's upload is untouched.
#[test]
fn another_user_gets_not_found_for_an_upload_id() {
    let srv = Srv::start("resume-owner", "");
    let root = srv.scratch.sub("root");
    let grant = format!("files:write:{}", root.display());
    let alice = srv.user("alice", &[&grant]);
    let bob = srv.user("bob", &[&grant, "admin"]);
    let mut a = srv.login(&alice);
    let mut b = srv.login(&bob);
    let target = root.join("f");
    let first = bytes(4096, 5);
    let id = start(&mut a, &target, &first);
    let never = b64(&[7u8; 16]);
    let unknown = status(&mut b, &target, &never);
    assert_eq!(code(&unknown), Some("not_found"));
    for desc in [
        json!({"path": target, "upload": {"id": id}}),
        json!({"path": target, "upload": {"id": id, "offset": 4096}}),
        json!({"path": target, "sha256": sha(&first), "upload": {"id": id, "commit": true}}),
        json!({"path": target, "upload": {"id": id, "abort": true}}),
    ] {
        let r = put(&mut b, desc.clone(), &[]);
        assert_eq!(r["error"], unknown["error"], "{desc}: {r}");
    }
    assert!(!target.exists());
    let r = status(&mut a, &target, &id);
    assert_eq!(
        (ok(&r)["size"].as_u64(), r["sha256"].as_str()),
        (Some(4096), Some(sha(&first).as_str()))
    );
    // A new session of the owner (logged in again) goes on with it.
    let mut a2 = srv.login(&alice);
    let r = put(
        &mut a2,
        json!({"path": target, "sha256": sha(&first), "upload": {"id": id, "commit": true}}),
        &[],
    );
    ok(&r);
    assert_eq!(std::fs::read(&target).unwrap(), first);
}

/// An upload nobody touches for `upload_idle_timeout` is discarded by the
/// reaper (its file released, a named one removed) and is then unknown.
#[test]
fn idle_uploads_expire_and_leave_nothing() {
    let mut srv = Srv::start("resume-expiry", "[limits]\nupload_idle_timeout = 1\n");
    let plain = srv.scratch.sub("plain");
    let fuse = srv.fuse("fuse");
    let mut s = srv.login(&srv.data);
    let p1 = plain.join("a");
    let p2 = fuse.join("b");
    let id1 = start(&mut s, &p1, &bytes(5000, 1));
    let id2 = start(&mut s, &p2, &bytes(5000, 2));
    assert_eq!(srv.open_below(&plain), 1);
    assert_eq!(names_in(&fuse).len(), 1, "{:?}", names_in(&fuse));
    // No request in between: the reaper (every 2 s) discards them.
    wait_for("the reaper", Duration::from_secs(10), || {
        srv.open_below(&plain) == 0 && srv.open_below(&fuse) == 0 && names_in(&fuse).is_empty()
    });
    assert!(names_in(&plain).is_empty());
    assert_eq!(code(&status(&mut s, &p1, &id1)), Some("not_found"));
    assert_eq!(code(&status(&mut s, &p2, &id2)), Some("not_found"));
    assert!(srv
        .log()
        .contains(&format!("staged upload {id1} of admin expired")));
}

/// `max_uploads_per_user` and `max_uploads` bound what is staged; an
/// abort frees a place.
#[test]
fn staged_uploads_are_bounded_per_user_and_in_all() {
    let srv = Srv::start(
        "resume-bounds",
        "[limits]\nmax_uploads = 3\nmax_uploads_per_user = 2\n",
    );
    let root = srv.scratch.sub("root");
    let grant = format!("files:write:{}", root.display());
    let alice = srv.user("alice", &[&grant]);
    let bob = srv.user("bob", &[&grant]);
    let (mut a, mut b) = (srv.login(&alice), srv.login(&bob));
    let a1 = start(&mut a, &root.join("a1"), b"1");
    let _a2 = start(&mut a, &root.join("a2"), b"2");
    let r = put(&mut a, json!({"path": root.join("a3"), "upload": {}}), b"3");
    assert_eq!(code(&r), Some("unavailable"), "{r}");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_uploads_per_user"));
    // Another login of the same user counts as the same user.
    let mut a_again = srv.login(&alice);
    let r = put(
        &mut a_again,
        json!({"path": root.join("a3"), "upload": {}}),
        b"3",
    );
    assert_eq!(code(&r), Some("unavailable"), "{r}");
    let _b1 = start(&mut b, &root.join("b1"), b"1");
    let r = put(&mut b, json!({"path": root.join("b2"), "upload": {}}), b"2");
    assert_eq!(code(&r), Some("unavailable"), "{r}");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("(max_uploads)"));
    // A refused start leaves nothing behind.
    assert_eq!(srv.open_below(&root), 3);
    assert!(names_in(&root).is_empty());
    let r = put(
        &mut a,
        json!({"path": root.join("a1"), "upload": {"id": a1, "abort": true}}),
        &[],
    );
    assert_eq!(ok(&r)["aborted"], true);
    assert_eq!(srv.open_below(&root), 2);
    start(&mut a, &root.join("a3"), b"3");
}

/// Between two requests the target or its directory is swapped for a
/// symlink to somewhere else below the user's root: the commit does not
/// follow it (`conflict`, upload discarded), and nothing is written there.
#[test]
fn a_path_swapped_for_a_symlink_between_parts_is_not_followed() {
    let srv = Srv::start("resume-swap", "");
    let root = srv.scratch.sub("root");
    let alice = srv.user("alice", &[&format!("files:write:{}", root.display())]);
    let mut s = srv.login(&alice);
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::create_dir_all(root.join("other")).unwrap();
    let target = root.join("d/t");
    let victim = root.join("other/v");
    std::fs::write(&target, b"old").unwrap();
    std::fs::write(&victim, b"victim").unwrap();
    let data = bytes(2000, 6);
    // The target becomes a symlink to another file.
    let id = start(&mut s, &target, &data);
    std::fs::remove_file(&target).unwrap();
    std::os::unix::fs::symlink("../other/v", &target).unwrap();
    let r = put(
        &mut s,
        json!({"path": target, "sha256": sha(&data), "upload": {"id": id, "commit": true}}),
        &[],
    );
    assert_eq!(code(&r), Some("conflict"), "{r}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"victim");
    assert!(std::fs::symlink_metadata(&target)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(code(&status(&mut s, &target, &id)), Some("not_found"));
    // The directory becomes a symlink to another directory.
    std::fs::create_dir_all(root.join("d2")).unwrap();
    let target = root.join("d2/f");
    let id = start(&mut s, &target, &data);
    std::fs::rename(root.join("d2"), root.join("d2.moved")).unwrap();
    std::os::unix::fs::symlink("other", root.join("d2")).unwrap();
    let r = put(
        &mut s,
        json!({"path": target, "upload": {"id": id, "offset": 2000}}),
        b"more",
    );
    assert_eq!(code(&r), Some("conflict"), "{r}");
    let r = put(
        &mut s,
        json!({"path": target, "sha256": sha(&data), "upload": {"id": id, "commit": true}}),
        &[],
    );
    assert_eq!(code(&r), Some("not_found"), "discarded at the part: {r}");
    assert_eq!(names_in(&root.join("other")), vec!["v"]);
    assert!(names_in(&root.join("d2.moved")).is_empty());
    assert_eq!(srv.open_below(&root), 0);
    // A later request naming another path is refused, and changes nothing.
    let id = start(&mut s, &root.join("d/x"), &data);
    let r = put(
        &mut s,
        json!({"path": root.join("d/y"), "upload": {"id": id, "offset": 2000}}),
        b"z",
    );
    assert_eq!(code(&r), Some("conflict"), "{r}");
    assert_eq!(status(&mut s, &root.join("d/x"), &id)["size"], 2000);
}

/// Disabling a user drops their staged uploads at once (its files are
/// released, a named one removed), so a re-enabled user finds none;
/// removing a user does the same, even one with no live session.
#[test]
fn a_disabled_or_removed_user_s_uploads_are_dropped() {
    let mut srv = Srv::start("resume-revoke", "");
    let fuse = srv.fuse("fuse");
    let grant = format!("files:write:{}", fuse.display());
    let alice = srv.user("alice", &[&grant]);
    let carol = srv.user("carol", &[&grant]);
    let mut a = srv.login(&alice);
    let id = start(&mut a, &fuse.join("a"), &bytes(3000, 1));
    let mut c = srv.login(&carol);
    let cid = start(&mut c, &fuse.join("c"), &bytes(3000, 2));
    // carol logs out: her upload outlives the session (it is hers, not
    // the session's).
    assert_eq!(c.request("logout", b"{}").0, 200);
    let mut c = srv.login(&carol);
    ok(&status(&mut c, &fuse.join("c"), &cid));
    assert_eq!(c.request("logout", b"{}").0, 200);
    assert_eq!(names_in(&fuse).len(), 2, "{:?}", names_in(&fuse));
    srv.remod_user(&["disable", "alice"]);
    wait_for("alice's upload to go", Duration::from_secs(5), || {
        names_in(&fuse).len() == 1
    });
    srv.remod_user(&["enable", "alice"]);
    let mut a = srv.login(&alice);
    assert_eq!(
        code(&status(&mut a, &fuse.join("a"), &id)),
        Some("not_found")
    );
    srv.remod_user(&["remove", "carol"]);
    wait_for("carol's upload to go", Duration::from_secs(5), || {
        names_in(&fuse).is_empty()
    });
    assert_eq!(srv.open_below(&fuse), 0);
    assert!(srv.log().contains("alice disabled"), "{}", srv.log());
}

/// `remo put --resume` killed after some parts, run again: it asks the
/// server where it is and sends only the rest; the result is the file.
#[test]
fn remo_put_resume_goes_on_after_a_kill() {
    let srv = Srv::start("resume-kill", "");
    let root = srv.scratch.sub("root");
    let local = srv.scratch.path().join("big.bin");
    let size: u64 = 96 << 20;
    let digest = random_file(&local, size);
    let remote = root.join("big.bin").display().to_string();
    let c = Client::new(&srv.scratch, &srv.url, &srv.data);
    let args = [
        "put",
        "--resume",
        "--part-size",
        "1M",
        local.to_str().unwrap(),
        &remote,
    ];
    let states = srv.scratch.path().join("home/.cache/remo/uploads");
    let first = c
        .command(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The state file says the server has the upload: stop the client
    // there (at once, then for good).
    wait_for("the upload's state file", Duration::from_secs(60), || {
        std::fs::read_dir(&states)
            .map(|d| d.flatten().any(|e| e.metadata().is_ok_and(|m| m.len() > 0)))
            .unwrap_or(false)
    });
    let pid = nix::unistd::Pid::from_raw(first.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let out = first.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        None,
        "the first run ended on its own: {}",
        text(&out.stderr)
    );
    assert!(!Path::new(&remote).exists());
    let again = c.run(&args, None);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    let at: u64 = again
        .stderr
        .split("resuming the upload at ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume: {}", again.stderr));
    assert!(at > 0 && at < size, "{at}");
    assert_eq!(sha256_file(Path::new(&remote)), digest);
    assert_eq!(names_in(&root), vec!["big.bin"]);
    // The audit: the second run's status request, then parts from `at`
    // on only, and no more bytes than the rest of the file.
    let mut rows = srv.audit();
    rows.sort_by_key(|r| r["time_ms"].as_i64());
    let is_status = |r: &Value| {
        let s = r["summary"].as_str().unwrap();
        s.contains(" upload=")
            && !s.contains("upload=new")
            && !s.contains("offset=")
            && !s.contains("commit")
    };
    let k = rows.iter().position(is_status).expect("a status request");
    let rerun = &rows[k + 1..];
    let first_part = rerun[0]["summary"].as_str().unwrap();
    assert!(
        first_part.ends_with(&format!("offset={at}")),
        "{first_part}"
    );
    let sent: u64 = rerun.iter().map(|r| r["bytes_in"].as_u64().unwrap()).sum();
    let rest = size - at;
    // Binary framing: 28 bytes a 64 KiB record, and the descriptors.
    assert!(
        sent < rest + rest / 200 + (64 << 10),
        "sent {sent} for the last {rest} bytes"
    );
    assert!(rerun.last().unwrap()["summary"]
        .as_str()
        .unwrap()
        .ends_with("commit"));
    // Done: the state file is gone.
    assert_eq!(std::fs::read_dir(&states).unwrap().count(), 0);
}

/// A commit request held open (its `last` record not yet sent) while the
/// user is disabled must not commit afterwards: the session ended with the
/// user's rights, and the store dropped the upload (review finding: the
/// wait for the rest of a data-less commit did not watch the session).
#[test]
fn a_commit_held_open_across_a_disable_does_not_land() {
    use remo::proto::record::{open_message, seal_message};
    use std::io::{Read, Write};
    let srv = Srv::start("resume-held", "");
    let root = srv.scratch.sub("root");
    let grant = format!("files:write:{}", root.display());
    let alice = srv.user("alice", &[&grant]);
    let mut s = srv.login(&alice);
    let target = root.join("f");
    std::fs::write(&target, b"old").unwrap();
    let a = bytes(5000, 3);
    let id = start(&mut s, &target, &a);
    // The commit, sealed whole; sent but for its `last` record.
    let desc = json!({"path": target, "sha256": sha(&a), "upload": {"id": id, "commit": true}})
        .to_string();
    let r = s.next_r();
    // Record 0 not `last`: an empty data record ends the message.
    let body = seal_message(s.c2s(), r, "put", &[desc.as_bytes(), b""]).unwrap();
    let text = String::from_utf8(body.clone()).unwrap();
    let lines: Vec<&str> = text.split_inclusive("\r\n").collect();
    assert!(lines.len() >= 2, "{lines:?}");
    let (head, last) = lines.split_at(lines.len() - 1);
    let addr = srv.url.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "POST /put HTTP/1.1\r\nHost: {addr}\r\nRemo-Session: {}\r\n\
         Content-Type: application/x-remo\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        s.sid(),
        body.len(),
        head.concat()
    )
    .unwrap();
    conn.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    srv.remod_user(&["disable", "alice"]);
    wait_for("alice disabled", Duration::from_secs(5), || {
        srv.log().contains("alice disabled")
    });
    std::thread::sleep(Duration::from_millis(300));
    // The rest of the body, if the connection is still there to take it.
    let _ = conn.write_all(last.concat().as_bytes());
    let mut resp = Vec::new();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = conn.read_to_end(&mut resp);
    assert_eq!(
        std::fs::read(&target).unwrap(),
        b"old",
        "the held commit landed after the user was disabled"
    );
    assert_eq!(names_in(&root), vec!["f".to_string()]);
    // It was answered with an error, not `ok`.
    let at = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    if let Ok(recs) = open_message(s.s2c(), Some(r), "put", &resp[at..]) {
        let res = String::from_utf8_lossy(recs.last().unwrap()).into_owned();
        assert!(!res.contains("\"ok\":true"), "{res}");
    }
}

/// The state files of `put --resume` live in a cache directory that may be
/// someone else's (`sudo remo` with the invoking user's `HOME`): a state
/// file planted as a symlink, or a symlinked directory, must not make remo
/// truncate and write the file it points to (review finding).
#[test]
fn put_resume_refuses_a_planted_state_file_or_directory() {
    let srv = Srv::start("resume-planted", "");
    let root = srv.scratch.sub("root");
    let local = srv.scratch.path().join("small.bin");
    std::fs::write(&local, bytes(5000, 4)).unwrap();
    let remote = root.join("small.bin").display().to_string();
    let c = Client::new(&srv.scratch, &srv.url, &srv.data);
    let args = ["put", "--resume", local.to_str().unwrap(), &remote];
    let cache = srv.scratch.path().join("home/.cache/remo");
    std::fs::create_dir_all(&cache).unwrap();
    let victim = srv.scratch.path().join("precious");
    std::fs::write(&victim, b"precious\n").unwrap();

    // The state file's name: its server, user, remote and local path.
    let canonical = std::fs::canonicalize(&local).unwrap();
    let digest = Sha256::digest(format!(
        "{}\n{}\n{remote}\n{}",
        srv.url.trim_end_matches('/'),
        srv.data.user,
        canonical.display()
    ));
    let name: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let uploads = cache.join("uploads");
    std::fs::create_dir(&uploads).unwrap();
    std::fs::set_permissions(&uploads, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&victim, uploads.join(format!("{name}.json"))).unwrap();
    let r = c.run(&args, None);
    assert_ne!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"precious\n",
        "{}",
        r.stderr
    );
    assert!(!Path::new(&remote).exists());

    // A symlinked directory.
    std::fs::remove_dir_all(&uploads).unwrap();
    let elsewhere = srv.scratch.sub("elsewhere");
    std::os::unix::fs::symlink(&elsewhere, &uploads).unwrap();
    let r = c.run(&args, None);
    assert_ne!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("not a private directory"), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

    // A real private directory again: the upload works.
    std::fs::remove_file(&uploads).unwrap();
    let r = c.run(&args, None);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(std::fs::read(&remote).unwrap(), bytes(5000, 4));
}

/// On a file system without `O_TMPFILE` (FUSE) the staging file has a
/// name. Someone who can write the directory swaps another file in under
/// that name between parts: the commit sees that the name is no longer the
/// file remod wrote, refuses with `conflict`, and the target keeps its
/// old bytes (the planted file's are never put in place).
#[test]
fn a_staging_file_swapped_under_its_name_is_not_committed() {
    let mut srv = Srv::start("resume-staging-swap", "");
    let root = srv.fuse("fuse-swap");
    let alice = srv.user("alice", &[&format!("files:write:{}", root.display())]);
    let mut s = srv.login(&alice);
    let target = root.join("conf");
    std::fs::write(&target, b"old").unwrap();
    let data = bytes(5000, 9);
    let id = start(&mut s, &target, &data);
    let staged: Vec<String> = names_in(&root)
        .into_iter()
        .filter(|n| n.starts_with(".conf.remo-"))
        .collect();
    assert_eq!(
        staged.len(),
        1,
        "no named staging file: {:?}",
        names_in(&root)
    );
    let planted = root.join("planted");
    std::fs::write(&planted, b"the attacker's bytes").unwrap();
    std::fs::rename(&planted, root.join(&staged[0])).unwrap();
    let r = put(
        &mut s,
        json!({"path": target, "sha256": sha(&data), "upload": {"id": id, "offset": 5000, "commit": true}}),
        &[],
    );
    assert_eq!(code(&r), Some("conflict"), "{r}");
    assert_eq!(std::fs::read(&target).unwrap(), b"old");
}
