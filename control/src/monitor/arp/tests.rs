//! The ARP/NS monitor on virtual time: a scripted network answers the
//! probes of the members whose path works, and floods each request to the
//! other members as a switch does.

use super::*;

const MS: Duration = Duration::from_millis(1);
const BOND: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const T1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const T2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
const OTHER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 9);

struct Net {
    mon: ArpMonitor,
    now: Instant,
    /// Per member: its path to the network works.
    path: Vec<bool>,
    /// Targets that answer.
    answering: Vec<IpAddr>,
    events: Vec<(u32, ArpEvent)>,
    probes: Vec<(u32, usize)>,
    tick: u32,
}

fn cfg(validate: ArpValidate, missed_max: u32, ab: bool) -> ArpConfig {
    ArpConfig {
        interval: 100 * MS,
        missed_max,
        validate,
        all_targets: ArpAllTargets::Any,
        targets: vec![T1.into()],
        active_backup: ab,
    }
}

impl Net {
    fn new(c: ArpConfig, members: usize) -> Net {
        let now = Instant::now();
        let answering = c.targets.clone();
        let mut mon = ArpMonitor::new(c);
        mon.set_own_addresses(vec![BOND.into(), "2001:db8::1".parse().unwrap()]);
        for _ in 0..members {
            mon.add(now, true);
        }
        let mut n = Net {
            mon,
            now,
            path: vec![true; members],
            answering,
            events: Vec::new(),
            probes: Vec::new(),
            tick: 0,
        };
        n.mon.set_active(now, Some(0));
        n
    }

    /// One monitor run, then the network's answers a millisecond later.
    fn step(&mut self) {
        self.mon.handle_timeout(self.now);
        let tick = self.tick;
        while let Some(ev) = self.mon.poll_event() {
            self.events.push((tick, ev));
            if ev == ArpEvent::Reselect {
                // The bond keeps an active member that is up, else takes
                // the first member that is.
                let keep = self
                    .mon
                    .active
                    .map(|a| a as MemberId)
                    .filter(|&a| self.mon.state(a) == LinkState::Up);
                let pick = keep.or_else(|| {
                    (0..self.path.len() as MemberId).find(|&i| self.mon.state(i) == LinkState::Up)
                });
                self.mon.set_active(self.now, pick);
            }
        }
        let mut sent = Vec::new();
        while let Some(m) = self.mon.poll_probe() {
            self.probes.push((tick, usize::from(m)));
            sent.push(m);
        }
        let at = self.now + MS;
        for m in sent {
            if !self.path[usize::from(m)] {
                continue;
            }
            for &t in &self.mon.cfg.targets.clone() {
                let answers = self.answering.contains(&t);
                match t {
                    IpAddr::V4(t) => {
                        // The switch floods the broadcast request to the
                        // other members whose path works.
                        for o in 0..self.path.len() as MemberId {
                            if o != m && self.path[usize::from(o)] {
                                self.mon.handle_rx(at, o, arp(false, BOND, t));
                            }
                        }
                        if answers {
                            self.mon.handle_rx(at, m, arp(true, t, BOND));
                        }
                    }
                    IpAddr::V6(t) => {
                        if answers {
                            let rx = Received::Nd {
                                src: t,
                                dst: "2001:db8::1".parse().unwrap(),
                                for_us: true,
                            };
                            self.mon.handle_rx(at, m, rx);
                        }
                    }
                }
            }
        }
        self.now += 100 * MS;
        self.tick += 1;
    }

    fn run(&mut self, ticks: u32) {
        for _ in 0..ticks {
            self.step();
        }
    }

    /// The tick at which a member went down, if it did.
    fn down_at(&self, m: MemberId) -> Option<u32> {
        self.events
            .iter()
            .find(|(_, e)| *e == ArpEvent::Down(m))
            .map(|(t, _)| *t)
    }

    /// Another frame on member `m` right now (other traffic).
    fn other(&mut self, m: MemberId) {
        self.mon.handle_rx(self.now - 50 * MS, m, Received::Other);
    }

    /// Another host's broadcast ARP request arrives on member `m`.
    fn foreign_arp(&mut self, m: MemberId) {
        let rx = arp(false, OTHER, Ipv4Addr::new(198, 18, 0, 10));
        self.mon.handle_rx(self.now - 40 * MS, m, rx);
    }
}

fn arp(reply: bool, sender: Ipv4Addr, target: Ipv4Addr) -> Received {
    Received::Arp {
        reply,
        sender,
        target,
        for_us: true,
    }
}

