//! `remo put`: upload a file. Its SHA-256 is computed first and sent in the
//! descriptor, so the server replaces the target only with exactly the
//! bytes we meant (a file changing under us fails instead of landing torn).

use std::io::Read;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::{basename, digest_b64, on_terminal, progress, summary};
use crate::client::conn::{DataStream, ResponseItem};
use crate::client::ctx::Ctx;
use crate::client::error::ClientError;
use crate::client::input::file_stream;
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
pub(crate) fn descriptor(a: &PutArgs, sha: &str) -> Result<(String, PutDesc), ClientError> {
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
        sha256: Some(sha.to_string()),
        overwrite: Some(!a.no_overwrite),
        create_dirs: Some(a.mkdir),
        mode,
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
    let path = a.local.clone();
    let sha = tokio::task::spawn_blocking(move || sha256_file(&path))
        .await
        .map_err(|e| ClientError::Local(format!("hashing failed: {e}")))??;
    let (remote, desc) = descriptor(&a, &sha)?;
    let file =
        std::fs::File::open(&a.local).map_err(|e| ClientError::io(&a.local, "cannot open", e))?;
    let pb = progress(Some(meta.len()), &remote);
    let pb2 = pb.clone();
    let input: DataStream = Box::pin(file_stream(file).inspect(move |c| {
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
                    if r.sha256 != sha {
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
