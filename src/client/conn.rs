//! The client side of remo/1 over HTTP: discovery, the handshake, and
//! streamed sealed requests and responses.
//!
//! Everything is async and works on `&Session`, so tests, benchmarks and the
//! command line share one implementation, and concurrent requests on one
//! session need no locking beyond the request-number counter.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::error::ClientError;
use crate::ops::logout::LogoutDesc;
use crate::ops::{Descriptor, OpName};
use crate::proto::framing::{Framing, RecordSplitter};
use crate::proto::handshake::{AuthResponse, ClientHandshake, HandshakeError};
use crate::proto::identity::{IdentityKey, PublicKey};
use crate::proto::record::{Opener, RecordError, RecordKey, Sealer, MAX_PLAINTEXT};
use crate::proto::response::{classify, OpError, ResponseItem as WireItem};

/// The environment variable that chooses the framing: `auto` (the
/// default: binary where `/info` offers it), `text` or `binary`.
pub(crate) const ENV_FRAMING: &str = "REMO_FRAMING";
/// The header that names the session of a request.
pub(crate) const SESSION_HEADER: &str = "Remo-Session";
/// Longest server error text we read and show (a hostile server cannot flood us).
const MAX_ERROR_BODY: usize = 4096;

/// A stream of data chunks sent as request data records (standard input,
/// file content). Chunks of any size are accepted; larger ones are split.
pub type DataStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send + 'static>>;

type BodyStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send + 'static>>;

/// What `GET {base}/info` tells about a server, so a client can pin its key
/// before it trusts anything else.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerInfo {
    /// Server software name.
    pub name: String,
    /// Server software version.
    pub version: String,
    /// Protocol, `remo/1`.
    pub protocol: String,
    /// b64 of the server's SEC1 public key.
    pub key: String,
    /// The key's fingerprint as the server states it.
    pub fingerprint: String,
    /// The framings the server accepts (§2); a server that omits them
    /// speaks text only. Names we do not know are kept and ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub framings: Vec<String>,
    /// Whether the server trusts a certificate authority (§2, §7).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub certificates: bool,
}

impl ServerInfo {
    /// The framing to send this server: binary when it offers it (less
    /// work on both sides, a quarter fewer bytes), else text.
    pub fn best_framing(&self) -> Framing {
        let binary = self
            .framings
            .iter()
            .any(|f| Framing::from_name(f) == Some(Framing::Binary));
        if binary {
            Framing::Binary
        } else {
            Framing::Text
        }
    }

    /// The server key, checked to be a valid point whose fingerprint is the
    /// one announced (so what a user compares is what we pin).
    pub fn public_key(&self) -> Result<PublicKey, ClientError> {
        let key = PublicKey::from_b64(&self.key)
            .map_err(|e| ClientError::Protocol(format!("server key in /info: {e}")))?;
        if key.fingerprint() != self.fingerprint {
            return Err(ClientError::Protocol(
                "the fingerprint in /info does not match the key in /info".into(),
            ));
        }
        Ok(key)
    }
}

/// Makes text from a server safe to print: printable characters only and
/// bounded length, so a hostile server cannot drive our terminal.
pub(crate) fn sanitize(text: &str) -> String {
    let mut out: String = text
        .chars()
        .filter(|c| !c.is_control() || *c == ' ')
        .take(500)
        .collect();
    if text.chars().count() > 500 {
        out.push('…');
    }
    out
}

/// The URL of an endpoint under a base URL (tolerates a trailing `/`).
pub(crate) fn endpoint(base_url: &str, name: &str) -> String {
    format!("{}/{}", base_url.trim_end_matches('/'), name)
}

