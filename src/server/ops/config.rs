//! `config`: read and edit the configuration files named in `[files]`, by
//! section and key, with backups, validation, reload and rollback
//! (docs/config-files.md). One descriptor with an `action`:
//! `list`, `read`, `write`, `set`, `unset`, `add-section`,
//! `delete-section`, `backups`, `restore`, `diff`.
//!
//! Every modifying action takes the file's lock, checks `if_version`
//! against the current content, and goes through [`store::commit`].

use log::info;

use super::OpCtx;
use crate::cfgedit::{diff, Document, EditError, Format, SectionAddr};
pub(crate) use crate::ops::config::{BackupInfo, ConfigDesc, ConfigResult, FileInfo};
use crate::proto::record::CHANNEL_STDERR;
use crate::proto::response::{ErrorCode, OpError};
use crate::server::core::stream::{RequestReader, ResponseWriter};
use crate::server::store::cfgfiles::store::{self, CommitError, Current};
use crate::server::store::cfgfiles::{lock_for, FileSpec};

/// What `config` does to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Whole file, a section, or a key's values.
    Read {
        /// Section, if not the whole file.
        section: Option<SectionAddr>,
        /// Key within the section.
        key: Option<String>,
    },
    /// Replace the whole content with the data records.
    Write,
    /// Set a key.
    Set {
        /// Section.
        section: SectionAddr,
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// Remove a key.
    Unset {
        /// Section.
        section: SectionAddr,
        /// Key.
        key: String,
    },
    /// Append a section.
    AddSection {
        /// Its name.
        name: String,
        /// Its entries.
        entries: Vec<(String, String)>,
    },
    /// Delete a section.
    DeleteSection(SectionAddr),
    /// List backups.
    Backups,
    /// Put a backup back.
    Restore(String),
    /// Diff a backup (default the newest) or the candidate against the file.
    Diff {
        /// Backup id.
        backup: Option<String>,
        /// Compare the data records instead.
        candidate: bool,
    },
}

impl Action {
    /// It changes the file (takes the file's lock, goes through commit).
    fn modifies(&self) -> bool {
        !matches!(
            self,
            Action::Read { .. } | Action::Backups | Action::Diff { .. }
        )
    }

    /// It reads data records (the new content, or the candidate to diff).
    fn takes_data(&self) -> bool {
        matches!(
            self,
            Action::Write
                | Action::Diff {
                    candidate: true,
                    ..
                }
        )
    }
}

/// A checked `config` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConfigReq {
    /// The names the user may use.
    List,
    /// An action on one file.
    File {
        /// The file's configured name.
        name: String,
        /// What to do.
        action: Action,
        /// Expected version.
        if_version: Option<String>,
    },
}

fn edit_err(e: EditError) -> OpError {
    match e {
        EditError::NotFound(m) => OpError::new(ErrorCode::NotFound, m),
        EditError::Invalid(m) => OpError::bad_request(m),
    }
}

fn parse_section(s: &str) -> Result<SectionAddr, OpError> {
    SectionAddr::parse(s).map_err(edit_err)
}

