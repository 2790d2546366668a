//! The console's browser tests (`tests/it/console_*.rs`): Debian's
//! chromium driven by Playwright from a script in `console/browser/`,
//! which talks to its test in lines (`console/browser/common.mjs`): `NEED
//! WHAT` on its standard output, answered `OK` on its standard input once
//! the test has done it, then one `RESULT {json}` with what it saw, which
//! the test asserts on. A step that fails ends it with `RESULT {"error":
//! …}` and exit status 1.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{remod_command, require, run_ok, wait_with_timeout, ROOT};

/// chromium, node and the console's npm packages (with xterm.js if
/// `xterm`), or a failure that says how to get them (tests/run installs
/// them). Returns `console/`.
pub fn require_browser(xterm: bool) -> PathBuf {
    require("/usr/bin/chromium", "chromium");
    require("/usr/bin/node", "nodejs");
    let console = Path::new(ROOT).join("console");
    let mut need = vec!["node_modules/playwright-core"];
    if xterm {
        need.push("node_modules/@xterm/xterm");
    }
    for p in need {
        assert!(
            console.join(p).is_dir(),
            "console/{p} is missing: run `npm ci` in console/ (tests/run does)"
        );
    }
    console
}

/// One run of a script in `console/browser/`.
pub struct Scenario {
    script: String,
    console_url: String,
    work: PathBuf,
    prefix: Vec<String>,
    env: Vec<(String, String)>,
    shots: Option<PathBuf>,
    timeout: Duration,
    xterm: bool,
}

impl Scenario {
    /// `console/browser/SCRIPT` against the console at `console_url`
    /// (`…/console/`), with `work` (made if missing) as its scratch
    /// directory and HOME; screenshots to `REMO_CONSOLE_SHOTS` if set.
    pub fn new(script: &str, console_url: &str, work: &Path) -> Scenario {
        Scenario {
            script: script.to_string(),
            console_url: console_url.to_string(),
            work: work.to_path_buf(),
            prefix: Vec::new(),
            env: Vec::new(),
            shots: std::env::var_os("REMO_CONSOLE_SHOTS").map(PathBuf::from),
            timeout: Duration::from_secs(600),
            xterm: false,
        }
    }

    /// Runs node behind `prefix` (e.g. `ip netns exec NS`).
    pub fn prefix(mut self, prefix: &[&str]) -> Scenario {
        self.prefix = prefix.iter().map(|s| s.to_string()).collect();
        self
    }

    /// An environment variable of the script.
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Scenario {
        self.env.push((
            key.to_string(),
            value.as_ref().to_string_lossy().into_owned(),
        ));
        self
    }

    /// No screenshots, whatever `REMO_CONSOLE_SHOTS` says.
    pub fn no_shots(mut self) -> Scenario {
        self.shots = None;
        self
    }

    /// The longest the script may take (default 10 minutes).
    pub fn timeout(mut self, t: Duration) -> Scenario {
        self.timeout = t;
        self
    }

    /// The script needs xterm.js too.
    pub fn xterm(mut self) -> Scenario {
        self.xterm = true;
        self
    }

    /// Runs the script; `need(WHAT)` does what it asks for. Returns its
    /// result after checking that it ended without an error and that the
    /// page threw no uncaught exception (the caller checks the rest of the
    /// page's console messages as it needs).
    pub fn run(self, mut need: impl FnMut(&str)) -> Value {
        // .config/nextest.toml runs the browser tests one at a time by this
        // part of their names.
        let me = std::thread::current().name().unwrap_or("").to_string();
        assert!(
            me.contains("_in_chromium"),
            "a test that starts Chromium must have `_in_chromium` in its name (.config/nextest.toml): {me}"
        );
        let console = require_browser(self.xterm);
        fs::create_dir_all(&self.work).unwrap();
        let log = self.work.join("browser.log");
        let mut cmd = match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg("/usr/bin/node");
                c
            }
            None => Command::new("/usr/bin/node"),
        };
        cmd.arg(format!("browser/{}", self.script))
            .current_dir(&console)
            .env("CONSOLE_URL", &self.console_url)
            .env("WORK", &self.work)
            .env("CHROMIUM", "/usr/bin/chromium")
            .env("HOME", &self.work)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).unwrap());
        if let Some(s) = &self.shots {
            cmd.env("SHOTS", s);
        }
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut result = None;
        for line in stdout.lines() {
            let line = line.unwrap();
            if let Some(what) = line.strip_prefix("NEED ") {
                need(what);
                writeln!(stdin, "OK").unwrap();
            } else if let Some(json) = line.strip_prefix("RESULT ") {
                result = Some(serde_json::from_str::<Value>(json).unwrap());
            }
        }
        let status = wait_with_timeout(child, self.timeout, "node");
        let log = fs::read_to_string(&log).unwrap_or_default();
        let result = result.unwrap_or_else(|| {
            panic!("no RESULT from {} ({}):\n{log}", self.script, status.status)
        });
        assert!(
            result.get("error").is_none() && status.status.success(),
            "{} failed: {}\nsteps: {}\nstatus lines: {}\nconsole: {}\nlog:\n{log}",
            self.script,
            result["error"],
            result["steps"],
            result["pageStatus"],
            result["console"],
        );
        for m in result["console"].as_array().unwrap() {
            let m = m.as_str().unwrap();
            assert!(!m.starts_with("pageerror"), "browser console: {m}");
        }
        result
    }
}

/// `NEED VERB NAME FILE` (a key the browser made, to register as NAME):
/// `(VERB, NAME, FILE)`.
pub fn need_key(what: &str) -> Option<(&str, &str, &str)> {
    let mut w = what.splitn(3, ' ');
    match (w.next(), w.next(), w.next()) {
        (Some(verb), Some(name), Some(file)) => Some((verb, name, file)),
        _ => None,
    }
}

/// `remod user --db DB add NAME --key FILE` with `grants` (`--allow` each).
pub fn add_user(db: &Path, name: &str, file: &str, grants: &[&str]) {
    let mut cmd = remod_command();
    cmd.args(["user", "--db"]).arg(db).args(["add", name]);
    for g in grants {
        cmd.args(["--allow", g]);
    }
    run_ok(cmd.args(["--key", file]));
}

/// Does `NEED useradd NAME FILE`: registers NAME with `grants`.
pub fn user_add(db: &Path, what: &str, grants: &[&str]) {
    match need_key(what) {
        Some(("useradd", name, file)) => add_user(db, name, file, grants),
        _ => panic!("not a useradd: {what}"),
    }
}

/// No Content Security Policy violation in the page's console messages.
pub fn assert_no_csp_report(result: &Value) {
    for m in result["console"].as_array().unwrap() {
        let m = m.as_str().unwrap();
        assert!(!m.contains("Content Security Policy"), "CSP: {m}");
    }
}