/// The HTTP client the commands use: HTTP/1.1, rustls, a connect timeout but
/// no overall timeout (commands and transfers may run for hours).
pub fn http_client() -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .user_agent(concat!("remo/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| ClientError::Local(format!("cannot set up HTTP client: {e}")))
}

/// The HTTP client for one server: as [`http_client`], and for an
/// `https://` server with the trust [`super::tls`] sets up (system store,
/// the host's CA, a pinned certificate). Returns the pin state to ask
/// after a failed connection.
pub(crate) fn http_client_for(
    server: &str,
    tls: &super::tls::TlsOptions,
    pins_path: &std::path::Path,
) -> Result<(reqwest::Client, Option<Arc<super::tls::Pinning>>), ClientError> {
    let builder = reqwest::Client::builder()
        .user_agent(concat!("remo/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(30));
    let (builder, pin) = if server.starts_with("https://") {
        let (config, pin) = super::tls::client_config(server, tls, pins_path)?;
        (builder.use_preconfigured_tls(config), pin)
    } else {
        (builder, None)
    };
    let client = builder
        .build()
        .map_err(|e| ClientError::Local(format!("cannot set up HTTP client: {e}")))?;
    Ok((client, pin))
}

/// `GET {base}/info` with a fresh client.
pub async fn info(base_url: &str) -> Result<ServerInfo, ClientError> {
    info_with(&http_client()?, base_url).await
}

/// `GET {base}/info` with a given client.
pub(crate) async fn info_with(
    http: &reqwest::Client,
    base_url: &str,
) -> Result<ServerInfo, ClientError> {
    let url = endpoint(base_url, "info");
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|e| ClientError::transport(&url, &e))?;
    if !resp.status().is_success() {
        return Err(status_error(resp).await);
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| ClientError::transport(&url, &e))?;
    serde_json::from_slice(&body).map_err(|_| {
        ClientError::Protocol(format!(
            "{url} did not answer like a remo server (is the URL right?)"
        ))
    })
}

/// Turns a non-200 answer into the typed error, with the server's
/// `{"error": …}` text where there is one. An answer without it did not
/// come from remod but from the web server in front of it (its own error
/// page): that is said, with the setting that most likely caused it.
async fn status_error(mut resp: reqwest::Response) -> ClientError {
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    let remod_says = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(sanitize));
    let Some(message) = remod_says else {
        return ClientError::FrontServer {
            status,
            reason: resp
                .status()
                .canonical_reason()
                .unwrap_or("unexpected status")
                .to_string(),
            hint: front_server_hint(status).to_string(),
        };
    };
    match status {
        401 => ClientError::SessionExpired,
        409 => ClientError::Replay,
        413 => ClientError::TooLarge(message),
        _ => ClientError::Http { status, message },
    }
}

/// The likely cause of a web server's own error status in front of remod,
/// and the setting to look at (the shipped nginx/ and apache/ files set
/// them all).
pub(crate) fn front_server_hint(status: u16) -> &'static str {
    match status {
        408 => {
            "it stopped waiting for the request body (a command's standard input was idle): \
             with Apache's mod_reqtimeout set `RequestReadTimeout body=0` for the virtual \
             host (apache/remo-proxy-fcgi.conf); with nginx raise `client_body_timeout`"
        }
        413 => {
            "the request body is over its limit: nginx needs `client_max_body_size 0;`, \
             Apache `LimitRequestBody 0` (remod enforces its own max_request_bytes)"
        }
        502 | 503 => {
            "it cannot reach remod: is remod running, and may the web server's user connect \
             to its socket (group and mode)? The web server's error log says why"
        }
        504 => {
            "remod did not answer in time: raise nginx's `fastcgi_read_timeout` or the \
             `timeout=` of Apache's ProxyPass (the shipped snippets allow 24 h)"
        }
        404 | 405 => {
            "nothing of remod's at this URL: the server URL must end with the prefix remod \
             is mounted at (e.g. https://HOST/remo)"
        }
        401 | 403 => "the web server's own access control refused the request",
        _ => "see the web server's error log",
    }
}

/// Which framing a client sends: what the server offers, or one forced
/// ([`ENV_FRAMING`]; `text` for a front server or proxy that mangles
/// binary bodies, either for tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum FramingChoice {
    /// Binary where `/info` lists it, text elsewhere.
    #[default]
    Auto,
    /// This framing whatever `/info` says.
    Force(Framing),
}

impl FramingChoice {
    /// Parses `auto`, `text` or `binary`.
    pub(crate) fn parse(value: &str) -> Result<FramingChoice, ClientError> {
        match value {
            "auto" => Ok(FramingChoice::Auto),
            other => Framing::from_name(other)
                .map(FramingChoice::Force)
                .ok_or_else(|| {
                    ClientError::Config(format!(
                        "{ENV_FRAMING} must be auto, text or binary, not '{}'",
                        sanitize(other)
                    ))
                }),
        }
    }

