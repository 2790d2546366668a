//! The `config` operation in-process, with real files, real validator and
//! reload scripts and a real user database: format-preserving edits of a
//! WireGuard file compared byte for byte, backups and rotation, restore,
//! validation and reload rollback, lost-update conflicts, permissions, and
//! files that are not UTF-8.

// Test harness: a failed unwrap is a failed test.

use crate::inproc;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use inproc::*;
use remo::proto::handshake::ClientSession;
use remo::proto::identity::IdentityKey;
use remo::proto::response::ErrorCode;
use remo::userdb::UserDb;
use serde_json::{json, Value};

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
AllowedIPs = 10.0.0.3/32
PersistentKeepalive = 25

; carol (office), aligned by hand
[Peer]
PublicKey   =   CAROL/cccccccccccccccccccccccccccccccccccc=
AllowedIPs  =   10.0.0.4/32, 192.168.10.0/24
";

const BOB: &str = "BOB+bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb=";
const CAROL: &str = "CAROL/cccccccccccccccccccccccccccccccccccc=";

struct T {
    f: Fixture,
    s: ClientSession,
    r: AtomicU64,
    etc: PathBuf,
}

impl T {
    fn wg(&self) -> PathBuf {
        self.etc.join("wg0.conf")
    }
    fn wg_text(&self) -> String {
        std::fs::read_to_string(self.wg()).unwrap()
    }
    async fn op(&self, desc: Value, data: &[&[u8]]) -> Reply {
        let r = self.r.fetch_add(1, Ordering::SeqCst);
        request(&self.f, &self.s, r, "config", desc, data).await
    }
    async fn ok(&self, desc: Value) -> serde_json::Map<String, Value> {
        let rep = self.op(desc.clone(), &[]).await;
        match rep.result {
            Ok(m) => m,
            Err(e) => panic!("{desc}: {e} / {}", String::from_utf8_lossy(&rep.stderr)),
        }
    }
    async fn err(&self, desc: Value) -> (ErrorCode, String, Vec<u8>) {
        let rep = self.op(desc.clone(), &[]).await;
        let e = rep.result.expect_err(&desc.to_string());
        (e.code, e.message, rep.stderr)
    }
    async fn version(&self) -> String {
        self.ok(json!({"action": "read", "name": "wg0"})).await["version"]
            .as_str()
            .unwrap()
            .to_string()
    }
    fn backups(&self) -> Vec<String> {
        let mut v: Vec<String> = match std::fs::read_dir(self.etc.join(".wg0.remo-backup")) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n != ".remo-backup-of")
                .collect(),
            Err(_) => vec![],
        };
        v.sort();
        v
    }
    /// Nothing but the expected files in etc/ (no candidate left behind).
    fn assert_clean(&self) {
        let mut names: Vec<String> = std::fs::read_dir(&self.etc)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(".remo-"))
            .collect();
        names.sort();
        assert!(names.is_empty(), "left behind: {names:?}");
    }
}

fn toml(root: &Path) -> String {
    let etc = root.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("wg0.conf"), WG).unwrap();
    std::fs::write(
        etc.join("app.env"),
        b"# app settings\nexport DB_HOST=db1\nDB_PORT = 5432\n\nthis line has no equals sign\n",
    )
    .unwrap();
    std::fs::write(etc.join("other.conf"), "other\n").unwrap();
    // The validator refuses any candidate containing INVALID and records
    // the name it was given; the reload fails while etc/reload-fails exists.
    std::fs::write(
        root.join("validate.sh"),
        "basename \"$1\" >> \"$(dirname \"$0\")/validated.log\"\n\
         if grep -q INVALID \"$1\"; then echo \"line 3: INVALID here\" >&2; exit 1; fi\n",
    )
    .unwrap();
    std::fs::write(
        root.join("reload.sh"),
        "d=\"$(dirname \"$0\")\"\n\
         if [ -e \"$d/etc/reload-fails\" ]; then echo 'Job failed' >&2; exit 3; fi\n\
         pwd > \"$d/reload.cwd\"\n\
         echo reloaded >> \"$d/reloads.log\"\n",
    )
    .unwrap();
    let r = root.display();
    format!(
        r#"[limits]
max_sessions = 100

[files.wg0]
path = "{r}/etc/wg0.conf"
format = "ini"
backups = 3
validate = ["/bin/sh", "{r}/validate.sh", "{{file}}"]
reload = ["/bin/sh", "{r}/reload.sh"]

[files.app]
path = "{r}/etc/app.env"
format = "env"

[files.other]
path = "{r}/etc/other.conf"
format = "raw"

[files.blob]
path = "{r}/etc/blob.ini"
format = "ini"
backup = false
"#
    )
}

