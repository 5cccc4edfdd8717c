//! The ARP and IPv6 NS link monitor, as the kernel runs it (bond_main.c
//! `bond_activebackup_arp_mon`, `bond_loadbalance_arp_mon`,
//! `bond_rcv_validate`, `bond_arp_rcv`, `bond_na_rcv`), sans-IO.
//!
//! Every `arp_interval` the monitor inspects each member's last transmit
//! and last valid receive, commits link changes, and asks for probes: in
//! active-backup out of the active member only (or, with no active member,
//! out of one candidate at a time, in turn); in the other modes out of every
//! member with carrier. The daemon reports what members receive: ARP and
//! NS/NA frames already parsed, and "some other traffic" when a member's
//! receive counter moved. `arp_validate` decides which of those count.
//!
//! Times are compared as the kernel's `bond_time_in_interval` does: an
//! event at `t` is recent at `now` if `t - interval <= now <= t + k *
//! interval + interval / 2`.

use crate::monitor::mii::LinkState;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};
use xbond_dataplane::named_enum;
use xbond_dataplane::snapshot::MemberId;

named_enum!(
    /// `arp_validate`: which received ARP/NS/NA count as proof of a link.
    ArpValidate { None = ("none", 0), Active = ("active", 1), Backup = ("backup", 2), All = ("all", 3),
        Filter = ("filter", 4), FilterActive = ("filter_active", 5), FilterBackup = ("filter_backup", 6) } default None);
named_enum!(
    /// `arp_all_targets`: a member is up when any target answers, or all.
    ArpAllTargets { Any = ("any", 0), All = ("all", 1) } default Any);

/// The monitor's settings, from the bond's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpConfig {
    pub interval: Duration,
    pub missed_max: u32,
    pub validate: ArpValidate,
    pub all_targets: ArpAllTargets,
    /// `arp_ip_target` then `ns_ip6_target`, in configured order.
    pub targets: Vec<IpAddr>,
    /// active-backup: probe the active member only and validate backups
    /// as the kernel does; otherwise every member is probed.
    pub active_backup: bool,
}

/// What a member received, as far as the monitor cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// An ARP packet. `for_us`: broadcast, multicast or to the bond's MAC
    /// (the kernel ignores PACKET_OTHERHOST).
    Arp {
        reply: bool,
        sender: Ipv4Addr,
        target: Ipv4Addr,
        for_us: bool,
    },
    /// An ICMPv6 Neighbor Solicitation or Advertisement.
    Nd {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        for_us: bool,
    },
    /// Any other frame (the member's receive counter moved).
    Other,
}

/// A committed change, or a request to choose the active member again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpEvent {
    Up(MemberId),
    Down(MemberId),
    /// A change that may change the active member (`do_failover`).
    Reselect,
}

#[derive(Debug, Clone)]
struct Member {
    present: bool,
    carrier: bool,
    link: LinkState,
    last_rx: Instant,
    last_tx: Instant,
    /// Per target, the last valid reply from it.
    target_rx: Vec<Instant>,
    /// When the member last came up or became active.
    last_link_up: Option<Instant>,
    /// The last valid reply of any target (for status).
    last_valid: Option<Instant>,
    probes: u64,
    valid: u64,
}

/// Probe and reply counts of a member, for `xbond stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ArpCounters {
    /// Probe rounds sent (one frame per target each).
    pub probes: u64,
    /// Replies (or, for backups, the active member's requests) that passed
    /// validation.
    pub valid_replies: u64,
}

#[derive(Debug, Clone)]
pub struct ArpMonitor {
    cfg: ArpConfig,
    members: Vec<Member>,
    /// The bond's active member (`curr_active_slave`).
    active: Option<usize>,
    /// The member being tried while there is no active member
    /// (`current_arp_slave`).
    trying: Option<usize>,
    /// The bond's own addresses (host interface and VLAN interfaces).
    own: Vec<IpAddr>,
    /// Set when the first member is added: the kernel's monitor work runs
    /// as soon as the bond is up.
    next_tick: Option<Instant>,
    events: VecDeque<ArpEvent>,
    probes: VecDeque<MemberId>,
}

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

