//! Churn detection (802.1AX-2014 6.4.17, figures 6-23 and 6-24): flags a
//! port whose actor or partner does not reach synchronization within
//! Churn_Detection_Time. One machine, run once for each side.

use super::port::{Port, Timer, CHURN_DETECTION_TIME};
use std::time::Instant;
use xbond_dataplane::wire::lacp::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChurnState {
    /// ACTOR_CHURN_MONITOR / PARTNER_CHURN_MONITOR.
    Monitor,
    /// ACTOR_CHURN / PARTNER_CHURN.
    Churn,
    /// NO_ACTOR_CHURN / NO_PARTNER_CHURN.
    NoChurn,
}

impl ChurnState {
    /// The kernel's words in /proc/net/bonding (bond_3ad_churn_desc).
    pub fn proc_name(self) -> &'static str {
        match self {
            ChurnState::Monitor => "monitoring",
            ChurnState::Churn => "churned",
            ChurnState::NoChurn => "none",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Actor,
    Partner,
}

pub fn run(p: &mut Port, now: Instant, side: Side) -> bool {
    let (timer, in_sync) = match side {
        Side::Actor => (
            Timer::ActorChurn,
            p.actor.state.contains(State::SYNCHRONIZATION),
        ),
        Side::Partner => (
            Timer::PartnerChurn,
            p.partner.state.contains(State::SYNCHRONIZATION),
        ),
    };
    let state = match side {
        Side::Actor => p.actor_churn,
        Side::Partner => p.partner_churn,
    };
    let next = match state {
        // 6.4.17: "!port_enabled" restarts monitoring from any state.
        ChurnState::Churn | ChurnState::NoChurn if !p.enabled => ChurnState::Monitor,
        ChurnState::Monitor if !p.enabled => {
            // Keep monitoring; the timer restarts when the port comes up.
            p.timers.stop(timer);
            return false;
        }
        ChurnState::Monitor | ChurnState::Churn if in_sync => ChurnState::NoChurn,
        ChurnState::Monitor if !p.timers.running(timer) => {
            p.timers.start(timer, now + CHURN_DETECTION_TIME);
            return false;
        }
        ChurnState::Monitor if p.timers.expired(timer, now) => ChurnState::Churn,
        ChurnState::NoChurn if !in_sync => ChurnState::Monitor,
        _ => return false,
    };
    match next {
        ChurnState::Monitor => p.timers.start(timer, now + CHURN_DETECTION_TIME),
        ChurnState::Churn => match side {
            Side::Actor => p.actor_churn_count += 1,
            Side::Partner => p.partner_churn_count += 1,
        },
        ChurnState::NoChurn => p.timers.stop(timer),
    }
    match side {
        Side::Actor => p.actor_churn = next,
        Side::Partner => p.partner_churn = next,
    }
    true
}