async fn setup() -> T {
    let f = fixture_with_config(toml);
    let s = login(&f).await;
    let etc = f.root.join("etc");
    T {
        f,
        s,
        r: AtomicU64::new(1),
        etc,
    }
}

#[tokio::test]
async fn set_by_public_key_is_byte_exact() {
    let t = setup().await;
    let v0 = t.version().await;
    let res = t
        .ok(json!({"action": "set", "name": "wg0",
                   "section": format!("Peer[PublicKey={BOB}]"), "key": "AllowedIPs",
                   "value": "10.0.0.3/32, 10.10.0.0/16", "if_version": v0}))
        .await;
    assert_eq!(res["changed"], true);
    assert_eq!(res["reloaded"], true);
    assert!(res["backup"].is_string());
    let v1 = res["version"].as_str().unwrap().to_string();
    assert_ne!(v1, v0);
    // Carol's hand-aligned spacing survives; a new key goes after the
    // section's last entry.
    t.ok(json!({"action": "set", "name": "wg0",
                "section": format!("Peer[PublicKey={CAROL}]"), "key": "AllowedIPs",
                "value": "10.0.0.9/32"}))
        .await;
    t.ok(json!({"action": "set", "name": "wg0", "section": "Peer[0]",
                "key": "PersistentKeepalive", "value": "15"}))
        .await;
    let expected = "\
# WireGuard wg0 - edited by hand and by remo
[Interface]
Address = 10.0.0.1/24
ListenPort = 51820
PrivateKey = SERVERPRIVATEKEY00000000000000000000000000=

# alice's laptop
[Peer]
PublicKey = ALICEaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=
AllowedIPs = 10.0.0.2/32
PersistentKeepalive = 15

# bob's phone
[Peer]
PublicKey = BOB+bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb=
AllowedIPs = 10.0.0.3/32, 10.10.0.0/16
PersistentKeepalive = 25

; carol (office), aligned by hand
[Peer]
PublicKey   =   CAROL/cccccccccccccccccccccccccccccccccccc=
AllowedIPs  =   10.0.0.9/32
";
    assert_eq!(t.wg_text(), expected);
    // Reading a key, a section, and the version of what was read.
    let rep = t
        .op(
            json!({"action": "read", "name": "wg0",
                   "section": format!("Peer[PublicKey={BOB}]"), "key": "AllowedIPs"}),
            &[],
        )
        .await;
    assert_eq!(rep.stdout, b"10.0.0.3/32, 10.10.0.0/16\n");
    let rep = t
        .op(
            json!({"action": "read", "name": "wg0", "section": "Peer[2]"}),
            &[],
        )
        .await;
    assert_eq!(
        String::from_utf8(rep.stdout).unwrap(),
        format!("[Peer]\nPublicKey   =   {CAROL}\nAllowedIPs  =   10.0.0.9/32\n")
    );
    let rep = t.op(json!({"action": "read", "name": "wg0"}), &[]).await;
    assert_eq!(rep.stdout, expected.as_bytes());
    // The validator saw a candidate with the real file name; mode kept.
    let log = std::fs::read_to_string(t.f.root.join("validated.log")).unwrap();
    assert!(log.lines().all(|l| l == "wg0.conf"), "{log}");
    let reloads = std::fs::read_to_string(t.f.root.join("reloads.log")).unwrap();
    assert_eq!(reloads.lines().count(), 3);
    // Setting the same value again changes nothing: no backup, no reload.
    let before = t.backups();
    let res = t
        .ok(json!({"action": "set", "name": "wg0", "section": "Peer[0]",
                   "key": "PersistentKeepalive", "value": "15"}))
        .await;
    assert_eq!(res["changed"], false);
    assert_eq!(t.backups(), before);
    t.assert_clean();
    // Ambiguous and missing addresses.
    let (c, m, _) = t
        .err(json!({"action": "set", "name": "wg0", "section": "Peer", "key": "A", "value": "1"}))
        .await;
    assert_eq!(c, ErrorCode::BadRequest, "{m}");
    let (c, _, _) = t
        .err(json!({"action": "read", "name": "wg0", "section": "Peer[PublicKey=nobody]"}))
        .await;
    assert_eq!(c, ErrorCode::NotFound);
    let (c, _, _) = t
        .err(json!({"action": "set", "name": "wg0", "section": "Peer[0]", "key": "A", "value": "x\n[Interface]"}))
        .await;
    assert_eq!(c, ErrorCode::BadRequest);
}

