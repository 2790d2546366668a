//! `/info` and `/auth` (PROTOCOL.md §2–§3): discovery and the handshake
//! that creates a session. No session exists before a successful auth.

use std::sync::OnceLock;
use std::time::Duration;

use log::{info, warn};

use crate::audit::{now_ms, session_tag, AuditRecord};
use crate::perms::Grants;
use crate::proto::cert::Certificate;
use crate::proto::framing::Framing;
use crate::proto::handshake::{
    new_session_id, server_answer, server_keys, HandshakeError, ParsedAuth, MAX_AUTH_BODY,
    MAX_SKEW_SECS,
};
use crate::proto::identity::{IdentityKey, PublicKey};
use crate::server::core::instance::{unix_now, Instance};
use crate::server::core::reject::Reject;
use crate::server::core::request::{Body, Response};
use crate::server::store::certtrust::{CertInfo, CertRefusal};
use crate::userdb::User;

/// `GET {base}/info`. `framings` tells clients they may send the binary
/// framing (§4.1); `certificates` that this server trusts a certificate
/// authority (§7), so a client with a certificate sends it.
pub(crate) fn info(inst: &Instance) -> Response {
    let framings: Vec<&str> = Framing::ALL.iter().map(|f| f.name()).collect();
    let mut body = serde_json::json!({
        "name": "remo",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": "remo/1",
        "key": inst.public.to_b64(),
        "fingerprint": inst.public.fingerprint(),
        "framings": framings,
    });
    if inst.certs.enabled() {
        body["certificates"] = serde_json::Value::Bool(true);
    }
    Response::json(200, body.to_string())
}

