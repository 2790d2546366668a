//! Slow clients against the real `remod serve --http`: a transfer whose
//! request body or response stalls holds no server thread, so hundreds of
//! them from one user starve neither logins nor revocation; and one user's
//! transfers in progress are capped (`[limits] max_transfers_per_user`).
//!
//! The attack: tokio's blocking pool has 512 threads. `put` used to park
//! one on its writer until the body's next record, `get` and `list` one on
//! their reader until the client took the previous batch. 520 stalled
//! transfers then left no thread for the login's key agreement or the
//! revocation watcher's database read.

use crate::common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use remo::proto::handshake::ClientSession;
use remo::proto::identity::IdentityKey;
use remo::proto::record::{RecordKey, Sealer};
use serde_json::json;

use crate::revoke_http::login;

/// `remod serve --http` on a fresh data dir with `config` as its
/// `REMO_CONFIG`; killed on drop.
struct Server {
    child: Child,
    port: u16,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, config: &str) -> Server {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("remo.toml");
    std::fs::write(&cfg, config).unwrap();
    let port = common::free_port();
    let log = std::fs::File::create(dir.join("remod.log")).unwrap();
    let child = common::remod_http_command(&dir.join("data"), port)
        .env("REMO_CONFIG", &cfg)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    common::wait_tcp(port);
    Server {
        child,
        port,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// The set-up of every test here: `dir/files` (made by `fill`), remod with
/// `config`, and the user `mallory` who may read and write below it.
/// Returns the server, its data dir, the files' path, and mallory's key.
fn lab(
    dir: &Path,
    config: &str,
    fill: impl FnOnce(&Path),
) -> (Server, std::path::PathBuf, String, IdentityKey) {
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    fill(&files);
    let srv = start(dir, config);
    let data = dir.join("data");
    let f = files.to_str().unwrap().to_string();
    let key = add_user(
        &data,
        "mallory",
        &[&format!("files:read:{f}"), &format!("files:write:{f}")],
    );
    (srv, data, f, key)
}

/// Adds `name` with `grants` and a fresh key.
fn add_user(data: &Path, name: &str, grants: &[&str]) -> IdentityKey {
    let key = IdentityKey::generate();
    let pub_path = data.with_extension(format!("{name}.pub"));
    remo::keyfile::write_public_key(&pub_path, &key.public(), false).unwrap();
    let mut cmd = common::remod_command();
    cmd.args(["user", "add", name, "--key"]).arg(&pub_path);
    for g in grants {
        cmd.args(["--allow", g]);
    }
    let out = cmd.arg("--db").arg(data.join("users.db")).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    key
}

/// Sends the head of a `op` request and the first `records` of its body,
/// then stops: the body stays incomplete (Content-Length promises more).
fn stalled(port: u16, s: &ClientSession, r: u64, op: &str, records: &[&[u8]]) -> TcpStream {
    let mut sealer = Sealer::new(RecordKey::new(&s.keys.c2s), r, op);
    let mut body = Vec::new();
    for rec in records {
        body.extend_from_slice(&sealer.seal(&[rec], false).unwrap());
    }
    let mut t = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "POST /{op} HTTP/1.1\r\nHost: 127.0.0.1\r\nRemo-Session: {}\r\n\
         Content-Type: application/x-remo\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        s.session,
        body.len() + (1 << 20)
    );
    t.write_all(head.as_bytes()).unwrap();
    t.write_all(&body).unwrap();
    t
}

/// A whole `op` request whose response the caller never reads.
fn unread(port: u16, s: &ClientSession, r: u64, op: &str, desc: &serde_json::Value) -> TcpStream {
    let d = desc.to_string();
    let body =
        remo::proto::record::seal_message(&RecordKey::new(&s.keys.c2s), r, op, &[d.as_bytes()])
            .unwrap();
    let mut t = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // A small window: the answer stalls after a few kilobytes.
    nix::sys::socket::setsockopt(&t, nix::sys::socket::sockopt::RcvBuf, &4096).unwrap();
    let head = format!(
        "POST /{op} HTTP/1.1\r\nHost: 127.0.0.1\r\nRemo-Session: {}\r\n\
         Content-Type: application/x-remo\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        s.session,
        body.len()
    );
    t.write_all(head.as_bytes()).unwrap();
    t.write_all(&body).unwrap();
    t
}

/// How long an admin's login takes (panics past `limit`).
async fn timed_login(
    url: &str,
    data: &Path,
    user: &str,
    key: &IdentityKey,
    limit: Duration,
) -> Duration {
    let http = reqwest::Client::new();
    let t = Instant::now();
    let r = tokio::time::timeout(limit, login(&http, url, data, user, key)).await;
    let took = t.elapsed();
    assert!(
        matches!(r, Ok(Ok(_))),
        "{user}'s login did not succeed within {limit:?} ({took:?})"
    );
    took
}

const MANY: usize = 600;

/// 600 stalled transfers (puts with a withheld body, gets and lists never
/// read) from one user, with the per-user cap raised past them: an admin
/// still logs in at once, and disabling the user ends every one of them
/// within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_transfers_starve_neither_logins_nor_revocation() {
    let tmp = tempfile::tempdir().unwrap();
    let (srv, data, f, mallory) = lab(
        tmp.path(),
        "[limits]\nmax_transfers = 4096\nmax_transfers_per_user = 4096\nmax_sessions_per_user = 4096\n",
        |files| {
            std::fs::create_dir_all(files.join("many")).unwrap();
            // Bigger than what the socket buffers and the server's queues hold.
            common::random_file(&files.join("big"), 64 << 20);
            for i in 0..30_000 {
                let name = format!("{}-{i:06}", "a-long-name-".repeat(10));
                std::fs::write(files.join("many").join(name), b"").unwrap();
            }
        },
    );
    let admin = add_user(&data, "root2", &["admin"]);
    let http = reqwest::Client::new();
    let s = login(&http, &srv.url, &data, "mallory", &mallory)
        .await
        .unwrap();
    let idle = timed_login(&srv.url, &data, "root2", &admin, Duration::from_secs(5)).await;

    let mut held = Vec::new();
    let put = |i: usize| json!({"path": format!("{f}/up-{i}"), "overwrite": true}).to_string();
    for i in 0..MANY {
        let r = i as u64 + 1;
        // Half puts, a third gets, a sixth lists (each list's answer is
        // bigger than the socket buffers).
        let t = match i % 6 {
            0..=2 => stalled(srv.port, &s, r, "put", &[put(i).as_bytes(), &[7u8; 4096]]),
            3 | 4 => unread(srv.port, &s, r, "get", &json!({"path": format!("{f}/big")})),
            _ => unread(
                srv.port,
                &s,
                r,
                "list",
                &json!({"path": format!("{f}/many")}),
            ),
        };
        held.push(t);
    }
    // Let every one of them reach its stall (the gets seal megabytes each
    // first): wait until remod is idle.
    quiet(srv.child.id(), Duration::from_secs(60));

    let took = timed_login(&srv.url, &data, "root2", &admin, Duration::from_secs(2)).await;
    eprintln!("admin login: {idle:?} before, {took:?} with {MANY} stalled transfers");

    // Disable: the watcher must end the session and every transfer in it
    // (the audit rows say when each ended, as the server saw it).
    let out = common::remod_command()
        .args(["user", "disable", "mallory", "--db"])
        .arg(data.join("users.db"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let disabled_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let deadline = Instant::now() + Duration::from_secs(20);
    let rows = loop {
        let rows: Vec<serde_json::Value> = audit(&data)
            .into_iter()
            .filter(|r| {
                r["user"] == "mallory"
                    && ["put", "get", "list"].contains(&r["op"].as_str().unwrap_or(""))
            })
            .collect();
        if rows.len() >= MANY || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        rows.len(),
        MANY,
        "transfers that never ended after the disable"
    );
    let last_end = rows
        .iter()
        .map(|r| r["time_ms"].as_i64().unwrap() + r["duration_ms"].as_i64().unwrap())
        .max()
        .unwrap();
    let after = last_end - disabled_ms;
    eprintln!("the last transfer ended {after} ms after the disable");
    assert!(
        after < 1000,
        "a transfer ended {after} ms after the disable"
    );
    for r in &rows {
        assert_eq!(r["outcome"], "unavailable", "{r}");
    }
    drop(held);
}

/// Waits until process `pid` uses under 5 % of a core over 300 ms.
fn quiet(pid: u32, limit: Duration) {
    let ticks = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // After the command's ")": state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let deadline = Instant::now() + limit;
    let mut before = ticks();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = ticks();
        // 100 ticks a second: under 1.5 ticks in 300 ms.
        if now - before <= 1 {
            return;
        }
        assert!(Instant::now() < deadline, "remod never went idle");
        before = now;
    }
}

/// Every audit row.
fn audit(data: &Path) -> Vec<serde_json::Value> {
    crate::revoke_http::audit_json(data, &["--limit", "100000"])
}

/// With the default caps, one user's transfers in progress stop at
/// `max_transfers_per_user` with a clear `unavailable`, and the user's
/// own next transfer runs once the others end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_transfers_are_capped() {
    let tmp = tempfile::tempdir().unwrap();
    let (srv, data, f, key) = lab(
        tmp.path(),
        "[limits]\nmax_transfers = 64\nmax_transfers_per_user = 3\n",
        |files| std::fs::write(files.join("small"), b"hello").unwrap(),
    );
    let other = add_user(&data, "alice", &[&format!("files:read:{f}")]);
    let http = reqwest::Client::new();
    let s = login(&http, &srv.url, &data, "mallory", &key)
        .await
        .unwrap();
    let put = |i: usize| json!({"path": format!("{f}/up-{i}"), "overwrite": true}).to_string();
    let mut held: Vec<TcpStream> = (0..3)
        .map(|i| stalled(srv.port, &s, i as u64 + 1, "put", &[put(i).as_bytes()]))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let get = json!({"path": format!("{f}/small")});
    let (status, _, result) =
        crate::revoke_http::op(&http, &srv.url, &s, 10, "get", get.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(result["error"]["code"], "unavailable", "{result}");
    let msg = result["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("transfers") && msg.contains("this user"),
        "{msg}"
    );
    // Another user is not held up by mallory's share.
    let a = login(&http, &srv.url, &data, "alice", &other)
        .await
        .unwrap();
    let (_, body, result) =
        crate::revoke_http::op(&http, &srv.url, &a, 1, "get", get.clone()).await;
    assert_eq!(body, b"hello", "{result}");
    // Mallory's slots come back when the stalled requests go away.
    held.clear();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut r = 10;
    loop {
        r += 1;
        let (_, body, result) =
            crate::revoke_http::op(&http, &srv.url, &s, r, "get", get.clone()).await;
        if body == b"hello" {
            break;
        }
        assert!(Instant::now() < deadline, "slots not given back: {result}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `transfer_idle_timeout` ends a `put` whose body stops and a `get` whose
/// answer nobody takes, with `timeout`, and frees their slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_transfers_time_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (srv, data, f, key) = lab(
        tmp.path(),
        "[limits]\nmax_transfers_per_user = 2\ntransfer_idle_timeout = 2\n",
        |files| {
            common::random_file(&files.join("big"), 64 << 20);
        },
    );
    let files = tmp.path().join("files");
    let http = reqwest::Client::new();
    let s = login(&http, &srv.url, &data, "mallory", &key)
        .await
        .unwrap();
    let desc = json!({"path": format!("{f}/up"), "overwrite": true}).to_string();
    let started = Instant::now();
    let _put = stalled(srv.port, &s, 1, "put", &[desc.as_bytes(), &[1u8; 1000]]);
    let _get = unread(srv.port, &s, 2, "get", &json!({"path": format!("{f}/big")}));
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows: Vec<serde_json::Value> = audit(&data)
            .into_iter()
            .filter(|r| r["user"] == "mallory" && (r["op"] == "put" || r["op"] == "get"))
            .collect();
        if rows.len() == 2 || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(rows.len(), 2, "the stalled transfers did not end: {rows:?}");
    for r in &rows {
        assert_eq!(r["outcome"], "timeout", "{r}");
        assert!(r["duration_ms"].as_i64().unwrap() >= 2000, "{r}");
    }
    eprintln!("both ended {:?} after they started", started.elapsed());
    // Nothing was put in place, and the slots are free again.
    assert!(!files.join("up").exists());
    let (_, body, result) =
        crate::revoke_http::op(&http, &srv.url, &s, 3, "list", json!({"path": f})).await;
    assert!(
        String::from_utf8_lossy(&body).contains("\"big\""),
        "{result}"
    );
}
