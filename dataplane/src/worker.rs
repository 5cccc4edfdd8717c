//! The worker: one busy-poll thread that owns a frame pool and a set of ports
//! (member queues and host ports), and moves frames between them as the bond
//! snapshot says. Per batch it loads the snapshot once; per frame it does no
//! allocation, takes no lock and makes no syscall (TX kicks are per batch).

use crate::counters::{BatchCounters, DropReason, PortCounters};
use crate::forward::{self, Verdict};
use crate::lb::{self, TxLoad};
use crate::port::Port;
use crate::schedule::TxState;
use crate::snapshot::{MemberId, Shared};
use crate::sys::area::{Frame, FramePool};
use crate::sys::waker::{PollSet, Waker};
use crate::sys::xsk::{XskConfig, XskSocket};
use crate::wire::vlan;
use crossbeam::channel::{Receiver, Sender, TrySendError};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Frames taken from one port per round.
pub const BATCH: u32 = 64;
/// Bytes of a frame that reach control; LACPDUs (124), marker PDUs, ARP and
/// NA replies all fit.
pub const CONTROL_FRAME_MAX: usize = 256;
/// Empty rounds an adaptive worker spins before it sleeps in poll(2).
const ADAPTIVE_SPINS: u32 = 512;
/// Longest sleep; a stop request wakes the worker sooner through its waker.
const MAX_SLEEP: Duration = Duration::from_millis(100);

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

/// A frame for the control thread, copied out of the frame area so the frame
/// can go straight back to the pool. Fixed size: no allocation per frame.
#[derive(Clone)]
pub struct ControlFrame {
    /// The port it came from: a member, or a host port (balance-alb's ARP
    /// from the host, untagged as the host sent it).
    pub from: Role,
    len: u16,
    data: [u8; CONTROL_FRAME_MAX],
}

impl ControlFrame {
    pub fn new(from: Role, bytes: &[u8]) -> Option<Self> {
        (bytes.len() <= CONTROL_FRAME_MAX).then(|| Self::prefix(from, bytes))
    }

    /// The first [`CONTROL_FRAME_MAX`] bytes of a frame: enough of a probe
    /// reply for the headers the monitor reads.
    pub fn prefix(from: Role, bytes: &[u8]) -> Self {
        let n = bytes.len().min(CONTROL_FRAME_MAX);
        let mut data = [0u8; CONTROL_FRAME_MAX];
        data[..n].copy_from_slice(&bytes[..n]);
        ControlFrame {
            from,
            len: n as u16,
            data,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.data[..self.len as usize]
    }
}

impl std::fmt::Debug for ControlFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ControlFrame({:?}, {} bytes)", self.from, self.len)
    }
}

/// Work control hands to a worker thread: it runs between two rounds with
/// the worker to itself (adding or removing ports at runtime).
pub type WorkerJob = Box<dyn FnOnce(&mut Worker) + Send>;

/// What control asks of a worker.
pub enum WorkerCommand {
    /// Send this frame out of a member, ahead of queued data.
    Transmit { member: MemberId, frame: Vec<u8> },
    /// Run this on the worker's thread.
    Exec(WorkerJob),
}

