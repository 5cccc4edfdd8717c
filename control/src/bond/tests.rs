//! BondCore driven on virtual time: failover, LACP, ARP monitoring, runtime options.

use super::fixtures::{info, opts};
use super::*;
use crate::config::options::XmitHashPolicy;
use std::net::IpAddr;
use xbond_dataplane::wire::arp;

fn drain(b: &mut BondCore) -> Vec<Action> {
    std::iter::from_fn(|| b.poll_action()).collect()
}

#[test]
fn alb_failover_moves_the_bond_mac_in_the_snapshot_and_reads_like_the_kernel() {
    let t0 = Instant::now();
    let bond = MacAddr([2, 0, 0, 0, 0, 1]);
    let mut b = BondCore::new("bond0", "bond0", opts("mode=balance-alb miimon=100"), bond);
    let m0 = b.add_member(t0, info("m0", 1), true);
    let m1 = b.add_member(t0, info("m1", 2), true);
    let s = b.snapshot();
    assert_eq!(
        (s.mode, s.active, s.bond_mac),
        (BondMode::BalanceAlb, Some(m0), bond)
    );
    assert_eq!(s.macs, vec![bond, MacAddr([2, 0, 0, 0, 0, 2])]);
    assert!(s.copy_probes, "received ARP reaches the client table");
    drain(&mut b);
    b.handle_carrier(t0, m0, false);
    let s = b.snapshot();
    assert_eq!(s.active, Some(m1));
    assert_eq!(s.macs, vec![MacAddr([2, 0, 0, 0, 0, 2]), bond], "swapped");
    // No gratuitous ARP in alb: learning packets with the bond's MAC
    // out of the new active member instead.
    let acts = drain(&mut b);
    assert!(!acts.iter().any(|a| matches!(a, Action::NotifyPeers { .. })));
    assert!(acts.iter().any(|a| matches!(a,
        Action::SendFrame { member, frame } if *member == m1 && frame[..12] == [bond.0, bond.0].concat()[..])));
    let proc = b.status(t0).to_proc();
    for line in [
        "Bonding Mode: adaptive load balancing",
        "Primary Slave: None",
        "Currently Active Slave: m1",
    ] {
        assert!(proc.contains(line), "{line}\n{proc}");
    }
    assert!(b.status(t0).members.iter().all(|m| m.state == "active"));
    assert!(b.alb_view().is_some());
}

#[test]
fn failover_publishes_and_notifies_peers_num_grat_arp_times() {
    let t0 = Instant::now();
    let mut b = BondCore::new(
        "bond0",
        "bond0",
        opts("mode=1 miimon=100 num_grat_arp=3 peer_notif_delay=200"),
        MacAddr([2, 0, 0, 0, 0, 1]),
    );
    let m0 = b.add_member(t0, info("m0", 1), true);
    let m1 = b.add_member(t0, info("m1", 2), true);
    assert_eq!(b.active(), Some(m0));
    drain(&mut b);
    b.handle_carrier(t0, m0, false);
    assert_eq!(b.active(), Some(m1), "carrier loss fails over at once");
    assert_eq!(
        drain(&mut b),
        vec![
            Action::Publish,
            // resend_igmp=1, the default: one round of reports.
            Action::RejoinGroups { member: m1 },
            Action::NotifyPeers { member: m1 }
        ]
    );
    assert_eq!(b.next_deadline(), Some(t0 + ms(200)));
    b.handle_timeout(t0 + ms(200));
    b.handle_timeout(t0 + ms(400));
    assert_eq!(
        drain(&mut b),
        vec![
            Action::NotifyPeers { member: m1 },
            Action::NotifyPeers { member: m1 }
        ]
    );
    b.handle_timeout(t0 + ms(600));
    assert!(
        drain(&mut b).is_empty(),
        "exactly num_grat_arp notifications"
    );
    assert_eq!(b.status(t0).members[0].link_failure_count, 1);
    assert_eq!(b.snapshot().active, Some(m1));
}

