//! The `remod` server: front doors, router, sessions, operations.

pub mod auth;
pub mod authz;
pub mod cfgfiles;
pub mod cli;
pub mod config;
pub mod confine;
pub mod contain;
pub mod ephemeral;
pub mod fcgi;
pub mod gate;
pub mod http;
pub mod instance;
pub mod listen;
pub mod ops;
pub mod pending;
pub mod procs;
pub mod reject;
pub mod request;
pub mod router;
pub mod runas;
pub mod session;
pub mod stream;
pub mod trust;
