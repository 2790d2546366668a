//! Revocation and audit with real binaries: `remod serve --http` as a child,
//! `remod user disable` from another process ends the live session and
//! kills its interactive process within 1 s; `remod audit` shows the rows,
//! failed logins included.

// Test harness: a failed unwrap is a failed test.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use remo::proto::handshake::{AuthResponse, ClientHandshake, ClientSession};
use remo::proto::identity::IdentityKey;
use remo::proto::record::{open_message, seal_message, RecordKey};
use serde_json::{json, Value};

use common::remod_command as remod;

fn start(data: &Path) -> (common::HttpServer, String) {
    let s = common::serve_http(data, common::free_port(), &data.with_extension("log"));
    let url = s.url.clone();
    (s, url)
}

fn now() -> i64 {
    remo::server::core::instance::unix_now()
}

pub(crate) async fn login(
    http: &reqwest::Client,
    url: &str,
    data: &Path,
    user: &str,
    key: &IdentityKey,
) -> Result<ClientSession, u16> {
    let server = remo::keyfile::read_public_key(&data.join("server.pub")).unwrap();
    let (hs, req) = ClientHandshake::start(user, key, now());
    let resp = http
        .post(format!("{url}/auth"))
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&req).unwrap())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(status);
    }
    let a: AuthResponse = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    Ok(hs.finish(&a, &server).unwrap())
}

/// Sends one operation; returns the HTTP status and, for 200, the stdout
/// bytes and the final JSON.
pub(crate) async fn op(
    http: &reqwest::Client,
    url: &str,
    s: &ClientSession,
    r: u64,
    name: &str,
    desc: Value,
) -> (u16, Vec<u8>, Value) {
    let d = desc.to_string();
    let body = seal_message(&RecordKey::new(&s.keys.c2s), r, name, &[d.as_bytes()]).unwrap();
    let resp = http
        .post(format!("{url}/{name}"))
        .header("Remo-Session", &s.session)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    if status != 200 {
        return (status, vec![], Value::Null);
    }
    let recs = open_message(&RecordKey::new(&s.keys.s2c), Some(r), name, &bytes).unwrap();
    let (last, rest) = recs.split_last().unwrap();
    let mut out = vec![];
    for rec in rest {
        if rec[0] == 1 {
            out.extend_from_slice(&rec[1..]);
        }
    }
    (status, out, serde_json::from_slice(last).unwrap())
}

pub(crate) fn audit_json(data: &Path, args: &[&str]) -> Vec<Value> {
    let o = remod()
        .args(["audit", "--user-db"])
        .arg(data.join("users.db"))
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice::<Value>(&o.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Adds NAME (allowed `sh`) to the server's user database with a fresh key.
fn add_user(data: &Path, name: &str) -> IdentityKey {
    let key = IdentityKey::generate();
    let pub_path = data.with_extension(format!("{name}.pub"));
    remo::keyfile::write_public_key(&pub_path, &key.public(), false).unwrap();
    let out = remod()
        .args(["user", "add", name, "--key"])
        .arg(&pub_path)
        .args(["--allow", "sh", "--db"])
        .arg(data.join("users.db"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_ends_live_session_and_kills_its_process() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (_server, url) = start(&data);
    let key = add_user(&data, "carol");

    let http = reqwest::Client::new();
    // A failed login first, under a name that does not exist.
    assert_eq!(
        login(&http, &url, &data, "nobody", &key).await.err(),
        Some(401)
    );
    let s = login(&http, &url, &data, "carol", &key).await.unwrap();
    let (status, stdout, result) = op(
        &http,
        &url,
        &s,
        1,
        "icm",
        json!({"sh": "echo $$; exec sleep 1000", "wait_ms": 1000}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(result["ok"], true, "{result}");
    let pid: u32 = String::from_utf8_lossy(&stdout).trim().parse().unwrap();
    let proc_dir = format!("/proc/{pid}");
    assert!(Path::new(&proc_dir).exists());
    // `exec sleep` follows the echo.
    let t = Instant::now();
    while !std::fs::read(format!("{proc_dir}/cmdline"))
        .unwrap()
        .starts_with(b"sleep\0")
    {
        assert!(t.elapsed() < Duration::from_secs(5), "sleep did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let out = remod()
        .args(["user", "disable", "carol", "--db"])
        .arg(data.join("users.db"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let t0 = Instant::now();
    while Path::new(&proc_dir).exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "sleep {pid} still running 1 s after the user was disabled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The session is gone.
    let (status, _, _) = op(&http, &url, &s, 2, "cmd", json!({"sh": "true"})).await;
    assert_eq!(status, 401);
    // And carol cannot log in again.
    assert_eq!(
        login(&http, &url, &data, "carol", &key).await.err(),
        Some(401)
    );

    // The audit log, through `remod audit` (the writer is asynchronous).
    let deadline = Instant::now() + Duration::from_secs(5);
    let rows = loop {
        let rows = audit_json(&data, &["--op", "auth"]);
        if rows.len() >= 3 || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let brief: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["user"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        brief,
        [
            (
                "nobody".to_string(),
                "auth-failed: unknown user".to_string()
            ),
            ("carol".to_string(), "ok".to_string()),
            (
                "carol".to_string(),
                "auth-failed: user disabled".to_string()
            ),
        ]
    );
    let carol = audit_json(&data, &["--user", "carol", "--since", "1h"]);
    let ops: Vec<(&str, &str, &str)> = carol
        .iter()
        .map(|r| {
            (
                r["op"].as_str().unwrap(),
                r["summary"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("auth", "", "ok"),
            ("icm", "sh -c 'echo $$; exec sleep 1000'", "ok"),
            ("auth", "", "auth-failed: user disabled"),
        ]
    );
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(
        log.contains("carol disabled: ended 1 live session"),
        "{log}"
    );
}

/// The audit writer commits in groups a few milliseconds apart; a server
/// stopped with SIGTERM right after a burst of requests still has every
/// row in its file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_survive_a_prompt_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (mut server, url) = start(&data);
    let key = add_user(&data, "dave");
    let http = reqwest::Client::new();
    let s = login(&http, &url, &data, "dave", &key).await.unwrap();
    let n = 20u64;
    let calls = (1..=n).map(|r| op(&http, &url, &s, r, "cmd", json!({"sh": "true"})));
    for (status, _, result) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200);
        assert_eq!(result["exit"], 0, "{result}");
    }
    // Stop it at once, the way systemd does, and wait for it to exit.
    let pid = nix::unistd::Pid::from_raw(server.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = server.child.wait().unwrap();
    assert!(status.success(), "remod exited with {status}");
    let rows = audit_json(&data, &["--user", "dave"]);
    let cmds = rows.iter().filter(|r| r["op"] == "cmd").count() as u64;
    let auths = rows.iter().filter(|r| r["op"] == "auth").count();
    assert_eq!((cmds, auths), (n, 1), "{rows:?}");
}
