//! The control loop of one bond: it waits for the next deadline, a link
//! event, a frame from the data path or a call, hands each to the bond, and
//! carries out the actions the bond asks for.

use super::host::hidden_name;
use super::members::candidate;
use super::runtime::BondRuntime;
use crate::bond::Action;
use crate::netlink::{Link, LinkEvent};
use crossbeam::channel::{select, Receiver};
use std::time::{Duration, Instant};
use xbond_dataplane::snapshot::MemberId;
use xbond_dataplane::worker::{ControlFrame, Handover, Role};

impl BondRuntime {
    pub(super) fn run(&mut self, stop: Receiver<()>) {
        let miimon = self.core.miimon();
        let mut next_poll = (miimon > Duration::ZERO).then(|| Instant::now() + miimon);
        let mut next_sample = None;
        loop {
            // Receive counters are read four times per ARP interval: traffic
            // other than probe replies counts as of that reading. The
            // interval may change at runtime.
            let sample_every = self
                .core
                .arp_monitor()
                .map(|a| (a.config().interval / 4).max(Duration::from_millis(1)));
            let now = Instant::now();
            next_sample = sample_every.map(|d| next_sample.unwrap_or(now + d).min(now + d));
            let deadline = [self.core.next_deadline(), next_poll, next_sample]
                .into_iter()
                .flatten()
                .min();
            let timeout =
                deadline.map_or(Duration::from_secs(1), |d| d.saturating_duration_since(now));
            select! {
                recv(stop) -> _ => break,
                recv(self.events) -> ev => if let Ok(ev) = ev { self.link_event(ev) },
                recv(self.control) -> f => if let Ok(f) = f { self.control_frame(f) },
                recv(self.calls) -> c => if let Ok((req, reply)) = c { let r = self.call(req); let _ = reply.send(r); },
                default(timeout) => {}
            }
            let now = Instant::now();
            if let Some(t) = next_poll {
                if now >= t {
                    self.poll_carriers(now);
                    let miimon = self.core.miimon();
                    next_poll = (miimon > Duration::ZERO).then(|| now + miimon);
                }
            } else if self.core.miimon() > Duration::ZERO {
                next_poll = Some(now + self.core.miimon());
            }
            if let (Some(t), Some(every)) = (next_sample, sample_every) {
                if now >= t {
                    self.sample_rx(now);
                    next_sample = Some(now + every);
                }
            }
            if self.core.arp_deadline().is_some_and(|d| now >= d) {
                self.refresh_probe_sources();
                self.sample_rx(now);
            }
            if self.core.lb_deadline().is_some_and(|d| now >= d) {
                if let Some(e) = &self.engine {
                    self.core.set_tx_load(e.tx_load());
                }
            }
            self.core.handle_timeout(now);
            self.run_actions();
        }
    }