#[test]
fn healthy_active_backup_stays_up_and_probes_the_active_member_only() {
    let mut n = Net::new(cfg(ArpValidate::All, 2, true), 2);
    n.run(50);
    assert!(n.events.is_empty(), "{:?}", n.events);
    assert_eq!(n.mon.state(0), LinkState::Up);
    assert_eq!(
        n.mon.state(1),
        LinkState::Up,
        "backup kept up by the flooded requests"
    );
    assert!(n.probes.iter().all(|&(_, m)| m == 0));
    assert_eq!(n.probes.len(), 50, "one probe round per interval");
    assert_eq!(n.mon.counters(0).valid_replies, 50);
    // The backup validates the active member's flooded requests once the
    // active member has had a reply since it became active: from the
    // second round on.
    assert_eq!(n.mon.counters(1).valid_replies, 49);
}

/// The active member's last reply came 1 ms after tick `k`; it is judged
/// down at the first tick later than `k + missed_max + 1/2` intervals,
/// i.e. tick `k + missed_max + 1`.
#[test]
fn missed_max_counts_intervals_as_the_kernel_does() {
    for missed in [1u32, 2, 3, 5] {
        let mut n = Net::new(cfg(ArpValidate::Active, missed, true), 2);
        n.run(10);
        n.path[0] = false;
        n.path[1] = false;
        n.run(20);
        // Last reply after tick 9.
        assert_eq!(n.down_at(0), Some(9 + missed + 1), "missed_max={missed}");
    }
}

#[test]
fn a_backup_gets_one_more_interval_than_the_active_member() {
    let mut n = Net::new(cfg(ArpValidate::All, 2, true), 2);
    n.run(10);
    // The backup stops hearing anything; the active member is fine but
    // its requests no longer reach the backup.
    n.path[1] = false;
    n.run(10);
    assert_eq!(n.down_at(1), Some(9 + 2 + 2), "missed_max + 1 intervals");
    assert_eq!(n.down_at(0), None);
}

#[test]
fn a_dead_active_member_fails_over_to_the_backup_before_the_backup_is_judged() {
    let mut n = Net::new(cfg(ArpValidate::None, 2, true), 2);
    n.run(10);
    // The whole path of m0 dies: its probes and the requests flooded from
    // it stop, so m1 hears nothing either until it is active.
    n.path[0] = false;
    n.run(10);
    assert_eq!(n.down_at(0), Some(12));
    assert_eq!(n.mon.active, Some(1), "m1 was still up at tick 12");
    assert_eq!(n.down_at(1), None, "then m1's own probes keep it up");
    assert!(n.events.contains(&(12, ArpEvent::Reselect)));
    // The path comes back: m0 hears m1's requests and comes back up.
    n.path[0] = true;
    n.run(3);
    assert_eq!(n.mon.state(0), LinkState::Up);
    assert_eq!(n.mon.active, Some(1), "the backup stays active");
}

#[test]
fn two_intervals_of_grace_after_becoming_active() {
    let mut n = Net::new(cfg(ArpValidate::Active, 1, true), 2);
    n.path[0] = false;
    n.run(5);
    // Up at tick 0 with the grace of two intervals and a half; then one
    // missed interval (and a half) since the enslave-time "last receive".
    assert_eq!(n.down_at(0), Some(3));
}

#[test]
fn validate_none_counts_any_traffic_so_a_dead_path_that_still_hears_broadcasts_stays_up() {
    let mut n = Net::new(cfg(ArpValidate::None, 2, true), 2);
    n.run(5);
    n.path[0] = false;
    for _ in 0..20 {
        // Another host's broadcasts still arrive on m0.
        n.other(0);
        n.foreign_arp(0);
        n.step();
    }
    assert_eq!(
        n.down_at(0),
        None,
        "fooled, as the kernel is with arp_validate=none"
    );
}

#[test]
fn validate_active_ignores_other_hosts_arp_on_the_active_member() {
    let mut n = Net::new(cfg(ArpValidate::Active, 2, true), 2);
    n.run(5);
    n.path[0] = false;
    for _ in 0..10 {
        n.other(0);
        // Another host's request and a reply to someone else.
        n.foreign_arp(0);
        n.mon.handle_rx(n.now - 30 * MS, 0, arp(true, OTHER, BOND));
        n.mon.handle_rx(
            n.now - 20 * MS,
            0,
            Received::Arp {
                reply: true,
                sender: T1,
                target: BOND,
                for_us: false,
            },
        );
        n.step();
    }
    assert_eq!(n.down_at(0), Some(7));
    assert_eq!(n.mon.active, Some(1));
}

#[test]
fn validate_active_leaves_backups_on_any_traffic() {
    let mut n = Net::new(cfg(ArpValidate::Active, 2, true), 2);
    n.run(3);
    n.path[1] = false;
    for _ in 0..10 {
        n.other(1);
        n.step();
    }
    assert_eq!(n.down_at(1), None, "backups are not validated");
}