/// Review of 2026-12-04: the reload ran in the file's directory, which
/// others may write (a `python3 -m` reload would import from it as
/// root), and a set-gid mode of the file was lost on every edit (the old
/// owner was copied after the mode, and a chown clears set-id bits).
#[tokio::test]
async fn reload_runs_in_root_and_the_files_mode_and_owner_stay() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let t = setup().await;
    let wg = t.wg();
    std::os::unix::fs::chown(&wg, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&wg, std::fs::Permissions::from_mode(0o2750)).unwrap();
    let res = t
        .ok(
            json!({"action": "set", "name": "wg0", "section": "Interface",
                   "key": "ListenPort", "value": "51821"}),
        )
        .await;
    assert_eq!(res["reloaded"], true);
    let cwd = std::fs::read_to_string(t.f.root.join("reload.cwd")).unwrap();
    assert_eq!(cwd.trim(), "/", "the reload's working directory");
    let m = std::fs::metadata(&wg).unwrap();
    assert_eq!((m.uid(), m.gid()), (65534, 65534));
    assert_eq!(
        m.mode() & 0o7777,
        0o2750,
        "the file's mode, set-gid included"
    );
}

/// Review of 2026-12-04: whoever may write the files' directory can
/// rename one backup directory into another's place; wg0's backups then
/// showed under `app` (a user with only `config:app` could read them and
/// restore them into app's file). Each directory now names its file.
#[tokio::test]
async fn a_backup_directory_renamed_into_anothers_place_is_refused() {
    let t = setup().await;
    let res = t
        .ok(
            json!({"action": "set", "name": "wg0", "section": "Interface",
                   "key": "ListenPort", "value": "51821"}),
        )
        .await;
    let id = res["backup"].as_str().unwrap().to_string();
    std::fs::rename(
        t.etc.join(".wg0.remo-backup"),
        t.etc.join(".app.remo-backup"),
    )
    .unwrap();
    let (code, msg, _) = t.err(json!({"action": "backups", "name": "app"})).await;
    assert_eq!(code, ErrorCode::BadRequest, "{msg}");
    assert!(msg.contains("belongs to another configured file"), "{msg}");
    let before = std::fs::read(t.etc.join("app.env")).unwrap();
    let (code, msg, _) = t
        .err(json!({"action": "restore", "name": "app", "backup": id}))
        .await;
    assert_eq!(code, ErrorCode::BadRequest, "{msg}");
    assert_eq!(std::fs::read(t.etc.join("app.env")).unwrap(), before);
}

#[tokio::test]
async fn add_and_delete_a_peer() {
    let t = setup().await;
    let res = t
        .ok(
            json!({"action": "add-section", "name": "wg0", "section": "Peer",
                   "entries": [["PublicKey", "DAVEdddd="], ["AllowedIPs", "10.0.0.5/32"]]}),
        )
        .await;
    assert_eq!(res["index"], 3);
    assert_eq!(
        t.wg_text(),
        format!("{WG}\n[Peer]\nPublicKey = DAVEdddd=\nAllowedIPs = 10.0.0.5/32\n")
    );
    // Deleting bob takes his comment line and nothing of carol's.
    t.ok(json!({"action": "delete-section", "name": "wg0", "section": format!("Peer[PublicKey={BOB}]")}))
        .await;
    let without_bob = WG.replace(
        &format!("# bob's phone\n[Peer]\nPublicKey = {BOB}\nAllowedIPs = 10.0.0.3/32\nPersistentKeepalive = 25\n\n"),
        "",
    );
    assert_ne!(without_bob, WG);
    assert_eq!(
        t.wg_text(),
        format!("{without_bob}\n[Peer]\nPublicKey = DAVEdddd=\nAllowedIPs = 10.0.0.5/32\n")
    );
    t.ok(
        json!({"action": "delete-section", "name": "wg0", "section": "Peer[PublicKey=DAVEdddd=]"}),
    )
    .await;
    assert_eq!(t.wg_text(), without_bob);
    let (c, _, _) = t
        .err(json!({"action": "delete-section", "name": "wg0", "section": "Peer[7]"}))
        .await;
    assert_eq!(c, ErrorCode::NotFound);
}

