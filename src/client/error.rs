//! The client's error type: one enum so every failure reaches the user as
//! one readable line (`remo: …`) with an exit code chosen by its kind.

use std::path::PathBuf;

use crate::proto::response::OpError;

/// Everything that can go wrong in the client, with human messages.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached or the connection broke.
    #[error("cannot reach {url}: {detail}")]
    Connect {
        /// The URL we were talking to.
        url: String,
        /// The transport's explanation (no secrets: URLs and OS errors only).
        detail: String,
    },
    /// The server answered a plain HTTP error with its `{"error": …}` text.
    #[error("server refused the request ({status}): {message}")]
    Http {
        /// HTTP status.
        status: u16,
        /// The server's error text, or a short default.
        message: String,
    },
    /// A non-200 answer that did not come from remod but from the web
    /// server in front of it (no `{"error": …}` body).
    #[error("the web server in front of remod answered {status} {reason}, not remod: {hint}")]
    FrontServer {
        /// HTTP status.
        status: u16,
        /// Its reason phrase.
        reason: String,
        /// The likely cause and the setting to look at.
        hint: String,
    },
    /// 401 on an operation: the session ended (timeout, logout, restart).
    #[error("session expired or unknown; log in again")]
    SessionExpired,
    /// 401 on `/auth`: the server does not accept this user and key.
    #[error("authentication failed for user {user} (is this key registered for {user} on the server, and is the clock right?)")]
    AuthFailed {
        /// The user we tried.
        user: String,
    },
    /// 401 on `/auth` with a certificate beside the key, and 401 again
    /// with the key alone.
    #[error("authentication failed for user {user}: certificate {}: {why}; and the key alone is not registered for {user} on the server", path.display())]
    CertNotAccepted {
        /// The user we tried.
        user: String,
        /// The certificate file.
        path: PathBuf,
        /// Why it was not used or not accepted.
        why: String,
    },
    /// 409: the request number was already used.
    #[error("request refused as a replay (request number reused); log in again")]
    Replay,
    /// 413: a record or body was too large for the server.
    #[error("request too large for the server: {0}")]
    TooLarge(String),
    /// The server's handshake answer does not verify against the pinned key.
    #[error("the server's handshake signature does not verify against the pinned key for {url}; refusing the session")]
    BadServerSignature {
        /// The server base URL.
        url: String,
    },
    /// The server presents another key than the one pinned for its URL.
    #[error(
        "SERVER KEY CHANGED for {url}!\n  pinned:    {pinned}\n  presented: {presented}\n\
         This may be an attack (someone between you and the server), or the server key was replaced.\n\
         If you are sure the new key is right, delete line {line} of {file} and try again."
    )]
    ServerKeyChanged {
        /// The server base URL.
        url: String,
        /// Fingerprint we had pinned.
        pinned: String,
        /// Fingerprint the server presents now.
        presented: String,
        /// The known-servers file.
        file: PathBuf,
        /// 1-based line to delete.
        line: usize,
    },
    /// The server's TLS certificate is not the one pinned for its origin
    /// (a host with `pin_certificate = true`).
    #[error(
        "TLS CERTIFICATE CHANGED for {origin}!\n  pinned:    sha256 {pinned}\n  presented: sha256 {presented}\n\
         This may be an attack (someone between you and the server), or the server's certificate was replaced.\n\
         If you are sure the new certificate is right, delete line {line} of {file} and try again."
    )]
    CertificateChanged {
        /// `https://host:port`.
        origin: String,
        /// Fingerprint pinned.
        pinned: String,
        /// Fingerprint presented now.
        presented: String,
        /// The pins file.
        file: PathBuf,
        /// 1-based line to delete.
        line: usize,
    },
    /// The server sent something that is not valid remo/1.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The response ended before its final record.
    #[error("response truncated (connection closed before the final record)")]
    Truncated,
    /// The operation ran and failed (its result said `ok: false`).
    #[error("{0}")]
    Op(OpError),
    /// Bad configuration (config file, environment, no server).
    #[error("{0}")]
    Config(String),
    /// A command-line argument whose value cannot be used (exit 2, as for
    /// the usage errors the parser itself reports).
    #[error("{0}")]
    Usage(String),
    /// The identity key could not be loaded.
    #[error("{0}")]
    Key(String),
    /// A local file operation failed.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What we were doing.
        action: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A local failure that is not about one file (terminal, runtime, digest mismatch).
    #[error("{0}")]
    Local(String),
    /// Stopped by a local signal (SIGINT, SIGTERM, SIGHUP) after cleaning up.
    #[error("interrupted by signal {0}; nothing was written")]
    Interrupted(i32),
}

impl ClientError {
    /// The process exit code for this error: like ssh, 255 for connection,
    /// protocol and trust problems (nothing ran, or we cannot tell), 1 for an
    /// operation that failed or a local problem, 2 for a bad argument.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            ClientError::Op(_) | ClientError::Io { .. } | ClientError::Local(_) => 1,
            ClientError::Usage(_) => 2,
            // As a shell reports a process killed by the signal.
            ClientError::Interrupted(sig) => 128 + sig,
            _ => 255,
        }
    }

    /// Wraps an I/O error with the file it concerns.
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        source: std::io::Error,
    ) -> Self {
        ClientError::Io {
            path: path.into(),
            action,
            source,
        }
    }

    /// A transport error as one line: reqwest's message plus its causes,
    /// because the top-level text alone ("error sending request") hides why.
    pub(crate) fn transport(url: &str, err: &reqwest::Error) -> Self {
        let mut detail = String::new();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = cur {
            let s = e.to_string();
            if !detail.contains(&s) {
                if !detail.is_empty() {
                    detail.push_str(": ");
                }
                detail.push_str(&s);
            }
            cur = e.source();
        }
        if detail.contains("UnknownIssuer") || detail.contains("CaUsedAsEndEntity") {
            detail.push_str(
                " (no CA you trust vouches for this certificate: a private CA goes in \
                 --cacert FILE, the host's `cacert` in config.toml, or SSL_CERT_FILE; a \
                 self-signed certificate can be pinned with `pin_certificate = true` in the \
                 host's entry; see docs/client.md)",
            );
        } else if detail.contains("NotValidForName") {
            detail.push_str(
                " (the certificate does not name the host in the URL: use the name it was \
                 issued for)",
            );
        }
        ClientError::Connect {
            url: url.to_string(),
            detail,
        }
    }
}
