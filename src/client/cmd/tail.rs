//! `remo tail`: the last lines of a remote file, and with `-f` the lines
//! appended to it as they come, until interrupted — `tail` runs remotely as
//! an interactive process so no line waits for the command to end.

use super::exec::exit_status;
use crate::client::ctx::Ctx;
use crate::client::error::ClientError;
use crate::client::interactive::{self, Mode, OnSignal, Pump};
use crate::ops::icm::IcmDesc;

/// Arguments of `remo tail`.
#[derive(Debug, clap::Args)]
pub(crate) struct TailArgs {
    /// Follow: keep printing lines as they are appended (across rotation,
    /// like `tail -F`) until Ctrl-C.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// How many of the last lines to print first.
    #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 10)]
    pub lines: u64,
    /// The remote file (relative to the remote home).
    #[arg(value_name = "PATH")]
    pub path: String,
}

/// The remote command: `tail -n N [-F] -- PATH`.
pub(crate) fn argv(a: &TailArgs) -> Vec<String> {
    let mut v = vec!["tail".to_string(), "-n".into(), a.lines.to_string()];
    if a.follow {
        v.push("-F".into());
    }
    v.push("--".into());
    v.push(a.path.clone());
    v
}

/// Runs it. Exit status: `tail`'s own without `-f` (or when it ends by
/// itself); 128+N when a local signal N (Ctrl-C: 130) stopped it — the
/// remote `tail` is then sent TERM, so it does not outlive us.
pub(crate) async fn run(ctx: &Ctx, a: TailArgs) -> Result<i32, ClientError> {
    let desc = IcmDesc {
        argv: Some(argv(&a)),
        wait_ms: Some(200),
        ..Default::default()
    };
    let mut active = ctx.session().await?;
    let outcome = async {
        let first = interactive::start(ctx, &mut active, &desc).await?;
        let outcome = if first.running {
            Pump {
                session: &active.session,
                output_at: first.output_end(),
                id: first.id,
                mode: Mode::Ordered,
                input: None,
                on_signal: OnSignal::Stop("TERM"),
                resize: false,
            }
            .run()
            .await?
        } else {
            interactive::Outcome {
                result: Some(first.result),
                interrupted: None,
            }
        };
        if let Some(sig) = outcome.interrupted {
            return Ok(128 + sig);
        }
        match outcome.result {
            Some(r) => Ok(exit_status(r.ended, false).0),
            None => Err(ClientError::Local("remote tail did not end".into())),
        }
    }
    .await;
    ctx.done(active).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_command() {
        let a = TailArgs {
            follow: true,
            lines: 3,
            path: "-odd name".into(),
        };
        assert_eq!(argv(&a), ["tail", "-n", "3", "-F", "--", "-odd name"]);
        let a = TailArgs { follow: false, ..a };
        assert_eq!(argv(&a), ["tail", "-n", "3", "--", "-odd name"]);
    }
}
