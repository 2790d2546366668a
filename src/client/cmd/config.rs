//! `remo config`: read and edit the configuration files a server names in
//! its `[files]` table, by section and key (docs/config-files.md).
//!
//! Addresses are `SECTION.KEY`, `SECTION`, `.KEY` (a key outside any
//! section, or in an env file), with sections written `NAME`,
//! `NAME[INDEX]` or `NAME[KEY=VALUE]` — the same parser as the server's.
//! `edit` downloads a copy, opens the editor, shows the diff and uploads
//! with `if_version`, so a change made meanwhile by someone else is never
//! overwritten.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use clap::Subcommand;

use super::emit;
use crate::cfgedit::{diff, parse_path};
use crate::client::conn::{sanitize, DataStream, ResponseItem};
use crate::client::ctx::{Active, Ctx};
use crate::client::error::ClientError;
use crate::ops::config::{ConfigDesc, ConfigResult};
use crate::ops::result_of;
use crate::proto::response::ErrorCode;

/// Arguments of `remo config`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConfigArgs {
    /// What to do.
    #[command(subcommand)]
    pub cmd: ConfigCmd,
}

/// The `remo config` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCmd {
    /// List the configuration files you may use.
    List,
    /// Print a file, a section (SECTION) or a key's value (SECTION.KEY, .KEY).
    Get {
        /// Configured file name.
        name: String,
        /// SECTION, SECTION.KEY or .KEY; sections are NAME, NAME[INDEX] or NAME[KEY=VALUE].
        path: Option<String>,
        /// Also print the file's version on stderr (for --if-version).
        #[arg(long)]
        show_version: bool,
    },
    /// Set a key (created at the end of its section if missing).
    Set {
        /// Configured file name.
        name: String,
        /// SECTION.KEY, or .KEY / KEY outside any section.
        path: String,
        /// The new value (one line).
        value: String,
        /// Refuse (conflict) unless the file still has this version.
        #[arg(long, value_name = "VERSION")]
        if_version: Option<String>,
    },
    /// Remove a key.
    Unset {
        /// Configured file name.
        name: String,
        /// SECTION.KEY, or .KEY / KEY outside any section.
        path: String,
        /// Refuse (conflict) unless the file still has this version.
        #[arg(long, value_name = "VERSION")]
        if_version: Option<String>,
    },
    /// Append a section with entries KEY=VALUE.
    AddSection {
        /// Configured file name.
        name: String,
        /// Section name, e.g. Peer.
        section: String,
        /// Entries, in order.
        #[arg(value_name = "KEY=VALUE")]
        entries: Vec<String>,
        /// Refuse (conflict) unless the file still has this version.
        #[arg(long, value_name = "VERSION")]
        if_version: Option<String>,
    },
    /// Delete a section (NAME, NAME[INDEX] or NAME[KEY=VALUE]).
    DeleteSection {
        /// Configured file name.
        name: String,
        /// The section.
        section: String,
        /// Refuse (conflict) unless the file still has this version.
        #[arg(long, value_name = "VERSION")]
        if_version: Option<String>,
    },
    /// Replace the whole file with a local file (`-`: standard input).
    Write {
        /// Configured file name.
        name: String,
        /// Local file or `-`.
        file: String,
        /// Refuse (conflict) unless the file still has this version.
        #[arg(long, value_name = "VERSION")]
        if_version: Option<String>,
    },
    /// Edit a copy in $VISUAL / $EDITOR, review the diff, upload it.
    Edit {
        /// Configured file name.
        name: String,
        /// Upload without asking.
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// List the file's backups, newest first.
    Backups {
        /// Configured file name.
        name: String,
    },
    /// Put a backup back (the current content is backed up first).
    Restore {
        /// Configured file name.
        name: String,
        /// Backup id (from `backups`).
        backup: String,
        /// Refuse (conflict) unless the file still has this version.
        #[arg(long, value_name = "VERSION")]
        if_version: Option<String>,
    },
    /// Show what changed since a backup (default: the newest).
    Diff {
        /// Configured file name.
        name: String,
        /// Backup id.
        backup: Option<String>,
    },
}

