//! The one router behind both front doors: finds the instance and the
//! operation, runs the pre-checks of PROTOCOL.md §5 in their order, and
//! hands a checked request to its operation.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use log::{debug, info, warn};
use percent_encoding::percent_decode;
use tokio::sync::mpsc;

use crate::audit::{now_ms, session_tag, summarize, AuditRecord};
use crate::ops::{Op, OpName};
use crate::proto::b64;
use crate::proto::framing::{Framed, Framing};
use crate::proto::record::{Opener, RecordError, Sealer, MAX_LINE, NONCE_LEN, TAG_LEN};
use crate::proto::response::OpError;
use crate::server::console;
use crate::server::core::auth;
use crate::server::core::config::Defaults;
use crate::server::core::gate::Gate;
use crate::server::core::instance::{Instance, Registry};
use crate::server::core::reject::Reject;
use crate::server::core::request::{Handler, Params, Request, Response, ResponseBody};
use crate::server::core::stream::{
    ReadError, RequestReader, ResponseWriter, RESPONSE_CHANNEL_DEPTH,
};
use crate::server::ops::{self, OpCtx, Outcome};
use crate::server::store::certtrust::CertInfo;

/// The request router: one per process, shared by all connections.
pub struct Router {
    registry: Registry,
    defaults: Defaults,
    /// Requests not yet authenticated (`/auth`): bounded, oldest evicted.
    unauth: Arc<Gate>,
    limits: RouterLimits,
}

/// Daemon-wide bounds of the router (flags of `remod serve`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouterLimits {
    /// Most instances (`--max-instances`).
    pub max_instances: usize,
    /// Most `/auth` requests in progress at once; a new one evicts the
    /// oldest (`--max-unauthenticated`).
    pub max_unauthenticated: usize,
    /// Longest an `/auth` request may take, body included (`--auth-timeout`).
    pub auth_timeout: Duration,
}

/// Default of `--max-unauthenticated`.
pub(crate) const DEFAULT_MAX_UNAUTHENTICATED: usize = 256;
/// Default of `--auth-timeout`, seconds.
pub(crate) const DEFAULT_AUTH_TIMEOUT: u64 = 10;

impl Default for RouterLimits {
    fn default() -> Self {
        RouterLimits {
            max_instances: crate::server::core::instance::DEFAULT_MAX_INSTANCES,
            max_unauthenticated: DEFAULT_MAX_UNAUTHENTICATED,
            auth_timeout: Duration::from_secs(DEFAULT_AUTH_TIMEOUT),
        }
    }
}

impl Router {
    /// A router whose instances fall back to `defaults` where a request has no param.
    pub fn new(defaults: Defaults) -> Arc<Router> {
        Self::with_limits(defaults, RouterLimits::default())
    }

    /// The same, with explicit bounds.
    pub(crate) fn with_limits(defaults: Defaults, limits: RouterLimits) -> Arc<Router> {
        Arc::new(Router {
            registry: Registry::new(limits.max_instances),
            defaults,
            unauth: Gate::new("unauthenticated requests", limits.max_unauthenticated),
            limits,
        })
    }

    /// The loaded instances (reaping, shutdown, tests).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Starts the periodic reaper of expired sessions.
    pub(crate) fn spawn_reaper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                let Some(r) = weak.upgrade() else { break };
                let n = r.registry.reap();
                if n > 0 {
                    info!("ended {n} expired session(s)");
                }
            }
        });
    }

    async fn route(&self, req: Request) -> Response {
        let params = &req.params;
        let method = params.get_str("REQUEST_METHOD").unwrap_or("").to_string();
        let remote = params.get_str("REMOTE_ADDR").unwrap_or("-").to_string();
        // The instance and the mount prefix are settled here, once.
        let selection = self.defaults.select(params);
        // The browser console's static files (no session, no instance).
        let path = request_path(params);
        if let Some(r) = path
            .as_deref()
            .and_then(|p| console::EMBEDDED.route(&method, p, selection.base.as_deref()))
        {
            return r;
        }
        let Some(op) = request_op(params, selection.base.as_deref()) else {
            return Reject::NotFound.response();
        };
        let is_get = method == "GET" || method == "HEAD";
        let sealed = match op.as_str() {
            "info" if !is_get => return Reject::MethodNotAllowed.response(),
            "info" | "auth" => None,
            o => match OpName::parse(o) {
                Some(n) => Some(n),
                None => return Reject::UnknownOperation.response(),
            },
        };
        if op != "info" && method != "POST" {
            return Reject::MethodNotAllowed.response();
        }
        // The registry logs why (once per reason); the peer learns nothing.
        let Ok(inst) = self.registry.get(&selection.instance) else {
            return Reject::Configuration.response();
        };
        match (sealed, op.as_str()) {
            (Some(name), _) => operation(inst, name, req, remote).await,
            (None, "info") => auth::info(&inst),
            (None, _) => self.auth(&inst, req, &remote).await,
        }
    }
}

