//! xbond's control plane: configuration and kernel options, link monitors,
//! bonding mode logic (all sans-IO), and the daemon and CLI that drive them.
#![forbid(unsafe_code)]

pub mod bond;
pub mod config;
pub mod modes;
pub mod monitor;
pub mod status;
