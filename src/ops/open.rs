//! `open`: time-limited firewall access (docs/firewall.md).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Descriptor, OpName};

/// The `open` descriptor, by `action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum OpenDesc {
    /// Grant (or refresh) access.
    Open {
        /// The profile.
        profile: String,
        /// The address to open for; default the caller's own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ip: Option<String>,
        /// Seconds; default the profile's `default_duration`, capped at
        /// its `max_duration`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration: Option<u64>,
    },
    /// Remove a grant.
    Close {
        /// The profile.
        profile: String,
        /// The address; default the caller's own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ip: Option<String>,
    },
    /// The active grants the caller may see.
    List {},
}

/// One active grant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct GrantInfo {
    /// The profile.
    pub profile: String,
    /// The address.
    pub ip: String,
    /// Seconds left.
    pub expires_in: u64,
    /// Who opened it.
    pub by: String,
}

/// The `open` result: `open` fills `profile`, `ip`, `expires_in`,
/// `capped`; `close` `profile` and `ip`; `list` `grants`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct OpenResult {
    /// The profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Seconds the grant lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// The duration asked for was cut to the profile's `max_duration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capped: Option<bool>,
    /// `list`: the grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<Vec<GrantInfo>>,
}

impl Descriptor for OpenDesc {
    const NAME: OpName = OpName::Open;
    type Result = OpenResult;
}