#[test]
fn a_new_active_member_rejoins_the_groups_resend_igmp_times_200_ms_apart() {
    let t0 = Instant::now();
    let mut b = BondCore::new(
        "bond0",
        "bond0",
        opts("mode=1 miimon=100 resend_igmp=3 num_grat_arp=0"),
        MacAddr([2, 0, 0, 0, 0, 1]),
    );
    let m0 = b.add_member(t0, info("m0", 1), true);
    let m1 = b.add_member(t0, info("m1", 2), true);
    assert!(drain(&mut b).contains(&Action::RejoinGroups { member: m0 }));
    b.handle_carrier(t0, m0, false);
    let rejoins = |acts: Vec<Action>| {
        acts.into_iter()
            .filter(|a| matches!(a, Action::RejoinGroups { .. }))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rejoins(drain(&mut b)),
        [Action::RejoinGroups { member: m1 }]
    );
    for t in [200, 400] {
        assert_eq!(b.next_deadline(), Some(t0 + ms(t)));
        b.handle_timeout(t0 + ms(t));
        assert_eq!(
            rejoins(drain(&mut b)),
            [Action::RejoinGroups { member: m1 }],
            "at {t} ms"
        );
    }
    b.handle_timeout(t0 + ms(600));
    assert!(
        rejoins(drain(&mut b)).is_empty(),
        "exactly resend_igmp rounds"
    );

    // Not in modes without an active member, nor with resend_igmp=0.
    for o in [
        "mode=balance-xor miimon=100",
        "mode=1 miimon=100 resend_igmp=0",
    ] {
        let mut b = BondCore::new("bond0", "bond0", opts(o), MacAddr([2, 0, 0, 0, 0, 1]));
        let m0 = b.add_member(t0, info("m0", 1), true);
        b.add_member(t0, info("m1", 2), true);
        b.handle_carrier(t0, m0, false);
        b.handle_timeout(t0 + ms(200));
        assert!(rejoins(drain(&mut b)).is_empty(), "{o}");
    }
}

/// The kernel's selftest option_prio.sh (bond_options.sh prio_test), with
/// carrier for `ip link set vethN down/up`: veth0 prio 0, veth1 prio 10 and
/// primary, veth2 prio 11, in modes 1, 5 and 6 and each primary_reselect.
#[test]
fn member_prio_as_the_kernels_prio_selftest() {
    for mode in ["active-backup", "balance-tlb", "balance-alb"] {
        for reselect in ["always", "better", "failure"] {
            let at = format!("mode={mode} primary_reselect={reselect}");
            let t0 = Instant::now();
            let mut b = BondCore::new(
                "bond0",
                "bond0",
                opts(&format!(
                    "mode={mode} miimon=100 primary=veth1 primary_reselect={reselect}"
                )),
                MacAddr([2, 0, 0, 0, 0, 1]),
            );
            b.set_member_priorities(t0, vec![("veth1".into(), 10), ("veth2".into(), 11)]);
            let v: Vec<MemberId> = (0..3)
                .map(|i| b.add_member(t0, info(&format!("veth{i}"), i + 1), true))
                .collect();
            let active = |b: &BondCore| b.active().map(|a| format!("veth{a}"));
            assert_eq!(active(&b).as_deref(), Some("veth1"), "{at}: the primary");
            b.handle_carrier(t0, v[1], false);
            assert_eq!(
                active(&b).as_deref(),
                Some("veth2"),
                "{at}: the higher prio"
            );
            b.handle_carrier(t0, v[2], false);
            assert_eq!(
                active(&b).as_deref(),
                Some("veth0"),
                "{at}: the only one up"
            );
            b.handle_carrier(t0, v[2], true);
            let want = if reselect == "always" {
                "veth2"
            } else {
                "veth0"
            };
            assert_eq!(
                active(&b).as_deref(),
                Some(want),
                "{at}: a higher prio comes up"
            );
            let pre = active(&b);
            b.handle_carrier(t0, v[1], true);
            match reselect {
                "always" => assert_eq!(active(&b).as_deref(), Some("veth1"), "{at}"),
                "better" => assert_eq!(active(&b), pre, "{at}"),
                _ => {
                    assert_eq!(active(&b), pre, "{at}");
                    let id = b.active().unwrap();
                    b.handle_carrier(t0, id, false);
                    assert_eq!(active(&b).as_deref(), Some("veth1"), "{at}");
                }
            }
            if reselect == "always" {
                for (m, p) in [("veth0", "1000000"), ("veth1", "0"), ("veth2", "-50")] {
                    b.set_option(t0, "prio", &format!("{m}={p}")).unwrap();
                }
                assert_eq!(b.status(t0).members[0].prio, 1_000_000);
                assert_eq!(
                    active(&b).as_deref(),
                    Some("veth1"),
                    "{at}: the primary is up"
                );
                b.handle_carrier(t0, v[1], false);
                assert_eq!(active(&b).as_deref(), Some("veth0"), "{at}: prio 1000000");
            }
        }
    }
}

