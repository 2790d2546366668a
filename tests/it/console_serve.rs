//! The browser console's files (`{base}/console/`, src/server/console.rs)
//! through every front door the shipped configurations set up — nginx,
//! Apache mod_proxy_fcgi, Apache mod_fcgid, the embedded HTTP door with and
//! without a prefix: the security headers on every answer, content types,
//! caching, HEAD, and 404 for traversal, encodings and stale hashes.
//!
//! Requests go over a raw socket, byte for byte as written here (curl
//! would normalise `..`), so what remod gets is what an attacker sends.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::common;

use common::*;

/// The CSP every console answer must carry (docs/security.md).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; worker-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'none'";

/// One HTTP answer.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `METHOD target HTTP/1.1` to `addr` exactly as given and reads the
/// whole answer (`Connection: close`).
pub fn raw(addr: &str, method: &str, target: &str) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = if method == "POST" { "x" } else { "" };
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {target}: no header end in {all:?}"));
    let head = String::from_utf8_lossy(&all[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = all[end + 4..].to_vec();
    let a = Answer {
        status,
        headers,
        body: Vec::new(),
    };
    if a.header("Transfer-Encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body);
    }
    Answer { body, ..a }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&b[..nl])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        b = &b[nl + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// The headers every console answer carries.
fn assert_console_headers(a: &Answer, what: &str) {
    assert_eq!(a.header("Content-Security-Policy"), Some(CSP), "{what}");
    assert_eq!(a.header("Referrer-Policy"), Some("no-referrer"), "{what}");
    assert_eq!(
        a.header("X-Content-Type-Options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        a.header("Cross-Origin-Opener-Policy"),
        Some("same-origin"),
        "{what}"
    );
}

/// Every file of `console/src`, as the path below `a/<hash>/`.
fn source_files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            source_files(&p, &format!("{prefix}{name}/"), out);
        } else {
            out.push(format!("{prefix}{name}"));
        }
    }
}

