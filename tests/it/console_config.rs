//! The console's Config page in real Chromium (`console/browser/config.mjs`)
//! against real remod (`serve --http`, its embedded door) that names a
//! WireGuard file with a real validator and reload script: a peer's
//! `AllowedIPs` edited with the keyboard is checked on disk byte for byte;
//! a value the validator refuses leaves the file as it was, with the
//! validator's message shown; a change made by someone else meanwhile is
//! reported as a conflict, and reload-and-redo then saves; a whole-file
//! edit; a backup's diff and its restore, checked on disk.
//!
//! With `REMO_CONSOLE_SHOTS=DIR` it writes `config.png` there.

use std::fs;

use serde_json::Value;

use crate::common::browser::{assert_no_csp_report, user_add, Scenario};
use crate::common::*;

const WG: &str = "\
# WireGuard wg0 - edited by hand and by remo
[Interface]
Address = 10.0.0.1/24
ListenPort = 51820
PrivateKey = SERVERPRIVATEKEY00000000000000000000000000=

# alice's laptop
[Peer]
PublicKey = ALICEaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=
AllowedIPs = 10.0.0.2/32

# bob's phone
[Peer]
PublicKey = BOB+bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb=
AllowedIPs   =  10.0.0.3/32\t
PersistentKeepalive = 25

; carol (office), aligned by hand
[Peer]
PublicKey   =   CAROL/cccccccccccccccccccccccccccccccccccc=
AllowedIPs  =   10.0.0.4/32, 192.168.10.0/24
";

