//! The browser console in a real browser: Debian's chromium, driven by
//! Playwright (`console/browser/scenario.mjs`), against real remod behind
//! nginx (the shipped snippet, prefix /remo) and behind its embedded HTTP
//! door. The script creates a key in the browser, which this test
//! registers with `remod user add`; signs in with the keyboard only; runs
//! `uname -a` and a command writing to both streams; browses a directory;
//! uploads and downloads a 200 MB file (byte-identical, the page's JS heap
//! bounded); checks the pages at 360 px; sees the blocking warning after
//! this test re-keys the server; and records every request the browser
//! makes (none may leave the origin) and that the CSP is enforced.
//!
//! With `REMO_CONSOLE_SHOTS=DIR` the nginx run writes the documentation's
//! screenshots there (console/browser/screenshots.sh).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::browser::{user_add, Scenario};
use crate::common::*;

/// The console's CSP, as the browser must see it.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; worker-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'none'";

/// The page's JS heap (V8's used size) must stay below this while moving
/// 200 MB each way.
const HEAP_LIMIT: u64 = 100 << 20;
/// The same with the ArrayBuffers' memory (parts and records not yet
/// collected): well below the file, so it was never held whole.
const ALL_LIMIT: u64 = 160 << 20;

/// The server's fingerprint as `/info` states it now.
fn info_fingerprint(url: &str) -> String {
    let (status, body) = curl("GET", &format!("{url}/info"), &[], None);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["fingerprint"].as_str().unwrap().to_string()
}

/// What the scenario needs on the server side, made by this test.
struct Fixture {
    scratch: Scratch,
    remote: PathBuf,
    big: PathBuf,
    big_sha: String,
}

fn fixture(name: &str) -> Fixture {
    let scratch = Scratch::new(name);
    let remote = scratch.sub("remote");
    fs::create_dir_all(remote.join("sub")).unwrap();
    fs::write(remote.join("hello.txt"), "hello\n").unwrap();
    fs::write(remote.join("sub/inner.txt"), "inner\n").unwrap();
    let big = scratch.sub("local").join("up.bin");
    let big_sha = random_file(&big, BIG_FILE);
    fs::copy(&big, remote.join("down.bin")).unwrap();
    fs::hard_link(&big, big.with_file_name("cancel.bin")).unwrap();
    Fixture {
        scratch,
        remote,
        big,
        big_sha,
    }
}

/// Runs the scenario against `console_url`; `user_db` is where `remod user
/// add` registers the browser's key; `server("restart")` restarts the
/// server (its sessions are gone), `server("rekey")` gives it a new key and
/// restarts it. Returns the script's result.
fn run_scenario(
    f: &Fixture,
    console_url: &str,
    user_db: &Path,
    shots: bool,
    mut server: impl FnMut(&str),
) -> Value {
    let mut sc = Scenario::new("scenario.mjs", console_url, &f.scratch.sub("browser"))
        .env("BIG_FILE", &f.big)
        .env("REMOTE_DIR", &f.remote)
        .env("CANCEL_FILE", f.big.with_file_name("cancel.bin"))
        .timeout(Duration::from_secs(900));
    if !shots {
        sc = sc.no_shots();
    }
    sc.run(|what| match what {
        "rekey" | "restart" => server(what),
        w => user_add(user_db, w, &["admin"]),
    })
}

/// A new server key at `key_file` (`remo keygen`).
fn rekey(f: &Fixture, key_file: &Path) {
    fs::remove_file(key_file).unwrap();
    run_ok(
        Command::new(REMO)
            .envs(client_env(&f.scratch))
            .args(["keygen", "--no-passphrase", "-o"])
            .arg(key_file),
    );
}

