//! Issue 24, "the first hour": what a new user meets, tried the way they
//! would — the README's own commands, FastCGI without systemd, the embedded
//! door's prefix, the client's feedback, configuration reloads — against
//! the real binaries.

// Test harness: a failed unwrap is a failed test.

use crate::common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// The shell commands of a markdown file's fenced code blocks, one per
/// entry: `\` continuations joined, comments (`# …` after the command) and
/// blank lines dropped, whitespace collapsed.
fn fenced_commands(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in markdown.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            in_block = !in_block;
            pending.clear();
            continue;
        }
        if !in_block {
            continue;
        }
        let (body, cont) = match t.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (t, false),
        };
        pending.push(' ');
        pending.push_str(body);
        if !cont {
            let cmd = strip_comment(&pending);
            if !cmd.is_empty() {
                out.push(cmd);
            }
            pending.clear();
        }
    }
    out
}

/// Drops a trailing `# comment` (outside quotes) and collapses whitespace.
fn strip_comment(line: &str) -> String {
    let mut quote = None;
    let mut end = line.len();
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '#' && prev.is_whitespace() => {
                end = i;
                break;
            }
            None => {}
        }
        prev = c;
    }
    line[..end].split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The one command of `file` (relative to the repository) that starts with
/// `prefix`, from its fenced code blocks.
fn doc_command(file: &str, prefix: &str) -> String {
    let text = fs::read_to_string(Path::new(ROOT).join(file)).unwrap();
    let found: Vec<String> = fenced_commands(&text)
        .into_iter()
        .filter(|c| c.starts_with(prefix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{file}: want exactly one command starting with {prefix:?}, found {found:?}"
    );
    found.into_iter().next().unwrap()
}

/// Item 4: `remod serve --fcgi unix:/run/remo/remod.sock …` without
/// systemd, as the README and deploy/README write it (one command, the
/// same in both): remod makes the missing socket directory (0755), serves,
/// and removes its socket on SIGTERM. The old code failed with "No such
/// file or directory", and the two documents disagreed about --key/--db.
#[test]
fn fcgi_without_systemd_as_documented() {
    let readme = doc_command("README.md", "remod serve --fcgi");
    let deploy = doc_command("deploy/README.md", "remod serve --fcgi");
    assert_eq!(
        readme, deploy,
        "README.md and deploy/README.md give different commands"
    );
    let scratch = Scratch::new("fcgi-nosystemd");
    let data = init_data_dir(&scratch, "admin");
    let run_remo = scratch.path().join("run/remo");
    assert!(!run_remo.exists());
    let cmdline = readme
        .replace("/run/remo/", &format!("{}/", run_remo.display()))
        .replace("/etc/remo/", &format!("{}/", data.dir.display()));
    let argv: Vec<&str> = cmdline.split_whitespace().collect();
    assert_eq!(argv[0], "remod");
    let mut cmd = remod_command();
    cmd.args(&argv[1..])
        .env("RUST_LOG", "info")
        .current_dir(scratch.path());
    let mut remod = Proc::spawn("remod", cmd, &scratch.path().join("remod.log"));
    let sock = run_remo.join("remod.sock");
    remod.wait_unix(&sock);
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&run_remo).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755, "the socket's directory");
    // It serves: nginx in front, the documented client command.
    let (_nginx, url) = start_nginx(&scratch, &sock, &data);
    let c = Client::new(&scratch, &url, &data);
    assert_eq!(c.ok(&["exec", "echo", "hi"], None).out(), "hi\n");
    // SIGTERM removes the socket (remod.stop() sends it, then waits).
    remod.stop();
    assert!(!sock.exists(), "the socket outlived remod");
}

