//! The binary framing (PROTOCOL.md §4.1) against the real binaries: the
//! `remo` client through nginx (FastCGI) and through remod's embedded HTTP
//! door, binary where `/info` offers it and text when `REMO_FRAMING=text`
//! forces it; and malformed binary bodies sent to the real server through
//! every front door, each refused with its §5 status and nothing sealed —
//! including a length refused from its 4 bytes while the body stays open.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::fcgi;
use common::*;
use remo::proto::framing::{
    open_message_framed, seal_message_framed, Framing, BINARY_CONTENT_TYPE, TEXT_CONTENT_TYPE,
};
use remo::proto::record::seal_message;
use serde_json::Value;

/// The operations the client scenario must have sent.
const SCENARIO_OPS: [&str; 6] = ["cmd", "put", "get", "icm", "edt", "logout"];

/// How long an answer may take before the test calls it missing.
const ANSWER_WAIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// The client, end to end

/// put/get/cmd and an interactive exchange with the `remo` client.
fn scenario(c: &Client, scratch: &Scratch) {
    assert_eq!(c.ok(&["exec", "echo", "hello"], None).out(), "hello\n");
    let r = c.run(&["exec", "--sh", "echo out; echo err >&2; exit 3"], None);
    assert_eq!(r.code, Some(3), "stderr: {}", r.stderr);
    assert_eq!(r.out(), "out\n");
    assert!(r.stderr.contains("err\n"), "stderr: {}", r.stderr);
    assert_eq!(c.ok(&["exec", "cat"], Some(b"a\nb\n")).out(), "a\nb\n");

    // 3 MiB and 5 bytes: full records and a short last one, both ways.
    let remote = scratch.sub("remote").join("up.bin");
    let local = scratch.path().join("up.bin");
    let back = scratch.path().join("up.back");
    let sum = random_file(&local, (3 << 20) + 5);
    c.ok(
        &["put", local.to_str().unwrap(), remote.to_str().unwrap()],
        None,
    );
    assert_eq!(sha256_file(&remote), sum, "uploaded content differs");
    c.ok(
        &["get", remote.to_str().unwrap(), back.to_str().unwrap()],
        None,
    );
    assert_eq!(sha256_file(&back), sum, "downloaded content differs");

    // Interactive: icm, idt polls, edt at the end of standard input.
    let mut data = vec![0u8; 1 << 20];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut data)
        .unwrap();
    let r = c.ok(&["exec", "-i", "cat"], Some(&data));
    assert!(r.stdout == data, "exec -i cat did not give the 1 MiB back");

    c.ok(&["logout"], None);
}

