//! Firewall access with real traffic. Each test builds its own lab of
//! network namespaces: "client" (10.200.1.2, fd00:200:1::2) joined by a
//! veth pair to "server" (10.200.1.1, fd00:200:1::1), which routes to a
//! "lan" namespace (10.200.2.2, fd00:200:2::2) over a second veth. remod's
//! nft table lives in "server" (`[firewall] nft = ["ip","netns","exec",
//! SERVER,"nft"]`), rule changes go through the real `open` operation of
//! the in-process router, and connections are made from "client" by test
//! threads that have entered that namespace (setns), to listeners that
//! threads in "server" and "lan" run. Needs root, `ip` (iproute2) and
//! `nft` (nftables); missing tools fail the test, naming the package.

mod inproc;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use inproc::*;
use remo::proto::handshake::ClientSession;
use remo::proto::identity::IdentityKey;
use remo::proto::response::{ErrorCode, OpError};
use remo::server::config::{Defaults, InstanceKey};
use remo::server::request::{Body, Handler, Params, Request, ResponseBody};
use remo::server::router::Router;
use remo::userdb::UserDb;
use serde_json::{json, Map, Value};

const PROBE_TIMEOUT: Duration = Duration::from_millis(700);

fn run(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {prog} ({e}): install the Debian package {}",
            match prog {
                "nft" => "nftables",
                _ => "iproute2",
            }
        )
    });
    assert!(
        out.status.success(),
        "{prog} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn require_tools() {
    run("ip", &["-V"]);
    run("nft", &["--version"]);
}

