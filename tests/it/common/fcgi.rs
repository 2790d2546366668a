//! A raw FastCGI client: what any local process that can open remod's
//! socket may send, params and all.

// Test harness: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// One FastCGI request on a fresh connection, as any local process that
/// can open the socket may send it. Returns (status, body).
pub fn request(sock: &Path, params: &[(&str, &str)], stdin: &[u8]) -> (u16, Vec<u8>) {
    send(sock, params, Some(stdin), Duration::from_secs(30)).expect("an answer from remod")
}

/// The same, leaving standard input open when `stdin` is None (a body that
/// never ends); None if no answer came within `wait`.
pub fn send(
    sock: &Path,
    params: &[(&str, &str)],
    stdin: Option<&[u8]>,
    wait: Duration,
) -> Option<(u16, Vec<u8>)> {
    send_stdin(sock, params, stdin, true, wait)
}

/// The first `stdin` bytes of a body that then stays open (no closing
/// empty STDIN record): what remod answers before the body ends; None if
/// no answer came within `wait`.
pub fn send_unfinished(
    sock: &Path,
    params: &[(&str, &str)],
    stdin: &[u8],
    wait: Duration,
) -> Option<(u16, Vec<u8>)> {
    send_stdin(sock, params, Some(stdin), false, wait)
}

fn send_stdin(
    sock: &Path,
    params: &[(&str, &str)],
    stdin: Option<&[u8]>,
    close_stdin: bool,
    wait: Duration,
) -> Option<(u16, Vec<u8>)> {
    fn record(out: &mut Vec<u8>, kind: u8, content: &[u8]) {
        for chunk in content
            .chunks(65535)
            .chain(content.is_empty().then_some(&[][..]))
        {
            let len = chunk.len() as u16;
            out.extend_from_slice(&[1, kind, 0, 1]);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(chunk);
        }
    }
    fn length(out: &mut Vec<u8>, n: usize) {
        if n < 128 {
            out.push(n as u8);
        } else {
            out.extend_from_slice(&(n as u32 | 0x8000_0000).to_be_bytes());
        }
    }
    let mut req = Vec::new();
    record(&mut req, 1, &[0, 1, 0, 0, 0, 0, 0, 0]);
    let mut p = Vec::new();
    for (k, v) in params {
        length(&mut p, k.len());
        length(&mut p, v.len());
        p.extend_from_slice(k.as_bytes());
        p.extend_from_slice(v.as_bytes());
    }
    record(&mut req, 4, &p);
    record(&mut req, 4, &[]);
    if let Some(stdin) = stdin {
        if !stdin.is_empty() {
            record(&mut req, 5, stdin);
        }
        if close_stdin {
            record(&mut req, 5, &[]);
        }
    }
    let mut s = UnixStream::connect(sock).expect("connect to remod's socket");
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(&req).unwrap();
    let mut out = Vec::new();
    loop {
        let mut h = [0u8; 8];
        if s.read_exact(&mut h).is_err() {
            if out.is_empty() {
                return None;
            }
            break;
        }
        let len = u16::from_be_bytes([h[4], h[5]]) as usize + h[6] as usize;
        let mut c = vec![0u8; len];
        s.read_exact(&mut c).unwrap();
        c.truncate(u16::from_be_bytes([h[4], h[5]]) as usize);
        match h[1] {
            6 => out.extend_from_slice(&c),
            3 => break,
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let status = head
        .lines()
        .find_map(|l| l.strip_prefix("Status: "))
        .map_or(200, |s| s[..3].parse().unwrap());
    Some((status, body.as_bytes().to_vec()))
}
