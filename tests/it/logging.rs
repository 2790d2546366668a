//! Logging for a service: under systemd (JOURNAL_STREAM set) remod's lines
//! carry the journal's priority prefix and no timestamp of their own, and
//! `--audit-syslog` sends every audit row to a syslog socket as well.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn journald_lines_have_a_priority_and_no_second_timestamp() {
    let scratch = Scratch::new("journald");
    let port = free_port();
    let log = scratch.path().join("remod.log");
    let mut cmd = remod_http_command(&scratch.path().join("d"), port);
    cmd.env("JOURNAL_STREAM", "8:12345").env("RUST_LOG", "info");
    let mut p = Proc::spawn("remod", cmd, &log);
    p.wait_port(port);
    let data = quick_data_dir(&scratch.path().join("d"));
    let c = Client::new(&scratch, &format!("http://127.0.0.1:{port}"), &data);
    c.ok(&["exec", "/usr/bin/true"], None);
    let text = wait_log(&log, "auth ok", 1);
    // The first run's notes are plain stderr (eprintln), not log lines.
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("remod: ") && !l.starts_with("  "))
        .collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(
            l.starts_with("<6>") || l.starts_with("<4>") || l.starts_with("<3>"),
            "no priority prefix: {l:?}\n{text}"
        );
        assert!(!l.contains("[20"), "a timestamp of its own: {l:?}");
    }
    assert!(text.contains("<6>127.0.0.1 admin auth ok"), "{text}");
}

#[test]
fn audit_rows_also_go_to_syslog() {
    let scratch = Scratch::new("syslog");
    let sock_path = scratch.path().join("log.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = free_port();
    let mut cmd = remod_http_command(&scratch.path().join("d"), port);
    cmd.arg("--audit-syslog").arg(&sock_path);
    let mut p = Proc::spawn("remod", cmd, &scratch.path().join("remod.log"));
    p.wait_port(port);
    let data = quick_data_dir(&scratch.path().join("d"));
    let c = Client::new(&scratch, &format!("http://127.0.0.1:{port}"), &data);
    c.ok(&["exec", "/usr/bin/echo", "a=b \"quoted\""], None);
    let mut got = Vec::new();
    let t0 = Instant::now();
    while got.len() < 2 && t0.elapsed() < Duration::from_secs(10) {
        let mut buf = [0u8; 4096];
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let auth = got
        .iter()
        .find(|l| l.contains(" op=auth "))
        .unwrap_or_else(|| panic!("no auth row: {got:?}"));
    assert!(auth.starts_with("<86>remod["), "{auth}");
    assert!(auth.contains(" user=admin remote=127.0.0.1 "), "{auth}");
    let cmd = got
        .iter()
        .find(|l| l.contains(" op=cmd "))
        .unwrap_or_else(|| panic!("no cmd row: {got:?}"));
    assert!(
        cmd.ends_with(r#" summary="/usr/bin/echo 'a=b \"quoted\"'""#),
        "{cmd}"
    );
    assert!(cmd.contains(" exit=0 "), "{cmd}");
    // The audit database still has them.
    let out = run_ok(
        remod_command()
            .args(["audit", "--json", "--user-db"])
            .arg(&data.user_db),
    );
    assert!(text(&out.stdout).contains("\"op\":\"cmd\""));
}
