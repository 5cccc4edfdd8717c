//! Member links: which links a bond may take, how a link is prepared to be
//! a member and given back, and enslaving and releasing at runtime.

use super::host::{hidden_name, host_interfaces, set_disable_ipv6};
use super::runtime::BondRuntime;
use crate::bond::MemberInfo;
use crate::config::members::{Candidate, Reserved};
use crate::config::{Config, MemberSpec};
use crate::netlink::{Link, Netlink};
use anyhow::{bail, Context};
use std::time::Instant;
use xbond_dataplane::engine::PortSpec;
use xbond_dataplane::nic;
use xbond_dataplane::worker::Role;

/// What to give back to a member when the bond lets it go.
#[derive(Debug)]
pub(super) struct MemberRestore {
    pub(super) index: u32,
    pub(super) name: String,
    pub(super) promisc: bool,
    disable_ipv6: Option<String>,
    /// The MTU it had, when the bond changed it.
    mtu: Option<u32>,
}

/// What bond `me` may not take: the other bonds' named members and host
/// interfaces.
pub(super) fn reserved_for(config: &Config, me: &str) -> Vec<Reserved> {
    let mut out = Vec::new();
    for b in config.bonds.iter().filter(|b| b.name != me) {
        for m in b.members.iter().filter_map(MemberSpec::name) {
            out.push(Reserved {
                name: m.to_string(),
                why: format!("a member of bond {}", b.name),
            });
        }
        for h in host_interfaces(b) {
            out.push(Reserved {
                name: h,
                why: format!("a host interface of bond {}", b.name),
            });
        }
    }
    out
}

/// A link as member resolution sees it.
pub(super) fn candidate(l: &Link, all: &[Link]) -> Candidate {
    Candidate {
        name: l.name.clone(),
        driver: nic::driver(&l.name),
        mac: l.perm_mac.or(l.mac),
        master: l.master.map(|m| {
            all.iter()
                .find(|x| x.index == m)
                .map_or_else(|| format!("ifindex {m}"), |x| x.name.clone())
        }),
    }
}

/// Make a link ready to serve as a member, at start and when enslaved at
/// runtime: IPv6 off (the bond speaks for it), promiscuous (it accepts
/// frames for the bond MAC without taking it), the bond's MTU (as the
/// kernel's bond_enslave sets it) and up. Returns what to give back when
/// the bond lets it go; on failure, what was changed is undone.
pub(super) fn prepare_member(
    nl: &mut Netlink,
    l: &Link,
    mtu: u32,
) -> anyhow::Result<MemberRestore> {
    let mut restore = MemberRestore {
        index: l.index,
        name: l.name.clone(),
        promisc: l.promisc,
        disable_ipv6: set_disable_ipv6(&l.name, "1"),
        mtu: None,
    };
    let done = (|| -> anyhow::Result<()> {
        if l.mtu != mtu {
            nl.set_mtu(l.index, mtu).with_context(|| {
                format!("set MTU {mtu} on member {} (it has {})", l.name, l.mtu)
            })?;
            restore.mtu = Some(l.mtu);
        }
        if !l.promisc {
            nl.set_promisc(l.index, true)?;
        }
        if !l.admin_up {
            nl.set_up(l.index, true)?;
        }
        Ok(())
    })();
    match done {
        Ok(()) => Ok(restore),
        Err(e) => {
            restore_members(nl, std::slice::from_ref(&restore));
            Err(e)
        }
    }
}

/// What the bond keeps of a member link: the address it joined with (the
/// kernel's perm_hwaddr), speed, duplex and queues.
pub(super) fn member_info(l: &Link) -> MemberInfo {
    let settings = nic::link_settings(&l.name).unwrap_or_default();
    MemberInfo {
        name: l.name.clone(),
        ifindex: l.index,
        perm_mac: l.perm_mac.or(l.mac).unwrap_or_default(),
        speed: settings.speed,
        full_duplex: settings.full_duplex,
        rx_queues: rx_queues(l),
    }
}

/// The RX queues to open sockets on: the active channels when the driver
/// reports them (a veth made without `numrxqueues` reports 1 active of 2
/// allocated), else what netlink says.
pub(super) fn rx_queues(l: &Link) -> u32 {
    nic::rx_channels(&l.name).unwrap_or(l.rx_queues).max(1)
}

