//! Front doors against real peers: the FastCGI responder behind a real
//! nginx and a real Apache (mod_proxy_fcgi), the raw FastCGI socket, and
//! the embedded HTTP/1.1 server, driven by curl and raw sockets.

// Test harness: a failed unwrap is a failed test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use remo::server::core::request::{Handler, Params, Request, Response, ResponseBody};
use remo::server::door::fcgi::{self, codec, FcgiLimits};
use remo::server::door::listen::{Listener, UnixOptions};
use tokio::sync::mpsc;

use crate::common;

use common::{free_port, Proc};

// ---------------------------------------------------------------- checksum

/// A word-at-a-time FNV-style checksum, independent of chunk boundaries
/// (cheap enough in a debug build for 200 MB).
#[derive(Default)]
struct Sum {
    h: u64,
    len: u64,
    carry: Vec<u8>,
}

impl Sum {
    fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.carry.is_empty() {
            let need = 8 - self.carry.len();
            let take = need.min(data.len());
            self.carry.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.carry.len() == 8 {
                let w = u64::from_le_bytes(self.carry[..].try_into().unwrap());
                self.word(w);
                self.carry.clear();
            }
        }
        let mut it = data.chunks_exact(8);
        for w in &mut it {
            self.word(u64::from_le_bytes(w.try_into().unwrap()));
        }
        self.carry.extend_from_slice(it.remainder());
    }
    fn word(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(0x100_0000_01b3).rotate_left(5);
    }
    fn finish(&self) -> String {
        let mut s = Sum {
            h: self.h,
            ..Default::default()
        };
        for b in &self.carry {
            s.word(u64::from(*b) | 0x100);
        }
        format!("{}:{:016x}", self.len, s.h)
    }
}

