//! Interactive processes: `icm` starts one, `idt`/`edt` exchange data,
//! `kill` signals, `resize` changes its terminal.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Descriptor, ExitFields, OpName};

/// A terminal size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PtySize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

// `cmd`'s fields are repeated, not `#[serde(flatten)]`ed: serde cannot
// refuse unknown fields through a flatten.
/// The `icm` descriptor: a `cmd` descriptor plus a terminal and a wait.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IcmDesc {
    /// Program and arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// A shell command line.
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
    /// Run on a pseudo-terminal of this size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pty: Option<PtySize>,
    /// How long to wait for output before answering, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

impl IcmDesc {
    /// A `cmd` descriptor's command as an interactive process.
    pub(crate) fn from_cmd(c: super::cmd::CmdDesc) -> IcmDesc {
        IcmDesc {
            argv: c.argv,
            sh: c.sh,
            cwd: c.cwd,
            env: c.env,
            timeout: c.timeout,
            pty: None,
            wait_ms: None,
        }
    }
}

/// The `idt` and `edt` descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdtDesc {
    /// The process.
    pub id: String,
    /// How long to wait for output before answering, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// The `edt` descriptor: `idt`'s, and the process's input is closed after
/// the data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub(crate) struct EdtDesc(pub IdtDesc);

/// What `icm`, `idt` and `edt` answer: the process and whether it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ProcResult {
    /// The process.
    pub id: String,
    /// Still running.
    pub running: bool,
    /// How it ended, once it has.
    #[serde(flatten)]
    pub ended: ExitFields,
    /// remo's extension (docs/protocol-notes.md): the stream offset of the
    /// first output byte of this answer, so a client polling concurrently
    /// can put answers back in order. Absent from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

/// The `kill` descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KillDesc {
    /// The process.
    pub id: String,
    /// `TERM`, `KILL`, `INT` or `HUP`.
    pub signal: String,
}

/// The `kill` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct KillResult {
    /// The process.
    pub id: String,
    /// The signal reached a running process.
    pub delivered: bool,
}

/// The `resize` descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResizeDesc {
    /// The process.
    pub id: String,
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// The `resize` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ResizeResult {
    /// The process.
    pub id: String,
}

impl Descriptor for IcmDesc {
    const NAME: OpName = OpName::Icm;
    type Result = ProcResult;
}

impl Descriptor for IdtDesc {
    const NAME: OpName = OpName::Idt;
    type Result = ProcResult;
}

impl Descriptor for EdtDesc {
    const NAME: OpName = OpName::Edt;
    type Result = ProcResult;
}

impl Descriptor for KillDesc {
    const NAME: OpName = OpName::Kill;
    type Result = KillResult;
}

impl Descriptor for ResizeDesc {
    const NAME: OpName = OpName::Resize;
    type Result = ResizeResult;
}
