//! `xbond run`: builds each bond (host interface, members, dataplane), runs its
//! control loop — the only place that reads the clock and owns sockets — until
//! SIGINT/SIGTERM, then detaches everything and removes what it created.

use crate::bond::{Action, BondCore, MemberInfo};
use crate::config::members::{self, Candidate, Reserved, Selector};
use crate::config::options::FailOverMac;
use crate::config::{parse_prefix, BondConfig, Config, MemberSpec, Qinq, VlanConfig};
use crate::ipc::{self, Call, Request, Response};
use crate::netlink::{spawn_link_listener, Link, LinkEvent, Netlink};
use crate::probe;
use anyhow::{bail, Context};
use crossbeam::channel::{bounded, select, unbounded, Receiver};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use xbond_dataplane::engine::{AttachMode, Engine, PortSpec};
use xbond_dataplane::nic;
use xbond_dataplane::snapshot::{BondSnapshot, MemberId};
use xbond_dataplane::wire::vlan::{self as vlanwire, VidSet};
use xbond_dataplane::wire::{arp, MacAddr};
use xbond_dataplane::worker::{ControlFrame, Role};

/// Options of `xbond run` beyond the config file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Remove XDP programs other tools attached to members (else refuse).
    pub replace_xdp: bool,
}

/// Run every bond of `config` until a signal arrives.
pub fn run(mut config: Config, opts: RunOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.run_dir)
        .with_context(|| format!("create {}", config.run_dir.display()))?;
    if opts.replace_xdp {
        for b in &mut config.bonds {
            b.engine.replace_xdp = true;
        }
    }
    let (stop_tx, stop_rx) = bounded::<()>(1);
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    std::thread::Builder::new()
        .name("xbond-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                tracing::info!("signal {sig}: shutting down");
                let _ = stop_tx.send(());
            }
        })?;

    // Link events fan out to every bond.
    let (ev_tx, ev_rx) = unbounded::<LinkEvent>();
    spawn_link_listener(ev_tx).context("listen to netlink link events")?;
    let mut bond_event_txs = Vec::new();
    let mut runtimes = Vec::new();
    for b in &config.bonds {
        for w in &b.warnings {
            tracing::warn!(bond = %b.name, "{w}");
        }
        let (tx, rx) = unbounded();
        let reserved = reserved_for(&config, &b.name);
        match BondRuntime::start(b, &config.run_dir, rx, &reserved) {
            Ok(rt) => {
                bond_event_txs.push(tx);
                runtimes.push(rt);
            }
            Err(e) => {
                for mut rt in runtimes {
                    rt.teardown();
                }
                return Err(e.context(format!("bond {}", b.name)));
            }
        }
    }
    std::thread::Builder::new()
        .name("xbond-events".into())
        .spawn(move || {
            while let Ok(ev) = ev_rx.recv() {
                for tx in &bond_event_txs {
                    let _ = tx.send(ev.clone());
                }
            }
        })?;

    // One control loop per bond, each on its own thread.
    let mut threads = Vec::new();
    let mut stops = Vec::new();
    for mut rt in runtimes {
        let (tx, rx) = bounded::<()>(1);
        stops.push(tx);
        threads.push(
            std::thread::Builder::new()
                .name(format!("xbond-{}", rt.core.name))
                .spawn(move || {
                    rt.run(rx);
                    rt.teardown();
                })?,
        );
    }
    tracing::info!("running; SIGINT or SIGTERM stops");
    let _ = stop_rx.recv();
    for s in &stops {
        let _ = s.send(());
    }
    for t in threads {
        let _ = t.join();
    }
    tracing::info!("stopped; every XDP program detached and host interfaces removed");
    Ok(())
}

/// What to give back to a member when the bond lets it go.
#[derive(Debug)]
struct MemberRestore {
    index: u32,
    name: String,
    promisc: bool,
    disable_ipv6: Option<String>,
}

