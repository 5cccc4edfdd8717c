//! ARP and IPv6 NS link monitoring end to end on the bridge testbed: the
//! failures carrier cannot see are nftables black holes on the switch side
//! of a member, whose carrier stays up. Scenarios after the kernel's
//! bonding selftests (bond_options.sh arp_validate tests) and the user
//! report of a monitor fooled by other hosts' ARP. Needs root (CI runs it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xbond_testbed::*;

const INTERVAL_MS: u64 = 100;

fn arp_opts(extra: &str) -> String {
    format!("mode=active-backup arp_interval={INTERVAL_MS} arp_missed_max=2 arp_ip_target=198.18.0.2 {extra}")
}

/// The bond is up on both members with m0 active, answering the monitor.
fn settled(d: &Daemon) -> anyhow::Result<()> {
    d.wait_member("m0", "up", Duration::from_secs(5))?;
    d.wait_member("m1", "up", Duration::from_secs(5))?;
    d.wait_active("m0", Duration::from_secs(5))?;
    // A few rounds, so replies are flowing (not the start-up grace).
    std::thread::sleep(Duration::from_millis(5 * INTERVAL_MS));
    let st = d.status()?;
    anyhow::ensure!(
        st["members"][0]["arp"]["valid_replies"]
            .as_u64()
            .unwrap_or(0)
            > 0
            || st["arp_validate"] == "none",
        "no valid replies yet: {st}"
    );
    Ok(())
}

fn stats_arp(d: &Daemon, member: &str) -> anyhow::Result<(u64, u64)> {
    let v: serde_json::Value = serde_json::from_str(&d.cli(&["stats", "--json"])?)?;
    let row = v["arp_monitor"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["member"] == member)
        .cloned()
        .unwrap_or_default();
    Ok((
        row["probes"].as_u64().unwrap_or(0),
        row["valid_replies"].as_u64().unwrap_or(0),
    ))
}

#[test]
fn black_holed_active_path_fails_over_in_the_kernels_time_and_comes_back() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("arpbh", 2)?;
    let d = Daemon::start(
        &t,
        &bond_config(M0_M1, &arp_opts("arp_validate=active"), ""),
    )?;
    settled(&d)?;
    let proc_text = d.cli(&["status"])?;
    assert!(
        proc_text.contains("ARP Polling Interval (ms): 100\nARP Missed Max: 2\nARP IP target/s (n.n.n.n form): 198.18.0.2\n"),
        "{proc_text}"
    );
    let (probes, replies) = stats_arp(&d, "m0")?;
    assert!(
        probes >= 5 && replies >= 4,
        "probes {probes}, replies {replies}"
    );

    let sw = t.switch.clone();
    let mut failover = Duration::ZERO;
    let mut hole = None;
    let r = udp_stream(&t.host, &t.peer, PEER_IP, 9100, 1000, 3000, |start| {
        std::thread::sleep(
            (start + Duration::from_millis(800)).saturating_duration_since(Instant::now()),
        );
        hole = Some(BlackHole::new(&sw, "s0", true).unwrap());
        failover = d.wait_active("m1", Duration::from_secs(3)).unwrap();
    })?;
    println!(
        "ARP black hole, arp_interval=100 arp_missed_max=2: failover after {failover:?} \
         (kernel: 200-300 ms); 1000 pps stream lost {} of {}, longest gap {:?}",
        r.lost(),
        r.sent,
        r.max_gap()
    );
    // The kernel takes the active member down at the first monitor round
    // more than missed_max intervals and a half after its last reply:
    // between 2 and 3 intervals after the path died; the status poll adds
    // a few ms.
    assert!(
        failover >= Duration::from_millis(150) && failover <= Duration::from_millis(400),
        "{failover:?}"
    );
    assert_eq!(d.member_status("m0")?, "down");
    assert_eq!(d.status()?["members"][0]["link_failure_count"], 1);
    assert!(r.lost() < 450, "{:?}", r.lost());
    // The carrier never went down: it was the ARP monitor.
    let carrier = run(&mut ns(&t.host, &["cat", "/sys/class/net/m0/carrier"]))?;
    assert_eq!(String::from_utf8_lossy(&carrier.stdout).trim(), "1");

    hole.take().unwrap().remove()?;
    let back = d.wait_member("m0", "up", Duration::from_secs(3))?;
    println!("path restored: m0 up again after {back:?}");
    assert_eq!(
        d.active()?.as_deref(),
        Some("m1"),
        "no primary: m1 stays active"
    );
    ping(&t.host, PEER_IP, 3)?;
    Ok(())
}

