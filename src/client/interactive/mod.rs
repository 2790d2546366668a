//! The engine shared by `remo shell`, `remo exec -i` and `remo tail`: start a
//! remote process with `icm`, then keep polling it with `idt`/`edt` while
//! forwarding our standard input, local signals and terminal size, until a
//! result says it is no longer running.
//!
//! The server answers a poll as soon as output is there, or after `wait_ms`.
//! Polls adapt ([`Backoff`]): short right after activity, doubling while
//! idle up to several seconds, so an idle process costs a request every few
//! seconds. Two ways to send input ([`Mode`]):
//!
//! * [`Mode::Concurrent`] (terminals): a long poll and a sender run side by
//!   side; a keystroke goes out at once in its own `idt` with `wait_ms` 0
//!   even while a long poll is outstanding. Both answers may carry output,
//!   and they can cross; remo/1 gives no order across polls. remod numbers
//!   the output (`offset`, remo's extension: docs/protocol-notes.md), so
//!   each answer's output is held until its result arrives and written in
//!   stream order: an answer waits for the one before it, and the next long
//!   poll waits for its answer to be written. With a server that does not
//!   number output it is written as it arrives, and two chunks can then be
//!   written swapped.
//! * [`Mode::Ordered`] (pipes, binary data): input rides on the poll itself,
//!   one request at a time, so output is never reordered. While our input is
//!   open a poll waits at most [`INPUT_OPEN_MAX_WAIT_MS`] (input waiting
//!   behind a poll is delayed by at most that). A poll that carries input can
//!   block on the server while the process does not read its stdin (its
//!   output buffer full, say); after [`DRAIN_AFTER`] a separate output-only
//!   poll (`wait_ms` 0) drains it, so a process that produces much more than
//!   it reads cannot deadlock. Answers are then held and written in the
//!   order the server collected them: the drain first (it is what unblocked
//!   the held poll), unless the drain saw the end of the process.
//!
//! The decisions live in [`state`]: the pump's state as enums and its
//! transitions as plain functions, tested without a server; this module
//! only carries them out.

mod state;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Map, Value};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::Instant;

use self::state::{Answer, Exchange, State};
use super::cmd::emit;
use super::conn::{DataStream, ResponseItem, ResponseStream, Session};
use super::ctx::{Active, Ctx};
use super::error::ClientError;
use crate::ops::icm::{EdtDesc, IcmDesc, IdtDesc, KillDesc, ProcResult, ResizeDesc};
use crate::ops::result_of;
use crate::proto::response::ErrorCode;

/// Shortest poll wait, used right after output or input.
pub(crate) const MIN_WAIT_MS: u64 = 20;
/// Longest poll wait when idle: well inside proxy read timeouts (60 s by
/// default in nginx and Apache) and the server's own limit (60 s).
pub(crate) const MAX_WAIT_MS: u64 = 5_000;
/// In [`Mode::Ordered`], the longest poll while our input is still open.
pub(crate) const INPUT_OPEN_MAX_WAIT_MS: u64 = 300;
/// Most input bytes per request (one data record; less than a pipe buffer,
/// so a write into a drained pipe never blocks).
pub(crate) const MAX_SEND: usize = 64 * 1024;
/// In [`Mode::Ordered`], how long a poll carrying input may block before an
/// output-only poll drains the process.
pub(crate) const DRAIN_AFTER: Duration = Duration::from_millis(500);

/// Adaptive poll wait: resets to the minimum on activity, doubles on every
/// empty poll up to the maximum.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: u64,
    max: u64,
    next: u64,
}

impl Backoff {
    /// A backoff between `min` and `max` milliseconds, starting at `min`.
    pub(crate) fn new(min: u64, max: u64) -> Self {
        let min = min.max(1);
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// Something happened (output, input): poll soon again.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }

    /// The wait for the next poll; the one after is twice as long.
    pub(crate) fn next_wait(&mut self) -> u64 {
        let w = self.next;
        self.next = self.next.saturating_mul(2).clamp(self.min, self.max);
        w
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(MIN_WAIT_MS, MAX_WAIT_MS)
    }
}

/// What one `icm`/`idt`/`edt` answer said (its output was already written).
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// The process id on the server.
    pub id: String,
    /// False once the process has ended and all its output was delivered.
    pub running: bool,
    /// The whole result (`exit`, `signal`).
    pub result: ProcResult,
    /// Whether the answer carried any output.
    pub output: bool,
    /// Output bytes it carried (stdout and stderr).
    pub bytes: u64,
    /// Output not written yet (stderr?, bytes), oldest first.
    pub held: Vec<(bool, Bytes)>,
}

/// Writes a response's output to our stdout/stderr as it arrives and reads
/// its result.
pub(crate) async fn consume(resp: ResponseStream) -> Result<Reply, ClientError> {
    consume_into(resp, false).await
}

