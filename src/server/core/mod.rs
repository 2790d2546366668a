//! The request core: from a request the front door adapted to the
//! operation that answers it — settings and instance selection, the
//! router's pre-checks, `/info` and `/auth`, sessions and the sealed stream.

pub mod auth;
pub mod config;
pub mod ephemeral;
pub mod gate;
pub mod instance;
pub mod reject;
pub mod request;
pub mod router;
pub mod session;
pub mod stream;
