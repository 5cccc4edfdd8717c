//! The dataplane of one bond: frame areas, one AF_XDP socket per (port,
//! queue), an XSKMAP and redirect program per interface attached through a BPF
//! link, and the workers that serve them.

mod error;

pub use crate::sys::abi::XdpStatistics;
pub use crate::sys::bpf::AttachMode;
pub use crate::sys::xsk::BindMode;
pub use error::EngineError;

use crate::counters::PortCounters;
use crate::lb::{LoadTotals, TxLoad};
use crate::snapshot::{BondSnapshot, MemberId, Shared};
use crate::sys::bpf::{XdpAction, XdpLink, XdpProgram, XskMap};
use crate::sys::waker::Waker;
pub use crate::sys::xsk::SocketInfo;
use crate::sys::xsk::{StatsHandle, XskConfig, XskSocket};
use crate::worker::{
    ControlFrame, HostGso, PollPolicy, Role, Worker, WorkerCommand, WorkerConfig, WorkerHandle,
    WorkerJob,
};
use crate::{FrameArea, FramePool};
use crossbeam::channel::{bounded, Sender};
use error::Context;
use std::sync::Arc;

/// How the engine runs (`[bond.NAME]` engine keys; not kernel options).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EngineConfig {
    /// Native (driver) or generic (skb) XDP.
    pub xdp_mode: AttachMode,
    pub xdp_bind: BindMode,
    /// Remove an XDP program someone else attached to a member instead of
    /// refusing to start.
    pub replace_xdp: bool,
    pub poll: PollPolicy,
    pub workers: u32,
    /// Cores to pin workers to, in order; empty: the last cores.
    pub cpus: Vec<usize>,
    pub ring_size: u32,
    /// Frames per worker; 0: enough for every ring of its ports.
    pub frame_count: u32,
    pub frame_size: u32,
    pub busy_poll_usecs: Option<u32>,
    pub busy_poll_budget: Option<u32>,
    pub tx_skb_budget: Option<u32>,
    /// How the bond's own interface is read.
    pub host_port: HostPortKind,
}

/// How the bond's own host interface is read (`host_port`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostPortKind {
    /// AF_XDP, like the members: the host's packets arrive cut to the MTU.
    AfXdp,
    /// AF_PACKET with virtio-net headers: the host's TSO/GSO packets cross
    /// the bond whole and leave the members through AF_PACKET (`worker/gso.rs`).
    #[default]
    AfPacket,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            xdp_mode: AttachMode::Native,
            xdp_bind: BindMode::Auto,
            replace_xdp: false,
            poll: PollPolicy::Adaptive,
            workers: 1,
            cpus: Vec::new(),
            // Deep enough that a worker preempted for a few milliseconds
            // under full TCP load loses nothing (the fill ring ran dry at
            // 2048: `rx_fill_ring_empty_descs`).
            ring_size: 4096,
            frame_count: 0,
            frame_size: 4096,
            busy_poll_usecs: None,
            busy_poll_budget: None,
            tx_skb_budget: None,
            host_port: HostPortKind::AfPacket,
        }
    }
}

/// A port the engine serves.
#[derive(Debug, Clone)]
pub struct PortSpec {
    pub role: Role,
    pub ifindex: u32,
    pub name: String,
    pub queues: u32,
}

/// Counters and socket statistics of one (port, queue).
#[derive(Debug)]
pub struct QueueStats {
    pub port: String,
    pub role: Role,
    pub queue: u32,
    pub worker: usize,
    pub counters: Arc<PortCounters>,
    /// What the socket got: zero-copy or copy, multi-buffer, TX metadata.
    pub info: SocketInfo,
    /// How the port's XDP program is attached.
    pub xdp_mode: AttachMode,
    /// The bond's own interface read and written through AF_PACKET
    /// (`host_port = "af_packet"`): no XDP program on it, and its AF_XDP
    /// socket carries only what is not TCP.
    pub af_packet: bool,
    socket: StatsHandle,
}

