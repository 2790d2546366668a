//! The console's Admin page in Chromium (`console/browser/admin.mjs`)
//! against a real remod (embedded HTTP door): an admin made in the browser
//! sees the users and bob's live session, disables bob from the page —
//! bob's session, opened here with the protocol, is gone before the
//! next step — enables him again and finds the disable in the audit log;
//! a user without the grant gets no Admin link and a refusal from the
//! server. With `REMO_CONSOLE_SHOTS=DIR` it writes `admin.png` there
//! (docs/console/admin.png).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::*;

fn require_browser() -> PathBuf {
    require("/usr/bin/chromium", "chromium");
    require("/usr/bin/node", "nodejs");
    let pw = Path::new(ROOT).join("console/node_modules/playwright-core");
    assert!(
        pw.is_dir(),
        "{} is missing: run `npm ci` in console/ (tests/run does)",
        pw.display()
    );
    Path::new(ROOT).join("console")
}

#[test]
fn console_admin_disables_a_user_and_ends_their_session() {
    let console = require_browser();
    let scratch = Scratch::new("console-admin");
    let (_remod, url, data) = start_remod_http(&scratch);
    // bob: a user with a live session of his own.
    let key = scratch.sub("keys").join("bob.key");
    run_ok(
        Command::new(REMO)
            .envs(client_env(&scratch))
            .args(["keygen", "--no-passphrase", "-o"])
            .arg(&key),
    );
    run_ok(
        remod_command()
            .args(["user", "--db"])
            .arg(&data.user_db)
            .args(["add", "bob", "--allow", "cmd", "--key"])
            .arg(key.with_extension("key.pub")),
    );
    let bob_dir = DataDir {
        user: "bob".into(),
        client_key: key,
        ..quick_data_dir(&data.dir)
    };
    let mut bob = RawSession::login(&url, &bob_dir);
    assert_eq!(bob.request("cmd", br#"{"argv":["/usr/bin/true"]}"#).0, 200);

    let work = scratch.sub("browser");
    let log = scratch.path().join("browser.log");
    let mut cmd = Command::new("/usr/bin/node");
    cmd.arg("browser/admin.mjs")
        .current_dir(&console)
        .env("CONSOLE_URL", format!("{url}/console/"))
        .env("WORK", &work)
        .env("CHROMIUM", "/usr/bin/chromium")
        .env("HOME", &work)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    if let Some(s) = std::env::var_os("REMO_CONSOLE_SHOTS") {
        cmd.env("SHOTS", s);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut result = None;
    let mut bob_checked = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("NEED ") {
            let mut w = rest.split(' ');
            match (w.next(), w.next(), w.next()) {
                (Some(how @ ("useradd" | "userplain")), Some(name), Some(file)) => {
                    let mut add = remod_command();
                    add.args(["user", "--db"])
                        .arg(&data.user_db)
                        .args(["add", name, "--key", file]);
                    if how == "useradd" {
                        add.args(["--allow", "admin"]);
                    }
                    run_ok(&mut add);
                }
                (Some("checkbob"), None, None) => {
                    // Disabled from the page: bob's session is gone.
                    bob_checked = Some(bob.request("cmd", br#"{"argv":["/usr/bin/true"]}"#).0);
                }
                other => panic!("unknown need {other:?}"),
            }
            writeln!(stdin, "OK").unwrap();
        } else if let Some(json) = line.strip_prefix("RESULT ") {
            result = Some(serde_json::from_str::<Value>(json).unwrap());
        }
    }
    let status = wait_with_timeout(child, std::time::Duration::from_secs(300), "node");
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    let r = result.unwrap_or_else(|| panic!("no RESULT ({}):\n{log}", status.status));
    assert!(
        r.get("error").is_none() && status.status.success(),
        "the scenario failed: {}\nsteps: {}\nconsole: {}\nlog:\n{log}",
        r["error"],
        r["steps"],
        r["console"]
    );
    let s = |p: &str| {
        r.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    for m in r["console"].as_array().unwrap() {
        let m = m.as_str().unwrap();
        assert!(!m.starts_with("pageerror"), "browser console: {m}");
        assert!(!m.contains("Content Security Policy"), "CSP: {m}");
    }

    assert_eq!(r["bossSeesLink"], true);
    assert_eq!(
        r["users"],
        serde_json::json!(["admin", "bob", "boss", "carol"])
    );
    assert!(s("/bobGrants").contains("cmd"), "{}", s("/bobGrants"));
    let before: Vec<&str> = r["sessionsBefore"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        before.contains(&"bob") && before.contains(&"boss"),
        "{before:?}"
    );
    assert_eq!(s("/yours"), "boss");
    assert!(
        s("/disabledStatus").starts_with("Disabled bob: ended 1 live session"),
        "{}",
        s("/disabledStatus")
    );
    assert_eq!(s("/bobState"), "disabled");
    assert_eq!(bob_checked, Some(401), "bob's session outlived the disable");
    let audit = r["auditRows"].to_string();
    assert!(audit.contains("disable bob"), "{audit}");
    assert_eq!(s("/bobStateAfter"), "enabled");
    assert!(r["narrow"].as_u64().unwrap() <= 360, "{}", r["narrow"]);
    // bob is back.
    RawSession::login(&url, &bob_dir);

    // A user without the grant: no link, and the server refuses.
    assert_eq!(r["carolSeesLink"], false);
    assert!(
        s("/carolPage").contains("Refused by the server"),
        "{}",
        s("/carolPage")
    );
}