/// One finished `config` request: its data and result fields.
struct Reply {
    data: Vec<u8>,
    fields: ConfigResult,
}

fn bytes_stream(data: Vec<u8>) -> DataStream {
    Box::pin(futures_util::stream::once(
        async move { Ok(Bytes::from(data)) },
    ))
}

async fn call(
    ctx: &Ctx,
    active: &mut Active,
    desc: ConfigDesc,
    data: Option<Vec<u8>>,
) -> Result<Reply, ClientError> {
    let mut resp = ctx.request(active, &desc, data.map(bytes_stream)).await?;
    let mut out = Vec::new();
    while let Some(item) = resp.next().await? {
        match item {
            ResponseItem::Stdout(b) => out.extend_from_slice(&b),
            // Validator and reload output.
            ResponseItem::Stderr(b) => emit(true, &b)?,
            ResponseItem::Done(Ok(m)) => {
                let fields = result_of::<ConfigDesc>(m)
                    .map_err(|e| ClientError::Protocol(format!("config result: {e}")))?;
                return Ok(Reply { data: out, fields });
            }
            ResponseItem::Done(Err(e)) => return Err(ClientError::Op(e)),
        }
    }
    Err(ClientError::Truncated)
}

/// One line on stderr saying what a modification did.
fn report(name: &str, m: &ConfigResult) {
    let mut s = if m.changed == Some(true) {
        format!("{name}: changed")
    } else {
        format!("{name}: unchanged")
    };
    if let Some(Some(b)) = &m.backup {
        s.push_str(&format!(", backup {}", sanitize(b)));
    }
    if m.reloaded == Some(true) {
        s.push_str(", reloaded");
    }
    let version = m.version.as_deref().unwrap_or("");
    s.push_str(&format!(", version {}", sanitize(version)));
    eprintln!("remo: {s}");
}

/// Splits `path` into a section and a key for a command that needs a key:
/// without a dot it is a key outside any section.
fn key_path(path: &str) -> (String, String) {
    match parse_path(path) {
        (section, Some(key)) => (section, key),
        (key, None) => (String::new(), key),
    }
}

/// Runs a `remo config` subcommand.
pub(crate) async fn run(ctx: &Ctx, a: ConfigArgs) -> Result<i32, ClientError> {
    let mut active = ctx.session().await?;
    let outcome = run_in(ctx, &mut active, a.cmd).await;
    ctx.done(active).await;
    outcome
}

