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

use std::fmt;

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
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const RARP: u16 = 0x8035;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
    pub const PPP_SES: u16 = 0x8864;
    pub const MPLS_UC: u16 = 0x8847;
    pub const MPLS_MC: u16 = 0x8848;
    pub const TIPC: u16 = 0x88ca;
    pub const FCOE: u16 = 0x8906;
    pub const CFM: u16 = 0x8902;
    pub const BATMAN: u16 = 0x4305;
    pub const TEB: u16 = 0x6558;
    pub const GRE_PPP: u16 = 0x880b;

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

/// `proto_ports_offset()` then the 4 bytes there (`__skb_flow_get_ports`).
#[inline]
fn ports_at(f: &[u8], thoff: usize, ip_proto: u8) -> [u8; 4] {
    let poff = match ip_proto {
        proto::TCP | proto::UDP | proto::DCCP | proto::ESP | proto::SCTP | proto::UDPLITE => 0,
        proto::AH => 4,
        _ => return [0; 4],
    };
    bytes::<4>(f, thoff + poff).copied().unwrap_or([0; 4])
}

/// `skb_flow_get_icmp_tci()`: leaves the key untouched when the 8-byte ICMP
/// header is not there.
#[inline]
fn icmp_at(f: &[u8], thoff: usize, key: &mut IcmpKey) {
    let Some(h) = bytes::<8>(f, thoff) else {
        return;
    };
    key.ty = h[0];
    key.code = h[1];
    // icmp_has_id(): echo, echo reply, timestamp, timestamp reply, and the
    // ICMPv6 echo pair.
    key.id = if matches!(h[0], 0 | 8 | 13 | 14 | 128 | 129) {
        match u16::from_be_bytes([h[4], h[5]]) {
            0 => 1,
            id => id,
        }
    } else {
        0
    };
}

/// `bond_flow_ip()`: one IPv4 or IPv6 header at `*nhoff`, without options
/// walking. `ip_proto` is left alone for IPv4 fragments.
#[inline(always)]
fn flow_ip(
    f: &[u8],
    l2_proto: u16,
    nhoff: &mut usize,
    ip_proto: &mut Option<u8>,
    l34: bool,
    k: &mut FlowKeys,
) -> bool {
    match l2_proto {
        proto::IPV4 => {
            let Some(h) = bytes::<20>(f, *nhoff) else {
                return false;
            };
            k.set_v4(h, *nhoff);
            *nhoff += usize::from(h[0] & 0x0f) * 4;
            // ip_is_fragment(): MF set or a non-zero offset.
            if u16::from_be_bytes([h[6], h[7]]) & 0x3fff == 0 {
                *ip_proto = Some(h[9]);
            }
        }
        proto::IPV6 => {
            let Some(h) = bytes::<40>(f, *nhoff) else {
                return false;
            };
            k.set_v6(h, *nhoff);
            *nhoff += 40;
            *ip_proto = Some(h[6]);
        }
        _ => return false,
    }
    if l34 {
        if let Some(p) = *ip_proto {
            k.ports = ports_at(f, *nhoff, p);
        }
    }
    true
}

/// `bond_flow_dissect()` for layer2+3 and layer3+4: the outer addresses (or,
/// for an ICMP error, the addresses of the packet it quotes) and the ports.
#[inline(always)]
fn bond_dissect(f: &[u8], l2: &L2View, l34: bool) -> Option<FlowKeys> {
    let mut k = FlowKeys::default();
    let mut nhoff = l2.nhoff;
    let mut ip_proto = None;
    if !flow_ip(f, l2.proto, &mut nhoff, &mut ip_proto, l34, &mut k) {
        return None;
    }
    match ip_proto {
        Some(p @ (proto::ICMP | proto::ICMPV6)) => bond_dissect_icmp(f, l2, l34, k, nhoff, p),
        _ => Some(k),
    }
}

/// The ICMP part of `bond_flow_dissect()`: the type, code and id, and for
/// an error the headers of the packet it quotes.
#[inline(never)]
fn bond_dissect_icmp(
    f: &[u8],
    l2: &L2View,
    l34: bool,
    mut k: FlowKeys,
    mut nhoff: usize,
    p: u8,
) -> Option<FlowKeys> {
    icmp_at(f, nhoff, &mut k.icmp);
    let is_error = if p == proto::ICMP {
        // icmp_is_err(): unreachable, source quench, redirect, time
        // exceeded, parameter problem.
        matches!(k.icmp.ty, 3 | 4 | 5 | 11 | 12)
    } else {
        // icmpv6_is_err(): unreachable, too big, time exceeded, parameter
        // problem.
        matches!(k.icmp.ty, 1..=4)
    };
    if !is_error {
        return Some(k);
    }
    nhoff += 8;
    let mut ip_proto = Some(p);
    flow_ip(f, l2.proto, &mut nhoff, &mut ip_proto, l34, &mut k).then_some(k)
}