/// Checks the descriptor (its shape per action is [`ConfigDesc`]'s).
pub(crate) fn check(d: ConfigDesc) -> Result<ConfigReq, OpError> {
    let file = |name, action, if_version| ConfigReq::File {
        name,
        action,
        if_version,
    };
    Ok(match d {
        ConfigDesc::List {} => ConfigReq::List,
        ConfigDesc::Read { name, section, key } => {
            // A key without a section is the global section's.
            let section = match (section, &key) {
                (None, Some(_)) => Some(SectionAddr::global()),
                (s, _) => s.map(|s| parse_section(&s)).transpose()?,
            };
            file(name, Action::Read { section, key }, None)
        }
        ConfigDesc::Write { name, if_version } => file(name, Action::Write, if_version),
        ConfigDesc::Set {
            name,
            section,
            key,
            value,
            if_version,
        } => file(
            name,
            Action::Set {
                section: parse_section(section.as_deref().unwrap_or(""))?,
                key,
                value,
            },
            if_version,
        ),
        ConfigDesc::Unset {
            name,
            section,
            key,
            if_version,
        } => file(
            name,
            Action::Unset {
                section: parse_section(section.as_deref().unwrap_or(""))?,
                key,
            },
            if_version,
        ),
        ConfigDesc::AddSection {
            name,
            section,
            entries,
            if_version,
        } => file(
            name,
            Action::AddSection {
                name: section,
                entries: entries.unwrap_or_default(),
            },
            if_version,
        ),
        ConfigDesc::DeleteSection {
            name,
            section,
            if_version,
        } => file(
            name,
            Action::DeleteSection(parse_section(&section)?),
            if_version,
        ),
        ConfigDesc::Backups { name } => file(name, Action::Backups, None),
        ConfigDesc::Restore {
            name,
            backup,
            if_version,
        } => file(name, Action::Restore(backup), if_version),
        ConfigDesc::Diff {
            name,
            backup,
            candidate,
        } => {
            let candidate = candidate.unwrap_or(false);
            if candidate && backup.is_some() {
                return Err(OpError::bad_request(
                    "diff takes \"backup\" or \"candidate\", not both",
                ));
            }
            file(name, Action::Diff { backup, candidate }, None)
        }
    })
}

/// Reads the data records, at most `max` bytes in all.
async fn read_data(ctx: &OpCtx, input: &mut RequestReader, max: u64) -> Result<Vec<u8>, OpError> {
    let mut out = Vec::new();
    let cancel = ctx.session.cancel.clone();
    loop {
        let next = tokio::select! {
            n = input.next_data() => n,
            _ = cancel.cancelled() => return Err(OpError::new(ErrorCode::Unavailable, "session ended")),
        };
        let Some(chunk) = next.map_err(|e| e.to_op_error())? else {
            return Ok(out);
        };
        if (out.len() + chunk.len()) as u64 > max {
            // Keep reading so the message is still checked, but keep nothing.
            input.drain().await?;
            return Err(OpError::new(
                ErrorCode::TooLarge,
                format!("content larger than max_size ({max} bytes)"),
            ));
        }
        out.extend_from_slice(&chunk);
        ctx.session.touch();
    }
}

async fn send(out: &mut ResponseWriter, channel: u8, data: &[u8]) -> Result<(), OpError> {
    out.send(channel, data)
        .await
        .map_err(|_| OpError::new(ErrorCode::Unavailable, "client went away"))
}

fn doc(spec: &FileSpec, cur: &Current, name: &str) -> Result<Document, OpError> {
    let content = cur.content.as_deref().ok_or_else(|| {
        OpError::new(
            ErrorCode::NotFound,
            format!("{name}: the file does not exist"),
        )
    })?;
    Ok(Document::parse(content, spec.format))
}

/// Runs the request.
pub(crate) async fn apply(
    ctx: &OpCtx,
    req: ConfigReq,
    input: &mut RequestReader,
    out: &mut ResponseWriter,
) -> Result<ConfigResult, OpError> {
    match req {
        ConfigReq::List => list(ctx, input).await,
        ConfigReq::File {
            name,
            action,
            if_version,
        } => on_file(ctx, &name, action, if_version, input, out).await,
    }
}

/// `list`: the files the user may use.
async fn list(ctx: &OpCtx, input: &mut RequestReader) -> Result<ConfigResult, OpError> {
    read_data(ctx, input, 0).await?;
    let grants = ctx.session.grants();
    let files = ctx
        .inst
        .files
        .iter()
        .filter(|(n, _)| grants.allow_config(n))
        .map(|(n, s)| FileInfo {
            name: n.clone(),
            format: s.format.as_str().to_string(),
            path: s.path.to_string_lossy().into_owned(),
            backup: s.backup,
            validate: s.validate.is_some(),
            reload: s.reload.is_some(),
        })
        .collect();
    Ok(ConfigResult {
        files: Some(files),
        ..Default::default()
    })
}

