//! Multicast membership reports a bond sends after a failover
//! (`resend_igmp`): an IGMPv3 report (RFC 3376) and an MLDv2 report (RFC
//! 3810), each listing every group of one interface as "change to exclude
//! {}", which is a join, as the kernel's stack sends when it rejoins its groups.

use super::checksum::{add, finish, fold, pseudo_v6};
use super::MacAddr;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Group record type CHANGE_TO_EXCLUDE_MODE (RFC 3376 4.2.12, RFC 3810 5.2.12).
const CHANGE_TO_EXCLUDE: u8 = 4;
const IGMPV3_REPORT: u8 = 0x22;
const MLDV2_REPORT: u8 = 143;
/// IGMPv3 reports go to 224.0.0.22, MLDv2 reports to ff02::16.
pub const IGMPV3_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 22);
pub const MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);

fn ipv4_multicast_mac(g: Ipv4Addr) -> [u8; 6] {
    let o = g.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// The groups a report carries: never the all-hosts group 224.0.0.1 (RFC
/// 3376 5: it is never reported), at most what fits in one 1500-byte frame.
fn reported_v4(groups: &[Ipv4Addr]) -> Vec<Ipv4Addr> {
    groups
        .iter()
        .copied()
        .filter(|g| g.is_multicast() && *g != Ipv4Addr::new(224, 0, 0, 1))
        .take(180)
        .collect()
}

/// An IGMPv3 report from `src` (0.0.0.0 when the interface has no address)
/// joining `groups`: TTL 1, TOS 0xc0, the Router Alert option. `None` when
/// no group is left to report.
pub fn igmpv3_report_frame(mac: MacAddr, src: Ipv4Addr, groups: &[Ipv4Addr]) -> Option<Vec<u8>> {
    let groups = reported_v4(groups);
    if groups.is_empty() {
        return None;
    }
    let igmp_len = 8 + 8 * groups.len();
    let ip_len = 24 + igmp_len;
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&ipv4_multicast_mac(IGMPV3_ROUTERS));
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let ip_at = f.len();
    // Version 4, IHL 6 (one option word), TOS 0xc0; DF; TTL 1, protocol 2.
    f.extend_from_slice(&[0x46, 0xc0]);
    f.extend_from_slice(&(ip_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 1, 2, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&IGMPV3_ROUTERS.octets());
    // Router Alert (RFC 2113).
    f.extend_from_slice(&[0x94, 0x04, 0, 0]);
    let sum = !fold(add(0, &f[ip_at..ip_at + 24]));
    f[ip_at + 10..ip_at + 12].copy_from_slice(&sum.to_be_bytes());
    let igmp_at = f.len();
    f.extend_from_slice(&[IGMPV3_REPORT, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&(groups.len() as u16).to_be_bytes());
    for g in &groups {
        f.extend_from_slice(&[CHANGE_TO_EXCLUDE, 0, 0, 0]);
        f.extend_from_slice(&g.octets());
    }
    let sum = !fold(add(0, &f[igmp_at..]));
    f[igmp_at + 2..igmp_at + 4].copy_from_slice(&sum.to_be_bytes());
    Some(f)
}

/// The groups an MLD report carries: not ff02::1 (all nodes) and nothing
/// of interface- or node-local scope (RFC 3810 6), at most what fits in
/// one 1500-byte frame.
fn reported_v6(groups: &[Ipv6Addr]) -> Vec<Ipv6Addr> {
    groups
        .iter()
        .copied()
        .filter(|g| {
            let o = g.octets();
            o[0] == 0xff && (o[1] & 0x0f) > 1 && *g != Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)
        })
        .take(70)
        .collect()
}

/// An MLDv2 report from `src` (a link-local address, or :: when there is
/// none) joining `groups`: hop limit 1, a hop-by-hop header with Router
/// Alert (RFC 2711, value 0: MLD). `None` when no group is left.
pub fn mldv2_report_frame(mac: MacAddr, src: Ipv6Addr, groups: &[Ipv6Addr]) -> Option<Vec<u8>> {
    let groups = reported_v6(groups);
    if groups.is_empty() {
        return None;
    }
    let icmp_len = 8 + 20 * groups.len();
    let payload = 8 + icmp_len;
    let mut f = Vec::with_capacity(14 + 40 + payload);
    let d = MLDV2_ROUTERS.octets();
    f.extend_from_slice(&[0x33, 0x33, d[12], d[13], d[14], d[15]]);
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&0x86ddu16.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(payload as u16).to_be_bytes());
    // Next header hop-by-hop options, hop limit 1.
    f.extend_from_slice(&[0, 1]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&d);
    // Hop-by-hop: next ICMPv6, length 0; Router Alert (type 5, 2 bytes,
    // value 0); PadN of 0 bytes.
    f.extend_from_slice(&[58, 0, 5, 2, 0, 0, 1, 0]);
    let icmp_at = f.len();
    f.extend_from_slice(&[MLDV2_REPORT, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&(groups.len() as u16).to_be_bytes());
    for g in &groups {
        f.extend_from_slice(&[CHANGE_TO_EXCLUDE, 0, 0, 0]);
        f.extend_from_slice(&g.octets());
    }
    let seed = pseudo_v6(&src.octets(), &d, 58, icmp_len as u32);
    let sum = finish(fold(add(u64::from(seed), &f[icmp_at..])), false);
    f[icmp_at + 2..icmp_at + 4].copy_from_slice(&sum.to_be_bytes());
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::hex;

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    #[test]
    fn igmpv3_report_bytes() {
        // As scapy 2.5 builds it: IP(src, dst=224.0.0.22, ttl=1, tos=0xc0,
        // flags=DF, options=[IPOption_Router_Alert()])/IGMPv3(type=0x22)/
        // IGMPv3mr(records=[IGMPv3gr(rtype=4, maddr=...), ...]).
        let want = hex("01005e000016 020000000001 0800
             46c0 0030 0000 4000 0102 3dde c6120001 e0000016 94040000
             2200 f4f5 0000 0002
             04000000 ef010101
             04000000 ef020202");
        let groups = [
            Ipv4Addr::new(224, 0, 0, 1),
            Ipv4Addr::new(239, 1, 1, 1),
            Ipv4Addr::new(239, 2, 2, 2),
        ];
        let f = igmpv3_report_frame(MAC, Ipv4Addr::new(198, 18, 0, 1), &groups).unwrap();
        assert_eq!(f, want, "224.0.0.1 is never reported");
        assert!(igmpv3_report_frame(MAC, Ipv4Addr::UNSPECIFIED, &groups[..1]).is_none());
    }

    #[test]
    fn mldv2_report_bytes() {
        // As scapy 2.5 builds it: IPv6(src, dst=ff02::16, hlim=1)/
        // IPv6ExtHdrHopByHop(options=[RouterAlert(value=0), PadN()])/
        // ICMPv6MLReport2(records=[ICMPv6MLDMultAddrRec(rtype=4, dst=...)]).
        let want = hex("333300000016 020000000001 86dd 60000000 0038 0001
             fe80000000000000000000fffe000001 ff020000000000000000000000000016
             3a00 0502 0000 0100
             8f00 6edb 0000 0002
             04000000 ff150000000000000000000000000001
             04000000 ff0200000000000000000001ff000001");
        let src: Ipv6Addr = "fe80::ff:fe00:1".parse().unwrap();
        let groups: Vec<Ipv6Addr> = ["ff02::1", "ff01::5", "ff15::1", "ff02::1:ff00:1"]
            .iter()
            .map(|g| g.parse().unwrap())
            .collect();
        let f = mldv2_report_frame(MAC, src, &groups).unwrap();
        assert_eq!(
            f, want,
            "ff02::1 and the interface-local ff01::5 are not reported"
        );
        assert!(mldv2_report_frame(MAC, src, &groups[..2]).is_none());
    }
}
