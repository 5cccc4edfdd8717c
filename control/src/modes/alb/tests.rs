use super::*;

const BOND: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
const M1: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);
const M2: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xc]);
const HOST_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

fn peer(i: u8) -> (Ipv4Addr, MacAddr) {
    (
        Ipv4Addr::new(198, 18, 0, 10 + i),
        MacAddr([2, 0, 0, 0, 9, i]),
    )
}

fn alb(rlb: bool, members: &[MacAddr]) -> (Alb, Instant) {
    let t0 = Instant::now();
    let mut a = Alb::new(
        AlbConfig {
            rlb,
            dynamic: true,
            lp_interval: Duration::from_secs(1),
            rebalance_interval: Duration::from_secs(10),
        },
        BOND,
    );
    for (i, &m) in members.iter().enumerate() {
        a.add_member(t0, i as MemberId, m, 10_000, true).unwrap();
    }
    a.set_active(Some(0));
    // The first tick runs the rebalances that joining members ask for.
    let t1 = t0 + TICK;
    a.handle_tick(t1, &LoadTotals::default());
    while a.poll_frame().is_some() {}
    (a, t1)
}

fn reply_from_host(to: Ipv4Addr, to_mac: MacAddr) -> Vec<u8> {
    Repr {
        operation: Operation::Reply,
        sender_hw: BOND,
        sender_ip: HOST_IP,
        target_hw: to_mac,
        target_ip: to,
    }
    .frame(to_mac, BOND)
    .to_vec()
}

fn frames(a: &mut Alb) -> Vec<OutFrame> {
    std::iter::from_fn(|| a.poll_frame()).collect()
}

/// Ticks from `from` up to and including `until`, with no traffic.
fn run(a: &mut Alb, from: Instant, until: Duration, load: &LoadTotals) -> Vec<OutFrame> {
    let mut out = Vec::new();
    let mut t = from;
    while t <= from + until {
        a.handle_tick(t, load);
        out.extend(frames(a));
        t += TICK;
    }
    out
}

#[test]
fn members_keep_their_macs_and_the_active_one_carries_the_bonds() {
    let (mut a, _) = alb(true, &[BOND, M1, M2]);
    assert_eq!(a.macs(), vec![BOND, M1, M2]);
    // Failover to member 1: it takes the bond's MAC, member 0 takes M1.
    a.set_link(0, false);
    a.set_active(Some(1));
    assert_eq!(a.macs(), vec![M1, BOND, M2]);
    // Learning packets teach the switch the new place of the bond's MAC.
    let f = frames(&mut a);
    let lp: Vec<_> = f.iter().filter(|f| f.frame[12..14] == [0x90, 0]).collect();
    assert!(
        lp.iter()
            .any(|f| f.member == 1 && f.frame[..6] == BOND.0 && f.frame[6..12] == BOND.0),
        "{f:?}"
    );
    // The member without link got M1: the active member is taught it too.
    assert!(
        lp.iter().any(|f| f.member == 1 && f.frame[6..12] == M1.0),
        "{f:?}"
    );
    assert_eq!(lp[0].frame.len(), 60);
}

#[test]
fn a_clashing_mac_gets_a_free_permanent_one_as_the_kernel_gives() {
    let (mut a, t0) = alb(false, &[BOND]);
    // Same MAC as the bond: nobody's permanent MAC is free but its own.
    assert!(a.check_member(BOND).is_err());
    a.add_member(t0, 1, M1, 1000, true).unwrap();
    // A third with member 1's MAC: member 1's permanent MAC is in use, the
    // bond's is in use; none is free.
    assert!(a.check_member(M1).is_err());
    // After a swap, member 0's permanent MAC (the bond's) is carried by 1
    // and M1 by 0: a new member with M2 keeps it.
    a.set_active(Some(1));
    assert_eq!(a.check_member(M2), Ok(M2));
    // Removing member 0, whose permanent MAC member 1 has as the bond's:
    // nothing to swap back (the bond's MAC stays with the active member).
    a.remove_member(0);
    assert_eq!(a.mac(1), Some(BOND));
}

