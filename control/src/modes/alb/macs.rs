//! Members' MACs: the swap on a change of active member (the active one
//! carries the bond's), and the learning packets that teach the switch.

use super::*;

impl Alb {
    pub(super) fn swap_macs(&mut self, a: MemberId, b: MemberId) {
        let (Some(ma), Some(mb)) = (self.mac(a), self.mac(b)) else {
            return;
        };
        if let Some(m) = self.member_mut(a) {
            m.mac = mb;
        }
        if let Some(m) = self.member_mut(b) {
            m.mac = ma;
        }
    }

    /// After a swap: teach the switch the new MACs, tell the peers of both
    /// members, and have the active member take frames for the MAC a
    /// member without link now has (`alb_fasten_mac_swap`).
    pub(super) fn fasten_swap(&mut self, a: MemberId, b: MemberId) {
        let differ = self.can_tx(a) != self.can_tx(b);
        let mut disabled = None;
        for x in [a, b] {
            if self.can_tx(x) {
                self.fasten_one(x);
            } else {
                disabled = Some(x);
            }
        }
        if let (true, true, Some(d)) = (self.cfg.rlb, differ, disabled) {
            if let Some(mac) = self.mac(d) {
                self.teach_on_active(mac);
            }
        }
    }

    pub(super) fn fasten_one(&mut self, x: MemberId) {
        if let Some(mac) = self.mac(x) {
            self.learning_packets(x, mac);
        }
        if self.cfg.rlb {
            self.update_clients_of(x);
        }
    }

    /// Learning packets with `mac` out of the active member, so the switch
    /// sends frames for it there (`rlb_teach_disabled_mac_on_primary`).
    pub(super) fn teach_on_active(&mut self, mac: MacAddr) {
        if let Some(a) = self.active {
            self.learning_packets(a, mac);
        }
    }

    /// One learning packet untagged and one per VLAN out of `member`, from
    /// and to `mac` (`alb_send_learning_packets`).
    pub(super) fn learning_packets(&mut self, member: MemberId, mac: MacAddr) {
        let mut frame = vec![0u8; 60];
        let mut eth = ethernet::Packet::new_unchecked(&mut frame[..]);
        eth.set_dst(mac);
        eth.set_src(mac);
        eth.set_ethertype(ethernet::EtherType::Unknown(ethernet::ethertype::LOOPBACK));
        for vid in std::iter::once(0).chain(self.vlans.iter().copied()) {
            self.counters.learning_packets += 1;
            self.out.push_back(OutFrame {
                member,
                vid,
                frame: frame.clone(),
            });
        }
    }
}