/// Reads a response; its output is written at once, or with `hold` kept in
/// the reply ([`Reply::held`]) to be written later, in the right order.
async fn consume_into(mut resp: ResponseStream, hold: bool) -> Result<Reply, ClientError> {
    let mut bytes = 0u64;
    let mut held = Vec::new();
    while let Some(item) = resp.next().await? {
        let (to_stderr, b) = match item {
            ResponseItem::Stdout(b) => (false, b),
            ResponseItem::Stderr(b) => (true, b),
            ResponseItem::Done(Ok(m)) => {
                let mut r = reply_of(m, bytes)?;
                r.held = held;
                return Ok(r);
            }
            ResponseItem::Done(Err(e)) => return Err(ClientError::Op(e)),
        };
        bytes = bytes.saturating_add(b.len() as u64);
        if hold {
            held.push((to_stderr, b));
        } else {
            emit(to_stderr, &b)?;
        }
    }
    Err(ClientError::Truncated)
}

impl Reply {
    /// Writes output that was held back.
    pub(crate) fn flush(&mut self) -> Result<(), ClientError> {
        for (to_stderr, b) in self.held.drain(..) {
            emit(to_stderr, &b)?;
        }
        Ok(())
    }
}

fn reply_of(result: Map<String, Value>, bytes: u64) -> Result<Reply, ClientError> {
    let result = result_of::<IdtDesc>(result)
        .map_err(|e| ClientError::Protocol(format!("interactive result: {e}")))?;
    Ok(Reply {
        id: result.id.clone(),
        running: result.running,
        result,
        output: bytes > 0,
        bytes,
        held: Vec::new(),
    })
}

impl Reply {
    /// The stream offset just after this answer's output, when the server
    /// numbers output (remo's `offset` extension).
    pub(crate) fn output_end(&self) -> Option<u64> {
        self.result.offset.map(|o| o.saturating_add(self.bytes))
    }
}

/// Starts a process (`icm`), through [`Ctx::request`] so a dead cached
/// session is replaced transparently.
pub(crate) async fn start(
    ctx: &Ctx,
    active: &mut Active,
    desc: &IcmDesc,
) -> Result<Reply, ClientError> {
    let resp = ctx.request(active, desc, None).await?;
    consume(resp).await
}

/// How input is sent (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A long poll plus an immediate sender (terminals).
    Concurrent,
    /// Input rides on the polls, one at a time (pipes, binary data).
    Ordered,
}

/// What a local SIGINT, SIGTERM or SIGHUP does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnSignal {
    /// Pass it on to the remote process (a second one sends KILL) and keep
    /// going until it ends; its status is ours.
    Forward,
    /// Stop the remote process with this signal (KILL if it has not ended
    /// after a grace period), then end with 128 + the local signal.
    Stop(&'static str),
}

/// How a pumped process ended.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// The final result, if the process was seen to end.
    pub result: Option<ProcResult>,
    /// The local signal that stopped us, with [`OnSignal::Stop`].
    pub interrupted: Option<i32>,
}

/// What drives a running process.
pub(crate) struct Pump<'a> {
    /// The session it runs in.
    pub session: &'a Session,
    /// Its id.
    pub id: String,
    /// How input is sent.
    pub mode: Mode,
    /// Our standard input, if it is forwarded; its end becomes `edt`.
    pub input: Option<DataStream>,
    /// What local signals do.
    pub on_signal: OnSignal,
    /// Forward local terminal size changes (SIGWINCH) with `resize`.
    pub resize: bool,
    /// The stream offset of the next output byte ([`Reply::output_end`] of
    /// the `icm` answer); `None` (an older server): arrival order.
    pub output_at: Option<u64>,
}

type Fut<'a> = Pin<Box<dyn Future<Output = Result<Reply, ClientError>> + 'a>>;

/// Starts one `idt` (or, `close` set, `edt`) the state asked for.
fn exchange<'a>(session: &'a Session, id: &str, x: Exchange) -> Fut<'a> {
    let desc = IdtDesc {
        id: id.to_string(),
        wait_ms: Some(x.wait_ms),
    };
    Box::pin(async move {
        let input: Option<DataStream> = x
            .data
            .map(|b| Box::pin(futures_util::stream::once(async move { Ok(b) })) as DataStream);
        let resp = if x.close {
            session.request(&EdtDesc(desc), input).await?
        } else {
            session.request(&desc, input).await?
        };
        consume_into(resp, x.hold).await
    })
}

