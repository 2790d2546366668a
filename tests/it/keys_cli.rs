//! End-to-end tests of `remo keygen`, `remod init` and `remod user …`: the
//! built binaries in temporary directories, with `openssl` as the
//! independent implementation on the other side of every key file.

// Test harness: a failed unwrap is a failed test.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use remo::keyfile::{self, KeyFileError, PassphraseSource};
use zeroize::Zeroizing;

const REMOD: &str = env!("CARGO_BIN_EXE_remod");
const REMO: &str = env!("CARGO_BIN_EXE_remo");

/// The openssl binary, or a failure that says which package provides it.
fn openssl_bin() -> PathBuf {
    for p in ["/usr/bin/openssl", "/usr/local/bin/openssl", "/bin/openssl"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("openssl not found (looked in /usr/bin, /usr/local/bin, /bin): install the Debian package `openssl`");
}

/// Runs a command detached from any terminal (so a passphrase prompt can
/// never hang the test) and without the environment variables we drive.
fn command(bin: impl AsRef<std::ffi::OsStr>, home: &Path) -> Command {
    let mut c = Command::new(bin);
    c.env_remove("REMO_PASSPHRASE")
        .env_remove("REMO_USER_DB")
        .env_remove("REMO_AUDIT_DB")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .stdin(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no Rust state.
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    c
}

fn run(mut c: Command) -> Output {
    c.output().expect("cannot run command")
}

fn openssl(home: &Path, args: &[&str]) -> Output {
    let mut c = command(openssl_bin(), home);
    c.args(args);
    let out = run(c);
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn remod(home: &Path, args: &[&str]) -> Output {
    let mut c = command(REMOD, home);
    c.args(args);
    run(c)
}

fn remo(home: &Path, args: &[&str], passphrase: Option<&str>) -> Output {
    let mut c = command(REMO, home);
    c.args(args);
    if let Some(p) = passphrase {
        c.env("REMO_PASSPHRASE", p);
    }
    run(c)
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Asserts a failure reported as one `prog: …` line containing `needle`.
fn one_line_error(out: &Output, prog: &str, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "want one line, got {err:?}");
    assert!(
        lines[0].starts_with(&format!("{prog}: ")),
        "bad prefix: {err:?}"
    );
    assert!(
        lines[0].to_lowercase().contains(&needle.to_lowercase()),
        "{err:?} does not mention {needle:?}"
    );
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn keygen_unencrypted_matches_openssl() {
    let t = tempfile::tempdir().unwrap();
    let id = t.path().join("id");
    let out = remo(
        t.path(),
        &["keygen", "-o", path_str(&id), "--no-passphrase"],
        None,
    );
    let stdout = ok(&out);
    assert_eq!(mode(&id), 0o600);
    let pub_path = t.path().join("id.pub");
    let ours = std::fs::read_to_string(&pub_path).unwrap();
    let theirs = openssl(t.path(), &["pkey", "-in", path_str(&id), "-pubout"]);
    assert_eq!(String::from_utf8(theirs.stdout).unwrap(), ours);
    let pk = keyfile::read_public_key(&pub_path).unwrap();
    assert!(stdout.contains(&pk.fingerprint()), "{stdout}");
    assert!(stdout.contains(path_str(&pub_path)), "{stdout}");
    assert!(std::fs::read_to_string(&id)
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
}

#[test]
fn keygen_encrypted_matches_openssl_and_refuses_overwrite() {
    let t = tempfile::tempdir().unwrap();
    let id = t.path().join("id");
    ok(&remo(
        t.path(),
        &["keygen", "-o", path_str(&id)],
        Some("pw one"),
    ));
    assert_eq!(mode(&id), 0o600);
    let text = std::fs::read_to_string(&id).unwrap();
    assert!(text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    let ours = std::fs::read_to_string(t.path().join("id.pub")).unwrap();
    let theirs = openssl(
        t.path(),
        &[
            "pkey",
            "-in",
            path_str(&id),
            "-passin",
            "pass:pw one",
            "-pubout",
        ],
    );
    assert_eq!(String::from_utf8(theirs.stdout).unwrap(), ours);
    // OpenSSL agrees the passphrase matters.
    let mut c = command(openssl_bin(), t.path());
    c.args(["pkey", "-in", path_str(&id), "-passin", "pass:wrong"]);
    assert!(!run(c).status.success());

    // The library loads it with the passphrase and refuses without or with a wrong one.
    let k = keyfile::load_identity(
        &id,
        &PassphraseSource::Given(Zeroizing::new("pw one".into())),
    )
    .unwrap();
    assert_eq!(
        k.public(),
        keyfile::read_public_key(&t.path().join("id.pub")).unwrap()
    );
    let e = keyfile::load_identity(
        &id,
        &PassphraseSource::Given(Zeroizing::new("pw two".into())),
    )
    .unwrap_err();
    assert!(matches!(e.kind(), KeyFileError::WrongPassphrase), "{e}");
    assert!(!e.to_string().contains("pw"), "{e}");
    let e = keyfile::load_identity(&id, &PassphraseSource::None).unwrap_err();
    assert!(matches!(e.kind(), KeyFileError::PassphraseNeeded), "{e}");

    // A second keygen refuses and changes nothing; --force replaces both files.
    let out = remo(
        t.path(),
        &["keygen", "-o", path_str(&id), "--no-passphrase"],
        None,
    );
    one_line_error(&out, "remo", 1, "--force");
    assert_eq!(std::fs::read_to_string(&id).unwrap(), text);
    ok(&remo(
        t.path(),
        &["keygen", "-o", path_str(&id), "--no-passphrase", "--force"],
        None,
    ));
    assert_eq!(mode(&id), 0o600);
    assert_ne!(std::fs::read_to_string(&id).unwrap(), text);
    assert_ne!(
        std::fs::read_to_string(t.path().join("id.pub")).unwrap(),
        ours
    );
}

#[test]
fn keygen_passphrase_problems_write_nothing() {
    let t = tempfile::tempdir().unwrap();
    let id = t.path().join("id");
    // No terminal and no REMO_PASSPHRASE.
    let out = remo(t.path(), &["keygen", "-o", path_str(&id)], None);
    one_line_error(&out, "remo", 1, "--no-passphrase");
    // Empty passphrase.
    let out = remo(t.path(), &["keygen", "-o", path_str(&id)], Some(""));
    one_line_error(&out, "remo", 1, "--no-passphrase");
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
}

#[test]
fn keygen_default_path() {
    let t = tempfile::tempdir().unwrap();
    ok(&remo(t.path(), &["keygen", "--no-passphrase"], None));
    let dir = t.path().join(".config/remo");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("id_p256")), 0o600);
    keyfile::read_public_key(&dir.join("id_p256.pub")).unwrap();
}

#[test]
fn init_creates_and_refuses_twice() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let out = ok(&remod(t.path(), &["init", path_str(&data)]));
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("server.key")), 0o600);
    let key = keyfile::read_private_key(&data.join("server.key"), None).unwrap();
    let pubk = keyfile::read_public_key(&data.join("server.pub")).unwrap();
    assert_eq!(key.public(), pubk);
    assert!(out.contains(&pubk.fingerprint()), "{out}");
    let theirs = openssl(
        t.path(),
        &["pkey", "-in", path_str(&data.join("server.key")), "-pubout"],
    );
    assert_eq!(
        String::from_utf8(theirs.stdout).unwrap(),
        std::fs::read_to_string(data.join("server.pub")).unwrap()
    );
    let db = path_str(&data.join("users.db")).to_string();
    assert_eq!(
        ok(&remod(t.path(), &["user", "list", "--db", &db, "--json"])),
        "[]\n"
    );

    let snapshot = |d: &Path| {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = snapshot(&data);
    let out = remod(t.path(), &["init", path_str(&data)]);
    one_line_error(&out, "remod", 1, "already exists");
    assert_eq!(snapshot(&data), before);

    // A directory holding only a user database is refused too, and nothing is added.
    let other = t.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("users.db"), b"").unwrap();
    let out = remod(t.path(), &["init", path_str(&other)]);
    one_line_error(&out, "remod", 1, "users.db");
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 1);

    // A server.pub in the way: init fails and cleans up the key it wrote.
    let third = t.path().join("third");
    std::fs::create_dir(&third).unwrap();
    std::fs::write(third.join("server.pub"), b"x").unwrap();
    let out = remod(t.path(), &["init", path_str(&third)]);
    one_line_error(&out, "remod", 1, "server.pub");
    assert_eq!(std::fs::read_dir(&third).unwrap().count(), 1);
}

