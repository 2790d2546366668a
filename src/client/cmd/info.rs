//! `remo info`: what the server is, and pinning its key.

use crate::client::conn::{info_with, sanitize};
use crate::client::ctx::Ctx;
use crate::client::error::ClientError;

/// Prints the server's identity and pins (or checks) its key.
pub(crate) async fn run(ctx: &Ctx) -> Result<i32, ClientError> {
    let info = info_with(&ctx.http, &ctx.target.server).await?;
    let key = info.public_key()?;
    ctx.pin(&key)?;
    println!("server:      {}", ctx.target.server);
    println!("name:        {}", sanitize(&info.name));
    println!("version:     {}", sanitize(&info.version));
    println!("protocol:    {}", sanitize(&info.protocol));
    println!("fingerprint: {}", key.fingerprint());
    Ok(0)
}
