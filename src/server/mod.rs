//! The `remod` server, in the parts a reader looks for:
//!
//! * [`door`]: the front doors — FastCGI, the embedded HTTP/1.1 server and
//!   the listening sockets — thin adapters that turn a connection into
//!   [`Request`](self::core::request::Request)s;
//! * [`core`](self::core): the request core — the one router, the settings and instances
//!   a request selects, `/info` and `/auth`, sessions and the sealed stream;
//! * [`ops`]: the sealed operations, one file each, and the interactive
//!   process table behind `icm`;
//! * [`enforce`]: what bounds a user — grants for commands and files, run-as
//!   accounts, containment of processes, and which files remod may trust;
//! * [`store`]: what remod keeps on disk — named configuration files and
//!   the journal of temporary files.
//!
//! [`console`] serves the browser console's static files at
//! `{base}/console/`.
//!
//! [`cli`] is `remod serve`, which puts them together.

pub mod cli;
pub(crate) mod console;
pub mod control;
pub mod core;
pub mod door;
pub(crate) mod enforce;
pub(crate) mod metrics;
pub(crate) mod ops;
pub(crate) mod store;
