//! The families a scrape gives for bonds driven on virtual time, and the
//! Prometheus text form of prometheus-client's OpenMetrics.

use super::*;
use crate::bond::fixtures::{info, opts};
use crate::bond::{Action, BondCore};
use std::time::Instant;
use xbond_dataplane::wire::MacAddr;

/// A scrape of fixed states, through the same encoder the server uses.
#[derive(Debug)]
struct Fixed(Vec<BondState>, Vec<String>);

impl Collector for Fixed {
    fn encode(&self, enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        families(&self.0, &self.1).encode(enc)
    }
}

fn scrape(states: Vec<BondState>, missing: &[&str]) -> String {
    let mut r = Registry::default();
    r.register_collector(Box::new(Fixed(
        states,
        missing.iter().map(ToString::to_string).collect(),
    )));
    to_prometheus_text(&openmetrics(&r))
}

fn state(core: &BondCore, now: Instant) -> BondState {
    BondState {
        status: core.status(now),
        stats: StatsView {
            bond: core.name.clone(),
            ports: Vec::new(),
            control: BTreeMap::from([("active_member_changes".to_string(), core.active_changes())]),
            lacp: Vec::new(),
            arp_monitor: Vec::new(),
            alb: None,
        },
        alb: None,
    }
}

/// bond0 in active-backup with `n` members m0, m1, ..., all up.
fn active_backup(t0: Instant, n: u32) -> BondCore {
    let mut b = BondCore::new(
        "bond0",
        "bond0",
        opts("mode=active-backup miimon=100"),
        MacAddr([2, 0, 0, 0, 0, 1]),
    );
    for i in 0..n {
        b.add_member(t0, info(&format!("m{i}"), i + 1), true);
    }
    b
}

/// The value of the sample `series` (name and labels as printed).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// Hand `from`'s LACPDUs to `to`; true if there were any.
fn pass(from: &mut BondCore, to: &mut BondCore, now: Instant) -> bool {
    let mut moved = false;
    while let Some(act) = from.poll_action() {
        if let Action::SendFrame { member, frame } = act {
            moved = true;
            to.handle_slow_frame(now, member, &frame);
        }
    }
    moved
}

/// Pass LACPDUs between two bonds until neither has one to send.
fn exchange(a: &mut BondCore, b: &mut BondCore, now: Instant) {
    for _ in 0..100 {
        let ab = pass(a, b, now);
        let ba = pass(b, a, now);
        if !ab && !ba {
            break;
        }
    }
}

