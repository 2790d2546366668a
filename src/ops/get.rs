//! `get`: download a file, whole or a range.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Descriptor, OpName};

/// The `get` descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GetDesc {
    /// The file.
    pub path: String,
    /// First byte to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Most bytes to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
}

/// The `get` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct GetResult {
    /// The file's size.
    pub size: u64,
    /// The bytes sent (what `sha256` covers).
    pub length: u64,
    /// Permission bits.
    pub mode: u32,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// SHA-256 of the bytes sent (b64url).
    pub sha256: String,
}

impl Descriptor for GetDesc {
    const NAME: OpName = OpName::Get;
    type Result = GetResult;
}
