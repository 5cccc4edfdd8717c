//! The per-frame decision: where a received frame goes, read from the bond
//! snapshot alone. No state, no I/O, no allocation.

use crate::counters::DropReason;
use crate::schedule::{self, TxPlan, TxState};
use crate::snapshot::{BondMode, BondSnapshot, MemberId};
use crate::wire::vlan::{self, Tci, TPID_8021AD, TPID_8021Q};
use crate::wire::{ethernet, ndisc};

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// To a host port: VLAN 0 is the bond's own interface (bond0), any
    /// other the VLAN's (bond0.87). `untag`: remove the outer tag first.
    ToHost {
        vid: u16,
        untag: bool,
    },
    /// Out of this member.
    ToMember(MemberId),
    /// balance-alb: an ARP reply out of this member, its sender MAC
    /// rewritten to the member's.
    ArpReplyVia(MemberId),
    /// Out of every member that can transmit (broadcast).
    ToAllMembers,
    /// To the control thread, for the reason given.
    ToControl(Handover),
    Drop(DropReason),
}

/// Why the data path hands a frame to the control thread. Control acts on
/// the reason; it does not classify the frame a second time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// A slow-protocol frame (LACPDU, marker PDU) from a member. It is
    /// control's alone and never reaches the host.
    SlowProtocol,
    /// A copy of an ARP or NS/NA frame from a member, for the ARP/NS
    /// monitor and balance-alb's client table. The frame itself goes on.
    ProbeCopy,
    /// balance-alb: ARP from the host that the data path cannot place,
    /// because it changes the client table.
    HostArp,
}

impl Verdict {
    /// Untagged, to the bond's own interface.
    pub const TO_BOND: Verdict = Verdict::ToHost {
        vid: 0,
        untag: false,
    };
}

/// What a frame from a VLAN host port needs before it leaves a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EgressTag {
    /// Push an 802.1Q tag.
    Push(Tci),
    /// The host sent it priority-tagged (VID 0): set the VLAN id in the tag
    /// it has, keeping its priority.
    Rewrite(Tci),
}

const ETH_HEADER: usize = 14;
#[cfg(test)]
const SLOW_PROTOCOLS: [u8; 2] = [0x88, 0x09];
const ETHERTYPE_ARP: u16 = crate::wire::ethernet::ethertype::ARP;

/// A frame received on member `member`.
#[inline]
pub fn from_member(snap: &BondSnapshot, member: MemberId, frame: &[u8]) -> Verdict {
    if frame.len() < ETH_HEADER {
        return Verdict::Drop(DropReason::Runt);
    }
    // LACPDUs and marker PDUs belong to control and never reach the host.
    if ethernet::is_slow_protocol(frame) {
        return Verdict::ToControl(Handover::SlowProtocol);
    }
    let accepted = match snap.mode {
        BondMode::ActiveBackup => snap.active == Some(member) || snap.all_slaves_active,
        // Every member is active in the load-sharing modes; what arrives
        // where is the switch's choice.
        BondMode::BalanceRr | BondMode::BalanceXor | BondMode::Broadcast => true,
        // 802.3ad: a member that is not collecting is not part of the
        // aggregation (the kernel drops on its inactive slaves).
        BondMode::Ieee8023ad => snap.all_slaves_active || snap.collecting.contains(&member),
        // balance-tlb receives on the active member; balance-alb also takes
        // unicast on the others (peers were given their MACs), as the
        // kernel's inactive slaves deliver only exact matches.
        BondMode::BalanceTlb => snap.active == Some(member) || snap.all_slaves_active,
        BondMode::BalanceAlb => {
            snap.active == Some(member) || snap.all_slaves_active || frame[0] & 1 == 0
        }
    };
    if !accepted {
        return Verdict::Drop(DropReason::InactiveMember);
    }
    demux(snap, frame)
}

