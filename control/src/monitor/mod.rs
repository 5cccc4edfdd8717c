//! Link monitors, sans-IO: driven by `(event, now)`, queried for events and
//! their next deadline. Only the daemon reads the clock and the links.

pub mod arp;
pub mod mii;
