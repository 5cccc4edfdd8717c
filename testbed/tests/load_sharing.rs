//! balance-rr, balance-xor and broadcast end to end on the bridge testbed:
//! real AF_XDP sockets on veths in namespaces, frames counted where they
//! arrive on the switch side, real carrier loss. Needs root (runs in CI).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};
use xbond_testbed::*;

const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 2, 0];
/// The bond's MAC: the first member's (topo.sh gives m0 02:00:00:00:01:00).
const BOND_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0];
const PORT: u16 = 9000;

fn config(options: &str) -> String {
    bond_config(M0_M1, options, "")
}

fn warm_up(t: &Topo) -> anyhow::Result<()> {
    // Resolves the peer's MAC in the host stack before counting starts.
    run(&mut ns(
        &t.host,
        &["ping", "-c", "3", "-i", "0.1", "-W", "1", "198.18.0.2"],
    ))
    .map(drop)
}

/// Send `per_flow` datagrams on each of `flows` source ports, in rounds.
fn send_flows(t: &Topo, flows: &[u16], per_flow: u32) -> anyhow::Result<()> {
    let flows = flows.to_vec();
    in_ns(&t.host, move || -> anyhow::Result<()> {
        // Unconnected sockets: the peer answers with ICMP port unreachable
        // (nothing listens), which would fail later sends on a connected one.
        let socks = flows
            .iter()
            .map(|&p| Ok(UdpSocket::bind(SocketAddrV4::new(BOND_IP, p))?))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let to = SocketAddrV4::new(PEER_IP, PORT);
        for _ in 0..per_flow {
            for s in &socks {
                s.send_to(b"xbond-flow", to)?;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("sender panicked"))??
}

fn udp_to_peer(f: &[u8]) -> bool {
    f.len() >= 42
        && f[12..14] == [0x08, 0x00]
        && f[23] == 17
        && f[30..34] == PEER_IP.octets()
        && f[36..38] == PORT.to_be_bytes()
}

/// Source port -> the switch ports its frames arrived on.
fn placement(
    t: &Topo,
    run_traffic: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<BTreeMap<u16, Vec<usize>>> {
    let caps: Vec<_> = (0..2)
        .map(|i| {
            capture(
                &t.switch,
                &format!("s{i}"),
                Duration::from_secs(3),
                udp_to_peer,
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    run_traffic()?;
    let mut seen: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for (i, c) in caps.into_iter().enumerate() {
        let frames = c
            .join()
            .map_err(|_| anyhow::anyhow!("capture panicked"))???;
        for f in frames {
            let sport = u16::from_be_bytes([f[34], f[35]]);
            let v = seen.entry(sport).or_default();
            if !v.contains(&i) {
                v.push(i);
            }
        }
    }
    Ok(seen)
}

/// The kernel's layer3+4 formula for IPv4/UDP, written out here from
/// bonding.rst and bond_main.c and checked against one of the repository's
/// vectors below; it does not call xbond's hash code.
fn predict_layer34(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, members: u32) -> usize {
    // On a little-endian host the kernel reads the two big-endian ports and
    // the addresses as raw memory.
    let ports = u32::from(sport.swap_bytes()) | (u32::from(dport.swap_bytes()) << 16);
    let mut h = ports ^ u32::from_le_bytes(src.octets()) ^ u32::from_le_bytes(dst.octets());
    h ^= h >> 16;
    h ^= h >> 8;
    ((h >> 1) % members) as usize
}

/// layer2+3: (dst MAC[5] ^ src MAC[5] ^ EtherType) folded with the addresses.
fn predict_layer23(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    members: u32,
) -> usize {
    let eth = u32::from(dmac[5] ^ smac[5]) ^ 0x0800;
    let mut h = eth ^ u32::from_le_bytes(src.octets()) ^ u32::from_le_bytes(dst.octets());
    h ^= h >> 16;
    h ^= h >> 8;
    (h % members) as usize
}

#[test]
fn the_test_formula_agrees_with_the_vectors() {
    // dataplane/testdata/xmit_hash_vectors.txt, [layer34-ipv4-udp]:
    // 198.18.0.1:1234 > 198.18.0.2:80, hash 0x29a9c0c2 (even: member 0 of 2,
    // 0x29a9c0c2 % 3 = 2).
    let v = include_str!("../../dataplane/testdata/xmit_hash_vectors.txt");
    assert!(v.contains("[layer34-ipv4-udp]") && v.contains("hash = 0x29a9c0c2"));
    let (a, b) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
    assert_eq!(predict_layer34(a, b, 1234, 80, 2), 0);
    assert_eq!(
        predict_layer34(a, b, 1234, 80, 3),
        (0x29a9c0c2u32 % 3) as usize
    );
}

#[test]
fn balance_rr_spreads_tx_evenly_over_the_members() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("rr", 2)?;
    let d = Daemon::start(&t, &config("mode=balance-rr miimon=100"))?;
    warm_up(&t)?;
    let before = [t.switch_packets(0, "rx")?, t.switch_packets(1, "rx")?];
    let r = udp_stream(&t.host, &t.peer, PEER_IP, PORT, 5000, 10_000, |_| {})?;
    let after = [t.switch_packets(0, "rx")?, t.switch_packets(1, "rx")?];
    let (a, b) = (after[0] - before[0], after[1] - before[1]);
    let skew = (a as f64 - b as f64).abs() / (a + b) as f64;
    println!(
        "balance-rr: 10000 datagrams -> m0 {a} frames, m1 {b} frames (skew {:.3} %), peer received {} (lost {})",
        skew * 100.0,
        r.received,
        r.lost()
    );
    assert!(a + b >= 10_000, "the switch saw only {} frames", a + b);
    assert!(skew < 0.01, "TX not even: m0 {a}, m1 {b}");
    assert_eq!(r.lost(), 0, "frames lost through balance-rr");
    let status = d.status()?;
    assert_eq!(status["mode"], "balance-rr");
    let text = d.cli(&["status"])?;
    assert!(
        text.contains("Bonding Mode: load balancing (round-robin)"),
        "{text}"
    );
    Ok(())
}

#[test]
fn balance_xor_places_every_flow_where_the_kernel_formula_says() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("xor", 2)?;
    let d = Daemon::start(
        &t,
        &config("mode=balance-xor miimon=100 xmit_hash_policy=layer3+4"),
    )?;
    warm_up(&t)?;
    let flows: Vec<u16> = (40000..40024).collect();
    let seen = placement(&t, || send_flows(&t, &flows, 5))?;
    let mut on = [0usize; 2];
    for &sport in &flows {
        let want = predict_layer34(BOND_IP, PEER_IP, sport, PORT, 2);
        let got = seen.get(&sport).cloned().unwrap_or_default();
        assert_eq!(
            got,
            vec![want],
            "flow {sport}: predicted member {want}, seen on {got:?}"
        );
        on[want] += 1;
    }
    println!(
        "balance-xor layer3+4: 24 flows placed as predicted, {} on m0 and {} on m1",
        on[0], on[1]
    );
    assert!(on[0] > 0 && on[1] > 0, "the flows should use both members");

    // `xbond hash` tells the same story for one of them.
    let text = d.cli(&[
        "hash",
        "--src",
        "198.18.0.1",
        "--dst",
        "198.18.0.2",
        "--sport",
        "40000",
        "--dport",
        "9000",
    ])?;
    let want = format!("-> m{}", predict_layer34(BOND_IP, PEER_IP, 40000, PORT, 2));
    assert!(text.contains(&want), "{text}");

    // The policy changes live: with layer2+3 every flow to one peer takes
    // one member.
    d.cli(&["set", "bond0", "xmit_hash_policy", "layer2+3"])?;
    let seen = placement(&t, || send_flows(&t, &flows, 3))?;
    let want = predict_layer23(BOND_MAC, PEER_MAC, BOND_IP, PEER_IP, 2);
    for &sport in &flows {
        assert_eq!(
            seen.get(&sport).cloned().unwrap_or_default(),
            vec![want],
            "flow {sport} under layer2+3"
        );
    }
    let text = d.cli(&["status"])?;
    assert!(
        text.contains("Transmit Hash Policy: layer2+3 (2)"),
        "{text}"
    );
    Ok(())
}

#[test]
fn broadcast_sends_one_copy_out_of_every_member() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("bc", 2)?;
    let d = Daemon::start(&t, &config("mode=broadcast miimon=100"))?;
    warm_up(&t)?;
    // Counted by the switch's kernel, not by xbond.
    let before = [t.switch_packets(0, "rx")?, t.switch_packets(1, "rx")?];
    send_flows(&t, &[41000], 200)?;
    std::thread::sleep(Duration::from_millis(200));
    let after = [t.switch_packets(0, "rx")?, t.switch_packets(1, "rx")?];
    let got = [after[0] - before[0], after[1] - before[1]];
    println!(
        "broadcast: 200 datagrams, {} frames left m0 and {} left m1",
        got[0], got[1]
    );
    for (i, n) in got.iter().enumerate() {
        // 200 datagrams plus at most a few of the host's own ARP/ICMP frames.
        assert!(
            (200..=206).contains(n),
            "m{i} should carry one copy of each datagram, carried {n}\n{}",
            d.cli(&["stats"])?
        );
    }
    // The two switch ports' counters are read one after the other, so one
    // of the host's own frames (ARP, ND) may fall in one window only.
    assert!(
        got[0].abs_diff(got[1]) <= 2,
        "every frame leaves on every member: {got:?}"
    );
    Ok(())
}

#[test]
fn a_member_that_goes_down_is_left_out_and_returns_after_updelay() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("lsd", 2)?;
    let d = Daemon::start(&t, &config("mode=balance-rr miimon=100 updelay=300"))?;
    // Both members start going back; wait until both are up.
    d.wait_members_up(Duration::from_secs(5))?;
    warm_up(&t)?;

    t.switch_port(0, false)?;
    std::thread::sleep(Duration::from_millis(50));
    let m0_before = d.port_tx("m0")?;
    let r = udp_stream(&t.host, &t.peer, PEER_IP, PORT, 2000, 1000, |_| {})?;
    println!("m0 down: {} of 1000 arrived", r.received);
    assert_eq!(r.lost(), 0, "a down member must not get frames");
    assert_eq!(d.port_tx("m0")?, m0_before, "nothing sent on m0 while down");

    let up_at = Instant::now();
    t.switch_port(0, true)?;
    // During updelay m0 stays out.
    let m0_before = d.port_tx("m0")?;
    send_flows(&t, &[42000], 40)?;
    let mid = up_at.elapsed();
    if mid < Duration::from_millis(280) {
        assert_eq!(
            d.port_tx("m0")?,
            m0_before,
            "m0 used before its updelay ran out"
        );
    }
    let back = loop {
        let st = d.status()?;
        if st["members"][0]["mii_status"] == "up" {
            break up_at.elapsed();
        }
        anyhow::ensure!(
            up_at.elapsed() < Duration::from_secs(3),
            "m0 never came back"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    println!(
        "m0 back in service {} ms after carrier (updelay 300 ms)",
        back.as_millis()
    );
    assert!(
        back >= Duration::from_millis(290),
        "returned before updelay: {back:?}"
    );
    let m0_before = d.port_tx("m0")?;
    send_flows(&t, &[42001], 100)?;
    let used = d.port_tx("m0")? - m0_before;
    assert!(
        (45..=55).contains(&used),
        "m0 should carry half of 100 frames again, carried {used}"
    );
    Ok(())
}

/// The kernel's mode-1/mode-2-recovery-updelay.sh selftests: with both
/// members flapping so that none is up, the bond must bring the one waiting
/// out its updelay into service at once (bonding.rst 13.1), whatever the
/// updelay.
#[test]
fn recovery_does_not_wait_for_updelay_when_no_member_is_up() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("rcv", 2)?;
    for (mode, updelay) in [
        ("balance-xor", 0),
        ("balance-xor", 500),
        ("balance-xor", 5000),
        ("active-backup", 5000),
    ] {
        let mut d = Daemon::start(
            &t,
            &config(&format!("mode={mode} miimon=100 updelay={updelay}")),
        )?;
        // Past the start-up updelay of both members.
        d.wait_members_up(Duration::from_secs(8))?;
        warm_up(&t)?;
        t.switch_port(0, false)?;
        std::thread::sleep(Duration::from_millis(500));
        t.switch_port(0, true)?;
        t.switch_port(1, false)?;
        let flapped = Instant::now();
        let ok = run(&mut ns(
            &t.host,
            &["ping", "-c", "2", "-i", "0.2", "-W", "1", "198.18.0.2"],
        ))
        .is_ok();
        println!(
            "mode {mode} updelay {updelay}: ping after the flap {} ({} ms)",
            if ok { "ok" } else { "FAILED" },
            flapped.elapsed().as_millis()
        );
        assert!(
            ok,
            "mode {mode} updelay {updelay}: bond failed to recover\n{}",
            d.cli(&["status"])?
        );
        d.stop()?;
        t.switch_port(1, true)?;
    }
    Ok(())
}

/// `echo +IF / -IF > /sys/class/net/bond0/bonding/slaves`, the xbond way:
/// members join and leave a running balance-rr bond under traffic; the
/// scheduler follows at the next batch, nothing is lost, and the frames the
/// removed member's sockets held come back (repeated add/remove does not
/// drain the pool).
#[test]
fn members_join_and_leave_a_running_bond() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("dyn", 3)?;
    let d = Daemon::start(&t, &config("mode=balance-rr miimon=100"))?;
    warm_up(&t)?;
    println!("{}", d.cli(&["set", "bond0", "slaves", "+m2"])?);
    let before: Vec<u64> = (0..3)
        .map(|i| t.switch_packets(i, "rx"))
        .collect::<anyhow::Result<_>>()?;
    let r = udp_stream(&t.host, &t.peer, PEER_IP, PORT, 3000, 3000, |_| {})?;
    let after: Vec<u64> = (0..3)
        .map(|i| t.switch_packets(i, "rx"))
        .collect::<anyhow::Result<_>>()?;
    let got: Vec<u64> = (0..3).map(|i| after[i] - before[i]).collect();
    println!(
        "three members: {got:?} frames, {} of 3000 arrived",
        r.received
    );
    assert_eq!(r.lost(), 0);
    for g in &got {
        assert!((990..=1010).contains(g), "uneven after the add: {got:?}");
    }

    // Release m0 in the middle of a stream.
    let before0 = t.switch_packets(0, "rx")?;
    let dd = &d;
    let r = udp_stream(&t.host, &t.peer, PEER_IP, PORT, 2000, 2000, |start| {
        std::thread::sleep(
            (start + Duration::from_millis(400)).saturating_duration_since(Instant::now()),
        );
        let out = dd.cli(&["set", "bond0", "slaves", "-m0"]);
        println!("{out:?}");
    })?;
    let tail0 = t.switch_packets(0, "rx")?;
    println!(
        "m0 released mid-stream: {} of 2000 arrived, m0 carried {}",
        r.received,
        tail0 - before0
    );
    assert_eq!(r.lost(), 0, "frames lost while releasing a member");
    assert_eq!(d.member_names()?, vec!["m1", "m2"]);
    send_flows(&t, &[43000], 50)?;
    assert_eq!(
        t.switch_packets(0, "rx")?,
        tail0,
        "nothing leaves a released member"
    );

    // Add and release it a few times: the pool gets its frames back.
    for _ in 0..4 {
        d.cli(&["set", "bond0", "slaves", "+m0"])?;
        d.cli(&["set", "bond0", "slaves", "-m0"])?;
    }
    d.cli(&["set", "bond0", "slaves", "+m0"])?;
    let r = udp_stream(&t.host, &t.peer, PEER_IP, PORT, 3000, 3000, |_| {})?;
    assert_eq!(r.lost(), 0, "traffic after repeated add/remove");
    let stats: serde_json::Value = serde_json::from_str(&d.cli(&["stats", "--json"])?)?;
    for p in stats["ports"].as_array().into_iter().flatten() {
        assert_eq!(
            p["drops"]["no_free_frame"].as_u64().unwrap_or(0),
            0,
            "pool ran dry: {p}"
        );
    }
    let err = d
        .cli(&["set", "bond0", "slaves", "+nosuch0"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("nosuch0: no such interface"), "{err}");
    let err = d
        .cli(&["set", "bond0", "slaves", "m1"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected +IFNAME or -IFNAME"), "{err}");
    Ok(())
}

/// A configured member that does not exist at start is enslaved when it
/// appears.
#[test]
fn a_configured_member_is_enslaved_when_it_appears() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("late", 2)?;
    let d = Daemon::start(
        &t,
        r#"
[daemon]
run_dir = "RUN_DIR"
[bond.bond0]
members = ["m0", "m1", "m7"]
addresses = ["198.18.0.1/24"]
options = "mode=balance-rr miimon=100"
"#,
    )?;
    assert_eq!(d.status()?["missing_members"], serde_json::json!(["m7"]));
    run(std::process::Command::new("ip").args([
        "-n", &t.host, "link", "add", "m7", "type", "veth", "peer", "name", "s7", "netns",
        &t.switch,
    ]))?;
    run(std::process::Command::new("ip")
        .args(["-n", &t.switch, "link", "set", "s7", "master", "br0", "up"]))?;
    let t0 = Instant::now();
    loop {
        let st = d.status()?;
        let has = st["members"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["name"] == "m7" && m["mii_status"] == "up");
        if has {
            assert_eq!(st["missing_members"], serde_json::json!([]));
            break;
        }
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(5),
            "m7 was not enslaved: {st}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "m7 enslaved {} ms after it appeared",
        t0.elapsed().as_millis()
    );
    let before = t.switch_packets(7, "rx")?;
    send_flows(&t, &[44000], 60)?;
    let used = t.switch_packets(7, "rx")? - before;
    assert!(
        used >= 18,
        "m7 should carry a third of 60 frames, carried {used}"
    );

    // Deleting a member releases it; the others carry on without loss.
    run(std::process::Command::new("ip").args(["-n", &t.host, "link", "del", "m7"]))?;
    let t1 = Instant::now();
    while d.status()?["missing_members"] != serde_json::json!(["m7"]) {
        anyhow::ensure!(
            t1.elapsed() < Duration::from_secs(5),
            "m7 not released\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(d.member_names()?, vec!["m0", "m1"]);
    let r = udp_stream(&t.host, &t.peer, PEER_IP, PORT, 2000, 1000, |_| {})?;
    assert_eq!(r.lost(), 0, "traffic after a member was deleted");
    Ok(())
}
