//! Bonding mode logic above the link monitors, sans-IO.

pub mod active_backup;
pub mod alb;
