//! 802.3ad end to end: xbond against Open vSwitch's userspace LACP bond (and
//! against a second xbond) on veths in namespaces, with real carrier loss and
//! real LACPDU loss. Needs root and openvswitch-switch (CI installs both).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use xbond_testbed::*;

const BOTH: [&str; 2] = ["m0", "m1"];

fn config(options: &str) -> String {
    bond_config(
        M0_M1,
        &format!("mode=802.3ad miimon=100 xmit_hash_policy=layer3+4 {options}"),
        "",
    )
}

/// Topology with OVS as the switch, and xbond on the host side.
fn start(tag: &str, xbond: &str, ovs: &[&str]) -> anyhow::Result<(Topo, Ovs, Daemon)> {
    let t = Topo::with_switch(tag, 2, "none")?;
    let o = Ovs::start(&t, ovs)?;
    let d = Daemon::start(&t, &config(xbond))?;
    Ok((t, o, d))
}

/// Both sides aggregated; returns how long it took from now.
fn wait_aggregated(o: &Ovs, d: &Daemon) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    d.wait_distributing(&BOTH, Duration::from_secs(15))?;
    let m = o.wait_negotiated(Duration::from_secs(15))?;
    assert_eq!(m.len(), 2, "{m:?}");
    Ok(t0.elapsed())
}

fn negotiate(tag: &str, xbond: &str, ovs: &[&str]) -> anyhow::Result<()> {
    let (t, o, d) = start(tag, xbond, ovs)?;
    let took = wait_aggregated(&o, &d)?;
    eprintln!("xbond [{xbond}] with OVS {ovs:?}: both members collecting and distributing on both sides after {took:?}");
    let st = d.status()?;
    assert_eq!(st["ad"]["active_aggregator"]["ports"], 2);
    assert_eq!(st["mii_status"], "up");
    ping(&t.host, PEER_IP, 5)?;
    ping(&t.peer, BOND_IP, 5)?;
    let r = udp_stream(&t.host, &t.peer, PEER_IP, 9000, 2000, 1000, |_| {})?;
    assert_eq!(r.lost(), 0, "{r:?}");
    // LACPDUs are counted per member, and none reached the host interface.
    let stats: serde_json::Value = serde_json::from_str(&d.cli(&["stats", "--json"])?)?;
    for m in stats["lacp"].as_array().unwrap() {
        assert!(m["counters"]["lacpdu_rx"].as_u64().unwrap() > 0, "{m}");
        assert!(m["counters"]["lacpdu_tx"].as_u64().unwrap() > 0, "{m}");
        assert_eq!(m["counters"]["illegal_rx"], 0);
    }
    let text = d.cli(&["status"])?;
    assert!(
        text.contains("802.3ad info") && text.contains("details partner lacp pdu:"),
        "{text}"
    );
    Ok(())
}

const OVS_FAST: &[&str] = &[
    "lacp=active",
    "bond_mode=balance-tcp",
    "other_config:lacp-time=fast",
];

#[test]
fn negotiates_with_ovs_fast_and_slow() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    negotiate("lf", "lacp_rate=fast", OVS_FAST)?;
    negotiate(
        "ls",
        "lacp_rate=slow",
        &[
            "lacp=active",
            "bond_mode=balance-tcp",
            "other_config:lacp-time=slow",
        ],
    )
}

#[test]
fn negotiates_with_ovs_active_passive_both_ways() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    negotiate(
        "lp",
        "lacp_rate=fast",
        &[
            "lacp=passive",
            "bond_mode=balance-tcp",
            "other_config:lacp-time=fast",
        ],
    )?;
    negotiate("la", "lacp_rate=fast lacp_active=off", OVS_FAST)
}

#[test]
fn two_xbonds_negotiate_with_each_other() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::with_switch("lx", 2, "none")?;
    let a = Daemon::start(&t, &config("lacp_rate=fast"))?;
    let b_cfg = r#"
[daemon]
run_dir = "RUN_DIR"
[bond.bond0]
members = ["s0", "s1"]
addresses = ["198.18.0.3/24"]
options = "mode=802.3ad miimon=100 lacp_rate=fast"
"#;
    let b = Daemon::start_in(&t, &t.switch, "swrun", b_cfg)?;
    let took = a.wait_distributing(&BOTH, Duration::from_secs(15))?;
    b.wait_distributing(&["s0", "s1"], Duration::from_secs(15))?;
    eprintln!("two xbonds aggregated after {took:?}");
    let sa = a.status()?;
    let sb = b.status()?;
    assert_eq!(
        sa["ad"]["active_aggregator"]["partner_mac"], sb["ad"]["system_mac"],
        "each sees the other's system"
    );
    ping(&t.host, Ipv4Addr::new(198, 18, 0, 3), 5)?;
    Ok(())
}

