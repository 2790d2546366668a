//! `/info` and `/auth` (PROTOCOL.md §2–§3): discovery and the handshake
//! that creates a session. No session exists before a successful auth.

use std::sync::OnceLock;
use std::time::Duration;

use log::{info, warn};

use crate::audit::{now_ms, session_tag, AuditRecord};
use crate::perms::Grants;
use crate::proto::framing::Framing;
use crate::proto::handshake::{
    new_session_id, server_answer, server_keys, HandshakeError, ParsedAuth, MAX_AUTH_BODY,
    MAX_SKEW_SECS,
};
use crate::proto::identity::{IdentityKey, PublicKey};
use crate::server::core::instance::{unix_now, Instance};
use crate::server::core::reject::Reject;
use crate::server::core::request::{Body, Response};

/// `GET {base}/info`. `framings` tells clients they may send the binary
/// framing (§4.1); `certificates` is left out (absent means false) while
/// remod trusts no certificate authority (§7 is not implemented).
pub(crate) fn info(inst: &Instance) -> Response {
    let framings: Vec<&str> = Framing::ALL.iter().map(|f| f.name()).collect();
    let body = serde_json::json!({
        "name": "remo",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": "remo/1",
        "key": inst.public.to_b64(),
        "fingerprint": inst.public.fingerprint(),
        "framings": framings,
    });
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
}

impl AuthFailure {
    fn as_str(self) -> &'static str {
        match self {
            AuthFailure::UserDisabled => "user disabled",
            AuthFailure::UnknownUser => "unknown user",
            AuthFailure::ClockSkew => "clock skew",
            AuthFailure::BadSignature => "bad signature",
            AuthFailure::Replayed => "replayed auth",
        }
    }
}

/// Audits a login attempt under the claimed user name.
fn audit_auth(
    inst: &Instance,
    user: &str,
    remote: &str,
    session: &str,
    outcome: &str,
    started: (i64, std::time::Instant),
) {
    inst.audit.record(AuditRecord {
        time_ms: started.0,
        user: user.to_string(),
        remote: remote.to_string(),
        session: session.to_string(),
        op: "auth".into(),
        summary: String::new(),
        outcome: outcome.to_string(),
        exit: None,
        bytes_in: 0,
        bytes_out: 0,
        duration_ms: u64::try_from(started.1.elapsed().as_millis()).unwrap_or(u64::MAX),
    });
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
    let (key, why) = match &user {
        Some(u) if u.enabled => (&u.key, None),
        Some(_) => (decoy_key(), Some(AuthFailure::UserDisabled)),
        None => (decoy_key(), Some(AuthFailure::UnknownUser)),
    };
    let verified = parsed.verify(key, now);
    let failure = if why.is_some() {
        why
    } else if verified.is_err() {
        if now.abs_diff(parsed.time) > MAX_SKEW_SECS.unsigned_abs() {
            Some(AuthFailure::ClockSkew)
        } else {
            Some(AuthFailure::BadSignature)
        }
    } else if !inst.remember_auth(&parsed.user, &parsed.qc, now) {
        Some(AuthFailure::Replayed)
    } else {
        None
    };
    if let Some(f) = failure {
        let reason = f.as_str();
        warn!("{remote} {} auth 401 {reason}", parsed.user);
        audit_auth(
            inst,
            &parsed.user,
            remote,
            "-",
            &format!("auth-failed: {reason}"),
            started,
        );
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
    let stored = user.map(|u| u.permissions).unwrap_or_default();
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
    ) {
        Ok(s) => s,
        Err(e) => {
            warn!("{remote} {} auth 503 {e}", parsed.user);
            audit_auth(
                inst,
                &parsed.user,
                remote,
                "-",
                &format!("503 {e}"),
                started,
            );
            return Response::error(503, &e.to_string());
        }
    };
    // Revocation race: the user may have been disabled, removed or changed
    // between the lookup above and now, before the watcher knew of this
    // session. Re-read once the session exists; a change after this read
    // is seen by the watcher.
    match inst.user(&parsed.user) {
        Ok(Some(u)) if u.enabled => session.set_grants(Grants::from_strings(&u.permissions).0),
        _ => {
            inst.sessions.end(&session.id);
            warn!(
                "{remote} {} auth 401 user disabled during login",
                parsed.user
            );
            audit_auth(
                inst,
                &parsed.user,
                remote,
                "-",
                "auth-failed: user disabled",
                started,
            );
            return failed();
        }
    }
    info!("{remote} {} auth ok", parsed.user);
    audit_auth(
        inst,
        &parsed.user,
        remote,
        &session_tag(&sid_copy),
        "ok",
        started,
    );
    match serde_json::to_string(&resp) {
        Ok(b) => Response::json(200, b),
        Err(_) => Reject::Internal.response(),
    }
}
