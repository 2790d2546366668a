//! Enforcement: what bounds a user and what remod itself may trust —
//! command grants, file roots, run-as accounts, the containment of every
//! process a session starts (and the spawner that puts a command's child
//! into its cgroup and account), and the ownership checks on files settings
//! name.

pub(crate) mod authz;
pub(crate) mod confine;
pub(crate) mod contain;
pub(crate) mod runas;
pub(crate) mod spawn;
pub(crate) mod trust;
