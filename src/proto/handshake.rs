//! The authentication handshake (PROTOCOL.md §3): messages M1 and M2, their
//! checks, ECDH and the HKDF session keys.
//!
//! Both sides are here so a test can run a whole handshake without I/O, and
//! so the client and server cannot drift apart on a byte of M1 or M2.

use hkdf::Hkdf;
use p256::ecdh::diffie_hellman;
use p256::{PublicKey as EcPublicKey, SecretKey};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::b64;
use super::cert::{Certificate, MAX_CERT_LEN};
use super::identity::{valid_user_name, IdentityKey, KeyError, PublicKey, SIG_LEN};

/// Largest accepted clock difference between client and server, in seconds.
pub(crate) const MAX_SKEW_SECS: i64 = 300;
/// How long an accepted `(user, Qc)` pair is remembered against replay.
pub(crate) const REPLAY_MEMORY_SECS: i64 = 600;
/// Largest `/auth` body we parse: room for a certificate of
/// [`MAX_CERT_LEN`] bytes in b64 (10,924 characters) and the rest; a valid
/// body is smaller.
pub(crate) const MAX_AUTH_BODY: usize = 16384;

/// Why a handshake message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The body is not the JSON object the spec describes (→ 400).
    #[error("malformed auth request: {0}")]
    Malformed(String),
    /// A check of §3 failed (→ 401, with one body whatever the reason).
    #[error("authentication failed")]
    Failed,
    /// The server's answer does not verify against the pinned key.
    #[error("server signature does not verify against the pinned server key")]
    BadServerSignature,
    /// A key or encoding problem.
    #[error("{0}")]
    Key(#[from] KeyError),
}

/// The `/auth` request body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuthRequest {
    /// User name.
    pub user: String,
    /// b64 of the client's ephemeral SEC1 point `Qc`.
    pub key: String,
    /// Client Unix time in seconds.
    pub time: i64,
    /// b64 of the user's P1363 signature over M1.
    pub sig: String,
    /// b64 of a §7 certificate, for a login without a registered key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// b64 of the CA's signature over the certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sig: Option<String>,
}

/// The `/auth` success body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthResponse {
    /// Session id, b64 of 16 random bytes.
    pub session: String,
    /// b64 of the server's ephemeral SEC1 point `Qs`.
    pub key: String,
    /// b64 of the server identity signature over M2.
    pub sig: String,
    /// Idle timeout in seconds.
    pub timeout: u64,
}

/// `M1 = "remo/1 auth\n" ‖ U ‖ "\n" ‖ b64(Qc) ‖ "\n" ‖ decimal(T)`.
pub fn m1(user: &str, qc_b64: &str, time: i64) -> String {
    format!("remo/1 auth\n{user}\n{qc_b64}\n{time}")
}

/// `M2 = "remo/1 auth-ok\n" ‖ U ‖ "\n" ‖ b64(Qc) ‖ "\n" ‖ b64(Qs) ‖ "\n" ‖ SID`.
pub fn m2(user: &str, qc_b64: &str, qs_b64: &str, sid: &str) -> String {
    format!("remo/1 auth-ok\n{user}\n{qc_b64}\n{qs_b64}\n{sid}")
}

/// The two directional AES-256 keys of a session.
pub struct SessionKeys {
    /// Key for requests (client to server).
    pub c2s: Zeroizing<[u8; 32]>,
    /// Key for responses (server to client).
    pub s2c: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

/// An ephemeral ECDH key pair.
pub struct Ephemeral {
    secret: SecretKey,
    public_sec1: [u8; 65],
}

impl Ephemeral {
    /// A fresh random ephemeral key.
    pub fn generate() -> Self {
        Self::from_secret(SecretKey::random(&mut rand_core::OsRng))
    }

    /// An ephemeral key from a given scalar (test vectors); `None` if out of range.
    pub fn from_scalar_bytes(bytes: &[u8]) -> Option<Self> {
        SecretKey::from_slice(bytes).ok().map(Self::from_secret)
    }

    fn from_secret(secret: SecretKey) -> Self {
        let point = secret.public_key().to_sec1_bytes();
        let mut public_sec1 = [0u8; 65];
        // An uncompressed P-256 point is always 65 bytes.
        if point.len() == 65 {
            public_sec1.copy_from_slice(&point);
        }
        Ephemeral {
            secret,
            public_sec1,
        }
    }

    /// The SEC1 uncompressed public point.
    pub fn public_sec1(&self) -> &[u8; 65] {
        &self.public_sec1
    }

