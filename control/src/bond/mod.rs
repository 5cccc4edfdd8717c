//! One bond's control state, sans-IO: its members, the link monitors and
//! how their verdicts combine, the active member and the peer notifications
//! that follow a change of it, the 802.3ad and balance-tlb/alb machines, and
//! the snapshot the workers get. The daemon feeds it carrier readings, frames
//! and the time, and carries out the actions it asks for.
//!
//! Each file below says what it owns; `docs/architecture.md` lists them all.

mod ad;
#[cfg(test)]
pub(crate) mod fixtures;
mod lb;
mod links;
mod members;
mod publish;
mod runtime;
mod status;

use ad::lacp_config;
use links::arp_config;
#[cfg(test)]
mod tests;

use crate::config::options::{BondMode, BondOptions, OnOff};
use crate::lacp::Lacp;
use crate::modes::active_backup::ActiveBackup;
use crate::modes::alb::{Alb, AlbConfig};
use crate::monitor::arp::ArpMonitor;
use crate::monitor::mii::{LinkState, MiiMonitor};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use xbond_dataplane::lb::LoadTotals;
use xbond_dataplane::snapshot::{BondSnapshot, MemberId};
use xbond_dataplane::wire::MacAddr;

/// What the daemon knows about a member link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub name: String,
    pub ifindex: u32,
    /// The address the member had when it joined (the kernel's perm_hwaddr).
    pub perm_mac: MacAddr,
    pub speed: Option<u32>,
    pub full_duplex: Option<bool>,
    pub rx_queues: u32,
}

/// What the bond asks the daemon to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The snapshot changed: publish it to the workers.
    Publish,
    /// Send gratuitous ARPs for the bond's addresses out of this member.
    NotifyPeers { member: MemberId },
    /// Give the host interface this MAC (fail_over_mac=active).
    SetBondMac(MacAddr),
    /// Send this frame (a LACPDU or marker response) out of the member,
    /// ahead of data.
    SendFrame { member: MemberId, frame: Vec<u8> },
    /// The bond's carrier (802.3ad: an active aggregator with `min_links`).
    Carrier(bool),
    /// Send the ARP monitor's probes (an ARP request per `arp_ip_target`,
    /// a Neighbor Solicitation per `ns_ip6_target`) out of the member.
    Probe { member: MemberId },
    /// Send IGMP and MLD reports for the groups of the bond's interfaces
    /// out of this (new active) member (`resend_igmp`).
    RejoinGroups { member: MemberId },
}

/// Between two rounds of IGMP/MLD reports (the kernel's HZ/5).
const REJOIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

#[derive(Debug, Clone)]
struct PeerNotify {
    member: MemberId,
    remaining: u8,
    next: Instant,
}

#[derive(Debug)]
pub struct BondCore {
    pub name: String,
    pub host_interface: String,
    opts: BondOptions,
    members: Vec<Option<MemberInfo>>,
    mii: MiiMonitor,
    /// ARP/NS monitoring (`arp_interval` > 0).
    arp: Option<ArpMonitor>,
    /// Each member's link as the bond acts on it: the MII monitor's, the
    /// ARP monitor's, or both combined by `link_watch_policy`.
    links: Vec<LinkState>,
    failures: Vec<u32>,
    ab: ActiveBackup,
    notify: Option<PeerNotify>,
    /// The IGMP/MLD reports still to send after a change of the active
    /// member, 200 ms apart.
    rejoin: Option<PeerNotify>,
    actions: VecDeque<Action>,
    bond_mac: MacAddr,
    missing: Vec<String>,
    /// The last snapshot handed out for publishing.
    published: Option<BondSnapshot>,
    foreign_slow_frames: u64,
    /// Changes of the active member after the first one (failovers, and
    /// losing the last member).
    active_changes: u64,
    ever_active: bool,
    /// 802.3ad: the LACP machines of every member.
    lacp: Option<Lacp>,
    /// 802.3ad port priority by member name (`actor_port_prio`).
    port_priorities: Vec<(String, u16)>,
    /// Per-member `prio` by member name.
    member_prios: Vec<(String, i32)>,
    /// balance-tlb/alb: member MACs, the transmit and client tables.
    alb: Option<Alb>,
    /// balance-tlb/alb: what the workers have sent, as last read.
    tx_load: LoadTotals,
    /// The carrier last asked of the host interface (outside 802.3ad,
    /// whose machines decide it). The daemon starts it on.
    carrier: bool,
}

