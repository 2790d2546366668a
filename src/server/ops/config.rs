//! `config`: read and edit the configuration files named in `[files]`, by
//! section and key, with backups, validation, reload and rollback
//! (docs/config-files.md). One descriptor with an `action`:
//! `list`, `read`, `write`, `set`, `unset`, `add-section`,
//! `delete-section`, `backups`, `restore`, `diff`.
//!
//! Every modifying action takes the file's lock, checks `if_version`
//! against the current content, and goes through [`store::commit`].

use log::info;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{fields, parse_descriptor, OpCtx, OpResult};
use crate::cfgedit::{diff, Document, EditError, Format, SectionAddr};
use crate::proto::record::CHANNEL_STDERR;
use crate::proto::response::{ErrorCode, OpError};
use crate::server::cfgfiles::store::{self, CommitError, Current};
use crate::server::cfgfiles::{lock_for, FileSpec};
use crate::server::stream::{RequestReader, ResponseWriter};

/// The `config` descriptor; which fields an action accepts is checked in [`parse`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigDesc {
    /// What to do.
    pub action: String,
    /// The configured file name.
    pub name: Option<String>,
    /// Section address (`NAME`, `NAME[INDEX]`, `NAME[KEY=VALUE]`; empty: global).
    pub section: Option<String>,
    /// Key within the section.
    pub key: Option<String>,
    /// New value for `set`.
    pub value: Option<String>,
    /// Entries of a new section, in order.
    pub entries: Option<Vec<(String, String)>>,
    /// Backup id for `restore` and `diff`.
    pub backup: Option<String>,
    /// `diff`: compare the data records (the candidate) with the file.
    pub candidate: Option<bool>,
    /// Expected current version; `conflict` if the file changed.
    pub if_version: Option<String>,
}

/// What `config` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The names the user may use.
    List,
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

/// A checked `config` request.
#[derive(Debug, Clone)]
pub struct ConfigReq {
    /// The action.
    pub action: Action,
    /// The file name (empty for `list`).
    pub name: String,
    /// Expected version.
    pub if_version: Option<String>,
}

fn edit_err(e: EditError) -> OpError {
    match e {
        EditError::NotFound(m) => OpError::new(ErrorCode::NotFound, m),
        EditError::Invalid(m) => OpError::bad_request(m),
    }
}

fn section(s: Option<String>) -> Result<SectionAddr, OpError> {
    SectionAddr::parse(s.as_deref().unwrap_or("")).map_err(edit_err)
}

fn required<T>(v: Option<T>, field: &str, action: &str) -> Result<T, OpError> {
    v.ok_or_else(|| OpError::bad_request(format!("{action} needs \"{field}\"")))
}

