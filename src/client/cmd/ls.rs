//! `remo ls`: a remote directory's entries, printed as they arrive — names
//! one per line, `-l` with mode, size and time, `--json` the server's
//! NDJSON lines. Names from the server are shown with control characters
//! as `?`, so a hostile name cannot drive the terminal.

use std::io::Write;

use crate::admin::iso8601_utc;
use crate::client::ctx::Ctx;
use crate::client::error::ClientError;
use crate::client::list::list;
use crate::ops::list::{EntryType, ListEntry};

/// Arguments of `remo ls`.
#[derive(Debug, clap::Args)]
pub(crate) struct LsArgs {
    /// Long format: mode, size, modification time (UTC), name (-> target).
    /// After `ls`, `-l` means this (the global `-l USER` goes before the command).
    #[arg(long)]
    pub long: bool,
    /// Also the entries whose names start with `.`.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// The remote directory (relative to the remote home; default: the home).
    #[arg(value_name = "PATH", default_value = ".")]
    pub path: String,
}

/// How entries are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Names,
    Long,
    Json,
}

/// Lists PATH. Exit status 0, or 1 when the server cut the listing short
/// (`[limits] list_max_entries`; said on stderr).
pub(crate) async fn run(ctx: &Ctx, a: LsArgs, json: bool) -> Result<i32, ClientError> {
    let format = if json {
        Format::Json
    } else if a.long {
        Format::Long
    } else {
        Format::Names
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut active = ctx.session().await?;
    let listed = list(ctx, &mut active, &a.path, |e, raw| {
        if !a.all && e.name.starts_with('.') {
            return Ok(());
        }
        let line = match format {
            Format::Names => format!("{}{}", shown(&e.name), suffix(e)),
            Format::Long => long_line(e),
            Format::Json => json_safe(raw),
        };
        writeln!(out, "{line}").map_err(|e| ClientError::io("<stdout>", "cannot write", e))
    })
    .await;
    ctx.done(active).await;
    let r = listed?;
    out.flush()
        .map_err(|e| ClientError::io("<stdout>", "cannot write", e))?;
    if r.truncated {
        eprintln!(
            "remo: {}: only the first {} entries by name (the server's [limits] list_max_entries)",
            shown(&a.path),
            r.count
        );
        return Ok(1);
    }
    Ok(0)
}

/// A name as shown: control characters (a newline, escape sequences) as `?`.
fn shown(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `/` after a directory's name, as `ls -p` does.
fn suffix(e: &ListEntry) -> &'static str {
    if e.kind == EntryType::Dir {
        "/"
    } else {
        ""
    }
}

/// `drwxr-xr-x         4096 2024-05-01T12:00:00Z name` (`-> target` for a link).
fn long_line(e: &ListEntry) -> String {
    let mut s = format!(
        "{} {:>12} {} {}",
        mode_string(e.kind, e.mode),
        e.size,
        iso8601_utc(e.mtime),
        shown(&e.name)
    );
    if let Some(t) = &e.target {
        s.push_str(" -> ");
        s.push_str(&shown(t));
    }
    s
}

/// The type letter and permission bits as `ls -l` writes them; `?` for a
/// type other than file, directory and link (the server does not say which).
fn mode_string(kind: EntryType, mode: u32) -> String {
    let t = match kind {
        EntryType::File => '-',
        EntryType::Dir => 'd',
        EntryType::Symlink => 'l',
        EntryType::Other => '?',
    };
    let bit = |b: u32, c: char| if mode & b != 0 { c } else { '-' };
    // The execute position with a special bit: lower case when the
    // execute bit is set too.
    let special = |x: u32, sp: u32, set: char| match (mode & x != 0, mode & sp != 0) {
        (true, true) => set,
        (false, true) => set.to_ascii_uppercase(),
        (true, false) => 'x',
        (false, false) => '-',
    };
    [
        t,
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(0o100, 0o4000, 's'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(0o010, 0o2000, 's'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(0o001, 0o1000, 't'),
    ]
    .iter()
    .collect()
}

/// A line as received, checked JSON: DEL and the C1 controls, which JSON
/// may carry raw inside strings and some terminals obey, escaped as
/// `\u00XX` (the same text to a JSON reader).
fn json_safe(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .chars()
        .map(|c| {
            if ('\u{7f}'..='\u{9f}').contains(&c) {
                format!("\\u{:04x}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_as_ls_writes_them() {
        assert_eq!(mode_string(EntryType::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(EntryType::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(EntryType::File, 0o2644), "-rw-r-Sr--");
        assert_eq!(mode_string(EntryType::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(EntryType::Symlink, 0o777), "lrwxrwxrwx");
        assert_eq!(mode_string(EntryType::Other, 0o1600), "?rw------T");
    }

    #[test]
    fn names_and_json_cannot_drive_the_terminal() {
        assert_eq!(shown("a\u{1b}[2Jb\nc\u{9b}"), "a?[2Jb?c?");
        let raw = "{\"name\":\"a\u{9b}b\u{7f}\"}";
        let safe = json_safe(raw.as_bytes());
        assert_eq!(safe, r#"{"name":"a\u009bb\u007f"}"#);
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["name"], "a\u{9b}b\u{7f}");
    }

    #[test]
    fn long_lines() {
        let e = ListEntry {
            name: "link".into(),
            name_b64: None,
            kind: EntryType::Symlink,
            size: 4,
            mode: 0o777,
            mtime: 86_400,
            target: Some("/etc".into()),
            target_b64: None,
        };
        assert_eq!(
            long_line(&e),
            "lrwxrwxrwx            4 1970-01-02T00:00:00Z link -> /etc"
        );
    }
}
