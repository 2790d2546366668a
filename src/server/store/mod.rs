//! What remod keeps on disk besides the user and audit databases: the named
//! configuration files the `config` operation edits, the certificate trust
//! (CA keys, revocation list), the journal of
//! temporary files a crash may leave behind, and (in memory) the staged
//! uploads of the resumable `put`.

pub(crate) mod certtrust;
pub(crate) mod cfgfiles;
pub(crate) mod pending;
pub(crate) mod uploads;
