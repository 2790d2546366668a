//! The router in-process, with real key files, a real SQLite user database
//! and real child processes: every pre-check status of PROTOCOL.md §5, the
//! auth failures of §3, and the core operations' edge cases.

// Test harness: a failed unwrap is a failed test.

use crate::inproc;

use std::path::Path;

use inproc::*;
use remo::proto::b64;
use remo::proto::handshake::{ClientHandshake, Ephemeral};
use remo::proto::identity::IdentityKey;
use remo::proto::record::RecordKey;
use remo::proto::response::ErrorCode;
use remo::server::core::request::{Body, Handler, Params, Request, ResponseBody};
use serde_json::{json, Value};

#[tokio::test]
async fn info_is_public() {
    let f = fixture();
    let (status, body) = call(&f, "GET", "info", None, vec![]).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["protocol"], "remo/1");
    assert_eq!(v["key"], f.server.public().to_b64());
    assert_eq!(v["fingerprint"], f.server.public().fingerprint());
    // §2, §4.1: both framings are offered; no CA is trusted, so no
    // `certificates` (absent means false).
    assert_eq!(v["framings"], json!(["text", "binary"]));
    assert!(v.get("certificates").is_none());
    assert_eq!(call(&f, "POST", "info", None, vec![]).await.0, 405);
}

#[tokio::test]
async fn auth_failures_are_identical_401s() {
    let f = fixture();
    let t = now();
    let (ok, _, _) = login_as(&f, "alice", &f.alice, t).await;
    assert_eq!(ok, 200);
    let stranger = IdentityKey::generate();
    let cases = [
        login_as(&f, "nobody", &f.alice, t).await, // unknown user
        login_as(&f, "alice", &stranger, t).await, // bad signature
        login_as(&f, "alice", &f.alice, t - 400).await, // clock skew
        login_as(&f, "alice", &f.alice, t + 400).await, // clock skew ahead
        login_as(&f, "bob", &f.bob, t).await,      // disabled
    ];
    let mut bodies = vec![];
    for (status, body, _) in cases {
        assert_eq!(status, 401);
        bodies.push(body);
    }
    // A replayed /auth body (same user and Qc) is refused too.
    let (_hs, req) = ClientHandshake::start_with("alice", &f.alice, t, Ephemeral::generate());
    let raw = serde_json::to_vec(&req).unwrap();
    assert_eq!(call(&f, "POST", "auth", None, raw.clone()).await.0, 200);
    let (status, body) = call(&f, "POST", "auth", None, raw).await;
    assert_eq!(status, 401);
    bodies.push(body);
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "401 bodies differ");
    assert_eq!(error_text(&bodies[0]), "authentication failed");
}

#[tokio::test]
async fn malformed_auth_is_400() {
    let f = fixture();
    let (_, good) = ClientHandshake::start("alice", &f.alice, now());
    let mut bad_point = good.clone();
    let mut pt = b64::decode(&bad_point.key).unwrap();
    pt[64] ^= 1;
    bad_point.key = b64::encode(&pt);
    let mut bad_name = good.clone();
    bad_name.user = "al ice".into();
    let mut padded = good.clone();
    padded.sig.push('=');
    for body in [
        b"{not json".to_vec(),
        serde_json::to_vec(&bad_point).unwrap(),
        serde_json::to_vec(&bad_name).unwrap(),
        serde_json::to_vec(&padded).unwrap(),
    ] {
        assert_eq!(call(&f, "POST", "auth", None, body).await.0, 400);
    }
    assert_eq!(
        call(&f, "POST", "auth", None, vec![b' '; 16385]).await.0,
        413
    );
    assert_eq!(call(&f, "GET", "auth", None, vec![]).await.0, 405);
}