impl ArpMonitor {
    pub fn new(cfg: ArpConfig) -> Self {
        ArpMonitor {
            cfg,
            members: Vec::new(),
            active: None,
            trying: None,
            own: Vec::new(),
            next_tick: None,
            events: VecDeque::new(),
            probes: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &ArpConfig {
        &self.cfg
    }

    /// Start watching a member: up if it has carrier, with its receive and
    /// transmit times one interval and a bit in the past, as at enslave.
    pub fn add(&mut self, now: Instant, carrier: bool) -> MemberId {
        let past = self.enslaved_past(now);
        let link = if carrier {
            LinkState::Up
        } else {
            LinkState::Down
        };
        self.next_tick.get_or_insert(now);
        self.members.push(Member {
            present: true,
            carrier,
            link,
            last_rx: past,
            last_tx: past,
            target_rx: vec![past; self.cfg.targets.len()],
            last_link_up: carrier.then_some(now),
            last_valid: None,
            probes: 0,
            valid: 0,
        });
        (self.members.len() - 1) as MemberId
    }

    /// The dataplane is up: every member's clock starts now, as if it were
    /// enslaved now. The kernel enslaves onto a dataplane that already
    /// runs; xbond adds its members before their sockets and programs are
    /// attached, which can take longer than `arp_missed_max` intervals on a
    /// loaded machine, and a first round judged by the time of the add took
    /// healthy members down before a probe could go out.
    pub fn start_clock(&mut self, now: Instant) {
        let past = self.enslaved_past(now);
        for m in self.members.iter_mut().filter(|m| m.present) {
            m.last_rx = past;
            m.last_tx = past;
            m.target_rx.fill(past);
            if m.link == LinkState::Up {
                m.last_link_up = Some(now);
            }
        }
        if self.next_tick.is_some() {
            self.next_tick = Some(now);
        }
    }

    /// The receive and transmit times a member starts with: one interval
    /// and a bit before `now`, as at enslave.
    fn enslaved_past(&self, now: Instant) -> Instant {
        now.checked_sub(self.cfg.interval + Duration::from_millis(1))
            .unwrap_or(now)
    }

    /// Stop watching a member (its index stays reserved).
    pub fn remove(&mut self, id: MemberId) {
        let idx = usize::from(id);
        if let Some(m) = self.members.get_mut(idx) {
            m.present = false;
            m.link = LinkState::Down;
        }
        if self.trying == Some(idx) {
            self.trying = None;
        }
        if self.active == Some(idx) {
            self.active = None;
        }
    }

    pub fn state(&self, id: MemberId) -> LinkState {
        let idx = usize::from(id);
        self.members[idx].link
    }

    pub fn counters(&self, id: MemberId) -> ArpCounters {
        let idx = usize::from(id);
        let m = &self.members[idx];
        ArpCounters {
            probes: m.probes,
            valid_replies: m.valid,
        }
    }

    /// When the member last received a valid reply.
    pub fn last_valid(&self, id: MemberId) -> Option<Instant> {
        let idx = usize::from(id);
        self.members[idx].last_valid
    }

    /// New settings while running, as the kernel takes them from sysfs. A
    /// target that stays keeps every member's last reply from it; a new
    /// target counts as answered now (`bond_option_arp_ip_target_add`), so
    /// adding one never takes a member down at once. A new interval applies
    /// from the next round on.
    pub fn reconfigure(&mut self, now: Instant, cfg: ArpConfig) {
        let old = &self.cfg.targets;
        for m in &mut self.members {
            m.target_rx = cfg
                .targets
                .iter()
                .map(|t| {
                    old.iter()
                        .position(|o| o == t)
                        .map_or(now, |i| m.target_rx[i])
                })
                .collect();
        }
        self.cfg = cfg;
    }

    pub fn set_carrier(&mut self, id: MemberId, carrier: bool) {
        let idx = usize::from(id);
        if let Some(m) = self.members.get_mut(idx) {
            m.carrier = carrier;
        }
    }

    /// The bond's addresses, which probe replies must be addressed to.
    pub fn set_own_addresses(&mut self, own: Vec<IpAddr>) {
        self.own = own;
    }

    /// The bond chose a new active member (or none). The new one gets two
    /// intervals before it is judged, as `bond_change_active_slave` does
    /// by restarting its `last_link_up`.
    pub fn set_active(&mut self, now: Instant, active: Option<MemberId>) {
        let active = active.map(usize::from);
        if active == self.active {
            return;
        }
        self.active = active;
        if let Some(a) = active {
            if let Some(m) = self.members.get_mut(a) {
                m.last_link_up = Some(now);
            }
            self.trying = None;
        }
    }

    /// Within `k` intervals (and a half) of `t`.
    fn recent(&self, now: Instant, t: Instant, k: u32) -> bool {
        let d = self.cfg.interval;
        let lo = t.checked_sub(d).unwrap_or(t);
        now >= lo && now <= t + d * k + d / 2
    }

    /// `bond_is_active_slave`: the active member and the one being tried
    /// in active-backup; every member that is up in the other modes.
    fn is_active(&self, idx: usize) -> bool {
        if self.cfg.active_backup {
            self.active == Some(idx) || self.trying == Some(idx)
        } else {
            self.members[idx].link == LinkState::Up
        }
    }

    /// Whether received frames of this member are validated
    /// (`slave_do_arp_validate`): bit 0 of `arp_validate` for active
    /// members, bit 1 for backups.
    fn validates(&self, idx: usize) -> bool {
        let bit = if self.is_active(idx) { 1 } else { 2 };
        self.cfg.validate.number() & bit != 0
    }

    /// `filter*`: without validation, only ARP (and NS/NA) counts as
    /// traffic.
    fn filters(&self) -> bool {
        self.cfg.validate.number() & 4 != 0
    }

    /// The receive time the monitor judges a member by: its last receive,
    /// or with `arp_all_targets=all` the oldest of its targets' replies
    /// (active-backup only, as in the kernel).
    fn last_rx(&self, idx: usize) -> Instant {
        let m = &self.members[idx];
        if self.cfg.all_targets == ArpAllTargets::All {
            if let Some(oldest) = m.target_rx.iter().min() {
                return *oldest;
            }
        }
        m.last_rx
    }

    /// A member received something.
    pub fn handle_rx(&mut self, now: Instant, id: MemberId, rx: Received) {
        let idx = usize::from(id);
        if !self.members.get(idx).is_some_and(|m| m.present) {
            return;
        }
        if !self.validates(idx) {
            let counts = !self.filters() || !matches!(rx, Received::Other);
            if counts {
                self.members[idx].last_rx = now;
            }
            return;
        }
        // Which way round the addresses are checked (`bond_arp_rcv`): an
        // active member takes replies; a backup takes the active member's
        // requests that the switch floods to it, once the active member has
        // had a valid reply since it became active; any member takes a reply
        // while a candidate is being tried (the switch may deliver it to
        // another port).
        let active_alive = self.active.is_some_and(|a| {
            let m = &self.members[a];
            m.last_link_up.is_none_or(|up| self.last_rx(a) > up)
        });
        let trying_sent = self
            .trying
            .is_some_and(|t| self.recent(now, self.members[t].last_tx, 1));
        // NS/NA count on the trial path whatever their type; ARP only as a
        // reply (`bond_na_rcv` has no such check, `bond_arp_rcv` does).
        let (src, dst, reply) = match rx {
            Received::Arp {
                reply,
                sender,
                target,
                for_us: true,
            } => (IpAddr::from(sender), IpAddr::from(target), reply),
            Received::Nd {
                src,
                dst,
                for_us: true,
            } => (IpAddr::from(src), IpAddr::from(dst), true),
            _ => return,
        };
        if self.is_active(idx) {
            self.validate(now, idx, src, dst);
        } else if active_alive {
            self.validate(now, idx, dst, src);
        } else if trying_sent && reply {
            self.validate(now, idx, src, dst);
        }
    }

    /// `bond_validate_arp` / `bond_validate_na`: the sender must be a
    /// target and the frame addressed to the bond.
    fn validate(&mut self, now: Instant, idx: usize, sender: IpAddr, to: IpAddr) {
        if sender.is_unspecified() {
            return;
        }
        let addressed = match to {
            IpAddr::V6(d) if d == ALL_NODES => true,
            _ => self.own.contains(&to),
        };
        if !addressed {
            return;
        }
        let Some(t) = self.cfg.targets.iter().position(|&x| x == sender) else {
            return;
        };
        let m = &mut self.members[idx];
        m.last_rx = now;
        m.target_rx[t] = now;
        m.last_valid = Some(now);
        m.valid += 1;
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_tick
    }

    /// Run the monitor if its interval is up.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_tick.is_none_or(|t| now < t) {
            return;
        }
        self.next_tick = Some(now + self.cfg.interval);
        if !self.members.iter().any(|m| m.present) {
            return;
        }
        if self.cfg.active_backup {
            self.active_backup_tick(now);
        } else {
            self.load_balance_tick(now);
        }
    }