    /// From [`ENV_FRAMING`]; unset or empty is `auto`.
    pub(crate) fn from_env() -> Result<FramingChoice, ClientError> {
        match std::env::var(ENV_FRAMING) {
            Ok(v) if !v.is_empty() => Self::parse(&v),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(FramingChoice::Auto),
            Err(std::env::VarError::NotUnicode(_)) => Self::parse("?"),
        }
    }
}

/// Where a session's request numbers come from. A process-local counter
/// for a session used by one process; a locked file for a session cached
/// and shared by many `remo` processes (see `client::cache`).
pub trait RequestNumbers: Send + Sync {
    /// Allocates the next unused request number.
    fn allocate(&self) -> Result<u64, ClientError>;
}

/// Request numbers from an in-memory counter.
#[derive(Debug)]
pub struct CounterNumbers(AtomicU64);

impl CounterNumbers {
    /// A counter whose first number is `first` (1 for a fresh session).
    pub fn new(first: u64) -> Self {
        CounterNumbers(AtomicU64::new(first))
    }
}

impl RequestNumbers for CounterNumbers {
    fn allocate(&self) -> Result<u64, ClientError> {
        Ok(self.0.fetch_add(1, Ordering::Relaxed))
    }
}

/// What identifies a session and its keys, so it can be cached and resumed
/// by a later process. Holds secrets: its `Debug` hides them.
#[derive(Clone)]
pub struct SessionParams {
    /// Server base URL.
    pub base_url: String,
    /// User name.
    pub user: String,
    /// Session id.
    pub sid: String,
    /// Request key.
    pub c2s: Zeroizing<[u8; 32]>,
    /// Response key.
    pub s2c: Zeroizing<[u8; 32]>,
    /// Idle timeout in seconds, as announced by the server.
    pub timeout: u64,
    /// The pinned server key the session was verified against.
    pub server_key: PublicKey,
    /// The framing the server offered when the session began (`/info`),
    /// kept with a cached session so a resumed one needs no `/info`.
    pub framing: Framing,
}

impl std::fmt::Debug for SessionParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionParams")
            .field("base_url", &self.base_url)
            .field("user", &self.user)
            .field("timeout", &self.timeout)
            .field("framing", &self.framing)
            .finish_non_exhaustive()
    }
}

/// An authenticated session: the unit every operation runs in.
pub struct Session {
    http: reqwest::Client,
    params: SessionParams,
    c2s: RecordKey,
    s2c: RecordKey,
    numbers: Arc<dyn RequestNumbers>,
    /// The framing of this process's requests: the offered one, or forced.
    framing: Framing,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Logs in (POST `{base}/auth`) with a fresh HTTP client.
    pub async fn login(
        base_url: &str,
        user: &str,
        identity: &IdentityKey,
        pinned_server_key: &PublicKey,
    ) -> Result<Session, ClientError> {
        Self::login_with(http_client()?, base_url, user, identity, pinned_server_key).await
    }

    /// Logs in with a given HTTP client. The server's M2 signature is checked
    /// against `pinned_server_key` before anything else is done: a session
    /// whose M2 does not verify is never used.
    pub async fn login_with(
        http: reqwest::Client,
        base_url: &str,
        user: &str,
        identity: &IdentityKey,
        pinned_server_key: &PublicKey,
    ) -> Result<Session, ClientError> {
        Self::login_as(http, base_url, user, identity, None, pinned_server_key).await
    }

