//! The transmit machine (802.1AX-2014 6.4.16): sends a LACPDU when NTT is
//! set, never more than three in any FAST_PERIODIC_TIME, and nothing while
//! the periodic machine is in NO_PERIODIC (a passive port that nobody
//! talks to stays silent).

use super::periodic::PeriodicState;
use super::port::{Port, FAST_PERIODIC_TIME};
use std::time::Instant;
use xbond_dataplane::wire::lacp::Repr;

/// When the rate limit lets the next LACPDU out, if it holds one back.
pub fn next_slot(p: &Port) -> Option<Instant> {
    if p.sent.iter().all(Option::is_some) {
        p.sent
            .iter()
            .flatten()
            .min()
            .map(|t| *t + FAST_PERIODIC_TIME)
    } else {
        None
    }
}

pub fn run(p: &mut Port, now: Instant) -> Option<Repr> {
    if !p.ntt || p.periodic == PeriodicState::NoPeriodic || !p.enabled || !p.lacp_enabled {
        if p.periodic == PeriodicState::NoPeriodic {
            // NTT does not wait for a partner that may never come.
            p.ntt = false;
        }
        return None;
    }
    // Forget sends older than a fast periodic time; the limit holds when
    // three remain.
    for s in &mut p.sent {
        if s.is_some_and(|t| now >= t + FAST_PERIODIC_TIME) {
            *s = None;
        }
    }
    let slot = p.sent.iter_mut().find(|s| s.is_none())?;
    *slot = Some(now);
    p.ntt = false;
    p.counters.lacpdu_tx += 1;
    Some(Repr {
        actor: p.actor,
        partner: p.partner,
        collector_max_delay: 0,
    })
}