impl QueueStats {
    /// The kernel's statistics of the queue's AF_XDP socket.
    pub fn socket_stats(&self) -> std::io::Result<XdpStatistics> {
        self.socket.read()
    }
}

/// The XDP side of one port: its XSKMAP, redirect program and BPF link.
struct PortXdp {
    ifindex: u32,
    // The link before the program and map: detach first.
    _link: XdpLink,
    _prog: XdpProgram,
    _map: XskMap,
}

pub struct Engine {
    pub shared: Arc<Shared>,
    workers: Vec<WorkerHandle>,
    ports: Vec<PortXdp>,
    pub queues: Vec<QueueStats>,
    /// For each member, the workers that can transmit on it.
    member_workers: Vec<Vec<usize>>,
    /// Each worker's balance-tlb/alb transmit counts.
    tx_loads: Vec<Arc<TxLoad>>,
    xsk_cfg: XskConfig,
    attach: AttachMode,
}

/// How long control waits for a worker to add or remove a port.
const WORKER_JOB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

impl Engine {
    pub fn start(
        cfg: &EngineConfig,
        ports: &[PortSpec],
        initial: BondSnapshot,
        to_control: Sender<ControlFrame>,
    ) -> Result<Engine, EngineError> {
        let min_queues = ports.iter().map(|p| p.queues).min().unwrap_or(1).max(1);
        let nworkers = cfg.workers.min(min_queues).max(1) as usize;
        if nworkers < cfg.workers as usize {
            tracing::warn!("workers = {} but a port has only {min_queues} queue(s): running {nworkers} worker(s)", cfg.workers);
        }
        let xsk_cfg = XskConfig {
            ring_size: cfg.ring_size,
            bind: cfg.xdp_bind,
            busy_poll_usecs: cfg.busy_poll_usecs,
            busy_poll_budget: cfg.busy_poll_budget,
            tx_skb_budget: cfg.tx_skb_budget,
        };
        let wcfg = WorkerConfig {
            policy: cfg.poll,
            // The whole fill ring: a burst the worker cannot keep up with
            // lands in frames it handed out before (issue 23: half the ring
            // held half the burst).
            fill_target: cfg.ring_size,
            txq_capacity: cfg.ring_size as usize,
        };
        let shared = Shared::new(initial);
        let maps: Vec<XskMap> = ports
            .iter()
            .map(|p| XskMap::new(p.queues).context(|| format!("XSKMAP for {}", p.name)))
            .collect::<Result<_, _>>()?;

        let mut queues = Vec::new();
        let mut member_workers: Vec<Vec<usize>> = Vec::new();
        let mut tx_loads = Vec::new();
        let mut pending = Vec::new();
        for w in 0..nworkers {
            let mine = queues_of_worker(ports, nworkers, w);
            if mine.is_empty() {
                continue;
            }
            let frames = if cfg.frame_count > 0 {
                cfg.frame_count
            } else {
                // Per socket a full fill ring and a full TX ring, and some
                // for the queues in between.
                mine.len() as u32 * (wcfg.fill_target + cfg.ring_size) + 1024
            };
            let mut pool = FramePool::new(
                FrameArea::mmap(frames, cfg.frame_size)
                    .context(|| format!("frame area of {frames} frames"))?,
            );
            let sockets = open_sockets(&mut pool, ports, &maps, &mine, &xsk_cfg)?;
            let (cmd_tx, cmd_rx) = bounded(1024);
            let waker = Arc::new(Waker::new().context(|| "worker waker".into())?);
            let mut worker = Worker::new(
                pool,
                Arc::clone(&shared),
                to_control.clone(),
                cmd_rx,
                waker,
                wcfg.clone(),
            );
            tx_loads.push(worker.tx_load());
            for (s, &(pi, q)) in sockets.into_iter().zip(&mine) {
                let p = &ports[pi];
                let counters = Arc::new(PortCounters::default());
                queues.push(QueueStats {
                    port: p.name.clone(),
                    role: p.role,
                    queue: q,
                    worker: pending.len(),
                    counters: Arc::clone(&counters),
                    info: s.info(),
                    xdp_mode: cfg.xdp_mode,
                    af_packet: cfg.host_port == HostPortKind::AfPacket && p.role == Role::Host(0),
                    socket: s
                        .stats_handle()
                        .context(|| format!("statistics of {} queue {q}", p.name))?,
                });
                if let Role::Member(m) = p.role {
                    serves_member(&mut member_workers, m, pending.len());
                }
                worker
                    .add_xsk(s, p.role, counters)
                    .context(|| format!("AF_XDP socket on {} queue {q}", p.name))?;
            }
            if w == 0 && cfg.host_port == HostPortKind::AfPacket {
                worker.set_host_gso(host_gso(ports)?);
            }
            worker.prime();
            pending.push((worker, cmd_tx));
        }

        // Sockets are in the maps and fill rings are primed: now attach.
        let mode = cfg.xdp_mode;
        let mut attached = Vec::new();
        for (p, map) in ports.iter().zip(maps) {
            if cfg.host_port == HostPortKind::AfPacket && p.role == Role::Host(0) {
                // No program: the host's packets are read whole through
                // AF_PACKET, and a program would make the veth cut them.
                continue;
            }
            attached.push(attach(p, map, mode)?);
        }

        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let mut workers = Vec::new();
        for (i, (worker, cmd_tx)) in pending.into_iter().enumerate() {
            let core = worker_core(&cfg.cpus, &cores, i)?;
            workers.push(
                WorkerHandle::spawn(worker, format!("xbond-worker{i}"), core, cmd_tx)
                    .context(|| format!("start worker {i}"))?,
            );
        }
        Ok(Engine {
            shared,
            workers,
            ports: attached,
            queues,
            member_workers,
            tx_loads,
            xsk_cfg,
            attach: mode,
        })
    }

