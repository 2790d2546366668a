//! `list` and `remo ls` against the real binaries: `remod serve --http`
//! (and once nginx in front of `remod serve --fcgi`), users made with
//! `remod user add`, a tree of real files. Each refusal is an attack on the
//! server: paths that climb out, a symlink to /etc, grants other than
//! `files:read`, a directory the run-as account may not read, and the
//! limit on entries.

// Test harness: a failed unwrap is a failed test.

use crate::common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::account::Account;
use common::*;

/// `tree/ro`: files, a hidden one, a directory, a symlink to /etc, a
/// relative one that climbs out, names that are not UTF-8 or hold a
/// newline; `tree/secret` beside it, not granted.
fn tree(scratch: &Scratch) -> PathBuf {
    let t = scratch.sub("tree");
    let ro = t.join("ro");
    std::fs::create_dir_all(ro.join("sub")).unwrap();
    std::fs::create_dir_all(t.join("secret")).unwrap();
    std::fs::write(t.join("secret/key.txt"), "SECRET").unwrap();
    for (name, data) in [
        (&b"b.txt"[..], &b"bb"[..]),
        (b"a.txt", b"a"),
        (b"Zed", b""),
        (b".hidden", b"h"),
        (b"bad\xff", b"x"),
        (b"new\nline", b""),
    ] {
        std::fs::write(ro.join(OsStr::from_bytes(name)), data).unwrap();
    }
    chmod(&ro.join("a.txt"), 0o640);
    symlink("/etc", ro.join("link")).unwrap();
    symlink("..", ro.join("up")).unwrap();
    t
}

fn p(t: &Path, rel: &str) -> String {
    t.join(rel).display().to_string()
}

/// The plain, `-a`, `-l` and `--json` listings of a granted directory, in
/// byte order, with links shown and not followed.
#[test]
fn ls_lists_a_granted_directory() {
    let scratch = Scratch::new("list-ls");
    let (_remod, url, data) = start_remod_http(&scratch);
    let t = tree(&scratch);
    let c = user_client(
        &scratch,
        &url,
        &data,
        "reader",
        &[&format!("files:read:{}", t.join("ro").display())],
    );
    let ro = p(&t, "ro");
    let r = c.ok(&["ls", &ro], None);
    assert_eq!(
        r.out(),
        "Zed\na.txt\nb.txt\nbad\u{fffd}\nlink\nnew?line\nsub/\nup\n"
    );
    let r = c.ok(&["ls", "-a", &ro], None);
    assert!(r.out().starts_with(".hidden\nZed\n"), "{}", r.out());

    let r = c.ok(&["ls", "--json", "-a", &ro], None);
    let entries: Vec<serde_json::Value> = r
        .out()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            ".hidden",
            "Zed",
            "a.txt",
            "b.txt",
            "bad\u{fffd}",
            "link",
            "new\nline",
            "sub",
            "up"
        ]
    );
    let by = |n: &str| entries.iter().find(|e| e["name"] == n).unwrap();
    let a = by("a.txt");
    assert_eq!(a["type"], "file");
    assert_eq!(a["size"], 1);
    assert_eq!(a["mode"], 0o640);
    let mtime = std::fs::metadata(t.join("ro/a.txt")).unwrap();
    assert_eq!(
        a["mtime"],
        std::os::unix::fs::MetadataExt::mtime(&mtime),
        "{a}"
    );
    assert!(a.get("target").is_none() && a.get("name_b64").is_none());
    let link = by("link");
    assert_eq!(link["type"], "symlink");
    assert_eq!(link["target"], "/etc");
    assert_eq!(link["size"], 4, "the link's own size, not /etc's");
    assert_eq!(by("sub")["type"], "dir");
    assert_eq!(by("up")["target"], "..");
    let bad = by("bad\u{fffd}");
    assert_eq!(bad["name_b64"], "YmFk_w", "the exact bytes, b64url");

    let r = c.ok(&["ls", "-l", &ro], None);
    let out = r.out();
    let line = |name: &str| {
        out.lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} not in {out}"))
    };
    assert!(line("link -> /etc").starts_with("lrwxrwxrwx "), "{out}");
    assert!(line(" a.txt").starts_with("-rw-r----- "), "{out}");
    assert!(line(" sub").starts_with("drwx"), "{out}");
    assert!(!out.contains(".hidden"));
    // -la: both.
    let r = c.ok(&["ls", "-la", &ro], None);
    assert!(r.out().contains(" .hidden\n") && r.out().contains(" link -> /etc\n"));

    // A relative path is below the server's home; the granted root is not,
    // so it is refused like any path outside it.
    let r = c.run(&["ls", "ro"], None);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("forbidden"), "{}", r.stderr);
}