impl std::fmt::Debug for WorkerCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerCommand::Transmit { member, frame } => {
                write!(f, "Transmit(member {member}, {} bytes)", frame.len())
            }
            WorkerCommand::Exec(_) => write!(f, "Exec"),
        }
    }
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
    tx: TxState,
    pollset: PollSet,
    idle_rounds: u32,
    kick_error_logged: bool,
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
            tx: TxState::new(seed),
            pollset: PollSet::default(),
            idle_rounds: 0,
            kick_error_logged: false,
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
            txq: Vec::with_capacity(self.cfg.txq_capacity),
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
        XskSocket::new(&self.pool, owner.map(AsFd::as_fd), ifindex, queue, cfg)
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
            s.port.refill(&mut self.pool, self.cfg.fill_target);
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
            if sleep && self.nothing_in_flight() {
                self.sleep();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    fn nothing_in_flight(&self) -> bool {
        self.slots.iter().all(|s| s.txq.is_empty())
    }

    fn sleep(&mut self) {
        self.pollset.clear();
        self.pollset.add(self.waker.fd());
        for s in &self.slots {
            if let Some(fd) = s.port.poll_fd() {
                self.pollset.add(fd);
            }
        }
        if let Err(e) = self.pollset.wait(MAX_SLEEP) {
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
            work += self.receive(i, &snap);
        }
        work += self.flush();
        for s in &mut self.slots {
            work += s.port.complete(&mut self.pool);
            s.port.refill(&mut self.pool, self.cfg.fill_target);
            s.batch.publish(&s.counters);
        }
        work
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
                        // Control frames jump ahead of queued data.
                        Some(f) if slot.txq.len() < self.cfg.txq_capacity => slot.txq.insert(0, f),
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

    fn receive(&mut self, i: usize, snap: &crate::snapshot::BondSnapshot) -> u32 {
        let Worker {
            slots,
            pool,
            rxbuf,
            member_slot,
            host_slot,
            to_control,
            cfg,
            tx,
            ..
        } = self;
        let (n, bad) = slots[i].port.recv(pool, rxbuf, BATCH);
        slots[i]
            .batch
            .drop(DropReason::InvalidDescriptor, u64::from(bad));
        let role = slots[i].role;
        for mut f in rxbuf.drain(..) {
            let data = pool.data(&f);
            slots[i].batch.rx(f.len());
            if let (Role::Member(_), true) = (role, snap.copy_probes) {
                if forward::is_probe(data) {
                    match to_control.try_send(ControlFrame::prefix(role, data)) {
                        Ok(()) => slots[i].batch.control(),
                        Err(_) => slots[i].batch.drop(DropReason::ControlQueueFull, 1),
                    }
                }
            }
            let mut verdict = match role {
                Role::Member(m) => forward::from_member(snap, m, data),
                Role::Host(vid) => forward::from_host(snap, tx, data, vid),
            };
            if snap.lb.is_some() {
                // balance-tlb/alb: members have MACs of their own.
                match verdict {
                    Verdict::ToMember(m) => {
                        lb::rewrite_for_member(snap, m, pool.data_mut(&mut f), false)
                    }
                    Verdict::ArpReplyVia(m) => {
                        lb::rewrite_for_member(snap, m, pool.data_mut(&mut f), true);
                        verdict = Verdict::ToMember(m);
                    }
                    Verdict::ToHost { .. } => lb::adopt_for_host(snap, pool.data_mut(&mut f)),
                    _ => {}
                }
            }
            match (role, verdict) {
                (Role::Host(vid), Verdict::ToMember(_) | Verdict::ToAllMembers) if vid != 0 => {
                    let tag = forward::egress_tag(pool.data(&f), vid);
                    if !tag_frame(pool, &mut f, tag) {
                        verdict = Verdict::Drop(DropReason::NoRoomForTag);
                    }
                }
                (_, Verdict::ToHost { untag: true, .. }) => untag_frame(pool, &mut f),
                _ => {}
            }
            let target = match verdict {
                Verdict::ToHost { vid, .. } => host_slot
                    .get(usize::from(vid))
                    .copied()
                    .flatten()
                    .ok_or(DropReason::NoTxQueue),
                Verdict::ToMember(m) | Verdict::ArpReplyVia(m) => member_slot
                    .get(m as usize)
                    .copied()
                    .flatten()
                    .ok_or(DropReason::NoTxQueue),
                Verdict::ToControl => {
                    match ControlFrame::new(role, pool.data(&f)) {
                        Some(cf) => match to_control.try_send(cf) {
                            Ok(()) => slots[i].batch.control(),
                            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                                slots[i].batch.drop(DropReason::ControlQueueFull, 1)
                            }
                        },
                        None => slots[i].batch.drop(DropReason::ControlFrameTooLong, 1),
                    }
                    pool.free(f);
                    continue;
                }
                Verdict::ToAllMembers => {
                    broadcast(snap, f, pool, slots, member_slot, i, cfg.txq_capacity);
                    continue;
                }
                Verdict::Drop(r) => Err(r),
            };
            match target {
                Ok(t) if slots[t].txq.len() < cfg.txq_capacity => slots[t].txq.push(f),
                Ok(t) => {
                    slots[t].batch.drop(DropReason::TxRingFull, 1);
                    pool.free(f);
                }
                Err(r) => {
                    slots[i].batch.drop(r, 1);
                    pool.free(f);
                }
            }
        }
        n
    }

    fn flush(&mut self) -> u32 {
        let mut work = 0;
        let mut kick_error = None;
        for s in &mut self.slots {
            if !s.txq.is_empty() {
                let (sent, bytes) = s.port.send(&mut self.pool, &mut s.txq);
                s.batch.tx(u64::from(sent), bytes);
                work += sent;
            }
            // Kick even with nothing new: a previous kick may have left frames.
            if let Err(e) = s.port.flush() {
                kick_error = Some(e);
            }
        }
        if let Some(e) = kick_error {
            if !self.kick_error_logged {
                self.kick_error_logged = true;
                tracing::warn!("TX kick failed: {e} (reported once per worker)");
            }
        }
        work
    }
}

