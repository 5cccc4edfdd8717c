//! IPv6 Neighbor Discovery, as far as the NS link monitor needs it: building
//! a Neighbor Solicitation for a target, and reading the addresses of a
//! received Neighbor Solicitation or Advertisement (RFC 4861).

use super::{MacAddr, Result, WireError};
use std::net::Ipv6Addr;

pub const ETHERTYPE_IPV6: u16 = super::ethernet::ethertype::IPV6;
const IPV6_HEADER: usize = 40;
const NEXT_HEADER_ICMPV6: u8 = 58;
const ICMPV6_NS: u8 = 135;
const ICMPV6_NA: u8 = 136;
/// Type, code, checksum, reserved/flags, target address.
const ND_BODY: usize = 24;
/// Source link-layer address option: type 1, length 1 (8 bytes).
const SLLA_OPTION: usize = 8;

/// Which ND message a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdKind {
    Solicitation,
    Advertisement,
}

/// A received NS or NA: its kind and the IPv6 source and destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdMessage {
    pub kind: NdKind,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

/// Read an IPv6 packet (from its version byte) that carries ICMPv6 NS or
/// NA directly after the fixed header, as the kernel's bonding checks it
/// (`bond_na_rcv` looks at the next header of the fixed header only).
pub fn parse(ip: &[u8]) -> Result<NdMessage> {
    if ip.len() < IPV6_HEADER + 4 {
        return Err(WireError::Truncated);
    }
    if ip[0] >> 4 != 6 || ip[6] != NEXT_HEADER_ICMPV6 {
        return Err(WireError::Malformed);
    }
    let kind = match ip[IPV6_HEADER] {
        ICMPV6_NS => NdKind::Solicitation,
        ICMPV6_NA => NdKind::Advertisement,
        _ => return Err(WireError::Malformed),
    };
    Ok(NdMessage {
        kind,
        src: addr(&ip[8..24]),
        dst: addr(&ip[24..40]),
    })
}

/// Whether an IPv6 packet is an NS or NA: the few byte compares the data
/// path makes before copying a frame to control.
#[inline]
pub fn is_nd(ip: &[u8]) -> bool {
    ip.len() > IPV6_HEADER
        && ip[6] == NEXT_HEADER_ICMPV6
        && matches!(ip[IPV6_HEADER], ICMPV6_NS | ICMPV6_NA)
}

/// The solicited-node multicast address of `target` (ff02::1:ffXX:XXXX).
pub fn solicited_node(target: Ipv6Addr) -> Ipv6Addr {
    let t = target.octets();
    let mut a = [0u8; 16];
    a[0] = 0xff;
    a[1] = 0x02;
    a[11] = 0x01;
    a[12] = 0xff;
    a[13..].copy_from_slice(&t[13..]);
    Ipv6Addr::from(a)
}

/// The Ethernet multicast address of an IPv6 multicast address (33:33 and
/// its last four bytes).
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let g = group.octets();
    MacAddr([0x33, 0x33, g[12], g[13], g[14], g[15]])
}

/// The ICMPv6 checksum over the pseudo-header and `body`.
fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, body: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            let hi = u32::from(c[0]) << 8;
            let lo = c.get(1).copied().map_or(0, u32::from);
            sum += hi | lo;
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(body.len() as u32).to_be_bytes());
    add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    add(body);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMPv6 ND message `body` (type first, checksum zero) from `src` to
/// `dst` in an Ethernet frame to `dst`'s multicast MAC, hop limit 255, with
/// its checksum filled in.
fn nd_frame(mac: MacAddr, src: Ipv6Addr, dst: Ipv6Addr, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + IPV6_HEADER + body.len());
    f.extend_from_slice(&multicast_mac(dst).0);
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(body.len() as u16).to_be_bytes());
    f.extend_from_slice(&[NEXT_HEADER_ICMPV6, 255]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    let body_at = f.len();
    f.extend_from_slice(body);
    let sum = icmpv6_checksum(src, dst, &f[body_at..]);
    f[body_at + 2..body_at + 4].copy_from_slice(&sum.to_be_bytes());
    f
}

