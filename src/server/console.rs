//! The browser console's files (docs/console.md), served at
//! `{base}/console/` through every front door.
//!
//! They are compiled into remod (`build.rs` writes the table) and looked up
//! by the raw request path, byte for byte: nothing from the request reaches
//! the file system, and a path that is percent-encoded, holds `..` or NUL,
//! or names another build's hash is simply not in the table (404). These
//! are not sealed operations: unauthenticated GETs of public static files,
//! the same for every instance. Every answer carries the console's
//! security headers (a strict Content-Security-Policy among them: the
//! pages hold no inline script or style, docs/security.md).

use bytes::Bytes;

use crate::server::core::request::{Response, ResponseBody};

/// One embedded file.
#[derive(Debug)]
pub(crate) struct Asset {
    /// Its path below `{base}/console/` (`""` is the entry page).
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Whether its path carries the content hash (cached for a year) or is
    /// fixed (revalidated every time: the entry page, the service worker).
    pub immutable: bool,
    /// Its bytes.
    pub body: &'static [u8],
}

mod embedded {
    use super::Asset;
    include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));
}

/// A set of console files: the embedded one, or another in unit tests.
#[derive(Debug)]
pub(crate) struct Console {
    assets: &'static [Asset],
    /// Why there are none (a remod built without console/).
    missing: Option<&'static str>,
}

/// The console compiled into this remod.
pub(crate) static EMBEDDED: Console = Console {
    assets: embedded::ASSETS,
    missing: embedded::MISSING,
};

/// The Content-Security-Policy of every console response: only this
/// origin's files, no inline script or style, no eval, no framing, no
/// forms, no `<base>`.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; worker-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

/// Where a request path falls in the console.
#[derive(Debug, PartialEq, Eq)]
enum Place<'a> {
    /// `{base}/console` without the slash the relative imports need.
    Bare,
    /// `{base}/console/REST`.
    Inside(&'a [u8]),
}

/// The console's part of `path` (the raw request path, query removed).
/// With a mount prefix, exactly `{base}/console…`; without one (a FastCGI
/// request with no `REMO_BASE`), from the first `console` segment on.
fn place<'a>(path: &'a [u8], base: Option<&str>) -> Option<Place<'a>> {
    let after = match base {
        Some(b) => {
            let b = b.trim_end_matches('/').as_bytes();
            path.strip_prefix(b)?.strip_prefix(b"/console")?
        }
        None => {
            let at = path
                .windows(9)
                .position(|w| w.starts_with(b"/console") && matches!(w.get(8), Some(b'/')));
            match at {
                Some(i) => path.get(i + 8..)?,
                None => path.strip_suffix(b"/console").map(|_| &b""[..])?,
            }
        }
    };
    if after.is_empty() {
        return Some(Place::Bare);
    }
    after.strip_prefix(b"/").map(Place::Inside)
}

impl Console {
    /// The answer to a request for `path` when it is the console's, else
    /// `None` (the router goes on with the operations).
    pub(crate) fn route(&self, method: &str, path: &[u8], base: Option<&str>) -> Option<Response> {
        let place = place(path, base)?;
        if method != "GET" && method != "HEAD" {
            let mut r = plain(405, "method not allowed\n");
            r.headers.push(("Allow", "GET, HEAD".to_string()));
            return Some(r);
        }
        Some(match place {
            Place::Bare => {
                // Relative: resolved against `{base}/console`, whatever
                // host and scheme the browser used.
                let mut r = plain(301, "moved to console/\n");
                r.headers.push(("Location", "console/".to_string()));
                r
            }
            Place::Inside(rest) => self.file(rest),
        })
    }

    fn file(&self, rest: &[u8]) -> Response {
        if let Some(why) = self.missing {
            return missing_page(why);
        }
        let Some(a) = self.assets.iter().find(|a| a.path.as_bytes() == rest) else {
            return plain(404, "not found\n");
        };
        let cache = if a.immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        Response {
            status: 200,
            content_type: a.content_type,
            headers: headers(cache),
            body: ResponseBody::Full(Bytes::from_static(a.body)),
        }
    }
}

/// The headers every console response carries.
fn headers(cache: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Content-Security-Policy", CSP.to_string()),
        ("Referrer-Policy", "no-referrer".to_string()),
        ("X-Content-Type-Options", "nosniff".to_string()),
        ("Cross-Origin-Opener-Policy", "same-origin".to_string()),
        ("Cache-Control", cache.to_string()),
    ]
}

fn plain(status: u16, text: &'static str) -> Response {
    Response {
        status,
        content_type: "text/plain; charset=utf-8",
        headers: headers("no-cache"),
        body: ResponseBody::Full(Bytes::from_static(text.as_bytes())),
    }
}

