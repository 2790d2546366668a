//! Fan-out: one command on many servers (`remo @web exec uptime`).
//!
//! Each host is served by a child `remo` with that host as its target and
//! the same command line, so every command behaves on a fleet exactly as on
//! one server (session cache, pinning, certificates, exit codes) and one
//! slow or dead host holds up nothing but its own child. At most
//! `parallel` children run at once; their output is shown per line with
//! the host's name, per host when it ends (`--group-output`), or as one JSON
//! object per host (`--json`), and a summary follows.

use std::io::Write;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use zeroize::Zeroizing;

/// Most output kept per host and stream for `--group-output` and `--json`
/// (more is cut, and said).
pub(crate) const MAX_KEPT_OUTPUT: usize = 16 << 20;

/// How the output of a fleet command is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Show {
    /// `host: line` as lines arrive.
    Lines,
    /// Each host's output together when it ends.
    Grouped,
    /// One JSON object per host when it ends.
    Json,
}

/// One host's job: its label and the arguments that make a child `remo`
/// target it (put before the command line).
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// The name its output is shown under.
    pub name: String,
    /// The server's URL (for the summary).
    pub server: String,
    /// `HOST`, or `--server URL --user U --key K`.
    pub target_args: Vec<String>,
}

/// How one host ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Exit code 0.
    Ok,
    /// Reached, but the command (or the login) failed with this exit code.
    Failed(i32),
    /// Not reached; the reason.
    Unreachable(String),
}

/// What one host's child produced.
#[derive(Debug)]
struct HostResult {
    name: String,
    ending: Ending,
    code: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    cut: bool,
    duration: Duration,
}

/// Why `remo` cannot run children.
fn spawn_error(e: std::io::Error) -> String {
    format!("cannot start remo for this host: {e}")
}

/// The last `remo: …` line of a child's standard error: its error.
fn last_error(stderr: &[u8]) -> Option<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("remo: ").map(str::to_string))
}

/// Unreachable when the child could not reach its server (its message for
/// [`crate::client::error::ClientError::Connect`]); else failed.
pub(crate) fn classify(code: i32, stderr: &[u8]) -> Ending {
    if code == 0 {
        return Ending::Ok;
    }
    match last_error(stderr) {
        Some(e) if code == 255 && e.starts_with("cannot reach ") => Ending::Unreachable(e),
        _ => Ending::Failed(code),
    }
}

/// Prints one line under the host's name, to stdout or stderr.
struct Printer {
    width: usize,
    progress: Option<indicatif::ProgressBar>,
}

impl Printer {
    fn line(&self, name: &str, err: bool, line: &[u8]) {
        let mut out = Vec::with_capacity(line.len() + name.len() + 3);
        let _ = write!(out, "{name:<w$}: ", w = self.width);
        out.extend_from_slice(line);
        out.push(b'\n');
        let write = || {
            if err {
                let _ = std::io::stderr().lock().write_all(&out);
            } else {
                let _ = std::io::stdout().lock().write_all(&out);
            }
        };
        match &self.progress {
            Some(p) => p.suspend(write),
            None => write(),
        }
    }
}

/// Reads a child's stream line by line; shows each line at once (`print`)
/// and keeps up to [`MAX_KEPT_OUTPUT`] bytes (`keep`).
async fn pump<R: AsyncRead + Unpin>(
    r: R,
    name: String,
    err: bool,
    (print, keep): (bool, bool),
    printer: Arc<Printer>,
) -> (Vec<u8>, bool) {
    let mut reader = BufReader::new(r);
    let mut kept = Vec::new();
    let mut cut = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if print {
            let l = line.strip_suffix(b"\n").unwrap_or(&line);
            printer.line(&name, err, l);
        }
        if keep {
            if kept.len() + line.len() <= MAX_KEPT_OUTPUT {
                kept.extend_from_slice(&line);
            } else {
                cut = true;
            }
        }
    }
    (kept, cut)
}