/// Item 8: the embedded door serves exactly under its prefix, `/` by
/// default (or `--base`), and answers 404 elsewhere. The old code took the
/// last path segment, so `…:PORT/remo/info` answered too and the client
/// pinned a second known-servers entry for the same server.
#[test]
fn embedded_door_serves_only_under_its_base() {
    let scratch = Scratch::new("http-base");
    let (_remod, url, data) = start_remod_http(&scratch);
    let (status, _) = curl("GET", &format!("{url}/info"), &[], None);
    assert_eq!(status, 200);
    for other in ["/remo/info", "/x/y/info", "/remo/auth"] {
        let (status, _) = curl("GET", &format!("{url}{other}"), &[], None);
        assert_eq!(status, 404, "{other}");
    }
    // The client under a wrong prefix: refused, nothing pinned.
    let c = Client::new(&scratch, &format!("{url}/remo"), &data);
    let r = c.run(&["info"], None);
    assert_eq!(r.code, Some(255), "{}", r.stderr);
    assert!(r.stderr.contains("404"), "{}", r.stderr);
    let known = scratch.path().join("home/.config/remo/known_servers");
    assert!(!known.exists(), "a wrong URL was pinned");
    Client::new(&scratch, &url, &data).ok(&["info"], None);
    assert_eq!(fs::read_to_string(&known).unwrap().lines().count(), 1);

    // With --base /remo: there, and only there.
    let port = free_port();
    let mut cmd = remod_http_command(&data.dir, port);
    cmd.args(["--base", "/remo"]).env("RUST_LOG", "info");
    let mut p = Proc::spawn("remod --base", cmd, &scratch.path().join("remod2.log"));
    p.wait_port(port);
    let u = format!("http://127.0.0.1:{port}");
    assert_eq!(curl("GET", &format!("{u}/remo/info"), &[], None).0, 200);
    assert_eq!(curl("GET", &format!("{u}/info"), &[], None).0, 404);
    assert_eq!(curl("GET", &format!("{u}/other/info"), &[], None).0, 404);
    let c = Client::new(&scratch, &format!("{u}/remo"), &data);
    assert_eq!(c.ok(&["exec", "echo", "ok"], None).out(), "ok\n");
}

/// The fenced commands of one `## TITLE` section of a markdown text.
fn section_commands(markdown: &str, title: &str) -> Vec<String> {
    let head = format!("## {title}\n");
    let start = markdown
        .find(&head)
        .unwrap_or_else(|| panic!("no section {head:?}"));
    let rest = &markdown[start + head.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    fenced_commands(&rest[..end])
}

/// A stand-in for `cargo` on PATH: the README's build commands are run as
/// written, but instead of compiling again they put the binaries under
/// test where cargo would put them. Anything else fails, so a README that
/// starts using another cargo command fails here until this knows it.
fn cargo_shim(dir: &Path) {
    let script = format!(
        r#"#!/bin/sh
set -e
grep -q '^name = "remod"' Cargo.toml && grep -q '^name = "remo"' Cargo.toml || {{
    echo "cargo (test stand-in): not in the remo checkout: $(pwd)" >&2; exit 97; }}
case "$*" in
  "install --path .")
    bin="${{CARGO_HOME:-$HOME/.cargo}}/bin"
    mkdir -p "$bin"
    cp {remod} {remo} "$bin/"
    echo "  Installed package remo (test stand-in) to $bin" >&2 ;;
  "build --release")
    mkdir -p target/release
    cp {remod} {remo} target/release/ ;;
  *) echo "cargo (test stand-in): unexpected command: cargo $*" >&2; exit 97 ;;
esac
"#,
        remod = REMOD,
        remo = REMO
    );
    fs::create_dir_all(dir).unwrap();
    let p = dir.join("cargo");
    fs::write(&p, script).unwrap();
    chmod(&p, 0o755);
}

