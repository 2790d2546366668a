//! The console's Doors page in real Chromium (`console/browser/doors.mjs`)
//! with real traffic: the lab of `firewall_netns.rs` (namespaces "client",
//! "server", "lan"), remod serving HTTP on the server's address in
//! "server" with its nft table there, and the browser itself running in
//! "client", so the address remod sees is the client's. The page opens
//! `ssh` for this browser's address (a probe from "client" then passes,
//! and is dropped again after Close), counts the time down, opens a
//! forward to a web service in "lan" and follows its link in a new tab
//! (the LAN page loads through the DNAT), and opens it for a guest
//! address: a request from the guest's address (a second address of
//! "client", the probe's socket bound to it) then reaches the LAN service
//! while one from a third address is dropped, and after the page closes
//! the guest's grant the guest's is dropped too. Needs root, iproute2,
//! nftables, conntrack and chromium.
//!
//! With `REMO_CONSOLE_SHOTS=DIR` it writes `doors.png` there.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common;
use crate::common::browser::{assert_no_csp_report, user_add, Scenario};
use crate::firewall_netns::{
    assert_dropped, assert_reply, tcp_probe, tcp_probe_reaches, Lab, Probe, CLIENT4,
};

use common::*;

const SERVER4: &str = "10.200.1.1";
/// The guest: an address of "client" besides its own (a /32, so the
/// browser's connections keep CLIENT4 as their source).
const GUEST4: &str = "10.200.1.3";
/// Another address of "client" that nobody opens anything for.
const OTHER4: &str = "10.200.1.4";
const PORT: u16 = 8918;

/// The LAN's web service: answers every request with a small page.
fn lan_web(lab: &Lab) {
    let (tx, rx) = std::sync::mpsc::channel();
    lab.lan.background(move || {
        let l = TcpListener::bind("10.200.2.2:80").unwrap();
        tx.send(()).unwrap();
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.read(&mut buf);
            let body = "<!doctype html><title>lan web</title><p>the LAN web service</p>";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    rx.recv().unwrap();
}

/// An HTTP GET to the web service from inside `ns`, from its address
/// `from` (the socket bound to it) or the one the kernel picks; tried up
/// to three times if it must get through (see `tcp_probe_reaches`).
fn web_probe(ns: &crate::firewall_netns::Ns, from: Option<&str>, addr: &str, retry: bool) -> Probe {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let from: Option<std::net::SocketAddr> = from.map(|ip| format!("{ip}:0").parse().unwrap());
    let once = || {
        ns.within(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let sock = tokio::net::TcpSocket::new_v4().unwrap();
                if let Some(from) = from {
                    sock.bind(from).unwrap();
                }
                let mut s = match tokio::time::timeout(
                    Duration::from_millis(700),
                    sock.connect(addr),
                )
                .await
                {
                    Err(_) => return Probe::Dropped,
                    Ok(Err(e)) => return Probe::Other(e.to_string()),
                    Ok(Ok(s)) => s,
                };
                let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n").await;
                let mut buf = String::new();
                match tokio::time::timeout(Duration::from_secs(3), s.read_to_string(&mut buf)).await
                {
                    Ok(Ok(_)) => Probe::Reply(buf),
                    Ok(Err(e)) => Probe::Other(format!("read: {e}")),
                    Err(_) => Probe::Other("read: timed out".into()),
                }
            })
        })
    };
    let mut p = once();
    for _ in 0..2 {
        if !retry || p != Probe::Dropped {
            break;
        }
        p = once();
    }
    p
}

/// The LAN page came back.
fn assert_lan_page(p: &Probe, what: &str) {
    assert!(
        matches!(p, Probe::Reply(t) if t.contains("the LAN web service")),
        "{what}: {p:?}"
    );
}

/// remod in "server", serving HTTP on the server's lab address; killed on drop.
struct Remod(std::process::Child);

