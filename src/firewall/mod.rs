//! Firewall access: opening ports (or DNAT forwards) for an authenticated
//! address for a limited time, with nftables doing the expiry in the
//! kernel so grants end on time even if remod is gone (docs/firewall.md).
//!
//! `config` (profiles), `addr` (address parsing, CIDR, trusted proxies) and
//! `nft` (batch text, listing parser) are pure; `backend` runs `nft`;
//! `cli` is `remod firewall install|status|uninstall`.

pub(crate) mod addr;
pub(crate) mod backend;
pub mod cli;
pub(crate) mod config;
pub(crate) mod nft;

use std::net::IpAddr;

pub(crate) use config::{FirewallConfig, Profile};

/// Why a firewall action failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FwError {
    /// An address that does not parse.
    #[error("invalid IP address {0:?}")]
    BadAddress(String),
    /// An address no grant can be for.
    #[error("{0} cannot be granted access (unspecified, loopback, multicast or broadcast; behind a proxy, list it in [firewall] trusted_proxies)")]
    NotGrantable(IpAddr),
    /// A trusted proxy sent an unparsable `X-Forwarded-For`.
    #[error("X-Forwarded-For from a trusted proxy is malformed: {0:?}")]
    BadForwardedFor(String),
    /// The nft program could not be started.
    #[error("cannot run {cmd}: {source} (install the Debian package nftables)")]
    Spawn {
        /// The command.
        cmd: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// nft ran and refused.
    #[error("nft failed: {0}")]
    Nft(String),
    /// Two users whose ledger tags collide (astronomically rare).
    #[error("{0}")]
    Conflict(String),
    /// A limit (`max_grants_per_user`, `max_grants`) is reached.
    #[error("{0}")]
    TooMany(String),
    /// nft's JSON output could not be read.
    #[error("cannot read nft -j output: {0}")]
    Listing(String),
}