/// Runs one host's child to its end.
async fn one(
    job: Job,
    command: Arc<Vec<String>>,
    env: Arc<Vec<(String, Zeroizing<String>)>>,
    show: Show,
    printer: Arc<Printer>,
) -> HostResult {
    let started = Instant::now();
    let failed = |name: String, why: String| HostResult {
        name,
        ending: Ending::Failed(255),
        code: 255,
        stdout: Vec::new(),
        stderr: format!("remo: {why}\n").into_bytes(),
        cut: false,
        duration: started.elapsed(),
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return failed(job.name, spawn_error(e)),
    };
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(&job.target_args)
        .args(command.iter())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(job.name, spawn_error(e)),
    };
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return failed(job.name, "no pipes to the child".into());
    };
    let lines = show == Show::Lines;
    let ((stdout, cut_out), (stderr, cut_err), status) = tokio::join!(
        pump(
            out,
            job.name.clone(),
            false,
            (lines, !lines),
            printer.clone()
        ),
        // Errors are classified from what the child said, so stderr is
        // kept even when it is shown line by line.
        pump(err, job.name.clone(), true, (lines, true), printer.clone()),
        child.wait()
    );
    let code = match status {
        Ok(s) => s.code().unwrap_or(255),
        Err(_) => 255,
    };
    HostResult {
        ending: classify(code, &stderr),
        name: job.name,
        code,
        stdout,
        stderr,
        cut: cut_out || cut_err,
        duration: started.elapsed(),
    }
}

/// Shows a finished host in the `Grouped` or `Json` form.
fn show_done(r: &HostResult, server: &str, show: Show, printer: &Printer) {
    let text = match show {
        Show::Lines => return,
        Show::Grouped => {
            let mut s = format!(
                "── {} ({}, {:.2} s)\n",
                r.name,
                match &r.ending {
                    Ending::Ok => "ok".to_string(),
                    Ending::Failed(c) => format!("exit {c}"),
                    Ending::Unreachable(_) => "unreachable".to_string(),
                },
                r.duration.as_secs_f64()
            );
            s.push_str(&String::from_utf8_lossy(&r.stdout));
            s.push_str(&String::from_utf8_lossy(&r.stderr));
            if r.cut {
                s.push_str("(output cut at 16 MiB)\n");
            }
            s
        }
        Show::Json => {
            let v = serde_json::json!({
                "host": r.name,
                "server": server,
                "exit": r.code,
                "status": match &r.ending {
                    Ending::Ok => "ok",
                    Ending::Failed(_) => "failed",
                    Ending::Unreachable(_) => "unreachable",
                },
                "error": match &r.ending {
                    Ending::Ok => None,
                    _ => last_error(&r.stderr),
                },
                "stdout": String::from_utf8_lossy(&r.stdout),
                "stderr": String::from_utf8_lossy(&r.stderr),
                "truncated": r.cut,
                "duration_ms": u64::try_from(r.duration.as_millis()).unwrap_or(u64::MAX),
            });
            format!("{v}\n")
        }
    };
    let write = || {
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    };
    match &printer.progress {
        Some(p) => p.suspend(write),
        None => write(),
    }
}

/// The summary line(s) and the exit code: 0 if every host succeeded, 255
/// if any was unreachable, else 1.
pub(crate) fn summary(results: &[(String, Ending)]) -> (String, i32) {
    let ok = results.iter().filter(|r| r.1 == Ending::Ok).count();
    let failed: Vec<_> = results
        .iter()
        .filter_map(|(n, e)| match e {
            Ending::Failed(c) => Some(format!("{n} (exit {c})")),
            _ => None,
        })
        .collect();
    let unreachable: Vec<_> = results
        .iter()
        .filter_map(|(n, e)| match e {
            Ending::Unreachable(why) => Some(format!("{n}: {why}")),
            _ => None,
        })
        .collect();
    let mut s = format!(
        "remo: {} host(s): {ok} ok, {} failed, {} unreachable\n",
        results.len(),
        failed.len(),
        unreachable.len()
    );
    if !failed.is_empty() {
        s.push_str(&format!("remo: failed: {}\n", failed.join(", ")));
    }
    for u in &unreachable {
        s.push_str(&format!("remo: unreachable: {u}\n"));
    }
    let code = if !unreachable.is_empty() {
        255
    } else if !failed.is_empty() {
        1
    } else {
        0
    };
    (s, code)
}

