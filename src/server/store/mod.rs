//! What remod keeps on disk besides the user and audit databases: the named
//! configuration files the `config` operation edits, and the journal of
//! temporary files a crash may leave behind.

pub(crate) mod cfgfiles;
pub(crate) mod pending;
