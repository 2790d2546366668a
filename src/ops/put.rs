//! `put`: upload a file, replacing the target atomically.

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
    /// Expected SHA-256 of the content (b64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The `put` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct PutResult {
    /// Bytes written.
    pub size: u64,
    /// Their SHA-256 (b64url).
    pub sha256: String,
}

impl Descriptor for PutDesc {
    const NAME: OpName = OpName::Put;
    type Result = PutResult;
}