/// Every path `get` refuses, `list` refuses with the same answer:
/// `..` out of the root, absolute paths elsewhere, a symlink to /etc and a
/// relative one that climbs out (followed only beneath the root), with or
/// without a trailing `/`. A file is `bad_request`, a missing directory
/// `not_found`. Users with `files:write` only, or no files grant, get
/// nothing; an admin is not confined.
#[test]
fn list_is_confined_exactly_like_get() {
    let scratch = Scratch::new("list-confine");
    let (_remod, url, data) = start_remod_http(&scratch);
    let t = tree(&scratch);
    let root = format!("files:read:{}", t.join("ro").display());
    let c = user_client(&scratch, &url, &data, "reader", &[&root]);
    // Pinned first, so the refusals below are all stderr says.
    c.ok(&["info"], None);
    let outside = [
        p(&t, "ro/link"),
        p(&t, "ro/link/"),
        p(&t, "ro/up"),
        p(&t, "ro/up/secret"),
        p(&t, "ro/.."),
        p(&t, "ro/../secret"),
        p(&t, "ro/sub/../../secret"),
        p(&t, "secret"),
        p(&t, "ro2"),
        "/etc".to_string(),
        "/".to_string(),
        "../../../../etc".to_string(),
        "/proc/self/root/etc".to_string(),
    ];
    for path in &outside {
        let l = c.run(&["ls", path], None);
        assert_eq!(l.code, Some(1), "ls {path}: {} {}", l.out(), l.stderr);
        assert!(l.stdout.is_empty(), "ls {path} listed: {}", l.out());
        assert!(
            l.stderr.contains("remo: forbidden: "),
            "ls {path}: {}",
            l.stderr
        );
        // The same answer as `get` of the same path, word for word.
        let g = c.run(&["get", path, "-"], None);
        assert_eq!(g.code, Some(1), "get {path}");
        assert_eq!(l.stderr, g.stderr, "ls and get differ for {path}");
    }
    // Inside the root, a relative link to a directory inside is followed.
    symlink("sub", t.join("ro/in")).unwrap();
    std::fs::write(t.join("ro/sub/deep.txt"), "d").unwrap();
    assert_eq!(c.ok(&["ls", &p(&t, "ro/in/")], None).out(), "deep.txt\n");

    let r = c.run(&["ls", &p(&t, "ro/a.txt")], None);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("bad_request: ") && r.stderr.contains("is not a directory"),
        "{}",
        r.stderr
    );
    let r = c.run(&["ls", &p(&t, "ro/nothing")], None);
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("not_found: "), "{}", r.stderr);

    // Other grants are not files:read.
    let w = user_client(
        &scratch,
        &url,
        &data,
        "writer",
        &[&format!("files:write:{}", t.join("ro").display()), "cmd"],
    );
    let n = user_client(&scratch, &url, &data, "nofiles", &["cmd", "sh"]);
    for who in [&w, &n] {
        let r = who.run(&["ls", &p(&t, "ro")], None);
        assert_eq!(r.code, Some(1), "{}: {}", who.user, r.out());
        assert!(r.stdout.is_empty());
        assert!(r.stderr.contains("remo: forbidden: "), "{}", r.stderr);
    }

    // Admins are not confined (their root is `/`).
    let admin = Client::new(&scratch, &url, &data);
    let r = admin.ok(&["ls", &p(&t, "ro/link/")], None);
    assert!(r.out().lines().any(|l| l == "passwd"), "{}", r.out());
}

