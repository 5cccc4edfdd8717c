//! The kernel's flow dissectors, as `bond_xmit_hash()` calls them: the
//! bond's own (`bond_flow_dissect`, headers up to layer 4 of the outer
//! packet) and the full one of the encap policies (through VLANs, MPLS,
//! PPPoE and GRE to the innermost flow).

use super::*;

/// `proto_ports_offset()` then the 4 bytes there (`__skb_flow_get_ports`).
#[inline]
pub(super) fn ports_at(f: &[u8], thoff: usize, ip_proto: u8) -> [u8; 4] {
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
pub(super) fn icmp_at(f: &[u8], thoff: usize, key: &mut IcmpKey) {
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
pub(super) fn flow_ip(
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
pub(super) fn bond_dissect(f: &[u8], l2: &L2View, l34: bool) -> Option<FlowKeys> {
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
pub(super) fn bond_dissect_icmp(
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
pub(super) fn flow_dissect(f: &[u8], l2: &L2View) -> Option<FlowKeys> {
    let mut d = Dissector {
        f,
        k: FlowKeys::default(),
        proto: l2.proto,
        nhoff: l2.nhoff,
        ip_proto: 0,
        fragment: false,
        hdrs: 0,
    };
    'proto: loop {
        match d.network_header() {
            Next::Good => return Some(d.k),
            Next::Bad => return None,
            Next::Proto if d.allowed() => continue 'proto,
            Next::Proto => return Some(d.k),
            Next::Continue | Next::IpProto => {}
        }
        loop {
            let next = d.ip_proto_header();
            if !d.fragment {
                d.k.ports = ports_at(f, d.nhoff, d.ip_proto);
            }
            match next {
                Next::Proto if d.allowed() => continue 'proto,
                Next::IpProto if d.allowed() => continue,
                Next::Proto | Next::IpProto | Next::Good | Next::Continue => return Some(d.k),
                Next::Bad => return None,
            }
        }
    }
}

/// Where `flow_dissect` is in the frame: the keys so far, the protocol of
/// the header at `nhoff` (`proto` at the network layer, `ip_proto` above
/// it), and how many headers it has followed.
struct Dissector<'a> {
    f: &'a [u8],
    k: FlowKeys,
    proto: u16,
    nhoff: usize,
    ip_proto: u8,
    fragment: bool,
    hdrs: u32,
}

impl Dissector<'_> {
    /// One more header may be followed (`MAX_FLOW_DISSECT_HDRS`).
    #[inline(always)]
    fn allowed(&mut self) -> bool {
        self.hdrs += 1;
        self.hdrs <= MAX_DISSECT_HDRS
    }

    /// The header `proto` names, at `nhoff`: its keys, and where to go on.
    #[inline(always)]
    fn network_header(&mut self) -> Next {
        let (f, nhoff) = (self.f, self.nhoff);
        match self.proto {
            proto::IPV4 => match bytes::<20>(f, nhoff) {
                Some(h) if h[0] & 0x0f >= 5 => {
                    self.k.set_v4(h, nhoff);
                    self.nhoff += usize::from(h[0] & 0x0f) * 4;
                    self.ip_proto = h[9];
                    if u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 {
                        // Any fragment ends the dissection without ports
                        // (FLOW_DISSECTOR_F_PARSE_1ST_FRAG is not set).
                        self.fragment = true;
                        Next::Good
                    } else {
                        Next::Continue
                    }
                }
                _ => Next::Bad,
            },
            proto::IPV6 => match bytes::<40>(f, nhoff) {
                Some(h) => {
                    self.k.set_v6(h, nhoff);
                    self.ip_proto = h[6];
                    self.nhoff += 40;
                    Next::Continue
                }
                None => Next::Bad,
            },
            proto::VLAN | proto::QINQ => match be16(f, nhoff + 2) {
                Some(inner) => self.go(inner, 4),
                None => Next::Bad,
            },
            proto::PPP_SES => match bytes::<8>(f, nhoff) {
                // Version 1, type 1, code 0 (a session frame).
                Some(h) if h[0] == 0x11 && h[1] == 0 => match u16::from_be_bytes([h[6], h[7]]) {
                    0x0021 => self.go(proto::IPV4, 8),
                    0x0057 => self.go(proto::IPV6, 8),
                    0x0281 => self.go(proto::MPLS_UC, 8),
                    0x0283 => self.go(proto::MPLS_MC, 8),
                    p if p & 0x0101 == 0x0001 => Next::Good,
                    _ => Next::Bad,
                },
                _ => Next::Bad,
            },
            proto::TIPC => match bytes::<16>(f, nhoff) {
                Some(h) => {
                    self.k.addrs = Addrs::Tipc { at: nhoff + 12 };
                    self.k.src = u32::from_ne_bytes([h[12], h[13], h[14], h[15]]);
                    self.k.dst = 0;
                    Next::Good
                }
                None => Next::Bad,
            },
            // The bonding key set has no MPLS, ARP or CFM keys: the kernel
            // stops there with what it has (no addresses).
            proto::MPLS_UC | proto::MPLS_MC | proto::ARP | proto::RARP | proto::CFM => Next::Good,
            proto::FCOE if f.len() >= nhoff + 38 => Next::Good,
            proto::BATMAN => match bytes::<24>(f, nhoff) {
                // batadv_unicast_packet (version 15, type 0x40) + Ethernet.
                Some(h) if h[1] == 15 && h[0] == 0x40 => {
                    self.go(u16::from_be_bytes([h[22], h[23]]), 24)
                }
                _ => Next::Bad,
            },
            _ => Next::Bad,
        }
    }

    /// Past a header of `len` bytes to one of protocol `proto`.
    #[inline(always)]
    fn go(&mut self, proto: u16, len: usize) -> Next {
        self.proto = proto;
        self.nhoff += len;
        Next::Proto
    }

    /// The header `ip_proto` names, above the network header.
    #[inline(always)]
    fn ip_proto_header(&mut self) -> Next {
        let (f, nhoff) = (self.f, self.nhoff);
        match self.ip_proto {
            proto::GRE => gre(f, &mut self.proto, &mut self.nhoff),
            proto::HOPOPTS | proto::ROUTING | proto::DSTOPTS if self.proto == proto::IPV6 => {
                match bytes::<2>(f, nhoff) {
                    Some(h) => {
                        self.ip_proto = h[0];
                        self.nhoff += (usize::from(h[1]) + 1) * 8;
                        Next::IpProto
                    }
                    None => Next::Bad,
                }
            }
            proto::FRAGMENT if self.proto == proto::IPV6 => match bytes::<8>(f, nhoff) {
                Some(h) => {
                    self.fragment = true;
                    self.nhoff += 8;
                    self.ip_proto = h[0];
                    Next::Good
                }
                None => Next::Bad,
            },
            proto::IPIP => self.go(proto::IPV4, 0),
            proto::IPV6_IN_IP => self.go(proto::IPV6, 0),
            proto::MPLS_IN_IP => self.go(proto::MPLS_UC, 0),
            proto::ICMP | proto::ICMPV6 => {
                icmp_at(f, nhoff, &mut self.k.icmp);
                Next::Continue
            }
            _ => Next::Continue,
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
