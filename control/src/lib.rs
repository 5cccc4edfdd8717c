//! xbond's control plane: configuration and kernel options, link monitors,
//! bonding mode logic (all sans-IO), and the daemon and CLI that drive them.
#![forbid(unsafe_code)]

pub mod albview;
pub mod bond;
pub mod config;
pub mod daemon;
pub mod hashcmd;
pub mod import;
pub mod ipc;
pub mod lacp;
pub mod mcast;
pub mod metrics;
pub mod modes;
pub mod monitor;
pub mod netlink;
pub mod probe;
pub mod stats;
pub mod status;