/// Give a frame from a VLAN port its tag: pushed into the headroom (only
/// the MAC addresses move), or the VLAN id set in the priority tag the host
/// gave it. False if the chunk has no room for a tag.
#[inline]
fn tag_frame(pool: &mut FramePool, f: &mut Frame, tag: forward::EgressTag) -> bool {
    match tag {
        forward::EgressTag::Push(tci) => {
            pool.grow_head(f, vlan::TAG_LEN as u32)
                && vlan::insert_tag(pool.data_mut(f), vlan::TPID_8021Q, tci)
        }
        forward::EgressTag::Rewrite(tci) => {
            vlan::set_tci(pool.data_mut(f), tci);
            true
        }
    }
}

/// Take the outer tag off a received frame: the MAC addresses move up over
/// it and the frame starts four bytes later.
#[inline]
fn untag_frame(pool: &mut FramePool, f: &mut Frame) {
    if vlan::remove_tag(pool.data_mut(f)) {
        pool.adjust_head(f, vlan::TAG_LEN as i32);
    }
}

/// Queue `frame` on every member that can transmit: copies for all but the
/// last, which takes the frame itself.
fn broadcast(
    snap: &crate::snapshot::BondSnapshot,
    frame: Frame,
    pool: &mut FramePool,
    slots: &mut [Slot],
    member_slot: &[Option<usize>],
    from: usize,
    txq_capacity: usize,
) {
    let mut targets = snap
        .members
        .iter()
        .filter(|m| m.can_tx)
        .filter_map(|m| member_slot.get(m.id as usize).copied().flatten())
        .peekable();
    let mut frame = Some(frame);
    while let Some(t) = targets.next() {
        let copy = if targets.peek().is_some() {
            match frame.as_ref().and_then(|f| pool.duplicate(f)) {
                Some(c) => c,
                None => {
                    slots[t].batch.drop(DropReason::NoFreeFrame, 1);
                    continue;
                }
            }
        } else {
            match frame.take() {
                Some(f) => f,
                None => break,
            }
        };
        if slots[t].txq.len() < txq_capacity {
            slots[t].txq.push(copy);
        } else {
            slots[t].batch.drop(DropReason::TxRingFull, 1);
            pool.free(copy);
        }
    }
    if let Some(f) = frame {
        // No member of this worker could take it.
        slots[from].batch.drop(DropReason::NoTxQueue, 1);
        pool.free(f);
    }
}

/// Control's handle on a running worker.
#[derive(Debug)]
pub struct WorkerHandle {
    pub thread: Option<std::thread::JoinHandle<()>>,
    pub commands: Sender<WorkerCommand>,
    pub waker: Arc<Waker>,
}