async fn poll_opt(f: &mut Option<Fut<'_>>) -> Result<Reply, ClientError> {
    match f.as_mut() {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn recv_opt(s: &mut Option<Signal>) {
    match s.as_mut() {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn signal_stream(kind: SignalKind) -> Result<Signal, ClientError> {
    signal(kind).map_err(|e| ClientError::Local(format!("cannot handle signals: {e}")))
}

/// The local terminal size (rows, cols) of our stdout or stdin, if either
/// is a terminal.
pub(crate) fn terminal_size() -> Option<(u16, u16)> {
    for fd in [libc::STDOUT_FILENO, libc::STDIN_FILENO] {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ only writes a `winsize` into the pointer we pass,
        // which points to a live, properly aligned local.
        let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
        if r == 0 && ws.ws_row > 0 && ws.ws_col > 0 {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

fn is_not_found(e: &ClientError) -> bool {
    matches!(e, ClientError::Op(op) if op.code == ErrorCode::NotFound)
}

impl Pump<'_> {
    /// Sends a signal to the remote process; a process that is already gone
    /// is not an error.
    pub(crate) async fn kill(&self, name: &str) -> Result<(), ClientError> {
        let r = self
            .session
            .call(&KillDesc {
                id: self.id.clone(),
                signal: name.to_string(),
            })
            .await?;
        match r.result {
            Ok(_) => Ok(()),
            Err(e) if e.code == ErrorCode::NotFound => Ok(()),
            Err(e) => Err(ClientError::Op(e)),
        }
    }

    async fn resize_now(&self) {
        if let Some((rows, cols)) = terminal_size() {
            // A failed resize only leaves the old size; nothing to report
            // in the middle of a full-screen session.
            let _ = self
                .session
                .call(&ResizeDesc {
                    id: self.id.clone(),
                    rows,
                    cols,
                })
                .await;
        }
    }

    /// Runs until the process ends (or a local signal stopped it). On an
    /// error the remote process is sent TERM (best effort), so it does not
    /// linger until the server's idle timeout.
    pub(crate) async fn run(mut self) -> Result<Outcome, ClientError> {
        let r = self.run_inner().await;
        if r.is_err() {
            let _ = self.kill("TERM").await;
        }
        r
    }

    async fn run_inner(&mut self) -> Result<Outcome, ClientError> {
        let session = self.session;
        let id = self.id.clone();
        let mut input = self.input.take();
        let mut st = State::new(self.mode, input.is_some(), self.output_at);
        // The requests in flight; `st` knows which are and what they carry.
        let mut poll: Option<Fut<'_>> = None;
        let mut side: Option<Fut<'_>> = None;

        let mut sigint = Some(signal_stream(SignalKind::interrupt())?);
        let mut sigterm = Some(signal_stream(SignalKind::terminate())?);
        let mut sighup = Some(signal_stream(SignalKind::hangup())?);
        let mut winch = if self.resize {
            Some(signal_stream(SignalKind::window_change())?)
        } else {
            None
        };

        loop {
            if let Some(verdict) = st.verdict() {
                return verdict;
            }
            if let Some(x) = st.next_poll(Instant::now()) {
                poll = Some(exchange(session, &id, x));
            }
            if let Some(x) = st.next_side() {
                side = Some(exchange(session, &id, x));
            }
            let drain_at = st.drain_at();
            let stop_at = st.stop_deadline();
            let want_input = st.wants_input();

            let signo = tokio::select! {
                r = poll_opt(&mut poll) => {
                    poll = None;
                    write(st.on_poll(answer(r)?))?;
                    None
                }
                r = poll_opt(&mut side) => {
                    side = None;
                    write(st.on_side(answer(r)?))?;
                    None
                }
                c = async {
                    match input.as_mut() {
                        Some(s) => s.next().await,
                        None => std::future::pending().await,
                    }
                }, if want_input => {
                    match c {
                        Some(Ok(b)) => st.on_input(Some(b)),
                        Some(Err(e)) => return Err(ClientError::io("<stdin>", "cannot read", e)),
                        None => {
                            input = None;
                            st.on_input(None);
                        }
                    }
                    None
                }
                _ = sleep_opt(drain_at) => {
                    side = Some(exchange(session, &id, st.on_drain_due(Instant::now())));
                    None
                }
                _ = recv_opt(&mut sigint) => Some(libc::SIGINT),
                _ = recv_opt(&mut sigterm) => Some(libc::SIGTERM),
                _ = recv_opt(&mut sighup) => Some(libc::SIGHUP),
                _ = recv_opt(&mut winch) => {
                    self.resize_now().await;
                    None
                }
                _ = sleep_opt(stop_at) => {
                    if let Some(name) = st.on_stop_deadline(Instant::now()) {
                        self.kill(name).await?;
                    }
                    None
                }
            };
            if let Some(signo) = signo {
                if let Some(name) = st.on_signal(signo, self.on_signal, Instant::now()) {
                    self.kill(name).await?;
                }
            }
        }
    }
}

/// An answer as the state sees it: `not_found` means the process is gone;
/// any other error ends the pump.
fn answer(r: Result<Reply, ClientError>) -> Result<Answer, ClientError> {
    match r {
        Ok(rep) => Ok(Answer::Reply(rep)),
        Err(e) if is_not_found(&e) => Ok(Answer::Gone),
        Err(e) => Err(e),
    }
}

/// Writes held output of replies, in the order given.
fn write(replies: Vec<Reply>) -> Result<(), ClientError> {
    for mut rep in replies {
        rep.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..10).map(|_| b.next_wait()).collect();
        assert_eq!(
            waits,
            vec![20, 40, 80, 160, 320, 640, 1280, 2560, 5000, 5000]
        );
        b.reset();
        assert_eq!(b.next_wait(), 20);
    }

    #[test]
    fn replies_need_id_and_running() {
        use serde_json::json;
        let m = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert!(reply_of(m(json!({"id": "a", "running": true})), 0).is_ok());
        assert!(reply_of(m(json!({"running": true})), 0).is_err());
        assert!(reply_of(m(json!({"id": "a"})), 0).is_err());
    }
}
