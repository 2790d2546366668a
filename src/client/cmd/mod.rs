//! One module per `remo` command, plus the helpers they share.

pub mod config;
pub mod exec;
pub mod get;
pub mod info;
pub mod logout;
pub mod put;

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

use super::error::ClientError;

/// Writes a chunk to our stdout or stderr at once (output is shown as it
/// arrives, not when a buffer fills).
pub fn emit(to_stderr: bool, data: &[u8]) -> Result<(), ClientError> {
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

/// A byte progress bar on stderr when it is a terminal, hidden otherwise
/// (scripts and logs get no control sequences). `total = None` is a spinner.
pub fn progress(total: Option<u64>, label: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    match total {
        Some(n) => {
            let pb = ProgressBar::new(n);
            if let Ok(style) = ProgressStyle::with_template(
                "{msg} {bar:30.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                pb.set_style(style.progress_chars("=> "));
            }
            pb.set_message(label.to_string());
            pb
        }
        None => {
            let pb = ProgressBar::new_spinner();
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec} {elapsed}")
            {
                pb.set_style(style);
            }
            pb.set_message(label.to_string());
            pb.enable_steady_tick(std::time::Duration::from_millis(200));
            pb
        }
    }
}

/// The last component of a path (local or remote, `/`-separated), if any.
pub fn basename(path: &str) -> Option<&str> {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|b| !b.is_empty() && *b != "." && *b != "..")
}

/// b64 of a SHA-256 digest, as results carry it.
pub fn digest_b64(d: &[u8]) -> String {
    crate::proto::b64::encode(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basenames() {
        assert_eq!(basename("/a/b.txt"), Some("b.txt"));
        assert_eq!(basename("b"), Some("b"));
        assert_eq!(basename("dir/"), Some("dir"));
        assert_eq!(basename("/"), None);
        assert_eq!(basename(".."), None);
    }
}