    /// The shared secret `Z` (the X coordinate) with a peer's SEC1 point.
    pub fn shared_secret(&self, peer_sec1: &[u8]) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        if peer_sec1.len() != 65 || peer_sec1.first() != Some(&0x04) {
            return Err(KeyError::InvalidPoint);
        }
        let peer = EcPublicKey::from_sec1_bytes(peer_sec1).map_err(|_| KeyError::InvalidPoint)?;
        let shared = diffie_hellman(self.secret.to_nonzero_scalar(), peer.as_affine());
        let mut z = Zeroizing::new([0u8; 32]);
        z.copy_from_slice(shared.raw_secret_bytes().as_slice());
        Ok(z)
    }
}

/// HKDF-SHA256(IKM = Z, salt = Qc ‖ Qs, info = "remo/1 session " ‖ SID, L = 64).
pub fn derive_session_keys(z: &[u8], qc: &[u8], qs: &[u8], sid: &str) -> SessionKeys {
    let mut salt = Vec::with_capacity(qc.len() + qs.len());
    salt.extend_from_slice(qc);
    salt.extend_from_slice(qs);
    let hk = Hkdf::<Sha256>::new(Some(&salt), z);
    let mut info = b"remo/1 session ".to_vec();
    info.extend_from_slice(sid.as_bytes());
    let mut okm = Zeroizing::new([0u8; 64]);
    // 64 bytes is far below HKDF-SHA256's 8160-byte limit: expand cannot fail.
    let _ = hk.expand(&info, okm.as_mut());
    let mut c2s = Zeroizing::new([0u8; 32]);
    let mut s2c = Zeroizing::new([0u8; 32]);
    c2s.copy_from_slice(&okm[..32]);
    s2c.copy_from_slice(&okm[32..]);
    SessionKeys { c2s, s2c }
}

/// An `/auth` request after its syntax checks (the 400 class), before the
/// checks that need the user database (the 401 class).
#[derive(Debug, Clone)]
pub struct ParsedAuth {
    /// User name (valid syntax).
    pub user: String,
    /// The client's ephemeral point, as sent.
    pub qc_b64: String,
    /// The decoded point, checked to be on the curve.
    pub qc: [u8; 65],
    /// Client time.
    pub time: i64,
    /// The signature over M1.
    pub sig: [u8; SIG_LEN],
    /// The certificate (§7), parsed, with the CA's signature over it.
    pub cert: Option<(Certificate, [u8; SIG_LEN])>,
}

impl ParsedAuth {
    /// Parses an `/auth` body. Every failure here is a 400.
    pub fn parse(body: &[u8]) -> Result<Self, HandshakeError> {
        if body.len() > MAX_AUTH_BODY {
            return Err(HandshakeError::Malformed("body too large".into()));
        }
        let req: AuthRequest = serde_json::from_slice(body)
            .map_err(|e| HandshakeError::Malformed(format!("bad JSON: {e}")))?;
        if !valid_user_name(&req.user) {
            return Err(HandshakeError::Malformed("bad user name".into()));
        }
        let qc: [u8; 65] = b64::decode_array(&req.key)
            .map_err(|e| HandshakeError::Malformed(format!("key: {e}")))?;
        PublicKey::from_sec1(&qc)
            .map_err(|_| HandshakeError::Malformed("key: invalid point".into()))?;
        let sig: [u8; SIG_LEN] = b64::decode_array(&req.sig)
            .map_err(|e| HandshakeError::Malformed(format!("sig: {e}")))?;
        let cert = match (&req.cert, &req.cert_sig) {
            (None, None) => None,
            (Some(c), Some(cs)) => Some(parse_cert(c, cs)?),
            _ => {
                return Err(HandshakeError::Malformed(
                    "cert and cert_sig come together".into(),
                ))
            }
        };
        Ok(ParsedAuth {
            user: req.user,
            qc_b64: req.key,
            qc,
            time: req.time,
            sig,
            cert,
        })
    }

    /// The §3 checks that need the user's key and the clock (→ 401). The
    /// replay check of `(U, Qc)` is the caller's, since it needs memory.
    pub fn verify(&self, user_key: &PublicKey, now: i64) -> Result<(), HandshakeError> {
        if now.abs_diff(self.time) > MAX_SKEW_SECS as u64 {
            return Err(HandshakeError::Failed);
        }
        let msg = m1(&self.user, &self.qc_b64, self.time);
        user_key
            .verify(msg.as_bytes(), &self.sig)
            .map_err(|_| HandshakeError::Failed)
    }
}

/// A §7 certificate and its CA signature from an `/auth` body; any error
/// is a 400 (a certificate that does not parse, a signature that is not 64
/// bytes). Whether it is trusted is the server's question (401).
fn parse_cert(cert: &str, cert_sig: &str) -> Result<(Certificate, [u8; SIG_LEN]), HandshakeError> {
    let bytes = b64::decode(cert).map_err(|e| HandshakeError::Malformed(format!("cert: {e}")))?;
    if bytes.len() > MAX_CERT_LEN {
        return Err(HandshakeError::Malformed("cert: too long".into()));
    }
    let parsed =
        Certificate::parse(&bytes).map_err(|e| HandshakeError::Malformed(format!("cert: {e}")))?;
    let sig: [u8; SIG_LEN] = b64::decode_array(cert_sig)
        .map_err(|e| HandshakeError::Malformed(format!("cert_sig: {e}")))?;
    Ok((parsed, sig))
}

