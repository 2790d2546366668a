//! `admin`: users, sessions and the audit log, for the `admin` grant only
//! (checked here, before anything is read or changed; every action is
//! audited by the router like any operation).
//!
//! It reuses what the daemon's own tools do: `disable` is `remod user
//! disable` applied at once (the session table and staged uploads, as the
//! revocation watcher does), `sessions` and `end` are `remod status` and
//! `remod session end` ([`crate::server::control`]), `audit` reads the
//! instance's audit database. Sessions are named by tag only: no session
//! id or key leaves the server. Every answer is bounded by `[limits]
//! admin_page_max` rows and by what fits one response record.

use std::sync::Arc;

use super::OpCtx;
use crate::audit::{page, session_tag, AuditRecord, PageFilter};
use crate::proto::identity::valid_user_name;
use crate::proto::record::MAX_PLAINTEXT;
use crate::proto::response::{ErrorCode, OpError};
use crate::server::control::{end_sessions, sessions_of};
use crate::server::core::instance::Instance;
use crate::server::core::stream::RequestReader;
use crate::userdb::DbError;

pub(crate) use crate::ops::admin::{AdminDesc, AdminResult, AuditRow, UserInfo};

/// Bytes of rows one answer may hold: one response record, less room for
/// the other fields and the JSON around them.
const ROW_BUDGET: usize = MAX_PLAINTEXT - 4096;

/// Longest filter or cursor string taken (user names are at most 64).
const MAX_FILTER: usize = 256;

fn forbidden() -> OpError {
    OpError::new(
        ErrorCode::Forbidden,
        "the admin operation needs the admin grant",
    )
}

fn filter(what: &str, v: &Option<String>) -> Result<(), OpError> {
    match v {
        Some(s) if s.is_empty() || s.len() > MAX_FILTER || s.contains('\0') => Err(
            OpError::bad_request(format!("{what}: 1-{MAX_FILTER} bytes, no NUL")),
        ),
        _ => Ok(()),
    }
}

fn user_name(name: &str) -> Result<(), OpError> {
    if valid_user_name(name) {
        Ok(())
    } else {
        Err(OpError::bad_request(
            "name: 1-64 characters of A-Z a-z 0-9 . _ -",
        ))
    }
}

/// Checks the descriptor's shape (the grant is checked in [`apply`]).
pub(crate) fn check(d: AdminDesc) -> Result<AdminDesc, OpError> {
    match &d {
        AdminDesc::Users { after, limit } => {
            filter("after", after)?;
            check_limit(*limit)?;
        }
        AdminDesc::Disable { name } | AdminDesc::Enable { name } => user_name(name)?,
        AdminDesc::Sessions { user } => filter("user", user)?,
        AdminDesc::End { id } => filter("id", &Some(id.clone()))?,
        AdminDesc::Audit {
            user,
            op,
            outcome,
            limit,
            ..
        } => {
            filter("user", user)?;
            filter("op", op)?;
            filter("outcome", outcome)?;
            check_limit(*limit)?;
        }
    }
    Ok(d)
}

fn check_limit(limit: Option<u32>) -> Result<(), OpError> {
    if limit == Some(0) {
        return Err(OpError::bad_request("limit must be at least 1"));
    }
    Ok(())
}

/// The page size: asked for, capped at `[limits] admin_page_max`.
fn page_size(inst: &Instance, asked: Option<u32>) -> usize {
    let max = inst.limits.admin_page_max;
    asked.map_or(max, |n| (n as usize).min(max))
}

/// Serialized size of one row (and its comma).
fn json_len<T: serde::Serialize>(v: &T) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len() + 1)
}

fn internal(e: impl std::fmt::Display) -> OpError {
    OpError::new(ErrorCode::Internal, format!("admin: {e}"))
}

fn db_error(e: DbError) -> OpError {
    match e {
        DbError::NoSuchUser(_) => OpError::new(ErrorCode::NotFound, e.to_string()),
        e => internal(e),
    }
}