/// Makes a data dir and returns the path of its user database.
fn init_db(home: &Path) -> String {
    let data = home.join("data");
    ok(&remod(home, &["init", path_str(&data)]));
    path_str(&data.join("users.db")).to_string()
}

fn list_json(home: &Path, db: &str) -> serde_json::Value {
    serde_json::from_str(&ok(&remod(home, &["user", "list", "--db", db, "--json"]))).unwrap()
}

#[test]
fn openssl_keys_are_accepted() {
    let t = tempfile::tempdir().unwrap();
    let h = t.path();
    let db = init_db(h);
    let p = |n: &str| path_str(&h.join(n)).to_string();

    // PKCS#8 from genpkey.
    openssl(
        h,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &p("plain.pem"),
        ],
    );
    // SEC1 from ecparam (with its EC PARAMETERS preamble).
    openssl(
        h,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            &p("sec1.pem"),
        ],
    );
    // Encrypted PKCS#8 (PBKDF2-SHA256 + AES-256-CBC).
    openssl(
        h,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-aes-256-cbc",
            "-pass",
            "pass:x",
            "-out",
            &p("enc.pem"),
        ],
    );
    // Encrypted PKCS#8 with scrypt.
    openssl(
        h,
        &[
            "pkcs8",
            "-topk8",
            "-scrypt",
            "-in",
            &p("plain.pem"),
            "-passout",
            "pass:y",
            "-out",
            &p("scrypt.pem"),
        ],
    );
    for (name, pass) in [("plain", None), ("sec1", None), ("enc", Some("x"))] {
        let mut args = vec!["pkey", "-pubout"];
        let input = p(&format!("{name}.pem"));
        let output = p(&format!("{name}.pub"));
        args.extend(["-in", &input, "-out", &output]);
        let passin = pass.map(|x| format!("pass:{x}"));
        if let Some(pi) = &passin {
            args.extend(["-passin", pi.as_str()]);
        }
        openssl(h, &args);
    }

    let read = |name: &str, pass: Option<&str>| {
        keyfile::read_private_key(&h.join(name), pass.map(str::as_bytes))
    };
    let pub_of = |name: &str| keyfile::read_public_key(&h.join(name)).unwrap();
    assert_eq!(
        read("plain.pem", None).unwrap().public(),
        pub_of("plain.pub")
    );
    assert_eq!(read("sec1.pem", None).unwrap().public(), pub_of("sec1.pub"));
    assert_eq!(
        read("enc.pem", Some("x")).unwrap().public(),
        pub_of("enc.pub")
    );
    assert_eq!(
        read("scrypt.pem", Some("y")).unwrap().public(),
        pub_of("plain.pub")
    );
    for (file, wrong) in [("enc.pem", "y"), ("scrypt.pem", "x")] {
        let e = read(file, Some(wrong)).unwrap_err();
        assert!(
            matches!(e.kind(), KeyFileError::WrongPassphrase),
            "{file}: {e}"
        );
    }
    assert!(matches!(
        read("enc.pem", None).unwrap_err().kind(),
        KeyFileError::PassphraseNeeded
    ));

    for (user, file) in [
        ("alice", "plain.pub"),
        ("bob", "sec1.pub"),
        ("carol", "enc.pub"),
    ] {
        let out = ok(&remod(
            h,
            &["user", "add", user, "--key", &p(file), "--db", &db],
        ));
        assert!(out.contains(&pub_of(file).fingerprint()), "{out}");
    }
    let list = list_json(h, &db);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    for (entry, file) in list.iter().zip(["plain.pub", "sec1.pub", "enc.pub"]) {
        assert_eq!(entry["fingerprint"], pub_of(file).fingerprint());
        assert_eq!(entry["enabled"], true);
        assert_eq!(entry["permissions"], serde_json::json!([]));
        let utc = entry["created_utc"].as_str().unwrap();
        assert_eq!(utc.len(), 20, "{utc}");
        assert!(utc.ends_with('Z') && utc.as_bytes()[10] == b'T', "{utc}");
    }

    // Table output, enable/disable/remove, REMO_USER_DB.
    let mut c = command(REMOD, h);
    c.args(["user", "disable", "bob"]).env("REMO_USER_DB", &db);
    ok(&run(c));
    let table = ok(&remod(h, &["user", "list", "--db", &db]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{table}");
    assert!(lines[0].contains("FINGERPRINT") && lines[0].contains("PERMISSIONS"));
    let bob = lines.iter().find(|l| l.starts_with("bob ")).unwrap();
    assert!(bob.contains(" no ") && bob.contains(&pub_of("sec1.pub").fingerprint()));
    ok(&remod(h, &["user", "enable", "bob", "--db", &db]));
    assert_eq!(list_json(h, &db)[1]["enabled"], true);
    ok(&remod(h, &["user", "remove", "carol", "--db", &db]));
    assert_eq!(list_json(h, &db).as_array().unwrap().len(), 2);
}

#[test]
fn bad_inputs_fail_cleanly_and_change_nothing() {
    let t = tempfile::tempdir().unwrap();
    let h = t.path();
    let db = init_db(h);
    let p = |n: &str| path_str(&h.join(n)).to_string();
    ok(&remo(
        h,
        &["keygen", "-o", &p("alice"), "--no-passphrase"],
        None,
    ));
    ok(&remod(
        h,
        &[
            "user",
            "add",
            "alice",
            "--key",
            &p("alice.pub"),
            "--db",
            &db,
        ],
    ));
    ok(&remo(
        h,
        &["keygen", "-o", &p("bob"), "--no-passphrase"],
        None,
    ));

    openssl(
        h,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            &p("p384.pem"),
        ],
    );
    openssl(
        h,
        &[
            "pkey",
            "-in",
            &p("p384.pem"),
            "-pubout",
            "-out",
            &p("p384.pub"),
        ],
    );
    openssl(
        h,
        &["genpkey", "-algorithm", "ED25519", "-out", &p("ed.pem")],
    );
    openssl(
        h,
        &["pkey", "-in", &p("ed.pem"), "-pubout", "-out", &p("ed.pub")],
    );
    openssl(
        h,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
            &p("rsa.pem"),
        ],
    );
    openssl(
        h,
        &[
            "pkey",
            "-in",
            &p("rsa.pem"),
            "-pubout",
            "-out",
            &p("rsa.pub"),
        ],
    );
    std::fs::write(
        h.join("junk.pub"),
        "-----BEGIN PUBLIC KEY-----\nnot base64 at all!\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    std::fs::write(h.join("empty.pub"), "").unwrap();
    std::fs::write(h.join("binary.pub"), [0xffu8, 0xfe, 0, 1]).unwrap();

    let before = list_json(h, &db);
    let add =
        |name: &str, file: &str| remod(h, &["user", "add", name, "--key", &p(file), "--db", &db]);
    let cases: Vec<(Output, &str)> = vec![
        (add("carol", "junk.pub"), "malformed"),
        (add("carol", "empty.pub"), "no PEM block"),
        (add("carol", "binary.pub"), "not a PEM text file"),
        (add("carol", "missing.pub"), "missing.pub"),
        (add("carol", "bob"), "private key"),
        (add("carol", "p384.pub"), "P-384"),
        (add("carol", "ed.pub"), "Ed25519"),
        (add("carol", "rsa.pub"), "RSA"),
        (add("bad name", "bob.pub"), "invalid user name"),
        (add("", "bob.pub"), "invalid user name"),
        (add("alice", "bob.pub"), "already exists"),
        (
            add("carol", "alice.pub"),
            "already registered to user alice",
        ),
        (
            remod(h, &["user", "disable", "nobody", "--db", &db]),
            "no such user: nobody",
        ),
        (
            remod(h, &["user", "enable", "nobody", "--db", &db]),
            "no such user",
        ),
        (
            remod(h, &["user", "remove", "nobody", "--db", &db]),
            "no such user",
        ),
    ];
    for (out, needle) in &cases {
        one_line_error(out, "remod", 1, needle);
    }
    assert_eq!(list_json(h, &db), before);

    // Library-level: private keys of the wrong kind, and malformed PEM.
    for (file, needle) in [
        ("p384.pem", "P-384"),
        ("ed.pem", "Ed25519"),
        ("rsa.pem", "RSA"),
    ] {
        let e = keyfile::read_private_key(&h.join(file), None).unwrap_err();
        assert!(
            matches!(e.kind(), KeyFileError::Unsupported(_)),
            "{file}: {e}"
        );
        assert!(e.to_string().contains(needle), "{e}");
    }
    let e = keyfile::read_private_key(&h.join("junk.pub"), None).unwrap_err();
    assert!(matches!(e.kind(), KeyFileError::Malformed(_)), "{e}");

    // No database given: usage error. A missing database: failure, not created.
    let out = remod(h, &["user", "list"]);
    one_line_error(&out, "remod", 2, "REMO_USER_DB");
    let out = remod(h, &["user", "list", "--db", &p("nope.db")]);
    one_line_error(&out, "remod", 1, "no such user database");
    assert!(!h.join("nope.db").exists());
    let out = remod(h, &["user", "list", "--db", &p("alice.pub")]);
    one_line_error(&out, "remod", 1, "alice.pub");
}

/// `remod audit` on a data directory remod has not served from: an empty
/// result (and a note why), not an error, and nothing created. A directory
/// that does not exist is still an error. The old code failed with
/// "cannot create audit database: entity not found".
#[test]
fn audit_before_the_first_request_is_empty() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(&remod(t.path(), &["init", path_str(&data)]));
    let db = data.join("users.db");
    let out = remod(t.path(), &["audit", "--user-db", path_str(&db), "--json"]);
    assert_eq!(ok(&out), "[]\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist yet"), "{err}");
    let table = ok(&remod(t.path(), &["audit", "--user-db", path_str(&db)]));
    assert!(
        table.starts_with("TIME ") && table.lines().count() == 1,
        "{table}"
    );
    assert!(
        !data.join("audit.db").exists(),
        "audit must not create the file"
    );
    let nowhere = t.path().join("nowhere/audit.db");
    let out = remod(t.path(), &["audit", "--db", path_str(&nowhere)]);
    one_line_error(&out, "remod", 1, "no such directory");
}