#[test]
fn an_lacp_bond_reads_as_aggregating_until_a_member_fails() {
    let t0 = Instant::now();
    let o = opts("mode=802.3ad miimon=100 lacp_rate=fast");
    let mut a = BondCore::new("bond0", "bond0", o.clone(), MacAddr([2, 0, 0, 0, 0, 0xa]));
    let mut b = BondCore::new("sw", "sw", o, MacAddr([2, 0, 0, 0, 0, 0xb]));
    for (bond, base) in [(&mut a, 1u32), (&mut b, 11)] {
        bond.add_member(t0, info(&format!("m{base}"), base), true);
        bond.add_member(t0, info(&format!("m{}", base + 1), base + 1), true);
    }
    let mut now = t0;
    while now < t0 + Duration::from_secs(4) {
        exchange(&mut a, &mut b, now);
        now += Duration::from_millis(100);
        a.handle_timeout(now);
        b.handle_timeout(now);
    }
    let text = scrape(vec![state(&a, now)], &[]);
    let v = |s: &str| value(&text, s);
    assert_eq!(v(r#"node_bonding_slaves{master="bond0"}"#), Some(2.0));
    assert_eq!(v(r#"node_bonding_active{master="bond0"}"#), Some(2.0));
    assert_eq!(
        v(r#"xbond_lacp_aggregating_as_configured{bond="bond0"}"#),
        Some(1.0),
        "{text}"
    );
    for m in ["m1", "m2"] {
        assert_eq!(
            v(&format!(
                r#"xbond_lacp_port_state{{bond="bond0",member="{m}",side="partner",bit="distributing"}}"#
            )),
            Some(1.0)
        );
        assert_eq!(
            v(&format!(
                r#"xbond_lacp_distributing{{bond="bond0",member="{m}"}}"#
            )),
            Some(1.0)
        );
        assert_eq!(
            v(&format!(
                r#"xbond_member_speed_bytes{{bond="bond0",member="{m}"}}"#
            )),
            Some(1.25e9)
        );
    }
    assert!(
        text.contains(r#"xbond_lacp_partner_info{bond="bond0",member="m1",partner_system="65535,02:00:00:00:00:0b""#),
        "{text}"
    );

    a.handle_carrier(now, 1, false);
    exchange(&mut a, &mut b, now);
    let text = scrape(vec![state(&a, now)], &[]);
    let v = |s: &str| value(&text, s);
    assert_eq!(v(r#"node_bonding_active{master="bond0"}"#), Some(1.0));
    assert_eq!(v(r#"xbond_member_up{bond="bond0",member="m2"}"#), Some(0.0));
    assert_eq!(
        v(r#"xbond_member_link_failures_total{bond="bond0",member="m2"}"#),
        Some(1.0)
    );
    assert_eq!(
        v(r#"xbond_lacp_aggregating_as_configured{bond="bond0"}"#),
        Some(0.0)
    );
}

#[test]
fn a_failover_counts_and_moves_the_active_member_info() {
    let t0 = Instant::now();
    let mut b = active_backup(t0, 2);
    let text = scrape(vec![state(&b, t0)], &[]);
    assert_eq!(
        value(&text, r#"xbond_active_member_changes_total{bond="bond0"}"#),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            r#"xbond_active_member_info{bond="bond0",member="m0"}"#
        ),
        Some(1.0)
    );
    b.handle_carrier(t0, 0, false);
    let text = scrape(vec![state(&b, t0)], &[]);
    assert_eq!(
        value(&text, r#"xbond_active_member_changes_total{bond="bond0"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"xbond_active_member_info{bond="bond0",member="m1"}"#
        ),
        Some(1.0)
    );
    assert!(!text.contains(r#"xbond_active_member_info{bond="bond0",member="m0"}"#));
    assert_eq!(
        value(&text, r#"xbond_member_active{bond="bond0",member="m0"}"#),
        Some(0.0)
    );
}

#[test]
fn a_bond_that_does_not_answer_reads_as_not_answering() {
    let text = scrape(Vec::new(), &["bond7"]);
    assert_eq!(
        value(&text, r#"xbond_bond_answering{bond="bond7"}"#),
        Some(0.0)
    );
}

#[test]
fn the_prometheus_text_names_every_sample_by_a_typed_family() {
    let t0 = Instant::now();
    let b = active_backup(t0, 1);
    let text = scrape(vec![state(&b, t0)], &[]);
    assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
    let mut typed: Vec<(&str, &str)> = Vec::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let (n, t) = rest.split_once(' ').unwrap();
            typed.push((n, t));
        } else if !l.starts_with('#') {
            let name = l.split(['{', ' ']).next().unwrap();
            let (family, ty) = *typed.last().expect("a TYPE line before the samples");
            assert_eq!(name, family, "{l}");
            assert!((ty == "counter") == name.ends_with("_total"), "{l}: {ty}");
        }
    }
    assert!(typed.contains(&("xbond_bond_info", "gauge")), "{text}");
    assert!(typed.contains(&("xbond_member_link_failures_total", "counter")));
}

#[test]
fn conversion_renames_counter_and_info_families() {
    let om = "# HELP a_packets Frames.\n# TYPE a_packets counter\na_packets_total{x=\"1\"} 3\n\
              # HELP b Something.\n# TYPE b info\nb_info{v=\"2\"} 1\n\
              # HELP c A gauge.\n# TYPE c gauge\nc 0.5\n# EOF\n";
    assert_eq!(
        to_prometheus_text(om),
        "# HELP a_packets_total Frames.\n# TYPE a_packets_total counter\na_packets_total{x=\"1\"} 3\n\
         # HELP b_info Something.\n# TYPE b_info gauge\nb_info{v=\"2\"} 1\n\
         # HELP c A gauge.\n# TYPE c gauge\nc 0.5\n"
    );
}

/// Every metric the Grafana dashboard in docs/ queries is one this module
/// writes (by its family name, counters without `_total`).
#[test]
fn the_grafana_dashboard_queries_families_that_exist() {
    let dash: serde_json::Value =
        serde_json::from_str(include_str!("../../../docs/grafana-xbond.json")).unwrap();
    let source = include_str!("../metrics.rs");
    let mut seen = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !(word.starts_with("xbond_") || word.starts_with("node_bonding_")) {
                    continue;
                }
                let family = word
                    .strip_suffix("_total")
                    .or(word.strip_suffix("_info"))
                    .unwrap_or(word);
                // Or named after a counter key of `xbond stats` (the socket's
                // and the control loop's).
                let stats_key =
                    |k: &str| include_str!("../daemon/calls.rs").contains(&format!("\"{k}\""));
                let named = source.contains(&format!("\"{family}\""))
                    || family.strip_prefix("xbond_xsk_").is_some_and(stats_key)
                    || family.strip_prefix("xbond_").is_some_and(stats_key);
                assert!(named, "{word} in panel {}", p["title"]);
                seen += 1;
            }
        }
    }
    assert!(seen >= 10);
}
