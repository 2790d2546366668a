//! `put`: upload a file, replacing the target atomically; with `upload`,
//! in parts that are staged on the server and committed at the end
//! (remo's extension of §6, see docs/protocol-notes.md).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Descriptor, OpName};

/// The `put` descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutDesc {
    /// Target file.
    pub path: String,
    /// Permission bits for the new file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Replace an existing file (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overwrite: Option<bool>,
    /// Create missing parent directories (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_dirs: Option<bool>,
    /// Expected SHA-256 of the content (b64url). With `upload`: of the
    /// whole content, given with `commit` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A resumable upload in parts (remo's extension, not in PROTOCOL.md):
    /// the data records of each request are appended to a staged file,
    /// which replaces the target only at `commit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<UploadStep>,
}

/// One request of a resumable upload. `{}` starts one (the request's data
/// is its first part); `{"id", "offset"}` appends a part; `{"id"}` without
/// data asks how much was received; `"commit": true` (with `sha256`)
/// replaces the target after this request's data; `"abort": true` discards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadStep {
    /// The staged upload, as a previous result named it; absent: start one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Where this request's data goes: must equal the bytes received so far
    /// (else `conflict`, nothing appended). Required when data is sent to
    /// an existing upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Replace the target after this request's data, if the whole
    /// content's SHA-256 equals `sha256` (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<bool>,
    /// Discard the staged upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<bool>,
}

/// The `put` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct PutResult {
    /// Bytes written (with `upload`: received so far, the next part's
    /// `offset`).
    pub size: u64,
    /// Their SHA-256 (b64url).
    pub sha256: String,
    /// The staged upload, while it is one: absent once committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<String>,
    /// True when `abort` discarded the staged upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<bool>,
}

impl Descriptor for PutDesc {
    const NAME: OpName = OpName::Put;
    type Result = PutResult;
}
