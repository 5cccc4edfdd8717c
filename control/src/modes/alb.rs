//! balance-tlb and balance-alb in control, sans-IO, as the kernel's
//! bond_alb.c runs them: each member's MAC (the active member carries the
//! bond's; the others keep their own, swapped on a change of active
//! member), the transmit table balanced by measured load, and receive load
//! balancing's client table with the ARP updates that move peers between
//! members. Driven by events and a 100 ms tick; it never touches a socket —
//! the frames it wants sent wait in [`Alb::poll_frame`].
//!
//! Where xbond differs from the kernel:
//! - The data path cannot change the tables, so a destination seen for the
//!   first time leaves on the active member until the next tick assigns it
//!   (at most 100 ms); it is weighed by the rate measured in that tick
//!   rather than by nothing, so new destinations spread at once.
//! - At a rebalance every destination that sent in the interval is placed
//!   again at once, heaviest first, each on the member with the most spare
//!   capacity (the kernel re-places them one by one as frames arrive).
//! - Members' MACs are xbond's alone: AF_XDP sees every frame whatever its
//!   destination, so no interface's address is changed and no member is
//!   made promiscuous; a frame for any member's MAC is handed to the host
//!   as the bond's.
//! - The peers of a member that failed are told their new member at the
//!   next tick; the kernel may first wait out the 2 s it keeps between
//!   rounds of updates.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use xbond_dataplane::lb::{self, Client, LbTables, LoadTotals, BUCKETS, UNASSIGNED};
use xbond_dataplane::snapshot::MemberId;
use xbond_dataplane::wire::arp::{self, Operation, Repr};
use xbond_dataplane::wire::{vlan, MacAddr};

/// The kernel's ALB timer (`ALB_TIMER_TICKS_PER_SEC`).
pub const TICK: Duration = Duration::from_millis(100);
const TICKS_PER_SEC: u64 = 10;
/// Ticks client updates wait after the host sent an ARP request
/// (`RLB_UPDATE_DELAY`, 2 s), so they undo what the request taught.
const UPDATE_DELAY_TICKS: u32 = 20;
/// Extra rounds of updates after a member failed or a MAC moved
/// (`RLB_UPDATE_RETRY`).
const UPDATE_RETRY: u32 = 3;
/// ARP replies per client update (`RLB_ARP_BURST_SIZE`).
const ARP_BURST: usize = 2;
/// The EtherType of learning packets (`ETH_P_LOOPBACK`).
const ETHERTYPE_LOOPBACK: [u8; 2] = [0x90, 0x00];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlbConfig {
    /// balance-alb: receive load balancing on.
    pub rlb: bool,
    /// `tlb_dynamic_lb`.
    pub dynamic: bool,
    /// `lp_interval`: learning packets this often.
    pub lp_interval: Duration,
    /// How often the transmit table is balanced again (the kernel's 10 s).
    pub rebalance_interval: Duration,
}

#[derive(Debug, Clone)]
struct Member {
    perm: MacAddr,
    mac: MacAddr,
    can_tx: bool,
    /// Mbps; 0 when unknown.
    speed: u32,
}

/// One peer of receive load balancing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo {
    /// The bond's address the peer talks to.
    pub ip_src: Ipv4Addr,
    /// The peer.
    pub ip_dst: Ipv4Addr,
    /// The sender MAC of the host's ARP (before the rewrite).
    pub mac_src: MacAddr,
    /// The peer's MAC (broadcast until the peer answers a request).
    pub mac_dst: MacAddr,
    pub member: Option<MemberId>,
    /// The VLAN the peer is on (0: untagged).
    pub vid: u16,
    /// The peer must be told its member's MAC.
    ntt: bool,
}

