//! The run-as account cannot signal (or trace) the real `remod` while a
//! file step runs with its rights. The step's thread is one of remod's
//! threads (`/proc/PID/task`); had it the account's *real* uid, any
//! process of the account could `kill(tid, SIGSTOP)` the whole root daemon
//! (or SIGKILL it, or ptrace it with `fs.suid_dumpable` 1). The attack
//! here: a user mapped to a system account lists a large directory in a
//! loop; the test catches a file-step thread in flight (its *effective*
//! uid is the account's), stops remod (as root, so the thread stays put),
//! and from a process of the account tries `kill(tid, 0)` on every remod
//! thread — permission-checked like any signal, but harmless. It runs with
//! `fs.suid_dumpable` 1, where each switch made remod dumpable and gave
//! the thread's `/proc` files, `oom_score_adj` among them, to the account.

// Test harness: a failed unwrap is a failed test.

use crate::common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::account::{Account, SuidDumpable};
use common::*;

/// Every thread of `pid` with the four uids of its `Uid:` line (real,
/// effective, saved, file system). Threads that end while being read are
/// left out.
fn threads(pid: u32) -> Vec<(u32, [u32; 4])> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let tid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        Some((tid, uids(pid, tid)?))
    })
    .collect()
}

fn uids(pid: u32, tid: u32) -> Option<[u32; 4]> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    let v: Vec<u32> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    v.try_into().ok()
}

/// Whether every thread of `pid` is stopped (`State: T`).
fn all_stopped(pid: u32) -> bool {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    dir.filter_map(|e| e.ok()).all(|e| {
        std::fs::read_to_string(e.path().join("status")).is_ok_and(|s| {
            s.lines()
                .any(|l| l.starts_with("State:") && l.contains("T ("))
        })
    })
}

/// Sends `sig` to the process `pid` as root (the test).
fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}

/// A directory of `n` names (hard links to one empty file): listing it
/// keeps a run-as file step busy for a while.
fn big_dir(d: &Path, n: usize) {
    std::fs::create_dir_all(d).unwrap();
    let first = d.join("f0000000");
    std::fs::write(&first, b"").unwrap();
    for i in 1..n {
        std::fs::hard_link(&first, d.join(format!("f{i:07}"))).unwrap();
    }
}

/// What one catch found, with remod stopped.
struct Caught {
    /// The file-step thread and its uids.
    tid: u32,
    uids: [u32; 4],
    /// `kill(tid, 0)` from the account for every remod thread.
    signals: Vec<(u32, [u32; 4], Result<(), String>)>,
    /// The owner of the thread's `oom_score_adj` (the process's).
    oom_owner: Option<u32>,
}

/// Waits (up to `limit`) for a thread of `pid` acting as `acct` (its
/// effective uid) other than those in `skip`, stops remod, and probes
/// every thread as `acct`.
fn catch(pid: u32, acct: &Account, skip: &[u32], limit: Duration) -> Option<Caught> {
    use nix::sys::signal::Signal;
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        let Some((tid, _)) = threads(pid)
            .into_iter()
            .find(|(t, u)| u[1] == acct.uid && !skip.contains(t))
        else {
            continue;
        };
        signal(pid, Signal::SIGSTOP);
        let stop0 = Instant::now();
        while !all_stopped(pid) && stop0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(all_stopped(pid), "remod did not stop");
        // The thread may have ended (or moved on) before the stop.
        let caught = uids(pid, tid).filter(|u| u[1] == acct.uid).map(|u| Caught {
            tid,
            uids: u,
            signals: threads(pid)
                .into_iter()
                .map(|(t, u)| (t, u, acct.kill0(t)))
                .collect(),
            oom_owner: std::fs::metadata(format!("/proc/{pid}/task/{tid}/oom_score_adj"))
                .ok()
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m)),
        });
        signal(pid, Signal::SIGCONT);
        if caught.is_some() {
            return caught;
        }
    }
    None
}

/// While run-as listings run, no remod thread has the account's real or
/// saved uid, and the account can signal none of remod's threads (the
/// file step's thread included): remod keeps answering.
#[test]
fn the_run_as_account_cannot_signal_remod_during_a_file_step() {
    let _dumpable = SuidDumpable::set("1");
    let acct = Account::create_as("remos");
    let scratch = Scratch::new("runas-threads");
    let (mut remod, url, data) = start_remod_http(&scratch);
    let pid = remod.pid();
    let big = scratch.path().join("big");
    big_dir(&big, 30_000);
    let c = Arc::new(user_client(
        &scratch,
        &url,
        &data,
        "deployer",
        &[
            &format!("run-as:{}", acct.name),
            &format!("files:read:{}", big.display()),
        ],
    ));
    let big_s = big.display().to_string();
    assert_eq!(c.ok(&["ls", &big_s], None).out().lines().count(), 30_000);

    // The probe works: the account may signal its own processes.
    let mut own = acct.sh("exec sleep 60").spawn().unwrap();
    assert_eq!(acct.kill0(own.id()), Ok(()), "the probe cannot signal");
    let _ = own.kill();
    let _ = own.wait();

    // Listings in a loop, on a few connections at once.
    let stop = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = (0..3)
        .map(|_| {
            let (c, stop, big_s) = (c.clone(), stop.clone(), big_s.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    c.run(&["ls", &big_s], None);
                }
            })
        })
        .collect();
    let mut seen = Vec::new();
    let t0 = Instant::now();
    while seen.len() < 3 && t0.elapsed() < Duration::from_secs(120) {
        let skip: Vec<u32> = seen.iter().map(|c: &Caught| c.tid).collect();
        if let Some(c) = catch(pid, &acct, &skip, Duration::from_secs(30)) {
            seen.push(c);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.join().unwrap();
    }
    remod.assert_running();
    assert!(
        !seen.is_empty(),
        "never caught a file step in flight (a remod thread with the account's effective uid {})",
        acct.uid
    );
    for c in &seen {
        eprintln!(
            "caught file-step thread {} (uids {:?}); probed {} remod threads",
            c.tid,
            c.uids,
            c.signals.len()
        );
        for (t, u, r) in &c.signals {
            let e = r.as_ref().err().unwrap_or_else(|| {
                panic!(
                    "the account {} may signal remod thread {t} (uids {u:?}; \
                     file-step thread {}): SIGSTOP would stop the root daemon",
                    acct.uid, c.tid
                )
            });
            assert!(e.contains("not permitted"), "thread {t}: {e}");
        }
        // Real and saved uid remod's own (root), effective and fs the account's.
        assert_eq!(
            c.uids,
            [0, acct.uid, 0, acct.uid],
            "file-step thread {} has uids {:?} (real, effective, saved, fs)",
            c.tid,
            c.uids
        );
        // With suid_dumpable 1 the switch made remod dumpable, and the
        // thread's /proc files the account's: it could raise remod's
        // oom_score_adj (make it the OOM killer's first choice).
        assert_eq!(
            c.oom_owner,
            Some(0),
            "file-step thread {}: its oom_score_adj belongs to uid {:?}, not root",
            c.tid,
            c.oom_owner
        );
    }
    // remod still answers, with the account's listing.
    remod.assert_running();
    assert_eq!(c.ok(&["ls", &big_s], None).out().lines().count(), 30_000);
}