/// The (operation, framing) of every sealed request remod logged (one line
/// each: `REMOTE USER OP OUTCOME … framing=NAME`). The line is written once
/// the answer is out, so it may trail the client a little: this waits
/// until every operation of `ops` has one.
fn logged_framings(log: &Path, ops: &[&str]) -> Vec<(String, String)> {
    let deadline = Instant::now() + ANSWER_WAIT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| {
                let framing = l.split(" framing=").nth(1)?.split_whitespace().next()?;
                let (_, msg) = l.split_once("] ")?;
                let op = msg.split_whitespace().nth(2)?;
                Some((op.to_string(), framing.to_string()))
            })
            .collect();
        if ops.iter().all(|o| lines.iter().any(|(op, _)| op == o)) {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "remod did not log every one of {ops:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the scenario with `REMO_FRAMING` set to `forced` (None: unset) and
/// checks from remod's log that every request was in `expected`.
fn client_in(url: &str, data: &DataDir, scratch: &Scratch, forced: Option<&str>, expected: &str) {
    let mut c = Client::new(scratch, url, data);
    if let Some(f) = forced {
        c.set_env("REMO_FRAMING", f);
    }
    scenario(&c, scratch);
    let lines = logged_framings(&scratch.path().join("remod.log"), &SCENARIO_OPS);
    let other: Vec<_> = lines.iter().filter(|(_, f)| f != expected).collect();
    assert!(
        other.is_empty(),
        "requests not in the {expected} framing: {other:?}"
    );
    let info = c.ok(&["info"], None);
    assert!(
        info.out().contains("framings:    text, binary"),
        "`remo info` does not show the framings:\n{}",
        info.out()
    );
}

fn through_nginx(name: &str, forced: Option<&str>, expected: &str) {
    let scratch = Scratch::new(name);
    let data = init_data_dir(&scratch, "alice");
    let (mut remod, sock) = start_remod_fcgi(&scratch, &data);
    let (mut nginx, url) = start_nginx(&scratch, &sock, &data);
    client_in(&url, &data, &scratch, forced, expected);
    nginx.assert_running();
    remod.assert_running();
}

fn over_embedded_http(name: &str, forced: Option<&str>, expected: &str) {
    let scratch = Scratch::new(name);
    let (mut remod, url, data) = start_remod_http(&scratch);
    client_in(&url, &data, &scratch, forced, expected);
    remod.assert_running();
}

/// The server offers binary, so the client sends it. The old client sent
/// text whatever the server offered.
#[test]
fn the_client_speaks_binary_through_nginx() {
    through_nginx("bin-nginx", None, "binary");
}

#[test]
fn the_client_speaks_binary_over_embedded_http() {
    over_embedded_http("bin-http", None, "binary");
}

#[test]
fn forced_text_through_nginx() {
    through_nginx("bin-text-nginx", Some("text"), "text");
}

#[test]
fn forced_text_over_embedded_http() {
    over_embedded_http("bin-text-http", Some("text"), "text");
}

// ---------------------------------------------------------------------------
// Malformed bodies, sent by hand

/// An answer as the peer saw it.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

/// `POST {url}/{op}` with curl: the session header, `content_type`, `body`.
fn post(url: &str, op: &str, sid: &str, content_type: &str, body: &[u8]) -> Answer {
    let mut c = Command::new("/usr/bin/curl");
    c.args(["-sS", "-o", "-", "-w", "\n%{content_type}\n%{http_code}"])
        .args(["-X", "POST", "--max-time", "120"])
        .arg("-H")
        .arg(format!("Remo-Session: {sid}"))
        .arg("-H")
        .arg(format!("Content-Type: {content_type}"))
        .args(["--data-binary", "@-"])
        .arg(format!("{url}/{op}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn curl");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = wait_with_timeout(child, Duration::from_secs(180), "curl");
    assert!(out.status.success(), "curl: {}", text(&out.stderr));
    let mut parts = out.stdout.rsplitn(3, |&b| b == b'\n');
    let status = text(parts.next().unwrap()).trim().parse().unwrap();
    let content_type = text(parts.next().unwrap());
    let body = parts.next().unwrap_or_default().to_vec();
    Answer {
        status,
        content_type,
        body,
    }
}

/// A §5 refusal: `status`, a plain JSON `{"error": …}` saying one of
/// `messages`, nothing sealed.
fn refused(a: &Answer, status: u16, messages: &[&str]) -> Result<(), String> {
    let said = serde_json::from_slice::<Value>(&a.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string));
    match said {
        Some(m)
            if a.status == status
                && a.content_type.starts_with("application/json")
                && messages.contains(&m.as_str()) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "answered {} {} {:?}, not {status} {messages:?}",
            a.status,
            a.content_type,
            String::from_utf8_lossy(&a.body)
        )),
    }
}

/// A 200 in `framing` whose sealed answer opens under `s`'s key for `r`;
/// its records.
fn sealed_answer(
    a: &Answer,
    s: &RawSession,
    r: u64,
    op: &str,
    framing: Framing,
) -> Result<Vec<Vec<u8>>, String> {
    if a.status != 200 || a.content_type != framing.content_type() {
        return Err(format!(
            "answered {} {} {:?}, not a sealed {framing} answer",
            a.status,
            a.content_type,
            String::from_utf8_lossy(&a.body)
        ));
    }
    open_message_framed(s.s2c(), Some(r), op, &a.body, framing)
        .map_err(|e| format!("the answer does not open: {e}"))
}

/// The checks of one test: each case is checked even after another
/// failed, and the test fails at the end listing every failed case.
#[derive(Default)]
struct Cases(Vec<String>);

impl Cases {
    fn check(&mut self, what: &str, r: Result<(), String>) {
        if let Err(e) = r {
            self.0.push(format!("{what}: {e}"));
        }
    }

    #[track_caller]
    fn assert_all_passed(self) {
        assert!(self.0.is_empty(), "failed cases:\n{}", self.0.join("\n"));
    }
}

