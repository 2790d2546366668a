//! The shipped deployment files themselves: the systemd units run remod by
//! socket activation behind nginx, and the complete HTTPS examples for
//! nginx and Apache pass the servers' own configuration checks.

use crate::common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

/// The value of every `Key=` line of a unit file, in order.
fn unit_values(text: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

/// deploy/remod.socket + deploy/remod.service, run the way systemd would
/// (with systemd-socket-activate: the listening socket comes as LISTEN_FDS,
/// the settings from the unit's Environment= lines), behind nginx.
#[test]
fn systemd_units_socket_activate_remod() {
    require("/usr/bin/systemd-socket-activate", "systemd");
    let scratch = Scratch::new("systemd");
    let data = init_data_dir(&scratch, "alice");

    let socket_unit = render("deploy/remod.socket", &[]);
    let listen = unit_values(&socket_unit, "ListenStream");
    assert_eq!(
        listen,
        ["/run/remo/remod.sock"],
        "remod.socket ListenStream"
    );
    assert_eq!(unit_values(&socket_unit, "SocketMode"), ["0660"]);
    assert_eq!(unit_values(&socket_unit, "SocketGroup"), ["www-data"]);

    let key = data.key_file.display().to_string();
    let db = data.user_db.display().to_string();
    let service = render(
        "deploy/remod.service",
        &[("REMOD", REMOD), ("KEY_FILE", &key), ("USER_DB", &db)],
    );
    for bad in ["NoNewPrivileges=yes", "ProtectSystem=strict"] {
        assert!(
            !service.lines().any(|l| l.trim() == bad),
            "remod.service must not set {bad}: it would break admin commands"
        );
    }
    assert_eq!(unit_values(&service, "KillMode"), ["mixed"]);
    assert_eq!(
        unit_values(&service, "ExecReload"),
        ["/bin/kill -HUP $MAINPID"],
        "systemctl reload must send SIGHUP"
    );
    let exec = unit_values(&service, "ExecStart");
    assert_eq!(exec.len(), 1, "one ExecStart");
    let argv: Vec<&str> = exec[0].split_whitespace().collect();
    let env = unit_values(&service, "Environment");
    assert!(
        env.iter().any(|e| e == &format!("REMO_KEY_FILE={key}")),
        "{env:?}"
    );
    assert!(
        env.iter().any(|e| e == &format!("REMO_USER_DB={db}")),
        "{env:?}"
    );

    // The unit's socket path, moved into the scratch directory.
    let sock = scratch.sub("run").join("remod.sock");
    let mut cmd = Command::new("/usr/bin/systemd-socket-activate");
    cmd.arg("-l").arg(&sock);
    for e in &env {
        cmd.arg("-E").arg(e);
    }
    cmd.arg("--")
        .args(&argv)
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    let mut remod = Proc::spawn(
        "systemd-socket-activate + remod",
        cmd,
        &scratch.path().join("remod.log"),
    );
    remod.wait_unix(&sock);

    // The documented setup: nginx's REMO_* params name the same files as
    // the unit's Environment= defaults.
    let (mut nginx, url) = start_nginx(&scratch, &sock, &data);
    let c = Client::new(&scratch, &url, &data);
    c.ok(&["info"], None);
    let r = c.ok(&["exec", "--sh", "echo $REMO_USER; exit 0"], None);
    assert_eq!(r.out(), "alice\n");
    let mut s = RawSession::login(&url, &data);
    let (status, res) = s.request("cmd", br#"{"argv":["printenv","LISTEN_FDS"]}"#);
    assert_eq!(status, 200);
    // remod must not pass systemd's LISTEN_* variables on to commands.
    let res = res.unwrap();
    assert!(
        res.data.is_empty(),
        "LISTEN_FDS leaked to a command: {:?}",
        res.data
    );
    nginx.assert_running();
    remod.assert_running();
}

fn self_signed_cert(dir: &Path) -> (String, String) {
    require("/usr/bin/openssl", "openssl");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    run_ok(
        Command::new("/usr/bin/openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args(["-days", "2", "-subj", "/CN=remo.test", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    (cert.display().to_string(), key.display().to_string())
}

/// nginx/example-https.conf with nginx/remo.conf included passes `nginx -t`.
#[test]
fn nginx_https_example_is_valid() {
    require("/usr/sbin/nginx", "nginx-light");
    let scratch = Scratch::new("nginx-example");
    let dir = scratch.sub("nginx");
    let (cert, key) = self_signed_cert(&dir);
    fs::copy("/etc/nginx/fastcgi_params", dir.join("fastcgi_params")).unwrap();
    let snippet = dir.join("remo.conf");
    render_to(
        "nginx/remo.conf",
        &[
            ("SOCKET", "/run/remo/remod.sock"),
            ("KEY_FILE", "/etc/remo/server.key"),
            ("USER_DB", "/etc/remo/users.db"),
        ],
        &snippet,
    );
    let site = dir.join("site.conf");
    render_to(
        "nginx/example-https.conf",
        &[
            ("SERVER_NAME", "remo.test"),
            ("CERT", &cert),
            ("CERT_KEY", &key),
            ("SNIPPET", &snippet.display().to_string()),
        ],
        &site,
    );
    let d = dir.display();
    fs::write(
        dir.join("nginx.conf"),
        format!(
            "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\n\
             http {{ access_log off; client_body_temp_path {d}; fastcgi_temp_path {d};\n\
             proxy_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
             include {}; }}\n",
            site.display()
        ),
    )
    .unwrap();
    let out = Command::new("/usr/sbin/nginx")
        .arg("-t")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// apache/example-https.conf with apache/remo-proxy-fcgi.conf, and
/// apache/remo-fcgid.conf, pass `apache2 -t`.
#[test]
fn apache_examples_are_valid() {
    require("/usr/sbin/apache2", "apache2");
    require(
        "/usr/lib/apache2/modules/mod_fcgid.so",
        "libapache2-mod-fcgid",
    );
    let scratch = Scratch::new("apache-example");
    let dir = scratch.sub("apache");
    let (cert, key) = self_signed_cert(&dir);
    let proxy = dir.join("remo-proxy-fcgi.conf");
    render_to(
        "apache/remo-proxy-fcgi.conf",
        &[
            ("SOCKET", "/run/remo/remod.sock"),
            ("KEY_FILE", "/etc/remo/server.key"),
            ("USER_DB", "/etc/remo/users.db"),
        ],
        &proxy,
    );
    let site = dir.join("site.conf");
    render_to(
        "apache/example-https.conf",
        &[
            ("SERVER_NAME", "remo.test"),
            ("CERT", &cert),
            ("CERT_KEY", &key),
            ("SNIPPET", &proxy.display().to_string()),
        ],
        &site,
    );
    let wrapper = dir.join("remod.fcgi");
    render_to("apache/remod.fcgi", &[("REMOD", REMOD)], &wrapper);
    chmod(&wrapper, 0o755);
    let fcgid = dir.join("remo-fcgid.conf");
    render_to(
        "apache/remo-fcgid.conf",
        &[
            ("WRAPPER", &wrapper.display().to_string()),
            ("KEY_FILE", "/var/lib/remo/server.key"),
            ("USER_DB", "/var/lib/remo/users.db"),
        ],
        &fcgid,
    );
    let d = dir.display();
    let mods = "/usr/lib/apache2/modules";
    let mut conf = String::new();
    for m in [
        "mpm_event",
        "authz_core",
        "env",
        "alias",
        "proxy",
        "proxy_fcgi",
        "ssl",
        "fcgid",
        "log_config",
    ] {
        if m == "log_config" {
            continue; // built in
        }
        conf.push_str(&format!("LoadModule {m}_module {mods}/mod_{m}.so\n"));
    }
    conf.push_str(&format!(
        "ServerRoot {d}\nServerName localhost\nListen 127.0.0.1:1\nPidFile {d}/pid\nErrorLog {d}/error.log\n\
         DefaultRuntimeDir {d}\nUser www-data\nGroup www-data\n\
         Include {}\n<VirtualHost 127.0.0.1:1>\n  Include {}\n</VirtualHost>\n",
        site.display(),
        fcgid.display()
    ));
    fs::write(dir.join("apache2.conf"), conf).unwrap();
    let out = Command::new("/usr/sbin/apache2")
        .arg("-t")
        .arg("-f")
        .arg(dir.join("apache2.conf"))
        .env("APACHE_LOG_DIR", &dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "apache2 -t: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
