//! The worker: one busy-poll thread that owns a frame pool and a set of ports
//! (member queues and host ports), and moves frames between them as the bond
//! snapshot says. Per batch it loads the snapshot once; per frame it does no
//! allocation, takes no lock and makes no syscall (TX kicks are per batch).
//!
//! `mod.rs` holds the worker, its port slots and its loop; `rx.rs` the
//! receive path, `tx.rs` the transmit path and VLAN tagging, `handle.rs`
//! what control holds of a worker thread and sends it.

mod gso;
mod handle;
mod rx;
#[cfg(test)]
mod tests;
mod tx;

pub use crate::forward::Handover;
pub use gso::HostGso;
pub use handle::{ControlFrame, WorkerCommand, WorkerHandle, WorkerJob};
use tx::{broadcast, tag_frame, untag_frame};

use crate::counters::{BatchCounters, DropReason, PortCounters};
use crate::forward::{self, Verdict};
use crate::lb::{self, TxLoad};
use crate::offload;
use crate::port::Port;
use crate::schedule::TxState;
use crate::snapshot::{MemberId, Shared};
use crate::sys::area::{Frame, FramePool};
use crate::sys::waker::{PollSet, Waker};
use crate::sys::xsk::{SocketInfo, XskConfig, XskSocket};
use crate::wire::{checksum, vlan};
use crossbeam::channel::{Receiver, Sender, TrySendError};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Frames taken from one port per receive call.
pub const BATCH: u32 = 64;
/// Most frames taken from a host port per round. Reading deeper (1024)
/// absorbed bursts better but kept the members' TX rings full, so a LACPDU
/// queued by control waited behind up to a ring of data and left up to
/// 150 ms late (`lacpdus_keep_time_under_full_rate_traffic`).
const RX_ROUND_MAX: u32 = 64;
/// Buffers of the longest chain expected (a 64 KiB packet in 4 KiB chunks).
const MAX_CHAIN: usize = 18;

/// Places in every member's queue that only control's frames take: data
/// fills a queue to its capacity when the member sends slower than the host
/// (the rest waits in the host's RX ring), and a LACPDU or ARP probe must
/// still get in. Found by a LACPDU missing from the capture under a flood
/// on a loaded CI machine (`lacpdus_keep_time_under_full_rate_traffic`).
const CONTROL_RESERVE: usize = 16;

/// Bytes of a frame that reach control; LACPDUs (124), marker PDUs, ARP and
/// NA replies all fit.
pub const CONTROL_FRAME_MAX: usize = 256;

/// Empty rounds an adaptive worker spins before it sleeps in poll(2).
const ADAPTIVE_SPINS: u32 = 512;

/// Longest sleep; a stop request wakes the worker sooner through its waker.
const MAX_SLEEP: Duration = Duration::from_millis(100);

/// Longest sleep while frames wait in a TX ring that the kernel did not
/// take (copy-mode TX runs only in our kicks; a member that is down keeps
/// its frames there, so the worker naps instead of spinning on it).
const TX_WAIT_SLEEP: Duration = Duration::from_millis(1);

/// How a worker waits when there is nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PollPolicy {
    /// Spin without ever sleeping (dedicated cores).
    Busy,
    /// Spin a while, then sleep in poll(2) until a frame or a wakeup arrives.
    #[default]
    Adaptive,
    /// Sleep in poll(2) as soon as a round finds nothing.
    Interrupt,
}

/// Which side of the bond a port is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Member(MemberId),
    /// A host port: VLAN 0 is the bond's own interface, any other VLAN id
    /// that VLAN's interface.
    Host(u16),
}

struct Slot {
    port: Box<dyn Port>,
    /// An AF_XDP port's socket (a second descriptor of it), through which a
    /// socket added later shares this worker's UMEM.
    umem: Option<OwnedFd>,
    role: Role,
    counters: Arc<PortCounters>,
    batch: BatchCounters,
    txq: Vec<Frame>,
}

/// Settings of a worker's loop.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub policy: PollPolicy,
    /// Frames kept in each port's fill ring (half the ring: AFXDP.md gotcha 11).
    pub fill_target: u32,
    /// Frames waiting for a port's TX ring before new ones are dropped.
    pub txq_capacity: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            policy: PollPolicy::Adaptive,
            fill_target: 1024,
            txq_capacity: 2048,
        }
    }
}