    fn probe(&mut self, now: Instant, idx: usize) {
        let m = &mut self.members[idx];
        m.last_tx = now;
        m.probes += 1;
        self.probes.push_back(idx as MemberId);
    }

    fn go_down(&mut self, idx: usize) {
        let m = &mut self.members[idx];
        m.link = LinkState::Down;
        self.events.push_back(ArpEvent::Down(idx as MemberId));
    }

    fn go_up(&mut self, now: Instant, idx: usize) {
        let m = &mut self.members[idx];
        m.link = LinkState::Up;
        m.last_link_up = Some(now);
        self.events.push_back(ArpEvent::Up(idx as MemberId));
    }

    /// `bond_loadbalance_arp_mon`: a member is up while it both sent and
    /// received within an interval, down once either is older than
    /// `arp_missed_max` intervals; every member with carrier is probed.
    fn load_balance_tick(&mut self, now: Instant) {
        let mut reselect = false;
        let mut changes = Vec::new();
        for i in 0..self.members.len() {
            let m = &self.members[i];
            if !m.present {
                continue;
            }
            let (tx, rx) = (m.last_tx, m.last_rx);
            if m.link != LinkState::Up {
                if self.recent(now, tx, 1) && self.recent(now, rx, 1) {
                    changes.push((i, true));
                    reselect |= self.active.is_none();
                }
            } else if !self.recent(now, tx, self.cfg.missed_max)
                || !self.recent(now, rx, self.cfg.missed_max)
            {
                changes.push((i, false));
                reselect |= self.active == Some(i);
            }
            if self.members[i].carrier {
                self.probe(now, i);
            }
        }
        for (i, up) in changes {
            if up {
                self.go_up(now, i);
            } else {
                self.go_down(i);
            }
        }
        if reselect {
            self.events.push_back(ArpEvent::Reselect);
        }
    }