/// One transmit bucket for status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxBucket {
    pub bucket: u8,
    pub member: Option<MemberId>,
    /// Bytes per second measured over the last interval.
    pub load: u64,
    /// Bytes since the last rebalance.
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlbCounters {
    /// ARP replies control sent with a member's MAC in place of the bond's.
    pub arp_rewritten: u64,
    /// ARP replies sent to move peers to their members.
    pub arp_updates: u64,
    /// Balancing rounds of the transmit table.
    pub tx_rebalances: u64,
    /// Rounds that assigned every peer again (a member came up or joined).
    pub rx_rebalances: u64,
    pub learning_packets: u64,
}

/// A frame for a member, untagged, and the VLAN to tag it with (0: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFrame {
    pub member: MemberId,
    pub vid: u16,
    pub frame: Vec<u8>,
}

#[derive(Debug)]
pub struct Alb {
    cfg: AlbConfig,
    bond_mac: MacAddr,
    members: Vec<Option<Member>>,
    active: Option<MemberId>,
    vlans: Vec<u16>,

    tx: [MemberId; BUCKETS],
    history: [u64; BUCKETS],
    tx_bytes: [u64; BUCKETS],
    seen: LoadTotals,
    member_load: Vec<u64>,
    unbalanced: u64,

    next_tick: Option<Instant>,
    lp_counter: u64,
    rebalance_counter: u64,

    clients: Vec<Option<ClientInfo>>,
    /// Slots in use, the newest first (the kernel's used list).
    used: Vec<u8>,
    rx_slave: Option<MemberId>,
    rx_ntt: bool,
    update_delay: u32,
    update_retry: u32,
    rlb_rebalance: bool,

    out: VecDeque<OutFrame>,
    counters: AlbCounters,
}

fn valid_unicast(m: MacAddr) -> bool {
    !m.is_multicast() && !m.is_zero()
}

impl Alb {
    pub fn new(cfg: AlbConfig, bond_mac: MacAddr) -> Self {
        Alb {
            cfg,
            bond_mac,
            members: Vec::new(),
            active: None,
            vlans: Vec::new(),
            tx: [UNASSIGNED; BUCKETS],
            history: [0; BUCKETS],
            tx_bytes: [0; BUCKETS],
            seen: LoadTotals::default(),
            member_load: Vec::new(),
            unbalanced: 0,
            next_tick: None,
            lp_counter: 0,
            rebalance_counter: 0,
            clients: vec![None; BUCKETS],
            used: Vec::new(),
            rx_slave: None,
            rx_ntt: false,
            update_delay: 0,
            update_retry: 0,
            rlb_rebalance: false,
            out: VecDeque::new(),
            counters: AlbCounters::default(),
        }
    }

    pub fn config(&self) -> &AlbConfig {
        &self.cfg
    }

    pub fn counters(&self) -> AlbCounters {
        self.counters
    }

    /// The VLANs learning packets are sent on besides untagged.
    pub fn set_vlans(&mut self, vids: Vec<u16>) {
        self.vlans = vids;
    }

    fn member(&self, id: MemberId) -> Option<&Member> {
        self.members.get(usize::from(id)).and_then(Option::as_ref)
    }

    fn member_mut(&mut self, id: MemberId) -> Option<&mut Member> {
        self.members
            .get_mut(usize::from(id))
            .and_then(Option::as_mut)
    }

    /// A member's current MAC.
    pub fn mac(&self, id: MemberId) -> Option<MacAddr> {
        self.member(id).map(|m| m.mac)
    }

    fn can_tx(&self, id: MemberId) -> bool {
        self.member(id).is_some_and(|m| m.can_tx)
    }