/// Headers the kernel's dissector parses at most.
const MAX_DISSECT_HDRS: u32 = 15;

enum Next {
    /// Parse `proto` at `nhoff` again.
    Proto,
    /// Parse `ip_proto` at `nhoff` again.
    IpProto,
    /// Stop; what was found so far stands.
    Good,
    /// Stop; the dissection failed.
    Bad,
    /// Go on to the transport header.
    Continue,
}

/// `__skb_flow_dissect()` with the bonding key set and no flags, for the
/// encap policies: it follows VLAN tags, PPPoE, GRE (also with an Ethernet
/// payload), IP-in-IP, IPv6-in-IP and IPv6 extension headers, so the keys are
/// those of the innermost IP header it reaches. UDP tunnels (VXLAN, Geneve)
/// are not looked into: their outer addresses and ports are the keys.
fn flow_dissect(f: &[u8], l2: &L2View) -> Option<FlowKeys> {
    let mut k = FlowKeys::default();
    let mut proto = l2.proto;
    let mut nhoff = l2.nhoff;
    let mut ip_proto: u8 = 0;
    let mut fragment = false;
    let mut hdrs = 0u32;
    let mut allowed = || {
        hdrs += 1;
        hdrs <= MAX_DISSECT_HDRS
    };

    'proto: loop {
        let next = match proto {
            proto::IPV4 => match bytes::<20>(f, nhoff) {
                Some(h) if h[0] & 0x0f >= 5 => {
                    k.set_v4(h, nhoff);
                    nhoff += usize::from(h[0] & 0x0f) * 4;
                    ip_proto = h[9];
                    if u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 {
                        // Any fragment ends the dissection without ports
                        // (FLOW_DISSECTOR_F_PARSE_1ST_FRAG is not set).
                        fragment = true;
                        Next::Good
                    } else {
                        Next::Continue
                    }
                }
                _ => Next::Bad,
            },
            proto::IPV6 => match bytes::<40>(f, nhoff) {
                Some(h) => {
                    k.set_v6(h, nhoff);
                    ip_proto = h[6];
                    nhoff += 40;
                    Next::Continue
                }
                None => Next::Bad,
            },
            proto::VLAN | proto::QINQ => match be16(f, nhoff + 2) {
                Some(inner) => {
                    proto = inner;
                    nhoff += 4;
                    Next::Proto
                }
                None => Next::Bad,
            },
            proto::PPP_SES => match bytes::<8>(f, nhoff) {
                // Version 1, type 1, code 0 (a session frame).
                Some(h) if h[0] == 0x11 && h[1] == 0 => {
                    nhoff += 8;
                    match u16::from_be_bytes([h[6], h[7]]) {
                        0x0021 => {
                            proto = proto::IPV4;
                            Next::Proto
                        }
                        0x0057 => {
                            proto = proto::IPV6;
                            Next::Proto
                        }
                        0x0281 => {
                            proto = proto::MPLS_UC;
                            Next::Proto
                        }
                        0x0283 => {
                            proto = proto::MPLS_MC;
                            Next::Proto
                        }
                        p if p & 0x0101 == 0x0001 => Next::Good,
                        _ => Next::Bad,
                    }
                }
                _ => Next::Bad,
            },
            proto::TIPC => match bytes::<16>(f, nhoff) {
                Some(h) => {
                    k.addrs = Addrs::Tipc { at: nhoff + 12 };
                    k.src = u32::from_ne_bytes([h[12], h[13], h[14], h[15]]);
                    k.dst = 0;
                    Next::Good
                }
                None => Next::Bad,
            },
            // The bonding key set has no MPLS, ARP or CFM keys: the kernel
            // stops there with what it has (no addresses).
            proto::MPLS_UC | proto::MPLS_MC | proto::ARP | proto::RARP | proto::CFM => Next::Good,
            proto::FCOE => {
                if f.len() >= nhoff + 38 {
                    Next::Good
                } else {
                    Next::Bad
                }
            }
            proto::BATMAN => match bytes::<24>(f, nhoff) {
                // batadv_unicast_packet (version 15, type 0x40) + Ethernet.
                Some(h) if h[1] == 15 && h[0] == 0x40 => {
                    proto = u16::from_be_bytes([h[22], h[23]]);
                    nhoff += 24;
                    Next::Proto
                }
                _ => Next::Bad,
            },
            _ => Next::Bad,
        };
        match next {
            Next::Good => return Some(k),
            Next::Bad => return None,
            Next::Proto => {
                if allowed() {
                    continue 'proto;
                }
                return Some(k);
            }
            Next::Continue | Next::IpProto => {}
        }

        loop {
            let next = match ip_proto {
                proto::GRE => gre(f, &mut proto, &mut nhoff),
                proto::HOPOPTS | proto::ROUTING | proto::DSTOPTS if proto == proto::IPV6 => {
                    match bytes::<2>(f, nhoff) {
                        Some(h) => {
                            ip_proto = h[0];
                            nhoff += (usize::from(h[1]) + 1) * 8;
                            Next::IpProto
                        }
                        None => Next::Bad,
                    }
                }
                proto::FRAGMENT if proto == proto::IPV6 => match bytes::<8>(f, nhoff) {
                    Some(h) => {
                        fragment = true;
                        nhoff += 8;
                        ip_proto = h[0];
                        Next::Good
                    }
                    None => Next::Bad,
                },
                proto::IPIP => {
                    proto = proto::IPV4;
                    Next::Proto
                }
                proto::IPV6_IN_IP => {
                    proto = proto::IPV6;
                    Next::Proto
                }
                proto::MPLS_IN_IP => {
                    proto = proto::MPLS_UC;
                    Next::Proto
                }
                proto::ICMP | proto::ICMPV6 => {
                    icmp_at(f, nhoff, &mut k.icmp);
                    Next::Continue
                }
                _ => Next::Continue,
            };
            if !fragment {
                k.ports = ports_at(f, nhoff, ip_proto);
            }
            match next {
                Next::Proto => {
                    if allowed() {
                        continue 'proto;
                    }
                    return Some(k);
                }
                Next::IpProto => {
                    if allowed() {
                        continue;
                    }
                    return Some(k);
                }
                Next::Good | Next::Continue => return Some(k),
                Next::Bad => return None,
            }
        }
    }
}

