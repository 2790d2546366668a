//! `remo logout`: end the cached session on the server and forget it.

use crate::client::conn::Session;
use crate::client::ctx::Ctx;
use crate::client::error::ClientError;
use crate::client::known;

/// Logs the cached session out (which ends its processes) and deletes the file.
pub(crate) async fn run(ctx: &Ctx) -> Result<i32, ClientError> {
    let who = format!("{} at {}", ctx.target.user, ctx.target.server);
    let Some(cache) = &ctx.cache else {
        eprintln!("remo: no session cache in use (no $XDG_RUNTIME_DIR, or --no-cache); nothing to log out");
        return Ok(0);
    };
    let pinned = known::lookup(&ctx.known_path, &ctx.target.server)?;
    let params = match &pinned {
        Some(pin) => cache.load(&ctx.target.server, &ctx.target.user, &pin.key)?,
        None => None,
    };
    let Some(params) = params else {
        cache.remove()?;
        eprintln!("remo: no cached session for {who}");
        return Ok(0);
    };
    let mut session = Session::resume(ctx.http.clone(), params.clone(), cache.numbers(&params.sid));
    ctx.apply_framing(&mut session);
    let res = session.logout().await;
    cache.remove()?;
    match res {
        Ok(()) => {
            eprintln!("remo: logged out {who}");
            Ok(0)
        }
        Err(ClientError::SessionExpired) => {
            eprintln!("remo: the session of {who} had already ended");
            Ok(0)
        }
        Err(e) => Err(e),
    }
}
