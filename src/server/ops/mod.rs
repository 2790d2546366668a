//! The sealed operations of PROTOCOL.md §6, one file each: every file
//! parses its descriptor and applies it.

pub mod cmd;
pub mod config;
pub mod get;
pub mod icm;
pub mod logout;
pub mod put;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::instance::Instance;
use super::session::Session;
use super::stream::{RequestReader, ResponseWriter};
use crate::proto::response::OpError;

/// What every operation may use.
pub struct OpCtx {
    /// The instance.
    pub inst: Arc<Instance>,
    /// The caller's session.
    pub session: Arc<Session>,
    /// The caller's address, for logs.
    pub remote: String,
    /// The operation name.
    pub op: String,
}

/// The result fields of a successful operation.
pub type OpResult = Result<Map<String, Value>, OpError>;

/// True for the operations this server implements.
pub fn is_known(op: &str) -> bool {
    matches!(
        op,
        "cmd" | "get" | "put" | "logout" | "icm" | "idt" | "edt" | "kill" | "resize" | "config"
    )
}

/// Runs an operation whose request passed the §5 checks.
pub async fn run(
    ctx: &OpCtx,
    descriptor: &[u8],
    input: &mut RequestReader,
    out: &mut ResponseWriter,
) -> OpResult {
    match ctx.op.as_str() {
        "cmd" => cmd::apply(ctx, cmd::parse(descriptor)?, input, out).await,
        "get" => get::apply(ctx, get::parse(descriptor)?, input, out).await,
        "put" => put::apply(ctx, put::parse(descriptor)?, input, out).await,
        "logout" => logout::apply(ctx, logout::parse(descriptor)?, input).await,
        "icm" => icm::apply_icm(ctx, icm::parse_icm(descriptor)?, input, out).await,
        "idt" => icm::apply_idt(ctx, icm::parse_idt(descriptor)?, false, input, out).await,
        "edt" => icm::apply_idt(ctx, icm::parse_idt(descriptor)?, true, input, out).await,
        "kill" => icm::apply_kill(ctx, icm::parse_kill(descriptor)?, input).await,
        "resize" => icm::apply_resize(ctx, icm::parse_resize(descriptor)?, input).await,
        "config" => config::apply(ctx, config::parse(descriptor)?, input, out).await,
        other => Err(OpError::bad_request(format!("unknown operation {other}"))),
    }
}

/// Parses a descriptor, rejecting unknown fields (`deny_unknown_fields` on `T`).
pub fn parse_descriptor<T: DeserializeOwned>(descriptor: &[u8]) -> Result<T, OpError> {
    serde_json::from_slice(descriptor).map_err(|e| OpError::bad_request(format!("descriptor: {e}")))
}

/// Builds a result map from pairs.
pub fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Maps an I/O error on a client-named path to a result code.
pub fn io_error(what: &str, e: &std::io::Error) -> OpError {
    use crate::proto::response::ErrorCode;
    use std::io::ErrorKind;
    let code = match e.kind() {
        ErrorKind::NotFound => ErrorCode::NotFound,
        ErrorKind::PermissionDenied => ErrorCode::Forbidden,
        ErrorKind::AlreadyExists => ErrorCode::Exists,
        ErrorKind::InvalidInput | ErrorKind::InvalidData => ErrorCode::BadRequest,
        _ => match e.raw_os_error() {
            Some(libc::EISDIR)
            | Some(libc::ENOTDIR)
            | Some(libc::ENAMETOOLONG)
            | Some(libc::ELOOP) => ErrorCode::BadRequest,
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => ErrorCode::TooLarge,
            _ => ErrorCode::Internal,
        },
    };
    OpError::new(code, format!("{what}: {e}"))
}
