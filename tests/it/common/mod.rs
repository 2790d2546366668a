//! Shared harness of the end-to-end tests (`tests/e2e_*.rs`, each with
//! `mod common;`).
//!
//! It builds nothing: the binaries are cargo's (`CARGO_BIN_EXE_*`). It runs
//! real front servers (nginx, Apache with mod_proxy_fcgi or mod_fcgid) with
//! configurations rendered from the very files shipped in `nginx/`,
//! `apache/` and `deploy/`, so those files are tested and cannot rot.
//!
//! Every test gets its own temporary directory and ports, so tests may run
//! in parallel. Every process started here is killed on drop (with its
//! process group); when the test is panicking, the servers' logs are printed
//! first to explain the failure. A missing nginx or Apache is a failure that
//! names the Debian package, never a skip.

// Test harness: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

pub mod account;
pub mod browser;
pub mod fcgi;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The server binary under test.
pub const REMOD: &str = env!("CARGO_BIN_EXE_remod");
/// The client binary under test.
pub const REMO: &str = env!("CARGO_BIN_EXE_remo");
/// The repository root (where `nginx/`, `apache/`, `deploy/` live).
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The URL prefix the shipped front-server files mount remod at.
pub const BASE: &str = "/remo";

/// Size of the big-file transfer test (through nginx, Apache proxy_fcgi and
/// the embedded HTTP front door).
pub const BIG_FILE: u64 = 200 << 20;

/// How long a server may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Temporary directories, ports, files

/// A temporary directory, removed on drop. Mode 0755 so the web servers'
/// unprivileged user (www-data) can reach sockets and files inside it.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A fresh directory whose name starts with `remo-e2e-NAME-`.
    pub fn new(name: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(&format!("remo-e2e-{name}-"))
            .tempdir()
            .expect("create a temporary directory");
        chmod(dir.path(), 0o755);
        Scratch { dir }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A sub-directory (created, mode 0755).
    pub fn sub(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        chmod(&p, 0o755);
        p
    }
}

/// Sets a file's mode.
pub fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// Gives a directory tree to a system user (e.g. www-data for mod_fcgid).
pub fn chown_tree(p: &Path, user: &str) {
    let u = nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no system user {user:?}"));
    let mut stack = vec![p.to_path_buf()];
    while let Some(p) = stack.pop() {
        std::os::unix::fs::lchown(&p, Some(u.uid.as_raw()), Some(u.gid.as_raw()))
            .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
        if p.is_dir() && !p.is_symlink() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
}

/// A TCP port on 127.0.0.1 that is free now, for a server the test starts
/// next. Picked at random below the kernel's ephemeral range
/// (`ip_local_port_range`, 32768–60999 by default), not with `bind(0)`:
/// a port from `bind(0)` is in that range and is released before the
/// server binds it, and in that window the outgoing connection of any test
/// running beside this one can be given it as its local port (CI saw
/// `Address already in use`). Below the range only another test's pick can
/// take it, and to keep that from happening each pick is reserved for a
/// few minutes, machine-wide (see [`reserve_port`]). Falls back to
/// `bind(0)` if the range leaves no room below.
pub fn free_port() -> u16 {
    use rand_core::RngCore;
    const LOW: u32 = 10_000;
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    if ephemeral_low > LOW + 1000 {
        for _ in 0..1000 {
            let port = LOW + rand_core::OsRng.next_u32() % (ephemeral_low - LOW);
            let port = u16::try_from(port).unwrap();
            if TcpListener::bind(("127.0.0.1", port)).is_ok() && reserve_port(port) {
                return port;
            }
        }
    }
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// Claims `port` for this test for [`PORT_HOLD`]: a file of that name in a
/// directory every test process shares. A port picked and checked free is
/// not bound until its server has started, which can take seconds (twenty
/// remods at once in the fleet tests); meanwhile another test's check
/// would find it free too, and one of the two servers would fail with
/// `Address already in use` (seen in CI and locally). False: another test
/// holds it.
fn reserve_port(port: u16) -> bool {
    let dir = std::env::temp_dir().join("remo-test-ports");
    let _ = fs::create_dir_all(&dir);
    let file = dir.join(port.to_string());
    let claim = || {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&file)
    };
    match claim() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let stale = fs::metadata(&file)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > PORT_HOLD);
            // Of two tests taking over a stale claim, one creates it anew.
            stale && fs::remove_file(&file).is_ok() && claim().is_ok()
        }
        // No shared directory: the check by bind alone, as before.
        Err(_) => true,
    }
}

/// How long a test's port stays claimed (longer than any test takes to
/// start its servers).
const PORT_HOLD: Duration = Duration::from_secs(300);

/// Writes `size` random bytes to `path`; returns their SHA-256 (hex).
pub fn random_file(path: &Path, size: u64) -> String {
    let mut src = fs::File::open("/dev/urandom").expect("open /dev/urandom");
    let mut out = std::io::BufWriter::with_capacity(
        1 << 20,
        fs::File::create(path).expect("create random file"),
    );
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        src.read_exact(&mut buf[..n]).expect("read /dev/urandom");
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).expect("write random file");
        left -= n as u64;
    }
    out.flush().unwrap();
    hex::encode(h.finalize())
}

/// SHA-256 of a file (hex).
pub fn sha256_file(path: &Path) -> String {
    let mut f = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

// ---------------------------------------------------------------------------
// Required system programs

/// Fails (never skips) when a program the test needs is missing, naming the
/// Debian package that provides it.
pub fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install the Debian package `{package}` \
         (apt-get install -y --no-install-recommends {package}; tests/run does this)"
    );
}