/// Parses the descriptor; fields the action does not use are refused.
pub fn parse(d: &[u8]) -> Result<ConfigReq, OpError> {
    let mut c: ConfigDesc = parse_descriptor(d)?;
    let action_name = c.action.clone();
    let a = action_name.as_str();
    let allowed: &[&str] = match a {
        "list" => &[],
        "read" => &["name", "section", "key"],
        "write" => &["name", "if_version"],
        "set" => &["name", "section", "key", "value", "if_version"],
        "unset" => &["name", "section", "key", "if_version"],
        "add-section" => &["name", "section", "entries", "if_version"],
        "delete-section" => &["name", "section", "if_version"],
        "backups" => &["name"],
        "restore" => &["name", "backup", "if_version"],
        "diff" => &["name", "backup", "candidate"],
        other => {
            return Err(OpError::bad_request(format!(
                "unknown action {other:?} (list, read, write, set, unset, add-section, delete-section, backups, restore, diff)"
            )))
        }
    };
    let present = [
        ("name", c.name.is_some()),
        ("section", c.section.is_some()),
        ("key", c.key.is_some()),
        ("value", c.value.is_some()),
        ("entries", c.entries.is_some()),
        ("backup", c.backup.is_some()),
        ("candidate", c.candidate.is_some()),
        ("if_version", c.if_version.is_some()),
    ];
    for (f, is) in present {
        if is && !allowed.contains(&f) {
            return Err(OpError::bad_request(format!("{a} does not take \"{f}\"")));
        }
    }
    let name = if a == "list" {
        String::new()
    } else {
        required(c.name.take(), "name", a)?
    };
    let action = match a {
        "list" => Action::List,
        "read" => {
            if c.key.is_some() && c.section.is_none() {
                c.section = Some(String::new());
            }
            Action::Read {
                section: match c.section {
                    Some(s) => Some(section(Some(s))?),
                    None => None,
                },
                key: c.key,
            }
        }
        "write" => Action::Write,
        "set" => Action::Set {
            section: section(c.section)?,
            key: required(c.key, "key", a)?,
            value: required(c.value, "value", a)?,
        },
        "unset" => Action::Unset {
            section: section(c.section)?,
            key: required(c.key, "key", a)?,
        },
        "add-section" => Action::AddSection {
            name: required(c.section, "section", a)?,
            entries: c.entries.unwrap_or_default(),
        },
        "delete-section" => {
            Action::DeleteSection(section(Some(required(c.section, "section", a)?))?)
        }
        "backups" => Action::Backups,
        "restore" => Action::Restore(required(c.backup, "backup", a)?),
        _ => {
            let candidate = c.candidate.unwrap_or(false);
            if candidate && c.backup.is_some() {
                return Err(OpError::bad_request(
                    "diff takes \"backup\" or \"candidate\", not both",
                ));
            }
            Action::Diff {
                backup: c.backup,
                candidate,
            }
        }
    };
    Ok(ConfigReq {
        action,
        name,
        if_version: c.if_version,
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

/// Runs the action.
pub async fn apply(
    ctx: &OpCtx,
    req: ConfigReq,
    input: &mut RequestReader,
    out: &mut ResponseWriter,
) -> OpResult {
    let grants = ctx.session.grants();
    if req.action == Action::List {
        read_data(ctx, input, 0).await?;
        let files: Vec<Value> = ctx
            .inst
            .files
            .iter()
            .filter(|(n, _)| grants.allow_config(n))
            .map(|(n, s)| {
                json!({"name": n, "format": s.format.as_str(),
                       "path": s.path.to_string_lossy(),
                       "backup": s.backup, "validate": s.validate.is_some(),
                       "reload": s.reload.is_some()})
            })
            .collect();
        return Ok(fields([("files", Value::from(files))]));
    }
    let name = req.name.as_str();
    let Some(spec) = ctx.inst.files.get(name) else {
        read_data(ctx, input, 0).await.ok();
        return Err(OpError::new(
            ErrorCode::NotFound,
            format!("no configuration file named {name:?}"),
        ));
    };
    if !grants.allow_config(name) {
        read_data(ctx, input, 0).await.ok();
        return Err(OpError::new(
            ErrorCode::Forbidden,
            format!("no permission config:{name}"),
        ));
    }
    let takes_data = matches!(req.action, Action::Write)
        || matches!(
            req.action,
            Action::Diff {
                candidate: true,
                ..
            }
        );
    let data = read_data(ctx, input, if takes_data { spec.max_size } else { 0 }).await?;
    let modifies = !matches!(
        req.action,
        Action::Read { .. } | Action::Backups | Action::Diff { .. }
    );
    if modifies
        && spec.format == Format::Raw
        && !matches!(req.action, Action::Write | Action::Restore(_))
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
    if let Some(v) = &req.if_version {
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
    let mut extra = Map::new();
    let new = match req.action {
        Action::List => return Ok(Map::new()),
        Action::Read { section, key } => {
            let content = cur.content.as_deref().ok_or_else(|| {
                OpError::new(
                    ErrorCode::NotFound,
                    format!("{name}: the file does not exist"),
                )
            })?;
            let body = match (section, key) {
                (None, _) => content.to_vec(),
                (Some(s), None) => doc(spec, &cur, name)?.section_bytes(&s).map_err(edit_err)?,
                (Some(s), Some(k)) => {
                    let mut b = Vec::new();
                    for v in doc(spec, &cur, name)?.get(&s, &k).map_err(edit_err)? {
                        b.extend_from_slice(&v);
                        b.push(b'\n');
                    }
                    b
                }
            };
            send(out, crate::proto::record::CHANNEL_STDOUT, &body).await?;
            return Ok(fields([
                ("version", Value::from(cur.version)),
                ("size", Value::from(content.len())),
                ("format", Value::from(spec.format.as_str())),
            ]));
        }
        Action::Backups => {
            let list: Vec<Value> = store::list_backups(spec, &cur.loc, name)
                .await?
                .into_iter()
                .map(|b| json!({"id": b.id, "size": b.size, "mtime": b.mtime}))
                .collect();
            return Ok(fields([
                ("backups", Value::from(list)),
                ("version", Value::from(cur.version)),
            ]));
        }
        Action::Diff { backup, candidate } => {
            let current = cur.content.clone().unwrap_or_default();
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
                    None => store::list_backups(spec, &cur.loc, name)
                        .await?
                        .into_iter()
                        .next()
                        .map(|b| b.id)
                        .ok_or_else(|| {
                            OpError::new(ErrorCode::NotFound, format!("{name} has no backups"))
                        })?,
                };
                let old = store::read_backup(spec, &cur.loc, name, &id).await?;
                extra.insert("backup".into(), Value::from(id.clone()));
                (
                    old,
                    current,
                    format!("{name} (backup {id})"),
                    format!("{name} (current)"),
                )
            };
            let d = diff::unified(&old, &new, &ol, &nl);
            send(out, crate::proto::record::CHANNEL_STDOUT, &d).await?;
            extra.insert("version".into(), Value::from(cur.version));
            extra.insert("changed".into(), Value::from(!d.is_empty()));
            return Ok(extra);
        }
        Action::Write => data,
        Action::Restore(id) => {
            let b = store::read_backup(spec, &cur.loc, name, &id).await?;
            extra.insert("restored".into(), Value::from(id));
            b
        }
        Action::Set {
            section,
            key,
            value,
        } => {
            let mut d = doc(spec, &cur, name)?;
            d.set(&section, &key, &value).map_err(edit_err)?;
            d.to_bytes()
        }
        Action::Unset { section, key } => {
            let mut d = doc(spec, &cur, name)?;
            let n = d.unset(&section, &key).map_err(edit_err)?;
            extra.insert("removed".into(), Value::from(n));
            d.to_bytes()
        }
        Action::AddSection {
            name: sname,
            entries,
        } => {
            let mut d = doc(spec, &cur, name)?;
            let i = d.add_section(&sname, &entries).map_err(edit_err)?;
            extra.insert("index".into(), Value::from(i));
            d.to_bytes()
        }
        Action::DeleteSection(s) => {
            let mut d = doc(spec, &cur, name)?;
            d.delete_section(&s).map_err(edit_err)?;
            d.to_bytes()
        }
    };
    if new.len() as u64 > spec.max_size {
        return Err(OpError::new(
            ErrorCode::TooLarge,
            "result larger than max_size",
        ));
    }
    match store::commit(spec, name, &cur, new, &ctx.inst.pending).await {
        Ok(c) => {
            if c.changed {
                info!(
                    "config: {} changed {name} (backup {})",
                    ctx.session.user,
                    c.backup.as_deref().unwrap_or("-")
                );
            }
            extra.insert("version".into(), Value::from(c.version));
            extra.insert("changed".into(), Value::from(c.changed));
            extra.insert("backup".into(), c.backup.map_or(Value::Null, Value::from));
            extra.insert("reloaded".into(), Value::from(c.reloaded));
            Ok(extra)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: Value) -> Result<ConfigReq, OpError> {
        parse(v.to_string().as_bytes())
    }

    #[test]
    fn descriptor_checks() {
        assert_eq!(p(json!({"action": "list"})).unwrap().action, Action::List);
        let r = p(
            json!({"action": "set", "name": "wg0", "section": "Peer[PublicKey=x]",
                         "key": "AllowedIPs", "value": "10.0.0.3/32", "if_version": "v"}),
        )
        .unwrap();
        assert_eq!(r.if_version.as_deref(), Some("v"));
        assert!(matches!(r.action, Action::Set { .. }));
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
            p(json!({"action": "read", "name": "a", "key": "K"}))
                .unwrap()
                .action,
            Action::Read {
                section: Some(SectionAddr::global()),
                key: Some("K".into())
            }
        );
    }
}
