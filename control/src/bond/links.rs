//! A member's link as the bond acts on it: carrier readings and probe
//! replies into the MII and ARP/NS monitors, their verdicts combined by
//! `link_watch_policy`, the active member chosen from them, and the peer
//! notifications (gratuitous ARPs) that follow a change of active member.

use super::{ms, PeerNotify};
use super::{Action, BondCore};
use crate::config::options::{BondMode, BondOptions, FailOverMac, LinkWatchPolicy};
use crate::lacp::Lacp;
use crate::modes::active_backup::{Candidate, Selection};
use crate::monitor::arp::{ArpConfig, ArpCounters, ArpEvent, ArpMonitor, Received};
use crate::monitor::mii::{LinkState, MiiEvent};
use std::net::IpAddr;
use std::time::Instant;
use xbond_dataplane::snapshot::MemberId;
use xbond_dataplane::wire::{arp, ndisc, MacAddr};

/// The ARP monitor's settings, from the bond's options.
pub(super) fn arp_config(o: &BondOptions) -> ArpConfig {
    let mut targets: Vec<IpAddr> = o.arp_ip_target.iter().map(|&a| a.into()).collect();
    targets.extend(o.ns_ip6_target.iter().map(|&a| IpAddr::from(a)));
    ArpConfig {
        interval: ms(o.arp_interval),
        missed_max: u32::from(o.arp_missed_max),
        validate: o.arp_validate,
        all_targets: o.arp_all_targets,
        targets,
        active_backup: o.mode == BondMode::ActiveBackup,
    }
}

/// What the monitor needs of a received ARP, NS or NA frame (untagged or
/// under one 802.1Q tag): its addresses, and whether it was for this host
/// (broadcast, multicast or to the bond's MAC).
pub(super) fn probe_received(frame: &[u8], bond_mac: MacAddr) -> Option<Received> {
    let eth = xbond_dataplane::wire::ethernet::Packet::new_checked(frame).ok()?;
    let dst = eth.dst();
    let for_us = dst.is_multicast() || dst == bond_mac;
    if let Some(r) = arp::Repr::in_tagged_frame(frame) {
        return Some(Received::Arp {
            reply: r.operation == arp::Operation::Reply,
            sender: r.sender_ip,
            target: r.target_ip,
            for_us,
        });
    }
    let (ethertype, payload) = xbond_dataplane::wire::vlan::inner_payload(frame)?;
    match ethertype {
        ndisc::ETHERTYPE_IPV6 => {
            let m = ndisc::parse(payload).ok()?;
            Some(Received::Nd {
                src: m.src,
                dst: m.dst,
                for_us,
            })
        }
        _ => None,
    }
}

impl BondCore {
    pub fn active(&self) -> Option<MemberId> {
        self.ab.active
    }

    pub fn link_state(&self, id: MemberId) -> LinkState {
        self.links[usize::from(id)]
    }

    /// A member's link from its monitors: MII alone, ARP alone, or both
    /// under `link_watch_policy` (`all`: up when both say up; `any`: up
    /// when either does).
    pub(super) fn combined(&self, id: MemberId) -> LinkState {
        let mii = self.mii.state(id);
        let Some(arp) = self.arp.as_ref().map(|a| a.state(id)) else {
            return mii;
        };
        if self.opts.miimon == 0 {
            return arp;
        }
        let up = LinkState::Up;
        match self.opts.link_watch_policy.unwrap_or_default() {
            LinkWatchPolicy::All if arp == up => mii,
            LinkWatchPolicy::All if mii == up => arp,
            LinkWatchPolicy::All => LinkState::Down,
            LinkWatchPolicy::Any if mii == up || arp == up => up,
            LinkWatchPolicy::Any if mii == LinkState::Down => arp,
            LinkWatchPolicy::Any => mii,
        }
    }

    /// A carrier reading from netlink or from polling.
    pub fn handle_carrier(&mut self, now: Instant, id: MemberId, carrier: bool) {
        if let Some(a) = &mut self.arp {
            a.set_carrier(id, carrier);
        }
        if self.opts.miimon == 0 {
            self.mii.set_carrier(id, carrier);
            return;
        }
        self.mii.handle_carrier(now, id, carrier);
        self.after_monitors(now);
        self.publish_if_changed();
    }

