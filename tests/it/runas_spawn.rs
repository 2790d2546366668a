//! A run-as account cannot read remod's memory through a child that is
//! still starting. From its uid switch to `execve` the child of a run-as
//! command runs as the account in remod's memory or, with
//! `fs.suid_dumpable` not 0, in a copy of it: the server key and every
//! live session's keys. At 1 the kernel leaves a process dumpable after
//! such a switch, so (before the fix) the account could stop the child
//! there (`SIGSTOP` is its to send) and read it through `/proc/PID/mem`
//! or `process_vm_readv`.
//!
//! The attack, against the real `remod`: a process of the account stops
//! every new process of its own as soon as it can, until one is remod's
//! child before `execve` (its name is still remod's thread's, not the
//! program's); the command's working directory is a chain of long
//! symlinks, so the child's `chdir` keeps that window open for
//! milliseconds. Then it tries to read the child's memory at an address
//! of remod's own executable (its ELF header), which the test reads as
//! root from remod's maps.

// Test harness: a failed unwrap is a failed test.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::account::{Account, SuidDumpable};
use common::*;

/// The account's side: stops remod's children, reports one caught before
/// `execve` and what it could read of it. Arguments: remod's pid, the
/// program's name (what a child is called once it has exec'ed), an
/// address in remod's memory (hex), seconds to try.
const ATTACKER_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static int slurp(const char *path, char *buf, size_t n) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -errno;
    ssize_t r = read(fd, buf, n - 1);
    int e = errno;
    close(fd);
    if (r < 0) return -e;
    buf[r] = 0;
    return (int)r;
}

static const char *field(const char *status, const char *key) {
    const char *p = strstr(status, key);
    return p ? p + strlen(key) : "";
}

int main(int argc, char **argv) {
    if (argc != 5) return 64;
    long remod = atol(argv[1]);
    const char *prog = argv[2];
    unsigned long addr = strtoul(argv[3], NULL, 16);
    time_t end = time(NULL) + atoi(argv[4]);
    long self = getpid();
    char buf[4096], path[64];
    while (time(NULL) < end) {
        if (slurp("/proc/sys/kernel/ns_last_pid", buf, sizeof buf) <= 0) return 65;
        long last = atol(buf);
        for (long p = last - 4; p <= last + 16; p++) {
            if (p <= 1 || p == self || kill(p, SIGSTOP) != 0) continue;
            snprintf(path, sizeof path, "/proc/%ld/status", p);
            int stopped = 0;
            for (int i = 0; i < 2000 && !stopped; i++) {
                if (slurp(path, buf, sizeof buf) <= 0) break;
                stopped = strncmp(field(buf, "State:\t"), "T", 1) == 0;
                if (!stopped) usleep(100);
            }
            char name[64] = "";
            sscanf(field(buf, "Name:\t"), "%63s", name);
            if (!stopped || atol(field(buf, "PPid:\t")) != remod || strcmp(name, prog) == 0) {
                kill(p, SIGCONT);
                continue;
            }
            char uids[128] = "";
            sscanf(field(buf, "Uid:\t"), "%127[^\n]", uids);
            for (char *t = uids; *t; t++) if (*t == '\t') *t = ',';
            struct stat st;
            snprintf(path, sizeof path, "/proc/%ld/environ", p);
            long owner = stat(path, &st) == 0 ? (long)st.st_uid : -1;
            snprintf(path, sizeof path, "/proc/%ld/mem", p);
            unsigned char got[4] = {0};
            int mem_err = 0, vm_err = 0;
            int fd = open(path, O_RDONLY);
            if (fd < 0) mem_err = errno;
            else if (pread(fd, got, 4, (off_t)addr) != 4) mem_err = errno ? errno : EIO;
            if (fd >= 0) close(fd);
            unsigned char got2[4] = {0};
            struct iovec local = {got2, 4}, remote = {(void *)addr, 4};
            if (process_vm_readv((pid_t)p, &local, 1, &remote, 1, 0) != 4) vm_err = errno;
            printf("caught pid=%ld name=%s uids=%s proc_owner=%ld mem=%d:%02x%02x%02x%02x vm=%d:%02x%02x%02x%02x\n",
                   p, name, uids, owner, mem_err, got[0], got[1], got[2], got[3],
                   vm_err, got2[0], got2[1], got2[2], got2[3]);
            fflush(stdout);
            kill(p, SIGCONT);
            return 0;
        }
    }
    printf("none\n");
    return 2;
}
"#;

/// The start of remod's executable in its memory: the first mapping of
/// `/proc/PID/exe`'s file at offset 0 (its ELF header).
fn exe_base(pid: u32) -> String {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    maps.lines()
        .find(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(2) == Some(&"00000000") && f.get(5).map(Path::new) == Some(exe.as_path())
        })
        .and_then(|l| l.split('-').next())
        .unwrap_or_else(|| panic!("no mapping of {} at offset 0 in:\n{maps}", exe.display()))
        .to_string()
}

