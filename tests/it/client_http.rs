//! The real `remo` binary against a real `remod serve --http`: pinning,
//! exec exit codes and streams, stdin, big get/put, the session cache,
//! logout, transparent re-login, concurrency and full duplex.

// Test harness: a failed unwrap is a failed test.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use bytes::Bytes;
use remo::client::conn::{DataStream, ResponseItem, Session, SessionParams};
use remo::client::{info, ClientError};
use remo::proto::identity::{IdentityKey, PublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use common::{assert_code, free_port, text, HttpServer as Server};

fn start_server_at(data: &Path, port: u16) -> Server {
    common::serve_http(data, port, &data.with_extension(format!("log{port}")))
}

/// A client environment: its own HOME, config and runtime directories.
struct Client {
    tmp: tempfile::TempDir,
}

impl Client {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("home")).unwrap();
        let run = tmp.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        Client { tmp }
    }
    fn home(&self) -> PathBuf {
        self.tmp.path().join("home")
    }
    fn run_dir(&self) -> PathBuf {
        self.tmp.path().join("run")
    }
    fn known(&self) -> PathBuf {
        self.home().join(".config/remo/known_servers")
    }
    fn cmd(&self, s: &Server, args: &[&str]) -> Command {
        common::remo_in(
            self.tmp.path(),
            &s.data.join("client/admin.key"),
            &s.url,
            args,
        )
    }
    fn run(&self, s: &Server, args: &[&str]) -> Output {
        self.cmd(s, args).stdin(Stdio::null()).output().unwrap()
    }
    fn run_with_input(&self, s: &Server, args: &[&str], input: &[u8]) -> Output {
        common::output_with_input(self.cmd(s, args), input.to_vec())
    }
    fn session_files(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.run_dir().join("remo")) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => vec![],
        }
    }
    fn session_json(&self) -> Value {
        let files = self.session_files();
        assert_eq!(files.len(), 1, "one cached session expected");
        serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap()
    }
}

fn setup() -> (tempfile::TempDir, Server, Client) {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_at(&dir.path().join("data"), free_port());
    (dir, server, Client::new())
}

fn server_key(s: &Server) -> PublicKey {
    remo::keyfile::read_public_key(&s.data.join("server.pub")).unwrap()
}

fn admin_key(s: &Server) -> IdentityKey {
    remo::keyfile::load_identity(
        &s.data.join("client/admin.key"),
        &remo::keyfile::PassphraseSource::None,
    )
    .unwrap()
}

#[test]
fn info_pins_and_a_changed_key_is_refused() {
    let (_d, s, c) = setup();
    let fp = server_key(&s).fingerprint();
    let o = c.run(&s, &["info"]);
    assert_code(&o, 0);
    assert!(text(&o.stdout).contains(&fp));
    assert!(text(&o.stdout).contains("remo/1"));
    assert!(text(&o.stderr).contains("pinned"), "{}", text(&o.stderr));
    let line = std::fs::read_to_string(c.known()).unwrap();
    assert!(line.starts_with(&s.url) && line.contains(&fp));
    let o = c.run(&s, &["info"]);
    assert_code(&o, 0);
    assert!(!text(&o.stderr).contains("pinned"));

    // Pretend we had pinned another key: info and exec both refuse.
    let other = IdentityKey::generate().public();
    std::fs::write(
        c.known(),
        format!("{} {} {}\n", s.url, other.to_b64(), other.fingerprint()),
    )
    .unwrap();
    for args in [&["info"][..], &["exec", "true"][..]] {
        let o = c.run(&s, args);
        assert_code(&o, 255);
        let err = text(&o.stderr);
        assert!(err.contains("SERVER KEY CHANGED"), "{err}");
        assert!(
            err.contains(&fp) && err.contains(&other.fingerprint()),
            "{err}"
        );
        assert!(err.contains("line 1 of"), "{err}");
    }
}

