//! `remo put`: upload a file, in one pass: the file is hashed as it is read
//! and sent, and the server's digest of what it stored must be ours. The
//! sealed records and the `last` record already make a cut or altered
//! upload fail before anything is replaced; what one pass cannot see is a
//! local file changing while it is read (what was read is what lands).
//! `--verify-first` hashes the file before sending and puts the digest in
//! the descriptor: the server then replaces the target only with exactly
//! those bytes, and a file that changed under us fails instead.

use std::io::Read;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::{basename, digest_b64, on_terminal, progress, summary};
use crate::client::conn::{DataStream, ResponseItem};
use crate::client::ctx::Ctx;
use crate::client::error::ClientError;
use crate::client::input::file_stream_hashed;
use crate::client::resume;
use crate::ops::put::PutDesc;
use crate::ops::result_of;

/// Arguments of `remo put`.
#[derive(Debug, clap::Args)]
pub(crate) struct PutArgs {
    /// Local file.
    pub local: PathBuf,
    /// Remote path (relative to the remote home; ending in `/` = a directory;
    /// default: LOCAL's base name in the remote home).
    pub remote: Option<String>,
    /// Remote file mode, in octal (e.g. 640).
    #[arg(long, value_name = "OCTAL")]
    pub mode: Option<String>,
    /// Fail if the remote file exists.
    #[arg(long)]
    pub no_overwrite: bool,
    /// Create missing remote parent directories.
    #[arg(long)]
    pub mkdir: bool,
    /// Hash the file before sending it and have the server check that
    /// digest before it replaces anything (a second pass over the file; a
    /// file that changes during the upload then fails instead of landing).
    #[arg(long)]
    pub verify_first: bool,
    /// Send the file in parts that the server stages and commits at the
    /// end; run the same command again after an interruption to go on
    /// where the server is (see the docs: resumable uploads).
    #[arg(long)]
    pub resume: bool,
    /// With --resume: bytes per request (a number, or with K, M or G for
    /// KiB, MiB, GiB; default 64M).
    #[arg(long, value_name = "SIZE", requires = "resume", value_parser = parse_size)]
    pub part_size: Option<u64>,
}

/// A size: bytes, or with a K, M or G suffix (binary units), at least 1.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (t.get(..i), 1u64 << 10),
        Some((i, 'M' | 'm')) => (t.get(..i), 1 << 20),
        Some((i, 'G' | 'g')) => (t.get(..i), 1 << 30),
        _ => (Some(t), 1),
    };
    num.and_then(|n| n.parse::<u64>().ok())
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("want a size like 1048576, 512K or 64M, got '{s}'"))
}

fn sha256_file(path: &Path) -> Result<String, ClientError> {
    let mut f = std::fs::File::open(path).map_err(|e| ClientError::io(path, "cannot open", e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| ClientError::io(path, "cannot read", e))?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or(&[]));
    }
    Ok(digest_b64(&h.finalize()))
}

/// Builds the `put` descriptor.
pub(crate) fn descriptor(a: &PutArgs, sha: Option<&str>) -> Result<(String, PutDesc), ClientError> {
    let local_name = a
        .local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| basename(n).is_some())
        .ok_or_else(|| ClientError::Usage(format!("{}: not a file name", a.local.display())))?;
    let remote = match a.remote.as_deref() {
        None => local_name,
        Some(r) if r.ends_with('/') => format!("{r}{local_name}"),
        Some(r) => r.to_string(),
    };
    let mode = match &a.mode {
        Some(m) => Some(
            u32::from_str_radix(m, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| {
                    ClientError::Usage(format!("--mode wants octal like 640, got '{m}'"))
                })?,
        ),
        None => None,
    };
    let d = PutDesc {
        path: remote.clone(),
        sha256: sha.map(str::to_string),
        overwrite: Some(!a.no_overwrite),
        create_dirs: Some(a.mkdir),
        mode,
        upload: None,
    };
    Ok((remote, d))
}