impl Router {
    /// `/auth` under the unauthenticated bounds: a total time limit, and a
    /// place in [`Router::unauth`] that a newer request may take when all
    /// are in use (so slow or endless bodies cannot lock logins out).
    async fn auth(&self, inst: &Instance, req: Request, remote: &str) -> Response {
        let Some(pass) = self.unauth.enter() else {
            return Reject::Busy.response();
        };
        tokio::select! {
            r = tokio::time::timeout(self.limits.auth_timeout, auth::auth(inst, req.body, remote)) => {
                r.unwrap_or_else(|_| {
                    info!("{remote} - auth 408 not complete within {:?}", self.limits.auth_timeout);
                    Reject::AuthTimeout.response()
                })
            }
            _ = pass.evicted() => {
                debug!("{remote} - auth 503 evicted by a newer unauthenticated request");
                Reject::Busy.response()
            }
        }
    }
}

impl Handler for Router {
    fn handle(
        &self,
        req: Request,
    ) -> Pin<Box<dyn std::future::Future<Output = Response> + Send + '_>> {
        Box::pin(self.route(req))
    }
}

/// The operation named by the request path: the segment after the mount
/// prefix (when one is configured), else the last segment. Routes on the raw
/// `REQUEST_URI`, as the web servers' decoded paths differ (FASTCGI-NOTES).
pub(crate) fn request_op(params: &Params, base: Option<&str>) -> Option<String> {
    let path = request_path(params)?;
    let path = path.as_slice();
    let rest: &[u8] = match base {
        Some(b) => {
            let b = b.trim_end_matches('/').as_bytes();
            let rest = path.strip_prefix(b)?;
            rest.strip_prefix(b"/")?
        }
        None => path.rsplit(|&c| c == b'/').next().unwrap_or(path),
    };
    if rest.is_empty() || rest.contains(&b'/') {
        return None;
    }
    percent_decode(rest)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
        .filter(|s| !s.is_empty())
}

/// The raw request path, without the query: `REQUEST_URI`, else
/// `SCRIPT_NAME` + `PATH_INFO`.
fn request_path(params: &Params) -> Option<Vec<u8>> {
    let uri = params.get("REQUEST_URI").map(|u| u.to_vec()).or_else(|| {
        let mut s = params.get("SCRIPT_NAME").unwrap_or(b"").to_vec();
        s.extend_from_slice(params.get("PATH_INFO").unwrap_or(b""));
        Some(s)
    })?;
    let end = uri.iter().position(|&b| b == b'?').unwrap_or(uri.len());
    let mut uri = uri;
    uri.truncate(end);
    Some(uri)
}

/// The framing a request's body is in: binary only when its content type
/// says `application/x-remo-bin` (§4.1); anything else, no content type
/// included, is the text framing every client could always send.
pub(crate) fn request_framing(params: &Params) -> Framing {
    params
        .get("CONTENT_TYPE")
        .and_then(Framing::from_content_type)
        .unwrap_or(Framing::Text)
}

/// The syntax checks on a request's first record (→ 400/413) before it is
/// opened. A binary record's length was checked as it was cut.
fn check_first_record(rec: &Framed) -> Result<(), Reject> {
    let Framed::Line(line) = rec else {
        return Ok(());
    };
    if line.len() > MAX_LINE {
        return Err(Reject::RecordTooLarge);
    }
    match b64::decode_bytes(line) {
        Ok(raw) if raw.len() >= NONCE_LEN + TAG_LEN => Ok(()),
        _ => Err(Reject::MalformedRecord),
    }
}

