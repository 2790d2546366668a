//! Firewall access with real traffic. Each test builds its own lab of
//! network namespaces: "client" (10.200.1.2, fd00:200:1::2) joined by a
//! veth pair to "server" (10.200.1.1, fd00:200:1::1), which routes to a
//! "lan" namespace (10.200.2.2, fd00:200:2::2) over a second veth. remod's
//! nft table lives in "server" (`[firewall] nft = ["ip","netns","exec",
//! SERVER,"nft"]`), rule changes go through the real `open` operation of
//! the in-process router, and connections are made from "client" by test
//! threads that have entered that namespace (setns), to listeners that
//! threads in "server" and "lan" run. Tests of `remod serve` itself (the
//! guard at start, the embedded HTTP door's headers) run the real binary
//! inside "server" and speak HTTP to it from a thread there. Needs root,
//! `ip` (iproute2), `nft` (nftables) and `conntrack` (conntrack); missing
//! tools fail the test, naming the package.

// Test harness: a failed unwrap is a failed test.

use crate::inproc;

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
use remo::server::core::config::{Defaults, InstanceKey};
use remo::server::core::request::{Body, Handler, Params, Request, ResponseBody};
use remo::server::core::router::Router;
use remo::userdb::UserDb;
use serde_json::{json, Map, Value};

