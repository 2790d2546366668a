//! One module per `remo` command, plus the helpers they share.

pub(crate) mod admin;
pub(crate) mod config;
pub(crate) mod exec;
pub(crate) mod get;
pub(crate) mod info;
pub(crate) mod logout;
pub(crate) mod ls;
pub(crate) mod open;
pub(crate) mod put;
pub(crate) mod shell;
pub(crate) mod tail;

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

use super::error::ClientError;

/// Writes a chunk to our stdout or stderr at once (output is shown as it
/// arrives, not when a buffer fills).
pub(crate) fn emit(to_stderr: bool, data: &[u8]) -> Result<(), ClientError> {
    let res = if to_stderr {
        let mut e = std::io::stderr().lock();
        e.write_all(data).and_then(|_| e.flush())
    } else {
        let mut o = std::io::stdout().lock();
        o.write_all(data).and_then(|_| o.flush())
    };
    res.map_err(|e| {
        ClientError::io(
            if to_stderr { "<stderr>" } else { "<stdout>" },
            "cannot write",
            e,
        )
    })
}

/// Whether progress and summaries are shown: only on a terminal, so scripts
/// and logs get no control sequences and no chatter.
pub(crate) fn on_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A byte progress bar on stderr when it is a terminal, hidden otherwise.
/// `total = None` is a spinner. The label (a path of any length) takes the
/// room the figures leave and is cut to it, so the line never wraps.
pub(crate) fn progress(total: Option<u64>, label: &str) -> ProgressBar {
    if !on_terminal() {
        return ProgressBar::hidden();
    }
    let (pb, template) = match total {
        Some(n) => (
            ProgressBar::new(n),
            "{wide_msg} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} \
             [{bar:20.cyan/blue}] {eta:>3}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{spinner} {wide_msg} {bytes:>10} {binary_bytes_per_sec:>12} {elapsed:>4}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    // A path's last component says the most in the least room.
    pb.set_message(basename(label).unwrap_or(label).to_string());
    if total.is_none() {
        pb.enable_steady_tick(std::time::Duration::from_millis(200));
    }
    pb
}

/// The one line printed when a transfer ends, on a terminal only: what,
/// how much, how long, how fast, and the digest both sides agreed on.
pub(crate) fn summary(
    what: &str,
    bytes: u64,
    elapsed: std::time::Duration,
    digest: &str,
) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = (bytes as f64 / secs) as u64;
    format!(
        "remo: {what}: {} in {secs:.1} s ({}/s), sha256 {digest}",
        indicatif::BinaryBytes(bytes),
        indicatif::BinaryBytes(rate)
    )
}

/// The last component of a path (local or remote, `/`-separated), if any.
pub(crate) fn basename(path: &str) -> Option<&str> {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|b| !b.is_empty() && *b != "." && *b != "..")
}

/// b64 of a SHA-256 digest, as results carry it.
pub(crate) fn digest_b64(d: &[u8]) -> String {
    crate::proto::b64::encode(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line() {
        let l = summary(
            "a → b",
            3 << 20,
            std::time::Duration::from_millis(1500),
            "xyz=",
        );
        assert_eq!(
            l,
            "remo: a → b: 3.00 MiB in 1.5 s (2.00 MiB/s), sha256 xyz="
        );
    }

    #[test]
    fn basenames() {
        assert_eq!(basename("/a/b.txt"), Some("b.txt"));
        assert_eq!(basename("b"), Some("b"));
        assert_eq!(basename("dir/"), Some("dir"));
        assert_eq!(basename("/"), None);
        assert_eq!(basename(".."), None);
    }
}
