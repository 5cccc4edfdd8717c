//! The transmit hash of balance-xor and 802.3ad, computed exactly as the
//! Linux kernel's `bond_xmit_hash()` computes it, so that a host moving from
//! kernel bonding keeps every flow on the same member.
//!
//! Reference: drivers/net/bonding/bond_main.c (`__bond_xmit_hash`,
//! `bond_eth_hash`, `bond_vlan_srcmac_hash`, `bond_flow_dissect`,
//! `bond_flow_ip`, `bond_ip_hash`) and, for the encap policies,
//! net/core/flow_dissector.c (`__skb_flow_dissect` with the bonding key set
//! and no flags). The frame is seen the way the kernel sees a frame handed to
//! the bond: an outer 802.1Q/802.1ad tag is out of band (the bond offloads
//! VLAN insertion and the receive path untags), so hashing starts at the
//! encapsulated EtherType and `vlan+srcmac` uses the tag's full TCI.
//!
//! Where the kernel copies packet bytes into a `u32` (`memcpy`, `__force
//! u32`), the value is the host's native reading of those bytes, as it is in
//! the kernel; the vectors in the tests are for little-endian hosts.
//!
//! Two kernel inputs cannot be reproduced from the frame and are left out:
//! `encap3+4` returns the socket's random `skb->hash` for locally generated
//! traffic that has one, and a BPF flow dissector attached to the namespace
//! replaces the built-in one.

mod dissect;
#[cfg(test)]
mod tests;
mod trace;

use dissect::{bond_dissect, flow_dissect};
pub use trace::{trace, Trace};

crate::named_enum!(
    /// `xmit_hash_policy`, named and numbered as the kernel does.
    XmitHashPolicy { Layer2 = ("layer2", 0), Layer34 = ("layer3+4", 1), Layer23 = ("layer2+3", 2),
        Encap23 = ("encap2+3", 3), Encap34 = ("encap3+4", 4), VlanSrcMac = ("vlan+srcmac", 5) } default Layer2);

impl XmitHashPolicy {
    /// The policies that drop the low bit of the folded hash.
    fn uses_ports(self) -> bool {
        matches!(self, XmitHashPolicy::Layer34 | XmitHashPolicy::Encap34)
    }
}

mod proto {
    pub use crate::wire::ethernet::ethertype::*;

    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const DCCP: u8 = 33;
    pub const IPV6_IN_IP: u8 = 41;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const GRE: u8 = 47;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const DSTOPTS: u8 = 60;
    pub const HOPOPTS: u8 = 0;
    pub const SCTP: u8 = 132;
    pub const UDPLITE: u8 = 136;
    pub const MPLS_IN_IP: u8 = 137;
}

/// Where the network addresses the flow keys hold sit in the frame (the
/// source address at `at`, the destination right after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Addrs {
    #[default]
    None,
    V4 {
        at: usize,
    },
    V6 {
        at: usize,
    },
    /// TIPC's originating node; the kernel has no destination for it.
    Tipc {
        at: usize,
    },
}

/// `struct flow_dissector_key_icmp`: type, code and the echo identifier in
/// host order (0 = the type has no identifier, 1 stands for an identifier 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IcmpKey {
    pub ty: u8,
    pub code: u8,
    pub id: u16,
}

/// The part of the kernel's `struct flow_keys` that the bond hash reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowKeys {
    pub addrs: Addrs,
    /// `flow_get_u32_src()` and `flow_get_u32_dst()`: an IPv4 address as
    /// raw memory, an IPv6 address folded by `ipv6_addr_hash()`.
    pub src: u32,
    pub dst: u32,
    /// Source and destination port as on the wire (`__be16` each).
    pub ports: [u8; 4],
    pub icmp: IcmpKey,
}

impl FlowKeys {
    #[inline]
    fn set_v4(&mut self, h: &[u8; 20], at: usize) {
        self.addrs = Addrs::V4 { at: at + 12 };
        self.src = u32::from_ne_bytes([h[12], h[13], h[14], h[15]]);
        self.dst = u32::from_ne_bytes([h[16], h[17], h[18], h[19]]);
    }

    #[inline]
    fn set_v6(&mut self, h: &[u8; 40], at: usize) {
        self.addrs = Addrs::V6 { at: at + 8 };
        self.src = ipv6_addr_hash(&h[8..24]);
        self.dst = ipv6_addr_hash(&h[24..40]);
    }

    /// The `u32` the layer3+4 policies start from: the ICMP key when it has
    /// an identifier, the ports otherwise (both copied as raw memory).
    #[inline]
    pub fn l4_word(&self) -> u32 {
        if self.icmp.id != 0 {
            let id = self.icmp.id.to_ne_bytes();
            u32::from_ne_bytes([self.icmp.ty, self.icmp.code, id[0], id[1]])
        } else {
            u32::from_ne_bytes(self.ports)
        }
    }
}

