//! Per-frame costs of the data path, without I/O: the forwarding decision
//! read from the snapshot, the worker's batch counters, and a whole worker
//! round over in-memory ports (which adds the in-memory port's own copying).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use xbond_bench::udp_frame;
use xbond_dataplane::counters::BatchCounters;
use xbond_dataplane::forward;
use xbond_dataplane::hash::XmitHashPolicy;
use xbond_dataplane::schedule::{self, TxState};
use xbond_dataplane::snapshot::{BondMode, BondSnapshot, Shared, TxMember};

/// Frames as a host sends them: 64 flows, mostly IPv4 TCP/UDP with varied
/// ports, some IPv6, ICMP echo and 802.1Q-tagged frames.
fn traffic() -> Vec<Vec<u8>> {
    (0..64u16)
        .map(|i| {
            let mut f = udp_frame(128, [2, 0, 0, 0, 2, i as u8], [2, 0, 0, 0, 1, 0]);
            match i % 8 {
                0..=3 => {
                    // IPv4 UDP or TCP, port per flow.
                    f[23] = if i % 2 == 0 { 17 } else { 6 };
                    f[34..36].copy_from_slice(&(10000 + i).to_be_bytes());
                    f[29] = i as u8;
                }
                4 | 5 => {
                    // IPv6 TCP.
                    let mut v6 = f[..14].to_vec();
                    v6[12..14].copy_from_slice(&[0x86, 0xdd]);
                    let mut ip = vec![0u8; 40];
                    ip[0] = 0x60;
                    ip[6] = 6;
                    ip[8] = 0x20;
                    ip[9] = 0x01;
                    ip[23] = i as u8;
                    ip[24] = 0x20;
                    ip[25] = 0x01;
                    ip[39] = 1;
                    v6.extend_from_slice(&ip);
                    v6.extend_from_slice(&(20000 + i).to_be_bytes());
                    v6.extend_from_slice(&443u16.to_be_bytes());
                    v6.resize(128, 0);
                    f = v6;
                }
                6 => {
                    // ICMP echo.
                    f[23] = 1;
                    f[34] = 8;
                    f[38..40].copy_from_slice(&i.to_be_bytes());
                }
                _ => {
                    // 802.1Q-tagged IPv4 UDP.
                    let mut t = f[..12].to_vec();
                    t.extend_from_slice(&[0x81, 0x00, 0x00, 0x57]);
                    t.extend_from_slice(&f[12..]);
                    f = t;
                }
            }
            f
        })
        .collect()
}

/// A bond of two members, both up.
fn two_members(mode: BondMode) -> BondSnapshot {
    let mut snap = BondSnapshot::new(mode);
    snap.members = (0..2).map(|id| TxMember { id, can_tx: true }).collect();
    snap.usable = vec![0, 1];
    snap
}

/// The scheduler's decision for every frame of `frames`, the snapshot loaded
/// once per pass as a worker does per batch.
fn bench_plan(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    snap: BondSnapshot,
    frames: &[Vec<u8>],
) {
    let shared = Shared::new(snap);
    let mut st = TxState::new(7);
    g.bench_function(name, |b| {
        b.iter(|| {
            let s = shared.snapshot.load();
            for f in frames {
                black_box(schedule::plan(&s, &mut st, black_box(f), None));
            }
        })
    });
}

fn scheduler(c: &mut Criterion) {
    let frames = traffic();
    let mut g = c.benchmark_group("tx_hash_and_pick");
    g.throughput(Throughput::Elements(frames.len() as u64));
    for policy in [
        XmitHashPolicy::Layer2,
        XmitHashPolicy::Layer23,
        XmitHashPolicy::Layer34,
        XmitHashPolicy::Encap23,
        XmitHashPolicy::Encap34,
        XmitHashPolicy::VlanSrcMac,
    ] {
        let mut snap = two_members(BondMode::BalanceXor);
        snap.hash_policy = policy;
        bench_plan(&mut g, policy.name(), snap, &frames);
    }
    // One kind of frame (IPv4/UDP, 64 flows): what the hash costs when the
    // branches on frame type are predictable.
    let udp: Vec<Vec<u8>> = (0..64u16)
        .map(|i| {
            let mut f = udp_frame(128, [2, 0, 0, 0, 2, 0], [2, 0, 0, 0, 1, 0]);
            f[34..36].copy_from_slice(&(10000 + i).to_be_bytes());
            f
        })
        .collect();
    for policy in [
        XmitHashPolicy::Layer2,
        XmitHashPolicy::Layer34,
        XmitHashPolicy::Encap34,
    ] {
        let mut snap = two_members(BondMode::BalanceXor);
        snap.hash_policy = policy;
        bench_plan(
            &mut g,
            &format!("{}_ipv4_udp_only", policy.name()),
            snap,
            &udp,
        );
    }
    for (name, mode, pps) in [
        ("balance-rr", BondMode::BalanceRr, 1),
        ("balance-rr_pps0_random", BondMode::BalanceRr, 0),
        ("broadcast", BondMode::Broadcast, 1),
    ] {
        let mut snap = two_members(mode);
        snap.packets_per_slave = pps;
        bench_plan(&mut g, name, snap, &frames);
    }
    g.finish();
}

