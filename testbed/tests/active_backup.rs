//! active-backup end to end on the bridge testbed: real AF_XDP sockets on
//! veths in namespaces, real carrier loss. Needs root (runs in CI as root).

use std::time::Duration;
use xbond_testbed::*;

fn config(options: &str) -> String {
    bond_config(M0_M1, options, "")
}

#[test]
fn ping_and_tcp_pass_through_the_bond_both_ways() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("tcp", 2)?;
    let d = Daemon::start(&t, &config("mode=active-backup miimon=100"))?;
    ping(&t.host, PEER_IP, 5)?;
    ping(&t.peer, BOND_IP, 5)?;
    let mut server = ns(&t.peer, &["iperf3", "-s", "-1", "-B", "198.18.0.2"])
        .stdout(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(300));
    let out = run(&mut ns(
        &t.host,
        &["iperf3", "-c", "198.18.0.2", "-t", "2", "-J"],
    ));
    let _ = server.kill();
    let _ = server.wait();
    let v: serde_json::Value = serde_json::from_slice(&out?.stdout)?;
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    println!(
        "iperf3 TCP host -> peer through bond0: {:.2} Gbit/s",
        bps / 1e9
    );
    assert!(
        bps > 10e6,
        "TCP stream through the bond too slow or broken: {bps} bit/s"
    );
    let m0_tx = d.port_tx("m0")?;
    assert!(
        m0_tx > 1000,
        "the active member carried the stream: {m0_tx}"
    );
    Ok(())
}

#[test]
fn carrier_loss_fails_over_fast_and_announces_the_move() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("fo", 2)?;
    let d = Daemon::start(&t, &config("mode=active-backup miimon=100 num_grat_arp=1"))?;
    ping(&t.host, PEER_IP, 2)?; // peer learns the bond's MAC
    assert_eq!(d.active()?.as_deref(), Some("m0"));

    let garps = capture(&t.switch, "s1", Duration::from_millis(2500), |f| {
        is_garp_for(f, BOND_IP)
    });
    let sw = t.switch.clone();
    let report = udp_stream(&t.host, &t.peer, PEER_IP, 9000, 1000, 2000, |start| {
        std::thread::sleep(
            (start + Duration::from_millis(800))
                .saturating_duration_since(std::time::Instant::now()),
        );
        run(std::process::Command::new("ip").args(["-n", &sw, "link", "set", "s0", "down"]))
            .unwrap();
    })?;
    let garps = garps.join().map_err(|_| anyhow::anyhow!("capture"))???;
    println!(
        "failover at 1000 pps: sent {}, received {}, lost {}, longest gap {:?}",
        report.sent,
        report.received,
        report.lost(),
        report.max_gap()
    );
    assert_eq!(d.active()?.as_deref(), Some("m1"));
    // Detection is the netlink carrier event, not the 100 ms miimon poll:
    // a handful of frames at most (a frame already in flight on m0 is lost).
    assert!(
        report.lost() <= 20,
        "lost {} frames (longest gap {:?})",
        report.lost(),
        report.max_gap()
    );
    assert!(
        !garps.is_empty(),
        "no gratuitous ARP for {BOND_IP} seen on the new active member"
    );
    assert_eq!(
        &garps[0][6..12],
        &[2, 0, 0, 0, 1, 0],
        "GARP from the bond MAC (first member's address)"
    );
    // The switch learned the move: the peer reaches the bond again.
    ping(&t.peer, BOND_IP, 3)?;
    let st = d.status()?;
    assert_eq!(st["members"][0]["link_failure_count"], 1);
    assert_eq!(st["members"][0]["mii_status"], "down");
    Ok(())
}

