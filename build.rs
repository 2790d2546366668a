//! Embeds the browser console (console/, docs/console.md) into remod.
//!
//! The console is plain ES modules, HTML and CSS: no bundler, so no Node is
//! needed to build remod. This script walks `console/src` (every `.js`) and
//! the top of `console/` (`index.html`, `sw.js`, `*.css`), and writes
//! `$OUT_DIR/console_assets.rs`: a table of `include_bytes!` entries that
//! `src/server/console.rs` serves. Every file except the entry page and the
//! service worker is served under `a/<hash>/`, where the hash covers every
//! embedded file, so those can be cached for a year and one build never
//! mixes with another; the entry page is rendered with that path
//! (`@ASSETS@` → `a/<hash>`). A missing `console/` (a source tarball
//! without it) builds a remod whose `/console/` says so.
//!
//! The Terminal page uses xterm.js from the npm registry
//! (`console/package-lock.json`): when `npm ci` has been run in `console/`,
//! the few files it needs ([`VENDOR`]) are embedded under `a/<hash>/vendor/`;
//! without them (no Node) remod still builds and the page says what is
//! missing.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// How an embedded file is served.
#[derive(Clone, Copy)]
enum Class {
    /// Under `a/<hash>/`: cached for a year.
    Hashed,
    /// At a fixed path, revalidated on every use (the entry page, the
    /// service worker).
    Fixed,
}

struct Asset {
    /// Path below `{base}/console/` (the hashed ones without `a/<hash>/`).
    url: String,
    source: PathBuf,
    class: Class,
}

/// Third-party files embedded from `console/node_modules` (served path
/// below `a/<hash>/`, source below `console/`): all of them or none.
const VENDOR: &[(&str, &str)] = &[
    (
        "vendor/xterm.mjs",
        "node_modules/@xterm/xterm/lib/xterm.mjs",
    ),
    (
        "vendor/xterm.css",
        "node_modules/@xterm/xterm/css/xterm.css",
    ),
    (
        "vendor/addon-fit.mjs",
        "node_modules/@xterm/addon-fit/lib/addon-fit.mjs",
    ),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let console = root.join("console");
    let code = if console.join("index.html").is_file() {
        match collect(&console).and_then(|a| generate(&a, &out)) {
            Ok(c) => c,
            Err(e) => {
                println!("cargo:warning=console: {e}");
                std::process::exit(1);
            }
        }
    } else {
        // (Watching a path that does not exist would rerun every build.)
        missing("console/index.html was not in the source tree remod was built from")
    };
    if let Err(e) = fs::write(out.join("console_assets.rs"), code) {
        println!("cargo:warning=console: writing the asset table: {e}");
        std::process::exit(1);
    }
}

/// The table of a remod built without the console.
fn missing(why: &str) -> String {
    format!(
        "/// Why this remod has no console.\n\
         pub(crate) const MISSING: Option<&str> = Some({why:?});\n\
         /// The hash the asset paths carry (tests).\n\
         #[allow(dead_code)]\n\
         pub(crate) const HASH: &str = \"\";\n\
         /// The embedded files.\n\
         pub(crate) static ASSETS: &[Asset] = &[];\n"
    )
}

/// Every file to embed, in a fixed order.
fn collect(console: &Path) -> Result<Vec<Asset>, String> {
    let mut assets = Vec::new();
    for (name, class) in [("index.html", Class::Fixed), ("sw.js", Class::Fixed)] {
        let p = console.join(name);
        if p.is_file() {
            let url = if name == "index.html" { "" } else { name };
            assets.push(Asset {
                url: url.to_string(),
                source: p,
                class,
            });
        }
    }
    let mut top = read_dir(console)?;
    top.sort();
    for p in top {
        if p.is_file() && p.extension().is_some_and(|e| e == "css") {
            assets.push(Asset {
                url: file_name(&p)?,
                source: p,
                class: Class::Hashed,
            });
        }
    }
    // Not `console/` itself: a watched directory is scanned whole, and
    // console/node_modules would rebuild remod after every `npm ci`.
    // Named even when absent, so adding it rebuilds (a top-level `.css`
    // added later needs `touch build.rs`).
    println!("cargo:rerun-if-changed={}", console.join("sw.js").display());
    for a in &assets {
        println!("cargo:rerun-if-changed={}", a.source.display());
    }
    let src = console.join("src");
    if src.is_dir() {
        println!("cargo:rerun-if-changed={}", src.display());
        walk(&src, "", &mut assets)?;
    }
    vendor(console, &mut assets);
    let mut seen = std::collections::BTreeSet::new();
    for a in &assets {
        content_type(&a.source)?;
        if !seen.insert((matches!(a.class, Class::Hashed), a.url.clone())) {
            return Err(format!("two files would be served as {}", a.url));
        }
    }
    Ok(assets)
}