#[tokio::test]
async fn backups_rotate_restore_and_diff() {
    let t = setup().await;
    let mut ids = vec![];
    for i in 0..5 {
        let res = t
            .ok(
                json!({"action": "set", "name": "wg0", "section": "Interface",
                       "key": "ListenPort", "value": format!("{}", 51821 + i)}),
            )
            .await;
        ids.push(res["backup"].as_str().unwrap().to_string());
    }
    // Three kept (backups = 3), listed newest first.
    assert_eq!(t.backups(), ids[2..].to_vec());
    let list = t.ok(json!({"action": "backups", "name": "wg0"})).await;
    let listed: Vec<&str> = list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![&ids[4][..], &ids[3][..], &ids[2][..]]);
    let dir_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(t.etc.join(".wg0.remo-backup"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(dir_mode & 0o777, 0o700);
    // The oldest kept backup holds port 51822 (taken before the third change).
    let rep = t
        .op(
            json!({"action": "diff", "name": "wg0", "backup": ids[2]}),
            &[],
        )
        .await;
    let d = String::from_utf8(rep.stdout).unwrap();
    assert!(
        d.contains("-ListenPort = 51822\n+ListenPort = 51825\n"),
        "{d}"
    );
    assert_eq!(rep.result.unwrap()["changed"], true);
    // Diff without a backup: the newest one.
    let rep = t.op(json!({"action": "diff", "name": "wg0"}), &[]).await;
    assert!(String::from_utf8(rep.stdout)
        .unwrap()
        .contains("-ListenPort = 51824\n+ListenPort = 51825\n"));
    // A candidate against the current file.
    let cand = t.wg_text().replace("10.0.0.1/24", "10.0.0.1/16");
    let rep = t
        .op(
            json!({"action": "diff", "name": "wg0", "candidate": true}),
            &[cand.as_bytes()],
        )
        .await;
    assert!(String::from_utf8(rep.stdout)
        .unwrap()
        .contains("-Address = 10.0.0.1/24\n+Address = 10.0.0.1/16\n"));
    // Restore: back to 51822, the current content backed up first.
    let res = t
        .ok(json!({"action": "restore", "name": "wg0", "backup": ids[2]}))
        .await;
    assert_eq!(res["restored"], ids[2].as_str());
    assert_eq!(t.wg_text(), WG.replace("51820", "51822"));
    assert_eq!(t.backups().len(), 3);
    assert_eq!(t.backups().last().unwrap(), res["backup"].as_str().unwrap());
    for bad in ["../wg0.conf", ".x", "nope/1"] {
        let (c, _, _) = t
            .err(json!({"action": "restore", "name": "wg0", "backup": bad}))
            .await;
        assert_eq!(c, ErrorCode::BadRequest, "{bad}");
    }
    let (c, _, _) = t
        .err(json!({"action": "restore", "name": "wg0", "backup": "20000101T000000.000000Z"}))
        .await;
    assert_eq!(c, ErrorCode::NotFound);
}

#[tokio::test]
async fn failing_validator_changes_nothing() {
    let t = setup().await;
    let v = t.version().await;
    let (c, m, stderr) = t
        .err(
            json!({"action": "set", "name": "wg0", "section": "Interface",
                    "key": "Address", "value": "INVALID"}),
        )
        .await;
    assert_eq!(c, ErrorCode::BadRequest);
    assert!(
        m.contains("validation failed") && m.contains("nothing changed"),
        "{m}"
    );
    assert_eq!(String::from_utf8_lossy(&stderr), "line 3: INVALID here\n");
    assert_eq!(t.wg_text(), WG);
    assert_eq!(t.version().await, v);
    assert!(t.backups().is_empty(), "no backup for a refused change");
    assert!(!t.f.root.join("reloads.log").exists());
    t.assert_clean();
    // Whole-file writes are validated too.
    let rep = t
        .op(json!({"action": "write", "name": "wg0"}), &[b"INVALID\n"])
        .await;
    assert_eq!(rep.result.unwrap_err().code, ErrorCode::BadRequest);
    assert_eq!(t.wg_text(), WG);
}

#[tokio::test]
async fn failing_reload_rolls_back() {
    let t = setup().await;
    std::fs::write(t.etc.join("reload-fails"), "").unwrap();
    let (c, m, stderr) = t
        .err(
            json!({"action": "set", "name": "wg0", "section": "Interface",
                    "key": "ListenPort", "value": "1"}),
        )
        .await;
    assert_eq!(c, ErrorCode::Unavailable);
    assert!(m.contains("reload failed") && m.contains("restored"), "{m}");
    assert!(String::from_utf8_lossy(&stderr).contains("Job failed"));
    assert_eq!(t.wg_text(), WG);
    // The backup of the old content was taken before the attempt.
    assert_eq!(t.backups().len(), 1);
    t.assert_clean();
    std::fs::remove_file(t.etc.join("reload-fails")).unwrap();
    let res = t
        .ok(
            json!({"action": "set", "name": "wg0", "section": "Interface",
                   "key": "ListenPort", "value": "1"}),
        )
        .await;
    assert_eq!(res["reloaded"], true);
}

#[tokio::test]
async fn two_writers_from_one_version_one_conflict() {
    let t = setup().await;
    let v = t.version().await;
    let a = t.op(
        json!({"action": "set", "name": "wg0", "section": "Interface",
               "key": "ListenPort", "value": "1111", "if_version": v}),
        &[],
    );
    let b = t.op(
        json!({"action": "set", "name": "wg0", "section": "Interface",
               "key": "ListenPort", "value": "2222", "if_version": v}),
        &[],
    );
    let (a, b) = tokio::join!(a, b);
    let results = [a.result, b.result];
    let conflicts = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e.code == ErrorCode::Conflict))
        .count();
    let oks = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!((oks, conflicts), (1, 1), "{results:?}");
    let text = t.wg_text();
    assert!(text.contains("ListenPort = 1111\n") ^ text.contains("ListenPort = 2222\n"));
    // A write with a stale version is a conflict too, and changes nothing.
    let rep = t
        .op(
            json!({"action": "write", "name": "wg0", "if_version": v}),
            &[b"x\n"],
        )
        .await;
    assert_eq!(rep.result.unwrap_err().code, ErrorCode::Conflict);
    assert_eq!(t.wg_text(), text);
}

