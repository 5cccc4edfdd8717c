//! Scripted LACP conversations on virtual time: bonds joined by virtual
//! links, frames passed as bytes (so the wire formats are in the loop), the
//! clock jumping to the next deadline.

use super::*;
use std::time::{Duration, Instant};

const S: Duration = Duration::from_secs(1);

fn cfg(mac: u8) -> LacpConfig {
    LacpConfig {
        fast: true,
        ..LacpConfig::new(System {
            priority: 65535,
            mac: MacAddr([2, 0, 0, 0, 0, mac]),
        })
    }
}

/// One end of a virtual link: (bond index, member).
type End = (usize, MemberId);

struct Link {
    a: End,
    b: End,
    up: bool,
    /// Drop LACPDUs from a to b (an nftables drop on one side).
    drop_ab: bool,
    drop_ba: bool,
}

struct Net {
    t0: Instant,
    now: Instant,
    bonds: Vec<Lacp>,
    links: Vec<Link>,
    /// Every LACPDU that crossed a link: (time, from).
    log: Vec<(Duration, End, wire::Repr)>,
}

impl Net {
    fn new(cfgs: Vec<LacpConfig>) -> Net {
        let t0 = Instant::now();
        Net {
            t0,
            now: t0,
            bonds: cfgs.into_iter().map(Lacp::new).collect(),
            links: Vec::new(),
            log: Vec::new(),
        }
    }

    fn mac(end: End) -> MacAddr {
        MacAddr([2, 1, 0, 0, end.0 as u8, end.1 as u8])
    }

    /// Add member `e` with carrier, 10G full duplex, default priority.
    fn add(&mut self, e: End) {
        self.bonds[e.0].add_port(
            self.now,
            e.1,
            Self::mac(e),
            0xff,
            true,
            Some(10000),
            Some(true),
        );
    }

    /// Add a member on each end and wire them together, carrier up.
    fn link(&mut self, a: End, b: End) -> usize {
        self.add(a);
        self.plug(a, b);
        self.links.len() - 1
    }

    /// Wire a new member `b` to the existing member `a` (a partner that
    /// arrives late).
    fn plug(&mut self, a: End, b: End) {
        self.add(b);
        self.links.push(Link {
            a,
            b,
            up: true,
            drop_ab: false,
            drop_ba: false,
        });
    }

    fn set_carrier(&mut self, l: usize, up: bool) {
        self.links[l].up = up;
        let (a, b) = (self.links[l].a, self.links[l].b);
        for e in [a, b] {
            self.bonds[e.0].handle_link(self.now, e.1, up, Some(10000), Some(true));
        }
    }

