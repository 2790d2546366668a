//! The `remod` server: front doors, router, sessions, operations.

pub mod cli;
pub mod fcgi;
pub mod http;
pub mod listen;
pub mod request;
