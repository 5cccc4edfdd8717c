//! balance-tlb and balance-alb in control, sans-IO, as the kernel's
//! bond_alb.c runs them: each member's MAC (the active member carries the
//! bond's; the others keep their own, swapped on a change of active
//! member), the transmit table balanced by measured load, and receive load
//! balancing's client table with the ARP updates that move peers between
//! members. Driven by events and a 100 ms tick; it never touches a socket —
//! the frames it wants sent wait in [`Alb::poll_frame`].
//!
//! `mod.rs` holds the members and their links; `macs.rs` the MAC swaps and
//! learning packets; `tlb.rs` the transmit table; `rlb.rs` receive load
//! balancing's client table.
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
use xbond_dataplane::wire::{ethernet, MacAddr};

mod macs;
mod rlb;
#[cfg(test)]
mod tests;
mod tlb;

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
}