/// Reads a small body whole, refusing more than `max` bytes.
async fn read_small(mut body: Body, max: usize) -> Result<Vec<u8>, Reject> {
    let mut buf = Vec::new();
    while let Some(chunk) = body.chunk().await {
        let chunk = chunk.map_err(|_| Reject::BodyAborted)?;
        if buf.len() + chunk.len() > max {
            return Err(Reject::AuthTooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// A key that no user has, so an unknown user costs the same signature
/// check as a known one and the 401 says nothing about which check failed.
fn decoy_key() -> &'static PublicKey {
    static DECOY: OnceLock<PublicKey> = OnceLock::new();
    DECOY.get_or_init(|| IdentityKey::generate().public())
}

fn failed() -> Response {
    Reject::AuthFailed.response()
}

/// Why a login failed, for the log and the audit only (the peer is told
/// just "authentication failed").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthFailure {
    UserDisabled,
    UnknownUser,
    ClockSkew,
    BadSignature,
    Replayed,
    /// A §7 check of the server's own (CA, window, host, revocation).
    Cert(CertRefusal),
    /// The certificate is for another user name than the body's.
    CertUser,
}

impl AuthFailure {
    fn as_str(self) -> &'static str {
        match self {
            AuthFailure::UserDisabled => "user disabled",
            AuthFailure::UnknownUser => "unknown user",
            AuthFailure::ClockSkew => "clock skew",
            AuthFailure::BadSignature => "bad signature",
            AuthFailure::Replayed => "replayed auth",
            AuthFailure::Cert(r) => r.as_str(),
            AuthFailure::CertUser => "certificate: for another user",
        }
    }
}

/// Audits a login attempt under the claimed user name.
fn audit_auth(
    inst: &Instance,
    who: (&str, Option<&CertInfo>),
    remote: &str,
    session: &str,
    outcome: &str,
    started: (i64, std::time::Instant),
) {
    inst.audit.record(AuditRecord {
        time_ms: started.0,
        user: who.0.to_string(),
        remote: remote.to_string(),
        session: session.to_string(),
        op: "auth".into(),
        summary: String::new(),
        outcome: outcome.to_string(),
        exit: None,
        bytes_in: 0,
        bytes_out: 0,
        duration_ms: u64::try_from(started.1.elapsed().as_millis()).unwrap_or(u64::MAX),
        cert: who.1.map(CertInfo::label).unwrap_or_default(),
    });
}

/// The §3 checks of a login with a registered key.
fn key_failure(
    inst: &Instance,
    parsed: &ParsedAuth,
    user: Option<&User>,
    now: i64,
) -> Option<AuthFailure> {
    let (key, why) = match user {
        Some(u) if u.enabled => (&u.key, None),
        Some(_) => (decoy_key(), Some(AuthFailure::UserDisabled)),
        None => (decoy_key(), Some(AuthFailure::UnknownUser)),
    };
    let verified = parsed.verify(key, now);
    if why.is_some() {
        why
    } else if verified.is_err() {
        Some(signature_failure(parsed, now))
    } else if !inst.remember_auth(&parsed.user, &parsed.qc, now) {
        Some(AuthFailure::Replayed)
    } else {
        None
    }
}

/// Why a login signature failed: the clock or the signature itself.
fn signature_failure(parsed: &ParsedAuth, now: i64) -> AuthFailure {
    if now.abs_diff(parsed.time) > MAX_SKEW_SECS.unsigned_abs() {
        AuthFailure::ClockSkew
    } else {
        AuthFailure::BadSignature
    }
}

/// The §7 checks of a login with a certificate, in the order of the spec.
fn cert_failure(
    inst: &Instance,
    parsed: &ParsedAuth,
    cert: &Certificate,
    cert_sig: &[u8],
    user: Option<&User>,
    now: i64,
) -> Option<AuthFailure> {
    if let Err(r) = inst.certs.authorize(cert, cert_sig, now) {
        return Some(AuthFailure::Cert(r));
    }
    if cert.user != parsed.user {
        return Some(AuthFailure::CertUser);
    }
    if parsed.verify(&cert.key, now).is_err() {
        return Some(signature_failure(parsed, now));
    }
    if user.is_some_and(|u| !u.enabled) {
        return Some(AuthFailure::UserDisabled);
    }
    if !inst.remember_auth(&parsed.user, &parsed.qc, now) {
        return Some(AuthFailure::Replayed);
    }
    None
}

/// Whether the login may still stand once its session exists: the user
/// (and certificate) may have been disabled or revoked between the checks
/// and now, before the watcher knew of the session. A change after this
/// is the watcher's.
fn still_allowed(
    inst: &Instance,
    user: &str,
    cert: Option<&CertInfo>,
) -> Result<Option<Grants>, AuthFailure> {
    let now = unix_now();
    match (inst.user(user), cert) {
        (Ok(Some(u)), None) if u.enabled => Ok(Some(Grants::from_strings(&u.permissions).0)),
        (Ok(Some(u)), Some(_)) if !u.enabled => Err(AuthFailure::UserDisabled),
        (Ok(_), Some(c)) => inst
            .certs
            .still_allows(c, now)
            .map(|()| None)
            .map_err(AuthFailure::Cert),
        _ => Err(AuthFailure::UserDisabled),
    }
}

/// `POST {base}/auth`.
pub(crate) async fn auth(inst: &Instance, body: Body, remote: &str) -> Response {
    let raw = match read_small(body, MAX_AUTH_BODY).await {
        Ok(b) => b,
        Err(r) => return r.response(),
    };
    let parsed = match ParsedAuth::parse(&raw) {
        Ok(p) => p,
        Err(HandshakeError::Malformed(why)) => {
            info!("{remote} - auth 400 {why}");
            return Response::error(400, &why);
        }
        Err(_) => return Reject::MalformedAuth.response(),
    };
    let now = unix_now();
    let started = (now_ms(), std::time::Instant::now());
    let user = match inst.user(&parsed.user) {
        Ok(u) => u,
        Err(e) => {
            warn!("{remote} {} auth 500 {e}", parsed.user);
            return Reject::UserDb.response();
        }
    };
    let cert_info = parsed.cert.as_ref().map(|(c, _)| CertInfo::of(c));
    let who = (parsed.user.as_str(), cert_info.as_ref());
    let failure = match &parsed.cert {
        None => key_failure(inst, &parsed, user.as_ref(), now),
        Some((cert, sig)) => cert_failure(inst, &parsed, cert, sig, user.as_ref(), now),
    };
    if let Some(f) = failure {
        let reason = f.as_str();
        match &cert_info {
            Some(c) => warn!("{remote} {} auth 401 {reason} ({})", parsed.user, c.label()),
            None => warn!("{remote} {} auth 401 {reason}", parsed.user),
        }
        audit_auth(
            inst,
            who,
            remote,
            "-",
            &format!("auth-failed: {reason}"),
            started,
        );
        crate::server::metrics::global().login("failed", reason);
        return failed();
    }
    let sid = new_session_id();
    let sid_copy = sid.clone();
    // The two P-256 operations left (ECDH for the keys, ECDSA for M2) run
    // on two cores at once; the ephemeral key was made ahead of time.
    let eph = inst.ephemerals.take();
    let qs = *eph.public_sec1();
    let keys_job = {
        let (parsed, sid) = (parsed.clone(), sid.clone());
        tokio::task::spawn_blocking(move || server_keys(&parsed, &eph, &sid))
    };
    let resp = server_answer(&parsed, &inst.key, &qs, &sid, inst.timeout);
    let keys = match keys_job.await {
        Ok(Ok(k)) => k,
        _ => return failed(),
    };
    // A certificate session has exactly the certificate's grants (§7).
    let stored = match &parsed.cert {
        Some((c, _)) => c.grants.clone(),
        None => user.map(|u| u.permissions).unwrap_or_default(),
    };
    let (grants, bad) = Grants::from_strings(&stored);
    if !bad.is_empty() {
        warn!("{} has unusable permissions, ignored: {bad:?}", parsed.user);
    }
    let session = match inst.sessions.create(
        sid,
        &parsed.user,
        &keys,
        Duration::from_secs(inst.timeout),
        grants,
        cert_info.clone(),
    ) {
        Ok(s) => s,
        Err(e) => {
            warn!("{remote} {} auth 503 {e}", parsed.user);
            audit_auth(inst, who, remote, "-", &format!("503 {e}"), started);
            return Response::error(503, &e.to_string());
        }
    };
    session.set_remote(remote);
    match still_allowed(inst, &parsed.user, cert_info.as_ref()) {
        Ok(Some(g)) => session.set_grants(g),
        Ok(None) => {}
        Err(f) => {
            inst.sessions.end(&session.id);
            let reason = f.as_str();
            warn!("{remote} {} auth 401 {reason} during login", parsed.user);
            crate::server::metrics::global().login("failed", reason);
            audit_auth(
                inst,
                who,
                remote,
                "-",
                &format!("auth-failed: {reason}"),
                started,
            );
            return failed();
        }
    }
    match &cert_info {
        Some(c) => info!("{remote} {} auth ok ({})", parsed.user, c.label()),
        None => info!("{remote} {} auth ok", parsed.user),
    }
    audit_auth(inst, who, remote, &session_tag(&sid_copy), "ok", started);
    crate::server::metrics::global().login(
        "ok",
        if cert_info.is_some() {
            "certificate"
        } else {
            "key"
        },
    );
    match serde_json::to_string(&resp) {
        Ok(b) => Response::json(200, b),
        Err(_) => Reject::Internal.response(),
    }
}
