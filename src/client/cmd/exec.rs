//! `remo exec`: run a command remotely, with our stdin, stdout, stderr and
//! exit code standing in for its own. Plain `exec` is one `cmd` request;
//! `exec -i` runs the command as an interactive process (`icm`/`idt`/`edt`)
//! so input can be typed or piped while output comes back.

use std::io::IsTerminal;

use super::emit;
use crate::client::conn::{DataStream, ResponseItem};
use crate::client::ctx::Ctx;
use crate::client::error::ClientError;
use crate::client::input::reader_stream;
use crate::client::interactive::{self, Mode, OnSignal, Pump};
use crate::ops::cmd::CmdDesc;
use crate::ops::icm::IcmDesc;
use crate::ops::{result_of, ExitFields};

/// Arguments of `remo exec`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExecArgs {
    /// Run STRING with the remote /bin/sh -c instead of an argument vector.
    #[arg(long, value_name = "STRING", conflicts_with = "command")]
    pub sh: Option<String>,
    /// Remote working directory (default: the remote home).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Set a remote environment variable (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Kill the remote command after SECS seconds (then exit 124).
    #[arg(long, value_name = "SECS", conflicts_with = "interactive")]
    pub timeout: Option<u64>,
    /// Interactive: forward stdin as it is read, even from a terminal, and
    /// stdout/stderr as produced (`-i` right after `exec`).
    #[arg(long)]
    pub interactive: bool,
    /// The command and its arguments, executed directly (no shell).
    #[arg(
        value_name = "CMD",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required_unless_present = "sh"
    )]
    pub command: Vec<String>,
}

/// Builds the `cmd` descriptor.
pub(crate) fn descriptor(a: &ExecArgs) -> Result<CmdDesc, ClientError> {
    let mut d = CmdDesc::default();
    match &a.sh {
        Some(s) => d.sh = Some(s.clone()),
        None => d.argv = Some(a.command.clone()),
    };
    d.cwd = a.cwd.clone();
    if !a.env.is_empty() {
        let mut env = std::collections::BTreeMap::new();
        for kv in &a.env {
            let (k, v) = kv
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| ClientError::Usage(format!("--env wants K=V, got '{kv}'")))?;
            env.insert(k.to_string(), v.to_string());
        }
        d.env = Some(env);
    }
    d.timeout = a.timeout.map(|t| t as f64);
    Ok(d)
}

/// What our exit code should be for how a remote process ended (and a
/// note, if any).
pub(crate) fn exit_status(ended: ExitFields, timed_out: bool) -> (i32, Option<String>) {
    if timed_out {
        return (124, Some("remote command timed out".into()));
    }
    if let Some(sig) = ended.signal {
        return (
            128 + sig.clamp(0, 127),
            Some(format!("remote command killed by signal {sig}")),
        );
    }
    match ended.exit {
        Some(code) => (code.clamp(0, 255), None),
        None => (
            255,
            Some("remote command ended without an exit status".into()),
        ),
    }
}

/// Runs the command; standard input is forwarded when it is not a terminal
/// (always with `-i`).
pub(crate) async fn run(ctx: &Ctx, a: ExecArgs) -> Result<i32, ClientError> {
    if a.interactive {
        return run_interactive(ctx, a).await;
    }
    let desc = descriptor(&a)?;
    let input: Option<DataStream> = if std::io::stdin().is_terminal() {
        None
    } else {
        Some(reader_stream(tokio::io::stdin()))
    };
    let mut active = ctx.session().await?;
    let outcome = async {
        let mut resp = ctx.request(&mut active, &desc, input).await?;
        while let Some(item) = resp.next().await? {
            match item {
                ResponseItem::Stdout(b) => emit(false, &b)?,
                ResponseItem::Stderr(b) => emit(true, &b)?,
                ResponseItem::Done(Ok(m)) => {
                    let r = result_of::<CmdDesc>(m)
                        .map_err(|e| ClientError::Protocol(format!("cmd result: {e}")))?;
                    let (code, note) = exit_status(r.ended, r.timed_out);
                    if let Some(n) = note {
                        eprintln!("remo: {n}");
                    }
                    return Ok(code);
                }
                ResponseItem::Done(Err(e)) => return Err(ClientError::Op(e)),
            }
        }
        Err(ClientError::Truncated)
    }
    .await;
    ctx.done(active).await;
    outcome
}

/// `exec -i`: an interactive process without a terminal, binary-safe in
/// both directions; the end of our stdin closes its stdin (`edt`). A local
/// SIGINT/SIGTERM/SIGHUP is passed on (a second one sends KILL).
async fn run_interactive(ctx: &Ctx, a: ExecArgs) -> Result<i32, ClientError> {
    let mut desc = IcmDesc::from_cmd(descriptor(&a)?);
    // Short first wait: stdin usually follows right away.
    desc.wait_ms = Some(interactive::MIN_WAIT_MS);
    let mut active = ctx.session().await?;
    let outcome = async {
        let first = interactive::start(ctx, &mut active, &desc).await?;
        let result = if first.running {
            let pump = Pump {
                session: &active.session,
                output_at: first.output_end(),
                id: first.id,
                mode: Mode::Ordered,
                input: Some(reader_stream(tokio::io::stdin())),
                on_signal: OnSignal::Forward,
                resize: false,
            };
            pump.run().await?.result
        } else {
            Some(first.result)
        };
        let Some(result) = result else {
            return Err(ClientError::Local("remote command did not end".into()));
        };
        let (code, note) = exit_status(result.ended, false);
        if let Some(n) = note {
            eprintln!("remo: {n}");
        }
        Ok(code)
    }
    .await;
    ctx.done(active).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn exit_codes() {
        let r = |v: Value| {
            let m = v.as_object().unwrap().clone();
            let r = result_of::<CmdDesc>(m).unwrap();
            exit_status(r.ended, r.timed_out).0
        };
        assert_eq!(r(json!({"exit": 3, "signal": null, "timed_out": false})), 3);
        assert_eq!(
            r(json!({"exit": null, "signal": 9, "timed_out": false})),
            137
        );
        assert_eq!(
            r(json!({"exit": null, "signal": 9, "timed_out": true})),
            124
        );
    }

    #[test]
    fn descriptors() {
        let a = ExecArgs {
            sh: None,
            cwd: Some("/tmp".into()),
            env: vec!["A=b=c".into()],
            timeout: Some(5),
            interactive: false,
            command: vec!["ls".into(), "-l".into()],
        };
        assert_eq!(
            serde_json::to_value(descriptor(&a).unwrap()).unwrap(),
            json!({"argv": ["ls", "-l"], "cwd": "/tmp", "env": {"A": "b=c"}, "timeout": 5.0})
        );
        let bad = ExecArgs {
            env: vec!["novalue".into()],
            ..a
        };
        assert!(descriptor(&bad).is_err());
    }
}