// ---------------------------------------------------------------------------
// Templates

/// Renders a shipped template (path relative to the repository root) by
/// replacing each `@NAME@` with its value. Panics if a placeholder is left
/// in a non-comment line, so a template gaining a placeholder the tests do
/// not know about fails loudly.
pub fn render(rel: &str, vars: &[(&str, &str)]) -> String {
    let path = Path::new(ROOT).join(rel);
    let mut text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    for (k, v) in vars {
        let key = format!("@{k}@");
        assert!(text.contains(&key), "{rel} has no placeholder {key}");
        text = text.replace(&key, v);
    }
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('#') {
            continue;
        }
        if let Some(i) = t.find('@') {
            let rest = &t[i + 1..];
            if let Some(j) = rest.find('@') {
                let name = &rest[..j];
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                    panic!("{rel}: placeholder @{name}@ not rendered in line: {line}");
                }
            }
        }
    }
    text
}

/// Renders a template into `dest`.
pub fn render_to(rel: &str, vars: &[(&str, &str)], dest: &Path) {
    fs::write(dest, render(rel, vars)).unwrap_or_else(|e| panic!("write {}: {e}", dest.display()));
}

// ---------------------------------------------------------------------------
// Data directories and the client's key

/// A server data directory with one user.
pub struct DataDir {
    /// The directory.
    pub dir: PathBuf,
    /// The server's private key.
    pub key_file: PathBuf,
    /// The user database.
    pub user_db: PathBuf,
    /// The user's name.
    pub user: String,
    /// The user's private key (unencrypted).
    pub client_key: PathBuf,
}

/// Runs a command to completion, panicking with its output when it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `remod init DIR/data`, `remo keygen --no-passphrase`, `remod user add
/// --allow admin`: the documented way of setting up a server.
pub fn init_data_dir(scratch: &Scratch, user: &str) -> DataDir {
    let dir = scratch.path().join("data");
    run_ok(Command::new(REMOD).arg("init").arg(&dir));
    let keys = scratch.sub("keys");
    let client_key = keys.join(format!("{user}.key"));
    run_ok(
        Command::new(REMO)
            .envs(client_env(scratch))
            .args(["keygen", "--no-passphrase", "-o"])
            .arg(&client_key),
    );
    let user_db = dir.join("users.db");
    run_ok(
        Command::new(REMOD)
            .args(["user", "--db"])
            .arg(&user_db)
            .args(["add", user, "--allow", "admin", "--key"])
            .arg(keys.join(format!("{user}.key.pub"))),
    );
    DataDir {
        key_file: dir.join("server.key"),
        user_db,
        dir,
        user: user.to_string(),
        client_key,
    }
}

// ---------------------------------------------------------------------------
// Processes

/// A child process (leader of its own process group), killed with its group
/// on drop. While the test panics, its logs are printed first.
pub struct Proc {
    name: String,
    child: Option<Child>,
    logs: Vec<PathBuf>,
}

impl Proc {
    /// Spawns `cmd` in a new process group with stdout and stderr appended
    /// to `log` (which is also printed on failure).
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        let f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        cmd.stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_string(),
            child: Some(child),
            logs: vec![log.to_path_buf()],
        }
    }

    /// Another log file to print on failure (e.g. nginx's error log).
    pub fn add_log(&mut self, p: PathBuf) {
        self.logs.push(p);
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Panics (with the logs) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(st)) = c.try_wait() {
                self.print_logs();
                panic!("{} exited early: {st}", self.name);
            }
        }
    }

    /// Prints the logs to stderr (captured by the test runner, shown on failure).
    pub fn print_logs(&self) {
        for l in &self.logs {
            let text = fs::read_to_string(l).unwrap_or_else(|e| format!("(cannot read: {e})"));
            let tail: Vec<&str> = text.lines().collect();
            let from = tail.len().saturating_sub(200);
            eprintln!(
                "----- {} log {} (last {} lines) -----",
                self.name,
                l.display(),
                tail.len() - from
            );
            for line in &tail[from..] {
                eprintln!("{line}");
            }
        }
        eprintln!("----- end of {} logs -----", self.name);
    }

    /// Waits until `127.0.0.1:port` accepts connections, or panics with the logs.
    pub fn wait_port(&mut self, port: u16) {
        let start = Instant::now();
        while start.elapsed() < START_TIMEOUT {
            self.assert_running();
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.print_logs();
        panic!(
            "{} did not listen on 127.0.0.1:{port} within {START_TIMEOUT:?}",
            self.name
        );
    }

    /// Waits until a unix socket accepts connections, or panics with the logs.
    pub fn wait_unix(&mut self, path: &Path) {
        let start = Instant::now();
        while start.elapsed() < START_TIMEOUT {
            self.assert_running();
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.print_logs();
        panic!(
            "{} did not listen on {} within {START_TIMEOUT:?}",
            self.name,
            path.display()
        );
    }

    /// Stops the process group: SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = nix::unistd::Pid::from_raw(-(child.id() as i32));
        let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left of the group (workers, spawned remod, commands).
        let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        self.stop();
    }
}

/// `remod serve --fcgi unix:SOCK --socket-mode 0666` with the data
/// directory's key and database as defaults (REMO_* params from the front
/// server override them per request).
pub fn start_remod_fcgi(scratch: &Scratch, data: &DataDir) -> (Proc, PathBuf) {
    start_remod_fcgi_with(scratch, data, &[])
}