#[tokio::test]
async fn names_and_permissions() {
    let t = setup().await;
    let carol = IdentityKey::generate();
    {
        let mut db = UserDb::open(&t.f.root.join("users.db")).unwrap();
        db.add_user("carol", &carol.public()).unwrap();
        db.add_permission("carol", "config:other").unwrap();
    }
    let list = t.ok(json!({"action": "list"})).await;
    let names: Vec<&str> = list["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "blob", "other", "wg0"]);
    let (c, _, _) = t.err(json!({"action": "read", "name": "nginx"})).await;
    assert_eq!(c, ErrorCode::NotFound);

    let cs = login_as(&t.f, "carol", &carol, now()).await.2.unwrap();
    let carol_op = |r: u64, d: Value| {
        let f = &t.f;
        let cs = &cs;
        async move { request(f, cs, r, "config", d, &[]).await }
    };
    let rep = carol_op(1, json!({"action": "list"})).await;
    let files = rep.result.unwrap()["files"].clone();
    assert_eq!(files.as_array().unwrap().len(), 1);
    assert_eq!(files[0]["name"], "other");
    assert_eq!(files[0]["format"], "raw");
    let rep = carol_op(2, json!({"action": "read", "name": "wg0"})).await;
    assert_eq!(rep.result.unwrap_err().code, ErrorCode::Forbidden);
    assert!(rep.stdout.is_empty());
    let rep = carol_op(
        3,
        json!({"action": "set", "name": "wg0", "section": "Interface", "key": "A", "value": "1"}),
    )
    .await;
    assert_eq!(rep.result.unwrap_err().code, ErrorCode::Forbidden);
    let rep = carol_op(4, json!({"action": "read", "name": "nope"})).await;
    assert_eq!(rep.result.unwrap_err().code, ErrorCode::NotFound);
    let rep = carol_op(5, json!({"action": "read", "name": "other"})).await;
    assert_eq!(rep.stdout, b"other\n");
    // Raw files: whole-file only.
    let rep = carol_op(
        6,
        json!({"action": "set", "name": "other", "key": "A", "value": "1"}),
    )
    .await;
    assert_eq!(rep.result.unwrap_err().code, ErrorCode::BadRequest);
    assert_eq!(t.wg_text(), WG);
}

#[tokio::test]
async fn env_files_and_odd_bytes_round_trip() {
    let t = setup().await;
    // env: keys outside sections; `export` and spacing kept.
    let rep = t
        .op(
            json!({"action": "read", "name": "app", "key": "DB_HOST"}),
            &[],
        )
        .await;
    assert_eq!(rep.stdout, b"db1\n");
    t.ok(json!({"action": "set", "name": "app", "key": "DB_HOST", "value": "db2"}))
        .await;
    t.ok(json!({"action": "set", "name": "app", "key": "NEW", "value": "x"}))
        .await;
    // Entries that would read back as something else are refused, the file
    // untouched: `export B=…` reads back as key B, and blanks at either end
    // of a value are trimmed (both found by the cfgedit fuzz target).
    let before = std::fs::read(t.etc.join("app.env")).unwrap();
    for desc in [
        json!({"action": "set", "name": "app", "key": "export B", "value": "1"}),
        json!({"action": "set", "name": "app", "key": "NEW", "value": " y"}),
    ] {
        let (c, msg, _) = t.err(desc).await;
        assert_eq!(c, ErrorCode::BadRequest, "{msg}");
        assert!(msg.contains("would read back"), "{msg}");
        assert!(!msg.contains(" y"), "the value is echoed: {msg}");
    }
    assert_eq!(std::fs::read(t.etc.join("app.env")).unwrap(), before);
    t.assert_clean();
    let res = t
        .ok(json!({"action": "unset", "name": "app", "key": "DB_PORT"}))
        .await;
    assert_eq!(res["removed"], 1);
    assert_eq!(
        std::fs::read(t.etc.join("app.env")).unwrap(),
        b"# app settings\nexport DB_HOST=db2\nNEW=x\n\nthis line has no equals sign\n"
    );
    let (c, _, _) = t
        .err(json!({"action": "read", "name": "app", "section": "S"}))
        .await;
    assert_eq!(c, ErrorCode::BadRequest);

    // A file that is not UTF-8, with CRLF, lines without '=', no final newline.
    let blob: &[u8] =
        b"\xff\xfe junk without equals\r\n[S]\r\nk = \xe9t\xe9\r\n  orphan line\r\n[T]\r\nx=1";
    let path = t.etc.join("blob.ini");
    // Created through `write` (the file does not exist yet: version "absent").
    let rep = t
        .op(
            json!({"action": "write", "name": "blob", "if_version": "absent"}),
            &[blob],
        )
        .await;
    assert_eq!(rep.result.unwrap()["backup"], Value::Null);
    assert_eq!(std::fs::read(&path).unwrap(), blob);
    let rep = t.op(json!({"action": "read", "name": "blob"}), &[]).await;
    assert_eq!(rep.stdout, blob);
    let rep = t
        .op(
            json!({"action": "read", "name": "blob", "section": "S", "key": "k"}),
            &[],
        )
        .await;
    assert_eq!(rep.stdout, b"\xe9t\xe9\n");
    // Writing the same bytes back changes nothing.
    let rep = t
        .op(json!({"action": "write", "name": "blob"}), &[blob])
        .await;
    assert_eq!(rep.result.unwrap()["changed"], false);
    // Editing one key leaves every other byte alone (CRLF for the new line).
    t.ok(json!({"action": "set", "name": "blob", "section": "T", "key": "x", "value": "2"}))
        .await;
    t.ok(json!({"action": "set", "name": "blob", "section": "S", "key": "new", "value": "v"}))
        .await;
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"\xff\xfe junk without equals\r\n[S]\r\nk = \xe9t\xe9\r\nnew = v\r\n  orphan line\r\n[T]\r\nx=2"
    );
    // No backups for a file configured with backup = false.
    assert!(!t.etc.join(".blob.remo-backup").exists());
}