#[test]
fn console_config_edits_wireguard_in_chromium() {
    let scratch = Scratch::new("console-config");
    let root = scratch.path().to_path_buf();
    let etc = root.join("etc");
    fs::create_dir_all(&etc).unwrap();
    let wg = etc.join("wg0.conf");
    fs::write(&wg, WG).unwrap();
    fs::write(etc.join("app.env"), "DB_HOST=db1\n").unwrap();
    // The validator refuses a candidate containing INVALID, with a message
    // on stderr; the reload records that it ran.
    fs::write(
        root.join("validate.sh"),
        "if grep -q INVALID \"$1\"; then echo \"wg0: INVALID is not an address\" >&2; exit 1; fi\n",
    )
    .unwrap();
    fs::write(
        root.join("reload.sh"),
        "echo reloaded >> \"$(dirname \"$0\")/reloads.log\"\n",
    )
    .unwrap();
    let r = root.display();
    let cfg = root.join("remo.toml");
    fs::write(
        &cfg,
        format!(
            r#"[files.wg0]
path = "{r}/etc/wg0.conf"
format = "ini"
validate = ["/bin/sh", "{r}/validate.sh", "{{file}}"]
reload = ["/bin/sh", "{r}/reload.sh"]

[files.app]
path = "{r}/etc/app.env"
format = "env"
"#
        ),
    )
    .unwrap();

    let port = free_port();
    let dir = root.join("quick");
    let mut cmd = remod_http_command(&dir, port);
    cmd.arg("--config")
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .current_dir(&root);
    let mut remod = Proc::spawn("remod", cmd, &root.join("remod.log"));
    remod.wait_port(port);
    let data = quick_data_dir(&dir);

    let after_set = WG.replace(
        "AllowedIPs   =  10.0.0.3/32\t",
        "AllowedIPs   =  10.0.0.3/32, 10.9.0.0/16\t",
    );
    let changed = after_set.replace("ListenPort = 51820", "ListenPort = 51821");
    let after_redo = changed.replace("PersistentKeepalive = 25", "PersistentKeepalive = 30");
    let after_whole = format!("{after_redo}# a note at the end\n");
    let reloads = || {
        fs::read_to_string(root.join("reloads.log"))
            .unwrap_or_default()
            .lines()
            .count()
    };

    let result = Scenario::new(
        "config.mjs",
        &format!("http://127.0.0.1:{port}/console/"),
        &root.join("browser"),
    )
    .run(|what| match what {
        // Only `wg0`: `app` must not be listed.
        w if w.starts_with("useradd ") => user_add(&data.user_db, w, &["config:wg0"]),
        // Byte for byte: only the value's bytes changed, spacing and
        // the tab after it kept.
        "check set" => {
            assert_eq!(fs::read_to_string(&wg).unwrap(), after_set);
            assert_eq!(reloads(), 1);
        }
        "check unchanged" => {
            assert_eq!(fs::read_to_string(&wg).unwrap(), after_set);
            assert_eq!(reloads(), 1);
        }
        // Someone else's change, made while the page holds the old version.
        "change" => fs::write(&wg, &changed).unwrap(),
        "check redo" => assert_eq!(fs::read_to_string(&wg).unwrap(), after_redo),
        "check whole" => assert_eq!(fs::read_to_string(&wg).unwrap(), after_whole),
        // The newest backup is the content before the whole-file edit.
        "check restore" => assert_eq!(fs::read_to_string(&wg).unwrap(), after_redo),
        other => panic!("unexpected NEED {other}"),
    });
    assert_no_csp_report(&result);
    let s = |p: &str| {
        result
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let files: Vec<String> = result["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].starts_with("wg0ini"), "{files:?}");
    // The sections as the page shows them.
    let legends = result["legends"].to_string();
    for want in [
        "[Interface]",
        "[Peer] PublicKey = ALICE",
        "[Peer] PublicKey = BOB+",
    ] {
        assert!(legends.contains(want), "{want} not in {legends}");
    }
    // The diff before saving, with the keyboard all the way.
    assert!(
        s("/keyDiff").contains("-AllowedIPs   =  10.0.0.3/32\t")
            && s("/keyDiff").contains("+AllowedIPs   =  10.0.0.3/32, 10.9.0.0/16"),
        "{}",
        s("/keyDiff")
    );
    assert_eq!(s("/reviewFocused"), "config-review-title");
    assert_eq!(result["keyboardOnSave"], Value::Bool(true));
    assert!(
        s("/setResult").contains("wg0: saved, backup "),
        "{}",
        s("/setResult")
    );
    assert!(s("/setResult").contains("reloaded"), "{}", s("/setResult"));
    // Refused by the validator: its message shown, the file unchanged.
    assert!(s("/refused").starts_with("Not saved:"), "{}", s("/refused"));
    assert!(
        s("/refused").contains("wg0 is unchanged"),
        "{}",
        s("/refused")
    );
    assert!(
        s("/refusedOutput").contains("INVALID is not an address"),
        "{}",
        s("/refusedOutput")
    );
    // The conflict, then reload and redo.
    assert_eq!(
        result["conflictShown"],
        Value::Bool(true),
        "{}",
        s("/conflict")
    );
    assert!(
        s("/conflict").contains("changed by someone else"),
        "{}",
        s("/conflict")
    );
    assert!(
        s("/redoDiff").contains("+PersistentKeepalive = 30"),
        "{}",
        s("/redoDiff")
    );
    assert!(s("/afterRedo").contains("saved"), "{}", s("/afterRedo"));
    // The whole file: the server's diff of the candidate.
    assert!(
        s("/fileDiff").contains("+++ wg0 (candidate)")
            && s("/fileDiff").contains("+# a note at the end"),
        "{}",
        s("/fileDiff")
    );
    assert!(s("/wholeResult").contains("saved"), "{}", s("/wholeResult"));
    // Backups: newest first; the diff of the newest shows the note added
    // since; diff alone offers no Save; restore.
    assert!(result["backups"].as_array().unwrap().len() >= 3);
    assert!(
        s("/backupDiff").contains("+# a note at the end"),
        "{}",
        s("/backupDiff")
    );
    assert_eq!(result["diffOnlyHasNoSave"], Value::Bool(true));
    assert!(
        s("/restoreResult").contains(&format!("restored {}", s("/restored"))),
        "{}",
        s("/restoreResult")
    );
    assert!(
        result["narrow"].as_u64().unwrap() <= 360,
        "{}",
        result["narrow"]
    );
    remod.assert_running();
}
