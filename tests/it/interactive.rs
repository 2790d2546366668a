//! Interactive processes through the real router with real children and
//! real terminals: icm/idt/edt/kill/resize, lifecycle, bad input.

// Test harness: a failed unwrap is a failed test.

use crate::inproc;

use std::time::{Duration, Instant};

use inproc::*;
use remo::proto::handshake::ClientSession;
use remo::proto::response::ErrorCode;
use serde_json::{json, Value};

struct C<'a> {
    f: &'a Fixture,
    s: ClientSession,
    r: u64,
}

impl<'a> C<'a> {
    async fn new(f: &'a Fixture) -> C<'a> {
        C {
            f,
            s: login(f).await,
            r: 0,
        }
    }
    async fn req(&mut self, op: &str, desc: Value, data: &[&[u8]]) -> Reply {
        self.r += 1;
        request(self.f, &self.s, self.r, op, desc, data).await
    }
    /// Polls `id` until the output contains `want` or the process ends.
    async fn read_until(&mut self, id: &str, want: &str) -> (String, Reply) {
        let mut text = String::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self
                .req("idt", json!({"id": id, "wait_ms": 500}), &[])
                .await;
            text.push_str(&String::from_utf8_lossy(&r.stdout));
            let res = r.result.as_ref().unwrap();
            if text.contains(want) || res["running"] == false || Instant::now() > deadline {
                return (text, r);
            }
        }
    }
}

fn id_of(r: &Reply) -> String {
    r.result.as_ref().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn cat_echo_and_edt_exit_code() {
    let f = fixture();
    let mut c = C::new(&f).await;
    let r = c
        .req(
            "icm",
            json!({"argv": ["cat"], "wait_ms": 50}),
            &[b"hello\n"],
        )
        .await;
    let id = id_of(&r);
    let mut got = String::from_utf8_lossy(&r.stdout).into_owned();
    if !got.contains("hello") {
        got.push_str(&c.read_until(&id, "hello").await.0);
    }
    assert_eq!(got, "hello\n");
    let r = c
        .req("idt", json!({"id": id, "wait_ms": 1000}), &[b"again\n"])
        .await;
    assert_eq!(r.stdout, b"again\n");
    assert_eq!(r.result.as_ref().unwrap()["running"], true);
    // edt closes stdin: cat ends with 0.
    let mut r = c.req("edt", json!({"id": id, "wait_ms": 2000}), &[]).await;
    while r.result.as_ref().unwrap()["running"] == true {
        r = c.req("idt", json!({"id": id, "wait_ms": 2000}), &[]).await;
    }
    let res = r.result.unwrap();
    assert_eq!(res["exit"], 0);
    assert_eq!(res["signal"], Value::Null);
    // Once reported finished, the id is gone.
    let r = c.req("idt", json!({"id": id}), &[]).await;
    assert_eq!(r.result.unwrap_err().code, ErrorCode::NotFound);
}

#[tokio::test]
async fn sh_reads_several_lines_and_exit_code_comes_back() {
    let f = fixture();
    let mut c = C::new(&f).await;
    let script = "while read l; do echo \"got $l\"; done; echo bye >&2; exit 7";
    let r = c
        .req("icm", json!({"sh": script, "wait_ms": 0}), &[b"one\ntwo\n"])
        .await;
    let id = id_of(&r);
    let mut out = String::from_utf8_lossy(&r.stdout).into_owned();
    let mut err = String::from_utf8_lossy(&r.stderr).into_owned();
    let r = c
        .req("idt", json!({"id": id, "wait_ms": 0}), &[b"three\n"])
        .await;
    out.push_str(&String::from_utf8_lossy(&r.stdout));
    err.push_str(&String::from_utf8_lossy(&r.stderr));
    let mut r = c.req("edt", json!({"id": id, "wait_ms": 1000}), &[]).await;
    loop {
        out.push_str(&String::from_utf8_lossy(&r.stdout));
        err.push_str(&String::from_utf8_lossy(&r.stderr));
        if r.result.as_ref().unwrap()["running"] == false {
            break;
        }
        r = c.req("idt", json!({"id": id, "wait_ms": 1000}), &[]).await;
    }
    assert_eq!(out, "got one\ngot two\ngot three\n");
    assert_eq!(err, "bye\n");
    assert_eq!(r.result.unwrap()["exit"], 7);
}

#[tokio::test]
async fn wait_ms_returns_early_when_output_arrives() {
    let f = fixture();
    let mut c = C::new(&f).await;
    let r = c
        .req(
            "icm",
            json!({"sh": "sleep 0.3; echo late; sleep 30", "wait_ms": 0}),
            &[],
        )
        .await;
    let id = id_of(&r);
    let t = Instant::now();
    let r = c.req("idt", json!({"id": id, "wait_ms": 5000}), &[]).await;
    assert_eq!(r.stdout, b"late\n");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "waited {:?}",
        t.elapsed()
    );
    // Nothing more comes: the full wait is used, and the process still runs.
    let t = Instant::now();
    let r = c.req("idt", json!({"id": id, "wait_ms": 300}), &[]).await;
    assert!(r.stdout.is_empty());
    assert!(t.elapsed() >= Duration::from_millis(250));
    assert_eq!(r.result.unwrap()["running"], true);
    c.req("kill", json!({"id": id, "signal": "KILL"}), &[])
        .await;
}

