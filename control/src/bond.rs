//! One bond's control state, sans-IO: its members, the MII monitor, the
//! active-backup selection and the peer notifications that follow a change of
//! active member. The daemon feeds it carrier readings and the time, and
//! carries out the actions it asks for.

use crate::albview::{AlbBucket, AlbClient, AlbMember, AlbView};
use crate::config::options::{
    BondMode, BondOptions, FailOverMac, LacpFallback, LacpRate, LinkWatchPolicy, OnOff,
    XmitHashPolicy,
};
use crate::lacp::port::{System, DEFAULT_PORT_PRIORITY};
use crate::lacp::{Lacp, LacpConfig, LacpEvent};
use crate::modes::active_backup::{ActiveBackup, Candidate, Selection};
use crate::modes::alb::{Alb, AlbConfig};
use crate::monitor::arp::{ArpConfig, ArpCounters, ArpEvent, ArpMonitor, Received};
use crate::monitor::mii::{LinkState, MiiEvent, MiiMonitor};
use crate::status::{BondStatus, MemberArpStatus, MemberStatus, DRIVER_VERSION};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use xbond_dataplane::hash::HashPolicy;
use xbond_dataplane::lb::LoadTotals;
use xbond_dataplane::snapshot::{BondSnapshot, MemberId, Mode, TxMember};
use xbond_dataplane::wire::{arp, ndisc, MacAddr};

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
}

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
    actions: VecDeque<Action>,
    bond_mac: MacAddr,
    missing: Vec<String>,
    /// The last snapshot handed out for publishing.
    published: Option<BondSnapshot>,
    foreign_slow_frames: u64,
    /// 802.3ad: the LACP machines of every member.
    lacp: Option<Lacp>,
    /// 802.3ad port priority by member name (`actor_port_prio`).
    port_priorities: Vec<(String, u16)>,
    /// balance-tlb/alb: member MACs, the transmit and client tables.
    alb: Option<Alb>,
    /// balance-tlb/alb: what the workers have sent, as last read.
    tx_load: LoadTotals,
    /// The carrier last asked of the host interface (outside 802.3ad,
    /// whose machines decide it). The daemon starts it on.
    carrier: bool,
}

/// The LACP settings of an 802.3ad bond, from its options.
fn lacp_config(o: &BondOptions, bond_mac: MacAddr) -> LacpConfig {
    let mac = o
        .ad_actor_system
        .as_deref()
        .and_then(MacAddr::parse)
        .unwrap_or(bond_mac);
    LacpConfig {
        system: System {
            priority: o.ad_actor_sys_prio,
            mac,
        },
        active: o.lacp_active == OnOff::On,
        fast: o.lacp_rate == LacpRate::Fast,
        ad_select: o.ad_select,
        coupled: o.coupled_control == OnOff::On,
        user_key: o.ad_user_port_key,
        min_links: o.min_links,
        fallback_after: (o.lacp_fallback == LacpFallback::ActiveBackup)
            .then(|| ms(o.lacp_fallback_timeout)),
    }
}

/// A runtime `arp_ip_target`/`ns_ip6_target` value as the kernel's sysfs
/// file takes it: `+ADDR` adds one target, `-ADDR` removes one; anything
/// else replaces the whole list. Returns the new list for the parser.
fn edit_targets<T>(current: &[T], key: &str, value: &str) -> Result<String, String>
where
    T: std::fmt::Display + std::str::FromStr + PartialEq,
{
    let Some(op) = value.chars().next().filter(|c| matches!(c, '+' | '-')) else {
        return Ok(value.to_string());
    };
    let addr = value[1..].trim();
    let t: T = addr
        .parse()
        .map_err(|_| format!("{key}: invalid address '{addr}'"))?;
    let keep = match (op, current.contains(&t)) {
        ('+', true) => return Err(format!("{key}: {addr} is already a target")),
        ('-', false) => return Err(format!("{key}: {addr} is not a target, nothing to remove")),
        _ => current.iter().filter(|c| **c != t),
    };
    let mut out: Vec<String> = keep.map(ToString::to_string).collect();
    if op == '+' {
        out.push(t.to_string());
    }
    Ok(out.join(","))
}

/// At runtime, as the kernel's sysfs does, turning on ARP monitoring turns
/// MII monitoring off and the other way round, unless `link_watch_policy`
/// asks for both. Returns what was turned off, for the answer.
fn one_link_monitor(o: &mut BondOptions, key: &str) -> Vec<String> {
    let mut notes = Vec::new();
    if o.link_watch_policy.is_none() {
        if key == "arp_interval" && o.arp_interval > 0 && o.miimon > 0 {
            o.miimon = 0;
            let delays = o.updelay + o.downdelay + o.peer_notif_delay > 0;
            (o.updelay, o.downdelay, o.peer_notif_delay) = (0, 0, 0);
            notes.push(format!(
                "MII monitoring disabled, ARP monitoring replaces it{} (set link_watch_policy to run both)",
                if delays { "; updelay, downdelay and peer_notif_delay are 0 without it" } else { "" }
            ));
        }
        if key == "miimon" && o.miimon > 0 && o.arp_interval > 0 {
            o.arp_interval = 0;
            notes.push("ARP monitoring disabled, MII monitoring replaces it".into());
        }
    }
    // The kernel's miimon=100 default applies when the bond is created, not
    // when a monitor is switched off later.
    if !o.explicit.contains(&"miimon") {
        o.explicit.push("miimon");
    }
    notes
}