    /// As [`Session::login_with`], presenting a §7 certificate for the
    /// identity key when one is given.
    pub async fn login_as(
        http: reqwest::Client,
        base_url: &str,
        user: &str,
        identity: &IdentityKey,
        cert: Option<&crate::certfile::CertFile>,
        pinned_server_key: &PublicKey,
    ) -> Result<Session, ClientError> {
        let base_url = base_url.trim_end_matches('/').to_string();
        let url = endpoint(&base_url, "auth");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let (hs, mut req) = ClientHandshake::start(user, identity, now);
        if let Some(c) = cert {
            req.cert = Some(crate::proto::b64::encode(c.text.as_bytes()));
            req.cert_sig = Some(crate::proto::b64::encode(&c.sig));
        }
        let resp = http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(
                serde_json::to_vec(&req)
                    .map_err(|e| ClientError::Local(format!("cannot encode /auth: {e}")))?,
            )
            .send()
            .await
            .map_err(|e| ClientError::transport(&url, &e))?;
        match resp.status().as_u16() {
            200 => {}
            401 => {
                return Err(ClientError::AuthFailed {
                    user: user.to_string(),
                })
            }
            _ => return Err(status_error(resp).await),
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| ClientError::transport(&url, &e))?;
        let auth: AuthResponse = serde_json::from_slice(&body)
            .map_err(|e| ClientError::Protocol(format!("bad /auth answer: {e}")))?;
        // Key derivation (ECDH) runs on another core while the server's
        // signature is checked here; the keys are used only if it verifies.
        let check = hs.answer_check();
        let auth = Arc::new(auth);
        let job = {
            let a = auth.clone();
            tokio::task::spawn_blocking(move || hs.derive(&a))
        };
        let checked = check.verify(&auth, pinned_server_key);
        let derived = job
            .await
            .map_err(|_| ClientError::Local("key derivation failed".into()))?;
        let derived = checked.and(derived);
        let cs = derived.map_err(|e| match e {
            HandshakeError::BadServerSignature => ClientError::BadServerSignature {
                url: base_url.clone(),
            },
            other => ClientError::Protocol(format!("bad /auth answer: {other}")),
        })?;
        let params = SessionParams {
            base_url,
            user: user.to_string(),
            sid: cs.session,
            c2s: cs.keys.c2s,
            s2c: cs.keys.s2c,
            timeout: cs.timeout,
            server_key: pinned_server_key.clone(),
            // Until the caller knows better (`set_framing`): every server
            // speaks text.
            framing: Framing::Text,
        };
        Ok(Self::resume(http, params, Arc::new(CounterNumbers::new(1))))
    }

    /// A session from saved parameters (a cached session), with its request
    /// numbers coming from `numbers`.
    pub fn resume(
        http: reqwest::Client,
        params: SessionParams,
        numbers: Arc<dyn RequestNumbers>,
    ) -> Session {
        Session {
            http,
            c2s: RecordKey::new(&params.c2s),
            s2c: RecordKey::new(&params.s2c),
            framing: params.framing,
            params,
            numbers,
        }
    }

    /// Records `framing` as the one the server offers (cached with the
    /// session) and uses it. A session from [`Session::login_with`] sends
    /// text until told; library users (the bench driver) call this with
    /// [`ServerInfo`]'s offer.
    pub fn set_framing(&mut self, framing: Framing) {
        self.params.framing = framing;
        self.framing = framing;
    }

    /// Uses `framing` for this process's requests only (a forced choice),
    /// leaving what is cached as it is.
    pub(crate) fn force_framing(&mut self, framing: Framing) {
        self.framing = framing;
    }

    /// The session's parameters (for caching).
    pub(crate) fn params(&self) -> &SessionParams {
        &self.params
    }

    /// Replaces the request-number source (once the session is cached, its
    /// file becomes the source so other processes can share it).
    pub(crate) fn set_numbers(&mut self, numbers: Arc<dyn RequestNumbers>) {
        self.numbers = numbers;
    }

    /// Sends one request and returns its response as it streams in.
    ///
    /// Record 0 is `descriptor`; `input` (if any) follows as data records,
    /// and the message ends with an empty `last` record once the input ends.
    /// Without input the descriptor itself is the `last` record. The body is
    /// streamed, and this returns as soon as the response headers arrive, so
    /// output can be read while input is still being sent.
    pub(crate) async fn request<D: Descriptor>(
        &self,
        desc: &D,
        input: Option<DataStream>,
    ) -> Result<ResponseStream, ClientError> {
        let descriptor = serde_json::to_value(desc)
            .map_err(|e| ClientError::Protocol(format!("{} descriptor: {e}", D::NAME)))?;
        self.request_raw(D::NAME, &descriptor, input).await
    }