/// Runs blocking work (SQLite) off the async workers.
async fn blocking<T: Send + 'static>(
    inst: &Arc<Instance>,
    f: impl FnOnce(&Instance) -> Result<T, OpError> + Send + 'static,
) -> Result<T, OpError> {
    let inst = inst.clone();
    tokio::task::spawn_blocking(move || f(&inst))
        .await
        .map_err(internal)?
}

/// Applies an action, for admins only.
pub(crate) async fn apply(
    ctx: &OpCtx,
    d: AdminDesc,
    input: &mut RequestReader,
) -> Result<AdminResult, OpError> {
    input.drain().await?;
    if !ctx.session.grants().is_admin() {
        return Err(forbidden());
    }
    let inst = &ctx.inst;
    match d {
        AdminDesc::Users { after, limit } => {
            let n = page_size(inst, limit);
            blocking(inst, move |i| users(i, after.as_deref(), n)).await
        }
        AdminDesc::Disable { name } => {
            // Not oneself: the last admin would lock everyone out, and a
            // session cannot outlive its user anyway.
            if name == ctx.session.user {
                return Err(OpError::bad_request(
                    "you cannot disable your own account (ask another admin, or remod user disable)",
                ));
            }
            let n = name.clone();
            let ended = blocking(inst, move |i| {
                i.set_user_enabled(&n, false).map_err(db_error)
            })
            .await?;
            log::warn!("admin {}: disabled {name}", ctx.session.user);
            Ok(AdminResult {
                name: Some(name),
                ended: Some(ended as u64),
                ..Default::default()
            })
        }
        AdminDesc::Enable { name } => {
            let n = name.clone();
            blocking(inst, move |i| {
                i.set_user_enabled(&n, true).map_err(db_error)
            })
            .await?;
            log::warn!("admin {}: enabled {name}", ctx.session.user);
            Ok(AdminResult {
                name: Some(name),
                ..Default::default()
            })
        }
        AdminDesc::Sessions { user } => Ok(sessions(ctx, user.as_deref())),
        AdminDesc::End { id } => {
            let ended = end_sessions(inst, |tag, _| tag == id);
            if ended == 0 {
                return Err(OpError::new(ErrorCode::NotFound, "no such live session"));
            }
            log::warn!("admin {}: ended session {id}", ctx.session.user);
            Ok(AdminResult {
                ended: Some(ended as u64),
                ..Default::default()
            })
        }
        AdminDesc::Audit {
            user,
            op,
            outcome,
            since,
            until,
            before,
            limit,
        } => {
            let f = PageFilter {
                user,
                op,
                outcome,
                since,
                until,
                before,
                limit: u32::try_from(page_size(inst, limit)).unwrap_or(u32::MAX),
            };
            blocking(inst, move |i| audit(i, &f)).await
        }
    }
}

/// A page of users with their grants and live-session counts.
fn users(inst: &Instance, after: Option<&str>, n: usize) -> Result<AdminResult, OpError> {
    let list = inst
        .users_page(after, n.saturating_add(1))
        .map_err(db_error)?;
    let mut more = list.len() > n;
    let live = inst.sessions.all();
    let mut out: Vec<UserInfo> = Vec::new();
    let mut used = 0;
    for u in list.into_iter().take(n) {
        let mut info = UserInfo {
            sessions: live.iter().filter(|s| s.user == u.name).count() as u64,
            name: u.name,
            enabled: u.enabled,
            created: u.created,
            grants: u.permissions,
            grants_truncated: false,
        };
        let mut size = json_len(&info);
        if used + size > ROW_BUDGET {
            if !out.is_empty() {
                more = true;
                break;
            }
            // One user whose grants alone fill a record: the first ones.
            while size > ROW_BUDGET && info.grants.pop().is_some() {
                info.grants_truncated = true;
                size = json_len(&info);
            }
        }
        used += size;
        out.push(info);
    }
    Ok(AdminResult {
        next: if more {
            out.last().map(|u| u.name.clone())
        } else {
            None
        },
        users: Some(out),
        ..Default::default()
    })
}

