//! The one request/response shape that both front doors (FastCGI and HTTP)
//! adapt to, so the router never knows which one it is behind.
//!
//! A request is a CGI-style parameter list (bytes, as FastCGI delivers them)
//! plus a streamed body; a response is a status, a few headers and a
//! streamed body. Bodies move through bounded channels so memory stays flat
//! whatever the size of an upload or download.

use bytes::Bytes;
use tokio::sync::mpsc;

/// How many body chunks may wait between a front door and the router.
/// Small on purpose: backpressure must reach the socket.
pub(crate) const BODY_CHANNEL_DEPTH: usize = 4;

/// CGI-style request parameters, kept as bytes (a header may carry any byte).
///
/// For FastCGI these are the params exactly as received. The HTTP front door
/// builds the same names: `REQUEST_METHOD`, `REQUEST_URI`, `SCRIPT_NAME`
/// (empty), `REMOTE_ADDR`, `REMOTE_PORT`, `CONTENT_TYPE`, `CONTENT_LENGTH`,
/// `HTTP_<HEADER>` (upper case, `-` → `_`), and the `REMO_*` configuration
/// values from its own settings.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params(Vec<(Vec<u8>, Vec<u8>)>);

impl Params {
    /// An empty list.
    pub fn new() -> Self {
        Params(Vec::new())
    }

    /// Appends a parameter; the first occurrence of a name wins on lookup,
    /// since web servers put their configured params before client headers.
    pub fn push(&mut self, name: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.0.push((name.into(), value.into()));
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(n, _)| n.as_slice() == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    /// The value of `name` if present and valid UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every parameter in arrival order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.0.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))
    }

    /// Number of parameters.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// Why a request body ended early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The peer closed the connection or aborted before the end of the body.
    #[error("request body aborted by the peer")]
    Aborted,
    /// The front door could not frame the body (bad chunked encoding, bad record).
    #[error("malformed request body: {0}")]
    Malformed(String),
}

/// A streamed request body: chunks in order, then `None` at the clean end.
/// An aborted body yields `Some(Err(..))` before `None`.
#[derive(Debug)]
pub struct Body {
    rx: mpsc::Receiver<Result<BodyBatch, BodyError>>,
    ready: std::collections::VecDeque<Bytes>,
}

/// Chunks a front door passes on at once: the FastCGI reader sends every
/// STDIN record it already holds in one message, so the handler wakes once
/// per socket read rather than once per 32 KiB record.
pub(crate) type BodyBatch = Vec<Bytes>;

/// The producing side of a [`Body`], held by a front door.
pub(crate) type BodySender = mpsc::Sender<Result<BodyBatch, BodyError>>;

impl Body {
    /// A connected pair: the front door feeds the sender.
    pub(crate) fn channel() -> (BodySender, Body) {
        let (tx, rx) = mpsc::channel(BODY_CHANNEL_DEPTH);
        (
            tx,
            Body {
                rx,
                ready: Default::default(),
            },
        )
    }

    /// A body that is already complete (tests, small requests).
    pub fn from_bytes(data: impl Into<Bytes>) -> Body {
        let (tx, body) = Body::channel();
        let data = data.into();
        if !data.is_empty() {
            // Capacity is at least 1, so this cannot fail on a fresh channel.
            let _ = tx.try_send(Ok(vec![data]));
        }
        body
    }

    /// The next chunk; `None` at the end.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, BodyError>> {
        loop {
            if let Some(c) = self.ready.pop_front() {
                return Some(Ok(c));
            }
            match self.rx.recv().await? {
                Ok(batch) => self
                    .ready
                    .extend(batch.into_iter().filter(|c| !c.is_empty())),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// A request as the router sees it.
#[derive(Debug)]
pub struct Request {
    /// CGI-style parameters.
    pub params: Params,
    /// The streamed body.
    pub body: Body,
}

/// The body of a response.
#[derive(Debug)]
pub enum ResponseBody {
    /// A small body sent at once.
    Full(Bytes),
    /// A streamed body: each chunk is written and flushed as soon as it
    /// arrives. The router notices a vanished client when `send` fails or
    /// `Sender::closed()` resolves, so a front door must drop the receiver
    /// as soon as it sees the client go away (write error, EOF on read).
    Stream(mpsc::Receiver<Bytes>),
}

/// A response as the router produces it.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// Further headers (name, value).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: ResponseBody,
}

impl Response {
    /// A complete JSON response.
    pub(crate) fn json(status: u16, body: impl Into<Bytes>) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: ResponseBody::Full(body.into()),
        }
    }

    /// A plain `{"error": "..."}` response for the §5 pre-checks.
    pub fn error(status: u16, message: &str) -> Response {
        let body = serde_json::json!({ "error": message }).to_string();
        Response::json(status, body)
    }
}

/// The reason phrase front doors print with a status.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// What a front door calls for every request. One implementation (the
/// router) serves both front doors; tests may supply their own.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request; the returned response may keep streaming after return.
    fn handle(
        &self,
        req: Request,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send + '_>>;
}