/// The member (index) that carries the host→peer stream, read from
/// xbond's per-port TX counters while it flows.
fn carrying_member(d: &Daemon, before: [u64; 2]) -> anyhow::Result<usize> {
    let after = [d.port_tx("m0")?, d.port_tx("m1")?];
    let grew = [after[0] - before[0], after[1] - before[1]];
    Ok(if grew[0] >= grew[1] { 0 } else { 1 })
}

#[test]
fn carrier_loss_takes_the_member_out_at_once() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let (t, o, d) = start("lc", "lacp_rate=fast", OVS_FAST)?;
    wait_aggregated(&o, &d)?;
    ping(&t.host, PEER_IP, 3)?;
    let mut out_after = Duration::ZERO;
    let mut victim = 0;
    let before = [d.port_tx("m0")?, d.port_tx("m1")?];
    let r = udp_stream(&t.host, &t.peer, PEER_IP, 9001, 1000, 4000, |start| {
        std::thread::sleep(Duration::from_millis(1000).saturating_sub(start.elapsed()));
        victim = carrying_member(&d, before).unwrap();
        let t0 = Instant::now();
        t.switch_port(victim, false).unwrap();
        let other = BOTH[1 - victim];
        d.wait_distributing(&[other], Duration::from_secs(5))
            .unwrap();
        out_after = t0.elapsed();
    })?;
    eprintln!(
        "carrier loss on m{victim} (carrying the stream): out of the aggregator after {out_after:?}; \
         1000 pps stream lost {} of {} (longest gap {:?})",
        r.lost(),
        r.sent,
        r.max_gap()
    );
    // Less than one miimon interval (100 ms) of loss, which is what the
    // kernel's polling alone would cost; 2 cores shared with other tests.
    assert!(out_after < Duration::from_millis(300), "{out_after:?}");
    assert!(r.lost() <= 100, "{r:?}");
    // Back through the machines when the carrier returns.
    t.switch_port(victim, true)?;
    let back = d.wait_distributing(&BOTH, Duration::from_secs(10))?;
    eprintln!("m{victim} distributing again {back:?} after its carrier returned");
    o.wait_negotiated(Duration::from_secs(10))?;
    Ok(())
}

#[test]
fn blocked_lacpdus_time_the_member_out_and_it_returns() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let (t, o, d) = start("lb", "lacp_rate=fast", OVS_FAST)?;
    wait_aggregated(&o, &d)?;
    let nft = |script: &str| run(&mut ns(&t.switch, &["nft", script])).map(drop);
    let mut out_after = Duration::ZERO;
    let mut back_after = Duration::ZERO;
    let r = udp_stream(&t.host, &t.peer, PEER_IP, 9002, 1000, 12000, |_| {
        // OVS sends through a packet socket, so the drop sits on the egress
        // of s0: xbond's m0 hears nothing while its carrier stays up.
        nft("add table netdev xblk").unwrap();
        nft("add chain netdev xblk out { type filter hook egress device s0 priority 0; }").unwrap();
        nft("add rule netdev xblk out ether type 0x8809 drop").unwrap();
        let t0 = Instant::now();
        d.wait_distributing(&["m1"], Duration::from_secs(6))
            .unwrap();
        out_after = t0.elapsed();
        std::thread::sleep(Duration::from_secs(2));
        nft("delete table netdev xblk").unwrap();
        let t1 = Instant::now();
        d.wait_distributing(&BOTH, Duration::from_secs(8)).unwrap();
        back_after = t1.elapsed();
    })?;
    eprintln!(
        "LACPDUs dropped toward m0: out of the aggregator after {out_after:?} (short timeout 3 s); \
         back {back_after:?} after they flowed again; 1000 pps stream lost {} of {} (longest gap {:?})",
        r.lost(),
        r.sent,
        r.max_gap()
    );
    assert!(
        out_after >= Duration::from_secs(2) && out_after <= Duration::from_millis(3500),
        "{out_after:?}"
    );
    assert!(
        d.status()?["members"][0]["mii_status"] == "up",
        "carrier stayed up"
    );
    assert!(r.lost() <= 50, "traffic continued on m1: {r:?}");
    o.wait_negotiated(Duration::from_secs(10))?;
    Ok(())
}

/// A LACPDU in a capture.
#[derive(Debug, Clone, Copy)]
struct Captured {
    /// Seconds (capture clock).
    at: f64,
    src: [u8; 6],
    actor_state: u8,
    partner_state: u8,
}