fn ms(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

impl BondCore {
    pub fn new(name: &str, host_interface: &str, opts: BondOptions, bond_mac: MacAddr) -> Self {
        let mii = MiiMonitor::new(ms(opts.updelay), ms(opts.downdelay));
        let ab = ActiveBackup {
            reselect: opts.primary_reselect,
            // The kernel only honours `primary` in the modes that use it.
            force_primary: opts.primary.is_some() && opts.mode.uses_primary(),
            ..Default::default()
        };
        let lacp =
            (opts.mode == BondMode::Ieee8023ad).then(|| Lacp::new(lacp_config(&opts, bond_mac)));
        let arp = (opts.arp_interval > 0).then(|| ArpMonitor::new(arp_config(&opts)));
        let alb = opts.mode.is_lb().then(|| {
            let cfg = AlbConfig {
                rlb: opts.mode == BondMode::BalanceAlb,
                dynamic: opts.tlb_dynamic_lb == OnOff::On,
                lp_interval: Duration::from_secs(u64::from(opts.lp_interval)),
                rebalance_interval: Duration::from_secs(u64::from(opts.tlb_rebalance_interval)),
            };
            Alb::new(cfg, bond_mac)
        });
        BondCore {
            name: name.to_string(),
            host_interface: host_interface.to_string(),
            opts,
            members: Vec::new(),
            mii,
            arp,
            links: Vec::new(),
            failures: Vec::new(),
            ab,
            notify: None,
            rejoin: None,
            actions: VecDeque::new(),
            lacp,
            bond_mac,
            missing: Vec::new(),
            published: None,
            foreign_slow_frames: 0,
            active_changes: 0,
            ever_active: false,
            port_priorities: Vec::new(),
            member_prios: Vec::new(),
            alb,
            tx_load: LoadTotals::default(),
            carrier: true,
        }
    }

    pub fn options(&self) -> &BondOptions {
        &self.opts
    }

    pub fn bond_mac(&self) -> MacAddr {
        self.bond_mac
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.mii.handle_timeout(now);
        if let Some(a) = &mut self.arp {
            a.handle_timeout(now);
        }
        self.after_monitors(now);
        if let Some(l) = &mut self.lacp {
            l.handle_timeout(now);
        }
        self.after_lacp();
        if let Some(a) = &mut self.alb {
            a.handle_tick(now, &self.tx_load);
        }
        self.after_alb();
        self.publish_if_changed();
        if let Some(n) = &mut self.notify {
            if n.next <= now {
                self.actions
                    .push_back(Action::NotifyPeers { member: n.member });
                n.remaining -= 1;
                n.next = now + ms(self.opts.peer_notif_interval_ms());
                if n.remaining == 0 {
                    self.notify = None;
                }
            }
        }
        if let Some(r) = &mut self.rejoin {
            if r.next <= now {
                self.actions
                    .push_back(Action::RejoinGroups { member: r.member });
                r.remaining -= 1;
                r.next = now + REJOIN_INTERVAL;
                if r.remaining == 0 {
                    self.rejoin = None;
                }
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let n = self.notify.as_ref().map(|n| n.next);
        let r = self.rejoin.as_ref().map(|n| n.next);
        let l = self.lacp.as_ref().and_then(Lacp::next_deadline);
        [
            self.mii.next_deadline(),
            n,
            r,
            l,
            self.arp_deadline(),
            self.lb_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