#[test]
fn primary_comes_back_after_updelay() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("pri", 2)?;
    let d = Daemon::start(
        &t,
        &config("mode=active-backup miimon=50 updelay=400 primary=m0 primary_reselect=always"),
    )?;
    d.wait_active("m0", Duration::from_secs(3))?;
    t.switch_port(0, false)?;
    d.wait_active("m1", Duration::from_secs(1))?;
    ping(&t.host, PEER_IP, 2)?;
    t.switch_port(0, true)?;
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(
        d.active()?.as_deref(),
        Some("m1"),
        "the primary waits out its updelay"
    );
    assert_eq!(d.status()?["members"][0]["mii_status"], "going back");
    let waited = d.wait_active("m0", Duration::from_secs(2))? + Duration::from_millis(150);
    println!("primary m0 back after {waited:?} (updelay 400 ms)");
    assert!(
        waited >= Duration::from_millis(350),
        "returned too early: {waited:?}"
    );
    ping(&t.host, PEER_IP, 2)?;
    Ok(())
}

#[test]
fn primary_reselect_failure_stays_on_the_backup() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("prf", 2)?;
    let d = Daemon::start(
        &t,
        &config("mode=active-backup primary=m0 primary_reselect=failure"),
    )?;
    d.wait_active("m0", Duration::from_secs(2))?;
    t.switch_port(0, false)?;
    d.wait_active("m1", Duration::from_secs(1))?;
    t.switch_port(0, true)?;
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(d.active()?.as_deref(), Some("m1"));
    d.cli(&["set", "bond0", "active_slave", "m0"])?;
    assert_eq!(d.active()?.as_deref(), Some("m0"));
    ping(&t.host, PEER_IP, 2)?;
    Ok(())
}

#[test]
fn status_has_the_kernel_layout() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("st", 2)?;
    let d = Daemon::start(&t, &config("mode=1 miimon=100 updelay=200 primary=m1"))?;
    d.wait_active("m1", Duration::from_secs(3))?;
    let text = d.cli(&["status"])?;
    let expected = format!(
        "Ethernet Channel Bonding Driver: v{}-xbond

Bonding Mode: fault-tolerance (active-backup)
Primary Slave: m1 (primary_reselect always)
Currently Active Slave: m1
MII Status: up
MII Polling Interval (ms): 100
Up Delay (ms): 200
Down Delay (ms): 0
Peer Notification Delay (ms): 0

Slave Interface: m0
MII Status: up
Speed: 10000 Mbps
Duplex: full
Link Failure Count: 0
Permanent HW addr: 02:00:00:00:01:00
Slave queue ID: 0

Slave Interface: m1
MII Status: up
Speed: 10000 Mbps
Duplex: full
Link Failure Count: 0
Permanent HW addr: 02:00:00:00:01:01
Slave queue ID: 0
",
        env!("CARGO_PKG_VERSION")
    );
    // m0 may still be going back (updelay) right after start.
    std::thread::sleep(Duration::from_millis(300));
    let text = if text == expected {
        text
    } else {
        d.cli(&["status"])?
    };
    assert_eq!(text, expected);
    let json = d.status()?;
    assert_eq!(json["active_slave"], "m1");
    assert_eq!(json["members"][1]["perm_hwaddr"], "02:00:00:00:01:01");
    assert_eq!(
        json["mac"], "02:00:00:00:01:00",
        "bond MAC is the first member's address"
    );
    Ok(())
}

#[test]
fn sigterm_and_kill9_leave_no_xdp_program_and_restart_at_once() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("k9", 2)?;
    let mut d = Daemon::start(&t, &config("mode=active-backup"))?;
    let links = |t: &Topo| -> anyhow::Result<String> {
        Ok(String::from_utf8_lossy(
            &run(std::process::Command::new("ip").args(["-n", &t.host, "-d", "link", "show"]))?
                .stdout,
        )
        .into_owned())
    };
    assert!(
        links(&t)?.contains("xdp"),
        "programs attached while running"
    );
    d.kill9()?;
    std::thread::sleep(Duration::from_millis(200));
    let after = links(&t)?;
    assert!(
        !after.contains("prog/xdp"),
        "an XDP program survived kill -9:\n{after}"
    );
    // The next start works at once and keeps the host interface.
    d.spawn()?;
    ping(&t.host, PEER_IP, 2)?;
    assert!(d.log_text().contains("reusing host interface bond0"));
    let st = d.stop()?;
    assert!(st.success(), "clean exit on SIGTERM: {st}");
    let after = links(&t)?;
    assert!(
        !after.contains("prog/xdp"),
        "an XDP program survived SIGTERM:\n{after}"
    );
    assert!(
        !after.contains("bond0"),
        "host interface left behind:\n{after}"
    );
    assert!(
        !d.run_dir.join("bond0.sock").exists(),
        "control socket left behind"
    );
    Ok(())
}