fn decision(c: &mut Criterion) {
    let mut snap = BondSnapshot::new(BondMode::ActiveBackup);
    snap.active = Some(1);
    let shared = Shared::new(snap);
    let mut st = TxState::new(1);
    let frames: Vec<Vec<u8>> = [64, 128, 512, 1500]
        .iter()
        .map(|&l| udp_frame(l, [2, 0, 0, 0, 1, 0], [2, 0, 0, 0, 2, 0]))
        .collect();
    let mut g = c.benchmark_group("forward");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("active_backup_from_host", |b| {
        b.iter(|| {
            let s = shared.snapshot.load();
            for f in &frames {
                black_box(forward::from_host(&s, &mut st, black_box(f), 0));
            }
        })
    });
    g.bench_function("active_backup_from_member", |b| {
        b.iter(|| {
            let s = shared.snapshot.load();
            for (i, f) in frames.iter().enumerate() {
                black_box(forward::from_member(&s, (i & 1) as u16, black_box(f)));
            }
        })
    });
    // With ARP/NS monitoring on, each member frame is also tested for
    // being a probe reply (untagged data frames: the common case).
    g.bench_function("probe_test_on_data_frames", |b| {
        b.iter(|| {
            for f in &frames {
                black_box(forward::is_probe(black_box(f)));
            }
        })
    });
    g.finish();
    vlan(c);
    c.bench_function("snapshot_load", |b| {
        b.iter(|| black_box(shared.snapshot.load().active))
    });
    let counters = Arc::new(xbond_dataplane::PortCounters::default());
    c.bench_function("batch_counters_64_frames_and_publish", |b| {
        b.iter_batched(
            BatchCounters::default,
            |mut bc| {
                for _ in 0..64 {
                    bc.rx(black_box(64));
                }
                bc.publish(&counters);
            },
            BatchSize::SmallInput,
        )
    });
}

/// The VLAN work per frame: the demux of a tagged frame, and a tag pushed
/// into and popped out of a frame in the pool (headroom, 12 bytes moved).
fn vlan(c: &mut Criterion) {
    use xbond_dataplane::wire::vlan::{self, Tci, TPID_8021Q};
    use xbond_dataplane::{FrameArea, FramePool};
    let mut snap = BondSnapshot::new(BondMode::ActiveBackup);
    snap.active = Some(1);
    snap.vlans = [10, 87, 2000].into_iter().collect();
    let shared = Shared::new(snap);
    let frames: Vec<Vec<u8>> = [64, 128, 512, 1500]
        .iter()
        .map(|&l| {
            let f = udp_frame(l, [2, 0, 0, 0, 1, 0], [2, 0, 0, 0, 2, 0]);
            let mut t = f[..12].to_vec();
            t.extend_from_slice(&[0x81, 0x00, 0x00, 87]);
            t.extend_from_slice(&f[12..]);
            t
        })
        .collect();
    let mut g = c.benchmark_group("vlan");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("demux_tagged_from_member", |b| {
        b.iter(|| {
            let s = shared.snapshot.load();
            for f in &frames {
                black_box(forward::from_member(&s, 1, black_box(f)));
            }
        })
    });
    g.finish();
    let mut pool = FramePool::new(FrameArea::heap(4, 2048).unwrap());
    let mut f = pool
        .alloc_with(&udp_frame(1500, [2, 0, 0, 0, 1, 0], [2, 0, 0, 0, 2, 0]))
        .unwrap();
    c.bench_function("vlan_push_then_pop_1500", |b| {
        b.iter(|| {
            assert!(pool.grow_head(&mut f, 4));
            vlan::insert_tag(pool.data_mut(&mut f), TPID_8021Q, Tci(87));
            vlan::remove_tag(pool.data_mut(&mut f));
            pool.adjust_head(&mut f, 4);
            black_box(f.len())
        })
    });
}

criterion_group!(benches, decision, scheduler);
criterion_main!(benches);
