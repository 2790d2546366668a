//! Embedded HTTP/1.1 front door, for running `remod` without a web server
//! (behind a TLS-terminating proxy, or on a trusted network).
//!
//! Each request is turned into the same CGI-style [`Params`] the FastCGI
//! front door receives, so the router cannot tell them apart; bodies stream
//! both ways through the bounded channels of [`crate::server::core::request`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::server::core::gate::{Busy, Gate, Pass};
use crate::server::core::request::{
    Body, BodyError, BodySender, Handler, Params, Request, Response, ResponseBody,
};

/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves HTTP/1.1 on `listener` forever. `config` holds the `REMO_*`
/// params appended to every request (client headers can only produce
/// `HTTP_*` names, so they cannot forge these).
pub async fn serve(listener: TcpListener, handler: Arc<dyn Handler>, config: Params) {
    serve_until(listener, handler, config, std::future::pending()).await
}

/// Resource bounds of the embedded front door.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpLimits {
    /// Connections at once. When full, a new connection evicts the oldest
    /// one that is not serving a request (idle keep-alive, or still sending
    /// its head); when every one is busy, the new one is closed.
    pub max_conns: usize,
    /// How long a client may take to send a request head.
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_conns: 4096,
            request_timeout: HEADER_READ_TIMEOUT,
        }
    }
}

/// Like [`serve`], until `shutdown` resolves: then stops accepting, asks
/// every connection to close after its current request, and returns when
/// all are gone.
pub(crate) async fn serve_until(
    listener: TcpListener,
    handler: Arc<dyn Handler>,
    config: Params,
    shutdown: impl std::future::Future<Output = ()>,
) {
    serve_with(listener, handler, config, HttpLimits::default(), shutdown).await
}

/// Like [`serve_until`], with explicit limits.
pub(crate) async fn serve_with(
    listener: TcpListener,
    handler: Arc<dyn Handler>,
    config: Params,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let gate = Gate::new("http connections", limits.max_conns);
    log::info!("http: at most {} connections", gate.max());
    let config = Arc::new(config);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Full of busy connections: close the newcomer at once.
                let Some(pass) = gate.enter() else { continue };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let config = config.clone();
                let stop = stop_rx.clone();
                let timeout = limits.request_timeout;
                tasks.spawn(serve_conn(
                    stream, peer, handler, config, stop, pass, timeout,
                ));
            }
            Err(e) => crate::server::door::fcgi::accept_backoff("http", &e).await,
        }
        while tasks.try_join_next().is_some() {}
    }
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
}

