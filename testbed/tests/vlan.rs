//! 802.1Q VLAN sub-interfaces end to end. The kernel bridge here has no VLAN
//! filtering, so the switch is Open vSwitch's userspace datapath: s0 and s1
//! are trunks, the untagged peer (sp) is an access port of VLAN 0 and the
//! VLAN peer (sq) an access port of VLAN 87. Members are found by selector.
//! Needs root (runs in CI as root).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use xbond_testbed::*;

const VLAN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 87, 1);
const VLAN_PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 87, 2);

fn config(options: &str, vlans: &str) -> String {
    bond_config(
        r#"[{ driver = "veth", mac = "02:00:00:00:01:*" }]"#,
        options,
        vlans,
    )
}

const VLAN87: &str = r#"
[[bond.bond0.vlan]]
id = 87
mtu = 1500
addresses = ["198.18.87.1/24"]
"#;

/// OVS as a VLAN-aware switch: members trunk, peers on access ports.
fn switch(t: &Topo) -> anyhow::Result<Ovs> {
    let o = Ovs::launch(t)?;
    for i in 0..t.members {
        o.vsctl(&["add-port", "br0", &format!("s{i}")])?;
    }
    o.vsctl(&["add-port", "br0", "sp", "tag=0", "vlan_mode=access"])?;
    o.vsctl(&["add-port", "br0", "sq", "tag=87", "vlan_mode=access"])?;
    Ok(o)
}

/// The VLAN topology, OVS as its switch, and xbond with `options` and
/// `vlans` on the host side.
fn start(tag: &str, options: &str, vlans: &str) -> anyhow::Result<(Topo, Ovs, Daemon)> {
    let t = Topo::with_vlan_peer(tag, 2)?;
    let o = switch(&t)?;
    let d = Daemon::start(&t, &config(options, vlans))?;
    Ok((t, o, d))
}

/// Frames from the bond's MAC: (tagged 87, untagged) counts.
fn tags_seen(frames: &[Vec<u8>]) -> (usize, usize) {
    let from_bond = |f: &&Vec<u8>| f.len() >= 18 && f[6..12] == [2, 0, 0, 0, 1, 0];
    let tagged = frames
        .iter()
        .filter(from_bond)
        .filter(|f| f[12..14] == [0x81, 0x00] && u16::from_be_bytes([f[14], f[15]]) & 0xfff == 87)
        .count();
    let untagged = frames
        .iter()
        .filter(from_bond)
        .filter(|f| f[12..14] == [0x08, 0x00] || f[12..14] == [0x08, 0x06])
        .count();
    (tagged, untagged)
}

#[test]
fn untagged_and_vlan_traffic_each_reach_only_their_own_peer() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let (t, _o, d) = start("vl", "mode=active-backup miimon=100", VLAN87)?;
    // Each peer also holds an address of the other network: reaching it
    // would mean frames crossed between the VLANs.
    run(&mut ns(
        &t.peer,
        &["ip", "addr", "add", "198.18.87.3/24", "dev", "p0"],
    ))?;
    run(&mut ns(
        &t.vlan_peer,
        &["ip", "addr", "add", "198.18.0.3/24", "dev", "q0"],
    ))?;
    let log = d.log_text();
    assert!(
        log.contains("members: m0, m1"),
        "the selector found both: {log}"
    );
    assert!(d.cli(&["vlan", "list"])?.contains("bond0.87"));

    // tcpdump, not an AF_PACKET read: the kernel moves a received tag out
    // of the frame before packet sockets see it; tcpdump puts it back.
    let cap = Tcpdump::start(
        &t.switch,
        "s0",
        &d.run_dir.join("s0.pcap"),
        &["ether src 02:00:00:00:01:00"],
    )?;
    ping(&t.host, PEER_IP, 3)?;
    ping(&t.host, VLAN_PEER_IP, 3)?;
    ping(&t.peer, BOND_IP, 3)?;
    ping(&t.vlan_peer, VLAN_IP, 3)?;
    // TCP on both networks at once.
    let (h1, p1, q1) = (t.host.clone(), t.peer.clone(), t.vlan_peer.clone());
    let untagged = std::thread::spawn(move || tcp_transfer(&h1, &p1, PEER_IP, 5001, 8 << 20));
    let on_vlan = tcp_transfer(&t.host, &q1, VLAN_PEER_IP, 5002, 8 << 20)?;
    let untagged = untagged.join().map_err(|_| anyhow::anyhow!("panicked"))??;
    assert_eq!((untagged, on_vlan), (8 << 20, 8 << 20));
    // Isolation: the crossed addresses are unreachable.
    assert!(
        ping(&t.host, Ipv4Addr::new(198, 18, 87, 3), 2).is_err(),
        "the untagged peer is not on VLAN 87"
    );
    assert!(
        ping(&t.host, Ipv4Addr::new(198, 18, 0, 3), 2).is_err(),
        "the VLAN peer is not on the untagged network"
    );

    let frames: Vec<Vec<u8>> = cap.finish()?.into_iter().map(|(_, f)| f).collect();
    let (tagged, plain) = tags_seen(&frames);
    eprintln!(
        "VLAN 87 and untagged at once: 8 MiB TCP each way done; on the wire of m0: {tagged} frames tagged 87, {plain} untagged"
    );
    assert!(tagged > 100, "VLAN traffic leaves tagged 87: {tagged}");
    assert!(plain > 100, "untagged traffic leaves untagged: {plain}");
    // Nothing from the bond left with any other tag.
    let other = frames
        .iter()
        .filter(|f| f[12..14] == [0x81, 0x00] && u16::from_be_bytes([f[14], f[15]]) & 0xfff != 87)
        .count();
    assert_eq!(other, 0);
    let stats: serde_json::Value = serde_json::from_str(&d.cli(&["stats", "--json"])?)?;
    let vlan_port = stats["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["role"] == "vlan 87")
        .expect("the VLAN's host port in stats");
    assert!(vlan_port["rx_packets"].as_u64().unwrap() > 100);
    Ok(())
}

