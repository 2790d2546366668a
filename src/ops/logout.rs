//! `logout`: end the session and everything it started.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Descriptor, OpName};

/// The `logout` descriptor: empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogoutDesc {}

/// The `logout` result: empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct LogoutResult {}

impl Descriptor for LogoutDesc {
    const NAME: OpName = OpName::Logout;
    type Result = LogoutResult;
}
