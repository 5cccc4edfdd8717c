//! balance-tlb and balance-alb end to end: four peers behind a Linux
//! bridge, real AF_XDP sockets on the members, frames counted by the
//! switch's kernel, the peers' own ARP caches, real carrier loss. Needs
//! root (runs in CI).

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};
use xbond_testbed::*;

const PEERS: usize = 4;
/// m0's MAC (the bond's) and m1's, as topo.sh gives them.
const M0_MAC: &str = "02:00:00:00:01:00";
const M1_MAC: &str = "02:00:00:00:01:01";

fn start(tag: &str, options: &str) -> anyhow::Result<(Topo, Daemon)> {
    let t = Topo::with_peers(tag, 2, PEERS)?;
    let d = Daemon::start(&t, &bond_config(M0_M1, options, ""))?;
    d.wait_members_up(Duration::from_secs(5))?;
    Ok((t, d))
}

fn counts(t: &Topo, dir: &str) -> anyhow::Result<[u64; 2]> {
    Ok([t.switch_packets(0, dir)?, t.switch_packets(1, dir)?])
}

/// `pps` datagrams of `size` bytes per second for `dur` from namespace
/// `from_ns` to `to`, on a thread; returns how many were sent.
fn blast(
    from_ns: &str,
    to: Ipv4Addr,
    sport: u16,
    pps: u32,
    size: usize,
    dur: Duration,
) -> std::thread::JoinHandle<anyhow::Result<anyhow::Result<u64>>> {
    in_ns(from_ns, move || -> anyhow::Result<u64> {
        let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, sport))?;
        let payload = vec![0x5a; size];
        let gap = Duration::from_secs_f64(1.0 / f64::from(pps));
        let t0 = Instant::now();
        let mut n = 0u64;
        while t0.elapsed() < dur {
            let due = t0 + gap * n as u32;
            if let Some(w) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(w);
            }
            // Nothing listens: the peer's port unreachable does not matter
            // to an unconnected socket.
            let _ = s.send_to(&payload, SocketAddrV4::new(to, 9999));
            n += 1;
        }
        Ok(n)
    })
}

/// A source port per peer such that the host's flows to the peers fall in
/// different balance-tlb buckets under layer3+4 (the kernel's hash, low
/// byte), so the test does not depend on where hashes collide.
fn distinct_ports() -> Vec<u16> {
    use xbond_dataplane::hash::{xmit_hash, XmitHashPolicy};
    let mut used = Vec::new();
    let mut ports = Vec::new();
    let mut sport = 20_000u16;
    for i in 0..PEERS {
        loop {
            sport += 1;
            let mut f = vec![0u8; 60];
            f[12..14].copy_from_slice(&[8, 0]);
            f[14] = 0x45;
            f[23] = 17;
            f[26..30].copy_from_slice(&BOND_IP.octets());
            f[30..34].copy_from_slice(&Topo::peer_ip(i).octets());
            f[34..36].copy_from_slice(&sport.to_be_bytes());
            f[36..38].copy_from_slice(&9999u16.to_be_bytes());
            let bucket = xmit_hash(XmitHashPolicy::Layer34, &f, None) as u8;
            if !used.contains(&bucket) {
                used.push(bucket);
                ports.push(sport);
                break;
            }
        }
    }
    ports
}

fn join(h: std::thread::JoinHandle<anyhow::Result<anyhow::Result<u64>>>) -> anyhow::Result<u64> {
    h.join().map_err(|_| anyhow::anyhow!("sender panicked"))??
}

/// The MAC peer `i` has for the bond's address.
fn peer_arp(t: &Topo, i: usize) -> anyhow::Result<String> {
    let out = run(&mut ns(
        &t.peers[i],
        &["ip", "-j", "neigh", "show", &BOND_IP.to_string()],
    ))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(v[0]["lladdr"].as_str().unwrap_or("").to_string())
}

fn alb_view(d: &Daemon) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::from_str(&d.cli(&["alb", "--json"])?)?)
}

fn stats(d: &Daemon) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::from_str(&d.cli(&["stats", "--json"])?)?)
}