/// Items 1 and 2: the README's Build and Quick start sections, run as
/// written (only the port is a free one instead of 8080) by a new user
/// with an empty home, in a fresh clone of the repository: build and
/// install, `remod serve`, then the two `remo` commands in "another
/// terminal", then the `local` alias of docs/client.md. On the old README
/// the second step failed with "remo: command not found", and the quick
/// start left private keys in the checkout (`git status` not clean).
#[test]
fn readme_quick_start_runs_as_written() {
    let scratch = Scratch::new("readme");
    let clone = fresh_clone(&scratch);
    let readme = fs::read_to_string(clone.join("README.md")).unwrap();
    let here = fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    assert!(
        readme == here,
        "README.md differs from the committed one: commit it, this test runs a fresh clone"
    );
    let port = free_port();
    let with_port = |c: &str| c.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    let build = section_commands(&readme, "Build");
    let quick: Vec<String> = section_commands(&readme, "Quick start")
        .iter()
        .map(|c| with_port(c))
        .collect();
    assert!(!build.is_empty() && quick.len() >= 2, "{build:?} {quick:?}");
    let home = scratch.sub("home");
    let shim = scratch.path().join("shim");
    cargo_shim(&shim);
    let path = format!(
        "{}:{}/.cargo/bin:/usr/local/bin:/usr/bin:/bin",
        shim.display(),
        home.display()
    );
    let sh = |c: &str| {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(c)
            .env_clear()
            .env("PATH", &path)
            .env("HOME", &home)
            .env("USER", "tester")
            .env("LANG", "C.UTF-8")
            .current_dir(&clone);
        cmd
    };
    for c in &build {
        run_ok(&mut sh(c));
    }
    let (serve, clients): (Vec<&String>, Vec<&String>) =
        quick.iter().partition(|c| c.starts_with("remod serve"));
    assert_eq!(serve.len(), 1, "one server command: {quick:?}");
    let log = scratch.path().join("remod.log");
    let mut remod = Proc::spawn("remod (README)", sh(&format!("exec {}", serve[0])), &log);
    remod.wait_port(port);
    let banner = fs::read_to_string(&log).unwrap();
    let data = quick_data_dir(&home.join("remo-data"));
    let fp = server_fingerprint(&data);
    assert!(
        banner.contains(&fp),
        "no fingerprint in the banner:\n{banner}"
    );
    let mut outputs = Vec::new();
    for c in &clients {
        assert!(c.starts_with("remo "), "{c}");
        outputs.push(text(&run_ok(&mut sh(c)).stdout));
    }
    assert!(outputs[0].contains(&fp), "info: {}", outputs[0]);
    let uname = text(&run_ok(Command::new("uname").arg("-a")).stdout);
    assert_eq!(outputs[1], uname);
    // The command the banner suggests works too.
    let tried = banner
        .lines()
        .find_map(|l| l.strip_prefix("remod: try: "))
        .unwrap_or_else(|| panic!("no `try:` line in the banner:\n{banner}"));
    assert!(text(&run_ok(&mut sh(tried)).stdout).contains(&fp));
    // "this becomes `remo local exec uname -a`" with docs/client.md's alias.
    let client_md = fs::read_to_string(clone.join("docs/client.md")).unwrap();
    let toml_block = client_md
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("[hosts.local]"))
        .expect("docs/client.md: a toml block with [hosts.local]");
    let cfg = home.join(".config/remo");
    fs::create_dir_all(&cfg).unwrap();
    fs::write(cfg.join("config.toml"), with_port(toml_block)).unwrap();
    let becomes = "remo local exec uname -a";
    assert!(readme.contains(&format!("`{becomes}`")));
    assert_eq!(text(&run_ok(&mut sh(becomes)).stdout), uname);
    // Nothing the quick start made is in the checkout for git to see.
    let status = run_ok(
        Command::new("git")
            .args(["status", "--porcelain", "--ignored=no"])
            .current_dir(&clone),
    );
    assert_eq!(
        text(&status.stdout),
        "",
        "the quick start dirtied the checkout"
    );
}

/// Runs `cmd` with its standard error on a pseudo-terminal `cols` columns
/// wide (stdout a pipe, stdin /dev/null): the exit code, stdout, and
/// everything written to the terminal.
fn run_on_terminal(mut cmd: Command, cols: u16) -> (Option<i32>, Vec<u8>, String) {
    use std::io::Read;
    use std::process::Stdio;
    let ws = nix::pty::Winsize {
        ws_row: 24,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&ws), None).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(pty.slave));
    let child = cmd.spawn().unwrap();
    // The Command holds the terminal's other end: close it, so reading
    // ends when the child has exited.
    drop(cmd);
    let mut master = fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once the last holder of the other end has closed it.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        all
    });
    let out = wait_with_timeout(child, Duration::from_secs(120), "remo on a terminal");
    let term = reader.join().unwrap();
    (out.status.code(), out.stdout, text(&term))
}