/// The live sessions (oldest first) and processes, of one user or all.
fn sessions(ctx: &OpCtx, user: Option<&str>) -> AdminResult {
    let (mut s, mut p) = sessions_of(&ctx.inst);
    if let Some(u) = user {
        s.retain(|s| s.user == u);
        p.retain(|p| p.user == u);
    }
    let (total_s, total_p) = (s.len() as u64, p.len() as u64);
    let mine = session_tag(&ctx.session.id);
    let max = ctx.inst.limits.admin_page_max;
    let mut used = 0;
    let mut truncated = false;
    let mut keep = |size: usize, count: usize| {
        let fits = count < max && used + size <= ROW_BUDGET;
        if fits {
            used += size;
        } else {
            truncated = true;
        }
        fits
    };
    let mut sessions = Vec::new();
    for mut x in s {
        x.yours = x.id == mine;
        if !keep(json_len(&x), sessions.len()) {
            break;
        }
        sessions.push(x);
    }
    let mut processes = Vec::new();
    for x in p {
        if !keep(json_len(&x), processes.len()) {
            break;
        }
        processes.push(x);
    }
    AdminResult {
        sessions: Some(sessions),
        processes: Some(processes),
        total_sessions: Some(total_s),
        total_processes: Some(total_p),
        truncated: Some(truncated),
        ..Default::default()
    }
}

/// A page of the audit log, newest first (the rows queued so far written
/// first, so the caller's own earlier actions are there).
fn audit(inst: &Instance, f: &PageFilter) -> Result<AdminResult, OpError> {
    inst.audit.flush();
    let (list, mut more) = page(inst.audit.path(), f).map_err(internal)?;
    let mut rows: Vec<AuditRow> = Vec::new();
    let mut used = 0;
    for (id, r) in list {
        let row = row(id, r);
        let size = json_len(&row);
        if used + size > ROW_BUDGET {
            more = true;
            break;
        }
        used += size;
        rows.push(row);
    }
    Ok(AdminResult {
        next_before: if more {
            rows.last().map(|r| r.id)
        } else {
            None
        },
        rows: Some(rows),
        ..Default::default()
    })
}

fn row(id: i64, r: AuditRecord) -> AuditRow {
    AuditRow {
        id,
        time_ms: r.time_ms,
        user: r.user,
        remote: r.remote,
        session: r.session,
        op: r.op,
        summary: r.summary,
        outcome: r.outcome,
        exit: r.exit,
        bytes_in: r.bytes_in,
        bytes_out: r.bytes_out,
        duration_ms: r.duration_ms,
        cert: r.cert,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_checked() {
        let ok = |j: &str| check(serde_json::from_str(j).unwrap()).is_ok();
        assert!(ok(r#"{"action":"users"}"#));
        assert!(ok(r#"{"action":"disable","name":"bob"}"#));
        assert!(!ok(r#"{"action":"disable","name":"bob smith"}"#));
        assert!(!ok(r#"{"action":"enable","name":""}"#));
        assert!(!ok(r#"{"action":"users","limit":0}"#));
        assert!(!ok(r#"{"action":"audit","user":""}"#));
        assert!(!ok(r#"{"action":"end","id":"a\u0000"}"#));
        assert!(ok(
            r#"{"action":"audit","outcome":"401","before":9,"limit":5}"#
        ));
        assert!(serde_json::from_str::<AdminDesc>(r#"{"action":"users","x":1}"#).is_err());
        assert!(serde_json::from_str::<AdminDesc>(r#"{"action":"reboot"}"#).is_err());
    }

    /// Rows that would not fit one record end a page early.
    #[test]
    fn a_row_is_smaller_than_the_budget() {
        let r = AuditRow {
            summary: "x".repeat(crate::audit::MAX_SUMMARY + 4),
            ..Default::default()
        };
        assert!(json_len(&r) * 20 < ROW_BUDGET);
        assert!(json_len(&r) * 60 > ROW_BUDGET);
    }
}
