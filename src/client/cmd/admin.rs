//! `remo admin …`: the server's users, live sessions and audit log, for
//! users with the `admin` grant (the server refuses everyone else with
//! `forbidden`).

use clap::Subcommand;

use crate::client::conn::sanitize;
use crate::client::ctx::Ctx;
use crate::client::error::ClientError;
use crate::ops::admin::{AdminDesc, AdminResult};
use crate::ops::result_of;

/// Arguments of `remo admin`.
#[derive(Debug, clap::Args)]
pub(crate) struct AdminArgs {
    /// What to do.
    #[command(subcommand)]
    pub cmd: AdminCmd,
}

/// The `remo admin` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AdminCmd {
    /// The registered users, their grants and live sessions.
    Users {
        /// Names after this one (the `next:` line of the previous page).
        #[arg(long, value_name = "NAME")]
        after: Option<String>,
        /// At most N (the server caps it at `[limits] admin_page_max`).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Disable a user: no new login; their live sessions end now.
    Disable {
        /// The user.
        name: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// The user.
        name: String,
    },
    /// Live sessions and interactive processes.
    Sessions {
        /// Only this user's (`--user` is the user remo logs in as).
        #[arg(long, value_name = "NAME")]
        of: Option<String>,
    },
    /// End a session (its ID from `remo admin sessions`) and its processes.
    End {
        /// The session's ID. IDs are base64url and may begin with `-`.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// The audit log, newest first.
    Audit {
        /// Only this user's rows (`--user` is the user remo logs in as).
        #[arg(long, value_name = "NAME")]
        of: Option<String>,
        /// Only this operation (auth, cmd, get, put, admin, …).
        #[arg(long, value_name = "OP")]
        op: Option<String>,
        /// Only this outcome (ok, forbidden, 401, auth-failed, …).
        #[arg(long, value_name = "OUTCOME")]
        outcome: Option<String>,
        /// Only rows at or after this time: Unix seconds, or a duration
        /// ago (90s, 30m, 2h, 1h30m).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only rows before this time (as --since).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// At most N rows (the server caps it at `[limits] admin_page_max`).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Rows older than this one (the `next:` line of the previous page).
        #[arg(long, value_name = "CURSOR")]
        before: Option<i64>,
    },
}

/// `--since`/`--until`: Unix seconds, or a duration before `now`.
pub(crate) fn parse_time(s: &str, now: i64) -> Result<i64, String> {
    if let Ok(t) = s.parse::<i64>() {
        return Ok(t);
    }
    let d = crate::firewall::config::parse_duration(s)
        .map_err(|e| format!("{s:?}: Unix seconds or a duration ago ({e})"))?;
    Ok(now.saturating_sub(i64::try_from(d).unwrap_or(i64::MAX)))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The descriptor for a subcommand.
pub(crate) fn descriptor(cmd: AdminCmd, now: i64) -> Result<AdminDesc, ClientError> {
    let time = |what: &str, v: Option<String>| {
        v.map(|s| parse_time(&s, now))
            .transpose()
            .map_err(|e| ClientError::Usage(format!("--{what}: {e}")))
    };
    Ok(match cmd {
        AdminCmd::Users { after, limit } => AdminDesc::Users { after, limit },
        AdminCmd::Disable { name } => AdminDesc::Disable { name },
        AdminCmd::Enable { name } => AdminDesc::Enable { name },
        AdminCmd::Sessions { of } => AdminDesc::Sessions { user: of },
        AdminCmd::End { id } => AdminDesc::End { id },
        AdminCmd::Audit {
            of: user,
            op,
            outcome,
            since,
            until,
            limit,
            before,
        } => AdminDesc::Audit {
            user,
            op,
            outcome,
            since: time("since", since)?,
            until: time("until", until)?,
            before,
            limit,
        },
    })
}

async fn call(ctx: &Ctx, d: &AdminDesc) -> Result<AdminResult, ClientError> {
    let mut active = ctx.session().await?;
    let res = ctx.request(&mut active, d, None).await;
    let res = match res {
        Ok(stream) => stream.collect().await,
        Err(e) => Err(e),
    };
    ctx.done(active).await;
    let m = res?.result.map_err(ClientError::Op)?;
    result_of::<AdminDesc>(m).map_err(|e| ClientError::Protocol(format!("admin result: {e}")))
}

fn ago(secs: u64) -> String {
    crate::client::cmd::open::human(secs)
}

/// A Unix time in milliseconds as `YYYY-MM-DD HH:MM:SS` UTC.
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// `remo admin …`; `--json` prints the server's result object.
pub(crate) async fn run(ctx: &Ctx, a: AdminArgs, json: bool) -> Result<i32, ClientError> {
    let now = now();
    let d = descriptor(a.cmd, now)?;
    let r = call(ctx, &d).await?;
    if json {
        println!("{}", serde_json::to_string(&r).unwrap_or_default());
        return Ok(0);
    }
    match d {
        AdminDesc::Users { .. } => {
            println!("{:<24} {:<8} {:>8}  GRANTS", "USER", "STATE", "SESSIONS");
            for u in r.users.unwrap_or_default() {
                println!(
                    "{:<24} {:<8} {:>8}  {}{}",
                    sanitize(&u.name),
                    if u.enabled { "enabled" } else { "DISABLED" },
                    u.sessions,
                    sanitize(&u.grants.join(", ")),
                    if u.grants_truncated { ", …" } else { "" }
                );
            }
            if let Some(n) = r.next {
                println!("next: --after {}", sanitize(&n));
            }
        }
        AdminDesc::Disable { .. } => println!(
            "disabled {}; ended {} live session(s) and their processes",
            sanitize(r.name.as_deref().unwrap_or("?")),
            r.ended.unwrap_or(0)
        ),
        AdminDesc::Enable { .. } => {
            println!("enabled {}", sanitize(r.name.as_deref().unwrap_or("?")))
        }
        AdminDesc::Sessions { .. } => {
            let sessions = r.sessions.unwrap_or_default();
            println!(
                "sessions: {} (listed {})",
                r.total_sessions.unwrap_or(0),
                sessions.len()
            );
            if !sessions.is_empty() {
                println!(
                    "  {:<9} {:<16} {:<24} {:<10} {:<10} CERTIFICATE",
                    "ID", "USER", "FROM", "SINCE", "IDLE"
                );
            }
            for s in &sessions {
                println!(
                    "  {:<9} {:<16} {:<24} {:<10} {:<10} {}{}",
                    sanitize(&s.id),
                    sanitize(&s.user),
                    sanitize(&s.remote),
                    ago(now.saturating_sub(s.since).unsigned_abs()),
                    ago(s.idle_secs),
                    sanitize(s.cert.as_deref().unwrap_or("-")),
                    if s.yours { "  (this one)" } else { "" }
                );
            }
            let procs = r.processes.unwrap_or_default();
            println!(
                "interactive processes: {} (listed {})",
                r.total_processes.unwrap_or(0),
                procs.len()
            );
            for p in &procs {
                println!(
                    "  {:<16} session {:<9} {:<16} {}",
                    sanitize(&p.id),
                    sanitize(&p.session),
                    sanitize(&p.user),
                    if p.pty { "terminal" } else { "pipes" }
                );
            }
            if r.truncated == Some(true) {
                eprintln!("remo: not all are listed ([limits] admin_page_max, or one record's size); narrow with --of NAME");
            }
        }
        AdminDesc::End { .. } => println!(
            "ended {} session(s) and their processes",
            r.ended.unwrap_or(0)
        ),
        AdminDesc::Audit { .. } => {
            for row in r.rows.unwrap_or_default() {
                let exit = row.exit.map(|e| format!(" exit={e}")).unwrap_or_default();
                let cert = if row.cert.is_empty() {
                    String::new()
                } else {
                    format!(" cert={}", sanitize(&row.cert))
                };
                println!(
                    "{} {:<12} {:<16} {:<9} {:<7} {:<12} {}{exit}{cert}",
                    utc(row.time_ms),
                    sanitize(&row.user),
                    sanitize(&row.remote),
                    sanitize(&row.session),
                    sanitize(&row.op),
                    sanitize(&row.outcome),
                    sanitize(&row.summary)
                );
            }
            if let Some(b) = r.next_before {
                println!("next: --before {b}");
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `--of` names the user asked about; `--user` stays the login user.
    #[test]
    fn of_is_not_the_login_user() {
        use clap::Parser;
        let cli = crate::client::cli::Cli::try_parse_from([
            "remo", "--user", "admin", "admin", "audit", "--of", "bob",
        ])
        .unwrap();
        assert_eq!(cli.user.as_deref(), Some("admin"));
        let crate::client::cli::Cmd::Admin(a) = cli.cmd else {
            panic!("not admin")
        };
        let AdminCmd::Audit { of, .. } = a.cmd else {
            panic!("not audit")
        };
        assert_eq!(of.as_deref(), Some("bob"));
    }

    #[test]
    fn descriptors_times_and_dates() {
        let d = descriptor(
            AdminCmd::Audit {
                of: Some("bob".into()),
                op: None,
                outcome: Some("forbidden".into()),
                since: Some("1h".into()),
                until: Some("1700000000".into()),
                limit: Some(5),
                before: Some(42),
            },
            10_000,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(d).unwrap(),
            json!({"action": "audit", "user": "bob", "outcome": "forbidden",
                   "since": 6400, "until": 1_700_000_000, "before": 42, "limit": 5})
        );
        let d = descriptor(AdminCmd::Disable { name: "bob".into() }, 0).unwrap();
        assert_eq!(
            serde_json::to_value(d).unwrap(),
            json!({"action": "disable", "name": "bob"})
        );
        assert!(parse_time("yesterday", 0).is_err());
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_700_000_000_123), "2023-11-14 22:13:20");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
    }
}