/// An action on the file `name`: permission, data, the file's lock for a
/// change, `if_version`, then the action.
async fn on_file(
    ctx: &OpCtx,
    name: &str,
    action: Action,
    if_version: Option<String>,
    input: &mut RequestReader,
    out: &mut ResponseWriter,
) -> Result<ConfigResult, OpError> {
    let Some(spec) = ctx.inst.files.get(name) else {
        read_data(ctx, input, 0).await.ok();
        return Err(OpError::new(
            ErrorCode::NotFound,
            format!("no configuration file named {name:?}"),
        ));
    };
    if !ctx.session.grants().allow_config(name) {
        read_data(ctx, input, 0).await.ok();
        return Err(OpError::new(
            ErrorCode::Forbidden,
            format!("no permission config:{name}"),
        ));
    }
    let max = if action.takes_data() {
        spec.max_size
    } else {
        0
    };
    let data = read_data(ctx, input, max).await?;
    let modifies = action.modifies();
    if modifies
        && spec.format == Format::Raw
        && !matches!(action, Action::Write | Action::Restore(_))
    {
        return Err(OpError::bad_request(format!(
            "{name} is a raw file: only read, write, backups, restore and diff"
        )));
    }
    // Modifications are serialised per file (keyed on its directory's
    // identity and its name, whatever name the configuration uses); reads
    // see either the old or the new file (the replace is a rename).
    let loc = store::locate(spec).await?;
    let lock = lock_for(&loc.lock_key());
    let _guard = if modifies {
        Some(lock.lock().await)
    } else {
        None
    };
    let cur = store::read_current(spec, loc).await?;
    if let Some(v) = &if_version {
        if *v != cur.version {
            return Err(OpError::new(
                ErrorCode::Conflict,
                format!(
                    "{name} changed: its version is now {}, not {v}",
                    cur.version
                ),
            ));
        }
    }
    let f = File { spec, name, cur };
    let (new, noted) = match action {
        Action::Read { section, key } => return f.read(section, key, out).await,
        Action::Backups => return f.backups().await,
        Action::Diff { backup, candidate } => return f.diff(backup, candidate, data, out).await,
        Action::Write => (data, ConfigResult::default()),
        Action::Restore(id) => f.restore(id).await?,
        Action::Set {
            section,
            key,
            value,
        } => f.set(&section, &key, &value)?,
        Action::Unset { section, key } => f.unset(&section, &key)?,
        Action::AddSection { name, entries } => f.add_section(&name, &entries)?,
        Action::DeleteSection(s) => f.delete_section(&s)?,
    };
    f.change(ctx, new, noted, out).await
}

/// The file an action works on, as read under its lock.
struct File<'a> {
    spec: &'a FileSpec,
    name: &'a str,
    cur: Current,
}

