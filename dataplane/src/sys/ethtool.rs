//! The ethtool ioctls the dataplane needs: device features by name (a host
//! port's offloads), link speed and duplex (status, `primary_reselect=better`),
//! RX channels and the driver's name.

use super::cvt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GSET: u32 = 0x0000_0001;
const ETHTOOL_GCHANNELS: u32 = 0x0000_003c;
const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
const ETHTOOL_GSTRINGS: u32 = 0x0000_001b;
const ETHTOOL_GSSET_INFO: u32 = 0x0000_0037;
const ETHTOOL_GFEATURES: u32 = 0x0000_003a;
const ETHTOOL_SFEATURES: u32 = 0x0000_003b;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;

/// `struct ethtool_drvinfo`.
#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// `struct ethtool_channels`.
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// `struct ethtool_cmd` (legacy, still served by every driver).
#[repr(C)]
#[derive(Default)]
struct EthtoolCmd {
    cmd: u32,
    supported: u32,
    advertising: u32,
    speed: u16,
    duplex: u8,
    port: u8,
    phy_address: u8,
    transceiver: u8,
    autoneg: u8,
    mdio_support: u8,
    maxtxpkt: u32,
    maxrxpkt: u32,
    speed_hi: u16,
    eth_tp_mdix: u8,
    eth_tp_mdix_ctrl: u8,
    lp_advertising: u32,
    reserved: [u32; 2],
}

/// Link speed and duplex as the driver reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkSettings {
    /// Mbit/s; `None` when unknown.
    pub speed: Option<u32>,
    /// `Some(true)` full, `Some(false)` half, `None` unknown.
    pub full_duplex: Option<bool>,
}

fn ioctl(ifname: &str, data: *mut libc::c_void) -> io::Result<()> {
    let bytes = ifname.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {ifname:?}"),
        ));
    }
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data,
        _pad: [0; 16],
    };
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: a datagram socket used only as an ioctl handle.
    let sock =
        cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `sock` is fresh and owned here.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: `req` names the interface and points at a live ethtool struct
    // whose `cmd` tells the kernel its layout.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut req as *mut IfReq) })
        .map(drop)
}

/// Speed and duplex; unknown values when the driver does not say.
pub fn link_settings(ifname: &str) -> io::Result<LinkSettings> {
    let mut c = EthtoolCmd {
        cmd: ETHTOOL_GSET,
        ..Default::default()
    };
    ioctl(ifname, (&mut c as *mut EthtoolCmd).cast())?;
    let speed = (u32::from(c.speed_hi) << 16) | u32::from(c.speed);
    Ok(LinkSettings {
        speed: (speed != 0 && speed != u32::MAX && speed != 0xffff).then_some(speed),
        full_duplex: match c.duplex {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        },
    })
}

/// The RX queues a socket can bind to: the driver's active channels (RX or
/// combined). `IFLA_NUM_RX_QUEUES` is the allocated maximum, which binding
/// past the active ones refuses with EINVAL. `None` when the driver does not
/// report channels.
pub fn rx_channels(ifname: &str) -> Option<u32> {
    let mut c = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    ioctl(ifname, (&mut c as *mut EthtoolChannels).cast()).ok()?;
    let n = c.rx_count.max(c.combined_count);
    (n > 0).then_some(n)
}

/// The driver's name (`ixgbe`, `veth`, `virtio_net`); `None` when the
/// device does not answer ethtool.
pub fn driver(ifname: &str) -> Option<String> {
    let mut d = EthtoolDrvinfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        version: [0; 32],
        fw_version: [0; 32],
        bus_info: [0; 32],
        erom_version: [0; 32],
        reserved2: [0; 12],
        n_priv_flags: 0,
        n_stats: 0,
        testinfo_len: 0,
        eedump_len: 0,
        regdump_len: 0,
    };
    ioctl(ifname, (&mut d as *mut EthtoolDrvinfo).cast()).ok()?;
    let end = d.driver.iter().position(|&b| b == 0).unwrap_or(32);
    let name = String::from_utf8_lossy(&d.driver[..end]).into_owned();
    (!name.is_empty()).then_some(name)
}

/// The names of the device feature bits (`ethtool -k`), in bit order.
fn feature_names(ifname: &str) -> io::Result<Vec<String>> {
    // struct ethtool_sset_info: cmd, reserved, sset_mask (u64), data[1].
    let mut info = [0u32; 5];
    info[0] = ETHTOOL_GSSET_INFO;
    info[2] = 1 << ETH_SS_FEATURES;
    ioctl(ifname, info.as_mut_ptr().cast())?;
    let count = info[4] as usize;
    // struct ethtool_gstrings: cmd, string_set, len, then len names.
    let words = 3 + (count * ETH_GSTRING_LEN).div_ceil(4);
    let mut buf = vec![0u32; words];
    buf[0] = ETHTOOL_GSTRINGS;
    buf[1] = ETH_SS_FEATURES;
    buf[2] = count as u32;
    ioctl(ifname, buf.as_mut_ptr().cast())?;
    let bytes: Vec<u8> = buf[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
    Ok(bytes
        .chunks(ETH_GSTRING_LEN)
        .take(count)
        .map(|n| {
            let end = n.iter().position(|&b| b == 0).unwrap_or(n.len());
            String::from_utf8_lossy(&n[..end]).into_owned()
        })
        .collect())
}

/// Features as `ethtool -k` names them: (name, active).
pub fn features(ifname: &str) -> io::Result<Vec<(String, bool)>> {
    let names = feature_names(ifname)?;
    let blocks = names.len().div_ceil(32);
    // struct ethtool_gfeatures: cmd, size, then per block available,
    // requested, active, never_changed.
    let mut buf = vec![0u32; 2 + 4 * blocks];
    buf[0] = ETHTOOL_GFEATURES;
    buf[1] = blocks as u32;
    ioctl(ifname, buf.as_mut_ptr().cast())?;
    Ok(names
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let active = buf[2 + 4 * (i / 32) + 2] & (1 << (i % 32)) != 0;
            (n, active)
        })
        .collect())
}

/// Ask for features by `ethtool -K` name (ETHTOOL_SFEATURES). Names the
/// device does not have are ignored; the kernel may refuse a change it
/// cannot make (see [`features`] for what holds).
pub fn set_features(ifname: &str, wanted: &[(&str, bool)]) -> io::Result<()> {
    let names = feature_names(ifname)?;
    let blocks = names.len().div_ceil(32);
    // struct ethtool_sfeatures: cmd, size, then per block valid, requested.
    let mut buf = vec![0u32; 2 + 2 * blocks];
    buf[0] = ETHTOOL_SFEATURES;
    buf[1] = blocks as u32;
    for (name, on) in wanted {
        if let Some(i) = names.iter().position(|n| n == name) {
            let bit = 1u32 << (i % 32);
            buf[2 + 2 * (i / 32)] |= bit;
            if *on {
                buf[2 + 2 * (i / 32) + 1] |= bit;
            }
        }
    }
    // A positive return (some wanted bits differ from what holds) is not
    // an error here.
    ioctl(ifname, buf.as_mut_ptr().cast())
        .map_err(|e| io::Error::new(e.kind(), format!("ethtool -K {ifname}: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ethtool_drvinfo_is_196_bytes() {
        assert_eq!(std::mem::size_of::<super::EthtoolDrvinfo>(), 196);
    }

    #[test]
    fn ethtool_cmd_is_44_bytes() {
        assert_eq!(std::mem::size_of::<super::EthtoolCmd>(), 44);
    }
}
