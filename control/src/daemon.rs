//! `xbond run`: builds each bond (host interface, members, dataplane), runs its
//! control loop — the only place that reads the clock and owns sockets — until
//! SIGINT/SIGTERM, then detaches everything and removes what it created.

use crate::bond::{Action, BondCore, MemberInfo};
use crate::config::options::FailOverMac;
use crate::config::{parse_prefix, BondConfig, Config};
use crate::engine::{Engine, PortSpec};
use crate::ipc::{self, Call, Request, Response};
use crate::netlink::{spawn_link_listener, Link, LinkEvent, Netlink};
use anyhow::{bail, Context};
use crossbeam::channel::{bounded, select, unbounded, Receiver};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use xbond_dataplane::snapshot::MemberId;
use xbond_dataplane::sys::ethtool;
use xbond_dataplane::wire::arp;
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
        match BondRuntime::start(b, &config.run_dir, rx) {
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
    torn_down: bool,
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

impl BondRuntime {
    fn start(
        cfg: &BondConfig,
        run_dir: &std::path::Path,
        events: Receiver<LinkEvent>,
    ) -> anyhow::Result<Self> {
        let mut nl = Netlink::new().context("open rtnetlink")?;
        let now = Instant::now();

        // Members, in config order; missing ones are reported and skipped.
        let mut present: Vec<Link> = Vec::new();
        let mut missing = Vec::new();
        for name in &cfg.members {
            match nl.link_by_name(name)? {
                Some(l) => {
                    if l.name == cfg.name || l.name == hidden_name(&cfg.name) {
                        bail!("members: {name} is this bond's own host interface");
                    }
                    present.push(l)
                }
                None => {
                    tracing::warn!(bond = %cfg.name, "member {name} does not exist; running without it");
                    missing.push(name.clone());
                }
            }
        }
        if present.is_empty() {
            bail!("members: none of {} exists", cfg.members.join(", "));
        }
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
            if cfg.engine.xdp_mode == crate::config::XdpMode::Native && l.mtu > 3506 {
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
            // Host port: reuse a pair left by an earlier run (a restart keeps
            // the host interface and its addresses), else create it.
            let existing = nl.link_by_name(&host_name)?;
            let (host, peer) = match existing {
                Some(h) => {
                    let peer = nl.link_by_name(&hidden)?;
                    match (h.kind.as_deref(), peer) {
                        (Some("veth"), Some(p)) if h.peer == Some(p.index) => {
                            tracing::info!(bond = %cfg.name, "reusing host interface {host_name} from an earlier run");
                            (h, p)
                        }
                        _ => bail!("interface {host_name} exists and is not an xbond host port; remove it or rename the bond"),
                    }
                }
                None => {
                    nl.create_veth(&host_name, &hidden, cfg.mtu, bond_mac, 1)?;
                    let h = nl
                        .link_by_name(&host_name)?
                        .context("host interface vanished")?;
                    let p = nl
                        .link_by_name(&hidden)?
                        .context("host port peer vanished")?;
                    created_host = Some(h.index);
                    (h, p)
                }
            };
            if created_host.is_none() {
                nl.set_mtu(peer.index, cfg.mtu)?;
                nl.set_mtu(host.index, cfg.mtu)?;
                nl.set_mac(host.index, bond_mac)?;
            }
            // Partial checksums would leave the members corrupt (gotcha 14).
            ethtool::set_tx_checksum(&host_name, false)?;
            set_disable_ipv6(&hidden, "1");
            nl.set_up(peer.index, true)?;
            nl.set_up(host.index, true)?;
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
            Ok((host.index, peer.index))
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
            torn_down: false,
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
            role: Role::Host,
            ifindex: peer_index,
            name: hidden_name(&cfg.name),
            queues: 1,
        });
        let (ctl_tx, ctl_rx) = bounded(4096);
        let engine = Engine::start(&cfg.engine, &ports, self.core.snapshot(), ctl_tx)?;
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
        let (call_tx, call_rx) = bounded(16);
        ipc::serve(&self.socket, call_tx)?;
        self.calls = call_rx;
        // Startup selection: publish and announce the first active member.
        self.run_actions();
        tracing::info!(bond = %cfg.name, "bond up; active member {:?}", self.core.status().active_slave);
        Ok(())
    }

    fn run(&mut self, stop: Receiver<()>) {
        let miimon = self.core.miimon();
        let mut next_poll = (miimon > Duration::ZERO).then(|| Instant::now() + miimon);
        loop {
            let now = Instant::now();
            let deadline = [self.core.next_deadline(), next_poll]
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
            self.core.handle_timeout(now);
            self.run_actions();
        }
    }

    fn link_event(&mut self, ev: LinkEvent) {
        let now = Instant::now();
        match ev {
            LinkEvent::Changed(l) => {
                if let Some(id) = self.core.member_by_ifindex(l.index) {
                    self.core.handle_carrier(now, id, l.carrier);
                } else if self.missing.contains(&l.name) {
                    tracing::info!(bond = %self.core.name, "configured member {} appeared; enslaving it", l.name);
                    self.missing.retain(|m| *m != l.name);
                    if let Err(e) = self.add_member(&l.name) {
                        tracing::warn!(bond = %self.core.name, "could not enslave {}: {e:#}", l.name);
                    }
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
        // Slow-protocol frames (LACP, marker) never reach the host
        // interface; 802.3ad runs them through its machines, the other
        // modes count them.
        if f.member == MemberId::MAX {
            return;
        }
        self.core
            .handle_slow_frame(Instant::now(), f.member, f.bytes());
        self.run_actions();
    }

    fn run_actions(&mut self) {
        while let Some(a) = self.core.poll_action() {
            match a {
                Action::Publish => {
                    if let Some(e) = &self.engine {
                        e.publish(self.core.snapshot());
                    }
                }
                Action::NotifyPeers { member } => self.notify_peers(member),
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
                }
                Action::SetBondMac(mac) => {
                    if let Err(e) = self.nl.set_mac(self.host_index, mac) {
                        tracing::error!(bond = %self.core.name, "fail_over_mac=active: {e}");
                    }
                }
            }
        }
    }

    /// Gratuitous ARP for every IPv4 address of the host interface, out of
    /// the (new) active member.
    fn notify_peers(&mut self, member: MemberId) {
        let addrs = match self.nl.addresses(self.host_index) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(bond = %self.core.name, "peer notification: cannot read addresses: {e}");
                return;
            }
        };
        let mac = self.core.bond_mac();
        let Some(engine) = &self.engine else { return };
        let mut sent = 0;
        for (ip, _) in addrs {
            if let IpAddr::V4(v4) = ip {
                if engine.transmit(member, arp::Repr::gratuitous_frame(mac, v4).to_vec()) {
                    sent += 1;
                }
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
            Request::Status => match serde_json::to_value(self.core.status()) {
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
            engine.add_member(&PortSpec {
                role: Role::Member(id),
                ifindex: l.index,
                name: l.name.clone(),
                queues: rx_queues(&l),
            })
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
            let n = e.remove_member(id, info.ifindex)?;
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
        let mut ports = Vec::new();
        if let Some(e) = &self.engine {
            for q in &e.queues {
                let c = q.counters.snapshot();
                let x = q.socket.read().unwrap_or_default();
                let drops: serde_json::Map<String, serde_json::Value> = c
                    .drops
                    .iter()
                    .map(|(k, v)| (k.to_string(), (*v).into()))
                    .collect();
                ports.push(serde_json::json!({
                    "port": q.port,
                    "role": match q.role { Role::Host => "host".to_string(), Role::Member(_) => "member".to_string() },
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
        serde_json::json!({
            "bond": self.core.name,
            "ports": ports,
            "control": { "foreign_slow_protocol_frames": self.core.foreign_slow_frames() },
            "lacp": lacp,
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
    let settings = ethtool::link_settings(&l.name).unwrap_or_default();
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
    ethtool::rx_channels(&l.name).unwrap_or(l.rx_queues).max(1)
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

/// One line saying what `xbond run` would build for this bond.
pub fn describe(cfg: &BondConfig) -> String {
    format!(
        "bond {}: mode {}, members {}, miimon {} ms, host interface {} (mtu {})",
        cfg.name,
        cfg.options.mode,
        cfg.members.join(", "),
        cfg.options.miimon,
        cfg.name,
        cfg.mtu
    )
}
