//! `open`: firewall access for an address for a limited time.
//!
//! Descriptor `{"action": "open"|"close"|"list"|"profiles", "profile":
//! string, "ip": string, "duration": seconds}` (`profile` for open/close
//! only, `ip` optional: default the caller's own address, `duration` for
//! open only). Results: open → `{"profile", "ip", "expires_in", "capped"}`,
//! close → `{"profile", "ip"}`, list → `{"grants": [{"profile", "ip",
//! "expires_in", "by"}]}` limited to the profiles the user may open,
//! profiles → `{"profiles": [...], "ip"}` (those the user may open, and
//! the caller's own address as `open` would take it).
//! Every check happens before nft is run, so a refused request leaves the
//! ruleset untouched.

use std::net::IpAddr;
use std::sync::Arc;

use super::OpCtx;
use crate::firewall::addr::{check_grantable, client_ip, parse_ip, printable};
use crate::firewall::backend::{self, Nft};
use crate::firewall::{FirewallConfig, FwError, Profile};
use crate::perms::Grants;
use crate::proto::response::{ErrorCode, OpError};
use crate::server::core::stream::RequestReader;
use log::info;

pub(crate) use crate::ops::open::{ForwardInfo, GrantInfo, OpenDesc, OpenResult, ProfileInfo};

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Open,
    Close,
}

/// A checked descriptor.
pub(crate) enum Checked {
    /// The grants.
    List,
    /// The profiles the caller may open.
    Profiles,
    /// An `open` or `close`.
    Change(Open),
}

/// A checked `open` or `close`.
pub(crate) struct Open {
    action: Action,
    profile: String,
    ip: Option<String>,
    duration: Option<u64>,
}

/// Checks the descriptor.
pub(crate) fn check(d: OpenDesc) -> Result<Checked, OpError> {
    Ok(match d {
        OpenDesc::Open {
            duration: Some(0), ..
        } => return Err(OpError::bad_request("duration must be at least 1 second")),
        OpenDesc::Open {
            profile,
            ip,
            duration,
        } => Checked::Change(Open {
            action: Action::Open,
            profile,
            ip,
            duration,
        }),
        OpenDesc::Close { profile, ip } => Checked::Change(Open {
            action: Action::Close,
            profile,
            ip,
            duration: None,
        }),
        OpenDesc::List {} => Checked::List,
        OpenDesc::Profiles {} => Checked::Profiles,
    })
}

fn forbidden(msg: impl Into<String>) -> OpError {
    OpError::new(ErrorCode::Forbidden, msg)
}

fn fw_error(e: FwError) -> OpError {
    match e {
        FwError::BadAddress(_) | FwError::NotGrantable(_) | FwError::BadForwardedFor(_) => {
            OpError::bad_request(e.to_string())
        }
        FwError::Spawn { .. } => OpError::new(ErrorCode::Unavailable, e.to_string()),
        FwError::Conflict(_) => OpError::new(ErrorCode::Conflict, e.to_string()),
        FwError::TooMany(_) => OpError::new(ErrorCode::TooLarge, e.to_string()),
        FwError::Nft(_) | FwError::Listing(_) => OpError::new(ErrorCode::Internal, e.to_string()),
    }
}

/// Runs nft off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FwError> + Send + 'static,
) -> Result<T, OpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| OpError::new(ErrorCode::Internal, format!("firewall task: {e}")))?
        .map_err(fw_error)
}

/// Applies the descriptor.
pub(crate) async fn apply(
    ctx: &OpCtx,
    d: Checked,
    input: &mut RequestReader,
) -> Result<OpenResult, OpError> {
    // Act only on a complete, authenticated message.
    input.drain().await?;
    let Some(cfg) = ctx.inst.firewall.clone() else {
        return Err(OpError::new(
            ErrorCode::NotFound,
            "no firewall profiles are configured on this server",
        ));
    };
    let grants = ctx.session.grants();
    let d = match d {
        Checked::Change(d) => d,
        Checked::Profiles => return Ok(profiles(ctx, &cfg, &grants)),
        Checked::List => {
            let nft = Nft::new(&cfg);
            let list = blocking(move || nft.ledger()).await?;
            let visible = list
                .into_iter()
                .filter(|g| grants.allow_open(&g.profile))
                .map(|g| GrantInfo {
                    profile: g.profile,
                    ip: g.ip.to_string(),
                    expires_in: g.expires_in,
                    by: g.user,
                })
                .collect();
            return Ok(OpenResult {
                grants: Some(visible),
                ..Default::default()
            });
        }
    };
    let name = d.profile.as_str();
    if !grants.allow_open(name) {
        return Err(forbidden(format!(
            "you may not use firewall profile {:?}",
            printable(name)
        )));
    }
    let Some(profile) = cfg.profiles.get(name) else {
        return Err(OpError::new(
            ErrorCode::NotFound,
            format!("unknown firewall profile {:?}", printable(name)),
        ));
    };
    let ip = target_ip(ctx, &cfg, profile, d.ip.as_deref())?;
    let user = ctx.session.user.clone();
    if d.action == Action::Close {
        // A grant is its opener's: others' grants of the same address stay,
        // unless an admin closes.
        let all = grants.is_admin();
        let (c, p, u) = (cfg.clone(), profile.clone(), user.clone());
        blocking(move || backend::close_grant(&c, &p, ip, &u, all)).await?;
        info!("firewall: {user} closed {name} for {ip}");
        return Ok(OpenResult {
            profile: Some(name.to_string()),
            ip: Some(ip.to_string()),
            ..Default::default()
        });
    }
    let wanted = d.duration.unwrap_or(profile.default_duration);
    let secs = wanted.min(profile.max_duration);
    let (c, p, u) = (cfg.clone(), profile.clone(), user.clone());
    blocking(move || backend::open_grant(&c, &p, ip, secs, &u)).await?;
    info!("firewall: {user} opened {name} for {ip} for {secs}s");
    Ok(OpenResult {
        profile: Some(name.to_string()),
        ip: Some(ip.to_string()),
        expires_in: Some(secs),
        capped: Some(secs < wanted),
        ..Default::default()
    })
}

