//! The receive machine (802.1AX-2014 6.4.12, figure 6-18): takes each
//! LACPDU in, records what the partner says, and times the partner out.

use super::port::{same_partner, Port, Selected, Timer, LONG_TIMEOUT_TIME, SHORT_TIMEOUT_TIME};
use std::time::Instant;
use xbond_dataplane::wire::lacp::{Repr, State};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxState {
    Initialize,
    PortDisabled,
    Expired,
    LacpDisabled,
    Defaulted,
    Current,
}

/// What drives the machine besides its own conditions.
#[derive(Debug, Clone, Copy)]
pub enum RxInput<'a> {
    /// Re-evaluate conditions and timers.
    Tick,
    /// A LACPDU was received on the port.
    Pdu(&'a Repr),
}

/// Run the machine until it rests; true when anything changed.
pub fn run(p: &mut Port, now: Instant, input: RxInput) -> bool {
    let mut pdu = match input {
        RxInput::Pdu(r) => Some(r),
        RxInput::Tick => None,
    };
    let mut changed = false;
    loop {
        let next = match (p.rx, pdu.take()) {
            // 6.4.12: "!port_enabled && !port_moved" leaves every state but
            // the two that the port starts from.
            (s, _) if !p.enabled && !matches!(s, RxState::PortDisabled | RxState::Initialize) => {
                RxState::PortDisabled
            }
            (RxState::Initialize, _) => RxState::PortDisabled,
            (RxState::PortDisabled, _) if p.enabled && p.lacp_enabled => RxState::Expired,
            (RxState::PortDisabled, _) if p.enabled => RxState::LacpDisabled,
            (RxState::LacpDisabled, _) if p.lacp_enabled => RxState::PortDisabled,
            // A LACPDU in EXPIRED, DEFAULTED or CURRENT enters CURRENT.
            (RxState::Expired | RxState::Defaulted | RxState::Current, Some(r)) => {
                enter_current(p, now, r);
                changed = true;
                continue;
            }
            (RxState::Expired, None) if p.timers.expired(Timer::CurrentWhile, now) => {
                RxState::Defaulted
            }
            (RxState::Current, None) if p.timers.expired(Timer::CurrentWhile, now) => {
                RxState::Expired
            }
            _ => break,
        };
        enter(p, now, next);
        changed = true;
    }
    changed
}

fn enter(p: &mut Port, now: Instant, s: RxState) {
    p.rx = s;
    match s {
        RxState::Initialize => {
            p.selected = Selected::Unselected;
            record_default(p);
            p.set_actor(State::EXPIRED, false);
        }
        RxState::PortDisabled => {
            p.partner.state.remove(State::SYNCHRONIZATION);
            p.timers.stop(Timer::CurrentWhile);
        }
        RxState::Expired => {
            // 6.4.12: the partner is asked to speak fast while we wait.
            p.partner.state.remove(State::SYNCHRONIZATION);
            p.partner.state.insert(State::TIMEOUT);
            p.timers
                .start(Timer::CurrentWhile, now + SHORT_TIMEOUT_TIME);
            p.set_actor(State::EXPIRED, true);
        }
        RxState::LacpDisabled => {
            p.selected = Selected::Unselected;
            record_default(p);
            p.partner.state.remove(State::AGGREGATION);
            p.set_actor(State::EXPIRED, false);
        }
        RxState::Defaulted => {
            // update_Default_Selected, then recordDefault.
            if !same_partner(&p.partner_admin, &p.partner) {
                p.selected = Selected::Unselected;
            }
            record_default(p);
            p.set_actor(State::EXPIRED, false);
            p.looped = false;
        }
        RxState::Current => unreachable!("CURRENT is entered with a PDU"),
    }
}

fn enter_current(p: &mut Port, now: Instant, r: &Repr) {
    p.rx = RxState::Current;
    // update_Selected (6.4.9): a different partner means a new selection.
    if !same_partner(&r.actor, &p.partner) {
        p.selected = Selected::Unselected;
    }
    // update_NTT: the partner's view of us is out of date.
    let mask = State::ACTIVITY | State::TIMEOUT | State::SYNCHRONIZATION | State::AGGREGATION;
    let mine = &p.actor;
    let theirs = &r.partner;
    if theirs.port != mine.port
        || theirs.port_priority != mine.port_priority
        || theirs.system != mine.system
        || theirs.system_priority != mine.system_priority
        || theirs.key != mine.key
        || theirs.state & mask != mine.state & mask
    {
        p.ntt = true;
    }
    record_pdu(p, r);
    let timeout = if p.actor.state.contains(State::TIMEOUT) {
        SHORT_TIMEOUT_TIME
    } else {
        LONG_TIMEOUT_TIME
    };
    p.timers.start(Timer::CurrentWhile, now + timeout);
    p.set_actor(State::EXPIRED, false);
    p.looped = false;
}

/// recordPDU (6.4.9).
fn record_pdu(p: &mut Port, r: &Repr) {
    let matched =
        (same_partner(&r.partner, &p.actor)) || !r.actor.state.contains(State::AGGREGATION);
    p.partner = r.actor;
    p.set_actor(State::DEFAULTED, false);
    let sync = matched && r.actor.state.contains(State::SYNCHRONIZATION) && p.someone_active();
    p.partner.state.set(State::SYNCHRONIZATION, sync);
}

/// recordDefault (6.4.9).
fn record_default(p: &mut Port) {
    p.partner = p.partner_admin;
    p.set_actor(State::DEFAULTED, true);
}
