//! The worker on in-memory ports: forwarding, VLANs, modes, commands.

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

impl Rig {
    /// Member `i`'s port takes no frame for transmission.
    fn stall_member(&mut self, i: usize) {
        let stuck = MemPort {
            tx_limit: Some(0),
            ..MemPort::new()
        };
        self.worker.slots[i].port = Box::new(stuck);
    }

    /// Member `i` transmits again (onto its own wire).
    fn unstall_member(&mut self, i: usize) {
        self.worker.slots[i].port = Box::new(self.members[i].clone());
    }

    /// A frame from control for member `member`.
    fn control_frame(&self, member: MemberId, frame: Vec<u8>) {
        self.cmd_tx
            .send(WorkerCommand::Transmit { member, frame })
            .unwrap();
    }
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
    assert_eq!(
        (cf.from, cf.why, cf.bytes()),
        (Role::Member(1), Handover::SlowProtocol, &lacp[..])
    );
    assert!(r.host.take_sent().is_empty());
}

#[test]
fn a_probe_reply_is_copied_to_control_and_still_reaches_the_host() {
    let mut snap = BondSnapshot::new(BondMode::ActiveBackup);
    snap.active = Some(0);
    snap.copy_probes = true;
    let mut r = rig_with(snap);
    let mut arp = vec![0u8; 60];
    arp[..6].copy_from_slice(&[0xff; 6]);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    r.members[0].inject(&arp);
    r.members[0].inject(&ipv4(3));
    r.worker.round();
    let cf = r.control_rx.try_recv().unwrap();
    assert_eq!(
        (cf.from, cf.why, cf.bytes()),
        (Role::Member(0), Handover::ProbeCopy, &arp[..])
    );
    assert!(r.control_rx.try_recv().is_err(), "only the ARP is copied");
    assert_eq!(r.host.take_sent(), vec![arp, ipv4(3)]);
}

#[test]
fn control_frames_go_out_ahead_of_data() {
    let mut r = rig(Some(0));
    r.host.inject(&ipv4(7));
    r.worker.round();
    r.members[0].take_sent();
    r.members[0].tx_limit = None;
    r.host.inject(&ipv4(8));
    r.control_frame(0, ipv4(99));
    r.worker.round();
    assert_eq!(r.members[0].take_sent(), vec![ipv4(99), ipv4(8)]);
}

#[test]
fn a_control_frame_gets_into_a_queue_that_data_filled() {
    let mut r = rig(Some(0));
    r.stall_member(0);
    for t in 0..12 {
        r.host.inject(&ipv4(t));
    }
    r.worker.round();
    r.worker.round();
    assert_eq!(r.worker.slots[0].txq.len(), 8, "data filled the queue");
    r.control_frame(0, ipv4(99));
    r.worker.round();
    assert_eq!(r.counters[0].drops(DropReason::TxRingFull), 0);
    assert_eq!(r.worker.slots[0].txq.len(), 9);
    r.unstall_member(0);
    for _ in 0..4 {
        r.worker.round();
    }
    let sent = r.members[0].take_sent();
    assert_eq!(sent[0], ipv4(99), "the control frame went first");
    assert_eq!(&sent[1..], &(0..12).map(ipv4).collect::<Vec<_>>()[..]);
    assert_eq!(r.worker.pool().free_count(), 64);
}