/// Serves one keep-alive connection (any byte stream: a TCP socket, or an
/// in-memory pipe when the fuzzer drives the door).
async fn serve_conn<S>(
    stream: S,
    peer: SocketAddr,
    handler: Arc<dyn Handler>,
    config: Arc<Params>,
    mut stop: watch::Receiver<bool>,
    pass: Pass,
    request_timeout: Duration,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let pass = Arc::new(pass);
    let holder = pass.clone();
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let handler = handler.clone();
        let config = config.clone();
        // Busy from the complete head until the response body is gone.
        let busy = holder.busy();
        async move {
            let mut resp = handle(req, peer, handler, &config).await;
            resp.body_mut().busy = Some(busy);
            Ok::<_, Infallible>(resp)
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(request_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    log::debug!("http connection ({peer}): {e}");
                }
                return;
            }
            _ = pass.evicted() => {
                // Only idle connections are evicted (see gate.rs).
                log::debug!("http connection ({peer}): evicted to make room");
                return;
            }
            c = stop.changed(), if !stopping => {
                stopping = true;
                if c.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Drives the whole embedded HTTP door in-process for the fuzzer
/// (`crate::fuzz`): the bytes go through hyper and this door over an
/// in-memory pipe to a handler that reads the whole body and answers with
/// its length, and what comes back must be HTTP responses. The pipe's
/// write side is closed after the input, so a cut request ends the
/// connection at once instead of waiting for the header timeout.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn fuzz_conn(data: &[u8]) {
    use std::sync::OnceLock;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Reader;
    impl Handler for Reader {
        fn handle(
            &self,
            mut req: crate::server::core::request::Request,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send + '_>> {
            Box::pin(async move {
                let mut n = 0usize;
                while let Some(Ok(c)) = req.body.chunk().await {
                    n += c.len();
                }
                Response::json(200, format!("{{\"read\":{n}}}"))
            })
        }
    }

    static RT: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    let Some(rt) = RT
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()
        })
        .as_ref()
    else {
        return;
    };
    let gate = crate::server::core::gate::Gate::new("fuzz", 1);
    let Some(pass) = gate.enter() else {
        return;
    };
    let out = rt.block_on(async move {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (_stop_tx, stop) = watch::channel(false);
        let peer = SocketAddr::from(([192, 0, 2, 9], 4711));
        let conn = tokio::spawn(serve_conn(
            server,
            peer,
            Arc::new(Reader),
            Arc::new(Params::new()),
            stop,
            pass,
            Duration::from_secs(1),
        ));
        let (mut rd, mut wr) = tokio::io::split(&mut client);
        let write = async {
            let _ = wr.write_all(data).await;
            let _ = wr.shutdown().await;
        };
        let mut out = Vec::new();
        let read = rd.read_to_end(&mut out);
        let _ = tokio::join!(write, read);
        let _ = conn.await;
        out
    });
    assert!(
        out.is_empty() || out.starts_with(b"HTTP/1.1 ") || out.starts_with(b"HTTP/1.0 "),
        "not an HTTP response: {:?}",
        String::from_utf8_lossy(out.get(..out.len().min(64)).unwrap_or(&[]))
    );
}

/// Builds the CGI-style params of an HTTP request.
pub(crate) fn cgi_params<B>(req: &hyper::Request<B>, peer: SocketAddr, config: &Params) -> Params {
    let mut p = Params::new();
    p.push("REQUEST_METHOD", req.method().as_str());
    let uri = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    p.push("REQUEST_URI", uri);
    p.push("SCRIPT_NAME", "");
    p.push("REMOTE_ADDR", peer.ip().to_string());
    p.push("REMOTE_PORT", peer.port().to_string());
    p.push("SERVER_PROTOCOL", format!("{:?}", req.version()));
    let headers = req.headers();
    if let Some(ct) = headers.get(hyper::header::CONTENT_TYPE) {
        p.push("CONTENT_TYPE", ct.as_bytes());
    }
    let chunked = headers
        .get(hyper::header::TRANSFER_ENCODING)
        .is_some_and(|te| !te.as_bytes().is_empty());
    if !chunked {
        if let Some(cl) = headers.get(hyper::header::CONTENT_LENGTH) {
            p.push("CONTENT_LENGTH", cl.as_bytes());
        }
    }
    for (name, value) in headers {
        // `X_Forwarded_For` would become the same param as
        // `X-Forwarded-For`, behind the back of a proxy that only rewrites
        // the real one: header names with underscores are not passed on.
        if name.as_str().contains('_') {
            continue;
        }
        let mut n = Vec::with_capacity(5 + name.as_str().len());
        n.extend_from_slice(b"HTTP_");
        n.extend(name.as_str().bytes().map(|b| {
            if b == b'-' {
                b'_'
            } else {
                b.to_ascii_uppercase()
            }
        }));
        p.push(n, value.as_bytes());
    }
    for (n, v) in config.iter() {
        p.push(n, v);
    }
    p
}

/// Runs the handler on one request, streaming the body in a side task.
async fn handle(
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    handler: Arc<dyn Handler>,
    config: &Params,
) -> hyper::Response<HttpBody> {
    let params = cgi_params(&req, peer, config);
    let (tx, body) = Body::channel();
    let incoming = req.into_body();
    tokio::spawn(pump_body(incoming, tx));
    let resp = handler.handle(Request { params, body }).await;
    to_hyper(resp)
}

/// How much of an unread request body is read and discarded after the
/// handler has answered, so the client can finish sending and read the
/// answer instead of getting a reset (as the FastCGI side's linger does).
const DRAIN_MAX_BYTES: u64 = 256 << 20;
/// How long that draining may take.
const DRAIN_MAX_TIME: Duration = Duration::from_secs(10);