/// The hash in the entry page's asset paths.
pub fn asset_hash(index: &str) -> String {
    let at = index.find("src=\"a/").expect("a/<hash>/ in the entry page") + 7;
    let hash: String = index[at..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    assert!(hash.len() >= 16, "hash {hash:?}");
    hash
}

/// The whole check at `http://addr{base}/console/`.
pub fn check_console(addr: &str, base: &str) {
    let c = format!("{base}/console");

    let index = raw(addr, "GET", &format!("{c}/"));
    assert_eq!(index.status, 200, "GET {c}/");
    assert_console_headers(&index, "entry page");
    assert_eq!(
        index.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(index.header("Cache-Control"), Some("no-cache"));
    let page = String::from_utf8(index.body.clone()).unwrap();
    assert!(!page.contains("@ASSETS@"), "{page}");
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "inline code: {page}"
    );
    let hash = asset_hash(&page);
    let a = format!("{c}/a/{hash}");

    // Every source file, byte for byte, with its type and a year's caching.
    let mut files = Vec::new();
    source_files(&Path::new(ROOT).join("console/src"), "", &mut files);
    assert!(files.iter().any(|f| f == "app.js"), "{files:?}");
    for f in files.iter().map(String::as_str).chain(["console.css"]) {
        let got = raw(addr, "GET", &format!("{a}/{f}"));
        assert_eq!(got.status, 200, "GET {a}/{f}");
        assert_console_headers(&got, f);
        let want = if f == "console.css" {
            fs::read(Path::new(ROOT).join("console/console.css")).unwrap()
        } else {
            fs::read(Path::new(ROOT).join("console/src").join(f)).unwrap()
        };
        assert!(got.body == want, "{f}: served bytes differ from the file");
        let ct = match f.rsplit('.').next() {
            Some("css") => "text/css; charset=utf-8",
            Some("js") => "text/javascript; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("{f}: a kind of file this test does not know ({other:?})"),
        };
        assert_eq!(got.header("Content-Type"), Some(ct), "{f}");
        assert_eq!(
            got.header("Cache-Control"),
            Some("public, max-age=31536000, immutable"),
            "{f}"
        );
    }

    // The service worker: a fixed path (its scope is {base}/console/).
    let sw = raw(addr, "GET", &format!("{c}/sw.js"));
    assert_eq!(sw.status, 200);
    assert_console_headers(&sw, "sw.js");
    assert_eq!(
        sw.header("Content-Type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(sw.header("Cache-Control"), Some("no-cache"));

    // HEAD: the headers of GET, no body.
    let head = raw(addr, "HEAD", &format!("{a}/app.js"));
    assert_eq!(head.status, 200);
    assert_console_headers(&head, "HEAD");
    assert!(head.body.is_empty(), "HEAD answered a body");
    let app_len = fs::metadata(Path::new(ROOT).join("console/src/app.js"))
        .unwrap()
        .len()
        .to_string();
    if let Some(n) = head.header("Content-Length") {
        assert_eq!(n, app_len, "HEAD Content-Length");
    }

    // Without the slash: a relative redirect to it.
    let bare = raw(addr, "GET", &c);
    assert_eq!(bare.status, 301, "GET {c}");
    assert_eq!(bare.header("Location"), Some("console/"));
    assert_console_headers(&bare, "redirect");

    // Other methods.
    for m in ["POST", "PUT", "DELETE"] {
        let r = raw(addr, m, &format!("{c}/"));
        assert_eq!(r.status, 405, "{m} {c}/");
        assert_console_headers(&r, m);
    }

    // What is not in the table is not found, whatever it decodes or
    // normalises to; what reaches remod says so with the console's
    // headers. (A front server may refuse some of these itself: then it
    // must still not be the file.)
    let app = fs::read(Path::new(ROOT).join("console/src/app.js")).unwrap();
    let stale = "0".repeat(hash.len());
    for bad in [
        format!("{c}/a/{stale}/app.js"),
        format!("{c}/a/{}/app.js", hash.to_uppercase()),
        format!("{c}/a/{hash}/app%2ejs"),
        format!("{c}/a/{hash}/%61pp.js"),
        format!("{c}/a/{hash}/../{hash}/app.js"),
        format!("{c}/a/{hash}/%2e%2e/{hash}/app.js"),
        format!("{c}/a/{hash}/..%2f{hash}/app.js"),
        format!("{c}/a/{hash}//app.js"),
        format!("{c}/a/{hash}/app.js%00"),
        format!("{c}/a/{hash}/app.js/"),
        format!("{c}/a/{hash}/"),
        format!("{c}/a/{hash}"),
        format!("{c}/a/{hash}/../../../../../../etc/passwd"),
        format!("{c}/a/{hash}/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
        format!("{c}/index.html"),
        format!("{c}/app.js"),
        format!("{c}/src/app.js"),
        format!("{c}/console.css"),
        format!("{c}/./"),
        format!("{c}/%2e/"),
    ] {
        let r = raw(addr, "GET", &bad);
        assert!(
            r.status == 404 || r.status == 400,
            "GET {bad}: {} (want 404)",
            r.status
        );
        assert!(r.body != app && !String::from_utf8_lossy(&r.body).contains("root:"));
        if r.header("Content-Security-Policy").is_some() {
            assert_eq!(r.status, 404, "GET {bad}");
            assert_console_headers(&r, &bad);
        }
    }
    // A stale hash certainly reaches remod: its 404 carries the headers.
    let r = raw(addr, "GET", &format!("{c}/a/{stale}/app.js"));
    assert_eq!(r.status, 404);
    assert_console_headers(&r, "stale hash");
}

/// `http://127.0.0.1:PORT/remo` → `127.0.0.1:PORT`.
fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn console_through_nginx() {
    let scratch = Scratch::new("console-nginx");
    let data = init_data_dir(&scratch, "alice");
    let (mut remod, sock) = start_remod_fcgi(&scratch, &data);
    let (mut nginx, url) = start_nginx(&scratch, &sock, &data);
    check_console(&host_port(&url), BASE);
    nginx.assert_running();
    remod.assert_running();
}

#[test]
fn console_through_apache_proxy_fcgi() {
    let scratch = Scratch::new("console-apache-proxy");
    let data = init_data_dir(&scratch, "alice");
    let (mut remod, sock) = start_remod_fcgi(&scratch, &data);
    let (mut apache, url) = start_apache(&scratch, ApacheFront::ProxyFcgi { sock: &sock }, &data);
    check_console(&host_port(&url), BASE);
    apache.assert_running();
    remod.assert_running();
}

#[test]
fn console_through_apache_fcgid() {
    let scratch = Scratch::new("console-apache-fcgid");
    let data = init_data_dir(&scratch, "alice");
    chown_tree(&data.dir, "www-data");
    let (mut apache, url) = start_apache(&scratch, ApacheFront::Fcgid, &data);
    check_console(&host_port(&url), BASE);
    apache.assert_running();
}

#[test]
fn console_over_embedded_http() {
    // Quick start: the whole server at /.
    let scratch = Scratch::new("console-http");
    let (mut remod, url, _data) = start_remod_http(&scratch);
    check_console(&host_port(&url), "");
    remod.assert_running();

    // Under a mount prefix: only there.
    let scratch = Scratch::new("console-http-base");
    let port = free_port();
    let mut cmd = remod_http_command(&scratch.path().join("quick"), port);
    cmd.args(["--base", "/pfx/x"]).env("RUST_LOG", "info");
    let mut remod = Proc::spawn("remod", cmd, &scratch.path().join("remod.log"));
    remod.wait_port(port);
    let addr = format!("127.0.0.1:{port}");
    check_console(&addr, "/pfx/x");
    assert_eq!(raw(&addr, "GET", "/console/").status, 404);
    assert_eq!(raw(&addr, "GET", "/pfx/console/").status, 404);
    remod.assert_running();
}
