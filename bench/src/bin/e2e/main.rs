//! End-to-end throughput through a real xbond bond on the veth testbed, next to
//! a plain 2-port AF_XDP forwarder on the same veths in the same run.
//!
//! Topology (namespaces made here, removed at the end, also on failure):
//!
//! ```text
//!   gen ns:  g0 [g1]  --veth--  m0 [m1]  :host ns, xbond members
//!                                bond0-xb <-veth-> bond0
//! ```
//!
//! The generator runs an `XDP_TX` program in `BPF_PROG_TEST_RUN` live-frames
//! mode (pinned to core 0), so it outruns any single-core forwarder; an
//! `XDP_DROP` program is the sink. The forwarder under test (xbond's worker,
//! or the raw forwarder) is pinned to core 1.
//!
//! - `rx`: generator on g0, frames m0 -> bond0-xb, sink on bond0; the rate is
//!   frames put on bond0-xb's TX ring per second.
//! - `tx`: generator on bond0, frames bond0-xb -> members as the mode's TX
//!   scheduler decides, sinks on every gN; the rate is frames put on the
//!   members' TX rings per second (broadcast puts one per member). The raw
//!   forwarder moves bond0-xb -> m0.
//!
//! - VLAN: the same run again with a VLAN 87 sub-interface, frames tagged
//!   on the members (rx: g0 sends tagged 87, xbond pops the tag towards
//!   bond0.87; tx: the generator is on bond0.87, xbond pushes the tag), and
//!   the VLAN rate as a ratio to the untagged rate measured in the same run.
//!
//! - `--overload`: see `overload.rs`; what each forwarder delivers when
//!   offered more than it can carry, next to its paced capacity.
//!
//! Usage: see [`USAGE`] (`xbond-e2e --help`).

mod overload;
mod rigs;
use rigs::{xbond_bin, RawRig, XbondRig};

use anyhow::{bail, Context};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xbond_bench::udp_frame;
use xbond_dataplane::tools::{
    AttachMode, FixedVerdict, LiveFrames, RawForwarder, SocketFrames, XdpAction,
};
use xbond_testbed::{in_ns, run, veth_pair, VethEnd};

const USAGE: &str = "
xbond-e2e: packets per second through a real xbond bond on a veth testbed (root).

  xbond-e2e [--secs S] [--reps N] [--sizes 64,1500] [--members 1,2]
            [--modes active-backup,balance-rr,balance-xor,broadcast,balance-tlb,balance-alb]
            [--dirs rx,tx] [--no-vlan] [--overload [--ring-size N]]

Without --overload: the rate each mode forwards under an unpaced generator,
next to a raw AF_XDP forwarder on the same veths.
With --overload: per forwarder, what it delivers just below its capacity
(paced), under a sustained overload (at least 1.5x) and under line-rate
bursts, interleaved, with the worker thread's CPU share; --ring-size sets
xbond's ring_size for these rows.
";

const BOND_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0];
const GEN_MAC: [u8; 6] = [2, 0, 0, 0, 3, 0];

struct Netns {
    gen: String,
    host: String,
}

impl Netns {
    fn new(members: usize) -> anyhow::Result<Self> {
        let p = format!("xbe2e{}", std::process::id());
        let n = Netns {
            gen: format!("{p}-g"),
            host: format!("{p}-h"),
        };
        for ns in [&n.gen, &n.host] {
            run(Command::new("ip").args(["netns", "add", ns]))?;
        }
        for i in 0..members {
            let (m, g, mac) = (
                format!("m{i}"),
                format!("g{i}"),
                format!("02:00:00:00:01:0{i}"),
            );
            veth_pair(
                VethEnd {
                    name: &m,
                    ns: &n.host,
                    mac: Some(&mac),
                },
                VethEnd {
                    name: &g,
                    ns: &n.gen,
                    mac: None,
                },
            )?;
            run(Command::new("ip").args(["-n", &n.host, "link", "set", &format!("m{i}"), "up"]))?;
            run(Command::new("ip").args([
                "-n",
                &n.gen,
                "link",
                "set",
                &format!("g{i}"),
                "up",
                "address",
                "02:00:00:00:03:00",
            ]))?;
        }
        Ok(n)
    }