#[test]
fn a_missing_member_is_reported_and_the_bond_runs_on_the_others() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("mis", 2)?;
    let cfg = config("mode=active-backup").replace(r#"["m0", "m1"]"#, r#"["m0", "ghost0", "m1"]"#);
    let d = Daemon::start(&t, &cfg)?;
    assert!(
        d.log_text().contains("member ghost0 does not exist"),
        "{}",
        d.log_text()
    );
    let st = d.status()?;
    assert_eq!(st["missing_members"], serde_json::json!(["ghost0"]));
    assert_eq!(st["members"].as_array().unwrap().len(), 2);
    ping(&t.host, PEER_IP, 3)?;
    Ok(())
}

#[test]
fn frames_on_the_backup_are_dropped_unless_all_slaves_active() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("asa", 2)?;
    let d = Daemon::start(&t, &config("mode=active-backup"))?;
    // Broadcasts from the peer reach both members through the bridge: the
    // copy on the backup must be dropped (the host sees each once).
    ping(&t.peer, BOND_IP, 3)?;
    let stats: serde_json::Value = serde_json::from_str(&d.cli(&["stats", "--json"])?)?;
    let m1 = stats["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == "m1")
        .unwrap()
        .clone();
    assert!(
        m1["drops"]["inactive_member"].as_u64().unwrap() >= 1,
        "{m1}"
    );
    let host_rx = |s: &serde_json::Value| {
        s["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["role"] == "host")
            .unwrap()["tx_packets"]
            .as_u64()
            .unwrap()
    };
    let m1_drops = |s: &serde_json::Value| {
        s["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == "m1")
            .unwrap()["drops"]["inactive_member"]
            .as_u64()
            .unwrap()
    };
    d.cli(&["set", "bond0", "all_slaves_active", "1"])?;
    assert_eq!(d.status()?["active_slave"], "m0");
    let before: serde_json::Value = serde_json::from_str(&d.cli(&["stats", "--json"])?)?;
    // A broadcast the peer sends reaches both members; now both copies go up.
    run(&mut ns(
        &t.peer,
        &[
            "ping",
            "-b",
            "-c",
            "3",
            "-i",
            "0.1",
            "-W",
            "1",
            "198.18.0.255",
        ],
    ))
    .ok();
    let after: serde_json::Value = serde_json::from_str(&d.cli(&["stats", "--json"])?)?;
    assert_eq!(
        m1_drops(&after),
        m1_drops(&before),
        "no more drops on the backup"
    );
    assert!(
        host_rx(&after) >= host_rx(&before) + 6,
        "both copies of 3 broadcasts delivered: {} -> {}",
        host_rx(&before),
        host_rx(&after)
    );
    Ok(())
}

#[test]
fn generic_xdp_mode_works_too() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("gen", 2)?;
    let d = Daemon::start(
        &t,
        &bond_config(M0_M1, "mode=active-backup", "xdp_mode = \"generic\""),
    )?;
    let links = String::from_utf8_lossy(
        &run(std::process::Command::new("ip").args(["-n", &t.host, "-d", "link", "show", "m0"]))?
            .stdout,
    )
    .into_owned();
    assert!(
        links.contains("xdpgeneric"),
        "attached in generic (skb) mode:\n{links}"
    );
    ping(&t.host, PEER_IP, 3)?;
    t.switch_port(0, false)?;
    d.wait_active("m1", Duration::from_secs(1))?;
    ping(&t.host, PEER_IP, 3)?;
    Ok(())
}

#[test]
fn a_member_with_a_foreign_xdp_program_is_refused_by_name() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("fx", 2)?;
    // Another tool's program on m1, held for the duration of the start.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
    let holder = in_ns(&t.host, move || {
        use xbond_dataplane::tools::{AttachMode, FixedVerdict, XdpAction};
        let idx = nix::net::if_::if_nametoindex("m1").map_err(anyhow::Error::from);
        let attached = idx.and_then(|i| {
            Ok(FixedVerdict::attach(
                XdpAction::Pass,
                &[i],
                AttachMode::Native,
            )?)
        });
        let keep = match attached {
            Ok(k) => {
                let _ = ready_tx.send(Ok(()));
                Some(k)
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                None
            }
        };
        let _ = rx.recv();
        drop(keep);
    });
    ready_rx.recv()??;
    let err = match Daemon::start(&t, &config("mode=active-backup")) {
        Ok(_) => anyhow::bail!("xbond started on a member with a foreign XDP program"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("member m1 already has an XDP program"),
        "{err}"
    );
    let _ = tx.send(());
    holder
        .join()
        .map_err(|_| anyhow::anyhow!("holder panicked"))??;
    // Once the other program is gone, xbond starts at once.
    let _d = Daemon::start(&t, &config("mode=active-backup"))?;
    ping(&t.host, PEER_IP, 2)?;
    Ok(())
}

/// With every member down the bond has no carrier, as the kernel's
/// (`bond_set_carrier`): `ip link` shows NO-CARRIER on bond0 and on its
/// VLAN interfaces; the first member back brings it back, and traffic with
/// it.
#[test]
fn with_no_member_up_the_bond_has_no_carrier() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("nocar", 2)?;
    let d = Daemon::start(
        &t,
        &bond_config(
            M0_M1,
            "mode=active-backup miimon=100",
            "[[bond.bond0.vlan]]\nid = 87\naddresses = [\"198.18.87.1/24\"]",
        ),
    )?;
    d.wait_members_up(Duration::from_secs(5))?;
    ping(&t.host, PEER_IP, 2)?;
    assert!(!no_carrier(&t.host, "bond0")?);
    t.switch_port(0, false)?;
    assert!(!no_carrier(&t.host, "bond0")?, "m1 is still up");
    t.switch_port(1, false)?;
    let off = wait_for("bond0 carrier off", Duration::from_secs(2), || {
        no_carrier(&t.host, "bond0")
    })?;
    assert!(
        no_carrier(&t.host, "bond0.87")?,
        "the VLAN follows the bond"
    );
    assert_eq!(d.status()?["mii_status"], "down");
    t.switch_port(1, true)?;
    let on = wait_for("bond0 carrier on", Duration::from_secs(2), || {
        Ok(!no_carrier(&t.host, "bond0")?)
    })?;
    println!(
        "all members down: bond0 carrier off after {off:?}; on {on:?} after m1's carrier returned"
    );
    assert!(!no_carrier(&t.host, "bond0.87")?);
    wait_for("bond0 operstate up", Duration::from_secs(5), || {
        oper_up(&t.host, "bond0")
    })?;
    d.wait_active("m1", Duration::from_secs(2))?;
    ping(&t.host, PEER_IP, 3)?;
    Ok(())
}