async fn run_in(ctx: &Ctx, active: &mut Active, cmd: ConfigCmd) -> Result<i32, ClientError> {
    match cmd {
        ConfigCmd::List => {
            let r = call(ctx, active, ConfigDesc::List {}, None).await?;
            let mut out = String::new();
            for f in r.fields.files.unwrap_or_default() {
                out.push_str(&format!(
                    "{}\t{}\t{}\n",
                    sanitize(&f.name),
                    sanitize(&f.format),
                    sanitize(&f.path)
                ));
            }
            if out.is_empty() {
                // An empty list has two causes, and the server may not say
                // which (it would tell a user what they may not see).
                eprintln!(
                    "remo: no configuration files for you on {}: either the server's remo.toml \
                     names none ([files.NAME], docs/config-files.md; remod reads it at start \
                     and on SIGHUP, `systemctl reload remod`), or your grants include no \
                     config:NAME",
                    ctx.target.server
                );
            }
            emit(false, out.as_bytes())?;
        }
        ConfigCmd::Get {
            name,
            path,
            show_version,
        } => {
            let (mut sec, mut k) = (None, None);
            if let Some(p) = path {
                let (section, key) = match parse_path(&p) {
                    (s, Some(k)) => (Some(s), Some(k)),
                    // A bare word is a section of an ini file, a key of an env file.
                    (s, None) => {
                        if !s.contains('[') && file_format(ctx, active, &name).await? == "env" {
                            (None, Some(s))
                        } else {
                            (Some(s), None)
                        }
                    }
                };
                (sec, k) = (section, key);
            }
            let d = ConfigDesc::Read {
                name,
                section: sec,
                key: k,
            };
            let r = call(ctx, active, d, None).await?;
            emit(false, &r.data)?;
            if show_version {
                let v = r.fields.version.as_deref().unwrap_or("");
                eprintln!("version {}", sanitize(v));
            }
        }
        ConfigCmd::Set {
            name,
            path,
            value,
            if_version,
        } => {
            let (section, key) = key_path(&path);
            let d = ConfigDesc::Set {
                name: name.clone(),
                section: Some(section),
                key,
                value,
                if_version,
            };
            let r = call(ctx, active, d, None).await?;
            report(&name, &r.fields);
        }
        ConfigCmd::Unset {
            name,
            path,
            if_version,
        } => {
            let (section, key) = key_path(&path);
            let d = ConfigDesc::Unset {
                name: name.clone(),
                section: Some(section),
                key,
                if_version,
            };
            let r = call(ctx, active, d, None).await?;
            report(&name, &r.fields);
        }
        ConfigCmd::AddSection {
            name,
            section,
            entries,
            if_version,
        } => {
            let mut pairs = Vec::new();
            for e in &entries {
                let (k, v) = e
                    .split_once('=')
                    .ok_or_else(|| ClientError::Usage(format!("entry {e:?} is not KEY=VALUE")))?;
                pairs.push((k.trim().to_string(), v.trim().to_string()));
            }
            let d = ConfigDesc::AddSection {
                name: name.clone(),
                section: section.clone(),
                entries: Some(pairs),
                if_version,
            };
            let r = call(ctx, active, d, None).await?;
            if let Some(i) = r.fields.index {
                eprintln!("remo: added {}[{i}]", sanitize(&section));
            }
            report(&name, &r.fields);
        }
        ConfigCmd::DeleteSection {
            name,
            section,
            if_version,
        } => {
            let d = ConfigDesc::DeleteSection {
                name: name.clone(),
                section,
                if_version,
            };
            let r = call(ctx, active, d, None).await?;
            report(&name, &r.fields);
        }
        ConfigCmd::Write {
            name,
            file,
            if_version,
        } => {
            let data = if file == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
                    .map_err(|e| ClientError::io("<stdin>", "cannot read", e))?;
                v
            } else {
                std::fs::read(&file).map_err(|e| ClientError::io(&file, "cannot read", e))?
            };
            let d = ConfigDesc::Write {
                name: name.clone(),
                if_version,
            };
            let r = call(ctx, active, d, Some(data)).await?;
            report(&name, &r.fields);
        }
        ConfigCmd::Edit { name, yes } => return edit(ctx, active, &name, yes).await,
        ConfigCmd::Backups { name } => {
            let r = call(ctx, active, ConfigDesc::Backups { name }, None).await?;
            let mut out = String::new();
            for b in r.fields.backups.unwrap_or_default() {
                out.push_str(&format!("{}\t{}\n", sanitize(&b.id), b.size));
            }
            emit(false, out.as_bytes())?;
        }
        ConfigCmd::Restore {
            name,
            backup,
            if_version,
        } => {
            let d = ConfigDesc::Restore {
                name: name.clone(),
                backup,
                if_version,
            };
            let r = call(ctx, active, d, None).await?;
            report(&name, &r.fields);
        }
        ConfigCmd::Diff { name, backup } => {
            let d = ConfigDesc::Diff {
                name,
                backup,
                candidate: None,
            };
            let r = call(ctx, active, d, None).await?;
            emit(false, &r.data)?;
        }
    }
    Ok(0)
}

/// The format of a configured file, from `list`.
async fn file_format(ctx: &Ctx, active: &mut Active, name: &str) -> Result<String, ClientError> {
    let r = call(ctx, active, ConfigDesc::List {}, None).await?;
    Ok(r.fields
        .files
        .unwrap_or_default()
        .into_iter()
        .find(|f| f.name == name)
        .map_or_else(|| "ini".to_string(), |f| f.format))
}