/// The [`VENDOR`] files, if `npm ci` has put them there. Only existing
/// files are watched (a missing watched path would rerun every build); while
/// one is missing, `console/` itself is watched (cargo scans a watched
/// directory; without `node_modules` it is small), so the `npm ci` that
/// creates them makes the next build embed them.
fn vendor(console: &Path, assets: &mut Vec<Asset>) {
    let lock = console.join("package-lock.json");
    if lock.is_file() {
        println!("cargo:rerun-if-changed={}", lock.display());
    }
    let files: Vec<(String, PathBuf)> = VENDOR
        .iter()
        .map(|(url, src)| (url.to_string(), console.join(src)))
        .collect();
    if let Some((_, absent)) = files.iter().find(|(_, p)| !p.is_file()) {
        println!(
            "cargo:warning=console: {} is missing (run `npm ci` in console/): \
             this remod's console has no Terminal page",
            absent.display()
        );
        println!("cargo:rerun-if-changed={}", console.display());
        return;
    }
    for (url, source) in files {
        println!("cargo:rerun-if-changed={}", source.display());
        assets.push(Asset {
            url,
            source,
            class: Class::Hashed,
        });
    }
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let rd = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut v = Vec::new();
    for e in rd {
        let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
        v.push(e.path());
    }
    Ok(v)
}

fn file_name(p: &Path) -> Result<String, String> {
    p.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| format!("{}: not a UTF-8 file name", p.display()))
}

/// `console/src` recursively: every file is served (hidden ones skipped),
/// so a file of an unknown kind stops the build rather than going out
/// with a wrong type.
fn walk(dir: &Path, prefix: &str, assets: &mut Vec<Asset>) -> Result<(), String> {
    let mut entries = read_dir(dir)?;
    entries.sort();
    for p in entries {
        let name = file_name(&p)?;
        if name.starts_with('.') {
            continue;
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(format!(
                "{}: file names are [A-Za-z0-9._-] only",
                p.display()
            ));
        }
        let url = format!("{prefix}{name}");
        if p.is_dir() {
            walk(&p, &format!("{url}/"), assets)?;
        } else {
            assets.push(Asset {
                url,
                source: p,
                class: Class::Hashed,
            });
        }
    }
    Ok(())
}

fn content_type(p: &Path) -> Result<&'static str, String> {
    match p.extension().and_then(|e| e.to_str()) {
        Some("js" | "mjs") => Ok("text/javascript; charset=utf-8"),
        Some("css") => Ok("text/css; charset=utf-8"),
        Some("html") => Ok("text/html; charset=utf-8"),
        Some("json") => Ok("application/json"),
        Some("svg") => Ok("image/svg+xml"),
        Some("png") => Ok("image/png"),
        _ => Err(format!(
            "{}: no content type for this kind of file (build.rs)",
            p.display()
        )),
    }
}

/// The asset table, with the entry page rendered into `out`.
fn generate(assets: &[Asset], out: &Path) -> Result<String, String> {
    let mut hasher = Sha256::new();
    let mut bodies = Vec::new();
    for a in assets {
        let body = fs::read(&a.source).map_err(|e| format!("{}: {e}", a.source.display()))?;
        hasher.update((a.url.len() as u64).to_be_bytes());
        hasher.update(a.url.as_bytes());
        hasher.update((body.len() as u64).to_be_bytes());
        hasher.update(&body);
        bodies.push(body);
    }
    let hash: String = hasher
        .finalize()
        .iter()
        .take(10)
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut code = String::new();
    code.push_str(
        "/// Why this remod has no console.\n\
         pub(crate) const MISSING: Option<&str> = None;\n",
    );
    let _ = writeln!(
        code,
        "/// The hash the asset paths carry (tests).\n#[allow(dead_code)]\npub(crate) const HASH: &str = {hash:?};"
    );
    code.push_str("/// The embedded files.\npub(crate) static ASSETS: &[Asset] = &[\n");
    for (a, body) in assets.iter().zip(bodies) {
        let source = if a.url.is_empty() {
            let page = String::from_utf8(body)
                .map_err(|_| "console/index.html is not UTF-8".to_string())?;
            let rendered = out.join("console-index.html");
            fs::write(&rendered, page.replace("@ASSETS@", &format!("a/{hash}")))
                .map_err(|e| format!("{}: {e}", rendered.display()))?;
            rendered
        } else {
            a.source.clone()
        };
        let (path, immutable) = match a.class {
            Class::Hashed => (format!("a/{hash}/{}", a.url), true),
            Class::Fixed => (a.url.clone(), false),
        };
        let _ = writeln!(
            code,
            "    Asset {{ path: {path:?}, content_type: {ct:?}, immutable: {immutable}, body: include_bytes!({src:?}) }},",
            ct = content_type(&a.source)?,
            src = source.display().to_string(),
        );
    }
    code.push_str("];\n");
    Ok(code)
}
