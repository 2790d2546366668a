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
    /// The profiles the caller may open, and the caller's own address as
    /// the server sees it (what `open` without `ip` opens for).
    Profiles {},
}

/// A DNAT forward of a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ForwardInfo {
    /// The public port on the server, `PORT/tcp` or `PORT/udp`.
    pub port: String,
    /// The LAN host and port it leads to.
    pub to: String,
    /// `"http"` or `"https"` if the target is a web service (open it at
    /// SCHEME://SERVER:PORT/ once granted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<String>,
}

/// A profile the caller may open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ProfileInfo {
    /// The name.
    pub name: String,
    /// The server's ports it opens, `PORT/tcp` or `PORT/udp`.
    pub ports: Vec<String>,
    /// Its forwards.
    pub forwards: Vec<ForwardInfo>,
    /// Seconds a grant lasts when the request names none.
    pub default_duration: u64,
    /// Longest grant in seconds.
    pub max_duration: u64,
    /// May it be opened for another address (a guest's)?
    pub guests: bool,
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
/// `capped`; `close` `profile` and `ip`; `list` `grants`; `profiles`
/// `profiles` and `ip` (the caller's own address, absent if the server
/// cannot tell it).
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
    /// `profiles`: the profiles the caller may open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<Vec<ProfileInfo>>,
}

impl Descriptor for OpenDesc {
    const NAME: OpName = OpName::Open;
    type Result = OpenResult;
}
