//! `remo config` with the real binaries against `remod serve --http --dir`
//! whose data directory holds a `remo.toml` naming a WireGuard file:
//! get/set/diff/backups/restore, and `edit` with `EDITOR` set to a script.

// Test harness: a failed unwrap is a failed test.

use crate::common;

use std::path::Path;
use std::process::{Output, Stdio};

const WG: &str = "\
# wg0
[Interface]
Address = 10.0.0.1/24
ListenPort = 51820

# alice
[Peer]
PublicKey = ALICE+a/aaaa=
AllowedIPs = 10.0.0.2/32

# bob
[Peer]
PublicKey = BOB+b/bbbb=
AllowedIPs = 10.0.0.3/32
";

use common::{text, HttpServer as Server};

fn start(root: &Path) -> Server {
    let data = root.join("data");
    let etc = root.join("etc");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("wg0.conf"), WG).unwrap();
    std::fs::write(
        data.join("remo.toml"),
        format!(
            "[files.wg0]\npath = \"{}\"\nformat = \"ini\"\nvalidate = [\"/bin/sh\", \"-c\", \"! grep -q INVALID \\\"$0\\\"\", \"{{file}}\"]\n",
            etc.join("wg0.conf").display()
        ),
    )
    .unwrap();
    common::serve_http(&data, common::free_port(), &root.join("remod.log"))
}

fn remo(root: &Path, s: &Server, args: &[&str], editor: Option<&str>) -> Output {
    let mut c = common::remo_in(root, &s.data.join("client/admin.key"), &s.url, args);
    c.env("TMPDIR", root)
        .env_remove("VISUAL")
        .env_remove("EDITOR")
        .stdin(Stdio::null());
    if let Some(e) = editor {
        c.env("EDITOR", e);
    }
    c.output().unwrap()
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

#[test]
fn config_commands_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let s = start(root);
    let wg = root.join("etc/wg0.conf");
    let read = || std::fs::read_to_string(&wg).unwrap();

    let out = ok(&remo(root, &s, &["config", "list"], None));
    assert!(out.starts_with("wg0\tini\t"), "{out}");
    let out = ok(&remo(
        root,
        &s,
        &[
            "config",
            "get",
            "wg0",
            "Peer[PublicKey=BOB+b/bbbb=].AllowedIPs",
        ],
        None,
    ));
    assert_eq!(out, "10.0.0.3/32\n");
    let out = ok(&remo(root, &s, &["config", "get", "wg0", "Peer[0]"], None));
    assert_eq!(
        out,
        "[Peer]\nPublicKey = ALICE+a/aaaa=\nAllowedIPs = 10.0.0.2/32\n\n"
    );

    // set by public key: only that line changes.
    let o = remo(
        root,
        &s,
        &[
            "config",
            "set",
            "wg0",
            "Peer[PublicKey=BOB+b/bbbb=].AllowedIPs",
            "10.0.0.33/32",
        ],
        None,
    );
    ok(&o);
    assert!(
        text(&o.stderr).contains("wg0: changed, backup "),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(read(), WG.replace("10.0.0.3/32", "10.0.0.33/32"));

    // backups, diff against the newest, restore.
    let out = ok(&remo(root, &s, &["config", "backups", "wg0"], None));
    let ids: Vec<&str> = out.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(ids.len(), 1, "{out}");
    let id = ids[0].to_string();
    let out = ok(&remo(root, &s, &["config", "diff", "wg0"], None));
    assert!(
        out.contains("-AllowedIPs = 10.0.0.3/32\n+AllowedIPs = 10.0.0.33/32\n"),
        "{out}"
    );
    let out2 = ok(&remo(root, &s, &["config", "diff", "wg0", &id], None));
    assert_eq!(out, out2);
    ok(&remo(root, &s, &["config", "restore", "wg0", &id], None));
    assert_eq!(read(), WG);

    // A value the validator refuses: exit 1, file untouched.
    let o = remo(
        root,
        &s,
        &["config", "set", "wg0", "Interface.Address", "INVALID"],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("validation failed"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(read(), WG);

    // edit with a sed "editor": the diff is shown, the change uploaded.
    let ed = root.join("ed.sh");
    std::fs::write(
        &ed,
        "sed -i 's/ListenPort = 51820/ListenPort = 51999/' \"$1\"\n",
    )
    .unwrap();
    let editor = format!("/bin/sh {}", ed.display());
    let o = remo(root, &s, &["config", "edit", "wg0"], Some(&editor));
    let out = ok(&o);
    assert!(
        out.contains("-ListenPort = 51820\n+ListenPort = 51999\n"),
        "{out}"
    );
    assert_eq!(read(), WG.replace("51820", "51999"));

    // An editor that changes nothing uploads nothing.
    let o = remo(root, &s, &["config", "edit", "wg0"], Some("true"));
    ok(&o);
    assert!(text(&o.stderr).contains("no changes"));

    // Someone changes the file while we edit: conflict, nothing
    // overwritten, our copy kept.
    let racer = root.join("racer.sh");
    std::fs::write(
        &racer,
        format!(
            "sed -i 's/10.0.0.1\\/24/10.0.0.1\\/16/' \"$1\"\necho '# changed meanwhile' >> {}\n",
            wg.display()
        ),
    )
    .unwrap();
    let o = remo(
        root,
        &s,
        &["config", "edit", "wg0"],
        Some(&format!("/bin/sh {}", racer.display())),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("conflict") && err.contains("copy is"), "{err}");
    let now = read();
    assert!(
        now.contains("10.0.0.1/24") && now.ends_with("# changed meanwhile\n"),
        "{now}"
    );

    // Unknown names are reported as such.
    let o = remo(root, &s, &["config", "get", "nope"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("not_found"), "{}", text(&o.stderr));
}
