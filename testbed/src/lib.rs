//! Test topologies in network namespaces (built by `topo.sh`), the xbond
//! daemon started inside them, and traffic tools that run inside a namespace
//! from a test thread. Everything a test creates is removed when its handle
//! drops, also when the test fails.
#![forbid(unsafe_code)]

use anyhow::{bail, Context};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// True when these tests may run: as root. In CI (`CI=true`) not being root
/// is a failure, never a skip.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("root integration tests must run as root in CI");
    }
    eprintln!("!!! SKIPPED: netns integration test needs root (run `sudo make test`) !!!");
    false
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `xbond` binary under test: `$XBOND_BIN`, else the workspace's debug build.
pub fn xbond_bin() -> PathBuf {
    if let Ok(p) = std::env::var("XBOND_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target"));
    let p = target.join("debug/xbond");
    assert!(
        p.exists(),
        "{} missing: build it first (`cargo build --bins`; `make test` does)",
        p.display()
    );
    p
}

pub fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    let out = cmd.output().with_context(|| format!("spawn {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// The bond's address on the testbed (on `bond0`) and the peer's (p0).
pub const BOND_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// A config for `Daemon::start`: bond0 over `members` (a TOML list) with
/// `BOND_IP`, `options` as its BONDING_OPTS string, then `extra` lines.
pub fn bond_config(members: &str, options: &str, extra: &str) -> String {
    format!(
        "[daemon]\nrun_dir = \"RUN_DIR\"\n[bond.bond0]\nmembers = {members}\naddresses = [\"198.18.0.1/24\"]\noptions = \"{options}\"\n{extra}\n"
    )
}

/// The two testbed members by name.
pub const M0_M1: &str = r#"["m0", "m1"]"#;

/// `count` pings from namespace `ns_name` to `to`, 50 ms apart; all must answer.
pub fn ping(ns_name: &str, to: Ipv4Addr, count: u32) -> anyhow::Result<()> {
    run(&mut ns(
        ns_name,
        &[
            "ping",
            "-c",
            &count.to_string(),
            "-i",
            "0.05",
            "-W",
            "1",
            &to.to_string(),
        ],
    ))
    .map(drop)
}

/// `ip netns exec NS ARGS...`
pub fn ns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    c
}

/// Host, switch and peer namespaces joined by a bridge (topo.sh).
pub struct Topo {
    pub prefix: String,
    pub host: String,
    pub switch: String,
    pub peer: String,
    /// The VLAN peer's namespace (`with_vlan_peer`).
    pub vlan_peer: String,
    pub members: usize,
    /// Every peer's namespace on the bridge, `peer` first (`with_peers`);
    /// peer `i` is 198.18.0.(2+i).
    pub peers: Vec<String>,
}

impl Topo {
    pub fn new(tag: &str, members: usize) -> anyhow::Result<Topo> {
        Topo::with_switch(tag, members, "bridge")
    }

    /// `switch` is `bridge` (a Linux bridge) or `none` (the test brings its
    /// own: Open vSwitch, or a second xbond on s0..sN).
    pub fn with_switch(tag: &str, members: usize, switch: &str) -> anyhow::Result<Topo> {
        Topo::build(tag, members, switch, "", 1)
    }

    /// No switch (the test brings Open vSwitch), plus a second peer
    /// namespace `vlan_peer` (q0 = 198.18.87.2/24) behind switch port `sq`.
    pub fn with_vlan_peer(tag: &str, members: usize) -> anyhow::Result<Topo> {
        Topo::build(tag, members, "none", "vlan", 1)
    }

    /// A bridge with `peers` peers behind it (at most 8).
    pub fn with_peers(tag: &str, members: usize, peers: usize) -> anyhow::Result<Topo> {
        Topo::build(tag, members, "bridge", "", peers)
    }

    /// Peer `i`'s address.
    pub fn peer_ip(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, 2 + i as u8)
    }

    fn build(
        tag: &str,
        members: usize,
        switch: &str,
        vlan: &str,
        peers: usize,
    ) -> anyhow::Result<Topo> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("xb{tag}{}-{n}", std::process::id() % 100_000);
        let peer = format!("{prefix}-p");
        let t = Topo {
            host: format!("{prefix}-h"),
            switch: format!("{prefix}-s"),
            peers: std::iter::once(peer.clone())
                .chain((1..peers).map(|i| format!("{peer}{i}")))
                .collect(),
            peer,
            vlan_peer: format!("{prefix}-q"),
            prefix,
            members,
        };
        run(Command::new(repo().join("testbed/topo.sh")).args([
            "up",
            &t.prefix,
            &members.to_string(),
            switch,
            vlan,
            &peers.to_string(),
        ]))?;
        Ok(t)
    }

    /// Packets the switch port of member `i` (sI) received from it (`rx`)
    /// or sent to it (`tx`), as the switch's kernel counts them:
    /// independent of xbond's own counters.
    pub fn switch_packets(&self, i: usize, dir: &str) -> anyhow::Result<u64> {
        let port = format!("s{i}");
        let out =
            run(Command::new("ip").args(["-n", &self.switch, "-s", "-j", "link", "show", &port]))?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        v[0]["stats64"][dir]["packets"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("no {dir} counter for {port}"))
    }

    /// Take the switch side of member `i` down (carrier loss on `mi`) or up.
    pub fn switch_port(&self, i: usize, up: bool) -> anyhow::Result<()> {
        run(Command::new("ip").args([
            "-n",
            &self.switch,
            "link",
            "set",
            &format!("s{i}"),
            if up { "up" } else { "down" },
        ]))
        .map(drop)
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("testbed/topo.sh"))
            .args(["down", &self.prefix])
            .status();
    }
}