/// The lines a terminal shows for `raw` (split at CR and LF), without
/// escape sequences.
fn screen_lines(raw: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        plain.push(c);
    }
    plain
        .split(['\r', '\n'])
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Item 7: on an 80-column terminal, `put` and `get` draw progress lines
/// that never wrap, `get`'s has the total (known before the body), and
/// each ends with a one-line summary: size, time, rate and the digest.
/// The old code drew a 100-column bar, a spinner without total for `get`,
/// and nothing at the end.
#[test]
fn transfers_show_fitting_progress_and_a_summary() {
    let scratch = Scratch::new("feedback");
    let (_remod, url, data) = start_remod_http(&scratch);
    let c = Client::new(&scratch, &url, &data);
    c.ok(&["info"], None);
    let local = scratch.path().join("big.bin");
    let sum = random_file(&local, 64 << 20);
    let digest = remo::proto::b64::encode(&hex::decode(&sum).unwrap());
    let remote_dir = scratch.sub("a-remote-directory-with-a-long-name");
    let remote = remote_dir.join("and-a-file-name-that-is-rather-long-too.bin");
    let remote = remote.to_str().unwrap();
    let check = |what: &str, term: &str| {
        let lines = screen_lines(term);
        // The progress lines (the summary is a message: it may wrap).
        for l in lines.iter().filter(|l| !l.starts_with("remo: ")) {
            assert!(
                l.chars().count() <= 80,
                "{what}: a line wider than the terminal:\n{l}\nall:\n{}",
                lines.join("\n")
            );
        }
        let last = lines.last().map(String::as_str).unwrap_or("");
        assert!(
            last.starts_with(&format!("remo: {what} "))
                && last.contains("64.00 MiB in ")
                && last.contains("/s)")
                && last.ends_with(&format!("sha256 {digest}")),
            "{what}: no summary at the end:\n{}",
            lines.join("\n")
        );
        lines
    };
    let (code, _, term) = run_on_terminal(c.command(&["put", local.to_str().unwrap(), remote]), 80);
    assert_eq!(code, Some(0), "{term}");
    let lines = check("put", &term);
    assert!(
        lines.iter().any(|l| l.contains("/64.00 MiB")),
        "put drew no progress:\n{}",
        lines.join("\n")
    );
    let back = scratch.path().join("back.bin");
    let (code, _, term) = run_on_terminal(c.command(&["get", remote, back.to_str().unwrap()]), 80);
    assert_eq!(code, Some(0), "{term}");
    let lines = check("get", &term);
    assert!(
        lines.iter().any(|l| l.contains("/64.00 MiB")),
        "get's progress has no total:\n{}",
        lines.join("\n")
    );
    assert_eq!(sha256_file(&back), sum);
    // Not on a terminal: no progress, no summary.
    let r = c.ok(&["get", remote, back.to_str().unwrap()], None);
    assert_eq!(r.stderr, "");
}

/// Item 7: `exec` against a server whose key changed says SERVER KEY
/// CHANGED, as `info` does, with and without a cached session (the old
/// code said "authentication failed": the new server does not know the
/// user's key either, and its 401 came before any signature check). And
/// remod prints its fingerprint on every start, not only the first.
#[test]
fn exec_names_a_changed_server_key() {
    let scratch = Scratch::new("keychange");
    let port = free_port();
    let start = |dir: &str, log: &str| {
        let mut cmd = remod_http_command(&scratch.path().join(dir), port);
        cmd.env("RUST_LOG", "info");
        let mut p = Proc::spawn("remod", cmd, &scratch.path().join(log));
        p.wait_port(port);
        p
    };
    let url = format!("http://127.0.0.1:{port}");
    let data = quick_data_dir(&scratch.path().join("a"));
    let mut a = start("a", "a1.log");
    let c = Client::new(&scratch, &url, &data);
    c.ok(&["info"], None);
    c.ok(&["exec", "true"], None);
    a.stop();
    // Restarted: the fingerprint again.
    let mut a = start("a", "a2.log");
    let fp = server_fingerprint(&data);
    let log = fs::read_to_string(scratch.path().join("a2.log")).unwrap();
    assert!(
        log.contains(&format!("server key fingerprint: {fp}")),
        "{log}"
    );
    c.ok(&["exec", "true"], None);
    a.stop();
    // Another server on the same URL.
    let _b = start("b", "b.log");
    for args in [&["exec", "true"][..], &["--no-cache", "exec", "true"][..]] {
        let r = c.run(args, None);
        assert_eq!(r.code, Some(255), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("SERVER KEY CHANGED") && r.stderr.contains(&fp),
            "{args:?}: {}",
            r.stderr
        );
    }
}