#[test]
fn failover_recovers_both_networks_and_sends_a_tagged_garp() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let (t, _o, d) = start("vf", "mode=active-backup miimon=50 num_grat_arp=1", VLAN87)?;
    ping(&t.peer, BOND_IP, 2)?;
    ping(&t.vlan_peer, VLAN_IP, 2)?;
    assert_eq!(d.active()?.as_deref(), Some("m0"));
    // The new active member's wire: GARPs, tagged and not.
    let cap = Tcpdump::start(
        &t.switch,
        "s1",
        &d.run_dir.join("s1.pcap"),
        &["ether src 02:00:00:00:01:00"],
    )?;
    let (h, q) = (t.host.clone(), t.vlan_peer.clone());
    let failed_at = std::sync::Arc::new(std::sync::Mutex::new(None));
    let fa = std::sync::Arc::clone(&failed_at);
    let sw = t.switch.clone();
    let vlan_stream =
        std::thread::spawn(move || udp_stream(&h, &q, VLAN_PEER_IP, 9087, 1000, 2500, |_| {}));
    let plain = udp_stream(&t.host, &t.peer, PEER_IP, 9000, 1000, 2500, move |start| {
        std::thread::sleep(
            (start + Duration::from_millis(1000)).saturating_duration_since(Instant::now()),
        );
        let _ =
            run(std::process::Command::new("ip").args(["-n", &sw, "link", "set", "s0", "down"]));
        *fa.lock().unwrap() = Some(start.elapsed());
    })?;
    let tagged = vlan_stream
        .join()
        .map_err(|_| anyhow::anyhow!("panicked"))??;
    d.wait_active("m1", Duration::from_secs(2))?;
    let frames: Vec<Vec<u8>> = cap.finish()?.into_iter().map(|(_, f)| f).collect();
    let garp_87 = frames.iter().any(|f| {
        f.len() >= 46
            && f[12..14] == [0x81, 0x00]
            && u16::from_be_bytes([f[14], f[15]]) & 0xfff == 87
            && is_garp_for(&f[4..], VLAN_IP)
    });
    let garp_plain = frames.iter().any(|f| is_garp_for(f, BOND_IP));
    eprintln!(
        "failover under two 1000 pps streams (s0 down at {:?}): untagged lost {} of {} (longest gap {:?}), VLAN 87 lost {} of {} (longest gap {:?}); tagged GARP for {VLAN_IP} on m1: {garp_87}, untagged GARP for {BOND_IP}: {garp_plain}",
        failed_at.lock().unwrap(),
        plain.lost(),
        plain.sent,
        plain.max_gap(),
        tagged.lost(),
        tagged.sent,
        tagged.max_gap()
    );
    assert!(
        garp_87,
        "a GARP tagged 87 for the VLAN address on the new active member"
    );
    assert!(garp_plain, "an untagged GARP for the bond address");
    // Both recover: the last second of each stream arrived.
    for (what, r) in [("untagged", &plain), ("VLAN 87", &tagged)] {
        let tail = r
            .arrivals
            .iter()
            .filter(|(seq, _)| *seq >= r.sent - 1000)
            .count();
        assert!(
            tail > 990,
            "{what} traffic recovered: {tail} of the last 1000"
        );
        assert!(r.lost() < 500, "{what}: lost {}", r.lost());
    }
    Ok(())
}

