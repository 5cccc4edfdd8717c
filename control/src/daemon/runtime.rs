//! One bond's runtime: what `xbond run` builds for it, in order (members
//! resolved, host interface, members prepared, dataplane, addresses, control
//! socket), and what it takes down again.

use super::host::{hidden_name, host_interfaces, host_pair};
use super::members::{candidate, member_info, prepare_member, restore_members, MemberRestore};
use super::vlans::VlanPort;
use crate::bond::BondCore;
use crate::config::members::{self, Candidate, Reserved, Selector};
use crate::config::options::FailOverMac;
use crate::config::{parse_prefix, BondConfig, Config, MemberSpec, Qinq};
use crate::ipc::{self, Call};
use crate::netlink::{Link, LinkEvent, Netlink};
use crate::probe;
use anyhow::{bail, Context};
use crossbeam::channel::{bounded, Receiver};
use std::net::IpAddr;
use std::time::Instant;
use xbond_dataplane::engine::{Engine, HostPortKind, PortSpec};
use xbond_dataplane::snapshot::BondSnapshot;
use xbond_dataplane::wire::vlan::VidSet;
use xbond_dataplane::wire::MacAddr;
use xbond_dataplane::worker::{ControlFrame, Role};

pub(super) struct BondRuntime {
    pub(super) core: BondCore,
    pub(super) engine: Option<Engine>,
    pub(super) nl: Netlink,
    pub(super) host_index: u32,
    /// The hidden end of the host pair: down while the bond has no carrier.
    pub(super) hidden_index: u32,
    pub(super) socket: std::path::PathBuf,
    /// Who may open the control socket.
    pub(super) access: ipc::SocketAccess,
    /// Where calls to this bond go in (the control socket and the metrics
    /// server both send here).
    pub(super) call_tx: Option<crossbeam::channel::Sender<ipc::Call>>,
    pub(super) restore: Vec<MemberRestore>,
    pub(super) addresses: Vec<(IpAddr, u8)>,
    pub(super) events: Receiver<LinkEvent>,
    pub(super) control: Receiver<ControlFrame>,
    pub(super) calls: Receiver<Call>,
    pub(super) missing: Vec<String>,
    /// Member selectors: a link that appears and matches one is enslaved.
    pub(super) selectors: Vec<Selector>,
    /// Every ifindex seen so far: only a new link is a candidate for a
    /// selector (a member released by hand is not taken back).
    pub(super) seen_links: ahash::AHashSet<u32>,
    /// Links no selector may take (other bonds' members and interfaces).
    pub(super) reserved: Vec<Reserved>,
    pub(super) vlans: Vec<VlanPort>,
    pub(super) qinq: Qinq,
    pub(super) mtu: u32,
    pub(super) torn_down: bool,
    /// ARP/NS monitor: the interfaces probes leave through, read before
    /// each round, and each member's receive count at the last look.
    pub(super) probe_sources: Vec<probe::Source>,
    pub(super) rx_seen: Vec<u64>,
}

impl BondRuntime {
    pub(super) fn start(
        cfg: &BondConfig,
        run_dir: &std::path::Path,
        access: &ipc::SocketAccess,
        events: Receiver<LinkEvent>,
        reserved: &[Reserved],
    ) -> anyhow::Result<Self> {
        let mut nl = Netlink::new().context("open rtnetlink")?;
        let now = Instant::now();
        let links = nl.links().context("list links")?;
        let (present, missing) = resolve_members(cfg, &links, reserved)?;
        check_members(cfg, &present)?;
        for l in &present {
            check_xdp(&mut nl, cfg, l)?;
        }
        let bond_mac = bond_mac(cfg, &present[0])?;

        let mut rt_restore = Vec::new();
        let mut created_host = None;
        let host_name = cfg.name.clone();
        let hidden = hidden_name(&cfg.name);
        let setup = (|| -> anyhow::Result<(u32, u32)> {
            let (host, peer, created) = host_pair(
                &mut nl,
                &host_name,
                &hidden,
                cfg.mtu,
                bond_mac,
                cfg.engine.host_port == HostPortKind::AfPacket,
            )
            .map_err(|e| e.context(format!("bond {}", cfg.name)))?;
            if created {
                created_host = Some(host);
            }
            for l in &present {
                rt_restore.push(prepare_member(&mut nl, l, cfg.mtu)?);
            }
            Ok((host, peer))
        })();
        let (host_index, peer_index) = match setup {
            Ok(v) => v,
            Err(e) => {
                restore_members(&mut nl, &rt_restore);
                if let Some(i) = created_host {
                    let _ = nl.delete_link(i);
                }
                return Err(e);
            }
        };

        let mut rt = BondRuntime {
            core: BondCore::new(&cfg.name, &host_name, cfg.options.clone(), bond_mac),
            engine: None,
            nl,
            host_index,
            hidden_index: peer_index,
            socket: ipc::socket_path(run_dir, &cfg.name),
            access: access.clone(),
            call_tx: None,
            restore: rt_restore,
            addresses: Vec::new(),
            events,
            control: bounded(1).1,
            calls: bounded(1).1,
            missing: missing.clone(),
            selectors: cfg
                .members
                .iter()
                .filter_map(|m| match m {
                    MemberSpec::Select(s) => Some(s.clone()),
                    MemberSpec::Name(_) => None,
                })
                .collect(),
            seen_links: links.iter().map(|l| l.index).collect(),
            reserved: reserved.to_vec(),
            vlans: Vec::new(),
            qinq: cfg.qinq,
            mtu: cfg.mtu,
            torn_down: false,
            probe_sources: Vec::new(),
            rx_seen: Vec::new(),
        };
        match rt.start_engine(cfg, &present, peer_index, now) {
            Ok(()) => Ok(rt),
            Err(e) => {
                rt.teardown();
                Err(e)
            }
        }
    }

