//! `icm`, `idt`, `edt`, `kill`, `resize`: interactive processes
//! (PROTOCOL.md §6). The process table lives in [`crate::server::ops::procs`];
//! these are the descriptors and the request/response glue.

use std::time::Duration;

use super::cmd::{build_command, build_command_base, container_for, spawn_error, start, CmdDesc};
use super::OpCtx;
pub(crate) use crate::ops::icm::{
    IcmDesc, IdtDesc, KillDesc, KillResult, ProcResult, PtySize, ResizeDesc, ResizeResult,
};
use crate::ops::ExitFields;
use crate::proto::response::{ErrorCode, OpError};
use crate::server::core::stream::{RequestReader, ResponseWriter};
use crate::server::enforce::spawn::Stdio;
use crate::server::ops::procs::{open_pty, parse_signal, Collected, Proc, Wiring};

/// Default `wait_ms`.
pub(crate) const DEFAULT_WAIT_MS: u64 = 200;
/// Largest `wait_ms`, so a poll stays well inside proxy timeouts.
pub(crate) const MAX_WAIT_MS: u64 = 60_000;

/// A checked `icm`.
pub(crate) struct Icm {
    cmd: super::cmd::Cmd,
    pty: Option<PtySize>,
    wait: Duration,
}

fn wait(ms: Option<u64>) -> Duration {
    Duration::from_millis(ms.unwrap_or(DEFAULT_WAIT_MS).min(MAX_WAIT_MS))
}

/// Checks `icm`.
pub(crate) fn check_icm(d: IcmDesc) -> Result<Icm, OpError> {
    if d.timeout.is_some() {
        return Err(OpError::bad_request(
            "timeout is not supported for interactive processes; use kill",
        ));
    }
    let cmd = CmdDesc {
        argv: d.argv,
        sh: d.sh,
        cwd: d.cwd,
        env: d.env,
        timeout: None,
    }
    .check()?;
    if let Some(p) = d.pty {
        if p.rows == 0 || p.cols == 0 {
            return Err(OpError::bad_request("pty rows and cols must be positive"));
        }
    }
    Ok(Icm {
        cmd,
        pty: d.pty,
        wait: wait(d.wait_ms),
    })
}

/// Checks `kill`.
pub(crate) fn check_kill(k: KillDesc) -> Result<KillDesc, OpError> {
    if parse_signal(&k.signal).is_none() {
        return Err(OpError::bad_request(
            "signal must be one of TERM, KILL, INT, HUP",
        ));
    }
    Ok(k)
}

/// Checks `resize`.
pub(crate) fn check_resize(r: ResizeDesc) -> Result<ResizeDesc, OpError> {
    if r.rows == 0 || r.cols == 0 {
        return Err(OpError::bad_request("rows and cols must be positive"));
    }
    Ok(r)
}

fn not_found(id: &str) -> OpError {
    OpError::new(
        ErrorCode::NotFound,
        format!("no interactive process {id:?} in this session"),
    )
}

fn lookup(ctx: &OpCtx, id: &str) -> Result<std::sync::Arc<Proc>, OpError> {
    ctx.inst
        .procs
        .get(&ctx.session.id, id)
        .ok_or_else(|| not_found(id))
}

/// Writes every data record to the process's stdin (discarding once it stopped reading).
async fn feed(proc: &Proc, input: &mut RequestReader) -> Result<(), OpError> {
    let mut open = true;
    while let Some(chunk) = input.next_data().await.map_err(|e| e.to_op_error())? {
        if open && !chunk.is_empty() {
            open = proc.write_input(&chunk).await;
        }
    }
    Ok(())
}

/// Sends collected output and builds the result; forgets a finished process.
async fn answer(
    ctx: &OpCtx,
    proc: &Proc,
    wait: Duration,
    out: &mut ResponseWriter,
) -> Result<ProcResult, OpError> {
    let gone = {
        let tx_closed = out.closed();
        // `collect` must not hold the writer borrowed while we send, so the
        // client-gone future is only used while waiting.
        let c: Collected = proc.collect(wait, tx_closed).await;
        c
    };
    let Collected {
        chunks,
        running,
        exit,
        offset,
    } = gone;
    for (channel, data) in &chunks {
        if out.send(*channel, data).await.is_err() {
            return Err(OpError::new(ErrorCode::Unavailable, "client went away"));
        }
    }
    if !running {
        ctx.inst.procs.remove(&proc.id);
    }
    Ok(ProcResult {
        id: proc.id.clone(),
        running,
        ended: ExitFields::of(exit),
        offset: Some(offset),
    })
}

