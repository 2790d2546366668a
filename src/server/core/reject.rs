//! Why a request is refused before it reaches an operation (the front
//! checks of protocol §5 and `/auth`), each with its HTTP status and the
//! short text the peer sees — one place for both, instead of `(u16, &str)`
//! pairs scattered over the router.

use crate::server::core::request::Response;

/// A refusal before any operation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// The path is not under the base.
    NotFound,
    /// No such operation.
    UnknownOperation,
    /// The wrong method for the path.
    MethodNotAllowed,
    /// The instance could not be loaded (the log says why).
    Configuration,
    /// Too many connections or logins at once.
    Busy,
    /// `/auth` did not complete within `--auth-timeout`.
    AuthTimeout,
    /// `/auth` body larger than allowed.
    AuthTooLarge,
    /// `/auth` body that is not a login request.
    MalformedAuth,
    /// The user database failed (the log says why).
    UserDb,
    /// The login failed; which check failed is not said.
    AuthFailed,
    /// No `Remo-Session` header.
    MissingSession,
    /// No such session, or it expired.
    UnknownSession,
    /// No record at all.
    EmptyBody,
    /// A record longer than the limit.
    RecordTooLarge,
    /// A first line that is not a record.
    MalformedRecord,
    /// The body is larger than `max_request_bytes`.
    BodyTooLarge,
    /// The body does not end with CRLF.
    NoFinalCrlf,
    /// A binary body that ends inside a record.
    PartialRecord,
    /// The peer stopped sending the body.
    BodyAborted,
    /// Anything else wrong in the body's framing.
    MalformedBody,
    /// Record 0 is not record 0.
    NotRecordZero,
    /// Record 0 does not open under the session's key.
    NotAuthentic,
    /// The request number was used already or is too old.
    Replayed,
    /// Something failed inside remod.
    Internal,
}

impl Reject {
    /// Its HTTP status.
    pub(crate) const fn status(self) -> u16 {
        match self {
            Reject::NotFound | Reject::UnknownOperation => 404,
            Reject::MethodNotAllowed => 405,
            Reject::Configuration | Reject::UserDb | Reject::Internal => 500,
            Reject::Busy => 503,
            Reject::AuthTimeout => 408,
            Reject::AuthTooLarge | Reject::RecordTooLarge | Reject::BodyTooLarge => 413,
            Reject::AuthFailed | Reject::UnknownSession | Reject::NotAuthentic => 401,
            Reject::Replayed => 409,
            Reject::MalformedAuth
            | Reject::MissingSession
            | Reject::EmptyBody
            | Reject::MalformedRecord
            | Reject::NoFinalCrlf
            | Reject::PartialRecord
            | Reject::BodyAborted
            | Reject::MalformedBody
            | Reject::NotRecordZero => 400,
        }
    }

    /// What the peer is told.
    pub(crate) const fn message(self) -> &'static str {
        match self {
            Reject::NotFound => "not found",
            Reject::UnknownOperation => "unknown operation",
            Reject::MethodNotAllowed => "method not allowed",
            Reject::Configuration => "server configuration error (see the server log)",
            Reject::Busy => "server busy",
            Reject::AuthTimeout => "auth request not complete in time",
            Reject::AuthTooLarge => "auth request too large",
            Reject::MalformedAuth => "malformed auth request",
            Reject::UserDb => "user database error (see the server log)",
            Reject::AuthFailed => "authentication failed",
            Reject::MissingSession => "missing Remo-Session header",
            Reject::UnknownSession => "unknown or expired session",
            Reject::EmptyBody => "empty request body",
            Reject::RecordTooLarge => "record too large",
            Reject::MalformedRecord => "malformed record",
            Reject::BodyTooLarge => "request body too large",
            Reject::NoFinalCrlf => "body does not end with CRLF",
            Reject::PartialRecord => "body ends inside a record",
            Reject::BodyAborted => "request body aborted",
            Reject::MalformedBody => "malformed request body",
            Reject::NotRecordZero => "first record is not record 0",
            Reject::NotAuthentic => "record does not authenticate",
            Reject::Replayed => "request number already used or too old",
            Reject::Internal => "internal error",
        }
    }

    /// The response that says so.
    pub(crate) fn response(self) -> Response {
        Response::error(self.status(), self.message())
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status(), self.message())
    }
}

impl From<Reject> for Response {
    fn from(r: Reject) -> Response {
        r.response()
    }
}