    /// `bond_ab_arp_inspect` + `bond_ab_arp_commit` + `bond_ab_arp_probe`.
    fn active_backup_tick(&mut self, now: Instant) {
        let missed = self.cfg.missed_max;
        let mut proposals = Vec::new();
        for i in 0..self.members.len() {
            let m = &self.members[i];
            if !m.present {
                continue;
            }
            let rx = self.last_rx(i);
            if m.link != LinkState::Up {
                if self.recent(now, rx, 1) {
                    proposals.push((i, LinkState::Up));
                } else if m.link == LinkState::Back {
                    proposals.push((i, LinkState::Fail));
                }
                continue;
            }
            // Two intervals of grace after coming up or becoming active.
            if m.last_link_up.is_some_and(|t| self.recent(now, t, 2)) {
                continue;
            }
            let active = self.is_active(i);
            // A backup goes down one interval later than the active member,
            // and not while a candidate is being tried.
            if !active && self.trying.is_none() && !self.recent(now, rx, missed + 1) {
                proposals.push((i, LinkState::Down));
            }
            if active && (!self.recent(now, m.last_tx, missed) || !self.recent(now, rx, missed)) {
                proposals.push((i, LinkState::Down));
            }
        }
        let mut reselect = false;
        for (i, to) in proposals {
            match to {
                LinkState::Up => {
                    if self.active != Some(i) {
                        self.trying = None;
                        self.go_up(now, i);
                        // The kernel reselects when there is no active member
                        // or this one is the primary; the bond decides the
                        // latter, so it is always asked.
                        reselect = true;
                    }
                }
                LinkState::Down => {
                    if self.members[i].link == LinkState::Down {
                        continue;
                    }
                    self.go_down(i);
                    if self.active == Some(i) {
                        self.trying = None;
                        reselect = true;
                    }
                }
                LinkState::Fail => {
                    self.members[i].link = LinkState::Fail;
                    if self.active.is_some() {
                        self.trying = None;
                    }
                }
                LinkState::Back => {}
            }
        }
        if reselect {
            self.events.push_back(ArpEvent::Reselect);
        }
        self.ab_probe(now);
    }

    /// Probe the active member; with none, try the next member with carrier
    /// after the last one tried (wrapping), marking it "going back".
    ///
    /// A member that came up in this round while there is no active member
    /// is the one the bond is about to choose (the kernel chooses it inside
    /// the commit, before probing): it is probed, and no other member is
    /// tried — trying it again would put it back to "going back".
    fn ab_probe(&mut self, now: Instant) {
        let chosen = self.active.or_else(|| {
            self.members
                .iter()
                .position(|m| m.present && m.link == LinkState::Up)
        });
        if let Some(a) = chosen {
            if self.members.get(a).is_some_and(|m| m.present) {
                self.probe(now, a);
                return;
            }
        }
        let Some(current) = self
            .trying
            .or_else(|| self.members.iter().position(|m| m.present))
        else {
            return;
        };
        let (mut before, mut after, mut found) = (None, None, false);
        for i in 0..self.members.len() {
            let m = &self.members[i];
            if !m.present {
                continue;
            }
            let usable = m.carrier;
            if !found && before.is_none() && usable {
                before = Some(i);
            }
            if found && after.is_none() && usable {
                after = Some(i);
            }
            // A member that lost carrier while up is taken down here.
            if !usable && m.link == LinkState::Up {
                self.go_down(i);
            }
            if i == current {
                found = true;
            }
        }
        let Some(next) = after.or(before) else { return };
        let m = &mut self.members[next];
        m.link = LinkState::Back;
        m.last_link_up = Some(now);
        self.trying = Some(next);
        self.probe(now, next);
    }

    pub fn poll_event(&mut self) -> Option<ArpEvent> {
        self.events.pop_front()
    }

    /// The next member to send probes out of (one frame per target).
    pub fn poll_probe(&mut self) -> Option<MemberId> {
        self.probes.pop_front()
    }
}

#[cfg(test)]
mod tests;