#[test]
fn validate_backup_leaves_the_active_member_on_any_traffic_and_checks_backups() {
    let mut n = Net::new(cfg(ArpValidate::Backup, 2, true), 2);
    n.run(3);
    n.path[0] = false;
    n.path[1] = false;
    for _ in 0..10 {
        n.other(0);
        n.other(1);
        n.step();
    }
    assert_eq!(n.down_at(0), None, "the active member is not validated");
    assert_eq!(
        n.down_at(1),
        Some(2 + 2 + 2),
        "other traffic does not keep a backup"
    );
}

#[test]
fn validate_all_checks_every_member() {
    let mut n = Net::new(cfg(ArpValidate::All, 2, true), 2);
    n.run(3);
    n.path[0] = false;
    n.path[1] = false;
    for _ in 0..10 {
        n.other(0);
        n.other(1);
        n.step();
    }
    assert_eq!(n.down_at(0), Some(2 + 2 + 1));
    assert!(n.down_at(1).is_some());
}

#[test]
fn filter_counts_only_arp_and_validates_nothing() {
    let mut n = Net::new(cfg(ArpValidate::Filter, 2, true), 2);
    n.run(3);
    n.path[0] = false;
    for _ in 0..5 {
        n.other(0);
        n.step();
    }
    assert_eq!(n.down_at(0), Some(5), "other traffic does not count");

    let mut n = Net::new(cfg(ArpValidate::Filter, 2, true), 2);
    n.run(3);
    n.path[0] = false;
    for _ in 0..10 {
        // Any ARP counts, even from a host that is no target.
        n.foreign_arp(0);
        n.step();
    }
    assert_eq!(n.down_at(0), None);
}

#[test]
fn filter_active_and_filter_backup_split_the_two() {
    // filter_active: the active member is validated, a backup counts any ARP.
    let mut n = Net::new(cfg(ArpValidate::FilterActive, 2, true), 2);
    n.run(3);
    n.path[0] = false;
    n.path[1] = false;
    for _ in 0..10 {
        for m in 0..2 {
            n.foreign_arp(m);
        }
        n.step();
    }
    assert_eq!(n.down_at(0), Some(5), "active validated");
    assert_eq!(
        n.mon.active,
        Some(1),
        "the backup, kept up by any ARP, took over"
    );
    // Active from tick 5, m1 is validated too: down after its grace.
    assert_eq!(n.down_at(1), Some(8));

    // filter_backup: the other way round.
    let mut n = Net::new(cfg(ArpValidate::FilterBackup, 2, true), 2);
    n.run(3);
    n.path[0] = false;
    n.path[1] = false;
    for _ in 0..10 {
        for m in 0..2 {
            n.other(m);
            n.foreign_arp(m);
        }
        n.step();
    }
    assert_eq!(n.down_at(0), None, "active: any ARP");
    assert_eq!(n.down_at(1), Some(6), "backup validated");
}

#[test]
fn all_targets_all_needs_every_target_and_any_needs_one() {
    for (policy, down) in [(ArpAllTargets::All, true), (ArpAllTargets::Any, false)] {
        let mut c = cfg(ArpValidate::Active, 2, true);
        c.targets = vec![T1.into(), T2.into()];
        c.all_targets = policy;
        let mut n = Net::new(c, 2);
        n.answering = vec![T1.into()];
        n.run(10);
        assert_eq!(n.down_at(0).is_some(), down, "{policy:?}");
    }
}

#[test]
fn ns_targets_are_validated_from_advertisements() {
    let mut c = cfg(ArpValidate::Active, 2, true);
    c.targets = vec!["2001:db8::2".parse().unwrap()];
    let mut n = Net::new(c, 2);
    n.run(10);
    assert_eq!(n.down_at(0), None);
    assert_eq!(n.mon.counters(0).valid_replies, 10);
    // To the all-nodes group counts too; from the unspecified address or to
    // someone else's address does not.
    let t: Ipv6Addr = "2001:db8::2".parse().unwrap();
    for (src, dst, counts) in [
        (t, ALL_NODES, true),
        (Ipv6Addr::UNSPECIFIED, ALL_NODES, false),
        (t, "2001:db8::77".parse().unwrap(), false),
    ] {
        let (now, before) = (n.now, n.mon.counters(0).valid_replies);
        n.mon.handle_rx(
            now,
            0,
            Received::Nd {
                src,
                dst,
                for_us: true,
            },
        );
        let after = n.mon.counters(0).valid_replies;
        assert_eq!(after > before, counts, "{src} -> {dst}");
    }
    n.path[0] = false;
    n.run(5);
    // The last valid advertisement was the one to all-nodes at tick 10.
    assert_eq!(n.down_at(0), Some(13));
}

