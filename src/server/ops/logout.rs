//! `logout`: ends the session and everything it started.

use serde::Deserialize;

use super::{parse_descriptor, OpCtx, OpResult};
use crate::server::stream::RequestReader;

/// The (empty) descriptor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logout {}

/// Parses `{}`.
pub fn parse(d: &[u8]) -> Result<Logout, crate::proto::response::OpError> {
    parse_descriptor(d)
}

/// Ends the session. The response is still sealed with its keys, which the
/// writer already holds.
pub async fn apply(ctx: &OpCtx, _d: Logout, input: &mut RequestReader) -> OpResult {
    // Make sure the message was complete before acting on it.
    input.drain().await?;
    ctx.inst.sessions.end(&ctx.session.id);
    Ok(Default::default())
}