/// Uploads LOCAL to REMOTE.
pub(crate) async fn run(ctx: &Ctx, a: PutArgs) -> Result<i32, ClientError> {
    let meta =
        std::fs::metadata(&a.local).map_err(|e| ClientError::io(&a.local, "cannot stat", e))?;
    if !meta.is_file() {
        return Err(ClientError::Config(format!(
            "{}: not a regular file",
            a.local.display()
        )));
    }
    let first = if a.verify_first {
        let path = a.local.clone();
        Some(
            tokio::task::spawn_blocking(move || sha256_file(&path))
                .await
                .map_err(|e| ClientError::Local(format!("hashing failed: {e}")))??,
        )
    } else {
        None
    };
    if a.resume {
        return run_resumable(ctx, &a, meta.len(), first).await;
    }
    let (remote, desc) = descriptor(&a, first.as_deref())?;
    let file =
        std::fs::File::open(&a.local).map_err(|e| ClientError::io(&a.local, "cannot open", e))?;
    let pb = progress(Some(meta.len()), &remote);
    let pb2 = pb.clone();
    let (stream, digest) = file_stream_hashed(file);
    let input: DataStream = Box::pin(stream.inspect(move |c| {
        if let Ok(b) = c {
            pb2.inc(b.len() as u64);
        }
    }));
    let mut active = ctx.session().await?;
    let started = std::time::Instant::now();
    let outcome = async {
        let mut resp = ctx.request(&mut active, &desc, Some(input)).await?;
        while let Some(item) = resp.next().await? {
            match item {
                ResponseItem::Stdout(_) | ResponseItem::Stderr(_) => {}
                ResponseItem::Done(Err(e)) => return Err(ClientError::Op(e)),
                ResponseItem::Done(Ok(m)) => {
                    let r = result_of::<PutDesc>(m)
                        .map_err(|e| ClientError::Protocol(format!("put result: {e}")))?;
                    // What we read and sent, hashed as it went (the digest
                    // is there: the server saw the end of the body).
                    let sent = digest.await.map(|d| digest_b64(&d)).map_err(|_| {
                        ClientError::Local("the file was not read to its end".into())
                    })?;
                    let sha = first.unwrap_or(sent.clone());
                    if r.sha256 != sha || r.sha256 != sent {
                        return Err(ClientError::Protocol(
                            "the server reports another SHA-256 than the one we sent".into(),
                        ));
                    }
                    pb.finish_and_clear();
                    if on_terminal() {
                        eprintln!(
                            "{}",
                            summary(
                                &format!("put {} → {remote}", a.local.display()),
                                meta.len(),
                                started.elapsed(),
                                &sha
                            )
                        );
                    }
                    return Ok(0);
                }
            }
        }
        Err(ClientError::Truncated)
    }
    .await;
    pb.finish_and_clear();
    ctx.done(active).await;
    outcome
}

/// `put --resume`: the file in parts (see [`crate::client::resume`]).
async fn run_resumable(
    ctx: &Ctx,
    a: &PutArgs,
    size: u64,
    first: Option<String>,
) -> Result<i32, ClientError> {
    let (remote, desc) = descriptor(a, None)?;
    let pb = progress(Some(size), &remote);
    let pb2 = pb.clone();
    let job = resume::Job {
        local: &a.local,
        desc,
        part: a.part_size.unwrap_or(resume::DEFAULT_PART),
        expect: first,
        progress: std::sync::Arc::new(move |n| pb2.inc(n)),
    };
    let mut active = ctx.session().await?;
    let started = std::time::Instant::now();
    let outcome = resume::upload(ctx, &mut active, job).await;
    pb.finish_and_clear();
    ctx.done(active).await;
    let r = outcome?;
    if on_terminal() {
        eprintln!(
            "{}",
            summary(
                &format!("put {} → {remote}", a.local.display()),
                r.size,
                started.elapsed(),
                &r.sha256
            )
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_goes_first_only_with_verify_first() {
        let a = PutArgs {
            local: "/tmp/a.tar".into(),
            remote: Some("/srv/".into()),
            mode: None,
            no_overwrite: false,
            mkdir: false,
            verify_first: false,
            resume: false,
            part_size: None,
        };
        let (remote, d) = descriptor(&a, None).unwrap();
        assert_eq!(remote, "/srv/a.tar");
        assert_eq!(d.sha256, None);
        let (_, d) = descriptor(&a, Some("abc")).unwrap();
        assert_eq!(d.sha256.as_deref(), Some("abc"));
    }

    #[test]
    fn part_sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        for bad in ["", "0", "M", "-1", "1T", "99999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
