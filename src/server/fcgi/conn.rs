//! One FastCGI connection: a reader loop (records in, body out) and a
//! writer task (records out), running at the same time so a response can
//! stream while the request body is still arriving.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinHandle};

use super::codec::{self, CodecError, Message, ParamsAssembler, Record};
use super::FcgiLimits;
use crate::server::gate::{Busy, Pass};
use crate::server::listen::{Peer, Stream};
use crate::server::request::{
    reason_phrase, Body, BodyBatch, BodyError, BodySender, Handler, Request, Response, ResponseBody,
};

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
    let (wtx, wrx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
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

/// Writes and flushes each frame as it comes; a write error ends the task,
/// which closes the channel and so tells every sender the peer is gone.
async fn write_loop(mut wr: WriteHalf<Stream>, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(frame) = rx.recv().await {
        if let Err(e) = wr.write_all(&frame).await {
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

/// What woke the reader loop.
enum Event {
    TaskDone(Result<Outcome, JoinError>),
    WriterGone,
    Stop,
    /// Waiting for a request: evicted to make room, or out of time.
    Idle(&'static str),
    BodySent(bool),
    Read(Result<Option<Record>, ConnError>),
}

/// The current request on this connection.
struct Current {
    id: u16,
    keep_conn: bool,
}

/// The reader loop. `Ok(true)`: close after lingering; `Ok(false)`: close now.
async fn read_loop(
    rd: &mut ReadHalf<Stream>,
    buf: &mut BytesMut,
    wtx: mpsc::Sender<Bytes>,
    handler: Arc<dyn Handler>,
    limits: &FcgiLimits,
    mut stop: watch::Receiver<bool>,
    pass: &Pass,
) -> Result<bool, ConnError> {
    let idle_deadline = tokio::time::sleep(limits.request_timeout);
    tokio::pin!(idle_deadline);
    let mut cur: Option<Current> = None;
    let mut params: Option<ParamsAssembler> = None;
    let mut body: Option<BodySender> = None;
    let mut body_complete = false;
    let mut pending: Option<BodyBatch> = None;
    let mut task: Option<Task> = None;
    let stopping = *stop.borrow();
    if stopping {
        return Ok(false);
    }
    loop {
        let idle = cur.is_none() && task.is_none();
        let ev = tokio::select! {
            biased;
            r = join_opt(&mut task) => Event::TaskDone(r),
            _ = wtx.closed() => Event::WriterGone,
            _ = stop.changed(), if idle => Event::Stop,
            _ = pass.evicted(), if task.is_none() => Event::Idle("evicted to make room"),
            _ = &mut idle_deadline, if task.is_none() => Event::Idle("request timeout"),
            ok = send_opt(&body, pending.clone()), if pending.is_some() => Event::BodySent(ok),
            r = next_record(rd, buf), if pending.is_none() => Event::Read(r),
        };
        match ev {
            Event::TaskDone(r) => {
                task = None;
                idle_deadline
                    .as_mut()
                    .reset(tokio::time::Instant::now() + limits.request_timeout);
                match r {
                    Ok(Outcome::Completed) => {
                        let keep = cur.as_ref().is_some_and(|c| c.keep_conn);
                        cur = None;
                        params = None;
                        // The handler is done; stop feeding a body nobody reads.
                        body = None;
                        pending = None;
                        if !keep {
                            return Ok(true);
                        }
                    }
                    Ok(Outcome::WriterGone) => return Ok(false),
                    Err(e) => return Err(ConnError::Handler(e)),
                }
            }
            Event::WriterGone => return Ok(false),
            Event::Stop => return Ok(false),
            Event::Idle(why) => {
                log::debug!("fastcgi: closing a connection waiting for a request: {why}");
                notify_aborted(body.take());
                return Ok(false);
            }
            Event::BodySent(ok) => {
                pending = None;
                if !ok {
                    // The handler dropped its body: discard the rest.
                    body = None;
                }
            }
            Event::Read(Err(e)) => {
                notify_aborted(body.take());
                return Err(e);
            }
            Event::Read(Ok(None)) => {
                // The web server closed the connection: the client is gone
                // (or the request is over). Abort whatever is running.
                if cur.is_some() && !body_complete {
                    notify_aborted(body.take());
                }
                return Ok(false);
            }
            Event::Read(Ok(Some(rec))) => match Message::from_record(rec)? {
                Message::BeginRequest {
                    id,
                    role,
                    keep_conn,
                } => {
                    if let Some(c) = &cur {
                        if c.id == id {
                            return Err(ConnError::Protocol("BEGIN_REQUEST for an active id"));
                        }
                        send(&wtx, end_request(id, codec::FCGI_CANT_MPX_CONN)).await?;
                        continue;
                    }
                    if task.is_some() {
                        // The previous response is still being written.
                        send(&wtx, end_request(id, codec::FCGI_CANT_MPX_CONN)).await?;
                        continue;
                    }
                    if role != codec::FCGI_RESPONDER {
                        log::warn!("fastcgi: refusing role {role}");
                        send(&wtx, end_request(id, codec::FCGI_UNKNOWN_ROLE)).await?;
                        if !keep_conn {
                            return Ok(true);
                        }
                        continue;
                    }
                    cur = Some(Current { id, keep_conn });
                    params = Some(ParamsAssembler::new(limits.max_params_bytes));
                    body = None;
                    body_complete = false;
                }
                Message::Params { id, data } => {
                    if cur.as_ref().map(|c| c.id) != Some(id) {
                        continue;
                    }
                    let Some(asm) = params.as_mut() else {
                        continue;
                    };
                    if !data.is_empty() {
                        asm.push(&data)?;
                        continue;
                    }
                    let Some(asm) = params.take() else { continue };
                    let p = asm.finish()?;
                    let (tx, rx) = Body::channel();
                    body = Some(tx);
                    let req = Request {
                        params: p,
                        body: rx,
                    };
                    let h = handler.clone();
                    let w = wtx.clone();
                    task = Some(Task {
                        handle: tokio::spawn(respond(h, req, id, w)),
                        _busy: pass.busy(),
                    });
                }
                Message::Stdin { id, data } => {
                    if cur.as_ref().map(|c| c.id) != Some(id) {
                        continue;
                    }
                    if params.is_some() {
                        return Err(ConnError::Protocol("STDIN before the end of PARAMS"));
                    }
                    if body_complete {
                        continue;
                    }
                    if data.is_empty() {
                        body_complete = true;
                        body = None;
                    } else if body.is_some() {
                        // Pass on every body record already read, in one go.
                        let mut batch = vec![data];
                        let mut size = 0;
                        while size < BODY_BATCH {
                            let Some(more) = codec::take_stdin(buf, id)? else {
                                break;
                            };
                            size += more.len();
                            batch.push(more);
                        }
                        pending = Some(batch);
                    }
                }
                Message::AbortRequest { id } => {
                    let Some(c) = &cur else { continue };
                    if c.id != id {
                        continue;
                    }
                    let keep = c.keep_conn;
                    notify_aborted(body.take());
                    task = None;
                    idle_deadline
                        .as_mut()
                        .reset(tokio::time::Instant::now() + limits.request_timeout);
                    cur = None;
                    params = None;
                    send(&wtx, end_request(id, codec::FCGI_REQUEST_COMPLETE)).await?;
                    if !keep {
                        return Ok(true);
                    }
                }
                Message::GetValues { names } => {
                    let mut out = BytesMut::new();
                    codec::encode_get_values_result(&mut out, &names, limits.max_conns);
                    send(&wtx, out.freeze()).await?;
                }
                Message::Unknown { rtype, .. } => {
                    let mut out = BytesMut::new();
                    codec::encode_unknown_type(&mut out, rtype);
                    send(&wtx, out.freeze()).await?;
                }
            },
        }
    }
}

/// Queues a frame for the writer.
async fn send(wtx: &mpsc::Sender<Bytes>, frame: Bytes) -> Result<(), ConnError> {
    wtx.send(frame)
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
    wtx: mpsc::Sender<Bytes>,
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
            if wtx.send(out.freeze()).await.is_err() {
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
                if let Some(h) = pending_head.take() {
                    codec::encode_stdout(&mut out, id, &h);
                }
                codec::encode_stdout(&mut out, id, &chunk);
                if wtx.send(out.split().freeze()).await.is_err() {
                    return Outcome::WriterGone;
                }
            }
            if let Some(h) = pending_head.take() {
                codec::encode_stdout(&mut out, id, &h);
            }
            finish(&mut out);
            if wtx.send(out.freeze()).await.is_err() {
                return Outcome::WriterGone;
            }
        }
    }
    Outcome::Completed
}