#[tokio::test]
async fn kill_with_each_signal() {
    let f = fixture();
    let mut c = C::new(&f).await;
    for (name, num) in [("TERM", 15), ("KILL", 9), ("INT", 2), ("HUP", 1)] {
        let r = c
            .req("icm", json!({"argv": ["sleep", "30"], "wait_ms": 0}), &[])
            .await;
        let id = id_of(&r);
        let k = c.req("kill", json!({"id": id, "signal": name}), &[]).await;
        assert_eq!(k.result.unwrap()["delivered"], true);
        let (_, r) = c.read_until(&id, "\u{0}never").await;
        let res = r.result.unwrap();
        assert_eq!(res["running"], false, "{name}");
        assert_eq!(res["signal"], num, "{name}");
        assert_eq!(res["exit"], Value::Null);
    }
    let r = c
        .req("kill", json!({"id": "x", "signal": "STOP"}), &[])
        .await;
    assert_eq!(r.result.unwrap_err().code, ErrorCode::BadRequest);
}

#[tokio::test]
async fn pty_process_sees_a_terminal_and_resize() {
    let f = fixture();
    let mut c = C::new(&f).await;
    let r = c
        .req("icm", json!({"sh": "tty; stty size; read x; stty size; echo TERM=$TERM", "pty": {"rows": 24, "cols": 80}, "wait_ms": 0}), &[])
        .await;
    let id = id_of(&r);
    let mut text = String::from_utf8_lossy(&r.stdout).into_owned();
    if !text.contains("24 80") {
        text.push_str(&c.read_until(&id, "24 80").await.0);
    }
    assert!(text.contains("/dev/pts/"), "{text:?}");
    assert!(text.contains("24 80"), "{text:?}");
    let r = c
        .req("resize", json!({"id": id, "rows": 40, "cols": 100}), &[])
        .await;
    assert!(r.result.is_ok());
    // The answer to the keystroke may already carry the new size.
    let r = c
        .req("idt", json!({"id": id, "wait_ms": 0}), &[b"\n"])
        .await;
    let mut text = String::from_utf8_lossy(&r.stdout).into_owned();
    if !text.contains("TERM=") {
        text.push_str(&c.read_until(&id, "TERM=").await.0);
    }
    assert!(text.contains("40 100"), "{text:?}");
    assert!(text.contains("TERM=xterm-256color"), "{text:?}");
}