    /// The bond's own addresses (host and VLAN interfaces), which probe
    /// replies must be addressed to.
    pub fn set_own_addresses(&mut self, own: Vec<IpAddr>) {
        if let Some(a) = &mut self.arp {
            a.set_own_addresses(own);
        }
    }

    pub fn arp_monitor(&self) -> Option<&ArpMonitor> {
        self.arp.as_ref()
    }

    /// When the ARP monitor runs next.
    pub fn arp_deadline(&self) -> Option<Instant> {
        self.arp.as_ref().and_then(ArpMonitor::next_deadline)
    }

    /// An ARP, NS or NA frame a member received (a copy from the data
    /// path). Anything else, or a frame too short, is ignored.
    pub fn handle_probe_frame(&mut self, now: Instant, id: MemberId, frame: &[u8]) {
        if let Some(a) = &mut self.alb {
            a.received_arp(frame);
            self.after_alb();
        }
        let Some(rx) = probe_received(frame, self.bond_mac) else {
            return;
        };
        if let Some(a) = &mut self.arp {
            a.handle_rx(now, id, rx);
        }
    }

    /// A member's receive counter moved: it received some traffic.
    pub fn handle_rx_activity(&mut self, now: Instant, id: MemberId) {
        if let Some(a) = &mut self.arp {
            a.handle_rx(now, id, Received::Other);
        }
    }

    pub fn arp_counters(&self, id: MemberId) -> Option<ArpCounters> {
        self.arp.as_ref().map(|a| a.counters(id))
    }

    /// Act on what the monitors committed: 802.3ad hears of MII changes,
    /// and a change of any member's link (as the policy combines them)
    /// is logged, counted and may choose a new active member.
    pub(super) fn after_monitors(&mut self, now: Instant) {
        let mut changed = false;
        while let Some(ev) = self.mii.poll_event() {
            let (i, up) = match ev {
                MiiEvent::Down(i) => (i, false),
                MiiEvent::Up(i) => (i, true),
            };
            // 802.3ad hears of a link when the MII monitor commits it (after
            // updelay/downdelay), as bond_3ad_handle_link_change.
            if let (Some(l), Some(m)) = (&mut self.lacp, &self.members[usize::from(i)]) {
                l.handle_link(now, i, up, m.speed, m.full_duplex);
                changed = true;
            }
        }
        let mut reselect = false;
        if let Some(a) = &mut self.arp {
            while let Some(ev) = a.poll_event() {
                reselect |= ev == ArpEvent::Reselect;
            }
            while let Some(m) = a.poll_probe() {
                self.actions.push_back(Action::Probe { member: m });
            }
        }
        for (id, i) in (0..).zip(0..self.members.len()) {
            let Some(m) = &self.members[i] else { continue };
            let (old, new) = (self.links[i], self.combined(id));
            if old == new {
                continue;
            }
            self.links[i] = new;
            if let Some(a) = &mut self.alb {
                a.set_link(id, new == LinkState::Up);
            }
            let by = match (self.opts.miimon > 0, self.arp.is_some()) {
                (true, true) => "link",
                (false, true) => "ARP",
                _ => "MII",
            };
            match new {
                LinkState::Down if matches!(old, LinkState::Up | LinkState::Fail) => {
                    self.failures[i] = self.failures[i].saturating_add(1);
                    tracing::info!(bond = %self.name, "link status definitely down for interface {} ({by} monitor), disabling it", m.name);
                    changed = true;
                }
                LinkState::Up => {
                    tracing::info!(bond = %self.name, "link status definitely up for interface {} ({by} monitor), {} Mbps {} duplex",
                        m.name, m.speed.unwrap_or(0), if m.full_duplex == Some(true) { "full" } else { "half" });
                    changed = true;
                }
                _ => changed = true,
            }
        }
        if changed || reselect {
            self.after_lacp();
            self.reselect(now);
            // balance-tlb/alb: learning packets and ARP updates go now.
            self.after_alb();
        }
    }

    pub(super) fn candidates(&self, now: Instant) -> Vec<Candidate> {
        (0..)
            .zip(&self.members)
            .map(|(id, m)| Candidate {
                link: self.candidate_link(id),
                speed: m.as_ref().and_then(|m| m.speed),
                full_duplex: m.as_ref().and_then(|m| m.full_duplex),
                back_remaining: self.mii.remaining(id, now),
                present: m.is_some(),
                prio: m.as_ref().map_or(0, |m| self.member_prio(&m.name)),
            })
            .collect()
    }

