//! One FastCGI connection: a reader loop (records in, body out) and a
//! writer task (records out), running at the same time so a response can
//! stream while the request body is still arriving.
//!
//! What a record means depends on where the request stands, so that is one
//! [`State`] value, changed only by the pure [`step`] function (tested for
//! every record in every state, hostile ones included); the reader loop
//! only waits for events and carries out the [`Action`]s `step` returns.
//! Whenever a request ends other than by its response, a handler still
//! reading its body is told the body was aborted, never that it ended.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinHandle};

use super::codec::{self, CodecError, Message, ParamsAssembler, Record};
use super::FcgiLimits;
use crate::server::core::gate::{Busy, Pass};
use crate::server::core::request::{
    reason_phrase, Body, BodyBatch, BodyError, BodySender, Handler, Params, Request, Response,
    ResponseBody,
};
use crate::server::door::listen::{Peer, Stream};

/// Frames waiting for the writer; small so a slow web server slows the producer.
const WRITE_QUEUE: usize = 2;
/// Room reserved before each read: four maximal records, so one read can
/// bring several body records (see `BODY_BATCH`).
const READ_RESERVE: usize = 4 * (codec::HEADER_LEN + codec::MAX_CONTENT_LEN + 255);
/// Body bytes passed to the handler in one message at most.
const BODY_BATCH: usize = 256 << 10;
/// How long an abort notice may wait for a handler that does not read its body.
const ABORT_NOTICE_WAIT: Duration = Duration::from_secs(30);

/// Why a connection ended early; logged, never propagated.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("{0}")]
    Codec(#[from] CodecError),
    #[error("read: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed in the middle of a record")]
    TruncatedRecord,
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("handler task failed: {0}")]
    Handler(JoinError),
}

/// How the response task ended.
enum Outcome {
    /// END_REQUEST is queued for the writer.
    Completed,
    /// The writer is gone (web server closed or reset the connection).
    WriterGone,
}

/// A response task that is aborted when dropped, so that every way out of
/// the reader loop drops the response receiver at once.
struct Task {
    handle: JoinHandle<Outcome>,
    /// The connection is busy (not evictable) while its request runs.
    _busy: Busy,
}

