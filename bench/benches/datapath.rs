//! Per-frame costs of the data path, without I/O: the forwarding decision
//! read from the snapshot, the worker's batch counters, and a whole worker
//! round over in-memory ports (which adds the in-memory port's own copying).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use xbond_bench::udp_frame;
use xbond_dataplane::counters::BatchCounters;
use xbond_dataplane::forward;
use xbond_dataplane::snapshot::{BondSnapshot, Mode, Shared};

fn decision(c: &mut Criterion) {
    let mut snap = BondSnapshot::new(Mode::ActiveBackup);
    snap.active = Some(1);
    let shared = Shared::new(snap);
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
                black_box(forward::from_host(&s, black_box(f)));
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
    g.finish();
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

criterion_group!(benches, decision);
criterion_main!(benches);