/// Whether a frame is one the ARP/NS monitor reads: an ARP packet, or an
/// ICMPv6 Neighbor Solicitation or Advertisement, untagged or under one
/// 802.1Q tag (a VLAN the probes go out on).
#[inline]
pub fn is_probe(frame: &[u8]) -> bool {
    match vlan::inner_payload(frame) {
        Some((ETHERTYPE_ARP, _)) => true,
        Some((ndisc::ETHERTYPE_IPV6, ip)) => ndisc::is_nd(ip),
        _ => false,
    }
}

/// The host port a received frame belongs to, by its outer tag: untagged
/// and priority-tagged (VID 0) frames to the bond, a configured VLAN to
/// its port without the tag, an unknown VLAN nowhere. An 802.1ad (QinQ)
/// outer tag goes to the bond unchanged or is dropped, as configured.
#[inline]
pub fn demux(snap: &BondSnapshot, frame: &[u8]) -> Verdict {
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    if ethertype != TPID_8021Q && ethertype != TPID_8021AD {
        return Verdict::TO_BOND;
    }
    let Some(tag) = vlan::outer_tag(frame) else {
        return Verdict::Drop(DropReason::Runt);
    };
    if tag.tpid == TPID_8021AD {
        return if snap.qinq_pass {
            Verdict::TO_BOND
        } else {
            Verdict::Drop(DropReason::QinqRejected)
        };
    }
    match tag.tci.vid() {
        0 => Verdict::ToHost {
            vid: 0,
            untag: true,
        },
        vid if snap.vlans.contains(vid) => Verdict::ToHost { vid, untag: true },
        _ => Verdict::Drop(DropReason::UnknownVlan),
    }
}

/// A frame the host stack sent on host port `vid` (0: the bond itself).
/// The frame is as the host sent it, untagged for a VLAN port; the hash
/// sees the VLAN as the kernel's does, out of band.
#[inline]
pub fn from_host(snap: &BondSnapshot, tx: &mut TxState, frame: &[u8], vid: u16) -> Verdict {
    if frame.len() < ETH_HEADER {
        return Verdict::Drop(DropReason::Runt);
    }
    let tci = (vid != 0).then_some(vid);
    match schedule::plan(snap, tx, frame, tci) {
        TxPlan::Member(m) => Verdict::ToMember(m),
        TxPlan::AllMembers => Verdict::ToAllMembers,
        TxPlan::ArpReply(m) => Verdict::ArpReplyVia(m),
        TxPlan::Control => Verdict::ToControl(Handover::HostArp),
        TxPlan::Drop(r) => Verdict::Drop(r),
    }
}

