//! The per-frame decision: where a received frame goes, read from the bond
//! snapshot alone. No state, no I/O, no allocation.

use crate::counters::DropReason;
use crate::schedule::{self, TxPlan, TxState};
use crate::snapshot::{BondSnapshot, MemberId, Mode};

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// To the host interface (bond0).
    ToHost,
    /// Out of this member.
    ToMember(MemberId),
    /// Out of every member that can transmit (broadcast).
    ToAllMembers,
    /// To the control thread (slow protocols; later, probe replies).
    ToControl,
    Drop(DropReason),
}

const ETH_HEADER: usize = 14;
const SLOW_PROTOCOLS: [u8; 2] = [0x88, 0x09];

/// A frame received on member `member`.
#[inline]
pub fn from_member(snap: &BondSnapshot, member: MemberId, frame: &[u8]) -> Verdict {
    if frame.len() < ETH_HEADER {
        return Verdict::Drop(DropReason::Runt);
    }
    // LACPDUs and marker PDUs belong to control and never reach the host.
    if frame[12..14] == SLOW_PROTOCOLS {
        return Verdict::ToControl;
    }
    match snap.mode {
        Mode::ActiveBackup => {
            if snap.active == Some(member) || snap.all_slaves_active {
                Verdict::ToHost
            } else {
                Verdict::Drop(DropReason::InactiveMember)
            }
        }
        // Every member is active in the load-sharing modes; what arrives
        // where is the switch's choice.
        Mode::RoundRobin | Mode::Xor | Mode::Broadcast => Verdict::ToHost,
        // 802.3ad: a member that is not collecting is not part of the
        // aggregation (the kernel drops on its inactive slaves).
        Mode::Lacp => {
            if snap.all_slaves_active || snap.collecting.contains(&member) {
                Verdict::ToHost
            } else {
                Verdict::Drop(DropReason::InactiveMember)
            }
        }
    }
}

/// A frame the host stack sent on the bond.
#[inline]
pub fn from_host(snap: &BondSnapshot, tx: &mut TxState, frame: &[u8]) -> Verdict {
    if frame.len() < ETH_HEADER {
        return Verdict::Drop(DropReason::Runt);
    }
    match schedule::plan(snap, tx, frame) {
        TxPlan::Member(m) => Verdict::ToMember(m),
        TxPlan::AllMembers => Verdict::ToAllMembers,
        TxPlan::Drop(r) => Verdict::Drop(r),
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
        let mut s = BondSnapshot::new(Mode::Lacp);
        s.collecting = vec![0, 2];
        s.usable = vec![2];
        s.prepare();
        let ip = frame([0x08, 0x00]);
        assert_eq!(from_member(&s, 2, &ip), Verdict::ToHost);
        assert_eq!(
            from_member(&s, 1, &ip),
            Verdict::Drop(DropReason::InactiveMember)
        );
        assert_eq!(
            from_member(&s, 1, &frame(SLOW_PROTOCOLS)),
            Verdict::ToControl
        );
        let mut tx = TxState::new(1);
        assert_eq!(from_host(&s, &mut tx, &ip), Verdict::ToMember(2));
        s.usable.clear();
        s.prepare();
        assert_eq!(
            from_host(&s, &mut tx, &ip),
            Verdict::Drop(DropReason::NoUsableMember)
        );
    }

    #[test]
    fn active_backup_delivers_only_from_the_active_member() {
        let mut s = BondSnapshot::new(Mode::ActiveBackup);
        s.active = Some(1);
        let ip = frame([0x08, 0x00]);
        assert_eq!(from_member(&s, 1, &ip), Verdict::ToHost);
        assert_eq!(
            from_member(&s, 0, &ip),
            Verdict::Drop(DropReason::InactiveMember)
        );
        s.all_slaves_active = true;
        assert_eq!(from_member(&s, 0, &ip), Verdict::ToHost);
    }

    #[test]
    fn host_frames_follow_the_active_member() {
        let mut s = BondSnapshot::new(Mode::ActiveBackup);
        let mut tx = TxState::new(1);
        let ip = frame([0x08, 0x00]);
        assert_eq!(
            from_host(&s, &mut tx, &ip),
            Verdict::Drop(DropReason::NoActiveMember)
        );
        s.active = Some(0);
        assert_eq!(from_host(&s, &mut tx, &ip), Verdict::ToMember(0));
        assert_eq!(
            from_host(&s, &mut tx, &ip[..10]),
            Verdict::Drop(DropReason::Runt)
        );
    }

    #[test]
    fn load_sharing_modes_deliver_from_every_member() {
        for mode in [Mode::RoundRobin, Mode::Xor, Mode::Broadcast] {
            let s = BondSnapshot::new(mode);
            assert_eq!(from_member(&s, 3, &frame([0x08, 0x00])), Verdict::ToHost);
            assert_eq!(from_member(&s, 3, &frame([0x88, 0x09])), Verdict::ToControl);
        }
    }

    #[test]
    fn slow_protocols_go_to_control_from_any_member() {
        let mut s = BondSnapshot::new(Mode::ActiveBackup);
        s.active = Some(0);
        assert_eq!(from_member(&s, 1, &frame([0x88, 0x09])), Verdict::ToControl);
        assert_eq!(
            from_member(&s, 1, &[0u8; 13]),
            Verdict::Drop(DropReason::Runt)
        );
    }
}