    /// What every worker has sent per balance-tlb/alb transmit bucket.
    pub fn tx_load(&self) -> LoadTotals {
        let mut t = LoadTotals::default();
        for l in &self.tx_loads {
            l.add_to(&mut t);
        }
        t
    }

    /// Serve a port added at runtime (a member, or a VLAN's host port): a
    /// socket on each of its queues in the worker that owns that queue
    /// number (sharing the worker's UMEM), the XSKMAP filled, then the
    /// program attached. The snapshot names the member or VLAN only after
    /// this returns, so no frame is sent to it before its sockets exist.
    pub fn add_port(&mut self, spec: &PortSpec) -> Result<(), EngineError> {
        let map = XskMap::new(spec.queues).context(|| format!("XSKMAP for {}", spec.name))?;
        let n = self.workers.len().max(1);
        let mut added = Vec::new();
        let result = (|| -> Result<(), EngineError> {
            for q in 0..spec.queues {
                let w = q as usize % n;
                let (tx, rx) = bounded(1);
                let cfg = self.xsk_cfg.clone();
                let counters = Arc::new(PortCounters::default());
                let c = Arc::clone(&counters);
                let (ifindex, role) = (spec.ifindex, spec.role);
                let job: WorkerJob = Box::new(move |wk: &mut Worker| {
                    let r = wk.new_socket(ifindex, q, &cfg).and_then(|s| {
                        let fd = s.fd();
                        let stats = s.stats_handle()?;
                        let info = s.info();
                        wk.add_xsk(s, role, c)?;
                        if let (Role::Member(m), Some(g)) = (role, wk.host_gso_mut()) {
                            g.add_member(m, ifindex)?;
                        }
                        wk.prime();
                        Ok((fd, stats, info))
                    });
                    let _ = tx.send(r);
                });
                if !self.workers[w].send(WorkerCommand::Exec(job)) {
                    return Err(EngineError::WorkerGone(w));
                }
                let (fd, socket, info) = rx
                    .recv_timeout(WORKER_JOB_TIMEOUT)
                    .map_err(|_| EngineError::WorkerTimeout(w))?
                    .context(|| format!("AF_XDP socket on {} queue {q}", spec.name))?;
                added.push(w);
                map.set(q, fd)
                    .context(|| format!("XSKMAP entry {} queue {q}", spec.name))?;
                self.queues.push(QueueStats {
                    port: spec.name.clone(),
                    role,
                    queue: q,
                    worker: w,
                    counters,
                    info,
                    xdp_mode: self.attach,
                    af_packet: false,
                    socket,
                });
            }
            Ok(())
        })();
        if let Role::Member(m) = spec.role {
            let m = m as usize;
            if self.member_workers.len() <= m {
                self.member_workers.resize(m + 1, Vec::new());
            }
            for &w in &added {
                if !self.member_workers[m].contains(&w) {
                    self.member_workers[m].push(w);
                }
            }
        }
        let attached = result.and_then(|()| attach(spec, map, self.attach));
        match attached {
            Ok(p) => {
                self.ports.push(p);
                Ok(())
            }
            Err(e) => {
                let _ = self.remove_port_from(spec.role, spec.ifindex, added);
                Err(e)
            }
        }
    }

