//! One aggregation port's variables (802.1AX-2014 6.4.7–6.4.9) and its timer
//! table. The machines in the sibling files read and write these; nothing
//! here does I/O or reads the clock.

use super::churn::ChurnState;
use super::mux::MuxState;
use super::periodic::PeriodicState;
use super::rx::RxState;
use std::time::{Duration, Instant};
use xbond_dataplane::snapshot::MemberId;
use xbond_dataplane::wire::lacp::{PortInfo, State};
use xbond_dataplane::wire::MacAddr;

/// 802.1AX-2014 6.4.4: the protocol's constants.
pub const FAST_PERIODIC_TIME: Duration = Duration::from_secs(1);
pub const SLOW_PERIODIC_TIME: Duration = Duration::from_secs(30);
pub const SHORT_TIMEOUT_TIME: Duration = Duration::from_secs(3);
pub const LONG_TIMEOUT_TIME: Duration = Duration::from_secs(90);
pub const CHURN_DETECTION_TIME: Duration = Duration::from_secs(60);
pub const AGGREGATE_WAIT_TIME: Duration = Duration::from_secs(2);
/// 6.4.16: at most this many LACPDUs in any FAST_PERIODIC_TIME.
pub const MAX_TX_PER_PERIOD: usize = 3;

/// The kernel's default port priority (`ad_actor_port_prio`).
pub const DEFAULT_PORT_PRIORITY: u16 = 0xff;

/// The port's timers, one slot each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    CurrentWhile,
    Periodic,
    WaitWhile,
    ActorChurn,
    PartnerChurn,
}

const TIMERS: usize = 5;

#[derive(Debug, Clone, Default)]
pub struct Timers([Option<Instant>; TIMERS]);

impl Timers {
    pub fn start(&mut self, t: Timer, at: Instant) {
        self.0[t as usize] = Some(at);
    }

    pub fn stop(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }

    pub fn running(&self, t: Timer) -> bool {
        self.0[t as usize].is_some()
    }

    /// True once when the timer has run out; the timer stops.
    pub fn expired(&mut self, t: Timer, now: Instant) -> bool {
        match self.0[t as usize] {
            Some(at) if at <= now => {
                self.0[t as usize] = None;
                true
            }
            _ => false,
        }
    }

    pub fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
}

/// 6.4.8 `Selected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selected {
    Unselected,
    Selected,
}

/// The system this bond speaks for (802.1AX-2014 6.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct System {
    pub priority: u16,
    pub mac: MacAddr,
}

/// LACPDU and marker counters of one port (802.1AX-2014 7.3.3, the ones the
/// kernel and `xbond stats` report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortCounters {
    pub lacpdu_rx: u64,
    pub lacpdu_tx: u64,
    pub marker_rx: u64,
    pub marker_response_tx: u64,
    /// Slow-protocol frames of a subtype this bond does not speak.
    pub unknown_rx: u64,
    /// LACPDUs and marker PDUs that do not parse.
    pub illegal_rx: u64,
    /// LACPDUs carrying this bond's own system id (a loop).
    pub looped_rx: u64,
}

#[derive(Debug, Clone)]
pub struct Port {
    pub id: MemberId,
    /// The member's address: LACPDUs leave with it as source.
    pub mac: MacAddr,
    /// Carrier (the standard's port_enabled).
    pub enabled: bool,
    /// Full duplex: LACP runs on the port (else it is an individual link).
    pub lacp_enabled: bool,
    /// Speed in Mb/s for the key and ad_select=bandwidth.
    pub speed: u32,
    pub actor: PortInfo,
    pub partner: PortInfo,
    pub partner_admin: PortInfo,
    pub selected: Selected,
    /// The aggregator (index) the selection logic chose.
    pub aggregator: Option<usize>,
    /// The mux is attached to `aggregator`.
    pub attached: bool,
    /// The wait_while timer ran out in WAITING (6.4.8 Ready_N).
    pub ready_n: bool,
    pub ntt: bool,
    pub rx: RxState,
    pub periodic: PeriodicState,
    pub mux: MuxState,
    pub actor_churn: ChurnState,
    pub partner_churn: ChurnState,
    pub actor_churn_count: u32,
    pub partner_churn_count: u32,
    pub timers: Timers,
    /// When the last LACPDUs left, for the transmit limit.
    pub sent: [Option<Instant>; MAX_TX_PER_PERIOD],
    /// Our own PDU came back on this port.
    pub looped: bool,
    pub counters: PortCounters,
}