#[test]
fn the_worker_does_not_sleep_while_frames_wait_in_a_ring() {
    let mut r = rig(Some(0));
    assert_eq!(r.worker.rest(), Some(MAX_SLEEP), "nothing anywhere: sleep");
    // Every frame of the pool is taken, so a round cannot receive what
    // waits on the host port: it finds no work, yet must not sleep.
    let mut held = Vec::new();
    while let Some(f) = r.worker.pool.alloc_with(&[0; 60]) {
        held.push(f);
    }
    r.host.inject(&ipv4(1));
    assert_eq!(r.worker.round(), 0);
    assert_eq!(r.worker.rest(), None, "a frame waits in an RX ring");
    for f in held.drain(..) {
        r.worker.pool.free(f);
    }
    assert!(r.worker.round() > 0);
    assert_eq!(r.members[0].take_sent(), vec![ipv4(1)]);
    assert_eq!(r.worker.rest(), Some(MAX_SLEEP));
    // A frame queued for a port that takes none: no sleep either.
    r.stall_member(0);
    r.host.inject(&ipv4(2));
    r.worker.round();
    assert_eq!(r.worker.rest(), None, "a frame waits in a queue");
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
fn what_the_members_cannot_take_waits_in_the_rx_ring_not_dropped() {
    let mut r = rig(Some(0));
    r.stall_member(0);
    for t in 0..20 {
        r.host.inject(&ipv4(t));
    }
    for _ in 0..4 {
        r.worker.round();
    }
    // The active member's queue is full (capacity 8); the rest was left
    // where it arrived, and nothing was dropped.
    assert_eq!(r.worker.slots[0].txq.len(), 8);
    assert_eq!(r.host.wire.lock().unwrap().inbound.len(), 12);
    assert_eq!(r.counters[0].drops(DropReason::TxRingFull), 0);
    // The member takes frames again: all 20 go out, in order.
    r.unstall_member(0);
    for _ in 0..6 {
        r.worker.round();
    }
    assert_eq!(
        r.members[0].take_sent(),
        (0..20).map(ipv4).collect::<Vec<_>>()
    );
    assert_eq!(r.worker.pool().free_count(), 64);
}

#[test]
fn a_failed_member_with_a_full_queue_does_not_hold_the_others_back() {
    let mut r = rig_with(load_sharing(BondMode::BalanceRr, [true, true]));
    r.stall_member(0);
    for t in 0..20 {
        r.host.inject(&ipv4(t));
    }
    r.worker.round();
    r.worker.round();
    assert_eq!(r.worker.slots[0].txq.len(), 8, "member 0 is stuck and full");
    assert!(
        !r.host.wire.lock().unwrap().inbound.is_empty(),
        "and holds the rest back while its link is up"
    );
    // Its link goes down: what waits for the host goes to member 1.
    r.shared
        .publish(load_sharing(BondMode::BalanceRr, [false, true]));
    for _ in 0..4 {
        r.worker.round();
    }
    assert!(r.host.wire.lock().unwrap().inbound.is_empty());
    assert_eq!(r.members[1].take_sent().len(), 20 - 8);
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

/// Broadcast over both members, with a host port for VLAN 5.
fn broadcast_with_vlan5() -> (Rig, MemPort) {
    let mut snap = load_sharing(BondMode::Broadcast, [true, true]);
    snap.vlans = [5].into_iter().collect();
    let mut r = rig_with(snap);
    let vlan5 = MemPort::new();
    r.worker.add_port(
        Box::new(vlan5.clone()),
        Role::Host(5),
        Arc::new(PortCounters::default()),
    );
    (r, vlan5)
}

#[test]
fn broadcast_tags_every_copy() {
    let (mut r, vlan5) = broadcast_with_vlan5();
    vlan5.inject(&ipv4(1));
    r.worker.round();
    assert_eq!(r.members[0].take_sent(), vec![tagged(5, 1)]);
    assert_eq!(r.members[1].take_sent(), vec![tagged(5, 1)]);
    assert_eq!(r.worker.pool().free_count(), 64);
}

/// Frames compared without printing kilobytes of them.
#[track_caller]
fn same(got: Vec<Vec<u8>>, want: Vec<Vec<u8>>) {
    let lens = |v: &[Vec<u8>]| v.iter().map(Vec::len).collect::<Vec<_>>();
    assert_eq!(lens(&got), lens(&want), "frame lengths");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if let Some(at) = g.iter().zip(w).position(|(a, b)| a != b) {
            panic!(
                "frame {i} differs first at byte {at}: {:#04x} != {:#04x}",
                g[at], w[at]
            );
        }
    }
}

/// An IPv4 TCP frame of `payload` bytes (a pattern), with the correct
/// checksum (pnet's) and, as a host with TX checksum offload gives it, the
/// field holding only the pseudo-header sum. Returns (as sent by the host,
/// as it must leave).
fn tcp_from_host(payload: usize) -> (Vec<u8>, Vec<u8>) {
    use pnet::packet::tcp::{ipv4_checksum, MutableTcpPacket};
    use std::net::Ipv4Addr;
    let (src, dst) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
    let mut f = vec![2, 0, 0, 0, 2, 0, 2, 0, 0, 0, 1, 0, 0x08, 0x00];
    let total = 20 + 20 + payload;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    let mut seg = vec![0u8; 20 + payload];
    let mut t = MutableTcpPacket::new(&mut seg).unwrap();
    t.set_source(40000);
    t.set_destination(5201);
    t.set_data_offset(5);
    t.set_flags(0x10);
    t.set_payload(&(0..payload).map(|i| (i * 31 + 7) as u8).collect::<Vec<_>>());
    let c = ipv4_checksum(&t.to_immutable(), &src, &dst);
    t.set_checksum(c);
    f.extend_from_slice(&seg);
    let good = f.clone();
    let len = (20 + payload) as u64;
    let mut pseudo = 0xc612u64 * 2 + 1 + 2 + 6 + len;
    while pseudo > 0xffff {
        pseudo = (pseudo & 0xffff) + (pseudo >> 16);
    }
    f[34 + 16..34 + 18].copy_from_slice(&(pseudo as u16).to_be_bytes());
    (f, good)
}

#[test]
fn partial_checksums_from_the_host_leave_complete() {
    let mut r = rig(Some(0));
    let (partial, good) = tcp_from_host(1000);
    assert_ne!(partial, good);
    r.host.inject(&partial);
    r.host.inject(&good);
    r.worker.round();
    same(r.members[0].take_sent(), vec![good.clone(), good]);
    // The other way nothing is touched: what the wire sent reaches the host.
    r.members[0].inject(&partial);
    r.worker.round();
    same(r.host.take_sent(), vec![partial]);
    assert_eq!(r.worker.pool().free_count(), 64);
}

#[test]
fn jumbo_frames_cross_as_chains_in_both_directions() {
    let mut r = rig(Some(0));
    // 9000-byte MTU: chains of 6 buffers of these 2048-byte chunks.
    let (partial, good) = tcp_from_host(9000 - 40);
    r.host.inject(&partial);
    r.members[0].inject(&good);
    r.members[1].inject(&good);
    r.worker.round();
    same(r.members[0].take_sent(), vec![good.clone()]);
    same(r.host.take_sent(), vec![good.clone()]);
    assert_eq!(r.counters[1].drops(DropReason::InactiveMember), 1);
    assert_eq!(
        r.counters[0].snapshot().rx_packets,
        1,
        "a chain is one packet"
    );
    assert_eq!(r.counters[0].snapshot().tx_packets, 1);
    assert_eq!(r.counters[0].snapshot().rx_bytes, good.len() as u64);
    assert_eq!(r.worker.pool().free_count(), 64);
}

#[test]
fn jumbo_frames_are_tagged_and_broadcast_whole() {
    let (mut r, vlan5) = broadcast_with_vlan5();
    let (partial, good) = tcp_from_host(8000);
    vlan5.inject(&partial);
    r.worker.round();
    let mut want = good.clone();
    want.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    same(r.members[0].take_sent(), vec![want.clone()]);
    same(r.members[1].take_sent(), vec![want.clone()]);
    // Tagged on the way in: the tag comes off the chain's first buffer.
    r.members[1].inject(&want);
    r.worker.round();
    same(vlan5.take_sent(), vec![good]);
    assert_eq!(r.worker.pool().free_count(), 64);
}

#[test]
fn a_chain_that_does_not_fit_the_queue_is_dropped_whole() {
    let mut r = rig(Some(0));
    let (_, good) = tcp_from_host(9000 - 40);
    // Two 6-buffer chains for a queue of 8: the second one is dropped,
    // and no buffer of it leaks or goes out alone.
    r.host.inject(&good);
    r.host.inject(&good);
    r.worker.round();
    same(r.members[0].take_sent(), vec![good]);
    assert_eq!(r.counters[0].drops(DropReason::TxRingFull), 1);
    assert_eq!(r.worker.pool().free_count(), 64);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Any frame up to a 9000-byte MTU, cut into buffers as multi-buffer
    /// AF_XDP delivers it, comes out of the worker whole, both ways, and
    /// every buffer goes back to the pool.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn chains_are_put_back_together_byte_for_byte(
        len in 60usize..=9014,
        seed in proptest::prelude::any::<u8>(),
    ) {
        let mut r = rig(Some(0));
        let mut f: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed | 1)).collect();
        // Not IPv4/IPv6, so no checksum is touched: the bytes must match.
        f[12] = 0x88;
        f[13] = 0xb5;
        f[0] &= 0xfe;
        r.host.inject(&f);
        r.members[0].inject(&f);
        r.worker.round();
        proptest::prop_assert!(r.members[0].take_sent() == vec![f.clone()]);
        proptest::prop_assert!(r.host.take_sent() == vec![f]);
        proptest::prop_assert_eq!(r.worker.pool().free_count(), 64);
    }
}
