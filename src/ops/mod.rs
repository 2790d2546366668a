//! The operations of remo/1 (docs/protocol.md §6) as types: per operation
//! one descriptor and one result, shared by the server's handlers, the
//! client's commands and the audit, so a field renamed on one side no
//! longer compiles on the other. Operation names live here only
//! ([`OpName`]); a request's descriptor is decoded once into an [`Op`].
//!
//! Descriptors refuse unknown fields (`deny_unknown_fields`); results are
//! what the server puts in the `ok` response's result object. What a
//! handler checks beyond the shape (a path without NUL, a known signal…)
//! stays with the handler in `server::ops`.

pub mod cmd;
pub mod config;
pub mod get;
pub mod icm;
pub mod logout;
pub mod open;
pub mod put;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Every operation's name, as it appears in the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpName {
    /// Run a command (batch or streamed).
    Cmd,
    /// Download a file.
    Get,
    /// Upload a file.
    Put,
    /// End the session.
    Logout,
    /// Start an interactive process.
    Icm,
    /// Exchange data with an interactive process.
    Idt,
    /// `idt` that also closes the process's input.
    Edt,
    /// Signal an interactive process.
    Kill,
    /// Resize an interactive process's terminal.
    Resize,
    /// Read and edit configured files.
    Config,
    /// Time-limited firewall access.
    Open,
}

impl OpName {
    /// All operations, in the order docs/operations.md lists them.
    pub const ALL: [OpName; 11] = [
        OpName::Cmd,
        OpName::Get,
        OpName::Put,
        OpName::Logout,
        OpName::Icm,
        OpName::Idt,
        OpName::Edt,
        OpName::Kill,
        OpName::Resize,
        OpName::Config,
        OpName::Open,
    ];

    /// The name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            OpName::Cmd => "cmd",
            OpName::Get => "get",
            OpName::Put => "put",
            OpName::Logout => "logout",
            OpName::Icm => "icm",
            OpName::Idt => "idt",
            OpName::Edt => "edt",
            OpName::Kill => "kill",
            OpName::Resize => "resize",
            OpName::Config => "config",
            OpName::Open => "open",
        }
    }

    /// The operation named `s`, if this version implements it.
    pub fn parse(s: &str) -> Option<OpName> {
        OpName::ALL.into_iter().find(|n| n.as_str() == s)
    }
}

impl std::fmt::Display for OpName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A descriptor type and what its operation answers.
pub trait Descriptor: Serialize + DeserializeOwned {
    /// The operation.
    const NAME: OpName;
    /// The `ok` response's result fields.
    type Result: Serialize + DeserializeOwned;
}

/// Reads an `ok` response's result object as operation `D`'s result.
pub fn result_of<D: Descriptor>(
    m: serde_json::Map<String, serde_json::Value>,
) -> Result<D::Result, serde_json::Error> {
    serde_json::from_value(serde_json::Value::Object(m))
}

/// A descriptor that is not valid JSON of its operation's shape.
#[derive(Debug, thiserror::Error)]
#[error("descriptor: {0}")]
pub struct DescriptorError(#[from] serde_json::Error);

/// A request's descriptor, decoded once.
#[derive(Debug, Clone)]
pub enum Op {
    /// `cmd`.
    Cmd(cmd::CmdDesc),
    /// `get`.
    Get(get::GetDesc),
    /// `put`.
    Put(put::PutDesc),
    /// `logout`.
    Logout(logout::LogoutDesc),
    /// `icm`.
    Icm(icm::IcmDesc),
    /// `idt`.
    Idt(icm::IdtDesc),
    /// `edt`.
    Edt(icm::EdtDesc),
    /// `kill`.
    Kill(icm::KillDesc),
    /// `resize`.
    Resize(icm::ResizeDesc),
    /// `config`.
    Config(config::ConfigDesc),
    /// `open`.
    Open(open::OpenDesc),
}

impl Op {
    /// Decodes the descriptor of operation `name`.
    pub fn decode(name: OpName, d: &[u8]) -> Result<Op, DescriptorError> {
        fn de<T: DeserializeOwned>(d: &[u8]) -> Result<T, DescriptorError> {
            Ok(serde_json::from_slice(d)?)
        }
        Ok(match name {
            OpName::Cmd => Op::Cmd(de(d)?),
            OpName::Get => Op::Get(de(d)?),
            OpName::Put => Op::Put(de(d)?),
            OpName::Logout => Op::Logout(de(d)?),
            OpName::Icm => Op::Icm(de(d)?),
            OpName::Idt => Op::Idt(de(d)?),
            OpName::Edt => Op::Edt(de(d)?),
            OpName::Kill => Op::Kill(de(d)?),
            OpName::Resize => Op::Resize(de(d)?),
            OpName::Config => Op::Config(de(d)?),
            OpName::Open => Op::Open(de(d)?),
        })
    }

    /// Its operation.
    pub fn name(&self) -> OpName {
        match self {
            Op::Cmd(_) => OpName::Cmd,
            Op::Get(_) => OpName::Get,
            Op::Put(_) => OpName::Put,
            Op::Logout(_) => OpName::Logout,
            Op::Icm(_) => OpName::Icm,
            Op::Idt(_) => OpName::Idt,
            Op::Edt(_) => OpName::Edt,
            Op::Kill(_) => OpName::Kill,
            Op::Resize(_) => OpName::Resize,
            Op::Config(_) => OpName::Config,
            Op::Open(_) => OpName::Open,
        }
    }
}

/// How a process ended, as `cmd`, `icm` and `idt` report it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ExitFields {
    /// Exit status, if it exited.
    pub exit: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
}

impl ExitFields {
    /// From a process's status (`None`: still running or unknown).
    pub fn of(s: Option<std::process::ExitStatus>) -> ExitFields {
        use std::os::unix::process::ExitStatusExt;
        ExitFields {
            exit: s.and_then(|s| s.code()),
            signal: s.and_then(|s| s.signal()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for n in OpName::ALL {
            assert_eq!(OpName::parse(n.as_str()), Some(n));
        }
        assert_eq!(OpName::parse("CMD"), None);
        assert_eq!(OpName::parse("schema"), None);
    }

    #[test]
    fn every_descriptor_refuses_unknown_fields() {
        for (n, ok) in [
            (OpName::Cmd, r#"{"argv":["true"]}"#),
            (OpName::Get, r#"{"path":"/x"}"#),
            (OpName::Put, r#"{"path":"/x"}"#),
            (OpName::Logout, "{}"),
            (OpName::Icm, r#"{"sh":"true"}"#),
            (OpName::Idt, r#"{"id":"a"}"#),
            (OpName::Edt, r#"{"id":"a"}"#),
            (OpName::Kill, r#"{"id":"a","signal":"TERM"}"#),
            (OpName::Resize, r#"{"id":"a","rows":1,"cols":2}"#),
            (OpName::Config, r#"{"action":"read","name":"a"}"#),
            (OpName::Open, r#"{"action":"list"}"#),
        ] {
            let op = Op::decode(n, ok.as_bytes()).unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(op.name(), n);
            let mut v: serde_json::Value = serde_json::from_str(ok).unwrap();
            v["bogus"] = serde_json::Value::from(1);
            let bad = serde_json::to_vec(&v).unwrap();
            assert!(Op::decode(n, &bad).is_err(), "{n} took an unknown field");
        }
    }
}
