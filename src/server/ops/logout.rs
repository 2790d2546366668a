//! `logout`: ends the session and everything it started.

use super::OpCtx;
pub(crate) use crate::ops::logout::{LogoutDesc, LogoutResult};
use crate::proto::response::OpError;
use crate::server::core::stream::RequestReader;

/// Ends the session. The response is still sealed with its keys, which the
/// writer already holds.
pub(crate) async fn apply(
    ctx: &OpCtx,
    _d: LogoutDesc,
    input: &mut RequestReader,
) -> Result<LogoutResult, OpError> {
    // Make sure the message was complete before acting on it.
    input.drain().await?;
    ctx.inst.sessions.end(&ctx.session.id);
    Ok(LogoutResult {})
}