/// What a remod built without the console answers at `/console/`.
fn missing_page(why: &str) -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>remo console not built in</title></head><body>\
         <h1>The remo console is not built into this remod</h1>\
         <p>{}.</p><p>Build remod from a source tree that has the \
         <code>console/</code> directory (a git clone has it); no Node is \
         needed. The command-line client <code>remo</code> works as \
         before.</p></body></html>\n",
        html_escape(why)
    );
    Response {
        status: 404,
        content_type: "text/html; charset=utf-8",
        headers: headers("no-cache"),
        body: ResponseBody::Full(Bytes::from(page)),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    static FAKE: [Asset; 2] = [
        Asset {
            path: "",
            content_type: "text/html; charset=utf-8",
            immutable: false,
            body: b"<html>",
        },
        Asset {
            path: "a/0123/app.js",
            content_type: "text/javascript; charset=utf-8",
            immutable: true,
            body: b"export {}",
        },
    ];
    const C: Console = Console {
        assets: &FAKE,
        missing: None,
    };

    fn status(c: &Console, method: &str, path: &str, base: Option<&str>) -> Option<u16> {
        c.route(method, path.as_bytes(), base).map(|r| r.status)
    }

    #[test]
    fn places() {
        let b = Some("/remo");
        assert_eq!(place(b"/remo/console", b), Some(Place::Bare));
        assert_eq!(place(b"/remo/console/", b), Some(Place::Inside(b"")));
        assert_eq!(place(b"/remo/console/x", b), Some(Place::Inside(b"x")));
        assert_eq!(place(b"/remo/consolex", b), None);
        assert_eq!(place(b"/remo/cmd", b), None);
        assert_eq!(place(b"/other/console/", b), None);
        assert_eq!(place(b"/console/", Some("/")), Some(Place::Inside(b"")));
        assert_eq!(place(b"/console/", None), Some(Place::Inside(b"")));
        assert_eq!(place(b"/x/console/a/b", None), Some(Place::Inside(b"a/b")));
        assert_eq!(place(b"/x/console", None), Some(Place::Bare));
        assert_eq!(place(b"/x/consoles/", None), None);
        assert_eq!(place(b"/x/cmd", None), None);
    }

    #[test]
    fn serves_only_the_table() {
        let b = Some("/remo");
        assert_eq!(status(&C, "GET", "/remo/console/", b), Some(200));
        assert_eq!(
            status(&C, "HEAD", "/remo/console/a/0123/app.js", b),
            Some(200)
        );
        assert_eq!(status(&C, "GET", "/remo/console", b), Some(301));
        for bad in [
            "/remo/console/a/0124/app.js",
            "/remo/console/a/0123/app%2ejs",
            "/remo/console/a/0123/../0123/app.js",
            "/remo/console/a/0123//app.js",
            "/remo/console/a/0123/app.js%00",
            "/remo/console/a/0123/",
            "/remo/console/index.html",
        ] {
            assert_eq!(status(&C, "GET", bad, b), Some(404), "{bad}");
        }
        assert_eq!(status(&C, "POST", "/remo/console/", b), Some(405));
        assert_eq!(status(&C, "GET", "/remo/info", b), None);
    }

    #[test]
    fn every_answer_has_the_headers() {
        for (m, p) in [
            ("GET", "/c/console/"),
            ("GET", "/c/console/a/0123/app.js"),
            ("GET", "/c/console/nope"),
            ("GET", "/c/console"),
            ("PUT", "/c/console/"),
        ] {
            let r = C.route(m, p.as_bytes(), Some("/c")).unwrap();
            let h = |n: &str| {
                r.headers
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.clone())
            };
            assert_eq!(
                h("Content-Security-Policy").as_deref(),
                Some(CSP),
                "{m} {p}"
            );
            assert_eq!(h("X-Content-Type-Options").as_deref(), Some("nosniff"));
            assert_eq!(h("Referrer-Policy").as_deref(), Some("no-referrer"));
        }
    }

    #[test]
    fn without_console_says_why() {
        let none = Console {
            assets: &[],
            missing: Some("console/index.html was <missing>"),
        };
        let r = none.route("GET", b"/console/", Some("/")).unwrap();
        assert_eq!(r.status, 404);
        let ResponseBody::Full(b) = r.body else {
            panic!("streamed")
        };
        let page = String::from_utf8(b.to_vec()).unwrap();
        assert!(page.contains("not built into this remod"), "{page}");
        assert!(page.contains("&lt;missing&gt;"), "{page}");
    }

    #[test]
    fn embedded_table_is_consistent() {
        // The build of this very test has console/ (a git checkout).
        assert_eq!(EMBEDDED.missing, None);
        let index = EMBEDDED.assets.iter().find(|a| a.path.is_empty()).unwrap();
        let page = std::str::from_utf8(index.body).unwrap();
        let hash = embedded::HASH;
        assert!(page.contains(&format!("a/{hash}/")), "{page}");
        assert!(!page.contains("@ASSETS@"));
        for a in EMBEDDED.assets {
            assert!(
                a.immutable == a.path.starts_with(&format!("a/{hash}/")),
                "{}",
                a.path
            );
        }
    }
}