    /// [`Session::request`] with a descriptor built by hand: for tests and
    /// benchmarks that send what the types would not let them.
    pub async fn request_raw(
        &self,
        name: OpName,
        descriptor: &Value,
        input: Option<DataStream>,
    ) -> Result<ResponseStream, ClientError> {
        let op = name.as_str();
        let r = self.numbers.allocate()?;
        let framing = self.framing;
        let body = request_body(self.c2s.clone(), r, op, descriptor, input, framing)?;
        let url = endpoint(&self.params.base_url, op);
        let resp = self
            .http
            .post(&url)
            .header(SESSION_HEADER, &self.params.sid)
            .header(reqwest::header::CONTENT_TYPE, framing.content_type())
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map_err(|e| ClientError::transport(&url, &e))?;
        if resp.status().as_u16() != 200 {
            return Err(status_error(resp).await);
        }
        // The answer comes in the request's framing (§4.1), nothing else.
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| v.as_bytes())
            .unwrap_or(b"");
        if Framing::from_content_type(ct) != Some(framing) {
            return Err(ClientError::Protocol(format!(
                "response is {}, not {}",
                sanitize(&String::from_utf8_lossy(ct)),
                framing.content_type()
            )));
        }
        Ok(ResponseStream::new(
            Box::pin(resp.bytes_stream()),
            Opener::new(self.s2c.clone(), Some(r), op),
            framing,
        ))
    }

    /// Runs a request without input and collects everything (small operations).
    pub(crate) async fn call<D: Descriptor>(&self, desc: &D) -> Result<Collected, ClientError> {
        self.request(desc, None).await?.collect().await
    }

    /// [`Session::call`] with a descriptor built by hand (tests, benchmarks).
    pub async fn call_raw(
        &self,
        name: OpName,
        descriptor: &Value,
    ) -> Result<Collected, ClientError> {
        self.request_raw(name, descriptor, None)
            .await?
            .collect()
            .await
    }

    /// Ends the session on the server (which ends every process it started).
    pub async fn logout(&self) -> Result<(), ClientError> {
        match self.call(&LogoutDesc {}).await?.result {
            Ok(_) => Ok(()),
            Err(e) => Err(ClientError::Op(e)),
        }
    }
}

/// The sealed request body, in `framing`, as a stream of records.
pub(crate) fn request_body(
    key: RecordKey,
    r: u64,
    op: &str,
    descriptor: &Value,
    input: Option<DataStream>,
    framing: Framing,
) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static, ClientError> {
    let mut sealer = Sealer::new(key, r, op);
    let desc = serde_json::to_vec(descriptor)
        .map_err(|e| ClientError::Local(format!("cannot encode descriptor: {e}")))?;
    let first = sealer
        .seal_bytes(&[&desc], input.is_none(), framing)
        .map_err(|e| ClientError::Local(format!("descriptor: {e}")))?;
    let head = futures_util::stream::once(async move { Ok(first) });
    let tail =
        futures_util::stream::unfold((sealer, input), move |(mut sealer, input)| async move {
            let mut input = input?;
            match input.next().await {
                Some(Ok(chunk)) => {
                    let size = chunk
                        .chunks(MAX_PLAINTEXT)
                        .map(|p| framing.sealed_len(p.len()))
                        .sum();
                    let mut out = Vec::with_capacity(size);
                    for piece in chunk.chunks(MAX_PLAINTEXT) {
                        if let Err(e) = sealer.seal_framed(&[piece], false, framing, &mut out) {
                            return Some((Err(seal_io_error(e)), (sealer, None)));
                        }
                    }
                    Some((Ok(Bytes::from(out)), (sealer, Some(input))))
                }
                Some(Err(e)) => Some((Err(e), (sealer, None))),
                None => match sealer.seal_bytes(&[], true, framing) {
                    Ok(rec) => Some((Ok(rec), (sealer, None))),
                    Err(e) => Some((Err(seal_io_error(e)), (sealer, None))),
                },
            }
        });
    Ok(head.chain(tail))
}

fn seal_io_error(e: RecordError) -> std::io::Error {
    std::io::Error::other(format!("sealing request: {e}"))
}

/// One classified response record.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseItem {
    /// Data or standard output.
    Stdout(Bytes),
    /// Standard error.
    Stderr(Bytes),
    /// The final result: the fields of `{"ok": true, …}` or the operation's error.
    Done(Result<Map<String, Value>, OpError>),
}

/// A response being read as it arrives: split into records (in the
/// request's framing), opened one by one under the request's `R` and
/// operation, and classified.
pub struct ResponseStream {
    body: BodyStream,
    split: RecordSplitter,
    opener: Opener,
    done: bool,
}