/// `ipv6_addr_hash()`: the four 32-bit words of the address XORed together.
#[inline]
fn ipv6_addr_hash(a: &[u8]) -> u32 {
    let w = |i: usize| u32::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
    w(0) ^ w(4) ^ w(8) ^ w(12)
}

/// The Ethernet header as the bond sees it (outer tag out of band).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2View {
    /// The last byte of each address (all `bond_eth_hash` reads).
    pub dst5: u8,
    pub src5: u8,
    /// `skb->protocol`: the EtherType after the out-of-band tag.
    pub proto: u16,
    /// Where the network header starts in the frame.
    pub nhoff: usize,
    /// The out-of-band tag's TCI (priority, DEI and VID).
    pub tci: Option<u16>,
}

impl L2View {
    /// `tci` is an out-of-band tag; without one, a tag in the frame is taken
    /// out of band the way the kernel's receive path untags.
    #[inline]
    pub fn of(frame: &[u8], tci: Option<u16>) -> Option<L2View> {
        if frame.len() < 14 {
            return None;
        }
        let mut v = L2View {
            dst5: frame[5],
            src5: frame[11],
            proto: be16(frame, 12)?,
            nhoff: 14,
            tci,
        };
        if tci.is_none() && matches!(v.proto, proto::VLAN | proto::QINQ) && frame.len() >= 18 {
            v.tci = be16(frame, 14);
            v.proto = be16(frame, 16)?;
            v.nhoff = 18;
        }
        Some(v)
    }

    /// `bond_eth_hash()`.
    #[inline]
    pub fn eth_hash(&self) -> u32 {
        u32::from(self.dst5 ^ self.src5) ^ u32::from(self.proto)
    }

    /// `bond_vlan_srcmac_hash()`: the source address as two 24-bit
    /// halves, and the tag.
    #[inline]
    pub fn vlan_srcmac_hash(&self, frame: &[u8]) -> u32 {
        let (oui, nic) = src_halves(frame);
        u32::from(self.tci.unwrap_or(0)) ^ oui ^ nic
    }
}

/// The source MAC's vendor and device halves (the frame has 14 bytes).
#[inline]
fn src_halves(frame: &[u8]) -> (u32, u32) {
    match bytes::<6>(frame, 6) {
        Some(s) => (
            u32::from_be_bytes([0, s[0], s[1], s[2]]),
            u32::from_be_bytes([0, s[3], s[4], s[5]]),
        ),
        None => (0, 0),
    }
}

#[inline]
fn be16(f: &[u8], at: usize) -> Option<u16> {
    let b = f.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// `N` bytes at `at`, borrowed (no copy), or `None` past the end.
#[inline(always)]
fn bytes<const N: usize>(f: &[u8], at: usize) -> Option<&[u8; N]> {
    f.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The hash and what it was made of.
#[derive(Debug, Clone, Copy)]
struct Computed {
    l2: Option<L2View>,
    keys: Option<FlowKeys>,
    start: u32,
    hash: u32,
}

#[inline(always)]
fn compute(policy: XmitHashPolicy, frame: &[u8], tci: Option<u16>) -> Computed {
    let mut c = Computed {
        l2: L2View::of(frame, tci),
        keys: None,
        start: 0,
        hash: 0,
    };
    // bond_eth_hash() and bond_vlan_srcmac_hash() return 0 for a frame
    // shorter than an Ethernet header.
    let Some(l2) = c.l2 else {
        return c;
    };
    let keys = match policy {
        XmitHashPolicy::VlanSrcMac => {
            c.hash = l2.vlan_srcmac_hash(frame);
            return c;
        }
        XmitHashPolicy::Layer2 => None,
        XmitHashPolicy::Layer23 => bond_dissect(frame, &l2, false),
        XmitHashPolicy::Layer34 => bond_dissect(frame, &l2, true),
        XmitHashPolicy::Encap23 | XmitHashPolicy::Encap34 => flow_dissect(frame, &l2),
    };
    let Some(keys) = keys else {
        c.hash = l2.eth_hash();
        return c;
    };
    c.keys = Some(keys);
    c.start = if policy.uses_ports() {
        keys.l4_word()
    } else {
        l2.eth_hash()
    };
    // bond_ip_hash()
    let mut h = c.start ^ keys.dst ^ keys.src;
    h ^= h >> 16;
    h ^= h >> 8;
    c.hash = if policy.uses_ports() { h >> 1 } else { h };
    c
}

/// The kernel's `bond_xmit_hash()` of `frame`, with `tci` the out-of-band
/// VLAN tag if there is one.
#[inline(always)]
pub fn xmit_hash(policy: XmitHashPolicy, frame: &[u8], tci: Option<u16>) -> u32 {
    compute(policy, frame, tci).hash
}
