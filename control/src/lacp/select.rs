//! Selection logic (802.1AX-2014 6.4.14): which aggregator each port joins,
//! and which aggregator the bond uses (`ad_select`), as the kernel's
//! ad_port_selection_logic and ad_agg_selection_logic choose them.

use super::mux::MuxState;
use super::port::{Port, Selected};
use super::AdSelect;
use xbond_dataplane::wire::MacAddr;

/// What an aggregator was formed for: ports join it only with the same
/// actor key and the same partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aggregator {
    pub actor_key: u16,
    pub partner_system: MacAddr,
    pub partner_system_priority: u16,
    pub partner_key: u16,
    pub individual: bool,
}

impl Aggregator {
    fn for_port(p: &Port) -> Aggregator {
        Aggregator {
            actor_key: p.actor.key,
            partner_system: p.partner.system,
            partner_system_priority: p.partner.system_priority,
            partner_key: p.partner.key,
            individual: p.individual(),
        }
    }

    /// An aggregator whose partner answered (the kernel's __agg_has_partner).
    pub fn has_partner(&self) -> bool {
        self.partner_system != MacAddr::ZERO
    }
}

/// Give every unselected, detached port an aggregator (one per port slot,
/// as the kernel keeps one aggregator per member). True when any changed.
pub fn select_ports(ports: &mut [Option<Port>], aggs: &mut [Option<Aggregator>]) -> bool {
    let mut changed = false;
    for i in 0..ports.len() {
        let Some(p) = &ports[i] else { continue };
        if p.selected != Selected::Unselected || p.mux != MuxState::Detached {
            continue;
        }
        if p.aggregator.is_some() {
            if let Some(p) = &mut ports[i] {
                p.aggregator = None;
            }
            changed = true;
            forget_empty(ports, aggs);
        }
        let Some(p) = &ports[i] else { continue };
        if !p.enabled || p.looped {
            continue;
        }
        let want = Aggregator::for_port(p);
        let joinable = |a: &Aggregator| {
            !a.individual
                && !want.individual
                && a.actor_key == want.actor_key
                && a.partner_system == want.partner_system
                && a.partner_system_priority == want.partner_system_priority
                && a.partner_key == want.partner_key
        };
        let used = |a: usize| ports.iter().flatten().any(|q| q.aggregator == Some(a));
        let pick = (0..aggs.len())
            .find(|&a| aggs[a].as_ref().is_some_and(joinable) && used(a))
            .or_else(|| (!used(i)).then_some(i))
            .or_else(|| (0..aggs.len()).find(|&a| !used(a)));
        let Some(a) = pick else { continue };
        if !used(a) {
            aggs[a] = Some(want);
        }
        if let Some(p) = &mut ports[i] {
            p.aggregator = Some(a);
            p.selected = Selected::Selected;
        }
        changed = true;
    }
    changed
}

pub fn forget_empty(ports: &[Option<Port>], aggs: &mut [Option<Aggregator>]) {
    for (a, slot) in aggs.iter_mut().enumerate() {
        if !ports.iter().flatten().any(|q| q.aggregator == Some(a)) {
            *slot = None;
        }
    }
}

/// An aggregator's ports that count: selected into it and with carrier
/// (the kernel's __agg_active_ports), and their bandwidth.
pub fn active_ports(ports: &[Option<Port>], a: usize) -> (u32, u64) {
    ports
        .iter()
        .flatten()
        .filter(|p| p.aggregator == Some(a) && p.enabled && p.selected == Selected::Selected)
        .fold((0, 0), |(n, bw), p| (n + 1, bw + u64::from(p.speed)))
}

/// Choose the bond's active aggregator (ad_agg_selection_logic).
pub fn choose_active(
    ports: &[Option<Port>],
    aggs: &[Option<Aggregator>],
    current: Option<usize>,
    policy: AdSelect,
) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (a, agg) in aggs.iter().enumerate() {
        let Some(agg) = agg else { continue };
        let (n, bw) = active_ports(ports, a);
        if n == 0 {
            continue;
        }
        best = match best {
            None => Some(a),
            Some(b) => {
                let bagg = aggs[b].as_ref().expect("best is a live aggregator");
                let (bn, bbw) = active_ports(ports, b);
                let better = if agg.individual != bagg.individual {
                    !agg.individual
                } else if agg.has_partner() != bagg.has_partner() {
                    agg.has_partner()
                } else {
                    match policy {
                        AdSelect::Count => n > bn || (n == bn && bw > bbw),
                        AdSelect::Stable | AdSelect::Bandwidth => bw > bbw || (bw == bbw && n > bn),
                    }
                };
                Some(if better { a } else { b })
            }
        };
    }
    // stable: the active aggregator stays while it has ports with carrier
    // and either a partner, or neither it nor the best one has one.
    if policy == AdSelect::Stable {
        if let (Some(cur), Some(b)) = (current, best) {
            if let Some(cagg) = aggs.get(cur).and_then(|a| a.as_ref()) {
                let bagg = aggs[b].as_ref().expect("best is a live aggregator");
                if active_ports(ports, cur).0 > 0 && (cagg.has_partner() || !bagg.has_partner()) {
                    return Some(cur);
                }
            }
        }
    }
    best
}
