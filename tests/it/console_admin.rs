//! The console's Admin page in Chromium (`console/browser/admin.mjs`)
//! against a real remod (embedded HTTP door): an admin made in the browser
//! sees the users and bob's live session, disables bob from the page —
//! bob's session, opened here with the protocol, is gone before the
//! next step — enables him again and finds the disable in the audit log;
//! a user without the grant gets no Admin link and a refusal from the
//! server. With `REMO_CONSOLE_SHOTS=DIR` it writes `admin.png` there
//! (docs/console/admin.png).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::browser::{add_user, assert_no_csp_report, need_key, Scenario};
use crate::common::*;

#[test]
fn console_admin_disables_a_user_and_ends_their_session() {
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

    let mut bob_checked = None;
    let r = Scenario::new(
        "admin.mjs",
        &format!("{url}/console/"),
        &scratch.sub("browser"),
    )
    .timeout(Duration::from_secs(300))
    .run(|what| match need_key(what) {
        Some(("useradd", name, file)) => add_user(&data.user_db, name, file, &["admin"]),
        Some(("userplain", name, file)) => add_user(&data.user_db, name, file, &[]),
        // Disabled from the page: bob's session is gone.
        _ if what == "checkbob" => {
            bob_checked = Some(bob.request("cmd", br#"{"argv":["/usr/bin/true"]}"#).0)
        }
        _ => panic!("unknown need {what}"),
    });
    assert_no_csp_report(&r);
    let s = |p: &str| {
        r.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };

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