/// Item 7: a bad argument value is a usage error, exit 2 as documented
/// (the old code exited 255 for `--for 0`).
#[test]
fn bad_argument_values_exit_2() {
    let scratch = Scratch::new("usage");
    let data = quick_data_dir(scratch.path());
    // Nothing listens there: the usage error comes before any connection.
    let c = Client::new(&scratch, "http://127.0.0.1:9", &data);
    for args in [
        &["open", "ssh", "--for", "0"][..],
        &["open", "ssh", "--for", "soon"][..],
        &["exec", "--env", "NOVALUE", "true"][..],
        &["put", "--mode", "999", "/etc/hostname", "x"][..],
    ] {
        let r = c.run(args, None);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
    }
}

/// `remo exec cat` whose standard input sends `a`, stays idle for
/// `pause`, then sends `b` and ends.
fn exec_with_idle_stdin(c: &Client, pause: Duration) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = c
        .command(&["exec", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(b"a");
        let _ = stdin.flush();
        std::thread::sleep(pause);
        let _ = stdin.write_all(b"b");
    });
    let out = wait_with_timeout(child, Duration::from_secs(60), "remo exec cat");
    writer.join().unwrap();
    out
}

/// Item 6: behind Apache with mod_proxy_fcgi and mod_reqtimeout loaded
/// with Debian's default settings (its body timeout cut from 20 s to 2 s
/// so the test is short), a command whose piped stdin stays idle longer
/// than that still works with the shipped snippet (`RequestReadTimeout
/// body=0` for the virtual host). Without it (the snippet's directive
/// overridden as the old file had none), Apache answers 408 itself, and the
/// client says that the web server did, and which setting to change.
#[test]
fn apache_reqtimeout_lets_idle_stdin_through() {
    let scratch = Scratch::new("reqtimeout");
    let data = init_data_dir(&scratch, "admin");
    let (_remod, sock) = start_remod_fcgi(&scratch, &data);
    // Debian's reqtimeout.conf, with body=20 made body=2.
    let debian = "RequestReadTimeout header=20-40,MinRate=500 body=2,MinRate=500";
    let pause = Duration::from_secs(4);
    {
        let (_apache, url) = start_apache_with(
            &scratch,
            ApacheFront::ProxyFcgi { sock: &sock },
            &data,
            debian,
            "",
        );
        let c = Client::new(&scratch, &url, &data);
        c.ok(&["info"], None);
        let out = exec_with_idle_stdin(&c, pause);
        assert_code(&out, 0);
        assert_eq!(text(&out.stdout), "ab");
    }
    let other = Scratch::new("reqtimeout-old");
    let (_apache, url) = start_apache_with(
        &other,
        ApacheFront::ProxyFcgi { sock: &sock },
        &data,
        debian,
        "RequestReadTimeout body=2,MinRate=500",
    );
    let c = Client::new(&scratch, &url, &data);
    let out = exec_with_idle_stdin(&c, pause);
    assert_code(&out, 255);
    let err = text(&out.stderr);
    assert!(
        err.contains("the web server in front of remod answered 408")
            && err.contains("RequestReadTimeout body=0"),
        "{err}"
    );
}

