//! The frames of the ARP/NS monitor: which of the bond's interfaces a probe
//! for a target goes out through (the bond itself, or a VLAN on it), from
//! which address, and the bytes.
//!
//! The kernel asks its routing table for the target's output device and
//! uses an address of that device (`bond_arp_send_all`). xbond answers the
//! same question from the interfaces' own addresses: a target on the subnet
//! of a VLAN interface goes out tagged with that VLAN from its address; a
//! target on the bond's subnet, or anywhere else, untagged from the bond's
//! address; with no address at all, from 0.0.0.0 (IPv4) or the unspecified
//! address (IPv6), as the kernel sends when it has no route.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use xbond_dataplane::wire::vlan::{self, Tci};
use xbond_dataplane::wire::{arp, ndisc, MacAddr};

/// An interface a probe can leave through: VLAN id (0: the bond itself)
/// and its addresses with prefix lengths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub vid: u16,
    pub addresses: Vec<(IpAddr, u8)>,
}

fn same_subnet(a: IpAddr, b: IpAddr, prefix: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let p = u32::from(prefix.min(32));
            let mask = u32::MAX.checked_shl(32 - p).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let p = u32::from(prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - p).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

fn link_local(a: IpAddr) -> bool {
    matches!(a, IpAddr::V6(v) if v.segments()[0] & 0xffc0 == 0xfe80)
}

/// The VLAN and source address of a probe for `target`. `sources` lists the
/// bond first, then its VLANs.
pub fn route(target: IpAddr, sources: &[Source]) -> (u16, IpAddr) {
    // On a subnet of one of the interfaces: VLANs first, as a more specific
    // route would be; a link-local IPv6 target goes out on the bond itself.
    let on_link = sources.iter().rev().find_map(|s| {
        s.addresses
            .iter()
            .find(|&&(a, p)| !link_local(a) && !link_local(target) && same_subnet(a, target, p))
            .map(|&(a, _)| (s.vid, a))
    });
    if let Some(r) = on_link {
        return r;
    }
    let bond = sources.iter().find(|s| s.vid == 0);
    let same_family = |a: &IpAddr| a.is_ipv4() == target.is_ipv4();
    let pick = bond.and_then(|s| {
        // Prefer an address of the target's scope (link-local for a
        // link-local target), then any of its family.
        s.addresses
            .iter()
            .map(|&(a, _)| a)
            .filter(same_family)
            .find(|&a| link_local(a) == link_local(target))
            .or_else(|| s.addresses.iter().map(|&(a, _)| a).find(same_family))
    });
    let none = match target {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    (0, pick.unwrap_or(none))
}

/// The probe for `target` from `src` (an ARP request, or a Neighbor
/// Solicitation), tagged with `vid` unless it is 0.
pub fn frame(mac: MacAddr, vid: u16, src: IpAddr, target: IpAddr) -> Vec<u8> {
    let untagged = match (src, target) {
        (IpAddr::V4(s), IpAddr::V4(t)) => arp::Repr::request_frame(mac, s, t).to_vec(),
        (IpAddr::V6(s), IpAddr::V6(t)) => ndisc::solicitation_frame(mac, s, t),
        (_, IpAddr::V4(t)) => arp::Repr::request_frame(mac, Ipv4Addr::UNSPECIFIED, t).to_vec(),
        (_, IpAddr::V6(t)) => ndisc::solicitation_frame(mac, Ipv6Addr::UNSPECIFIED, t),
    };
    frame_on(vid, untagged)
}

/// A frame the control thread sends on interface `vid` of the bond: as it
/// is for the bond itself (0), with an 802.1Q tag after its MACs for a VLAN.
pub fn frame_on(vid: u16, untagged: Vec<u8>) -> Vec<u8> {
    if vid == 0 {
        return untagged;
    }
    let mut out = vec![0u8; vlan::TAG_LEN];
    out.extend_from_slice(&untagged);
    vlan::insert_tag(&mut out, vlan::TPID_8021Q, Tci::new(0, false, vid));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sources() -> Vec<Source> {
        vec![
            Source {
                vid: 0,
                addresses: vec![
                    (ip("198.18.0.1"), 24),
                    (ip("fe80::1"), 64),
                    (ip("2001:db8::1"), 64),
                ],
            },
            Source {
                vid: 87,
                addresses: vec![(ip("198.18.87.1"), 24), (ip("2001:db8:87::1"), 64)],
            },
        ]
    }

    #[test]
    fn targets_on_a_vlan_subnet_go_out_tagged_from_its_address() {
        let s = sources();
        assert_eq!(route(ip("198.18.87.2"), &s), (87, ip("198.18.87.1")));
        assert_eq!(route(ip("2001:db8:87::2"), &s), (87, ip("2001:db8:87::1")));
        assert_eq!(route(ip("198.18.0.2"), &s), (0, ip("198.18.0.1")));
        assert_eq!(route(ip("2001:db8::2"), &s), (0, ip("2001:db8::1")));
    }

    #[test]
    fn other_targets_go_out_on_the_bond_or_from_nowhere() {
        let s = sources();
        assert_eq!(
            route(ip("198.19.5.5"), &s),
            (0, ip("198.18.0.1")),
            "via a gateway"
        );
        assert_eq!(
            route(ip("fe80::2"), &s),
            (0, ip("fe80::1")),
            "link-local from link-local"
        );
        assert_eq!(route(ip("2001:db9::2"), &s), (0, ip("2001:db8::1")));
        let bare = [Source {
            vid: 0,
            addresses: vec![],
        }];
        assert_eq!(route(ip("198.18.0.2"), &bare), (0, ip("0.0.0.0")));
        assert_eq!(route(ip("2001:db8::2"), &bare), (0, ip("::")));
    }

    #[test]
    fn probe_frames_are_arp_requests_and_solicitations_tagged_when_asked() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let f = frame(mac, 0, ip("198.18.0.1"), ip("198.18.0.2"));
        assert_eq!(f.len(), 60);
        assert_eq!(f[12..14], [0x08, 0x06]);
        let f = frame(mac, 87, ip("198.18.87.1"), ip("198.18.87.2"));
        assert_eq!(f.len(), 64);
        assert_eq!(f[12..18], [0x81, 0x00, 0x00, 87, 0x08, 0x06]);
        assert_eq!(f[32..36], [198, 18, 87, 1]);
        let f = frame(mac, 0, ip("2001:db8::1"), ip("2001:db8::2"));
        assert_eq!(f[12..14], [0x86, 0xdd]);
        assert_eq!(f[54], 135);
        // A mismatched source (no address of the family) is unspecified.
        let f = frame(mac, 0, ip("198.18.0.1"), ip("2001:db8::2"));
        assert_eq!(f[22..38], [0u8; 16]);
    }
}