impl WorkerHandle {
    /// Start `worker` on its own thread, pinned to `core` when given.
    pub fn spawn(
        worker: Worker,
        name: String,
        core: Option<core_affinity::CoreId>,
        commands: Sender<WorkerCommand>,
    ) -> std::io::Result<Self> {
        let waker = Arc::clone(&worker.waker);
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            if let Some(c) = core {
                if !core_affinity::set_for_current(c) {
                    tracing::warn!("could not pin worker to core {}", c.id);
                }
            }
            worker.run();
        })?;
        Ok(WorkerHandle {
            thread: Some(thread),
            commands,
            waker,
        })
    }

    /// Queue a command and wake the worker if it sleeps.
    pub fn send(&self, cmd: WorkerCommand) -> bool {
        let ok = self.commands.try_send(cmd).is_ok();
        self.waker.wake();
        ok
    }

    pub fn join(&mut self) {
        self.waker.wake();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::MemPort;
    use crate::snapshot::{BondMode, BondSnapshot, TxMember};
    use crate::sys::area::FrameArea;
    use crossbeam::channel::bounded;

    struct Rig {
        worker: Worker,
        shared: Arc<Shared>,
        members: Vec<MemPort>,
        host: MemPort,
        control_rx: Receiver<ControlFrame>,
        cmd_tx: Sender<WorkerCommand>,
        counters: Vec<Arc<PortCounters>>,
    }

    fn rig(active: Option<MemberId>) -> Rig {
        let mut snap = BondSnapshot::new(BondMode::ActiveBackup);
        snap.active = active;
        rig_with(snap)
    }

    fn load_sharing(mode: BondMode, up: [bool; 2]) -> BondSnapshot {
        let mut snap = BondSnapshot::new(mode);
        snap.members = (0..2)
            .map(|i| TxMember {
                id: i,
                can_tx: up[i as usize],
            })
            .collect();
        snap.usable = snap
            .members
            .iter()
            .filter(|m| m.can_tx)
            .map(|m| m.id)
            .collect();
        snap
    }

    fn rig_with(snap: BondSnapshot) -> Rig {
        let shared = Shared::new(snap);
        let (ctl_tx, control_rx) = bounded(16);
        let (cmd_tx, cmd_rx) = bounded(16);
        let pool = FramePool::new(FrameArea::heap(64, 2048).unwrap());
        let cfg = WorkerConfig {
            policy: PollPolicy::Busy,
            fill_target: 8,
            txq_capacity: 8,
        };
        let mut worker = Worker::new(
            pool,
            Arc::clone(&shared),
            ctl_tx,
            cmd_rx,
            Arc::new(Waker::new().unwrap()),
            cfg,
        );
        let members = vec![MemPort::new(), MemPort::new()];
        let host = MemPort::new();
        let counters: Vec<_> = (0..3).map(|_| Arc::new(PortCounters::default())).collect();
        worker.add_port(
            Box::new(members[0].clone()),
            Role::Member(0),
            Arc::clone(&counters[0]),
        );
        worker.add_port(
            Box::new(members[1].clone()),
            Role::Member(1),
            Arc::clone(&counters[1]),
        );
        worker.add_port(
            Box::new(host.clone()),
            Role::Host(0),
            Arc::clone(&counters[2]),
        );
        Rig {
            worker,
            shared,
            members,
            host,
            control_rx,
            cmd_tx,
            counters,
        }
    }

    fn ipv4(tag: u8) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[12] = 0x08;
        f[59] = tag;
        f
    }

    #[test]
    fn frames_follow_the_snapshot_and_nothing_leaks() {
        let mut r = rig(Some(0));
        r.members[0].inject(&ipv4(1));
        r.members[1].inject(&ipv4(2));
        r.host.inject(&ipv4(3));
        r.worker.round();
        assert_eq!(
            r.host.take_sent(),
            vec![ipv4(1)],
            "only the active member's frame reaches the host"
        );
        assert_eq!(r.members[0].take_sent(), vec![ipv4(3)]);
        assert!(r.members[1].take_sent().is_empty());
        assert_eq!(r.counters[1].drops(DropReason::InactiveMember), 1);

        // Failover: control publishes a new snapshot; the next batch follows it.
        let mut next = (**r.shared.snapshot.load()).clone();
        next.active = Some(1);
        r.shared.publish(next);
        r.host.inject(&ipv4(4));
        r.members[1].inject(&ipv4(5));
        r.worker.round();
        assert_eq!(r.members[1].take_sent(), vec![ipv4(4)]);
        assert_eq!(r.host.take_sent(), vec![ipv4(5)]);
        assert_eq!(
            r.worker.pool().free_count(),
            64,
            "every frame went back to the pool"
        );
        assert_eq!(r.counters[2].snapshot().rx_packets, 2);
        assert_eq!(r.counters[1].snapshot().tx_bytes, 60);
    }

    #[test]
    fn slow_protocol_frames_reach_control_not_the_host() {
        let mut r = rig(Some(0));
        let mut lacp = vec![0u8; 124];
        lacp[12] = 0x88;
        lacp[13] = 0x09;
        r.members[1].inject(&lacp);
        r.worker.round();
        let cf = r.control_rx.try_recv().unwrap();
        assert_eq!((cf.from, cf.bytes()), (Role::Member(1), &lacp[..]));
        assert!(r.host.take_sent().is_empty());
    }

    #[test]
    fn control_frames_go_out_ahead_of_data() {
        let mut r = rig(Some(0));
        r.host.inject(&ipv4(7));
        r.worker.round();
        r.members[0].take_sent();
        r.members[0].tx_limit = None;
        r.host.inject(&ipv4(8));
        r.cmd_tx
            .send(WorkerCommand::Transmit {
                member: 0,
                frame: ipv4(99),
            })
            .unwrap();
        r.worker.round();
        assert_eq!(r.members[0].take_sent(), vec![ipv4(99), ipv4(8)]);
    }

    #[test]
    fn a_full_tx_ring_delays_frames_without_losing_or_duplicating() {
        let mut r = rig(Some(0));
        // Replace member 0's port by one that takes 2 frames per call.
        let slow = MemPort {
            tx_limit: Some(2),
            ..MemPort::new()
        };
        r.worker.slots[0].port = Box::new(slow.clone());
        for t in 0..5 {
            r.host.inject(&ipv4(t));
        }
        r.worker.round();
        assert_eq!(slow.take_sent().len(), 2);
        r.worker.round();
        r.worker.round();
        let rest = slow.take_sent();
        assert_eq!(rest, vec![ipv4(2), ipv4(3), ipv4(4)]);
        assert_eq!(r.worker.pool().free_count(), 64);
    }

    #[test]
    fn round_robin_alternates_and_skips_a_member_that_went_down() {
        let mut r = rig_with(load_sharing(BondMode::BalanceRr, [true, true]));
        for t in 0..6 {
            r.host.inject(&ipv4(t));
        }
        r.worker.round();
        assert_eq!(r.members[1].take_sent(), vec![ipv4(0), ipv4(2), ipv4(4)]);
        assert_eq!(r.members[0].take_sent(), vec![ipv4(1), ipv4(3), ipv4(5)]);
        // Member 0 goes down: the next batch leaves it out.
        r.shared
            .publish(load_sharing(BondMode::BalanceRr, [false, true]));
        for t in 6..10 {
            r.host.inject(&ipv4(t));
        }
        r.members[0].inject(&ipv4(50));
        r.worker.round();
        assert!(r.members[0].take_sent().is_empty());
        assert_eq!(r.members[1].take_sent().len(), 4);
        assert_eq!(r.host.take_sent(), vec![ipv4(50)], "RX from every member");
        assert_eq!(r.worker.pool().free_count(), 64);
    }

    #[test]
    fn broadcast_sends_one_copy_per_member() {
        let mut r = rig_with(load_sharing(BondMode::Broadcast, [true, true]));
        for t in 0..3 {
            r.host.inject(&ipv4(t));
        }
        r.worker.round();
        let want: Vec<_> = (0..3).map(ipv4).collect();
        assert_eq!(r.members[0].take_sent(), want);
        assert_eq!(r.members[1].take_sent(), want);
        assert_eq!(r.worker.pool().free_count(), 64, "copies went back too");
        r.shared
            .publish(load_sharing(BondMode::Broadcast, [false, false]));
        r.host.inject(&ipv4(9));
        r.worker.round();
        assert_eq!(r.counters[2].drops(DropReason::NoUsableMember), 1);
        assert_eq!(r.worker.pool().free_count(), 64);
    }

    #[test]
    fn a_member_removed_at_runtime_sends_its_queue_and_returns_every_frame() {
        let mut r = rig_with(load_sharing(BondMode::BalanceRr, [true, true]));
        // Member 0 takes one frame per call: some of its frames stay queued.
        let slow = MemPort {
            tx_limit: Some(1),
            ..MemPort::new()
        };
        r.worker.slots[0].port = Box::new(slow.clone());
        for t in 0..6 {
            r.host.inject(&ipv4(t));
        }
        r.worker.round();
        assert_eq!(slow.take_sent(), vec![ipv4(1)]);
        // Control publishes the bond without member 0, then removes it.
        r.shared
            .publish(load_sharing(BondMode::BalanceRr, [false, true]));
        let (tx, rx) = bounded(1);
        r.cmd_tx
            .send(WorkerCommand::Exec(Box::new(move |w: &mut Worker| {
                let _ = tx.send(w.remove_ports(Role::Member(0)));
            })))
            .unwrap();
        r.worker.round();
        rx.try_recv().expect("the job ran");
        assert_eq!(
            slow.take_sent(),
            vec![ipv4(3), ipv4(5)],
            "what was queued for the member left on it, once"
        );
        assert_eq!(r.members[1].take_sent(), vec![ipv4(0), ipv4(2), ipv4(4)]);
        // The remaining ports still work, through rebuilt indices.
        r.host.inject(&ipv4(7));
        r.members[1].inject(&ipv4(8));
        r.worker.round();
        assert_eq!(r.members[1].take_sent(), vec![ipv4(7)]);
        assert_eq!(r.host.take_sent(), vec![ipv4(8)]);
        assert_eq!(r.worker.pool().free_count(), 64);
    }

    #[test]
    fn no_active_member_drops_and_counts() {
        let mut r = rig(None);
        r.host.inject(&ipv4(1));
        r.host.inject(&[0u8; 6]);
        r.worker.round();
        assert_eq!(r.counters[2].drops(DropReason::NoActiveMember), 1);
        assert_eq!(r.counters[2].drops(DropReason::Runt), 1);
        assert_eq!(r.worker.pool().free_count(), 64);
    }

    fn tagged(vid: u16, tag: u8) -> Vec<u8> {
        let mut f = ipv4(tag);
        f.splice(12..12, [0x81, 0x00, (vid >> 8) as u8, vid as u8]);
        f
    }

    #[test]
    fn vlan_ports_tag_on_the_way_out_and_the_demux_untags_on_the_way_in() {
        let mut snap = BondSnapshot::new(BondMode::ActiveBackup);
        snap.active = Some(0);
        snap.vlans = [87].into_iter().collect();
        let mut r = rig_with(snap);
        let vlan87 = MemPort::new();
        let c87 = Arc::new(PortCounters::default());
        r.worker
            .add_port(Box::new(vlan87.clone()), Role::Host(87), Arc::clone(&c87));
        vlan87.inject(&ipv4(1));
        r.host.inject(&ipv4(2));
        r.worker.round();
        assert_eq!(
            r.members[0].take_sent(),
            vec![ipv4(2), tagged(87, 1)],
            "tag 87 on the VLAN's frame, none on the bond's (ports served in order)"
        );
        r.members[0].inject(&tagged(87, 3));
        r.members[0].inject(&ipv4(4));
        r.members[0].inject(&tagged(0, 5));
        r.members[0].inject(&tagged(88, 6));
        r.worker.round();
        assert_eq!(vlan87.take_sent(), vec![ipv4(3)]);
        assert_eq!(
            r.host.take_sent(),
            vec![ipv4(4), ipv4(5)],
            "untagged and priority-tagged frames are the bond's"
        );
        assert_eq!(r.counters[0].drops(DropReason::UnknownVlan), 1);
        // The VLAN goes away: control publishes without it, then removes
        // its port; its frames are unknown from then on.
        let mut next = (**r.shared.snapshot.load()).clone();
        next.vlans = Default::default();
        r.shared.publish(next);
        r.worker.remove_ports(Role::Host(87));
        r.members[0].inject(&tagged(87, 7));
        r.host.inject(&ipv4(8));
        r.worker.round();
        assert_eq!(r.counters[0].drops(DropReason::UnknownVlan), 2);
        assert_eq!(r.members[0].take_sent(), vec![ipv4(8)]);
        assert_eq!(r.worker.pool().free_count(), 64);
    }

    #[test]
    fn broadcast_tags_every_copy() {
        let mut snap = load_sharing(BondMode::Broadcast, [true, true]);
        snap.vlans = [5].into_iter().collect();
        let mut r = rig_with(snap);
        let vlan5 = MemPort::new();
        r.worker.add_port(
            Box::new(vlan5.clone()),
            Role::Host(5),
            Arc::new(PortCounters::default()),
        );
        vlan5.inject(&ipv4(1));
        r.worker.round();
        assert_eq!(r.members[0].take_sent(), vec![tagged(5, 1)]);
        assert_eq!(r.members[1].take_sent(), vec![tagged(5, 1)]);
        assert_eq!(r.worker.pool().free_count(), 64);
    }
}
