//! A granted directory is the directory the grant names, not wherever a
//! symbolic link in its name leads: a local account that can write to a
//! parent of a user's `files:` root must not be able to move the grant
//! (review of 2026-12-04). Against the real binary over its embedded HTTP
//! door, the user without run-as (remod acts as root), the swap made by a
//! real unprivileged account.

// Test harness: a failed unwrap is a failed test.

use crate::common;

use std::path::Path;

use common::account::Account;
use common::*;

/// The account's home-like directory holding the granted `incoming` and
/// `share/sub`, and a root-only `secret` directory outside every grant.
struct Tree {
    home: std::path::PathBuf,
    secret: std::path::PathBuf,
}

fn tree(scratch: &Scratch, acct: &Account) -> Tree {
    let home = scratch.sub("home");
    for d in ["incoming", "share/sub"] {
        std::fs::create_dir_all(home.join(d)).unwrap();
    }
    std::fs::write(home.join("share/sub/inside.txt"), b"INSIDE").unwrap();
    chown_tree(&home, &acct.name);
    let secret = scratch.sub("secret");
    chmod(&secret, 0o700);
    std::fs::write(secret.join("shadow"), b"SECRET").unwrap();
    chmod(&secret.join("shadow"), 0o600);
    Tree { home, secret }
}

fn shown(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn a_symlink_swapped_in_for_a_granted_directory_moves_nothing() {
    let acct = Account::create_as("rgr");
    let scratch = Scratch::new("grant-roots");
    let t = tree(&scratch, &acct);
    let (_remod, url, data) = start_remod_http(&scratch);
    let incoming = t.home.join("incoming");
    let share = t.home.join("share");
    let c = user_client(
        &scratch,
        &url,
        &data,
        "dropbox",
        &[
            &format!("files:read:{}", shown(&incoming)),
            &format!("files:write:{}", shown(&incoming)),
            &format!("files:read:{}", shown(&share)),
            &format!("files:read:{}", shown(&share.join("sub"))),
        ],
    );

    // The grants work as meant before the swap.
    let up = scratch.path().join("up.txt");
    std::fs::write(&up, b"hello").unwrap();
    c.ok(&["put", &shown(&up), &shown(&incoming.join("a.txt"))], None);
    let got = c.ok(&["get", &shown(&incoming.join("a.txt")), "-"], None);
    assert_eq!(got.stdout, b"hello");
    let got = c.ok(&["get", &shown(&share.join("sub/inside.txt")), "-"], None);
    assert_eq!(got.stdout, b"INSIDE");

    // The account swaps both granted directories for links to the secret
    // one: it may, it owns their parents.
    let secret = shown(&t.secret);
    let out = acct
        .sh(&format!(
            "cd {home} && mv incoming incoming.old && ln -s {secret} incoming \
             && mv share/sub share/sub.old && ln -s {secret} share/sub",
            home = shown(&t.home)
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "the swap: {out:?}");

    // Read, list and write through the swapped roots: all refused, and
    // nothing of the secret directory comes back or changes.
    for path in [incoming.join("shadow"), share.join("sub/shadow")] {
        let r = c.run(&["get", &shown(&path), "-"], None);
        assert_ne!(r.code, Some(0), "get {}: {}", path.display(), r.out());
        assert!(
            !r.out().contains("SECRET"),
            "get {} read the secret",
            path.display()
        );
        assert!(
            r.stderr.contains("symbolic link"),
            "the refusal says why: {}",
            r.stderr
        );
    }
    let r = c.run(&["ls", &shown(&incoming)], None);
    assert_ne!(r.code, Some(0), "ls through the swapped root: {}", r.out());
    assert!(
        !r.out().contains("shadow"),
        "ls listed the secret directory"
    );
    let r = c.run(
        &["put", &shown(&up), &shown(&incoming.join("planted"))],
        None,
    );
    assert_ne!(
        r.code,
        Some(0),
        "put through the swapped root: {}",
        r.stderr
    );
    assert!(
        !t.secret.join("planted").exists(),
        "put wrote into the secret directory"
    );
    let r = c.run(
        &["put", &shown(&up), &shown(&incoming.join("shadow"))],
        None,
    );
    assert_ne!(r.code, Some(0), "put over the secret: {}", r.stderr);
    assert_eq!(std::fs::read(t.secret.join("shadow")).unwrap(), b"SECRET");
    let names: Vec<_> = std::fs::read_dir(&t.secret)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["shadow"], "no debris in the secret directory");

    // An admin granting a directory reached through a link hears it at once.
    let out = run_ok(
        std::process::Command::new(REMOD)
            .args(["user", "--db"])
            .arg(&data.user_db)
            .args([
                "allow",
                "dropbox",
                &format!("files:write:{}", shown(&share.join("sub"))),
            ]),
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!(
            "warning: {} is a symbolic link",
            shown(&share.join("sub"))
        )),
        "remod user allow: {said}"
    );

    // Put back, the grants work again: the refusal was the link, not the
    // user.
    let out = acct
        .sh(&format!(
            "cd {home} && rm incoming && mv incoming.old incoming",
            home = shown(&t.home)
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "the restore: {out:?}");
    let got = c.ok(&["get", &shown(&incoming.join("a.txt")), "-"], None);
    assert_eq!(got.stdout, b"hello");
}
