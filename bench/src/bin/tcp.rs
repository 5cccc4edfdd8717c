//! The host's own TCP through bond0, next to a plain veth on the same switch,
//! measured in the same run and interleaved (xbond, plain, xbond, plain, ...).
//!
//! Topology (namespaces made here, removed at the end, also on failure): the
//! testbed's host, switch and peer (`testbed/topo.sh`), plus a reference host
//! `PREFIX-r` whose veth `r0` (198.18.0.9/24) joins the same switch as `sr`.
//! `r0` keeps the kernel's default offloads (TSO, checksums): the path a
//! kernel bond gives. With Open vSwitch as the switch (802.3ad), whose
//! userspace datapath reads its ports with AF_PACKET and cannot take
//! partial checksums or TSO packets, `r0` has TX offload off, as every veth
//! that feeds it must (AFXDP.md gotcha 14).
//!
//! Each row runs iperf3 for `--secs` seconds per repetition: host -> peer
//! (`tx`) or peer -> host (`rx`, iperf3 `-R`), with 1 or more streams; the
//! peer's server is the same for both paths. It prints the median Gbit/s of
//! each path, the ratio, and the retransmissions (median per run).
//!
//! Usage: xbond-tcp [--secs S] [--reps N] [--streams 1,4] [--dirs tx,rx]
//!                  [--mtus 1500,9000] [--modes active-backup,balance-xor,802.3ad]

use anyhow::{bail, Context};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use xbond_testbed::*;

const USAGE: &str = "usage: xbond-tcp [--secs S] [--reps N] [--streams 1,4] [--dirs tx,rx] \
[--mtus 1500,9000] [--modes active-backup,balance-xor,802.3ad] [--host-ports af_xdp,af_packet]";
const REF_IP: &str = "198.18.0.9";

/// One topology: a bond in `mode` at `mtu`, its switch, the reference host
/// and the peer's iperf3 server.
struct Bed {
    topo: Topo,
    _ovs: Option<Ovs>,
    daemon: Daemon,
    reference: String,
    server: Option<Child>,
}

impl Bed {
    fn new(mode: &str, mtu: u32, host_port: &str) -> anyhow::Result<Bed> {
        let lacp = mode == "802.3ad";
        let topo = if lacp {
            Topo::with_switch("tcp", 2, "none")?
        } else {
            Topo::new("tcp", 2)?
        };
        let reference = format!("{}-r", topo.prefix);
        // From here on, `Bed`'s drop removes what was made, even on failure.
        let mut bed = Bed {
            _ovs: None,
            daemon: Daemon::start(
                &topo,
                &bond_config(
                    M0_M1,
                    &match mode {
                        "balance-xor" => {
                            "mode=balance-xor miimon=100 xmit_hash_policy=layer3+4".to_string()
                        }
                        "802.3ad" => {
                            "mode=802.3ad miimon=100 lacp_rate=fast xmit_hash_policy=layer3+4"
                                .to_string()
                        }
                        m => format!("mode={m} miimon=100"),
                    },
                    &format!("mtu = {mtu}\nhost_port = \"{host_port}\""),
                ),
            )?,
            topo,
            reference,
            server: None,
        };
        bed.build(lacp, mtu)?;
        Ok(bed)
    }

