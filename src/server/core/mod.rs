//! The request core: from a request the front door adapted to the
//! operation that answers it — settings and instance selection, the
//! router's pre-checks, `/info` and `/auth`, sessions and the sealed stream.

pub(crate) mod auth;
pub mod config;
pub(crate) mod ephemeral;
pub(crate) mod gate;
pub mod instance;
pub(crate) mod reject;
pub mod request;
pub mod router;
pub(crate) mod session;
pub(crate) mod stream;
