//! `remo open`, `remo close`, `remo grants`: firewall access on the server
//! for this machine's address (as the server sees it) or a guest's.

use serde_json::{json, Map, Value};

use crate::client::cli::Ctx;
use crate::client::conn::sanitize;
use crate::client::error::ClientError;
use crate::firewall::config::parse_duration;

/// Arguments of `remo open`.
#[derive(Debug, clap::Args)]
pub struct OpenArgs {
    /// The firewall profile (as configured on the server).
    pub profile: String,
    /// How long: seconds or 90s, 30m, 2h, 1h30m (default: the profile's;
    /// the server caps it at the profile's maximum).
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: Option<String>,
    /// Open for this address instead of ours (profiles that allow guests).
    #[arg(long, value_name = "ADDR")]
    pub ip: Option<String>,
}

/// Arguments of `remo close`.
#[derive(Debug, clap::Args)]
pub struct CloseArgs {
    /// The firewall profile.
    pub profile: String,
    /// Close the grant of this address instead of ours.
    #[arg(long, value_name = "ADDR")]
    pub ip: Option<String>,
}

/// The `open` descriptor for `remo open`.
pub fn open_descriptor(a: &OpenArgs) -> Result<Value, ClientError> {
    let mut d = Map::new();
    d.insert("action".into(), json!("open"));
    d.insert("profile".into(), json!(a.profile));
    if let Some(ip) = &a.ip {
        d.insert("ip".into(), json!(ip));
    }
    if let Some(s) = &a.duration {
        let secs = parse_duration(s).map_err(|e| ClientError::Config(format!("--for: {e}")))?;
        if secs == 0 {
            return Err(ClientError::Config("--for: must be at least 1s".into()));
        }
        d.insert("duration".into(), json!(secs));
    }
    Ok(Value::Object(d))
}

/// `3725` → `1h2m5s`.
pub fn human(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m{s:02}s"),
    }
}

async fn call(ctx: &Ctx, d: Value) -> Result<Map<String, Value>, ClientError> {
    let mut active = ctx.session().await?;
    let res = ctx.request(&mut active, "open", &d, None).await;
    let res = match res {
        Ok(stream) => stream.collect().await,
        Err(e) => Err(e),
    };
    ctx.done(active).await;
    res?.result.map_err(ClientError::Op)
}

fn text(v: &Map<String, Value>, k: &str) -> String {
    sanitize(v.get(k).and_then(Value::as_str).unwrap_or("?"))
}

/// `remo open PROFILE [--for D] [--ip ADDR]`.
pub async fn run_open(ctx: &Ctx, a: OpenArgs) -> Result<i32, ClientError> {
    let r = call(ctx, open_descriptor(&a)?).await?;
    let secs = r.get("expires_in").and_then(Value::as_u64).unwrap_or(0);
    let capped = r.get("capped").and_then(Value::as_bool).unwrap_or(false);
    println!(
        "opened {} for {} for {}{}",
        text(&r, "profile"),
        text(&r, "ip"),
        human(secs),
        if capped {
            " (capped at the profile's maximum)"
        } else {
            ""
        }
    );
    Ok(0)
}

/// `remo close PROFILE [--ip ADDR]`.
pub async fn run_close(ctx: &Ctx, a: CloseArgs) -> Result<i32, ClientError> {
    let mut d = json!({"action": "close", "profile": a.profile});
    if let Some(ip) = &a.ip {
        d["ip"] = json!(ip);
    }
    let r = call(ctx, d).await?;
    println!("closed {} for {}", text(&r, "profile"), text(&r, "ip"));
    Ok(0)
}

/// `remo grants`: the active grants the user may see.
pub async fn run_grants(ctx: &Ctx) -> Result<i32, ClientError> {
    let r = call(ctx, json!({"action": "list"})).await?;
    let list = r.get("grants").and_then(Value::as_array);
    let list: Vec<&Map<String, Value>> = list
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .collect();
    if list.is_empty() {
        println!("no active grants");
        return Ok(0);
    }
    println!("{:<20} {:<40} {:>10}  by", "PROFILE", "IP", "REMAINING");
    for g in list {
        let secs = g.get("expires_in").and_then(Value::as_u64).unwrap_or(0);
        let by = g.get("by").and_then(Value::as_str).map(sanitize);
        println!(
            "{:<20} {:<40} {:>10}  {}",
            text(g, "profile"),
            text(g, "ip"),
            human(secs),
            by.as_deref().unwrap_or("-")
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_and_durations() {
        let a = OpenArgs {
            profile: "ssh".into(),
            duration: Some("30m".into()),
            ip: Some("192.0.2.7".into()),
        };
        assert_eq!(
            open_descriptor(&a).unwrap(),
            json!({"action": "open", "profile": "ssh", "ip": "192.0.2.7", "duration": 1800})
        );
        let a = OpenArgs {
            profile: "ssh".into(),
            duration: None,
            ip: None,
        };
        assert_eq!(
            open_descriptor(&a).unwrap(),
            json!({"action": "open", "profile": "ssh"})
        );
        let a = OpenArgs {
            profile: "ssh".into(),
            duration: Some("soon".into()),
            ip: None,
        };
        assert!(open_descriptor(&a).is_err());
        assert_eq!(human(5), "5s");
        assert_eq!(human(125), "2m05s");
        assert_eq!(human(3725), "1h02m05s");
    }
}
