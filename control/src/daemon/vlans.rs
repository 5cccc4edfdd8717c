//! VLAN sub-interfaces: their host pairs, addresses and engine ports, at
//! start and through `xbond vlan add/del`.

use super::host::{hidden_name, host_pair};
use super::runtime::BondRuntime;
use crate::config::{parse_prefix, VlanConfig};
use anyhow::{bail, Context};
use std::time::Instant;
use xbond_dataplane::engine::PortSpec;
use xbond_dataplane::wire::vlan as vlanwire;
use xbond_dataplane::worker::Role;

/// A VLAN sub-interface: its host pair and what xbond put on it.
#[derive(Debug)]
pub(super) struct VlanPort {
    pub(super) id: u16,
    pub(super) name: String,
    pub(super) host_index: u32,
    pub(super) hidden_index: u32,
    pub(super) hidden: String,
    pub(super) mtu: u32,
}

impl BondRuntime {
    /// The host pair of VLAN `v`, named after it, with the bond's MAC.
    pub(super) fn make_vlan_port(&mut self, v: &VlanConfig) -> anyhow::Result<VlanPort> {
        if v.mtu > self.mtu {
            bail!(
                "vlan {}: mtu {} is larger than the bond's {}",
                v.id,
                v.mtu,
                self.mtu
            );
        }
        let hidden = hidden_name(&v.name);
        let (host_index, hidden_index, _) = host_pair(
            &mut self.nl,
            &v.name,
            &hidden,
            v.mtu,
            self.core.bond_mac(),
            false,
        )
        .map_err(|e| e.context(format!("vlan {}", v.id)))?;
        // The VLAN has the bond's carrier, as a kernel VLAN device follows
        // its real device.
        if self.core.status(Instant::now()).mii_status != "up" {
            let _ = self.nl.set_up(hidden_index, false);
        }
        tracing::info!(bond = %self.core.name, "VLAN {} on host interface {} (mtu {})", v.id, v.name, v.mtu);
        Ok(VlanPort {
            id: v.id,
            name: v.name.clone(),
            host_index,
            hidden_index,
            hidden,
            mtu: v.mtu,
        })
    }

    pub(super) fn add_vlan_addresses(&mut self, v: &VlanConfig) -> anyhow::Result<()> {
        let Some(port) = self.vlans.iter().find(|p| p.id == v.id) else {
            bail!("vlan {} has no host interface", v.id);
        };
        let index = port.host_index;
        for a in &v.addresses {
            if let Some((ip, plen)) = parse_prefix(a) {
                self.nl
                    .add_address(index, ip, plen)
                    .with_context(|| format!("vlan {}: addresses: {a}", v.id))?;
            }
        }
        Ok(())
    }

    /// A VLAN from `xbond vlan add`, checked as the config file's are.
    pub(super) fn vlan_config(
        &mut self,
        id: u16,
        name: Option<String>,
        mtu: Option<u32>,
        addresses: Vec<String>,
    ) -> anyhow::Result<VlanConfig> {
        if !(1..=vlanwire::VID_MAX).contains(&id) {
            bail!("{id} is out of range 1-4094");
        }
        let name = name.unwrap_or_else(|| format!("{}.{id}", self.core.name));
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', ':']) {
            bail!("'{name}' is not an interface name of at most 15 characters; give --name");
        }
        let mtu = mtu.unwrap_or(self.mtu);
        if !(68..=self.mtu).contains(&mtu) {
            bail!(
                "mtu {mtu} is out of range 68-{} (a VLAN's MTU is at most its bond's)",
                self.mtu
            );
        }
        if let Some(a) = addresses.iter().find(|a| parse_prefix(a).is_none()) {
            bail!("'{a}' is not ADDRESS/PREFIX");
        }
        if self.nl.link_by_name(&name)?.is_some() {
            bail!("an interface named {name} exists already");
        }
        Ok(VlanConfig {
            id,
            name,
            mtu,
            addresses,
        })
    }

    /// The VLAN ids the bond has now.
    pub(super) fn vlan_ids(&self) -> Vec<u16> {
        self.vlans.iter().map(|v| v.id).collect()
    }

    pub(super) fn vlan_list(&self) -> serde_json::Value {
        self.vlans
            .iter()
            .map(|v| serde_json::json!({ "id": v.id, "name": v.name, "mtu": v.mtu }))
            .collect()
    }

    /// `xbond vlan add`: the host pair, then the engine's sockets on it,
    /// then the snapshot that lets its frames through.
    pub(super) fn vlan_add(&mut self, v: &VlanConfig) -> anyhow::Result<String> {
        if self.vlans.iter().any(|p| p.id == v.id) {
            bail!("VLAN {} already exists on {}", v.id, self.core.name);
        }
        if let Some(p) = self.vlans.iter().find(|p| p.name == v.name) {
            bail!("{} is already the interface of VLAN {}", v.name, p.id);
        }
        let port = self.make_vlan_port(v)?;
        let added = match self.engine.as_mut() {
            Some(e) => e.add_port(&port.port_spec()).map_err(anyhow::Error::from),
            None => Err(anyhow::anyhow!("the dataplane is not running")),
        };
        if let Err(e) = added {
            let _ = self.nl.delete_link(port.host_index);
            return Err(e);
        }
        self.seen_links.insert(port.host_index);
        self.seen_links.insert(port.hidden_index);
        let name = port.name.clone();
        self.vlans.push(port);
        self.core.set_vlans(self.vlan_ids());
        if let Some(e) = &self.engine {
            e.publish(self.snapshot());
        }
        if let Err(e) = self.add_vlan_addresses(v) {
            tracing::warn!(bond = %self.core.name, "{e:#}");
        }
        Ok(format!("VLAN {} on {name}", v.id))
    }

    /// `xbond vlan del`: out of the snapshot (its frames become unknown),
    /// then out of the engine, then its host pair deleted.
    pub(super) fn vlan_del(&mut self, id: u16) -> anyhow::Result<String> {
        let i = self
            .vlans
            .iter()
            .position(|p| p.id == id)
            .with_context(|| format!("{} has no VLAN {id}", self.core.name))?;
        let port = self.vlans.remove(i);
        self.core.set_vlans(self.vlan_ids());
        let snap = self.snapshot();
        let mut released = Ok(0);
        if let Some(e) = self.engine.as_mut() {
            e.publish(snap);
            released = e.remove_port(Role::Host(id), port.hidden_index);
        }
        // The interface goes even if a worker did not answer: its sockets
        // close with it, and the VLAN is out of the snapshot already.
        self.nl
            .delete_link(port.host_index)
            .with_context(|| format!("delete {}", port.name))?;
        let n = released?;
        tracing::debug!(bond = %self.core.name, "VLAN {id}: {n} frames back in the pool");
        Ok(format!("VLAN {id} removed with {}", port.name))
    }
}

impl VlanPort {
    pub(super) fn port_spec(&self) -> PortSpec {
        PortSpec {
            role: Role::Host(self.id),
            ifindex: self.hidden_index,
            name: self.hidden.clone(),
            queues: 1,
        }
    }
}
