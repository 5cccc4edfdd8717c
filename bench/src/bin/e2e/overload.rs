//! `xbond-e2e --overload`: what a forwarder delivers when more arrives than
//! it can forward, next to what it delivers just below that.
//!
//! For each forwarder (the raw reference, then xbond in each mode), on one
//! running instance and one sink:
//! 1. a search with the paced socket generator ([`Offer::Paced`]) finds the
//!    highest rate delivered whole (at least 97 %). Where the generator
//!    cannot offer more than the forwarder carries (core 0 also runs the
//!    receiving veth's NAPI), the row says so: the capacity is then at
//!    least that rate;
//! 2. then, interleaved `reps` times, `secs` each: that paced rate; a
//!    sustained overload ([`Offer::Sustained`], many times the capacity);
//!    and line-rate bursts ([`Offer::Bursts`], 20,000 frames about every
//!    26 ms, the generator of the packet-rate table).
//!
//! "Delivered" is what reached the sinks (the interfaces' `rx_packets`), so
//! frames a forwarder put on a TX ring and the kernel dropped do not count.
//! The worker's CPU share is its thread's user + system time over the wall
//! time of the window.

use super::*;

/// A paced rate counts as carried when at least this share arrives.
const WHOLE: f64 = 0.97;
/// Paced trials of the capacity search.
const SEARCH_STEPS: u32 = 6;
/// Length of one search trial.
const SEARCH_SECS: f64 = 1.0;

/// One measurement window.
#[derive(Debug, Clone, Copy)]
struct Trial {
    offered: f64,
    delivered: f64,
    cpu: f64,
}

/// What one forwarder runs against: its namespaces, sink and frames.
struct Bench<'a> {
    ns: &'a Netns,
    rig: &'a dyn Rig,
    sink: Sink,
    dir: Dir,
    size: usize,
    vlan: bool,
    /// Frames at the sinks per frame offered (broadcast: one per member).
    fan: f64,
}