#[test]
fn exec_exit_codes_streams_and_stdin() {
    let (_d, s, c) = setup();
    assert_code(&c.run(&s, &["exec", "true"]), 0);
    assert_code(&c.run(&s, &["exec", "sh", "-c", "exit 3"]), 3);
    let o = c.run(&s, &["exec", "--sh", "kill -9 $$"]);
    assert_code(&o, 137);
    assert!(text(&o.stderr).contains("signal 9"));
    let o = c.run(&s, &["exec", "--timeout", "1", "sleep", "20"]);
    assert_code(&o, 124);
    assert!(text(&o.stderr).contains("timed out"));

    let o = c.run(&s, &["exec", "--sh", "echo out; echo err >&2; echo out2"]);
    assert_code(&o, 0);
    assert_eq!(text(&o.stdout), "out\nout2\n");
    assert_eq!(text(&o.stderr), "err\n");

    let o = c.run(
        &s,
        &[
            "exec",
            "--env",
            "FOO=b=ar",
            "--cwd",
            "/tmp",
            "--sh",
            "echo $FOO; pwd",
        ],
    );
    assert_code(&o, 0);
    assert_eq!(text(&o.stdout), "b=ar\n/tmp\n");

    // Hyphenated arguments belong to the remote command.
    let o = c.run(&s, &["exec", "ls", "-d", "/"]);
    assert_code(&o, 0);
    assert_eq!(text(&o.stdout), "/\n");

    let input: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let o = c.run_with_input(&s, &["exec", "cat"], &input);
    assert_code(&o, 0);
    assert!(o.stdout == input, "stdin was not forwarded intact");
    let o = c.run_with_input(&s, &["exec", "wc", "-c"], b"hello\n");
    assert_eq!(text(&o.stdout).trim(), "6");

    let o = c.run(&s, &["exec", "/no/such/command"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o.stderr).starts_with("remo: "), "{}", text(&o.stderr));
}

fn sha256_file(p: &Path) -> Vec<u8> {
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(p).unwrap();
    std::io::copy(&mut f, &mut h).unwrap();
    h.finalize().to_vec()
}

