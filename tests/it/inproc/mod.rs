//! In-process harness for router tests: a real key file, a real SQLite
//! user database, the real router, and a client built from the protocol core.

// Test harness: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use remo::keyfile;
use remo::proto::handshake::{AuthResponse, ClientHandshake, ClientSession};
use remo::proto::identity::IdentityKey;
use remo::proto::record::{open_message, seal_message, RecordKey};
use remo::proto::response::parse_result;
use remo::server::core::config::{Defaults, InstanceKey};
use remo::server::core::request::{Body, Handler, Params, Request, ResponseBody};
use remo::server::core::router::Router;
use remo::userdb::UserDb;
use serde_json::{Map, Value};

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub router: std::sync::Arc<Router>,
    pub alice: IdentityKey,
    pub bob: IdentityKey,
    pub server: IdentityKey,
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn fixture_with(timeout: Option<&str>) -> Fixture {
    fixture_inner(timeout, None)
}

/// A fixture whose instance reads `remo.toml` (`InstanceKey.config`),
/// written from `toml(root)` before the router exists.
pub fn fixture_with_config(toml: impl FnOnce(&std::path::Path) -> String) -> Fixture {
    fixture_inner(None, Some(Box::new(toml)))
}

type MakeToml<'a> = Box<dyn FnOnce(&std::path::Path) -> String + 'a>;

fn fixture_inner(timeout: Option<&str>, toml: Option<MakeToml<'_>>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let config = toml.map(|make| {
        let path = root.join("remo.toml");
        std::fs::write(&path, make(&root)).unwrap();
        path
    });
    let server = IdentityKey::generate();
    keyfile::write_private_key(&root.join("server.key"), &server, None, false).unwrap();
    let alice = IdentityKey::generate();
    let bob = IdentityKey::generate();
    let mut db = UserDb::create(&root.join("users.db")).unwrap();
    db.add_user("alice", &alice.public()).unwrap();
    db.add_permission("alice", "admin").unwrap();
    db.add_user("bob", &bob.public()).unwrap();
    db.set_enabled("bob", false).unwrap();
    let router = Router::new(Defaults {
        instance: InstanceKey {
            key_file: Some(root.join("server.key")),
            user_db: Some(root.join("users.db")),
            config,
            session_timeout: timeout.map(str::to_string),
            config_optional: false,
            ..Default::default()
        },
        base: Some("/remo".into()),
    });
    Fixture {
        _dir: dir,
        root,
        router,
        alice,
        bob,
        server,
    }
}

pub fn fixture() -> Fixture {
    fixture_with(None)
}

pub async fn call(
    f: &Fixture,
    method: &str,
    op: &str,
    session: Option<&str>,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let mut params = Params::new();
    params.push("REQUEST_METHOD", method);
    params.push("REQUEST_URI", format!("/remo/{op}"));
    params.push("REMOTE_ADDR", "127.0.0.1");
    if let Some(s) = session {
        params.push("HTTP_REMO_SESSION", s);
    }
    let resp = f
        .router
        .handle(Request {
            params,
            body: Body::from_bytes(Bytes::from(body)),
        })
        .await;
    let mut out = Vec::new();
    match resp.body {
        ResponseBody::Full(b) => out.extend_from_slice(&b),
        ResponseBody::Stream(mut rx) => {
            while let Some(chunk) = rx.recv().await {
                out.extend_from_slice(&chunk);
            }
        }
    }
    (resp.status, out)
}

pub async fn login_as(
    f: &Fixture,
    user: &str,
    key: &IdentityKey,
    time: i64,
) -> (u16, Vec<u8>, Option<ClientSession>) {
    let (hs, req) = ClientHandshake::start(user, key, time);
    let (status, body) = call(f, "POST", "auth", None, serde_json::to_vec(&req).unwrap()).await;
    if status != 200 {
        return (status, body, None);
    }
    let resp: AuthResponse = serde_json::from_slice(&body).unwrap();
    let s = hs.finish(&resp, &f.server.public()).unwrap();
    (status, body, Some(s))
}

pub async fn login(f: &Fixture) -> ClientSession {
    login_as(f, "alice", &f.alice, now()).await.2.unwrap()
}

pub struct Reply {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub result: Result<Map<String, Value>, remo::proto::response::OpError>,
}

pub fn open_reply(s: &ClientSession, r: u64, op: &str, body: &[u8]) -> Reply {
    let recs = open_message(&RecordKey::new(&s.keys.s2c), Some(r), op, body).unwrap();
    let (last, rest) = recs.split_last().unwrap();
    let mut reply = Reply {
        stdout: vec![],
        stderr: vec![],
        result: parse_result(last).unwrap(),
    };
    for rec in rest {
        match rec[0] {
            1 => reply.stdout.extend_from_slice(&rec[1..]),
            2 => reply.stderr.extend_from_slice(&rec[1..]),
            c => panic!("bad channel {c}"),
        }
    }
    reply
}

pub fn seal(s: &ClientSession, r: u64, op: &str, desc: Value, data: &[&[u8]]) -> Vec<u8> {
    let d = desc.to_string();
    let mut parts: Vec<&[u8]> = vec![d.as_bytes()];
    parts.extend_from_slice(data);
    seal_message(&RecordKey::new(&s.keys.c2s), r, op, &parts).unwrap()
}

pub async fn request(
    f: &Fixture,
    s: &ClientSession,
    r: u64,
    op: &str,
    desc: Value,
    data: &[&[u8]],
) -> Reply {
    let (status, body) = call(f, "POST", op, Some(&s.session), seal(s, r, op, desc, data)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    open_reply(s, r, op, &body)
}

pub fn error_text(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["error"].as_str().unwrap().to_string()
}

/// Adds a user with the given grants (through a second connection, as
/// `remod user` would) and returns their key.
pub fn add_user(f: &Fixture, name: &str, grants: &[&str]) -> IdentityKey {
    let key = IdentityKey::generate();
    let mut db = UserDb::open(&f.root.join("users.db")).unwrap();
    db.add_user(name, &key.public()).unwrap();
    for g in grants {
        db.add_permission(name, g).unwrap();
    }
    key
}

/// The instance behind the fixture's router (loaded on first request).
pub fn instance(f: &Fixture) -> std::sync::Arc<remo::server::core::instance::Instance> {
    f.router.registry().all().into_iter().next().unwrap()
}

/// Every audit row so far, after the writer caught up:
/// `(user, op, summary, outcome, exit)`.
pub fn audit_rows(f: &Fixture) -> Vec<(String, String, String, String, Option<i64>)> {
    instance(f).audit.flush();
    remo::audit::query(&f.root.join("audit.db"), &Default::default())
        .unwrap()
        .into_iter()
        .map(|r| (r.user, r.op, r.summary, r.outcome, r.exit))
        .collect()
}