fn read_reject(e: &ReadError) -> Reject {
    match e {
        ReadError::Record(RecordError::LineTooLong) => Reject::RecordTooLarge,
        ReadError::Record(RecordError::TooLarge) => Reject::RecordTooLarge,
        ReadError::Record(RecordError::LengthTooLarge(_)) => Reject::RecordTooLarge,
        ReadError::Record(RecordError::LengthTooSmall(_)) => Reject::MalformedRecord,
        ReadError::TooLarge(_) => Reject::BodyTooLarge,
        ReadError::Record(RecordError::PartialLine) => Reject::NoFinalCrlf,
        ReadError::Record(RecordError::PartialRecord) => Reject::PartialRecord,
        ReadError::Body(_) => Reject::BodyAborted,
        _ => Reject::MalformedBody,
    }
}

/// What a failed pre-check is audited with.
struct Precheck<'a> {
    inst: &'a Instance,
    remote: &'a str,
    sid: &'a str,
    op: &'a str,
    started: Instant,
    time_ms: i64,
}

impl Precheck<'_> {
    fn audit(&self, user: &str, cert: Option<&CertInfo>, outcome: &str) {
        self.inst.audit.record(AuditRecord {
            time_ms: self.time_ms,
            user: user.to_string(),
            remote: self.remote.to_string(),
            session: session_tag(self.sid),
            op: self.op.to_string(),
            summary: String::new(),
            outcome: outcome.to_string(),
            exit: None,
            bytes_in: 0,
            bytes_out: 0,
            duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            cert: cert.map(CertInfo::label).unwrap_or_default(),
        });
    }
}

