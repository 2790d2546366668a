//! Typed response records (PROTOCOL.md §4): channel bytes before the last
//! record, and the final JSON result with its error codes.

use serde_json::{Map, Value};

use super::record::{CHANNEL_STDERR, CHANNEL_STDOUT};

/// The error codes a result may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The descriptor or data is invalid.
    BadRequest,
    /// The user may not do this.
    Forbidden,
    /// No such file, process, name.
    NotFound,
    /// The target exists and overwriting was not asked for.
    Exists,
    /// The target changed meanwhile.
    Conflict,
    /// A size limit was exceeded.
    TooLarge,
    /// A time limit was exceeded.
    Timeout,
    /// A resource or limit is exhausted for now.
    Unavailable,
    /// A server fault.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Exists => "exists",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// Parses a wire code.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "bad_request" => ErrorCode::BadRequest,
            "forbidden" => ErrorCode::Forbidden,
            "not_found" => ErrorCode::NotFound,
            "exists" => ErrorCode::Exists,
            "conflict" => ErrorCode::Conflict,
            "too_large" => ErrorCode::TooLarge,
            "timeout" => ErrorCode::Timeout,
            "unavailable" => ErrorCode::Unavailable,
            "internal" => ErrorCode::Internal,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operation failure as carried in the final record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct OpError {
    /// The code.
    pub code: ErrorCode,
    /// Human-readable text (never a secret).
    pub message: String,
}

impl OpError {
    /// Builds an error.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        OpError {
            code,
            message: message.into(),
        }
    }

    /// Shorthand for `bad_request`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
}

/// The JSON of a successful result: `{"ok": true, …fields}`.
pub(crate) fn ok_result(fields: Map<String, Value>) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("ok".into(), Value::Bool(true));
    m.extend(fields);
    Value::Object(m).to_string().into_bytes()
}

/// The JSON of a failed result.
pub(crate) fn error_result(err: &OpError) -> Vec<u8> {
    serde_json::json!({
        "ok": false,
        "error": {"code": err.code.as_str(), "message": err.message}
    })
    .to_string()
    .into_bytes()
}

/// Why a response record could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// A non-final record without a known channel byte.
    #[error("response record with unknown channel")]
    BadChannel,
    /// The final record is not a JSON object with a boolean `ok`.
    #[error("malformed final result: {0}")]
    BadResult(String),
}

/// One response record, classified.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ResponseItem<'a> {
    /// Data or standard output.
    Stdout(&'a [u8]),
    /// Standard error.
    Stderr(&'a [u8]),
    /// The final result.
    Done(Result<Map<String, Value>, OpError>),
}

/// Classifies an opened response record.
pub(crate) fn classify(plaintext: &[u8], last: bool) -> Result<ResponseItem<'_>, ResponseError> {
    if last {
        return parse_result(plaintext).map(ResponseItem::Done);
    }
    match plaintext.split_first() {
        Some((&CHANNEL_STDOUT, rest)) => Ok(ResponseItem::Stdout(rest)),
        Some((&CHANNEL_STDERR, rest)) => Ok(ResponseItem::Stderr(rest)),
        _ => Err(ResponseError::BadChannel),
    }
}

/// Parses a final result: the fields of `ok: true`, or the error of `ok: false`.
pub fn parse_result(json: &[u8]) -> Result<Result<Map<String, Value>, OpError>, ResponseError> {
    let v: Value =
        serde_json::from_slice(json).map_err(|e| ResponseError::BadResult(e.to_string()))?;
    let Value::Object(mut m) = v else {
        return Err(ResponseError::BadResult("not an object".into()));
    };
    match m.remove("ok") {
        Some(Value::Bool(true)) => Ok(Ok(m)),
        Some(Value::Bool(false)) => {
            let err = m
                .get("error")
                .ok_or_else(|| ResponseError::BadResult("missing error".into()))?;
            let code = err
                .get("code")
                .and_then(Value::as_str)
                .and_then(ErrorCode::parse)
                .ok_or_else(|| ResponseError::BadResult("unknown error code".into()))?;
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            Ok(Err(OpError { code, message }))
        }
        _ => Err(ResponseError::BadResult("missing boolean ok".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_round_trip() {
        let mut f = Map::new();
        f.insert("exit".into(), Value::from(3));
        let ok = ok_result(f);
        assert_eq!(
            classify(&ok, true).unwrap(),
            ResponseItem::Done(Ok([("exit".to_string(), Value::from(3))]
                .into_iter()
                .collect()))
        );
        let err = error_result(&OpError::new(ErrorCode::NotFound, "no such file"));
        assert_eq!(
            classify(&err, true).unwrap(),
            ResponseItem::Done(Err(OpError::new(ErrorCode::NotFound, "no such file")))
        );
        assert_eq!(
            classify(b"\x01hi", false).unwrap(),
            ResponseItem::Stdout(b"hi")
        );
        assert_eq!(classify(b"\x02", false).unwrap(), ResponseItem::Stderr(b""));
        assert_eq!(classify(b"\x03x", false), Err(ResponseError::BadChannel));
        assert_eq!(classify(b"", false), Err(ResponseError::BadChannel));
        assert!(classify(b"[1]", true).is_err());
        assert!(classify(br#"{"ok":false,"error":{"code":"nope"}}"#, true).is_err());
    }
}