/// Item 5: remo.toml added or changed under a running `remod serve --dir`
/// takes effect on SIGHUP, with the changes logged (which limits apply at
/// once and which at the next start), running commands and sessions going
/// on; a broken file is refused with its file, line and column and the
/// previous configuration stays. An empty `config list` says why it is
/// empty. The old code read remo.toml only at start, silently.
#[test]
fn sighup_reloads_remo_toml() {
    let scratch = Scratch::new("reload");
    let (remod, url, data) = start_remod_http(&scratch);
    let log = scratch.path().join("remod.log");
    let c = Client::new(&scratch, &url, &data);
    let r = c.ok(&["config", "list"], None);
    assert_eq!(r.out(), "");
    assert!(
        r.stderr.contains("no configuration files") && r.stderr.contains("SIGHUP"),
        "{}",
        r.stderr
    );
    let logins = |text: &str| text.matches(" auth ok").count();
    let before = logins(&fs::read_to_string(&log).unwrap());
    // A command running across the reload.
    let running = c
        .command(&["exec", "sh", "-c", "sleep 2; echo survived"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let motd = scratch.path().join("motd");
    fs::write(&motd, "hello\n").unwrap();
    let toml = data.dir.join("remo.toml");
    fs::write(
        &toml,
        format!(
            "[limits]\nmax_output_bytes = 1000\nmax_sessions = 100\n\n\
             [files.motd]\npath = \"{}\"\nformat = \"raw\"\n",
            motd.display()
        ),
    )
    .unwrap();
    let hup = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(remod.pid() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap()
    };
    hup();
    let text = wait_log(&log, "reload done", 1);
    for said in [
        "[limits] max_output_bytes 1073741824 -> 1000 (from the next request)",
        "[limits] max_sessions 16384 -> 100 (at the next start of remod)",
        "[files.motd] added",
    ] {
        assert!(text.contains(said), "{said:?} not logged:\n{text}");
    }
    let r = c.ok(&["config", "list"], None);
    assert!(r.out().starts_with("motd\traw\t"), "{}", r.out());
    let r = c.run(&["exec", "head", "-c", "5000", "/dev/zero"], None);
    assert_eq!(r.code, Some(1), "the new max_output_bytes: {}", r.stderr);
    let out = wait_with_timeout(running, Duration::from_secs(30), "the running command");
    assert_code(&out, 0);
    assert_eq!(text_of(&out.stdout), "survived\n");
    // The same session all along.
    let after = logins(&fs::read_to_string(&log).unwrap());
    assert_eq!(before, after, "a reload ended the session");

    // A broken file: refused with its position, the old one stays.
    fs::write(&toml, "[limits]\nmax_output_bytes = \"lots\"\n").unwrap();
    hup();
    let text = wait_log(&log, "keeping the previous configuration", 1);
    let want = format!("config file {}: line 2, column 20", toml.display());
    assert!(text.contains(&want), "{want:?} not logged:\n{text}");
    let r = c.ok(&["config", "list"], None);
    assert!(r.out().starts_with("motd\t"), "{}", r.out());
}

fn text_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Item 5: an error in the client's config.toml names the file, line and
/// column.
#[test]
fn client_config_errors_name_file_line_and_column() {
    let scratch = Scratch::new("client-cfg");
    let data = quick_data_dir(scratch.path());
    let c = Client::new(&scratch, "http://127.0.0.1:9", &data);
    let cfg = scratch.path().join("home/.config/remo/config.toml");
    fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    fs::write(&cfg, "[hosts.a]\nserver = \"http://x\"\nusr = \"me\"\n").unwrap();
    let r = c.run(&["info"], None);
    assert_eq!(r.code, Some(255));
    let want = format!("remo: {}:3:1: unknown field", cfg.display());
    assert!(r.stderr.starts_with(&want), "{}", r.stderr);
}

/// `openssl` with these arguments, in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    require("/usr/bin/openssl", "openssl");
    run_ok(Command::new("/usr/bin/openssl").args(args).current_dir(dir));
}

/// A private CA (`ca.pem`) and a certificate it signed for 127.0.0.1
/// (`srv.pem`, `srv.key`), in `dir`.
fn private_ca(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-days",
        "2",
        "-subj",
        "/CN=remo test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &a);
    let mut a = vec!["req"];
    a.extend(ec);
    a.extend([
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
    ]);
    openssl(dir, &a);
    fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "srv.pem",
        ],
    );
}

/// A self-signed certificate `NAME.pem` / `NAME.key` in `dir`.
fn self_signed(dir: &Path, name: &str) {
    let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=remo.test",
            "-keyout",
            &key,
            "-out",
            &cert,
        ],
    );
}