#[test]
fn equal_prios_never_take_over_and_prio_is_refused_where_it_means_nothing() {
    let t0 = Instant::now();
    let mut b = BondCore::new(
        "bond0",
        "bond0",
        opts("mode=1 miimon=100"),
        MacAddr([2, 0, 0, 0, 0, 1]),
    );
    let m0 = b.add_member(t0, info("m0", 1), true);
    let m1 = b.add_member(t0, info("m1", 2), true);
    b.handle_carrier(t0, m0, false);
    b.handle_carrier(t0, m0, true);
    assert_eq!(
        b.active(),
        Some(m1),
        "no primary, equal prio: the active one stays"
    );
    b.set_option(t0, "prio", "m0=5").unwrap();
    assert_eq!(
        b.active(),
        Some(m0),
        "a higher prio takes over when it is set"
    );
    assert!(b
        .set_option(t0, "prio", "m0=x")
        .unwrap_err()
        .contains("expected MEMBER=PRIORITY"));
    assert!(b
        .set_option(t0, "prio", "eth9=1")
        .unwrap_err()
        .contains("eth9 is not a member"));
    let mut x = BondCore::new(
        "bond0",
        "bond0",
        opts("mode=balance-xor miimon=100"),
        MacAddr([2, 0, 0, 0, 0, 1]),
    );
    x.add_member(t0, info("m0", 1), true);
    assert!(x
        .set_option(t0, "prio", "m0=1")
        .unwrap_err()
        .contains("active-backup, balance-tlb or balance-alb"));
    let _ = m1;
}

#[test]
fn primary_returns_after_updelay() {
    let t0 = Instant::now();
    let mut b = BondCore::new(
        "bond0",
        "bond0",
        opts("mode=1 miimon=100 updelay=200 primary=m0"),
        MacAddr([2, 0, 0, 0, 0, 1]),
    );
    let m0 = b.add_member(t0, info("m0", 1), true);
    let m1 = b.add_member(t0, info("m1", 2), true);
    // Both start going back; the soonest is promoted so the bond is up.
    assert_eq!(b.active(), Some(m0));
    b.handle_timeout(t0 + ms(200));
    b.handle_carrier(t0 + ms(300), m0, false);
    assert_eq!(b.active(), Some(m1));
    b.handle_carrier(t0 + ms(400), m0, true);
    assert_eq!(b.active(), Some(m1), "primary waits out its updelay");
    assert_eq!(b.status(t0).members[0].mii_status, "going back");
    b.handle_timeout(t0 + ms(599));
    assert_eq!(b.active(), Some(m1));
    b.handle_timeout(t0 + ms(600));
    assert_eq!(
        b.active(),
        Some(m0),
        "primary_reselect=always takes it back"
    );
}

#[test]
fn primary_reselect_failure_keeps_the_backup() {
    let t0 = Instant::now();
    let mut b = BondCore::new(
        "bond0",
        "bond0",
        opts("mode=1 primary=m0 primary_reselect=failure"),
        MacAddr::ZERO,
    );
    let m0 = b.add_member(t0, info("m0", 1), true);
    let m1 = b.add_member(t0, info("m1", 2), true);
    b.handle_carrier(t0, m0, false);
    b.handle_carrier(t0, m0, true);
    assert_eq!(b.active(), Some(m1));
    b.handle_carrier(t0, m1, false);
    assert_eq!(b.active(), Some(m0));
}

#[test]
fn fail_over_mac_active_moves_the_bond_mac() {
    let t0 = Instant::now();
    let mut b = BondCore::new(
        "bond0",
        "bond0",
        opts("mode=1 fail_over_mac=active"),
        MacAddr([2, 0, 0, 0, 0, 1]),
    );
    let m0 = b.add_member(t0, info("m0", 1), true);
    b.add_member(t0, info("m1", 2), true);
    drain(&mut b);
    b.handle_carrier(t0, m0, false);
    let acts = drain(&mut b);
    assert_eq!(acts[0], Action::SetBondMac(MacAddr([2, 0, 0, 0, 0, 2])));
    assert_eq!(b.bond_mac(), MacAddr([2, 0, 0, 0, 0, 2]));
}