#[tokio::test]
async fn cmd_runs_and_reports() {
    let f = fixture();
    let s = login(&f).await;
    let r = request(&f, &s, 1, "cmd", json!({"argv": ["echo", "hi"]}), &[]).await;
    assert_eq!(r.stdout, b"hi\n");
    let res = r.result.unwrap();
    assert_eq!(res["exit"], 0);
    assert_eq!(res["signal"], Value::Null);
    assert_eq!(res["timed_out"], false);

    let r = request(
        &f,
        &s,
        2,
        "cmd",
        json!({"sh": "echo out; echo err >&2; exit 3"}),
        &[],
    )
    .await;
    assert_eq!(r.stdout, b"out\n");
    assert_eq!(r.stderr, b"err\n");
    assert_eq!(r.result.unwrap()["exit"], 3);

    let r = request(
        &f,
        &s,
        3,
        "cmd",
        json!({"argv": ["cat"]}),
        &[b"abc", b"", b"def"],
    )
    .await;
    assert_eq!(r.stdout, b"abcdef");

    let r = request(&f, &s, 4, "cmd", json!({"sh": "kill -TERM $$"}), &[]).await;
    let res = r.result.unwrap();
    assert_eq!(res["exit"], Value::Null);
    assert_eq!(res["signal"], 15);

    let r = request(
        &f,
        &s,
        5,
        "cmd",
        json!({"argv": ["sleep", "30"], "timeout": 0.3}),
        &[],
    )
    .await;
    let res = r.result.unwrap();
    assert_eq!(res["timed_out"], true);
    assert_eq!(res["signal"], 9);

    let r = request(
        &f,
        &s,
        6,
        "cmd",
        json!({"argv": ["no-such-program-xyz"]}),
        &[],
    )
    .await;
    assert_eq!(r.result.unwrap_err().code, ErrorCode::NotFound);

    let r = request(
        &f,
        &s,
        7,
        "cmd",
        json!({"argv": ["pwd"], "cwd": f.root.to_str().unwrap(), "env": {"X": "1"}}),
        &[],
    )
    .await;
    assert_eq!(
        String::from_utf8(r.stdout).unwrap().trim(),
        f.root.canonicalize().unwrap().to_str().unwrap()
    );

    let r = request(
        &f,
        &s,
        8,
        "cmd",
        json!({"sh": "echo $X $REMO_USER", "env": {"X": "y"}}),
        &[],
    )
    .await;
    assert_eq!(r.stdout, b"y alice\n");

    let r = request(&f, &s, 9, "cmd", json!({"argv": ["true"], "bogus": 1}), &[]).await;
    assert_eq!(r.result.unwrap_err().code, ErrorCode::BadRequest);
}

#[tokio::test]
async fn precheck_statuses() {
    let f = fixture();
    let s = login(&f).await;
    let good = seal(&s, 1, "cmd", json!({"argv": ["true"]}), &[]);
    // Unknown op, wrong method.
    assert_eq!(
        call(&f, "POST", "nope", Some(&s.session), good.clone())
            .await
            .0,
        404
    );
    assert_eq!(
        call(&f, "GET", "cmd", Some(&s.session), good.clone())
            .await
            .0,
        405
    );
    // Missing header.
    assert_eq!(call(&f, "POST", "cmd", None, good.clone()).await.0, 400);
    // Malformed line, oversized line.
    assert_eq!(
        call(&f, "POST", "cmd", Some(&s.session), b"!!!!\r\n".to_vec())
            .await
            .0,
        400
    );
    let mut long = vec![b'A'; 87_421];
    long.extend_from_slice(b"\r\n");
    assert_eq!(call(&f, "POST", "cmd", Some(&s.session), long).await.0, 413);
    // Unknown session.
    assert_eq!(
        call(
            &f,
            "POST",
            "cmd",
            Some("AAAAAAAAAAAAAAAAAAAAAA"),
            good.clone()
        )
        .await
        .0,
        401
    );
    // Tampered record.
    let mut tampered = good.clone();
    let i = tampered.len() - 5;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        call(&f, "POST", "cmd", Some(&s.session), tampered).await.0,
        401
    );
    // Record sealed for another operation.
    let other = seal(&s, 1, "get", json!({"argv": ["true"]}), &[]);
    assert_eq!(
        call(&f, "POST", "cmd", Some(&s.session), other).await.0,
        401
    );
    // The good one, then its replay.
    assert_eq!(
        call(&f, "POST", "cmd", Some(&s.session), good.clone())
            .await
            .0,
        200
    );
    let (status, body) = call(&f, "POST", "cmd", Some(&s.session), good).await;
    assert_eq!(status, 409);
    assert!(body.starts_with(b"{"), "409 must be plain JSON, not sealed");
    // Out of order within the window is fine; older than the window is not.
    let jump = seal(&s, 2000, "cmd", json!({"argv": ["true"]}), &[]);
    assert_eq!(call(&f, "POST", "cmd", Some(&s.session), jump).await.0, 200);
    let within = seal(&s, 977, "cmd", json!({"argv": ["true"]}), &[]);
    assert_eq!(
        call(&f, "POST", "cmd", Some(&s.session), within).await.0,
        200
    );
    let old = seal(&s, 976, "cmd", json!({"argv": ["true"]}), &[]);
    assert_eq!(call(&f, "POST", "cmd", Some(&s.session), old).await.0, 409);
}

