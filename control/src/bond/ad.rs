//! 802.3ad glue: the LACP settings from the bond's options, slow-protocol
//! frames into the machines, and what LACP asks for (frames, carrier, the
//! fallback's peer notification) turned into the bond's actions.

use super::ms;
use super::{Action, BondCore};
use crate::config::options::{BondOptions, LacpFallback, LacpRate, OnOff};
use crate::lacp::port::System;
use crate::lacp::{Lacp, LacpConfig, LacpEvent};
use std::time::Instant;
use xbond_dataplane::snapshot::MemberId;
use xbond_dataplane::wire::MacAddr;

/// The LACP settings of an 802.3ad bond, from its options.
pub(super) fn lacp_config(o: &BondOptions, bond_mac: MacAddr) -> LacpConfig {
    let mac = o
        .ad_actor_system
        .as_deref()
        .and_then(MacAddr::parse)
        .unwrap_or(bond_mac);
    LacpConfig {
        system: System {
            priority: o.ad_actor_sys_prio,
            mac,
        },
        active: o.lacp_active == OnOff::On,
        fast: o.lacp_rate == LacpRate::Fast,
        ad_select: o.ad_select,
        coupled: o.coupled_control == OnOff::On,
        user_key: o.ad_user_port_key,
        min_links: o.min_links,
        fallback_after: (o.lacp_fallback == LacpFallback::ActiveBackup)
            .then(|| ms(o.lacp_fallback_timeout)),
    }
}

impl BondCore {
    pub fn lacp(&self) -> Option<&Lacp> {
        self.lacp.as_ref()
    }

    /// A slow-protocol frame (LACPDU, marker PDU, or another subtype) from a
    /// member. Outside 802.3ad it is only counted.
    pub fn handle_slow_frame(&mut self, now: Instant, id: MemberId, frame: &[u8]) {
        match &mut self.lacp {
            Some(l) => l.handle_frame(now, id, frame),
            None => {
                self.foreign_slow_frames += 1;
                return;
            }
        }
        self.after_lacp();
        self.publish_if_changed();
    }

    /// Slow-protocol frames received outside 802.3ad.
    pub fn foreign_slow_frames(&self) -> u64 {
        self.foreign_slow_frames
    }

    /// Carry out what LACP asks for: frames to send, carrier, events.
    pub(super) fn after_lacp(&mut self) {
        let Some(l) = &mut self.lacp else { return };
        while let Some(o) = l.poll_transmit() {
            self.actions.push_back(Action::SendFrame {
                member: o.member,
                frame: o.frame(),
            });
        }
        let mut fallback_on = false;
        while let Some(ev) = l.poll_event() {
            let name = |m: MemberId| {
                self.members
                    .get(m as usize)
                    .and_then(|m| m.as_ref())
                    .map_or_else(|| format!("member{m}"), |m| m.name.clone())
            };
            match ev {
                LacpEvent::Carrier(up) => {
                    tracing::info!(bond = %self.name, "802.3ad: bond carrier {}", if up { "on" } else { "off" });
                    self.actions.push_back(Action::Carrier(up));
                }
                LacpEvent::ActiveAggregator(id) => match id {
                    Some(id) => {
                        tracing::info!(bond = %self.name, "802.3ad: aggregator {id} is now the active aggregator")
                    }
                    None => tracing::warn!(bond = %self.name, "802.3ad: no active aggregator"),
                },
                LacpEvent::Looped(m) => tracing::warn!(bond = %self.name,
                    "802.3ad: {} received a LACPDU with this bond's own system id: the link loops back; not aggregating it", name(m)),
                LacpEvent::Fallback(on) => {
                    if on {
                        tracing::warn!(bond = %self.name, "802.3ad: no LACP partner answered; running as active-backup (lacp_fallback)");
                        fallback_on = true;
                    } else {
                        tracing::info!(bond = %self.name, "802.3ad: a LACP partner answered; leaving active-backup fallback");
                    }
                }
                LacpEvent::Distributing { member, on } => tracing::info!(bond = %self.name,
                    "802.3ad: {} {} distributing", name(member), if on { "started" } else { "stopped" }),
            }
        }
        if fallback_on {
            if let (Some(a), true) = (self.ab.active, self.opts.num_grat_arp > 0) {
                self.actions.push_back(Action::NotifyPeers {
                    member: a as MemberId,
                });
            }
        }
    }
}
