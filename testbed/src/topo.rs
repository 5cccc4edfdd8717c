//! The host/switch/peer topology of `topo.sh`, and its addresses.

use crate::*;

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