    pub(super) fn start_engine(
        &mut self,
        cfg: &BondConfig,
        present: &[Link],
        peer_index: u32,
        now: Instant,
    ) -> anyhow::Result<()> {
        for name in &self.missing {
            self.core.note_missing(name);
        }
        self.core.set_port_priorities(cfg.actor_port_prio.clone());
        self.core.set_member_priorities(now, cfg.prio.clone());
        for l in present {
            // Re-read: bringing the link up above changes its carrier.
            let l = self.nl.link_by_index(l.index)?.unwrap_or_else(|| l.clone());
            self.core.add_member(now, member_info(&l), l.carrier);
        }
        if let Some(active) = &cfg.options.active_slave {
            if let Err(e) = self.core.set_option(now, "active_slave", active) {
                tracing::warn!(bond = %cfg.name, "{e}");
            }
        }
        for v in &cfg.vlans {
            let port = self.make_vlan_port(v)?;
            self.vlans.push(port);
        }
        self.core.set_vlans(self.vlan_ids());
        let mut ports: Vec<PortSpec> = self
            .core
            .members()
            .map(|(id, m)| PortSpec {
                role: Role::Member(id),
                ifindex: m.ifindex,
                name: m.name.clone(),
                queues: m.rx_queues,
            })
            .collect();
        ports.push(PortSpec {
            role: Role::Host(0),
            ifindex: peer_index,
            name: hidden_name(&cfg.name),
            queues: 1,
        });
        for v in &self.vlans {
            ports.push(v.port_spec());
        }
        let (ctl_tx, ctl_rx) = bounded(4096);
        let engine = Engine::start(&cfg.engine, &ports, self.snapshot(), ctl_tx)?;
        tracing::info!(bond = %cfg.name, "dataplane up: {} ports, {} XDP programs attached through BPF links", ports.len(), engine.attached());
        self.engine = Some(engine);
        self.control = ctl_rx;

        for a in &cfg.addresses {
            if let Some((ip, plen)) = parse_prefix(a) {
                self.nl
                    .add_address(self.host_index, ip, plen)
                    .with_context(|| format!("addresses: {a}"))?;
                self.addresses.push((ip, plen));
            }
        }
        for v in &cfg.vlans {
            self.add_vlan_addresses(v)?;
        }
        let (call_tx, call_rx) = bounded(16);
        ipc::serve(&self.socket, &self.access, call_tx.clone())?;
        self.calls = call_rx;
        self.call_tx = Some(call_tx);
        self.core.dataplane_up(Instant::now());
        // Startup selection: publish and announce the first active member.
        self.run_actions();
        tracing::info!(bond = %cfg.name, "bond up; active member {:?}", self.core.status(Instant::now()).active_slave);
        Ok(())
    }

    /// The snapshot the workers get: the core's, plus the VLAN map.
    pub(super) fn snapshot(&self) -> BondSnapshot {
        let mut s = self.core.snapshot();
        s.vlans = self.vlans.iter().map(|v| v.id).collect::<VidSet>();
        s.qinq_pass = self.qinq == Qinq::Pass;
        s
    }

    pub(super) fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        if let Some(mut e) = self.engine.take() {
            e.stop();
        }
        let _ = std::fs::remove_file(&self.socket);
        restore_members(&mut self.nl, &self.restore);
        for v in std::mem::take(&mut self.vlans) {
            if let Err(e) = self.nl.delete_link(v.host_index) {
                tracing::warn!(bond = %self.core.name, "remove {}: {e}", v.name);
            }
        }
        // Deleting one end of the pair deletes both, and its addresses.
        match self.nl.delete_link(self.host_index) {
            Ok(()) => {
                tracing::info!(bond = %self.core.name, "removed host interface {}", self.core.host_interface)
            }
            Err(e) => tracing::warn!(bond = %self.core.name, "remove host interface: {e}"),
        }
    }
}

