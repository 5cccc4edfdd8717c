//! balance-tlb/alb glue: the workers' transmit counts in, the host's ARP
//! out through the client table, the learning packets and ARP updates the
//! machines ask for, and the tables `xbond alb` lists.

use super::{Action, BondCore};
use crate::albview::{AlbBucket, AlbClient, AlbMember, AlbView};
use crate::modes::alb::Alb;
use crate::monitor::mii::LinkState;
use std::time::Instant;
use xbond_dataplane::lb::LoadTotals;
use xbond_dataplane::snapshot::MemberId;

impl BondCore {
    pub fn alb(&self) -> Option<&Alb> {
        self.alb.as_ref()
    }

    /// balance-tlb/alb's tables for `xbond alb`.
    pub fn alb_view(&self) -> Option<AlbView> {
        let a = self.alb.as_ref()?;
        let name = |m: MemberId| {
            self.member(m)
                .map_or_else(|| format!("member{m}"), |i| i.name.clone())
        };
        Some(AlbView {
            bond: self.name.clone(),
            mode: self.opts.mode.name().to_string(),
            tlb_dynamic_lb: a.config().dynamic,
            rebalance_interval_s: a.config().rebalance_interval.as_secs(),
            bond_mac: self.bond_mac.to_string(),
            members: self
                .members()
                .map(|(id, m)| AlbMember {
                    name: m.name.clone(),
                    mac: a.mac(id).unwrap_or(m.perm_mac).to_string(),
                    perm_hwaddr: m.perm_mac.to_string(),
                    active: self.active() == Some(id),
                    can_tx: self.links[usize::from(id)] == LinkState::Up,
                    tx_load: a.member_load(id),
                })
                .collect(),
            clients: a
                .clients()
                .into_iter()
                .map(|c| AlbClient {
                    peer_ip: c.ip_dst.to_string(),
                    peer_mac: c.mac_dst.to_string(),
                    local_ip: c.ip_src.to_string(),
                    member: c.member.map(name),
                    member_mac: c.member.and_then(|m| a.mac(m)).map(|m| m.to_string()),
                    vlan: c.vid,
                })
                .collect(),
            tx: a
                .tx_buckets()
                .into_iter()
                .map(|b| AlbBucket {
                    bucket: b.bucket,
                    member: b.member.map(name),
                    load: b.load,
                    bytes: b.bytes,
                })
                .collect(),
        })
    }

    /// balance-tlb/alb: the VLANs the bond has, for learning packets.
    pub fn set_vlans(&mut self, vids: Vec<u16>) {
        if let Some(a) = &mut self.alb {
            a.set_vlans(vids);
        }
    }

    /// balance-tlb/alb: when the workers' transmit counts are next needed.
    pub fn lb_deadline(&self) -> Option<Instant> {
        self.alb.as_ref().and_then(Alb::next_deadline)
    }

    /// balance-tlb/alb: the workers' transmit counts, summed.
    pub fn set_tx_load(&mut self, load: LoadTotals) {
        self.tx_load = load;
    }

    /// balance-alb: an ARP packet the host sent on VLAN `vid` (0: the bond
    /// itself) that the data path handed to control.
    pub fn handle_host_frame(&mut self, vid: u16, frame: &[u8]) {
        let Some(a) = &mut self.alb else { return };
        if let Some((member, out)) = a.host_arp(vid, frame) {
            self.actions.push_back(Action::SendFrame {
                member,
                frame: crate::probe::frame_on(vid, out),
            });
        }
        self.after_alb();
    }

    /// Send what balance-tlb/alb asked for, and publish changed tables.
    pub(super) fn after_alb(&mut self) {
        let Some(a) = &mut self.alb else { return };
        while let Some(f) = a.poll_frame() {
            self.actions.push_back(Action::SendFrame {
                member: f.member,
                frame: crate::probe::frame_on(f.vid, f.frame),
            });
        }
        self.publish_if_changed();
    }
}