/// Starts an interactive process.
pub(crate) async fn apply_icm(
    ctx: &OpCtx,
    d: Icm,
    input: &mut RequestReader,
    out: &mut ResponseWriter,
) -> Result<ProcResult, OpError> {
    // Checking the caps and taking the slot is one step (issue 17 §2).
    let slots = ctx
        .inst
        .procs
        .reserve(
            &ctx.session.id,
            &ctx.session.user,
            ctx.session.grants().is_admin(),
        )
        .map_err(|e| OpError::new(ErrorCode::Unavailable, e.to_string()))?;
    let container = container_for(ctx)?;
    let wait_for = d.wait;
    // On a thread of its own for a run-as user (see cmd::start).
    let (container, slots, (child, wiring)) =
        start(ctx, container, slots, move |ctx, container| {
            let prog = d.cmd.argv.first().cloned().unwrap_or_default();
            match d.pty {
                None => {
                    let mut cmd = build_command(ctx, &d.cmd, container)?;
                    cmd.stdin(Stdio::Piped)
                        .stdout(Stdio::Piped)
                        .stderr(Stdio::Piped);
                    Ok((
                        container.spawn(cmd).map_err(|e| spawn_error(&prog, &e))?,
                        Wiring::Pipes,
                    ))
                }
                Some(size) => {
                    let mut c = d.cmd.clone();
                    c.env
                        .entry("TERM".into())
                        .or_insert_with(|| "xterm-256color".into());
                    let mut cmd = build_command_base(ctx, &c, container)?;
                    let pty = open_pty(size.rows, size.cols).map_err(|e| {
                        OpError::new(ErrorCode::Internal, format!("cannot open a terminal: {e}"))
                    })?;
                    let io = |e: std::io::Error| {
                        OpError::new(ErrorCode::Internal, format!("terminal: {e}"))
                    };
                    // A new session with the terminal on 0, 1 and 2 as its
                    // controlling one. The spawn closes our copies of the slave,
                    // or the master would never see the end.
                    cmd.stdin(Stdio::Fd(pty.slave.try_clone().map_err(io)?))
                        .stdout(Stdio::Fd(pty.slave.try_clone().map_err(io)?))
                        .stderr(Stdio::Fd(pty.slave))
                        .session_on_terminal();
                    let child = container.spawn(cmd).map_err(|e| spawn_error(&prog, &e))?;
                    Ok((child, Wiring::Pty(pty.master)))
                }
            }
        })
        .await?;
    let proc = ctx
        .inst
        .procs
        .register(
            &ctx.session.id,
            ctx.session.cancel.clone(),
            child,
            wiring,
            slots,
            container,
        )
        .map_err(|e| {
            OpError::new(
                ErrorCode::Internal,
                format!("cannot track the process: {e}"),
            )
        })?;
    feed(&proc, input).await?;
    answer(ctx, &proc, wait_for, out).await
}

/// `idt` (`close` false) and `edt` (`close` true).
pub(crate) async fn apply_idt(
    ctx: &OpCtx,
    d: IdtDesc,
    close: bool,
    input: &mut RequestReader,
    out: &mut ResponseWriter,
) -> Result<ProcResult, OpError> {
    let proc = lookup(ctx, &d.id)?;
    proc.touch();
    feed(&proc, input).await?;
    if close {
        proc.close_input().await;
    }
    answer(ctx, &proc, wait(d.wait_ms), out).await
}

/// Sends a signal to the process group.
pub(crate) async fn apply_kill(
    ctx: &OpCtx,
    d: KillDesc,
    input: &mut RequestReader,
) -> Result<KillResult, OpError> {
    input.drain().await?;
    let proc = lookup(ctx, &d.id)?;
    proc.touch();
    let sig = parse_signal(&d.signal).ok_or_else(|| OpError::bad_request("unknown signal"))?;
    let delivered = proc.signal(sig);
    Ok(KillResult {
        id: d.id,
        delivered,
    })
}

/// Changes the terminal size of a `pty` process.
pub(crate) async fn apply_resize(
    ctx: &OpCtx,
    d: ResizeDesc,
    input: &mut RequestReader,
) -> Result<ResizeResult, OpError> {
    input.drain().await?;
    let proc = lookup(ctx, &d.id)?;
    proc.touch();
    if !proc.is_pty() {
        return Err(OpError::bad_request("process was not started with pty"));
    }
    proc.resize(d.rows, d.cols)
        .map_err(|e| OpError::new(ErrorCode::Internal, format!("resize: {e}")))?;
    Ok(ResizeResult { id: d.id })
}