#[test]
fn without_an_active_member_candidates_are_tried_in_turn() {
    let mut n = Net::new(cfg(ArpValidate::Active, 2, true), 3);
    n.path = vec![false, false, false];
    n.run(8);
    assert_eq!(n.mon.active, None);
    // Tried: m1 first (the one after the first member), then m2, m0, ...
    let tried: Vec<usize> = n.probes.iter().filter(|p| p.0 >= 6).map(|p| p.1).collect();
    assert_eq!(tried.len(), 2);
    assert_ne!(tried[0], tried[1], "each interval the next member");
    let t = n.mon.trying.unwrap();
    assert_eq!(
        n.mon.state(t as MemberId),
        LinkState::Back,
        "the tried member is going back"
    );
    // m2's path heals: once it is tried and answers, it comes up and is
    // chosen.
    n.path[2] = true;
    n.run(4);
    assert_eq!(n.mon.active, Some(2));
    assert_eq!(n.mon.state(2), LinkState::Up);
    assert_eq!(n.mon.trying, None);
}

#[test]
fn after_a_total_outage_the_last_member_comes_back_too() {
    // Two members, both paths dead: the candidates alternate. The second
    // member's path heals: once tried it comes up and stays up, although
    // the rotation would start again from the first member.
    let mut n = Net::new(cfg(ArpValidate::Active, 2, true), 2);
    n.path = vec![false, false];
    n.run(8);
    assert_eq!(n.mon.active, None);
    n.path[1] = true;
    n.run(4);
    assert_eq!(n.mon.active, Some(1));
    assert_eq!(n.mon.state(1), LinkState::Up);
    n.run(10);
    assert_eq!(n.mon.state(1), LinkState::Up, "stays up");
    assert_ne!(n.mon.state(0), LinkState::Up, "its path is still dead");
    let late: Vec<usize> = n.probes.iter().filter(|p| p.0 >= 14).map(|p| p.1).collect();
    assert!(
        late.iter().all(|&m| m == 1),
        "only the active member is probed: {late:?}"
    );
}

#[test]
fn a_member_without_carrier_is_not_tried_and_is_taken_down() {
    let mut n = Net::new(cfg(ArpValidate::Active, 2, true), 3);
    n.path = vec![false, false, false];
    n.run(6);
    n.mon.set_carrier(2, false);
    n.run(6);
    let late: Vec<usize> = n.probes.iter().filter(|p| p.0 >= 7).map(|p| p.1).collect();
    assert!(!late.contains(&2), "{late:?}");
}

#[test]
fn load_balance_probes_every_member_and_needs_both_directions() {
    let mut n = Net::new(cfg(ArpValidate::None, 2, false), 2);
    n.run(5);
    let per_tick = n.probes.iter().filter(|p| p.0 == 4).count();
    assert_eq!(per_tick, 2, "every member with carrier");
    n.path[1] = false;
    n.run(5);
    assert_eq!(n.down_at(1), Some(4 + 2 + 1));
    assert_eq!(n.mon.state(0), LinkState::Up);
    n.path[1] = true;
    n.run(2);
    assert_eq!(
        n.mon.state(1),
        LinkState::Up,
        "back once it sends and hears"
    );
    // A member without carrier is not probed, so it cannot come back.
    n.mon.set_carrier(1, false);
    n.path[1] = false;
    n.run(5);
    n.path[1] = true;
    n.run(3);
    assert_eq!(n.mon.state(1), LinkState::Down);
}

#[test]
fn removed_members_are_ignored() {
    let mut n = Net::new(cfg(ArpValidate::All, 2, true), 2);
    n.run(3);
    n.mon.remove(0);
    n.mon.set_active(n.now, Some(1));
    n.run(5);
    assert!(n.probes.iter().filter(|p| p.0 >= 3).all(|p| p.1 == 1));
    n.mon.handle_rx(n.now, 0, arp(true, T1, BOND));
    assert_eq!(n.mon.counters(0).valid_replies, 3);
}

#[test]
fn a_slow_dataplane_start_does_not_count_against_the_members() {
    for ab in [false, true] {
        let mut n = Net::new(cfg(ArpValidate::None, 2, ab), 2);
        // The sockets took a second to attach after the members were added.
        n.now += 1000 * MS;
        n.mon.start_clock(n.now);
        n.run(10);
        assert!(
            n.events
                .iter()
                .all(|(_, e)| !matches!(e, ArpEvent::Down(_))),
            "active_backup={ab}: {:?}",
            n.events
        );
        // Without the restart the first round takes both down.
        let mut n = Net::new(cfg(ArpValidate::None, 2, ab), 2);
        n.now += 1000 * MS;
        n.run(1);
        assert!(
            n.events.iter().any(|(_, e)| matches!(e, ArpEvent::Down(_))),
            "active_backup={ab}: the check above can fail: {:?}",
            n.events
        );
    }
}