#[test]
fn vlans_are_added_and_removed_at_runtime() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let (t, _o, d) = start(
        "vr",
        "mode=balance-xor miimon=100 xmit_hash_policy=vlan+srcmac",
        "",
    )?;
    ping(&t.host, PEER_IP, 2)?;
    // VLAN 87 frames arrive before the VLAN exists: counted, dropped.
    let _ = ping(&t.vlan_peer, VLAN_IP, 2);
    let out = d.cli(&["vlan", "add", "bond0", "87", "--address", "198.18.87.1/24"])?;
    assert!(out.contains("VLAN 87 on bond0.87"), "{out}");
    ping(&t.host, VLAN_PEER_IP, 3)?;
    ping(&t.vlan_peer, VLAN_IP, 3)?;
    assert!(
        d.cli(&["vlan", "add", "bond0", "87"]).is_err(),
        "a VLAN twice is refused"
    );
    assert!(
        d.cli(&["vlan", "add", "bond0", "88", "--mtu", "9000"])
            .is_err(),
        "a VLAN MTU above the bond's is refused"
    );
    let out = d.cli(&["vlan", "del", "bond0", "87"])?;
    assert!(out.contains("VLAN 87 removed"), "{out}");
    let links = run(&mut ns(&t.host, &["ip", "-o", "link", "show"]))?;
    assert!(!String::from_utf8_lossy(&links.stdout).contains("bond0.87"));
    // The peer's ARP for a VLAN that is gone: unknown VLAN drops.
    let _ = ping(&t.vlan_peer, VLAN_IP, 2);
    let stats: serde_json::Value = serde_json::from_str(&d.cli(&["stats", "--json"])?)?;
    let unknown: u64 = stats["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["drops"]["unknown_vlan"].as_u64())
        .sum();
    assert!(
        unknown >= 2,
        "VLAN 87 frames without a VLAN are counted: {unknown}"
    );
    ping(&t.host, PEER_IP, 2)?;
    Ok(())
}

#[test]
fn selectors_that_match_nothing_or_a_used_link_are_refused() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("vs", 2)?;
    let err = Daemon::start(
        &t,
        "[daemon]\nrun_dir = \"RUN_DIR\"\n[bond.bond0]\nmembers = [{ driver = \"e1000e\" }]\nmode = 1\n",
    )
    .err()
    .expect("no e1000e here");
    assert!(
        err.to_string()
            .contains("members: selector { driver = \"e1000e\" } matches no interface"),
        "{err}"
    );
    // Two bonds: the second's selector would take the first's member.
    let err = Daemon::start(
        &t,
        "[daemon]\nrun_dir = \"RUN_DIR\"\n[bond.b0]\nmembers = [\"m0\"]\nmode = 1\n[bond.b1]\nmembers = [{ mac = \"02:00:00:00:01:*\" }]\nmode = 1\n",
    )
    .err()
    .expect("m0 belongs to b0");
    assert!(
        err.to_string().contains(
            "selector { mac = \"02:00:00:00:01:*\" } matches m0, which is a member of bond b0; narrow the selector"
        ),
        "{err}"
    );
    // A link enslaved elsewhere (to a Linux bridge).
    run(&mut ns(
        &t.host,
        &["ip", "link", "add", "vsbr", "type", "bridge"],
    ))?;
    run(&mut ns(
        &t.host,
        &["ip", "link", "set", "m1", "master", "vsbr"],
    ))?;
    let err = Daemon::start(
        &t,
        "[daemon]\nrun_dir = \"RUN_DIR\"\n[bond.bond0]\nmembers = [{ driver = \"veth\" }]\nmode = 1\n",
    )
    .err()
    .expect("m1 is in a bridge");
    assert!(
        err.to_string()
            .contains("matches m1, which is enslaved to vsbr"),
        "{err}"
    );
    Ok(())
}