/// `xbond run` inside a topology's host namespace.
pub struct Daemon {
    pub child: Option<Child>,
    pub run_dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub ns: String,
}

impl Daemon {
    /// Write `config` (TOML; `RUN_DIR` is replaced by a fresh directory) and
    /// start the daemon; wait until its control socket answers.
    pub fn start(topo: &Topo, config: &str) -> anyhow::Result<Daemon> {
        Daemon::start_in(topo, &topo.host, "run", config)
    }

    /// As `start`, in namespace `ns`, with its own run directory named by
    /// `tag` (for a second daemon in the same topology).
    pub fn start_in(topo: &Topo, ns: &str, tag: &str, config: &str) -> anyhow::Result<Daemon> {
        let dir = std::env::temp_dir().join(format!("{}-{tag}", topo.prefix));
        std::fs::create_dir_all(&dir)?;
        let cfg_path = dir.join("xbond.toml");
        std::fs::write(
            &cfg_path,
            config.replace("RUN_DIR", &dir.display().to_string()),
        )?;
        let mut d = Daemon {
            child: None,
            run_dir: dir.clone(),
            config: cfg_path,
            log: dir.join("xbond.log"),
            ns: ns.to_string(),
        };
        d.spawn()?;
        Ok(d)
    }

    pub fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::File::create(&self.log)?;
        let child = ns(
            &self.ns,
            &[
                xbond_bin().to_str().unwrap(),
                "run",
                self.config.to_str().unwrap(),
            ],
        )
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
        self.child = Some(child);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Some(c) = &mut self.child {
                if let Some(st) = c.try_wait()? {
                    self.child = None;
                    bail!("xbond exited at start ({st}):\n{}", self.log_text());
                }
            }
            if self.cli(&["status", "--json"]).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("xbond did not answer within 10 s:\n{}", self.log_text())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Run the CLI against this daemon.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = run(Command::new(xbond_bin())
            .arg("--run-dir")
            .arg(&self.run_dir)
            .args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn status(&self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.cli(&["status", "--json"])?)?)
    }

    pub fn active(&self) -> anyhow::Result<Option<String>> {
        Ok(self.status()?["active_slave"].as_str().map(str::to_string))
    }

    /// Read `read` every 5 ms until `done` accepts it; returns how long
    /// that took, or fails after `timeout` with the last reading and the
    /// bond's status.
    pub fn poll_until<T: std::fmt::Debug>(
        &self,
        timeout: Duration,
        read: impl Fn(&Self) -> anyhow::Result<T>,
        done: impl Fn(&T) -> bool,
        want: &str,
    ) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        loop {
            let v = read(self)?;
            if done(&v) {
                return Ok(t0.elapsed());
            }
            if t0.elapsed() > timeout {
                bail!(
                    "{v:?}, not {want}, after {timeout:?}:\n{}",
                    self.cli(&["status"])?
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Poll until the active member is `want`, or time out.
    pub fn wait_active(&self, want: &str, timeout: Duration) -> anyhow::Result<Duration> {
        self.poll_until(
            timeout,
            Self::active,
            |a| a.as_deref() == Some(want),
            &format!("active member {want}"),
        )
    }

    /// The members in the bond's order, by name.
    pub fn member_names(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.status()?["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["name"].as_str().map(String::from))
            .collect())
    }

    /// 802.3ad: the members that are distributing, by name.
    pub fn distributing(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.status()?["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["ad"]["distributing"] == true)
            .filter_map(|m| m["name"].as_str().map(String::from))
            .collect())
    }

    /// Poll until exactly `want` are distributing; returns how long it took.
    pub fn wait_distributing(&self, want: &[&str], timeout: Duration) -> anyhow::Result<Duration> {
        self.poll_until(
            timeout,
            Self::distributing,
            |d| d == want,
            &format!("distributing {want:?}"),
        )
    }

    /// A member's link status (`up`, `down`, `going back`, ...).
    pub fn member_status(&self, name: &str) -> anyhow::Result<String> {
        let st = self.status()?;
        let m = st["members"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["name"] == name)
            .with_context(|| format!("no member {name}"))?;
        Ok(m["mii_status"].as_str().unwrap_or_default().to_string())
    }

    /// Poll until member `name`'s link status is `want`; returns how long
    /// it took.
    pub fn wait_member(
        &self,
        name: &str,
        want: &str,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        self.poll_until(
            timeout,
            |d| d.member_status(name),
            |s| s == want,
            &format!("{name} {want:?}"),
        )
    }

    /// Poll until every member's MII status is up (start-up updelays over).
    pub fn wait_members_up(&self, timeout: Duration) -> anyhow::Result<()> {
        let t0 = Instant::now();
        while self.status()?["members"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["mii_status"] != "up")
        {
            if t0.elapsed() > timeout {
                bail!("members not all up after {timeout:?}: {}", self.status()?);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Frames xbond put on `port`'s TX rings (all its queues), from
    /// `xbond stats --json`.
    pub fn port_tx(&self, port: &str) -> anyhow::Result<u64> {
        let v: serde_json::Value = serde_json::from_str(&self.cli(&["stats", "--json"])?)?;
        Ok(v["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["port"] == port)
            .filter_map(|p| p["tx_packets"].as_u64())
            .sum())
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let mut c = self.child.take().context("not running")?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let t0 = Instant::now();
        loop {
            if let Some(st) = c.try_wait()? {
                return Ok(st);
            }
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = c.kill();
                let _ = c.wait();
                bail!("xbond did not stop within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        let mut c = self.child.take().context("not running")?;
        c.kill()?;
        c.wait()?;
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// Run `f` on a thread that has entered network namespace `name`.
pub fn in_ns<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<anyhow::Result<T>> {
    let path = format!("/run/netns/{name}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
        nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
        Ok(f())
    })
}

/// What a receiver saw of a numbered UDP stream.
#[derive(Debug, Clone)]
pub struct StreamReport {
    pub sent: u32,
    pub received: u32,
    /// Arrival time of each received sequence number, relative to the start.
    pub arrivals: Vec<(u32, Duration)>,
}

impl StreamReport {
    pub fn lost(&self) -> u32 {
        self.sent.saturating_sub(self.received)
    }

    /// The longest silence between two consecutive arrivals.
    pub fn max_gap(&self) -> Duration {
        self.arrivals
            .windows(2)
            .map(|w| w[1].1.saturating_sub(w[0].1))
            .max()
            .unwrap_or_default()
    }
}

/// Send `count` numbered datagrams at `pps` from namespace `from_ns` to
/// `to:port` and receive them in `to_ns`. `during` runs on the calling thread
/// while the stream flows (start time passed in).
pub fn udp_stream(
    from_ns: &str,
    to_ns: &str,
    to: Ipv4Addr,
    port: u16,
    pps: u32,
    count: u32,
    during: impl FnOnce(Instant),
) -> anyhow::Result<StreamReport> {
    let start = Instant::now() + Duration::from_millis(300);
    let total = Duration::from_secs_f64(f64::from(count) / f64::from(pps));
    let rx = in_ns(to_ns, move || -> anyhow::Result<Vec<(u32, Duration)>> {
        let s = UdpSocket::bind(SocketAddrV4::new(to, port))?;
        s.set_read_timeout(Some(Duration::from_millis(50)))?;
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        let end = start + total + Duration::from_secs(1);
        while Instant::now() < end {
            if let Ok(n) = s.recv(&mut buf) {
                if n >= 4 {
                    got.push((
                        u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]),
                        start.elapsed(),
                    ));
                }
            }
        }
        Ok(got)
    });
    std::thread::sleep(Duration::from_millis(100));
    let tx = in_ns(from_ns, move || -> anyhow::Result<u32> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect(SocketAddrV4::new(to, port))?;
        let gap = Duration::from_secs_f64(1.0 / f64::from(pps));
        while Instant::now() < start {
            std::hint::spin_loop();
        }
        let mut payload = [0u8; 32];
        for seq in 0..count {
            let due = start + gap * seq;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            payload[..4].copy_from_slice(&seq.to_be_bytes());
            let _ = s.send(&payload);
        }
        Ok(count)
    });
    while Instant::now() < start {
        std::thread::sleep(Duration::from_millis(1));
    }
    during(start);
    let sent = tx
        .join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))???;
    let mut arrivals = rx
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))???;
    arrivals.sort_by_key(|a| a.1);
    arrivals.dedup_by_key(|a| a.0);
    Ok(StreamReport {
        sent,
        received: arrivals.len() as u32,
        arrivals,
    })
}

/// Send `bytes` over TCP from namespace `from_ns` to a listener on
/// `to:port` in `to_ns`; returns what the listener counted, once the
/// client has closed. Bounded by a 20 s timeout either side.
pub fn tcp_transfer(
    from_ns: &str,
    to_ns: &str,
    to: Ipv4Addr,
    port: u16,
    bytes: usize,
) -> anyhow::Result<usize> {
    use std::io::{Read, Write};
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let server = in_ns(to_ns, move || -> anyhow::Result<usize> {
        let l = std::net::TcpListener::bind(SocketAddrV4::new(to, port))?;
        let _ = ready_tx.send(());
        let (mut c, _) = l.accept()?;
        c.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            let n = c.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n;
        }
        Ok(total)
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .context("the TCP listener did not start")?;
    let client = in_ns(from_ns, move || -> anyhow::Result<()> {
        let mut c = std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::V4(SocketAddrV4::new(to, port)),
            Duration::from_secs(5),
        )?;
        c.set_write_timeout(Some(Duration::from_secs(20)))?;
        let chunk = vec![0x5au8; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            c.write_all(&chunk[..n])?;
            left -= n;
        }
        Ok(())
    });
    client
        .join()
        .map_err(|_| anyhow::anyhow!("TCP client panicked"))???;
    server
        .join()
        .map_err(|_| anyhow::anyhow!("TCP listener panicked"))?
        .context("TCP listener")?
}

/// Capture frames on `ifname` in namespace `ns_name` for `dur`, keeping those
/// `keep` accepts.
pub fn capture(
    ns_name: &str,
    ifname: &str,
    dur: Duration,
    keep: fn(&[u8]) -> bool,
) -> std::thread::JoinHandle<anyhow::Result<anyhow::Result<Vec<Vec<u8>>>>> {
    let ifname = ifname.to_string();
    in_ns(ns_name, move || -> anyhow::Result<Vec<Vec<u8>>> {
        use pnet::datalink::{self, Channel, Config};
        let iface = datalink::interfaces()
            .into_iter()
            .find(|i| i.name == ifname)
            .context("no such interface")?;
        let cfg = Config {
            read_timeout: Some(Duration::from_millis(20)),
            ..Default::default()
        };
        let Channel::Ethernet(_, mut rx) = datalink::channel(&iface, cfg)? else {
            bail!("not ethernet")
        };
        let mut out = Vec::new();
        let end = Instant::now() + dur;
        while Instant::now() < end {
            if let Ok(f) = rx.next() {
                if keep(f) {
                    out.push(f.to_vec());
                }
            }
        }
        Ok(out)
    })
}

/// A path that dies while carrier stays up: nftables netdev hooks on a
/// switch port drop every frame coming in from it and, with `both`, every
/// frame going out of it. Removed when dropped.
pub struct BlackHole {
    ns: String,
    table: String,
    removed: bool,
}

impl BlackHole {
    pub fn new(ns_name: &str, dev: &str, both: bool) -> anyhow::Result<BlackHole> {
        let table = format!("xbh_{dev}");
        let mut script = format!(
            "add table netdev {table}\n\
             add chain netdev {table} in {{ type filter hook ingress device {dev} priority 0; policy drop; }}\n"
        );
        if both {
            script.push_str(&format!(
                "add chain netdev {table} out {{ type filter hook egress device {dev} priority 0; policy drop; }}\n"
            ));
        }
        let path = std::env::temp_dir().join(format!("{ns_name}-{table}.nft"));
        std::fs::write(&path, script)?;
        let r = run(&mut ns(ns_name, &["nft", "-f", &path.to_string_lossy()]));
        let _ = std::fs::remove_file(&path);
        r?;
        Ok(BlackHole {
            ns: ns_name.to_string(),
            table,
            removed: false,
        })
    }

    /// Let traffic through again.
    pub fn remove(mut self) -> anyhow::Result<()> {
        self.removed = true;
        run(&mut ns(
            &self.ns,
            &["nft", "delete", "table", "netdev", &self.table],
        ))
        .map(drop)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        if !self.removed {
            let _ = ns(&self.ns, &["nft", "delete", "table", "netdev", &self.table])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Broadcast ARP requests from `ifname` in `ns_name` every `every` until
/// `stop` is set: another host's ARP chatter on the segment (sender
/// 198.18.0.9, asking for 198.18.0.10).
pub fn arp_noise(
    ns_name: &str,
    ifname: &str,
    every: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<anyhow::Result<u64>>> {
    let ifname = ifname.to_string();
    in_ns(ns_name, move || -> anyhow::Result<u64> {
        use pnet::datalink::{self, Channel, Config};
        let iface = datalink::interfaces()
            .into_iter()
            .find(|i| i.name == ifname)
            .context("no such interface")?;
        let Channel::Ethernet(mut tx, _) = datalink::channel(&iface, Config::default())? else {
            bail!("not ethernet")
        };
        let mut f = [0u8; 60];
        f[..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 9, 9]);
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f[22..28].copy_from_slice(&[2, 0, 0, 0, 9, 9]);
        f[28..32].copy_from_slice(&[198, 18, 0, 9]);
        f[38..42].copy_from_slice(&[198, 18, 0, 10]);
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) {
            if let Some(Ok(())) = tx.send_to(&f, None) {
                sent += 1;
            }
            std::thread::sleep(every);
        }
        Ok(sent)
    })
}

/// Every frame of a pcap file (as tcpdump writes it): (capture time in
/// seconds, bytes). tcpdump puts back the VLAN tag the kernel moved out of
/// a received frame, which a plain AF_PACKET read does not.
pub fn pcap_frames(path: &Path) -> anyhow::Result<Vec<(f64, Vec<u8>)>> {
    let b = std::fs::read(path)?;
    anyhow::ensure!(b.len() >= 24, "short pcap {}", path.display());
    let le = b[0..4] == [0xd4, 0xc3, 0xb2, 0xa1];
    let u32_at = |i: usize| {
        let w = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let mut out = Vec::new();
    let mut i = 24;
    while i + 16 <= b.len() {
        let (sec, usec, caplen) = (u32_at(i), u32_at(i + 4), u32_at(i + 8) as usize);
        let f = &b[(i + 16).min(b.len())..(i + 16 + caplen).min(b.len())];
        i += 16 + caplen;
        out.push((f64::from(sec) + f64::from(usec) / 1e6, f.to_vec()));
    }
    Ok(out)
}

/// tcpdump writing `ifname`'s frames (those `filter` keeps) to `path`;
/// stopped by pid on `finish` or drop.
pub struct Tcpdump {
    child: Option<Child>,
    pub path: PathBuf,
}

impl Tcpdump {
    pub fn start(
        ns_name: &str,
        ifname: &str,
        path: &Path,
        filter: &[&str],
    ) -> anyhow::Result<Tcpdump> {
        let mut args = vec![
            "tcpdump",
            "-i",
            ifname,
            "-nn",
            "-U",
            "-w",
            path.to_str().context("path")?,
        ];
        args.extend_from_slice(filter);
        let child = ns(ns_name, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // tcpdump needs a moment to open the socket.
        std::thread::sleep(Duration::from_millis(500));
        Ok(Tcpdump {
            child: Some(child),
            path: path.to_path_buf(),
        })
    }

    /// Stop the capture and read it.
    pub fn finish(mut self) -> anyhow::Result<Vec<(f64, Vec<u8>)>> {
        std::thread::sleep(Duration::from_millis(200));
        self.stop();
        pcap_frames(&self.path)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Gratuitous ARP for `ip`: an ARP request whose sender and target IP are both `ip`.
pub fn is_garp_for(frame: &[u8], ip: Ipv4Addr) -> bool {
    frame.len() >= 42
        && frame[12..14] == [0x08, 0x06]
        && frame[20..22] == [0, 1]
        && frame[28..32] == ip.octets()
        && frame[38..42] == ip.octets()
}

/// Open vSwitch with the userspace datapath in a topology's switch
/// namespace: its own database, run directory and logs, stopped by pid.
pub struct Ovs {
    pub dir: PathBuf,
    pub ns: String,
}

impl Ovs {
    /// Start ovsdb-server and ovs-vswitchd in `topo.switch` and build bridge
    /// `br0` (datapath_type=netdev) with `bond0` over s0..sN-1 (`bond_args`
    /// are extra `ovs-vsctl add-bond` column settings, e.g. `lacp=active`)
    /// and the peer port `sp`.
    pub fn start(topo: &Topo, bond_args: &[&str]) -> anyhow::Result<Ovs> {
        let o = Ovs::launch(topo)?;
        let mut add: Vec<String> = vec!["add-bond".into(), "br0".into(), "bond0".into()];
        add.extend((0..topo.members).map(|i| format!("s{i}")));
        add.extend(bond_args.iter().map(|a| a.to_string()));
        o.vsctl(&add.iter().map(String::as_str).collect::<Vec<_>>())?;
        o.vsctl(&["add-port", "br0", "sp"])?;
        Ok(o)
    }

    /// Start ovsdb-server and ovs-vswitchd in `topo.switch` with an empty
    /// bridge `br0` (datapath_type=netdev); the caller adds the ports.
    pub fn launch(topo: &Topo) -> anyhow::Result<Ovs> {
        let dir = std::env::temp_dir().join(format!("{}-ovs", topo.prefix));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let o = Ovs {
            dir: dir.clone(),
            ns: topo.switch.clone(),
        };
        let d = |f: &str| dir.join(f).display().to_string();
        run(Command::new("ovsdb-tool").args([
            "create",
            &d("conf.db"),
            "/usr/share/openvswitch/vswitch.ovsschema",
        ]))?;
        run(ns(
            &o.ns,
            &[
                "ovsdb-server",
                &d("conf.db"),
                &format!("--remote=punix:{}", d("db.sock")),
                &format!("--pidfile={}", d("ovsdb.pid")),
                &format!("--log-file={}", d("ovsdb.log")),
                &format!("--unixctl={}", d("ovsdb.ctl")),
                "--detach",
            ],
        )
        .envs(o.env()))?;
        o.vsctl(&["--no-wait", "init"])?;
        run(ns(
            &o.ns,
            &[
                "ovs-vswitchd",
                &format!("unix:{}", d("db.sock")),
                &format!("--pidfile={}", d("vswitchd.pid")),
                &format!("--log-file={}", d("vswitchd.log")),
                &format!("--unixctl={}", d("vswitchd.ctl")),
                "--detach",
            ],
        )
        .envs(o.env()))?;
        o.vsctl(&[
            "add-br",
            "br0",
            "--",
            "set",
            "bridge",
            "br0",
            "datapath_type=netdev",
        ])?;
        Ok(o)
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let d = self.dir.display().to_string();
        vec![
            ("OVS_RUNDIR", d.clone()),
            ("OVS_LOGDIR", d.clone()),
            ("OVS_DBDIR", d.clone()),
            ("OVS_SYSCONFDIR", d),
        ]
    }

    pub fn vsctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = run(Command::new("ovs-vsctl")
            .arg(format!("--db=unix:{}", self.dir.join("db.sock").display()))
            .arg("--timeout=10")
            .args(args)
            .envs(self.env()))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn appctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = run(Command::new("ovs-appctl")
            .arg("-t")
            .arg(self.dir.join("vswitchd.ctl"))
            .args(args)
            .envs(self.env()))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Per member of `bond0`, the `ovs-appctl lacp/show` status line
    /// (e.g. `current attached`) and the actor and partner states.
    pub fn lacp_members(&self) -> anyhow::Result<Vec<OvsLacpMember>> {
        let text = self.appctl(&["lacp/show", "bond0"])?;
        let mut out: Vec<OvsLacpMember> = Vec::new();
        for line in text.lines() {
            let l = line.trim();
            if let Some(rest) = l.strip_prefix("member: ") {
                let (name, status) = rest.split_once(':').unwrap_or((rest, ""));
                out.push(OvsLacpMember {
                    name: name.to_string(),
                    status: status.trim().to_string(),
                    ..Default::default()
                });
            } else if let (Some(m), Some(v)) = (out.last_mut(), l.strip_prefix("actor state:")) {
                m.actor_state = v.trim().to_string();
            } else if let (Some(m), Some(v)) = (out.last_mut(), l.strip_prefix("partner state:")) {
                m.partner_state = v.trim().to_string();
            }
        }
        Ok(out)
    }

    /// Poll until every member of OVS's bond is current and both sides of
    /// it collect and distribute.
    pub fn wait_negotiated(&self, timeout: Duration) -> anyhow::Result<Vec<OvsLacpMember>> {
        let t0 = Instant::now();
        loop {
            let m = self.lacp_members()?;
            if !m.is_empty() && m.iter().all(OvsLacpMember::aggregated) {
                return Ok(m);
            }
            if t0.elapsed() > timeout {
                bail!(
                    "OVS did not negotiate within {timeout:?}:\n{}",
                    self.appctl(&["lacp/show", "bond0"])?
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self, file: &str) -> Option<i32> {
        std::fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// One member as `ovs-appctl lacp/show` reports it.
#[derive(Debug, Clone, Default)]
pub struct OvsLacpMember {
    pub name: String,
    pub status: String,
    pub actor_state: String,
    pub partner_state: String,
}

impl OvsLacpMember {
    pub fn aggregated(&self) -> bool {
        let both = |s: &str| s.contains("collecting") && s.contains("distributing");
        self.status.starts_with("current") && both(&self.actor_state) && both(&self.partner_state)
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        // The daemons detached themselves; their pid files name them.
        for f in ["vswitchd.pid", "ovsdb.pid"] {
            if let Some(pid) = self.pid(f) {
                let pid = nix::unistd::Pid::from_raw(pid);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                let t0 = Instant::now();
                while nix::sys::signal::kill(pid, None).is_ok()
                    && t0.elapsed() < Duration::from_secs(5)
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `ip link show` flags of `ifname` in `ns_name` contain NO-CARRIER.
pub fn no_carrier(ns_name: &str, ifname: &str) -> anyhow::Result<bool> {
    let out = run(&mut ns(ns_name, &["ip", "link", "show", ifname]))?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("NO-CARRIER"))
}

/// The operational state is UP: the kernel's link watch has processed the
/// carrier (up to a second after it, as for any netdev) and the device
/// transmits again.
pub fn oper_up(ns_name: &str, ifname: &str) -> anyhow::Result<bool> {
    let out = run(&mut ns(ns_name, &["ip", "link", "show", ifname]))?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("state UP"))
}

/// Call `f` every 10 ms until it says yes; how long that took, or an error
/// naming `what` after `timeout`.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    while !f()? {
        if t0.elapsed() > timeout {
            anyhow::bail!("{what}: not within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(t0.elapsed())
}