/// Every LACPDU in a pcap file written by tcpdump.
fn lacpdus_in_pcap(path: &std::path::Path) -> anyhow::Result<Vec<Captured>> {
    let mut out = Vec::new();
    for (at, f) in pcap_frames(path)? {
        if f.len() >= 53 && f[12..14] == [0x88, 0x09] && f[14] == 1 {
            let mut src = [0u8; 6];
            src.copy_from_slice(&f[6..12]);
            out.push(Captured {
                at,
                src,
                actor_state: f[32],
                partner_state: f[52],
            });
        }
    }
    Ok(out)
}

#[test]
fn lacpdus_keep_time_under_full_rate_traffic() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let (t, o, d) = start("lt", "lacp_rate=fast", OVS_FAST)?;
    wait_aggregated(&o, &d)?;
    let dur = Duration::from_secs(12);
    // tcpdump keeps only LACPDUs on s0 (a kernel filter), so the flood
    // cannot crowd them out of the capture.
    let pcap = d.run_dir.join("lacp.pcap");
    let dump = Tcpdump::start(&t.switch, "s0", &pcap, &["ether proto 0x8809"])?;
    let flood = in_ns(&t.host, move || -> anyhow::Result<u64> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        let end = Instant::now() + dur;
        let payload = [0u8; 1400];
        let mut n = 0u64;
        let mut port = 10_000u16;
        while Instant::now() < end {
            // Many flows, so both members carry the flood.
            port = if port == 10_063 { 10_000 } else { port + 1 };
            if s.send_to(&payload, (PEER_IP, port)).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    });
    let sent = flood
        .join()
        .map_err(|_| anyhow::anyhow!("flood panicked"))???;
    dump.finish()?;
    let pdus = lacpdus_in_pcap(&pcap)?;
    let ours: Vec<_> = pdus
        .iter()
        .filter(|p| p.src == [2, 0, 0, 0, 1, 0])
        .collect();
    let theirs: Vec<f64> = pdus
        .iter()
        .filter(|p| p.src != [2, 0, 0, 0, 1, 0])
        .map(|p| p.at)
        .collect();
    // A LACPDU whose states differ from the previous one was sent because
    // something changed (NTT), not by the periodic timer; the periodic ones
    // are measured against each other.
    let mut periodic: Vec<f64> = Vec::new();
    let mut event_driven = Vec::new();
    for w in ours.windows(2) {
        if (w[1].actor_state, w[1].partner_state) != (w[0].actor_state, w[0].partner_state) {
            event_driven.push(format!(
                "{:.3}: actor 0x{:02x}->0x{:02x} partner 0x{:02x}->0x{:02x}",
                w[1].at - ours[0].at,
                w[0].actor_state,
                w[1].actor_state,
                w[0].partner_state,
                w[1].partner_state
            ));
        } else {
            periodic.push(w[1].at);
        }
    }
    let gaps: Vec<f64> = periodic.windows(2).map(|w| w[1] - w[0]).collect();
    let (min, max) = gaps
        .iter()
        .fold((f64::MAX, 0f64), |(a, b), g| (a.min(*g), b.max(*g)));
    let partner_max_gap = theirs.windows(2).map(|w| w[1] - w[0]).fold(0f64, f64::max);
    let stats: serde_json::Value = serde_json::from_str(&d.cli(&["stats", "--json"])?)?;
    let members: Vec<&serde_json::Value> = stats["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["role"] == "member")
        .collect();
    let to_members: u64 = members
        .iter()
        .filter_map(|p| p["tx_packets"].as_u64())
        .sum();
    // Drops on the members say where a missing LACPDU went.
    let member_drops: Vec<String> = members
        .iter()
        .flat_map(|p| {
            let name = p["port"].as_str().unwrap_or("?").to_string();
            p["drops"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, n)| n.as_u64() != Some(0))
                .map(move |(r, n)| format!("{name} {r} {n}"))
        })
        .collect();
    eprintln!(
        "under a flood of {sent} datagrams in {dur:?} ({to_members} frames out of the members), {} LACPDUs from m0: \
         periodic interval min {min:.3} s, max {max:.3} s; {} sent on a state change {event_driven:?}; \
         OVS's longest gap between LACPDUs to m0 {partner_max_gap:.3} s; \
         drops on the members {member_drops:?}",
        ours.len(),
        event_driven.len(),
    );
    assert!(gaps.len() >= 8, "{ours:?}");
    assert!(
        gaps.iter().all(|g| (0.95..=1.05).contains(g)),
        "periodic intervals {gaps:?}; drops on the members {member_drops:?}"
    );
    // The members carried a flood. Not all of it: what the bond cannot
    // forward is dropped at the host port's RX (backpressure), and on a
    // loaded machine that was more than half of what the socket sent.
    assert!(
        to_members >= 100_000 && to_members * 10 > sent,
        "the flood went through the bond: {to_members} of {sent}"
    );
    Ok(())
}