/// The server's half once the checks have passed: answer and session keys.
pub fn server_accept(
    auth: &ParsedAuth,
    server_key: &IdentityKey,
    ephemeral: &Ephemeral,
    sid: &str,
    timeout: u64,
) -> Result<(AuthResponse, SessionKeys), HandshakeError> {
    let resp = server_answer(auth, server_key, ephemeral.public_sec1(), sid, timeout);
    let keys = server_keys(auth, ephemeral, sid)?;
    Ok((resp, keys))
}

/// The signed `/auth` answer alone (the M2 signature), so a server can
/// compute it in parallel with [`server_keys`].
pub(crate) fn server_answer(
    auth: &ParsedAuth,
    server_key: &IdentityKey,
    qs: &[u8; 65],
    sid: &str,
    timeout: u64,
) -> AuthResponse {
    let qs_b64 = b64::encode(qs);
    let sig = server_key.sign(m2(&auth.user, &auth.qc_b64, &qs_b64, sid).as_bytes());
    AuthResponse {
        session: sid.to_string(),
        key: qs_b64,
        sig: b64::encode(&sig),
        timeout,
    }
}

/// The session keys alone (ECDH and HKDF), the other half of [`server_accept`].
pub(crate) fn server_keys(
    auth: &ParsedAuth,
    ephemeral: &Ephemeral,
    sid: &str,
) -> Result<SessionKeys, HandshakeError> {
    let z = ephemeral.shared_secret(&auth.qc)?;
    Ok(derive_session_keys(
        z.as_ref(),
        &auth.qc,
        ephemeral.public_sec1(),
        sid,
    ))
}

/// The client's side of a handshake in progress.
pub struct ClientHandshake {
    user: String,
    ephemeral: Ephemeral,
    qc_b64: String,
}

/// What a client holds after a successful handshake.
#[derive(Debug)]
pub struct ClientSession {
    /// Session id.
    pub session: String,
    /// Directional keys.
    pub keys: SessionKeys,
    /// Idle timeout announced by the server.
    pub timeout: u64,
}

impl ClientHandshake {
    /// Starts a handshake: returns the state and the `/auth` body to send.
    pub fn start(user: &str, identity: &IdentityKey, now: i64) -> (Self, AuthRequest) {
        Self::start_with(user, identity, now, Ephemeral::generate())
    }

    /// As [`ClientHandshake::start`] with a given ephemeral key (test vectors).
    pub fn start_with(
        user: &str,
        identity: &IdentityKey,
        now: i64,
        ephemeral: Ephemeral,
    ) -> (Self, AuthRequest) {
        let qc_b64 = b64::encode(ephemeral.public_sec1());
        let sig = identity.sign(m1(user, &qc_b64, now).as_bytes());
        let req = AuthRequest {
            user: user.to_string(),
            key: qc_b64.clone(),
            time: now,
            sig: b64::encode(&sig),
            cert: None,
            cert_sig: None,
        };
        (
            ClientHandshake {
                user: user.to_string(),
                ephemeral,
                qc_b64,
            },
            req,
        )
    }

    /// Checks the server's answer against the pinned server key and derives the keys.
    pub fn finish(
        self,
        resp: &AuthResponse,
        server_key: &PublicKey,
    ) -> Result<ClientSession, HandshakeError> {
        self.verify_answer(resp, server_key)?;
        self.derive(resp)
    }

    /// The signature check of [`ClientHandshake::finish`] alone.
    pub(crate) fn verify_answer(
        &self,
        resp: &AuthResponse,
        server_key: &PublicKey,
    ) -> Result<(), HandshakeError> {
        self.answer_check().verify(resp, server_key)
    }

    /// What checking the server's signature needs, apart from the secret,
    /// so a client can check on one core while it derives the keys
    /// ([`ClientHandshake::derive`]) on another; it must not use the keys
    /// unless the check succeeded.
    pub(crate) fn answer_check(&self) -> AnswerCheck {
        AnswerCheck {
            user: self.user.clone(),
            qc_b64: self.qc_b64.clone(),
        }
    }

    /// The key derivation of [`ClientHandshake::finish`] alone (ECDH with
    /// the server's point, HKDF), without the signature check.
    pub(crate) fn derive(self, resp: &AuthResponse) -> Result<ClientSession, HandshakeError> {
        let qs: [u8; 65] = b64::decode_array(&resp.key).map_err(KeyError::from)?;
        let z = self.ephemeral.shared_secret(&qs)?;
        let keys =
            derive_session_keys(z.as_ref(), self.ephemeral.public_sec1(), &qs, &resp.session);
        Ok(ClientSession {
            session: resp.session.clone(),
            keys,
            timeout: resp.timeout,
        })
    }
}

