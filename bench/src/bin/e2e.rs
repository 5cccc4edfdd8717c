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
//! Usage: xbond-e2e [--secs S] [--reps N] [--sizes 64,1500] [--members 1,2]
//!                  [--modes active-backup,balance-rr,balance-xor,broadcast,balance-tlb,balance-alb]
//!                  [--dirs rx,tx]
//!                  [--no-vlan]

use anyhow::{bail, Context};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xbond_bench::udp_frame;
use xbond_dataplane::tools::{AttachMode, FixedVerdict, LiveFrames, RawForwarder, XdpAction};
use xbond_testbed::{in_ns, run};

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
            run(Command::new("ip").args([
                "-n",
                &n.host,
                "link",
                "add",
                &format!("m{i}"),
                "numtxqueues",
                "1",
                "numrxqueues",
                "1",
                "address",
                &format!("02:00:00:00:01:0{i}"),
                "type",
                "veth",
                "peer",
                "name",
                &format!("g{i}"),
                "numtxqueues",
                "1",
                "numrxqueues",
                "1",
                "netns",
                &n.gen,
            ]))?;
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

/// Live-frames XDP_TX generator until `stop`: on g0 for rx, on bond0 (or
/// bond0.87) for tx.
fn generator(
    ns: &Netns,
    dir: Dir,
    size: usize,
    vlan: bool,
    stop: Arc<AtomicBool>,
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
        let gen = LiveFrames::new()?;
        while !stop.load(Ordering::Relaxed) {
            gen.send(ifindex, &frame, 20_000, 64)
                .context("live frames")?;
        }
        Ok(())
    }))
}

