//! Fleet targeting: `remo @SPEC CMD` runs one command on many servers.
//!
//! `inventory` turns `@SPEC` into concrete targets from config.toml
//! `[groups]`, `[hosts]` aliases and an Ansible inventory (INI or YAML). It is
//! pure: no network, no command line.

pub(crate) mod inventory;
