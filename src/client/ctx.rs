//! What a command needs to talk to its server — the target, the HTTP
//! client, the pins and the session cache — and the session life cycle
//! (pin, resume or log in, transparent re-login, logout). Separate from
//! the command line so `client/cmd/*` do not depend on the CLI.

use std::path::PathBuf;

use zeroize::Zeroizing;

use super::cache::{self, SessionCache};
use super::config::Target;
use super::conn::{self, DataStream, FramingChoice, ResponseStream, ServerInfo, Session};
use super::error::ClientError;
use super::input::Replayable;
use super::known::{self, PinOutcome};
use crate::keyfile::{load_identity, PassphraseSource};
use crate::ops::Descriptor;
use crate::proto::framing::Framing;
use crate::proto::identity::{IdentityKey, PublicKey};

/// What a command needs to talk to its server.
pub(crate) struct Ctx {
    /// Server, user, key file.
    pub target: Target,
    /// The HTTP client (one connection pool for the command).
    pub http: reqwest::Client,
    /// The known-servers file.
    pub known_path: PathBuf,
    /// The session cache file, unless caching is off.
    pub cache: Option<SessionCache>,
    /// The certificate pin of a `pin_certificate` host.
    pub pinning: Option<std::sync::Arc<super::tls::Pinning>>,
    /// The framing to send (`REMO_FRAMING`).
    framing: FramingChoice,
    passphrase_file: Option<PathBuf>,
    /// `/info` as fetched by this command, if it was.
    info: std::sync::Mutex<Option<ServerInfo>>,
}

/// The certificate beside the key, as the client sees it.
enum LocalCert {
    /// No `KEY-cert` file.
    None,
    /// A certificate for this key, valid now by this machine's clock.
    Usable {
        path: PathBuf,
        file: Box<crate::certfile::CertFile>,
    },
    /// A file that cannot be used, and why (said to the user).
    Unusable { path: PathBuf, why: String },
}

/// A session and whether it came from the cache (so it stays open after
/// the command, and a 401 means "log in again" rather than a failure).
pub(crate) struct Active {
    /// The session.
    pub session: Session,
    /// True if it was resumed from or stored into the cache.
    pub cached: bool,
    resumed: bool,
}

impl Ctx {
    /// The context for `target`; `no_cache` turns the session cache off.
    pub(crate) fn new(
        target: Target,
        no_cache: bool,
        passphrase_file: Option<PathBuf>,
    ) -> Result<Ctx, ClientError> {
        let cache = if no_cache {
            None
        } else {
            cache::default_dir().map(|d| SessionCache::new(&d, &target.server, &target.user))
        };
        let (http, pinning) = conn::http_client_for(
            &target.server,
            &target.tls,
            &super::tls::default_pins_path()?,
        )?;
        Ok(Ctx {
            known_path: known::default_path()?,
            http,
            pinning,
            cache,
            framing: FramingChoice::from_env()?,
            passphrase_file,
            info: std::sync::Mutex::new(None),
            target,
        })
    }

    /// `GET /info`, remembered for the rest of the command.
    pub(crate) async fn info(&self) -> Result<ServerInfo, ClientError> {
        if let Some(i) = self.info.lock().ok().and_then(|g| g.clone()) {
            return Ok(i);
        }
        let info = conn::info_with(&self.http, &self.target.server).await?;
        if let Ok(mut g) = self.info.lock() {
            *g = Some(info.clone());
        }
        Ok(info)
    }

    /// The framing the server offers: binary if `/info` lists it; text if
    /// it does not, or if `/info` cannot be had (every server speaks text).
    async fn offered_framing(&self) -> Framing {
        self.info()
            .await
            .map(|i| i.best_framing())
            .unwrap_or_default()
    }

    /// Applies a forced `REMO_FRAMING` to a session (not to its cache).
    pub(crate) fn apply_framing(&self, session: &mut Session) {
        if let FramingChoice::Force(f) = self.framing {
            session.force_framing(f);
        }
    }

    /// The server key: pinned, or fetched, shown and pinned on first use.
    pub(crate) async fn pinned_key(&self) -> Result<PublicKey, ClientError> {
        if let Some(pin) = known::lookup(&self.known_path, &self.target.server)? {
            return Ok(pin.key);
        }
        let info = self.info().await?;
        let key = info.public_key()?;
        self.pin(&key)?;
        Ok(key)
    }

