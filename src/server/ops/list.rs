//! `list`: a directory's entries, confined and checked exactly as `get`
//! (the grant `files:read:DIR`, [`locate`] with [`Access::Read`], opened
//! below the root with the run-as account's rights), sent as NDJSON data
//! records sorted by name, at most `[limits] list_max_entries` of them.
//!
//! Everything that touches the file system — the open, reading the names,
//! `fstatat` and `readlinkat` of each entry relative to the directory's
//! descriptor (never by path), without following links — runs in
//! [`fs_step`]s, so with the account's rights: one for the names, then one
//! per record's worth of entries, each started when the previous batch has
//! been handed on.

use std::collections::BinaryHeap;
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use tokio_util::sync::CancellationToken;

use super::OpCtx;
use crate::ops::list::{text_and_b64, EntryType, ListEntry};
use crate::proto::record::MAX_RESPONSE_DATA;
use crate::proto::response::{ErrorCode, OpError};
use crate::server::core::stream::{RequestReader, ResponseWriter};
use crate::server::enforce::confine::{fs_error, locate, Access};
use crate::server::enforce::runas::{account_for, fs_step};

pub(crate) use crate::ops::list::{ListDesc, ListResult};

/// Checks the descriptor (as `get` does its path).
pub(crate) fn check(d: ListDesc) -> Result<ListDesc, OpError> {
    if d.path.is_empty() || d.path.contains('\0') {
        return Err(OpError::bad_request(
            "path must be a non-empty string without NUL",
        ));
    }
    Ok(d)
}

/// Lists the directory. Each step that touches the file system is one
/// blocking job, and the next starts only when the previous batch has been
/// handed on: a client that stops taking the answer holds no thread.
pub(crate) async fn apply(
    ctx: &OpCtx,
    d: ListDesc,
    input: &mut RequestReader,
    out: &mut ResponseWriter,
) -> Result<ListResult, OpError> {
    input.drain().await?;
    let grants = ctx.session.grants();
    let loc = locate(&grants, &ctx.inst.resolve(&d.path), Access::Read)?;
    let limit = ctx.inst.limits.list_max_entries;
    let acct = account_for(&grants)?;
    let shown = loc.shown.clone();
    // Opened and read below the user's root, with the run-as account's rights.
    let cancel = ctx.session.cancel.clone();
    let (dir, names, truncated) = fs_step(acct.clone(), move || {
        let dir = loc.open_dir()?;
        read_names(dir, &loc.shown, limit, &cancel)
    })
    .await?;
    let mut state = Lines {
        dir,
        names: names.into_iter(),
        count: 0,
    };
    loop {
        let (sh, cancel) = (shown.clone(), ctx.session.cancel.clone());
        let (back, batch) = fs_step(acct.clone(), move || {
            let batch = next_lines(&mut state, &sh, &cancel);
            Ok((state, batch))
        })
        .await?;
        state = back;
        let batch = batch?;
        if batch.is_empty() {
            break;
        }
        ctx.watched(&shown, out.stdout(&batch))
            .await?
            .map_err(|_| gone())?;
        ctx.session.touch();
    }
    Ok(ListResult {
        count: state.count,
        truncated,
    })
}

fn gone() -> OpError {
    OpError::new(ErrorCode::Unavailable, "client went away")
}

fn ended() -> OpError {
    OpError::new(ErrorCode::Unavailable, "session ended")
}

/// Reads the directory's names: the `limit` smallest first (a max-heap, so
/// a truncated listing is the first entries by name whatever order the
/// file system gives, with memory bounded by the limit), sorted. Returns a
/// descriptor of the directory for the `lstat`s, the names, and whether
/// some were left out.
fn read_names(
    dir: OwnedFd,
    shown: &str,
    limit: usize,
    cancel: &CancellationToken,
) -> Result<(OwnedFd, Vec<Vec<u8>>, bool), OpError> {
    let keep = dir
        .try_clone()
        .map_err(|e| fs_error(shown, Errno::from_raw(e.raw_os_error().unwrap_or(0)), false))?;
    let mut dir = nix::dir::Dir::from(dir).map_err(|e| fs_error(shown, e, false))?;
    let mut names: BinaryHeap<Vec<u8>> = BinaryHeap::new();
    let mut truncated = false;
    for entry in dir.iter() {
        if cancel.is_cancelled() {
            return Err(ended());
        }
        let entry = entry.map_err(|e| fs_error(shown, e, false))?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        if names.len() < limit {
            names.push(name.to_vec());
            continue;
        }
        truncated = true;
        if let Some(mut largest) = names.peek_mut() {
            if name < largest.as_slice() {
                *largest = name.to_vec();
            }
        }
    }
    Ok((keep, names.into_sorted_vec(), truncated))
}

/// Where a listing stands between two blocking jobs.
struct Lines {
    dir: OwnedFd,
    names: std::vec::IntoIter<Vec<u8>>,
    /// Entries sent so far.
    count: u64,
}

