//! What a command inherits from remod, against the real binary: nothing
//! but 0, 1 and 2 — not another session's terminal, even where
//! `close_range` is missing (a seccomp filter makes it fail with `ENOSYS`,
//! as on Linux 5.4–5.8) and remod opens terminals for another session at
//! the same moment.

// Test harness: a failed unwrap is a failed test.

use crate::common::*;

use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Makes `close_range` fail with `ENOSYS` in the process and all its
/// children (a seccomp filter; `no_new_privs` first, as seccomp requires).
fn without_close_range() -> std::io::Result<()> {
    let nr = u32::try_from(libc::SYS_close_range).unwrap_or(u32::MAX);
    let filter = [
        // A = seccomp_data.nr
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        },
        // if A == close_range: next, else skip one
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: nr,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl calls with a valid filter program that outlives them.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The descriptors a command sees (`ls -l /proc/self/fd`, ls's own
/// directory handle left out), as lines.
fn seen_fds(s: &mut RawSession) -> Vec<String> {
    let (status, o) = s.request(
        "cmd",
        br#"{"sh":"ls -l /proc/self/fd | sed -n 's/.* \\([0-9]*\\) -> \\(.*\\)/\\1 \\2/p'"}"#,
    );
    assert_eq!(status, 200);
    let o = o.unwrap();
    let text = String::from_utf8_lossy(&o.data).into_owned();
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.ends_with("/fd"))
        .map(str::to_string)
        .collect();
    assert!(lines.len() >= 3, "no listing: {text} {}", o.result);
    lines
}

#[test]
fn a_command_inherits_no_other_sessions_terminal_without_close_range() {
    let scratch = Scratch::new("spawn-fds");
    let port = free_port();
    let dir = scratch.path().join("quick");
    let mut cmd = remod_http_command(&dir, port);
    cmd.env("RUST_LOG", "info").current_dir(scratch.path());
    // SAFETY: the hook only makes system calls (prctl), no allocation.
    unsafe { cmd.pre_exec(without_close_range) };
    let mut remod = Proc::spawn("remod", cmd, &scratch.path().join("remod.log"));
    remod.wait_port(port);
    let data = quick_data_dir(&dir);
    let url = format!("http://127.0.0.1:{port}");

    // The filter is in place: a command's own close_range fails.
    let mut s = RawSession::login(&url, &data);
    let (_, o) = s.request("cmd", br#"{"sh":"grep ^Seccomp: /proc/self/status"}"#);
    let o = o.unwrap();
    assert_eq!(String::from_utf8_lossy(&o.data).trim(), "Seccomp:\t2");

    // Another session opens terminals all the time, each held briefly.
    let stop = Arc::new(AtomicBool::new(false));
    let terms: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            let url = url.clone();
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut t = RawSession::login(&url, &quick_data_dir(&dir));
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (status, _) = t.request(
                        "icm",
                        br#"{"argv":["/bin/true"],"pty":{"rows":24,"cols":80},"wait_ms":1000}"#,
                    );
                    assert_eq!(status, 200);
                    n += 1;
                }
                n
            })
        })
        .collect();
    // One long-lived terminal too.
    let mut held = RawSession::login(&url, &data);
    let (status, _) = held.request(
        "icm",
        br#"{"argv":["/bin/sleep","60"],"pty":{"rows":24,"cols":80},"wait_ms":0}"#,
    );
    assert_eq!(status, 200);

    let mut leaks = Vec::new();
    for _ in 0..150 {
        let fds = seen_fds(&mut s);
        if fds.len() != 3 || !fds.iter().all(|l| l.starts_with(['0', '1', '2'])) {
            leaks.push(fds.join(", "));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let opened: usize = terms.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(opened > 20, "only {opened} terminals opened meanwhile");
    assert!(
        leaks.is_empty(),
        "{} of 150 commands inherited remod's descriptors, e.g. {:?}",
        leaks.len(),
        leaks.first()
    );
}