#[test]
fn peers_are_assigned_round_the_members_and_replies_carry_their_member() {
    let (mut a, _) = alb(true, &[BOND, M1]);
    let mut members = Vec::new();
    for i in 0..4 {
        let (ip, mac) = peer(i);
        let (m, out) = a.host_arp(0, &reply_from_host(ip, mac)).unwrap();
        members.push(m);
        let want_mac = a.mac(m).unwrap();
        // Byte for byte: Ethernet source and ARP sender are the member's
        // MAC (the active member's is the bond's), the rest unchanged.
        let mut want = reply_from_host(ip, mac);
        want[6..12].copy_from_slice(&want_mac.0);
        want[22..28].copy_from_slice(&want_mac.0);
        assert_eq!(out, want, "peer {i}");
    }
    assert_eq!(members, vec![0, 1, 0, 1]);
    assert_eq!(a.counters().arp_rewritten, 4);
    let c = a.clients();
    assert_eq!(c.len(), 4);
    assert_eq!(c[0].ip_dst, peer(3).0, "newest first");
    assert_eq!(c[0].member, Some(1));
    // The tables the workers read hold each peer exactly so.
    let t = a.tables();
    let slot = usize::from(lb::fold(&peer(1).0.octets()));
    assert_eq!(
        t.clients[slot],
        Some(Client {
            ip_src: HOST_IP.octets(),
            ip_dst: peer(1).0.octets(),
            mac_src: BOND,
            mac_dst: peer(1).1,
            member: 1,
        })
    );
    // The same peer again keeps its member.
    let (m, _) = a
        .host_arp(0, &reply_from_host(peer(1).0, peer(1).1))
        .unwrap();
    assert_eq!(m, 1);
}

#[test]
fn the_update_to_a_peer_is_two_arp_replies_with_its_members_mac() {
    let (mut a, t0) = alb(true, &[BOND, M1]);
    let (ip, mac) = peer(0);
    a.host_arp(0, &reply_from_host(ip, mac)).unwrap();
    a.host_arp(0, &reply_from_host(peer(1).0, peer(1).1))
        .unwrap();
    // A new peer whose MAC is known is told once at the next tick.
    let first = run(
        &mut a,
        t0 + TICK,
        Duration::from_secs(3),
        &LoadTotals::default(),
    );
    assert_eq!(
        first.iter().filter(|f| f.frame[12..14] == [8, 6]).count(),
        4
    );
    // Member 1 (peer 1's) fails: peer 1 moves to member 0 and is told,
    // two replies per round, four rounds 2 s apart.
    a.set_link(1, false);
    let t1 = t0 + Duration::from_secs(4);
    let out = run(&mut a, t1, Duration::from_secs(7), &LoadTotals::default());
    let arps: Vec<_> = out.iter().filter(|f| f.frame[12..14] == [8, 6]).collect();
    assert_eq!(arps.len(), 2 * (1 + UPDATE_RETRY as usize), "{arps:?}");
    let want = Repr {
        operation: Operation::Reply,
        sender_hw: BOND,
        sender_ip: HOST_IP,
        target_hw: peer(1).1,
        target_ip: peer(1).0,
    }
    .frame(peer(1).1, BOND);
    assert!(arps.iter().all(|f| f.member == 0 && f.frame == want));
    assert_eq!(
        a.clients()
            .iter()
            .find(|c| c.ip_dst == peer(1).0)
            .unwrap()
            .member,
        Some(0)
    );
    // Back up: at the next tick every peer is placed again in turn.
    a.set_link(1, true);
    let out = run(
        &mut a,
        t1 + Duration::from_secs(8),
        Duration::from_secs(3),
        &LoadTotals::default(),
    );
    assert_eq!(a.counters().rx_rebalances, 2, "one at start, one now");
    let members: Vec<_> = a.clients().iter().map(|c| c.member).collect();
    assert!(
        members.contains(&Some(0)) && members.contains(&Some(1)),
        "{members:?}"
    );
    assert!(out
        .iter()
        .any(|f| f.frame[12..14] == [8, 6] && f.member == 1));
}