/// A directory reached through 39 symlinks of ~4,000 bytes each
/// (`x/../` over and over): entering it walks some 60,000 path
/// components, a few milliseconds.
fn slow_dir(base: &Path) -> std::path::PathBuf {
    let d = base.join("chain");
    std::fs::create_dir_all(d.join("x")).unwrap();
    std::fs::create_dir_all(d.join("end")).unwrap();
    for p in [&d, &d.join("x"), &d.join("end")] {
        chmod(p, 0o755);
    }
    let hops = 39;
    for i in 0..hops {
        let next = if i + 1 == hops {
            "end".to_string()
        } else {
            format!("L{}", i + 1)
        };
        let target = format!("{}{next}", "x/../".repeat(800));
        std::os::unix::fs::symlink(target, d.join(format!("L{i}"))).unwrap();
    }
    d.join("L0")
}

/// With `fs.suid_dumpable = 1` (a forked copy of remod starts the
/// command), a process of the run-as account can stop the child before
/// `execve` but read none of its memory.
#[test]
fn the_run_as_account_cannot_read_a_starting_child_with_suid_dumpable_1() {
    attack_a_starting_child("1", "remom");
}

/// The same with `fs.suid_dumpable = 0`, the default, where the child
/// runs in remod's own memory until `execve`.
#[test]
fn the_run_as_account_cannot_read_a_starting_child_with_suid_dumpable_0() {
    attack_a_starting_child("0", "remon");
}

/// The attack with `fs.suid_dumpable` at `dumpable`, as a new account
/// named `prefix` and the test's process number.
fn attack_a_starting_child(dumpable: &str, prefix: &str) {
    let _dumpable = SuidDumpable::set(dumpable);
    let acct = Account::create_as(prefix);
    let scratch = Scratch::new("runas-spawn");
    let cwd = slow_dir(scratch.path());
    let (mut remod, url, data) = start_remod_http(&scratch);
    let pid = remod.pid();
    let c = std::sync::Arc::new(user_client(
        &scratch,
        &url,
        &data,
        "deployer",
        &["cmd", &format!("run-as:{}", acct.name)],
    ));
    let cwd_s = cwd.display().to_string();
    let ran = c.ok(
        &["exec", "--cwd", &cwd_s, "/bin/sh", "-c", "id -u; pwd -P"],
        None,
    );
    assert_eq!(
        ran.out(),
        format!(
            "{}\n{}\n",
            acct.uid,
            std::fs::canonicalize(scratch.path().join("chain/end"))
                .unwrap()
                .display()
        ),
        "the command itself runs as the account, in the directory"
    );

    let src = scratch.path().join("attacker.c");
    let bin = scratch.path().join("attacker");
    std::fs::write(&src, ATTACKER_C).unwrap();
    let cc = std::process::Command::new("cc")
        .arg("-O2")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("run cc (Debian package gcc; cargo needs it to link anyway)");
    assert!(cc.success(), "cc failed on the attacker");
    chmod(&bin, 0o755);

    let base = exe_base(pid);
    let attacker = acct
        .command(bin.to_str().unwrap())
        .args([&pid.to_string(), "sleep", &base, "60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Give it a moment to start spinning, then start commands until it
    // has caught one (each waits out its stop; the attacker resumes it).
    std::thread::sleep(Duration::from_millis(200));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runner = {
        let stop = stop.clone();
        let c = c.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 2000 {
                c.run(&["exec", "--cwd", &cwd_s, "sleep", "0"], None);
                n += 1;
            }
            n
        })
    };
    let out = wait_with_timeout(attacker, Duration::from_secs(90), "the attacker");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let commands = runner.join().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("after {commands} commands the attacker reported: {report}");
    let line = report
        .lines()
        .find(|l| l.starts_with("caught "))
        .unwrap_or_else(|| {
            panic!(
                "the attacker caught no child before execve in {commands} commands: {report} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let get = |k: &str| {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {line}"))
            .to_string()
    };
    // remod's ELF header, had either read got through.
    for k in ["mem=", "vm="] {
        let v = get(k);
        assert!(
            !v.ends_with("7f454c46"),
            "the account read remod's memory through a starting child ({k}): {line}"
        );
        let errno: i32 = v.split(':').next().unwrap().parse().unwrap();
        assert!(
            errno == libc::EACCES || errno == libc::EPERM,
            "{k}: expected EACCES or EPERM, got {errno}: {line}"
        );
    }
    // Why, in the kernel's terms: the child, all of whose uids are the
    // account's (it could not be stopped before), is not dumpable: the
    // files in its /proc directory are root's, where an account's own
    // process has them as its own.
    let u = acct.uid;
    assert_eq!(
        get("uids="),
        format!("{u},{u},{u},{u}"),
        "real, effective, saved, fs: {line}"
    );
    assert_eq!(get("proc_owner="), "0", "{line}");
    remod.assert_running();
    let ran = c.ok(&["exec", "--cwd", "/", "id", "-u"], None);
    assert_eq!(ran.out().trim(), acct.uid.to_string());
}
