//! The front doors: each turns its connections into the one request shape
//! ([`crate::server::core::request`]) and hands them to the router.

pub mod fcgi;
pub mod http;
pub mod listen;