/// The user report: a dead member kept alive by other hosts' ARP
/// broadcasts. With arp_validate=none the kernel (and xbond) is fooled;
/// with arp_validate=active only the target's replies count.
#[test]
fn arp_validate_active_is_not_fooled_by_other_hosts_arp_broadcasts() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    for (validate, fooled) in [("none", true), ("active", false)] {
        let t = Topo::new("arpv", 2)?;
        let d = Daemon::start(
            &t,
            &bond_config(M0_M1, &arp_opts(&format!("arp_validate={validate}")), ""),
        )?;
        settled(&d)?;
        let stop = Arc::new(AtomicBool::new(false));
        let noise = arp_noise(&t.peer, "p0", Duration::from_millis(20), stop.clone());
        // m0's frames no longer reach the switch; what the switch floods
        // (the other host's broadcasts) still reaches m0.
        let hole = BlackHole::new(&t.switch, "s0", false)?;
        let outcome = d.wait_active("m1", Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
        let sent = noise.join().map_err(|_| anyhow::anyhow!("noise"))???;
        println!(
            "arp_validate={validate}: {sent} foreign ARP broadcasts; failover {:?}",
            outcome.as_ref().ok()
        );
        assert!(sent > 5, "the noise flowed: {sent}");
        if fooled {
            drop(hole);
            assert!(
                outcome.is_err(),
                "arp_validate=none counts any traffic, as the kernel does"
            );
            assert_eq!(d.member_status("m0")?, "up");
        } else {
            let took = outcome?;
            assert!(took <= Duration::from_millis(400), "{took:?}");
            // Read while the hole is still there: once it is gone, the
            // target's replies bring m0 back within an interval.
            assert_eq!(d.member_status("m0")?, "down");
            drop(hole);
        }
    }
    Ok(())
}

#[test]
fn arp_all_targets_all_needs_every_target_any_needs_one() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    // 198.18.0.3 is nobody.
    for (policy, m0_up) in [("any", true), ("all", false)] {
        let t = Topo::new("arpat", 2)?;
        let opts = format!(
            "mode=active-backup arp_interval={INTERVAL_MS} arp_ip_target=198.18.0.2,198.18.0.3 arp_validate=all arp_all_targets={policy}"
        );
        let d = Daemon::start(&t, &bond_config(M0_M1, &opts, ""))?;
        std::thread::sleep(Duration::from_millis(15 * INTERVAL_MS));
        let s = d.member_status("m0")?;
        println!("arp_all_targets={policy}, one of two targets answering: m0 {s}");
        if m0_up {
            assert_eq!(s, "up");
            assert_eq!(d.active()?.as_deref(), Some("m0"));
            assert_eq!(d.member_status("m1")?, "up");
        } else {
            assert_ne!(s, "up", "{}", d.cli(&["status"])?);
            assert_eq!(d.status()?["members"][0]["link_failure_count"], 1);
        }
        let (probes, _) = stats_arp(&d, "m0")?;
        assert!(probes > 0);
    }
    Ok(())
}

/// The peer gets IPv6 address `peer`/64 (no DAD), the bond `bond`/64 next
/// to its IPv4 address; the daemon runs with `opts`.
fn start_ipv6(t: &Topo, peer: &str, bond: &str, opts: &str) -> anyhow::Result<Daemon> {
    run(&mut ns(
        &t.peer,
        &[
            "ip",
            "addr",
            "add",
            &format!("{peer}/64"),
            "dev",
            "p0",
            "nodad",
        ],
    ))?;
    let cfg = bond_config(M0_M1, opts, "").replace(
        "addresses = [\"198.18.0.1/24\"]",
        &format!("addresses = [\"198.18.0.1/24\", \"{bond}/64\"]"),
    );
    Daemon::start(t, &cfg)
}

#[test]
fn ns_monitor_black_hole_over_ipv6() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("nsbh", 2)?;
    let d = start_ipv6(
        &t,
        "2001:db8::2",
        "2001:db8::1",
        &format!("mode=active-backup arp_interval={INTERVAL_MS} arp_missed_max=2 ns_ip6_target=2001:db8::2 arp_validate=active"),
    )?;
    settled(&d)?;
    let st = d.cli(&["status"])?;
    assert!(
        st.contains("NS IPv6 target/s (xx::xx form): 2001:db8::2"),
        "{st}"
    );
    let (_, replies) = stats_arp(&d, "m0")?;
    assert!(replies >= 3, "Neighbor Advertisements validated: {replies}");
    let hole = BlackHole::new(&t.switch, "s0", true)?;
    let failover = d.wait_active("m1", Duration::from_secs(3))?;
    println!("NS black hole: failover after {failover:?}");
    assert!(failover <= Duration::from_millis(400), "{failover:?}");
    hole.remove()?;
    d.wait_member("m0", "up", Duration::from_secs(3))?;
    let (_, on_m1) = stats_arp(&d, "m1")?;
    assert!(on_m1 > 0, "m1's own probes are answered");
    Ok(())
}