    /// Tell the ARP monitor which members received anything since the last
    /// look (their receive counters moved).
    pub(super) fn sample_rx(&mut self, now: Instant) {
        let Some(e) = &self.engine else { return };
        let mut totals = vec![0u64; usize::from(self.core.next_member_id())];
        for q in &e.queues {
            if let Role::Member(m) = q.role {
                if let Some(t) = totals.get_mut(usize::from(m)) {
                    *t += q
                        .counters
                        .rx_packets
                        .load(std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        self.rx_seen.resize(totals.len(), 0);
        for (m, total) in totals.into_iter().enumerate() {
            if total != self.rx_seen[m] {
                self.rx_seen[m] = total;
                self.core.handle_rx_activity(now, m as MemberId);
            }
        }
    }

    pub(super) fn link_event(&mut self, ev: LinkEvent) {
        let now = Instant::now();
        match ev {
            LinkEvent::Changed(l) => {
                let new = self.seen_links.insert(l.index);
                if let Some(id) = self.core.member_by_ifindex(l.index) {
                    self.core.handle_carrier(now, id, l.carrier);
                } else if self.missing.contains(&l.name) {
                    tracing::info!(bond = %self.core.name, "configured member {} appeared; enslaving it", l.name);
                    self.missing.retain(|m| *m != l.name);
                    if let Err(e) = self.add_member(&l.name) {
                        tracing::warn!(bond = %self.core.name, "could not enslave {}: {e:#}", l.name);
                    }
                } else if new && !self.selectors.is_empty() {
                    self.maybe_select(&l);
                }
            }
            LinkEvent::Removed { index, name } => {
                if self.core.member_by_ifindex(index).is_some() {
                    // As the kernel releases a slave that is unregistered;
                    // it is enslaved again if it comes back, as a configured
                    // member that appears.
                    tracing::warn!(bond = %self.core.name, "member {name} was deleted; releasing it");
                    if let Err(e) = self.remove_member(&name) {
                        tracing::warn!(bond = %self.core.name, "release {name}: {e:#}");
                    }
                    self.missing.push(name.clone());
                    self.core.note_missing(&name);
                } else if index == self.host_index {
                    tracing::error!(bond = %self.core.name, "host interface {name} was deleted under us");
                }
            }
        }
        self.run_actions();
    }

    /// A link that appeared: enslave it if a member selector matches and
    /// nothing else holds it.
    pub(super) fn maybe_select(&mut self, l: &Link) {
        if self.is_own_interface(&l.name) || self.reserved.iter().any(|r| r.name == l.name) {
            return;
        }
        let all = self.nl.links().unwrap_or_default();
        let c = candidate(l, &all);
        let Some(sel) = self.selectors.iter().find(|s| s.matches(&c)) else {
            return;
        };
        if let Some(m) = &c.master {
            tracing::warn!(bond = %self.core.name, "{} matches selector {sel} but is enslaved to {m}; leaving it", l.name);
            return;
        }
        tracing::info!(bond = %self.core.name, "{} appeared and matches selector {sel}; enslaving it", l.name);
        if let Err(e) = self.add_member(&l.name) {
            tracing::warn!(bond = %self.core.name, "could not enslave {}: {e:#}", l.name);
        }
    }

    pub(super) fn is_own_interface(&self, name: &str) -> bool {
        name == self.core.host_interface
            || name == hidden_name(&self.core.name)
            || self
                .vlans
                .iter()
                .any(|v| v.name == name || v.hidden == name)
    }

    pub(super) fn poll_carriers(&mut self, now: Instant) {
        let ids: Vec<(MemberId, u32)> =
            self.core.members().map(|(id, m)| (id, m.ifindex)).collect();
        for (id, index) in ids {
            match self.nl.link_by_index(index) {
                Ok(Some(l)) => self.core.handle_carrier(now, id, l.carrier),
                Ok(None) => self.core.handle_carrier(now, id, false),
                Err(e) => tracing::debug!("miimon poll: {e}"),
            }
        }
    }

    pub(super) fn control_frame(&mut self, f: ControlFrame) {
        let now = Instant::now();
        let bytes = f.bytes();
        match (f.from, f.why) {
            // 802.3ad runs slow-protocol frames through its machines; the
            // other modes count them.
            (Role::Member(m), Handover::SlowProtocol) => self.core.handle_slow_frame(now, m, bytes),
            (Role::Member(m), Handover::ProbeCopy) => self.core.handle_probe_frame(now, m, bytes),
            (Role::Host(vid), Handover::HostArp) => self.core.handle_host_frame(vid, bytes),
            (from, why) => {
                tracing::debug!(bond = %self.core.name, "{why:?} from {from:?}: not a handover control expects")
            }
        }
        self.run_actions();
    }

    pub(super) fn run_actions(&mut self) {
        while let Some(a) = self.core.poll_action() {
            match a {
                Action::Publish => {
                    if let Some(e) = &self.engine {
                        e.publish(self.snapshot());
                    }
                }
                Action::NotifyPeers { member } => self.notify_peers(member),
                Action::RejoinGroups { member } => self.rejoin_groups(member),
                Action::Probe { member } => self.send_probes(member),
                Action::SendFrame { member, frame } => {
                    if let Some(e) = &self.engine {
                        if !e.transmit(member, frame) {
                            tracing::debug!(bond = %self.core.name, "no worker took a control frame for member {member}");
                        }
                    }
                }
                Action::Carrier(up) => {
                    // A veth has no carrier switch of its own: the host
                    // interface loses carrier when its hidden peer is down.
                    if let Err(e) = self.nl.set_up(self.hidden_index, up) {
                        tracing::error!(bond = %self.core.name, "bond carrier {up}: {e}");
                    }
                    // VLAN interfaces follow the bond's carrier.
                    for v in &self.vlans {
                        if let Err(e) = self.nl.set_up(v.hidden_index, up) {
                            tracing::error!(bond = %self.core.name, "{} carrier {up}: {e}", v.name);
                        }
                    }
                }
                Action::SetBondMac(mac) => {
                    if let Err(e) = self.nl.set_mac(self.host_index, mac) {
                        tracing::error!(bond = %self.core.name, "fail_over_mac=active: {e}");
                    }
                }
            }
        }
    }
}
