//! 802.3ad / IEEE 802.1AX Link Aggregation Control Protocol, sans-IO: the
//! receive, periodic transmission, mux, transmit and churn machines of every
//! port, the selection logic with its aggregators, and the marker responder.
//! The caller passes frames, carrier changes and the time in, and takes
//! frames to send, events and the next deadline out (quinn-proto style); it
//! never blocks and never reads the clock.

pub mod churn;
pub mod mux;
pub mod periodic;
pub mod port;
pub mod rx;
pub mod select;
pub mod tx;

#[cfg(test)]
mod tests;

use port::{oper_key, Port, PortCounters, Selected, System};
use select::Aggregator;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use xbond_dataplane::named_enum;
use xbond_dataplane::snapshot::MemberId;
use xbond_dataplane::wire::lacp::{self as wire, PortInfo, State};
use xbond_dataplane::wire::{marker, MacAddr};

named_enum!(
    /// `ad_select`: how the aggregator that carries traffic is chosen.
    AdSelect { Stable = ("stable", 0), Bandwidth = ("bandwidth", 1), Count = ("count", 2) } default Stable);

/// The bond-wide LACP settings (the kernel's options of the same names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LacpConfig {
    /// `ad_actor_sys_prio` and `ad_actor_system` (else the bond MAC).
    pub system: System,
    /// `lacp_active`: send LACPDUs unprompted.
    pub active: bool,
    /// `lacp_rate=fast`: ask the partner for a LACPDU every second.
    pub fast: bool,
    pub ad_select: AdSelect,
    /// `coupled_control`.
    pub coupled: bool,
    /// `ad_user_port_key`.
    pub user_key: u16,
    pub min_links: u32,
    /// `lacp_fallback=active-backup`: after this long without any partner,
    /// the bond runs as active-backup until a partner speaks.
    pub fallback_after: Option<Duration>,
}

impl LacpConfig {
    /// The kernel's defaults for `system`: active, slow rate, ad_select
    /// stable, coupled control, key 0, no min_links, no fallback.
    pub fn new(system: System) -> LacpConfig {
        LacpConfig {
            system,
            active: true,
            fast: false,
            ad_select: AdSelect::Stable,
            coupled: true,
            user_key: 0,
            min_links: 0,
            fallback_after: None,
        }
    }
}

/// A frame LACP wants sent out of a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub member: MemberId,
    /// The member's own address, the frame's source.
    pub src: MacAddr,
    pub pdu: Pdu,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pdu {
    Lacp(wire::Repr),
    Marker(marker::Repr),
}

impl Outgoing {
    pub fn frame(&self) -> Vec<u8> {
        match &self.pdu {
            Pdu::Lacp(r) => r.frame(self.src),
            Pdu::Marker(r) => r.frame(self.src),
        }
    }
}

/// What happened that the bond reports or acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LacpEvent {
    /// The bond's carrier (an active aggregator with at least `min_links`
    /// ports with carrier).
    Carrier(bool),
    /// The active aggregator changed (its id).
    ActiveAggregator(Option<u16>),
    /// A LACPDU with this bond's own system id arrived on the member.
    Looped(MemberId),
    /// No partner answered for `fallback_after` (true), or one spoke again.
    Fallback(bool),
    /// A member started or stopped distributing.
    Distributing { member: MemberId, on: bool },
}

#[derive(Debug)]
pub struct Lacp {
    cfg: LacpConfig,
    ports: Vec<Option<Port>>,
    aggs: Vec<Option<Aggregator>>,
    active: Option<usize>,
    carrier: bool,
    fallback: bool,
    /// Since when no port has heard a partner.
    silent_since: Option<Instant>,
    out: VecDeque<Outgoing>,
    events: VecDeque<LacpEvent>,
    /// The distributing members when events were last reported.
    reported: Vec<MemberId>,
}