/// The `binary_framing.must_reject` body `name` of the vectors.
fn vector_body(name: &str) -> Vec<u8> {
    let path = format!("{ROOT}/tests/vectors/protocol-vectors.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let hex = v["binary_framing"]["must_reject"][name]["body_hex"]
        .as_str()
        .unwrap_or_else(|| panic!("no vector {name}"));
    hex::decode(hex).unwrap()
}

/// Every malformed binary body through the front door at `url`, on the
/// live session `s`. `remote` is a directory the user may write.
fn malformed_bodies(cases: &mut Cases, url: &str, s: &mut RawSession, remote: &Path) {
    let bin = BINARY_CONTENT_TYPE;
    let sid = s.sid().to_string();

    // A good binary request is answered in binary.
    let r = s.next_r();
    let desc = br#"{"argv":["echo","bin"]}"#;
    let body = seal_message_framed(s.c2s(), r, "cmd", &[desc], Framing::Binary).unwrap();
    let a = post(url, "cmd", &sid, bin, &body);
    cases.check(
        "a good binary request",
        sealed_answer(&a, s, r, "cmd", Framing::Binary).and_then(|recs| {
            (recs.first().map(Vec::as_slice) == Some(b"\x01bin\n"))
                .then_some(())
                .ok_or_else(|| format!("output {recs:?}"))
        }),
    );

    // The lengths of the vectors.
    let a = post(url, "cmd", &sid, bin, &vector_body("length_27"));
    cases.check("L = 27", refused(&a, 400, &["malformed record"]));
    let a = post(url, "cmd", &sid, bin, &vector_body("length_65566"));
    cases.check("L = 65,566", refused(&a, 413, &["record too large"]));

    // A text body sent as binary: its first 4 characters read as a length
    // of over a billion (413); the binary body sent as text has no line
    // (400). Neither is sealed or takes its R: the text body is then
    // accepted as text, and the binary one as binary.
    let r = s.next_r();
    let text_body = seal_message(s.c2s(), r, "cmd", &[desc]).unwrap();
    let a = post(url, "cmd", &sid, bin, &text_body);
    cases.check(
        "a text body as binary",
        refused(&a, 413, &["record too large"]),
    );
    let a = post(url, "cmd", &sid, TEXT_CONTENT_TYPE, &text_body);
    cases.check(
        "then the same as text",
        sealed_answer(&a, s, r, "cmd", Framing::Text).map(drop),
    );
    let r = s.next_r();
    let bin_body = seal_message_framed(s.c2s(), r, "cmd", &[desc], Framing::Binary).unwrap();
    let a = post(url, "cmd", &sid, TEXT_CONTENT_TYPE, &bin_body);
    let no_line = ["body does not end with CRLF", "malformed record"];
    cases.check("a binary body as text", refused(&a, 400, &no_line));
    let a = post(url, "cmd", &sid, bin, &bin_body);
    cases.check(
        "then the same as binary",
        sealed_answer(&a, s, r, "cmd", Framing::Binary).map(drop),
    );

    // Bodies that end inside record 0: in its length, in its bytes.
    let r = s.next_r();
    let body = seal_message_framed(s.c2s(), r, "cmd", &[desc], Framing::Binary).unwrap();
    for cut in [2, 20, body.len() - 1] {
        let a = post(url, "cmd", &sid, bin, &body[..cut]);
        let what = format!("record 0 cut after {cut} of {} bytes", body.len());
        cases.check(&what, refused(&a, 400, &["body ends inside a record"]));
    }
    let a = post(url, "cmd", &sid, bin, b"");
    cases.check(
        "an empty binary body",
        refused(&a, 400, &["empty request body"]),
    );

    // The vectors' other cases, on this session: a put cut inside its last
    // record, and one without a last record. Record 0 passes every §5
    // check, so the answer has begun: a sealed bad_request, in binary, and
    // no file.
    let target = remote.join("cut.txt");
    let put = format!(r#"{{"path":"{}"}}"#, target.display());
    let records: [&[u8]; 4] = [put.as_bytes(), b"hello ", b"world\n", b""];
    let last_len = Framing::Binary.sealed_len(0);
    for (what, cut) in [
        ("a put cut inside its last record", last_len - 6),
        ("a put without its last record", last_len),
    ] {
        let r = s.next_r();
        let body = seal_message_framed(s.c2s(), r, "put", &records, Framing::Binary).unwrap();
        let a = post(url, "put", &sid, bin, &body[..body.len() - cut]);
        let outcome = sealed_answer(&a, s, r, "put", Framing::Binary).and_then(|recs| {
            let result: Value = serde_json::from_slice(recs.last().unwrap()).unwrap();
            if result["error"]["code"] != "bad_request" {
                Err(format!("result {result}"))
            } else if target.exists() {
                Err("the file was written".into())
            } else {
                Ok(())
            }
        });
        cases.check(what, outcome);
    }
    // The whole message writes it.
    let r = s.next_r();
    let body = seal_message_framed(s.c2s(), r, "put", &records, Framing::Binary).unwrap();
    let a = post(url, "put", &sid, bin, &body);
    let outcome =
        sealed_answer(&a, s, r, "put", Framing::Binary).and_then(|_| {
            match std::fs::read(&target) {
                Ok(c) if c == b"hello world\n" => Ok(()),
                other => Err(format!("the file holds {other:?}")),
            }
        });
    cases.check("the whole put", outcome);
}

/// The first bytes of a binary body whose `Content-Length` promises far
/// more, over a raw HTTP/1.1 connection that then stays open: the answer
/// (status, body) must come anyway (None if it did not).
fn http_unfinished(port: u16, path: &str, sid: &str, first: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(ANSWER_WAIT)).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nRemo-Session: {sid}\r\n\
         Content-Type: {BINARY_CONTENT_TYPE}\r\nContent-Length: 1000000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(first).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).is_err() || line.is_empty() {
        return None;
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {line:?}"));
    let (mut length, mut chunked) = (None, false);
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':').unwrap();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.trim().eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.resize(length.expect("a Content-Length or chunked body"), 0);
        r.read_exact(&mut body).unwrap();
    }
    drop(s);
    Some((status, body))
}