/// Deterministic test data: block `k` of 64 KiB.
fn block(k: u64) -> Vec<u8> {
    let mut x = k.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(65536);
    for _ in 0..8192 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

// ---------------------------------------------------------------- handler

/// Shared by the handler and the test: events seen by producers.
#[derive(Default)]
struct State {
    events: Mutex<Vec<(String, Instant)>>,
}

impl State {
    fn event(&self, e: &str) {
        self.events
            .lock()
            .unwrap()
            .push((e.to_string(), Instant::now()));
    }
    fn wait(&self, e: &str, timeout: Duration) -> Option<Instant> {
        let end = Instant::now() + timeout;
        loop {
            if let Some((_, t)) = self.events.lock().unwrap().iter().find(|(n, _)| n == e) {
                return Some(*t);
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

struct TestHandler {
    state: Arc<State>,
}

fn query_num(uri: &str, key: &str, default: u64) -> u64 {
    uri.split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Handler for TestHandler {
    fn handle(
        &self,
        mut req: Request,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send + '_>> {
        Box::pin(async move {
            let uri = req.params.get_str("REQUEST_URI").unwrap_or("").to_string();
            let path = uri.split('?').next().unwrap_or("").to_string();
            let state = self.state.clone();
            if path.ends_with("/echo") {
                let mut sum = Sum::default();
                let mut err = "none".to_string();
                while let Some(c) = req.body.chunk().await {
                    match c {
                        Ok(b) => sum.update(&b),
                        Err(e) => {
                            err = format!("{e}");
                            break;
                        }
                    }
                }
                let p = &req.params;
                let show = |n: &str| p.get(n).map(hexs).unwrap_or_else(|| "absent".into());
                let text = format!(
                    "method={}\nuri={}\nxbin={}\nremo={}\ncl={}\nraddr={}\nbody={}\nerr={}\n",
                    p.get_str("REQUEST_METHOD").unwrap_or("?"),
                    uri,
                    show("HTTP_X_BIN"),
                    p.get_str("REMO_TEST").unwrap_or("absent"),
                    p.get_str("CONTENT_LENGTH").unwrap_or("absent"),
                    p.get_str("REMOTE_ADDR").unwrap_or("absent"),
                    sum.finish(),
                    err
                );
                state.event("echo-done");
                return Response {
                    status: 200,
                    content_type: "text/plain",
                    headers: vec![("X-Test", "yes".into())],
                    body: ResponseBody::Full(Bytes::from(text)),
                };
            }
            if path.ends_with("/stream") {
                let n = query_num(&uri, "n", 5);
                let ms = query_num(&uri, "ms", 200);
                let (tx, rx) = mpsc::channel::<Bytes>(4);
                tokio::spawn(async move {
                    for i in 0..n {
                        if i > 0 {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                        }
                        if tx.send(Bytes::from(format!("line {i}\n"))).await.is_err() {
                            state.event("stream-closed");
                            return;
                        }
                    }
                    state.event("stream-finished");
                });
                return Response {
                    status: 200,
                    content_type: "text/plain",
                    headers: vec![],
                    body: ResponseBody::Stream(rx),
                };
            }
            if path.ends_with("/forever") {
                let (tx, rx) = mpsc::channel::<Bytes>(4);
                tokio::spawn(async move {
                    let mut i = 0u64;
                    loop {
                        tokio::select! {
                            _ = tx.closed() => { state.event("forever-closed"); return; }
                            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                        }
                        if tx.send(Bytes::from(format!("tick {i}\n"))).await.is_err() {
                            state.event("forever-closed");
                            return;
                        }
                        i += 1;
                    }
                });
                return Response {
                    status: 200,
                    content_type: "text/plain",
                    headers: vec![],
                    body: ResponseBody::Stream(rx),
                };
            }
            if path.ends_with("/duplex") {
                // Answers at once and reports body progress while it arrives.
                let (tx, rx) = mpsc::channel::<Bytes>(4);
                let mut body = req.body;
                tokio::spawn(async move {
                    let _ = tx.send(Bytes::from("started\n")).await;
                    let mut sum = Sum::default();
                    while let Some(Ok(c)) = body.chunk().await {
                        sum.update(&c);
                    }
                    let _ = tx
                        .send(Bytes::from(format!("body={}\n", sum.finish())))
                        .await;
                });
                return Response {
                    status: 200,
                    content_type: "text/plain",
                    headers: vec![],
                    body: ResponseBody::Stream(rx),
                };
            }
            Response::error(404, "no such test path")
        })
    }
}

// ---------------------------------------------------------------- servers

/// The FastCGI server on its own runtime, on a unix socket in a temp dir.
struct FcgiServer {
    _rt: tokio::runtime::Runtime,
    state: Arc<State>,
    dir: tempfile::TempDir,
    sock: PathBuf,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn start_fcgi() -> FcgiServer {
    let dir = tempfile::tempdir().unwrap();
    // Apache's children run as www-data and must reach the socket.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let sock = dir.path().join("remod.sock");
    let rt = runtime();
    let state = Arc::new(State::default());
    let handler: Arc<dyn Handler> = Arc::new(TestHandler {
        state: state.clone(),
    });
    let spec = format!("unix:{}", sock.display());
    let listener = rt
        .block_on(async {
            Listener::bind(
                &spec,
                &UnixOptions {
                    mode: 0o666,
                    group: None,
                },
            )
        })
        .unwrap();
    rt.spawn(fcgi::serve(listener, handler, FcgiLimits::default()));
    FcgiServer {
        _rt: rt,
        state,
        dir,
        sock,
    }
}

/// A web server in front of the FastCGI server (common::Proc: stopped with
/// its process group on drop, its logs printed when the test fails).
struct WebServer {
    _proc: Proc,
    port: u16,
}

impl WebServer {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }
}

fn start_nginx(srv: &FcgiServer) -> WebServer {
    start_nginx_with(srv, false)
}

/// nginx in front of the server; `keepalive` reuses FastCGI connections
/// (FCGI_KEEP_CONN) through an upstream block.
fn start_nginx_with(srv: &FcgiServer, keepalive: bool) -> WebServer {
    common::require("/etc/nginx/fastcgi_params", "nginx-light");
    let sock = srv.sock.display();
    let (upstream, pass, keep) = if keepalive {
        (
            format!("upstream remod {{ server unix:{sock}; keepalive 4; }}"),
            "remod".to_string(),
            "fastcgi_keep_conn on;",
        )
    } else {
        (String::new(), format!("unix:{sock}"), "")
    };
    let server = format!(
        r#"client_max_body_size 0;
    location /remo/ {{
      include /etc/nginx/fastcgi_params;
      fastcgi_pass {pass};
      {keep}
      fastcgi_request_buffering off;
      fastcgi_buffering off;
      fastcgi_read_timeout 600s;
      fastcgi_send_timeout 600s;
    }}"#
    );
    let dir = srv.dir.path().join("nginx");
    std::fs::create_dir_all(&dir).unwrap();
    let (proc, port) = common::run_nginx(&dir, &upstream, &server);
    WebServer { _proc: proc, port }
}

/// Apache (mod_proxy_fcgi) in front of the server.
fn start_apache(srv: &FcgiServer) -> WebServer {
    let m = "/usr/lib/apache2/modules";
    common::require("/usr/sbin/apache2", "apache2");
    for module in ["mpm_event", "authz_core", "proxy", "proxy_fcgi"] {
        common::require(&format!("{m}/mod_{module}.so"), "apache2");
    }
    let root = srv.dir.path().join("apache");
    std::fs::create_dir_all(&root).unwrap();
    let port = free_port();
    let r = root.display();
    let conf = format!(
        r#"ServerRoot "{r}"
ServerName localhost
Listen 127.0.0.1:{port}
LoadModule mpm_event_module {m}/mod_mpm_event.so
LoadModule authz_core_module {m}/mod_authz_core.so
LoadModule proxy_module {m}/mod_proxy.so
LoadModule proxy_fcgi_module {m}/mod_proxy_fcgi.so
User www-data
Group www-data
PidFile {r}/httpd.pid
ErrorLog {r}/error.log
LogLevel warn
DefaultRuntimeDir {r}
Mutex file:{r} default
StartServers 1
ServerLimit 1
ThreadsPerChild 16
MaxRequestWorkers 16
ProxyPass "/remo/" "unix:{sock}|fcgi://localhost/" flushpackets=on timeout=600
"#,
        sock = srv.sock.display()
    );
    let conf_path = root.join("httpd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new("/usr/sbin/apache2");
    cmd.arg("-d")
        .arg(&root)
        .arg("-f")
        .arg(&conf_path)
        .arg("-DFOREGROUND");
    let mut proc = Proc::spawn("apache2", cmd, &root.join("stderr.log"));
    proc.add_log(root.join("error.log"));
    proc.wait_port(port);
    WebServer { _proc: proc, port }
}

// ---------------------------------------------------------------- clients

fn curl(args: &[&std::ffi::OsStr]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl not found: install the Debian package `curl`");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in response:\n{text}"))
}

/// GET /remo/echo with a header carrying byte 0xff.
fn check_get(url: &str, binary_header: bool) {
    let mut args = vec![os(url)];
    let hdr = std::ffi::OsStr::from_bytes(b"X-Bin: a\xffb");
    if binary_header {
        args.push(os("-H"));
        args.push(hdr);
    }
    let (out, err) = curl(&args);
    assert_eq!(field(&out, "method"), "GET", "{err}");
    assert!(field(&out, "uri").starts_with("/remo/echo?q=%41"), "{out}");
    assert_eq!(field(&out, "body"), Sum::default().finish());
    if binary_header {
        assert_eq!(field(&out, "xbin"), "61ff62");
    }
}

/// POSTs `blocks` × 64 KiB through curl's stdin (chunked), returns the
/// echo text and the expected checksum.
fn post_stream(url: &str, blocks: u64, extra: &[&str]) -> (String, String) {
    let mut child = Command::new("curl")
        .args(["-sS", "--max-time", "120", "-X", "POST", "-T", "-"])
        .args(extra)
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl not found: install the Debian package `curl`");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let mut sum = Sum::default();
        for k in 0..blocks {
            let b = block(k);
            sum.update(&b);
            if stdin.write_all(&b).is_err() {
                break;
            }
        }
        sum.finish()
    });
    let out = child.wait_with_output().unwrap();
    let expect = writer.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    (text, expect)
}

/// Streams `n` lines `ms` apart; the first must reach curl well before the
/// producer finishes.
fn check_streaming(url: &str, srv_state: &State) {
    let start = Instant::now();
    let mut child = Command::new("curl")
        .args(["-sSN", "--max-time", "30", url])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let first_at = Instant::now();
    assert_eq!(first, "line 0");
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert_eq!(rest.len(), 4, "{rest:?}");
    child.wait().unwrap();
    let finished = srv_state
        .wait("stream-finished", Duration::from_secs(5))
        .expect("producer never finished");
    assert!(
        first_at + Duration::from_millis(400) < finished,
        "first line at {:?}, producer finished at {:?}: output was buffered",
        first_at - start,
        finished - start
    );
}

/// Reads the first line of an endless stream, hangs up, and expects the
/// producer to notice.
fn check_disconnect(url: &str, srv_state: &State) {
    let mut child = Command::new("curl")
        .args(["-sSN", "--max-time", "30", url])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "tick 0\n");
    child.kill().unwrap();
    child.wait().unwrap();
    let gone = Instant::now();
    let seen = srv_state
        .wait("forever-closed", Duration::from_secs(10))
        .expect("the producer never saw the client go away");
    eprintln!("producer saw the disconnect after {:?}", seen - gone);
}

fn vm_rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

// ---------------------------------------------------------------- nginx

#[test]
fn nginx_get_binary_header_and_streaming() {
    let srv = start_fcgi();
    let ng = start_nginx(&srv);
    check_get(&ng.url("/remo/echo?q=%41"), true);
    check_streaming(&ng.url("/remo/stream?n=5&ms=200"), &srv.state);
    // A chunked body arrives with CONTENT_LENGTH empty.
    let (text, expect) = post_stream(&ng.url("/remo/echo"), 16, &[]);
    assert_eq!(field(&text, "body"), expect);
    assert_eq!(field(&text, "cl"), "");
}

#[test]
fn nginx_200mb_upload_streams_with_flat_memory() {
    let srv = start_fcgi();
    let ng = start_nginx(&srv);
    let base = vm_rss_kb();
    let peak = Arc::new(Mutex::new(base));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let v = vm_rss_kb();
                let mut p = peak.lock().unwrap();
                *p = (*p).max(v);
                drop(p);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let t = Instant::now();
    let (text, expect) = post_stream(&ng.url("/remo/echo"), 3200, &[]); // 200 MiB
    let took = t.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!(field(&text, "body"), expect);
    assert_eq!(field(&text, "err"), "none");
    let grew = *peak.lock().unwrap() - base;
    eprintln!("200 MiB via nginx in {took:?}; test process RSS {base} kB, peak +{grew} kB");
    assert!(
        grew < 48 * 1024,
        "RSS grew by {grew} kB during a 200 MiB upload"
    );
}

#[test]
fn nginx_client_disconnect_reaches_producer() {
    let srv = start_fcgi();
    let ng = start_nginx(&srv);
    check_disconnect(&ng.url("/remo/forever"), &srv.state);
}

/// POSTs `blocks` × 64 KiB slowly (`pause` between blocks) to /duplex and
/// returns (handler start seen by the client, end of the upload, output).
fn post_paced(url: &str, blocks: u64, pause: Duration) -> (Instant, Instant, String, String) {
    let mut child = Command::new("curl")
        .args(["-sSN", "--max-time", "60", "-X", "POST", "-T", "-", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let mut sum = Sum::default();
        for k in 0..blocks {
            let b = block(k);
            sum.update(&b);
            stdin.write_all(&b).unwrap();
            stdin.flush().unwrap();
            std::thread::sleep(pause);
        }
        (sum.finish(), Instant::now())
    });
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    r.read_line(&mut first).unwrap();
    let first_at = Instant::now();
    assert_eq!(first, "started\n");
    let mut rest = String::new();
    r.read_to_string(&mut rest).unwrap();
    child.wait().unwrap();
    let (expect, end) = writer.join().unwrap();
    (first_at, end, rest, expect)
}

/// The handler starts (and its first output reaches the client) while the
/// body is still being uploaded: nginx passes stdin unbuffered and relays
/// output in both directions at once.
#[test]
fn nginx_full_duplex_answer_before_body_end() {
    let srv = start_fcgi();
    let ng = start_nginx(&srv);
    let (first_at, end, rest, expect) =
        post_paced(&ng.url("/remo/duplex"), 12, Duration::from_millis(60));
    assert_eq!(field(&rest, "body"), expect);
    assert!(
        first_at + Duration::from_millis(300) < end,
        "first output only {:?} before the end of the upload",
        end.saturating_duration_since(first_at)
    );
}

/// Kept FastCGI connections (FCGI_KEEP_CONN): many requests in a row,
/// including one whose handler answers without reading its body, so the
/// rest of that body arrives after END_REQUEST and must be skipped.
#[test]
fn nginx_keep_conn_reuses_connections() {
    let srv = start_fcgi();
    let ng = start_nginx_with(&srv, true);
    for _ in 0..10 {
        check_get(&ng.url("/remo/echo?q=%41"), false);
    }
    let (text, expect) = post_stream(&ng.url("/remo/echo"), 32, &[]);
    assert_eq!(field(&text, "body"), expect);
    let (text, _) = post_stream(&ng.url("/remo/stream?n=2&ms=10"), 64, &[]);
    assert_eq!(text, "line 0\nline 1\n");
    for _ in 0..5 {
        check_get(&ng.url("/remo/echo?q=%41"), true);
    }
}

/// Raw FastCGI on the socket: garbage closes only its connection; GET_VALUES,
/// UNKNOWN_TYPE, UNKNOWN_ROLE and CANT_MPX_CONN are answered; a valid
/// request through nginx still works afterwards.
#[test]
fn fcgi_survives_garbage_and_answers_management_records() {
    use std::os::unix::net::UnixStream;
    let srv = start_fcgi();
    let ng = start_nginx(&srv);
    // Pure garbage.
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut junk = vec![0u8; 8192];
    for b in junk.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    junk[0] = 7;
    let mut s = UnixStream::connect(&srv.sock).unwrap();
    let _ = s.write_all(&junk);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    // Valid header, then an oversize/garbage PARAMS stream.
    let mut s = UnixStream::connect(&srv.sock).unwrap();
    let mut out = BytesMut::new();
    codec::encode_begin_request(&mut out, 1, codec::FCGI_RESPONDER, false);
    codec::encode_stream(&mut out, codec::FCGI_PARAMS, 1, &[0xff; 300]);
    codec::encode_stream_end(&mut out, codec::FCGI_PARAMS, 1);
    s.write_all(&out).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sink = Vec::new();
    s.read_to_end(&mut sink).unwrap();
    assert!(sink.is_empty(), "malformed params must just close");
    // A connection closed in the middle of a request.
    let mut s = UnixStream::connect(&srv.sock).unwrap();
    let mut out = BytesMut::new();
    codec::encode_begin_request(&mut out, 1, codec::FCGI_RESPONDER, false);
    s.write_all(&out[..11]).unwrap();
    drop(s);

    // Management records and refusals on one keep-alive connection.
    let mut s = UnixStream::connect(&srv.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = BytesMut::new();
    let q = codec::encode_pairs([(&b"FCGI_MPXS_CONNS"[..], &b""[..])]);
    codec::encode_stream(&mut out, codec::FCGI_GET_VALUES, 0, &q);
    codec::encode_stream_end(&mut out, 42, 0);
    codec::encode_begin_request(&mut out, 5, 2, true); // AUTHORIZER
    codec::encode_begin_request(&mut out, 1, codec::FCGI_RESPONDER, true);
    let mut p = Params::new();
    p.push("REQUEST_METHOD", "POST");
    p.push("REQUEST_URI", "/remo/echo");
    codec::encode_params(&mut out, 1, &p);
    codec::encode_begin_request(&mut out, 2, codec::FCGI_RESPONDER, true);
    codec::encode_stream(&mut out, codec::FCGI_STDIN, 1, b"hello");
    codec::encode_stream_end(&mut out, codec::FCGI_STDIN, 1);
    s.write_all(&out).unwrap();
    let mut inbuf = BytesMut::new();
    let mut recs = Vec::new();
    let mut tmp = [0u8; 4096];
    while !recs
        .iter()
        .any(|r: &codec::Record| r.rtype == codec::FCGI_END_REQUEST && r.request_id == 1)
    {
        let n = s.read(&mut tmp).unwrap();
        assert!(n > 0, "connection closed early; got {recs:?}");
        inbuf.extend_from_slice(&tmp[..n]);
        while let Some(r) = codec::decode_record(&mut inbuf).unwrap() {
            recs.push(r);
        }
    }
    let gv = recs
        .iter()
        .find(|r| r.rtype == codec::FCGI_GET_VALUES_RESULT)
        .unwrap();
    assert_eq!(
        codec::decode_pairs(&gv.content).unwrap(),
        vec![(b"FCGI_MPXS_CONNS".to_vec(), b"0".to_vec())]
    );
    let ut = recs
        .iter()
        .find(|r| r.rtype == codec::FCGI_UNKNOWN_TYPE)
        .unwrap();
    assert_eq!(ut.content[0], 42);
    let end_status = |id: u16| {
        recs.iter()
            .find(|r| r.rtype == codec::FCGI_END_REQUEST && r.request_id == id)
            .map(|r| r.content[4])
    };
    assert_eq!(end_status(5), Some(codec::FCGI_UNKNOWN_ROLE));
    assert_eq!(end_status(2), Some(codec::FCGI_CANT_MPX_CONN));
    assert_eq!(end_status(1), Some(codec::FCGI_REQUEST_COMPLETE));
    let stdout: Vec<u8> = recs
        .iter()
        .filter(|r| r.rtype == codec::FCGI_STDOUT && r.request_id == 1)
        .flat_map(|r| r.content.to_vec())
        .collect();
    let stdout = String::from_utf8(stdout).unwrap();
    assert!(stdout.starts_with("Status: 200 OK\r\n"), "{stdout}");
    assert!(stdout.contains("X-Accel-Buffering: no\r\n"), "{stdout}");
    let mut expect = Sum::default();
    expect.update(b"hello");
    assert_eq!(field(&stdout, "body"), expect.finish());

    // The keep-alive connection serves a second request.
    let mut out = BytesMut::new();
    codec::encode_begin_request(&mut out, 3, codec::FCGI_RESPONDER, false);
    codec::encode_params(&mut out, 3, &p);
    codec::encode_stream_end(&mut out, codec::FCGI_STDIN, 3);
    s.write_all(&out).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    inbuf.extend_from_slice(&rest);
    let mut ended = false;
    while let Some(r) = codec::decode_record(&mut inbuf).unwrap() {
        ended |= r.rtype == codec::FCGI_END_REQUEST && r.request_id == 3;
    }
    assert!(ended, "second request on a kept connection not answered");

    // After all this, nginx still gets answers.
    check_get(&ng.url("/remo/echo?q=%41"), false);
}

// ---------------------------------------------------------------- Apache

#[test]
fn apache_get_post_and_streaming() {
    let srv = start_fcgi();
    let ap = start_apache(&srv);
    check_get(&ap.url("/remo/echo?q=%41"), true);
    let (text, expect) = post_stream(&ap.url("/remo/echo"), 160, &[]); // 10 MiB chunked
    assert_eq!(field(&text, "body"), expect);
    assert_eq!(field(&text, "method"), "POST");
    // Content-Length body.
    let data = block(7);
    let mut sum = Sum::default();
    sum.update(&data);
    let f = srv.dir.path().join("body.bin");
    std::fs::write(&f, &data).unwrap();
    let at = format!("@{}", f.display());
    let (out, err) = curl(&[os("--data-binary"), os(&at), os(&ap.url("/remo/echo"))]);
    assert_eq!(field(&out, "body"), sum.finish(), "{err}");
    assert_eq!(field(&out, "cl"), "65536");
    check_streaming(&ap.url("/remo/stream?n=5&ms=200"), &srv.state);
}

/// Apache mod_proxy_fcgi (flushpackets=on) is full duplex too.
#[test]
fn apache_full_duplex_answer_before_body_end() {
    let srv = start_fcgi();
    let ap = start_apache(&srv);
    let (first_at, end, rest, expect) =
        post_paced(&ap.url("/remo/duplex"), 12, Duration::from_millis(60));
    assert_eq!(field(&rest, "body"), expect);
    assert!(
        first_at + Duration::from_millis(300) < end,
        "apache: first output only {:?} before the end of the upload",
        end.saturating_duration_since(first_at)
    );
}

#[test]
fn apache_client_disconnect_reaches_producer() {
    let srv = start_fcgi();
    let ap = start_apache(&srv);
    check_disconnect(&ap.url("/remo/forever"), &srv.state);
}

// ---------------------------------------------------------------- HTTP

struct HttpServer {
    _rt: tokio::runtime::Runtime,
    state: Arc<State>,
    port: u16,
}

fn start_http() -> HttpServer {
    let rt = runtime();
    let state = Arc::new(State::default());
    let handler: Arc<dyn Handler> = Arc::new(TestHandler {
        state: state.clone(),
    });
    let l = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = l.local_addr().unwrap().port();
    let mut config = Params::new();
    config.push("REMO_TEST", "cfg");
    rt.spawn(remo::server::door::http::serve(l, handler, config));
    HttpServer {
        _rt: rt,
        state,
        port,
    }
}

/// Reads an HTTP/1.1 response head; returns it lower-cased.
fn read_head(r: &mut impl BufRead) -> String {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            return head.to_ascii_lowercase();
        }
        head.push_str(&line);
    }
}

/// Reads one chunk of a chunked body; `None` at the last chunk.
fn read_chunk(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut size = String::new();
    r.read_line(&mut size).unwrap();
    let n = usize::from_str_radix(size.trim(), 16).unwrap();
    let mut data = vec![0u8; n + 2];
    r.read_exact(&mut data).unwrap();
    data.truncate(n);
    (n > 0).then_some(data)
}

#[test]
fn http_bodies_params_and_streaming() {
    let srv = start_http();
    let base = format!("http://127.0.0.1:{}", srv.port);
    // GET: params built like FastCGI's, config appended.
    let (out, err) = curl(&[
        os(&format!("{base}/remo/echo?q=%41")),
        os("-H"),
        std::ffi::OsStr::from_bytes(b"X-Bin: a\xffb"),
    ]);
    assert_eq!(field(&out, "uri"), "/remo/echo?q=%41", "{err}");
    assert_eq!(field(&out, "xbin"), "61ff62");
    assert_eq!(field(&out, "remo"), "cfg");
    assert_eq!(field(&out, "raddr"), "127.0.0.1");
    assert_eq!(field(&out, "cl"), "absent");
    // Chunked upload (curl -T -): no CONTENT_LENGTH.
    let (text, expect) = post_stream(&format!("{base}/remo/echo"), 320, &[]);
    assert_eq!(field(&text, "body"), expect);
    assert_eq!(field(&text, "cl"), "absent");
    // Content-Length upload on a raw keep-alive connection, twice.
    let mut s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    for _ in 0..2 {
        let body = block(3);
        write!(
            s,
            "POST /remo/echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(&body).unwrap();
        let head = read_head(&mut r);
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("x-test: yes"), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut text = vec![0u8; len];
        r.read_exact(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        let mut sum = Sum::default();
        sum.update(&body);
        assert_eq!(field(&text, "body"), sum.finish());
        assert_eq!(field(&text, "cl"), "65536");
    }
    // A streamed response goes out chunked, the first chunk early.
    let start = Instant::now();
    write!(s, "GET /remo/stream?n=4&ms=250 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let head = read_head(&mut r);
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert_eq!(read_chunk(&mut r).unwrap(), b"line 0\n");
    let first_at = Instant::now();
    let mut n = 1;
    while read_chunk(&mut r).is_some() {
        n += 1;
    }
    assert_eq!(n, 4);
    let finished = srv
        .state
        .wait("stream-finished", Duration::from_secs(5))
        .unwrap();
    assert!(
        first_at + Duration::from_millis(300) < finished,
        "first chunk at {:?}, finished at {:?}",
        first_at - start,
        finished - start
    );
}

#[test]
fn http_bad_chunked_body_and_disconnect() {
    let srv = start_http();
    // A malformed chunked body reaches the handler as an error.
    let mut s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    s.write_all(b"POST /remo/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
        .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let head = read_head(&mut r);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let mut rest = String::new();
    let _ = r.read_to_string(&mut rest);
    assert!(rest.contains("err=malformed"), "{rest}");
    // A client that hangs up mid-stream is noticed by the producer.
    let mut s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    s.write_all(b"GET /remo/forever HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    read_head(&mut r);
    assert_eq!(read_chunk(&mut r).unwrap(), b"tick 0\n");
    drop(r);
    drop(s);
    srv.state
        .wait("forever-closed", Duration::from_secs(10))
        .expect("producer never saw the HTTP client go away");
}

// ---------------------------------------------------------------- fd 0

/// Set in the environment of the child `fcgi_on_fd0_like_mod_fcgid` starts.
const FD0_CHILD: &str = "REMO_FD0_CHILD";

/// The child half of `fcgi_on_fd0_like_mod_fcgid` (this test binary run
/// again with fd 0 as mod_fcgid would give it): serves FastCGI on the
/// socket on fd 0, or prints the error and exits 3. Never returns.
fn fd0_child() -> ! {
    let rt = runtime();
    let listener = match rt.block_on(async { Listener::from_fd0() }) {
        Ok(l) => l,
        Err(e) => {
            println!("FD0-ERROR: {e}");
            std::process::exit(3);
        }
    };
    let handler: Arc<dyn Handler> = Arc::new(TestHandler {
        state: Arc::new(State::default()),
    });
    println!("FD0-READY");
    rt.block_on(fcgi::serve(listener, handler, FcgiLimits::default()));
    println!("FD0-SERVE-RETURNED");
    std::process::exit(4);
}

/// Runs this test again, as the child, with `stdin` as its fd 0.
fn spawn_fd0_child(stdin: Stdio) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "frontdoor::fcgi_on_fd0_like_mod_fcgid",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FD0_CHILD, "1")
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// mod_fcgid hands the listening socket over on fd 0; anything else on fd 0
/// is refused with a clear error, not a panic. (The test runs itself again
/// as the child that serves on fd 0.)
#[test]
fn fcgi_on_fd0_like_mod_fcgid() {
    use std::os::unix::net::{UnixListener, UnixStream};
    if std::env::var_os(FD0_CHILD).is_some() {
        fd0_child();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fd0.sock");
    let l = UnixListener::bind(&path).unwrap();
    let mut child = spawn_fd0_child(Stdio::from(std::os::fd::OwnedFd::from(l)));
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = BytesMut::new();
    let mut p = Params::new();
    p.push("REQUEST_METHOD", "GET");
    p.push("REQUEST_URI", "/fcgid/echo");
    codec::encode_begin_request(&mut out, 1, codec::FCGI_RESPONDER, false);
    codec::encode_params(&mut out, 1, &p);
    codec::encode_stream_end(&mut out, codec::FCGI_STDIN, 1);
    s.write_all(&out).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let mut buf = BytesMut::from(&all[..]);
    let mut text = Vec::new();
    while let Some(r) = codec::decode_record(&mut buf).unwrap() {
        if r.rtype == codec::FCGI_STDOUT {
            text.extend_from_slice(&r.content);
        }
    }
    let text = String::from_utf8(text).unwrap();
    assert_eq!(field(&text, "uri"), "/fcgid/echo");

    // Started by hand (fd 0 is /dev/null): a clear error and exit status.
    let child = spawn_fd0_child(Stdio::null());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("FD0-ERROR: fd 0 is not a listening socket (not a socket)"),
        "{stdout}"
    );
}