/// Moves request body frames into the channel as they arrive; the bounded
/// channel stops reading the socket when the handler falls behind.
async fn pump_body(mut incoming: Incoming, tx: BodySender) {
    loop {
        let frame = tokio::select! {
            f = incoming.frame() => f,
            // The handler dropped its body: stop passing it on.
            _ = tx.closed() => return drain(incoming).await,
        };
        match frame {
            None => return,
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    if !data.is_empty() && tx.send(Ok(vec![data])).await.is_err() {
                        return drain(incoming).await;
                    }
                }
            }
            Some(Err(e)) => {
                let err = body_error(&e);
                let _ = tx.send(Err(err)).await;
                return;
            }
        }
    }
}

/// Reads and discards what is left of a body, within limits.
async fn drain(mut incoming: Incoming) {
    let mut left = DRAIN_MAX_BYTES;
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, async {
        while let Some(Ok(f)) = incoming.frame().await {
            if let Ok(data) = f.into_data() {
                left = left.saturating_sub(data.len() as u64);
                if left == 0 {
                    break;
                }
            }
        }
    })
    .await;
}

/// Classifies a body read error: bad framing (hyper reports chunked
/// decoding errors as I/O errors of kind InvalidInput/InvalidData) versus a
/// client that went away.
fn body_error(e: &hyper::Error) -> BodyError {
    let io_kind = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .map(|io| io.kind());
    let malformed = e.is_parse()
        || matches!(
            io_kind,
            Some(std::io::ErrorKind::InvalidInput) | Some(std::io::ErrorKind::InvalidData)
        );
    if malformed && !e.is_incomplete_message() {
        BodyError::Malformed(e.to_string())
    } else {
        BodyError::Aborted
    }
}

/// Converts a [`Response`] to hyper's type; `Full` gets a Content-Length,
/// `Stream` goes out chunked.
fn to_hyper(resp: Response) -> hyper::Response<HttpBody> {
    let body = match resp.body {
        ResponseBody::Full(b) => BodyData::Full(Some(b)),
        ResponseBody::Stream(rx) => BodyData::Stream(rx),
    };
    let body = HttpBody {
        data: body,
        busy: None,
    };
    let mut out = hyper::Response::new(body);
    *out.status_mut() = hyper::StatusCode::from_u16(resp.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let h = out.headers_mut();
    if let Ok(v) = hyper::header::HeaderValue::from_str(resp.content_type) {
        h.insert(hyper::header::CONTENT_TYPE, v);
    }
    for (name, value) in resp.headers {
        match (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(&value),
        ) {
            (Ok(n), Ok(v)) => {
                h.append(n, v);
            }
            _ => log::warn!("http: dropping invalid response header {name:?}"),
        }
    }
    out
}

/// A response body: all at once, or chunks as the producer sends them.
/// Dropping it (hyper does when the client vanishes) drops the receiver,
/// which the producer sees as `Sender::closed()`.
pub(crate) struct HttpBody {
    data: BodyData,
    /// Keeps the connection marked busy until the body is gone.
    busy: Option<Busy>,
}

enum BodyData {
    /// A complete body; `None` once sent.
    Full(Option<Bytes>),
    /// A streamed body.
    Stream(mpsc::Receiver<Bytes>),
}

impl std::fmt::Debug for HttpBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.data {
            BodyData::Full(b) => write!(f, "Full({:?} bytes)", b.as_ref().map(Bytes::len)),
            BodyData::Stream(_) => write!(f, "Stream"),
        }
    }
}

impl http_body::Body for HttpBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.get_mut().data {
            BodyData::Full(b) => Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            BodyData::Stream(rx) => loop {
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(c)) if c.is_empty() => continue,
                    Poll::Ready(Some(c)) => return Poll::Ready(Some(Ok(Frame::data(c)))),
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => return Poll::Pending,
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.data, BodyData::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.data {
            BodyData::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            BodyData::Full(None) => SizeHint::with_exact(0),
            BodyData::Stream(_) => SizeHint::default(),
        }
    }
}