impl Bench<'_> {
    fn trial(&self, offer: Offer, secs: f64) -> anyhow::Result<Trial> {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let g = generator(
            self.ns,
            self.dir,
            self.size,
            self.vlan,
            offer,
            Arc::clone(&stop),
            Arc::clone(&sent),
        )?;
        std::thread::sleep(Duration::from_millis(500));
        let (s0, r0, c0, t0) = (
            sent.load(Ordering::Relaxed),
            self.sink.received()?,
            self.rig.cpu()?,
            Instant::now(),
        );
        std::thread::sleep(Duration::from_secs_f64(secs));
        let (s1, r1, c1, t1) = (
            sent.load(Ordering::Relaxed),
            self.sink.received()?,
            self.rig.cpu()?,
            Instant::now(),
        );
        stop.store(true, Ordering::Relaxed);
        join(g)?;
        // Let the rings drain before the next window.
        std::thread::sleep(Duration::from_millis(300));
        let wall = (t1 - t0).as_secs_f64();
        Ok(Trial {
            offered: (s1 - s0) as f64 / wall,
            delivered: (r1 - r0) as f64 / wall / self.fan,
            cpu: (c1 - c0).as_secs_f64() / wall,
        })
    }

    /// The highest paced rate delivered whole, and whether the generator
    /// (not the forwarder) was what stopped the search.
    fn capacity(&self) -> anyhow::Result<(f64, bool)> {
        // The most the paced generator offers here, asked for far more.
        let top = self.trial(Offer::Paced(5e6), SEARCH_SECS)?;
        eprintln!(
            "   paced generator at most: {:.0} offered, {:.0} delivered",
            top.offered, top.delivered
        );
        if top.delivered >= WHOLE * top.offered {
            return Ok((top.offered, true));
        }
        let (mut lo, mut hi) = (0.0, top.offered);
        for _ in 0..SEARCH_STEPS {
            let mid = (lo + hi) / 2.0;
            let t = self.trial(Offer::Paced(mid), SEARCH_SECS)?;
            eprintln!(
                "   search: {:.0} offered, {:.0} delivered",
                t.offered, t.delivered
            );
            if t.delivered >= WHOLE * t.offered {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok((lo, false))
    }
}

/// The measured row of one forwarder.
struct Row {
    generator_limited: bool,
    paced: Vec<Trial>,
    sustained: Vec<Trial>,
    bursts: Vec<Trial>,
}

fn measure(bench: &Bench<'_>, secs: f64, reps: usize) -> anyhow::Result<Row> {
    let (rate, generator_limited) = bench.capacity()?;
    let mut row = Row {
        generator_limited,
        paced: Vec::new(),
        sustained: Vec::new(),
        bursts: Vec::new(),
    };
    for _ in 0..reps {
        row.paced.push(bench.trial(Offer::Paced(rate), secs)?);
        row.sustained.push(bench.trial(Offer::Sustained, secs)?);
        row.bursts.push(bench.trial(Offer::Bursts, secs)?);
    }
    Ok(row)
}

fn med(v: &[Trial], f: impl Fn(&Trial) -> f64) -> f64 {
    median(v.iter().map(f).collect())
}

const HEADER: &str = "| members | bytes | dir | forwarder | paced: delivered Mpps | sustained overload: offered Mpps (x paced) | delivered Mpps | / paced | bursts: offered Mpps | delivered Mpps | / paced | worker CPU paced / sustained / bursts |";

fn print_row(members: usize, size: usize, dir: Dir, name: &str, row: &Row) {
    let paced = med(&row.paced, |t| t.delivered);
    let sustained = med(&row.sustained, |t| t.delivered);
    let bursts = med(&row.bursts, |t| t.delivered);
    let offered = med(&row.sustained, |t| t.offered);
    println!(
        "| {members} | {size} | {} | {name} | {:.3}{} | {:.3} ({:.1}x) | {:.3} | {:.0} % | {:.3} | {:.3} | {:.0} % | {:.0} / {:.0} / {:.0} % |",
        if dir == Dir::Rx { "rx" } else { "tx" },
        paced / 1e6,
        if row.generator_limited { " (generator's most)" } else { "" },
        offered / 1e6,
        offered / paced,
        sustained / 1e6,
        100.0 * sustained / paced,
        med(&row.bursts, |t| t.offered) / 1e6,
        bursts / 1e6,
        100.0 * bursts / paced,
        100.0 * med(&row.paced, |t| t.cpu),
        100.0 * med(&row.sustained, |t| t.cpu),
        100.0 * med(&row.bursts, |t| t.cpu),
    );
    let d = |v: &[Trial]| v.iter().map(|t| t.delivered.round()).collect::<Vec<_>>();
    eprintln!(
        "   {name}: paced {:?}, sustained {:?}, bursts {:?} (delivered pps)",
        d(&row.paced),
        d(&row.sustained),
        d(&row.bursts)
    );
}

/// The overload table for every members x size x direction x mode, with
/// the raw forwarder first and, unless `--no-vlan`, each mode again
/// through VLAN 87.
pub(crate) fn run_all(opts: &Options) -> anyhow::Result<()> {
    let extra = opts
        .ring_size
        .map(|r| format!("ring_size = {r}"))
        .unwrap_or_default();
    println!("{HEADER}");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &m in &opts.members {
        let ns = Netns::new(m)?;
        for &size in &opts.sizes {
            for &dir in &opts.dirs {
                {
                    let rig = RawRig::start(&ns, dir)?;
                    let bench = Bench {
                        ns: &ns,
                        rig: &rig,
                        sink: Sink::attach(&ns, dir, m, false)?,
                        dir,
                        size,
                        vlan: false,
                        fan: 1.0,
                    };
                    let row = measure(&bench, opts.secs, opts.reps)?;
                    print_row(m, size, dir, "raw forwarder", &row);
                }
                for mode in &opts.modes {
                    for vlan in [false, true] {
                        if vlan && !opts.with_vlan {
                            continue;
                        }
                        let rig = XbondRig::start_with(&ns, dir, mode, m, vlan, &extra)?;
                        let bench = Bench {
                            ns: &ns,
                            rig: &rig,
                            sink: Sink::attach(&ns, dir, m, vlan)?,
                            dir,
                            size,
                            vlan,
                            fan: if mode == "broadcast" && dir == Dir::Tx {
                                m as f64
                            } else {
                                1.0
                            },
                        };
                        let row = measure(&bench, opts.secs, opts.reps)?;
                        let name = if vlan {
                            format!("{mode}, VLAN 87")
                        } else {
                            mode.clone()
                        };
                        print_row(m, size, dir, &name, &row);
                    }
                }
            }
        }
    }
    Ok(())
}
