//! The real `remo` binary's interactive commands (`exec -i`, `tail`,
//! `shell`) against a real `remod serve --http`: binary-safe pipes, exit
//! codes, a tar pipeline, followed output latency (also through nginx and
//! Apache, with the e2e harness), remote processes ending with a local
//! Ctrl-C, and a PTY shell driven through tmux.

// Test harness: a failed unwrap is a failed test.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::common;
use crate::common::Tmux;

use common::{assert_code, free_port, text, HttpServer as Server};

fn start_server(data: &Path) -> Server {
    common::serve_http(data, free_port(), &data.with_extension("log"))
}

struct Env {
    tmp: tempfile::TempDir,
    server: Server,
}

impl Env {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["home", "run"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        let server = start_server(&tmp.path().join("data"));
        Env { tmp, server }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }
    fn key(&self) -> PathBuf {
        self.server.data.join("client/admin.key")
    }
    fn cmd(&self, args: &[&str]) -> Command {
        common::remo_in(self.tmp.path(), &self.key(), &self.server.url, args)
    }
    fn run_with_input(&self, args: &[&str], input: Vec<u8>) -> Output {
        common::output_with_input(self.cmd(args), input)
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut f = std::fs::File::open("/dev/urandom").unwrap();
    let mut v = vec![0u8; n];
    f.read_exact(&mut v).unwrap();
    v
}

#[test]
fn exec_i_cat_round_trips_5mb_of_binary_data() {
    let e = Env::new();
    let data = random_bytes(5 * 1024 * 1024);
    let t = Instant::now();
    let o = e.run_with_input(&["exec", "-i", "cat"], data.clone());
    let took = t.elapsed();
    assert_code(&o, 0);
    assert_eq!(o.stdout.len(), data.len(), "{}", text(&o.stderr));
    assert_eq!(Sha256::digest(&o.stdout), Sha256::digest(&data));
    eprintln!("exec -i cat: 5 MiB round trip in {took:?}");
}

#[test]
fn exec_i_exit_codes_and_streams() {
    let e = Env::new();
    let o = e.run_with_input(&["exec", "-i", "--sh", "read x; exit $x"], b"7\n".to_vec());
    assert_code(&o, 7);
    let o = e.run_with_input(
        &["exec", "-i", "--sh", "cat >&2; echo out; exit 3"],
        b"to stderr".to_vec(),
    );
    assert_code(&o, 3);
    assert_eq!(text(&o.stdout), "out\n");
    assert_eq!(text(&o.stderr), "to stderr");
    // Signal N → 128+N; empty stdin is fine.
    let o = e.run_with_input(&["exec", "-i", "--sh", "kill -9 $$"], vec![]);
    assert_code(&o, 137);
    // A missing program is an operation error (1), not a hang.
    let o = e.run_with_input(&["exec", "-i", "no-such-program-xyz"], vec![]);
    assert_code(&o, 1);
}

/// A process that writes far more than it reads fills its server-side output
/// buffer and stops reading stdin while a poll is still feeding it: the
/// client must drain it (no deadlock) and keep the output in order.
#[test]
fn exec_i_amplifying_process_neither_deadlocks_nor_reorders() {
    let e = Env::new();
    let input: String = (1..=20_000).map(|i| format!("{i}\n")).collect();
    let o = e.run_with_input(
        &[
            "exec",
            "-i",
            "awk",
            r#"{ for (i = 0; i < 10; i++) printf "%08d-%03d%87s\n", $1, i, "" }"#,
        ],
        input.into_bytes(),
    );
    assert_code(&o, 0);
    let out = text(&o.stdout);
    let keys: Vec<&str> = out.lines().map(|l| &l[..12]).collect();
    assert_eq!(keys.len(), 200_000);
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "output out of order");
}

#[test]
fn tar_pipeline_through_exec_i() {
    let e = Env::new();
    let src = e.path("src");
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    std::fs::write(src.join("a/b/big.bin"), random_bytes(3 * 1024 * 1024 + 17)).unwrap();
    std::fs::write(src.join("a/small.txt"), "hello\n").unwrap();
    std::fs::write(src.join("empty"), "").unwrap();
    let dst = e.path("dst");
    std::fs::create_dir_all(&dst).unwrap();
    let tar = Command::new("tar")
        .arg("c")
        .arg("-C")
        .arg(&src)
        .arg(".")
        .output()
        .unwrap();
    assert!(tar.status.success());
    let o = e.run_with_input(
        &["exec", "-i", "tar", "x", "-C", dst.to_str().unwrap()],
        tar.stdout,
    );
    assert_code(&o, 0);
    let diff = Command::new("diff")
        .arg("-r")
        .arg(&src)
        .arg(&dst)
        .output()
        .unwrap();
    assert!(diff.status.success(), "{}", text(&diff.stdout));
}