/// A Neighbor Solicitation for `target` from `src` (the unspecified address
/// when the bond has none on the target's link), to the target's
/// solicited-node group, hop limit 255, with the source link-layer address
/// option unless the source is unspecified — what the kernel's
/// `ndisc_ns_create` sends for the bonding NS monitor.
pub fn solicitation_frame(mac: MacAddr, src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let mut body = Vec::with_capacity(ND_BODY + SLLA_OPTION);
    body.extend_from_slice(&[ICMPV6_NS, 0, 0, 0, 0, 0, 0, 0]);
    body.extend_from_slice(&target.octets());
    if !src.is_unspecified() {
        body.extend_from_slice(&[1, 1]);
        body.extend_from_slice(&mac.0);
    }
    nd_frame(mac, src, solicited_node(target), &body)
}

/// An unsolicited Neighbor Advertisement for `addr` from `addr` to all
/// nodes (ff02::1), hop limit 255, Override set, Solicited clear, Router as
/// `router` says, with the target link-layer address option: what the
/// kernel's `ndisc_send_unsol_na` sends for each address of a bond after a
/// failover, so that neighbours move to the new member at once.
pub fn unsolicited_advertisement_frame(mac: MacAddr, addr: Ipv6Addr, router: bool) -> Vec<u8> {
    // Flags: Router 0x80, Solicited 0x40, Override 0x20.
    let flags = 0x20 | if router { 0x80 } else { 0 };
    let mut body = Vec::with_capacity(ND_BODY + SLLA_OPTION);
    body.extend_from_slice(&[ICMPV6_NA, 0, 0, 0, flags, 0, 0, 0]);
    body.extend_from_slice(&addr.octets());
    // Target link-layer address option: type 2, length 1.
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&mac.0);
    nd_frame(mac, addr, Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::hex;

    // NS for 2001:db8::2 from 2001:db8::1, 02:00:00:00:00:01, checksum as
    // scapy computes it for this message.
    fn expected() -> Vec<u8> {
        hex("3333ff000002 020000000001 86dd
             60000000 0020 3aff
             20010db8000000000000000000000001
             ff0200000000000000000001ff000002
             8700 1c27 00000000
             20010db8000000000000000000000002
             0101 020000000001")
    }

    #[test]
    fn unsolicited_advertisement_bytes() {
        // As scapy builds it: Ether()/IPv6(hlim=255)/ICMPv6ND_NA(O=1)/
        // ICMPv6NDOptDstLLAddr().
        let want = hex("333300000001 020000000001 86dd
             60000000 0020 3aff
             20010db8000000000000000000000001
             ff020000000000000000000000000001
             8800 f92a 20000000
             20010db8000000000000000000000001
             0201 020000000001");
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let f = unsolicited_advertisement_frame(MacAddr([2, 0, 0, 0, 0, 1]), a, false);
        assert_eq!(f, want);
        let m = parse(&f[14..]).unwrap();
        assert_eq!((m.kind, m.src), (NdKind::Advertisement, a));
        // The Router flag changes the flags byte and the checksum with it.
        let r = unsolicited_advertisement_frame(MacAddr([2, 0, 0, 0, 0, 1]), a, true);
        assert_eq!(r[14 + 40 + 4], 0xa0);
        assert_eq!(
            u16::from_be_bytes([r[56], r[57]]),
            0xf92a - 0x8000,
            "one's complement: 0x80 more in the sum, 0x80 less in the checksum"
        );
    }

    #[test]
    fn solicitation_bytes() {
        let f = solicitation_frame(
            MacAddr([2, 0, 0, 0, 0, 1]),
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        assert_eq!(f, expected());
        let m = parse(&f[14..]).unwrap();
        assert_eq!(m.kind, NdKind::Solicitation);
        assert_eq!(m.dst, "ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap());
        assert!(is_nd(&f[14..]));
    }

    #[test]
    fn unspecified_source_has_no_link_layer_option() {
        let f = solicitation_frame(
            MacAddr([2, 0, 0, 0, 0, 1]),
            Ipv6Addr::UNSPECIFIED,
            "2001:db8::2".parse().unwrap(),
        );
        assert_eq!(f.len(), 14 + 40 + 24);
        assert_eq!(f[18..20], [0, 24]);
    }

    #[test]
    fn parse_rejects_what_is_not_nd() {
        let mut f = expected();
        assert_eq!(parse(&f[14..50]).unwrap_err(), WireError::Truncated);
        f[54] = 128; // echo request
        assert_eq!(parse(&f[14..]).unwrap_err(), WireError::Malformed);
        assert!(!is_nd(&f[14..]));
        f[54] = ICMPV6_NA;
        assert_eq!(parse(&f[14..]).unwrap().kind, NdKind::Advertisement);
        f[20] = 6; // TCP
        assert!(parse(&f[14..]).is_err());
        assert!(!is_nd(&f[14..]));
    }
}