/// A network namespace, deleted on drop (also when the test fails).
struct Ns {
    name: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Ns {
    fn new(role: &str) -> Ns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("remofw{}-{n}{role}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Ns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        run("ip", &a);
    }

    fn nft(&self, args: &[&str]) -> String {
        let mut a = vec!["netns", "exec", self.name.as_str(), "nft"];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    fn enter(name: &str) {
        let f = File::open(format!("/run/netns/{name}")).unwrap();
        // SAFETY: setns on a valid namespace fd affects only this thread.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {name}: {}", std::io::Error::last_os_error());
    }

    /// Runs `f` on a thread inside the namespace and returns its result.
    fn within<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let name = self.name.clone();
        std::thread::spawn(move || {
            Ns::enter(&name);
            f()
        })
        .join()
        .unwrap()
    }

    /// Runs `f` on a detached thread inside the namespace (listeners).
    fn background(&self, f: impl FnOnce() + Send + 'static) {
        let name = self.name.clone();
        std::thread::spawn(move || {
            Ns::enter(&name);
            f()
        });
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// TCP listener that greets each connection with `greeting` and closes it.
fn tcp_greeter(ns: &Ns, addr: &str, greeting: &'static str) {
    let addr: SocketAddr = addr.parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    ns.background(move || {
        let l = TcpListener::bind(addr).unwrap();
        tx.send(()).unwrap();
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(greeting.as_bytes());
        }
    });
    rx.recv().unwrap();
}

/// UDP responder: answers every datagram with `pong`.
fn udp_ponger(ns: &Ns, addr: &str) {
    let addr: SocketAddr = addr.parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    ns.background(move || {
        let s = UdpSocket::bind(addr).unwrap();
        tx.send(()).unwrap();
        let mut buf = [0u8; 64];
        while let Ok((_, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(b"pong", from);
        }
    });
    rx.recv().unwrap();
}

#[derive(Debug, PartialEq)]
enum Probe {
    /// Connected (TCP) or answered (UDP), with the greeting.
    Reply(String),
    /// No answer in time: the packets were dropped.
    Dropped,
    /// Something else (refused, unreachable): a broken lab.
    Other(String),
}

/// A probe that must get through, tried up to three times: on a loaded
/// machine the first forwarded packet (neighbour discovery in the LAN
/// namespace) can miss one probe's 700 ms. Probes that must be dropped are
/// never retried.
fn tcp_probe_reaches(ns: &Ns, addr: &str) -> Probe {
    let mut p = tcp_probe(ns, addr);
    for _ in 0..2 {
        if p != Probe::Dropped {
            break;
        }
        p = tcp_probe(ns, addr);
    }
    p
}

fn tcp_probe(ns: &Ns, addr: &str) -> Probe {
    let addr: SocketAddr = addr.parse().unwrap();
    ns.within(
        move || match TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) {
            Ok(mut s) => {
                s.set_read_timeout(Some(PROBE_TIMEOUT)).unwrap();
                let mut buf = String::new();
                match s.read_to_string(&mut buf) {
                    Ok(_) => Probe::Reply(buf),
                    Err(e) => Probe::Other(format!("read: {e}")),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Probe::Dropped,
            Err(e) => Probe::Other(e.to_string()),
        },
    )
}

fn udp_probe(ns: &Ns, addr: &str) -> Probe {
    let addr: SocketAddr = addr.parse().unwrap();
    ns.within(move || {
        let any: SocketAddr = if addr.is_ipv6() {
            "[::]:0".parse().unwrap()
        } else {
            "0.0.0.0:0".parse().unwrap()
        };
        let s = UdpSocket::bind(any).unwrap();
        s.set_read_timeout(Some(PROBE_TIMEOUT)).unwrap();
        s.send_to(b"ping", addr).unwrap();
        let mut buf = [0u8; 64];
        match s.recv_from(&mut buf) {
            Ok((n, _)) => Probe::Reply(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                Probe::Dropped
            }
            Err(e) => Probe::Other(e.to_string()),
        }
    })
}

const CLIENT4: &str = "10.200.1.2";
const CLIENT6: &str = "fd00:200:1::2";

/// client — server — lan, with listeners, forwarding on in "server".
struct Lab {
    client: Ns,
    server: Ns,
    lan: Ns,
}

impl Lab {
    fn new() -> Lab {
        require_tools();
        let lab = Lab {
            client: Ns::new("c"),
            server: Ns::new("s"),
            lan: Ns::new("l"),
        };
        let (c, s, l) = (&lab.client.name, &lab.server.name, &lab.lan.name);
        lab.client.ip(&[
            "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", s,
        ]);
        lab.server.ip(&[
            "link", "add", "veth1", "type", "veth", "peer", "name", "veth1", "netns", l,
        ]);
        for (ns, dev, v4, v6) in [
            (&lab.client, "veth0", "10.200.1.2/24", "fd00:200:1::2/64"),
            (&lab.server, "veth0", "10.200.1.1/24", "fd00:200:1::1/64"),
            (&lab.server, "veth1", "10.200.2.1/24", "fd00:200:2::1/64"),
            (&lab.lan, "veth1", "10.200.2.2/24", "fd00:200:2::2/64"),
        ] {
            ns.ip(&["addr", "add", v4, "dev", dev]);
            ns.ip(&["-6", "addr", "add", v6, "dev", dev, "nodad"]);
            ns.ip(&["link", "set", dev, "up"]);
        }
        lab.lan
            .ip(&["route", "add", "default", "via", "10.200.2.1"]);
        lab.lan
            .ip(&["-6", "route", "add", "default", "via", "fd00:200:2::1"]);
        // The router case: forwarding on (per namespace), as docs/firewall.md says.
        lab.server.within(|| {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").unwrap();
            std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1").unwrap();
        });
        for port in [22, 2022, 2023] {
            let g: &'static str = Box::leak(format!("port {port}\n").into_boxed_str());
            tcp_greeter(&lab.server, &format!("10.200.1.1:{port}"), g);
            tcp_greeter(&lab.server, &format!("[fd00:200:1::1]:{port}"), g);
        }
        udp_ponger(&lab.server, "10.200.1.1:51820");
        udp_ponger(&lab.server, "[fd00:200:1::1]:51820");
        tcp_greeter(&lab.lan, "10.200.2.2:22", "lan\n");
        tcp_greeter(&lab.lan, "[fd00:200:2::2]:22", "lan\n");
        let _ = (c, s, l);
        lab
    }

    fn config(&self) -> String {
        format!(
            r#"
[firewall]
nft = ["ip", "netns", "exec", "{server}", "nft"]
trusted_proxies = ["127.0.0.1"]

[firewall.profiles.ssh]
ports = ["22/tcp"]
default_duration = 2
max_duration = "1m"

[firewall.profiles.wg]
ports = ["51820/udp"]
default_duration = 2

[firewall.profiles.lan]
forward = [{{ port = "2222/tcp", to = "10.200.2.2:22" }}, {{ port = "2222/tcp", to = "[fd00:200:2::2]:22" }}]
default_duration = 2

[firewall.profiles.guest]
ports = ["2022/tcp"]
guests = true
default_duration = 2

[firewall.profiles.capped]
ports = ["2023/tcp"]
default_duration = 1
max_duration = 3

[firewall.profiles.office]
ports = ["22/tcp"]
allow_from = ["192.0.2.0/24"]
"#,
            server = self.server.name
        )
    }

    /// `nft -j list ruleset` in the server namespace, for before/after checks.
    fn ruleset(&self) -> String {
        self.server.nft(&["-j", "list", "ruleset"])
    }
}

/// The router fixture with the lab's `[firewall]` config; carol may open `ssh` only.
fn firewall_fixture(lab: &Lab) -> (Fixture, IdentityKey) {
    let mut f = fixture();
    let carol = IdentityKey::generate();
    let cfg = f.root.join("remo.toml");
    std::fs::write(&cfg, lab.config()).unwrap();
    let mut db = UserDb::open(&f.root.join("users.db")).unwrap();
    db.add_user("carol", &carol.public()).unwrap();
    db.add_permission("carol", "open:ssh").unwrap();
    f.router = new_router(&f);
    (f, carol)
}

fn new_router(f: &Fixture) -> Arc<Router> {
    Router::new(Defaults {
        instance: InstanceKey {
            key_file: Some(f.root.join("server.key")),
            user_db: Some(f.root.join("users.db")),
            config: Some(f.root.join("remo.toml")),
            session_timeout: None,
        },
        base: Some("/remo".into()),
    })
}

/// A logged-in user talking to the router from a given address.
struct Caller<'a> {
    f: &'a Fixture,
    s: ClientSession,
    r: u64,
}

impl<'a> Caller<'a> {
    async fn login(f: &'a Fixture, user: &str, key: &IdentityKey) -> Caller<'a> {
        let s = login_as(f, user, key, now()).await.2.unwrap();
        Caller { f, s, r: 0 }
    }

    async fn open_from(
        &mut self,
        remote: &str,
        xff: Option<&str>,
        desc: Value,
    ) -> Result<Map<String, Value>, OpError> {
        self.r += 1;
        let mut params = Params::new();
        params.push("REQUEST_METHOD", "POST");
        params.push("REQUEST_URI", "/remo/open");
        params.push("REMOTE_ADDR", remote);
        params.push("HTTP_REMO_SESSION", self.s.session.as_str());
        if let Some(x) = xff {
            params.push("HTTP_X_FORWARDED_FOR", x);
        }
        let body = seal(&self.s, self.r, "open", desc, &[]);
        let resp = self
            .f
            .router
            .handle(Request {
                params,
                body: Body::from_bytes(Bytes::from(body)),
            })
            .await;
        let mut out = Vec::new();
        match resp.body {
            ResponseBody::Full(b) => out.extend_from_slice(&b),
            ResponseBody::Stream(mut rx) => {
                while let Some(chunk) = rx.recv().await {
                    out.extend_from_slice(&chunk);
                }
            }
        }
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&out));
        open_reply(&self.s, self.r, "open", &out).result
    }

    async fn open(&mut self, remote: &str, desc: Value) -> Result<Map<String, Value>, OpError> {
        self.open_from(remote, None, desc).await
    }

    async fn grants(&mut self) -> Vec<Value> {
        let r = self.open(CLIENT4, json!({"action": "list"})).await.unwrap();
        r["grants"].as_array().unwrap().clone()
    }
}

fn assert_reply(p: Probe, what: &str) {
    assert!(
        matches!(p, Probe::Reply(_)),
        "{what}: expected a reply, got {p:?}"
    );
}

fn assert_dropped(p: Probe, what: &str) {
    assert_eq!(
        p,
        Probe::Dropped,
        "{what}: expected the packets to be dropped"
    );
}

async fn sleep_until(t: Instant) {
    tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_v4_and_v6_open_refresh_and_expire() {
    let lab = Lab::new();
    let (f, _carol) = firewall_fixture(&lab);
    let mut alice = Caller::login(&f, "alice", &f.alice).await;
    let v4 = "10.200.1.1:22";
    let v6 = "[fd00:200:1::1]:22";
    // Before: the table is not even installed, so the port is open; the
    // first open installs the guard.
    assert_reply(tcp_probe(&lab.client, v4), "v4 before any table");
    alice
        .open(CLIENT4, json!({"action": "close", "profile": "ssh"}))
        .await
        .unwrap();
    assert_dropped(tcp_probe(&lab.client, v4), "v4 guarded, no grant");
    assert_dropped(tcp_probe(&lab.client, v6), "v6 guarded, no grant");

    let t0 = Instant::now();
    let r = alice
        .open(
            CLIENT4,
            json!({"action": "open", "profile": "ssh", "duration": 2}),
        )
        .await
        .unwrap();
    assert_eq!(r["ip"], CLIENT4);
    assert_eq!(r["expires_in"], 2);
    assert_eq!(r["capped"], false);
    let r = alice
        .open(CLIENT6, json!({"action": "open", "profile": "ssh"}))
        .await
        .unwrap();
    // Both grants started before this instant, so both end by t6 + 2 s.
    let t6 = Instant::now();
    assert_eq!(
        (r["ip"].as_str(), r["expires_in"].as_u64()),
        (Some(CLIENT6), Some(2))
    );
    assert_eq!(tcp_probe(&lab.client, v4), Probe::Reply("port 22\n".into()));
    assert_eq!(tcp_probe(&lab.client, v6), Probe::Reply("port 22\n".into()));
    let g = alice.grants().await;
    assert_eq!(g.len(), 2, "{g:?}");
    for x in &g {
        assert_eq!(x["profile"], "ssh");
        assert_eq!(x["by"], "alice");
        assert!(x["expires_in"].as_u64().unwrap() <= 2);
    }

    // Refresh the v4 grant 1 s in: it then lives until at least t6 + 3 s,
    // while the v6 grant is gone by t6 + 2 s.
    sleep_until(t6 + Duration::from_millis(1000)).await;
    let t_refresh_start = Instant::now();
    alice
        .open(
            CLIENT4,
            json!({"action": "open", "profile": "ssh", "duration": 2}),
        )
        .await
        .unwrap();
    let t_refresh = Instant::now();
    sleep_until(t6 + Duration::from_millis(2300)).await;
    assert!(
        t_refresh_start.elapsed() < Duration::from_millis(1800),
        "machine too slow"
    );
    assert_eq!(
        tcp_probe(&lab.client, v4),
        Probe::Reply("port 22\n".into()),
        "v4 refreshed"
    );
    assert_dropped(tcp_probe(&lab.client, v6), "v6 after its 2 s");
    sleep_until(t_refresh + Duration::from_millis(2300)).await;
    assert_dropped(tcp_probe(&lab.client, v4), "v4 after the refreshed 2 s");
    assert!(alice.grants().await.is_empty());
    eprintln!("tcp test: {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_open_and_expire() {
    let lab = Lab::new();
    let (f, _carol) = firewall_fixture(&lab);
    let mut alice = Caller::login(&f, "alice", &f.alice).await;
    let v4 = "10.200.1.1:51820";
    let v6 = "[fd00:200:1::1]:51820";
    alice
        .open(CLIENT4, json!({"action": "close", "profile": "wg"}))
        .await
        .unwrap();
    assert_dropped(udp_probe(&lab.client, v4), "udp v4 without grant");
    assert_dropped(udp_probe(&lab.client, v6), "udp v6 without grant");
    alice
        .open(CLIENT4, json!({"action": "open", "profile": "wg"}))
        .await
        .unwrap();
    alice
        .open(CLIENT6, json!({"action": "open", "profile": "wg"}))
        .await
        .unwrap();
    let t_open = Instant::now();
    assert_eq!(udp_probe(&lab.client, v4), Probe::Reply("pong".into()));
    assert_eq!(udp_probe(&lab.client, v6), Probe::Reply("pong".into()));
    sleep_until(t_open + Duration::from_millis(2300)).await;
    assert_dropped(udp_probe(&lab.client, v4), "udp v4 after expiry");
    assert_dropped(udp_probe(&lab.client, v6), "udp v6 after expiry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnat_forward_reaches_the_lan_only_while_granted() {
    let lab = Lab::new();
    let (f, _carol) = firewall_fixture(&lab);
    let mut alice = Caller::login(&f, "alice", &f.alice).await;
    let v4 = "10.200.1.1:2222";
    let v6 = "[fd00:200:1::1]:2222";
    alice
        .open(CLIENT4, json!({"action": "close", "profile": "lan"}))
        .await
        .unwrap();
    assert_dropped(tcp_probe(&lab.client, v4), "forward v4 without grant");
    assert_dropped(tcp_probe(&lab.client, v6), "forward v6 without grant");
    alice
        .open(CLIENT4, json!({"action": "open", "profile": "lan"}))
        .await
        .unwrap();
    let t0 = Instant::now();
    alice
        .open(CLIENT6, json!({"action": "open", "profile": "lan"}))
        .await
        .unwrap();
    assert_eq!(
        tcp_probe_reaches(&lab.client, v4),
        Probe::Reply("lan\n".into())
    );
    assert_eq!(
        tcp_probe_reaches(&lab.client, v6),
        Probe::Reply("lan\n".into())
    );
    let g = alice.grants().await;
    assert_eq!(g.len(), 2, "{g:?}");
    // close ends the v6 forward at once; v4 runs out on its own.
    alice
        .open(CLIENT6, json!({"action": "close", "profile": "lan"}))
        .await
        .unwrap();
    assert_dropped(tcp_probe(&lab.client, v6), "forward v6 after close");
    sleep_until(t0 + Duration::from_millis(2300)).await;
    assert_dropped(tcp_probe(&lab.client, v4), "forward v4 after expiry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_survives_a_restart_and_still_expires() {
    let lab = Lab::new();
    let (mut f, _carol) = firewall_fixture(&lab);
    let t0;
    {
        let mut alice = Caller::login(&f, "alice", &f.alice).await;
        alice
            .open(
                CLIENT4,
                json!({"action": "open", "profile": "ssh", "duration": 3}),
            )
            .await
            .unwrap();
        t0 = Instant::now();
    }
    // "Restart": a new router with fresh instances and sessions.
    f.router = new_router(&f);
    let mut alice = Caller::login(&f, "alice", &f.alice).await;
    let g = alice.grants().await;
    assert_eq!(g.len(), 1, "{g:?}");
    assert_eq!(
        (g[0]["profile"].as_str(), g[0]["ip"].as_str()),
        (Some("ssh"), Some(CLIENT4))
    );
    let left = g[0]["expires_in"].as_u64().unwrap();
    assert!((1..=3).contains(&left), "{left}");
    assert_reply(tcp_probe(&lab.client, "10.200.1.1:22"), "after restart");
    sleep_until(t0 + Duration::from_millis(3300)).await;
    assert_dropped(tcp_probe(&lab.client, "10.200.1.1:22"), "after expiry");
    assert!(alice.grants().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_caps_proxies_and_refusals() {
    let lab = Lab::new();
    let (f, carol) = firewall_fixture(&lab);
    let mut alice = Caller::login(&f, "alice", &f.alice).await;
    let mut carol = Caller::login(&f, "carol", &carol).await;
    let admin_pc = "10.200.1.9"; // where alice sits; the client namespace is her guest

    // Refusals change nothing, whether or not the table exists yet.
    let empty = lab.ruleset();
    check_refusals(&lab, &mut alice, &mut carol, admin_pc).await;
    assert_eq!(empty, lab.ruleset());

    // Guests: alice (at admin_pc) opens the guest profile for the client namespace.
    alice
        .open(
            admin_pc,
            json!({"action": "close", "profile": "guest", "ip": CLIENT4}),
        )
        .await
        .unwrap();
    check_refusals(&lab, &mut alice, &mut carol, admin_pc).await;
    assert_dropped(
        tcp_probe(&lab.client, "10.200.1.1:2022"),
        "guest port, no grant",
    );
    let r = alice
        .open(
            admin_pc,
            json!({"action": "open", "profile": "guest", "ip": CLIENT4}),
        )
        .await
        .unwrap();
    assert_eq!(r["ip"], CLIENT4);
    assert_eq!(
        tcp_probe(&lab.client, "10.200.1.1:2022"),
        Probe::Reply("port 2022\n".into())
    );
    // The guest grant opened only the guest profile's port, not ssh.
    assert_dropped(tcp_probe(&lab.client, "10.200.1.1:22"), "ssh for the guest");

    // Durations above the maximum are capped (and the kernel has the cap).
    let r = alice
        .open(
            CLIENT4,
            json!({"action": "open", "profile": "capped", "duration": 100}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r["expires_in"].as_u64(), r["capped"].as_bool()),
        (Some(3), Some(true))
    );
    let listing: Value = serde_json::from_str(&lab.server.nft(&[
        "-j",
        "list",
        "set",
        "inet",
        "remo",
        "g_capped_v4",
    ]))
    .unwrap();
    let text = listing.to_string();
    assert!(text.contains("\"timeout\":3"), "{text}");
    let r = alice
        .open(CLIENT4, json!({"action": "open", "profile": "capped"}))
        .await
        .unwrap();
    assert_eq!(
        (r["expires_in"].as_u64(), r["capped"].as_bool()),
        (Some(1), Some(false))
    );

    // Behind a trusted proxy the client is taken from X-Forwarded-For
    // (right-most untrusted); from anyone else the header is ignored.
    let r = carol
        .open_from(
            "127.0.0.1",
            Some("6.6.6.6, 10.200.1.2"),
            json!({"action": "open", "profile": "ssh"}),
        )
        .await
        .unwrap();
    assert_eq!(r["ip"], CLIENT4);
    let r = carol
        .open_from(
            "10.200.1.7",
            Some("10.200.1.2"),
            json!({"action": "open", "profile": "ssh", "duration": 1}),
        )
        .await
        .unwrap();
    assert_eq!(r["ip"], "10.200.1.7");
    // carol sees only ssh grants.
    let g = carol.grants().await;
    assert!(g.iter().all(|x| x["profile"] == "ssh"), "{g:?}");
    assert!(alice.grants().await.iter().any(|x| x["profile"] == "guest"));
}

type OpOutcome = Result<Map<String, Value>, OpError>;

/// Requests that must be refused with a clear error, leaving the ruleset as it was.
async fn check_refusals(lab: &Lab, alice: &mut Caller<'_>, carol: &mut Caller<'_>, admin_pc: &str) {
    let before = lab.ruleset();
    let cases: Vec<(OpOutcome, ErrorCode, &str)> = vec![
        (
            alice
                .open(
                    admin_pc,
                    json!({"action": "open", "profile": "ssh", "ip": "10.200.1.300"}),
                )
                .await,
            ErrorCode::BadRequest,
            "invalid IP address",
        ),
        (
            alice
                .open(
                    admin_pc,
                    json!({"action": "open", "profile": "ssh", "ip": "10.0.0.1 } ; flush ruleset"}),
                )
                .await,
            ErrorCode::BadRequest,
            "invalid IP address",
        ),
        (
            alice
                .open(admin_pc, json!({"action": "open", "profile": "nope"}))
                .await,
            ErrorCode::NotFound,
            "unknown firewall profile",
        ),
        (
            carol
                .open(CLIENT4, json!({"action": "open", "profile": "guest"}))
                .await,
            ErrorCode::Forbidden,
            "may not use firewall profile",
        ),
        (
            carol
                .open(CLIENT4, json!({"action": "open", "profile": "nope"}))
                .await,
            ErrorCode::Forbidden,
            "may not use firewall profile",
        ),
        (
            alice
                .open(
                    admin_pc,
                    json!({"action": "open", "profile": "ssh", "ip": CLIENT4}),
                )
                .await,
            ErrorCode::Forbidden,
            "only for your own address",
        ),
        (
            alice
                .open(CLIENT4, json!({"action": "open", "profile": "office"}))
                .await,
            ErrorCode::Forbidden,
            "outside the source ranges",
        ),
        (
            alice
                .open(
                    admin_pc,
                    json!({"action": "open", "profile": "guest", "ip": "127.0.0.1"}),
                )
                .await,
            ErrorCode::BadRequest,
            "cannot be granted",
        ),
        (
            alice
                .open(
                    admin_pc,
                    json!({"action": "open", "profile": "ssh", "duration": 0}),
                )
                .await,
            ErrorCode::BadRequest,
            "at least 1 second",
        ),
    ];
    for (i, (res, code, text)) in cases.into_iter().enumerate() {
        let e = res.expect_err(&format!("case {i} should fail"));
        assert_eq!(e.code, code, "case {i}: {e}");
        assert!(e.message.contains(text), "case {i}: {e}");
    }
    assert_eq!(
        before,
        lab.ruleset(),
        "a refused request changed the ruleset"
    );
}