#[tokio::test]
async fn bad_ids_and_resize_on_pipes() {
    let f = fixture();
    let mut a = C::new(&f).await;
    let mut b = C::new(&f).await;
    let r = a
        .req("icm", json!({"argv": ["cat"], "wait_ms": 0}), &[])
        .await;
    let id = id_of(&r);
    for (op, desc) in [
        ("idt", json!({"id": "nope"})),
        ("edt", json!({"id": "nope"})),
        ("kill", json!({"id": "nope", "signal": "TERM"})),
        ("resize", json!({"id": "nope", "rows": 1, "cols": 1})),
    ] {
        assert_eq!(
            a.req(op, desc, &[]).await.result.unwrap_err().code,
            ErrorCode::NotFound,
            "{op}"
        );
    }
    // Another session cannot see or touch it.
    for (op, desc) in [
        ("idt", json!({"id": id})),
        ("kill", json!({"id": id, "signal": "KILL"})),
    ] {
        assert_eq!(
            b.req(op, desc, &[]).await.result.unwrap_err().code,
            ErrorCode::NotFound,
            "{op}"
        );
    }
    let r = a
        .req("resize", json!({"id": id, "rows": 10, "cols": 10}), &[])
        .await;
    assert_eq!(r.result.unwrap_err().code, ErrorCode::BadRequest);
    let r = a
        .req("icm", json!({"argv": ["cat"], "timeout": 3}), &[])
        .await;
    assert_eq!(r.result.unwrap_err().code, ErrorCode::BadRequest);
    // The process was not affected by any of that.
    let r = a
        .req(
            "idt",
            json!({"id": id, "wait_ms": 1000}),
            &[b"still here\n"],
        )
        .await;
    assert_eq!(r.stdout, b"still here\n");
    // A dead process's id.
    a.req("kill", json!({"id": id, "signal": "KILL"}), &[])
        .await;
    let (_, r) = a.read_until(&id, "\u{0}never").await;
    assert_eq!(r.result.unwrap()["running"], false);
    let r = a.req("idt", json!({"id": id}), &[]).await;
    assert_eq!(r.result.unwrap_err().code, ErrorCode::NotFound);
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn zombies_of(pid: u32) -> Vec<String> {
    let mut z = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        if fields.first() == Some(&"Z") && fields.get(1) == Some(&pid.to_string().as_str()) {
            z.push(stat.clone());
        }
    }
    z
}

fn alive(pid: i32) -> bool {
    // Gone, or a zombie not yet reaped, counts as not running.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rfind(')').is_some_and(|i| !s[i + 2..].starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_zombies_or_fd_leaks_after_1000_cycles() {
    let f = fixture();
    let mut c = C::new(&f).await;
    // Warm up once so lazily opened descriptors (runtime, DB) are counted.
    let r = c
        .req("icm", json!({"argv": ["true"], "wait_ms": 0}), &[])
        .await;
    if r.result.as_ref().unwrap()["running"] == true {
        c.read_until(&id_of(&r), "\u{0}never").await;
    }
    let before = fd_count();
    for i in 0..1000 {
        let pty = i % 4 == 0;
        let mut desc = json!({"argv": ["cat"], "wait_ms": 0});
        if pty {
            desc["pty"] = json!({"rows": 24, "cols": 80});
        }
        let r = c.req("icm", desc, &[b"x\n"]).await;
        let id = id_of(&r);
        assert_eq!(r.result.as_ref().unwrap()["running"], true);
        let mut r = c.req("edt", json!({"id": id, "wait_ms": 2000}), &[]).await;
        while r.result.as_ref().unwrap()["running"] == true {
            r = c.req("idt", json!({"id": id, "wait_ms": 2000}), &[]).await;
        }
    }
    // Let reader tasks finish closing their descriptors.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = fd_count();
    assert!(after <= before + 2, "fds before {before}, after {after}");
    assert!(f.router.registry().all()[0].procs.is_empty());
    let z = zombies_of(std::process::id());
    assert!(z.is_empty(), "zombies: {z:?}");
}

async fn start_sleeper(c: &mut C<'_>) -> i32 {
    let r = c
        .req(
            "icm",
            json!({"sh": "echo $$; exec sleep 1000", "wait_ms": 0}),
            &[],
        )
        .await;
    let id = id_of(&r);
    let mut text = String::from_utf8_lossy(&r.stdout).into_owned();
    if !text.contains('\n') {
        text.push_str(&c.read_until(&id, "\n").await.0);
    }
    let pid: i32 = text.trim().parse().unwrap();
    assert!(alive(pid));
    pid
}