    fn ifindex(&self, ns: &str, dev: &str) -> anyhow::Result<u32> {
        let out = run(Command::new("ip").args(["-n", ns, "-j", "link", "show", "dev", dev]))?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        v[0]["ifindex"]
            .as_u64()
            .map(|i| i as u32)
            .context("no ifindex")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.gen, &self.host] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn core(id: usize) -> Option<core_affinity::CoreId> {
    core_affinity::get_core_ids().and_then(|c| c.into_iter().find(|c| c.id == id))
}

/// Which way the frames go through the bond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// Members to host port.
    Rx,
    /// Host port to members (the TX scheduler).
    Tx,
}

/// Ring entries (and fill level) of the raw forwarder: deep enough for the
/// bursts of [`Offer::Bursts`].
const RAW_RING: u32 = 16384;

/// The VLAN of the VLAN runs.
const VID: u16 = 87;

/// `frame` with an 802.1Q tag for `vid` (same frame length as untagged
/// runs' frames plus the tag, as a switch would deliver them).
fn tag(frame: Vec<u8>, vid: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

/// How a generator offers its frames. One live-frames call sleeps about
/// 24 ms in the kernel whatever its length (measured: 3 ms of CPU in a 26 ms
/// call of 20,000 frames), and calls do not overlap, so a live-frames
/// generator is a train of line-rate bursts with gaps between them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Offer {
    /// Live frames, 20,000 per call: a burst of 20,000 frames about every
    /// 26 ms (the packet-rate table's generator).
    Bursts,
    /// Live frames, 2,000,000 per call: hundreds of milliseconds at the
    /// most core 0 makes, then a 24 ms gap. A sustained overload.
    Sustained,
    /// An AF_XDP socket, paced to this many frames per second in batches of
    /// 64: no burst longer than a batch.
    Paced(f64),
}

