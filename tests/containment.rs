//! Containment (issue 17): a slow client or a shutdown cannot take more
//! than it should. Against the real binary.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::fcgi;
use common::*;

/// The params of `POST /remo/cmd` for session `sid`.
fn cmd_params<'a>(key: &'a str, db: &'a str, sid: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("REQUEST_METHOD", "POST"),
        ("REQUEST_URI", "/remo/cmd"),
        ("SCRIPT_NAME", "/remo/cmd"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMO_BASE", "/remo"),
        ("REMO_KEY_FILE", key),
        ("REMO_USER_DB", db),
        ("HTTP_REMO_SESSION", sid),
        ("CONTENT_TYPE", "application/x-remo"),
    ]
}

/// §5 of the protocol: the session is checked before any body byte is
/// read. On the old code a request for an unknown session whose body never
/// ends was never answered (the router waited for the first line), so a
/// thousand of them held every connection.
#[test]
fn an_unknown_session_is_refused_before_the_body() {
    let scratch = Scratch::new("contain-presession");
    let data = init_data_dir(&scratch, "admin");
    let (mut remod, sock) = start_remod_fcgi(&scratch, &data);
    let key = data.key_file.display().to_string();
    let db = data.user_db.display().to_string();
    let params = cmd_params(&key, &db, "AAAAAAAAAAAAAAAAAAAAAA");
    let started = Instant::now();
    let answer = fcgi::send(&sock, &params, None, Duration::from_secs(5));
    let (status, body) = answer.expect("no answer while the body stays open");
    assert_eq!(status, 401, "{}", text(&body));
    assert!(started.elapsed() < Duration::from_secs(3));
    remod.assert_running();
}

/// SIGTERM: remod stops accepting, lets a running request finish within
/// --shutdown-grace, ends the sessions and their processes after it, exits
/// 0 and removes its socket. The old code aborted every request at once
/// and left the socket file behind.
#[test]
fn sigterm_drains_running_requests_then_ends_everything() {
    let scratch = Scratch::new("contain-shutdown");
    let data = init_data_dir(&scratch, "admin");
    let run = scratch.sub("run");
    let sock = run.join("remod.sock");
    let mut cmd = remod_command();
    cmd.args(["serve", "--shutdown-grace", "4", "--fcgi"])
        .arg(format!("unix:{}", sock.display()))
        .args(["--socket-mode", "0666"])
        .env("RUST_LOG", "info")
        .current_dir(scratch.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(scratch.path().join("remod.log")).unwrap());
    let mut remod = cmd.spawn().unwrap();
    let t0 = Instant::now();
    while !sock.exists() {
        assert!(t0.elapsed() < Duration::from_secs(30), "no socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_nginx, url) = start_nginx(&scratch, &sock, &data);
    let c = Client::new(&scratch, &url, &data);
    // Log in once; both commands below then share the cached session.
    c.ok(&["info"], None);
    c.ok(&["exec", "true"], None);
    // A command that ends within the grace time, and one that would not.
    let short = c
        .command(&["exec", "sh", "-c", "sleep 2; echo finished"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let long = c
        .command(&["exec", "sleep", "301.25"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !pgrep("sleep 301.25") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the long command did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let stopped_at = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(remod.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let short = wait_with_timeout(short, Duration::from_secs(20), "the short command");
    assert!(
        short.status.success() && text(&short.stdout).contains("finished"),
        "a running request was cut at shutdown: {} {}",
        text(&short.stdout),
        text(&short.stderr)
    );
    let status = loop {
        if let Some(s) = remod.try_wait().unwrap() {
            break s;
        }
        assert!(
            stopped_at.elapsed() < Duration::from_secs(20),
            "remod still running 20 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(scratch.path().join("remod.log")).unwrap();
    assert!(status.success(), "remod exited with {status}:\n{log}");
    // The long command was ended after the grace time, not before.
    assert!(stopped_at.elapsed() >= Duration::from_secs(4), "{log}");
    let _ = wait_with_timeout(long, Duration::from_secs(20), "the long command");
    assert!(!pgrep("sleep 301.25"), "a session's process outlived remod");
    assert!(!sock.exists(), "the socket file is left behind");
    assert!(log.contains("ended 1 session(s)"), "{log}");
}

fn pgrep(pattern: &str) -> bool {
    std::process::Command::new("pgrep")
        .args(["-f", pattern])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