struct BondRuntime {
    core: BondCore,
    engine: Option<Engine>,
    nl: Netlink,
    host_index: u32,
    /// The hidden end of the host pair: down while the bond has no carrier.
    hidden_index: u32,
    socket: std::path::PathBuf,
    restore: Vec<MemberRestore>,
    addresses: Vec<(IpAddr, u8)>,
    events: Receiver<LinkEvent>,
    control: Receiver<ControlFrame>,
    calls: Receiver<Call>,
    missing: Vec<String>,
    /// Member selectors: a link that appears and matches one is enslaved.
    selectors: Vec<Selector>,
    /// Every ifindex seen so far: only a new link is a candidate for a
    /// selector (a member released by hand is not taken back).
    seen_links: ahash::AHashSet<u32>,
    /// Links no selector may take (other bonds' members and interfaces).
    reserved: Vec<Reserved>,
    vlans: Vec<VlanPort>,
    qinq: Qinq,
    mtu: u32,
    torn_down: bool,
    /// ARP/NS monitor: the interfaces probes leave through, read before
    /// each round, and each member's receive count at the last look.
    probe_sources: Vec<probe::Source>,
    rx_seen: Vec<u64>,
}

/// A VLAN sub-interface: its host pair and what xbond put on it.
#[derive(Debug)]
struct VlanPort {
    id: u16,
    name: String,
    host_index: u32,
    hidden_index: u32,
    hidden: String,
    mtu: u32,
}

/// The hidden end of the host-port veth pair.
fn hidden_name(bond: &str) -> String {
    if bond.len() <= 12 {
        format!("{bond}-xb")
    } else {
        format!("{}-xb", &bond[..12])
    }
}

fn sysctl_path(ifname: &str, key: &str) -> String {
    format!("/proc/sys/net/ipv6/conf/{ifname}/{key}")
}