/// The next entries, each `lstat`ed, as whole NDJSON lines filling at most
/// one record's data (one line at least); empty at the end.
fn next_lines(st: &mut Lines, shown: &str, cancel: &CancellationToken) -> Result<Vec<u8>, OpError> {
    let fd = st.dir.as_raw_fd();
    let mut batch = Vec::new();
    // Peek-free: a line that would overflow the batch is kept for the next.
    while let Some(name) = st.names.as_slice().first() {
        if cancel.is_cancelled() {
            return Err(ended());
        }
        let Some(entry) = entry_at(fd, name, shown)? else {
            st.names.next();
            continue;
        };
        let mut line = serde_json::to_vec(&entry)
            .map_err(|e| OpError::new(ErrorCode::Internal, format!("list: {e}")))?;
        line.push(b'\n');
        if !batch.is_empty() && batch.len() + line.len() > MAX_RESPONSE_DATA {
            break;
        }
        batch.extend_from_slice(&line);
        st.names.next();
        st.count += 1;
    }
    Ok(batch)
}

/// One entry, `lstat`ed relative to the directory; `None` when it went away
/// since the directory was read.
fn entry_at(dir: RawFd, name: &[u8], shown: &str) -> Result<Option<ListEntry>, OpError> {
    let os = OsStr::from_bytes(name);
    let what = || format!("{shown}/{}", String::from_utf8_lossy(name));
    let st = match nix::sys::stat::fstatat(Some(dir), os, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(fs_error(&what(), e, false)),
    };
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => EntryType::File,
        libc::S_IFDIR => EntryType::Dir,
        libc::S_IFLNK => EntryType::Symlink,
        _ => EntryType::Other,
    };
    let (target, target_b64) = if kind == EntryType::Symlink {
        match nix::fcntl::readlinkat(Some(dir), os) {
            Ok(t) => {
                let (t, b) = text_and_b64(t.as_bytes());
                (Some(t), b)
            }
            // Gone, or no longer a link: replaced since the `fstatat`.
            Err(Errno::ENOENT | Errno::EINVAL) => return Ok(None),
            Err(e) => return Err(fs_error(&what(), e, false)),
        }
    } else {
        (None, None)
    };
    let (name, name_b64) = text_and_b64(name);
    Ok(Some(ListEntry {
        name,
        name_b64,
        kind,
        size: u64::try_from(st.st_size).unwrap_or(0),
        mode: st.st_mode & 0o7777,
        mtime: st.st_mtime,
        target,
        target_b64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(dir: &std::path::Path, limit: usize) -> (Vec<ListEntry>, ListResult) {
        let fd = OwnedFd::from(std::fs::File::open(dir).unwrap());
        let cancel = CancellationToken::new();
        let (dir, names, truncated) = read_names(fd, "d", limit, &cancel).unwrap();
        let mut st = Lines {
            dir,
            names: names.into_iter(),
            count: 0,
        };
        let mut entries = Vec::new();
        loop {
            let batch = next_lines(&mut st, "d", &cancel).unwrap();
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() <= MAX_RESPONSE_DATA && batch.ends_with(b"\n"));
            for line in batch.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                entries.push(serde_json::from_slice(line).unwrap());
            }
        }
        let r = ListResult {
            count: st.count,
            truncated,
        };
        (entries, r)
    }

    #[test]
    fn sorted_by_bytes_links_not_followed_and_truncated_to_the_first_names() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        for n in ["b", "a", "C", ".hidden"] {
            std::fs::write(d.join(n), n).unwrap();
        }
        std::fs::create_dir(d.join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc", d.join("link")).unwrap();
        std::fs::write(d.join(OsStr::from_bytes(b"x\xff")), b"").unwrap();
        let (e, r) = listing(d, 100);
        let names: Vec<Vec<u8>> = e.iter().map(|e| e.name_bytes().unwrap()).collect();
        let want: Vec<&[u8]> = vec![b".hidden", b"C", b"a", b"b", b"link", b"sub", b"x\xff"];
        assert_eq!(names, want);
        assert_eq!(
            r,
            ListResult {
                count: 7,
                truncated: false
            }
        );
        let link = e.iter().find(|e| e.name == "link").unwrap();
        assert_eq!(link.kind, EntryType::Symlink);
        assert_eq!(link.target.as_deref(), Some("/etc"));
        assert_eq!(
            e.iter().find(|e| e.name == "sub").unwrap().kind,
            EntryType::Dir
        );
        assert_eq!(e[1].size, 1);
        let (e, r) = listing(d, 3);
        let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, [".hidden", "C", "a"]);
        assert_eq!(
            r,
            ListResult {
                count: 3,
                truncated: true
            }
        );
        let (e, r) = listing(d, 0);
        assert!(e.is_empty() && r.truncated);
    }

    #[test]
    fn many_entries_come_in_batches_of_whole_lines() {
        let t = tempfile::tempdir().unwrap();
        for i in 0..3000 {
            std::fs::write(t.path().join(format!("{i:0>200}")), b"").unwrap();
        }
        let (e, r) = listing(t.path(), 100_000);
        assert_eq!(e.len(), 3000);
        assert_eq!(r.count, 3000);
        assert!(e.windows(2).all(|w| w[0].name < w[1].name));
    }
}