#[test]
fn load_sharing_publishes_every_change_of_the_usable_set() {
    let t0 = Instant::now();
    let mut b = BondCore::new(
        "bond0",
        "bond0",
        opts("mode=balance-xor miimon=100 updelay=200 xmit_hash_policy=layer3+4"),
        MacAddr::ZERO,
    );
    let m0 = b.add_member(t0, info("m0", 1), true);
    let m1 = b.add_member(t0, info("m1", 2), true);
    b.handle_timeout(t0 + ms(200));
    let s = b.snapshot();
    assert_eq!(
        (s.mode, s.hash_policy),
        (BondMode::BalanceXor, XmitHashPolicy::Layer34)
    );
    assert_eq!(s.usable, vec![m0, m1]);
    drain(&mut b);
    b.handle_carrier(t0 + ms(300), m0, false);
    assert_eq!(
        drain(&mut b),
        vec![Action::Publish],
        "no GARP outside active-backup"
    );
    assert_eq!(b.snapshot().usable, vec![m1]);
    b.handle_carrier(t0 + ms(400), m0, true);
    assert!(drain(&mut b).is_empty(), "nothing changes during updelay");
    b.handle_timeout(t0 + ms(600));
    assert_eq!(drain(&mut b), vec![Action::Publish]);
    assert_eq!(
        b.snapshot().usable,
        vec![m0, m1],
        "back in the kernel's order"
    );
    assert!(b.status(t0).members.iter().all(|m| m.state == "active"));
}

#[test]
fn members_come_and_go_at_runtime() {
    let t0 = Instant::now();
    let mut b = BondCore::new("bond0", "bond0", opts("mode=balance-rr"), MacAddr::ZERO);
    let m0 = b.add_member(t0, info("m0", 1), true);
    let m1 = b.add_member(t0, info("m1", 2), true);
    assert_eq!(b.next_member_id(), 2);
    drain(&mut b);
    let gone = b.remove_member(t0, m0).unwrap();
    assert_eq!(gone.name, "m0");
    assert_eq!(drain(&mut b), vec![Action::Publish]);
    let s = b.snapshot();
    assert_eq!(s.members.iter().map(|m| m.id).collect::<Vec<_>>(), vec![m1]);
    assert_eq!(s.active, Some(m1), "a new current member");
    assert!(b.remove_member(t0, m0).is_none(), "released once");
    let m2 = b.add_member(t0, info("m2", 3), true);
    assert_eq!(m2, 2, "ids are not reused");
    assert_eq!(b.snapshot().usable, vec![m1, m2]);
    assert_eq!(b.status(t0).members.len(), 2);
}

#[test]
fn hash_policy_and_packets_per_slave_change_live() {
    let t0 = Instant::now();
    let mut b = BondCore::new("bond0", "bond0", opts("mode=balance-xor"), MacAddr::ZERO);
    b.add_member(t0, info("m0", 1), true);
    drain(&mut b);
    b.set_option(t0, "xmit_hash_policy", "encap3+4").unwrap();
    assert_eq!(drain(&mut b), vec![Action::Publish]);
    assert_eq!(b.snapshot().hash_policy, XmitHashPolicy::Encap34);
    assert!(b
        .set_option(t0, "packets_per_slave", "4")
        .unwrap_err()
        .contains("packets_per_slave"));
    let mut rr = BondCore::new("bond0", "bond0", opts("mode=balance-rr"), MacAddr::ZERO);
    rr.add_member(t0, info("m0", 1), true);
    rr.set_option(t0, "packets_per_slave", "4").unwrap();
    assert_eq!(rr.snapshot().packets_per_slave, 4);
    assert_eq!(rr.snapshot().mode, BondMode::BalanceRr);
}

#[test]
fn runtime_options() {
    let t0 = Instant::now();
    let mut b = BondCore::new("bond0", "bond0", opts("mode=1"), MacAddr::ZERO);
    let m0 = b.add_member(t0, info("m0", 1), true);
    let m1 = b.add_member(t0, info("m1", 2), false);
    assert!(b
        .set_option(t0, "active_slave", "m1")
        .unwrap_err()
        .contains("down"));
    b.handle_carrier(t0, m1, true);
    b.set_option(t0, "active_slave", "m1").unwrap();
    assert_eq!(b.active(), Some(m1));
    b.set_option(t0, "primary", "m0").unwrap();
    assert_eq!(b.active(), Some(m0));
    assert!(b
        .set_option(t0, "mode", "0")
        .unwrap_err()
        .contains("cannot be changed"));
    assert!(b
        .set_option(t0, "miimon", "x")
        .unwrap_err()
        .contains("miimon"));
    assert!(b
        .set_option(t0, "updelay", "250")
        .unwrap()
        .contains("rounded to 200"));
    assert_eq!(b.options().updelay, 200);
    assert!(b.set_option(t0, "nonsense", "1").is_err());
}