/// The client's check of M2 (see [`ClientHandshake::answer_check`]).
pub(crate) struct AnswerCheck {
    user: String,
    qc_b64: String,
}

impl AnswerCheck {
    /// Verifies the server's signature over M2 with the pinned key.
    pub(crate) fn verify(
        &self,
        resp: &AuthResponse,
        server_key: &PublicKey,
    ) -> Result<(), HandshakeError> {
        let sig = b64::decode(&resp.sig).map_err(KeyError::from)?;
        let msg = m2(&self.user, &self.qc_b64, &resp.key, &resp.session);
        server_key
            .verify(msg.as_bytes(), &sig)
            .map_err(|_| HandshakeError::BadServerSignature)
    }
}

/// A fresh session id: b64 of 16 random bytes.
pub fn new_session_id() -> String {
    use rand_core::RngCore;
    let mut raw = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut raw);
    b64::encode(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_halves_agree_with_the_whole() {
        let user = IdentityKey::generate();
        let server = IdentityKey::generate();
        let now = 1_800_000_000;
        let (hs, req) = ClientHandshake::start("bob", &user, now);
        let parsed = ParsedAuth::parse(&serde_json::to_vec(&req).unwrap()).unwrap();
        let eph = Ephemeral::generate();
        let answer = server_answer(&parsed, &server, eph.public_sec1(), "SID", 600);
        let keys = server_keys(&parsed, &eph, "SID").unwrap();
        // The client's check and derivation, done apart, match finish().
        hs.answer_check().verify(&answer, &server.public()).unwrap();
        let mut forged = answer.clone();
        forged.sig = b64::encode(&[0u8; 64]);
        assert_eq!(
            hs.answer_check()
                .verify(&forged, &server.public())
                .unwrap_err(),
            HandshakeError::BadServerSignature
        );
        let other = IdentityKey::generate();
        assert!(hs.verify_answer(&answer, &other.public()).is_err());
        let cs = hs.derive(&answer).unwrap();
        assert_eq!(*cs.keys.c2s, *keys.c2s);
        assert_eq!(*cs.keys.s2c, *keys.s2c);
    }

    #[test]
    fn full_handshake_agrees() {
        let user = IdentityKey::generate();
        let server = IdentityKey::generate();
        let now = 1_800_000_000;
        let (hs, req) = ClientHandshake::start("bob", &user, now);
        let body = serde_json::to_vec(&req).unwrap();
        let parsed = ParsedAuth::parse(&body).unwrap();
        parsed.verify(&user.public(), now + 10).unwrap();
        assert_eq!(
            parsed.verify(&user.public(), now + 301).unwrap_err(),
            HandshakeError::Failed
        );
        assert_eq!(
            parsed.verify(&server.public(), now).unwrap_err(),
            HandshakeError::Failed
        );
        let sid = new_session_id();
        let (resp, skeys) =
            server_accept(&parsed, &server, &Ephemeral::generate(), &sid, 600).unwrap();
        let cs = hs.finish(&resp, &server.public()).unwrap();
        assert_eq!(*cs.keys.c2s, *skeys.c2s);
        assert_eq!(*cs.keys.s2c, *skeys.s2c);
        assert_ne!(*cs.keys.c2s, *cs.keys.s2c);
    }

    #[test]
    fn client_refuses_wrong_server_key() {
        let user = IdentityKey::generate();
        let server = IdentityKey::generate();
        let (hs, req) = ClientHandshake::start("bob", &user, 5);
        let parsed = ParsedAuth::parse(&serde_json::to_vec(&req).unwrap()).unwrap();
        let (resp, _) =
            server_accept(&parsed, &server, &Ephemeral::generate(), "AAAA", 600).unwrap();
        let other = IdentityKey::generate().public();
        assert_eq!(
            hs.finish(&resp, &other).unwrap_err(),
            HandshakeError::BadServerSignature
        );
    }

    #[test]
    fn malformed_auth_bodies_are_400_class() {
        for body in [
            &b"not json"[..],
            br#"{"user":"a b","key":"x","time":1,"sig":"x"}"#,
            br#"{"user":"a","key":"AAAA","time":1,"sig":"x"}"#,
            br#"{"user":"a","time":1,"sig":"x"}"#,
            br#"{"user":"a","key":"x","time":1,"sig":"x","extra":1}"#,
        ] {
            assert!(matches!(
                ParsedAuth::parse(body),
                Err(HandshakeError::Malformed(_))
            ));
        }
    }
}
