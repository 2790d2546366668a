//! Enforcement: what bounds a user and what remod itself may trust —
//! command grants, file roots, run-as accounts, the containment of every
//! process a session starts, and the ownership checks on files settings name.

pub mod authz;
pub mod confine;
pub mod contain;
pub mod runas;
pub mod trust;