/// The profiles the caller may open (sorted by name) and the caller's own
/// address, if the server can tell it.
fn profiles(ctx: &OpCtx, cfg: &FirewallConfig, grants: &Grants) -> OpenResult {
    let own = client_ip(
        &ctx.remote,
        ctx.forwarded_for.as_deref(),
        &cfg.trusted_proxies,
    )
    .ok()
    .and_then(|ip| check_grantable(ip).ok());
    let profiles = cfg
        .profiles
        .values()
        .filter(|p| grants.allow_open(&p.name))
        .map(|p| ProfileInfo {
            name: p.name.clone(),
            ports: p.ports.iter().map(ToString::to_string).collect(),
            forwards: p
                .forwards
                .iter()
                .map(|f| ForwardInfo {
                    port: f.public.to_string(),
                    to: f.to.to_string(),
                    web: f.web.map(|w| w.as_str().to_string()),
                })
                .collect(),
            default_duration: p.default_duration,
            max_duration: p.max_duration,
            guests: p.guests,
        })
        .collect();
    OpenResult {
        profiles: Some(profiles),
        ip: own.map(|ip| ip.to_string()),
        ..Default::default()
    }
}

/// The address a grant is for: the caller's own (behind trusted proxies,
/// from `X-Forwarded-For`) or, for profiles with `guests = true`, the one
/// named; either way inside the profile's `allow_from` and of a family the
/// profile serves.
fn target_ip(
    ctx: &OpCtx,
    cfg: &Arc<FirewallConfig>,
    profile: &Profile,
    named: Option<&str>,
) -> Result<IpAddr, OpError> {
    let own = client_ip(
        &ctx.remote,
        ctx.forwarded_for.as_deref(),
        &cfg.trusted_proxies,
    )
    .map_err(|e| match e {
        FwError::BadAddress(_) => OpError::bad_request(format!(
            "cannot tell your address (REMOTE_ADDR {:?})",
            printable(&ctx.remote)
        )),
        other => fw_error(other),
    })?;
    let ip = match named {
        Some(s) => parse_ip(s).map_err(fw_error)?,
        None => own,
    };
    let ip = check_grantable(ip).map_err(fw_error)?;
    if ip != own && !profile.guests {
        return Err(forbidden(format!(
            "profile {:?} opens only for your own address ({own}), not {ip}",
            profile.name
        )));
    }
    if !profile.allows_source(ip) {
        return Err(forbidden(format!(
            "{ip} is outside the source ranges of profile {:?}",
            profile.name
        )));
    }
    if !profile.serves(ip.is_ipv6()) {
        return Err(OpError::bad_request(format!(
            "profile {:?} has nothing to open for an {} address",
            profile.name,
            if ip.is_ipv6() { "IPv6" } else { "IPv4" }
        )));
    }
    Ok(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(d: &[u8]) -> Result<Checked, OpError> {
        check(super::super::parse_descriptor(d)?)
    }

    #[test]
    fn descriptors() {
        let Checked::Change(o) =
            parse(br#"{"action":"open","profile":"ssh","duration":120}"#).unwrap()
        else {
            panic!("not a change")
        };
        assert_eq!((o.action, o.duration), (Action::Open, Some(120)));
        assert!(matches!(
            parse(br#"{"action":"list"}"#).unwrap(),
            Checked::List
        ));
        assert!(matches!(
            parse(br#"{"action":"profiles"}"#).unwrap(),
            Checked::Profiles
        ));
        for bad in [
            &br#"{"action":"open"}"#[..],
            br#"{"action":"opne","profile":"ssh"}"#,
            br#"{"action":"open","profile":"ssh","duration":0}"#,
            br#"{"action":"open","profile":"ssh","duration":-1}"#,
            br#"{"action":"open","profile":"ssh","port":22}"#,
            br#"{"action":"close","profile":"ssh","duration":5}"#,
            br#"{"action":"list","profile":"ssh"}"#,
            br#"{"action":"profiles","profile":"ssh"}"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