/// The same, with more `remod serve` flags (limits, timeouts).
pub fn start_remod_fcgi_with(scratch: &Scratch, data: &DataDir, extra: &[&str]) -> (Proc, PathBuf) {
    let run = scratch.sub("run");
    let sock = run.join("remod.sock");
    let mut cmd = Command::new(REMOD);
    cmd.arg("serve")
        .args(extra)
        .arg("--fcgi")
        .arg(format!("unix:{}", sock.display()))
        .args(["--socket-mode", "0666"])
        .env("RUST_LOG", "info")
        .env_remove("REMO_KEY_FILE")
        .env_remove("REMO_USER_DB")
        .env_remove("REMO_CONFIG")
        .env_remove("REMO_BASE")
        .env_remove("REMO_SESSION_TIMEOUT")
        .current_dir(scratch.path());
    let _ = data;
    let mut p = Proc::spawn("remod", cmd, &scratch.path().join("remod.log"));
    p.wait_unix(&sock);
    (p, sock)
}

/// A `remod` command with none of the caller's `REMO_*` configuration
/// leaking in.
pub fn remod_command() -> Command {
    let mut cmd = Command::new(REMOD);
    for v in [
        "REMO_KEY_FILE",
        "REMO_USER_DB",
        "REMO_AUDIT_DB",
        "REMO_CONFIG",
        "REMO_BASE",
        "REMO_SESSION_TIMEOUT",
        "REMO_CA_KEYS",
        "REMO_REVOKED",
        "REMO_SERVER_NAME",
        "REMO_CONTROL",
    ] {
        cmd.env_remove(v);
    }
    cmd
}