impl std::fmt::Debug for ResponseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseStream")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// A whole response, for operations whose output is small.
#[derive(Debug, Clone, PartialEq)]
pub struct Collected {
    /// All data / standard output.
    pub stdout: Vec<u8>,
    /// All standard error.
    pub stderr: Vec<u8>,
    /// The final result.
    pub result: Result<Map<String, Value>, OpError>,
}

impl ResponseStream {
    /// Wraps a response body in `framing` (any byte stream, so tests can
    /// feed one).
    pub(crate) fn new(body: BodyStream, opener: Opener, framing: Framing) -> Self {
        ResponseStream {
            body,
            split: RecordSplitter::new(framing),
            opener,
            done: false,
        }
    }

    /// The next record, `Ok(None)` after the final one. A body that ends
    /// before the final record is [`ClientError::Truncated`].
    pub async fn next(&mut self) -> Result<Option<ResponseItem>, ClientError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let sealed = self
                .split
                .next_record()
                .map_err(|e| ClientError::Protocol(format!("response: {e}")))?;
            if let Some(sealed) = sealed {
                let rec = sealed
                    .open(&mut self.opener)
                    .map_err(|e| ClientError::Protocol(format!("response: {e}")))?;
                let last = rec.last;
                let bytes = rec.into_bytes();
                let item = match classify(&bytes, last)
                    .map_err(|e| ClientError::Protocol(format!("response: {e}")))?
                {
                    WireItem::Stdout(_) => ResponseItem::Stdout(bytes.slice(1..)),
                    WireItem::Stderr(_) => ResponseItem::Stderr(bytes.slice(1..)),
                    WireItem::Done(res) => ResponseItem::Done(
                        res.map_err(|e| OpError::new(e.code, sanitize(&e.message))),
                    ),
                };
                self.done = last;
                return Ok(Some(item));
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.split.push(&chunk),
                Some(Err(_)) | None => return Err(ClientError::Truncated),
            }
        }
    }

    /// Reads the whole response into memory.
    pub(crate) async fn collect(mut self) -> Result<Collected, ClientError> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        while let Some(item) = self.next().await? {
            match item {
                ResponseItem::Stdout(b) => stdout.extend_from_slice(&b),
                ResponseItem::Stderr(b) => stderr.extend_from_slice(&b),
                ResponseItem::Done(result) => {
                    return Ok(Collected {
                        stdout,
                        stderr,
                        result,
                    })
                }
            }
        }
        Err(ClientError::Truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::framing::{open_message_framed, seal_message_framed};
    use crate::proto::record::open_message;

    fn key() -> RecordKey {
        RecordKey::new(&[9u8; 32])
    }

    async fn body_of(input: Option<DataStream>, framing: Framing) -> Vec<u8> {
        let desc = serde_json::json!({"path": "x"});
        let s = request_body(key(), 7, "put", &desc, input, framing).unwrap();
        let parts: Vec<Bytes> = s.map(|r| r.unwrap()).collect().await;
        parts.concat()
    }

    #[tokio::test]
    async fn request_without_input_is_one_last_record() {
        for framing in Framing::ALL {
            let body = body_of(None, framing).await;
            let recs = open_message_framed(&key(), Some(7), "put", &body, framing).unwrap();
            assert_eq!(recs, vec![br#"{"path":"x"}"#.to_vec()], "{framing}");
        }
    }

    #[tokio::test]
    async fn request_data_is_split_and_ends_with_last() {
        for framing in Framing::ALL {
            let big = Bytes::from(vec![5u8; MAX_PLAINTEXT * 2 + 10]);
            let chunks: Vec<std::io::Result<Bytes>> = vec![Ok(Bytes::from_static(b"hi")), Ok(big)];
            let input: DataStream = Box::pin(futures_util::stream::iter(chunks));
            let body = body_of(Some(input), framing).await;
            let recs = open_message_framed(&key(), Some(7), "put", &body, framing).unwrap();
            assert_eq!(recs.len(), 6);
            assert_eq!(recs[1], b"hi");
            assert_eq!(recs[2].len(), MAX_PLAINTEXT);
            assert_eq!(recs[4].len(), 10);
            assert!(recs[5].is_empty());
            let data: usize = recs[1..].iter().map(Vec::len).sum();
            assert_eq!(data, 2 + MAX_PLAINTEXT * 2 + 10);
            // Exactly the records, nothing between them.
            let size: usize = recs.iter().map(|r| framing.sealed_len(r.len())).sum();
            assert_eq!(body.len(), size, "{framing}");
        }
    }

    fn response(body: Vec<u8>, chunk: usize, framing: Framing) -> ResponseStream {
        let chunks: Vec<reqwest::Result<Bytes>> = body
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        ResponseStream::new(
            Box::pin(futures_util::stream::iter(chunks)),
            Opener::new(key(), Some(3), "cmd"),
            framing,
        )
    }

    fn sealed(r: u64, op: &str, recs: &[&[u8]], framing: Framing) -> Vec<u8> {
        seal_message_framed(&key(), r, op, recs, framing).unwrap()
    }

    #[tokio::test]
    async fn response_is_classified_across_chunk_boundaries() {
        for framing in Framing::ALL {
            let recs: [&[u8]; 3] = [b"\x01out", b"\x02err", br#"{"ok":true,"exit":0}"#];
            let body = sealed(3, "cmd", &recs, framing);
            let c = response(body, 5, framing).collect().await.unwrap();
            assert_eq!(c.stdout, b"out");
            assert_eq!(c.stderr, b"err");
            assert_eq!(c.result.unwrap().get("exit"), Some(&Value::from(0)));
        }
    }

    #[tokio::test]
    async fn truncated_or_misdirected_responses_fail() {
        for framing in Framing::ALL {
            let body = sealed(3, "cmd", &[b"\x01out", br#"{"ok":true}"#], framing);
            let cut = body[..framing.sealed_len(4)].to_vec();
            assert!(matches!(
                response(cut, 7, framing).collect().await,
                Err(ClientError::Truncated)
            ));
            let other_r = sealed(4, "cmd", &[br#"{"ok":true}"#], framing);
            assert!(matches!(
                response(other_r, 100, framing).collect().await,
                Err(ClientError::Protocol(_))
            ));
            let other_op = sealed(3, "get", &[br#"{"ok":true}"#], framing);
            assert!(matches!(
                response(other_op, 100, framing).collect().await,
                Err(ClientError::Protocol(_))
            ));
        }
        // A response in the other framing than the request's is refused.
        let text = sealed(3, "cmd", &[br#"{"ok":true}"#], Framing::Text);
        let bin = sealed(3, "cmd", &[br#"{"ok":true}"#], Framing::Binary);
        assert!(response(text, 100, Framing::Binary)
            .collect()
            .await
            .is_err());
        assert!(response(bin, 100, Framing::Text).collect().await.is_err());
        assert!(open_message(&key(), Some(3), "cmd", b"").is_err());
    }

    #[test]
    fn framing_choice_and_offer() {
        assert_eq!(FramingChoice::parse("auto").unwrap(), FramingChoice::Auto);
        assert_eq!(
            FramingChoice::parse("text").unwrap(),
            FramingChoice::Force(Framing::Text)
        );
        assert_eq!(
            FramingChoice::parse("binary").unwrap(),
            FramingChoice::Force(Framing::Binary)
        );
        assert!(FramingChoice::parse("bin").is_err());
        assert!(FramingChoice::parse("").is_err());
        let info = |json: &str| -> ServerInfo { serde_json::from_str(json).unwrap() };
        let base = r#""name":"remo","version":"0","protocol":"remo/1","key":"k","fingerprint":"f""#;
        assert_eq!(info(&format!("{{{base}}}")).best_framing(), Framing::Text);
        let both = format!(r#"{{{base},"framings":["text","binary"],"certificates":true}}"#);
        assert_eq!(info(&both).best_framing(), Framing::Binary);
        let odd = format!(r#"{{{base},"framings":["text","carrier-pigeon"]}}"#);
        assert_eq!(info(&odd).best_framing(), Framing::Text);
    }

    #[test]
    fn sanitize_strips_control_characters() {
        assert_eq!(sanitize("a\x1b[31mb\nc"), "a[31mbc");
        assert_eq!(endpoint("http://h/remo/", "info"), "http://h/remo/info");
    }
}