#[test]
fn tail_prints_the_last_lines() {
    let e = Env::new();
    let log = e.path("plain.log");
    let lines: String = (1..=20).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&log, lines).unwrap();
    let o = e
        .cmd(&["tail", "-n", "3", log.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(text(&o.stdout), "line 18\nline 19\nline 20\n");
    let o = e
        .cmd(&["tail", "-n", "3", e.path("missing.log").to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_code(&o, 1);
}

fn remote_tail_running(unique: &str) -> bool {
    Command::new("pgrep")
        .arg("-f")
        .arg(unique)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn tail_f_follows_within_a_second_and_ctrl_c_ends_the_remote_tail() {
    let e = Env::new();
    let unique = format!("follow-{}-{}.log", std::process::id(), free_port());
    let log = e.path(&unique);
    let cmd = e.cmd(&["tail", "-f", "-n", "1", log.to_str().unwrap()]);
    check_tail_f(cmd, &log, &unique, "remod --http");
}

/// `tail -f` through a front server of the e2e harness.
fn tail_f_through(front: &str) {
    use common::*;
    let scratch = Scratch::new(&format!("tail-{front}"));
    let data = init_data_dir(&scratch, "alice");
    let (mut remod, sock) = start_remod_fcgi(&scratch, &data);
    let (mut web, url) = match front {
        "nginx" => start_nginx(&scratch, &sock, &data),
        _ => start_apache(&scratch, ApacheFront::ProxyFcgi { sock: &sock }, &data),
    };
    let c = Client::new(&scratch, &url, &data);
    let unique = format!("follow-{front}-{}-{}.log", std::process::id(), free_port());
    let log = scratch.path().join(&unique);
    let cmd = c.command(&["tail", "-f", "-n", "1", log.to_str().unwrap()]);
    check_tail_f(cmd, &log, &unique, front);
    web.assert_running();
    remod.assert_running();
}

#[test]
fn tail_f_through_nginx() {
    tail_f_through("nginx");
}

#[test]
fn tail_f_through_apache_proxy_fcgi() {
    tail_f_through("apache");
}

/// Starts `cmd` (a `remo tail -f -n 1 LOG`), checks that appended lines
/// reach its stdout within 1 s (also after a 6 s idle period, when polls
/// have backed off), then that SIGINT makes it exit 130 and the remote
/// `tail` (found by the unique file name) is gone.
fn check_tail_f(mut cmd: Command, log: &Path, unique: &str, through: &str) {
    std::fs::write(log, "old 1\nold 2\n").unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<(String, Instant)>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((line, Instant::now())).is_err() {
                break;
            }
        }
    });
    let (first, _) = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(first, "old 2");
    assert!(remote_tail_running(unique));

    let mut worst = Duration::ZERO;
    for i in 0..5 {
        let idle = if i == 4 { 6000 } else { 300 };
        std::thread::sleep(Duration::from_millis(idle));
        let sent = Instant::now();
        let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
        writeln!(f, "new {i}").unwrap();
        drop(f);
        let (line, at) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(line, format!("new {i}"));
        let latency = at.duration_since(sent);
        eprintln!("tail -f through {through}: latency after {idle} ms idle: {latency:?}");
        worst = worst.max(latency);
    }
    assert!(worst < Duration::from_secs(1), "worst latency {worst:?}");

    // Ctrl-C: the client exits 130 and the remote tail is gone.
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "remo tail did not exit on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(130), "stderr: {err}");
    reader.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while remote_tail_running(unique) {
        assert!(Instant::now() < deadline, "remote tail still running");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn shell_in_tmux_has_a_terminal_and_passes_the_exit_code() {
    let tmux = Tmux::new();
    let e = Env::new();
    let exit_file = e.path("exit");
    let stty_file = e.path("stty");
    let script = e.path("run-shell.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             export HOME='{home}' XDG_RUNTIME_DIR='{run}'\n\
             unset XDG_CONFIG_HOME REMO_SERVER REMO_USER REMO_KEY REMO_PASSPHRASE\n\
             '{remo}' --user admin --key '{key}' '{url}' shell\n\
             echo REMO_EXIT=$? > '{exit}'\n\
             stty -a > '{stty}'\n",
            home = e.path("home").display(),
            run = e.path("run").display(),
            remo = env!("CARGO_BIN_EXE_remo"),
            key = e.key().display(),
            url = e.server.url,
            exit = exit_file.display(),
            stty = stty_file.display(),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    tmux.start(&script, 100, 30);

    tmux.run(&["send-keys", "-t", "remo", "tty; stty size", "Enter"]);
    tmux.wait_for("tty and size", |p| {
        p.contains("/dev/pts/") && p.contains("30 100")
    });

    // Ctrl-C reaches the remote foreground process, not remo.
    tmux.run(&["send-keys", "-t", "remo", "sleep 100", "Enter"]);
    std::thread::sleep(Duration::from_millis(500));
    tmux.run(&["send-keys", "-t", "remo", "C-c"]);
    tmux.run(&["send-keys", "-t", "remo", "echo still-$((40+2))", "Enter"]);
    tmux.wait_for("shell alive after Ctrl-C", |p| p.contains("still-42"));

    // A local size change reaches the remote terminal.
    let o = tmux.run(&["resize-window", "-t", "remo", "-x", "120", "-y", "40"]);
    if o.status.success() {
        std::thread::sleep(Duration::from_millis(300));
        tmux.run(&["send-keys", "-t", "remo", "clear; stty size", "Enter"]);
        tmux.wait_for("resized", |p| p.contains("40 120"));
    }

    tmux.run(&["send-keys", "-t", "remo", "exit 7", "Enter"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stty_file.exists() || std::fs::read_to_string(&stty_file).unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "remo shell did not end; pane:\n{}",
            tmux.pane()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        std::fs::read_to_string(&exit_file).unwrap().trim(),
        "REMO_EXIT=7"
    );
    let stty = std::fs::read_to_string(&stty_file).unwrap();
    let flags: Vec<&str> = stty.split_whitespace().collect();
    for want in ["icanon", "echo", "isig", "icrnl", "opost"] {
        assert!(
            flags.contains(&want),
            "terminal left without {want}: {stty}"
        );
    }
}
