//! Probe and gratuitous-ARP I/O: the ARP/NS monitor's probes and the peer
//! notifications after a failover, built from the addresses of the bond's
//! interfaces and sent out of a member ahead of data.

use super::runtime::BondRuntime;
use crate::probe;
use std::net::IpAddr;
use xbond_dataplane::snapshot::MemberId;
use xbond_dataplane::wire::{arp, mcast, ndisc};

impl BondRuntime {
    /// The addresses of the bond's host interface (VLAN 0) and of each VLAN
    /// interface, in one netlink dump.
    pub(super) fn interface_addresses(&mut self) -> std::io::Result<Vec<probe::Source>> {
        let all = self.nl.all_addresses()?;
        let mut ifaces = vec![(0u16, self.host_index)];
        ifaces.extend(self.vlans.iter().map(|v| (v.id, v.host_index)));
        Ok(ifaces
            .into_iter()
            .map(|(vid, index)| probe::Source {
                vid,
                addresses: all
                    .iter()
                    .filter(|a| a.0 == index)
                    .map(|&(_, ip, plen)| (ip, plen))
                    .collect(),
            })
            .collect())
    }

    /// The interfaces' addresses, or a warning naming `what` needed them.
    fn addresses_for(&mut self, what: &str) -> Option<Vec<probe::Source>> {
        self.interface_addresses()
            .map_err(
                |e| tracing::warn!(bond = %self.core.name, "{what}: cannot read addresses: {e}"),
            )
            .ok()
    }

    /// Read where probes leave from, and what replies must be addressed to.
    pub(super) fn refresh_probe_sources(&mut self) {
        match self.interface_addresses() {
            Ok(s) => self.probe_sources = s,
            Err(e) => {
                tracing::debug!(bond = %self.core.name, "ARP monitor: cannot read addresses: {e}");
                return;
            }
        }
        let own = self
            .probe_sources
            .iter()
            .flat_map(|s| s.addresses.iter().map(|a| a.0))
            .collect();
        self.core.set_own_addresses(own);
    }

    /// One probe per target out of `member`.
    pub(super) fn send_probes(&mut self, member: MemberId) {
        let Some(engine) = &self.engine else { return };
        let o = self.core.options();
        let targets = o
            .arp_ip_target
            .iter()
            .map(|&t| IpAddr::from(t))
            .chain(o.ns_ip6_target.iter().map(|&t| IpAddr::from(t)));
        let mac = self.core.bond_mac();
        for t in targets {
            let (vid, src) = probe::route(t, &self.probe_sources);
            if !engine.transmit(member, probe::frame(mac, vid, src, t)) {
                tracing::debug!(bond = %self.core.name, "ARP monitor: no worker took the probe for {t} on member {member}");
            }
        }
    }

    /// Gratuitous ARP for every IPv4 address and an unsolicited Neighbor
    /// Advertisement for every IPv6 address (`num_unsol_na`, one option with
    /// `num_grat_arp` as in the kernel) of the host interface and of every
    /// VLAN interface (tagged with its VLAN, as the kernel's VLAN devices
    /// answer NETDEV_NOTIFY_PEERS), out of the (new) active member.
    pub(super) fn notify_peers(&mut self, member: MemberId) {
        let Some(sources) = self.addresses_for("peer notification") else {
            return;
        };
        let mac = self.core.bond_mac();
        let mut frames = Vec::new();
        let (mut garps, mut nas) = (0, 0);
        for s in sources {
            // The Router flag says whether the interface forwards IPv6, as
            // the kernel's ndisc_send_unsol_na sets it.
            let router = self.interface_name(s.vid).is_some_and(|n| {
                std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{n}/forwarding"))
                    .is_ok_and(|v| v.trim() == "1")
            });
            for (ip, _) in s.addresses {
                let frame = match ip {
                    IpAddr::V4(v4) => {
                        garps += 1;
                        arp::Repr::gratuitous_frame(mac, v4).to_vec()
                    }
                    IpAddr::V6(v6) => {
                        nas += 1;
                        ndisc::unsolicited_advertisement_frame(mac, v6, router)
                    }
                };
                frames.push(probe::frame_on(s.vid, frame));
            }
        }
        let (sent, name) = self.send_all(member, frames);
        tracing::info!(bond = %self.core.name, "sent {garps} gratuitous ARP(s) and {nas} unsolicited NA(s) on {name} ({sent} frames taken)");
    }

    /// Hand `frames` to the worker of `member`, ahead of data; how many it
    /// took, and the member's name.
    fn send_all(&self, member: MemberId, frames: Vec<Vec<u8>>) -> (usize, String) {
        let mut sent = 0;
        if let Some(engine) = &self.engine {
            for f in frames {
                if engine.transmit(member, f) {
                    sent += 1;
                }
            }
        }
        let name = self
            .core
            .member(member)
            .map(|m| m.name.clone())
            .unwrap_or_default();
        (sent, name)
    }

    /// IGMPv3 and MLDv2 reports for every group of the host interface and
    /// of each VLAN interface (tagged), out of the (new) active member, as
    /// the kernel's stack sends them on NETDEV_RESEND_IGMP; the groups are
    /// read from /proc/net/igmp and igmp6 at that moment.
    pub(super) fn rejoin_groups(&mut self, member: MemberId) {
        let Some(sources) = self.addresses_for("resend_igmp") else {
            return;
        };
        let v4 = std::fs::read_to_string("/proc/net/igmp")
            .map(|t| crate::mcast::igmp_groups(&t))
            .unwrap_or_default();
        let v6 = std::fs::read_to_string("/proc/net/igmp6")
            .map(|t| crate::mcast::igmp6_groups(&t))
            .unwrap_or_default();
        let mac = self.core.bond_mac();
        let mut frames = Vec::new();
        for s in &sources {
            let Some(name) = self.interface_name(s.vid) else {
                continue;
            };
            let groups4: Vec<_> = v4
                .iter()
                .filter(|(d, _)| *d == name)
                .map(|(_, g)| *g)
                .collect();
            let groups6: Vec<_> = v6
                .iter()
                .filter(|(d, _)| *d == name)
                .map(|(_, g)| *g)
                .collect();
            let src4 = s.addresses.iter().find_map(|(ip, _)| match ip {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            });
            let src6 = s.addresses.iter().find_map(|(ip, _)| match ip {
                IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 => Some(*a),
                _ => None,
            });
            let reports = [
                mcast::igmpv3_report_frame(
                    mac,
                    src4.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                    &groups4,
                ),
                mcast::mldv2_report_frame(
                    mac,
                    src6.unwrap_or(std::net::Ipv6Addr::UNSPECIFIED),
                    &groups6,
                ),
            ];
            frames.extend(
                reports
                    .into_iter()
                    .flatten()
                    .map(|f| probe::frame_on(s.vid, f)),
            );
        }
        let n = frames.len();
        let (sent, name) = self.send_all(member, frames);
        tracing::info!(bond = %self.core.name, "sent {sent} of {n} IGMP/MLD report(s) on {name} (resend_igmp)");
    }

    /// The host interface of VLAN `vid` (0: the bond's own).
    fn interface_name(&self, vid: u16) -> Option<String> {
        if vid == 0 {
            return Some(self.core.host_interface.clone());
        }
        self.vlans
            .iter()
            .find(|v| v.id == vid)
            .map(|v| v.name.clone())
    }
}