/// The command `remod serve --http 127.0.0.1:PORT --dir DIR`.
pub fn remod_http_command(dir: &Path, port: u16) -> Command {
    let mut cmd = remod_command();
    cmd.args(["serve", "--http"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--dir")
        .arg(dir);
    cmd
}

/// A `remod serve --http` child for the client tests: a plain child (its
/// stderr in a log file the test may read), killed on drop.
pub struct HttpServer {
    pub child: Child,
    pub data: PathBuf,
    pub url: String,
    pub port: u16,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts remod on 127.0.0.1:`port` with data directory `data` (created
/// with the user `admin` on first run) and waits until it accepts.
pub fn serve_http(data: &Path, port: u16, log: &Path) -> HttpServer {
    let log = fs::File::create(log).unwrap();
    let child = remod_http_command(data, port)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_tcp(port);
    HttpServer {
        child,
        data: data.to_path_buf(),
        url: format!("http://127.0.0.1:{port}"),
        port,
    }
}

/// Waits (up to 60 s) until something accepts on 127.0.0.1:`port`.
pub fn wait_tcp(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing accepts on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The data directory `remod serve --dir DIR` makes on its first run, with
/// its user `admin`.
pub fn quick_data_dir(dir: &Path) -> DataDir {
    DataDir {
        key_file: dir.join("server.key"),
        user_db: dir.join("users.db"),
        client_key: dir.join("client").join("admin.key"),
        user: "admin".into(),
        dir: dir.to_path_buf(),
    }
}

/// `remod serve --http 127.0.0.1:PORT --dir DIR` (first run creates DIR and
/// the user `admin`). Returns the process, the base URL and the data dir.
pub fn start_remod_http(scratch: &Scratch) -> (Proc, String, DataDir) {
    let port = free_port();
    let dir = scratch.path().join("quick");
    let mut cmd = remod_http_command(&dir, port);
    cmd.env("RUST_LOG", "info").current_dir(scratch.path());
    let mut p = Proc::spawn("remod", cmd, &scratch.path().join("remod.log"));
    p.wait_port(port);
    let data = quick_data_dir(&dir);
    assert!(
        data.client_key.exists(),
        "first run did not create {}",
        data.client_key.display()
    );
    (p, format!("http://127.0.0.1:{port}"), data)
}

/// A real nginx in the foreground, with its own prefix under the scratch
/// directory, serving the rendered `nginx/remo.conf` on 127.0.0.1:PORT.
/// Returns the process and the base URL (`http://127.0.0.1:PORT/remo`).
pub fn start_nginx(scratch: &Scratch, sock: &Path, data: &DataDir) -> (Proc, String) {
    nginx_in(scratch, "nginx", sock, data, free_port(), None)
}

/// The same over HTTPS with a certificate and its key (PEM), on `port`, in
/// the scratch sub-directory `name`. Returns the process and the base URL
/// (`https://127.0.0.1:PORT/remo`).
pub fn start_nginx_tls(
    scratch: &Scratch,
    name: &str,
    sock: &Path,
    data: &DataDir,
    port: u16,
    cert: &Path,
    key: &Path,
) -> (Proc, String) {
    nginx_in(scratch, name, sock, data, port, Some((cert, key)))
}

fn nginx_in(
    scratch: &Scratch,
    name: &str,
    sock: &Path,
    data: &DataDir,
    port: u16,
    tls: Option<(&Path, &Path)>,
) -> (Proc, String) {
    require("/etc/nginx/fastcgi_params", "nginx-light");
    let dir = scratch.sub(name);
    fs::copy("/etc/nginx/fastcgi_params", dir.join("fastcgi_params")).unwrap();
    render_to(
        "nginx/remo.conf",
        &[
            ("SOCKET", &sock.display().to_string()),
            ("KEY_FILE", &data.key_file.display().to_string()),
            ("USER_DB", &data.user_db.display().to_string()),
        ],
        &dir.join("remo.conf"),
    );
    let (ssl, scheme) = match tls {
        Some((cert, key)) => (
            format!(
                " ssl;\n    ssl_certificate {};\n    ssl_certificate_key {}",
                cert.display(),
                key.display()
            ),
            "https",
        ),
        None => (String::new(), "http"),
    };
    let server = format!(
        "server_name localhost;\ninclude {}/remo.conf;\n",
        dir.display()
    );
    let p = run_nginx_on(&dir, "", &server, port, &ssl);
    (p, format!("{scheme}://127.0.0.1:{port}{BASE}"))
}

/// A real nginx in the foreground with its prefix, logs and temporary
/// directories in `dir`: `http_extra` goes into the `http` block, and
/// `server_body` into a `server` listening on a free 127.0.0.1 port.
/// Returns the process (stopped with its group on drop, its logs printed
/// on failure) and the port, once it accepts connections.
pub fn run_nginx(dir: &Path, http_extra: &str, server_body: &str) -> (Proc, u16) {
    let port = free_port();
    (run_nginx_on(dir, http_extra, server_body, port, ""), port)
}

/// [`run_nginx`] on `port`, with `listen_extra` after the listen address
/// (` ssl;` and the certificate lines for HTTPS).
fn run_nginx_on(
    dir: &Path,
    http_extra: &str,
    server_body: &str,
    port: u16,
    listen_extra: &str,
) -> Proc {
    require("/usr/sbin/nginx", "nginx-light");
    for t in ["body", "fastcgi", "proxy", "uwsgi", "scgi"] {
        fs::create_dir_all(dir.join("tmp").join(t)).unwrap();
    }
    let d = dir.display();
    let conf = format!(
        "user root;\n\
         worker_processes 1;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
         \x20 access_log {d}/access.log;\n\
         \x20 client_body_temp_path {d}/tmp/body;\n\
         \x20 fastcgi_temp_path {d}/tmp/fastcgi;\n\
         \x20 proxy_temp_path {d}/tmp/proxy;\n\
         \x20 uwsgi_temp_path {d}/tmp/uwsgi;\n\
         \x20 scgi_temp_path {d}/tmp/scgi;\n\
         {http_extra}\n\
         \x20 server {{\n\
         \x20   listen 127.0.0.1:{port}{listen_extra};\n\
         {server_body}\n\
         \x20 }}\n\
         }}\n"
    );
    fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut cmd = Command::new("/usr/sbin/nginx");
    cmd.arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off;"]);
    let mut p = Proc::spawn("nginx", cmd, &dir.join("stderr.log"));
    p.add_log(dir.join("error.log"));
    p.wait_port(port);
    p
}

/// Which Apache front to run.
pub enum ApacheFront<'a> {
    /// mod_proxy_fcgi to remod's socket (`apache/remo-proxy-fcgi.conf`).
    ProxyFcgi {
        /// remod's socket.
        sock: &'a Path,
    },
    /// mod_fcgid spawning remod on fd 0 (`apache/remo-fcgid.conf` and the
    /// `apache/remod.fcgi` wrapper).
    Fcgid,
}

/// A real Apache in the foreground with a minimal configuration under the
/// scratch directory (explicit modules, its own pid, logs, runtime dir),
/// including a rendered shipped file. Returns the process and the base URL.
pub fn start_apache(scratch: &Scratch, front: ApacheFront, data: &DataDir) -> (Proc, String) {
    start_apache_with(scratch, front, data, "", "")
}

/// The same, with extra directives: `server` at server level (before the
/// virtual host), `vhost` inside it after the shipped snippet. Debian's
/// mod_reqtimeout is loaded when either names `RequestReadTimeout`.
pub fn start_apache_with(
    scratch: &Scratch,
    front: ApacheFront,
    data: &DataDir,
    server: &str,
    vhost: &str,
) -> (Proc, String) {
    require("/usr/sbin/apache2", "apache2");
    const MODS: &str = "/usr/lib/apache2/modules";
    let dir = scratch.sub("apache");
    let run = scratch.sub("apache/run");
    let docs = scratch.sub("apache/htdocs");
    let mut modules = vec!["mpm_event", "authz_core", "env", "setenvif", "alias"];
    if format!("{server}{vhost}").contains("RequestReadTimeout") {
        modules.push("reqtimeout");
    }
    let snippet = dir.join("remo.conf");
    let key = data.key_file.display().to_string();
    let db = data.user_db.display().to_string();
    let mut extra = String::new();
    match front {
        ApacheFront::ProxyFcgi { sock } => {
            modules.extend(["proxy", "proxy_fcgi"]);
            render_to(
                "apache/remo-proxy-fcgi.conf",
                &[
                    ("SOCKET", &sock.display().to_string()),
                    ("KEY_FILE", &key),
                    ("USER_DB", &db),
                ],
                &snippet,
            );
        }
        ApacheFront::Fcgid => {
            require(&format!("{MODS}/mod_fcgid.so"), "libapache2-mod-fcgid");
            modules.push("fcgid");
            let wrapper = dir.join("remod.fcgi");
            render_to("apache/remod.fcgi", &[("REMOD", REMOD)], &wrapper);
            chmod(&wrapper, 0o755);
            render_to(
                "apache/remo-fcgid.conf",
                &[
                    ("WRAPPER", &wrapper.display().to_string()),
                    ("KEY_FILE", &key),
                    ("USER_DB", &db),
                ],
                &snippet,
            );
            let ipc = scratch.sub("apache/fcgid");
            chown_tree(&ipc, "www-data");
            extra = format!(
                "FcgidIPCDir {}\nFcgidProcessTableFile {}/fcgid_shm\n",
                ipc.display(),
                run.display()
            );
        }
    }
    for m in &modules {
        require(&format!("{MODS}/mod_{m}.so"), "apache2");
    }
    let port = free_port();
    let d = dir.display();
    let mut conf = String::new();
    for m in &modules {
        conf.push_str(&format!("LoadModule {m}_module {MODS}/mod_{m}.so\n"));
    }
    conf.push_str(&format!(
        "ServerRoot {d}\n\
         ServerName localhost\n\
         Listen 127.0.0.1:{port}\n\
         PidFile {d}/apache2.pid\n\
         ErrorLog {d}/error.log\n\
         LogLevel info\n\
         DefaultRuntimeDir {r}\n\
         Mutex file:{r} default\n\
         User www-data\n\
         Group www-data\n\
         DocumentRoot {docs}\n\
         Timeout 600\n\
         {extra}\
         {server}\n\
         <VirtualHost 127.0.0.1:{port}>\n\
         \x20 ServerName localhost\n\
         \x20 Include {snippet}\n\
         \x20 {vhost}\n\
         </VirtualHost>\n",
        r = run.display(),
        docs = docs.display(),
        snippet = snippet.display(),
    ));
    let conf_path = dir.join("apache2.conf");
    fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new("/usr/sbin/apache2");
    cmd.arg("-DFOREGROUND")
        .arg("-f")
        .arg(&conf_path)
        .env("APACHE_RUN_DIR", &run)
        .env("APACHE_LOCK_DIR", &run)
        .env("APACHE_LOG_DIR", &dir);
    let mut p = Proc::spawn("apache2", cmd, &dir.join("stderr.log"));
    p.add_log(dir.join("error.log"));
    p.wait_port(port);
    (p, format!("http://127.0.0.1:{port}{BASE}"))
}

// ---------------------------------------------------------------------------
// The client

/// Environment for the client: HOME and XDG directories inside the scratch
/// directory, so tests never touch the real home.
pub fn client_env(scratch: &Scratch) -> Vec<(String, PathBuf)> {
    let home = scratch.path().join("home");
    let xdg_runtime = home.join("run");
    for d in [
        &home,
        &home.join(".config"),
        &home.join(".cache"),
        &xdg_runtime,
    ] {
        fs::create_dir_all(d).unwrap();
    }
    chmod(&xdg_runtime, 0o700);
    vec![
        ("HOME".into(), home.clone()),
        ("XDG_CONFIG_HOME".into(), home.join(".config")),
        ("XDG_CACHE_HOME".into(), home.join(".cache")),
        ("XDG_DATA_HOME".into(), home.join(".local/share")),
        ("XDG_STATE_HOME".into(), home.join(".local/state")),
        ("XDG_RUNTIME_DIR".into(), xdg_runtime),
    ]
}

/// The `remo` client pointed at one server as one user.
pub struct Client {
    /// Base URL, e.g. `http://127.0.0.1:PORT/remo`.
    pub url: String,
    /// User name.
    pub user: String,
    /// Private key file.
    pub key: PathBuf,
    env: Vec<(String, PathBuf)>,
}

/// What a finished client command produced.
#[derive(Debug)]
pub struct Ran {
    /// Exit code (None if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: String,
}

impl Ran {
    /// Standard output as text.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

impl Client {
    /// A client for `url` as the data directory's user.
    pub fn new(scratch: &Scratch, url: &str, data: &DataDir) -> Client {
        Client {
            url: url.to_string(),
            user: data.user.clone(),
            key: data.client_key.clone(),
            env: client_env(scratch),
        }
    }

    /// Sets an environment variable of every later command (e.g.
    /// `REMO_FRAMING`).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), PathBuf::from(value)));
    }

    /// `remo --server URL --user NAME --key FILE ARGS…`, ready to spawn.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(REMO);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LANG", "C.UTF-8")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("--server")
            .arg(&self.url)
            .arg("--user")
            .arg(&self.user)
            .arg("--key")
            .arg(&self.key)
            .args(args);
        c
    }

    /// Runs the client to completion with `stdin` (none: /dev/null).
    pub fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Ran {
        let mut c = self.command(args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = c.spawn().expect("spawn remo");
        let writer = stdin.map(|data| {
            let mut w = child.stdin.take().unwrap();
            let data = data.to_vec();
            std::thread::spawn(move || {
                let _ = w.write_all(&data);
            })
        });
        let out = wait_with_timeout(
            child,
            Duration::from_secs(600),
            &format!("remo {}", args.join(" ")),
        );
        if let Some(w) = writer {
            let _ = w.join();
        }
        Ran {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs the client and asserts it exits 0; returns its output.
    pub fn ok(&self, args: &[&str], stdin: Option<&[u8]>) -> Ran {
        let r = self.run(args, stdin);
        assert_eq!(
            r.code,
            Some(0),
            "remo {} failed:\nstdout: {}\nstderr: {}",
            args.join(" "),
            r.out(),
            r.stderr
        );
        r
    }
}

/// `remo --user admin --key KEY URL ARGS…` with HOME and XDG_RUNTIME_DIR
/// under `root` (made if missing), run in `root`, and none of the caller's
/// REMO_* or XDG_CONFIG_HOME settings: what a fresh admin would run.
pub fn remo_in(root: &Path, key: &Path, url: &str, args: &[&str]) -> Command {
    let (home, run) = (root.join("home"), root.join("run"));
    for d in [&home, &run] {
        fs::create_dir_all(d).unwrap();
    }
    let mut c = Command::new(REMO);
    c.env("HOME", home)
        .env("XDG_RUNTIME_DIR", run)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("REMO_SERVER")
        .env_remove("REMO_USER")
        .env_remove("REMO_KEY")
        .env_remove("REMO_PASSPHRASE")
        .arg("--user")
        .arg("admin")
        .arg("--key")
        .arg(key)
        .arg(url)
        .args(args)
        .current_dir(root);
    c
}

/// Runs `cmd` with `input` on its stdin and collects its output. The input
/// is written from a thread, so a child that writes a lot before it has
/// read everything cannot deadlock the test.
pub fn output_with_input(mut cmd: Command, input: Vec<u8>) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// A child's output as text, for assertions and their messages.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts a child's exit code, showing both of its streams if it differs.
#[track_caller]
pub fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        text(&o.stdout),
        text(&o.stderr)
    );
}

/// Waits for a child, killing it after `limit` (a hung client must fail the
/// test, not hang it).
pub fn wait_with_timeout(child: Child, limit: Duration, what: &str) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(r) => r.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("{what}: still running after {limit:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// The scenarios every front door must pass

/// Login (`info` pins the key, then a command), exit codes, stderr kept
/// apart from stdout, stdin forwarded.
pub fn check_basics(c: &Client, data: &DataDir) {
    let info = c.ok(&["info"], None);
    let fp = server_fingerprint(data);
    assert!(
        info.out().contains(&fp) || info.stderr.contains(&fp),
        "`remo info` does not show the server fingerprint {fp}:\nstdout: {}\nstderr: {}",
        info.out(),
        info.stderr
    );

    let r = c.ok(&["exec", "echo", "hello", "world"], None);
    assert_eq!(r.out(), "hello world\n");

    let r = c.run(&["exec", "--sh", "echo out; echo err >&2; exit 3"], None);
    assert_eq!(
        r.code,
        Some(3),
        "exit code not passed on; stderr: {}",
        r.stderr
    );
    assert_eq!(r.out(), "out\n", "stdout must hold only stdout");
    assert!(r.stderr.contains("err\n"), "stderr lost: {:?}", r.stderr);
    assert!(
        !r.stderr.contains("out"),
        "stdout leaked into stderr: {:?}",
        r.stderr
    );

    let r = c.run(&["exec", "false"], None);
    assert_eq!(r.code, Some(1), "`false` must exit 1; stderr: {}", r.stderr);

    let r = c.ok(&["exec", "cat"], Some(b"a\nb\n"));
    assert_eq!(r.out(), "a\nb\n", "stdin not forwarded");

    let r = c.ok(&["exec", "wc", "-l"], Some(b"1\n2\n3\n"));
    assert_eq!(r.out().trim(), "3");
}

/// A command's first line must reach the client well before it exits.
pub fn check_streaming(c: &Client) {
    let mut cmd = c.command(&["exec", "--sh", "echo first; sleep 3; echo second"]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn remo");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            match r.read_line(&mut l) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    lines.push((l, start.elapsed()));
                }
            }
        }
        let _ = tx.send(lines);
    });
    let out = wait_with_timeout(child, Duration::from_secs(120), "remo exec (streaming)");
    let ended = start.elapsed();
    let lines = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("stdout reader");
    assert!(
        out.status.success(),
        "streamed command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let texts: Vec<&str> = lines.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(texts, ["first\n", "second\n"]);
    let first = lines[0].1;
    assert!(
        first + Duration::from_millis(1500) < ended,
        "first line arrived at {first:?}, the command ended at {ended:?}: output is not streamed"
    );
}