pub(super) fn restore_members(nl: &mut Netlink, list: &[MemberRestore]) {
    for r in list {
        if !r.promisc {
            if let Err(e) = nl.set_promisc(r.index, false) {
                tracing::debug!("restore {}: {e}", r.name);
            }
        }
        if let Some(v) = &r.disable_ipv6 {
            set_disable_ipv6(&r.name, v);
        }
        if let Some(mtu) = r.mtu {
            if let Err(e) = nl.set_mtu(r.index, mtu) {
                tracing::debug!("restore MTU of {}: {e}", r.name);
            }
        }
    }
}

impl BondRuntime {
    /// `+IF` adds a member, `-IF` releases one, as the kernel's
    /// `/sys/class/net/BOND/bonding/slaves` takes them.
    pub(super) fn set_slaves(&mut self, value: &str) -> anyhow::Result<String> {
        let mut done = Vec::new();
        for token in value.split_whitespace() {
            match token.split_at(1) {
                ("+", name) if !name.is_empty() => {
                    self.add_member(name)?;
                    done.push(format!("added {name}"));
                }
                ("-", name) if !name.is_empty() => {
                    self.remove_member(name)?;
                    done.push(format!("released {name}"));
                }
                _ => bail!("expected +IFNAME or -IFNAME, got '{token}'"),
            }
        }
        if done.is_empty() {
            bail!("expected +IFNAME or -IFNAME");
        }
        Ok(done.join(", "))
    }

    /// Enslave `name` while running: prepare the link as at start, give the
    /// engine its sockets and program, and only then let the bond use it.
    pub(super) fn add_member(&mut self, name: &str) -> anyhow::Result<()> {
        if self.core.member_by_name(name).is_some() {
            bail!("{name} is already a member of {}", self.core.name);
        }
        if name == self.core.host_interface || name == hidden_name(&self.core.name) {
            bail!("{name} is this bond's own host interface");
        }
        let l = self
            .nl
            .link_by_name(name)?
            .with_context(|| format!("{name}: no such interface"))?;
        self.core
            .can_add_member(member_info(&l).perm_mac)
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let restore = prepare_member(&mut self.nl, &l, self.mtu)?;
        let added = (|| -> anyhow::Result<()> {
            let id = self.core.next_member_id();
            let engine = self
                .engine
                .as_mut()
                .context("the dataplane is not running")?;
            engine.add_port(&PortSpec {
                role: Role::Member(id),
                ifindex: l.index,
                name: l.name.clone(),
                queues: rx_queues(&l),
            })?;
            Ok(())
        })();
        if let Err(e) = added {
            restore_members(&mut self.nl, std::slice::from_ref(&restore));
            return Err(e);
        }
        self.restore.push(restore);
        // The engine serves it now: from here on nothing may fail half-way.
        let l = self.nl.link_by_index(l.index).ok().flatten().unwrap_or(l);
        self.core
            .add_member(Instant::now(), member_info(&l), l.carrier);
        self.missing.retain(|m| m != name);
        self.run_actions();
        Ok(())
    }

    /// Release `name`: out of the snapshot first, then out of the engine
    /// (queued frames sent, every frame back in the pool), then its link
    /// settings restored.
    pub(super) fn remove_member(&mut self, name: &str) -> anyhow::Result<()> {
        let id = self
            .core
            .member_by_name(name)
            .with_context(|| format!("{name} is not a member of {}", self.core.name))?;
        let info = self
            .core
            .remove_member(Instant::now(), id)
            .context("member vanished")?;
        self.run_actions();
        if let Some(e) = self.engine.as_mut() {
            let n = e.remove_port(Role::Member(id), info.ifindex)?;
            tracing::info!(bond = %self.core.name, "{name}: sockets closed, {n} frames back in the pool");
        }
        if let Some(i) = self.restore.iter().position(|r| r.index == info.ifindex) {
            let r = self.restore.remove(i);
            restore_members(&mut self.nl, std::slice::from_ref(&r));
        }
        Ok(())
    }
}