/// Two 802.3ad bonds wired member to member through their actions.
fn exchange(a: &mut BondCore, b: &mut BondCore, now: Instant) -> (Vec<Action>, Vec<Action>) {
    let (mut other_a, mut other_b) = (Vec::new(), Vec::new());
    fn pass(from: &mut BondCore, to: &mut BondCore, other: &mut Vec<Action>, now: Instant) -> bool {
        let mut moved = false;
        while let Some(act) = from.poll_action() {
            match act {
                Action::SendFrame { member, frame } => {
                    moved = true;
                    to.handle_slow_frame(now, member, &frame);
                }
                o => other.push(o),
            }
        }
        moved
    }
    for _ in 0..100 {
        let ab = pass(a, b, &mut other_a, now);
        let ba = pass(b, a, &mut other_b, now);
        if !ab && !ba {
            break;
        }
    }
    (other_a, other_b)
}

#[test]
fn lacp_bond_publishes_the_distributing_members_and_reads_like_the_kernel() {
    let t0 = Instant::now();
    let o = opts("mode=802.3ad miimon=100 lacp_rate=fast xmit_hash_policy=layer3+4 min_links=1");
    let mut a = BondCore::new("bond0", "bond0", o.clone(), MacAddr([2, 0, 0, 0, 0, 0xa]));
    let mut b = BondCore::new("sw", "sw", o, MacAddr([2, 0, 0, 0, 0, 0xb]));
    for (bond, base) in [(&mut a, 1u32), (&mut b, 11)] {
        bond.add_member(t0, info(&format!("m{}", base), base), true);
        bond.add_member(t0, info(&format!("m{}", base + 1), base + 1), true);
    }
    let mut now = t0;
    let mut carrier = Vec::new();
    while now < t0 + Duration::from_secs(4) {
        let (oa, _) = exchange(&mut a, &mut b, now);
        carrier.extend(oa.into_iter().filter(|x| matches!(x, Action::Carrier(_))));
        now += Duration::from_millis(100);
        a.handle_timeout(now);
        b.handle_timeout(now);
    }
    assert_eq!(carrier, vec![Action::Carrier(true)]);
    let s = a.snapshot();
    assert_eq!(
        (s.mode, s.hash_policy),
        (BondMode::Ieee8023ad, XmitHashPolicy::Layer34)
    );
    assert_eq!(s.usable, vec![0, 1]);
    assert_eq!(s.collecting, vec![0, 1]);
    insta::assert_snapshot!(a.status(t0).to_proc());
    // Carrier loss: out of the snapshot at once.
    a.handle_carrier(now, 1, false);
    assert_eq!(a.snapshot().usable, vec![0]);
    assert_eq!(a.snapshot().collecting, vec![0]);
    assert_eq!(a.status(t0).members[1].state, "backup");
}

#[test]
fn lacp_fallback_runs_active_backup_until_a_partner_speaks() {
    let t0 = Instant::now();
    let o =
        opts("mode=802.3ad lacp_rate=fast lacp_fallback=active-backup lacp_fallback_timeout=2000");
    let mut a = BondCore::new("bond0", "bond0", o, MacAddr([2, 0, 0, 0, 0, 0xa]));
    let m0 = a.add_member(t0, info("m0", 1), true);
    a.add_member(t0, info("m1", 2), true);
    drain(&mut a);
    a.handle_timeout(t0 + Duration::from_millis(2000));
    let acts = drain(&mut a);
    assert!(
        acts.contains(&Action::NotifyPeers { member: m0 }),
        "{acts:?}"
    );
    let s = a.snapshot();
    assert_eq!((s.mode, s.active), (BondMode::ActiveBackup, Some(m0)));
    // A partner's LACPDU on m1: LACP again.
    let mut partner = BondCore::new(
        "sw",
        "sw",
        opts("mode=802.3ad lacp_rate=fast"),
        MacAddr([2, 0, 0, 0, 0, 0xb]),
    );
    partner.add_member(t0, info("p0", 11), true);
    partner.add_member(t0, info("p1", 12), true);
    exchange(&mut partner, &mut a, t0 + Duration::from_millis(2100));
    assert_eq!(a.snapshot().mode, BondMode::Ieee8023ad);
    assert!(!a.status(t0).ad.unwrap().fallback);
}

