//! What the workers see: the snapshot built from the bond's state, published
//! only when it changed, and the bond's carrier outside 802.3ad.

use super::{Action, BondCore};
use crate::config::options::BondMode;
use crate::lacp::Lacp;
use crate::monitor::mii::LinkState;
use xbond_dataplane::snapshot::{BondSnapshot, TxMember};

impl BondCore {
    /// Ask for a publish when what the workers would see has changed.
    pub(super) fn publish_if_changed(&mut self) {
        let s = self.snapshot();
        if self.published.as_ref() != Some(&s) {
            self.published = Some(s);
            self.actions.push_back(Action::Publish);
        }
        self.update_carrier();
    }

    /// Outside 802.3ad the bond has carrier while a member is up, as the
    /// kernel's `bond_set_carrier`: with every member down, the host
    /// interface (and its VLANs) shows NO-CARRIER.
    pub(super) fn update_carrier(&mut self) {
        if self.lacp.is_some() {
            return;
        }
        let up = self.any_member_up();
        if up != self.carrier {
            self.carrier = up;
            tracing::info!(bond = %self.name, "bond carrier {}", if up { "on" } else { "off: no member is up" });
            self.actions.push_back(Action::Carrier(up));
        }
    }

    pub(super) fn any_member_up(&self) -> bool {
        self.ab.active.is_some()
            || (0..self.members.len())
                .any(|i| self.members[i].is_some() && self.links[i] == LinkState::Up)
    }

    pub fn snapshot(&self) -> BondSnapshot {
        let o = &self.opts;
        if let Some(l) = &self.lacp {
            return self.lacp_snapshot(l);
        }
        // 802.3ad has its own snapshot above; the other modes run as named.
        let mut s = BondSnapshot::new(o.mode);
        if let Some(a) = &self.alb {
            s.bond_mac = self.bond_mac;
            s.macs = a.macs();
            s.lb = Some(Box::new(a.tables()));
        }
        s.active = self.active();
        s.all_slaves_active = o.all_slaves_active.number() == 1;
        s.hash_policy = o.xmit_hash_policy;
        s.packets_per_slave = u32::from(o.packets_per_slave);
        // The ARP monitor reads probe replies; balance-alb every ARP.
        s.copy_probes = self.arp.is_some() || o.mode == BondMode::BalanceAlb;
        for (id, _) in self.members() {
            let state = self.links[id as usize];
            // bond_slave_can_tx(): link up. The usable array of balance-xor
            // is rebuilt when a link is committed up or down, so a member
            // waiting out its downdelay stays in it.
            s.members.push(TxMember {
                id,
                can_tx: state == LinkState::Up,
            });
            if matches!(state, LinkState::Up | LinkState::Fail) {
                s.usable.push(id);
            }
        }
        s
    }

    /// 802.3ad: hash over the distributing members, receive on the
    /// collecting ones; in the fallback, active-backup over the links.
    pub(super) fn lacp_snapshot(&self, l: &Lacp) -> BondSnapshot {
        let o = &self.opts;
        let fallback = l.in_fallback();
        let mut s = BondSnapshot::new(if fallback {
            BondMode::ActiveBackup
        } else {
            BondMode::Ieee8023ad
        });
        s.all_slaves_active = o.all_slaves_active.number() == 1;
        s.hash_policy = o.xmit_hash_policy;
        if fallback {
            s.active = self.active();
        }
        let distributing = l.distributing();
        for (id, _) in self.members() {
            let can_tx = if fallback {
                self.links[id as usize] == LinkState::Up
            } else {
                distributing.contains(&id)
            };
            s.members.push(TxMember { id, can_tx });
            if !fallback && l.collecting(id) {
                s.collecting.push(id);
            }
        }
        s.usable = distributing;
        s
    }
}
