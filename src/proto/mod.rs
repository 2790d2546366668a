//! The remo/1 wire protocol (PROTOCOL.md §1–§4.1, §7): pure functions and state
//! machines, no I/O, so every decoder can be fuzzed and never panics.

pub mod b64;
pub mod cert;
pub mod framing;
pub mod handshake;
pub mod identity;
pub mod record;
pub(crate) mod replay;
pub mod response;