#[test]
fn link_watch_policy_all_acts_on_carrier_at_once_and_on_a_black_hole_after_missed_max(
) -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("lwp", 2)?;
    let opts = arp_opts("miimon=100 link_watch_policy=all");
    let d = Daemon::start(&t, &bond_config(M0_M1, &opts, ""))?;
    settled(&d)?;
    t.switch_port(0, false)?;
    let carrier = d.wait_active("m1", Duration::from_secs(2))?;
    println!("link_watch_policy=all: carrier loss -> failover after {carrier:?}");
    assert!(
        carrier <= Duration::from_millis(80),
        "acted on at once: {carrier:?}"
    );
    t.switch_port(0, true)?;
    d.wait_member("m0", "up", Duration::from_secs(3))?;
    std::thread::sleep(Duration::from_millis(3 * INTERVAL_MS));
    let hole = BlackHole::new(&t.switch, "s1", true)?;
    let arp = d.wait_active("m0", Duration::from_secs(3))?;
    println!("link_watch_policy=all: black hole on m1 -> failover after {arp:?}");
    assert!(
        arp >= Duration::from_millis(150) && arp <= Duration::from_millis(400),
        "{arp:?}"
    );
    drop(hole);
    Ok(())
}

/// The kernel's bond_options.sh `arp_validate` test: with every
/// `arp_validate` value (0-6) a healthy active-backup bond comes up on both
/// members and stays up; and the load-balancing ARP monitor keeps a
/// balance-xor bond up.
#[test]
fn every_arp_validate_value_keeps_a_healthy_bond_up() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("arpall", 2)?;
    let mut configs: Vec<String> = (0..=6)
        .map(|v| arp_opts(&format!("arp_validate={v}")))
        .collect();
    configs.push(format!(
        "mode=balance-xor arp_interval={INTERVAL_MS} arp_ip_target=198.18.0.2"
    ));
    for (i, opts) in configs.iter().enumerate() {
        let mut d = Daemon::start_in(&t, &t.host, &format!("v{i}"), &bond_config(M0_M1, opts, ""))?;
        d.wait_member("m0", "up", Duration::from_secs(5))?;
        d.wait_member("m1", "up", Duration::from_secs(5))?;
        // Ten more rounds: still up, nothing counted as a failure.
        std::thread::sleep(Duration::from_millis(10 * INTERVAL_MS));
        let st = d.status()?;
        for m in st["members"].as_array().into_iter().flatten() {
            assert_eq!(m["mii_status"], "up", "{opts}: {st}");
            assert_eq!(m["link_failure_count"], 0, "{opts}: {st}");
        }
        ping(&t.host, PEER_IP, 2)?;
        let (probes, _) = stats_arp(&d, "m0")?;
        assert!(probes >= 10, "{opts}: {probes} probes");
        d.stop()?;
    }
    Ok(())
}

/// Both members' paths die; then the path of the last member heals. In
/// active-backup without an active member the monitor tries one member at
/// a time; the one whose path works must come up and carry traffic.
#[test]
fn after_both_paths_die_the_member_whose_path_heals_comes_back() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("arpto", 2)?;
    let d = Daemon::start(
        &t,
        &bond_config(M0_M1, &arp_opts("arp_validate=active"), ""),
    )?;
    settled(&d)?;
    let h0 = BlackHole::new(&t.switch, "s0", true)?;
    let h1 = BlackHole::new(&t.switch, "s1", true)?;
    d.poll_until(
        Duration::from_secs(3),
        Daemon::active,
        Option::is_none,
        "no active member",
    )?;
    // A few rounds of trying candidates in turn.
    std::thread::sleep(Duration::from_millis(6 * INTERVAL_MS));
    assert_ne!(d.member_status("m0")?, "up");
    assert_ne!(d.member_status("m1")?, "up");
    // With no member up the bond has no carrier, as the kernel's.
    assert!(no_carrier(&t.host, "bond0")?, "bond0 keeps its carrier");
    assert_eq!(d.status()?["mii_status"], "down");
    h1.remove()?;
    let back = d.wait_active("m1", Duration::from_secs(3))?;
    println!("total outage: m1 active again {back:?} after its path healed");
    wait_for("bond0 carrier on", Duration::from_secs(1), || {
        Ok(!no_carrier(&t.host, "bond0")?)
    })?;
    wait_for("bond0 operstate up", Duration::from_secs(5), || {
        oper_up(&t.host, "bond0")
    })?;
    // It stays up: the monitor probes it as the active member from now on.
    std::thread::sleep(Duration::from_millis(10 * INTERVAL_MS));
    assert_eq!(d.member_status("m1")?, "up");
    assert_eq!(d.active()?.as_deref(), Some("m1"));
    assert_ne!(d.member_status("m0")?, "up", "m0's path is still dead");
    ping(&t.host, PEER_IP, 3)?;
    drop(h0);
    Ok(())
}