impl File<'_> {
    fn doc(&self) -> Result<Document, OpError> {
        doc(self.spec, &self.cur, self.name)
    }

    /// `read`: the whole file, a section or a key's values, on stdout.
    async fn read(
        &self,
        section: Option<SectionAddr>,
        key: Option<String>,
        out: &mut ResponseWriter,
    ) -> Result<ConfigResult, OpError> {
        let name = self.name;
        let content = self.cur.content.as_deref().ok_or_else(|| {
            OpError::new(
                ErrorCode::NotFound,
                format!("{name}: the file does not exist"),
            )
        })?;
        let body = match (section, key) {
            (None, _) => content.to_vec(),
            (Some(s), None) => self.doc()?.section_bytes(&s).map_err(edit_err)?,
            (Some(s), Some(k)) => {
                let mut b = Vec::new();
                for v in self.doc()?.get(&s, &k).map_err(edit_err)? {
                    b.extend_from_slice(&v);
                    b.push(b'\n');
                }
                b
            }
        };
        send(out, crate::proto::record::CHANNEL_STDOUT, &body).await?;
        Ok(ConfigResult {
            version: Some(self.cur.version.clone()),
            size: Some(content.len() as u64),
            format: Some(self.spec.format.as_str().to_string()),
            ..Default::default()
        })
    }

    /// `backups`: the backups, newest first.
    async fn backups(&self) -> Result<ConfigResult, OpError> {
        let list = store::list_backups(self.spec, &self.cur.loc, self.name)
            .await?
            .into_iter()
            .map(|b| BackupInfo {
                id: b.id,
                size: b.size,
                mtime: b.mtime,
            })
            .collect();
        Ok(ConfigResult {
            backups: Some(list),
            version: Some(self.cur.version.clone()),
            ..Default::default()
        })
    }

    /// `diff`: a backup (default the newest) or the candidate against the
    /// file, on stdout.
    async fn diff(
        &self,
        backup: Option<String>,
        candidate: bool,
        data: Vec<u8>,
        out: &mut ResponseWriter,
    ) -> Result<ConfigResult, OpError> {
        let name = self.name;
        let current = self.cur.content.clone().unwrap_or_default();
        let mut res = ConfigResult::default();
        let (old, new, ol, nl) = if candidate {
            (
                current,
                data,
                format!("{name} (current)"),
                format!("{name} (candidate)"),
            )
        } else {
            let id = match backup {
                Some(id) => id,
                None => store::list_backups(self.spec, &self.cur.loc, name)
                    .await?
                    .into_iter()
                    .next()
                    .map(|b| b.id)
                    .ok_or_else(|| {
                        OpError::new(ErrorCode::NotFound, format!("{name} has no backups"))
                    })?,
            };
            let old = store::read_backup(self.spec, &self.cur.loc, name, &id).await?;
            res.backup = Some(Some(id.clone()));
            (
                old,
                current,
                format!("{name} (backup {id})"),
                format!("{name} (current)"),
            )
        };
        let d = diff::unified(&old, &new, &ol, &nl);
        send(out, crate::proto::record::CHANNEL_STDOUT, &d).await?;
        res.version = Some(self.cur.version.clone());
        res.changed = Some(!d.is_empty());
        Ok(res)
    }

    /// `restore`: a backup's content.
    async fn restore(&self, id: String) -> Result<(Vec<u8>, ConfigResult), OpError> {
        let b = store::read_backup(self.spec, &self.cur.loc, self.name, &id).await?;
        Ok((
            b,
            ConfigResult {
                restored: Some(id),
                ..Default::default()
            },
        ))
    }

    /// `set`: the content with the key set.
    fn set(
        &self,
        section: &SectionAddr,
        key: &str,
        value: &str,
    ) -> Result<(Vec<u8>, ConfigResult), OpError> {
        let mut d = self.doc()?;
        d.set(section, key, value).map_err(edit_err)?;
        Ok((d.to_bytes(), ConfigResult::default()))
    }

    /// `unset`: the content without the key.
    fn unset(&self, section: &SectionAddr, key: &str) -> Result<(Vec<u8>, ConfigResult), OpError> {
        let mut d = self.doc()?;
        let n = d.unset(section, key).map_err(edit_err)?;
        Ok((
            d.to_bytes(),
            ConfigResult {
                removed: Some(n as u64),
                ..Default::default()
            },
        ))
    }

    /// `add-section`: the content with a new section at the end.
    fn add_section(
        &self,
        sname: &str,
        entries: &[(String, String)],
    ) -> Result<(Vec<u8>, ConfigResult), OpError> {
        let mut d = self.doc()?;
        let i = d.add_section(sname, entries).map_err(edit_err)?;
        Ok((
            d.to_bytes(),
            ConfigResult {
                index: Some(i as u64),
                ..Default::default()
            },
        ))
    }

    /// `delete-section`: the content without the section.
    fn delete_section(&self, s: &SectionAddr) -> Result<(Vec<u8>, ConfigResult), OpError> {
        let mut d = self.doc()?;
        d.delete_section(s).map_err(edit_err)?;
        Ok((d.to_bytes(), ConfigResult::default()))
    }

    /// Puts `new` in place through [`store::commit`] (validate, back up,
    /// replace, reload, roll back), adding what happened to `res`.
    async fn change(
        &self,
        ctx: &OpCtx,
        new: Vec<u8>,
        mut res: ConfigResult,
        out: &mut ResponseWriter,
    ) -> Result<ConfigResult, OpError> {
        let (spec, name) = (self.spec, self.name);
        if new.len() as u64 > spec.max_size {
            return Err(OpError::new(
                ErrorCode::TooLarge,
                "result larger than max_size",
            ));
        }
        match store::commit(spec, name, &self.cur, new, &ctx.inst.pending).await {
            Ok(c) => {
                if c.changed {
                    info!(
                        "config: {} changed {name} (backup {})",
                        ctx.session.user,
                        c.backup.as_deref().unwrap_or("-")
                    );
                }
                res.version = Some(c.version);
                res.changed = Some(c.changed);
                res.backup = Some(c.backup);
                res.reloaded = Some(c.reloaded);
                Ok(res)
            }
            Err(CommitError::Op(e)) => Err(e),
            Err(CommitError::Invalid(run)) => {
                send(out, CHANNEL_STDERR, &run.output).await?;
                info!(
                    "config: {} change to {name} refused by the validator",
                    ctx.session.user
                );
                Err(OpError::bad_request(format!(
                    "validation failed ({}); nothing changed",
                    run.status
                )))
            }
            Err(CommitError::Reload {
                run,
                restored,
                again,
            }) => {
                send(out, CHANNEL_STDERR, &run.output).await?;
                if let Some(a) = &again {
                    send(out, CHANNEL_STDERR, &a.output).await?;
                }
                let what = match (&restored, &again) {
                    (Err(e), _) => format!("restoring the previous content FAILED ({e})"),
                    (Ok(()), Some(a)) if a.ok => {
                        "the previous content was restored and reloaded".to_string()
                    }
                    (Ok(()), Some(a)) => format!(
                        "the previous content was restored, but reloading it failed too ({})",
                        a.status
                    ),
                    (Ok(()), None) => "the previous content was restored".to_string(),
                };
                info!(
                    "config: reload after {} changed {name} failed; {what}",
                    ctx.session.user
                );
                Err(OpError::new(
                    ErrorCode::Unavailable,
                    format!("reload failed ({}); {what}", run.status),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::{json, Value};

    fn p(v: Value) -> Result<ConfigReq, OpError> {
        check(super::super::parse_descriptor(v.to_string().as_bytes())?)
    }

    fn action(r: ConfigReq) -> Action {
        match r {
            ConfigReq::File { action, .. } => action,
            ConfigReq::List => panic!("list"),
        }
    }

    #[test]
    fn descriptor_checks() {
        assert_eq!(p(json!({"action": "list"})).unwrap(), ConfigReq::List);
        let r = p(
            json!({"action": "set", "name": "wg0", "section": "Peer[PublicKey=x]",
                         "key": "AllowedIPs", "value": "10.0.0.3/32", "if_version": "v"}),
        )
        .unwrap();
        assert!(matches!(
            &r,
            ConfigReq::File { if_version: Some(v), action: Action::Set { .. }, .. } if v == "v"
        ));
        for bad in [
            json!({"action": "nope", "name": "a"}),
            json!({"action": "read"}),
            json!({"action": "read", "name": "a", "value": "x"}),
            json!({"action": "set", "name": "a", "key": "k"}),
            json!({"action": "list", "name": "a"}),
            json!({"action": "diff", "name": "a", "backup": "1", "candidate": true}),
            json!({"action": "read", "name": "a", "section": "P["}),
            json!({"action": "read", "name": "a", "bogus": 1}),
        ] {
            assert!(p(bad.clone()).is_err(), "{bad}");
        }
        assert_eq!(
            action(p(json!({"action": "read", "name": "a", "key": "K"})).unwrap()),
            Action::Read {
                section: Some(SectionAddr::global()),
                key: Some("K".into())
            }
        );
    }
}
