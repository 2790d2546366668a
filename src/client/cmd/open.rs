//! `remo open`, `remo close`, `remo grants`, `remo profiles`: firewall
//! access on the server for this machine's address (as the server sees it)
//! or a guest's.

use crate::client::conn::sanitize;
use crate::client::ctx::Ctx;
use crate::client::error::ClientError;
use crate::firewall::config::parse_duration;
use crate::ops::open::{OpenDesc, OpenResult, ProfileInfo};
use crate::ops::result_of;

/// Arguments of `remo open`.
#[derive(Debug, clap::Args)]
pub(crate) struct OpenArgs {
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
pub(crate) struct CloseArgs {
    /// The firewall profile.
    pub profile: String,
    /// Close the grant of this address instead of ours.
    #[arg(long, value_name = "ADDR")]
    pub ip: Option<String>,
}

/// The `open` descriptor for `remo open`.
pub(crate) fn open_descriptor(a: &OpenArgs) -> Result<OpenDesc, ClientError> {
    let duration = match &a.duration {
        Some(s) => {
            let secs = parse_duration(s).map_err(|e| ClientError::Usage(format!("--for: {e}")))?;
            if secs == 0 {
                return Err(ClientError::Usage("--for: must be at least 1s".into()));
            }
            Some(secs)
        }
        None => None,
    };
    Ok(OpenDesc::Open {
        profile: a.profile.clone(),
        ip: a.ip.clone(),
        duration,
    })
}

/// `3725` → `1h2m5s`.
pub(crate) fn human(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m{s:02}s"),
    }
}

async fn call(ctx: &Ctx, d: OpenDesc) -> Result<OpenResult, ClientError> {
    let mut active = ctx.session().await?;
    let res = ctx.request(&mut active, &d, None).await;
    let res = match res {
        Ok(stream) => stream.collect().await,
        Err(e) => Err(e),
    };
    ctx.done(active).await;
    let m = res?.result.map_err(ClientError::Op)?;
    result_of::<OpenDesc>(m).map_err(|e| ClientError::Protocol(format!("open result: {e}")))
}

fn text(v: Option<&str>) -> String {
    sanitize(v.unwrap_or("?"))
}

/// `remo open PROFILE [--for D] [--ip ADDR]`.
pub(crate) async fn run_open(ctx: &Ctx, a: OpenArgs) -> Result<i32, ClientError> {
    let r = call(ctx, open_descriptor(&a)?).await?;
    println!(
        "opened {} for {} for {}{}",
        text(r.profile.as_deref()),
        text(r.ip.as_deref()),
        human(r.expires_in.unwrap_or(0)),
        if r.capped == Some(true) {
            " (capped at the profile's maximum)"
        } else {
            ""
        }
    );
    Ok(0)
}

/// `remo close PROFILE [--ip ADDR]`.
pub(crate) async fn run_close(ctx: &Ctx, a: CloseArgs) -> Result<i32, ClientError> {
    let d = OpenDesc::Close {
        profile: a.profile,
        ip: a.ip,
    };
    let r = call(ctx, d).await?;
    println!(
        "closed {} for {}",
        text(r.profile.as_deref()),
        text(r.ip.as_deref())
    );
    Ok(0)
}

/// `remo grants`: the active grants the user may see.
pub(crate) async fn run_grants(ctx: &Ctx) -> Result<i32, ClientError> {
    let r = call(ctx, OpenDesc::List {}).await?;
    let list = r.grants.unwrap_or_default();
    if list.is_empty() {
        println!("no active grants");
        return Ok(0);
    }
    println!("{:<20} {:<40} {:>10}  by", "PROFILE", "IP", "REMAINING");
    for g in list {
        println!(
            "{:<20} {:<40} {:>10}  {}",
            sanitize(&g.profile),
            sanitize(&g.ip),
            human(g.expires_in),
            sanitize(&g.by)
        );
    }
    Ok(0)
}

/// What a profile opens, for one line: `22/tcp, 8080/tcp -> 10.0.0.5:80 (http)`.
pub(crate) fn opens(p: &ProfileInfo) -> String {
    let ports = p.ports.iter().map(|x| sanitize(x));
    let forwards = p.forwards.iter().map(|f| {
        let web = f
            .web
            .as_deref()
            .map(|w| format!(" ({})", sanitize(w)))
            .unwrap_or_default();
        format!("{} -> {}{web}", sanitize(&f.port), sanitize(&f.to))
    });
    let all: Vec<String> = ports.chain(forwards).collect();
    if all.is_empty() {
        "-".into()
    } else {
        all.join(", ")
    }
}

/// `remo profiles`: the firewall profiles the user may open, and the
/// address `open` without `--ip` would open for (the console's Doors page
/// asks the same); `--json` prints the server's result object.
pub(crate) async fn run_profiles(ctx: &Ctx, json: bool) -> Result<i32, ClientError> {
    let r = call(ctx, OpenDesc::Profiles {}).await?;
    if json {
        println!("{}", serde_json::to_string(&r).unwrap_or_default());
        return Ok(0);
    }
    let list = r.profiles.unwrap_or_default();
    if list.is_empty() {
        println!("no firewall profile is open to you on this server");
    } else {
        println!(
            "{:<20} {:>10} {:>10}  {:<6}  OPENS",
            "PROFILE", "DEFAULT", "MAX", "GUESTS"
        );
        for p in &list {
            println!(
                "{:<20} {:>10} {:>10}  {:<6}  {}",
                sanitize(&p.name),
                human(p.default_duration),
                human(p.max_duration),
                if p.guests { "yes" } else { "no" },
                opens(p)
            );
        }
    }
    match r.ip {
        Some(ip) => println!("your address as the server sees it: {}", sanitize(&ip)),
        None => println!(
            "the server cannot tell your address (a proxy missing from its trusted_proxies?): \
             only guest addresses (--ip) can be opened"
        ),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn descriptors_and_durations() {
        let a = OpenArgs {
            profile: "ssh".into(),
            duration: Some("30m".into()),
            ip: Some("192.0.2.7".into()),
        };
        assert_eq!(
            serde_json::to_value(open_descriptor(&a).unwrap()).unwrap(),
            json!({"action": "open", "profile": "ssh", "ip": "192.0.2.7", "duration": 1800})
        );
        let a = OpenArgs {
            profile: "ssh".into(),
            duration: None,
            ip: None,
        };
        assert_eq!(
            serde_json::to_value(open_descriptor(&a).unwrap()).unwrap(),
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

    #[test]
    fn what_a_profile_opens() {
        use crate::ops::open::ForwardInfo;
        let mut p = ProfileInfo {
            name: "x".into(),
            ports: vec!["22/tcp".into(), "51820/udp".into()],
            forwards: vec![ForwardInfo {
                port: "8080/tcp".into(),
                to: "10.0.0.5:80".into(),
                web: Some("http".into()),
            }],
            ..Default::default()
        };
        assert_eq!(
            opens(&p),
            "22/tcp, 51820/udp, 8080/tcp -> 10.0.0.5:80 (http)"
        );
        p.ports.clear();
        p.forwards.clear();
        assert_eq!(opens(&p), "-");
        // The server's text is shown without its control characters.
        p.ports.push("22/tcp\u{1b}[2J".into());
        assert!(!opens(&p).contains('\u{1b}'), "{}", opens(&p));
    }
}