/// An unsolicited NA from `mac` for `target`, untagged or tagged `vid`:
/// (target, Override set, link-layer address option).
fn unsolicited_na(f: &[u8]) -> Option<(u16, std::net::Ipv6Addr, bool, [u8; 6])> {
    let (vid, ip) = match u16::from_be_bytes([f[12], f[13]]) {
        0x86dd => (0, &f[14..]),
        0x8100 if f.len() > 18 && u16::from_be_bytes([f[16], f[17]]) == 0x86dd => {
            (u16::from_be_bytes([f[14], f[15]]) & 0xfff, &f[18..])
        }
        _ => return None,
    };
    // Next header ICMPv6, to ff02::1, type 136, with a TLLA option.
    if ip.len() < 72 || ip[6] != 58 || ip[24] != 0xff || ip[39] != 1 || ip[40] != 136 || ip[64] != 2
    {
        return None;
    }
    let mut t = [0u8; 16];
    t.copy_from_slice(&ip[48..64]);
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&ip[66..72]);
    Some((vid, t.into(), ip[44] & 0x20 != 0, mac))
}

#[test]
fn a_failover_sends_unsolicited_nas_for_every_ipv6_address_tagged_on_vlans() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("una", 2)?;
    let d = Daemon::start(
        &t,
        &bond_config(
            M0_M1,
            "mode=active-backup miimon=100 num_unsol_na=2",
            "addresses = [\"198.18.0.1/24\", \"2001:db8:18::1/64\"]\n[[bond.bond0.vlan]]\nid = 87\naddresses = [\"2001:db8:87::1/64\"]\n",
        )
        .replacen("addresses = [\"198.18.0.1/24\"]\n", "", 1),
    )?;
    // Duplicate address detection done: the addresses are the bond's.
    let t0 = std::time::Instant::now();
    while run(&mut ns(&t.host, &["ip", "-6", "addr", "show", "tentative"]))
        .map(|o| !o.stdout.is_empty())?
    {
        assert!(t0.elapsed() < Duration::from_secs(10), "DAD never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = d.status()?;
    let bond_mac: String = status["mac"].as_str().unwrap_or_default().to_string();
    // tcpdump, which puts back the tag the receiving veth took out.
    let dir = TempDir::new(&format!("{}-na", t.prefix))?;
    let pcap = dir.path.join("s1.pcap");
    let dump = Tcpdump::start(&t.switch, "s1", &pcap, &[])?;
    t.switch_port(0, false)?;
    d.wait_active("m1", Duration::from_secs(3))?;
    std::thread::sleep(Duration::from_millis(1500));
    let frames = dump.finish()?;
    let got: Vec<_> = frames
        .iter()
        .filter_map(|(_, f)| unsolicited_na(f))
        .collect();
    let mac: Vec<String> = got
        .iter()
        .map(|g| {
            g.3.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .collect();
    println!("unsolicited NAs on the new active member: {got:?}");
    let count = |vid: u16, addr: &str| {
        let a: std::net::Ipv6Addr = addr.parse().unwrap();
        got.iter().filter(|g| g.0 == vid && g.1 == a && g.2).count()
    };
    // num_unsol_na=2: twice each, the VLAN's tagged.
    assert_eq!(count(0, "2001:db8:18::1"), 2, "{got:?}");
    assert_eq!(count(87, "2001:db8:87::1"), 2, "{got:?}");
    assert!(mac.iter().all(|m| *m == bond_mac), "{mac:?} vs {bond_mac}");
    Ok(())
}

/// The groups of an IGMPv3 report (untagged or tagged), with its VLAN.
fn igmp_report(f: &[u8]) -> Option<(u16, Vec<std::net::Ipv4Addr>)> {
    let (vid, ip) = match u16::from_be_bytes([f[12], f[13]]) {
        0x0800 => (0, &f[14..]),
        0x8100 if u16::from_be_bytes([f[16], f[17]]) == 0x0800 => {
            (u16::from_be_bytes([f[14], f[15]]) & 0xfff, &f[18..])
        }
        _ => return None,
    };
    let ihl = usize::from(ip[0] & 0xf) * 4;
    if ip[9] != 2 || ip.len() < ihl + 8 || ip[ihl] != 0x22 {
        return None;
    }
    let n = usize::from(u16::from_be_bytes([ip[ihl + 6], ip[ihl + 7]]));
    let groups = (0..n)
        .filter_map(|i| ip.get(ihl + 8 + 8 * i + 4..ihl + 8 + 8 * i + 8))
        .map(|g| std::net::Ipv4Addr::new(g[0], g[1], g[2], g[3]))
        .collect();
    Some((vid, groups))
}

/// The groups of an MLDv2 report behind a hop-by-hop header, with its VLAN.
fn mld_report(f: &[u8]) -> Option<(u16, Vec<std::net::Ipv6Addr>)> {
    let (vid, ip) = match u16::from_be_bytes([f[12], f[13]]) {
        0x86dd => (0, &f[14..]),
        0x8100 if u16::from_be_bytes([f[16], f[17]]) == 0x86dd => {
            (u16::from_be_bytes([f[14], f[15]]) & 0xfff, &f[18..])
        }
        _ => return None,
    };
    if ip.len() < 56 || ip[6] != 0 || ip[40] != 58 || ip[48] != 143 {
        return None;
    }
    let n = usize::from(u16::from_be_bytes([ip[54], ip[55]]));
    let groups = (0..n)
        .filter_map(|i| ip.get(56 + 20 * i + 4..56 + 20 * i + 20))
        .map(|g| std::net::Ipv6Addr::from(<[u8; 16]>::try_from(g).unwrap()))
        .collect();
    Some((vid, groups))
}

#[test]
fn a_failover_reports_the_hosts_multicast_groups_again_resend_igmp_times() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("igm", 2)?;
    let d = Daemon::start(
        &t,
        &bond_config(
            M0_M1,
            "mode=active-backup miimon=100 resend_igmp=2",
            "[[bond.bond0.vlan]]\nid = 87\naddresses = [\"198.18.87.1/24\"]\n",
        ),
    )?;
    // Groups the host joined, on the bond and on its VLAN.
    run(&mut ns(
        &t.host,
        &[
            "ip",
            "addr",
            "add",
            "239.1.1.1/32",
            "dev",
            "bond0",
            "autojoin",
        ],
    ))?;
    run(&mut ns(
        &t.host,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "ff15::87/128",
            "dev",
            "bond0.87",
            "autojoin",
        ],
    ))?;
    // The kernel's own unsolicited reports for the joins are over.
    std::thread::sleep(Duration::from_secs(3));
    let bond_mac = d.status()?["mac"]
        .as_str()
        .unwrap_or_default()
        .replace(':', "");
    let dir = TempDir::new(&format!("{}-igmp", t.prefix))?;
    let pcap = dir.path.join("s1.pcap");
    let dump = Tcpdump::start(&t.switch, "s1", &pcap, &[])?;
    t.switch_port(0, false)?;
    d.wait_active("m1", Duration::from_secs(3))?;
    std::thread::sleep(Duration::from_millis(1200));
    let frames = dump.finish()?;
    let from_bond = |f: &Vec<u8>| {
        f[6..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            == bond_mac
    };
    let igmp: Vec<_> = frames
        .iter()
        .map(|(_, f)| f)
        .filter(|f| from_bond(f))
        .filter_map(|f| igmp_report(f))
        .collect();
    let mld: Vec<_> = frames
        .iter()
        .map(|(_, f)| f)
        .filter(|f| from_bond(f))
        .filter_map(|f| mld_report(f))
        .collect();
    println!("IGMPv3 reports on the new active member: {igmp:?}\nMLDv2 reports: {mld:?}");
    let group4: std::net::Ipv4Addr = "239.1.1.1".parse()?;
    let group6: std::net::Ipv6Addr = "ff15::87".parse()?;
    assert_eq!(
        igmp.iter()
            .filter(|(v, g)| *v == 0 && g.contains(&group4))
            .count(),
        2,
        "{igmp:?}"
    );
    assert_eq!(
        mld.iter()
            .filter(|(v, g)| *v == 87 && g.contains(&group6))
            .count(),
        2,
        "{mld:?}"
    );
    Ok(())
}

#[test]
fn the_member_with_the_highest_prio_is_active_and_takes_over_again() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("pri", 2)?;
    let d = Daemon::start(
        &t,
        &bond_config(M0_M1, "mode=active-backup miimon=100", "prio = { m1 = 10 }"),
    )?;
    d.wait_active("m1", Duration::from_secs(3))?;
    let st = d.status()?;
    assert_eq!(st["members"][1]["prio"], 10, "{st}");
    ping(&t.host, PEER_IP, 2)?;
    t.switch_port(1, false)?;
    d.wait_active("m0", Duration::from_secs(3))?;
    ping(&t.host, PEER_IP, 2)?;
    t.switch_port(1, true)?;
    d.wait_active("m1", Duration::from_secs(3))?;
    // Changed at runtime, as `ip link set m0 type bond_slave prio 20`.
    d.cli(&["set", "bond0", "prio", "m0=20"])?;
    d.wait_active("m0", Duration::from_secs(3))?;
    ping(&t.host, PEER_IP, 2)?;
    Ok(())
}