/// A private directory for the local copy; removed unless kept.
struct EditDir {
    dir: PathBuf,
    keep: bool,
}

impl Drop for EditDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn edit_dir() -> Result<EditDir, ClientError> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for _ in 0..16 {
        let n: u32 = rand_core::RngCore::next_u32(&mut rand_core::OsRng);
        let dir = base.join(format!("remo-edit-{n:08x}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(EditDir { dir, keep: false }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(ClientError::io(&dir, "cannot create", e)),
        }
    }
    Err(ClientError::Local(
        "cannot create a temporary directory".into(),
    ))
}

/// Runs `$VISUAL` / `$EDITOR` (default `vi`) through the shell, as git
/// does, so an editor given with arguments (`code -w`) works.
fn run_editor(file: &Path) -> Result<(), ClientError> {
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .or_else(|| {
            std::env::var("EDITOR")
                .ok()
                .filter(|e| !e.trim().is_empty())
        })
        .unwrap_or_else(|| "vi".into());
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{editor} \"$@\""))
        .arg(&editor)
        .arg(file)
        .status()
        .map_err(|e| ClientError::Local(format!("cannot run the editor {editor:?}: {e}")))?;
    if !status.success() {
        return Err(ClientError::Local(format!(
            "the editor {editor:?} failed ({status}); nothing uploaded"
        )));
    }
    Ok(())
}

fn confirm(question: &str) -> Result<bool, ClientError> {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| ClientError::io("<stdin>", "cannot read", e))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

async fn edit(ctx: &Ctx, active: &mut Active, name: &str, yes: bool) -> Result<i32, ClientError> {
    let d = ConfigDesc::Read {
        name: name.to_string(),
        section: None,
        key: None,
    };
    let r = call(ctx, active, d, None).await?;
    let version = r.fields.version.clone().unwrap_or_default();
    let mut tmp = edit_dir()?;
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let file = tmp.dir.join(safe);
    {
        let mut f = crate::client::known::open_options_private()
            .write(true)
            .create_new(true)
            .open(&file)
            .map_err(|e| ClientError::io(&file, "cannot create", e))?;
        f.write_all(&r.data)
            .map_err(|e| ClientError::io(&file, "cannot write", e))?;
    }
    let f2 = file.clone();
    tokio::task::spawn_blocking(move || run_editor(&f2))
        .await
        .map_err(|e| ClientError::Local(format!("editor task failed: {e}")))??;
    let edited = std::fs::read(&file).map_err(|e| ClientError::io(&file, "cannot read", e))?;
    if edited == r.data {
        eprintln!("remo: {name}: no changes");
        return Ok(0);
    }
    let d = diff::unified(
        &r.data,
        &edited,
        &format!("{name} (server)"),
        &format!("{name} (edited)"),
    );
    emit(false, &d)?;
    if !yes && std::io::stdin().is_terminal() && !confirm(&format!("Upload to {name}?"))? {
        tmp.keep = true;
        eprintln!("remo: not uploaded; your copy is {}", file.display());
        return Ok(1);
    }
    let desc = ConfigDesc::Write {
        name: name.to_string(),
        if_version: Some(version),
    };
    match call(ctx, active, desc, Some(edited)).await {
        Ok(r) => {
            report(name, &r.fields);
            Ok(0)
        }
        Err(ClientError::Op(e)) => {
            tmp.keep = true;
            if e.code == ErrorCode::Conflict {
                Err(ClientError::Local(format!(
                    "{name} was changed on the server while you edited it (conflict): nothing uploaded. \
                     Your copy is {}; run `remo config edit {name}` again and merge.",
                    file.display()
                )))
            } else {
                Err(ClientError::Local(format!(
                    "{e}; your copy is {}",
                    file.display()
                )))
            }
        }
        Err(e) => {
            tmp.keep = true;
            eprintln!("remo: your copy is {}", file.display());
            Err(e)
        }
    }
}