/// A run-as user lists with the account's rights: a root-owned 0700
/// directory is refused, and so is one the account may read but not
/// search (0744), whose entries only root could `lstat` — every `fstatat`
/// runs as the account, not as remod.
#[test]
fn run_as_lists_with_the_accounts_rights() {
    let acct = Account::create_as("remol");
    let scratch = Scratch::new("list-runas");
    let (_remod, url, data) = start_remod_http(&scratch);
    let d = scratch.sub("ra");
    for (dir, mode) in [("open", 0o755), ("private", 0o700), ("nosearch", 0o744)] {
        std::fs::create_dir(d.join(dir)).unwrap();
        std::fs::write(d.join(dir).join("f.txt"), "x").unwrap();
        chmod(&d.join(dir), mode);
    }
    let c = user_client(
        &scratch,
        &url,
        &data,
        "deployer",
        &[
            &format!("run-as:{}", acct.name),
            &format!("files:read:{}", d.display()),
        ],
    );
    assert_eq!(c.ok(&["ls", &p(&d, "open")], None).out(), "f.txt\n");
    for dir in ["private", "nosearch"] {
        let r = c.run(&["ls", &p(&d, dir)], None);
        assert_eq!(r.code, Some(1), "{dir}: listed {}", r.out());
        assert!(r.stdout.is_empty(), "{dir}: {}", r.out());
        assert!(
            r.stderr.contains("remo: forbidden: "),
            "{dir}: {}",
            r.stderr
        );
    }
    // The same directories, without run-as: remod's own (root's) rights.
    let root_user = user_client(
        &scratch,
        &url,
        &data,
        "plain",
        &[&format!("files:read:{}", d.display())],
    );
    for dir in ["private", "nosearch"] {
        assert_eq!(root_user.ok(&["ls", &p(&d, dir)], None).out(), "f.txt\n");
    }
}

/// `[limits] list_max_entries`, changed by a reload: the first entries by
/// name, whatever order they were made in; `remo ls` exits 1 and says so.
#[test]
fn the_limit_cuts_the_listing_to_the_first_names() {
    let scratch = Scratch::new("list-limit");
    let (remod, url, data) = start_remod_http(&scratch);
    let d = scratch.sub("many");
    for i in [7, 3, 9, 0, 5, 1, 8, 2, 6, 4] {
        std::fs::write(d.join(format!("f{i}")), "").unwrap();
    }
    let c = Client::new(&scratch, &url, &data);
    let dir = d.display().to_string();
    let all: String = (0..10).map(|i| format!("f{i}\n")).collect();
    assert_eq!(c.ok(&["ls", &dir], None).out(), all);
    std::fs::write(
        data.dir.join("remo.toml"),
        "[limits]\nlist_max_entries = 4\n",
    )
    .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(remod.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let log = wait_log(&scratch.path().join("remod.log"), "reload done", 1);
    assert!(
        log.contains("[limits] list_max_entries 100000 -> 4 (from the next request)"),
        "{log}"
    );
    // `remod status --json` shows the limit in force.
    let o = remod_command()
        .args(["status", "--json", "--dir"])
        .arg(&data.dir)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["limits"]["list_max_entries"], 4, "{v}");
    let r = c.run(&["ls", &dir], None);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert_eq!(r.out(), "f0\nf1\nf2\nf3\n");
    assert!(
        r.stderr.contains("only the first 4 entries by name"),
        "{}",
        r.stderr
    );
    let r = c.run(&["ls", "--json", &dir], None);
    assert_eq!(r.out().lines().count(), 4);
    // A directory within the limit is whole.
    let small = scratch.sub("small");
    std::fs::write(small.join("one"), "").unwrap();
    assert_eq!(
        c.ok(&["ls", &small.display().to_string()], None).out(),
        "one\n"
    );
}

/// Through nginx and FastCGI: a listing of several records' worth
/// (3,000 entries with long names) arrives whole and in order.
#[test]
fn a_long_listing_through_nginx() {
    let scratch = Scratch::new("list-nginx");
    let data = init_data_dir(&scratch, "admin");
    let (_remod, sock) = start_remod_fcgi(&scratch, &data);
    let (_nginx, url) = start_nginx(&scratch, &sock, &data);
    let d = scratch.sub("big");
    let mut want: Vec<String> = (0..3000).map(|i| format!("{i:0>180}")).collect();
    for n in want.iter().rev() {
        std::fs::write(d.join(n), "").unwrap();
    }
    want.sort();
    let c = Client::new(&scratch, &url, &data);
    let r = c.ok(&["ls", &d.display().to_string()], None);
    let out = r.out();
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), 3000);
    assert!(got.iter().zip(&want).all(|(g, w)| g == w));
    assert!(out.len() > 3 * 65_536, "less than a few records' worth");
}
