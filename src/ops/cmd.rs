//! `cmd`: run a command, batch or streamed.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Descriptor, ExitFields, OpName};

/// The `cmd` descriptor: `argv` or `sh`, not both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CmdDesc {
    /// Program and arguments, run without a shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// A shell command line (`/bin/sh -c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sh: Option<String>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Extra environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Time limit in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
}

/// The `cmd` result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct CmdResult {
    /// How it ended.
    #[serde(flatten)]
    pub ended: ExitFields,
    /// It was killed at its time limit.
    pub timed_out: bool,
}

impl Descriptor for CmdDesc {
    const NAME: OpName = OpName::Cmd;
    type Result = CmdResult;
}