/// `xbond set` switches ARP monitoring on, changes its targets and turns it
/// off again, as the kernel's sysfs files do: ARP monitoring replaces MII
/// monitoring and the other way round.
#[test]
fn arp_monitoring_is_switched_on_and_off_at_runtime() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("arprt", 2)?;
    let d = Daemon::start(&t, &bond_config(M0_M1, "mode=active-backup miimon=100", ""))?;
    d.wait_members_up(Duration::from_secs(5))?;
    d.wait_active("m0", Duration::from_secs(5))?;

    let msg = d.cli(&["set", "bond0", "arp_ip_target", "+198.18.0.2"])?;
    assert!(msg.contains("arp_interval is 0"), "{msg}");
    let msg = d.cli(&["set", "bond0", "arp_interval", &INTERVAL_MS.to_string()])?;
    assert!(msg.contains("MII monitoring disabled"), "{msg}");
    d.cli(&["set", "bond0", "arp_validate", "active"])?;
    let err = d
        .cli(&["set", "bond0", "arp_ip_target", "-198.18.0.9"])
        .unwrap_err();
    assert!(err.to_string().contains("not a target"), "{err}");
    let proc_text = d.cli(&["status"])?;
    assert!(
        proc_text.contains("MII Polling Interval (ms): 0\n")
            && proc_text.contains("ARP Polling Interval (ms): 100\n")
            && proc_text.contains("ARP IP target/s (n.n.n.n form): 198.18.0.2\n"),
        "{proc_text}"
    );
    settled(&d)?;

    // The path dies with carrier up: only the ARP monitor can see it.
    let hole = BlackHole::new(&t.switch, "s0", true)?;
    let failover = d.wait_active("m1", Duration::from_secs(3))?;
    println!("ARP monitoring switched on at runtime: black hole -> failover after {failover:?}");
    assert!(failover <= Duration::from_millis(400), "{failover:?}");
    hole.remove()?;
    d.wait_member("m0", "up", Duration::from_secs(3))?;

    // Back to MII monitoring: carrier loss is acted on at once again, and
    // the members' ARP state is gone from the status.
    let msg = d.cli(&["set", "bond0", "miimon", "100"])?;
    assert!(msg.contains("ARP monitoring disabled"), "{msg}");
    let st = d.status()?;
    assert!(st["members"][1]["arp"].is_null(), "{st}");
    let sw = t.switch.clone();
    run(std::process::Command::new("ip").args(["-n", &sw, "link", "set", "s1", "down"]))?;
    let carrier = d.wait_active("m0", Duration::from_secs(2))?;
    println!("MII monitoring switched back on: carrier loss -> failover after {carrier:?}");
    assert!(carrier <= Duration::from_millis(150), "{carrier:?}");
    ping(&t.host, PEER_IP, 3)?;
    Ok(())
}

/// The kernel's bond-lladdr-target.sh: with an IPv6 link-local
/// `ns_ip6_target` (a neighbour's fe80 address) and a link-local address on
/// the bond, the bond comes up (LOWER_UP) and stays up on validated
/// Advertisements.
#[test]
fn a_link_local_ns_target_brings_the_bond_up() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("nsll", 2)?;
    let d = start_ipv6(
        &t,
        "fe80::2",
        "fe80::beef",
        &format!(
            "mode=active-backup arp_interval={INTERVAL_MS} ns_ip6_target=fe80::2 arp_validate=all"
        ),
    )?;
    settled(&d)?;
    let up = wait_for("bond0 LOWER_UP", Duration::from_secs(5), || {
        let out = run(&mut ns(&t.host, &["ip", "link", "show", "bond0"]))?;
        Ok(String::from_utf8_lossy(&out.stdout).contains("LOWER_UP"))
    })?;
    println!("link-local NS target: bond0 LOWER_UP {up:?} after the members were up");
    // Several more rounds: the Advertisements keep validating.
    let (_, before) = stats_arp(&d, "m0")?;
    std::thread::sleep(Duration::from_millis(5 * INTERVAL_MS));
    let (_, after) = stats_arp(&d, "m0")?;
    assert!(after >= before + 3, "valid replies {before} -> {after}");
    assert_eq!(d.member_status("m0")?, "up");
    assert_eq!(d.active()?.as_deref(), Some("m0"));
    // The backup is not asserted: with arp_validate=all it is validated only
    // by Advertisements that reach it. The kernel does not take the active
    // member's flooded Solicitations for it (their destination is the
    // solicited-node group, not a target), and neither does xbond.
    Ok(())
}
