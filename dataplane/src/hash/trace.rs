//! `xbond hash`: the hash of a frame with every step of the kernel's
//! arithmetic written out.

use super::*;
use std::fmt;

/// Every step of one hash computation, for `xbond hash` and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub policy: XmitHashPolicy,
    /// Source and destination MAC, when the frame has an Ethernet header.
    pub macs: Option<([u8; 6], [u8; 6])>,
    pub l2: Option<L2View>,
    /// The flow keys, when the policy dissects and the dissection succeeded.
    pub keys: Option<FlowKeys>,
    /// The addresses the keys were taken from, for display.
    pub ips: Option<(std::net::IpAddr, std::net::IpAddr)>,
    /// The value before the address fold: the Ethernet hash for the 2+3
    /// policies, the port/ICMP word for the 3+4 policies.
    pub start: u32,
    pub hash: u32,
}

/// [`xmit_hash`] with its intermediate values.
pub fn trace(policy: XmitHashPolicy, frame: &[u8], tci: Option<u16>) -> Trace {
    let c = compute(policy, frame, tci);
    let macs = bytes::<12>(frame, 0).map(|m| {
        let mut dst = [0u8; 6];
        let mut src = [0u8; 6];
        dst.copy_from_slice(&m[..6]);
        src.copy_from_slice(&m[6..]);
        (src, dst)
    });
    let ips = c.keys.and_then(|k| match k.addrs {
        Addrs::V4 { at } => bytes::<8>(frame, at).map(|a| {
            (
                std::net::IpAddr::from([a[0], a[1], a[2], a[3]]),
                std::net::IpAddr::from([a[4], a[5], a[6], a[7]]),
            )
        }),
        Addrs::V6 { at } => bytes::<32>(frame, at).map(|a| {
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&a[..16]);
            d.copy_from_slice(&a[16..]);
            (std::net::IpAddr::from(s), std::net::IpAddr::from(d))
        }),
        Addrs::None | Addrs::Tipc { .. } => None,
    });
    Trace {
        policy,
        macs,
        l2: c.l2,
        keys: c.keys,
        ips,
        start: c.start,
        hash: c.hash,
    }
}

impl fmt::Display for Trace {
    /// The arithmetic, one step per line, as `xbond hash` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "policy {}", self.policy.name())?;
        let (Some(l2), Some((src, dst))) = (&self.l2, &self.macs) else {
            return writeln!(f, "frame shorter than an Ethernet header: hash 0");
        };
        let mac = |m: &[u8; 6]| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        };
        write!(
            f,
            "ethernet {} > {} type 0x{:04x}",
            mac(src),
            mac(dst),
            l2.proto
        )?;
        match l2.tci {
            Some(tci) => writeln!(f, " vlan tci 0x{tci:04x} (vid {})", tci & 0x0fff)?,
            None => writeln!(f)?,
        }
        if self.policy == XmitHashPolicy::VlanSrcMac {
            let oui = u32::from_be_bytes([0, src[0], src[1], src[2]]);
            let nic = u32::from_be_bytes([0, src[3], src[4], src[5]]);
            return writeln!(
                f,
                "tci 0x{:04x} ^ oui 0x{oui:06x} ^ nic 0x{nic:06x} = 0x{:08x}",
                l2.tci.unwrap_or(0),
                self.hash
            );
        }
        let eth = format!(
            "dst[5] 0x{:02x} ^ src[5] 0x{:02x} ^ type 0x{:04x} = 0x{:08x}",
            l2.dst5,
            l2.src5,
            l2.proto,
            l2.eth_hash()
        );
        let Some(k) = &self.keys else {
            if self.policy == XmitHashPolicy::Layer2 {
                return writeln!(f, "layer2: {eth}");
            }
            return writeln!(f, "not IP as the kernel dissects it; layer2 hash: {eth}");
        };
        match (&k.addrs, &self.ips) {
            (Addrs::V4 { .. }, Some((s, d))) => writeln!(f, "ipv4 {s} > {d}")?,
            (Addrs::V6 { .. }, Some((s, d))) => writeln!(
                f,
                "ipv6 {s} > {d} (each folded to 32 bits by XOR of its words)"
            )?,
            (Addrs::Tipc { .. }, _) => writeln!(f, "tipc node 0x{:08x}", k.src)?,
            _ => writeln!(f, "no network addresses")?,
        }
        if self.policy.uses_ports() {
            if k.icmp.id != 0 {
                writeln!(
                    f,
                    "icmp type {} code {} id {}: start 0x{:08x}",
                    k.icmp.ty, k.icmp.code, k.icmp.id, self.start
                )?;
            } else {
                writeln!(
                    f,
                    "ports {} > {}: start 0x{:08x}",
                    u16::from_be_bytes([k.ports[0], k.ports[1]]),
                    u16::from_be_bytes([k.ports[2], k.ports[3]]),
                    self.start
                )?;
            }
        } else {
            writeln!(f, "start = {eth}")?;
        }
        let x = self.start ^ k.dst ^ k.src;
        let y = x ^ (x >> 16);
        let z = y ^ (y >> 8);
        writeln!(
            f,
            "0x{:08x} ^ dst 0x{:08x} ^ src 0x{:08x} = 0x{x:08x}",
            self.start, k.dst, k.src
        )?;
        writeln!(f, "h ^= h >> 16: 0x{y:08x}; h ^= h >> 8: 0x{z:08x}")?;
        if self.policy.uses_ports() {
            writeln!(f, "h >> 1 (low bit dropped): 0x{:08x}", self.hash)?;
        }
        Ok(())
    }
}
