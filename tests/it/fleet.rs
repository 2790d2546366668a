//! Fleet commands against 20 real remod instances (embedded HTTP door,
//! separate data directories, loopback ports) that trust one CA and have
//! no registered users: the user logs in everywhere with one certificate.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn remo(home: &Path, args: &[&str]) -> Command {
    remo_at(home, args)
}

fn output(mut c: Command) -> Output {
    c.output().unwrap()
}

fn ok(c: Command) -> Output {
    let o = output(c);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    o
}

struct Fleet {
    _procs: Vec<Proc>,
    names: Vec<String>,
    urls: Vec<String>,
    logs: Vec<PathBuf>,
    home: PathBuf,
    key: PathBuf,
    cert: PathBuf,
    ca: PathBuf,
    revoked: PathBuf,
    root: PathBuf,
}

/// 16 `web*` and 4 `db*` servers trusting one CA, a user key with a
/// certificate for `hosts`, and a client configuration naming them all
/// (`[hosts]`, groups `web` and `db`) plus `down1`, a port nobody serves.
fn fleet(scratch: &Scratch, hosts: &str) -> Fleet {
    let root = scratch.path().to_path_buf();
    let home = scratch.sub("home");
    for d in [".config/remo", "run", ".cache"] {
        std::fs::create_dir_all(home.join(d)).unwrap();
    }
    chmod(&home.join("run"), 0o700);
    let ca_dir = scratch.sub("ca");
    let ca = ca_dir.join("ca");
    let key = home.join(".config/remo/id_p256");
    let grants = format!("files:write:{}", root.display());
    ca_user_cert(
        &home,
        &ca,
        "carol",
        &[
            "--valid",
            "1h",
            "--hosts",
            hosts,
            "--grant",
            "cmd:/usr/bin/id",
            "--grant",
            "cmd:/usr/bin/sleep",
            "--grant",
            &grants,
        ],
    );
    let revoked = ca_dir.join("revoked");
    let names: Vec<String> = (1..=16)
        .map(|i| format!("web{i}"))
        .chain((1..=4).map(|i| format!("db{i}")))
        .collect();
    let mut procs = Vec::new();
    let mut logs = Vec::new();
    let mut config = String::from("user = \"carol\"\n\n[groups]\n");
    config.push_str(&format!(
        "web = [{}]\ndb = [{}]\n\n",
        names[..16]
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", "),
        names[16..]
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut ports = Vec::new();
    for name in &names {
        let port = free_port();
        let dir = root.join(format!("srv-{name}"));
        let log = root.join(format!("{name}.log"));
        let mut cmd = remod_http_command(&dir, port);
        cmd.arg("--ca-keys")
            .arg(format!("{}.pub", ca.display()))
            .arg("--revoked")
            .arg(&revoked)
            .arg("--server-name")
            .arg(name)
            // Relative paths land in each server's own directory.
            .env("HOME", &dir)
            .env("RUST_LOG", "info");
        procs.push(Proc::spawn(name, cmd, &log));
        logs.push(log);
        ports.push(port);
        config.push_str(&format!(
            "[hosts.{name}]\nserver = \"http://127.0.0.1:{port}\"\n\n"
        ));
    }
    for (p, port) in procs.iter_mut().zip(&ports) {
        p.wait_port(*port);
    }
    // A host that is down: nothing listens there.
    let down = free_port();
    config.push_str(&format!(
        "[hosts.down1]\nserver = \"http://127.0.0.1:{down}\"\n"
    ));
    std::fs::write(home.join(".config/remo/config.toml"), config).unwrap();
    Fleet {
        _procs: procs,
        urls: ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect(),
        names,
        logs,
        cert: PathBuf::from(format!("{}-cert", key.display())),
        home,
        key,
        ca,
        revoked,
        root,
    }
}

fn logins(f: &Fleet) -> usize {
    f.logs
        .iter()
        .map(|l| {
            std::fs::read_to_string(l)
                .unwrap_or_default()
                .matches("carol auth ok")
                .count()
        })
        .sum()
}

#[test]
fn one_command_on_twenty_servers_with_one_certificate() {
    let scratch = Scratch::new("fleet");
    let f = fleet(&scratch, "*");
    // First contact: every server is listed and pinned at once.
    let o = ok(remo(&f.home, &["@web,db", "info"]));
    let err = text(&o.stderr);
    assert!(err.contains("20 new server(s)"), "{err}");
    assert!(err.contains("pinned 20 server key(s)"), "{err}");
    let out = text(&o.stdout);
    for n in &f.names {
        assert!(out.contains(&format!("{n:<5}: ")), "{n} missing:\n{out}");
    }

    // Fan-out exec: one line per host, prefixed, and a summary.
    let o = ok(remo(&f.home, &["@web,db", "exec", "/usr/bin/id", "-u"]));
    let out = text(&o.stdout);
    for n in &f.names {
        assert!(
            out.lines().any(|l| l == format!("{n:<5}: 0")),
            "{n}:\n{out}"
        );
    }
    assert!(
        text(&o.stderr).contains("20 host(s): 20 ok, 0 failed, 0 unreachable"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(logins(&f), 20, "one login per server");
    // Sessions are cached per host: a second command logs in nowhere.
    ok(remo(&f.home, &["@web,db", "exec", "/usr/bin/id", "-u"]));
    assert_eq!(logins(&f), 20, "the second fleet command logged in again");

    // --json: one object per host.
    let o = ok(remo(
        &f.home,
        &["@db", "--json", "exec", "/usr/bin/id", "-un"],
    ));
    let rows: Vec<serde_json::Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert_eq!(r["exit"], 0, "{r}");
        assert_eq!(r["stdout"], "root\n", "{r}");
        assert!(r["duration_ms"].is_u64(), "{r}");
    }

    // put: the same file to every web server (each its own directory).
    let local = f.root.join("payload.bin");
    let sum = random_file(&local, 300_000);
    let o = ok(remo(
        &f.home,
        &[
            "@web",
            "-P",
            "4",
            "put",
            local.to_str().unwrap(),
            "payload.bin",
        ],
    ));
    assert!(
        text(&o.stderr).contains("16 host(s): 16 ok"),
        "{}",
        text(&o.stderr)
    );
    for n in &f.names[..16] {
        let p = f.root.join(format!("srv-{n}/payload.bin"));
        assert_eq!(sha256_file(&p), sum, "{n}");
    }

    // A host that is down is reported unreachable, without holding up the
    // others; the exit code says not everyone succeeded.
    let t0 = Instant::now();
    let o = output(remo(
        &f.home,
        &["@db,down1", "--group-output", "exec", "/usr/bin/id", "-u"],
    ));
    assert_eq!(o.status.code(), Some(255));
    let err = text(&o.stderr);
    assert!(
        err.contains("5 host(s): 4 ok, 0 failed, 1 unreachable"),
        "{err}"
    );
    assert!(err.contains("unreachable: down1: cannot reach"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    assert!(
        text(&o.stdout).contains("── db1 (ok,"),
        "{}",
        text(&o.stdout)
    );

    // A live fleet command: revoking the certificate ends its session on
    // every server within 2 s of the list changing.
    let mut bg = remo(&f.home, &["@web,db", "exec", "/usr/bin/sleep", "73.5"]);
    bg.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = bg.spawn().unwrap();
    let t0 = Instant::now();
    while sleepers("73.5") < 20 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "only {} commands started",
            sleepers("73.5")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ok(remo(
        &f.home,
        &[
            "ca",
            "revoke",
            "--list",
            f.revoked.to_str().unwrap(),
            "--cert",
            f.cert.to_str().unwrap(),
        ],
    ));
    let revoked_at = Instant::now();
    while sleepers("73.5") > 0 {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(2),
            "{} commands outlived the revocation by 2 s",
            sleepers("73.5")
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!(
        "revocation to the end of 20 commands on 20 servers: {:?}",
        revoked_at.elapsed()
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "every host failed: exit 1");
    let _ = (&f.key, &f.ca);
}

#[test]
fn a_certificate_for_web_is_refused_by_db() {
    let scratch = Scratch::new("fleet-hosts");
    let f = fleet(&scratch, "web*");
    let o = output(remo(&f.home, &["@web,db", "exec", "/usr/bin/id", "-u"]));
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("20 host(s): 16 ok, 4 failed, 0 unreachable"),
        "{err}"
    );
    for n in &f.names[16..] {
        assert!(err.contains(&format!("{n} (exit 255)")), "{n}: {err}");
        assert!(
            err.contains(&format!(
                "{n:<5}: remo: authentication failed for user carol: certificate"
            )),
            "{n}: {err}"
        );
    }
    for (n, log) in f.names.iter().zip(&f.logs).skip(16) {
        let l = std::fs::read_to_string(log).unwrap();
        assert!(
            l.contains("carol auth 401 certificate: not for this server"),
            "{n}: {l}"
        );
    }
    // The web servers through an Ansible inventory, under other names.
    let inv = f.root.join("hosts.ini");
    let mut ini = String::from("[webservers]\n");
    for (i, url) in f.urls[..16].iter().enumerate() {
        ini.push_str(&format!("front{i} remo_server={url}\n"));
    }
    std::fs::write(&inv, ini).unwrap();
    let o = ok(remo(
        &f.home,
        &[
            "@webservers",
            "--inventory",
            inv.to_str().unwrap(),
            "exec",
            "/usr/bin/id",
            "-u",
        ],
    ));
    assert!(
        text(&o.stderr).contains("16 host(s): 16 ok"),
        "{}",
        text(&o.stderr)
    );
    // And as YAML, with a child group and an exclusion.
    let yml = f.root.join("hosts.yml");
    let mut y = String::from(
        "all:\n  children:\n    fleet:\n      children:\n        front:\n          hosts:\n",
    );
    for (i, url) in f.urls[..4].iter().enumerate() {
        y.push_str(&format!(
            "            front{i}:\n              remo_server: \"{url}\"\n"
        ));
    }
    std::fs::write(&yml, &y).unwrap();
    let o = ok(remo(
        &f.home,
        &[
            "@fleet,!front3",
            "--inventory",
            yml.to_str().unwrap(),
            "--json",
            "exec",
            "/usr/bin/id",
            "-u",
        ],
    ));
    let mut hosts: Vec<String> = text(&o.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["stdout"], "0\n", "{v}");
            v["host"].as_str().unwrap().to_string()
        })
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["front0", "front1", "front2"]);
}

/// On a terminal: the new servers are listed and remo asks once before it
/// pins them (no: nothing runs); an encrypted key's passphrase is asked
/// once for all the hosts; an expired certificate is said to be expired.
#[test]
fn on_a_terminal_remo_asks_once() {
    let scratch = Scratch::new("fleet-tty");
    let f = fleet(&scratch, "db*");
    // A passphrase-protected key with its own certificate.
    let enc = f.home.join("enc");
    let mut kg = remo(&f.home, &["keygen", "-o", enc.to_str().unwrap()]);
    kg.env("REMO_PASSPHRASE", "correct horse");
    ok(kg);
    let enc_pub = format!("{}.pub", enc.display());
    let sign = |valid: &str| {
        ok(remo(
            &f.home,
            &[
                "ca",
                "sign",
                "--ca",
                f.ca.to_str().unwrap(),
                "--user",
                "carol",
                "--key",
                &enc_pub,
                "--valid",
                valid,
                "--hosts",
                "db*",
                "--grant",
                "cmd:/usr/bin/id",
            ],
        ))
    };
    sign("1h");
    let script = f.root.join("fleet.sh");
    let status = f.root.join("status");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexport HOME='{home}' XDG_CONFIG_HOME='{home}/.config' XDG_RUNTIME_DIR='{home}/run'\n\
             unset REMO_PASSPHRASE REMO_SERVER REMO_USER REMO_KEY\n\
             '{remo}' -i '{key}' @db exec /usr/bin/id -u; echo EXIT=$? >> '{status}'\n\
             '{remo}' -i '{key}' @db exec /usr/bin/id -u; echo EXIT=$? >> '{status}'\n\
             sleep 60\n",
            home = f.home.display(),
            remo = env!("CARGO_BIN_EXE_remo"),
            key = enc.display(),
            status = status.display(),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tmux = Tmux::new();
    tmux.start(&script, 150, 40);
    let p = tmux.wait_for("the question", |p| {
        p.contains("Pin these server keys? [y/N]")
    });
    assert!(p.contains("4 new server(s):"), "{p}");
    for n in ["db1", "db2", "db3", "db4"] {
        assert!(p.contains(&format!("  {n}  http://127.0.0.1:")), "{n}: {p}");
    }
    tmux.run(&["send-keys", "-t", "remo", "n", "Enter"]);
    tmux.wait_for("the refusal", |p| p.contains("nothing pinned; nothing run"));
    // The second run asks again; yes, then the passphrase once.
    tmux.wait_for("the question again", |p| {
        p.matches("Pin these server keys? [y/N]").count() == 2
    });
    tmux.run(&["send-keys", "-t", "remo", "y", "Enter"]);
    tmux.wait_for("the passphrase", |p| p.contains("(used for every host):"));
    tmux.run(&["send-keys", "-t", "remo", "correct horse", "Enter"]);
    let p = tmux.wait_for("the summary", |p| p.contains("4 host(s): 4 ok"));
    assert_eq!(p.matches("(used for every host):").count(), 1, "{p}");
    for n in ["db1", "db2", "db3", "db4"] {
        assert!(p.contains(&format!("{n}: 0")), "{n}: {p}");
    }
    let s = std::fs::read_to_string(&status).unwrap();
    assert_eq!(s, "EXIT=1\nEXIT=0\n");

    // An expired certificate: every child says so, then fails with the key alone.
    sign("1s");
    std::thread::sleep(Duration::from_millis(2100));
    let mut c = remo(
        &f.home,
        &[
            "-i",
            enc.to_str().unwrap(),
            "--no-cache",
            "@db",
            "exec",
            "/usr/bin/id",
        ],
    );
    c.env("REMO_PASSPHRASE", "correct horse");
    let o = output(c);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert_eq!(err.matches("expired at").count(), 8, "{err}");
    assert!(err.contains("4 host(s): 0 ok, 4 failed"), "{err}");
}