    fn ids(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.is_some())
            .map(|(i, _)| i as MemberId)
    }

    /// The member whose current MAC is `mac` (`bond_slave_has_mac`).
    fn has_mac(&self, mac: MacAddr) -> Option<MemberId> {
        self.ids().find(|&i| self.mac(i) == Some(mac))
    }

    /// Every member's MAC by id, as the data path needs them.
    pub fn macs(&self) -> Vec<MacAddr> {
        self.members
            .iter()
            .map(|m| m.as_ref().map_or(MacAddr::ZERO, |m| m.mac))
            .collect()
    }

    /// The tables as the workers read them.
    pub fn tables(&self) -> LbTables {
        let mut t = LbTables::new(self.cfg.dynamic);
        t.tx = self.tx;
        for (slot, c) in t.clients.iter_mut().zip(&self.clients) {
            *slot = c.and_then(|c| {
                Some(Client {
                    ip_src: c.ip_src.octets(),
                    ip_dst: c.ip_dst.octets(),
                    mac_src: c.mac_src,
                    mac_dst: c.mac_dst,
                    member: c.member?,
                })
            });
        }
        t
    }

    pub fn poll_frame(&mut self) -> Option<OutFrame> {
        self.out.pop_front()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_tick
    }

    // ---- members and MACs ------------------------------------------------

    /// The MAC a member joining with permanent MAC `perm` would have
    /// (`alb_handle_addr_collision_on_attach`): its own, unless another
    /// member has it or it is the bond's; then the permanent MAC of a
    /// member whose own is free. An error if there is none.
    pub fn check_member(&self, perm: MacAddr) -> Result<MacAddr, String> {
        if self.ids().next().is_none() || (perm != self.bond_mac && self.has_mac(perm).is_none()) {
            return Ok(perm);
        }
        if let Some(p) = self
            .ids()
            .filter_map(|i| self.member(i).map(|m| m.perm))
            .find(|&p| p != perm && self.has_mac(p).is_none())
        {
            return Ok(p);
        }
        if self.has_mac(self.bond_mac).is_none() && perm != self.bond_mac {
            return Ok(self.bond_mac);
        }
        Err(format!(
            "its hw address {perm} is in use by the bond and no member has a free one to give it"
        ))
    }

    /// A member joins (`bond_alb_init_slave`) with the MAC
    /// [`check_member`](Self::check_member) gives it.
    pub fn add_member(
        &mut self,
        now: Instant,
        id: MemberId,
        perm: MacAddr,
        speed: u32,
        can_tx: bool,
    ) -> Result<(), String> {
        let mac = self.check_member(perm)?;
        if mac != perm {
            tracing::warn!("the member's hw address {perm} is in use by the bond; giving it {mac}");
        }
        let i = usize::from(id);
        if self.members.len() <= i {
            self.members.resize(i + 1, None);
            self.member_load.resize(i + 1, 0);
        }
        self.members[i] = Some(Member {
            perm,
            mac,
            can_tx,
            speed,
        });
        self.member_load[i] = 0;
        // A rebalance as soon as possible.
        self.rebalance_counter = u64::MAX;
        self.rlb_rebalance = self.cfg.rlb;
        self.next_tick.get_or_insert(now + TICK);
        Ok(())
    }

    /// A member leaves (`bond_alb_deinit_slave`): if another member uses
    /// its permanent MAC, the two swap; its destinations and peers go to
    /// the others.
    pub fn remove_member(&mut self, id: MemberId) {
        let Some(m) = self.member(id).cloned() else {
            return;
        };
        if self.active == Some(id) {
            self.active = None;
        }
        if m.perm != m.mac && m.perm != self.bond_mac {
            if let Some(other) = self.has_mac(m.perm).filter(|&o| o != id) {
                self.swap_macs(id, other);
                self.fasten_swap(id, other);
            }
        }
        self.clear_tx(id, false);
        if self.cfg.rlb {
            self.rx_slave = None;
            self.clear_clients_of(id);
        }
        self.members[usize::from(id)] = None;
    }

    /// A member's link was committed up or down
    /// (`bond_alb_handle_link_change`).
    pub fn set_link(&mut self, id: MemberId, up: bool) {
        let Some(m) = self.member_mut(id) else { return };
        if m.can_tx == up {
            return;
        }
        m.can_tx = up;
        if up {
            self.rebalance_counter = u64::MAX;
            self.rlb_rebalance = self.cfg.rlb;
        } else {
            self.clear_tx(id, false);
            if self.cfg.rlb {
                self.clear_clients_of(id);
            }
        }
    }

    /// A new active member (`bond_alb_handle_active_change`): it takes the
    /// bond's MAC from whoever had it, which takes its MAC in exchange.
    pub fn set_active(&mut self, new: Option<MemberId>) {
        let old = self.active;
        if old == new {
            return;
        }
        self.active = new;
        let Some(n) = new else { return };
        let swap = old
            .filter(|&o| self.member(o).is_some())
            .or_else(|| self.has_mac(self.bond_mac));
        match swap {
            Some(s) => {
                self.clear_tx(s, true);
                self.clear_tx(n, true);
                if s != n {
                    self.swap_macs(s, n);
                    self.fasten_swap(s, n);
                } else {
                    self.fasten_one(n);
                }
            }
            None => {
                self.clear_tx(n, true);
                let bond = self.bond_mac;
                if let Some(m) = self.member_mut(n) {
                    m.mac = bond;
                }
                self.learning_packets(n, bond);
                if self.cfg.rlb {
                    self.update_clients_of(n);
                }
            }
        }
    }

    fn swap_macs(&mut self, a: MemberId, b: MemberId) {
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
    fn fasten_swap(&mut self, a: MemberId, b: MemberId) {
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

    fn fasten_one(&mut self, x: MemberId) {
        if let Some(mac) = self.mac(x) {
            self.learning_packets(x, mac);
        }
        if self.cfg.rlb {
            self.update_clients_of(x);
        }
    }

    /// Learning packets with `mac` out of the active member, so the switch
    /// sends frames for it there (`rlb_teach_disabled_mac_on_primary`).
    fn teach_on_active(&mut self, mac: MacAddr) {
        if let Some(a) = self.active {
            self.learning_packets(a, mac);
        }
    }

    /// One learning packet untagged and one per VLAN out of `member`, from
    /// and to `mac` (`alb_send_learning_packets`).
    fn learning_packets(&mut self, member: MemberId, mac: MacAddr) {
        let mut frame = vec![0u8; 60];
        frame[..6].copy_from_slice(&mac.0);
        frame[6..12].copy_from_slice(&mac.0);
        frame[12..14].copy_from_slice(&ETHERTYPE_LOOPBACK);
        for vid in std::iter::once(0).chain(self.vlans.iter().copied()) {
            self.counters.learning_packets += 1;
            self.out.push_back(OutFrame {
                member,
                vid,
                frame: frame.clone(),
            });
        }
    }

    // ---- transmit load balancing -------------------------------------------

    /// Take a member's destinations off it (`tlb_clear_slave`); with
    /// `save_load` their load so far becomes their history.
    fn clear_tx(&mut self, id: MemberId, save_load: bool) {
        for b in 0..BUCKETS {
            if self.tx[b] == id {
                self.tx[b] = UNASSIGNED;
                if save_load {
                    self.save_history(b);
                }
            }
        }
        if let Some(l) = self.member_load.get_mut(usize::from(id)) {
            *l = 0;
        }
    }

    fn rebalance_secs(&self) -> u64 {
        self.cfg.rebalance_interval.as_secs().max(1)
    }

    fn save_history(&mut self, b: usize) {
        self.history[b] = 1 + self.tx_bytes[b] / self.rebalance_secs();
        self.tx_bytes[b] = 0;
    }

    /// Spare capacity in bits per second (`compute_gap`).
    fn gap(&self, id: MemberId) -> i128 {
        let speed = self.member(id).map_or(0, |m| m.speed);
        (i128::from(speed) << 20) - (i128::from(self.member_load[usize::from(id)]) << 3)
    }

    /// The member with the most spare capacity (`tlb_get_least_loaded_slave`).
    fn least_loaded(&self) -> Option<MemberId> {
        let mut best: Option<(MemberId, i128)> = None;
        for id in self.ids().filter(|&i| self.can_tx(i)) {
            let g = self.gap(id);
            if best.is_none_or(|(_, bg)| g > bg) {
                best = Some((id, g));
            }
        }
        best.map(|b| b.0)
    }

    fn assign(&mut self, b: usize, weight: u64) {
        if let Some(m) = self.least_loaded() {
            self.tx[b] = m;
            self.member_load[usize::from(m)] += weight;
        }
    }

    /// Balance the transmit table again: each destination's history is
    /// its rate over the interval, member loads start over (the active
    /// member's from the unbalanced traffic), and the destinations that
    /// sent are placed again, heaviest first.
    fn rebalance_tx(&mut self) {
        let mut sent: Vec<usize> = Vec::new();
        for b in 0..BUCKETS {
            if self.tx[b] != UNASSIGNED {
                if self.tx_bytes[b] > 0 {
                    sent.push(b);
                }
                self.save_history(b);
                self.tx[b] = UNASSIGNED;
            }
        }
        self.member_load.iter_mut().for_each(|l| *l = 0);
        if let Some(a) = self.active {
            self.member_load[usize::from(a)] = self.unbalanced / self.rebalance_secs();
        }
        self.unbalanced = 0;
        sent.sort_by_key(|&b| std::cmp::Reverse(self.history[b]));
        for b in sent {
            self.assign(b, self.history[b]);
        }
        self.counters.tx_rebalances += 1;
    }

    /// What the workers sent since the last reading: destinations seen for
    /// the first time get a member.
    fn take_load(&mut self, load: &LoadTotals) {
        let mut new = Vec::new();
        for b in 0..BUCKETS {
            let d = load.bytes[b].saturating_sub(self.seen.bytes[b]);
            if d == 0 {
                continue;
            }
            self.tx_bytes[b] += d;
            if self.cfg.dynamic && self.tx[b] == UNASSIGNED {
                if self.history[b] == 0 {
                    self.history[b] = 1 + d * TICKS_PER_SEC;
                }
                new.push(b);
            }
        }
        // Heaviest first, as at a rebalance.
        new.sort_by_key(|&b| std::cmp::Reverse(self.history[b]));
        for b in new {
            self.assign(b, self.history[b]);
        }
        self.unbalanced += load.unbalanced.saturating_sub(self.seen.unbalanced);
        self.seen = load.clone();
    }

    /// The transmit table for status, destinations that have a member or
    /// sent since the last rebalance.
    pub fn tx_buckets(&self) -> Vec<TxBucket> {
        (0..BUCKETS)
            .filter(|&b| self.tx[b] != UNASSIGNED || self.tx_bytes[b] > 0)
            .map(|b| TxBucket {
                bucket: b as u8,
                member: (self.tx[b] != UNASSIGNED).then_some(self.tx[b]),
                load: self.history[b],
                bytes: self.tx_bytes[b],
            })
            .collect()
    }

    /// Each member's assigned load (bytes per second).
    pub fn member_load(&self, id: MemberId) -> u64 {
        self.member_load.get(usize::from(id)).copied().unwrap_or(0)
    }

    // ---- the tick --------------------------------------------------------

    /// The 100 ms round (`bond_alb_monitor`), with what the workers have
    /// sent so far.
    pub fn handle_tick(&mut self, now: Instant, load: &LoadTotals) {
        let Some(t) = self.next_tick else { return };
        if now < t {
            return;
        }
        self.next_tick = Some(if now - t > TICK { now + TICK } else { t + TICK });
        if self.ids().next().is_none() {
            self.lp_counter = 0;
            self.rebalance_counter = 0;
            return;
        }
        self.lp_counter += 1;
        self.rebalance_counter = self.rebalance_counter.saturating_add(1);
        let lp_ticks = (self.cfg.lp_interval.as_millis() as u64 / 100).max(1);
        if self.lp_counter >= lp_ticks {
            let ids: Vec<MemberId> = self.ids().filter(|&i| self.can_tx(i)).collect();
            for id in ids {
                if let Some(mac) = self.mac(id) {
                    self.learning_packets(id, mac);
                }
            }
            self.lp_counter = 0;
        }
        let rebalance_ticks = (self.cfg.rebalance_interval.as_millis() as u64 / 100).max(1);
        if self.rebalance_counter >= rebalance_ticks {
            if self.cfg.dynamic {
                self.rebalance_tx();
            }
            self.rebalance_counter = 0;
        }
        self.take_load(load);
        if !self.cfg.rlb {
            return;
        }
        if self.rlb_rebalance {
            self.rlb_rebalance = false;
            self.rebalance_clients();
        }
        if self.rx_ntt {
            if self.update_delay > 0 {
                self.update_delay -= 1;
            } else {
                self.update_all_clients();
                if self.update_retry > 0 {
                    self.update_retry -= 1;
                } else {
                    self.rx_ntt = false;
                }
            }
        }
    }

    // ---- receive load balancing ------------------------------------------

    /// The next member to give a peer, in turn and preferring the fastest
    /// (`__rlb_next_rx_slave`).
    fn next_rx_member(&mut self) -> Option<MemberId> {
        let speed = |s: &Self, i: MemberId| s.member(i).map_or(0, |m| m.speed);
        let (mut before, mut after) = (None, None);
        let mut found = false;
        let ids: Vec<MemberId> = self.ids().filter(|&i| self.can_tx(i)).collect();
        for id in ids {
            if !found {
                if before.is_none_or(|b| speed(self, b) < speed(self, id)) {
                    before = Some(id);
                }
            } else if after.is_none_or(|r| speed(self, r) < speed(self, id)) {
                after = Some(id);
            }
            if Some(id) == self.rx_slave {
                found = true;
            }
        }
        let pick = match (after, before) {
            (Some(a), Some(b)) if speed(self, a) < speed(self, b) => Some(b),
            (None, b) => b,
            (a, _) => a,
        };
        if pick.is_some() {
            self.rx_slave = pick;
        }
        pick
    }

    fn slot(ip: Ipv4Addr) -> usize {
        usize::from(lb::fold(&ip.octets()))
    }

    fn mark(&mut self, slot: usize) {
        if let Some(c) = &mut self.clients[slot] {
            c.ntt = true;
            self.rx_ntt = true;
        }
    }

    /// Place an ARP packet the host sends to a peer (`rlb_choose_channel`):
    /// the peer keeps its member, or is given the next one; a different
    /// peer in its slot is moved to the active member first.
    fn choose(&mut self, r: &Repr, vid: u16) -> Option<MemberId> {
        let slot = Self::slot(r.target_ip);
        if let Some(c) = self.clients[slot] {
            if c.ip_src == r.sender_ip && c.ip_dst == r.target_ip {
                let c = self.clients[slot].as_mut().expect("checked");
                if r.target_hw != MacAddr::BROADCAST {
                    c.mac_dst = r.target_hw;
                }
                c.mac_src = r.sender_hw;
                if c.member.is_some() {
                    return c.member;
                }
            } else if let Some(a) = self.active.filter(|&a| c.member != Some(a)) {
                if let Some(c) = &mut self.clients[slot] {
                    c.member = Some(a);
                }
                self.update_client(slot);
            }
        }
        let m = self.next_rx_member()?;
        let ntt = valid_unicast(r.target_hw);
        let was = self.clients[slot].is_some();
        self.clients[slot] = Some(ClientInfo {
            ip_src: r.sender_ip,
            ip_dst: r.target_ip,
            mac_src: r.sender_hw,
            mac_dst: r.target_hw,
            member: Some(m),
            vid,
            ntt,
        });
        self.rx_ntt |= ntt;
        if !was {
            self.used.insert(0, slot as u8);
        }
        Some(m)
    }

    /// An ARP packet the host sent on VLAN `vid` (0: the bond itself),
    /// which the data path could not place (`rlb_arp_xmit`). Returns the
    /// member it leaves on and the frame, rewritten: a reply carries the
    /// member's MAC as its sender; a request goes out as it is, and the
    /// peers it reaches are told their members again once it has done its
    /// harm. ARP the bond did not originate leaves unchanged on the active
    /// member.
    pub fn host_arp(&mut self, vid: u16, frame: &[u8]) -> Option<(MemberId, Vec<u8>)> {
        let mut out = frame.to_vec();
        let parsed = frame
            .get(14..)
            .and_then(|b| arp::Packet::new_checked(b).ok())
            .and_then(|p| Repr::parse(&p).ok());
        let mut via = None;
        if let Some(r) = parsed.filter(|r| {
            self.cfg.rlb && !r.sender_hw.is_zero() && self.has_mac(r.sender_hw).is_some()
        }) {
            match r.operation {
                Operation::Reply => {
                    via = self.choose(&r, vid);
                    if let Some(mac) = via.and_then(|m| self.mac(m)) {
                        out[14 + 8..14 + 14].copy_from_slice(&mac.0);
                        self.counters.arp_rewritten += 1;
                    }
                }
                Operation::Request => {
                    via = self.choose(&r, vid);
                    self.update_delay = UPDATE_DELAY_TICKS;
                    self.update_subnet_clients(r.sender_ip);
                }
                Operation::Unknown(_) => {}
            }
        }
        let member = via.filter(|&m| self.can_tx(m)).or(self.active)?;
        if self.active != Some(member) {
            if let Some(mac) = self.mac(member) {
                out[6..12].copy_from_slice(&mac.0);
            }
        }
        Some((member, out))
    }

    /// An ARP packet a member received (`rlb_arp_recv`): a peer that now
    /// claims one of the bond's addresses with another MAC ends the
    /// entries made for that address; a reply updates its sender's MAC.
    pub fn received_arp(&mut self, frame: &[u8]) {
        if !self.cfg.rlb {
            return;
        }
        let Some((0x0806, payload)) = vlan::inner_payload(frame) else {
            return;
        };
        let Some(r) = arp::Packet::new_checked(payload)
            .ok()
            .and_then(|p| Repr::parse(&p).ok())
        else {
            return;
        };
        self.purge_src(r.sender_ip, r.sender_hw);
        if r.operation == Operation::Reply {
            let slot = Self::slot(r.sender_ip);
            if let Some(c) = &mut self.clients[slot] {
                if c.ip_src == r.target_ip && c.ip_dst == r.sender_ip && c.mac_dst != r.sender_hw {
                    c.mac_dst = r.sender_hw;
                    self.mark(slot);
                }
            }
        }
    }

    fn purge_src(&mut self, ip: Ipv4Addr, mac: MacAddr) {
        let stale: Vec<u8> = self
            .used
            .iter()
            .copied()
            .filter(|&s| {
                self.clients[usize::from(s)].is_some_and(|c| c.ip_src == ip && c.mac_src != mac)
            })
            .collect();
        for s in stale {
            self.clients[usize::from(s)] = None;
            self.used.retain(|&u| u != s);
        }
    }

    /// Peers of `ip_src` that are not on the active member and know their
    /// MAC are told again (`rlb_req_update_subnet_clients`): a broadcast
    /// request from the bond's MAC taught them all that MAC.
    fn update_subnet_clients(&mut self, ip_src: Ipv4Addr) {
        for s in self.used.clone() {
            let Some(c) = self.clients[usize::from(s)] else {
                continue;
            };
            let on_bond_mac = c.member.and_then(|m| self.mac(m)) == Some(self.bond_mac);
            if c.ip_src == ip_src && !on_bond_mac && valid_unicast(c.mac_dst) {
                self.mark(usize::from(s));
            }
        }
    }

    /// Peers of `member` are told its (new) MAC, with retries
    /// (`rlb_req_update_slave_clients`).
    fn update_clients_of(&mut self, member: MemberId) {
        let mut any = false;
        for s in self.used.clone() {
            if self.clients[usize::from(s)]
                .is_some_and(|c| c.member == Some(member) && valid_unicast(c.mac_dst))
            {
                self.mark(usize::from(s));
                any = true;
            }
        }
        if any {
            self.update_retry = UPDATE_RETRY;
        }
    }

    /// A member left or lost its link: each of its peers goes to the next
    /// member and is told (`rlb_clear_slave`); if it was not the active
    /// member, the active member takes frames for its MAC until then.
    fn clear_clients_of(&mut self, member: MemberId) {
        for s in self.used.clone() {
            let slot = usize::from(s);
            if self.clients[slot].is_none_or(|c| c.member != Some(member)) {
                continue;
            }
            let next = self.next_rx_member();
            let c = self.clients[slot].as_mut().expect("checked");
            c.member = next;
            if next.is_some() && valid_unicast(c.mac_dst) {
                self.mark(slot);
                self.update_retry = UPDATE_RETRY;
                // Beyond the kernel, which may hold this first round back
                // by up to 2 s: peers of a dead member are told at once.
                self.update_delay = 0;
            }
        }
        if self.active != Some(member) {
            if let Some(mac) = self.mac(member) {
                self.teach_on_active(mac);
            }
        }
    }

    /// Every peer is given the next member in turn (`rlb_rebalance`).
    fn rebalance_clients(&mut self) {
        for s in self.used.clone() {
            let slot = usize::from(s);
            let Some(m) = self.next_rx_member() else {
                continue;
            };
            let c = self.clients[slot]
                .as_mut()
                .expect("used slots hold clients");
            if c.member != Some(m) {
                c.member = Some(m);
                if !c.mac_dst.is_zero() {
                    self.mark(slot);
                }
            }
        }
        self.counters.rx_rebalances += 1;
    }

    /// Two ARP replies telling one peer its member's MAC
    /// (`rlb_update_client`).
    fn update_client(&mut self, slot: usize) {
        let Some(c) = self.clients[slot] else { return };
        let Some(member) = c.member else { return };
        if !valid_unicast(c.mac_dst) {
            return;
        }
        let Some(mac) = self.mac(member) else { return };
        let frame = Repr {
            operation: Operation::Reply,
            sender_hw: mac,
            sender_ip: c.ip_src,
            target_hw: c.mac_dst,
            target_ip: c.ip_dst,
        }
        .frame(c.mac_dst, mac);
        for _ in 0..ARP_BURST {
            self.counters.arp_updates += 1;
            self.out.push_back(OutFrame {
                member,
                vid: c.vid,
                frame: frame.to_vec(),
            });
        }
    }

    /// Tell every peer that needs it (`rlb_update_rx_clients`); the flags
    /// stay while retries remain.
    fn update_all_clients(&mut self) {
        for s in self.used.clone() {
            let slot = usize::from(s);
            if self.clients[slot].is_some_and(|c| c.ntt) {
                self.update_client(slot);
                if self.update_retry == 0 {
                    if let Some(c) = &mut self.clients[slot] {
                        c.ntt = false;
                    }
                }
            }
        }
        self.update_delay = UPDATE_DELAY_TICKS;
    }

    /// The client table, newest first.
    pub fn clients(&self) -> Vec<ClientInfo> {
        self.used
            .iter()
            .filter_map(|&s| self.clients[usize::from(s)])
            .collect()
    }
}

#[cfg(test)]
mod tests;