/// The §5 checks for a sealed operation, then the operation in its own task.
async fn operation(inst: Arc<Instance>, op: OpName, req: Request, remote: String) -> Response {
    let started = Instant::now();
    let Some(sid) = req.params.get_str("HTTP_REMO_SESSION").map(str::to_string) else {
        return Reject::MissingSession.response();
    };
    let pre = Precheck {
        inst: &inst,
        remote: &remote,
        sid: &sid,
        op: op.as_str(),
        started,
        time_ms: now_ms(),
    };
    // §5: the checks that need no body come before any body byte is read,
    // so a request for an unknown session costs no read (and a body that
    // never ends cannot hold the connection).
    let Some(session) = inst.sessions.get(&sid) else {
        info!("{remote} - {op} 401 unknown or expired session");
        pre.audit("-", None, "401 unknown or expired session");
        return Reject::UnknownSession.response();
    };
    let framing = request_framing(&req.params);
    let mut reader = RequestReader::new(req.body, inst.limits.max_request_bytes, framing);
    let first = match reader.next_record().await {
        Ok(Some(r)) => r,
        Ok(None) => return Reject::EmptyBody.response(),
        Err(e) => return read_reject(&e).response(),
    };
    if let Err(r) = check_first_record(&first) {
        return r.response();
    }
    let mut opener = Opener::new(session.c2s.clone(), None, op.as_str());
    let rec0 = match first.open(&mut opener) {
        Ok(r) => r,
        Err(RecordError::TooLarge) => return Reject::RecordTooLarge.response(),
        Err(RecordError::OutOfOrder) => return Reject::NotRecordZero.response(),
        Err(_) => {
            warn!(
                "{remote} {} {op} 401 record does not authenticate",
                session.user
            );
            pre.audit(
                &session.user,
                session.cert.as_ref(),
                "401 record does not authenticate",
            );
            return Reject::NotAuthentic.response();
        }
    };
    // Opening record 0 sets the request number; were it missing, treating
    // it as 0 would let the replay window be bypassed.
    let Some(r) = opener.request_number() else {
        debug_assert!(false, "record 0 opened without a request number");
        return Reject::Internal.response();
    };
    if let Err(e) = session.accept_request(r) {
        warn!("{remote} {} {op} 409 {e} (R={r})", session.user);
        pre.audit(
            &session.user,
            session.cert.as_ref(),
            "409 request number already used or too old",
        );
        return Reject::Replayed.response();
    }
    reader.set_opener(opener);
    let descriptor: Bytes = rec0.into_bytes();
    let time_ms = pre.time_ms;
    let (tx, rx) = mpsc::channel(RESPONSE_CHANNEL_DEPTH);
    let sealer = Sealer::new(session.s2c.clone(), r, op.as_str());
    let mut writer = ResponseWriter::new(tx, sealer, framing);
    // Every X-Forwarded-For line, in order: a proxy may append its own line
    // after the client's (HAProxy's `option forwardfor`).
    let forwarded_for = crate::firewall::addr::join_forwarded_for(
        req.params
            .iter()
            .filter(|(n, _)| *n == b"HTTP_X_FORWARDED_FOR")
            .map(|(_, v)| v),
    );
    tokio::spawn(async move {
        let ctx = OpCtx {
            inst,
            session,
            remote,
            forwarded_for,
            op,
        };
        let mut input = reader;
        // The descriptor is decoded once, here.
        let result = match Op::decode(op, &descriptor) {
            Ok(o) => ops::run(&ctx, o, &mut input, &mut writer).await,
            Err(e) => Err(OpError::bad_request(e.to_string())),
        };
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => e.code.as_str().to_string(),
        };
        let sent = writer.bytes_sent();
        let exit = result.as_ref().ok().and_then(Outcome::exit).map(i64::from);
        let result = result.map(Outcome::into_fields);
        ctx.inst.audit.record(AuditRecord {
            time_ms,
            user: ctx.session.user.clone(),
            remote: ctx.remote.clone(),
            session: session_tag(&ctx.session.id),
            op: ctx.op.as_str().to_string(),
            summary: summarize(&descriptor),
            outcome: outcome.clone(),
            exit,
            bytes_in: input.bytes_received(),
            bytes_out: sent,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            cert: ctx
                .session
                .cert
                .as_ref()
                .map(|c| c.label())
                .unwrap_or_default(),
        });
        crate::server::metrics::global().request(
            ctx.op.as_str(),
            &outcome,
            started.elapsed(),
            (input.bytes_received(), sent),
        );
        // Audited before the result goes out, so a client that saw the
        // result finds the row queued in order.
        // The result waits for room behind the answer only while the
        // session lives and the client takes data within
        // `transfer_idle_timeout`: an ended session's stalled answer is
        // dropped (the client sees it cut short), not held. Biased: a
        // result with room to go (a `logout`'s) goes even though its own
        // session just ended.
        let idle = ctx.inst.limits.transfer_idle();
        let gone = tokio::select! {
            biased;
            r = writer.finish(&result) => r.is_err(),
            _ = ctx.session.cancel.cancelled() => true,
            _ = async {
                match idle {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            } => true,
        };
        info!(
            "{} {} {} {}{} in={} out={} {}ms framing={}",
            ctx.remote,
            ctx.session.user,
            ctx.op,
            outcome,
            if gone { " (client gone)" } else { "" },
            input.bytes_received(),
            sent,
            started.elapsed().as_millis(),
            framing
        );
    });
    // §4.1: a binary request gets a binary response (§5's table names
    // only the text content type, written before §4.1).
    Response {
        status: 200,
        content_type: framing.content_type(),
        headers: vec![("Cache-Control", "no-store".to_string())],
        body: ResponseBody::Stream(rx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(uri: &str) -> Params {
        let mut p = Params::new();
        p.push("REQUEST_URI", uri);
        p
    }

    #[test]
    fn routes_on_raw_uri() {
        assert_eq!(request_op(&p("/remo/cmd"), None).as_deref(), Some("cmd"));
        assert_eq!(
            request_op(&p("/remo/cmd?x=1"), None).as_deref(),
            Some("cmd")
        );
        assert_eq!(request_op(&p("/cmd"), None).as_deref(), Some("cmd"));
        assert_eq!(request_op(&p("/remo/c%6Dd"), None).as_deref(), Some("cmd"));
        assert_eq!(
            request_op(&p("/remo/cmd"), Some("/remo")).as_deref(),
            Some("cmd")
        );
        assert_eq!(
            request_op(&p("/remo/cmd"), Some("/remo/")).as_deref(),
            Some("cmd")
        );
        assert_eq!(request_op(&p("/other/cmd"), Some("/remo")), None);
        assert_eq!(request_op(&p("/remo/x/cmd"), Some("/remo")), None);
        assert_eq!(request_op(&p("/info"), Some("/")).as_deref(), Some("info"));
        assert_eq!(request_op(&p("/remo/info"), Some("/")), None);
        assert_eq!(request_op(&p("/"), Some("/")), None);
        assert_eq!(request_op(&p("/remo/"), None), None);
        assert_eq!(request_op(&p("/remo/%ff"), None), None);
    }
}