#[test]
fn a_request_from_the_host_holds_updates_back_and_then_retells_the_subnet() {
    let (mut a, t0) = alb(true, &[BOND, M1]);
    a.host_arp(0, &reply_from_host(peer(0).0, peer(0).1))
        .unwrap();
    a.host_arp(0, &reply_from_host(peer(1).0, peer(1).1))
        .unwrap();
    let _ = run(&mut a, t0, Duration::from_secs(5), &LoadTotals::default());
    // A broadcast request carries the bond's MAC as sender: every peer of
    // the subnet learns it. It goes out on the target's member unchanged
    // but for the Ethernet source.
    let req = Repr::request_frame(BOND, HOST_IP, peer(2).0);
    let (m, out) = a.host_arp(0, &req).unwrap();
    assert_eq!(&out[22..28], &BOND.0, "a request's sender MAC stays");
    assert_eq!(&out[6..12], &a.mac(m).unwrap().0);
    // Peer 1 (on member 1, whose MAC is not the bond's) is told again, but
    // only after the 2 s delay.
    let t = t0 + Duration::from_secs(6);
    let early = run(
        &mut a,
        t,
        Duration::from_millis(1900),
        &LoadTotals::default(),
    );
    assert!(early.iter().all(|f| f.frame[12..14] != [8, 6]), "{early:?}");
    let late = run(
        &mut a,
        t + Duration::from_secs(2),
        Duration::from_millis(300),
        &LoadTotals::default(),
    );
    assert!(late
        .iter()
        .any(|f| f.frame[12..14] == [8, 6] && f.frame[38..42] == peer(1).0.octets()));
}

#[test]
fn received_arp_learns_a_peers_mac_and_purges_a_stolen_address() {
    let (mut a, _) = alb(true, &[BOND, M1]);
    // The host asked for peer 0: its MAC is not known yet.
    let req = Repr::request_frame(BOND, HOST_IP, peer(0).0);
    a.host_arp(0, &req).unwrap();
    assert_eq!(a.clients()[0].mac_dst, MacAddr::ZERO);
    // Its reply arrives on a member (tagged frames too).
    let answer = Repr {
        operation: Operation::Reply,
        sender_hw: peer(0).1,
        sender_ip: peer(0).0,
        target_hw: BOND,
        target_ip: HOST_IP,
    }
    .frame(BOND, peer(0).1);
    a.received_arp(&answer);
    assert_eq!(a.clients()[0].mac_dst, peer(0).1);
    // Another host claims the bond's address with its own MAC: entries
    // for that address are dropped, so no update ever carries it.
    let thief = Repr {
        operation: Operation::Request,
        sender_hw: MacAddr([2, 0, 0, 0, 6, 6]),
        sender_ip: HOST_IP,
        target_hw: MacAddr::ZERO,
        target_ip: peer(0).0,
    }
    .frame(MacAddr::BROADCAST, MacAddr([2, 0, 0, 0, 6, 6]));
    a.received_arp(&thief);
    assert!(a.clients().is_empty());
    // Malformed ARP changes nothing and does not panic.
    a.received_arp(&thief[..20]);
}

#[test]
fn a_new_peer_in_an_occupied_slot_moves_the_old_one_to_the_active_member() {
    let (mut a, _) = alb(true, &[BOND, M1]);
    // 198.18.0.11 and 198.18.1.10 fold to the same slot.
    let old = Ipv4Addr::new(198, 18, 0, 11);
    let new = Ipv4Addr::new(198, 18, 1, 10);
    assert_eq!(lb::fold(&old.octets()), lb::fold(&new.octets()));
    let (m_old, _) = a.host_arp(0, &reply_from_host(old, peer(1).1)).unwrap();
    let _ = a
        .host_arp(0, &reply_from_host(peer(5).0, peer(5).1))
        .unwrap();
    assert_eq!(m_old, 0);
    // Force the old peer onto member 1 by a second peer taking member 0.
    let (m, out) = {
        a.set_active(Some(1));
        let _ = frames(&mut a);
        a.host_arp(0, &reply_from_host(new, peer(2).1)).unwrap()
    };
    let _ = (m, out);
    let f = frames(&mut a);
    // The old peer was told the active member's MAC (now the bond's).
    assert!(
        f.iter()
            .any(|f| f.frame[38..42] == old.octets() && f.frame[22..28] == BOND.0),
        "{f:?}"
    );
    assert_eq!(a.clients().iter().filter(|c| c.ip_dst == old).count(), 0);
}