#[tokio::test]
async fn expired_session_is_401() {
    let f = fixture_with(Some("1"));
    let s = login(&f).await;
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let body = seal(&s, 1, "cmd", json!({"argv": ["true"]}), &[]);
    assert_eq!(call(&f, "POST", "cmd", Some(&s.session), body).await.0, 401);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let f = fixture();
    let s = login(&f).await;
    let r = request(&f, &s, 1, "logout", json!({}), &[]).await;
    assert!(r.result.is_ok());
    let body = seal(&s, 2, "cmd", json!({"argv": ["true"]}), &[]);
    assert_eq!(call(&f, "POST", "cmd", Some(&s.session), body).await.0, 401);
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[tokio::test]
async fn put_get_round_trip_and_failures_keep_the_old_file() {
    let f = fixture();
    let s = login(&f).await;
    let path = f.root.join("notes.txt");
    let p = path.to_str().unwrap();
    let r = request(
        &f,
        &s,
        1,
        "put",
        json!({"path": p, "mode": 0o640}),
        &[b"hello ", b"world\n"],
    )
    .await;
    let res = r.result.unwrap();
    assert_eq!(res["size"], 12);
    assert_eq!(read(&path), b"hello world\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );

    let r = request(&f, &s, 2, "get", json!({"path": p}), &[]).await;
    assert_eq!(r.stdout, b"hello world\n");
    let res = r.result.unwrap();
    use sha2::Digest;
    assert_eq!(
        res["sha256"],
        b64::encode(&sha2::Sha256::digest(b"hello world\n"))
    );
    assert_eq!(res["mode"], 0o640);

    let r = request(
        &f,
        &s,
        3,
        "get",
        json!({"path": p, "offset": 6, "length": 3}),
        &[],
    )
    .await;
    assert_eq!(r.stdout, b"wor");

    // Wrong digest: nothing replaced.
    let wrong = b64::encode(&[0u8; 32]);
    let r = request(
        &f,
        &s,
        4,
        "put",
        json!({"path": p, "sha256": wrong}),
        &[b"new"],
    )
    .await;
    assert_eq!(r.result.unwrap_err().code, ErrorCode::BadRequest);
    assert_eq!(read(&path), b"hello world\n");

    // No overwrite.
    let r = request(
        &f,
        &s,
        5,
        "put",
        json!({"path": p, "overwrite": false}),
        &[b"new"],
    )
    .await;
    assert_eq!(r.result.unwrap_err().code, ErrorCode::Exists);

    // Truncated upload (no last record): the response reports failure and
    // the old file stays; no temporary file is left behind.
    let full = seal(&s, 6, "put", json!({"path": p}), &[b"replacement", b"more"]);
    let lines: Vec<&[u8]> = full.split_inclusive(|&b| b == b'\n').collect();
    let cut = lines[..2].concat();
    let (status, body) = call(&f, "POST", "put", Some(&s.session), cut).await;
    assert_eq!(status, 200);
    let reply = open_reply(&s, 6, "put", &body);
    assert_eq!(reply.result.unwrap_err().code, ErrorCode::BadRequest);
    assert_eq!(read(&path), b"hello world\n");
    let leftovers: Vec<_> = std::fs::read_dir(&f.root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".remo-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // Missing parent without create_dirs, then with it.
    let deep = f.root.join("a/b/c.txt");
    let d = deep.to_str().unwrap();
    let r = request(&f, &s, 7, "put", json!({"path": d}), &[b"x"]).await;
    assert_eq!(r.result.unwrap_err().code, ErrorCode::NotFound);
    let r = request(
        &f,
        &s,
        8,
        "put",
        json!({"path": d, "create_dirs": true}),
        &[b"x"],
    )
    .await;
    assert!(r.result.is_ok());
    assert_eq!(read(&deep), b"x");

    // Errors for get.
    let r = request(
        &f,
        &s,
        9,
        "get",
        json!({"path": f.root.join("missing").to_str().unwrap()}),
        &[],
    )
    .await;
    assert_eq!(r.result.unwrap_err().code, ErrorCode::NotFound);
    let r = request(
        &f,
        &s,
        10,
        "get",
        json!({"path": f.root.to_str().unwrap()}),
        &[],
    )
    .await;
    assert_eq!(r.result.unwrap_err().code, ErrorCode::BadRequest);
}

/// Output streams while the command runs; dropping the response (the
/// client went away) kills the command's whole process group: the shell and
/// the job it put in the background.
#[tokio::test]
async fn streamed_output_arrives_before_the_command_ends() {
    let f = fixture();
    let s = login(&f).await;
    let sh_pid = f.root.join("sh.pid");
    let bg_pid = f.root.join("bg.pid");
    let script = format!(
        "echo $$ > {}; sleep 300 & echo $! > {}; echo first; wait",
        sh_pid.display(),
        bg_pid.display()
    );
    let mut params = Params::new();
    params.push("REQUEST_METHOD", "POST");
    params.push("REQUEST_URI", "/remo/cmd");
    params.push("HTTP_REMO_SESSION", s.session.as_str());
    let body = seal(&s, 1, "cmd", json!({ "sh": script }), &[]);
    let resp = f
        .router
        .handle(Request {
            params,
            body: Body::from_bytes(body),
        })
        .await;
    let ResponseBody::Stream(mut rx) = resp.body else {
        panic!("not streamed")
    };
    let started = std::time::Instant::now();
    let first = rx.recv().await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_millis(1500));
    let recs = {
        let mut opener =
            remo::proto::record::Opener::new(RecordKey::new(&s.keys.s2c), Some(1), "cmd");
        let line = &first[..first.len() - 2];
        opener.open(line).unwrap().plaintext().to_vec()
    };
    assert_eq!(recs, b"\x01first\n");
    let pid = |p: &Path| -> i32 { read_text(p).trim().parse().unwrap() };
    let (sh, bg) = (pid(&sh_pid), pid(&bg_pid));
    assert!(alive(sh) && alive(bg), "the command is not running yet");
    // Dropping the response (client gone) must kill the command's group.
    drop(rx);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while (alive(sh) || alive(bg)) && std::time::Instant::now() < end {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        !alive(sh) && !alive(bg),
        "10 s after the client went away: shell {sh} alive {}, background job {bg} alive {}",
        alive(sh),
        alive(bg)
    );
}

/// True while `pid` exists and is not a zombie (a zombie has ended; only
/// its parent has not collected it yet).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().chars().next()),
            Some(Some('Z' | 'X'))
        ),
        Err(_) => false,
    }
}