    /// Stop serving a port: its program is detached (a member's frames go
    /// to its own stack again), then each worker sends what it had queued
    /// for it and closes its sockets, taking every frame back. Call after a
    /// publish without the member or VLAN. Returns the frames recovered.
    pub fn remove_port(&mut self, role: Role, ifindex: u32) -> Result<u32, EngineError> {
        let workers: Vec<usize> = match role {
            Role::Member(m) => self
                .member_workers
                .get_mut(m as usize)
                .map(std::mem::take)
                .unwrap_or_default(),
            Role::Host(_) => {
                let mut w: Vec<usize> = self
                    .queues
                    .iter()
                    .filter(|q| q.role == role)
                    .map(|q| q.worker)
                    .collect();
                w.dedup();
                w
            }
        };
        self.remove_port_from(role, ifindex, workers)
    }

    fn remove_port_from(
        &mut self,
        role: Role,
        ifindex: u32,
        workers: Vec<usize>,
    ) -> Result<u32, EngineError> {
        self.ports.retain(|p| p.ifindex != ifindex);
        let mut recovered = 0;
        for w in workers {
            let (tx, rx) = bounded(1);
            let job: WorkerJob = Box::new(move |wk: &mut Worker| {
                let _ = tx.send(wk.remove_ports(role));
            });
            if !self.workers[w].send(WorkerCommand::Exec(job)) {
                return Err(EngineError::WorkerGone(w));
            }
            recovered += rx
                .recv_timeout(WORKER_JOB_TIMEOUT)
                .map_err(|_| EngineError::WorkerTimeout(w))?;
        }
        self.queues.retain(|q| q.role != role);
        Ok(recovered)
    }

    pub fn publish(&self, snap: BondSnapshot) {
        self.shared.publish(snap);
    }

    /// Send a frame from control out of a member, ahead of data.
    pub fn transmit(&self, member: MemberId, frame: Vec<u8>) -> bool {
        let Some(&w) = self
            .member_workers
            .get(member as usize)
            .and_then(|v| v.first())
        else {
            return false;
        };
        self.workers[w].send(WorkerCommand::Transmit { member, frame })
    }

    pub fn attached(&self) -> usize {
        self.ports.len()
    }

    /// Stop the workers, close the sockets, detach the programs.
    pub fn stop(&mut self) {
        self.shared
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        for w in &mut self.workers {
            w.join();
        }
        self.workers.clear();
        self.ports.clear();
    }
}

