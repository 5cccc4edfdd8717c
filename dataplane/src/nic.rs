//! What control needs to know about, and set on, a network interface that the
//! engine serves: the driver, speed and duplex, RX channels, and the
//! offloads of a host port. Safe wrappers over the ethtool ioctls in
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

/// The offloads the host end of a host port keeps: the TX checksum (the
/// worker seeds it and the kernel or the member finishes it, `offload`), and
/// generic segmentation in software, so the host's TCP builds large packets
/// and the kernel cuts them to the MTU before they reach the socket. Every
/// segmentation the device would do itself (TSO, USO, tunnels, fraglist)
/// is off: those packets would reach the socket larger than the MTU. SCTP's
/// CRC offload is off too: nothing on the way would compute it.
pub const HOST_PORT_FEATURES: &[(&str, bool)] = &[
    ("tx-checksum-ip-generic", true),
    ("tx-scatter-gather", true),
    ("tx-generic-segmentation", true),
    ("tx-tcp-segmentation", false),
    ("tx-tcp-ecn-segmentation", false),
    ("tx-tcp-mangleid-segmentation", false),
    ("tx-tcp6-segmentation", false),
    ("tx-udp-segmentation", false),
    ("tx-gso-list", false),
    ("tx-gre-segmentation", false),
    ("tx-gre-csum-segmentation", false),
    ("tx-ipxip4-segmentation", false),
    ("tx-ipxip6-segmentation", false),
    ("tx-udp_tnl-segmentation", false),
    ("tx-udp_tnl-csum-segmentation", false),
    ("tx-gso-partial", false),
    ("tx-tunnel-remcsum-segmentation", false),
    ("tx-sctp-segmentation", false),
    ("tx-esp-segmentation", false),
    ("tx-udp-fraglist", false),
    ("tx-checksum-sctp", false),
];

/// TCP segmentation a host port read through AF_PACKET keeps on
/// (`host_port = "af_packet"`): the virtio-net header carries the segment
/// size, and the member's NIC or driver path segments.
const WHOLE_PACKET_FEATURES: &[&str] = &[
    "tx-tcp-segmentation",
    "tx-tcp-ecn-segmentation",
    "tx-tcp-mangleid-segmentation",
    "tx-tcp6-segmentation",
];

/// A host port's offloads: [`HOST_PORT_FEATURES`], with TCP segmentation
/// on when its packets are read whole (`whole`).
pub fn host_port_features(whole: bool) -> Vec<(&'static str, bool)> {
    HOST_PORT_FEATURES
        .iter()
        .map(|&(n, on)| (n, on || (whole && WHOLE_PACKET_FEATURES.contains(&n))))
        .collect()
}

/// Set a host port's offloads ([`host_port_features`]) and check that what
/// matters held: checksum offload on, no device segmentation it was not
/// asked for.
pub fn set_host_port_offloads(ifname: &str, whole: bool) -> io::Result<()> {
    let want = host_port_features(whole);
    crate::sys::ethtool::set_features(ifname, &want)?;
    let now = crate::sys::ethtool::features(ifname)?;
    for (name, want) in &want {
        let have = now.iter().find(|(n, _)| n == name).map(|(_, on)| *on);
        if have.is_some_and(|on| on != *want) && (!want || *name == "tx-checksum-ip-generic") {
            return Err(io::Error::other(format!(
                "{ifname}: offload {name} stays {}",
                if have == Some(true) { "on" } else { "off" }
            )));
        }
    }
    Ok(())
}

/// Turn features on or off by `ethtool -k` name.
pub fn set_features(ifname: &str, want: &[(&str, bool)]) -> io::Result<()> {
    crate::sys::ethtool::set_features(ifname, want)
}

/// Features by `ethtool -k` name, and whether each is active.
pub fn features(ifname: &str) -> io::Result<Vec<(String, bool)>> {
    crate::sys::ethtool::features(ifname)
}
