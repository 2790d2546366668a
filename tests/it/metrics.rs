//! Prometheus metrics (`remod serve --metrics`): a scrape after real
//! logins and commands says what happened, `promtool check metrics`
//! accepts it, a real Prometheus scrapes it, the front door does not serve
//! it, and a listener others could reach is refused.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn scrape(port: u16) -> String {
    let (code, body) = curl(
        "GET",
        &format!("http://127.0.0.1:{port}/metrics"),
        &[],
        None,
    );
    assert_eq!(code, 200);
    String::from_utf8(body).unwrap()
}

#[test]
fn metrics_count_what_happened_and_prometheus_reads_them() {
    require("/usr/bin/promtool", "prometheus");
    let scratch = Scratch::new("metrics");
    let port = free_port();
    let mport = free_port();
    let dir = scratch.path().join("quick");
    let mut cmd = remod_http_command(&dir, port);
    cmd.arg("--metrics")
        .arg(format!("127.0.0.1:{mport}"))
        .env("RUST_LOG", "info");
    let mut p = Proc::spawn("remod", cmd, &scratch.path().join("remod.log"));
    p.wait_port(port);
    p.wait_port(mport);
    let url = format!("http://127.0.0.1:{port}");
    let data = quick_data_dir(&dir);
    let c = Client::new(&scratch, &url, &data);
    c.ok(&["exec", "/usr/bin/true"], None);
    c.ok(&["exec", "/usr/bin/true"], None);
    // A login with a key the server does not know.
    let mut stranger = Client::new(&scratch, &url, &data);
    let k = scratch.path().join("stranger");
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_remo"))
            .envs(client_env(&scratch))
            .args(["keygen", "--no-passphrase", "-o"])
            .arg(&k),
    );
    stranger.key = k;
    assert_ne!(
        stranger
            .run(&["--no-cache", "exec", "/usr/bin/true"], None)
            .code,
        Some(0)
    );

    let text = scrape(mport);
    for line in [
        "remo_sessions 1\n",
        "remo_instances 1\n",
        "remo_logins_total{outcome=\"ok\",reason=\"key\"} 1\n",
        "remo_logins_total{outcome=\"failed\",reason=\"bad signature\"} 1\n",
        "remo_requests_total{op=\"cmd\",outcome=\"ok\"} 2\n",
        "remo_request_duration_seconds_count{op=\"cmd\"} 2\n",
        "remo_processes 0\n",
        "remo_transfers_running 0\n",
        "remo_audit_queue_depth ",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    // promtool checks the exposition format (and lint rules).
    let mut pt = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut pt.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let o = pt.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    // The front door does not serve them.
    let (code, _) = curl("GET", &format!("{url}/metrics"), &[], None);
    assert_ne!(code, 200);

    // A real Prometheus scrapes them.
    let prom_port = free_port();
    let pdir = scratch.sub("prom");
    std::fs::write(
        pdir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: remod\n    static_configs:\n      - targets: ['127.0.0.1:{mport}']\n"
        ),
    )
    .unwrap();
    let mut pcmd = Command::new("prometheus");
    pcmd.arg(format!(
        "--config.file={}",
        pdir.join("prometheus.yml").display()
    ))
    .arg(format!(
        "--storage.tsdb.path={}",
        pdir.join("data").display()
    ))
    .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"));
    let mut prom = Proc::spawn("prometheus", pcmd, &scratch.path().join("prometheus.log"));
    prom.wait_port(prom_port);
    let t0 = Instant::now();
    loop {
        let (code, body) = curl(
            "GET",
            &format!("http://127.0.0.1:{prom_port}/api/v1/query?query=remo_sessions"),
            &[],
            None,
        );
        let body = String::from_utf8_lossy(&body).into_owned();
        if code == 200 && body.contains("\"job\":\"remod\"") && body.contains(",\"1\"]") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "Prometheus never had remo_sessions 1: {body}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    p.assert_running();
}

#[test]
fn metrics_are_never_served_to_the_network() {
    let scratch = Scratch::new("metrics-remote");
    let o = remod_http_command(&scratch.path().join("d"), free_port())
        .args(["--metrics", "0.0.0.0:9464"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("only a loopback address or a unix socket"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `--metrics unix:PATH` relative to remod's working directory (the
/// socket's directory is checked like the control socket's since
/// 2026-12-04; a relative path must still work).
#[test]
fn metrics_on_a_relative_unix_socket() {
    let scratch = Scratch::new("metrics-unix");
    let port = free_port();
    let mut cmd = remod_http_command(&scratch.path().join("quick"), port);
    cmd.args(["--metrics", "unix:m.sock"])
        .current_dir(scratch.path())
        .env("RUST_LOG", "info");
    let mut p = Proc::spawn("remod", cmd, &scratch.path().join("remod.log"));
    p.wait_port(port);
    p.wait_unix(&scratch.path().join("m.sock"));
    let out = std::process::Command::new("curl")
        .args(["-sf", "--unix-socket"])
        .arg(scratch.path().join("m.sock"))
        .arg("http://remod/metrics")
        .output()
        .expect("curl (Debian package curl)");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("remo_sessions"),
        "{}",
        text(&out.stdout)
    );
    p.stop();
}