#[test]
fn below_min_links_the_bond_loses_carrier() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let (t, o, d) = start("lm", "lacp_rate=fast min_links=2", OVS_FAST)?;
    wait_aggregated(&o, &d)?;
    assert!(!no_carrier(&t.host, "bond0")?);
    ping(&t.host, PEER_IP, 3)?;
    t.switch_port(1, false)?;
    let off = wait_for("bond0 carrier off", Duration::from_secs(2), || {
        no_carrier(&t.host, "bond0")
    })?;
    assert_eq!(d.status()?["mii_status"], "down");
    assert!(
        ping(&t.host, PEER_IP, 2).is_err(),
        "no traffic below min_links"
    );
    t.switch_port(1, true)?;
    let on = wait_for("bond0 carrier on", Duration::from_secs(5), || {
        Ok(!no_carrier(&t.host, "bond0")?)
    })?;
    let oper = wait_for("bond0 operstate up", Duration::from_secs(5), || {
        oper_up(&t.host, "bond0")
    })?;
    // Both sides aggregated again, then traffic: the host port's sockets
    // survived the carrier flap. The ping refused above left the neighbour
    // entry resolving (or FAILED) with its probes spent on a dead bond; the
    // kernel would fail the new pings with it, so start resolution afresh.
    wait_aggregated(&o, &d)?;
    run(&mut ns(&t.host, &["ip", "neigh", "flush", "dev", "bond0"]))?;
    if let Err(e) = ping(&t.host, PEER_IP, 3) {
        anyhow::bail!(
            "{e}\n{}\n{}\n{}\n{}",
            d.cli(&["status"])?,
            d.cli(&["stats"])?,
            o.appctl(&["lacp/show", "bond0"])?,
            d.log_text()
        );
    }
    ping(&t.peer, BOND_IP, 3)?;
    eprintln!(
        "min_links=2: bond0 carrier off {off:?} after a member's carrier loss, on {on:?} after it returned \
         (operstate UP after {oper:?}, the kernel's link watch)"
    );
    Ok(())
}

#[test]
fn lacp_fallback_runs_active_backup_without_a_partner() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    // A plain bridge: no LACP partner at all.
    let t = Topo::new("lfb", 2)?;
    let d = Daemon::start(
        &t,
        &config("lacp_rate=fast lacp_fallback=active-backup lacp_fallback_timeout=1500"),
    )?;
    let took = wait_for("fallback", Duration::from_secs(5), || {
        Ok(d.status()?["ad"]["fallback"] == true)
    })?;
    ping(&t.host, PEER_IP, 3)?;
    ping(&t.peer, BOND_IP, 3)?;
    let active = d.active()?.expect("an active member in the fallback");
    let log = d.log_text();
    assert!(
        log.contains("running as active-backup (lacp_fallback)"),
        "{log}"
    );
    assert!(
        log.contains("gratuitous ARP"),
        "peers told of the active member: {log}"
    );
    // Failover inside the fallback.
    let idx: usize = active[1..].parse()?;
    t.switch_port(idx, false)?;
    let other = BOTH[1 - idx];
    d.wait_active(other, Duration::from_secs(2))?;
    ping(&t.host, PEER_IP, 3)?;
    eprintln!("no LACP partner: active-backup fallback after {took:?} (timeout 1.5 s), failover to {other} worked");
    Ok(())
}

/// The kernel selftest bond_passive_lacp.sh: a passive bond sends no LACPDU
/// to a passive partner, and answers as soon as the partner turns active.
#[test]
fn passive_bond_stays_silent_until_spoken_to() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let (t, o, d) = start(
        "lq",
        "lacp_rate=fast lacp_active=off",
        &[
            "lacp=passive",
            "bond_mode=balance-tcp",
            "other_config:lacp-time=fast",
        ],
    )?;
    let cap = capture(&t.switch, "s0", Duration::from_secs(4), |f| {
        f.len() >= 14 && f[12..14] == [0x88, 0x09] && f[6..12] == [2, 0, 0, 0, 1, 0]
    });
    let seen = cap
        .join()
        .map_err(|_| anyhow::anyhow!("capture panicked"))???;
    assert!(
        seen.is_empty(),
        "{} LACPDUs from a passive bond to a passive partner",
        seen.len()
    );
    assert!(
        d.distributing()?.len() <= 1,
        "never aggregated: {:?}",
        d.distributing()?
    );
    let stats: serde_json::Value = serde_json::from_str(&d.cli(&["stats", "--json"])?)?;
    assert!(stats["lacp"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["counters"]["lacpdu_tx"] == 0));
    o.vsctl(&["set", "port", "bond0", "lacp=active"])?;
    let took = wait_aggregated(&o, &d)?;
    eprintln!("passive-passive: no LACPDU in 4 s; the partner turned active and both aggregated {took:?} later");
    Ok(())
}