/// The two lengths out of range, each sent alone with the body left open.
const UNFINISHED: [(u32, u16, &str); 2] = [
    (65_566, 413, "record too large"),
    (27, 400, "malformed record"),
];

/// A plain refusal `want` of a body left open, or why not.
fn unfinished_refused(answer: Option<(u16, Vec<u8>)>, want: (u16, &str)) -> Result<(), String> {
    let (status, body) = answer.ok_or("no answer while the body stays open")?;
    let a = Answer {
        status,
        content_type: "application/json".into(),
        body,
    };
    refused(&a, want.0, &[want.1])
}

/// Through nginx (curl and a raw connection) and straight to remod's
/// FastCGI socket. On the old code the binary content type meant nothing:
/// every binary body was read as text (400 "body does not end with CRLF",
/// the good ones too), a text body sent as binary was served (200), and
/// the bodies left open were never answered.
#[test]
fn malformed_binary_bodies_through_nginx_and_fastcgi() {
    let scratch = Scratch::new("bin-attack-nginx");
    let data = init_data_dir(&scratch, "alice");
    let (mut remod, sock) = start_remod_fcgi(&scratch, &data);
    let (mut nginx, url) = start_nginx(&scratch, &sock, &data);
    let mut s = RawSession::login(&url, &data);
    let mut cases = Cases::default();
    malformed_bodies(&mut cases, &url, &mut s, &scratch.sub("remote"));

    let port: u16 = url
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches(BASE)
        .parse()
        .unwrap();
    let key = data.key_file.display().to_string();
    let db = data.user_db.display().to_string();
    let params = [
        ("REQUEST_METHOD", "POST"),
        ("REQUEST_URI", "/remo/cmd"),
        ("SCRIPT_NAME", "/remo/cmd"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMO_BASE", "/remo"),
        ("REMO_KEY_FILE", key.as_str()),
        ("REMO_USER_DB", db.as_str()),
        ("HTTP_REMO_SESSION", s.sid()),
        ("CONTENT_TYPE", BINARY_CONTENT_TYPE),
        ("CONTENT_LENGTH", "1000000"),
    ];
    for (l, status, message) in UNFINISHED {
        let what = format!("L = {l} alone, body open, via nginx");
        let answer = http_unfinished(port, "/remo/cmd", s.sid(), &l.to_be_bytes());
        cases.check(&what, unfinished_refused(answer, (status, message)));
        let what = format!("L = {l} alone, body open, via FastCGI");
        let answer = fcgi::send_unfinished(&sock, &params, &l.to_be_bytes(), ANSWER_WAIT);
        cases.check(&what, unfinished_refused(answer, (status, message)));
    }
    cases.assert_all_passed();
    nginx.assert_running();
    remod.assert_running();
}

/// The same through remod's embedded HTTP door.
#[test]
fn malformed_binary_bodies_over_embedded_http() {
    let scratch = Scratch::new("bin-attack-http");
    let (mut remod, url, data) = start_remod_http(&scratch);
    let mut s = RawSession::login(&url, &data);
    let mut cases = Cases::default();
    malformed_bodies(&mut cases, &url, &mut s, &scratch.sub("remote"));
    let port: u16 = url.trim_start_matches("http://127.0.0.1:").parse().unwrap();
    for (l, status, message) in UNFINISHED {
        let what = format!("L = {l} alone, body open");
        let answer = http_unfinished(port, "/cmd", s.sid(), &l.to_be_bytes());
        cases.check(&what, unfinished_refused(answer, (status, message)));
    }
    cases.assert_all_passed();
    remod.assert_running();
}