    fn build(&mut self, lacp: bool, mtu: u32) -> anyhow::Result<()> {
        let (s, r) = (&self.topo.switch.clone(), &self.reference.clone());
        sh(&["ip", "netns", "add", r])?;
        sh(&["ip", "-n", r, "link", "set", "lo", "up"])?;
        veth_pair(
            VethEnd {
                name: "r0",
                ns: r,
                mac: None,
            },
            VethEnd {
                name: "sr",
                ns: s,
                mac: None,
            },
        )?;
        sh(&[
            "ip",
            "-n",
            r,
            "addr",
            "add",
            &format!("{REF_IP}/24"),
            "dev",
            "r0",
        ])?;
        let mtu_s = mtu.to_string();
        let mut switch_links = vec!["s0", "s1", "sp", "sr"];
        if !lacp {
            switch_links.push("br0");
            sh(&["ip", "-n", s, "link", "set", "sr", "master", "br0"])?;
        }
        for l in &switch_links {
            sh(&["ip", "-n", s, "link", "set", l, "mtu", &mtu_s, "up"])?;
        }
        sh(&[
            "ip",
            "-n",
            &self.topo.peer,
            "link",
            "set",
            "p0",
            "mtu",
            &mtu_s,
        ])?;
        sh(&["ip", "-n", r, "link", "set", "r0", "mtu", &mtu_s, "up"])?;
        if lacp {
            // The partner: OVS's userspace datapath, balance-tcp over s0, s1.
            let o = Ovs::start(
                &self.topo,
                &[
                    "lacp=active",
                    "bond_mode=balance-tcp",
                    "other_config:lacp-time=fast",
                ],
            )?;
            o.vsctl(&["add-port", "br0", "sr"])?;
            for l in ["sr", "r0"] {
                let n = if l == "sr" { s } else { r };
                sh(&["ip", "netns", "exec", n, "ethtool", "-K", l, "tx", "off"])?;
            }
            o.wait_negotiated(Duration::from_secs(20))?;
            self._ovs = Some(o);
            self.daemon
                .wait_distributing(&["m0", "m1"], Duration::from_secs(20))?;
        }
        self.server = Some(
            ns(&self.topo.peer, &["iperf3", "-s", "-p", "5201"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
        std::thread::sleep(Duration::from_millis(500));
        ping(&self.topo.host, PEER_IP, 2).context("bond0 -> peer")?;
        ping(&self.reference, PEER_IP, 2).context("reference -> peer")?;
        Ok(())
    }

    /// iperf3 from `from_ns`; `rx` reverses the direction (peer sends).
    fn iperf(
        &self,
        from_ns: &str,
        rx: bool,
        streams: u32,
        secs: u32,
    ) -> anyhow::Result<(f64, u64)> {
        let mut args = vec![
            "iperf3".to_string(),
            "-c".into(),
            PEER_IP.to_string(),
            "-p".into(),
            "5201".into(),
            "-t".into(),
            secs.to_string(),
            "-P".into(),
            streams.to_string(),
            "-J".into(),
        ];
        if rx {
            args.push("-R".into());
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&mut ns(from_ns, &a))?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let end = &v["end"];
        let bps = end["sum_received"]["bits_per_second"]
            .as_f64()
            .context("iperf3: no sum_received")?;
        let retr = end["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
        Ok((bps / 1e9, retr))
    }

    /// Frames xbond dropped and the kernel dropped at its sockets, so far.
    fn drops(&self) -> anyhow::Result<(u64, u64)> {
        let s: serde_json::Value = serde_json::from_str(&self.daemon.cli(&["stats", "--json"])?)?;
        let (mut ours, mut kernel) = (0, 0);
        for p in s["ports"].as_array().context("stats: no ports")? {
            for (k, v) in p["drops"].as_object().into_iter().flatten() {
                // Duplicate suppression on the inactive member is the mode's
                // job, not a loss.
                if k != "inactive_member" {
                    ours += v.as_u64().unwrap_or(0);
                }
            }
            for k in ["rx_dropped", "rx_ring_full", "rx_fill_ring_empty_descs"] {
                kernel += p["xdp"][k].as_u64().unwrap_or(0);
            }
        }
        Ok((ours, kernel))
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.reference])
            .status();
    }
}

fn sh(args: &[&str]) -> anyhow::Result<()> {
    run(Command::new(args[0]).args(&args[1..])).map(drop)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn list(args: &[String], key: &str, default: &str) -> Vec<String> {
    args.iter()
        .position(|a| a == key)
        .and_then(|i| args.get(i + 1))
        .map_or(default, String::as_str)
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn numbers(args: &[String], key: &str, default: &str) -> anyhow::Result<Vec<u32>> {
    list(args, key, default)
        .iter()
        .map(|s| {
            s.parse()
                .with_context(|| format!("{key}: not a number: {s}"))
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let known = [
        "--secs",
        "--reps",
        "--streams",
        "--dirs",
        "--mtus",
        "--modes",
        "--host-ports",
    ];
    for (i, a) in args.iter().enumerate().skip(1) {
        if a.starts_with("--") && !known.contains(&a.as_str()) {
            bail!("unknown option {a}\n{USAGE}");
        }
        if !a.starts_with("--") && !args[i - 1].starts_with("--") {
            bail!("unexpected argument {a}\n{USAGE}");
        }
    }
    let secs = numbers(&args, "--secs", "4")?[0].max(1);
    let reps = numbers(&args, "--reps", "3")?[0].max(1);
    let streams = numbers(&args, "--streams", "1,4")?;
    let mtus = numbers(&args, "--mtus", "1500,9000")?;
    let dirs = list(&args, "--dirs", "tx,rx");
    let modes = list(&args, "--modes", "active-backup,balance-xor,802.3ad");
    let host_ports = list(&args, "--host-ports", "af_xdp,af_packet");
    if let Some(h) = host_ports
        .iter()
        .find(|h| *h != "af_xdp" && *h != "af_packet")
    {
        bail!("--host-ports: af_xdp or af_packet, not {h}");
    }
    if let Some(d) = dirs.iter().find(|d| *d != "tx" && *d != "rx") {
        bail!("--dirs: tx or rx, not {d}");
    }
    if std::env::var_os("XBOND_BIN").is_none() {
        let release = std::env::current_exe()?.with_file_name("xbond");
        if !release.exists() {
            bail!(
                "{} missing: cargo build --release --bins",
                release.display()
            );
        }
        std::env::set_var("XBOND_BIN", release);
    }
    if !require_root() {
        bail!("xbond-tcp needs root (network namespaces)");
    }
    println!("| mode | host port | MTU | direction | streams | xbond Gbit/s | plain Gbit/s | xbond / plain | xbond retr. | plain retr. | xbond drops (own, kernel) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for &mtu in &mtus {
        for (mode, hp) in modes
            .iter()
            .flat_map(|m| host_ports.iter().map(move |h| (m, h)))
        {
            let bed =
                Bed::new(mode, mtu, hp).with_context(|| format!("{mode}, {hp}, at MTU {mtu}"))?;
            for dir in &dirs {
                for &n in &streams {
                    let rx = dir == "rx";
                    let (mut xb, mut pl, mut xr, mut pr) = (vec![], vec![], vec![], vec![]);
                    let before = bed.drops()?;
                    for _ in 0..reps {
                        let (g, r) = bed.iperf(&bed.topo.host, rx, n, secs)?;
                        xb.push(g);
                        xr.push(r as f64);
                        let (g, r) = bed.iperf(&bed.reference, rx, n, secs)?;
                        pl.push(g);
                        pr.push(r as f64);
                    }
                    let after = bed.drops()?;
                    let (x, p) = (median(&mut xb), median(&mut pl));
                    println!(
                        "| {mode} | {hp} | {mtu} | {} | {n} | {x:.2} | {p:.2} | {:.0} % | {:.0} | {:.0} | {}, {} |",
                        if rx { "peer → host" } else { "host → peer" },
                        100.0 * x / p,
                        median(&mut xr),
                        median(&mut pr),
                        after.0 - before.0,
                        after.1 - before.1,
                    );
                }
            }
        }
    }
    Ok(())
}