/// put then get of a random file of `size` bytes, compared by SHA-256, in
/// the directory `remote_dir` (on this machine, seen by the server).
pub fn check_big_file(c: &Client, scratch: &Scratch, remote_dir: &Path, size: u64) {
    let local = scratch.path().join("big.bin");
    let back = scratch.path().join("big.back");
    let remote = remote_dir.join("big.remote");
    let sum = random_file(&local, size);
    let t = Instant::now();
    c.ok(
        &["put", local.to_str().unwrap(), remote.to_str().unwrap()],
        None,
    );
    let put_time = t.elapsed();
    assert_eq!(
        fs::metadata(&remote).map(|m| m.len()).ok(),
        Some(size),
        "uploaded size"
    );
    assert_eq!(sha256_file(&remote), sum, "uploaded content differs");
    let t = Instant::now();
    c.ok(
        &["get", remote.to_str().unwrap(), back.to_str().unwrap()],
        None,
    );
    let get_time = t.elapsed();
    assert_eq!(sha256_file(&back), sum, "downloaded content differs");
    eprintln!("{size} bytes: put {put_time:?}, get {get_time:?}");
    for p in [&local, &back, &remote] {
        let _ = fs::remove_file(p);
    }
}

/// The protocol itself through this front door, without the `remo`
/// client: discovery, handshake, a command, logout, and then the old
/// session refused (401) — which needs the session id and keys that a
/// client throws away at logout.
pub fn check_raw_session(url: &str, data: &DataDir) {
    let mut s = RawSession::login(url, data);
    let (status, res) = s.request(
        "cmd",
        br#"{"argv":["sh","-c","echo raw; echo oops >&2; exit 4"]}"#,
    );
    assert_eq!(status, 200, "raw cmd before logout");
    let res = res.expect("sealed response");
    assert_eq!(res.data, b"raw\n");
    assert_eq!(res.stderr, b"oops\n");
    assert!(res.result.contains(r#""exit":4"#), "result: {}", res.result);
    let (status, res) = s.request("logout", b"{}");
    assert_eq!(status, 200, "raw logout");
    let res = res.expect("sealed logout response");
    assert!(
        res.result.contains(r#""ok":true"#),
        "logout result: {}",
        res.result
    );
    let (status, _) = s.request("cmd", br#"{"argv":["true"]}"#);
    assert_eq!(status, 401, "a logged-out session must be refused with 401");
}

/// `remo logout` succeeds, and the client then logs in afresh.
pub fn check_logout(c: &Client) {
    c.ok(&["exec", "true"], None);
    c.ok(&["logout"], None);
    let r = c.ok(&["exec", "echo", "again"], None);
    assert_eq!(r.out(), "again\n");
}

/// A sealed response, opened.
#[derive(Debug)]
pub struct Opened {
    /// Concatenated data/stdout records.
    pub data: Vec<u8>,
    /// Concatenated stderr records.
    pub stderr: Vec<u8>,
    /// The final JSON result, as text.
    pub result: String,
}

/// A remo/1 session spoken directly with the library's protocol code and
/// curl as the HTTP client, independent of the `remo` client: it keeps the
/// session id and keys, so tests can check what the server does with a
/// session after logout.
pub struct RawSession {
    url: String,
    sid: String,
    c2s: remo::proto::record::RecordKey,
    s2c: remo::proto::record::RecordKey,
    r: u64,
}

/// `curl` with a body from stdin; returns (status, body).
pub fn curl(method: &str, url: &str, headers: &[String], body: Option<&[u8]>) -> (u16, Vec<u8>) {
    require("/usr/bin/curl", "curl");
    let mut c = Command::new("/usr/bin/curl");
    c.args([
        "-sS",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
        "--max-time",
        "120",
    ]);
    for h in headers {
        c.arg("-H").arg(h);
    }
    if body.is_some() {
        c.args(["--data-binary", "@-"]);
    }
    c.arg(url).stdout(Stdio::piped()).stderr(Stdio::piped());
    c.stdin(if body.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = c.spawn().expect("spawn curl");
    if let Some(b) = body {
        child.stdin.take().unwrap().write_all(b).unwrap();
    }
    let out = wait_with_timeout(child, Duration::from_secs(180), "curl");
    assert!(
        out.status.success(),
        "curl {method} {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut body = out.stdout;
    let nl = body
        .iter()
        .rposition(|&b| b == b'\n')
        .expect("curl status line");
    let status: u16 = String::from_utf8_lossy(&body[nl + 1..])
        .trim()
        .parse()
        .expect("curl status");
    body.truncate(nl);
    (status, body)
}

impl RawSession {
    /// `GET {url}/info`, then the handshake of PROTOCOL.md §3 with the user's key.
    pub fn login(url: &str, data: &DataDir) -> RawSession {
        use remo::proto::handshake::{AuthResponse, ClientHandshake};
        use remo::proto::identity::PublicKey;
        let (status, info) = curl("GET", &format!("{url}/info"), &[], None);
        assert_eq!(status, 200, "GET /info: {}", String::from_utf8_lossy(&info));
        let info: serde_json::Value = serde_json::from_slice(&info).expect("/info JSON");
        let server_key =
            PublicKey::from_b64(info["key"].as_str().expect("/info key")).expect("server key");
        assert_eq!(
            server_key.fingerprint(),
            server_fingerprint(data),
            "/info key is not the server's"
        );
        let identity = remo::keyfile::read_private_key(&data.client_key, None).expect("client key");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let (hs, req) = ClientHandshake::start(&data.user, &identity, now);
        let (status, body) = curl(
            "POST",
            &format!("{url}/auth"),
            &["Content-Type: application/json".into()],
            Some(&serde_json::to_vec(&req).unwrap()),
        );
        assert_eq!(
            status,
            200,
            "POST /auth: {}",
            String::from_utf8_lossy(&body)
        );
        let resp: AuthResponse = serde_json::from_slice(&body).expect("/auth JSON");
        let sess = hs
            .finish(&resp, &server_key)
            .expect("server signature over M2");
        RawSession {
            url: url.to_string(),
            sid: sess.session.clone(),
            c2s: remo::proto::record::RecordKey::new(&sess.keys.c2s),
            s2c: remo::proto::record::RecordKey::new(&sess.keys.s2c),
            r: 0,
        }
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The request key `K_c2s`.
    pub fn c2s(&self) -> &remo::proto::record::RecordKey {
        &self.c2s
    }

    /// The response key `K_s2c`.
    pub fn s2c(&self) -> &remo::proto::record::RecordKey {
        &self.s2c
    }

    /// A request number not used yet in this session.
    pub fn next_r(&mut self) -> u64 {
        self.r += 1;
        self.r
    }

    /// One request with a descriptor and no data: the HTTP status and, for
    /// 200, the opened response.
    pub fn request(&mut self, op: &str, descriptor: &[u8]) -> (u16, Option<Opened>) {
        self.request_with(op, &[descriptor])
    }

    /// One request: record 0 the descriptor, then data records.
    pub fn request_with(&mut self, op: &str, records: &[&[u8]]) -> (u16, Option<Opened>) {
        use remo::proto::record::{open_message, seal_message, CHANNEL_STDERR, CHANNEL_STDOUT};
        self.r += 1;
        let body = seal_message(&self.c2s, self.r, op, records).expect("seal");
        let (status, resp) = curl(
            "POST",
            &format!("{}/{op}", self.url),
            &[
                format!("Remo-Session: {}", self.sid),
                "Content-Type: application/x-remo".into(),
            ],
            Some(&body),
        );
        if status != 200 {
            return (status, None);
        }
        let records =
            open_message(&self.s2c, Some(self.r), op, &resp).expect("open the sealed response");
        let (last, rest) = records.split_last().expect("at least one record");
        let mut o = Opened {
            data: Vec::new(),
            stderr: Vec::new(),
            result: String::from_utf8_lossy(last).into_owned(),
        };
        for rec in rest {
            match rec.split_first() {
                Some((&CHANNEL_STDOUT, d)) => o.data.extend_from_slice(d),
                Some((&CHANNEL_STDERR, d)) => o.stderr.extend_from_slice(d),
                other => panic!("bad channel record {other:?}"),
            }
        }
        (status, Some(o))
    }
}

/// The server's fingerprint as `remod` computed it (`server.pub`).
pub fn server_fingerprint(data: &DataDir) -> String {
    let pem = fs::read_to_string(data.dir.join("server.pub")).expect("server.pub");
    let pk = remo::keyfile::parse_public_key_pem(&pem).expect("parse server.pub");
    pk.fingerprint()
}

/// Waits until the log file at `log` says `what` at least `times` times (at
/// most 20 s: a reload or a shutdown is asynchronous to its signal);
/// returns the log.
pub fn wait_log(log: &Path, what: &str, times: usize) -> String {
    let t0 = std::time::Instant::now();
    loop {
        let text = fs::read_to_string(log).unwrap_or_default();
        if text.matches(what).count() >= times {
            return text;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{} never said {what:?} {times} time(s):\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `sleep` processes whose first argument is `arg` (tests start one
/// with an argument nobody else uses, then watch it end).
pub fn sleepers(arg: &str) -> usize {
    let mut n = 0;
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
        let words: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if words.len() >= 2 && words[0].ends_with(b"sleep") && words[1] == arg.as_bytes() {
            n += 1;
        }
    }
    n
}

/// `remo ARGS` with nothing of the caller's environment but PATH, and HOME
/// (so config.toml, known_servers and the session cache) inside `home`.
pub fn remo_at(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(REMO);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LANG", "C.UTF-8")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .args(args)
        .stdin(Stdio::null());
    c
}

/// The FastCGI params of a GET of `/remo/info` with the given extra ones.
pub fn info_params<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", "/remo/info"),
        ("SCRIPT_NAME", "/remo/info"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMO_BASE", "/remo"),
    ];
    p.extend_from_slice(extra);
    p
}

/// In `home`: a CA at `ca` (`remo ca init`), the user's key
/// (`remo keygen`, the default path) and a certificate for it (`remo ca
/// sign` with `sign_args` after the CA, user and key): what an admin runs
/// to give one user access to a fleet.
pub fn ca_user_cert(home: &Path, ca: &Path, user: &str, sign_args: &[&str]) {
    let run = |args: &[&str]| {
        let out = remo_at(home, args).output().unwrap();
        assert!(
            out.status.success(),
            "remo {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["ca", "init", "--no-passphrase", "-o", ca.to_str().unwrap()]);
    run(&["keygen", "--no-passphrase"]);
    let key_pub = home.join(".config/remo/id_p256.pub");
    let mut args = vec![
        "ca",
        "sign",
        "--ca",
        ca.to_str().unwrap(),
        "--user",
        user,
        "--key",
        key_pub.to_str().unwrap(),
    ];
    args.extend_from_slice(sign_args);
    run(&args);
}

/// tmux on a private socket, killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// A tmux server of its own (fails naming the package without tmux).
    pub fn new() -> Self {
        let ok = Command::new("tmux")
            .arg("-V")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            ok,
            "tmux is needed for this test: install the Debian package `tmux` (apt-get install tmux)"
        );
        Tmux {
            socket: format!("remo-test-{}-{}", std::process::id(), free_port()),
        }
    }
    /// A detached session `remo`, `width` × `height`, running `script`.
    pub fn start(&self, script: &Path, width: u16, height: u16) {
        let o = self.run(&[
            "new-session",
            "-d",
            "-s",
            "remo",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            script.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "tmux: {}", text(&o.stderr));
    }

    /// `tmux ARGS` on this server.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .unwrap()
    }
    /// The text of the pane of session `remo`.
    pub fn pane(&self) -> String {
        text(&self.run(&["capture-pane", "-p", "-t", "remo"]).stdout)
    }
    #[track_caller]
    /// Waits (20 s at most) until the pane satisfies `pred`.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let p = self.pane();
            if pred(&p) {
                return p;
            }
            assert!(Instant::now() < deadline, "waiting for {what}; pane:\n{p}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// A user `name` with `grants`, made as the docs say (`remo keygen`,
/// `remod user add`): their data directory view, with their own key.
pub fn user_data_dir(scratch: &Scratch, data: &DataDir, name: &str, grants: &[&str]) -> DataDir {
    let key = scratch.sub("keys").join(format!("{name}.key"));
    run_ok(
        Command::new(REMO)
            .envs(client_env(scratch))
            .args(["keygen", "--no-passphrase", "-o"])
            .arg(&key),
    );
    let mut add = remod_command();
    add.args(["user", "--db"])
        .arg(&data.user_db)
        .args(["add", name, "--key"])
        .arg(key.with_extension("key.pub"));
    for g in grants {
        add.args(["--allow", g]);
    }
    run_ok(&mut add);
    DataDir {
        dir: data.dir.clone(),
        key_file: data.key_file.clone(),
        user_db: data.user_db.clone(),
        user: name.to_string(),
        client_key: key,
    }
}

/// [`user_data_dir`] and a client for the user.
pub fn user_client(
    scratch: &Scratch,
    url: &str,
    data: &DataDir,
    name: &str,
    grants: &[&str],
) -> Client {
    Client::new(scratch, url, &user_data_dir(scratch, data, name, grants))
}