#[test]
fn tlb_spreads_what_it_sends_over_both_members_and_receives_on_the_active_one() -> anyhow::Result<()>
{
    if !require_root() {
        return Ok(());
    }
    let (t, d) = start(
        "tl",
        "mode=balance-tlb miimon=100 xmit_hash_policy=layer3+4 tlb_rebalance_interval=1",
    )?;
    for i in 0..PEERS {
        ping(&t.host, Topo::peer_ip(i), 2)?;
    }
    let before = counts(&t, "rx")?;
    let ports = distinct_ports();
    let senders: Vec<_> = (0..PEERS)
        .map(|i| {
            blast(
                &t.host,
                Topo::peer_ip(i),
                ports[i],
                500,
                200,
                Duration::from_secs(3),
            )
        })
        .collect();
    let sent: u64 = senders.into_iter().map(join).sum::<anyhow::Result<u64>>()?;
    let after = counts(&t, "rx")?;
    let per = [after[0] - before[0], after[1] - before[1]];
    eprintln!(
        "balance-tlb, {sent} datagrams to {PEERS} peers: the switch received {per:?} from m0, m1"
    );
    // Each member carries at least a quarter (one peer's worth less the
    // first tick on the active member).
    for (i, n) in per.iter().enumerate() {
        assert!(*n * 5 > sent, "m{i} carried {n} of {sent}");
    }
    // The peers know only the bond's MAC (tlb does not balance receiving),
    // and what they send comes in on the active member.
    for i in 0..PEERS {
        assert_eq!(peer_arp(&t, i)?, M0_MAC, "peer {i}");
    }
    let rx_before = counts(&t, "tx")?;
    for i in 0..PEERS {
        ping(&t.peers[i], BOND_IP, 3)?;
    }
    let rx_after = counts(&t, "tx")?;
    assert!(rx_after[0] - rx_before[0] >= (PEERS * 3) as u64);
    let v = alb_view(&d)?;
    assert!(
        v["tx"].as_array().is_some_and(|b| b.len() >= PEERS),
        "one bucket per peer: {v}"
    );
    assert!(stats(&d)?["alb"]["learning_packets"].as_u64() > Some(0));
    Ok(())
}

/// Peers ping the host: each gets its member's MAC in the host's ARP reply.
fn peers_resolve(t: &Topo) -> anyhow::Result<Vec<String>> {
    for i in 0..PEERS {
        ping(&t.peers[i], BOND_IP, 2)?;
    }
    (0..PEERS).map(|i| peer_arp(t, i)).collect()
}

#[test]
fn alb_gives_each_peer_its_members_mac_and_receives_on_both() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let (t, d) = start("ar", "mode=balance-alb miimon=100")?;
    let macs = peers_resolve(&t)?;
    eprintln!("balance-alb: the peers' ARP caches hold {macs:?} for the bond");
    assert_eq!(macs.iter().filter(|m| *m == M0_MAC).count(), 2, "{macs:?}");
    assert_eq!(macs.iter().filter(|m| *m == M1_MAC).count(), 2, "{macs:?}");
    // `xbond alb` lists each peer with the member whose MAC it was given.
    let v = alb_view(&d)?;
    for (i, mac) in macs.iter().enumerate() {
        let ip = Topo::peer_ip(i).to_string();
        let c = v["clients"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["peer_ip"] == ip.as_str()))
            .ok_or_else(|| anyhow::anyhow!("no client {ip}: {v}"))?;
        assert_eq!(c["member_mac"], mac.as_str(), "{c}");
        assert_eq!(c["peer_mac"], format!("02:00:00:00:02:0{i}").as_str());
    }
    // What the peers send arrives on both members, and reaches the host.
    let before = counts(&t, "tx")?;
    let rx = in_ns(&t.host, || -> anyhow::Result<u64> {
        let s = UdpSocket::bind(SocketAddrV4::new(BOND_IP, 9999))?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        let mut n = 0;
        let mut buf = [0u8; 512];
        while s.recv(&mut buf).is_ok() {
            n += 1;
        }
        Ok(n)
    });
    std::thread::sleep(Duration::from_millis(100));
    let senders: Vec<_> = (0..PEERS)
        .map(|i| {
            blast(
                &t.peers[i],
                BOND_IP,
                30_000,
                500,
                200,
                Duration::from_secs(2),
            )
        })
        .collect();
    let sent: u64 = senders.into_iter().map(join).sum::<anyhow::Result<u64>>()?;
    let got = rx
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))???;
    let after = counts(&t, "tx")?;
    let per = [after[0] - before[0], after[1] - before[1]];
    eprintln!("balance-alb: {sent} datagrams from {PEERS} peers, host received {got}; the switch sent {per:?} to m0, m1");
    for (i, n) in per.iter().enumerate() {
        assert!(*n * 3 > sent, "m{i} received {n} of {sent}");
    }
    assert!(got * 100 >= sent * 99, "host received {got} of {sent}");
    let s = stats(&d)?;
    assert!(
        s["alb"]["arp_replies_rewritten"].as_u64() >= Some(PEERS as u64),
        "{s}"
    );
    Ok(())
}