fn load_of(buckets: &[(u8, u64)], base: &LoadTotals) -> LoadTotals {
    let mut l = base.clone();
    for &(b, n) in buckets {
        l.bytes[usize::from(b)] += n;
    }
    l
}

#[test]
fn destinations_go_to_the_least_loaded_member_and_a_skewed_load_is_rebalanced() {
    let (mut a, t0) = alb(false, &[BOND, M1]);
    let mut t = t0 + TICK;
    // Four destinations start at the same rate: two per member.
    let mut load = load_of(
        &[(1, 1000), (2, 1000), (3, 1000), (4, 1000)],
        &LoadTotals::default(),
    );
    a.handle_tick(t, &load);
    let placed: Vec<_> = (1..=4).map(|b| a.tables().tx[b]).collect();
    assert_eq!(placed, vec![0, 1, 0, 1]);
    // Destination 1 turns heavy: 100 kB per tick against 1 kB.
    for _ in 0..97 {
        t += TICK;
        load = load_of(&[(1, 100_000), (2, 1000), (3, 1000), (4, 1000)], &load);
        a.handle_tick(t, &load);
    }
    assert_eq!(
        a.tables().tx[1],
        a.tables().tx[3],
        "still shared before the interval"
    );
    assert_eq!(a.counters().tx_rebalances, 1, "only the one at start");
    // At the interval (10 s) the heavy one gets a member to itself.
    for _ in 0..3 {
        t += TICK;
        load = load_of(&[(1, 100_000), (2, 1000), (3, 1000), (4, 1000)], &load);
        a.handle_tick(t, &load);
    }
    assert_eq!(a.counters().tx_rebalances, 2);
    let tx = a.tables().tx;
    let heavy = tx[1];
    assert_ne!(heavy, UNASSIGNED);
    for b in 2..=4 {
        assert_ne!(
            tx[b],
            heavy,
            "bucket {b} shares the heavy member: {:?}",
            &tx[1..=4]
        );
    }
    // Its history is its rate: ~1 MB/s.
    let h = a.tx_buckets().into_iter().find(|b| b.bucket == 1).unwrap();
    assert!((900_000..1_100_000).contains(&h.load), "{h:?}");
}

#[test]
fn a_failed_member_loses_its_destinations_and_a_new_one_is_balanced_at_once() {
    let (mut a, t0) = alb(false, &[BOND, M1]);
    let load = load_of(&[(1, 1000), (2, 1000)], &LoadTotals::default());
    a.handle_tick(t0 + TICK, &load);
    assert_eq!((a.tables().tx[1], a.tables().tx[2]), (0, 1));
    a.set_link(1, false);
    assert_eq!(
        a.tables().tx[2],
        UNASSIGNED,
        "the data path sends it on the active member"
    );
    // Traffic continues: it is placed on the member that is left.
    let load = load_of(&[(2, 1000)], &load);
    a.handle_tick(t0 + 2 * TICK, &load);
    assert_eq!(a.tables().tx[2], 0);
    // The member returns: the next tick rebalances everything that sent.
    a.set_link(1, true);
    let load = load_of(&[(1, 1000), (2, 1000)], &load);
    a.handle_tick(t0 + 3 * TICK, &load);
    let tx = a.tables().tx;
    assert_ne!(tx[1], tx[2], "spread over both again: {:?}", &tx[1..=2]);
}

#[test]
fn learning_packets_leave_every_lp_interval_untagged_and_per_vlan() {
    let (mut a, t0) = alb(false, &[BOND, M1]);
    a.set_vlans(vec![87]);
    let out = run(
        &mut a,
        t0 + TICK,
        Duration::from_millis(2950),
        &LoadTotals::default(),
    );
    // 3 s at 1 s intervals: 3 rounds x 2 members x (untagged + VLAN 87).
    assert_eq!(out.len(), 12, "{out:?}");
    assert!(out
        .iter()
        .any(|f| f.member == 1 && f.vid == 87 && f.frame[..6] == M1.0 && f.frame[6..12] == M1.0));
}