/// A generator until `stop`, on core 0: on g0 for rx, on bond0 (or
/// bond0.87) for tx. `sent` counts the frames it offered.
fn generator(
    ns: &Netns,
    dir: Dir,
    size: usize,
    vlan: bool,
    offer: Offer,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<anyhow::Result<()>>>> {
    let (gns, dev, frame) = match (dir, vlan) {
        (Dir::Rx, false) => (&ns.gen, "g0", udp_frame(size, BOND_MAC, GEN_MAC)),
        (Dir::Rx, true) => (&ns.gen, "g0", tag(udp_frame(size, BOND_MAC, GEN_MAC), VID)),
        (Dir::Tx, false) => (&ns.host, "bond0", udp_frame(size, GEN_MAC, BOND_MAC)),
        (Dir::Tx, true) => (&ns.host, "bond0.87", udp_frame(size, GEN_MAC, BOND_MAC)),
    };
    let ifindex = ns.ifindex(gns, dev)?;
    Ok(in_ns(gns, move || -> anyhow::Result<()> {
        if let Some(c) = core(0) {
            core_affinity::set_for_current(c);
        }
        let repeat = match offer {
            Offer::Bursts => 20_000,
            Offer::Sustained => 2_000_000,
            Offer::Paced(rate) => return paced(ifindex, &frame, rate, &stop, &sent),
        };
        let gen = LiveFrames::new()?;
        while !stop.load(Ordering::Relaxed) {
            gen.send(ifindex, &frame, repeat, 64)
                .context("live frames")?;
            sent.fetch_add(u64::from(repeat), Ordering::Relaxed);
        }
        Ok(())
    }))
}

/// `frame` at `rate` per second from a socket on `ifindex`, by sleeping
/// whenever the next batch is not due yet.
fn paced(
    ifindex: u32,
    frame: &[u8],
    rate: f64,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> anyhow::Result<()> {
    let mut gen = SocketFrames::new(ifindex, frame).context("socket generator")?;
    let start = Instant::now();
    let mut total = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let due = start.elapsed().as_secs_f64() * rate;
        if (total + u64::from(SocketFrames::BATCH)) as f64 > due {
            std::thread::sleep(Duration::from_micros(50));
            continue;
        }
        total += u64::from(gen.send()?);
        sent.store(total, Ordering::Relaxed);
    }
    Ok(())
}

/// XDP_DROP where the frames end (bond0 or bond0.87 for rx, every gN for
/// tx): a cheap, identical sink for every run. It stays until dropped.
struct Sink {
    ns: String,
    devs: Vec<String>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<anyhow::Result<()>>>>,
}

impl Sink {
    fn attach(ns: &Netns, dir: Dir, members: usize, vlan: bool) -> anyhow::Result<Sink> {
        let (sns, devs): (&String, Vec<String>) = match dir {
            Dir::Rx if vlan => (&ns.host, vec!["bond0.87".into()]),
            Dir::Rx => (&ns.host, vec!["bond0".into()]),
            Dir::Tx => (&ns.gen, (0..members).map(|i| format!("g{i}")).collect()),
        };
        let ifindexes = devs
            .iter()
            .map(|d| ns.ifindex(sns, d))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let s2 = Arc::clone(&stop);
        let h = in_ns(sns, move || -> anyhow::Result<()> {
            let _sink = FixedVerdict::attach(XdpAction::Drop, &ifindexes, AttachMode::Native)?;
            let _ = tx.send(());
            while !s2.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(())
        });
        let sink = Sink {
            ns: sns.clone(),
            devs,
            stop,
            thread: Some(h),
        };
        rx.recv_timeout(Duration::from_secs(5))
            .context("sink did not attach")?;
        Ok(sink)
    }

    /// Frames that reached the sink's interfaces: a veth counts in
    /// `rx_packets` every frame its XDP program saw.
    fn received(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for d in &self.devs {
            let out = run(
                Command::new("ip").args(["-n", &self.ns, "-j", "-s", "link", "show", "dev", d])
            )?;
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            total += v[0]["stats64"]["rx"]["packets"]
                .as_u64()
                .with_context(|| format!("no rx packets for {d}"))?;
        }
        Ok(total)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.thread.take() {
            if let Err(e) = join(h) {
                eprintln!("sink: {e:#}");
            }
        }
    }
}

fn join(h: std::thread::JoinHandle<anyhow::Result<anyhow::Result<()>>>) -> anyhow::Result<()> {
    h.join().map_err(|_| anyhow::anyhow!("thread panicked"))??
}

/// A forwarder under test, running on core 1 between the members and the
/// host port.
trait Rig {
    /// Frames it has put on TX rings so far.
    fn forwarded(&self) -> anyhow::Result<u64>;
    /// CPU time its forwarding thread has used so far.
    fn cpu(&self) -> anyhow::Result<Duration>;
}

/// CPU time (user + system) of thread `tid` of process `pid`.
fn thread_cpu(pid: u32, tid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat"))?;
    // Fields after the command name in parentheses: state is field 3,
    // utime 14 and stime 15.
    let rest = &stat[stat.rfind(')').context("stat")? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.context("CLK_TCK")? as u64;
    Ok(Duration::from_secs_f64(ticks as f64 / hz as f64))
}

/// Frames per second `rig` put on TX rings while an unpaced generator ran
/// for `secs` (after a second to settle).
fn forward_rate(
    ns: &Netns,
    rig: &dyn Rig,
    dir: Dir,
    members: usize,
    size: usize,
    secs: f64,
    vlan: bool,
) -> anyhow::Result<f64> {
    let _sink = Sink::attach(ns, dir, members, vlan)?;
    let gen_stop = Arc::new(AtomicBool::new(false));
    let g = generator(
        ns,
        dir,
        size,
        vlan,
        Offer::Bursts,
        Arc::clone(&gen_stop),
        Arc::default(),
    )?;
    std::thread::sleep(Duration::from_secs(1));
    let (c0, t0) = (rig.forwarded()?, Instant::now());
    std::thread::sleep(Duration::from_secs_f64(secs));
    let (c1, t1) = (rig.forwarded()?, Instant::now());
    gen_stop.store(true, Ordering::Relaxed);
    join(g)?;
    Ok((c1 - c0) as f64 / (t1 - t0).as_secs_f64())
}

fn raw_forwarder(
    ns: &Netns,
    dir: Dir,
    members: usize,
    size: usize,
    secs: f64,
) -> anyhow::Result<f64> {
    let rig = RawRig::start(ns, dir)?;
    forward_rate(ns, &rig, dir, members, size, secs, false)
}

/// The bond: xbond's own worker in `mode`.
fn bond(
    ns: &Netns,
    way: Dir,
    mode: &str,
    members: usize,
    size: usize,
    secs: f64,
    vlan: bool,
) -> anyhow::Result<f64> {
    let rig = XbondRig::start(ns, way, mode, members, vlan)?;
    forward_rate(ns, &rig, way, members, size, secs, vlan)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn list(args: &[String], key: &str, default: &str) -> Vec<usize> {
    let v = args
        .iter()
        .position(|a| a == key)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |s| s.as_str());
    v.split(',').filter_map(|s| s.trim().parse().ok()).collect()
}

fn names(args: &[String], key: &str, default: &str) -> Vec<String> {
    args.iter()
        .position(|a| a == key)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |s| s.as_str())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// What the command line asked for.
struct Options {
    secs: f64,
    reps: usize,
    sizes: Vec<usize>,
    members: Vec<usize>,
    modes: Vec<String>,
    dirs: Vec<Dir>,
    with_vlan: bool,
    /// `ring_size` for xbond's bonds, when not the default.
    ring_size: Option<usize>,
}

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<Options> {
        Ok(Options {
            secs: list(args, "--secs", "3")[0] as f64,
            reps: list(args, "--reps", "3")[0].max(1),
            sizes: list(args, "--sizes", "64,1500"),
            members: list(args, "--members", "1,2"),
            modes: names(
                args,
                "--modes",
                "active-backup,balance-rr,balance-xor,broadcast,balance-tlb,balance-alb",
            ),
            dirs: names(args, "--dirs", "rx,tx")
                .iter()
                .map(|d| match d.as_str() {
                    "rx" => Ok(Dir::Rx),
                    "tx" => Ok(Dir::Tx),
                    other => Err(anyhow::anyhow!("--dirs: rx or tx, not {other}")),
                })
                .collect::<anyhow::Result<_>>()?,
            with_vlan: !args.iter().any(|a| a == "--no-vlan"),
            ring_size: args
                .iter()
                .any(|a| a == "--ring-size")
                .then(|| list(args, "--ring-size", "4096")[0]),
        })
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", USAGE.trim());
        return Ok(());
    }
    let opts = Options::parse(&args)?;
    if !xbond_bin().exists() {
        bail!(
            "{} missing: cargo build --release --bins",
            xbond_bin().display()
        );
    }
    if args.iter().any(|a| a == "--overload") {
        return overload::run_all(&opts);
    }
    let reps = opts.reps;
    let secs = opts.secs;
    println!("| members | frame bytes | direction | raw forwarder Mpps (median of {reps}) | mode | xbond Mpps | xbond / raw | VLAN 87 Mpps | VLAN / untagged |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &m in &opts.members {
        let ns = Netns::new(m)?;
        for &size in &opts.sizes {
            for &dir in &opts.dirs {
                let mut raws = Vec::new();
                for _ in 0..reps {
                    raws.push(raw_forwarder(&ns, dir, m, size, secs)?);
                }
                let r = median(raws.clone());
                eprintln!("   raw {dir:?} runs: {raws:.0?}");
                for mode in &opts.modes {
                    let mut bonds = Vec::new();
                    let mut vlans = Vec::new();
                    for _ in 0..reps {
                        bonds.push(bond(&ns, dir, mode, m, size, secs, false)?);
                        if opts.with_vlan {
                            vlans.push(bond(&ns, dir, mode, m, size, secs, true)?);
                        }
                    }
                    let b = median(bonds.clone());
                    let (vcol, vratio) = if opts.with_vlan {
                        let v = median(vlans.clone());
                        (format!("{:.3}", v / 1e6), format!("{:.1} %", 100.0 * v / b))
                    } else {
                        ("-".into(), "-".into())
                    };
                    println!(
                        "| {m} | {size} | {} | {:.3} | {mode} | {:.3} | {:.1} % | {vcol} | {vratio} |",
                        if dir == Dir::Rx { "rx" } else { "tx" },
                        r / 1e6,
                        b / 1e6,
                        100.0 * b / r
                    );
                    eprintln!("   {mode} runs: {bonds:.0?}, VLAN runs: {vlans:.0?}");
                }
            }
        }
    }
    Ok(())
}