/// An ARP reply from 198.18.0.2 to the bond, as a member receives it.
fn arp_reply(bond_mac: MacAddr) -> Vec<u8> {
    let mut f = arp::Repr::request_frame(
        MacAddr([2, 0, 0, 0, 2, 0]),
        "198.18.0.2".parse().unwrap(),
        "198.18.0.1".parse().unwrap(),
    );
    f[..6].copy_from_slice(&bond_mac.0);
    f[20..22].copy_from_slice(&[0, 2]);
    f.to_vec()
}

/// Run an ARP-monitored bond for `ticks` intervals of 100 ms; members
/// in `answering` get a reply to each of their probes, and the other
/// answering members the request, flooded by the switch.
fn arp_ticks(
    b: &mut BondCore,
    now: &mut Instant,
    ticks: u32,
    answering: &[MemberId],
) -> Vec<Action> {
    let mut out = Vec::new();
    for _ in 0..ticks {
        b.handle_timeout(*now);
        for a in drain(b) {
            if let Action::Probe { member } = a {
                if answering.contains(&member) {
                    let f = arp_reply(b.bond_mac());
                    b.handle_probe_frame(*now + ms(1), member, &f);
                    let req = arp::Repr::request_frame(
                        b.bond_mac(),
                        "198.18.0.1".parse().unwrap(),
                        "198.18.0.2".parse().unwrap(),
                    );
                    for &o in answering.iter().filter(|&&o| o != member) {
                        b.handle_probe_frame(*now + ms(1), o, &req);
                    }
                }
            }
            out.push(a);
        }
        *now += ms(100);
    }
    out
}

#[test]
fn arp_monitor_takes_a_silent_active_member_out_and_notifies_peers() {
    let t0 = Instant::now();
    let mac = MacAddr([2, 0, 0, 0, 0, 1]);
    let o = opts("mode=1 arp_interval=100 arp_ip_target=198.18.0.2 arp_validate=all");
    let mut b = BondCore::new("bond0", "bond0", o, mac);
    b.set_own_addresses(vec!["198.18.0.1".parse().unwrap()]);
    let m0 = b.add_member(t0, info("m0", 1), true);
    let m1 = b.add_member(t0, info("m1", 2), true);
    assert!(b.snapshot().copy_probes, "workers copy ARP to control");
    let mut now = t0;
    let acts = arp_ticks(&mut b, &mut now, 10, &[m0, m1]);
    assert!(acts.contains(&Action::Probe { member: m0 }));
    assert!(
        !acts.contains(&Action::Probe { member: m1 }),
        "backups are not probed"
    );
    assert_eq!(b.active(), Some(m0));
    let acts = arp_ticks(&mut b, &mut now, 5, &[m1]);
    assert_eq!(b.active(), Some(m1), "{acts:?}");
    assert!(acts.contains(&Action::NotifyPeers { member: m1 }));
    let st = b.status(now);
    assert_eq!(st.members[0].mii_status, "down");
    assert_eq!(st.members[0].link_failure_count, 1);
    let arp = st.members[0].arp.as_ref().unwrap();
    assert_eq!(arp.valid_replies, 10);
    assert!(arp.last_valid_rx_ms_ago.unwrap() >= 400);
    assert!(st.to_proc().contains("ARP Polling Interval (ms): 100\nARP Missed Max: 2\nARP IP target/s (n.n.n.n form): 198.18.0.2\n"));
}