#[test]
fn a_link_that_appears_and_matches_a_selector_is_enslaved() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("va", 2)?;
    // m1 is not there at start.
    run(&mut ns(&t.host, &["ip", "link", "del", "m1"]))?;
    let d = Daemon::start(
        &t,
        "[daemon]\nrun_dir = \"RUN_DIR\"\n[bond.bond0]\nmembers = [{ driver = \"veth\", mac = \"02:00:00:00:01:*\" }]\naddresses = [\"198.18.0.1/24\"]\noptions = \"mode=active-backup miimon=100\"\n",
    )?;
    assert_eq!(d.member_names()?, vec!["m0"]);
    // A link that matches nothing is left alone; one that matches joins.
    run(&mut ns(
        &t.host,
        &[
            "ip",
            "link",
            "add",
            "other0",
            "address",
            "02:00:00:00:09:00",
            "type",
            "veth",
            "peer",
            "name",
            "other1",
        ],
    ))?;
    run(&mut ns(
        &t.host,
        &[
            "ip",
            "link",
            "add",
            "m1",
            "numtxqueues",
            "1",
            "numrxqueues",
            "1",
            "address",
            "02:00:00:00:01:01",
            "type",
            "veth",
            "peer",
            "name",
            "s1",
            "numtxqueues",
            "1",
            "numrxqueues",
            "1",
            "netns",
            &t.switch,
        ],
    ))?;
    run(&mut ns(
        &t.switch,
        &["ip", "link", "set", "s1", "master", "br0", "up"],
    ))?;
    let t0 = Instant::now();
    while d.member_names()? != vec!["m0", "m1"] {
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(5),
            "m1 not enslaved: {:?}\n{}",
            d.member_names()?,
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "a new link matching the selector enslaved after {:?}",
        t0.elapsed()
    );
    assert!(d.log_text().contains("m1 appeared and matches selector"));
    // Failover onto the new member works.
    d.wait_members_up(Duration::from_secs(3))?;
    t.switch_port(0, false)?;
    d.wait_active("m1", Duration::from_secs(2))?;
    ping(&t.host, PEER_IP, 3)?;
    Ok(())
}

/// An ARP monitor target on VLAN 87's subnet: the probes leave tagged with
/// VLAN 87 from the VLAN interface's address (the kernel's
/// `bond_verify_device_path` tags), the tagged replies validate, and a
/// black hole on the active member's path still fails over.
#[test]
fn arp_probes_for_a_target_on_a_vlan_go_out_tagged_and_validate() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let opts = "mode=active-backup arp_interval=100 arp_ip_target=198.18.87.2 arp_validate=active";
    let (t, _o, d) = start("vla", opts, VLAN87)?;
    d.wait_active("m0", Duration::from_secs(5))?;
    let cap = Tcpdump::start(
        &t.switch,
        "s0",
        &d.run_dir.join("probes.pcap"),
        &["ether src 02:00:00:00:01:00"],
    )?;
    std::thread::sleep(Duration::from_millis(1200));
    let frames: Vec<Vec<u8>> = cap.finish()?.into_iter().map(|f| f.1).collect();
    let probe = |f: &Vec<u8>| {
        f.len() >= 46
            && f[12..14] == [0x81, 0x00]
            && f[16..18] == [0x08, 0x06]
            && f[24..26] == [0, 1]
    };
    let probes: Vec<&Vec<u8>> = frames.iter().filter(|f| probe(f)).collect();
    assert!(
        probes.len() >= 8,
        "{} tagged ARP requests in 1.2 s",
        probes.len()
    );
    for p in &probes {
        assert_eq!(u16::from_be_bytes([p[14], p[15]]) & 0xfff, 87);
        assert_eq!(
            p[32..36],
            VLAN_IP.octets(),
            "from the VLAN interface's address"
        );
        assert_eq!(p[42..46], VLAN_PEER_IP.octets());
    }
    let untagged_arp = frames
        .iter()
        .filter(|f| f.len() > 14 && f[12..14] == [0x08, 0x06])
        .count();
    assert_eq!(untagged_arp, 0, "no untagged probes");
    let st = d.status()?;
    let replies = st["members"][0]["arp"]["valid_replies"]
        .as_u64()
        .unwrap_or(0);
    assert!(replies >= 8, "tagged replies validated: {replies}");
    let hole = BlackHole::new(&t.switch, "s0", true)?;
    let took = d.wait_active("m1", Duration::from_secs(3))?;
    println!("VLAN 87 ARP target: {} tagged probes, {replies} valid replies; black hole failover after {took:?}", probes.len());
    assert!(took <= Duration::from_millis(400), "{took:?}");
    drop(hole);
    Ok(())
}