/// Everything the scenario saw that must hold, whichever the front door.
fn check_result(r: &Value, f: &Fixture, old_fp: &str, new_fp: &str) {
    let s = |p: &str| {
        r.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let b = |p: &str| r.pointer(p).and_then(Value::as_bool);
    let n = |p: &str| r.pointer(p).and_then(Value::as_u64).unwrap();

    // The policy is sent, and enforced: no inline script, no eval.
    assert_eq!(s("/csp"), CSP);
    assert_eq!(b("/inlineBlocked"), Some(true));
    assert_eq!(
        n("/cspMessagesBefore"),
        0,
        "CSP violations: {}",
        r["console"]
    );
    // Nothing leaves the origin.
    assert_eq!(
        r["foreign"],
        Value::Array(vec![]),
        "requests: {}",
        r["requests"]
    );
    assert!(r["requests"].as_array().unwrap().len() > 10);
    for m in r["console"].as_array().unwrap() {
        let m = m.as_str().unwrap();
        assert!(
            !m.starts_with("pageerror") && !m.contains("404"),
            "browser console: {m}"
        );
    }

    // The key: created in the browser, not extractable, registered.
    assert_eq!(b("/extractable/extractable"), Some(false));
    assert_eq!(b("/extractable/exported"), Some(false));
    assert_eq!(s("/extractable/type"), "private");
    assert!(s("/pem").starts_with("-----BEGIN PUBLIC KEY-----\n"));
    assert_eq!(s("/registerCmd"), "remod user add alice --key alice.pub");

    // Key files: PBES2 imported (the fingerprint openssl's key has),
    // scrypt refused with the command that converts it.
    assert!(
        s("/imported/status").starts_with("Imported openssl"),
        "{}",
        s("/imported/status")
    );
    assert_eq!(s("/imported/fingerprint"), s("/importWant"));
    assert!(
        s("/scrypt").contains("openssl pkcs8 -topk8 -v2 aes-256-cbc"),
        "{}",
        s("/scrypt")
    );
    assert_eq!(n("/keyCount"), 2);

    // Keyboard-only sign-in.
    assert_eq!(b("/keyboardReachedUser"), Some(true));
    assert_eq!(b("/keyboardOnButton"), Some(true));
    assert!(s("/signedIn").contains("alice"), "{}", s("/signedIn"));
    assert_eq!(s("/serverFp"), old_fp);

    // Commands.
    let uname = run_ok(Command::new("uname").arg("-a")).stdout;
    assert_eq!(s("/uname/out"), String::from_utf8(uname).unwrap());
    assert!(s("/uname/result").starts_with("exit code 0"));
    assert_eq!(s("/streams/stdout"), "to-stdout\nmore-out\n");
    assert_eq!(s("/streams/stderr"), "to-stderr\n");
    assert!(s("/streams/result").starts_with("exit code 3"));
    assert_eq!(
        r.pointer("/streams/recent")
            .and_then(Value::as_array)
            .map(Vec::len),
        Some(2)
    );

    // The directory browser.
    let listing: Vec<&str> = r["listing"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in ["..", "sub/", "down.bin", "hello.txt"] {
        assert!(listing.contains(&want), "{want} not in {listing:?}");
    }
    assert!(r["subListing"].to_string().contains("inner.txt"));

    // 200 MB down and up, byte-identical, checked, the heap bounded.
    eprintln!(
        "console: download {}, upload {}",
        r["download"]["heap"], r["upload"]["heap"]
    );
    eprintln!(
        "console: download {} s, upload {} s",
        r["download"]["seconds"], r["upload"]["seconds"]
    );
    assert!(s("/download/failure").is_empty(), "{}", r["download"]);
    assert_eq!(s("/download/suggested"), "down.bin");
    assert_eq!(s("/download/state"), "done", "{}", s("/download/text"));
    assert_eq!(sha256_file(Path::new(&s("/download/path"))), f.big_sha);
    assert!(s("/download/text").contains(&f.big_sha));
    let used = n("/download/heap/maxUsed");
    assert!(
        used > 0 && used < HEAP_LIMIT,
        "download: JS heap {used} bytes"
    );
    let all = n("/download/heap/max");
    assert!(all < ALL_LIMIT, "download: JS heap and buffers {all} bytes");

    // Cancelled transfers: the browser's download fails, the upload
    // leaves nothing behind.
    assert!(
        s("/cancelDownload/row").contains("cancelled"),
        "{}",
        r["cancelDownload"]
    );
    assert!(
        !s("/cancelDownload/failure").is_empty(),
        "{}",
        r["cancelDownload"]
    );
    assert!(
        s("/cancelUpload/row").contains("cancelled"),
        "{}",
        r["cancelUpload"]
    );
    assert!(!f.remote.join("cancel.bin").exists());
    let names: Vec<_> = fs::read_dir(&f.remote)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "left in the directory: {names:?}");

    // The server restarted (its sessions gone): the next command signs in
    // again by itself.
    assert_eq!(s("/relogin/out"), "after restart\n");
    assert!(
        s("/relogin/result").starts_with("exit code 0"),
        "{}",
        s("/relogin/result")
    );
    assert!(
        s("/relogin/session").contains("renewed 1"),
        "{}",
        s("/relogin/session")
    );

    // 360 px wide: no page wider than the screen.
    for p in ["keys", "signin", "run", "files"] {
        assert!(n(&format!("/narrow/{p}")) <= 360, "{p}: {}", r["narrow"]);
    }

    // The changed server key: blocking, both fingerprints, nothing sent.
    assert_ne!(old_fp, new_fp);
    assert_eq!(s("/warning/pinned"), old_fp);
    assert_eq!(s("/warning/offered"), new_fp);
    assert!(s("/warning/text").contains("WARNING: the server key changed"));
    assert_eq!(b("/warning/stillThere"), Some(true));
    assert_eq!(s("/warning/focused"), "keep-old-key");
    assert_eq!(s("/afterTrust"), new_fp);

    // Last: the upload in parts (the resumable put).
    assert_eq!(s("/upload/state"), "done", "{}", s("/upload/text"));
    assert_eq!(sha256_file(&f.remote.join("up.bin")), f.big_sha);
    assert!(
        s("/upload/text").contains(&f.big_sha),
        "{}",
        s("/upload/text")
    );
    let used = n("/upload/heap/maxUsed");
    assert!(
        used > 0 && used < HEAP_LIMIT,
        "upload: JS heap {used} bytes"
    );
    let all = n("/upload/heap/max");
    assert!(all < ALL_LIMIT, "upload: JS heap and buffers {all} bytes");
}

#[test]
fn console_in_chromium_through_nginx() {
    let f = fixture("console-browser-nginx");
    let data = init_data_dir(&f.scratch, "admin");
    let (remod, sock) = start_remod_fcgi(&f.scratch, &data);
    let (mut nginx, url) = start_nginx(&f.scratch, &sock, &data);
    let old_fp = info_fingerprint(&url);
    let mut remod = Some(remod);
    let r = run_scenario(
        &f,
        &format!("{url}/console/"),
        &data.user_db,
        true,
        |what| {
            if let Some(mut p) = remod.take() {
                p.stop();
            }
            if what == "rekey" {
                // A new key at the same path.
                rekey(&f, &data.key_file);
            }
            let (p, _) = start_remod_fcgi(&f.scratch, &data);
            remod = Some(p);
        },
    );
    let new_fp = info_fingerprint(&url);
    check_result(&r, &f, &old_fp, &new_fp);
    nginx.assert_running();
    remod.unwrap().assert_running();
}

#[test]
fn console_in_chromium_over_embedded_http() {
    let f = fixture("console-browser-http");
    let port = free_port();
    let dir = f.scratch.path().join("quick");
    let start = |log: &str| {
        let mut cmd = remod_http_command(&dir, port);
        cmd.env("RUST_LOG", "info").current_dir(f.scratch.path());
        let mut p = Proc::spawn("remod", cmd, &f.scratch.path().join(log));
        p.wait_port(port);
        p
    };
    let mut remod = Some(start("remod.log"));
    let url = format!("http://127.0.0.1:{port}");
    let data = quick_data_dir(&dir);
    let old_fp = info_fingerprint(&url);
    let mut starts = 1;
    let r = run_scenario(
        &f,
        &format!("{url}/console/"),
        &data.user_db,
        false,
        |what| {
            if let Some(mut p) = remod.take() {
                p.stop();
            }
            if what == "rekey" {
                rekey(&f, &data.key_file);
            }
            starts += 1;
            remod = Some(start(&format!("remod{starts}.log")));
        },
    );
    let new_fp = info_fingerprint(&url);
    fs::write(f.scratch.path().join("result.json"), r.to_string()).unwrap();
    check_result(&r, &f, &old_fp, &new_fp);
    remod.unwrap().assert_running();
}
