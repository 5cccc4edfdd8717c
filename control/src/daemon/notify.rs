//! Probe and gratuitous-ARP I/O: the ARP/NS monitor's probes and the peer
//! notifications after a failover, built from the addresses of the bond's
//! interfaces and sent out of a member ahead of data.

use super::runtime::BondRuntime;
use crate::probe;
use std::net::IpAddr;
use xbond_dataplane::snapshot::MemberId;
use xbond_dataplane::wire::arp;

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

    /// Gratuitous ARP for every IPv4 address of the host interface and of
    /// every VLAN interface (tagged with its VLAN, as the kernel's VLAN
    /// devices answer NETDEV_NOTIFY_PEERS), out of the (new) active member.
    pub(super) fn notify_peers(&mut self, member: MemberId) {
        let sources = match self.interface_addresses() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(bond = %self.core.name, "peer notification: cannot read addresses: {e}");
                return;
            }
        };
        let mac = self.core.bond_mac();
        let mut frames = Vec::new();
        for s in sources {
            for (ip, _) in s.addresses {
                if let IpAddr::V4(v4) = ip {
                    frames.push(probe::frame_on(
                        s.vid,
                        arp::Repr::gratuitous_frame(mac, v4).to_vec(),
                    ));
                }
            }
        }
        let Some(engine) = &self.engine else { return };
        let mut sent = 0;
        for f in frames {
            if engine.transmit(member, f) {
                sent += 1;
            }
        }
        let name = self
            .core
            .member(member)
            .map(|m| m.name.clone())
            .unwrap_or_default();
        tracing::info!(bond = %self.core.name, "sent {sent} gratuitous ARP(s) on {name}");
    }
}