async fn gone_within(pid: i32, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn processes_die_with_logout() {
    let f = fixture();
    let mut c = C::new(&f).await;
    let pid = start_sleeper(&mut c).await;
    let pid2 = start_sleeper(&mut c).await;
    assert!(c.req("logout", json!({}), &[]).await.result.is_ok());
    assert!(
        gone_within(pid, Duration::from_secs(2)).await,
        "process {pid} survived logout"
    );
    assert!(gone_within(pid2, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn processes_die_with_session_timeout() {
    let f = fixture_with(Some("1"));
    let mut c = C::new(&f).await;
    let pid = start_sleeper(&mut c).await;
    // The reaper runs every 2 s in a served daemon; here we run it by hand
    // after the idle timeout has passed.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(f.router.registry().reap(), 1);
    assert!(
        gone_within(pid, Duration::from_secs(2)).await,
        "process {pid} survived the timeout"
    );
}

#[tokio::test]
async fn flooding_process_stays_within_the_buffer() {
    let f = fixture();
    let mut c = C::new(&f).await;
    let r = c
        .req("icm", json!({"argv": ["yes"], "wait_ms": 0}), &[])
        .await;
    let id = id_of(&r);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The buffer cap (1 MiB) bounds what one poll can return.
    let r = c.req("idt", json!({"id": id, "wait_ms": 0}), &[]).await;
    let n = r.stdout.len();
    assert!(n > 0 && n <= (1 << 20) + 65_536, "got {n} bytes");
    assert!(r.stdout.chunks(2).all(|c| c == b"y\n"));
    // Other requests are served meanwhile.
    let r = c.req("cmd", json!({"argv": ["echo", "ok"]}), &[]).await;
    assert_eq!(r.stdout, b"ok\n");
    c.req("kill", json!({"id": id, "signal": "KILL"}), &[])
        .await;
}

/// remo's `offset` extension (docs/protocol-notes.md): answers of polls
/// that ran concurrently, sorted by `offset`, tile the output stream with
/// no gap and no overlap, and reassembled in that order give the exact
/// output, whatever order they were answered in (`seq 1 400000`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_polls_get_offsets_that_tile_the_output() {
    let f = fixture();
    let mut c = C::new(&f).await;
    let r = c
        .req(
            "icm",
            json!({"argv": ["seq", "1", "400000"], "wait_ms": 0}),
            &[],
        )
        .await;
    let id = id_of(&r);
    let first = r.result.as_ref().unwrap()["offset"].as_u64().unwrap();
    assert_eq!(first, 0, "the first answer starts the stream");
    let mut answers: Vec<(u64, Vec<u8>)> = vec![(first, r.stdout.clone())];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut running = true;
    while running && Instant::now() < deadline {
        // Several pollers at once, with different waits, as the clients do
        // (a long poll beside wait_ms 0 polls).
        let base = c.r;
        c.r += 4;
        let (s, f) = (&c.s, c.f);
        let polls: Vec<_> = (1..=4u64)
            .map(|k| {
                let wait = if k == 1 { 200 } else { 0 };
                let desc = json!({"id": id, "wait_ms": wait});
                request(f, s, base + k, "idt", desc, &[])
            })
            .collect();
        for r in futures_util::future::join_all(polls).await {
            let Ok(res) = &r.result else {
                // Another poller saw the end first: the id is forgotten.
                assert_eq!(r.result.unwrap_err().code, ErrorCode::NotFound);
                running = false;
                continue;
            };
            assert!(r.stderr.is_empty());
            let off = res["offset"].as_u64().expect("every answer has an offset");
            if res["running"] == false {
                running = false;
            }
            answers.push((off, r.stdout));
        }
    }
    assert!(!running, "seq did not finish");
    // More than the process buffer (1 MiB): it takes several answers.
    let with_output = answers.iter().filter(|(_, o)| !o.is_empty()).count();
    assert!(with_output >= 3, "only {with_output} answers with output");
    answers.sort_by_key(|(off, out)| (*off, out.len()));
    let mut next = 0u64;
    let mut whole = Vec::new();
    for (off, out) in &answers {
        // Empty answers carry the current count: never beyond the stream.
        if out.is_empty() {
            assert!(*off <= next, "empty answer at {off} beyond {next}");
            continue;
        }
        assert_eq!(*off, next, "gap or overlap at {off}");
        next += out.len() as u64;
        whole.extend_from_slice(out);
    }
    let want: String = (1..=400000).map(|i| format!("{i}\n")).collect();
    assert_eq!(whole.len(), want.len());
    assert!(whole == want.as_bytes(), "reassembled output differs");
}
