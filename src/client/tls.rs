//! Which TLS certificates the client accepts.
//!
//! By default those a certificate authority of the system's trust store
//! vouches for (rustls-native-certs: the distribution's bundle, or only
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` when either is set; the bundled Mozilla
//! roots when the system has none). A host may add its own CA (`cacert` in
//! its `[hosts.NAME]` entry, or `--cacert FILE`).
//!
//! A host whose entry says `pin_certificate = true` may also present a
//! certificate no CA vouches for (self-signed): its SHA-256 fingerprint is
//! pinned on first use in `known_certificates`, like the server key in
//! `known_servers`, and a different one later is refused loudly
//! ([`ClientError::CertificateChanged`]). There is no switch that turns
//! verification off: remo pins the server key at the protocol level, and
//! the certificate pin keeps what TLS hides (which operations, their
//! sizes) from whoever could stand in for the web server.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use super::error::ClientError;
use super::known::{create_private_dir, open_options_private};

/// What a command's host asks of TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    /// A PEM file of CA certificates trusted for this host, besides the
    /// system's (`--cacert`, or the host's `cacert`).
    pub cacert: Option<PathBuf>,
    /// Accept a certificate no CA vouches for if its fingerprint is the one
    /// pinned for this origin (pinned on first use).
    pub pin_certificate: bool,
}

/// The certificate pins file in the config directory.
pub(crate) fn default_pins_path() -> Result<PathBuf, ClientError> {
    Ok(super::config::config_dir()?.join("known_certificates"))
}

/// `https://host:port` of a base URL: what a certificate pin is for.
pub(crate) fn origin(url: &str) -> Result<String, ClientError> {
    let u = reqwest::Url::parse(url)
        .map_err(|e| ClientError::Config(format!("server URL {url:?}: {e}")))?;
    let host = u
        .host_str()
        .ok_or_else(|| ClientError::Config(format!("server URL {url:?} has no host")))?;
    let port = u.port_or_known_default().unwrap_or(443);
    Ok(format!("{}://{host}:{port}", u.scheme()))
}

/// A certificate's SHA-256 fingerprint as `openssl x509 -fingerprint
/// -sha256` prints it (upper-case hex pairs joined by `:`), so a user can
/// compare it with what the server's administrator sees.
pub(crate) fn fingerprint(cert: &[u8]) -> String {
    let d = Sha256::digest(cert);
    let hex: Vec<String> = d.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// A pinned certificate found in the pins file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertPin {
    /// The fingerprint.
    pub fingerprint: String,
    /// 1-based line (for "delete line N").
    pub line: usize,
}

/// Looks up the pin for `origin` (`https://host:port`).
pub(crate) fn lookup(path: &Path, origin: &str) -> Result<Option<CertPin>, ClientError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ClientError::io(path, "cannot read", e)),
    };
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split_whitespace();
        let (Some(o), Some(fp)) = (f.next(), f.next()) else {
            return Err(ClientError::Config(format!(
                "{}:{}: malformed line (want ORIGIN SHA256-FINGERPRINT)",
                path.display(),
                i + 1
            )));
        };
        if o == origin {
            return Ok(Some(CertPin {
                fingerprint: fp.to_string(),
                line: i + 1,
            }));
        }
    }
    Ok(None)
}

/// What the pinning verifier saw, shared with the command that uses it.
#[derive(Debug, Default)]
struct PinState {
    /// The pin in force (read at start, or made on first use).
    pinned: Option<CertPin>,
    /// A presented fingerprint that differs from the pin.
    mismatch: Option<String>,
}

/// The pin of one origin, for one command.
#[derive(Debug)]
pub(crate) struct Pinning {
    path: PathBuf,
    origin: String,
    state: Mutex<PinState>,
}