const PROBE_TIMEOUT: Duration = Duration::from_millis(700);
/// See [`tcp_probe_reaches`].
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

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
pub(crate) struct Ns {
    pub(crate) name: String,
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
    pub(crate) fn within<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let name = self.name.clone();
        std::thread::spawn(move || {
            Ns::enter(&name);
            f()
        })
        .join()
        .unwrap()
    }

    /// Runs `f` on a detached thread inside the namespace (listeners).
    pub(crate) fn background(&self, f: impl FnOnce() + Send + 'static) {
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

/// TCP echo server: every connection gets back what it sends.
fn tcp_echo(ns: &Ns, addr: &str) {
    let addr: SocketAddr = addr.parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    ns.background(move || {
        let l = TcpListener::bind(addr).unwrap();
        tx.send(()).unwrap();
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 256];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    rx.recv().unwrap();
}

/// A TCP connection made from inside `ns` (the socket stays in it).
fn tcp_connect(ns: &Ns, addr: &str) -> TcpStream {
    let addr: SocketAddr = addr.parse().unwrap();
    ns.within(move || TcpStream::connect_timeout(&addr, Duration::from_secs(3)).unwrap())
}

/// Does the connection still carry data both ways?
fn echoes(s: &mut TcpStream, msg: &str) -> bool {
    s.set_read_timeout(Some(PROBE_TIMEOUT)).unwrap();
    if s.write_all(msg.as_bytes()).is_err() {
        return false;
    }
    let mut buf = vec![0u8; msg.len()];
    s.read_exact(&mut buf).is_ok() && buf == msg.as_bytes()
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
pub(crate) enum Probe {
    /// Connected (TCP) or answered (UDP), with the greeting.
    Reply(String),
    /// No answer in time: the packets were dropped.
    Dropped,
    /// Something else (refused, unreachable): a broken lab.
    Other(String),
}

/// A probe that must get through, with a generous timeout: on a loaded
/// machine (CI runs Chromium beside this) the first SYN, neighbour
/// discovery in the LAN namespace or the greeter's thread can take longer
/// than PROBE_TIMEOUT, and the connect then rides on TCP's own SYN
/// retransmissions. A reply ends the probe at once, so this costs nothing
/// when things work. Probes that must be dropped keep the short timeout.
pub(crate) fn tcp_probe_reaches(ns: &Ns, addr: &str) -> Probe {
    tcp_probe_within(ns, addr, REACH_TIMEOUT)
}

pub(crate) fn tcp_probe(ns: &Ns, addr: &str) -> Probe {
    tcp_probe_within(ns, addr, PROBE_TIMEOUT)
}

fn tcp_probe_within(ns: &Ns, addr: &str, timeout: Duration) -> Probe {
    let addr: SocketAddr = addr.parse().unwrap();
    ns.within(move || match TcpStream::connect_timeout(&addr, timeout) {
        Ok(mut s) => {
            s.set_read_timeout(Some(timeout)).unwrap();
            let mut buf = String::new();
            match s.read_to_string(&mut buf) {
                Ok(_) => Probe::Reply(buf),
                Err(e) => Probe::Other(format!("read: {e}")),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Probe::Dropped,
        Err(e) => Probe::Other(e.to_string()),
    })
}

fn udp_probe(ns: &Ns, addr: &str) -> Probe {
    udp_probe_within(ns, addr, PROBE_TIMEOUT)
}

/// A UDP probe that must be answered: the long wait of [`tcp_probe_reaches`].
fn udp_probe_reaches(ns: &Ns, addr: &str) -> Probe {
    udp_probe_within(ns, addr, REACH_TIMEOUT)
}

fn udp_probe_within(ns: &Ns, addr: &str, timeout: Duration) -> Probe {
    let addr: SocketAddr = addr.parse().unwrap();
    ns.within(move || {
        let any: SocketAddr = if addr.is_ipv6() {
            "[::]:0".parse().unwrap()
        } else {
            "0.0.0.0:0".parse().unwrap()
        };
        let s = UdpSocket::bind(any).unwrap();
        s.set_read_timeout(Some(timeout)).unwrap();
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

pub(crate) const CLIENT4: &str = "10.200.1.2";
const CLIENT6: &str = "fd00:200:1::2";

/// client — server — lan, with listeners, forwarding on in "server".
pub(crate) struct Lab {
    pub(crate) client: Ns,
    pub(crate) server: Ns,
    pub(crate) lan: Ns,
}

impl Lab {
    pub(crate) fn new() -> Lab {
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
        for port in [22, 2022, 2023, 2024] {
            let g: &'static str = Box::leak(format!("port {port}\n").into_boxed_str());
            tcp_greeter(&lab.server, &format!("10.200.1.1:{port}"), g);
            tcp_greeter(&lab.server, &format!("[fd00:200:1::1]:{port}"), g);
        }
        tcp_echo(&lab.server, "10.200.1.1:2025");
        tcp_echo(&lab.lan, "10.200.2.2:2025");
        udp_ponger(&lab.server, "10.200.1.1:51820");
        udp_ponger(&lab.server, "[fd00:200:1::1]:51820");
        tcp_greeter(&lab.lan, "10.200.2.2:22", "lan\n");
        tcp_greeter(&lab.lan, "[fd00:200:2::2]:22", "lan\n");
        // The LAN host's own service on the forward's public port number.
        tcp_greeter(&lab.lan, "10.200.2.2:2222", "lan 2222\n");
        tcp_greeter(&lab.lan, "[fd00:200:2::2]:2222", "lan 2222\n");
        let _ = (c, s, l);
        lab.settle();
        lab
    }

    /// Waits until no address of the lab is tentative: the kernel gives
    /// every veth an IPv6 link-local address when it comes up, and its
    /// duplicate address detection ends a second or more later (longer on a
    /// loaded machine). That change is a network change to a browser in a
    /// namespace — Chromium fails its requests in flight with
    /// `ERR_NETWORK_CHANGED` — and a moving target for the probes.
    fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for ns in [&self.client, &self.server, &self.lan] {
            loop {
                let out = run("ip", &["-n", &ns.name, "-6", "addr", "show", "tentative"]);
                if out.trim().is_empty() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "addresses of {} still tentative after 20 s:\n{out}",
                    ns.name
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
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
max_duration = "1m"

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
            config_optional: false,
            ..Default::default()
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
        let xff: Vec<&str> = xff.into_iter().collect();
        self.open_xff(remote, &xff, desc).await
    }

    /// `open` with one FastCGI `HTTP_X_FORWARDED_FOR` param per entry of `xff`
    /// (as a front server passes repeated header lines).
    async fn open_xff(
        &mut self,
        remote: &str,
        xff: &[&str],
        desc: Value,
    ) -> Result<Map<String, Value>, OpError> {
        self.r += 1;
        let mut params = Params::new();
        params.push("REQUEST_METHOD", "POST");
        params.push("REQUEST_URI", "/remo/open");
        params.push("REMOTE_ADDR", remote);
        params.push("HTTP_REMO_SESSION", self.s.session.as_str());
        for x in xff {
            params.push("HTTP_X_FORWARDED_FOR", *x);
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

pub(crate) fn assert_reply(p: Probe, what: &str) {
    assert!(
        matches!(p, Probe::Reply(_)),
        "{what}: expected a reply, got {p:?}"
    );
}

pub(crate) fn assert_dropped(p: Probe, what: &str) {
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
    assert_reply(tcp_probe_reaches(&lab.client, v4), "v4 before any table");
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
    for addr in [v4, v6] {
        assert_eq!(
            tcp_probe_reaches(&lab.client, addr),
            Probe::Reply("port 22\n".into()),
            "{addr}"
        );
    }
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
        tcp_probe_reaches(&lab.client, v4),
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
    for addr in [v4, v6] {
        assert_eq!(
            udp_probe_reaches(&lab.client, addr),
            Probe::Reply("pong".into()),
            "{addr}"
        );
    }
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
    assert_reply(
        tcp_probe_reaches(&lab.client, "10.200.1.1:22"),
        "after restart",
    );
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
        tcp_probe_reaches(&lab.client, "10.200.1.1:2022"),
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

// ---------------------------------------------------------------------------
// The real `remod serve --http` inside the server namespace, and a minimal
// HTTP/1.1 client that runs in a namespace (so it can send exactly the
// header lines a proxy would: duplicates, underscores).

const REMOD: &str = env!("CARGO_BIN_EXE_remod");
const REMOD_PORT: u16 = 8917;

/// `remod serve --http 127.0.0.1:8917 --dir DIR --config FILE` in the server
/// namespace; killed on drop.
struct Remod {
    child: std::process::Child,
    dir: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Drop for Remod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- remod log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// Starts remod with `config`; `Err(log)` if it exits instead of listening.
fn start_remod(lab: &Lab, root: &std::path::Path, config: &str) -> Result<Remod, String> {
    let dir = root.join("remod");
    let cfg = root.join("remod.toml");
    std::fs::write(&cfg, config).unwrap();
    let log = root.join(format!(
        "remod-{}.log",
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let child = Command::new("ip")
        .args(["netns", "exec", &lab.server.name, REMOD, "serve", "--http"])
        .arg(format!("127.0.0.1:{REMOD_PORT}"))
        .arg("--dir")
        .arg(&dir)
        .arg("--config")
        .arg(&cfg)
        .env_remove("REMO_CONFIG")
        .env_remove("REMO_KEY_FILE")
        .env_remove("REMO_USER_DB")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut r = Remod { child, dir, log };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = r.child.try_wait().unwrap() {
            let text = std::fs::read_to_string(&r.log).unwrap_or_default();
            return Err(format!("remod exited ({st}): {text}"));
        }
        let up = lab
            .server
            .within(|| TcpStream::connect(("127.0.0.1", REMOD_PORT)).is_ok());
        if up {
            return Ok(r);
        }
        assert!(Instant::now() < deadline, "remod did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request from inside `ns` to remod; `(status, body)`.
fn http(ns: &Ns, method: &str, path: &str, headers: &[String], body: &[u8]) -> (u16, Vec<u8>) {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: remod\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for h in headers {
        req.extend_from_slice(h.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    let raw = ns.within(move || {
        let mut s = TcpStream::connect(("127.0.0.1", REMOD_PORT)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(&req).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        out
    });
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut rest = &raw[split + 4..];
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    if !chunked {
        return (status, rest.to_vec());
    }
    let mut body = Vec::new();
    loop {
        let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16).unwrap();
        rest = &rest[nl + 2..];
        if size == 0 {
            return (status, body);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// A logged-in session with the real remod (as the `admin` its --dir made).
struct Http<'a> {
    ns: &'a Ns,
    s: ClientSession,
    r: u64,
}

impl<'a> Http<'a> {
    fn login(ns: &'a Ns, remod: &Remod) -> Http<'a> {
        use remo::proto::handshake::{AuthResponse, ClientHandshake};
        use remo::proto::identity::PublicKey;
        let (st, info) = http(ns, "GET", "/info", &[], b"");
        assert_eq!(st, 200);
        let info: Value = serde_json::from_slice(&info).unwrap();
        let server = PublicKey::from_b64(info["key"].as_str().unwrap()).unwrap();
        let key =
            remo::keyfile::read_private_key(&remod.dir.join("client").join("admin.key"), None)
                .unwrap();
        let (hs, req) = ClientHandshake::start("admin", &key, now());
        let (st, body) = http(
            ns,
            "POST",
            "/auth",
            &["Content-Type: application/json".into()],
            &serde_json::to_vec(&req).unwrap(),
        );
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
        let resp: AuthResponse = serde_json::from_slice(&body).unwrap();
        Http {
            ns,
            s: hs.finish(&resp, &server).unwrap(),
            r: 0,
        }
    }

    /// The `open` operation with extra header lines.
    fn open(&mut self, headers: &[&str], desc: Value) -> Result<Map<String, Value>, OpError> {
        self.r += 1;
        let body = seal(&self.s, self.r, "open", desc, &[]);
        let mut h = vec![
            format!("Remo-Session: {}", self.s.session),
            "Content-Type: application/x-remo".to_string(),
        ];
        h.extend(headers.iter().map(|s| s.to_string()));
        let (st, out) = http(self.ns, "POST", "/open", &h, &body);
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&out));
        open_reply(&self.s, self.r, "open", &out).result
    }
}

// ---------------------------------------------------------------------------
// Issue 18: a grant can do no more than it says.

/// Point 1 (FastCGI shape): a trusted proxy that appends its own
/// `X-Forwarded-For` line (HAProxy's `option forwardfor`) after the client's
/// forged one. Every line counts, in order; the right-most untrusted address
/// is the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_lines_are_combined() {
    let lab = Lab::new();
    let (f, carol) = firewall_fixture(&lab);
    let mut carol = Caller::login(&f, "carol", &carol).await;
    let r = carol
        .open_xff(
            "127.0.0.1",
            &[CLIENT4, "10.200.1.77"],
            json!({"action": "open", "profile": "ssh"}),
        )
        .await
        .unwrap();
    assert_eq!(
        r["ip"], "10.200.1.77",
        "the forged first line chose the address"
    );
    assert_dropped(
        tcp_probe(&lab.client, "10.200.1.1:22"),
        "the forged address got nothing",
    );
    // A list inside each line works the same way.
    let r = carol
        .open_xff(
            "127.0.0.1",
            &["10.200.1.5, 10.200.1.6", "10.200.1.78, 127.0.0.1"],
            json!({"action": "open", "profile": "ssh", "duration": 1}),
        )
        .await
        .unwrap();
    assert_eq!(r["ip"], "10.200.1.78");
}

/// Point 1 (embedded HTTP door of the real remod): repeated header lines
/// are combined, and `X_Forwarded_For` is not an alias of `X-Forwarded-For`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_door_forwarded_for_lines_and_no_underscore_alias() {
    let lab = Lab::new();
    let tmp = tempfile::tempdir().unwrap();
    let remod = start_remod(&lab, tmp.path(), &lab.config()).unwrap();
    // The test thread sits at 127.0.0.1 in the server namespace: the proxy.
    let mut admin = Http::login(&lab.server, &remod);
    let ssh = json!({"action": "open", "profile": "ssh", "duration": 30});
    let r = admin
        .open(
            &[
                "X-Forwarded-For: 10.200.1.2",
                "X-Forwarded-For: 10.200.1.77",
            ],
            ssh.clone(),
        )
        .unwrap();
    assert_eq!(r["ip"], "10.200.1.77", "two header lines");
    let r = admin
        .open(
            &[
                "X_Forwarded_For: 10.200.1.2",
                "X-Forwarded-For: 10.200.1.78",
            ],
            ssh.clone(),
        )
        .unwrap();
    assert_eq!(
        r["ip"], "10.200.1.78",
        "underscore line before the real one"
    );
    let e = admin
        .open(&["X_Forwarded_For: 10.200.1.2"], ssh.clone())
        .expect_err("an underscore header alone is no X-Forwarded-For");
    assert_eq!(e.code, ErrorCode::BadRequest, "{e}");
    assert_dropped(
        tcp_probe(&lab.client, "10.200.1.1:22"),
        "10.200.1.2 never got a grant",
    );
}

/// Point 4: a grant belongs to the user who opened it. Another user may
/// neither close nor shorten it; two users behind one NAT address each
/// keep their own; an admin closes everyone's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_belong_to_their_user() {
    let lab = Lab::new();
    let (f, carol) = firewall_fixture(&lab);
    let dave = add_user(&f, "dave", &["open:ssh", "open:guest"]);
    UserDb::open(&f.root.join("users.db"))
        .unwrap()
        .add_permission("carol", "open:guest")
        .unwrap();
    let mut alice = Caller::login(&f, "alice", &f.alice).await;
    let mut carol = Caller::login(&f, "carol", &carol).await;
    let mut dave = Caller::login(&f, "dave", &dave).await;
    let guest = "10.200.1.1:2022";
    let ssh = "10.200.1.1:22";
    let elsewhere = "10.200.1.9";

    // dave opens the guest profile for the client namespace.
    dave.open(
        elsewhere,
        json!({"action": "open", "profile": "guest", "ip": CLIENT4, "duration": 30}),
    )
    .await
    .unwrap();
    assert_reply(tcp_probe_reaches(&lab.client, guest), "dave's guest grant");
    // carol may use the profile, but closing dave's grant is not hers to do.
    carol
        .open(
            elsewhere,
            json!({"action": "close", "profile": "guest", "ip": CLIENT4}),
        )
        .await
        .unwrap();
    assert_reply(
        tcp_probe_reaches(&lab.client, guest),
        "dave's grant after carol's close",
    );
    // Nor can she shorten it by re-opening it for one second.
    carol
        .open(
            elsewhere,
            json!({"action": "open", "profile": "guest", "ip": CLIENT4, "duration": 1}),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_reply(
        tcp_probe_reaches(&lab.client, guest),
        "dave's grant after carol's 1 s re-open",
    );
    let g = dave.grants().await;
    assert!(
        g.iter()
            .any(|x| x["by"] == "dave" && x["expires_in"].as_u64().unwrap() > 20),
        "{g:?}"
    );

    // Behind one NAT address: carol and dave both open ssh for it, dave
    // closes his; carol's stays.
    carol
        .open(
            CLIENT4,
            json!({"action": "open", "profile": "ssh", "duration": 30}),
        )
        .await
        .unwrap();
    dave.open(
        CLIENT4,
        json!({"action": "open", "profile": "ssh", "duration": 30}),
    )
    .await
    .unwrap();
    dave.open(CLIENT4, json!({"action": "close", "profile": "ssh"}))
        .await
        .unwrap();
    assert_reply(
        tcp_probe_reaches(&lab.client, ssh),
        "carol's ssh after dave's close",
    );
    carol
        .open(CLIENT4, json!({"action": "close", "profile": "ssh"}))
        .await
        .unwrap();
    assert_dropped(tcp_probe(&lab.client, ssh), "ssh after both closed");

    // An admin closes the grant whoever made it.
    alice
        .open(
            elsewhere,
            json!({"action": "close", "profile": "guest", "ip": CLIENT4}),
        )
        .await
        .unwrap();
    assert_dropped(
        tcp_probe(&lab.client, guest),
        "guest after the admin's close",
    );
}

/// Point 2: a forward grant rewrites only connections addressed to this
/// host, not a granted client's traffic to other hosts routed through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnat_only_for_traffic_to_this_host() {
    let lab = Lab::new();
    lab.client
        .ip(&["route", "add", "10.200.2.0/24", "via", "10.200.1.1"]);
    lab.client.ip(&[
        "-6",
        "route",
        "add",
        "fd00:200:2::/64",
        "via",
        "fd00:200:1::1",
    ]);
    let (f, _carol) = firewall_fixture(&lab);
    let mut alice = Caller::login(&f, "alice", &f.alice).await;
    for ip in [CLIENT4, CLIENT6] {
        alice
            .open(
                ip,
                json!({"action": "open", "profile": "lan", "duration": 30}),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        tcp_probe_reaches(&lab.client, "10.200.1.1:2222"),
        Probe::Reply("lan\n".into()),
        "the forward itself"
    );
    assert_eq!(
        tcp_probe_reaches(&lab.client, "10.200.2.2:2222"),
        Probe::Reply("lan 2222\n".into()),
        "v4 traffic to another host on the public port was rewritten"
    );
    assert_eq!(
        tcp_probe_reaches(&lab.client, "[fd00:200:2::2]:2222"),
        Probe::Reply("lan 2222\n".into()),
        "v6 traffic to another host on the public port was rewritten"
    );
}

/// Point 3: this host's own connections (loopback interface) pass the
/// guard, unless a profile sets `guard_loopback = true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_passes_the_guard_unless_the_profile_says_so() {
    let lab = Lab::new();
    let f = fixture_with_config(|_| {
        format!(
            "{}\n[firewall.profiles.strict]\nports = [\"2024/tcp\"]\nguard_loopback = true\n",
            lab.config()
        )
    });
    let mut alice = Caller::login(&f, "alice", &f.alice).await;
    alice
        .open(CLIENT4, json!({"action": "close", "profile": "ssh"}))
        .await
        .unwrap();
    assert_dropped(tcp_probe(&lab.client, "10.200.1.1:22"), "remote, no grant");
    assert_eq!(
        tcp_probe_reaches(&lab.server, "10.200.1.1:22"),
        Probe::Reply("port 22\n".into()),
        "a local health check"
    );
    assert_eq!(
        tcp_probe_reaches(&lab.server, "[fd00:200:1::1]:22"),
        Probe::Reply("port 22\n".into()),
        "a local health check over IPv6"
    );
    assert_dropped(
        tcp_probe(&lab.server, "10.200.1.1:2024"),
        "guard_loopback = true",
    );
}

/// Point 6: `remod serve` installs the guard at start, refuses to start
/// when nft fails, and a restart with changed profiles updates the guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_installs_the_guard_at_start() {
    let lab = Lab::new();
    let tmp = tempfile::tempdir().unwrap();
    let remod = start_remod(&lab, tmp.path(), &lab.config()).unwrap();
    assert_dropped(
        tcp_probe(&lab.client, "10.200.1.1:22"),
        "guarded port before any open",
    );
    assert_dropped(
        udp_probe(&lab.client, "10.200.1.1:51820"),
        "guarded udp port before any open",
    );
    assert_eq!(
        tcp_probe_reaches(&lab.client, "10.200.1.1:2024"),
        Probe::Reply("port 2024\n".into()),
        "a port no profile guards"
    );
    drop(remod);
    // A profile added while remod was down is guarded once it restarts.
    let more = format!(
        "{}\n[firewall.profiles.extra]\nports = [\"2024/tcp\"]\n",
        lab.config()
    );
    let remod = start_remod(&lab, tmp.path(), &more).unwrap();
    assert_dropped(
        tcp_probe(&lab.client, "10.200.1.1:2024"),
        "the new profile's port after the restart",
    );
    drop(remod);
    // nft failing is a refusal to start, with a clear error.
    let broken = lab.config().replace(
        "nft = [\"ip\", \"netns\", \"exec\"",
        "nft = [\"/nonexistent/nft\", \"netns\", \"exec\"",
    );
    assert!(broken.contains("/nonexistent/nft"));
    let err = start_remod(&lab, tmp.path(), &broken)
        .err()
        .expect("remod must not start without its firewall guard");
    assert!(err.contains("firewall") && err.contains("nft"), "{err}");
}

fn sighup(remod: &Remod) {
    // `ip netns exec` execs remod: the child is remod itself.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(remod.child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
}

/// A SIGHUP reload that adds `[firewall]`, or a profile, installs the
/// guard before the new configuration serves anyone: the new profile's port
/// is closed to everyone until it is opened, and opening it works. When the
/// guard cannot be installed (nft fails), the reload is refused and the
/// previous configuration stays — its profiles, and nothing of the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_adds_firewall_profiles_guards_them_first() {
    let lab = Lab::new();
    let tmp = tempfile::tempdir().unwrap();
    // No [firewall] at all at start.
    let remod = start_remod(&lab, tmp.path(), "[limits]\nmax_sessions = 100\n").unwrap();
    let mut admin = Http::login(&lab.server, &remod);
    assert_eq!(
        tcp_probe_reaches(&lab.client, "10.200.1.1:22"),
        Probe::Reply("port 22\n".into()),
        "no firewall configured: port 22 is open"
    );
    let cfg = tmp.path().join("remod.toml");
    std::fs::write(&cfg, lab.config()).unwrap();
    sighup(&remod);
    crate::common::wait_log(&remod.log, "[firewall] changed", 1);
    assert_dropped(
        tcp_probe(&lab.client, "10.200.1.1:22"),
        "the profile added by the reload is guarded",
    );
    let ssh = json!({"action": "open", "profile": "ssh", "duration": 30});
    admin
        .open(&["X-Forwarded-For: 10.200.1.2"], ssh)
        .expect("the reloaded configuration serves open");
    assert_reply(
        tcp_probe_reaches(&lab.client, "10.200.1.1:22"),
        "after open under the reloaded configuration",
    );

    // A changed [firewall] (one more profile) is guarded at the reload too.
    let more = format!(
        "{}\n[firewall.profiles.extra]\nports = [\"2024/tcp\"]\n",
        lab.config()
    );
    std::fs::write(&cfg, &more).unwrap();
    sighup(&remod);
    crate::common::wait_log(&remod.log, "[firewall] changed", 2);
    assert_dropped(
        tcp_probe(&lab.client, "10.200.1.1:2024"),
        "the profile added by the second reload is guarded",
    );

    // nft failing: the reload is refused, nothing of it takes effect.
    let broken = format!(
        "{}\n[firewall.profiles.late]\nports = [\"2023/tcp\"]\n",
        more
    )
    .replace(
        "nft = [\"ip\", \"netns\", \"exec\"",
        "nft = [\"/nonexistent/nft\", \"netns\", \"exec\"",
    );
    assert!(broken.contains("/nonexistent/nft"));
    std::fs::write(&cfg, &broken).unwrap();
    sighup(&remod);
    let log = crate::common::wait_log(&remod.log, "keeping the previous configuration", 1);
    assert!(log.contains("cannot install the firewall guard"), "{log}");
    let late = json!({"action": "open", "profile": "late", "duration": 30});
    let e = admin
        .open(&["X-Forwarded-For: 10.200.1.2"], late)
        .expect_err("a profile of the refused configuration");
    assert_eq!(e.code, ErrorCode::NotFound, "{e}");
    let extra = json!({"action": "open", "profile": "extra", "duration": 30});
    admin
        .open(&["X-Forwarded-For: 10.200.1.2"], extra)
        .expect("the previous configuration still serves");
    assert_reply(
        tcp_probe_reaches(&lab.client, "10.200.1.1:2024"),
        "opened under the previous configuration",
    );
}

const ECHO_PROFILES: &str = r#"
[firewall.profiles.echo]
ports = ["2025/tcp"]
default_duration = 2
max_duration = "1m"

[firewall.profiles.fwd]
forward = [{ port = "2026/tcp", to = "10.200.2.2:2025" }]
default_duration = 2
max_duration = "1m"
"#;

fn echo_fixture(lab: &Lab, firewall_extra: &str) -> Fixture {
    fixture_with_config(|_| {
        let base = lab
            .config()
            .replace("[firewall]\n", &format!("[firewall]\n{firewall_extra}\n"));
        format!("{base}{ECHO_PROFILES}")
    })
}

/// Point 5: `close` cuts the grant's established connections (local and
/// forwarded), even where established connections are kept on expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_cuts_established_connections() {
    let lab = Lab::new();
    let f = echo_fixture(&lab, "keep_established = true");
    let mut alice = Caller::login(&f, "alice", &f.alice).await;
    for p in ["echo", "fwd"] {
        alice
            .open(
                CLIENT4,
                json!({"action": "open", "profile": p, "duration": 30}),
            )
            .await
            .unwrap();
    }
    let mut local = tcp_connect(&lab.client, "10.200.1.1:2025");
    let mut fwd = tcp_connect(&lab.client, "10.200.1.1:2026");
    assert!(echoes(&mut local, "a\n"), "local echo during the grant");
    assert!(echoes(&mut fwd, "a\n"), "forwarded echo during the grant");
    for p in ["echo", "fwd"] {
        alice
            .open(CLIENT4, json!({"action": "close", "profile": p}))
            .await
            .unwrap();
    }
    assert!(!echoes(&mut local, "b\n"), "local connection after close");
    assert!(!echoes(&mut fwd, "b\n"), "forwarded connection after close");
}

/// Point 5: on expiry (with nobody to run anything: it is the kernel's
/// doing) established TCP ends by default, and a UDP flow that keeps
/// sending does not keep its access.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outlives_an_expired_grant_by_default() {
    let lab = Lab::new();
    let f = echo_fixture(&lab, "");
    let mut alice = Caller::login(&f, "alice", &f.alice).await;
    for p in ["echo", "fwd", "wg"] {
        alice
            .open(
                CLIENT4,
                json!({"action": "open", "profile": p, "duration": 2}),
            )
            .await
            .unwrap();
    }
    let t0 = Instant::now();
    let mut local = tcp_connect(&lab.client, "10.200.1.1:2025");
    let mut fwd = tcp_connect(&lab.client, "10.200.1.1:2026");
    assert!(echoes(&mut local, "a\n"), "local echo during the grant");
    assert!(echoes(&mut fwd, "a\n"), "forwarded echo during the grant");
    let udp = lab.client.within(|| {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.connect("10.200.1.1:51820").unwrap();
        s
    });
    udp.set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    // A flow that keeps sending (a WireGuard keepalive) every 250 ms.
    let mut last_pong = None;
    while t0.elapsed() < Duration::from_millis(4500) {
        udp.send(b"ping").unwrap();
        let mut buf = [0u8; 16];
        if udp.recv(&mut buf).is_ok() {
            last_pong = Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = last_pong.expect("udp worked during the grant");
    assert!(
        last < Duration::from_millis(3000),
        "the UDP flow still had access {last:?} after a 2 s grant"
    );
    assert!(!echoes(&mut local, "b\n"), "local TCP after expiry");
    assert!(!echoes(&mut fwd, "b\n"), "forwarded TCP after expiry");
}

/// Point 8: with `guard_forward = true`, a client that routes the LAN
/// range through this host does not reach the forward's target directly;
/// through a grant it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_forward_drops_direct_routed_traffic() {
    let lab = Lab::new();
    lab.client
        .ip(&["route", "add", "10.200.2.0/24", "via", "10.200.1.1"]);
    let f = fixture_with_config(|_| {
        lab.config().replace(
            "[firewall.profiles.lan]\n",
            "[firewall.profiles.lan]\nguard_forward = true\n",
        )
    });
    let mut alice = Caller::login(&f, "alice", &f.alice).await;
    alice
        .open(CLIENT4, json!({"action": "close", "profile": "lan"}))
        .await
        .unwrap();
    assert_dropped(
        tcp_probe(&lab.client, "10.200.2.2:22"),
        "the LAN target, routed directly, without a grant",
    );
    alice
        .open(
            CLIENT4,
            json!({"action": "open", "profile": "lan", "duration": 30}),
        )
        .await
        .unwrap();
    assert_eq!(
        tcp_probe_reaches(&lab.client, "10.200.1.1:2222"),
        Probe::Reply("lan\n".into()),
        "through the granted forward"
    );
}

/// Point 7: set sizes and per-user caps: `too_large` when full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_are_bounded() {
    let lab = Lab::new();
    let f = fixture_with_config(|_| {
        lab.config().replace(
            "[firewall]\n",
            "[firewall]\nmax_grants = 3\nmax_grants_per_user = 2\n",
        )
    });
    let dave = add_user(&f, "dave", &["open:guest"]);
    let carol = add_user(&f, "erin", &["open:guest"]);
    let mut dave = Caller::login(&f, "dave", &dave).await;
    let mut erin = Caller::login(&f, "erin", &carol).await;
    let open = |ip: &str| json!({"action": "open", "profile": "guest", "ip": ip, "duration": 30});
    dave.open(CLIENT4, open("10.200.1.31")).await.unwrap();
    dave.open(CLIENT4, open("10.200.1.32")).await.unwrap();
    // Refreshing one's own grant is not a new one.
    dave.open(CLIENT4, open("10.200.1.32")).await.unwrap();
    let e = dave
        .open(CLIENT4, open("10.200.1.33"))
        .await
        .expect_err("a third grant for dave");
    assert_eq!(e.code, ErrorCode::TooLarge, "{e}");
    erin.open(CLIENT4, open("10.200.1.34")).await.unwrap();
    let e = erin
        .open(CLIENT4, open("10.200.1.35"))
        .await
        .expect_err("the set is full");
    assert_eq!(e.code, ErrorCode::TooLarge, "{e}");
    assert_dropped(
        tcp_probe(&lab.client, "10.200.1.1:2022"),
        "no grant for the client",
    );
}

/// Issue 22: `remo @fw open` on two servers at once, each a real
/// `remod serve` (in this namespace, its nft table in its lab's "server"
/// namespace), both trusting one CA, the user registered on neither. The
/// guest's probe from each lab's "client" is dropped before, answered
/// during the grant, and dropped again after `remo @fw close`.
#[test]
fn fleet_open_and_close_on_two_servers() {
    use crate::common::{chmod, free_port, Proc, Scratch};
    let labs = [Lab::new(), Lab::new()];
    let scratch = Scratch::new("fleet-fw");
    let home = scratch.sub("home");
    for d in [".config/remo", "run", ".cache"] {
        std::fs::create_dir_all(home.join(d)).unwrap();
    }
    chmod(&home.join("run"), 0o700);
    let remo = |args: &[&str]| {
        let out = crate::common::remo_at(&home, args).output().unwrap();
        assert!(
            out.status.success(),
            "remo {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ca = scratch.path().join("ca");
    crate::common::ca_user_cert(
        &home,
        &ca,
        "carol",
        &["--valid", "10m", "--hosts", "fw*", "--grant", "open:guest"],
    );
    let mut procs = Vec::new();
    let metrics_port = free_port();
    let mut config = String::from("user = \"carol\"\n[groups]\nfw = [\"fw1\", \"fw2\"]\n");
    for (i, lab) in labs.iter().enumerate() {
        let name = format!("fw{}", i + 1);
        let dir = scratch.path().join(&name);
        let cfg = scratch.path().join(format!("{name}.toml"));
        std::fs::write(&cfg, lab.config()).unwrap();
        let port = free_port();
        let mut cmd = Command::new(REMOD);
        cmd.args(["serve", "--http"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--dir")
            .arg(&dir)
            .arg("--config")
            .arg(&cfg)
            .arg("--ca-keys")
            .arg(format!("{}.pub", ca.display()))
            .arg("--server-name")
            .arg(&name)
            .env_remove("REMO_CONFIG")
            .env_remove("REMO_KEY_FILE")
            .env_remove("REMO_USER_DB")
            .env("RUST_LOG", "info");
        if i == 0 {
            cmd.arg("--metrics")
                .arg(format!("127.0.0.1:{metrics_port}"));
        }
        let mut p = Proc::spawn(&name, cmd, &scratch.path().join(format!("{name}.log")));
        p.wait_port(port);
        procs.push(p);
        config.push_str(&format!(
            "[hosts.{name}]\nserver = \"http://127.0.0.1:{port}\"\n"
        ));
    }
    std::fs::write(home.join(".config/remo/config.toml"), config).unwrap();
    let guest_port = "10.200.1.1:2022";
    for lab in &labs {
        assert_dropped(tcp_probe(&lab.client, guest_port), "before the grant");
    }
    remo(&["@fw", "open", "guest", "--for", "1m", "--ip", CLIENT4]);
    for lab in &labs {
        assert_reply(
            tcp_probe_reaches(&lab.client, guest_port),
            "during the grant",
        );
    }
    let listed = remo(&["@fw", "grants"]);
    for name in ["fw1", "fw2"] {
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(name) && l.contains("guest")),
            "{name}: {listed}"
        );
    }
    // remod status and the metrics see the grant (issue 25).
    let status = Command::new(REMOD)
        .args(["status", "--json", "--dir"])
        .arg(scratch.path().join("fw1"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&status.stdout).unwrap();
    let grant = &v[0]["grants"][0];
    assert_eq!(
        (&grant["profile"], &grant["ip"], &grant["user"]),
        (&json!("guest"), &json!(CLIENT4), &json!("carol")),
        "{v}"
    );
    let (code, body) = crate::common::curl(
        "GET",
        &format!("http://127.0.0.1:{metrics_port}/metrics"),
        &[],
        None,
    );
    assert_eq!(code, 200);
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("remo_firewall_grants 1\n"), "{body}");
    assert!(body.contains("remo_certificate_sessions 1\n"), "{body}");
    remo(&["@fw", "close", "guest", "--ip", CLIENT4]);
    for lab in &labs {
        assert_dropped(tcp_probe(&lab.client, guest_port), "after close");
    }
    drop(procs);
}