#[test]
fn link_watch_policy_all_acts_on_carrier_at_once_and_any_needs_both_to_fail() {
    let t0 = Instant::now();
    let mac = MacAddr([2, 0, 0, 0, 0, 1]);
    let o =
        opts("mode=1 miimon=100 arp_interval=100 arp_ip_target=198.18.0.2 link_watch_policy=all");
    let mut b = BondCore::new("bond0", "bond0", o, mac);
    b.set_own_addresses(vec!["198.18.0.1".parse().unwrap()]);
    let m0 = b.add_member(t0, info("m0", 1), true);
    let m1 = b.add_member(t0, info("m1", 2), true);
    let mut now = t0;
    arp_ticks(&mut b, &mut now, 5, &[m0, m1]);
    b.handle_carrier(now, m0, false);
    assert_eq!(b.active(), Some(m1), "carrier loss acts at once");
    b.handle_carrier(now, m0, true);
    arp_ticks(&mut b, &mut now, 10, &[m0, m1]);
    assert_eq!(b.link_state(m0), LinkState::Up);

    let o =
        opts("mode=1 miimon=100 arp_interval=100 arp_ip_target=198.18.0.2 link_watch_policy=any");
    let mut b = BondCore::new("bond0", "bond0", o, mac);
    b.set_own_addresses(vec!["198.18.0.1".parse().unwrap()]);
    let m0 = b.add_member(t0, info("m0", 1), true);
    b.add_member(t0, info("m1", 2), true);
    let mut now = t0;
    arp_ticks(&mut b, &mut now, 5, &[m0]);
    b.handle_carrier(now, m0, false);
    assert_eq!(b.active(), Some(m0), "ARP still says up");
    arp_ticks(&mut b, &mut now, 5, &[]);
    assert_eq!(b.link_state(m0), LinkState::Down, "both say down");
}

#[test]
fn arp_monitoring_is_switched_on_retuned_and_off_at_runtime() {
    let t0 = Instant::now();
    let mac = MacAddr([2, 0, 0, 0, 0, 1]);
    let mut b = BondCore::new("bond0", "bond0", opts("mode=1 miimon=100 updelay=200"), mac);
    let m0 = b.add_member(t0, info("m0", 1), true);
    let m1 = b.add_member(t0, info("m1", 2), true);
    let mut now = t0;
    b.handle_timeout(now + ms(200));
    assert_eq!(b.active(), Some(m0));
    assert!(!b.snapshot().copy_probes);

    // ARP monitoring replaces MII monitoring, as the kernel's sysfs does.
    let msg = b.set_option(now, "arp_interval", "100").unwrap();
    assert!(msg.contains("MII monitoring disabled"), "{msg}");
    assert!(msg.contains("updelay"), "{msg}");
    assert_eq!((b.options().miimon, b.options().updelay), (0, 0));
    assert!(b.snapshot().copy_probes, "workers copy ARP to control");
    assert_eq!(b.link_state(m0), LinkState::Up, "members keep their state");
    // The daemon reads the bond's addresses before every round.
    b.set_own_addresses(vec!["198.18.0.1".parse().unwrap()]);
    b.set_option(now, "arp_ip_target", "+198.18.0.2").unwrap();
    let err = b
        .set_option(now, "arp_ip_target", "+198.18.0.2")
        .unwrap_err();
    assert!(err.contains("already a target"), "{err}");
    let err = b
        .set_option(now, "arp_ip_target", "-198.18.0.9")
        .unwrap_err();
    assert!(err.contains("not a target"), "{err}");
    let err = b.set_option(now, "arp_validate", "sometimes").unwrap_err();
    assert!(err.contains("arp_validate"), "{err}");
    b.set_option(now, "arp_validate", "all").unwrap();
    let cfg = b.arp_monitor().unwrap().config().clone();
    assert_eq!(cfg.targets, vec!["198.18.0.2".parse::<IpAddr>().unwrap()]);
    assert_eq!(cfg.validate, crate::config::options::ArpValidate::All);

    // Carrier changes are not acted on any more: the path is.
    b.handle_carrier(now, m1, false);
    assert_eq!(b.link_state(m1), LinkState::Up);
    b.handle_carrier(now, m1, true);
    let acts = arp_ticks(&mut b, &mut now, 5, &[m0, m1]);
    assert!(acts.contains(&Action::Probe { member: m0 }));
    arp_ticks(&mut b, &mut now, 5, &[m1]);
    assert_eq!(b.active(), Some(m1), "m0's replies stopped");
    assert_eq!(b.link_state(m0), LinkState::Down);

    // A second target that never answers, with arp_all_targets=all: a
    // new target counts as answered when added, so nothing goes down at
    // once; after arp_missed_max intervals the active member does.
    b.set_option(now, "arp_all_targets", "all").unwrap();
    b.set_option(now, "arp_ip_target", "+198.18.0.3").unwrap();
    arp_ticks(&mut b, &mut now, 1, &[m1]);
    assert_eq!(b.link_state(m1), LinkState::Up);
    arp_ticks(&mut b, &mut now, 4, &[m1]);
    assert_ne!(b.link_state(m1), LinkState::Up, "198.18.0.3 never answered");
    assert_eq!(b.active(), None);
    b.set_option(now, "arp_ip_target", "-198.18.0.3").unwrap();
    arp_ticks(&mut b, &mut now, 5, &[m1]);
    assert_eq!(
        b.link_state(m1),
        LinkState::Up,
        "back without the silent target"
    );

    // MII monitoring takes over from the state ARP left: m0 has
    // carrier, so it comes back (updelay was cleared with miimon); the
    // ARP monitor and the probe copies are gone.
    let err = b.set_option(now, "updelay", "200").unwrap_err();
    assert!(err.contains("miimon"), "{err}");
    assert_eq!(b.link_state(m0), LinkState::Down);
    let msg = b.set_option(now, "miimon", "100").unwrap();
    assert!(msg.contains("ARP monitoring disabled"), "{msg}");
    assert!(b.arp_monitor().is_none());
    assert!(!b.snapshot().copy_probes);
    assert_eq!(b.link_state(m0), LinkState::Up);
    assert_eq!(b.active(), Some(m1));
    b.handle_carrier(now, m1, false);
    assert_eq!(b.active(), Some(m0), "carrier counts again");
}

