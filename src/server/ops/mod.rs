//! The sealed operations of PROTOCOL.md §6, one file each: every file
//! parses its descriptor and applies it.

pub(crate) mod admin;
pub(crate) mod cmd;
pub(crate) mod config;
pub(crate) mod get;
pub(crate) mod icm;
pub(crate) mod list;
pub(crate) mod logout;
pub(crate) mod open;
pub(crate) mod procs;
pub(crate) mod put;
pub(crate) mod upload;

use std::sync::Arc;

#[cfg(test)]
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::ops::{Op, OpName};
use crate::proto::response::{ErrorCode, OpError};
use crate::server::core::instance::Instance;
use crate::server::core::session::Session;
use crate::server::core::stream::{RequestReader, ResponseWriter};

/// What every operation may use (cloned for a step on a thread of its
/// own, see [`cmd::start`]).
#[derive(Clone)]
pub(crate) struct OpCtx {
    /// The instance.
    pub inst: Arc<Instance>,
    /// The caller's session.
    pub session: Arc<Session>,
    /// The caller's address, for logs.
    pub remote: String,
    /// `X-Forwarded-For`, believed only from `[firewall] trusted_proxies`.
    pub forwarded_for: Option<String>,
    /// The operation.
    pub op: OpName,
}

impl OpCtx {
    /// `step` of a transfer, unless the session ends first (`unavailable`)
    /// or it takes longer than `[limits] transfer_idle_timeout`
    /// (`timeout`): a client that stops sending its body or taking the
    /// answer holds its transfer that long at most.
    pub(crate) async fn watched<T>(
        &self,
        what: &str,
        step: impl std::future::Future<Output = T>,
    ) -> Result<T, OpError> {
        let idle = self.inst.limits.transfer_idle();
        let timer = async {
            match idle {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            v = step => Ok(v),
            _ = self.session.cancel.cancelled() => {
                Err(OpError::new(ErrorCode::Unavailable, "session ended"))
            }
            _ = timer => Err(OpError::new(
                ErrorCode::Timeout,
                format!(
                    "{what}: the client moved no data for {} s (transfer_idle_timeout)",
                    idle.map_or(0, |d| d.as_secs())
                ),
            )),
        }
    }
}

/// A successful operation's result, typed until it goes on the wire.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// `cmd`.
    Cmd(crate::ops::cmd::CmdResult),
    /// `get`.
    Get(crate::ops::get::GetResult),
    /// `put`.
    Put(crate::ops::put::PutResult),
    /// `logout`.
    Logout(crate::ops::logout::LogoutResult),
    /// `icm`, `idt`, `edt`.
    Proc(crate::ops::icm::ProcResult),
    /// `kill`.
    Kill(crate::ops::icm::KillResult),
    /// `resize`.
    Resize(crate::ops::icm::ResizeResult),
    /// `config`.
    Config(crate::ops::config::ConfigResult),
    /// `open`.
    Open(crate::ops::open::OpenResult),
    /// `list`.
    List(crate::ops::list::ListResult),
    /// `admin`.
    Admin(crate::ops::admin::AdminResult),
}

impl Outcome {
    /// The exit status of a process that ended, for the audit.
    pub(crate) fn exit(&self) -> Option<i32> {
        match self {
            Outcome::Cmd(r) => r.ended.exit,
            Outcome::Proc(r) => r.ended.exit,
            _ => None,
        }
    }

    /// The result object of the `ok` response.
    pub(crate) fn into_fields(self) -> Map<String, Value> {
        let v = match self {
            Outcome::Cmd(r) => serde_json::to_value(r),
            Outcome::Get(r) => serde_json::to_value(r),
            Outcome::Put(r) => serde_json::to_value(r),
            Outcome::Logout(r) => serde_json::to_value(r),
            Outcome::Proc(r) => serde_json::to_value(r),
            Outcome::Kill(r) => serde_json::to_value(r),
            Outcome::Resize(r) => serde_json::to_value(r),
            Outcome::Config(r) => serde_json::to_value(r),
            Outcome::Open(r) => serde_json::to_value(r),
            Outcome::List(r) => serde_json::to_value(r),
            Outcome::Admin(r) => serde_json::to_value(r),
        };
        match v {
            Ok(Value::Object(m)) => m,
            // Every result type is a struct of plain fields.
            other => {
                debug_assert!(false, "a result is not an object: {other:?}");
                Map::new()
            }
        }
    }
}

/// Runs an operation whose request passed the §5 checks.
pub(crate) async fn run(
    ctx: &OpCtx,
    op: Op,
    input: &mut RequestReader,
    out: &mut ResponseWriter,
) -> Result<Outcome, OpError> {
    // Transfers hold a slot while they run (`[limits] max_transfers…`).
    let _slot = match &op {
        Op::Get(_) | Op::Put(_) | Op::List(_) => Some(
            ctx.inst
                .transfers
                .acquire(&ctx.session.user, ctx.session.grants().is_admin())
                .map_err(|e| {
                    OpError::new(ErrorCode::Unavailable, format!("{e}; try again later"))
                })?,
        ),
        _ => None,
    };
    Ok(match op {
        Op::Cmd(d) => Outcome::Cmd(cmd::apply(ctx, d.check()?, input, out).await?),
        Op::Get(d) => Outcome::Get(get::apply(ctx, get::check(d)?, input, out).await?),
        Op::Put(d) => Outcome::Put(put::apply(ctx, put::check(d)?, input, out).await?),
        Op::Logout(d) => Outcome::Logout(logout::apply(ctx, d, input).await?),
        Op::Icm(d) => Outcome::Proc(icm::apply_icm(ctx, icm::check_icm(d)?, input, out).await?),
        Op::Idt(d) => Outcome::Proc(icm::apply_idt(ctx, d, false, input, out).await?),
        Op::Edt(d) => Outcome::Proc(icm::apply_idt(ctx, d.0, true, input, out).await?),
        Op::Kill(d) => Outcome::Kill(icm::apply_kill(ctx, icm::check_kill(d)?, input).await?),
        Op::Resize(d) => {
            Outcome::Resize(icm::apply_resize(ctx, icm::check_resize(d)?, input).await?)
        }
        Op::Config(d) => Outcome::Config(config::apply(ctx, config::check(d)?, input, out).await?),
        Op::Open(d) => Outcome::Open(open::apply(ctx, open::check(d)?, input).await?),
        Op::List(d) => Outcome::List(list::apply(ctx, list::check(d)?, input, out).await?),
        Op::Admin(d) => Outcome::Admin(admin::apply(ctx, admin::check(d)?, input).await?),
    })
}

/// Parses a descriptor, rejecting unknown fields (`deny_unknown_fields` on
/// `T`); for tests (the router decodes once, through [`Op::decode`]).
#[cfg(test)]
pub(crate) fn parse_descriptor<T: DeserializeOwned>(descriptor: &[u8]) -> Result<T, OpError> {
    serde_json::from_slice(descriptor).map_err(|e| OpError::bad_request(format!("descriptor: {e}")))
}

pub(crate) use crate::server::enforce::confine::io_error;