    /// Checks `key` against the pin, pinning it (with a note) if new.
    pub(crate) fn pin(&self, key: &PublicKey) -> Result<(), ClientError> {
        if known::check_or_pin(&self.known_path, &self.target.server, key)?
            == PinOutcome::NewlyPinned
        {
            eprintln!(
                "remo: pinned the key of new server {} ({}) in {}",
                self.target.server,
                key.fingerprint(),
                self.known_path.display()
            );
        }
        Ok(())
    }

    fn identity(&self) -> Result<IdentityKey, ClientError> {
        let source = match &self.passphrase_file {
            Some(p) => {
                let text = Zeroizing::new(
                    std::fs::read_to_string(p)
                        .map_err(|e| ClientError::io(p, "cannot read passphrase file", e))?,
                );
                let line = text.lines().next().unwrap_or("");
                PassphraseSource::Given(Zeroizing::new(line.to_string()))
            }
            // REMO_PASSPHRASE if set, else the terminal (an error without one).
            None => PassphraseSource::Prompt,
        };
        load_identity(&self.target.key, &source).map_err(|e| ClientError::Key(e.to_string()))
    }

    /// The certificate beside the key file (`KEY-cert`), if there is one,
    /// checked as far as the client can: it parses, it is for this key, and
    /// the clock is inside its validity.
    fn certificate(&self, identity: &IdentityKey) -> LocalCert {
        let path = crate::certfile::CertFile::path_for_key(&self.target.key);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return LocalCert::None,
            Err(e) => {
                return LocalCert::Unusable {
                    why: format!("cannot read it: {e}"),
                    path,
                }
            }
        };
        let file = match crate::certfile::CertFile::parse(&bytes) {
            Ok(f) => f,
            Err(e) => {
                return LocalCert::Unusable {
                    why: format!("not a certificate file: {e}"),
                    path,
                }
            }
        };
        let c = &file.cert;
        let why = if c.key != identity.public() {
            Some(format!("it is for another key ({})", c.key.fingerprint()))
        } else {
            let now = crate::server::core::instance::unix_now();
            match c.check_validity(now) {
                Ok(()) => None,
                Err(crate::proto::cert::CertError::NotYetValid { .. }) => Some(format!(
                    "not valid before {} (this machine's clock says {})",
                    crate::admin::iso8601_utc(c.not_before),
                    crate::admin::iso8601_utc(now)
                )),
                Err(_) => Some(format!(
                    "expired at {} (renew it with remo ca sign)",
                    crate::admin::iso8601_utc(c.not_after)
                )),
            }
        };
        match why {
            Some(why) => LocalCert::Unusable { path, why },
            None => LocalCert::Usable {
                path,
                file: Box::new(file),
            },
        }
    }

    /// A fresh login, stored in the cache when caching is on. `/info` is
    /// asked at the same time (unless this command has it already), for
    /// the framings the server offers; with a certificate beside the key,
    /// first, to see whether the server takes certificates.
    async fn login(&self, pinned: &PublicKey) -> Result<Active, ClientError> {
        let identity = self.identity()?;
        let local = self.certificate(&identity);
        let key_login = || {
            Session::login_with(
                self.http.clone(),
                &self.target.server,
                &self.target.user,
                &identity,
                pinned,
            )
        };
        let (login, offered) = match &local {
            LocalCert::None => tokio::join!(key_login(), self.offered_framing()),
            LocalCert::Unusable { path, why } => {
                eprintln!(
                    "remo: certificate {}: {why}; logging in with the key alone",
                    path.display()
                );
                let (login, offered) = tokio::join!(key_login(), self.offered_framing());
                (login.map_err(|e| self.cert_error(e, path, why)), offered)
            }
            LocalCert::Usable { path, file } => {
                let offered = self.offered_framing().await;
                let takes = self.info().await.is_ok_and(|i| i.certificates);
                let login = if takes {
                    let with_cert = Session::login_as(
                        self.http.clone(),
                        &self.target.server,
                        &self.target.user,
                        &identity,
                        Some(file),
                        pinned,
                    )
                    .await;
                    match with_cert {
                        // As ssh does: a refused certificate, then the key.
                        Err(ClientError::AuthFailed { .. }) => key_login().await.map_err(|e| {
                            self.cert_error(
                                e,
                                path,
                                &format!(
                                    "refused by the server (serial {}, hosts {}, user {}: is it for this server's name, this user, and not revoked?)",
                                    file.cert.serial,
                                    file.cert.hosts.join(" "),
                                    file.cert.user
                                ),
                            )
                        }),
                        other => other,
                    }
                } else {
                    key_login().await.map_err(|e| {
                        self.cert_error(e, path, "this server trusts no certificate authority")
                    })
                };
                (login, offered)
            }
        };
        let mut session = match login {
            Ok(s) => s,
            // A refused login or a signature that does not verify may both
            // mean the server is not the one pinned (a new server does not
            // know our key either): say so, as `info` would, before
            // blaming the key or the server.
            Err(
                e @ (ClientError::BadServerSignature { .. }
                | ClientError::AuthFailed { .. }
                | ClientError::CertNotAccepted { .. }),
            ) => {
                return Err(self.changed_key(pinned).await?.unwrap_or(e));
            }
            Err(e) => return Err(e),
        };
        session.set_framing(offered);
        let mut cached = false;
        if let Some(c) = &self.cache {
            match c.store(session.params(), 1) {
                Ok(()) => {
                    session.set_numbers(c.numbers(&session.params().sid));
                    cached = true;
                }
                Err(e) => eprintln!("remo: warning: not caching the session: {e}"),
            }
        }
        self.apply_framing(&mut session);
        Ok(Active {
            session,
            cached,
            resumed: false,
        })
    }

    /// A refused key login said together with why the certificate beside
    /// the key was not used or not accepted.
    fn cert_error(&self, e: ClientError, path: &std::path::Path, why: &str) -> ClientError {
        match e {
            ClientError::AuthFailed { user } => ClientError::CertNotAccepted {
                user,
                path: path.to_path_buf(),
                why: why.to_string(),
            },
            other => other,
        }
    }

    /// [`ClientError::ServerKeyChanged`] if the server now presents another
    /// key than `pinned` (asked again through `/info`), else `None`.
    async fn changed_key(&self, pinned: &PublicKey) -> Result<Option<ClientError>, ClientError> {
        let url = &self.target.server;
        let Ok(info) = conn::info_with(&self.http, url).await else {
            return Ok(None);
        };
        let Ok(key) = info.public_key() else {
            return Ok(None);
        };
        if &key == pinned {
            return Ok(None);
        }
        Ok(known::lookup(&self.known_path, url)?
            .map(|pin| known::changed(&self.known_path, url, &pin, &key)))
    }

    /// The cached session if there is a live one, else a fresh login.
    pub(crate) async fn session(&self) -> Result<Active, ClientError> {
        let pinned = self.pinned_key().await?;
        if let Some(c) = &self.cache {
            if let Some(params) = c.load(&self.target.server, &self.target.user, &pinned)? {
                let numbers = c.numbers(&params.sid);
                let mut session = Session::resume(self.http.clone(), params, numbers);
                self.apply_framing(&mut session);
                return Ok(Active {
                    session,
                    cached: true,
                    resumed: true,
                });
            }
        }
        self.login(&pinned).await
    }

    /// Sends a request; if a resumed session turns out to be dead (401), logs
    /// in again once and re-sends the same request with the same input.
    pub(crate) async fn request<D: Descriptor>(
        &self,
        active: &mut Active,
        desc: &D,
        input: Option<DataStream>,
    ) -> Result<ResponseStream, ClientError> {
        let replay = input.map(Replayable::new);
        let first = active
            .session
            .request(desc, replay.as_ref().map(Replayable::attempt))
            .await;
        match first {
            Err(ClientError::SessionExpired)
                if active.resumed && replay.as_ref().map(Replayable::can_replay) != Some(false) =>
            {
                if let Some(c) = &self.cache {
                    c.remove()?;
                }
                *active = self
                    .login(&active.session.params().server_key.clone())
                    .await?;
                active
                    .session
                    .request(desc, replay.as_ref().map(Replayable::attempt))
                    .await
            }
            Ok(resp) => {
                if let Some(r) = &replay {
                    r.commit();
                }
                Ok(resp)
            }
            Err(e) => Err(e),
        }
    }

    /// Logs in again after the session ended under a long command (a
    /// resumable upload: its requests are the user's, not the session's).
    pub(crate) async fn relogin(&self, active: &mut Active) -> Result<(), ClientError> {
        if active.cached {
            if let Some(c) = &self.cache {
                c.remove()?;
            }
        }
        *active = self
            .login(&active.session.params().server_key.clone())
            .await?;
        Ok(())
    }

    /// Ends a command's use of a session: an uncached session is logged out.
    pub(crate) async fn done(&self, active: Active) {
        if !active.cached {
            if let Err(e) = active.session.logout().await {
                eprintln!("remo: warning: logout failed: {e}");
            }
        }
    }
}