/// The bond's 802.3ad state, for `xbond status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LacpStatus {
    pub lacp_active: bool,
    pub lacp_rate: String,
    pub min_links: u32,
    pub ad_select: String,
    pub system_priority: u16,
    pub system_mac: String,
    pub active_aggregator: Option<AggregatorStatus>,
    /// Running as active-backup because no partner answered.
    pub fallback: bool,
    pub carrier: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AggregatorStatus {
    pub id: u16,
    pub ports: u32,
    pub actor_key: u16,
    pub partner_key: u16,
    pub partner_mac: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortStatus {
    pub aggregator_id: Option<u16>,
    pub actor_churn_state: String,
    pub partner_churn_state: String,
    pub actor_churned_count: u32,
    pub partner_churned_count: u32,
    pub actor: PduDetails,
    pub partner: PduDetails,
    pub collecting: bool,
    pub distributing: bool,
    pub rx_state: String,
    pub mux_state: String,
    pub looped: bool,
    pub counters: PortCounters,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PduDetails {
    pub system_priority: u16,
    pub system_mac: String,
    pub key: u16,
    pub port_priority: u16,
    pub port_number: u16,
    pub port_state: u8,
    pub state_flags: Vec<String>,
}

impl From<&PortInfo> for PduDetails {
    fn from(i: &PortInfo) -> Self {
        PduDetails {
            system_priority: i.system_priority,
            system_mac: i.system.to_string(),
            key: i.key,
            port_priority: i.port_priority,
            port_number: i.port,
            port_state: i.state.bits(),
            state_flags: i.state.names().into_iter().map(String::from).collect(),
        }
    }
}

/// Aggregator ids start at 1, one per member slot.
fn agg_id(index: usize) -> u16 {
    index as u16 + 1
}

impl Lacp {
    pub fn new(cfg: LacpConfig) -> Lacp {
        Lacp {
            cfg,
            ports: Vec::new(),
            aggs: Vec::new(),
            active: None,
            carrier: false,
            fallback: false,
            silent_since: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
            reported: Vec::new(),
        }
    }

    pub fn config(&self) -> &LacpConfig {
        &self.cfg
    }

    /// A new member (its id is its slot; ids are never reused).
    #[allow(clippy::too_many_arguments)]
    pub fn add_port(
        &mut self,
        now: Instant,
        id: MemberId,
        mac: MacAddr,
        priority: u16,
        carrier: bool,
        speed: Option<u32>,
        full_duplex: Option<bool>,
    ) {
        let i = id as usize;
        if self.ports.len() <= i {
            self.ports.resize_with(i + 1, || None);
            self.aggs.resize(i + 1, None);
        }
        let c = &self.cfg;
        let mut p = Port::new(id, mac, c.system, priority, 0, c.active, c.fast);
        set_link(&mut p, c.user_key, carrier, speed, full_duplex);
        self.ports[i] = Some(p);
        if self.silent_since.is_none() {
            self.silent_since = Some(now);
        }
        self.step(now);
    }

    /// A member leaves the bond: ports attached to its aggregator select
    /// again.
    pub fn remove_port(&mut self, now: Instant, id: MemberId) {
        let i = id as usize;
        if self.ports.get_mut(i).and_then(Option::take).is_none() {
            return;
        }
        for p in self.ports.iter_mut().flatten() {
            if p.aggregator == Some(i) {
                p.selected = Selected::Unselected;
            }
        }
        select::forget_empty(&self.ports, &mut self.aggs);
        self.step(now);
    }

    /// Carrier, speed or duplex of a member changed. Carrier loss takes it
    /// out of distribution at once (receive machine to PORT_DISABLED, mux
    /// out of COLLECTING_DISTRIBUTING) instead of after the timeout.
    pub fn handle_link(
        &mut self,
        now: Instant,
        id: MemberId,
        carrier: bool,
        speed: Option<u32>,
        full_duplex: Option<bool>,
    ) {
        let key = self.cfg.user_key;
        let Some(p) = self.port_mut(id) else { return };
        let old_key = p.actor.key;
        let came_up = carrier && !p.enabled;
        set_link(p, key, carrier, speed, full_duplex);
        if came_up {
            // Speak at once on a link that is back instead of a periodic
            // time later: the partner learns of us within a round trip.
            p.ntt = true;
        }
        if p.actor.key != old_key {
            // A new key is a new aggregation (the kernel's ad_update_actor_keys).
            p.selected = Selected::Unselected;
            p.ntt = true;
        }
        self.step(now);
    }

    /// A slow-protocol frame (whole Ethernet frame) received on a member.
    /// Frames that do not parse are counted as illegal and dropped.
    pub fn handle_frame(&mut self, now: Instant, id: MemberId, frame: &[u8]) {
        let system = self.cfg.system;
        let Some(p) = self.port_mut(id) else { return };
        let Some(payload) = frame.get(14..) else {
            p.counters.illegal_rx += 1;
            return;
        };
        match payload.first() {
            Some(&wire::SUBTYPE_LACP) => {
                match wire::Repr::parse(&wire::Packet::new_unchecked(payload)) {
                    Ok(r) => {
                        p.counters.lacpdu_rx += 1;
                        if r.actor.system == system.mac
                            && r.actor.system_priority == system.priority
                        {
                            // Our own PDU came back: a loop, never a partner.
                            p.counters.looped_rx += 1;
                            if !p.looped {
                                p.looped = true;
                                p.selected = Selected::Unselected;
                                self.events.push_back(LacpEvent::Looped(id));
                            }
                        } else if p.lacp_enabled {
                            rx::run(p, now, rx::RxInput::Pdu(&r));
                        }
                    }
                    Err(_) => p.counters.illegal_rx += 1,
                }
            }
            Some(&marker::SUBTYPE_MARKER) => {
                match marker::Repr::parse(&marker::Packet::new_unchecked(payload)) {
                    Ok(r) => {
                        p.counters.marker_rx += 1;
                        // Marker responder (802.1AX-2014 6.5.4.2): answer every
                        // Marker Information PDU with the same fields.
                        if r.kind == marker::Kind::Information {
                            p.counters.marker_response_tx += 1;
                            let (member, src) = (p.id, p.mac);
                            self.out.push_back(Outgoing {
                                member,
                                src,
                                pdu: Pdu::Marker(r.response()),
                            });
                        }
                    }
                    Err(_) => p.counters.illegal_rx += 1,
                }
            }
            _ => p.counters.unknown_rx += 1,
        }
        self.step(now);
    }

    /// `lacp_rate` changed: every port tells its partner at once.
    pub fn set_fast(&mut self, now: Instant, fast: bool) {
        self.cfg.fast = fast;
        for p in self.ports.iter_mut().flatten() {
            p.set_actor(State::TIMEOUT, fast);
            p.ntt = true;
        }
        self.step(now);
    }

    pub fn set_min_links(&mut self, now: Instant, min_links: u32) {
        self.cfg.min_links = min_links;
        self.step(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.step(now);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let timers = self.ports.iter().flatten().filter_map(|p| p.timers.next());
        let limited = self
            .ports
            .iter()
            .flatten()
            .filter(|p| p.ntt)
            .filter_map(tx::next_slot);
        let fallback = match (self.cfg.fallback_after, self.silent_since, self.fallback) {
            (Some(after), Some(since), false) => Some(since + after),
            _ => None,
        };
        timers.chain(limited).chain(fallback).min()
    }

    pub fn poll_transmit(&mut self) -> Option<Outgoing> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<LacpEvent> {
        self.events.pop_front()
    }

    /// The members the TX scheduler hashes over, in the bond's order.
    pub fn distributing(&self) -> Vec<MemberId> {
        if !self.carrier {
            return Vec::new();
        }
        self.ports
            .iter()
            .flatten()
            .filter(|p| self.carries(p, State::DISTRIBUTING))
            .map(|p| p.id)
            .collect()
    }

    /// Frames received on this member reach the host.
    pub fn collecting(&self, id: MemberId) -> bool {
        self.port(id)
            .is_some_and(|p| self.carries(p, State::COLLECTING))
    }

    /// A port carries traffic when its mux says so, or — as the kernel
    /// enables the ports of an active aggregator whose partner never
    /// answered — when its aggregator is active and has no partner.
    fn carries(&self, p: &Port, flag: State) -> bool {
        if !p.enabled || p.aggregator.is_none() || p.aggregator != self.active {
            return false;
        }
        let no_partner = self
            .active
            .and_then(|a| self.aggs[a])
            .is_some_and(|a| !a.has_partner());
        p.actor.state.contains(flag) || (no_partner && p.attached)
    }

    pub fn carrier(&self) -> bool {
        self.carrier
    }

    /// Running as active-backup because no partner answered.
    pub fn in_fallback(&self) -> bool {
        self.fallback
    }

    fn port(&self, id: MemberId) -> Option<&Port> {
        self.ports.get(id as usize).and_then(|p| p.as_ref())
    }

    fn port_mut(&mut self, id: MemberId) -> Option<&mut Port> {
        self.ports.get_mut(id as usize).and_then(|p| p.as_mut())
    }

    /// Run every machine until none changes, then transmit what is due.
    fn step(&mut self, now: Instant) {
        for _ in 0..16 {
            let mut changed = false;
            for p in self.ports.iter_mut().flatten() {
                changed |= rx::run(p, now, rx::RxInput::Tick);
                changed |= periodic::run(p, now);
            }
            changed |= select::select_ports(&mut self.ports, &mut self.aggs);
            let active =
                select::choose_active(&self.ports, &self.aggs, self.active, self.cfg.ad_select);
            if active != self.active {
                self.active = active;
                self.events
                    .push_back(LacpEvent::ActiveAggregator(active.map(agg_id)));
                changed = true;
            }
            for i in 0..self.ports.len() {
                let Some(agg) = self.ports[i].as_ref().map(|p| p.aggregator) else {
                    continue;
                };
                // 6.4.8 Ready: every port waiting for the aggregator has waited.
                let ready = agg.is_some_and(|a| {
                    self.ports.iter().flatten().all(|q| {
                        q.aggregator != Some(a) || q.mux != mux::MuxState::Waiting || q.ready_n
                    })
                });
                let ctx = mux::Aggregation {
                    ready,
                    active: agg.is_some() && self.active == agg,
                    coupled: self.cfg.coupled,
                };
                if let Some(p) = &mut self.ports[i] {
                    changed |= mux::run(p, now, ctx);
                }
            }
            for p in self.ports.iter_mut().flatten() {
                changed |= churn::run(p, now, churn::Side::Actor);
                changed |= churn::run(p, now, churn::Side::Partner);
            }
            if !changed {
                break;
            }
        }
        for p in self.ports.iter_mut().flatten() {
            if let Some(r) = tx::run(p, now) {
                self.out.push_back(Outgoing {
                    member: p.id,
                    src: p.mac,
                    pdu: Pdu::Lacp(r),
                });
            }
        }
        self.update_carrier();
        self.update_fallback(now);
        let now_on = self.distributing();
        for &m in self.reported.iter().filter(|m| !now_on.contains(m)) {
            self.events.push_back(LacpEvent::Distributing {
                member: m,
                on: false,
            });
        }
        for &m in now_on.iter().filter(|m| !self.reported.contains(m)) {
            self.events.push_back(LacpEvent::Distributing {
                member: m,
                on: true,
            });
        }
        self.reported = now_on;
    }

    fn update_carrier(&mut self) {
        let n = self
            .active
            .map_or(0, |a| select::active_ports(&self.ports, a).0);
        let up = n > 0 && n >= self.cfg.min_links;
        if up != self.carrier {
            self.carrier = up;
            self.events.push_back(LacpEvent::Carrier(up));
        }
    }

    fn update_fallback(&mut self, now: Instant) {
        let heard = self
            .ports
            .iter()
            .flatten()
            .any(|p| p.enabled && p.rx == rx::RxState::Current);
        if heard {
            self.silent_since = None;
            if self.fallback {
                self.fallback = false;
                self.events.push_back(LacpEvent::Fallback(false));
            }
            return;
        }
        let since = *self.silent_since.get_or_insert(now);
        if let Some(after) = self.cfg.fallback_after {
            if !self.fallback && now >= since + after {
                self.fallback = true;
                self.events.push_back(LacpEvent::Fallback(true));
            }
        }
    }

    pub fn status(&self) -> LacpStatus {
        let c = &self.cfg;
        LacpStatus {
            lacp_active: c.active,
            lacp_rate: if c.fast { "fast" } else { "slow" }.into(),
            min_links: c.min_links,
            ad_select: c.ad_select.name().into(),
            system_priority: c.system.priority,
            system_mac: c.system.mac.to_string(),
            active_aggregator: self.active.and_then(|a| {
                let agg = self.aggs[a]?;
                Some(AggregatorStatus {
                    id: agg_id(a),
                    ports: self
                        .ports
                        .iter()
                        .flatten()
                        .filter(|p| p.aggregator == Some(a))
                        .count() as u32,
                    actor_key: agg.actor_key,
                    partner_key: agg.partner_key,
                    partner_mac: agg.partner_system.to_string(),
                })
            }),
            fallback: self.fallback,
            carrier: self.carrier,
        }
    }

    pub fn port_status(&self, id: MemberId) -> Option<PortStatus> {
        let p = self.port(id)?;
        Some(PortStatus {
            aggregator_id: p.aggregator.map(agg_id),
            actor_churn_state: p.actor_churn.proc_name().into(),
            partner_churn_state: p.partner_churn.proc_name().into(),
            actor_churned_count: p.actor_churn_count,
            partner_churned_count: p.partner_churn_count,
            actor: (&p.actor).into(),
            partner: (&p.partner).into(),
            collecting: self.carries(p, State::COLLECTING),
            distributing: self.carries(p, State::DISTRIBUTING),
            rx_state: format!("{:?}", p.rx),
            mux_state: format!("{:?}", p.mux),
            looped: p.looped,
            counters: p.counters,
        })
    }

    pub fn counters(&self, id: MemberId) -> Option<PortCounters> {
        self.port(id).map(|p| p.counters)
    }
}

/// Carrier, speed and duplex into the port's variables and key.
fn set_link(
    p: &mut Port,
    user_key: u16,
    carrier: bool,
    speed: Option<u32>,
    full_duplex: Option<bool>,
) {
    p.enabled = carrier;
    p.speed = speed.unwrap_or(0);
    // A link whose duplex is unknown is taken as full (veth reports full);
    // half duplex runs without LACP, as an individual link.
    let full = full_duplex.unwrap_or(true);
    p.lacp_enabled = full;
    p.set_actor(State::AGGREGATION, full);
    p.actor.key = oper_key(user_key, p.speed, full);
}
