//! The periodic transmission machine (802.1AX-2014 6.4.13, figure 6-19):
//! sends a LACPDU every second or every 30 seconds, as the partner's
//! timeout bit asks, and nothing when neither side is active.

use super::port::{Port, Timer, FAST_PERIODIC_TIME, SLOW_PERIODIC_TIME};
use super::rx::RxState;
use std::time::Instant;
use xbond_dataplane::wire::lacp::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodicState {
    NoPeriodic,
    FastPeriodic,
    SlowPeriodic,
    PeriodicTx,
}

pub fn run(p: &mut Port, now: Instant) -> bool {
    let mut changed = false;
    loop {
        let partner_fast = p.partner.state.contains(State::TIMEOUT);
        // The global transition: LACP off on the port, no carrier, or both
        // sides passive.
        let quiet =
            !p.enabled || !p.lacp_enabled || p.rx == RxState::LacpDisabled || !p.someone_active();
        let next = match p.periodic {
            s if quiet => {
                if s == PeriodicState::NoPeriodic {
                    break;
                }
                PeriodicState::NoPeriodic
            }
            PeriodicState::NoPeriodic => PeriodicState::FastPeriodic,
            PeriodicState::FastPeriodic if !partner_fast => PeriodicState::SlowPeriodic,
            PeriodicState::FastPeriodic if p.timers.expired(Timer::Periodic, now) => {
                PeriodicState::PeriodicTx
            }
            // 6.4.13: a partner that turns to short timeout is served at once.
            PeriodicState::SlowPeriodic if partner_fast => PeriodicState::PeriodicTx,
            PeriodicState::SlowPeriodic if p.timers.expired(Timer::Periodic, now) => {
                PeriodicState::PeriodicTx
            }
            PeriodicState::PeriodicTx if partner_fast => PeriodicState::FastPeriodic,
            PeriodicState::PeriodicTx => PeriodicState::SlowPeriodic,
            _ => break,
        };
        p.periodic = next;
        changed = true;
        match next {
            PeriodicState::NoPeriodic => p.timers.stop(Timer::Periodic),
            PeriodicState::FastPeriodic => {
                p.timers.start(Timer::Periodic, now + FAST_PERIODIC_TIME)
            }
            PeriodicState::SlowPeriodic => {
                p.timers.start(Timer::Periodic, now + SLOW_PERIODIC_TIME)
            }
            PeriodicState::PeriodicTx => p.ntt = true,
        }
    }
    changed
}