    fn deliver(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            for side in 0..self.bonds.len() {
                while let Some(o) = self.bonds[side].poll_transmit() {
                    moved = true;
                    let from = (side, o.member);
                    let Some(l) = self.links.iter().find(|l| l.a == from || l.b == from) else {
                        continue;
                    };
                    let (to, dropped) = if l.a == from {
                        (l.b, l.drop_ab)
                    } else {
                        (l.a, l.drop_ba)
                    };
                    if !l.up || dropped {
                        continue;
                    }
                    if let Pdu::Lacp(r) = &o.pdu {
                        self.log.push((self.now - self.t0, from, *r));
                    }
                    let frame = o.frame();
                    self.bonds[to.0].handle_frame(self.now, to.1, &frame);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("frames never stop flowing");
    }

    /// Run the conversation until `at` (since t0).
    fn run_to(&mut self, at: Duration) {
        let until = self.t0 + at;
        for _ in 0..1_000_000 {
            self.deliver();
            let next = self.bonds.iter().filter_map(|b| b.next_deadline()).min();
            match next {
                Some(d) if d <= until => {
                    self.now = d.max(self.now);
                    for b in &mut self.bonds {
                        b.handle_timeout(self.now);
                    }
                }
                _ => {
                    self.now = until;
                    for b in &mut self.bonds {
                        b.handle_timeout(self.now);
                    }
                    self.deliver();
                    return;
                }
            }
        }
        panic!("time does not advance");
    }

    /// Run until `cond` holds, checking every 10 ms; returns when (since t0).
    fn run_until(
        &mut self,
        limit: Duration,
        mut cond: impl FnMut(&Net) -> bool,
    ) -> Option<Duration> {
        let mut at = self.now - self.t0;
        while at <= limit {
            self.run_to(at);
            if cond(self) {
                return Some(at);
            }
            at += Duration::from_millis(10);
        }
        None
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }
}

fn distributing(n: &Net, bond: usize) -> Vec<MemberId> {
    n.bonds[bond].distributing()
}

fn pair(cfg_a: LacpConfig, cfg_b: LacpConfig, links: u16) -> Net {
    let mut n = Net::new(vec![cfg_a, cfg_b]);
    for m in 0..links {
        n.link((0, m), (1, m));
    }
    n
}

#[test]
fn negotiation_from_scratch() {
    let mut n = pair(cfg(1), cfg(2), 2);
    // Nothing distributes before Aggregate_Wait_Time has passed.
    n.run_to(Duration::from_millis(1900));
    assert!(distributing(&n, 0).is_empty());
    let up = n.run_until(5 * S, |n| {
        distributing(n, 0) == [0, 1] && distributing(n, 1) == [0, 1]
    });
    let up = up.expect("both members collecting and distributing on both sides");
    assert!(
        up >= 2 * S && up < 3 * S,
        "aggregated after the 2 s wait: {up:?}"
    );
    for b in 0..2 {
        let st = n.bonds[b].status();
        let agg = st.active_aggregator.expect("an active aggregator");
        assert_eq!((agg.id, agg.ports), (1, 2), "both ports in one aggregator");
        assert_eq!(agg.partner_mac, format!("02:00:00:00:00:0{}", 2 - b));
        assert!(st.carrier);
        for m in 0..2 {
            let p = n.bonds[b].port_status(m).unwrap();
            let want = State::ACTIVITY
                | State::TIMEOUT
                | State::AGGREGATION
                | State::SYNCHRONIZATION
                | State::COLLECTING
                | State::DISTRIBUTING;
            assert_eq!(p.actor.port_state, want.bits(), "actor state 0x3f");
            assert_eq!(p.partner.port_state, want.bits());
            assert_eq!(p.aggregator_id, Some(1));
            assert_eq!(p.actor.key, oper_key(0, 10000, true));
            assert_eq!(p.actor.port_number, m + 1);
        }
    }
    // Fast periodic: about one LACPDU a second per port once settled.
    let (from, to) = (5 * S, 15 * S);
    n.run_to(to);
    let sent = n
        .log
        .iter()
        .filter(|(t, e, _)| *e == (0, 0) && *t >= from && *t < to)
        .count();
    assert!((9..=11).contains(&sent), "{sent} LACPDUs in 10 s");
}

#[test]
fn carrier_loss_leaves_at_once_and_comes_back_through_the_machines() {
    let mut n = pair(cfg(1), cfg(2), 2);
    n.run_to(5 * S);
    assert_eq!(distributing(&n, 0), [0, 1]);
    while n.bonds[0].poll_event().is_some() {}
    n.set_carrier(1, false);
    assert_eq!(distributing(&n, 0), [0], "no waiting for the timeout");
    let ev: Vec<LacpEvent> = std::iter::from_fn(|| n.bonds[0].poll_event()).collect();
    assert_eq!(
        ev,
        [LacpEvent::Distributing {
            member: 1,
            on: false
        }]
    );
    assert_eq!(distributing(&n, 1), [0]);
    assert!(n.bonds[0].carrier());
    let down_at = n.elapsed();
    n.run_to(down_at + 10 * S);
    n.set_carrier(1, true);
    let back = n
        .run_until(down_at + 20 * S, |n| distributing(n, 0) == [0, 1])
        .unwrap();
    assert!(
        back - (down_at + 10 * S) < S,
        "back within a second: {:?}",
        back - down_at
    );
}

#[test]
fn partner_timeout_short() {
    let mut n = pair(cfg(1), cfg(2), 2);
    n.run_to(5 * S);
    n.links[0].drop_ba = true;
    let t = n.elapsed();
    let out = n
        .run_until(t + 10 * S, |n| distributing(n, 0) == [1])
        .unwrap()
        - t;
    // The last PDU came at most a second before the drop; current_while is 3 s.
    assert!(
        out > 2 * S && out <= 3 * S + Duration::from_millis(10),
        "left after {out:?}"
    );
    let st = n.bonds[0].port_status(0).unwrap();
    assert_eq!(st.rx_state, "Expired");
    assert!(st.actor.state_flags.contains(&"expired".to_string()));
    // Three more seconds without PDUs: DEFAULTED, partner forgotten.
    n.run_to(t + 7 * S);
    let st = n.bonds[0].port_status(0).unwrap();
    assert_eq!(st.rx_state, "Defaulted");
    assert_eq!(st.partner.system_mac, "00:00:00:00:00:00");
    assert_eq!(distributing(&n, 0), [1], "the other member carried on");
    n.links[0].drop_ba = false;
    let t = n.elapsed();
    let back = n
        .run_until(t + 10 * S, |n| distributing(n, 0) == [0, 1])
        .unwrap()
        - t;
    assert!(back <= 4 * S, "back after {back:?}");
}

#[test]
fn partner_timeout_long() {
    let mut slow = cfg(1);
    slow.fast = false;
    let mut n = pair(slow, cfg(2), 2);
    n.run_to(35 * S);
    assert_eq!(distributing(&n, 0), [0, 1]);
    // The partner sends every 30 s to a slow actor.
    let gaps: Vec<Duration> = n
        .log
        .iter()
        .filter(|(t, e, _)| *e == (1, 0) && *t > 3 * S)
        .map(|(t, _, _)| *t)
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    assert!(gaps.iter().all(|g| *g == 30 * S), "{gaps:?}");
    n.links[0].drop_ba = true;
    let t = n.elapsed();
    n.run_to(t + 59 * S);
    assert_eq!(distributing(&n, 0), [0, 1], "long timeout is 90 s");
    let out = n
        .run_until(t + 100 * S, |n| distributing(n, 0) == [1])
        .unwrap()
        - t;
    assert!(
        out > 60 * S && out <= 90 * S + Duration::from_millis(10),
        "{out:?}"
    );
}

#[test]
fn a_port_whose_partner_changes_key_moves_to_another_aggregator() {
    let mut n = pair(cfg(1), cfg(2), 2);
    n.run_to(5 * S);
    // The partner's member 1 gets a different key (other speed).
    n.bonds[1].handle_link(n.now, 1, true, Some(1000), Some(true));
    n.run_to(10 * S);
    let p = n.bonds[0].port_status(1).unwrap();
    assert_eq!(p.partner.key, oper_key(0, 1000, true));
    assert_eq!(p.aggregator_id, Some(2), "moved out of aggregator 1");
    assert_eq!(
        n.bonds[0].status().active_aggregator.unwrap().id,
        1,
        "stable keeps the active one"
    );
    assert_eq!(distributing(&n, 0), [0]);
    assert!(!p.distributing);
    assert!(!State::from_bits_retain(p.actor.port_state).contains(State::SYNCHRONIZATION));
    // Back to the same key: back into aggregator 1.
    n.bonds[1].handle_link(n.now, 1, true, Some(10000), Some(true));
    n.run_to(15 * S);
    assert_eq!(n.bonds[0].port_status(1).unwrap().aggregator_id, Some(1));
    assert_eq!(distributing(&n, 0), [0, 1]);
}

#[test]
fn a_new_partner_system_means_a_new_aggregator() {
    let mut n = Net::new(vec![cfg(1), cfg(2), cfg(3)]);
    n.link((0, 0), (1, 0));
    let l = n.link((0, 1), (1, 1));
    n.run_to(5 * S);
    assert_eq!(distributing(&n, 0), [0, 1]);
    // Member 1 is recabled to another switch (system 3).
    n.set_carrier(l, false);
    n.links[l].b = (2, 0);
    n.add((2, 0));
    n.set_carrier(l, true);
    n.run_to(12 * S);
    let p = n.bonds[0].port_status(1).unwrap();
    assert_eq!(p.partner.system_mac, "02:00:00:00:00:03");
    assert_eq!(p.aggregator_id, Some(2));
    assert_eq!(distributing(&n, 0), [0]);
}

#[test]
fn ad_select_count_and_bandwidth_choose_the_aggregator() {
    for (policy, want) in [
        (AdSelect::Count, vec![0, 1]),
        (AdSelect::Bandwidth, vec![2]),
    ] {
        let mut a = cfg(1);
        a.ad_select = policy;
        let mut n = Net::new(vec![a, cfg(2), cfg(3)]);
        n.link((0, 0), (1, 0));
        n.link((0, 1), (1, 1));
        n.link((0, 2), (2, 0));
        // The single link to system 3 is fast enough to outweigh the two.
        for (b, m) in [(0, 2), (2, 0)] {
            n.bonds[b].handle_link(n.now, m, true, Some(100000), Some(true));
        }
        n.run_to(6 * S);
        assert_eq!(distributing(&n, 0), want, "{policy:?}");
    }
}

#[test]
fn churn_is_detected_and_cleared() {
    let mut n = Net::new(vec![cfg(1), cfg(2)]);
    // A member whose partner never speaks.
    n.add((0, 0));
    n.run_to(59 * S);
    let p = n.bonds[0].port_status(0).unwrap();
    assert_eq!(
        (p.partner_churn_state.as_str(), p.partner_churned_count),
        ("monitoring", 0)
    );
    n.run_to(61 * S);
    let p = n.bonds[0].port_status(0).unwrap();
    assert_eq!(
        (p.partner_churn_state.as_str(), p.partner_churned_count),
        ("churned", 1)
    );
    // A partner arrives: the partner synchronizes and churn clears.
    n.plug((0, 0), (1, 0));
    n.run_to(70 * S);
    let p = n.bonds[0].port_status(0).unwrap();
    assert_eq!(
        (p.partner_churn_state.as_str(), p.partner_churned_count),
        ("none", 1)
    );
    assert_eq!(p.actor_churn_state, "none");
}

#[test]
fn actor_churn_on_a_port_that_cannot_join_the_active_aggregator() {
    let mut n = Net::new(vec![cfg(1), cfg(2), cfg(3)]);
    n.link((0, 0), (1, 0));
    n.link((0, 1), (1, 1));
    n.link((0, 2), (2, 0));
    n.run_to(65 * S);
    let p = n.bonds[0].port_status(2).unwrap();
    assert_eq!(p.aggregator_id, Some(3));
    assert_eq!(
        (p.actor_churn_state.as_str(), p.actor_churned_count),
        ("churned", 1)
    );
    assert_eq!(n.bonds[0].port_status(0).unwrap().actor_churn_state, "none");
}

#[test]
fn passive_passive_never_aggregates() {
    let mut a = cfg(1);
    a.active = false;
    let mut b = cfg(2);
    b.active = false;
    let mut n = pair(a, b, 2);
    n.run_to(30 * S);
    assert!(n.log.is_empty(), "no LACPDU either way");
    for b in 0..2 {
        for m in 0..2 {
            let p = n.bonds[b].port_status(m).unwrap();
            let st = State::from_bits_retain(p.actor.port_state);
            assert!(!st.intersects(State::COLLECTING | State::DISTRIBUTING));
            assert_eq!(p.rx_state, "Defaulted");
        }
        // As the kernel, an aggregator without partner carries traffic on
        // its one individual port: never both.
        assert!(distributing(&n, b).len() <= 1);
    }
}

#[test]
fn passive_answers_an_active_partner() {
    let mut a = cfg(1);
    a.active = false;
    let mut n = pair(a, cfg(2), 2);
    n.run_to(5 * S);
    assert_eq!(distributing(&n, 0), [0, 1]);
    assert_eq!(distributing(&n, 1), [0, 1]);
    let p = n.bonds[0].port_status(0).unwrap();
    assert!(!State::from_bits_retain(p.actor.port_state).contains(State::ACTIVITY));
}

#[test]
fn min_links_drops_carrier_below_it() {
    let mut a = cfg(1);
    a.min_links = 2;
    let mut n = pair(a, cfg(2), 2);
    n.run_to(5 * S);
    assert!(n.bonds[0].carrier());
    n.set_carrier(0, false);
    assert!(!n.bonds[0].carrier());
    assert!(distributing(&n, 0).is_empty(), "no traffic without carrier");
    assert!(n.bonds[0].poll_event().is_some());
    n.set_carrier(0, true);
    n.run_to(10 * S);
    assert!(n.bonds[0].carrier());
    assert_eq!(distributing(&n, 0), [0, 1]);
}

#[test]
fn independent_control_collects_before_distributing() {
    let mut a = cfg(1);
    a.coupled = false;
    let mut b = cfg(2);
    b.coupled = false;
    let mut n = pair(a, b, 1);
    n.run_to(5 * S);
    let p = n.bonds[0].port_status(0).unwrap();
    assert_eq!(p.mux_state, "Distributing");
    assert_eq!(distributing(&n, 0), [0]);
    assert!(n.bonds[0].collecting(0));
}

#[test]
fn marker_request_is_answered() {
    let mut n = pair(cfg(1), cfg(2), 1);
    let req = marker::Repr {
        kind: marker::Kind::Information,
        requester_port: 7,
        requester_system: MacAddr([2, 9, 9, 9, 9, 9]),
        transaction_id: 0xdead_beef,
    };
    let frame = req.frame(MacAddr([2, 9, 9, 9, 9, 9]));
    n.bonds[0].handle_frame(n.now, 0, &frame);
    let out = std::iter::from_fn(|| n.bonds[0].poll_transmit())
        .find(|o| matches!(o.pdu, Pdu::Marker(_)))
        .expect("a marker response");
    assert_eq!(out.member, 0);
    assert_eq!(
        out.pdu,
        Pdu::Marker(marker::Repr {
            kind: marker::Kind::Response,
            ..req
        })
    );
    assert_eq!(n.bonds[0].counters(0).unwrap().marker_response_tx, 1);
}

#[test]
fn at_most_three_lacpdus_per_fast_periodic_time() {
    let mut n = pair(cfg(1), cfg(2), 1);
    n.run_to(5 * S);
    // The partner flaps its key every 50 ms: each change asks for a PDU.
    for i in 0..40u32 {
        let speed = if i % 2 == 0 { 1000 } else { 10000 };
        n.bonds[1].handle_link(n.now, 0, true, Some(speed), Some(true));
        let t = n.elapsed() + Duration::from_millis(50);
        n.run_to(t);
    }
    for side in 0..2 {
        let times: Vec<Duration> = n
            .log
            .iter()
            .filter(|(_, e, _)| e.0 == side)
            .map(|(t, _, _)| *t)
            .collect();
        assert!(times.len() > 10);
        for w in times.windows(4) {
            assert!(
                w[3] - w[0] >= S,
                "four LACPDUs within {:?} from bond {side}",
                w[3] - w[0]
            );
        }
    }
}

#[test]
fn our_own_pdu_coming_back_is_a_loop() {
    let mut n = Net::new(vec![cfg(1)]);
    n.link((0, 0), (0, 1));
    n.run_to(10 * S);
    let events: Vec<LacpEvent> = std::iter::from_fn(|| n.bonds[0].poll_event()).collect();
    assert!(
        events.contains(&LacpEvent::Looped(0)) && events.contains(&LacpEvent::Looped(1)),
        "{events:?}"
    );
    for m in 0..2 {
        let p = n.bonds[0].port_status(m).unwrap();
        assert!(p.looped && p.counters.looped_rx > 0);
        assert!(!p.distributing);
    }
}

#[test]
fn fallback_to_active_backup_when_nobody_answers() {
    let mut a = cfg(1);
    a.fallback_after = Some(3 * S);
    let mut n = Net::new(vec![a, cfg(2)]);
    for m in 0..2 {
        n.add((0, m));
    }
    n.run_to(Duration::from_millis(2990));
    assert!(!n.bonds[0].in_fallback());
    n.run_to(3 * S);
    assert!(n.bonds[0].in_fallback());
    // A partner speaks on member 0: back to LACP.
    n.plug((0, 0), (1, 0));
    n.run_to(4 * S);
    assert!(!n.bonds[0].in_fallback());
    let ev: Vec<LacpEvent> = std::iter::from_fn(|| n.bonds[0].poll_event()).collect();
    assert!(ev.contains(&LacpEvent::Fallback(true)) && ev.contains(&LacpEvent::Fallback(false)));
}

#[test]
fn malformed_and_unknown_slow_frames_are_counted() {
    let mut n = pair(cfg(1), cfg(2), 1);
    let good = wire::Repr::default().frame(MacAddr([2, 9, 9, 9, 9, 9]));
    let mut bad_tlv = good.clone();
    bad_tlv[14 + 2] = 9;
    let mut oam = good.clone();
    oam[14] = 3;
    n.bonds[0].handle_frame(n.now, 0, &good[..40]);
    n.bonds[0].handle_frame(n.now, 0, &bad_tlv);
    n.bonds[0].handle_frame(n.now, 0, &good[..10]);
    n.bonds[0].handle_frame(n.now, 0, &oam);
    let c = n.bonds[0].counters(0).unwrap();
    assert_eq!((c.illegal_rx, c.unknown_rx, c.lacpdu_rx), (3, 1, 0));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes on a member never panic and never leave the
    /// machines in a state the status cannot report.
    #[test]
    fn arbitrary_slow_frames_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..140), sub in 0u8..4) {
        let mut n = pair(cfg(1), cfg(2), 1);
        n.run_to(3 * S);
        let mut f = vec![0x01, 0x80, 0xc2, 0, 0, 2, 2, 9, 9, 9, 9, 9, 0x88, 0x09, sub];
        f.extend_from_slice(&body);
        n.bonds[0].handle_frame(n.now, 0, &f);
        n.run_to(6 * S);
        proptest::prop_assert!(n.bonds[0].port_status(0).is_some());
    }
}