    /// A member's link for choosing the active member: only MII's "going
    /// back" (waiting out updelay) may be promoted early; the ARP monitor's
    /// candidate under trial is not up until a reply says so.
    pub(super) fn candidate_link(&self, id: MemberId) -> LinkState {
        match self.links[usize::from(id)] {
            LinkState::Back if self.opts.miimon == 0 || self.mii.state(id) != LinkState::Back => {
                LinkState::Down
            }
            l => l,
        }
    }

    pub(super) fn reselect(&mut self, now: Instant) {
        let c = self.candidates(now);
        if let Some(sel) = self.ab.select(&c) {
            self.apply(now, sel);
        }
    }

    /// How often the active member changed after the first choice.
    pub fn active_changes(&self) -> u64 {
        self.active_changes
    }

    pub(super) fn apply(&mut self, now: Instant, sel: Selection) {
        if sel.new != sel.old {
            if self.ever_active {
                self.active_changes += 1;
            }
            self.ever_active |= sel.new.is_some();
        }
        let name = |i: Option<MemberId>| {
            i.and_then(|i| self.members[usize::from(i)].as_ref())
                .map_or("None".to_string(), |m| m.name.clone())
        };
        match sel.new {
            Some(n) => {
                if sel.promote {
                    let left = self.mii.remaining(n, now).unwrap_or_default();
                    self.mii.force_up(n);
                    self.links[usize::from(n)] = self.combined(n);
                    tracing::info!(bond = %self.name, "making interface {} the new active one {} ms earlier", name(Some(n)), left.as_millis());
                } else {
                    tracing::info!(bond = %self.name, "making interface {} the new active one (was {})", name(Some(n)), name(sel.old));
                }
            }
            None => tracing::warn!(bond = %self.name, "now running without any active interface!"),
        }
        let ab_mode = self.opts.mode == BondMode::ActiveBackup;
        let notify = self.notifies_peers();
        if let (Some(n), FailOverMac::Active, true) = (sel.new, self.opts.fail_over_mac, ab_mode) {
            if let Some(m) = &self.members[usize::from(n)] {
                if m.perm_mac != self.bond_mac {
                    self.bond_mac = m.perm_mac;
                    self.actions.push_back(Action::SetBondMac(m.perm_mac));
                }
            }
        }
        if let Some(a) = &mut self.arp {
            a.set_active(now, sel.new);
        }
        if let Some(a) = &mut self.alb {
            a.set_active(sel.new);
        }
        self.publish_if_changed();
        self.notify = None;
        // The groups are joined again through the new active member
        // (bond_change_active_slave: resend_igmp rounds, 200 ms apart).
        self.rejoin = None;
        if let (Some(n), true) = (sel.new, self.opts.mode.uses_primary()) {
            if self.opts.resend_igmp > 0 {
                self.actions.push_back(Action::RejoinGroups { member: n });
                if self.opts.resend_igmp > 1 {
                    self.rejoin = Some(PeerNotify {
                        member: n,
                        remaining: self.opts.resend_igmp - 1,
                        next: now + super::REJOIN_INTERVAL,
                    });
                }
            }
        }
        // Peers are told of a new active member in active-backup only
        // (bond_change_active_slave); the other modes have no such member.
        if let (Some(n), true) = (sel.new, notify) {
            if self.opts.num_grat_arp > 0 {
                let member = n;
                self.actions.push_back(Action::NotifyPeers { member });
                if self.opts.num_grat_arp > 1 {
                    self.notify = Some(PeerNotify {
                        member,
                        remaining: self.opts.num_grat_arp - 1,
                        next: now + ms(self.opts.peer_notif_interval_ms()),
                    });
                }
            }
        }
    }

    /// Peers are told of a new active member in active-backup, and in an
    /// 802.3ad bond running its active-backup fallback.
    pub(super) fn notifies_peers(&self) -> bool {
        self.opts.mode == BondMode::ActiveBackup
            || self.lacp.as_ref().is_some_and(Lacp::in_fallback)
    }
}
