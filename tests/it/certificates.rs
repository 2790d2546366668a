//! User certificates (PROTOCOL.md §7) against the real binaries: `remo ca`
//! makes the CA and the certificates, remod trusts the CA through
//! `--ca-keys` and reads `--revoked`, and `remo` sends the certificate that
//! sits beside its key. Users are not registered on the servers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use remo::proto::b64;
use remo::proto::cert::Certificate;
use remo::proto::handshake::{AuthRequest, ClientHandshake};
use remo::proto::identity::IdentityKey;

/// `remo ARGS` for local commands (`ca`, `keygen`) with HOME in `scratch`.
fn remo_local(scratch: &Scratch, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_remo"))
        .envs(client_env(scratch))
        .env_remove("REMO_PASSPHRASE")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "remo {args:?}: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// A CA, its revocation list, and user keys, made with `remo ca` and
/// `remo keygen` as an admin would.
struct Ca {
    dir: PathBuf,
    key: PathBuf,
    public: PathBuf,
    revoked: PathBuf,
}

impl Ca {
    fn new(scratch: &Scratch) -> Ca {
        let dir = scratch.sub("ca");
        let key = dir.join("ca");
        remo_local(
            scratch,
            &["ca", "init", "--no-passphrase", "-o", key.to_str().unwrap()],
        );
        Ca {
            public: dir.join("ca.pub"),
            revoked: dir.join("revoked"),
            key,
            dir,
        }
    }

    /// `remo keygen` for `name`; returns the private key's path.
    fn user_key(&self, scratch: &Scratch, name: &str) -> PathBuf {
        let k = self.dir.join(name);
        remo_local(
            scratch,
            &["keygen", "--no-passphrase", "-o", k.to_str().unwrap()],
        );
        k
    }

    /// `remo ca sign` for `user`'s key: the certificate lands in KEY-cert.
    fn sign(&self, scratch: &Scratch, user: &str, key: &Path, extra: &[&str]) -> PathBuf {
        let public = format!("{}.pub", key.display());
        let mut args = vec![
            "ca",
            "sign",
            "--ca",
            self.key.to_str().unwrap(),
            "--user",
            user,
            "--key",
            &public,
        ];
        args.extend_from_slice(extra);
        remo_local(scratch, &args);
        let cert = PathBuf::from(format!("{}-cert", key.display()));
        assert!(cert.exists(), "no {}", cert.display());
        cert
    }

    /// `remo ca revoke --list LIST` with `what` (`--cert FILE`, or
    /// `--serial N --ca CA.pub`).
    fn revoke(&self, scratch: &Scratch, what: &[&str]) {
        let mut args = vec!["ca", "revoke", "--list", self.revoked.to_str().unwrap()];
        args.extend_from_slice(what);
        remo_local(scratch, &args);
    }

    /// The CA private key as a library key (for certificates the tool
    /// refuses to make: expired, for another user).
    fn identity(&self) -> IdentityKey {
        remo::keyfile::load_identity(&self.key, &remo::keyfile::PassphraseSource::None).unwrap()
    }
}

/// `remod serve --http` with its own data directory, trusting `ca`, named
/// `name` for `hosts` patterns.
fn start_server(scratch: &Scratch, ca: &Ca, name: &str) -> (Proc, String, DataDir, PathBuf) {
    let port = free_port();
    let dir = scratch.path().join(format!("data-{name}"));
    let log = scratch.path().join(format!("remod-{name}.log"));
    let mut cmd = remod_http_command(&dir, port);
    cmd.arg("--ca-keys")
        .arg(&ca.public)
        .arg("--revoked")
        .arg(&ca.revoked)
        .arg("--server-name")
        .arg(name)
        .env("RUST_LOG", "info");
    let mut p = Proc::spawn(name, cmd, &log);
    p.wait_port(port);
    (
        p,
        format!("http://127.0.0.1:{port}"),
        quick_data_dir(&dir),
        log,
    )
}

fn client_for(scratch: &Scratch, url: &str, data: &DataDir, user: &str, key: &Path) -> Client {
    let mut c = Client::new(scratch, url, data);
    c.user = user.to_string();
    c.key = key.to_path_buf();
    c
}

fn audit_rows(data: &DataDir) -> Vec<serde_json::Value> {
    let out = run_ok(
        remod_command()
            .args(["audit", "--json", "--user-db"])
            .arg(&data.user_db),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn certificate_logins_grants_hosts_and_revocation() {
    let scratch = Scratch::new("certs");
    let ca = Ca::new(&scratch);
    let carol = ca.user_key(&scratch, "carol");
    let cert = ca.sign(
        &scratch,
        "carol",
        &carol,
        &[
            "--valid",
            "1h",
            "--hosts",
            "web* app",
            "--grant",
            "cmd:/usr/bin/id",
            "--grant",
            "cmd:/usr/bin/sleep",
            "--serial",
            "42",
        ],
    );
    let shown = remo_local(
        &scratch,
        &[
            "ca",
            "show",
            cert.to_str().unwrap(),
            "--ca",
            ca.public.to_str().unwrap(),
        ],
    );
    let shown = text(&shown.stdout);
    assert!(shown.contains("serial  42"), "{shown}");
    assert!(shown.contains("signature verifies"), "{shown}");
    assert!(shown.contains("grant   cmd:/usr/bin/id"), "{shown}");

    let (mut web, web_url, web_data, web_log) = start_server(&scratch, &ca, "web1");
    let (_db, db_url, db_data, db_log) = start_server(&scratch, &ca, "db1");
    let (code, body) = curl("GET", &format!("{web_url}/info"), &[], None);
    assert_eq!(code, 200);
    let info: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(info["certificates"], true, "{info}");

    // carol is registered nowhere: her certificate logs her in on web1,
    // with exactly its grants.
    let c = client_for(&scratch, &web_url, &web_data, "carol", &carol);
    let r = c.ok(&["exec", "/usr/bin/id", "-u"], None);
    assert_eq!(r.out().trim(), "0");
    let denied = c.run(&["exec", "/usr/bin/cat", "/etc/hostname"], None);
    assert_ne!(denied.code, Some(0));
    assert!(denied.stderr.contains("forbidden"), "{}", denied.stderr);
    wait_log(&web_log, "carol auth ok (SHA256:", 1);

    // db1 is not web*: refused, and the client says why it may be.
    let d = client_for(&scratch, &db_url, &db_data, "carol", &carol);
    let r = d.run(&["exec", "/usr/bin/id"], None);
    assert_eq!(r.code, Some(255), "{}", r.stderr);
    assert!(
        r.stderr.contains("certificate") && r.stderr.contains("refused by the server"),
        "{}",
        r.stderr
    );
    wait_log(
        &db_log,
        "carol auth 401 certificate: not for this server",
        1,
    );

    // The audit names the CA and the serial of the login and of each
    // operation.
    let ca_fp = remo::keyfile::read_public_key(&ca.public)
        .unwrap()
        .fingerprint();
    let label = format!("{ca_fp}#42");
    let rows = audit_rows(&web_data);
    let ok_auth = rows
        .iter()
        .find(|r| r["user"] == "carol" && r["op"] == "auth" && r["outcome"] == "ok")
        .unwrap_or_else(|| panic!("no auth row: {rows:?}"));
    assert_eq!(ok_auth["cert"], label.as_str());
    let cmd = rows
        .iter()
        .find(|r| r["user"] == "carol" && r["op"] == "cmd" && r["outcome"] == "ok")
        .unwrap_or_else(|| panic!("no cmd row: {rows:?}"));
    assert_eq!(cmd["cert"], label.as_str());

    // Revocation ends a live session, and its command, within 2 s of the
    // list changing.
    let mut bg = c.command(&["exec", "/usr/bin/sleep", "71.25"]);
    bg.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = bg.spawn().unwrap();
    let t0 = Instant::now();
    while sleepers("71.25") == 0 {
        assert!(t0.elapsed() < Duration::from_secs(20), "sleep never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    ca.revoke(&scratch, &["--cert", cert.to_str().unwrap()]);
    let revoked_at = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(10),
            "the session outlived its revocation"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let ended = revoked_at.elapsed();
    eprintln!("revocation to the end of the session's command: {ended:?}");
    assert!(!status.success());
    assert!(
        ended < Duration::from_secs(2),
        "the session ended {ended:?} after the revocation"
    );
    assert_eq!(sleepers("71.25"), 0, "the command outlived its session");
    wait_log(&web_log, "carol (SHA256:", 1);
    wait_log(
        &web_log,
        "certificate: serial revoked; ended the session",
        1,
    );
    // A new login with it is refused.
    let r = c.run(&["exec", "/usr/bin/id"], None);
    assert_eq!(r.code, Some(255), "{}", r.stderr);
    wait_log(&web_log, "carol auth 401 certificate: serial revoked", 1);
    web.assert_running();
}

#[test]
fn certificates_against_registered_users_and_expiry() {
    let scratch = Scratch::new("certs-users");
    let ca = Ca::new(&scratch);
    let dave = ca.user_key(&scratch, "dave");
    ca.sign(
        &scratch,
        "dave",
        &dave,
        &[
            "--valid",
            "1h",
            "--hosts",
            "*",
            "--grant",
            "cmd:/usr/bin/id",
        ],
    );
    let (_web, url, data, log) = start_server(&scratch, &ca, "web1");
    // dave is also registered here, enabled, with another grant: the
    // certificate session has the certificate's grants, not his.
    run_ok(
        remod_command()
            .args(["user", "--db"])
            .arg(&data.user_db)
            .args(["add", "dave", "--allow", "cmd:/usr/bin/true", "--key"])
            .arg(format!("{}.pub", dave.display())),
    );
    let c = client_for(&scratch, &url, &data, "dave", &dave);
    c.ok(&["exec", "/usr/bin/id"], None);
    let r = c.run(&["exec", "/usr/bin/true"], None);
    assert!(r.stderr.contains("forbidden"), "{}", r.stderr);
    c.ok(&["logout"], None);
    // Disabled on this server: the certificate does not get him in, and
    // the fallback to his key neither.
    run_ok(
        remod_command()
            .args(["user", "--db"])
            .arg(&data.user_db)
            .args(["disable", "dave"]),
    );
    let r = c.run(&["exec", "/usr/bin/id"], None);
    assert_eq!(r.code, Some(255), "{}", r.stderr);
    wait_log(&log, "dave auth 401 user disabled (SHA256:", 1);

    // An expired certificate: the client says so and tries the key alone.
    let erin = ca.user_key(&scratch, "erin");
    ca.sign(
        &scratch,
        "erin",
        &erin,
        &[
            "--valid",
            "1s",
            "--hosts",
            "*",
            "--grant",
            "cmd:/usr/bin/id",
        ],
    );
    std::thread::sleep(Duration::from_millis(2100));
    let e = client_for(&scratch, &url, &data, "erin", &erin);
    let r = e.run(&["exec", "/usr/bin/id"], None);
    assert_eq!(r.code, Some(255), "{}", r.stderr);
    assert!(r.stderr.contains("expired at"), "{}", r.stderr);
    assert!(
        r.stderr.contains("logging in with the key alone"),
        "{}",
        r.stderr
    );
}

/// An `/auth` body for `user`, signed by `key`, carrying `cert`.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn body(user: &str, key: &IdentityKey, cert: Option<(&Certificate, &IdentityKey)>) -> Vec<u8> {
    let now = unix_now();
    let (_hs, mut req): (_, AuthRequest) = ClientHandshake::start(user, key, now);
    if let Some((c, ca)) = cert {
        req.cert = Some(b64::encode(c.to_text().as_bytes()));
        req.cert_sig = Some(b64::encode(&c.sign(ca).unwrap()));
    }
    serde_json::to_vec(&req).unwrap()
}

#[test]
fn every_refusal_is_one_401_with_a_precise_log() {
    let scratch = Scratch::new("certs-raw");
    let ca = Ca::new(&scratch);
    let (_web, url, _data, log) = start_server(&scratch, &ca, "web1");
    let auth = format!("{url}/auth");
    let post = |b: &[u8]| {
        curl(
            "POST",
            &auth,
            &["Content-Type: application/json".to_string()],
            Some(b),
        )
    };
    let ca_key = ca.identity();
    let user = IdentityKey::generate();
    let now = unix_now();
    let cert = |user_name: &str, ca: &IdentityKey, nb: i64, na: i64, hosts: &str| Certificate {
        ca: ca.public().fingerprint(),
        serial: 7,
        user: user_name.into(),
        key: user.public(),
        not_before: nb,
        not_after: na,
        hosts: vec![hosts.into()],
        grants: vec!["cmd:/usr/bin/id".into()],
    };
    let good = cert("frank", &ca_key, now - 10, now + 3600, "web1");
    let (code, _) = post(&body("frank", &user, Some((&good, &ca_key))));
    assert_eq!(code, 200);

    let other_ca = IdentityKey::generate();
    let failed = br#"{"error":"authentication failed"}"#;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            body(
                "frank",
                &user,
                Some((
                    &cert("frank", &ca_key, now - 7200, now - 3600, "*"),
                    &ca_key,
                )),
            ),
            "frank auth 401 certificate: expired",
        ),
        (
            body(
                "frank",
                &user,
                Some((
                    &cert("frank", &ca_key, now + 3600, now + 7200, "*"),
                    &ca_key,
                )),
            ),
            "frank auth 401 certificate: not yet valid",
        ),
        (
            body("gina", &user, Some((&good, &ca_key))),
            "gina auth 401 certificate: for another user",
        ),
        (
            body(
                "frank",
                &user,
                Some((&cert("frank", &other_ca, now, now + 60, "*"), &other_ca)),
            ),
            "frank auth 401 certificate: untrusted CA",
        ),
        (
            body("frank", &IdentityKey::generate(), Some((&good, &ca_key))),
            "frank auth 401 bad signature",
        ),
    ];
    for (b, said) in cases {
        let (code, answer) = post(&b);
        assert_eq!((code, answer.as_slice()), (401, &failed[..]), "{said}");
        wait_log(&log, said, 1);
    }
    // A CA signature that does not verify.
    let mut forged: serde_json::Value =
        serde_json::from_slice(&body("frank", &user, Some((&good, &ca_key)))).unwrap();
    let mut sig = good.sign(&ca_key).unwrap();
    sig[10] ^= 0x40;
    forged["cert_sig"] = b64::encode(&sig).into();
    let (code, _) = post(&serde_json::to_vec(&forged).unwrap());
    assert_eq!(code, 401);
    wait_log(
        &log,
        "frank auth 401 certificate: CA signature does not verify",
        1,
    );
    // The same accepted body twice: a replay.
    let once = body("frank", &user, Some((&good, &ca_key)));
    assert_eq!(post(&once).0, 200);
    assert_eq!(post(&once).0, 401);
    wait_log(&log, "frank auth 401 replayed auth", 1);

    // Malformed certificates are 400.
    let base: serde_json::Value = serde_json::from_slice(&body("frank", &user, None)).unwrap();
    let with = |cert: Option<&str>, sig: Option<&str>| {
        let mut v = base.clone();
        if let Some(c) = cert {
            v["cert"] = c.into();
        }
        if let Some(s) = sig {
            v["cert_sig"] = s.into();
        }
        serde_json::to_vec(&v).unwrap()
    };
    let good_b64 = b64::encode(good.to_text().as_bytes());
    let sig_b64 = b64::encode(&good.sign(&ca_key).unwrap());
    let bad_text = b64::encode(good.to_text().replace("serial 7", "serial 07").as_bytes());
    for (b, why) in [
        (with(Some(&good_b64), None), "cert without cert_sig"),
        (with(None, Some(&sig_b64)), "cert_sig without cert"),
        (with(Some("!!"), Some(&sig_b64)), "cert not b64"),
        (with(Some(&bad_text), Some(&sig_b64)), "leading zero"),
        (with(Some(&good_b64), Some("AAAA")), "short cert_sig"),
    ] {
        assert_eq!(post(&b).0, 400, "{why}");
    }
}

/// Certificate settings never come from FastCGI params: any process that
/// can reach the socket chooses those. The attack: a user whose public key
/// sits in a root-owned file (as registered keys do) names it as a CA and
/// signs herself any grants. They come from flags, the environment or the
/// config file, whose `[certificates]` files pass the ownership checks
/// (a CA file or revocation list the web user owns is refused).
#[test]
fn certificate_settings_are_not_params_and_their_files_are_checked() {
    let scratch = Scratch::new("certs-trust");
    let data = init_data_dir(&scratch, "admin");
    let (mut remod, sock) = start_remod_fcgi(&scratch, &data);
    let ca = Ca::new(&scratch);
    let info = |extra: &[(&str, &str)]| {
        let key = data.key_file.display().to_string();
        let db = data.user_db.display().to_string();
        let mut p = info_params(&[
            ("REMO_KEY_FILE", key.as_str()),
            ("REMO_USER_DB", db.as_str()),
        ]);
        p.extend_from_slice(extra);
        let (status, body) = crate::common::fcgi::request(&sock, &p, b"");
        (status, text(&body))
    };
    let (status, body) = info(&[]);
    assert_eq!(status, 200);
    assert!(!body.contains("certificates"), "{body}");
    // The admin's own public key, root-owned, named as a CA by a param.
    let user_pub = format!("{}.pub", data.client_key.display());
    for (name, value) in [
        ("REMO_CA_KEYS", user_pub.as_str()),
        ("REMO_REVOKED", "/nonexistent/revoked"),
        ("REMO_SERVER_NAME", "web1"),
    ] {
        let (status, body) = info(&[(name, value)]);
        assert_eq!(status, 500, "{name} from a param was used: {body}");
        wait_log(
            &scratch.path().join("remod.log"),
            &format!("{name} is invalid: is not taken from FastCGI params"),
            1,
        );
    }

    // The config file's [certificates], as a vhost would have it.
    let conf_dir = scratch.sub("conf");
    let write_conf = |name: &str, ca_keys: &Path, revoked: &Path| {
        let p = conf_dir.join(name);
        std::fs::write(
            &p,
            format!(
                "[certificates]\nca_keys = {:?}\nrevoked = {:?}\nserver_name = \"web1\"\n",
                ca_keys.display().to_string(),
                revoked.display().to_string()
            ),
        )
        .unwrap();
        p.display().to_string()
    };
    let good = write_conf("good.toml", &ca.public, &ca.revoked);
    let (status, body) = info(&[("REMO_CONFIG", &good)]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""certificates":true"#), "{body}");

    // The web user's own CA file and revocation list, named by a config.
    let evil = scratch.sub("evil");
    let evil_ca = evil.join("ca.pub");
    std::fs::copy(&ca.public, &evil_ca).unwrap();
    let evil_list = evil.join("revoked");
    std::fs::write(&evil_list, "").unwrap();
    chown_tree(&evil, "www-data");
    let bad_ca = write_conf("bad-ca.toml", &evil_ca, &ca.revoked);
    assert_eq!(info(&[("REMO_CONFIG", &bad_ca)]).0, 500);
    let bad_list = write_conf("bad-list.toml", &ca.public, &evil_list);
    assert_eq!(info(&[("REMO_CONFIG", &bad_list)]).0, 500);
    let log = std::fs::read_to_string(scratch.path().join("remod.log")).unwrap();
    assert!(
        log.contains("REMO_CA_KEYS") && log.contains("owned by uid 33"),
        "{log}"
    );
    assert!(log.contains("REMO_REVOKED"), "{log}");
    remod.assert_running();
}

/// Review of 2026-12-04: a FastCGI peer chose another root-owned config
/// file (`REMO_CONFIG`) and so dropped the revocation list that remod's
/// own config file names, while the CA from remod's flags stayed trusted
/// (a revoked certificate logged in); or named an empty root-owned file as
/// `REMO_USER_DB`, which remod made into a user database (with `-wal` and
/// `-shm` files beside it) where no user is disabled.
#[test]
fn a_peer_cannot_mix_certificate_settings_or_make_a_user_database() {
    let scratch = Scratch::new("certs-mix");
    let data = init_data_dir(&scratch, "admin");
    let ca = Ca::new(&scratch);
    let conf = scratch.sub("conf");
    let own = conf.join("remo.toml");
    std::fs::write(
        &own,
        format!(
            "[certificates]\nrevoked = {:?}\n",
            ca.revoked.display().to_string()
        ),
    )
    .unwrap();
    let empty = conf.join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let vhost = conf.join("vhost.toml");
    let vhost_list = conf.join("vhost-revoked");
    std::fs::write(&vhost_list, "").unwrap();
    std::fs::write(
        &vhost,
        format!(
            "[certificates]\nrevoked = {:?}\n",
            vhost_list.display().to_string()
        ),
    )
    .unwrap();
    let lock = conf.join(".pwd.lock");
    std::fs::write(&lock, "").unwrap();

    let ca_key = ca.identity();
    let user = IdentityKey::generate();
    let now = unix_now();
    let cert = Certificate {
        ca: ca_key.public().fingerprint(),
        serial: 42,
        user: "carol".into(),
        key: user.public(),
        not_before: now - 10,
        not_after: now + 3600,
        hosts: vec!["*".into()],
        grants: vec!["admin".into()],
    };
    ca.revoke(
        &scratch,
        &["--serial", "42", "--ca", ca.public.to_str().unwrap()],
    );
    let (mut remod, sock) = start_remod_fcgi_with(
        &scratch,
        &data,
        &[
            "--ca-keys",
            ca.public.to_str().unwrap(),
            "--config",
            own.to_str().unwrap(),
        ],
    );
    let key = data.key_file.display().to_string();
    let db = data.user_db.display().to_string();
    let auth = |extra: &[(&str, &str)]| {
        let b = body("carol", &user, Some((&cert, &ca_key)));
        let len = b.len().to_string();
        let mut p = vec![
            ("REQUEST_METHOD", "POST"),
            ("REQUEST_URI", "/remo/auth"),
            ("SCRIPT_NAME", "/remo/auth"),
            ("CONTENT_TYPE", "application/json"),
            ("CONTENT_LENGTH", len.as_str()),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("REMO_BASE", "/remo"),
            ("REMO_KEY_FILE", key.as_str()),
        ];
        if !extra.iter().any(|(k, _)| *k == "REMO_USER_DB") {
            p.push(("REMO_USER_DB", db.as_str()));
        }
        p.extend_from_slice(extra);
        let (status, out) = crate::common::fcgi::request(&sock, &p, &b);
        (status, text(&out))
    };
    let log = scratch.path().join("remod.log");

    // remod's own settings: the revoked certificate is refused.
    let (status, out) = auth(&[]);
    assert_eq!(status, 401, "{out}");
    wait_log(&log, "serial revoked", 1);
    // The same request naming an empty root-owned config file: the CA
    // from the flags with no revocation list, had the settings mixed.
    let empty_s = empty.display().to_string();
    let (status, out) = auth(&[("REMO_CONFIG", &empty_s)]);
    assert_eq!(status, 401, "a peer dropped the revocation list: {out}");
    wait_log(&log, "serial revoked", 2);
    // A config file with a table of its own (another, empty list): not
    // mixed with remod's settings, refused.
    let vhost_s = vhost.display().to_string();
    let (status, out) = auth(&[("REMO_CONFIG", &vhost_s)]);
    assert_eq!(status, 500, "{out}");
    wait_log(
        &log,
        "has a [certificates] table, while remod has certificate settings",
        1,
    );
    // Naming remod's own config file by a param changes nothing, nor does
    // a file that repeats its table word for word.
    let own_s = own.display().to_string();
    let (status, _) = auth(&[("REMO_CONFIG", &own_s)]);
    assert_eq!(status, 401);
    let repeat = conf.join("repeat.toml");
    std::fs::copy(&own, &repeat).unwrap();
    let repeat_s = repeat.display().to_string();
    let (status, out) = auth(&[("REMO_CONFIG", &repeat_s)]);
    assert_eq!(status, 401, "{out}");

    // An empty root-owned file as the user database: refused, untouched.
    let lock_s = lock.display().to_string();
    let (status, out) = auth(&[("REMO_USER_DB", &lock_s)]);
    assert_eq!(
        status, 500,
        "an empty file served as a user database: {out}"
    );
    wait_log(&log, "not a remo user database", 1);
    assert_eq!(std::fs::read(&lock).unwrap(), b"");
    let mut names: Vec<_> = std::fs::read_dir(&conf)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ".pwd.lock",
            "empty.toml",
            "remo.toml",
            "repeat.toml",
            "vhost-revoked",
            "vhost.toml"
        ],
        "no -wal, -shm or audit.db beside the file"
    );
    remod.assert_running();
}
