//! The two forwarders `xbond-e2e` measures: the ring-only ceiling
//! (`RawRig`) and a real xbond daemon (`XbondRig`).

use super::*;

/// The ceiling: m0 -> bond0-xb (rx) or bond0-xb -> m0 (tx) with nothing but
/// ring operations (`tools::RawForwarder`), on a bond0/bond0-xb pair made
/// for it and removed with it.
pub(super) struct RawRig {
    host_ns: String,
    stop: Arc<AtomicBool>,
    forwarded: Arc<AtomicU64>,
    tid: u32,
    thread: Option<std::thread::JoinHandle<anyhow::Result<anyhow::Result<()>>>>,
}

impl RawRig {
    pub(super) fn start(ns: &Netns, dir: Dir) -> anyhow::Result<RawRig> {
        veth_pair(
            VethEnd {
                name: "bond0",
                ns: &ns.host,
                mac: None,
            },
            VethEnd {
                name: "bond0-xb",
                ns: &ns.host,
                mac: None,
            },
        )?;
        let mut rig = RawRig {
            host_ns: ns.host.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            forwarded: Arc::new(AtomicU64::new(0)),
            tid: 0,
            thread: None,
        };
        let hns = ns.host.clone();
        run(
            Command::new("ip").args(["netns", "exec", &hns, "ethtool", "-K", "bond0", "tx", "off"])
        )?;
        for d in ["bond0", "bond0-xb"] {
            run(Command::new("ip").args(["-n", &ns.host, "link", "set", d, "up"]))?;
        }
        let (from, to) = match dir {
            Dir::Rx => (
                ns.ifindex(&ns.host, "m0")?,
                ns.ifindex(&ns.host, "bond0-xb")?,
            ),
            Dir::Tx => (
                ns.ifindex(&ns.host, "bond0-xb")?,
                ns.ifindex(&ns.host, "m0")?,
            ),
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (s2, f2) = (Arc::clone(&rig.stop), Arc::clone(&rig.forwarded));
        rig.thread = Some(in_ns(&ns.host, move || -> anyhow::Result<()> {
            if let Some(c) = core(1) {
                core_affinity::set_for_current(c);
            }
            let mut fwd = RawForwarder::new(from, to, AttachMode::Native, RAW_RING)?;
            let _ = ready_tx.send(nix::unistd::gettid().as_raw() as u32);
            let mut local = 0u64;
            while !s2.load(Ordering::Relaxed) {
                local += u64::from(fwd.round()?);
                f2.store(local, Ordering::Relaxed);
            }
            Ok(())
        }));
        rig.tid = ready_rx
            .recv_timeout(Duration::from_secs(5))
            .context("raw forwarder did not start")?;
        Ok(rig)
    }
}

impl Rig for RawRig {
    fn forwarded(&self) -> anyhow::Result<u64> {
        Ok(self.forwarded.load(Ordering::Relaxed))
    }

    fn cpu(&self) -> anyhow::Result<Duration> {
        thread_cpu(std::process::id(), self.tid)
    }
}

impl Drop for RawRig {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.thread.take() {
            if let Err(e) = join(h) {
                eprintln!("raw forwarder: {e:#}");
            }
        }
        let _ = Command::new("ip")
            .args(["-n", &self.host_ns, "link", "del", "bond0"])
            .status();
    }
}

pub(super) fn xbond_bin() -> std::path::PathBuf {
    std::env::var("XBOND_BIN")
        .map(Into::into)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/xbond")
        })
}

/// An xbond process running the bond in a mode, with its worker on core 1.
pub(super) struct XbondRig {
    child: Child,
    run_dir: std::path::PathBuf,
    way: Dir,
    vlan: bool,
}

impl XbondRig {
    pub(super) fn start(
        ns: &Netns,
        way: Dir,
        mode: &str,
        members: usize,
        vlan: bool,
    ) -> anyhow::Result<XbondRig> {
        Self::start_with(ns, way, mode, members, vlan, "")
    }

    /// As [`start`](Self::start), with `extra` lines for the bond's table
    /// (`ring_size = 16384`, say).
    pub(super) fn start_with(
        ns: &Netns,
        way: Dir,
        mode: &str,
        members: usize,
        vlan: bool,
        extra: &str,
    ) -> anyhow::Result<XbondRig> {
        let run_dir = std::env::temp_dir().join(format!("{}-run", ns.host));
        std::fs::create_dir_all(&run_dir)?;
        let list: Vec<String> = (0..members).map(|i| format!("\"m{i}\"")).collect();
        let hash = if matches!(mode, "balance-xor" | "balance-tlb" | "balance-alb") {
            " xmit_hash_policy=layer3+4"
        } else {
            ""
        };
        std::fs::write(
            run_dir.join("b.toml"),
            format!(
                "[daemon]\nrun_dir = \"{}\"\n[bond.bond0]\nmembers = [{}]\noptions = \"mode={mode} miimon=100{hash}\"\ncpus = [1]\n{extra}\n{}",
                run_dir.display(),
                list.join(", "),
                if vlan { format!("[[bond.bond0.vlan]]\nid = {VID}\n") } else { String::new() }
            ),
        )?;
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.host])
            .arg(xbond_bin())
            .arg("run")
            .arg(run_dir.join("b.toml"))
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit())
            .spawn()?;
        let rig = XbondRig {
            child,
            run_dir,
            way,
            vlan,
        };
        let t = Instant::now();
        while rig.forwarded().is_err() || rig.worker_tid().is_err() {
            if t.elapsed() > Duration::from_secs(10) {
                bail!("xbond did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(rig)
    }

    /// `xbond stats --json` of the running bond.
    fn stats(&self) -> anyhow::Result<serde_json::Value> {
        let out = run(Command::new(xbond_bin())
            .arg("--run-dir")
            .arg(&self.run_dir)
            .args(["stats", "--json"]))?;
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// The worker thread (`xbond-worker0`) of the xbond process, which
    /// `ip netns exec` runs as its child.
    fn worker_tid(&self) -> anyhow::Result<(u32, u32)> {
        let pid = self.child.id();
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let task = task?;
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim() == "xbond-worker0" {
                return Ok((pid, task.file_name().to_string_lossy().parse()?));
            }
        }
        bail!("no worker thread in process {pid}")
    }
}

impl Rig for XbondRig {
    /// Frames xbond put on TX rings: the host port's (or the VLAN's) for
    /// rx, the members' for tx.
    fn forwarded(&self) -> anyhow::Result<u64> {
        let v = self.stats()?;
        let vlan_role = format!("vlan {VID}");
        let role = match self.way {
            Dir::Rx if self.vlan => vlan_role.as_str(),
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

    fn cpu(&self) -> anyhow::Result<Duration> {
        let (pid, tid) = self.worker_tid()?;
        thread_cpu(pid, tid)
    }
}

impl Drop for XbondRig {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}
