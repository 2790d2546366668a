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