pub struct Worker {
    // Ports before the pool: sockets must close before their UMEM is unmapped.
    slots: Vec<Slot>,
    pool: FramePool,
    shared: Arc<Shared>,
    to_control: Sender<ControlFrame>,
    commands: Receiver<WorkerCommand>,
    waker: Arc<Waker>,
    cfg: WorkerConfig,
    member_slot: Vec<Option<usize>>,
    /// The slot of each VLAN's host port, by VLAN id (0: the bond's own).
    host_slot: Vec<Option<usize>>,
    rxbuf: Vec<Frame>,
    /// The buffers after the first of the packet being handled.
    tail: Vec<Frame>,
    tx: TxState,
    pollset: PollSet,
    idle_rounds: u32,
    kick_error_logged: bool,
    /// The UMEM-wide settings its first socket got, for sockets added later.
    umem_info: SocketInfo,
    /// `host_port = "af_packet"`: the bond's interface read through AF_PACKET.
    gso: Option<HostGso>,
}

impl Worker {
    pub fn new(
        pool: FramePool,
        shared: Arc<Shared>,
        to_control: Sender<ControlFrame>,
        commands: Receiver<WorkerCommand>,
        waker: Arc<Waker>,
        cfg: WorkerConfig,
    ) -> Self {
        // Any seed that differs between workers will do for the random
        // member choice of packets_per_slave=0.
        let seed = Arc::as_ptr(&waker) as u64 ^ u64::from(std::process::id());
        Worker {
            slots: Vec::new(),
            pool,
            shared,
            to_control,
            commands,
            waker,
            cfg,
            member_slot: Vec::new(),
            host_slot: Vec::new(),
            rxbuf: Vec::with_capacity(BATCH as usize),
            tail: Vec::with_capacity(MAX_CHAIN),
            tx: TxState::new(seed),
            pollset: PollSet::default(),
            idle_rounds: 0,
            kick_error_logged: false,
            umem_info: SocketInfo::default(),
            gso: None,
        }
    }

    /// Serve `port` in `role`. The first port of a member is the one its
    /// frames are sent on.
    pub fn add_port(&mut self, port: Box<dyn Port>, role: Role, counters: Arc<PortCounters>) {
        self.push_slot(port, None, role, counters);
    }

    /// Serve an AF_XDP socket in `role`; later sockets of this worker may
    /// share the UMEM through it.
    pub(crate) fn add_xsk(
        &mut self,
        socket: XskSocket,
        role: Role,
        counters: Arc<PortCounters>,
    ) -> std::io::Result<()> {
        let umem = socket.borrow_fd().try_clone_to_owned()?;
        if self.slots.iter().all(|s| s.umem.is_none()) {
            self.umem_info = socket.info();
        }
        self.push_slot(Box::new(socket), Some(umem), role, counters);
        Ok(())
    }

    fn push_slot(
        &mut self,
        port: Box<dyn Port>,
        umem: Option<OwnedFd>,
        role: Role,
        counters: Arc<PortCounters>,
    ) {
        self.index_slot(self.slots.len(), role);
        self.slots.push(Slot {
            port,
            umem,
            role,
            counters,
            batch: BatchCounters::default(),
            txq: Vec::with_capacity(self.cfg.txq_capacity + CONTROL_RESERVE),
        });
    }

    pub fn pool(&self) -> &FramePool {
        &self.pool
    }

    /// The bytes this worker sent per balance-tlb/alb transmit bucket.
    pub fn tx_load(&self) -> Arc<TxLoad> {
        self.tx.load()
    }

    /// A new AF_XDP socket on `ifindex`/`queue` sharing this worker's UMEM,
    /// for a port added at runtime (add it with [`add_port`](Self::add_port)).
    pub(crate) fn new_socket(
        &self,
        ifindex: u32,
        queue: u32,
        cfg: &XskConfig,
    ) -> std::io::Result<XskSocket> {
        let owner = self.slots.iter().find_map(|s| s.umem.as_ref());
        let mut s = XskSocket::new(&self.pool, owner.map(AsFd::as_fd), ifindex, queue, cfg)?;
        if owner.is_some() {
            s.inherit(self.umem_info);
        }
        Ok(s)
    }