/// XDP_DROP where the frames end (bond0 or bond0.87 for rx, every gN for
/// tx): a cheap, identical sink for every run.
fn sink(
    ns: &Netns,
    dir: Dir,
    members: usize,
    vlan: bool,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<anyhow::Result<()>>>> {
    let (sns, devs): (&String, Vec<String>) = match dir {
        Dir::Rx if vlan => (&ns.host, vec!["bond0.87".into()]),
        Dir::Rx => (&ns.host, vec!["bond0".into()]),
        Dir::Tx => (&ns.gen, (0..members).map(|i| format!("g{i}")).collect()),
    };
    let ifindexes = devs
        .iter()
        .map(|d| ns.ifindex(sns, d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let h = in_ns(sns, move || -> anyhow::Result<()> {
        let _sink = FixedVerdict::attach(XdpAction::Drop, &ifindexes, AttachMode::Native)?;
        let _ = tx.send(());
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    });
    rx.recv_timeout(Duration::from_secs(5))
        .context("sink did not attach")?;
    Ok(h)
}

fn join(h: std::thread::JoinHandle<anyhow::Result<anyhow::Result<()>>>) -> anyhow::Result<()> {
    h.join().map_err(|_| anyhow::anyhow!("thread panicked"))??
}

/// The ceiling: m0 -> bond0-xb (rx) or bond0-xb -> m0 (tx) with nothing but
/// ring operations.
fn raw_forwarder(
    ns: &Netns,
    dir: Dir,
    members: usize,
    size: usize,
    secs: f64,
) -> anyhow::Result<f64> {
    run(Command::new("ip").args([
        "-n",
        &ns.host,
        "link",
        "add",
        "bond0",
        "numtxqueues",
        "1",
        "numrxqueues",
        "1",
        "type",
        "veth",
        "peer",
        "name",
        "bond0-xb",
        "numtxqueues",
        "1",
        "numrxqueues",
        "1",
    ]))?;
    let hns = ns.host.clone();
    run(Command::new("ip").args(["netns", "exec", &hns, "ethtool", "-K", "bond0", "tx", "off"]))?;
    for d in ["bond0", "bond0-xb"] {
        run(Command::new("ip").args(["-n", &ns.host, "link", "set", d, "up"]))?;
    }
    let (m0, hx) = match dir {
        Dir::Rx => (
            ns.ifindex(&ns.host, "m0")?,
            ns.ifindex(&ns.host, "bond0-xb")?,
        ),
        Dir::Tx => (
            ns.ifindex(&ns.host, "bond0-xb")?,
            ns.ifindex(&ns.host, "m0")?,
        ),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let forwarded = Arc::new(AtomicU64::new(0));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (s2, f2) = (Arc::clone(&stop), Arc::clone(&forwarded));
    let fwd = in_ns(&ns.host, move || -> anyhow::Result<()> {
        if let Some(c) = core(1) {
            core_affinity::set_for_current(c);
        }
        let mut fwd = RawForwarder::new(m0, hx, AttachMode::Native)?;
        let _ = ready_tx.send(());
        let mut local = 0u64;
        while !s2.load(Ordering::Relaxed) {
            local += u64::from(fwd.round()?);
            f2.store(local, Ordering::Relaxed);
        }
        Ok(())
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .context("raw forwarder did not start")?;
    let sink_stop = Arc::new(AtomicBool::new(false));
    let sk = sink(ns, dir, members, false, Arc::clone(&sink_stop))?;
    let gen_stop = Arc::new(AtomicBool::new(false));
    let g = generator(ns, dir, size, false, Arc::clone(&gen_stop))?;
    std::thread::sleep(Duration::from_secs(1));
    let (c0, t0) = (forwarded.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(secs));
    let (c1, t1) = (forwarded.load(Ordering::Relaxed), Instant::now());
    gen_stop.store(true, Ordering::Relaxed);
    join(g)?;
    stop.store(true, Ordering::Relaxed);
    join(fwd)?;
    sink_stop.store(true, Ordering::Relaxed);
    join(sk)?;
    run(Command::new("ip").args(["-n", &ns.host, "link", "del", "bond0"]))?;
    Ok((c1 - c0) as f64 / (t1 - t0).as_secs_f64())
}

fn xbond_bin() -> std::path::PathBuf {
    std::env::var("XBOND_BIN")
        .map(Into::into)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/xbond")
        })
}

/// Frames xbond put on TX rings: the host port's (or the VLAN's) for rx,
/// the members' for tx.
fn forwarded(run_dir: &std::path::Path, dir: Dir, vlan: bool) -> anyhow::Result<u64> {
    let out = run(Command::new(xbond_bin())
        .arg("--run-dir")
        .arg(run_dir)
        .args(["stats", "--json"]))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let vlan_role = format!("vlan {VID}");
    let role = match dir {
        Dir::Rx if vlan => vlan_role.as_str(),
        Dir::Rx => "host",
        Dir::Tx => "member",
    };
    let ports = v["ports"].as_array().context("ports")?;
    if !ports.iter().any(|p| p["role"] == role) {
        bail!("no {role} port yet");
    }
    Ok(ports
        .iter()
        .filter(|p| p["role"] == role)
        .filter_map(|p| p["tx_packets"].as_u64())
        .sum())
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
    let dir = std::env::temp_dir().join(format!("{}-run", ns.host));
    std::fs::create_dir_all(&dir)?;
    let list: Vec<String> = (0..members).map(|i| format!("\"m{i}\"")).collect();
    let hash = if matches!(mode, "balance-xor" | "balance-tlb" | "balance-alb") {
        " xmit_hash_policy=layer3+4"
    } else {
        ""
    };
    std::fs::write(
        dir.join("b.toml"),
        format!(
            "[daemon]\nrun_dir = \"{}\"\n[bond.bond0]\nmembers = [{}]\noptions = \"mode={mode} miimon=100{hash}\"\ncpus = [1]\n{}",
            dir.display(),
            list.join(", "),
            if vlan { format!("[[bond.bond0.vlan]]\nid = {VID}\n") } else { String::new() }
        ),
    )?;
    let mut child: Child = Command::new("ip")
        .args(["netns", "exec", &ns.host])
        .arg(xbond_bin())
        .arg("run")
        .arg(dir.join("b.toml"))
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()?;
    let t = Instant::now();
    while forwarded(&dir, way, vlan).is_err() {
        if t.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            bail!("xbond did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let result = (|| -> anyhow::Result<f64> {
        let sink_stop = Arc::new(AtomicBool::new(false));
        let sk = sink(ns, way, members, vlan, Arc::clone(&sink_stop))?;
        let gen_stop = Arc::new(AtomicBool::new(false));
        let g = generator(ns, way, size, vlan, Arc::clone(&gen_stop))?;
        std::thread::sleep(Duration::from_secs(1));
        let (c0, t0) = (forwarded(&dir, way, vlan)?, Instant::now());
        std::thread::sleep(Duration::from_secs_f64(secs));
        let (c1, t1) = (forwarded(&dir, way, vlan)?, Instant::now());
        gen_stop.store(true, Ordering::Relaxed);
        join(g)?;
        sink_stop.store(true, Ordering::Relaxed);
        join(sk)?;
        Ok((c1 - c0) as f64 / (t1 - t0).as_secs_f64())
    })();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
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

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let secs = list(&args, "--secs", "3")[0] as f64;
    let reps = list(&args, "--reps", "3")[0].max(1);
    let sizes = list(&args, "--sizes", "64,1500");
    let members = list(&args, "--members", "1,2");
    let modes = names(
        &args,
        "--modes",
        "active-backup,balance-rr,balance-xor,broadcast,balance-tlb,balance-alb",
    );
    let dirs: Vec<Dir> = names(&args, "--dirs", "rx,tx")
        .iter()
        .map(|d| match d.as_str() {
            "rx" => Ok(Dir::Rx),
            "tx" => Ok(Dir::Tx),
            other => Err(anyhow::anyhow!("--dirs: rx or tx, not {other}")),
        })
        .collect::<anyhow::Result<_>>()?;
    let with_vlan = !args.iter().any(|a| a == "--no-vlan");
    if !xbond_bin().exists() {
        bail!(
            "{} missing: cargo build --release --bins",
            xbond_bin().display()
        );
    }
    println!("| members | frame bytes | direction | raw forwarder Mpps (median of {reps}) | mode | xbond Mpps | xbond / raw | VLAN 87 Mpps | VLAN / untagged |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &m in &members {
        let ns = Netns::new(m)?;
        for &size in &sizes {
            for &dir in &dirs {
                let mut raws = Vec::new();
                for _ in 0..reps {
                    raws.push(raw_forwarder(&ns, dir, m, size, secs)?);
                }
                let r = median(raws.clone());
                eprintln!("   raw {dir:?} runs: {raws:.0?}");
                for mode in &modes {
                    let mut bonds = Vec::new();
                    let mut vlans = Vec::new();
                    for _ in 0..reps {
                        bonds.push(bond(&ns, dir, mode, m, size, secs, false)?);
                        if with_vlan {
                            vlans.push(bond(&ns, dir, mode, m, size, secs, true)?);
                        }
                    }
                    let b = median(bonds.clone());
                    let (vcol, vratio) = if with_vlan {
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