/// `remo ARGS…` as the test user, with only `env` added to a clean
/// environment (no `--server`: the host comes from the arguments).
fn remo_cmd(scratch: &Scratch, data: &DataDir, env: &[(&str, &Path)], args: &[&str]) -> Ran {
    let mut c = Command::new(REMO);
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(client_env(scratch))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["--user", &data.user, "--key"])
        .arg(&data.client_key)
        .args(args);
    let out = wait_with_timeout(
        c.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(60),
        "remo",
    );
    Ran {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: text(&out.stderr),
    }
}

/// Item 3: HTTPS through nginx with the admin's own private CA. Refused by
/// default with a hint (the old message was a bare UnknownIssuer, and
/// nothing else would do); accepted with SSL_CERT_FILE, SSL_CERT_DIR,
/// --cacert, or the host's `cacert`.
#[test]
fn https_with_a_private_ca() {
    let scratch = Scratch::new("tls-ca");
    let data = init_data_dir(&scratch, "admin");
    let (_remod, sock) = start_remod_fcgi(&scratch, &data);
    let pki = scratch.sub("pki");
    private_ca(&pki);
    let (_nginx, url) = start_nginx_tls(
        &scratch,
        "nginx",
        &sock,
        &data,
        free_port(),
        &pki.join("srv.pem"),
        &pki.join("srv.key"),
    );
    let r = remo_cmd(&scratch, &data, &[], &[&url, "info"]);
    assert_eq!(r.code, Some(255), "{}", r.stderr);
    assert!(
        r.stderr.contains("UnknownIssuer") && r.stderr.contains("--cacert"),
        "{}",
        r.stderr
    );
    let ca = pki.join("ca.pem");
    let r = remo_cmd(&scratch, &data, &[("SSL_CERT_FILE", &ca)], &[&url, "info"]);
    assert_eq!(r.code, Some(0), "SSL_CERT_FILE: {}", r.stderr);
    let cadir = scratch.sub("cadir");
    fs::copy(&ca, cadir.join("ca.pem")).unwrap();
    let r = remo_cmd(
        &scratch,
        &data,
        &[("SSL_CERT_DIR", &cadir)],
        &[&url, "exec", "echo", "dir"],
    );
    assert_eq!(
        (r.code, r.out().as_str()),
        (Some(0), "dir\n"),
        "SSL_CERT_DIR: {}",
        r.stderr
    );
    let r = remo_cmd(
        &scratch,
        &data,
        &[],
        &[
            "--cacert",
            ca.to_str().unwrap(),
            &url,
            "exec",
            "echo",
            "flag",
        ],
    );
    assert_eq!(
        (r.code, r.out().as_str()),
        (Some(0), "flag\n"),
        "--cacert: {}",
        r.stderr
    );
    let cfg = scratch.path().join("home/.config/remo/config.toml");
    fs::write(
        &cfg,
        format!(
            "[hosts.web]\nserver = \"{url}\"\ncacert = \"{}\"\n",
            ca.display()
        ),
    )
    .unwrap();
    let r = remo_cmd(&scratch, &data, &[], &["web", "exec", "echo", "alias"]);
    assert_eq!(
        (r.code, r.out().as_str()),
        (Some(0), "alias\n"),
        "cacert: {}",
        r.stderr
    );
}