fn read_text(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[tokio::test]
async fn max_command_timeout_caps_every_command() {
    let f = fixture_with_config(|_| "[limits]\nmax_command_timeout = 1\n".to_string());
    let s = login(&f).await;
    let started = std::time::Instant::now();
    // No timeout asked for: the cap applies.
    let r = request(&f, &s, 1, "cmd", json!({"argv": ["sleep", "30"]}), &[]).await;
    let res = r.result.unwrap();
    assert_eq!(res["timed_out"], true);
    // More than the cap asked for: capped too.
    let r = request(
        &f,
        &s,
        2,
        "cmd",
        json!({"argv": ["sleep", "30"], "timeout": 20}),
        &[],
    )
    .await;
    assert_eq!(r.result.unwrap()["timed_out"], true);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // A shorter timeout than the cap is kept, and quick commands are untouched.
    let r = request(
        &f,
        &s,
        3,
        "cmd",
        json!({"argv": ["true"], "timeout": 0.5}),
        &[],
    )
    .await;
    let res = r.result.unwrap();
    assert_eq!(res["timed_out"], false);
    assert_eq!(res["exit"], 0);
}

/// remod resolves a bare program name itself (so it can spawn with
/// posix_spawn): with the PATH the request sets, in order, relative
/// entries taken from the working directory, argv[0] kept as given, and
/// a non-executable file skipped as execvp would.
#[tokio::test]
async fn cmd_looks_programs_up_in_the_requested_path() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture();
    let s = login(&f).await;
    let first = f.root.join("first");
    let second = f.root.join("second");
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    // In "first" but not executable: skipped.
    std::fs::write(first.join("remo-probe"), "#!/bin/sh\necho wrong\n").unwrap();
    std::fs::write(
        second.join("remo-probe"),
        "#!/bin/sh\necho \"second $0 $1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        second.join("remo-probe"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:second:/usr/bin:/bin", first.display());
    let r = request(
        &f,
        &s,
        1,
        "cmd",
        json!({"argv": ["remo-probe", "x"], "cwd": f.root.to_str().unwrap(), "env": {"PATH": path}}),
        &[],
    )
    .await;
    let out = String::from_utf8_lossy(&r.stdout).to_string();
    assert_eq!(r.result.unwrap()["exit"], 0);
    // A shell script sees the path it was started by as $0.
    assert!(
        out.starts_with("second ") && out.trim_end().ends_with("remo-probe x"),
        "{out}"
    );

    // Not on the requested PATH (the default one does not include it).
    let r = request(&f, &s, 2, "cmd", json!({"argv": ["remo-probe"]}), &[]).await;
    let e = r.result.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(
        e.message.contains("remo-probe: command not found"),
        "{}",
        e.message
    );
}