/// Take member `victim` down under a 1000 pps stream from every peer:
/// its peers are told another member's MAC (the ARP replies are captured
/// at one of them), and every stream goes on.
fn failover(tag: &str, victim: usize) -> anyhow::Result<()> {
    let (t, d) = start(tag, "mode=balance-alb miimon=100")?;
    let macs = peers_resolve(&t)?;
    let victim_mac = [M0_MAC, M1_MAC][victim];
    let moved: Vec<usize> = (0..PEERS).filter(|&i| macs[i] == victim_mac).collect();
    assert_eq!(moved.len(), 2, "{macs:?}");
    let pcap = d.run_dir.join("moved.pcap");
    let dump = Tcpdump::start(&t.peers[moved[0]], "p0", &pcap, &["arp"])?;
    let streams: Vec<_> = (0..PEERS)
        .map(|i| {
            let (from, to) = (t.peers[i].clone(), t.host.clone());
            std::thread::spawn(move || {
                udp_stream(&from, &to, BOND_IP, 9100 + i as u16, 1000, 4000, |_| {})
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let down_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    t.switch_port(victim, false)?;
    let mut reports = Vec::new();
    for s in streams {
        reports.push(s.join().map_err(|_| anyhow::anyhow!("stream panicked"))??);
    }
    let frames = dump.finish()?;
    // ARP replies telling the moved peer the surviving member's MAC
    // (whichever member has the bond's MAC now, that is the survivor).
    let survivor_mac = [[2, 0, 0, 0, 1, 0], [2, 0, 0, 0, 1, 1]][1 - victim];
    let updates: Vec<f64> = frames
        .iter()
        .filter(|(_, f)| f.len() >= 42 && f[12..14] == [8, 6] && f[20..22] == [0, 2])
        .filter(|(_, f)| f[22..28] == [2, 0, 0, 0, 1, 0] || f[22..28] == survivor_mac)
        .map(|(at, _)| at - down_at.as_secs_f64())
        .filter(|&dt| dt > 0.0)
        .collect();
    for (i, r) in reports.iter().enumerate() {
        eprintln!(
            "m{victim} down: peer {i} (on {}): lost {} of {}, longest gap {:?}",
            macs[i],
            r.lost(),
            r.sent,
            r.max_gap()
        );
    }
    eprintln!(
        "m{victim} down: {} ARP updates reached peer {}, the first {:.0} ms after the link went down",
        updates.len(),
        moved[0],
        updates.first().map_or(f64::NAN, |dt| dt * 1000.0)
    );
    assert!(!updates.is_empty(), "no ARP update reached the moved peer");
    let now_active = d.active()?.unwrap_or_default();
    assert_eq!(now_active, format!("m{}", 1 - victim));
    for (i, r) in reports.iter().enumerate() {
        // Every peer is on the survivor, which now carries the bond's MAC.
        assert_eq!(peer_arp(&t, i)?, M0_MAC, "peer {i}");
        // Traffic resumed: the last tenth of the stream arrived.
        assert!(
            r.arrivals.iter().any(|a| a.0 >= r.sent * 9 / 10),
            "peer {i}: {r:?}"
        );
        assert!(r.lost() < 500, "peer {i} lost {} of {}", r.lost(), r.sent);
    }
    let v = alb_view(&d)?;
    let members: Vec<_> = v["clients"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["member"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(members.iter().all(|m| *m == now_active), "{v}");
    Ok(())
}

#[test]
fn alb_moves_the_peers_of_a_failed_member_and_traffic_resumes() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    failover("af", 1)
}

#[test]
fn alb_active_member_failure_moves_the_bond_mac_and_every_peer() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    failover("aa", 0)
}

#[test]
fn a_skewed_load_is_rebalanced_at_the_next_interval() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let (t, d) = start(
        "rb",
        "mode=balance-tlb miimon=100 xmit_hash_policy=layer3+4 tlb_rebalance_interval=2",
    )?;
    for i in 0..PEERS {
        ping(&t.host, Topo::peer_ip(i), 2)?;
    }
    let ports = distinct_ports();
    let dur = Duration::from_secs(7);
    let mut senders: Vec<_> = (1..PEERS)
        .map(|i| blast(&t.host, Topo::peer_ip(i), ports[i], 200, 100, dur))
        .collect();
    // Peer 0 turns heavy: 100 times the bytes of each other.
    senders.push(blast(&t.host, Topo::peer_ip(0), ports[0], 2000, 1000, dur));
    let rebalances_before = stats(&d)?["alb"]["tx_rebalances"].as_u64().unwrap_or(0);
    std::thread::sleep(Duration::from_millis(4500));
    let v = alb_view(&d)?;
    let rebalances = stats(&d)?["alb"]["tx_rebalances"].as_u64().unwrap_or(0);
    for s in senders {
        join(s)?;
    }
    let tx = v["tx"].as_array().cloned().unwrap_or_default();
    let active: Vec<_> = tx
        .iter()
        .filter(|b| b["bytes"].as_u64() > Some(0) || b["load"].as_u64() > Some(1))
        .collect();
    let heavy = active
        .iter()
        .max_by_key(|b| b["load"].as_u64())
        .ok_or_else(|| anyhow::anyhow!("no transmit bucket: {v}"))?;
    eprintln!(
        "after {} rebalances: heavy bucket {} on {} ({} B/s); the others {:?}",
        rebalances - rebalances_before,
        heavy["bucket"],
        heavy["member"],
        heavy["load"],
        active
            .iter()
            .filter(|b| b["bucket"] != heavy["bucket"])
            .map(|b| (b["bucket"].clone(), b["member"].clone(), b["load"].clone()))
            .collect::<Vec<_>>()
    );
    assert!(rebalances - rebalances_before >= 1, "no rebalance in 4.5 s");
    assert!(active.len() >= PEERS, "{v}");
    for b in &active {
        if b["bucket"] != heavy["bucket"] {
            assert_ne!(b["member"], heavy["member"], "shares the heavy member: {v}");
        }
    }
    Ok(())
}