/// The ARP monitor's settings, from the bond's options.
fn arp_config(o: &BondOptions) -> ArpConfig {
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
            actions: VecDeque::new(),
            lacp,
            bond_mac,
            missing: Vec::new(),
            published: None,
            foreign_slow_frames: 0,
            port_priorities: Vec::new(),
            alb,
            tx_load: LoadTotals::default(),
            carrier: true,
        }
    }

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

    /// balance-tlb/alb: whether a member with this permanent MAC can join
    /// (it needs a MAC of its own).
    pub fn can_add_member(&self, perm: MacAddr) -> Result<(), String> {
        self.alb
            .as_ref()
            .map_or(Ok(()), |a| a.check_member(perm).map(drop))
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
    fn after_alb(&mut self) {
        let Some(a) = &mut self.alb else { return };
        while let Some(f) = a.poll_frame() {
            self.actions.push_back(Action::SendFrame {
                member: f.member,
                frame: crate::probe::frame_on(f.vid, f.frame),
            });
        }
        self.publish_if_changed();
    }

    /// 802.3ad port priorities by member name, for members added later.
    pub fn set_port_priorities(&mut self, prio: Vec<(String, u16)>) {
        self.port_priorities = prio;
    }

    pub fn lacp(&self) -> Option<&Lacp> {
        self.lacp.as_ref()
    }

    pub fn options(&self) -> &BondOptions {
        &self.opts
    }

    pub fn bond_mac(&self) -> MacAddr {
        self.bond_mac
    }

    pub fn note_missing(&mut self, name: &str) {
        self.missing.push(name.to_string());
    }

    /// Add a member with its current carrier; returns its id.
    pub fn add_member(&mut self, now: Instant, info: MemberInfo, carrier: bool) -> MemberId {
        let idx = self.mii.add(now, carrier);
        debug_assert_eq!(idx, self.members.len());
        if let Some(a) = &mut self.arp {
            a.add(now, carrier);
        }
        self.links.push(LinkState::Down);
        self.failures.push(0);
        self.links[idx] = self.combined(idx);
        if self.opts.mode.uses_primary() && self.opts.primary.as_deref() == Some(info.name.as_str())
        {
            self.ab.primary = Some(idx);
        }
        tracing::info!(bond = %self.name, "enslaving {} as a backup interface with {} link", info.name,
            if carrier { "an up" } else { "a down" });
        self.missing.retain(|m| *m != info.name);
        if let Some(l) = &mut self.lacp {
            let prio = self
                .port_priorities
                .iter()
                .find(|(n, _)| *n == info.name)
                .map_or(DEFAULT_PORT_PRIORITY, |(_, p)| *p);
            let up = self.mii.state(idx) == LinkState::Up;
            l.add_port(
                now,
                idx as MemberId,
                info.perm_mac,
                prio,
                up,
                info.speed,
                info.full_duplex,
            );
        }
        if let Some(a) = &mut self.alb {
            let up = self.links[idx] == LinkState::Up;
            if let Err(e) = a.add_member(
                now,
                idx as MemberId,
                info.perm_mac,
                info.speed.unwrap_or(0),
                up,
            ) {
                tracing::error!(bond = %self.name, "{}: {e}", info.name);
            }
        }
        self.members.push(Some(info));
        self.reselect(now);
        self.after_alb();
        self.after_lacp();
        self.publish_if_changed();
        idx as MemberId
    }

    /// The id the next member added will get (ids are never reused).
    pub fn next_member_id(&self) -> MemberId {
        self.members.len() as MemberId
    }

    /// Release a member, as `echo -IF > .../bonding/slaves` does: it leaves
    /// the snapshot at once and a new active member is chosen if it was the
    /// active one. Returns what the bond knew of it.
    pub fn remove_member(&mut self, now: Instant, id: MemberId) -> Option<MemberInfo> {
        let info = self.members.get_mut(id as usize)?.take()?;
        let was_active = self.ab.active == Some(id as usize);
        self.mii.remove(id as usize);
        if let Some(a) = &mut self.arp {
            a.remove(id as usize);
        }
        self.links[id as usize] = LinkState::Down;
        if self.ab.primary == Some(id as usize) {
            // The name stays in `primary`: the member is primary again if
            // it comes back, as in the kernel.
            self.ab.primary = None;
        }
        tracing::info!(bond = %self.name, "releasing {} interface {}",
            if was_active { "active" } else { "backup" }, info.name);
        if let Some(l) = &mut self.lacp {
            l.remove_port(now, id);
        }
        if let Some(a) = &mut self.alb {
            a.remove_member(id);
        }
        self.after_lacp();
        self.reselect(now);
        self.after_alb();
        self.publish_if_changed();
        Some(info)
    }

    pub fn member(&self, id: MemberId) -> Option<&MemberInfo> {
        self.members.get(id as usize).and_then(|m| m.as_ref())
    }

    pub fn member_by_ifindex(&self, ifindex: u32) -> Option<MemberId> {
        self.members
            .iter()
            .position(|m| m.as_ref().is_some_and(|m| m.ifindex == ifindex))
            .map(|i| i as MemberId)
    }

    pub fn member_by_name(&self, name: &str) -> Option<MemberId> {
        self.members
            .iter()
            .position(|m| m.as_ref().is_some_and(|m| m.name == name))
            .map(|i| i as MemberId)
    }

    pub fn members(&self) -> impl Iterator<Item = (MemberId, &MemberInfo)> {
        self.members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.as_ref().map(|m| (i as MemberId, m)))
    }

    pub fn active(&self) -> Option<MemberId> {
        self.ab.active.map(|a| a as MemberId)
    }

    pub fn link_state(&self, id: MemberId) -> LinkState {
        self.links[id as usize]
    }

    /// A member's link from its monitors: MII alone, ARP alone, or both
    /// under `link_watch_policy` (`all`: up when both say up; `any`: up
    /// when either does).
    fn combined(&self, i: usize) -> LinkState {
        let mii = self.mii.state(i);
        let Some(arp) = self.arp.as_ref().map(|a| a.state(i)) else {
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
            a.set_carrier(id as usize, carrier);
        }
        if self.opts.miimon == 0 {
            self.mii.set_carrier(id as usize, carrier);
            return;
        }
        self.mii.handle_carrier(now, id as usize, carrier);
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
            a.handle_rx(now, id as usize, rx);
        }
    }

    /// A member's receive counter moved: it received some traffic.
    pub fn handle_rx_activity(&mut self, now: Instant, id: MemberId) {
        if let Some(a) = &mut self.arp {
            a.handle_rx(now, id as usize, Received::Other);
        }
    }

    pub fn arp_counters(&self, id: MemberId) -> Option<ArpCounters> {
        self.arp.as_ref().map(|a| a.counters(id as usize))
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
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let n = self.notify.as_ref().map(|n| n.next);
        let l = self.lacp.as_ref().and_then(Lacp::next_deadline);
        [
            self.mii.next_deadline(),
            n,
            l,
            self.arp_deadline(),
            self.lb_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A slow-protocol frame (LACPDU, marker PDU, or another subtype) from a
    /// member. Outside 802.3ad it is only counted.
    pub fn handle_slow_frame(&mut self, now: Instant, id: MemberId, frame: &[u8]) {
        match &mut self.lacp {
            Some(l) => l.handle_frame(now, id, frame),
            None => {
                self.foreign_slow_frames += 1;
                return;
            }
        }
        self.after_lacp();
        self.publish_if_changed();
    }

    /// Slow-protocol frames received outside 802.3ad.
    pub fn foreign_slow_frames(&self) -> u64 {
        self.foreign_slow_frames
    }

    /// Carry out what LACP asks for: frames to send, carrier, events.
    fn after_lacp(&mut self) {
        let Some(l) = &mut self.lacp else { return };
        while let Some(o) = l.poll_transmit() {
            self.actions.push_back(Action::SendFrame {
                member: o.member,
                frame: o.frame(),
            });
        }
        let mut fallback_on = false;
        while let Some(ev) = l.poll_event() {
            let name = |m: MemberId| {
                self.members
                    .get(m as usize)
                    .and_then(|m| m.as_ref())
                    .map_or_else(|| format!("member{m}"), |m| m.name.clone())
            };
            match ev {
                LacpEvent::Carrier(up) => {
                    tracing::info!(bond = %self.name, "802.3ad: bond carrier {}", if up { "on" } else { "off" });
                    self.actions.push_back(Action::Carrier(up));
                }
                LacpEvent::ActiveAggregator(id) => match id {
                    Some(id) => {
                        tracing::info!(bond = %self.name, "802.3ad: aggregator {id} is now the active aggregator")
                    }
                    None => tracing::warn!(bond = %self.name, "802.3ad: no active aggregator"),
                },
                LacpEvent::Looped(m) => tracing::warn!(bond = %self.name,
                    "802.3ad: {} received a LACPDU with this bond's own system id: the link loops back; not aggregating it", name(m)),
                LacpEvent::Fallback(on) => {
                    if on {
                        tracing::warn!(bond = %self.name, "802.3ad: no LACP partner answered; running as active-backup (lacp_fallback)");
                        fallback_on = true;
                    } else {
                        tracing::info!(bond = %self.name, "802.3ad: a LACP partner answered; leaving active-backup fallback");
                    }
                }
                LacpEvent::Distributing { member, on } => tracing::info!(bond = %self.name,
                    "802.3ad: {} {} distributing", name(member), if on { "started" } else { "stopped" }),
            }
        }
        if fallback_on {
            if let (Some(a), true) = (self.ab.active, self.opts.num_grat_arp > 0) {
                self.actions.push_back(Action::NotifyPeers {
                    member: a as MemberId,
                });
            }
        }
    }

    /// Peers are told of a new active member in active-backup, and in an
    /// 802.3ad bond running its active-backup fallback.
    fn notifies_peers(&self) -> bool {
        self.opts.mode == BondMode::ActiveBackup
            || self.lacp.as_ref().is_some_and(Lacp::in_fallback)
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Act on what the monitors committed: 802.3ad hears of MII changes,
    /// and a change of any member's link (as the policy combines them)
    /// is logged, counted and may choose a new active member.
    fn after_monitors(&mut self, now: Instant) {
        let mut changed = false;
        while let Some(ev) = self.mii.poll_event() {
            let (i, up) = match ev {
                MiiEvent::Down(i) => (i, false),
                MiiEvent::Up(i) => (i, true),
            };
            // 802.3ad hears of a link when the MII monitor commits it (after
            // updelay/downdelay), as bond_3ad_handle_link_change.
            if let (Some(l), Some(m)) = (&mut self.lacp, &self.members[i]) {
                l.handle_link(now, i as MemberId, up, m.speed, m.full_duplex);
                changed = true;
            }
        }
        let mut reselect = false;
        if let Some(a) = &mut self.arp {
            while let Some(ev) = a.poll_event() {
                reselect |= ev == ArpEvent::Reselect;
            }
            while let Some(m) = a.poll_probe() {
                self.actions.push_back(Action::Probe {
                    member: m as MemberId,
                });
            }
        }
        for i in 0..self.members.len() {
            let Some(m) = &self.members[i] else { continue };
            let (old, new) = (self.links[i], self.combined(i));
            if old == new {
                continue;
            }
            self.links[i] = new;
            if let Some(a) = &mut self.alb {
                a.set_link(i as MemberId, new == LinkState::Up);
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

    fn candidates(&self, now: Instant) -> Vec<Candidate> {
        self.members
            .iter()
            .enumerate()
            .map(|(i, m)| Candidate {
                link: self.candidate_link(i),
                speed: m.as_ref().and_then(|m| m.speed),
                full_duplex: m.as_ref().and_then(|m| m.full_duplex),
                back_remaining: self.mii.remaining(i, now),
                present: m.is_some(),
            })
            .collect()
    }

    /// A member's link for choosing the active member: only MII's "going
    /// back" (waiting out updelay) may be promoted early; the ARP monitor's
    /// candidate under trial is not up until a reply says so.
    fn candidate_link(&self, i: usize) -> LinkState {
        match self.links[i] {
            LinkState::Back if self.opts.miimon == 0 || self.mii.state(i) != LinkState::Back => {
                LinkState::Down
            }
            l => l,
        }
    }

    fn reselect(&mut self, now: Instant) {
        let c = self.candidates(now);
        if let Some(sel) = self.ab.select(&c) {
            self.apply(now, sel);
        }
    }

    fn apply(&mut self, now: Instant, sel: Selection) {
        let name = |i: Option<usize>| {
            i.and_then(|i| self.members[i].as_ref())
                .map_or("None".to_string(), |m| m.name.clone())
        };
        match sel.new {
            Some(n) => {
                if sel.promote {
                    let left = self.mii.remaining(n, now).unwrap_or_default();
                    self.mii.force_up(n);
                    self.links[n] = self.combined(n);
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
            if let Some(m) = &self.members[n] {
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
            a.set_active(sel.new.map(|n| n as MemberId));
        }
        self.publish_if_changed();
        self.notify = None;
        // Peers are told of a new active member in active-backup only
        // (bond_change_active_slave); the other modes have no such member.
        if let (Some(n), true) = (sel.new, notify) {
            if self.opts.num_grat_arp > 0 {
                let member = n as MemberId;
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

    /// Ask for a publish when what the workers would see has changed.
    fn publish_if_changed(&mut self) {
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
    fn update_carrier(&mut self) {
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

    fn any_member_up(&self) -> bool {
        self.ab.active.is_some()
            || (0..self.members.len())
                .any(|i| self.members[i].is_some() && self.links[i] == LinkState::Up)
    }

    pub fn snapshot(&self) -> BondSnapshot {
        let o = &self.opts;
        if let Some(l) = &self.lacp {
            return self.lacp_snapshot(l);
        }
        let mut s = BondSnapshot::new(match o.mode {
            BondMode::BalanceRr => Mode::RoundRobin,
            BondMode::BalanceXor => Mode::Xor,
            BondMode::Broadcast => Mode::Broadcast,
            BondMode::BalanceTlb => Mode::Tlb,
            BondMode::BalanceAlb => Mode::Alb,
            _ => Mode::ActiveBackup,
        });
        if let Some(a) = &self.alb {
            s.bond_mac = self.bond_mac;
            s.macs = a.macs();
            s.lb = Some(Box::new(a.tables()));
        }
        s.active = self.active();
        s.all_slaves_active = o.all_slaves_active.number() == 1;
        s.hash_policy = hash_policy(o.xmit_hash_policy);
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
    fn lacp_snapshot(&self, l: &Lacp) -> BondSnapshot {
        let o = &self.opts;
        let fallback = l.in_fallback();
        let mut s = BondSnapshot::new(if fallback {
            Mode::ActiveBackup
        } else {
            Mode::Lacp
        });
        s.all_slaves_active = o.all_slaves_active.number() == 1;
        s.hash_policy = hash_policy(o.xmit_hash_policy);
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

    /// Change an option at runtime, as `xbond set` does.
    pub fn set_option(&mut self, now: Instant, key: &str, value: &str) -> Result<String, String> {
        let value = value.trim();
        match key {
            "active_slave" => {
                let Some(id) = self.member_by_name(value) else {
                    return Err(format!("active_slave: {value} is not a member of {}", self.name));
                };
                let c = self.candidates(now);
                match self.ab.set_active(id as usize, &c) {
                    Ok(Some(sel)) => {
                        self.apply(now, sel);
                        Ok(format!("{value} is now the active member"))
                    }
                    Ok(None) => Ok(format!("{value} is already the active member")),
                    Err(why) => Err(format!("active_slave: could not set {value} as active member; {why}")),
                }
            }
            "primary" => {
                let mut o = self.opts.clone();
                o.primary = None;
                o.explicit.retain(|k| *k != "primary");
                o.set("primary", value).map_err(|e| e.to_string())?;
                let idx = match &o.primary {
                    Some(p) => Some(self.member_by_name(p).ok_or_else(|| format!("primary: {p} is not a member of {}", self.name))?),
                    None => None,
                };
                self.opts.primary = o.primary;
                self.ab.primary = idx.map(usize::from);
                self.ab.force_primary = idx.is_some();
                self.reselect(now);
                Ok(format!("primary is {}", self.opts.primary.as_deref().unwrap_or("none")))
            }
            "primary_reselect" | "miimon" | "updelay" | "downdelay" | "peer_notif_delay" | "num_grat_arp"
            | "num_unsol_na" | "all_slaves_active" | "xmit_hash_policy" | "packets_per_slave" | "lacp_rate"
            | "min_links" | "arp_interval" | "arp_ip_target" | "ns_ip6_target" | "arp_validate"
            | "arp_all_targets" | "arp_missed_max" => {
                let mut o = self.opts.clone();
                let canon = if key == "num_unsol_na" { "num_grat_arp" } else { key };
                o.explicit.retain(|k| *k != canon);
                let value = match key {
                    "arp_ip_target" => edit_targets(&o.arp_ip_target, key, value)?,
                    "ns_ip6_target" => edit_targets(&o.ns_ip6_target, key, value)?,
                    _ => value.to_string(),
                };
                o.set(key, &value).map_err(|e| e.to_string())?;
                let mut warnings = one_link_monitor(&mut o, key);
                warnings.extend(o.finish().map_err(|e| e.to_string())?);
                self.opts = o;
                self.ab.reselect = self.opts.primary_reselect;
                self.mii.set_delays(ms(self.opts.updelay), ms(self.opts.downdelay));
                if let Some(l) = &mut self.lacp {
                    let fast = self.opts.lacp_rate == LacpRate::Fast;
                    if fast != l.config().fast {
                        l.set_fast(now, fast);
                    }
                    if self.opts.min_links != l.config().min_links {
                        l.set_min_links(now, self.opts.min_links);
                    }
                }
                self.after_lacp();
                self.reconfigure_arp(now);
                self.reselect(now);
                self.publish_if_changed();
                let mut msg = format!("{key} set to {value}");
                for w in warnings {
                    msg.push_str("; warning: ");
                    msg.push_str(&w);
                }
                Ok(msg)
            }
            "mode" | "fail_over_mac" => Err(format!(
                "{key} cannot be changed while the bond has members (as in the kernel); change the config and restart"
            )),
            other if crate::config::options::canonical(other).is_some() => {
                Err(format!("{other} cannot be changed at runtime in this version of xbond"))
            }
            other => Err(format!("unknown bonding option '{other}'")),
        }
    }

    /// Start, stop or retune the ARP monitor after a runtime change.
    /// Members pass between it and the MII monitor in the state they are
    /// in, as the kernel's two monitors share one link state.
    fn reconfigure_arp(&mut self, now: Instant) {
        let cfg = (self.opts.arp_interval > 0).then(|| arp_config(&self.opts));
        match (self.arp.take(), cfg) {
            (Some(a), Some(cfg)) if *a.config() == cfg => {
                self.arp = Some(a);
                return;
            }
            (Some(mut a), Some(cfg)) => {
                a.reconfigure(now, cfg);
                self.arp = Some(a);
            }
            (Some(_), None) => {
                for (i, m) in self.members.iter().enumerate() {
                    if m.is_some() {
                        self.mii.take_over(i, self.links[i] == LinkState::Up);
                        if self.opts.miimon > 0 {
                            let carrier = self.mii.carrier(i);
                            self.mii.handle_carrier(now, i, carrier);
                        }
                    }
                }
            }
            (None, Some(cfg)) => {
                let mut a = ArpMonitor::new(cfg);
                for (i, m) in self.members.iter().enumerate() {
                    // A member starts as up as it is now, judged from the
                    // first round on.
                    a.add(now, self.links[i] == LinkState::Up);
                    a.set_carrier(i, self.mii.carrier(i));
                    if m.is_none() {
                        a.remove(i);
                    }
                }
                a.set_active(now, self.ab.active);
                self.arp = Some(a);
            }
            (None, None) => return,
        }
        self.after_monitors(now);
    }

    pub fn miimon(&self) -> Duration {
        ms(self.opts.miimon)
    }

    pub fn status(&self, now: Instant) -> BondStatus {
        let o = &self.opts;
        let active = self.ab.active;
        let distributing = self.lacp.as_ref().map(Lacp::distributing);
        BondStatus {
            name: self.name.clone(),
            driver_version: DRIVER_VERSION.to_string(),
            mode: o.mode,
            fail_over_mac: o.fail_over_mac.name().to_string(),
            xmit_hash_policy: (
                o.xmit_hash_policy.name().to_string(),
                o.xmit_hash_policy.number(),
            ),
            primary: o.primary.clone(),
            primary_reselect: o.primary_reselect.name().to_string(),
            active_slave: active
                .and_then(|a| self.members[a].as_ref())
                .map(|m| m.name.clone()),
            mii_status: if let Some(l) = &self.lacp {
                if l.carrier() {
                    "up"
                } else {
                    "down"
                }
            } else if self.any_member_up() {
                "up"
            } else {
                "down"
            }
            .to_string(),
            miimon: o.miimon,
            updelay: o.updelay,
            downdelay: o.downdelay,
            peer_notif_delay: o.peer_notif_delay,
            arp_interval: o.arp_interval,
            arp_missed_max: o.arp_missed_max,
            arp_ip_target: o.arp_ip_target.iter().map(|a| a.to_string()).collect(),
            ns_ip6_target: o.ns_ip6_target.iter().map(|a| a.to_string()).collect(),
            arp_validate: o.arp_validate.name().to_string(),
            arp_all_targets: o.arp_all_targets.name().to_string(),
            link_watch_policy: o.link_watch_policy.map(|p| p.name().to_string()),
            mac: self.bond_mac.to_string(),
            host_interface: self.host_interface.clone(),
            members: self
                .members
                .iter()
                .enumerate()
                .filter_map(|(i, m)| m.as_ref().map(|m| (i, m)))
                .map(|(i, m)| MemberStatus {
                    name: m.name.clone(),
                    mii_status: self.links[i].proc_name().to_string(),
                    // Every member is active in the modes without a primary;
                    // in 802.3ad the distributing ones.
                    state: if let Some(d) = &distributing {
                        if d.contains(&(i as MemberId)) {
                            "active"
                        } else {
                            "backup"
                        }
                    } else if active == Some(i) || !o.mode.uses_primary() || o.mode.is_lb() {
                        "active"
                    } else {
                        "backup"
                    }
                    .to_string(),
                    speed_mbps: m.speed,
                    duplex: m
                        .full_duplex
                        .map(|f| if f { "full" } else { "half" }.to_string()),
                    link_failure_count: self.failures[i],
                    perm_hwaddr: m.perm_mac.to_string(),
                    queue_id: 0,
                    ifindex: m.ifindex,
                    rx_queues: m.rx_queues,
                    ad: self
                        .lacp
                        .as_ref()
                        .and_then(|l| l.port_status(i as MemberId)),
                    arp: self.arp.as_ref().map(|a| MemberArpStatus {
                        link: a.state(i).proc_name().to_string(),
                        last_valid_rx_ms_ago: a
                            .last_valid(i)
                            .map(|t| now.saturating_duration_since(t).as_millis() as u64),
                        probes: a.counters(i).probes,
                        valid_replies: a.counters(i).valid_replies,
                    }),
                })
                .collect(),
            missing_members: self.missing.clone(),
            ad: self.lacp.as_ref().map(Lacp::status),
        }
    }
}

/// What the monitor needs of a received ARP, NS or NA frame (untagged or
/// under one 802.1Q tag): its addresses, and whether it was for this host
/// (broadcast, multicast or to the bond's MAC).
fn probe_received(frame: &[u8], bond_mac: MacAddr) -> Option<Received> {
    let eth = xbond_dataplane::wire::ethernet::Packet::new_checked(frame).ok()?;
    let dst = eth.dst();
    let for_us = dst.is_multicast() || dst == bond_mac;
    let (ethertype, payload) = xbond_dataplane::wire::vlan::inner_payload(frame)?;
    match ethertype {
        0x0806 => {
            let p = arp::Packet::new_checked(payload).ok()?;
            let r = arp::Repr::parse(&p).ok()?;
            Some(Received::Arp {
                reply: r.operation == arp::Operation::Reply,
                sender: r.sender_ip,
                target: r.target_ip,
                for_us,
            })
        }
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

/// The dataplane's name for the policy (same numbering as the kernel).
pub fn hash_policy(p: XmitHashPolicy) -> HashPolicy {
    match p {
        XmitHashPolicy::Layer2 => HashPolicy::Layer2,
        XmitHashPolicy::Layer34 => HashPolicy::Layer34,
        XmitHashPolicy::Layer23 => HashPolicy::Layer23,
        XmitHashPolicy::Encap23 => HashPolicy::Encap23,
        XmitHashPolicy::Encap34 => HashPolicy::Encap34,
        XmitHashPolicy::VlanSrcMac => HashPolicy::VlanSrcMac,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &str) -> BondOptions {
        let mut o = BondOptions::default();
        o.parse_kernel_string(s).unwrap();
        o.finish().unwrap();
        o
    }

    fn info(name: &str, idx: u32) -> MemberInfo {
        MemberInfo {
            name: name.into(),
            ifindex: idx,
            perm_mac: MacAddr([2, 0, 0, 0, 0, idx as u8]),
            speed: Some(10000),
            full_duplex: Some(true),
            rx_queues: 1,
        }
    }

    fn drain(b: &mut BondCore) -> Vec<Action> {
        std::iter::from_fn(|| b.poll_action()).collect()
    }

    #[test]
    fn alb_failover_moves_the_bond_mac_in_the_snapshot_and_reads_like_the_kernel() {
        let t0 = Instant::now();
        let bond = MacAddr([2, 0, 0, 0, 0, 1]);
        let mut b = BondCore::new("bond0", "bond0", opts("mode=balance-alb miimon=100"), bond);
        let m0 = b.add_member(t0, info("m0", 1), true);
        let m1 = b.add_member(t0, info("m1", 2), true);
        let s = b.snapshot();
        assert_eq!((s.mode, s.active, s.bond_mac), (Mode::Alb, Some(m0), bond));
        assert_eq!(s.macs, vec![bond, MacAddr([2, 0, 0, 0, 0, 2])]);
        assert!(s.copy_probes, "received ARP reaches the client table");
        drain(&mut b);
        b.handle_carrier(t0, m0, false);
        let s = b.snapshot();
        assert_eq!(s.active, Some(m1));
        assert_eq!(s.macs, vec![MacAddr([2, 0, 0, 0, 0, 2]), bond], "swapped");
        // No gratuitous ARP in alb: learning packets with the bond's MAC
        // out of the new active member instead.
        let acts = drain(&mut b);
        assert!(!acts.iter().any(|a| matches!(a, Action::NotifyPeers { .. })));
        assert!(acts.iter().any(|a| matches!(a,
            Action::SendFrame { member, frame } if *member == m1 && frame[..12] == [bond.0, bond.0].concat()[..])));
        let proc = b.status(t0).to_proc();
        for line in [
            "Bonding Mode: adaptive load balancing",
            "Primary Slave: None",
            "Currently Active Slave: m1",
        ] {
            assert!(proc.contains(line), "{line}\n{proc}");
        }
        assert!(b.status(t0).members.iter().all(|m| m.state == "active"));
        assert!(b.alb_view().is_some());
    }

    #[test]
    fn failover_publishes_and_notifies_peers_num_grat_arp_times() {
        let t0 = Instant::now();
        let mut b = BondCore::new(
            "bond0",
            "bond0",
            opts("mode=1 miimon=100 num_grat_arp=3 peer_notif_delay=200"),
            MacAddr([2, 0, 0, 0, 0, 1]),
        );
        let m0 = b.add_member(t0, info("m0", 1), true);
        let m1 = b.add_member(t0, info("m1", 2), true);
        assert_eq!(b.active(), Some(m0));
        drain(&mut b);
        b.handle_carrier(t0, m0, false);
        assert_eq!(b.active(), Some(m1), "carrier loss fails over at once");
        assert_eq!(
            drain(&mut b),
            vec![Action::Publish, Action::NotifyPeers { member: m1 }]
        );
        assert_eq!(b.next_deadline(), Some(t0 + ms(200)));
        b.handle_timeout(t0 + ms(200));
        b.handle_timeout(t0 + ms(400));
        assert_eq!(
            drain(&mut b),
            vec![
                Action::NotifyPeers { member: m1 },
                Action::NotifyPeers { member: m1 }
            ]
        );
        b.handle_timeout(t0 + ms(600));
        assert!(
            drain(&mut b).is_empty(),
            "exactly num_grat_arp notifications"
        );
        assert_eq!(b.status(t0).members[0].link_failure_count, 1);
        assert_eq!(b.snapshot().active, Some(m1));
    }

    #[test]
    fn primary_returns_after_updelay() {
        let t0 = Instant::now();
        let mut b = BondCore::new(
            "bond0",
            "bond0",
            opts("mode=1 miimon=100 updelay=200 primary=m0"),
            MacAddr([2, 0, 0, 0, 0, 1]),
        );
        let m0 = b.add_member(t0, info("m0", 1), true);
        let m1 = b.add_member(t0, info("m1", 2), true);
        // Both start going back; the soonest is promoted so the bond is up.
        assert_eq!(b.active(), Some(m0));
        b.handle_timeout(t0 + ms(200));
        b.handle_carrier(t0 + ms(300), m0, false);
        assert_eq!(b.active(), Some(m1));
        b.handle_carrier(t0 + ms(400), m0, true);
        assert_eq!(b.active(), Some(m1), "primary waits out its updelay");
        assert_eq!(b.status(t0).members[0].mii_status, "going back");
        b.handle_timeout(t0 + ms(599));
        assert_eq!(b.active(), Some(m1));
        b.handle_timeout(t0 + ms(600));
        assert_eq!(
            b.active(),
            Some(m0),
            "primary_reselect=always takes it back"
        );
    }

    #[test]
    fn primary_reselect_failure_keeps_the_backup() {
        let t0 = Instant::now();
        let mut b = BondCore::new(
            "bond0",
            "bond0",
            opts("mode=1 primary=m0 primary_reselect=failure"),
            MacAddr::ZERO,
        );
        let m0 = b.add_member(t0, info("m0", 1), true);
        let m1 = b.add_member(t0, info("m1", 2), true);
        b.handle_carrier(t0, m0, false);
        b.handle_carrier(t0, m0, true);
        assert_eq!(b.active(), Some(m1));
        b.handle_carrier(t0, m1, false);
        assert_eq!(b.active(), Some(m0));
    }

    #[test]
    fn fail_over_mac_active_moves_the_bond_mac() {
        let t0 = Instant::now();
        let mut b = BondCore::new(
            "bond0",
            "bond0",
            opts("mode=1 fail_over_mac=active"),
            MacAddr([2, 0, 0, 0, 0, 1]),
        );
        let m0 = b.add_member(t0, info("m0", 1), true);
        b.add_member(t0, info("m1", 2), true);
        drain(&mut b);
        b.handle_carrier(t0, m0, false);
        let acts = drain(&mut b);
        assert_eq!(acts[0], Action::SetBondMac(MacAddr([2, 0, 0, 0, 0, 2])));
        assert_eq!(b.bond_mac(), MacAddr([2, 0, 0, 0, 0, 2]));
    }

    #[test]
    fn load_sharing_publishes_every_change_of_the_usable_set() {
        let t0 = Instant::now();
        let mut b = BondCore::new(
            "bond0",
            "bond0",
            opts("mode=balance-xor miimon=100 updelay=200 xmit_hash_policy=layer3+4"),
            MacAddr::ZERO,
        );
        let m0 = b.add_member(t0, info("m0", 1), true);
        let m1 = b.add_member(t0, info("m1", 2), true);
        b.handle_timeout(t0 + ms(200));
        let s = b.snapshot();
        assert_eq!((s.mode, s.hash_policy), (Mode::Xor, HashPolicy::Layer34));
        assert_eq!(s.usable, vec![m0, m1]);
        drain(&mut b);
        b.handle_carrier(t0 + ms(300), m0, false);
        assert_eq!(
            drain(&mut b),
            vec![Action::Publish],
            "no GARP outside active-backup"
        );
        assert_eq!(b.snapshot().usable, vec![m1]);
        b.handle_carrier(t0 + ms(400), m0, true);
        assert!(drain(&mut b).is_empty(), "nothing changes during updelay");
        b.handle_timeout(t0 + ms(600));
        assert_eq!(drain(&mut b), vec![Action::Publish]);
        assert_eq!(
            b.snapshot().usable,
            vec![m0, m1],
            "back in the kernel's order"
        );
        assert!(b.status(t0).members.iter().all(|m| m.state == "active"));
    }

    #[test]
    fn members_come_and_go_at_runtime() {
        let t0 = Instant::now();
        let mut b = BondCore::new("bond0", "bond0", opts("mode=balance-rr"), MacAddr::ZERO);
        let m0 = b.add_member(t0, info("m0", 1), true);
        let m1 = b.add_member(t0, info("m1", 2), true);
        assert_eq!(b.next_member_id(), 2);
        drain(&mut b);
        let gone = b.remove_member(t0, m0).unwrap();
        assert_eq!(gone.name, "m0");
        assert_eq!(drain(&mut b), vec![Action::Publish]);
        let s = b.snapshot();
        assert_eq!(s.members.iter().map(|m| m.id).collect::<Vec<_>>(), vec![m1]);
        assert_eq!(s.active, Some(m1), "a new current member");
        assert!(b.remove_member(t0, m0).is_none(), "released once");
        let m2 = b.add_member(t0, info("m2", 3), true);
        assert_eq!(m2, 2, "ids are not reused");
        assert_eq!(b.snapshot().usable, vec![m1, m2]);
        assert_eq!(b.status(t0).members.len(), 2);
    }

    #[test]
    fn hash_policy_and_packets_per_slave_change_live() {
        let t0 = Instant::now();
        let mut b = BondCore::new("bond0", "bond0", opts("mode=balance-xor"), MacAddr::ZERO);
        b.add_member(t0, info("m0", 1), true);
        drain(&mut b);
        b.set_option(t0, "xmit_hash_policy", "encap3+4").unwrap();
        assert_eq!(drain(&mut b), vec![Action::Publish]);
        assert_eq!(b.snapshot().hash_policy, HashPolicy::Encap34);
        assert!(b
            .set_option(t0, "packets_per_slave", "4")
            .unwrap_err()
            .contains("packets_per_slave"));
        let mut rr = BondCore::new("bond0", "bond0", opts("mode=balance-rr"), MacAddr::ZERO);
        rr.add_member(t0, info("m0", 1), true);
        rr.set_option(t0, "packets_per_slave", "4").unwrap();
        assert_eq!(rr.snapshot().packets_per_slave, 4);
        assert_eq!(rr.snapshot().mode, Mode::RoundRobin);
    }

    #[test]
    fn runtime_options() {
        let t0 = Instant::now();
        let mut b = BondCore::new("bond0", "bond0", opts("mode=1"), MacAddr::ZERO);
        let m0 = b.add_member(t0, info("m0", 1), true);
        let m1 = b.add_member(t0, info("m1", 2), false);
        assert!(b
            .set_option(t0, "active_slave", "m1")
            .unwrap_err()
            .contains("down"));
        b.handle_carrier(t0, m1, true);
        b.set_option(t0, "active_slave", "m1").unwrap();
        assert_eq!(b.active(), Some(m1));
        b.set_option(t0, "primary", "m0").unwrap();
        assert_eq!(b.active(), Some(m0));
        assert!(b
            .set_option(t0, "mode", "0")
            .unwrap_err()
            .contains("cannot be changed"));
        assert!(b
            .set_option(t0, "miimon", "x")
            .unwrap_err()
            .contains("miimon"));
        assert!(b
            .set_option(t0, "updelay", "250")
            .unwrap()
            .contains("rounded to 200"));
        assert_eq!(b.options().updelay, 200);
        assert!(b.set_option(t0, "nonsense", "1").is_err());
    }

    /// Two 802.3ad bonds wired member to member through their actions.
    fn exchange(a: &mut BondCore, b: &mut BondCore, now: Instant) -> (Vec<Action>, Vec<Action>) {
        let (mut other_a, mut other_b) = (Vec::new(), Vec::new());
        fn pass(
            from: &mut BondCore,
            to: &mut BondCore,
            other: &mut Vec<Action>,
            now: Instant,
        ) -> bool {
            let mut moved = false;
            while let Some(act) = from.poll_action() {
                match act {
                    Action::SendFrame { member, frame } => {
                        moved = true;
                        to.handle_slow_frame(now, member, &frame);
                    }
                    o => other.push(o),
                }
            }
            moved
        }
        for _ in 0..100 {
            let ab = pass(a, b, &mut other_a, now);
            let ba = pass(b, a, &mut other_b, now);
            if !ab && !ba {
                break;
            }
        }
        (other_a, other_b)
    }

    #[test]
    fn lacp_bond_publishes_the_distributing_members_and_reads_like_the_kernel() {
        let t0 = Instant::now();
        let o =
            opts("mode=802.3ad miimon=100 lacp_rate=fast xmit_hash_policy=layer3+4 min_links=1");
        let mut a = BondCore::new("bond0", "bond0", o.clone(), MacAddr([2, 0, 0, 0, 0, 0xa]));
        let mut b = BondCore::new("sw", "sw", o, MacAddr([2, 0, 0, 0, 0, 0xb]));
        for (bond, base) in [(&mut a, 1u32), (&mut b, 11)] {
            bond.add_member(t0, info(&format!("m{}", base), base), true);
            bond.add_member(t0, info(&format!("m{}", base + 1), base + 1), true);
        }
        let mut now = t0;
        let mut carrier = Vec::new();
        while now < t0 + Duration::from_secs(4) {
            let (oa, _) = exchange(&mut a, &mut b, now);
            carrier.extend(oa.into_iter().filter(|x| matches!(x, Action::Carrier(_))));
            now += Duration::from_millis(100);
            a.handle_timeout(now);
            b.handle_timeout(now);
        }
        assert_eq!(carrier, vec![Action::Carrier(true)]);
        let s = a.snapshot();
        assert_eq!((s.mode, s.hash_policy), (Mode::Lacp, HashPolicy::Layer34));
        assert_eq!(s.usable, vec![0, 1]);
        assert_eq!(s.collecting, vec![0, 1]);
        insta::assert_snapshot!(a.status(t0).to_proc());
        // Carrier loss: out of the snapshot at once.
        a.handle_carrier(now, 1, false);
        assert_eq!(a.snapshot().usable, vec![0]);
        assert_eq!(a.snapshot().collecting, vec![0]);
        assert_eq!(a.status(t0).members[1].state, "backup");
    }

    #[test]
    fn lacp_fallback_runs_active_backup_until_a_partner_speaks() {
        let t0 = Instant::now();
        let o = opts(
            "mode=802.3ad lacp_rate=fast lacp_fallback=active-backup lacp_fallback_timeout=2000",
        );
        let mut a = BondCore::new("bond0", "bond0", o, MacAddr([2, 0, 0, 0, 0, 0xa]));
        let m0 = a.add_member(t0, info("m0", 1), true);
        a.add_member(t0, info("m1", 2), true);
        drain(&mut a);
        a.handle_timeout(t0 + Duration::from_millis(2000));
        let acts = drain(&mut a);
        assert!(
            acts.contains(&Action::NotifyPeers { member: m0 }),
            "{acts:?}"
        );
        let s = a.snapshot();
        assert_eq!((s.mode, s.active), (Mode::ActiveBackup, Some(m0)));
        // A partner's LACPDU on m1: LACP again.
        let mut partner = BondCore::new(
            "sw",
            "sw",
            opts("mode=802.3ad lacp_rate=fast"),
            MacAddr([2, 0, 0, 0, 0, 0xb]),
        );
        partner.add_member(t0, info("p0", 11), true);
        partner.add_member(t0, info("p1", 12), true);
        exchange(&mut partner, &mut a, t0 + Duration::from_millis(2100));
        assert_eq!(a.snapshot().mode, Mode::Lacp);
        assert!(!a.status(t0).ad.unwrap().fallback);
    }

    /// An ARP reply from 198.18.0.2 to the bond, as a member receives it.
    fn arp_reply(bond_mac: MacAddr) -> Vec<u8> {
        let mut f = arp::Repr::request_frame(
            MacAddr([2, 0, 0, 0, 2, 0]),
            "198.18.0.2".parse().unwrap(),
            "198.18.0.1".parse().unwrap(),
        );
        f[..6].copy_from_slice(&bond_mac.0);
        f[20..22].copy_from_slice(&[0, 2]);
        f.to_vec()
    }

    /// Run an ARP-monitored bond for `ticks` intervals of 100 ms; members
    /// in `answering` get a reply to each of their probes, and the other
    /// answering members the request, flooded by the switch.
    fn arp_ticks(
        b: &mut BondCore,
        now: &mut Instant,
        ticks: u32,
        answering: &[MemberId],
    ) -> Vec<Action> {
        let mut out = Vec::new();
        for _ in 0..ticks {
            b.handle_timeout(*now);
            for a in drain(b) {
                if let Action::Probe { member } = a {
                    if answering.contains(&member) {
                        let f = arp_reply(b.bond_mac());
                        b.handle_probe_frame(*now + ms(1), member, &f);
                        let req = arp::Repr::request_frame(
                            b.bond_mac(),
                            "198.18.0.1".parse().unwrap(),
                            "198.18.0.2".parse().unwrap(),
                        );
                        for &o in answering.iter().filter(|&&o| o != member) {
                            b.handle_probe_frame(*now + ms(1), o, &req);
                        }
                    }
                }
                out.push(a);
            }
            *now += ms(100);
        }
        out
    }

    #[test]
    fn arp_monitor_takes_a_silent_active_member_out_and_notifies_peers() {
        let t0 = Instant::now();
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let o = opts("mode=1 arp_interval=100 arp_ip_target=198.18.0.2 arp_validate=all");
        let mut b = BondCore::new("bond0", "bond0", o, mac);
        b.set_own_addresses(vec!["198.18.0.1".parse().unwrap()]);
        let m0 = b.add_member(t0, info("m0", 1), true);
        let m1 = b.add_member(t0, info("m1", 2), true);
        assert!(b.snapshot().copy_probes, "workers copy ARP to control");
        let mut now = t0;
        let acts = arp_ticks(&mut b, &mut now, 10, &[m0, m1]);
        assert!(acts.contains(&Action::Probe { member: m0 }));
        assert!(
            !acts.contains(&Action::Probe { member: m1 }),
            "backups are not probed"
        );
        assert_eq!(b.active(), Some(m0));
        let acts = arp_ticks(&mut b, &mut now, 5, &[m1]);
        assert_eq!(b.active(), Some(m1), "{acts:?}");
        assert!(acts.contains(&Action::NotifyPeers { member: m1 }));
        let st = b.status(now);
        assert_eq!(st.members[0].mii_status, "down");
        assert_eq!(st.members[0].link_failure_count, 1);
        let arp = st.members[0].arp.as_ref().unwrap();
        assert_eq!(arp.valid_replies, 10);
        assert!(arp.last_valid_rx_ms_ago.unwrap() >= 400);
        assert!(st.to_proc().contains("ARP Polling Interval (ms): 100\nARP Missed Max: 2\nARP IP target/s (n.n.n.n form): 198.18.0.2\n"));
    }

    #[test]
    fn link_watch_policy_all_acts_on_carrier_at_once_and_any_needs_both_to_fail() {
        let t0 = Instant::now();
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let o = opts(
            "mode=1 miimon=100 arp_interval=100 arp_ip_target=198.18.0.2 link_watch_policy=all",
        );
        let mut b = BondCore::new("bond0", "bond0", o, mac);
        b.set_own_addresses(vec!["198.18.0.1".parse().unwrap()]);
        let m0 = b.add_member(t0, info("m0", 1), true);
        let m1 = b.add_member(t0, info("m1", 2), true);
        let mut now = t0;
        arp_ticks(&mut b, &mut now, 5, &[m0, m1]);
        b.handle_carrier(now, m0, false);
        assert_eq!(b.active(), Some(m1), "carrier loss acts at once");
        b.handle_carrier(now, m0, true);
        arp_ticks(&mut b, &mut now, 10, &[m0, m1]);
        assert_eq!(b.link_state(m0), LinkState::Up);

        let o = opts(
            "mode=1 miimon=100 arp_interval=100 arp_ip_target=198.18.0.2 link_watch_policy=any",
        );
        let mut b = BondCore::new("bond0", "bond0", o, mac);
        b.set_own_addresses(vec!["198.18.0.1".parse().unwrap()]);
        let m0 = b.add_member(t0, info("m0", 1), true);
        b.add_member(t0, info("m1", 2), true);
        let mut now = t0;
        arp_ticks(&mut b, &mut now, 5, &[m0]);
        b.handle_carrier(now, m0, false);
        assert_eq!(b.active(), Some(m0), "ARP still says up");
        arp_ticks(&mut b, &mut now, 5, &[]);
        assert_eq!(b.link_state(m0), LinkState::Down, "both say down");
    }

    #[test]
    fn arp_monitoring_is_switched_on_retuned_and_off_at_runtime() {
        let t0 = Instant::now();
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let mut b = BondCore::new("bond0", "bond0", opts("mode=1 miimon=100 updelay=200"), mac);
        let m0 = b.add_member(t0, info("m0", 1), true);
        let m1 = b.add_member(t0, info("m1", 2), true);
        let mut now = t0;
        b.handle_timeout(now + ms(200));
        assert_eq!(b.active(), Some(m0));
        assert!(!b.snapshot().copy_probes);

        // ARP monitoring replaces MII monitoring, as the kernel's sysfs does.
        let msg = b.set_option(now, "arp_interval", "100").unwrap();
        assert!(msg.contains("MII monitoring disabled"), "{msg}");
        assert!(msg.contains("updelay"), "{msg}");
        assert_eq!((b.options().miimon, b.options().updelay), (0, 0));
        assert!(b.snapshot().copy_probes, "workers copy ARP to control");
        assert_eq!(b.link_state(m0), LinkState::Up, "members keep their state");
        // The daemon reads the bond's addresses before every round.
        b.set_own_addresses(vec!["198.18.0.1".parse().unwrap()]);
        b.set_option(now, "arp_ip_target", "+198.18.0.2").unwrap();
        let err = b
            .set_option(now, "arp_ip_target", "+198.18.0.2")
            .unwrap_err();
        assert!(err.contains("already a target"), "{err}");
        let err = b
            .set_option(now, "arp_ip_target", "-198.18.0.9")
            .unwrap_err();
        assert!(err.contains("not a target"), "{err}");
        let err = b.set_option(now, "arp_validate", "sometimes").unwrap_err();
        assert!(err.contains("arp_validate"), "{err}");
        b.set_option(now, "arp_validate", "all").unwrap();
        let cfg = b.arp_monitor().unwrap().config().clone();
        assert_eq!(cfg.targets, vec!["198.18.0.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(cfg.validate, crate::config::options::ArpValidate::All);

        // Carrier changes are not acted on any more: the path is.
        b.handle_carrier(now, m1, false);
        assert_eq!(b.link_state(m1), LinkState::Up);
        b.handle_carrier(now, m1, true);
        let acts = arp_ticks(&mut b, &mut now, 5, &[m0, m1]);
        assert!(acts.contains(&Action::Probe { member: m0 }));
        arp_ticks(&mut b, &mut now, 5, &[m1]);
        assert_eq!(b.active(), Some(m1), "m0's replies stopped");
        assert_eq!(b.link_state(m0), LinkState::Down);

        // A second target that never answers, with arp_all_targets=all: a
        // new target counts as answered when added, so nothing goes down at
        // once; after arp_missed_max intervals the active member does.
        b.set_option(now, "arp_all_targets", "all").unwrap();
        b.set_option(now, "arp_ip_target", "+198.18.0.3").unwrap();
        arp_ticks(&mut b, &mut now, 1, &[m1]);
        assert_eq!(b.link_state(m1), LinkState::Up);
        arp_ticks(&mut b, &mut now, 4, &[m1]);
        assert_ne!(b.link_state(m1), LinkState::Up, "198.18.0.3 never answered");
        assert_eq!(b.active(), None);
        b.set_option(now, "arp_ip_target", "-198.18.0.3").unwrap();
        arp_ticks(&mut b, &mut now, 5, &[m1]);
        assert_eq!(
            b.link_state(m1),
            LinkState::Up,
            "back without the silent target"
        );

        // MII monitoring takes over from the state ARP left: m0 has
        // carrier, so it comes back (updelay was cleared with miimon); the
        // ARP monitor and the probe copies are gone.
        let err = b.set_option(now, "updelay", "200").unwrap_err();
        assert!(err.contains("miimon"), "{err}");
        assert_eq!(b.link_state(m0), LinkState::Down);
        let msg = b.set_option(now, "miimon", "100").unwrap();
        assert!(msg.contains("ARP monitoring disabled"), "{msg}");
        assert!(b.arp_monitor().is_none());
        assert!(!b.snapshot().copy_probes);
        assert_eq!(b.link_state(m0), LinkState::Up);
        assert_eq!(b.active(), Some(m1));
        b.handle_carrier(now, m1, false);
        assert_eq!(b.active(), Some(m0), "carrier counts again");
    }

    #[test]
    fn runtime_arp_options_keep_the_kernels_mode_rules() {
        let t0 = Instant::now();
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let mut ad = BondCore::new("bond0", "bond0", opts("mode=802.3ad"), mac);
        ad.add_member(t0, info("m0", 1), true);
        let err = ad.set_option(t0, "arp_interval", "100").unwrap_err();
        assert!(err.contains("mode dependency"), "{err}");
        assert!(ad.arp_monitor().is_none());

        // With link_watch_policy, both monitors run.
        let o = opts("mode=1 miimon=100 link_watch_policy=all");
        let mut b = BondCore::new("bond0", "bond0", o, mac);
        b.add_member(t0, info("m0", 1), true);
        let msg = b.set_option(t0, "arp_interval", "200").unwrap();
        assert!(!msg.contains("disabled"), "{msg}");
        assert_eq!(b.options().miimon, 100);
        assert_eq!(b.arp_monitor().unwrap().config().interval, ms(200));
        b.set_option(t0, "arp_interval", "0").unwrap();
        assert!(b.arp_monitor().is_none());
        assert_eq!(b.options().miimon, 100);
    }

    #[test]
    fn outside_802_3ad_the_bond_has_carrier_while_a_member_is_up() {
        let t0 = Instant::now();
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        for mode in ["active-backup", "balance-xor", "balance-alb"] {
            let mut b = BondCore::new(
                "bond0",
                "bond0",
                opts(&format!("mode={mode} miimon=100")),
                mac,
            );
            let m0 = b.add_member(t0, info("m0", 1), true);
            let m1 = b.add_member(t0, info("m1", 2), false);
            let carrier = |acts: Vec<Action>| -> Vec<Action> {
                acts.into_iter()
                    .filter(|a| matches!(a, Action::Carrier(_)))
                    .collect()
            };
            assert_eq!(carrier(drain(&mut b)), vec![], "{mode}: on from the start");
            b.handle_carrier(t0, m0, false);
            assert_eq!(
                carrier(drain(&mut b)),
                vec![Action::Carrier(false)],
                "{mode}"
            );
            assert_eq!(b.status(t0).mii_status, "down");
            b.handle_carrier(t0, m0, false);
            assert_eq!(carrier(drain(&mut b)), vec![], "{mode}: said once");
            b.handle_carrier(t0, m1, true);
            assert_eq!(
                carrier(drain(&mut b)),
                vec![Action::Carrier(true)],
                "{mode}"
            );
            assert_eq!(b.status(t0).mii_status, "up");
        }
        // Without members at all there is no carrier either.
        let mut b = BondCore::new("bond0", "bond0", opts("mode=1 miimon=100"), mac);
        b.handle_timeout(t0);
        assert!(drain(&mut b).contains(&Action::Carrier(false)));
    }
}