#[test]
fn runtime_arp_options_keep_the_kernels_mode_rules() {
    let t0 = Instant::now();
    let mac = MacAddr([2, 0, 0, 0, 0, 1]);
    let mut ad = BondCore::new("bond0", "bond0", opts("mode=802.3ad"), mac);
    ad.add_member(t0, info("m0", 1), true);
    let err = ad.set_option(t0, "arp_interval", "100").unwrap_err();
    assert!(err.contains("mode dependency"), "{err}");
    assert!(ad.arp_monitor().is_none());

    // With link_watch_policy, both monitors run.
    let o = opts("mode=1 miimon=100 link_watch_policy=all");
    let mut b = BondCore::new("bond0", "bond0", o, mac);
    b.add_member(t0, info("m0", 1), true);
    let msg = b.set_option(t0, "arp_interval", "200").unwrap();
    assert!(!msg.contains("disabled"), "{msg}");
    assert_eq!(b.options().miimon, 100);
    assert_eq!(b.arp_monitor().unwrap().config().interval, ms(200));
    b.set_option(t0, "arp_interval", "0").unwrap();
    assert!(b.arp_monitor().is_none());
    assert_eq!(b.options().miimon, 100);
}

#[test]
fn outside_802_3ad_the_bond_has_carrier_while_a_member_is_up() {
    let t0 = Instant::now();
    let mac = MacAddr([2, 0, 0, 0, 0, 1]);
    for mode in ["active-backup", "balance-xor", "balance-alb"] {
        let mut b = BondCore::new(
            "bond0",
            "bond0",
            opts(&format!("mode={mode} miimon=100")),
            mac,
        );
        let m0 = b.add_member(t0, info("m0", 1), true);
        let m1 = b.add_member(t0, info("m1", 2), false);
        let carrier = |acts: Vec<Action>| -> Vec<Action> {
            acts.into_iter()
                .filter(|a| matches!(a, Action::Carrier(_)))
                .collect()
        };
        assert_eq!(carrier(drain(&mut b)), vec![], "{mode}: on from the start");
        b.handle_carrier(t0, m0, false);
        assert_eq!(
            carrier(drain(&mut b)),
            vec![Action::Carrier(false)],
            "{mode}"
        );
        assert_eq!(b.status(t0).mii_status, "down");
        b.handle_carrier(t0, m0, false);
        assert_eq!(carrier(drain(&mut b)), vec![], "{mode}: said once");
        b.handle_carrier(t0, m1, true);
        assert_eq!(
            carrier(drain(&mut b)),
            vec![Action::Carrier(true)],
            "{mode}"
        );
        assert_eq!(b.status(t0).mii_status, "up");
    }
    // Without members at all there is no carrier either.
    let mut b = BondCore::new("bond0", "bond0", opts("mode=1 miimon=100"), mac);
    b.handle_timeout(t0);
    assert!(drain(&mut b).contains(&Action::Carrier(false)));
}