/// The AF_PACKET side of `host_port = "af_packet"`: a reader on the bond's
/// host interface and a writer on every member.
fn host_gso(ports: &[PortSpec]) -> Result<HostGso, EngineError> {
    let host = ports
        .iter()
        .find(|p| p.role == Role::Host(0))
        .ok_or(EngineError::NoHostPort)?;
    let mut g =
        HostGso::new(host.ifindex).context(|| format!("AF_PACKET socket on {}", host.name))?;
    for p in ports {
        if let Role::Member(m) = p.role {
            g.add_member(m, p.ifindex)
                .context(|| format!("AF_PACKET socket on {}", p.name))?;
        }
    }
    Ok(g)
}

/// Worker `w` serves a queue of member `m`: control's frames for the
/// member may go through it.
fn serves_member(member_workers: &mut Vec<Vec<usize>>, m: MemberId, w: usize) {
    let m = usize::from(m);
    if member_workers.len() <= m {
        member_workers.resize(m + 1, Vec::new());
    }
    if !member_workers[m].contains(&w) {
        member_workers[m].push(w);
    }
}

/// The (port, queue) pairs worker `w` of `nworkers` serves: queue q of
/// every port goes to worker q mod nworkers.
fn queues_of_worker(ports: &[PortSpec], nworkers: usize, w: usize) -> Vec<(usize, u32)> {
    ports
        .iter()
        .enumerate()
        .flat_map(|(pi, p)| {
            (0..p.queues)
                .filter(move |q| *q as usize % nworkers == w)
                .map(move |q| (pi, q))
        })
        .collect()
}

/// One socket per (port, queue) of a worker, in the port's XSKMAP. The
/// first registers the worker's frame area as the UMEM; the others share
/// it and take what the first got (TX metadata).
fn open_sockets(
    pool: &mut FramePool,
    ports: &[PortSpec],
    maps: &[XskMap],
    mine: &[(usize, u32)],
    xsk_cfg: &XskConfig,
) -> Result<Vec<XskSocket>, EngineError> {
    let mut sockets: Vec<XskSocket> = Vec::new();
    for &(pi, q) in mine {
        let p = &ports[pi];
        let owner = sockets.first().map(XskSocket::borrow_fd);
        let mut s = XskSocket::new(pool, owner, p.ifindex, q, xsk_cfg)
            .context(|| format!("AF_XDP socket on {} queue {q}", p.name))?;
        match sockets.first() {
            Some(first) => s.inherit(first.info()),
            None => pool.set_tx_metadata(s.info().tx_metadata),
        }
        maps[pi]
            .set(q, s.fd())
            .context(|| format!("XSKMAP entry {} queue {q}", p.name))?;
        sockets.push(s);
    }
    Ok(sockets)
}

/// The core worker `i` runs on: the configured `cpus` in turn, else the
/// machine's cores from the last one down (control keeps core 0).
fn worker_core(
    cpus: &[usize],
    cores: &[core_affinity::CoreId],
    i: usize,
) -> Result<Option<core_affinity::CoreId>, EngineError> {
    if !cpus.is_empty() {
        let id = cpus[i % cpus.len()];
        return match cores.iter().find(|c| c.id == id) {
            Some(c) => Ok(Some(*c)),
            None => Err(EngineError::NoSuchCore {
                core: id,
                cores: cores.len(),
            }),
        };
    }
    Ok((!cores.is_empty()).then(|| cores[cores.len() - 1 - (i % cores.len())]))
}

/// Load the redirect program for `map` and attach it to the port.
fn attach(p: &PortSpec, map: XskMap, mode: AttachMode) -> Result<PortXdp, EngineError> {
    // Frames on a queue without a socket are dropped, never passed to the
    // member's own stack (AFXDP.md, gotcha 13).
    let prog = XdpProgram::redirect_to(&map, XdpAction::Drop)
        .context(|| "load the redirect program".into())?;
    let link = XdpLink::attach(&prog, p.ifindex, mode).context(|| format!("XDP on {}", p.name))?;
    Ok(PortXdp {
        ifindex: p.ifindex,
        _link: link,
        _prog: prog,
        _map: map,
    })
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}
