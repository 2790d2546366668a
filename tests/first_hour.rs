//! Issue 24, "the first hour": what a new user meets, tried the way they
//! would — the README's own commands, FastCGI without systemd, the embedded
//! door's prefix, the client's feedback, configuration reloads — against
//! the real binaries.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

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
    let clone = scratch.path().join("clone");
    run_ok(
        Command::new("git")
            .args(["clone", "-q", "--no-hardlinks"])
            .arg(ROOT)
            .arg(&clone),
    );
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
    assert!(banner.contains(&fp), "no fingerprint in the banner:\n{banner}");
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
    assert_eq!(text(&status.stdout), "", "the quick start dirtied the checkout");
}