impl Drop for Task {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Serves one connection until it closes; errors are logged here.
pub(super) async fn run(
    stream: Stream,
    peer: Peer,
    handler: Arc<dyn Handler>,
    limits: FcgiLimits,
    stop: watch::Receiver<bool>,
    pass: Pass,
) {
    let (rd, wr) = tokio::io::split(stream);
    let (wtx, wrx) = mpsc::channel::<Frame>(WRITE_QUEUE);
    let mut writer = tokio::spawn(write_loop(wr, wrx));
    let mut rd = rd;
    let mut buf = BytesMut::new();
    let result = read_loop(&mut rd, &mut buf, wtx, handler, &limits, stop, &pass).await;
    match result {
        Ok(linger) => {
            if linger {
                drain(&mut rd, &mut buf, limits.linger).await;
            }
        }
        Err(e) => log::warn!("fastcgi connection ({peer}): {e}"),
    }
    // Give the writer a moment to flush what is queued, then cut it off.
    if tokio::time::timeout(limits.linger, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

/// What the writer sends at once: pieces written in order by vectored
/// writes, so data goes to the socket from where it was sealed.
type Frame = Vec<Bytes>;

/// The most pieces passed to one vectored write (the kernel takes 1,024).
const MAX_IOV: usize = 64;

/// Writes all of `frame`, as few system calls as the socket allows.
async fn write_frame(wr: &mut WriteHalf<Stream>, mut frame: Frame) -> std::io::Result<()> {
    let mut first = 0;
    while first < frame.len() {
        let rest = frame.get(first..).unwrap_or_default();
        let mut iov = [std::io::IoSlice::new(&[]); MAX_IOV];
        let mut n = 0;
        for (slot, piece) in iov.iter_mut().zip(rest) {
            *slot = std::io::IoSlice::new(piece);
            n += 1;
        }
        let mut written = wr.write_vectored(iov.get(..n).unwrap_or_default()).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        // Skip what went out: whole pieces, then the front of a partial one.
        while let Some(piece) = frame.get_mut(first) {
            if written < piece.len() {
                bytes::Buf::advance(piece, written);
                break;
            }
            written -= piece.len();
            first += 1;
        }
    }
    Ok(())
}

/// Writes and flushes each frame as it comes; a write error ends the task,
/// which closes the channel and so tells every sender the peer is gone.
async fn write_loop(mut wr: WriteHalf<Stream>, mut rx: mpsc::Receiver<Frame>) {
    while let Some(frame) = rx.recv().await {
        if let Err(e) = write_frame(&mut wr, frame).await {
            log::debug!("fastcgi: write failed: {e}");
            return;
        }
        if wr.flush().await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

/// Reads and discards input until EOF or `limit`, so closing a socket that
/// still has unread input does not reset the response already sent.
async fn drain(rd: &mut ReadHalf<Stream>, buf: &mut BytesMut, limit: Duration) {
    let _ = tokio::time::timeout(limit, async {
        loop {
            buf.clear();
            buf.reserve(READ_RESERVE);
            match rd.read_buf(buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

/// The next complete record, `None` at a clean EOF. Cancel-safe.
async fn next_record(
    rd: &mut ReadHalf<Stream>,
    buf: &mut BytesMut,
) -> Result<Option<Record>, ConnError> {
    loop {
        if let Some(r) = codec::decode_record(buf)? {
            return Ok(Some(r));
        }
        buf.reserve(READ_RESERVE);
        if rd.read_buf(buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(ConnError::TruncatedRecord)
            };
        }
    }
}

/// Awaits the task if there is one.
async fn join_opt(task: &mut Option<Task>) -> Result<Outcome, JoinError> {
    match task {
        Some(t) => (&mut t.handle).await,
        None => std::future::pending().await,
    }
}

/// Sends a body chunk if there is a body.
async fn send_opt(body: &Option<BodySender>, chunk: Option<BodyBatch>) -> bool {
    match (body, chunk) {
        (Some(tx), Some(c)) => tx.send(Ok(c)).await.is_ok(),
        _ => std::future::pending().await,
    }
}

/// Tells the handler its body was cut short, without blocking the reader.
fn notify_aborted(body: Option<BodySender>) {
    let Some(tx) = body else { return };
    match tx.try_send(Err(BodyError::Aborted)) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Closed(_)) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(ABORT_NOTICE_WAIT, tx.send(Err(BodyError::Aborted))).await;
            });
        }
    }
}

// ---------------------------------------------------------------- state

/// The one request a connection carries at a time (web servers never
/// multiplex; a second id is refused with FCGI_CANT_MPX_CONN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Req {
    id: u16,
    keep_conn: bool,
}

/// Where the request body stands while the handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    /// STDIN records are passed on to the handler.
    Streaming,
    /// The handler dropped its body: the rest is read and discarded.
    Discarding,
    /// The empty STDIN record has arrived; later STDIN records are ignored.
    Complete,
}

/// How a connection ends.
#[derive(Debug)]
enum Close {
    /// After draining unread input for a moment (the response is sent).
    Linger,
    /// At once.
    Now,
    /// At once, logging why.
    Failed(ConnError),
}

/// The state of a FastCGI connection: one value instead of loosely linked
/// options, changed only by [`step`].
#[derive(Debug)]
enum State {
    /// No request: waiting for BEGIN_REQUEST (the request timeout runs).
    AwaitingBegin,
    /// BEGIN_REQUEST seen; collecting PARAMS until the empty record (the
    /// request timeout still runs).
    ReadingParams { req: Req, asm: ParamsAssembler },
    /// The handler runs; STDIN records feed its body.
    Running { req: Req, body: BodyState },
    /// Terminal: the connection closes.
    Closed(Close),
}

impl State {
    /// True when the handler task runs.
    fn handler_running(&self) -> bool {
        matches!(self, State::Running { .. })
    }

    /// True when the handler still takes body bytes.
    fn body_open(&self) -> bool {
        matches!(
            self,
            State::Running {
                body: BodyState::Streaming,
                ..
            }
        )
    }
}

/// Everything that moves a connection on.
#[derive(Debug)]
enum Input {
    /// A complete record from the web server.
    Record(Record),
    /// The web server closed the connection between records.
    Eof,
    /// Reading failed: I/O, a record cut short, bytes that are not FastCGI.
    ReadFailed(ConnError),
    /// The response is complete (END_REQUEST is queued).
    Responded,
    /// The handler task failed (panicked).
    HandlerFailed(JoinError),
    /// The writer is gone: the web server no longer reads.
    WriterGone,
    /// The handler dropped its body.
    BodyRefused,
    /// The server is shutting down.
    Stop,
    /// Waiting for a request too long, or evicted to make room.
    Idle(&'static str),
}

/// What the I/O loop does for a transition, in order.
#[derive(Debug, PartialEq)]
enum Action {
    /// Queue END_REQUEST for `id` with this protocol status.
    EndRequest { id: u16, status: u8 },
    /// Log the refused role and queue END_REQUEST(FCGI_UNKNOWN_ROLE).
    RefuseRole { id: u16, role: u16 },
    /// Queue a GET_VALUES_RESULT for these names.
    GetValuesResult { names: Vec<Vec<u8>> },
    /// Queue UNKNOWN_TYPE for this record type.
    UnknownType { rtype: u8 },
    /// Start the handler for request `id` with a fresh body channel.
    Start { id: u16, params: Params },
    /// Pass body bytes of request `id` to the handler (the loop adds the
    /// further body records of `id` it already holds).
    Feed { id: u16, data: Bytes },
    /// The body ended cleanly: close the handler's body channel.
    EndBody,
    /// Stop feeding the body (the handler is done with it or dropped it).
    DropBody,
    /// Tell the handler its body was cut short, then stop feeding it.
    AbortBody,
    /// Abort the handler task (its response is abandoned).
    CancelHandler,
    /// A request ended: the request timeout starts again.
    RestartRequestTimer,
}

/// The transition function: the next state and what to do, for any input in
/// any state. Pure (no I/O, no clock), so every case, hostile ones
/// included, is unit-tested without sockets.
fn step(state: State, input: Input, max_params_bytes: usize) -> (State, Vec<Action>) {
    use Action as A;
    let fail = |state: &State, close: Close| (State::Closed(close), abort_body(state));
    match input {
        _ if matches!(state, State::Closed(_)) => (state, vec![]),
        Input::Record(rec) => match Message::from_record(rec) {
            Ok(m) => on_message(state, m, max_params_bytes),
            Err(e) => fail(&state, Close::Failed(e.into())),
        },
        Input::Eof => fail(&state, Close::Now),
        Input::ReadFailed(e) => fail(&state, Close::Failed(e)),
        Input::HandlerFailed(e) => fail(&state, Close::Failed(ConnError::Handler(e))),
        Input::WriterGone => fail(&state, Close::Now),
        Input::Idle(_) => fail(&state, Close::Now),
        Input::Stop => match state {
            // A request in progress is let finish.
            State::AwaitingBegin => (State::Closed(Close::Now), vec![]),
            other => (other, vec![]),
        },
        Input::Responded => match state {
            State::Running { req, body } => {
                let mut actions = vec![A::RestartRequestTimer];
                if body == BodyState::Streaming {
                    // The handler is done; stop feeding a body nobody reads.
                    actions.push(A::DropBody);
                }
                (after_request(req), actions)
            }
            other => {
                debug_assert!(false, "a response without a running handler: {other:?}");
                (other, vec![])
            }
        },
        Input::BodyRefused => match state {
            State::Running {
                req,
                body: BodyState::Streaming,
            } => (
                State::Running {
                    req,
                    body: BodyState::Discarding,
                },
                vec![A::DropBody],
            ),
            other => (other, vec![]),
        },
    }
}

/// Leaving a request other than by its response: a handler still reading
/// its body must see an abort, never a clean end (it could commit a
/// truncated upload).
fn abort_body(state: &State) -> Vec<Action> {
    if state.body_open() {
        vec![Action::AbortBody]
    } else {
        vec![]
    }
}

/// After a request: the next one on a kept connection, else close.
fn after_request(req: Req) -> State {
    if req.keep_conn {
        State::AwaitingBegin
    } else {
        State::Closed(Close::Linger)
    }
}

/// [`step`] for one decoded record.
fn on_message(state: State, msg: Message, max_params_bytes: usize) -> (State, Vec<Action>) {
    use Action as A;
    let current = match &state {
        State::ReadingParams { req, .. } | State::Running { req, .. } => Some(*req),
        State::AwaitingBegin | State::Closed(_) => None,
    };
    match msg {
        Message::BeginRequest {
            id,
            role,
            keep_conn,
        } => match current {
            Some(c) if c.id == id => {
                let actions = abort_body(&state);
                (
                    State::Closed(Close::Failed(ConnError::Protocol(
                        "BEGIN_REQUEST for an active id",
                    ))),
                    actions,
                )
            }
            Some(_) => (
                state,
                vec![A::EndRequest {
                    id,
                    status: codec::FCGI_CANT_MPX_CONN,
                }],
            ),
            None if role != codec::FCGI_RESPONDER => {
                let next = if keep_conn {
                    state
                } else {
                    State::Closed(Close::Linger)
                };
                (next, vec![A::RefuseRole { id, role }])
            }
            None => (
                State::ReadingParams {
                    req: Req { id, keep_conn },
                    asm: ParamsAssembler::new(max_params_bytes),
                },
                vec![],
            ),
        },
        Message::Params { id, data } => match state {
            State::ReadingParams { req, mut asm } if req.id == id => {
                if !data.is_empty() {
                    return match asm.push(&data) {
                        Ok(()) => (State::ReadingParams { req, asm }, vec![]),
                        Err(e) => (State::Closed(Close::Failed(e.into())), vec![]),
                    };
                }
                match asm.finish() {
                    Ok(params) => (
                        State::Running {
                            req,
                            body: BodyState::Streaming,
                        },
                        vec![A::Start { id, params }],
                    ),
                    Err(e) => (State::Closed(Close::Failed(e.into())), vec![]),
                }
            }
            // Another request's, or after the empty PARAMS: ignored.
            other => (other, vec![]),
        },
        Message::Stdin { id, data } => match state {
            State::ReadingParams { req, .. } if req.id == id => (
                State::Closed(Close::Failed(ConnError::Protocol(
                    "STDIN before the end of PARAMS",
                ))),
                vec![],
            ),
            State::Running { req, body } if req.id == id => match body {
                BodyState::Complete => (State::Running { req, body }, vec![]),
                _ if data.is_empty() => {
                    let actions = if body == BodyState::Streaming {
                        vec![A::EndBody]
                    } else {
                        vec![]
                    };
                    (
                        State::Running {
                            req,
                            body: BodyState::Complete,
                        },
                        actions,
                    )
                }
                BodyState::Streaming => (State::Running { req, body }, vec![A::Feed { id, data }]),
                BodyState::Discarding => (State::Running { req, body }, vec![]),
            },
            // Another request's (such as the rest of a body the handler
            // answered before reading), or no request: ignored.
            other => (other, vec![]),
        },
        Message::AbortRequest { id } => match current {
            Some(req) if req.id == id => {
                let mut actions = abort_body(&state);
                if state.handler_running() {
                    actions.push(A::CancelHandler);
                }
                actions.push(A::RestartRequestTimer);
                actions.push(A::EndRequest {
                    id,
                    status: codec::FCGI_REQUEST_COMPLETE,
                });
                (after_request(req), actions)
            }
            _ => (state, vec![]),
        },
        Message::GetValues { names } => (state, vec![A::GetValuesResult { names }]),
        Message::Unknown { rtype, .. } => (state, vec![A::UnknownType { rtype }]),
    }
}

/// Drives [`step`] from fuzzer bytes (`crate::fuzz`): each control byte
/// either reads the next record off the rest of the input or delivers one
/// of the other events a connection sees, as the reader loop would (a
/// response only while a handler runs). Checks what no web server, and
/// nothing else that reaches the socket, may make the connection do.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn fuzz_steps(data: &[u8]) {
    use bytes::Buf;
    let mut buf = BytesMut::from(data);
    let mut state = State::AwaitingBegin;
    let mut started: Option<u16> = None;
    for _ in 0..256 {
        let Some(&ctl) = buf.first() else { break };
        buf.advance(1);
        let input = match ctl % 8 {
            0..=4 => match codec::decode_record(&mut buf) {
                Ok(Some(rec)) => Input::Record(rec),
                Ok(None) => Input::Eof,
                Err(e) => Input::ReadFailed(e.into()),
            },
            5 if state.handler_running() => Input::Responded,
            5 => Input::WriterGone,
            6 => Input::BodyRefused,
            _ => Input::Stop,
        };
        let last = matches!(input, Input::Eof | Input::ReadFailed(_));
        let was_closed = matches!(state, State::Closed(_));
        let was_reading = matches!(state, State::ReadingParams { .. });
        let body_open = state.body_open();
        let current = match &state {
            State::ReadingParams { req, .. } | State::Running { req, .. } => Some(req.id),
            _ => None,
        };
        let (next, actions) = step(state, input, 4096);
        assert!(!was_closed || actions.is_empty(), "closed, yet {actions:?}");
        for a in &actions {
            match a {
                Action::Start { id, .. } => {
                    assert!(was_reading && current == Some(*id), "{a:?} for {current:?}");
                    started = Some(*id);
                }
                Action::Feed { id, .. } => assert!(
                    body_open && current == Some(*id) && started == Some(*id),
                    "{a:?} for {current:?}, body open: {body_open}"
                ),
                Action::EndBody | Action::AbortBody => {
                    assert!(body_open, "{a:?} with the body closed")
                }
                _ => {}
            }
        }
        state = next;
        if last {
            break;
        }
    }
}

/// The reader loop: waits for whatever comes next, lets [`step`] decide,
/// and carries out its actions. `Ok(true)`: close after lingering;
/// `Ok(false)`: close now.
async fn read_loop(
    rd: &mut ReadHalf<Stream>,
    buf: &mut BytesMut,
    wtx: mpsc::Sender<Frame>,
    handler: Arc<dyn Handler>,
    limits: &FcgiLimits,
    mut stop: watch::Receiver<bool>,
    pass: &Pass,
) -> Result<bool, ConnError> {
    let idle_deadline = tokio::time::sleep(limits.request_timeout);
    tokio::pin!(idle_deadline);
    let mut state = State::AwaitingBegin;
    // What the state speaks of: the handler task (while `Running`), its
    // body channel (while the body streams) and a batch waiting for room in
    // that channel (while it waits, no record is read: backpressure).
    let mut task: Option<Task> = None;
    let mut body: Option<BodySender> = None;
    let mut pending: Option<BodyBatch> = None;
    if *stop.borrow() {
        return Ok(false);
    }
    loop {
        let running = state.handler_running();
        let input = tokio::select! {
            biased;
            r = join_opt(&mut task) => {
                // A finished handle must not be polled again.
                task = None;
                match r {
                    Ok(Outcome::Completed) => Some(Input::Responded),
                    Ok(Outcome::WriterGone) => Some(Input::WriterGone),
                    Err(e) => Some(Input::HandlerFailed(e)),
                }
            }
            _ = wtx.closed() => Some(Input::WriterGone),
            _ = stop.changed(), if matches!(state, State::AwaitingBegin) => Some(Input::Stop),
            _ = pass.evicted(), if !running => Some(Input::Idle("evicted to make room")),
            _ = &mut idle_deadline, if !running => Some(Input::Idle("request timeout")),
            ok = send_opt(&body, pending.clone()), if pending.is_some() => {
                pending = None;
                (!ok).then_some(Input::BodyRefused)
            }
            r = next_record(rd, buf), if pending.is_none() => Some(match r {
                Ok(Some(rec)) => Input::Record(rec),
                Ok(None) => Input::Eof,
                Err(e) => Input::ReadFailed(e),
            }),
        };
        let Some(input) = input else { continue };
        if let Input::Idle(why) = &input {
            log::debug!("fastcgi: closing a connection waiting for a request: {why}");
        }
        let (next, actions) = step(state, input, limits.max_params_bytes);
        state = next;
        for action in actions {
            let frame = match action {
                Action::EndRequest { id, status } => end_request(id, status),
                Action::RefuseRole { id, role } => {
                    log::warn!("fastcgi: refusing role {role}");
                    end_request(id, codec::FCGI_UNKNOWN_ROLE)
                }
                Action::GetValuesResult { names } => {
                    let mut out = BytesMut::new();
                    codec::encode_get_values_result(&mut out, &names, limits.max_conns);
                    out.freeze()
                }
                Action::UnknownType { rtype } => {
                    let mut out = BytesMut::new();
                    codec::encode_unknown_type(&mut out, rtype);
                    out.freeze()
                }
                Action::Start { id, params } => {
                    let (tx, rx) = Body::channel();
                    body = Some(tx);
                    let req = Request { params, body: rx };
                    task = Some(Task {
                        handle: tokio::spawn(respond(handler.clone(), req, id, wtx.clone())),
                        _busy: pass.busy(),
                    });
                    continue;
                }
                Action::Feed { id, data } => {
                    debug_assert!(body.is_some() && pending.is_none());
                    // Pass on every body record of `id` already read, in one
                    // go (what `step` would feed one by one). One that does
                    // not decode is left for `next_record` to report.
                    let mut batch = vec![data];
                    let mut size = 0;
                    while size < BODY_BATCH {
                        let Ok(Some(more)) = codec::take_stdin(buf, id) else {
                            break;
                        };
                        size += more.len();
                        batch.push(more);
                    }
                    pending = Some(batch);
                    continue;
                }
                Action::EndBody | Action::DropBody => {
                    body = None;
                    pending = None;
                    continue;
                }
                Action::AbortBody => {
                    pending = None;
                    notify_aborted(body.take());
                    continue;
                }
                Action::CancelHandler => {
                    task = None;
                    continue;
                }
                Action::RestartRequestTimer => {
                    idle_deadline
                        .as_mut()
                        .reset(tokio::time::Instant::now() + limits.request_timeout);
                    continue;
                }
            };
            if let Err(e) = send(&wtx, frame).await {
                notify_aborted(body.take());
                return Err(e);
            }
        }
        match state {
            State::Closed(Close::Linger) => return Ok(true),
            State::Closed(Close::Now) => return Ok(false),
            State::Closed(Close::Failed(e)) => return Err(e),
            _ => {
                debug_assert_eq!(task.is_some(), state.handler_running(), "{state:?}");
                debug_assert_eq!(body.is_some(), state.body_open(), "{state:?}");
                debug_assert!(pending.is_none() || body.is_some());
            }
        }
    }
}

/// Queues a frame for the writer.
async fn send(wtx: &mpsc::Sender<Frame>, frame: Bytes) -> Result<(), ConnError> {
    wtx.send(vec![frame])
        .await
        .map_err(|_| ConnError::Protocol("connection closed while answering"))
}

/// An END_REQUEST frame with application status 0.
fn end_request(id: u16, protocol_status: u8) -> Bytes {
    let mut out = BytesMut::new();
    codec::encode_end_request(&mut out, id, 0, protocol_status);
    out.freeze()
}

/// Removes CR and LF so a header value can never split the header block.
fn header_safe(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().filter(|c| *c != '\r' && *c != '\n')
}

/// The CGI response header block for `resp`.
fn head(resp: &Response, content_length: Option<usize>) -> Vec<u8> {
    let mut h = String::with_capacity(128);
    h.push_str(&format!(
        "Status: {} {}\r\nContent-Type: ",
        resp.status,
        reason_phrase(resp.status)
    ));
    h.extend(header_safe(resp.content_type));
    h.push_str("\r\n");
    if let Some(n) = content_length {
        h.push_str(&format!("Content-Length: {n}\r\n"));
    }
    for (name, value) in &resp.headers {
        h.extend(header_safe(name));
        h.push_str(": ");
        h.extend(header_safe(value));
        h.push_str("\r\n");
    }
    h.push_str("X-Accel-Buffering: no\r\n\r\n");
    h.into_bytes()
}

/// Runs the handler and writes its response as STDOUT records.
async fn respond(
    handler: Arc<dyn Handler>,
    req: Request,
    id: u16,
    wtx: mpsc::Sender<Frame>,
) -> Outcome {
    let resp = handler.handle(req).await;
    let mut out = BytesMut::new();
    let finish = |out: &mut BytesMut| {
        codec::encode_stream_end(out, codec::FCGI_STDOUT, id);
        codec::encode_end_request(out, id, 0, codec::FCGI_REQUEST_COMPLETE);
    };
    match resp.body {
        ResponseBody::Full(ref data) => {
            let h = head(&resp, Some(data.len()));
            let mut all = Vec::with_capacity(h.len() + data.len());
            all.extend_from_slice(&h);
            all.extend_from_slice(data);
            codec::encode_stdout(&mut out, id, &all);
            finish(&mut out);
            if wtx.send(vec![out.freeze()]).await.is_err() {
                return Outcome::WriterGone;
            }
        }
        ResponseBody::Stream(_) => {
            // Hold the head back until the first data (or the end): once
            // nginx has passed a response header on, it never resumes
            // sending a request body that met backpressure (its upstream
            // write handler becomes a no-op), so an upload would hang.
            let mut pending_head = Some(head(&resp, None));
            let ResponseBody::Stream(mut rx) = resp.body else {
                return Outcome::WriterGone;
            };
            while let Some(chunk) = rx.recv().await {
                if chunk.is_empty() {
                    continue;
                }
                let mut frame = Frame::new();
                if let Some(h) = pending_head.take() {
                    codec::encode_stdout(&mut out, id, &h);
                    frame.push(out.split().freeze());
                }
                codec::stdout_pieces(id, &chunk, &mut frame);
                if wtx.send(frame).await.is_err() {
                    return Outcome::WriterGone;
                }
            }
            if let Some(h) = pending_head.take() {
                codec::encode_stdout(&mut out, id, &h);
            }
            finish(&mut out);
            if wtx.send(vec![out.freeze()]).await.is_err() {
                return Outcome::WriterGone;
            }
        }
    }
    Outcome::Completed
}

#[cfg(test)]
mod tests {
    //! Every transition of [`step`], driven with records as a web server (or
    //! anything that reaches the socket) may send them; no sockets.
    use super::*;

    const MAX_PARAMS: usize = 1024;

    fn rec(rtype: u8, id: u16, content: &[u8]) -> Input {
        Input::Record(Record {
            rtype,
            request_id: id,
            content: Bytes::copy_from_slice(content),
        })
    }

    fn begin_role(id: u16, role: u16, keep_conn: bool) -> Input {
        let mut out = BytesMut::new();
        codec::encode_begin_request(&mut out, id, role, keep_conn);
        let mut buf = out;
        let r = codec::decode_record(&mut buf).unwrap().unwrap();
        Input::Record(r)
    }

    fn begin(id: u16, keep_conn: bool) -> Input {
        begin_role(id, codec::FCGI_RESPONDER, keep_conn)
    }

    fn params(id: u16, pairs: &[(&str, &str)]) -> Input {
        let data = codec::encode_pairs(pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        rec(codec::FCGI_PARAMS, id, &data)
    }

    fn params_end(id: u16) -> Input {
        rec(codec::FCGI_PARAMS, id, b"")
    }

    fn stdin(id: u16, data: &[u8]) -> Input {
        rec(codec::FCGI_STDIN, id, data)
    }

    fn abort(id: u16) -> Input {
        rec(codec::FCGI_ABORT_REQUEST, id, b"")
    }

    fn go(state: State, input: Input) -> (State, Vec<Action>) {
        step(state, input, MAX_PARAMS)
    }

    /// Steps through `inputs`, expecting no action on the way.
    fn quietly(mut state: State, inputs: Vec<Input>) -> State {
        for i in inputs {
            let desc = format!("{i:?}");
            let (next, actions) = go(state, i);
            assert!(actions.is_empty(), "{desc} gave {actions:?}");
            state = next;
        }
        state
    }

    fn reading_params(id: u16, keep_conn: bool) -> State {
        quietly(State::AwaitingBegin, vec![begin(id, keep_conn)])
    }

    /// A request whose handler runs, its body in `body`.
    fn running(id: u16, keep_conn: bool, body: BodyState) -> State {
        let s = reading_params(id, keep_conn);
        let (s, a) = go(s, params_end(id));
        assert!(matches!(a[..], [Action::Start { id: i, .. }] if i == id));
        let s = match body {
            BodyState::Streaming => s,
            BodyState::Discarding => go(s, Input::BodyRefused).0,
            BodyState::Complete => go(s, stdin(id, b"")).0,
        };
        assert!(
            matches!(s, State::Running { req, body: b } if req == Req { id, keep_conn } && b == body),
            "{s:?}"
        );
        s
    }

    fn assert_running(s: &State, id: u16, body: BodyState) {
        assert!(
            matches!(s, State::Running { req, body: b } if req.id == id && *b == body),
            "{s:?}"
        );
    }

    fn assert_failed(s: &State, what: &str) {
        match s {
            State::Closed(Close::Failed(e)) => {
                assert!(e.to_string().contains(what), "{e} (wanted {what})")
            }
            other => panic!("not failed: {other:?} (wanted {what})"),
        }
    }

    #[test]
    fn a_request_from_begin_to_end() {
        let s = reading_params(1, false);
        assert!(matches!(
            s,
            State::ReadingParams {
                req: Req {
                    id: 1,
                    keep_conn: false
                },
                ..
            }
        ));
        let s = quietly(
            s,
            vec![
                params(1, &[("REQUEST_URI", "/remo/x")]),
                params(1, &[("A", "b")]),
            ],
        );
        let (s, a) = go(s, params_end(1));
        match &a[..] {
            [Action::Start { id: 1, params }] => {
                assert_eq!(params.get_str("REQUEST_URI"), Some("/remo/x"));
                assert_eq!(params.get_str("A"), Some("b"));
            }
            other => panic!("{other:?}"),
        }
        assert_running(&s, 1, BodyState::Streaming);
        let (s, a) = go(s, stdin(1, b"abc"));
        assert_eq!(
            a,
            [Action::Feed {
                id: 1,
                data: Bytes::from_static(b"abc")
            }]
        );
        let (s, a) = go(s, stdin(1, b""));
        assert_eq!(a, [Action::EndBody]);
        assert_running(&s, 1, BodyState::Complete);
        let (s, a) = go(s, Input::Responded);
        assert_eq!(a, [Action::RestartRequestTimer]);
        assert!(matches!(s, State::Closed(Close::Linger)), "{s:?}");
    }

    #[test]
    fn a_kept_connection_takes_the_next_request() {
        let s = running(1, true, BodyState::Complete);
        let (s, a) = go(s, Input::Responded);
        assert_eq!(a, [Action::RestartRequestTimer]);
        assert!(matches!(s, State::AwaitingBegin));
        // The same id again (nginx always uses 1).
        let s = quietly(s, vec![begin(1, true)]);
        let (s, a) = go(s, params_end(1));
        assert!(matches!(a[..], [Action::Start { id: 1, .. }]));
        assert_running(&s, 1, BodyState::Streaming);
    }

    #[test]
    fn answering_before_the_body_ends_stops_feeding_it() {
        let s = running(1, true, BodyState::Streaming);
        let (s, a) = go(s, Input::Responded);
        assert_eq!(a, [Action::RestartRequestTimer, Action::DropBody]);
        // The rest of that body arrives after END_REQUEST: skipped.
        let s = quietly(s, vec![stdin(1, b"late"), stdin(1, b"")]);
        assert!(matches!(s, State::AwaitingBegin));
    }

    #[test]
    fn records_for_another_request_are_ignored_or_refused() {
        // No request yet: stray PARAMS, STDIN, ABORT_REQUEST.
        let s = quietly(
            State::AwaitingBegin,
            vec![
                params(7, &[("A", "b")]),
                params_end(7),
                stdin(7, b"x"),
                stdin(7, b""),
                abort(7),
            ],
        );
        assert!(matches!(s, State::AwaitingBegin));
        // While reading params, and while running: ignored, and a second
        // BEGIN_REQUEST is refused (no multiplexing).
        for s in [
            reading_params(1, false),
            running(1, false, BodyState::Streaming),
            running(1, false, BodyState::Complete),
        ] {
            let before = format!("{s:?}");
            let s = quietly(
                s,
                vec![
                    params(2, &[("A", "b")]),
                    params_end(2),
                    stdin(2, b"x"),
                    stdin(2, b""),
                    abort(2),
                ],
            );
            let (s, a) = go(s, begin(2, true));
            assert_eq!(
                a,
                [Action::EndRequest {
                    id: 2,
                    status: codec::FCGI_CANT_MPX_CONN
                }]
            );
            assert_eq!(format!("{s:?}"), before);
        }
    }

    #[test]
    fn params_after_their_end_are_ignored() {
        let s = running(1, false, BodyState::Streaming);
        let s = quietly(
            s,
            vec![params(1, &[("REMO_KEY_FILE", "/tmp/evil")]), params_end(1)],
        );
        assert_running(&s, 1, BodyState::Streaming);
    }

    #[test]
    fn stdin_before_the_end_of_params_closes_the_connection() {
        let s = quietly(reading_params(1, true), vec![params(1, &[("A", "b")])]);
        let (s, a) = go(s, stdin(1, b"x"));
        assert!(a.is_empty());
        assert_failed(&s, "STDIN before the end of PARAMS");
        let (s, a) = go(reading_params(1, true), stdin(1, b""));
        assert!(a.is_empty());
        assert_failed(&s, "STDIN before the end of PARAMS");
    }

    #[test]
    fn a_second_begin_for_the_active_id_closes_the_connection() {
        let (s, a) = go(reading_params(3, true), begin(3, true));
        assert!(a.is_empty());
        assert_failed(&s, "BEGIN_REQUEST for an active id");
        // A handler reading its body is told it was cut short.
        let (s, a) = go(running(3, true, BodyState::Streaming), begin(3, true));
        assert_eq!(a, [Action::AbortBody]);
        assert_failed(&s, "BEGIN_REQUEST for an active id");
        let (s, a) = go(running(3, true, BodyState::Complete), begin(3, false));
        assert!(a.is_empty());
        assert_failed(&s, "BEGIN_REQUEST for an active id");
    }

    #[test]
    fn abort_request_at_each_stage() {
        // No request: nothing to abort.
        let (s, a) = go(State::AwaitingBegin, abort(1));
        assert!(a.is_empty());
        assert!(matches!(s, State::AwaitingBegin));
        let done = |id| Action::EndRequest {
            id,
            status: codec::FCGI_REQUEST_COMPLETE,
        };
        for keep in [false, true] {
            let after = |s: &State| {
                if keep {
                    assert!(matches!(s, State::AwaitingBegin), "{s:?}");
                } else {
                    assert!(matches!(s, State::Closed(Close::Linger)), "{s:?}");
                }
            };
            // Still reading params: no handler yet.
            let (s, a) = go(reading_params(1, keep), abort(1));
            assert_eq!(a, [Action::RestartRequestTimer, done(1)]);
            after(&s);
            // Running, body streaming: the handler sees the abort, then ends.
            let (s, a) = go(running(1, keep, BodyState::Streaming), abort(1));
            assert_eq!(
                a,
                [
                    Action::AbortBody,
                    Action::CancelHandler,
                    Action::RestartRequestTimer,
                    done(1)
                ]
            );
            after(&s);
            // Running, body complete or discarded: nothing to tell the body.
            for body in [BodyState::Complete, BodyState::Discarding] {
                let (s, a) = go(running(1, keep, body), abort(1));
                assert_eq!(
                    a,
                    [Action::CancelHandler, Action::RestartRequestTimer, done(1)]
                );
                after(&s);
            }
        }
    }

    #[test]
    fn a_refused_role_ends_the_request_not_the_kept_connection() {
        let (s, a) = go(State::AwaitingBegin, begin_role(1, 2, false));
        assert_eq!(a, [Action::RefuseRole { id: 1, role: 2 }]);
        assert!(matches!(s, State::Closed(Close::Linger)));
        let (s, a) = go(State::AwaitingBegin, begin_role(1, 3, true));
        assert_eq!(a, [Action::RefuseRole { id: 1, role: 3 }]);
        assert!(matches!(s, State::AwaitingBegin));
    }

    #[test]
    fn a_body_the_handler_dropped_is_read_and_discarded() {
        let s = running(1, false, BodyState::Streaming);
        let (s, a) = go(s, Input::BodyRefused);
        assert_eq!(a, [Action::DropBody]);
        assert_running(&s, 1, BodyState::Discarding);
        let s = quietly(s, vec![stdin(1, b"more"), stdin(1, b"")]);
        assert_running(&s, 1, BodyState::Complete);
        // After the end of the body, more body records are ignored.
        let s = quietly(
            s,
            vec![stdin(1, b"after"), stdin(1, b""), Input::BodyRefused],
        );
        assert_running(&s, 1, BodyState::Complete);
    }

    #[test]
    fn too_many_params_close_the_connection() {
        let big = "x".repeat(400);
        let s = quietly(
            reading_params(1, true),
            vec![params(1, &[("A", &big)]), params(1, &[("B", &big)])],
        );
        let (s, a) = go(s, params(1, &[("C", &big)]));
        assert!(a.is_empty());
        assert_failed(&s, &format!("params exceed {MAX_PARAMS} bytes"));
        // A stream cut inside a pair fails at its end.
        let s = quietly(
            reading_params(1, true),
            vec![rec(codec::FCGI_PARAMS, 1, &[5, 1, b'a'])],
        );
        let (s, a) = go(s, params_end(1));
        assert!(a.is_empty());
        assert_failed(&s, "truncated name-value pair");
    }

    #[test]
    fn a_flood_of_records_for_other_ids_changes_nothing() {
        let mut s = running(1, false, BodyState::Streaming);
        for i in 0..10_000u16 {
            let id = 2 + i % 100;
            let (next, a) = go(
                s,
                if i % 2 == 0 {
                    stdin(id, b"x")
                } else {
                    params(id, &[("A", "b")])
                },
            );
            assert!(a.is_empty());
            s = next;
        }
        assert_running(&s, 1, BodyState::Streaming);
    }

    #[test]
    fn a_malformed_record_fails_and_aborts_a_streaming_body() {
        let bad = [
            // BEGIN_REQUEST too short.
            rec(codec::FCGI_BEGIN_REQUEST, 1, &[0, 1]),
            // Application records with the management id 0.
            rec(codec::FCGI_STDIN, 0, b"x"),
            rec(codec::FCGI_PARAMS, 0, b""),
            // GET_VALUES with a request id, and with a cut pair.
            rec(codec::FCGI_GET_VALUES, 1, b""),
            rec(codec::FCGI_GET_VALUES, 0, &[9]),
        ];
        for r in bad {
            let desc = format!("{r:?}");
            let (s, a) = go(running(1, true, BodyState::Streaming), r);
            assert_eq!(a, [Action::AbortBody], "{desc}");
            assert!(
                matches!(s, State::Closed(Close::Failed(ConnError::Codec(_)))),
                "{desc}: {s:?}"
            );
        }
    }

    #[test]
    fn management_records_are_answered_in_any_state() {
        let query = codec::encode_pairs([(&b"FCGI_MAX_CONNS"[..], &b""[..])]);
        for s in [
            State::AwaitingBegin,
            reading_params(1, false),
            running(1, false, BodyState::Streaming),
        ] {
            let before = format!("{s:?}");
            let (s, a) = go(s, rec(codec::FCGI_GET_VALUES, 0, &query));
            assert_eq!(
                a,
                [Action::GetValuesResult {
                    names: vec![b"FCGI_MAX_CONNS".to_vec()]
                }]
            );
            // FCGI_DATA (filter role), END_REQUEST from the peer, type 42.
            let mut s = s;
            for (t, id) in [(codec::FCGI_DATA, 1), (codec::FCGI_END_REQUEST, 1), (42, 0)] {
                let (next, a) = go(s, rec(t, id, b""));
                assert_eq!(a, [Action::UnknownType { rtype: t }]);
                s = next;
            }
            assert_eq!(format!("{s:?}"), before);
        }
    }

    #[test]
    fn the_end_of_the_connection_aborts_an_unfinished_body() {
        let (s, a) = go(running(1, true, BodyState::Streaming), Input::Eof);
        assert_eq!(a, [Action::AbortBody]);
        assert!(matches!(s, State::Closed(Close::Now)));
        for s in [
            State::AwaitingBegin,
            reading_params(1, true),
            running(1, true, BodyState::Complete),
            running(1, true, BodyState::Discarding),
        ] {
            let (s, a) = go(s, Input::Eof);
            assert!(a.is_empty());
            assert!(matches!(s, State::Closed(Close::Now)));
        }
        // A read error or a web server that stops reading: the same.
        let (s, a) = go(
            running(1, true, BodyState::Streaming),
            Input::ReadFailed(ConnError::TruncatedRecord),
        );
        assert_eq!(a, [Action::AbortBody]);
        assert_failed(&s, "in the middle of a record");
        let (s, a) = go(running(1, true, BodyState::Streaming), Input::WriterGone);
        assert_eq!(a, [Action::AbortBody]);
        assert!(matches!(s, State::Closed(Close::Now)));
    }

    /// A frame of more pieces than one vectored write takes, and more bytes
    /// than the socket buffers, arrives whole and in order: every partial
    /// write resumes where it stopped, inside a piece or between two.
    #[tokio::test]
    async fn a_frame_is_written_whole_across_partial_vectored_writes() {
        let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
        let (_rd, mut wr) = tokio::io::split(Stream::Unix(a));
        let mut want = Vec::new();
        let mut frame = Frame::new();
        for i in 0..3 * MAX_IOV {
            let piece: Vec<u8> = (0..(i * 7919) % 40_000 + 1)
                .map(|j| (i + j) as u8)
                .collect();
            want.extend_from_slice(&piece);
            frame.push(Bytes::from(piece));
        }
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 1000];
            loop {
                // Small, slow reads, so the writer meets a full socket.
                tokio::task::yield_now().await;
                match b.read(&mut buf).await.unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        write_frame(&mut wr, frame).await.unwrap();
        wr.shutdown().await.unwrap();
        let got = reader.await.unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "the bytes differ");
    }

    #[tokio::test]
    async fn a_failed_handler_closes_the_connection() {
        let e = tokio::spawn(async { panic!("handler bug") })
            .await
            .unwrap_err();
        let (s, a) = go(
            running(1, true, BodyState::Streaming),
            Input::HandlerFailed(e),
        );
        assert_eq!(a, [Action::AbortBody]);
        assert_failed(&s, "handler task failed");
    }

    #[test]
    fn stop_and_idle_close_only_a_connection_waiting_for_a_request() {
        let (s, a) = go(State::AwaitingBegin, Input::Stop);
        assert!(a.is_empty());
        assert!(matches!(s, State::Closed(Close::Now)));
        // A request in progress is let finish.
        let (s, a) = go(reading_params(1, false), Input::Stop);
        assert!(a.is_empty());
        assert!(matches!(s, State::ReadingParams { .. }));
        let (s, a) = go(running(1, false, BodyState::Streaming), Input::Stop);
        assert!(a.is_empty());
        assert_running(&s, 1, BodyState::Streaming);
        // Out of time (or evicted) before the params are in.
        for s in [State::AwaitingBegin, reading_params(1, false)] {
            let (s, a) = go(s, Input::Idle("request timeout"));
            assert!(a.is_empty());
            assert!(matches!(s, State::Closed(Close::Now)));
        }
    }

    #[test]
    fn a_closed_connection_stays_closed() {
        for i in [
            begin(1, true),
            params_end(1),
            stdin(1, b"x"),
            abort(1),
            Input::Stop,
            Input::Eof,
            Input::BodyRefused,
        ] {
            let (s, a) = go(State::Closed(Close::Linger), i);
            assert!(a.is_empty());
            assert!(matches!(s, State::Closed(Close::Linger)));
        }
    }
}
