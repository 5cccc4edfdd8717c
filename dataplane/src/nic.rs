//! What control needs to know about, and set on, a network interface that the
//! engine serves: the driver, speed and duplex, RX channels, and the TX
//! checksum offload of a host port. Safe wrappers over the ethtool ioctls in
//! `sys`, so nothing outside the dataplane touches AF_XDP's layer.

use std::io;

pub use crate::sys::ethtool::LinkSettings;

/// Speed and duplex as the driver reports them (unknown values when it does
/// not say).
pub fn link_settings(ifname: &str) -> io::Result<LinkSettings> {
    crate::sys::ethtool::link_settings(ifname)
}

/// The active RX channels, when the driver reports them.
pub fn rx_channels(ifname: &str) -> Option<u32> {
    crate::sys::ethtool::rx_channels(ifname)
}

/// The driver's name (`ethtool -i`), for member selectors.
pub fn driver(ifname: &str) -> Option<String> {
    crate::sys::ethtool::driver(ifname)
}

/// TX checksum offload on or off (off also turns TSO off). The host end of a
/// host port needs it off: partial checksums would leave the members corrupt
/// (AFXDP.md, gotcha 14).
pub fn set_tx_checksum(ifname: &str, on: bool) -> io::Result<()> {
    crate::sys::ethtool::set_tx_checksum(ifname, on)
}
