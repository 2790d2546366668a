//! `remod status` and `remod session end` against a running remod through
//! its control socket: what is live, ending a session with its process,
//! and a peer that is neither root nor remod's user refused even where the
//! socket's mode would let it in.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn remod_at(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    remod_command()
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn status_lists_sessions_and_processes_and_ends_them() {
    let scratch = Scratch::new("status");
    let (mut remod, url, data) = start_remod_http(&scratch);
    let c = Client::new(&scratch, &url, &data);
    c.ok(&["exec", "/usr/bin/true"], None);
    let mut bg = c.command(&["exec", "-i", "/usr/bin/sleep", "74.5"]);
    bg.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = bg.spawn().unwrap();
    let t0 = Instant::now();
    while sleepers("74.5") == 0 {
        assert!(t0.elapsed() < Duration::from_secs(20), "sleep never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = remod_at(&data.dir, &["status"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("sessions: 1"), "{out}");
    assert!(out.contains("interactive processes: 1"), "{out}");
    let o = remod_at(&data.dir, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let inst = &v[0];
    assert_eq!(inst["sessions"][0]["user"], "admin", "{v}");
    assert_eq!(inst["sessions"][0]["remote"], "127.0.0.1", "{v}");
    assert_eq!(inst["sessions"][0]["cert"], serde_json::Value::Null, "{v}");
    assert_eq!(inst["limits"]["max_sessions"], 16384, "{v}");
    assert!(
        out.contains("limits: 16384 sessions (256 per user)"),
        "{out}"
    );
    assert_eq!(inst["processes"][0]["user"], "admin", "{v}");
    let id = inst["sessions"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(inst["processes"][0]["session"], id.as_str(), "{v}");
    assert!(
        out.contains(&format!("    {id} ")),
        "the text names the session: {out}"
    );

    // Ending it ends its process, and the client's command.
    let o = remod_at(&data.dir, &["session", "end", &id]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("ended 1 session(s)"),
        "{}",
        text(&o.stdout)
    );
    let t0 = Instant::now();
    while sleepers("74.5") > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "the process outlived its session"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "remo exec -i did not end"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let o = remod_at(&data.dir, &["status"]);
    assert!(
        text(&o.stdout).contains("sessions: 0"),
        "{}",
        text(&o.stdout)
    );
    // By user; a user with no session is an error.
    c.ok(&["exec", "/usr/bin/true"], None);
    let o = remod_at(&data.dir, &["session", "end", "--user", "admin"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = remod_at(&data.dir, &["session", "end", "--user", "nobody"]);
    assert_eq!(o.status.code(), Some(1));
    remod.assert_running();
}

#[test]
fn the_control_socket_answers_root_and_remod_only() {
    let scratch = Scratch::new("status-peer");
    let (mut remod, _url, data) = start_remod_http(&scratch);
    let sock = data.dir.join("control.sock");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the socket's mode");
    // Open the way on purpose: the peer check must still refuse.
    chmod(&data.dir, 0o755);
    chmod(&sock, 0o666);
    let o = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_remod"))
        .args(["status", "--control"])
        .arg(&sock)
        .output()
        .expect("setpriv (Debian package util-linux)");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(!text(&o.stdout).contains("sessions"), "{}", text(&o.stdout));
    wait_log(
        &scratch.path().join("remod.log"),
        "control socket: refused a peer with uid 65534",
        1,
    );
    // Root still gets its answer.
    let o = remod_at(&data.dir, &["status"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    remod.assert_running();
}

/// Review of 2026-12-04: in a directory another user controls, the
/// control socket could be swapped (remod then chmod'ed whatever the
/// name pointed to, and `remod status` talked to the other user's
/// socket). Now remod refuses such a directory at start, and `remod
/// status` refuses a socket served by anyone but root or the caller.
#[test]
fn the_control_socket_lives_in_a_safe_directory_and_is_remods() {
    let scratch = Scratch::new("status-dir");
    let theirs = scratch.sub("theirs");
    chown_tree(&theirs, "nobody");
    let sock = theirs.join("control.sock");
    let port = free_port();
    let mut cmd = remod_http_command(&scratch.path().join("quick"), port);
    cmd.arg("--control").arg(&sock).env("RUST_LOG", "info");
    let log = scratch.path().join("remod.log");
    let mut remod = Proc::spawn("remod", cmd, &log);
    remod.wait_port(port);
    // The control socket is not essential: remod serves, says why it has
    // none, and makes nothing in that directory.
    wait_log(&log, "its directory is not safe", 1);
    remod.stop();
    assert!(!sock.exists(), "a socket was made there");

    // A socket served by nobody, in a directory root would use.
    let fake = scratch.sub("fake").join("control.sock");
    chmod(&scratch.path().join("fake"), 0o777);
    let mut server = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        // perl-base is essential in Debian: always there.
        .args(["perl", "-MIO::Socket::UNIX", "-e"])
        .arg(
            "$s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Local => $ARGV[0], Listen => 1) \
             or die \"listen: $!\"; $| = 1; print \"up\\n\"; $c = $s->accept; \
             $n = sysread($c, $b, 4096); print \"got $n\\n\";",
        )
        .arg(&fake)
        .stdout(Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux) and perl");
    let t0 = Instant::now();
    while !fake.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the fake never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = remod_command()
        .args(["status", "--control"])
        .arg(&fake)
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("not remod's; not asking it"),
        "{}",
        text(&o.stderr)
    );
    let _ = server.kill();
    let out = server.wait_with_output().unwrap();
    assert!(
        !text(&out.stdout).contains("got") || text(&out.stdout).contains("got 0"),
        "the request reached the fake: {}",
        text(&out.stdout)
    );
}
