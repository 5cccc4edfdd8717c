//! Open vSwitch's userspace datapath with an LACP bond: the partner of the
//! 802.3ad tests, run with its own run directory in the switch namespace.

use crate::*;

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
        // OVS reads s0.. with AF_PACKET and forwards the bytes as they are:
        // a partial checksum left by a member with TX checksum offload would
        // reach the peer corrupt (AFXDP.md gotcha 14). With offload off the
        // kernel finishes every checksum when a member sends, as a NIC's
        // checksum engine does on the wire.
        for i in 0..topo.members {
            run(&mut ns(
                &topo.host,
                &["ethtool", "-K", &format!("m{i}"), "tx", "off"],
            ))?;
        }
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