/// Runs `command` (the client's arguments after the program name, without
/// the `@SPEC`) on every job, `parallel` at a time; returns the exit code.
pub(crate) async fn run(
    jobs: Vec<Job>,
    command: Vec<String>,
    env: Vec<(String, Zeroizing<String>)>,
    parallel: usize,
    show: Show,
) -> i32 {
    use std::io::IsTerminal;
    let total = jobs.len();
    let progress = (show != Show::Json && std::io::stderr().is_terminal()).then(|| {
        let p = indicatif::ProgressBar::new(total as u64);
        p.set_style(
            indicatif::ProgressStyle::with_template("{pos}/{len} hosts done {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        p
    });
    let printer = Arc::new(Printer {
        width: jobs.iter().map(|j| j.name.len()).max().unwrap_or(0),
        progress: progress.clone(),
    });
    let gate = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let command = Arc::new(command);
    let env = Arc::new(env);
    let endings = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, job) in jobs.into_iter().enumerate() {
        let (gate, command, env, printer, endings, progress) = (
            gate.clone(),
            command.clone(),
            env.clone(),
            printer.clone(),
            endings.clone(),
            progress.clone(),
        );
        tasks.spawn(async move {
            let Ok(_permit) = gate.acquire_owned().await else {
                return;
            };
            let server = job.server.clone();
            let r = one(job, command, env, show, printer.clone()).await;
            show_done(&r, &server, show, &printer);
            if let Some(p) = &progress {
                p.inc(1);
                if r.ending != Ending::Ok {
                    p.set_message(format!("(last trouble: {})", r.name));
                }
            }
            if let Ok(mut e) = endings.lock() {
                e.push((i, r.name, r.ending));
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    if let Some(p) = &progress {
        p.finish_and_clear();
    }
    let mut endings = endings.lock().map(|e| e.clone()).unwrap_or_default();
    endings.sort_by_key(|e| e.0);
    let endings: Vec<(String, Ending)> = endings.into_iter().map(|(_, n, e)| (n, e)).collect();
    let (text, code) = summary(&endings);
    if show != Show::Json {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endings_from_exit_codes_and_messages() {
        assert_eq!(classify(0, b""), Ending::Ok);
        assert_eq!(classify(3, b"remo: x\n"), Ending::Failed(3));
        assert_eq!(
            classify(255, b"remo: pinned\nremo: cannot reach http://h: refused\n"),
            Ending::Unreachable("cannot reach http://h: refused".into())
        );
        assert_eq!(
            classify(255, b"remo: authentication failed for user a\n"),
            Ending::Failed(255)
        );
        // The message must be the child's last word, and from remo.
        assert_eq!(
            classify(255, b"cannot reach the moon\n"),
            Ending::Failed(255)
        );
    }

    #[test]
    fn summary_and_exit_code() {
        let (s, c) = summary(&[("a".into(), Ending::Ok), ("b".into(), Ending::Ok)]);
        assert_eq!(c, 0);
        assert!(
            s.contains("2 host(s): 2 ok, 0 failed, 0 unreachable"),
            "{s}"
        );
        let (s, c) = summary(&[("a".into(), Ending::Ok), ("b".into(), Ending::Failed(3))]);
        assert_eq!(c, 1);
        assert!(s.contains("failed: b (exit 3)"), "{s}");
        let (s, c) = summary(&[
            ("a".into(), Ending::Failed(1)),
            ("b".into(), Ending::Unreachable("cannot reach x".into())),
        ]);
        assert_eq!(c, 255);
        assert!(s.contains("unreachable: b: cannot reach x"), "{s}");
    }
}