impl Pinning {
    /// The error to report if a connection failed because the certificate
    /// is not the pinned one.
    pub(crate) fn changed(&self) -> Option<ClientError> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let presented = st.mismatch.clone()?;
        let pin = st.pinned.clone()?;
        Some(ClientError::CertificateChanged {
            origin: self.origin.clone(),
            pinned: pin.fingerprint,
            presented,
            file: self.path.clone(),
            line: pin.line,
        })
    }

    /// Accepts `fp` if it is the pin, or pins it if there is none.
    fn check(&self, fp: String) -> Result<(), rustls::Error> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &st.pinned {
            Some(pin) if pin.fingerprint == fp => Ok(()),
            Some(_) => {
                st.mismatch = Some(fp);
                Err(rustls::Error::General(format!(
                    "the TLS certificate of {} is not the one pinned in {}",
                    self.origin,
                    self.path.display()
                )))
            }
            None => {
                let line = self.append(&fp).map_err(|e| {
                    rustls::Error::General(format!("cannot pin the certificate: {e}"))
                })?;
                eprintln!(
                    "remo: pinned the TLS certificate of {} (sha256 {fp}) in {}",
                    self.origin,
                    self.path.display()
                );
                st.pinned = Some(CertPin {
                    fingerprint: fp,
                    line,
                });
                Ok(())
            }
        }
    }

    /// Appends a pin line (file 0600, directory 0700); returns its number.
    fn append(&self, fp: &str) -> Result<usize, ClientError> {
        if let Some(dir) = self.path.parent() {
            create_private_dir(dir)?;
        }
        let before = std::fs::read_to_string(&self.path)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        let mut f = open_options_private()
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(|e| ClientError::io(&self.path, "cannot open", e))?;
        writeln!(f, "{} {fp}", self.origin)
            .map_err(|e| ClientError::io(&self.path, "cannot write", e))?;
        Ok(before + 1)
    }
}

/// Verifies as the CAs say; a certificate they do not vouch for is
/// accepted only if it is the pinned one (pinned on first use). The
/// handshake signatures are always checked, so the server holds the
/// certificate's key.
#[derive(Debug)]
struct PinnedVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
    pin: Arc<Pinning>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => Ok(v),
            Err(rustls::Error::InvalidCertificate(_)) => {
                self.pin.check(fingerprint(end_entity))?;
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The trusted roots: the system's store (or `SSL_CERT_FILE` /
/// `SSL_CERT_DIR`), the bundled Mozilla roots if that is empty and neither
/// variable is set, and the host's own CA file.
fn roots(cacert: Option<&Path>) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let env_set = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    if env_set && native.certs.is_empty() {
        let why: Vec<String> = native.errors.iter().map(|e| e.to_string()).collect();
        return Err(ClientError::Config(format!(
            "SSL_CERT_FILE / SSL_CERT_DIR name no usable certificate ({})",
            why.join("; ")
        )));
    }
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if added == 0 && !env_set {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = cacert {
        let bad = |why: String| ClientError::Config(format!("cacert {}: {why}", path.display()));
        let mut n = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
            let cert = cert.map_err(|e| bad(e.to_string()))?;
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
            n += 1;
        }
        if n == 0 {
            return Err(bad("no PEM certificate in it".into()));
        }
    }
    Ok(roots)
}

/// The TLS configuration for `server` (an `https://` base URL) and the
/// pin state to ask after a failed connection.
pub(crate) fn client_config(
    server: &str,
    opts: &TlsOptions,
    pins_path: &Path,
) -> Result<(rustls::ClientConfig, Option<Arc<Pinning>>), ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = Arc::new(roots(opts.cacert.as_deref())?);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Local(format!("TLS setup: {e}")))?;
    if !opts.pin_certificate {
        let config = builder.with_root_certificates(roots).with_no_client_auth();
        return Ok((config, None));
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| ClientError::Local(format!("TLS setup: {e}")))?;
    let origin = origin(server)?;
    let pin = Arc::new(Pinning {
        state: Mutex::new(PinState {
            pinned: lookup(pins_path, &origin)?,
            mismatch: None,
        }),
        path: pins_path.to_path_buf(),
        origin,
    });
    let verifier = PinnedVerifier {
        webpki,
        provider,
        pin: pin.clone(),
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((config, Some(pin)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_fingerprints() {
        assert_eq!(
            origin("https://h.example/remo").unwrap(),
            "https://h.example:443"
        );
        assert_eq!(
            origin("https://127.0.0.1:8443/x/").unwrap(),
            "https://127.0.0.1:8443"
        );
        let fp = fingerprint(b"abc");
        assert!(fp.starts_with("BA:78:16:BF:"), "{fp}");
        assert_eq!(fp.len(), 32 * 3 - 1);
    }

    #[test]
    fn pins_first_use_then_refuses_another() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("sub/known_certificates");
        let p = Pinning {
            path: path.clone(),
            origin: "https://h:443".into(),
            state: Mutex::default(),
        };
        p.check("AA:BB".into()).unwrap();
        p.check("AA:BB".into()).unwrap();
        assert!(p.changed().is_none());
        assert!(p.check("CC:DD".into()).is_err());
        let e = p.changed().unwrap().to_string();
        assert!(
            e.contains("AA:BB") && e.contains("CC:DD") && e.contains("line 1"),
            "{e}"
        );
        assert_eq!(
            lookup(&path, "https://h:443").unwrap().unwrap().fingerprint,
            "AA:BB"
        );
        assert!(lookup(&path, "https://other:443").unwrap().is_none());
    }
}
