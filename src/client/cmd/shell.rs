//! `remo shell`: an interactive terminal session on the server, like `ssh
//! host`. The remote process runs on a pseudo-terminal of our size; our
//! terminal is put in raw mode so every key (Ctrl-C, Ctrl-Z, arrows) goes to
//! the remote side, and it is restored on every way out.

use std::io::IsTerminal;
use std::sync::{Mutex, Once};

use nix::sys::termios::{self, SetArg, Termios};
use std::collections::BTreeMap;

use crate::ops::icm::{IcmDesc, PtySize};

use super::exec::exit_status;
use crate::client::ctx::Ctx;
use crate::client::error::ClientError;
use crate::client::input::reader_stream;
use crate::client::interactive::{self, Mode, OnSignal, Pump};

/// The remote command when none is given: the remote user's login shell
/// from the password database (`getent passwd`), else `/bin/sh`, started as
/// a login shell. The server gives processes a clean environment without
/// `SHELL`, so it is looked up and exported here.
pub(crate) const LOGIN_SHELL: &str = r#"s=$(getent passwd "$(id -un)" 2>/dev/null | cut -d: -f7); [ -x "$s" ] || s=/bin/sh; SHELL=$s; export SHELL; exec "$s" -l"#;

/// Terminal size used when neither stdin nor stdout is a terminal.
const DEFAULT_SIZE: (u16, u16) = (24, 80);

/// Arguments of `remo shell`.
#[derive(Debug, clap::Args)]
pub(crate) struct ShellArgs {
    /// Remote working directory (default: the remote home).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Set a remote environment variable (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Run this command (no shell) on the terminal instead of the login shell.
    #[arg(
        value_name = "CMD",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// The terminal settings to put back, for the panic hook.
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);
static HOOK: Once = Once::new();

fn restore_saved() {
    let saved = SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(t) = saved {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, &t);
    }
}

/// Our terminal in raw mode for as long as this lives. Dropping it (normal
/// return, error, or unwinding from a panic) restores the saved settings; a
/// panic hook restores them too, before the panic message is printed, in
/// case the panic happens elsewhere. Local signals are caught by the pump,
/// which then returns normally, so they restore through `Drop` as well.
#[derive(Debug)]
pub(crate) struct RawMode {
    _private: (),
}

impl RawMode {
    /// Enters raw mode if stdin is a terminal (`None` otherwise).
    pub(crate) fn enter() -> Result<Option<RawMode>, ClientError> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Ok(None);
        }
        let term = |e: nix::Error| ClientError::Local(format!("terminal: {e}"));
        let saved = termios::tcgetattr(&stdin).map_err(term)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore_saved();
                previous(info);
            }));
        });
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some(saved);
        if let Err(e) = termios::tcsetattr(&stdin, SetArg::TCSADRAIN, &raw) {
            restore_saved();
            return Err(term(e));
        }
        Ok(Some(RawMode { _private: () }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore_saved();
    }
}

/// Builds the `icm` descriptor.
pub(crate) fn descriptor(
    a: &ShellArgs,
    size: (u16, u16),
    term: Option<String>,
) -> Result<IcmDesc, ClientError> {
    let argv = if a.command.is_empty() {
        vec!["/bin/sh".into(), "-c".into(), LOGIN_SHELL.into()]
    } else {
        a.command.clone()
    };
    let mut env = BTreeMap::new();
    if let Some(t) = term.filter(|t| !t.is_empty()) {
        env.insert("TERM".to_string(), t);
    }
    for kv in &a.env {
        let (k, v) = kv
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| ClientError::Usage(format!("--env wants K=V, got '{kv}'")))?;
        env.insert(k.to_string(), v.to_string());
    }
    Ok(IcmDesc {
        argv: Some(argv),
        cwd: a.cwd.clone(),
        env: (!env.is_empty()).then_some(env),
        pty: Some(PtySize {
            rows: size.0,
            cols: size.1,
        }),
        wait_ms: Some(200),
        ..Default::default()
    })
}

/// Runs the session; the remote exit status becomes ours (128+N for a
/// signal), and a local SIGTERM/SIGHUP/SIGINT hangs the remote side up.
pub(crate) async fn run(ctx: &Ctx, a: ShellArgs) -> Result<i32, ClientError> {
    let size = interactive::terminal_size().unwrap_or(DEFAULT_SIZE);
    let desc = descriptor(&a, size, std::env::var("TERM").ok())?;
    let mut active = ctx.session().await?;
    let outcome = async {
        // Raw mode only once the session is up: a passphrase prompt or a
        // login error is shown on a normal terminal.
        let raw = RawMode::enter()?;
        let result = async {
            let first = interactive::start(ctx, &mut active, &desc).await?;
            if !first.running {
                return Ok(interactive::Outcome {
                    result: Some(first.result),
                    interrupted: None,
                });
            }
            Pump {
                session: &active.session,
                output_at: first.output_end(),
                id: first.id,
                mode: Mode::Concurrent,
                input: Some(reader_stream(tokio::io::stdin())),
                on_signal: OnSignal::Stop("HUP"),
                resize: true,
            }
            .run()
            .await
        }
        .await;
        drop(raw);
        let outcome = result?;
        if let Some(sig) = outcome.interrupted {
            return Ok(128 + sig);
        }
        match outcome.result {
            Some(r) => {
                let (code, note) = exit_status(r.ended, false);
                if let Some(n) = note {
                    eprintln!("remo: {n}");
                }
                Ok(code)
            }
            None => Err(ClientError::Local("remote shell did not end".into())),
        }
    }
    .await;
    ctx.done(active).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn descriptor_defaults_to_the_login_shell() {
        let a = ShellArgs {
            cwd: None,
            env: vec![],
            command: vec![],
        };
        let d = serde_json::to_value(descriptor(&a, (30, 100), Some("screen".into())).unwrap())
            .unwrap();
        assert_eq!(d["argv"][0], "/bin/sh");
        assert_eq!(d["pty"], json!({"rows": 30, "cols": 100}));
        assert_eq!(d["env"], json!({"TERM": "screen"}));
        let a = ShellArgs {
            cwd: Some("/tmp".into()),
            env: vec!["A=1".into()],
            command: vec!["top".into(), "-b".into()],
        };
        let d = serde_json::to_value(descriptor(&a, (24, 80), None).unwrap()).unwrap();
        assert_eq!(d["argv"], json!(["top", "-b"]));
        assert_eq!(d["env"], json!({"A": "1"}));
        assert_eq!(d["cwd"], "/tmp");
    }
}