/// Item 3: a self-signed certificate through nginx. Refused by default and
/// for a plain URL; a host entry with `pin_certificate = true` pins its
/// fingerprint on first use and goes on working; another certificate at
/// the same address is then refused loudly, naming both fingerprints and
/// the line to delete, exit 255.
#[test]
fn https_with_a_pinned_self_signed_certificate() {
    let scratch = Scratch::new("tls-pin");
    let data = init_data_dir(&scratch, "admin");
    let (_remod, sock) = start_remod_fcgi(&scratch, &data);
    let pki = scratch.sub("pki");
    self_signed(&pki, "one");
    self_signed(&pki, "two");
    let port = free_port();
    let (mut nginx, url) = start_nginx_tls(
        &scratch,
        "nginx1",
        &sock,
        &data,
        port,
        &pki.join("one.pem"),
        &pki.join("one.key"),
    );
    let r = remo_cmd(&scratch, &data, &[], &[&url, "info"]);
    assert_eq!(r.code, Some(255), "{}", r.stderr);
    assert!(r.stderr.contains("pin_certificate"), "{}", r.stderr);
    let cfg = scratch.path().join("home/.config/remo/config.toml");
    fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    fs::write(
        &cfg,
        format!("[hosts.box]\nserver = \"{url}\"\npin_certificate = true\n"),
    )
    .unwrap();
    let r = remo_cmd(&scratch, &data, &[], &["box", "info"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("pinned the TLS certificate"),
        "{}",
        r.stderr
    );
    let pins =
        fs::read_to_string(scratch.path().join("home/.config/remo/known_certificates")).unwrap();
    assert_eq!(pins.lines().count(), 1, "{pins}");
    assert!(
        pins.starts_with(&format!("https://127.0.0.1:{port} ")),
        "{pins}"
    );
    let r = remo_cmd(&scratch, &data, &[], &["box", "exec", "echo", "pinned"]);
    assert_eq!(
        (r.code, r.out().as_str()),
        (Some(0), "pinned\n"),
        "{}",
        r.stderr
    );
    // The pin is for that host entry only: the plain URL is still refused.
    let r = remo_cmd(&scratch, &data, &[], &[&url, "exec", "true"]);
    assert_eq!(r.code, Some(255), "{}", r.stderr);
    // Another certificate at the same address.
    nginx.stop();
    let (_nginx2, _) = start_nginx_tls(
        &scratch,
        "nginx2",
        &sock,
        &data,
        port,
        &pki.join("two.pem"),
        &pki.join("two.key"),
    );
    let r = remo_cmd(&scratch, &data, &[], &["box", "exec", "true"]);
    assert_eq!(r.code, Some(255), "{}", r.stderr);
    assert!(
        r.stderr.contains("TLS CERTIFICATE CHANGED")
            && r.stderr.contains("delete line 1 of")
            && r.stderr.contains(pins.split_whitespace().nth(1).unwrap()),
        "{}",
        r.stderr
    );
}

/// A `git clone` of the committed repository in `scratch/clone`.
fn fresh_clone(scratch: &Scratch) -> std::path::PathBuf {
    let clone = scratch.path().join("clone");
    run_ok(
        Command::new("git")
            .args(["clone", "-q", "--no-hardlinks"])
            .arg(ROOT)
            .arg(&clone),
    );
    clone
}

/// Issue 24 §1: a fresh clone stands alone. Cloned where no `../shared`
/// is beside it: every relative link of its README and docs resolves inside
/// the clone, the protocol specification and the vectors the tests read are
/// in it, and `../shared` is named only by the test that compares the
/// copies when the originals exist.
#[test]
fn a_fresh_clone_stands_alone() {
    let scratch = Scratch::new("clone-alone");
    let clone = fresh_clone(&scratch);
    assert!(!clone.join("../shared").exists());
    for f in ["docs/protocol.md", "tests/vectors/protocol-vectors.json"] {
        assert!(clone.join(f).is_file(), "{f} missing from a fresh clone");
    }
    // Relative links in the user-facing markdown.
    let mut pages = vec![clone.join("README.md")];
    for e in fs::read_dir(clone.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            pages.push(p);
        }
    }
    let mut dead = Vec::new();
    for page in &pages {
        let text = fs::read_to_string(page).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = &rest[..end];
            let target = target.split('#').next().unwrap_or("");
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let resolved = page.parent().unwrap().join(target);
            if !resolved.exists() {
                dead.push(format!(
                    "{} → {target}",
                    page.strip_prefix(&clone).unwrap().display()
                ));
            }
        }
    }
    assert!(dead.is_empty(), "dead links in a fresh clone: {dead:?}");
    // `../shared` only in the copy check.
    let out = Command::new("git")
        .args(["grep", "-l", "\\.\\./shared"])
        .current_dir(&clone)
        .args(["--", "src", "tests", "Cargo.toml", "build.rs", ".ci"])
        .output()
        .unwrap();
    let files = String::from_utf8_lossy(&out.stdout).into_owned();
    let files: Vec<&str> = files.lines().collect();
    assert!(
        files
            .iter()
            .all(|f| *f == "tests/it/protocol_vectors.rs" || *f == "tests/it/first_hour.rs"),
        "only the copy check may name ../shared: {files:?}"
    );
}
