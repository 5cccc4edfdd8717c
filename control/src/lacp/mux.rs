//! The mux machine (802.1AX-2014 6.4.15): attaches the port to the
//! aggregator its selection chose and turns collecting and distributing on
//! and off — together (coupled control, figure 6-21) or one after the other
//! (independent control, figure 6-22, `coupled_control=0`).

use super::port::{Port, Selected, Timer, AGGREGATE_WAIT_TIME};
use std::time::Instant;
use xbond_dataplane::wire::lacp::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuxState {
    Detached,
    Waiting,
    Attached,
    /// Coupled control only.
    CollectingDistributing,
    /// Independent control only.
    Collecting,
    /// Independent control only.
    Distributing,
}

/// What the mux needs to know about the port's aggregator.
#[derive(Debug, Clone, Copy)]
pub struct Aggregation {
    /// 6.4.8 Ready: every port waiting for the aggregator has waited.
    pub ready: bool,
    /// The aggregator is the bond's active one: its ports may collect and
    /// distribute (the kernel's `is_active`).
    pub active: bool,
    pub coupled: bool,
}

pub fn run(p: &mut Port, now: Instant, agg: Aggregation) -> bool {
    let mut changed = false;
    for _ in 0..8 {
        let selected = p.selected == Selected::Selected;
        let partner_sync = p.partner_sync();
        let partner_collecting = p.partner.state.contains(State::COLLECTING);
        let next = match p.mux {
            // Figure 6-21. STANDBY is not used: a port whose aggregator is
            // not the active one waits in ATTACHED, out of sync, as in the
            // kernel.
            MuxState::Detached if selected => MuxState::Waiting,
            MuxState::Waiting if !selected => MuxState::Detached,
            MuxState::Waiting => {
                if p.timers.expired(Timer::WaitWhile, now) {
                    p.ready_n = true;
                    changed = true;
                }
                if selected && agg.ready && p.ready_n {
                    MuxState::Attached
                } else {
                    break;
                }
            }
            MuxState::Attached if !selected => MuxState::Detached,
            MuxState::Attached if partner_sync && agg.active => {
                if agg.coupled {
                    MuxState::CollectingDistributing
                } else {
                    MuxState::Collecting
                }
            }
            MuxState::Attached => {
                // The kernel keeps a port of an aggregator that is not (or no
                // longer) active out of sync, so its partner does not use it.
                let sync = p.actor.state.contains(State::SYNCHRONIZATION);
                if sync != agg.active {
                    p.set_actor(State::SYNCHRONIZATION, agg.active);
                    p.ntt = true;
                    changed = true;
                }
                break;
            }
            MuxState::CollectingDistributing if !selected || !partner_sync || !agg.active => {
                MuxState::Attached
            }
            MuxState::Collecting if !selected || !partner_sync || !agg.active => MuxState::Attached,
            MuxState::Collecting if partner_collecting => MuxState::Distributing,
            MuxState::Distributing
                if !selected || !partner_sync || !partner_collecting || !agg.active =>
            {
                MuxState::Collecting
            }
            _ => break,
        };
        enter(p, now, next, agg);
        changed = true;
    }
    changed
}

fn enter(p: &mut Port, now: Instant, s: MuxState, agg: Aggregation) {
    p.mux = s;
    let on = |p: &mut Port, f: State, v: bool| p.set_actor(f, v);
    match s {
        MuxState::Detached => {
            p.attached = false;
            on(p, State::SYNCHRONIZATION, false);
            on(p, State::COLLECTING, false);
            on(p, State::DISTRIBUTING, false);
            p.ready_n = false;
            p.timers.stop(Timer::WaitWhile);
            p.ntt = true;
        }
        MuxState::Waiting => {
            p.ready_n = false;
            p.timers.start(Timer::WaitWhile, now + AGGREGATE_WAIT_TIME);
        }
        MuxState::Attached => {
            p.attached = true;
            on(p, State::SYNCHRONIZATION, agg.active);
            on(p, State::COLLECTING, false);
            on(p, State::DISTRIBUTING, false);
            p.ntt = true;
        }
        MuxState::CollectingDistributing => {
            on(p, State::DISTRIBUTING, true);
            on(p, State::COLLECTING, true);
            p.ntt = true;
        }
        MuxState::Collecting => {
            on(p, State::COLLECTING, true);
            on(p, State::DISTRIBUTING, false);
            p.ntt = true;
        }
        MuxState::Distributing => {
            on(p, State::DISTRIBUTING, true);
        }
    }
}