    /// Take the ports of `role` (a member, or a VLAN's host port) out of
    /// this worker. What is queued for them is sent first; then every frame
    /// their sockets hold comes back to the pool and they close. Returns the
    /// frames recovered. Call after the snapshot no longer names the member
    /// or VLAN and its XDP program is detached.
    pub fn remove_ports(&mut self, role: Role) -> u32 {
        let mut recovered = 0;
        let mut i = 0;
        while i < self.slots.len() {
            if self.slots[i].role != role {
                i += 1;
                continue;
            }
            let mut s = self.slots.remove(i);
            // A few rounds: the TX ring may take the queue in parts.
            for _ in 0..8 {
                if !s.txq.is_empty() {
                    let (sent, bytes) = s.port.send(&mut self.pool, &mut s.txq);
                    s.batch.tx(u64::from(sent), bytes);
                }
                let _ = s.port.flush();
                recovered += s.port.complete(&mut self.pool);
                if s.txq.is_empty() {
                    break;
                }
            }
            for f in s.txq.drain(..) {
                s.batch.drop(DropReason::UnknownMember, 1);
                self.pool.free(f);
            }
            recovered += s.port.close(&mut self.pool);
            s.batch.publish(&s.counters);
        }
        if let (Role::Member(m), Some(g)) = (role, &mut self.gso) {
            g.remove_member(m);
        }
        self.member_slot.clear();
        self.host_slot.clear();
        for idx in 0..self.slots.len() {
            self.index_slot(idx, self.slots[idx].role);
        }
        recovered
    }

    /// Record slot `idx` as where `role`'s frames go, unless an earlier slot
    /// already is (a member's first queue transmits).
    fn index_slot(&mut self, idx: usize, role: Role) {
        match role {
            Role::Member(m) => {
                let m = m as usize;
                if self.member_slot.len() <= m {
                    self.member_slot.resize(m + 1, None);
                }
                self.member_slot[m].get_or_insert(idx);
            }
            Role::Host(vid) => {
                let v = usize::from(vid);
                if self.host_slot.len() <= v {
                    self.host_slot.resize(v + 1, None);
                }
                self.host_slot[v].get_or_insert(idx);
            }
        }
    }

    /// Prime every port's fill ring before traffic starts.
    pub fn prime(&mut self) {
        for s in &mut self.slots {
            s.port.refill(&mut self.pool, self.cfg.fill_target, 0);
        }
    }

    /// Run until control sets the stop flag.
    pub fn run(mut self) {
        self.prime();
        while !self.shared.stop.load(Ordering::Relaxed) {
            let work = self.round();
            if work > 0 {
                self.idle_rounds = 0;
                continue;
            }
            self.idle_rounds = self.idle_rounds.saturating_add(1);
            let sleep = match self.cfg.policy {
                PollPolicy::Busy => false,
                PollPolicy::Adaptive => self.idle_rounds > ADAPTIVE_SPINS,
                PollPolicy::Interrupt => true,
            };
            match self.rest().filter(|_| sleep) {
                Some(timeout) => self.sleep(timeout),
                None => std::hint::spin_loop(),
            }
        }
    }

    /// How long the worker may sleep now: never while frames wait in a
    /// queue of its own or in a port's RX ring (a round that found no work
    /// can still leave them there: no free frame, no room to send), briefly
    /// while they wait in a TX ring.
    fn rest(&mut self) -> Option<Duration> {
        let mut timeout = MAX_SLEEP;
        for s in &mut self.slots {
            if !s.txq.is_empty() {
                return None;
            }
            let (rx, tx) = s.port.waiting();
            if rx > 0 {
                return None;
            }
            if tx > 0 {
                timeout = TX_WAIT_SLEEP;
            }
        }
        Some(timeout)
    }

    fn sleep(&mut self, timeout: Duration) {
        self.pollset.clear();
        self.pollset.add(self.waker.fd());
        for s in &self.slots {
            if let Some(fd) = s.port.poll_fd() {
                self.pollset.add(fd);
            }
        }
        if let Some(g) = &self.gso {
            self.pollset.add(g.poll_fd());
        }
        if let Err(e) = self.pollset.wait(timeout) {
            tracing::warn!("worker poll: {e}");
        }
        self.waker.drain();
    }

    /// One pass over everything: control's frames, every port's RX, TX flush,
    /// completions and refill. Returns how much work it found.
    pub fn round(&mut self) -> u32 {
        let snap = self.shared.snapshot.load();
        let mut work = self.take_commands();
        for i in 0..self.slots.len() {
            let mut budget = RX_ROUND_MAX;
            loop {
                let want = budget.min(self.rx_room(i, &snap)).min(BATCH);
                if want == 0 {
                    break;
                }
                let n = self.receive(i, &snap, want);
                work += n;
                if n < want {
                    break;
                }
                budget = budget.saturating_sub(n);
            }
            let (level, keep) = (self.fill_level(i, &snap), self.keep_free(i));
            self.slots[i].port.refill(&mut self.pool, level, keep);
        }
        work += self.gso_round(&snap);
        work += self.flush();
        for s in &mut self.slots {
            work += s.port.complete(&mut self.pool);
        }
        for i in 0..self.slots.len() {
            let (level, keep) = (self.fill_level(i, &snap), self.keep_free(i));
            let s = &mut self.slots[i];
            s.port.refill(&mut self.pool, level, keep);
            s.batch.publish(&s.counters);
        }
        work
    }