/// `__skb_flow_dissect_gre()`.
fn gre(f: &[u8], proto: &mut u16, nhoff: &mut usize) -> Next {
    let Some(h) = bytes::<4>(f, *nhoff) else {
        return Next::Bad;
    };
    let flags = u16::from_be_bytes([h[0], h[1]]);
    const CSUM: u16 = 0x8000;
    const ROUTING: u16 = 0x4000;
    const KEY: u16 = 0x2000;
    const SEQ: u16 = 0x1000;
    const ACK: u16 = 0x0080;
    if flags & ROUTING != 0 {
        return Next::Good;
    }
    let version = flags & 0x0007;
    if version > 1 {
        return Next::Good;
    }
    *proto = u16::from_be_bytes([h[2], h[3]]);
    if version == 1 && !(*proto == proto::GRE_PPP && flags & KEY != 0) {
        return Next::Good;
    }
    let mut offset = 4;
    if flags & CSUM != 0 {
        offset += 4;
    }
    if flags & KEY != 0 {
        if bytes::<4>(f, *nhoff + offset).is_none() {
            return Next::Bad;
        }
        offset += 4;
    }
    if flags & SEQ != 0 {
        offset += 4;
    }
    if version == 0 {
        if *proto == proto::TEB {
            let Some(inner) = be16(f, *nhoff + offset + 12) else {
                return Next::Bad;
            };
            *proto = inner;
            offset += 14;
        }
    } else {
        // PPTP: an optional acknowledgement number, then a PPP header.
        if flags & ACK != 0 {
            offset += 4;
        }
        let Some(ppp) = bytes::<4>(f, *nhoff + offset) else {
            return Next::Bad;
        };
        match u16::from_be_bytes([ppp[2], ppp[3]]) {
            0x0021 => *proto = proto::IPV4,
            0x0057 => *proto = proto::IPV6,
            _ => {}
        }
        offset += 4;
    }
    *nhoff += offset;
    Next::Proto
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

#[cfg(test)]
mod tests;