/// The tag a frame from VLAN port `vid` leaves with. A frame the host
/// already tagged with VID 0 (a priority tag) keeps its priority.
#[inline]
pub fn egress_tag(frame: &[u8], vid: u16) -> EgressTag {
    match vlan::outer_tag(frame) {
        Some(t) if t.tpid == TPID_8021Q && t.tci.vid() == 0 => {
            EgressTag::Rewrite(t.tci.with_vid(vid))
        }
        _ => EgressTag::Push(Tci::new(0, false, vid)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ethertype: [u8; 2]) -> [u8; 60] {
        let mut f = [0u8; 60];
        f[..6].copy_from_slice(&[0xff; 6]);
        f[12..14].copy_from_slice(&ethertype);
        f
    }

    #[test]
    fn lacp_delivers_only_from_collecting_members_and_hashes_over_distributing() {
        let mut s = BondSnapshot::new(BondMode::Ieee8023ad);
        s.collecting = vec![0, 2];
        s.usable = vec![2];
        s.prepare();
        let ip = frame([0x08, 0x00]);
        assert_eq!(from_member(&s, 2, &ip), Verdict::TO_BOND);
        assert_eq!(
            from_member(&s, 1, &ip),
            Verdict::Drop(DropReason::InactiveMember)
        );
        assert_eq!(
            from_member(&s, 1, &frame(SLOW_PROTOCOLS)),
            Verdict::ToControl(Handover::SlowProtocol)
        );
        let mut tx = TxState::new(1);
        assert_eq!(from_host(&s, &mut tx, &ip, 0), Verdict::ToMember(2));
        s.usable.clear();
        s.prepare();
        assert_eq!(
            from_host(&s, &mut tx, &ip, 0),
            Verdict::Drop(DropReason::NoUsableMember)
        );
    }

    #[test]
    fn active_backup_delivers_only_from_the_active_member() {
        let mut s = BondSnapshot::new(BondMode::ActiveBackup);
        s.active = Some(1);
        let ip = frame([0x08, 0x00]);
        assert_eq!(from_member(&s, 1, &ip), Verdict::TO_BOND);
        assert_eq!(
            from_member(&s, 0, &ip),
            Verdict::Drop(DropReason::InactiveMember)
        );
        s.all_slaves_active = true;
        assert_eq!(from_member(&s, 0, &ip), Verdict::TO_BOND);
    }

    #[test]
    fn host_frames_follow_the_active_member() {
        let mut s = BondSnapshot::new(BondMode::ActiveBackup);
        let mut tx = TxState::new(1);
        let ip = frame([0x08, 0x00]);
        assert_eq!(
            from_host(&s, &mut tx, &ip, 0),
            Verdict::Drop(DropReason::NoActiveMember)
        );
        s.active = Some(0);
        assert_eq!(from_host(&s, &mut tx, &ip, 0), Verdict::ToMember(0));
        assert_eq!(
            from_host(&s, &mut tx, &ip[..10], 0),
            Verdict::Drop(DropReason::Runt)
        );
    }

    #[test]
    fn probes_are_arp_and_neighbor_discovery_untagged_or_under_one_tag() {
        use crate::wire::{arp, ndisc, MacAddr};
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let req = arp::Repr::request_frame(mac, [198, 18, 0, 1].into(), [198, 18, 0, 2].into());
        assert!(is_probe(&req));
        let ns = ndisc::solicitation_frame(
            mac,
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        assert!(is_probe(&ns));
        for f in [&req[..], &ns[..]] {
            let mut tagged = vec![0u8; vlan::TAG_LEN];
            tagged.extend_from_slice(f);
            vlan::insert_tag(&mut tagged, TPID_8021Q, Tci::new(0, false, 87));
            assert!(is_probe(&tagged), "one 802.1Q tag");
            assert!(!is_probe(&tagged[..17]), "cut inside the tag");
        }
        assert!(!is_probe(&frame([0x08, 0x00])));
        assert!(!is_probe(&frame(SLOW_PROTOCOLS)));
        let mut echo = ns.clone();
        echo[54] = 128;
        assert!(!is_probe(&echo), "other ICMPv6");
        assert!(!is_probe(&ns[..54]), "IPv6 header only");
        assert!(!is_probe(&req[..13]));
    }

    #[test]
    fn load_sharing_modes_deliver_from_every_member() {
        for mode in [
            BondMode::BalanceRr,
            BondMode::BalanceXor,
            BondMode::Broadcast,
        ] {
            let s = BondSnapshot::new(mode);
            assert_eq!(from_member(&s, 3, &frame([0x08, 0x00])), Verdict::TO_BOND);
            assert_eq!(
                from_member(&s, 3, &frame([0x88, 0x09])),
                Verdict::ToControl(Handover::SlowProtocol)
            );
        }
    }

    #[test]
    fn slow_protocols_go_to_control_from_any_member() {
        let mut s = BondSnapshot::new(BondMode::ActiveBackup);
        s.active = Some(0);
        assert_eq!(
            from_member(&s, 1, &frame([0x88, 0x09])),
            Verdict::ToControl(Handover::SlowProtocol)
        );
        assert_eq!(
            from_member(&s, 1, &[0u8; 13]),
            Verdict::Drop(DropReason::Runt)
        );
    }

    fn tagged(tpid: [u8; 2], tci: u16, inner: [u8; 2]) -> [u8; 64] {
        let mut f = [0u8; 64];
        f[..6].copy_from_slice(&[0xff; 6]);
        f[12..14].copy_from_slice(&tpid);
        f[14..16].copy_from_slice(&tci.to_be_bytes());
        f[16..18].copy_from_slice(&inner);
        f
    }

    fn with_vlans(vids: &[u16]) -> BondSnapshot {
        let mut s = BondSnapshot::new(BondMode::BalanceXor);
        s.vlans = vids.iter().copied().collect();
        s
    }

    #[test]
    fn demux_by_vid_untags_for_the_vlan_port() {
        let s = with_vlans(&[87, 4094]);
        let ip = [0x08, 0x00];
        assert_eq!(
            from_member(&s, 0, &tagged([0x81, 0x00], 0xa057, ip)),
            Verdict::ToHost {
                vid: 87,
                untag: true
            },
            "PCP 5 does not change the port"
        );
        assert_eq!(
            from_member(&s, 0, &tagged([0x81, 0x00], 4094, ip)),
            Verdict::ToHost {
                vid: 4094,
                untag: true
            }
        );
        assert_eq!(
            from_member(&s, 0, &tagged([0x81, 0x00], 88, ip)),
            Verdict::Drop(DropReason::UnknownVlan)
        );
        assert_eq!(from_member(&s, 0, &frame(ip)), Verdict::TO_BOND);
        // A tag cut short is malformed, not a VLAN frame.
        assert_eq!(
            from_member(&s, 0, &tagged([0x81, 0x00], 87, ip)[..16]),
            Verdict::Drop(DropReason::Runt)
        );
    }

    #[test]
    fn priority_tagged_frames_are_untagged_frames_of_the_bond() {
        let s = with_vlans(&[87]);
        assert_eq!(
            from_member(&s, 0, &tagged([0x81, 0x00], 0xe000, [0x08, 0x00])),
            Verdict::ToHost {
                vid: 0,
                untag: true
            }
        );
    }

    #[test]
    fn qinq_passes_to_the_bond_unchanged_or_is_dropped_as_configured() {
        let mut s = with_vlans(&[100]);
        let f = tagged([0x88, 0xa8], 100, [0x81, 0x00]);
        assert_eq!(
            from_member(&s, 0, &f),
            Verdict::Drop(DropReason::QinqRejected)
        );
        s.qinq_pass = true;
        assert_eq!(
            from_member(&s, 0, &f),
            Verdict::TO_BOND,
            "S-VLAN 100 is not C-VLAN 100"
        );
    }

    #[test]
    fn inactive_members_drop_before_the_demux() {
        let mut s = with_vlans(&[87]);
        s.mode = BondMode::ActiveBackup;
        s.active = Some(0);
        assert_eq!(
            from_member(&s, 1, &tagged([0x81, 0x00], 87, [0x08, 0x00])),
            Verdict::Drop(DropReason::InactiveMember)
        );
    }

    #[test]
    fn vlan_ports_push_a_tag_and_keep_a_host_priority() {
        assert_eq!(
            egress_tag(&frame([0x08, 0x00]), 87),
            EgressTag::Push(Tci(87))
        );
        assert_eq!(
            egress_tag(&tagged([0x81, 0x00], 0xa000, [0x08, 0x00]), 87),
            EgressTag::Rewrite(Tci(0xa057))
        );
        // Anything else the host tagged itself gets our tag outside it.
        assert_eq!(
            egress_tag(&tagged([0x81, 0x00], 5, [0x08, 0x00]), 87),
            EgressTag::Push(Tci(87))
        );
    }

    #[test]
    fn the_hash_sees_the_vlan_of_the_port() {
        use crate::hash::XmitHashPolicy;
        let mut s = with_vlans(&[87]);
        s.hash_policy = XmitHashPolicy::VlanSrcMac;
        s.usable = vec![0, 1, 2];
        s.prepare();
        let mut tx = TxState::new(1);
        let f = frame([0x08, 0x00]);
        let untagged = from_host(&s, &mut tx, &f, 0);
        let on_vlan = from_host(&s, &mut tx, &f, 87);
        let h = |tci| crate::hash::xmit_hash(XmitHashPolicy::VlanSrcMac, &f, tci) % 3;
        assert_eq!(untagged, Verdict::ToMember(h(None) as MemberId));
        assert_eq!(on_vlan, Verdict::ToMember(h(Some(87)) as MemberId));
    }
}