    /// Room in the fullest queue on the other side of the bond from port
    /// `i`, or `None` when no queue there is a target now. For a host port
    /// that is the fullest of the members the mode sends on (active-backup:
    /// the active one; the others: those whose link is up, so a failed
    /// member never holds the rest back); for a member, the fullest host
    /// port.
    fn room_behind(&self, i: usize, snap: &crate::snapshot::BondSnapshot) -> Option<usize> {
        let room = |idx: Option<usize>| {
            idx.map(|t| {
                self.cfg
                    .txq_capacity
                    .saturating_sub(self.slots[t].txq.len())
            })
        };
        match self.slots[i].role {
            Role::Host(_) if snap.mode == crate::snapshot::BondMode::ActiveBackup => snap
                .active
                .and_then(|m| room(self.member_slot.get(m as usize).copied().flatten())),
            Role::Host(_) => snap
                .members
                .iter()
                .filter(|m| m.can_tx)
                .filter_map(|m| room(self.member_slot.get(m.id as usize).copied().flatten()))
                .min(),
            Role::Member(_) => self.host_slot.iter().filter_map(|&h| room(h)).min(),
        }
    }

    /// Frames port `i` may receive now. A host port: what the queues behind
    /// it take, at most [`RX_ROUND_MAX`]; what does not fit stays in its RX
    /// ring. A member: one batch a round, whatever the host side takes (the
    /// excess is dropped and counted), because the partner's LACPDUs, ARP
    /// replies and marker PDUs arrive in the same ring as data and must not
    /// wait behind it (measured: with members held back too, a flood that
    /// came back from the switch kept the partner's LACPDUs in m0's ring for
    /// 3 s and the partner timed out).
    fn rx_room(&self, i: usize, snap: &crate::snapshot::BondSnapshot) -> u32 {
        match self.slots[i].role {
            Role::Member(_) => BATCH,
            Role::Host(_) => self
                .room_behind(i, snap)
                .map_or(RX_ROUND_MAX, |r| r.min(RX_ROUND_MAX as usize) as u32),
        }
    }

    /// The fill level port `i` is topped up to: the configured one, and for
    /// a host port no more than the queues behind it take. Under overload the fill ring
    /// runs dry and the kernel drops what arrives at RX, counted there and
    /// before any copy; the frames that do come in are fresh, not the
    /// oldest of a full RX ring. An idle bond has its queues empty and the
    /// whole fill ring out for a burst.
    fn fill_level(&self, i: usize, snap: &crate::snapshot::BondSnapshot) -> u32 {
        if let Role::Member(_) = self.slots[i].role {
            return self.cfg.fill_target;
        }
        self.room_behind(i, snap).map_or(self.cfg.fill_target, |r| {
            r.min(self.cfg.fill_target as usize) as u32
        })
    }

    /// Frames a refill of port `i` must leave in the pool. A host port
    /// leaves a batch for every port: when a flood from the host holds most
    /// frames in TX queues, control's LACPDUs and the members' fill rings
    /// (where the partner's LACPDUs and ARP replies arrive) still get frames.
    fn keep_free(&self, i: usize) -> u32 {
        match self.slots[i].role {
            Role::Host(_) => BATCH * self.slots.len() as u32,
            Role::Member(_) => 0,
        }
    }

    fn take_commands(&mut self) -> u32 {
        let mut n = 0;
        while let Ok(cmd) = self.commands.try_recv() {
            n += 1;
            match cmd {
                WorkerCommand::Exec(job) => job(self),
                WorkerCommand::Transmit { member, frame } => {
                    let Some(idx) = self.member_slot.get(member as usize).copied().flatten() else {
                        tracing::debug!(
                            "control frame for member {member} which this worker does not serve"
                        );
                        continue;
                    };
                    let slot = &mut self.slots[idx];
                    match self.pool.alloc_with(&frame) {
                        // Control frames jump ahead of queued data, into
                        // room that data never takes.
                        Some(f) if slot.txq.len() < self.cfg.txq_capacity + CONTROL_RESERVE => {
                            slot.txq.insert(0, f)
                        }
                        Some(f) => {
                            self.pool.free(f);
                            slot.batch.drop(DropReason::TxRingFull, 1);
                        }
                        None => slot.batch.drop(DropReason::NoFreeFrame, 1),
                    }
                }
            }
        }
        n
    }
}