fn set_disable_ipv6(ifname: &str, value: &str) -> Option<String> {
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
fn host_interfaces(cfg: &BondConfig) -> Vec<String> {
    let mut v = vec![cfg.name.clone(), hidden_name(&cfg.name)];
    for vl in &cfg.vlans {
        v.push(vl.name.clone());
        v.push(hidden_name(&vl.name));
    }
    v
}

/// What bond `me` may not take: the other bonds' named members and host
/// interfaces.
fn reserved_for(config: &Config, me: &str) -> Vec<Reserved> {
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
fn candidate(l: &Link, all: &[Link]) -> Candidate {
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

/// A host port's veth pair: reused when an earlier run left it (a restart
/// keeps the interface and its addresses), else created. Checksum offload
/// off on the host end, IPv6 off on the hidden end, both up. Returns (host,
/// hidden, created).
fn host_pair(
    nl: &mut Netlink,
    name: &str,
    hidden: &str,
    mtu: u32,
    mac: MacAddr,
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
        // Partial checksums would leave the members corrupt (gotcha 14).
        nic::set_tx_checksum(name, false)?;
        set_disable_ipv6(hidden, "1");
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

impl BondRuntime {
    fn start(
        cfg: &BondConfig,
        run_dir: &std::path::Path,
        events: Receiver<LinkEvent>,
        reserved: &[Reserved],
    ) -> anyhow::Result<Self> {
        let mut nl = Netlink::new().context("open rtnetlink")?;
        let now = Instant::now();

        // Members, in config order: names and selectors resolved against
        // the links there are; missing names are reported and skipped.
        let links = nl.links().context("list links")?;
        let candidates: Vec<Candidate> = links.iter().map(|l| candidate(l, &links)).collect();
        let resolved = members::resolve(&cfg.members, &candidates, reserved, &host_interfaces(cfg))
            .map_err(|e| anyhow::anyhow!("members: {e}"))?;
        let mut present: Vec<Link> = Vec::new();
        for name in &resolved.present {
            if let Some(l) = links.iter().find(|l| &l.name == name) {
                present.push(l.clone());
            }
        }
        let missing = resolved.missing.clone();
        for name in &missing {
            tracing::warn!(bond = %cfg.name, "member {name} does not exist; running without it");
        }
        if present.is_empty() {
            let all: Vec<String> = cfg.members.iter().map(ToString::to_string).collect();
            bail!("members: none of {} exists", all.join(", "));
        }
        tracing::info!(bond = %cfg.name, "members: {}", resolved.present.join(", "));
        for l in &present {
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
            if cfg.engine.xdp_mode == AttachMode::Native && l.mtu > 3506 {
                tracing::warn!(bond = %cfg.name, "{} has MTU {}: native XDP on veth needs <= 3506 (AFXDP.md gotcha 3)", l.name, l.mtu);
            }
        }

        // The bond MAC: configured, else the first member's permanent address.
        let first = &present[0];
        let bond_mac = cfg
            .mac
            .or(first.perm_mac)
            .or(first.mac)
            .context("the first member has no MAC address")?;
        let bond_mac = if cfg.options.fail_over_mac == FailOverMac::Active {
            first.perm_mac.or(first.mac).unwrap_or(bond_mac)
        } else {
            bond_mac
        };

        let mut rt_restore = Vec::new();
        let mut created_host = None;
        let host_name = cfg.name.clone();
        let hidden = hidden_name(&cfg.name);
        let setup = (|| -> anyhow::Result<(u32, u32)> {
            let (host, peer, created) = host_pair(&mut nl, &host_name, &hidden, cfg.mtu, bond_mac)
                .map_err(|e| e.context(format!("bond {}", cfg.name)))?;
            if created {
                created_host = Some(host);
            }
            for l in &present {
                let ipv6 = set_disable_ipv6(&l.name, "1");
                rt_restore.push(MemberRestore {
                    index: l.index,
                    name: l.name.clone(),
                    promisc: l.promisc,
                    disable_ipv6: ipv6,
                });
                // Members accept frames for the bond MAC without taking it.
                if !l.promisc {
                    nl.set_promisc(l.index, true)?;
                }
                if !l.admin_up {
                    nl.set_up(l.index, true)?;
                }
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

    fn start_engine(
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
        ipc::serve(&self.socket, call_tx)?;
        self.calls = call_rx;
        // Startup selection: publish and announce the first active member.
        self.run_actions();
        tracing::info!(bond = %cfg.name, "bond up; active member {:?}", self.core.status(Instant::now()).active_slave);
        Ok(())
    }

    /// The snapshot the workers get: the core's, plus the VLAN map.
    fn snapshot(&self) -> BondSnapshot {
        let mut s = self.core.snapshot();
        s.vlans = self.vlans.iter().map(|v| v.id).collect::<VidSet>();
        s.qinq_pass = self.qinq == Qinq::Pass;
        s
    }

    /// The host pair of VLAN `v`, named after it, with the bond's MAC.
    fn make_vlan_port(&mut self, v: &VlanConfig) -> anyhow::Result<VlanPort> {
        if v.mtu > self.mtu {
            bail!(
                "vlan {}: mtu {} is larger than the bond's {}",
                v.id,
                v.mtu,
                self.mtu
            );
        }
        let hidden = hidden_name(&v.name);
        let (host_index, hidden_index, _) =
            host_pair(&mut self.nl, &v.name, &hidden, v.mtu, self.core.bond_mac())
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

    fn add_vlan_addresses(&mut self, v: &VlanConfig) -> anyhow::Result<()> {
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
    fn vlan_config(
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
    fn vlan_ids(&self) -> Vec<u16> {
        self.vlans.iter().map(|v| v.id).collect()
    }

    fn vlan_list(&self) -> serde_json::Value {
        self.vlans
            .iter()
            .map(|v| serde_json::json!({ "id": v.id, "name": v.name, "mtu": v.mtu }))
            .collect()
    }

    /// `xbond vlan add`: the host pair, then the engine's sockets on it,
    /// then the snapshot that lets its frames through.
    fn vlan_add(&mut self, v: &VlanConfig) -> anyhow::Result<String> {
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
    fn vlan_del(&mut self, id: u16) -> anyhow::Result<String> {
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

    fn run(&mut self, stop: Receiver<()>) {
        let miimon = self.core.miimon();
        let mut next_poll = (miimon > Duration::ZERO).then(|| Instant::now() + miimon);
        let mut next_sample = None;
        loop {
            // Receive counters are read four times per ARP interval: traffic
            // other than probe replies counts as of that reading. The
            // interval may change at runtime.
            let sample_every = self
                .core
                .arp_monitor()
                .map(|a| (a.config().interval / 4).max(Duration::from_millis(1)));
            let now = Instant::now();
            next_sample = sample_every.map(|d| next_sample.unwrap_or(now + d).min(now + d));
            let deadline = [self.core.next_deadline(), next_poll, next_sample]
                .into_iter()
                .flatten()
                .min();
            let timeout =
                deadline.map_or(Duration::from_secs(1), |d| d.saturating_duration_since(now));
            select! {
                recv(stop) -> _ => break,
                recv(self.events) -> ev => if let Ok(ev) = ev { self.link_event(ev) },
                recv(self.control) -> f => if let Ok(f) = f { self.control_frame(f) },
                recv(self.calls) -> c => if let Ok((req, reply)) = c { let r = self.call(req); let _ = reply.send(r); },
                default(timeout) => {}
            }
            let now = Instant::now();
            if let Some(t) = next_poll {
                if now >= t {
                    self.poll_carriers(now);
                    let miimon = self.core.miimon();
                    next_poll = (miimon > Duration::ZERO).then(|| now + miimon);
                }
            } else if self.core.miimon() > Duration::ZERO {
                next_poll = Some(now + self.core.miimon());
            }
            if let (Some(t), Some(every)) = (next_sample, sample_every) {
                if now >= t {
                    self.sample_rx(now);
                    next_sample = Some(now + every);
                }
            }
            if self.core.arp_deadline().is_some_and(|d| now >= d) {
                self.refresh_probe_sources();
                self.sample_rx(now);
            }
            if self.core.lb_deadline().is_some_and(|d| now >= d) {
                if let Some(e) = &self.engine {
                    self.core.set_tx_load(e.tx_load());
                }
            }
            self.core.handle_timeout(now);
            self.run_actions();
        }
    }

    /// Tell the ARP monitor which members received anything since the last
    /// look (their receive counters moved).
    fn sample_rx(&mut self, now: Instant) {
        let Some(e) = &self.engine else { return };
        let mut totals = vec![0u64; usize::from(self.core.next_member_id())];
        for q in &e.queues {
            if let Role::Member(m) = q.role {
                if let Some(t) = totals.get_mut(usize::from(m)) {
                    *t += q
                        .counters
                        .rx_packets
                        .load(std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        self.rx_seen.resize(totals.len(), 0);
        for (m, total) in totals.into_iter().enumerate() {
            if total != self.rx_seen[m] {
                self.rx_seen[m] = total;
                self.core.handle_rx_activity(now, m as MemberId);
            }
        }
    }

    /// The addresses of the bond's host interface (VLAN 0) and of each VLAN
    /// interface, in one netlink dump.
    fn interface_addresses(&mut self) -> std::io::Result<Vec<probe::Source>> {
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
    fn refresh_probe_sources(&mut self) {
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
    fn send_probes(&mut self, member: MemberId) {
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

    fn link_event(&mut self, ev: LinkEvent) {
        let now = Instant::now();
        match ev {
            LinkEvent::Changed(l) => {
                let new = self.seen_links.insert(l.index);
                if let Some(id) = self.core.member_by_ifindex(l.index) {
                    self.core.handle_carrier(now, id, l.carrier);
                } else if self.missing.contains(&l.name) {
                    tracing::info!(bond = %self.core.name, "configured member {} appeared; enslaving it", l.name);
                    self.missing.retain(|m| *m != l.name);
                    if let Err(e) = self.add_member(&l.name) {
                        tracing::warn!(bond = %self.core.name, "could not enslave {}: {e:#}", l.name);
                    }
                } else if new && !self.selectors.is_empty() {
                    self.maybe_select(&l);
                }
            }
            LinkEvent::Removed { index, name } => {
                if self.core.member_by_ifindex(index).is_some() {
                    // As the kernel releases a slave that is unregistered;
                    // it is enslaved again if it comes back, as a configured
                    // member that appears.
                    tracing::warn!(bond = %self.core.name, "member {name} was deleted; releasing it");
                    if let Err(e) = self.remove_member(&name) {
                        tracing::warn!(bond = %self.core.name, "release {name}: {e:#}");
                    }
                    self.missing.push(name.clone());
                    self.core.note_missing(&name);
                } else if index == self.host_index {
                    tracing::error!(bond = %self.core.name, "host interface {name} was deleted under us");
                }
            }
        }
        self.run_actions();
    }

    /// A link that appeared: enslave it if a member selector matches and
    /// nothing else holds it.
    fn maybe_select(&mut self, l: &Link) {
        if self.is_own_interface(&l.name) || self.reserved.iter().any(|r| r.name == l.name) {
            return;
        }
        let all = self.nl.links().unwrap_or_default();
        let c = candidate(l, &all);
        let Some(sel) = self.selectors.iter().find(|s| s.matches(&c)) else {
            return;
        };
        if let Some(m) = &c.master {
            tracing::warn!(bond = %self.core.name, "{} matches selector {sel} but is enslaved to {m}; leaving it", l.name);
            return;
        }
        tracing::info!(bond = %self.core.name, "{} appeared and matches selector {sel}; enslaving it", l.name);
        if let Err(e) = self.add_member(&l.name) {
            tracing::warn!(bond = %self.core.name, "could not enslave {}: {e:#}", l.name);
        }
    }

    fn is_own_interface(&self, name: &str) -> bool {
        name == self.core.host_interface
            || name == hidden_name(&self.core.name)
            || self
                .vlans
                .iter()
                .any(|v| v.name == name || v.hidden == name)
    }

    fn poll_carriers(&mut self, now: Instant) {
        let ids: Vec<(MemberId, u32)> =
            self.core.members().map(|(id, m)| (id, m.ifindex)).collect();
        for (id, index) in ids {
            match self.nl.link_by_index(index) {
                Ok(Some(l)) => self.core.handle_carrier(now, id, l.carrier),
                Ok(None) => self.core.handle_carrier(now, id, false),
                Err(e) => tracing::debug!("miimon poll: {e}"),
            }
        }
    }

    fn control_frame(&mut self, f: ControlFrame) {
        let now = Instant::now();
        let bytes = f.bytes();
        match f.from {
            // Slow-protocol frames (LACP, marker) never reach the host
            // interface; 802.3ad runs them through its machines, the other
            // modes count them. Everything else from a member is a copy of
            // an ARP or NS/NA frame (the ARP/NS monitor, balance-alb).
            Role::Member(m) if bytes.get(12..14) == Some(&[0x88, 0x09]) => {
                self.core.handle_slow_frame(now, m, bytes)
            }
            Role::Member(m) => self.core.handle_probe_frame(now, m, bytes),
            // balance-alb: ARP the host sent that changes the client table.
            Role::Host(vid) => self.core.handle_host_frame(vid, bytes),
        }
        self.run_actions();
    }

    fn run_actions(&mut self) {
        while let Some(a) = self.core.poll_action() {
            match a {
                Action::Publish => {
                    if let Some(e) = &self.engine {
                        e.publish(self.snapshot());
                    }
                }
                Action::NotifyPeers { member } => self.notify_peers(member),
                Action::Probe { member } => self.send_probes(member),
                Action::SendFrame { member, frame } => {
                    if let Some(e) = &self.engine {
                        if !e.transmit(member, frame) {
                            tracing::debug!(bond = %self.core.name, "no worker took a control frame for member {member}");
                        }
                    }
                }
                Action::Carrier(up) => {
                    // A veth has no carrier switch of its own: the host
                    // interface loses carrier when its hidden peer is down.
                    if let Err(e) = self.nl.set_up(self.hidden_index, up) {
                        tracing::error!(bond = %self.core.name, "bond carrier {up}: {e}");
                    }
                    // VLAN interfaces follow the bond's carrier.
                    for v in &self.vlans {
                        if let Err(e) = self.nl.set_up(v.hidden_index, up) {
                            tracing::error!(bond = %self.core.name, "{} carrier {up}: {e}", v.name);
                        }
                    }
                }
                Action::SetBondMac(mac) => {
                    if let Err(e) = self.nl.set_mac(self.host_index, mac) {
                        tracing::error!(bond = %self.core.name, "fail_over_mac=active: {e}");
                    }
                }
            }
        }
    }

    /// Gratuitous ARP for every IPv4 address of the host interface and of
    /// every VLAN interface (tagged with its VLAN, as the kernel's VLAN
    /// devices answer NETDEV_NOTIFY_PEERS), out of the (new) active member.
    fn notify_peers(&mut self, member: MemberId) {
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

    fn call(&mut self, req: Request) -> Response {
        match req {
            Request::Status => match serde_json::to_value(self.core.status(Instant::now())) {
                Ok(v) => Response::ok(v),
                Err(e) => Response::err(e.to_string()),
            },
            Request::Stats => Response::ok(self.stats()),
            Request::Mac => {
                Response::ok(serde_json::Value::String(self.core.bond_mac().to_string()))
            }
            Request::Hash { frame } => match crate::hashcmd::parse_hex(&frame) {
                Ok(bytes) => {
                    let core = &self.core;
                    let name = |m: u16| {
                        core.member(m)
                            .map_or_else(|| format!("member{m}"), |i| i.name.clone())
                    };
                    let report = crate::hashcmd::explain(&core.snapshot(), &name, &bytes);
                    match serde_json::to_value(report) {
                        Ok(v) => Response::ok(v),
                        Err(e) => Response::err(e.to_string()),
                    }
                }
                Err(e) => Response::err(format!("{e:#}")),
            },
            Request::VlanAdd {
                id,
                name,
                mtu,
                addresses,
            } => {
                let r = self
                    .vlan_config(id, name, mtu, addresses)
                    .and_then(|v| self.vlan_add(&v));
                match r {
                    Ok(msg) => {
                        tracing::info!(bond = %self.core.name, "{msg}");
                        Response::ok(serde_json::Value::String(msg))
                    }
                    Err(e) => Response::err(format!("vlan add: {e:#}")),
                }
            }
            Request::VlanDel { id } => match self.vlan_del(id) {
                Ok(msg) => {
                    tracing::info!(bond = %self.core.name, "{msg}");
                    Response::ok(serde_json::Value::String(msg))
                }
                Err(e) => Response::err(format!("vlan del: {e:#}")),
            },
            Request::VlanList => Response::ok(self.vlan_list()),
            Request::Alb => match self.core.alb_view() {
                Some(v) => match serde_json::to_value(v) {
                    Ok(v) => Response::ok(v),
                    Err(e) => Response::err(e.to_string()),
                },
                None => Response::err(format!(
                    "{} is in mode {}: only balance-tlb and balance-alb have these tables",
                    self.core.name,
                    self.core.options().mode.name()
                )),
            },
            Request::Set { key, value } if key == "slaves" => match self.set_slaves(&value) {
                Ok(msg) => Response::ok(serde_json::Value::String(msg)),
                Err(e) => Response::err(format!("slaves: {e:#}")),
            },
            Request::Set { key, value } => {
                let r = self.core.set_option(Instant::now(), &key, &value);
                self.run_actions();
                match r {
                    Ok(msg) => {
                        tracing::info!(bond = %self.core.name, "set {key}={value}: {msg}");
                        Response::ok(serde_json::Value::String(msg))
                    }
                    Err(e) => Response::err(e),
                }
            }
        }
    }

    /// `+IF` adds a member, `-IF` releases one, as the kernel's
    /// `/sys/class/net/BOND/bonding/slaves` takes them.
    fn set_slaves(&mut self, value: &str) -> anyhow::Result<String> {
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
    fn add_member(&mut self, name: &str) -> anyhow::Result<()> {
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
        let ipv6 = set_disable_ipv6(&l.name, "1");
        let restore = MemberRestore {
            index: l.index,
            name: l.name.clone(),
            promisc: l.promisc,
            disable_ipv6: ipv6,
        };
        let prepared = (|| -> anyhow::Result<()> {
            if !l.promisc {
                self.nl.set_promisc(l.index, true)?;
            }
            if !l.admin_up {
                self.nl.set_up(l.index, true)?;
            }
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
        if let Err(e) = prepared {
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
    fn remove_member(&mut self, name: &str) -> anyhow::Result<()> {
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

    fn stats(&self) -> serde_json::Value {
        let lacp: Vec<crate::stats::LacpRow> = match self.core.lacp() {
            Some(l) => self
                .core
                .members()
                .filter_map(|(id, m)| {
                    Some(crate::stats::LacpRow {
                        member: m.name.clone(),
                        counters: l.counters(id)?,
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        let arp_rows: Vec<crate::stats::ArpRow> = self
            .core
            .members()
            .filter_map(|(id, m)| {
                Some(crate::stats::ArpRow {
                    member: m.name.clone(),
                    counters: self.core.arp_counters(id)?,
                })
            })
            .collect();
        let mut ports = Vec::new();
        if let Some(e) = &self.engine {
            for q in &e.queues {
                let c = q.counters.snapshot();
                let x = q.socket_stats().unwrap_or_default();
                let drops: serde_json::Map<String, serde_json::Value> = c
                    .drops
                    .iter()
                    .map(|(k, v)| (k.to_string(), (*v).into()))
                    .collect();
                ports.push(serde_json::json!({
                    "port": q.port,
                    "role": match q.role { Role::Host(0) => "host".to_string(), Role::Host(v) => format!("vlan {v}"), Role::Member(_) => "member".to_string() },
                    "queue": q.queue,
                    "worker": q.worker,
                    "rx_packets": c.rx_packets,
                    "rx_bytes": c.rx_bytes,
                    "tx_packets": c.tx_packets,
                    "tx_bytes": c.tx_bytes,
                    "to_control": c.to_control,
                    "drops": drops,
                    "xdp": {
                        "rx_dropped": x.rx_dropped,
                        "rx_invalid_descs": x.rx_invalid_descs,
                        "tx_invalid_descs": x.tx_invalid_descs,
                        "rx_ring_full": x.rx_ring_full,
                        "rx_fill_ring_empty_descs": x.rx_fill_ring_empty_descs,
                        "tx_ring_empty_descs": x.tx_ring_empty_descs,
                    },
                }));
            }
        }
        let alb = self.core.alb().map(|a| {
            let c = a.counters();
            let fast = self.engine.as_ref().map_or(0, |e| e.tx_load().arp_replies);
            crate::stats::AlbStats {
                arp_replies_rewritten: c.arp_rewritten + fast,
                arp_updates_sent: c.arp_updates,
                tx_rebalances: c.tx_rebalances,
                rx_rebalances: c.rx_rebalances,
                learning_packets: c.learning_packets,
            }
        });
        serde_json::json!({
            "bond": self.core.name,
            "ports": ports,
            "control": { "foreign_slow_protocol_frames": self.core.foreign_slow_frames() },
            "lacp": lacp,
            "arp_monitor": arp_rows,
            "alb": alb,
        })
    }

    fn teardown(&mut self) {
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

/// What the bond keeps of a member link: the address it joined with (the
/// kernel's perm_hwaddr), speed, duplex and queues.
fn member_info(l: &Link) -> MemberInfo {
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
fn rx_queues(l: &Link) -> u32 {
    nic::rx_channels(&l.name).unwrap_or(l.rx_queues).max(1)
}

fn restore_members(nl: &mut Netlink, list: &[MemberRestore]) {
    for r in list {
        if !r.promisc {
            if let Err(e) = nl.set_promisc(r.index, false) {
                tracing::debug!("restore {}: {e}", r.name);
            }
        }
        if let Some(v) = &r.disable_ipv6 {
            set_disable_ipv6(&r.name, v);
        }
    }
}

impl VlanPort {
    fn port_spec(&self) -> PortSpec {
        PortSpec {
            role: Role::Host(self.id),
            ifindex: self.hidden_index,
            name: self.hidden.clone(),
            queues: 1,
        }
    }
}

/// One line saying what `xbond run` would build for this bond.
pub fn describe(cfg: &BondConfig) -> String {
    let members: Vec<String> = cfg.members.iter().map(ToString::to_string).collect();
    let mut line = format!(
        "bond {}: mode {}, members {}, miimon {} ms, host interface {} (mtu {})",
        cfg.name,
        cfg.options.mode,
        members.join(", "),
        cfg.options.miimon,
        cfg.name,
        cfg.mtu
    );
    for v in &cfg.vlans {
        line.push_str(&format!(", VLAN {} on {} (mtu {})", v.id, v.name, v.mtu));
    }
    line
}