#[test]
fn get_put_big_file_and_failed_get_leaves_nothing() {
    let (_d, s, c) = setup();
    let mb: usize = std::env::var("REMO_TEST_BIG_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let work = c.tmp.path();
    let src = work.join("big.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src).unwrap());
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..mb {
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut buf);
            f.write_all(&buf).unwrap();
        }
    }
    let remote = format!("{}/up/big.bin", s.data.display());
    let o = c.run(&s, &["put", "--mkdir", src.to_str().unwrap(), &remote]);
    assert_code(&o, 0);
    assert_eq!(sha256_file(Path::new(&remote)), sha256_file(&src));

    let dl = work.join("dl");
    std::fs::create_dir(&dl).unwrap();
    let o = c.run(&s, &["get", &remote, dl.to_str().unwrap()]);
    assert_code(&o, 0);
    assert_eq!(sha256_file(&dl.join("big.bin")), sha256_file(&src));

    // --verify-first: the digest goes first, the server checks it.
    let again = format!("{}/up/big2.bin", s.data.display());
    let o = c.run(
        &s,
        &["put", "--verify-first", src.to_str().unwrap(), &again],
    );
    assert_code(&o, 0);
    assert_eq!(sha256_file(Path::new(&again)), sha256_file(&src));
    let _ = std::fs::remove_file(&again);

    // --no-overwrite on a small file (the server answers before reading much).
    let small = work.join("small.txt");
    std::fs::write(&small, b"small\n").unwrap();
    let o = c.run(
        &s,
        &["put", small.to_str().unwrap(), &remote, "--no-overwrite"],
    );
    assert_code(&o, 1);
    assert!(text(&o.stderr).contains("exists"), "{}", text(&o.stderr));

    // get to stdout; default remote path is the remote home.
    let o = c.run(&s, &["put", small.to_str().unwrap(), "--mode", "600"]);
    assert_code(&o, 0);
    let o = c.run(&s, &["get", "small.txt", "-"]);
    assert_code(&o, 0);
    assert_eq!(o.stdout, b"small\n");

    // A local write that fails (stdout on a full device) stops the download
    // with that error, not a hang or a success.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = c
        .cmd(&s, &["get", &remote, "-"])
        .stdin(Stdio::null())
        .stdout(full)
        .output()
        .unwrap();
    assert_code(&o, 1);
    assert!(
        text(&o.stderr).contains("cannot write"),
        "{}",
        text(&o.stderr)
    );

    // A failed get leaves no file, partial or temporary.
    let before: Vec<_> = std::fs::read_dir(&dl).unwrap().collect();
    let o = c.run(
        &s,
        &["get", "/no/such/file", dl.join("x").to_str().unwrap()],
    );
    assert_code(&o, 1);
    assert!(text(&o.stderr).contains("not_found"), "{}", text(&o.stderr));
    let after: Vec<_> = std::fs::read_dir(&dl).unwrap().collect();
    assert_eq!(before.len(), after.len());
    // A directory cannot be read as a file: also no leftovers.
    let o = c.run(&s, &["get", "/", dl.join("y").to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
    assert_eq!(std::fs::read_dir(&dl).unwrap().count(), before.len());
}

#[test]
fn cached_session_is_reused_logged_out_and_renewed() {
    let (d, s, c) = setup();
    assert_code(&c.run(&s, &["exec", "true"]), 0);
    let first = c.session_json();
    assert_code(&c.run(&s, &["exec", "true"]), 0);
    let second = c.session_json();
    assert_eq!(
        first["sid"], second["sid"],
        "second command re-authenticated"
    );
    assert!(second["next_r"].as_u64() > first["next_r"].as_u64());

    // The old session is refused after logout.
    let o = c.run(&s, &["logout"]);
    assert_code(&o, 0);
    assert!(c.session_files().is_empty());
    let b = |k: &str| -> Zeroizing<[u8; 32]> {
        Zeroizing::new(remo::proto::b64::decode_array(second[k].as_str().unwrap()).unwrap())
    };
    let params = SessionParams {
        base_url: s.url.clone(),
        user: "admin".into(),
        sid: second["sid"].as_str().unwrap().into(),
        c2s: b("c2s"),
        s2c: b("s2c"),
        timeout: 600,
        server_key: server_key(&s),
        framing: remo::proto::framing::Framing::Text,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt.block_on(async {
        let sess = Session::resume(
            remo::client::conn::http_client().unwrap(),
            params,
            std::sync::Arc::new(remo::client::conn::CounterNumbers::new(100)),
        );
        sess.call_raw(remo::ops::OpName::Cmd, &json!({"argv": ["true"]}))
            .await
            .unwrap_err()
    });
    assert!(matches!(err, ClientError::SessionExpired), "{err}");

    // --no-cache keeps nothing.
    assert_code(&c.run(&s, &["--no-cache", "exec", "true"]), 0);
    assert!(c.session_files().is_empty());

    // A server restart kills the cached session: the client logs in again
    // by itself, with stdin intact.
    assert_code(&c.run(&s, &["exec", "true"]), 0);
    let before = c.session_json();
    let port = s.port;
    drop(s);
    let s = start_server_at(&d.path().join("data"), port);
    let o = c.run_with_input(&s, &["exec", "cat"], b"still here\n");
    assert_code(&o, 0);
    assert_eq!(o.stdout, b"still here\n");
    assert_ne!(c.session_json()["sid"], before["sid"]);
}

#[test]
fn concurrent_requests_on_one_session() {
    let (_d, s, c) = setup();
    // Many processes sharing the cached session (request numbers under flock).
    assert_code(&c.run(&s, &["exec", "true"]), 0);
    let sid = c.session_json()["sid"].clone();
    let children: Vec<Child> = (0..6)
        .map(|i| {
            c.cmd(&s, &["exec", "echo", &i.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, ch) in children.into_iter().enumerate() {
        let o = ch.wait_with_output().unwrap();
        assert_code(&o, 0);
        assert_eq!(text(&o.stdout), format!("{i}\n"));
    }
    assert_eq!(c.session_json()["sid"], sid);

    // Many requests in flight on one in-process session.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pinned = info(&s.url).await.unwrap().public_key().unwrap();
        assert_eq!(pinned, server_key(&s));
        let sess = Session::login(&s.url, "admin", &admin_key(&s), &pinned)
            .await
            .unwrap();
        let calls = (0..16).map(|i| {
            let sess = &sess;
            async move {
                let desc = json!({"sh": format!("sleep 0.2; echo {i}")});
                let got = sess.call_raw(remo::ops::OpName::Cmd, &desc).await.unwrap();
                assert_eq!(text(&got.stdout), format!("{i}\n"));
                assert_eq!(got.result.unwrap()["exit"], json!(0));
            }
        });
        futures_util::future::join_all(calls).await;
        sess.logout().await.unwrap();
        let err = sess
            .call_raw(remo::ops::OpName::Cmd, &json!({"argv": ["true"]}))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::SessionExpired), "{err}");
    });
}

#[test]
fn full_duplex_echo_and_wrong_pin_refused() {
    let (_d, s, _c) = setup();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // A session whose M2 does not verify against the pin is never made.
        let wrong = IdentityKey::generate().public();
        let err = Session::login(&s.url, "admin", &admin_key(&s), &wrong)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::BadServerSignature { .. }),
            "{err}"
        );

        let sess = Session::login(&s.url, "admin", &admin_key(&s), &server_key(&s))
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(1);
        let input: DataStream = Box::pin(tokio_stream_from(rx));
        let mut resp = sess
            .request_raw(
                remo::ops::OpName::Cmd,
                &json!({"argv": ["cat"]}),
                Some(input),
            )
            .await
            .unwrap();
        // Each line comes back before the next is sent: no deadlock, no buffering.
        for i in 0..5 {
            let line = format!("line {i}\n");
            tx.send(Ok(Bytes::from(line.clone()))).await.unwrap();
            let mut got = Vec::new();
            while got.len() < line.len() {
                match tokio::time::timeout(Duration::from_secs(20), resp.next())
                    .await
                    .expect("echo did not come back while the request was open")
                    .unwrap()
                {
                    Some(ResponseItem::Stdout(b)) => got.extend_from_slice(&b),
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(text(&got), line);
        }
        drop(tx);
        match resp.next().await.unwrap() {
            Some(ResponseItem::Done(Ok(m))) => assert_eq!(m["exit"], json!(0)),
            other => panic!("unexpected {other:?}"),
        }
        assert!(resp.next().await.unwrap().is_none());
        sess.logout().await.unwrap();
    });
}

fn tokio_stream_from(
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

#[test]
fn usage_and_connection_errors_are_one_line() {
    let c = Client::new();
    let o = Command::new(env!("CARGO_BIN_EXE_remo"))
        .env("HOME", c.home())
        .env_remove("REMO_SERVER")
        .args(["--user", "x", "http://127.0.0.1:1", "info"])
        .output()
        .unwrap();
    assert_code(&o, 255);
    let err = text(&o.stderr);
    assert!(
        err.starts_with("remo: cannot reach") && err.lines().count() == 1,
        "{err}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_remo"))
        .env("HOME", c.home())
        .env_remove("REMO_SERVER")
        .args(["nosuchalias", "info"])
        .output()
        .unwrap();
    assert_code(&o, 255);
    assert!(text(&o.stderr).contains("unknown host 'nosuchalias'"));
    let o = Command::new(env!("CARGO_BIN_EXE_remo"))
        .arg("--help")
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(text(&o.stdout).contains("[HOST]"));
}
