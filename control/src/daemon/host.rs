//! Host ports: the veth pair behind `bond0` (and each VLAN interface), whose
//! hidden end the engine serves through AF_XDP.

use crate::config::BondConfig;
use crate::netlink::Netlink;
use anyhow::{bail, Context};
use xbond_dataplane::nic;
use xbond_dataplane::wire::MacAddr;

/// The hidden end of the host-port veth pair.
pub(super) fn hidden_name(bond: &str) -> String {
    if bond.len() <= 12 {
        format!("{bond}-xb")
    } else {
        format!("{}-xb", &bond[..12])
    }
}

pub(super) fn sysctl_path(ifname: &str, key: &str) -> String {
    format!("/proc/sys/net/ipv6/conf/{ifname}/{key}")
}

pub(super) fn set_disable_ipv6(ifname: &str, value: &str) -> Option<String> {
    let path = sysctl_path(ifname, "disable_ipv6");
    let old = std::fs::read_to_string(&path).ok()?.trim().to_string();
    if old != value {
        if let Err(e) = std::fs::write(&path, value) {
            tracing::debug!("{path}: {e}");
        }
    }
    Some(old)
}

/// The host interfaces of a bond: its own and its VLANs', both ends.
pub(super) fn host_interfaces(cfg: &BondConfig) -> Vec<String> {
    let mut v = vec![cfg.name.clone(), hidden_name(&cfg.name)];
    for vl in &cfg.vlans {
        v.push(vl.name.clone());
        v.push(hidden_name(&vl.name));
    }
    v
}

/// A host port's veth pair: reused when an earlier run left it (a restart
/// keeps the interface and its addresses), else created. The host end's
/// offloads set (`nic::HOST_PORT_FEATURES`), IPv6 off on the hidden end, both up. Returns (host,
/// hidden, created).
pub(super) fn host_pair(
    nl: &mut Netlink,
    name: &str,
    hidden: &str,
    mtu: u32,
    mac: MacAddr,
    whole: bool,
) -> anyhow::Result<(u32, u32, bool)> {
    let (host, peer, created) = match nl.link_by_name(name)? {
        Some(h) => {
            let peer = nl.link_by_name(hidden)?;
            match (h.kind.as_deref(), peer) {
                (Some("veth"), Some(p)) if h.peer == Some(p.index) => {
                    tracing::info!("reusing host interface {name} from an earlier run");
                    nl.set_mtu(p.index, mtu)?;
                    nl.set_mtu(h.index, mtu)?;
                    nl.set_mac(h.index, mac)?;
                    (h, p, false)
                }
                _ => bail!(
                    "interface {name} exists and is not an xbond host port; remove it or rename it"
                ),
            }
        }
        None => {
            nl.create_veth(name, hidden, mtu, mac, 1)
                .with_context(|| format!("create host interface {name}"))?;
            let h = nl.link_by_name(name)?.context("host interface vanished")?;
            let p = nl
                .link_by_name(hidden)?
                .context("host port peer vanished")?;
            (h, p, true)
        }
    };
    let done = (|| -> anyhow::Result<()> {
        // Checksum offload and software GSO stay on; the worker makes the
        // partial checksums right (dataplane `offload`).
        nic::set_host_port_offloads(name, whole)?;
        set_disable_ipv6(hidden, "1");
        if whole {
            // Read through AF_PACKET, the host's frames also reach the
            // hidden end's own stack; it must not answer ARP for the host.
            let path = format!("/proc/sys/net/ipv4/conf/{hidden}/arp_ignore");
            if let Err(e) = std::fs::write(&path, "8") {
                tracing::warn!("{path}: {e}");
            }
            // With no XDP program on it, the hidden end takes frames from an
            // XDP program on bond0 (`XDP_TX`, a redirect) only when its NAPI
            // runs, which GRO turns on; without it the kernel drops them.
            nic::set_features(hidden, &[("rx-gro", true)])
                .with_context(|| format!("{hidden}: turn GRO on"))?;
        }
        nl.set_up(peer.index, true)?;
        nl.set_up(host.index, true)?;
        Ok(())
    })();
    if let Err(e) = done {
        if created {
            let _ = nl.delete_link(host.index);
        }
        return Err(e);
    }
    Ok((host.index, peer.index, created))
}