impl Drop for Remod {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_remod(lab: &Lab, root: &Path) -> Remod {
    let cfg = root.join("remo.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[firewall]
nft = ["ip", "netns", "exec", "{server}", "nft"]

[firewall.profiles.ssh]
ports = ["22/tcp"]
default_duration = "30m"
max_duration = "2h"

[firewall.profiles.intranet]
forward = [{{ port = "8080/tcp", to = "10.200.2.2:80", web = "http" }}]
guests = true
default_duration = "10m"
"#,
            server = lab.server.name
        ),
    )
    .unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &lab.server.name, REMOD, "serve", "--http"])
        .arg(format!("{SERVER4}:{PORT}"))
        .arg("--dir")
        .arg(root.join("quick"))
        .arg("--config")
        .arg(&cfg)
        .env_remove("REMO_CONFIG")
        .env_remove("REMO_KEY_FILE")
        .env_remove("REMO_USER_DB")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(root.join("remod.log")).unwrap())
        .spawn()
        .unwrap();
    let mut r = Remod(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = r.0.try_wait().unwrap() {
            panic!(
                "remod exited ({st}): {}",
                std::fs::read_to_string(root.join("remod.log")).unwrap_or_default()
            );
        }
        let up = lab
            .server
            .within(|| TcpStream::connect((SERVER4, PORT)).is_ok());
        if up {
            return r;
        }
        assert!(Instant::now() < deadline, "remod did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn console_doors_open_and_close_in_chromium() {
    let lab = Lab::new();
    lan_web(&lab);
    for a in [GUEST4, OTHER4] {
        run_ok(Command::new("ip").args([
            "-n",
            &lab.client.name,
            "addr",
            "add",
            &format!("{a}/32"),
            "dev",
            "veth0",
        ]));
    }
    let scratch = Scratch::new("console-doors");
    let root = scratch.path().to_path_buf();
    let mut remod = start_remod(&lab, &root);
    let data = quick_data_dir(&root.join("quick"));
    let origin = format!("http://{SERVER4}:{PORT}");
    let ssh = format!("{SERVER4}:22");
    let web = format!("{SERVER4}:8080");

    let result = Scenario::new(
        "doors.mjs",
        &format!("{origin}/console/"),
        &root.join("browser"),
    )
    .prefix(&["ip", "netns", "exec", &lab.client.name])
    // Not localhost: only a secure context has WebCrypto.
    .env(
        "CHROMIUM_ARGS",
        format!("--unsafely-treat-insecure-origin-as-secure={origin}"),
    )
    .env("GUEST_IP", GUEST4)
    .run(|what| match what {
        w if w.starts_with("useradd ") => {
            user_add(&data.user_db, w, &["open:ssh", "open:intranet"])
        }
        "probe ssh closed" => assert_dropped(tcp_probe(&lab.client, &ssh), "ssh, closed"),
        "probe ssh open" => assert_reply(tcp_probe_reaches(&lab.client, &ssh), "ssh, open"),
        "probe intranet open" => {
            assert_lan_page(&web_probe(&lab.client, None, &web, true), "intranet, open")
        }
        "probe intranet closed" => assert_dropped(
            web_probe(&lab.client, None, &web, false),
            "intranet, closed",
        ),
        // The guest's grant: the guest's address gets through, a third
        // address does not (while the client's own grant stands).
        "probe intranet guest open" => {
            assert_lan_page(
                &web_probe(&lab.client, Some(GUEST4), &web, true),
                "intranet from the guest's address, open",
            );
            assert_dropped(
                web_probe(&lab.client, Some(OTHER4), &web, false),
                "intranet from an address nobody opened it for",
            );
        }
        "probe intranet guest closed" => assert_dropped(
            web_probe(&lab.client, Some(GUEST4), &web, false),
            "intranet from the guest's address, closed",
        ),
        other => panic!("unexpected NEED {other}"),
    });
    assert_no_csp_report(&result);
    eprintln!("doors scenario: {result}");
    let s = |p: &str| {
        result
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    // The address remod sees: the browser's, in "client".
    assert_eq!(s("/ownIp"), CLIENT4);
    assert_eq!(result["profiles"], serde_json::json!(["intranet", "ssh"]));
    assert_eq!(result["linkBefore"], Value::Bool(false));
    // Opened for 5 minutes for this address; the time left counts down.
    assert!(
        s("/openStatus").starts_with(&format!("ssh is open for {CLIENT4} for 5 min")),
        "{}",
        s("/openStatus")
    );
    assert_eq!(result["sshRows"][0]["ip"], CLIENT4);
    assert_eq!(result["sshRows"][0]["by"], "dora");
    let (t0, t1) = (
        result["countdown"][0].as_u64().unwrap(),
        result["countdown"][1].as_u64().unwrap(),
    );
    // Against the time that passed in the page (`countdownMs`): the first
    // reading at most the time since the click (plus a second each for the
    // page's 1 s tick and the server's whole seconds) below 300; the
    // second lower, by no more than the time between the readings allows.
    let ms = |k: &str| result["countdownMs"][k].as_u64().unwrap().div_ceil(1000);
    let (since_open, max_gap) = (ms("sinceOpen"), ms("maxGap"));
    assert!(
        t0 <= 300 && t0 + since_open + 2 >= 300,
        "{t0} read {since_open} s after the click"
    );
    assert!(
        t1 < t0 && t1 + max_gap + 2 >= t0,
        "{t0} then {t1}, at most {max_gap} s apart"
    );
    // The web service's link, and the LAN page through the forward.
    assert_eq!(s("/link"), format!("http://{SERVER4}:8080/"));
    assert_eq!(s("/linkTarget"), "_blank");
    assert_eq!(s("/linkRel"), "noopener noreferrer");
    assert!(
        s("/tabText").contains("the LAN web service"),
        "{}",
        s("/tabText")
    );
    // A guest address.
    assert!(
        s("/guestStatus").starts_with(&format!("intranet is open for {GUEST4} for 2 min")),
        "{}",
        s("/guestStatus")
    );
    let ips: Vec<&str> = result["intranetRows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["ip"].as_str())
        .collect();
    assert!(ips.contains(&GUEST4) && ips.contains(&CLIENT4), "{ips:?}");
    assert!(
        s("/guestCloseStatus").starts_with(&format!("intranet is closed for {GUEST4}")),
        "{}",
        s("/guestCloseStatus")
    );
    let ips: Vec<&str> = result["intranetRowsAfterGuest"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["ip"].as_str())
        .collect();
    assert_eq!(ips, [CLIENT4], "after closing the guest's grant");
    // Closed: the row gone, focus back on the Open button, the link gone.
    assert!(
        s("/closeStatus").starts_with("ssh is closed"),
        "{}",
        s("/closeStatus")
    );
    assert_eq!(result["sshRowsAfter"], serde_json::json!([]));
    assert_eq!(s("/focusAfterClose"), "door-open-ssh");
    assert_eq!(result["linkAfterClose"], Value::Bool(false));
    assert!(
        result["narrow"].as_u64().unwrap() <= 360,
        "{}",
        result["narrow"]
    );
    assert!(remod.0.try_wait().unwrap().is_none(), "remod exited");
}

/// `remo ARGS` as `data`'s user, run in `ns` (so remod sees its address).
fn remo_in_ns(
    ns: &crate::firewall_netns::Ns,
    scratch: &Scratch,
    url: &str,
    data: &DataDir,
    args: &[&str],
) -> Ran {
    let c = Client::new(scratch, url, data).command(args);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.name])
        .arg(c.get_program())
        .args(c.get_args())
        .env_clear();
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let out = output_with_input(cmd, Vec::new());
    Ran {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `remo profiles`, the CLI's side of the `open` action the Doors page is
/// built on, against the real binaries in the lab: the profiles the user
/// may open (only those: `open:ssh` sees `ssh` alone, a user without an
/// `open` grant none), what each opens and for how long, whether guests
/// may be let in, and the address remod sees ("client"'s); `--json` gives
/// the server's result.
#[test]
fn remo_profiles_lists_what_the_user_may_open() {
    let lab = Lab::new();
    let scratch = Scratch::new("remo-profiles");
    let root = scratch.path().to_path_buf();
    let _remod = start_remod(&lab, &root);
    let admin = quick_data_dir(&root.join("quick"));
    let url = format!("http://{SERVER4}:{PORT}");
    let erin = user_data_dir(&scratch, &admin, "erin", &["open:ssh"]);
    let frank = user_data_dir(&scratch, &admin, "frank", &["cmd"]);
    let run = |d: &DataDir, args: &[&str]| {
        let r = remo_in_ns(&lab.client, &scratch, &url, d, args);
        assert_eq!(
            r.code,
            Some(0),
            "remo {args:?} as {}: {}{}",
            d.user,
            r.out(),
            r.stderr
        );
        r.out()
    };

    // The admin may open both.
    let out = run(&admin, &["profiles"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    let cols = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        cols(lines[0]),
        ["PROFILE", "DEFAULT", "MAX", "GUESTS", "OPENS"],
        "{out}"
    );
    assert_eq!(
        cols(lines[1]),
        [
            "intranet",
            "10m00s",
            "10m00s",
            "yes",
            "8080/tcp",
            "->",
            "10.200.2.2:80",
            "(http)"
        ],
        "{out}"
    );
    assert_eq!(
        cols(lines[2]),
        ["ssh", "30m00s", "2h00m00s", "no", "22/tcp"],
        "{out}"
    );
    assert_eq!(
        lines[3],
        format!("your address as the server sees it: {CLIENT4}")
    );

    // open:ssh: ssh only.
    let out = run(&erin, &["profiles"]);
    assert!(out.contains("\nssh "), "{out}");
    assert!(!out.contains("intranet"), "{out}");
    assert!(out.ends_with(&format!("sees it: {CLIENT4}\n")), "{out}");

    // No open grant: nothing to open.
    let out = run(&frank, &["profiles"]);
    assert!(
        out.starts_with("no firewall profile is open to you on this server\n"),
        "{out}"
    );

    // --json: the result as the server sent it.
    let out = run(&erin, &["--json", "profiles"]);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "ip": CLIENT4,
            "profiles": [{"name": "ssh", "ports": ["22/tcp"], "forwards": [],
                          "default_duration": 1800, "max_duration": 7200, "guests": false}]
        })
    );
}