/// The members, in config order: names and selectors resolved against the
/// links there are. Missing names are reported and returned apart; at least
/// one member must exist.
fn resolve_members(
    cfg: &BondConfig,
    links: &[Link],
    reserved: &[Reserved],
) -> anyhow::Result<(Vec<Link>, Vec<String>)> {
    let candidates: Vec<Candidate> = links.iter().map(|l| candidate(l, links)).collect();
    let resolved = members::resolve(&cfg.members, &candidates, reserved, &host_interfaces(cfg))
        .map_err(|e| anyhow::anyhow!("members: {e}"))?;
    let present: Vec<Link> = resolved
        .present
        .iter()
        .filter_map(|name| links.iter().find(|l| &l.name == name).cloned())
        .collect();
    for name in &resolved.missing {
        tracing::warn!(bond = %cfg.name, "member {name} does not exist; running without it");
    }
    if present.is_empty() {
        let all: Vec<String> = cfg.members.iter().map(ToString::to_string).collect();
        bail!("members: none of {} exists", all.join(", "));
    }
    tracing::info!(bond = %cfg.name, "members: {}", resolved.present.join(", "));
    Ok((present, resolved.missing))
}

/// What `run` refuses about the members it found, before it changes
/// anything; `xbond check` makes the same check ([`check_on_this_host`]).
pub(super) fn check_members(cfg: &BondConfig, present: &[Link]) -> anyhow::Result<()> {
    for l in present {
        if let Some(max) = l.max_mtu.filter(|max| cfg.mtu > *max) {
            bail!(
                "bond.{}.mtu: {} is more than member {} takes (its maximum MTU is {max})",
                cfg.name,
                cfg.mtu,
                l.name
            );
        }
    }
    Ok(())
}

/// `xbond check` on the machine the config is for: the members resolved
/// against this host's links as `run` resolves them, and what `run` would
/// refuse about the ones it finds. Members that are not here (a config
/// checked on another machine), or that only the links at start decide,
/// are left to `run`.
pub fn check_on_this_host(config: &Config, cfg: &BondConfig) -> anyhow::Result<()> {
    let mut nl = Netlink::new().context("open rtnetlink")?;
    let links = nl.links().context("list links")?;
    let reserved = super::members::reserved_for(config, &cfg.name);
    let candidates: Vec<Candidate> = links.iter().map(|l| candidate(l, &links)).collect();
    let Ok(resolved) =
        members::resolve(&cfg.members, &candidates, &reserved, &host_interfaces(cfg))
    else {
        return Ok(());
    };
    let present: Vec<Link> = links
        .iter()
        .filter(|l| resolved.present.contains(&l.name))
        .cloned()
        .collect();
    check_members(cfg, &present)
}

/// Refuse a member that another tool's XDP program holds, unless told to
/// remove it.
fn check_xdp(nl: &mut Netlink, cfg: &BondConfig, l: &Link) -> anyhow::Result<()> {
    if let Some((id, how)) = l.xdp {
        if cfg.engine.replace_xdp {
            tracing::warn!(bond = %cfg.name, "removing XDP program {id} ({how:?}) from {} (replace_xdp)", l.name);
            nl.detach_xdp(l.index, how)
                .with_context(|| format!("detach XDP from {}", l.name))?;
        } else {
            bail!(
                "member {} already has an XDP program (id {id}, {how:?} mode) attached by another tool; \
                 detach it (`ip link set dev {} xdp off`) or start with --replace-xdp",
                l.name,
                l.name
            );
        }
    }
    Ok(())
}

/// The bond MAC: configured, else the first member's permanent address
/// (always the first member's under fail_over_mac=active).
fn bond_mac(cfg: &BondConfig, first: &Link) -> anyhow::Result<MacAddr> {
    let mac = cfg
        .mac
        .or(first.perm_mac)
        .or(first.mac)
        .context("the first member has no MAC address")?;
    Ok(if cfg.options.fail_over_mac == FailOverMac::Active {
        first.perm_mac.or(first.mac).unwrap_or(mac)
    } else {
        mac
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, max_mtu: Option<u32>) -> Link {
        Link {
            index: 7,
            name: name.into(),
            admin_up: true,
            carrier: true,
            mac: None,
            perm_mac: None,
            mtu: 1500,
            max_mtu,
            rx_queues: 1,
            kind: None,
            peer: None,
            promisc: false,
            xdp: None,
            master: None,
        }
    }

    #[test]
    fn a_member_that_cannot_take_the_bond_mtu_is_refused_by_name() {
        let cfg = Config::parse(
            "[bond.bond0]\nmembers = [\"eth7\"]\noptions = \"mode=1\"\nmtu = 9000\n",
            "b.toml",
        )
        .unwrap();
        let b = &cfg.bonds[0];
        let e = check_members(b, &[link("eth7", Some(1500))]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bond.bond0.mtu: 9000 is more than member eth7 takes (its maximum MTU is 1500)"
        );
        assert!(check_members(b, &[link("eth7", Some(9216))]).is_ok());
        assert!(
            check_members(b, &[link("eth7", None)]).is_ok(),
            "no maximum said"
        );
    }
}
