//! The bond's facts in the layout of `/proc/net/bonding/BOND`.

use super::BondCore;
use crate::lacp::Lacp;
use crate::status::{BondStatus, MemberArpStatus, MemberStatus, DRIVER_VERSION};
use std::time::Instant;

impl BondCore {
    pub fn status(&self, now: Instant) -> BondStatus {
        let o = &self.opts;
        let active = self.ab.active;
        let distributing = self.lacp.as_ref().map(Lacp::distributing);
        BondStatus {
            name: self.name.clone(),
            driver_version: DRIVER_VERSION.to_string(),
            mode: o.mode,
            fail_over_mac: o.fail_over_mac.name().to_string(),
            xmit_hash_policy: (
                o.xmit_hash_policy.name().to_string(),
                o.xmit_hash_policy.number(),
            ),
            primary: o.primary.clone(),
            primary_reselect: o.primary_reselect.name().to_string(),
            active_slave: active
                .and_then(|a| self.members[usize::from(a)].as_ref())
                .map(|m| m.name.clone()),
            mii_status: if let Some(l) = &self.lacp {
                if l.carrier() {
                    "up"
                } else {
                    "down"
                }
            } else if self.any_member_up() {
                "up"
            } else {
                "down"
            }
            .to_string(),
            miimon: o.miimon,
            updelay: o.updelay,
            downdelay: o.downdelay,
            peer_notif_delay: o.peer_notif_delay,
            arp_interval: o.arp_interval,
            arp_missed_max: o.arp_missed_max,
            arp_ip_target: o.arp_ip_target.iter().map(|a| a.to_string()).collect(),
            ns_ip6_target: o.ns_ip6_target.iter().map(|a| a.to_string()).collect(),
            arp_validate: o.arp_validate.name().to_string(),
            arp_all_targets: o.arp_all_targets.name().to_string(),
            link_watch_policy: o.link_watch_policy.map(|p| p.name().to_string()),
            mac: self.bond_mac.to_string(),
            host_interface: self.host_interface.clone(),
            members: (0..)
                .zip(&self.members)
                .filter_map(|(i, m)| m.as_ref().map(|m| (i, m)))
                .map(|(i, m)| MemberStatus {
                    name: m.name.clone(),
                    mii_status: self.link_state(i).proc_name().to_string(),
                    // Every member is active in the modes without a primary;
                    // in 802.3ad the distributing ones.
                    state: if let Some(d) = &distributing {
                        if d.contains(&i) {
                            "active"
                        } else {
                            "backup"
                        }
                    } else if active == Some(i) || !o.mode.uses_primary() || o.mode.is_lb() {
                        "active"
                    } else {
                        "backup"
                    }
                    .to_string(),
                    speed_mbps: m.speed,
                    duplex: m
                        .full_duplex
                        .map(|f| if f { "full" } else { "half" }.to_string()),
                    link_failure_count: self.failures[usize::from(i)],
                    prio: self.member_prio(&m.name),
                    perm_hwaddr: m.perm_mac.to_string(),
                    queue_id: 0,
                    ifindex: m.ifindex,
                    rx_queues: m.rx_queues,
                    ad: self.lacp.as_ref().and_then(|l| l.port_status(i)),
                    arp: self.arp.as_ref().map(|a| MemberArpStatus {
                        link: a.state(i).proc_name().to_string(),
                        last_valid_rx_ms_ago: a
                            .last_valid(i)
                            .map(|t| now.saturating_duration_since(t).as_millis() as u64),
                        probes: a.counters(i).probes,
                        valid_replies: a.counters(i).valid_replies,
                    }),
                })
                .collect(),
            missing_members: self.missing.clone(),
            ad: self.lacp.as_ref().map(Lacp::status),
        }
    }
}