impl Port {
    pub fn new(
        id: MemberId,
        mac: MacAddr,
        system: System,
        priority: u16,
        key: u16,
        active: bool,
        fast: bool,
    ) -> Port {
        let mut state = State::AGGREGATION | State::DEFAULTED;
        state.set(State::ACTIVITY, active);
        state.set(State::TIMEOUT, fast);
        let actor = PortInfo {
            system_priority: system.priority,
            system: system.mac,
            key,
            port_priority: priority,
            // Port numbers start at 1; the member id is stable for life.
            port: id.wrapping_add(1),
            state,
        };
        // The kernel's administrative partner defaults, except the state:
        // the kernel's says "active", which keeps a passive port talking to
        // nobody; a defaulted partner here is passive, so `lacp_active=off`
        // speaks only when spoken to.
        let partner_admin = PortInfo {
            system_priority: 0xffff,
            system: MacAddr::ZERO,
            key: 1,
            port_priority: 0xff,
            port: 1,
            state: State::empty(),
        };
        Port {
            id,
            mac,
            enabled: false,
            lacp_enabled: true,
            speed: 0,
            actor,
            partner: partner_admin,
            partner_admin,
            selected: Selected::Unselected,
            aggregator: None,
            attached: false,
            ready_n: false,
            // BEGIN enters DETACHED, which sets NTT: the first LACPDU leaves
            // at once rather than a periodic time later.
            ntt: true,
            rx: RxState::Initialize,
            periodic: PeriodicState::NoPeriodic,
            mux: MuxState::Detached,
            actor_churn: ChurnState::Monitor,
            partner_churn: ChurnState::Monitor,
            actor_churn_count: 0,
            partner_churn_count: 0,
            timers: Timers::default(),
            sent: [None; MAX_TX_PER_PERIOD],
            looped: false,
            counters: PortCounters::default(),
        }
    }

    /// The partner's LACP_Activity or ours is active: someone talks.
    pub fn someone_active(&self) -> bool {
        self.actor.state.contains(State::ACTIVITY) || self.partner.state.contains(State::ACTIVITY)
    }

    /// The link cannot join others: the partner says it is individual, or
    /// LACP does not run on it.
    pub fn individual(&self) -> bool {
        !self.partner.state.contains(State::AGGREGATION) || !self.lacp_enabled
    }

    pub fn set_actor(&mut self, flag: State, on: bool) {
        self.actor.state.set(flag, on);
    }

    pub fn partner_sync(&self) -> bool {
        self.partner.state.contains(State::SYNCHRONIZATION)
    }
}

/// The fields that identify a port's link partner (802.1AX-2014 6.4.9
/// update_Selected): everything but the state, except its aggregation bit.
pub fn same_partner(a: &PortInfo, b: &PortInfo) -> bool {
    a.port == b.port
        && a.port_priority == b.port_priority
        && a.system == b.system
        && a.system_priority == b.system_priority
        && a.key == b.key
        && a.state.contains(State::AGGREGATION) == b.state.contains(State::AGGREGATION)
}

/// The kernel's operational key: `ad_user_port_key` in bits 6–15, a speed
/// code in bits 1–5, full duplex in bit 0.
pub fn oper_key(user_key: u16, speed_mbps: u32, full_duplex: bool) -> u16 {
    let code: u16 = match speed_mbps {
        1 => 1,
        10 => 2,
        100 => 3,
        1000 => 4,
        2500 => 5,
        5000 => 6,
        10000 => 7,
        14000 => 8,
        20000 => 9,
        25000 => 10,
        40000 => 11,
        50000 => 12,
        56000 => 13,
        100000 => 14,
        200000 => 15,
        400000 => 16,
        800000 => 17,
        _ => 0,
    };
    (user_key << 6) | (code << 1) | u16::from(full_duplex)
}
