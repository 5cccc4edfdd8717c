//! Prometheus metrics at `/metrics` (`[daemon] metrics`, `xbond run
//! --metrics`): every scrape asks each bond's control loop for its status,
//! counters and tlb/alb tables through the same calls the control socket
//! makes, and encodes them with `prometheus-client`.
//!
//! Families: node_exporter's bonding collector (`node_bonding_slaves`,
//! `node_bonding_active`, same meaning, so its dashboards and alerts keep
//! working on an xbond bond), and `xbond_*` for the rest. Counters end in
//! `_total`, units are base units in the name.
//!
//! Format: the Prometheus text format (0.0.4); OpenMetrics when the scraper
//! asks for it in `Accept` (a Prometheus server does). `prometheus-client`
//! writes OpenMetrics; [`to_prometheus_text`] renames what the two formats
//! name differently.

use crate::albview::AlbView;
use crate::config::options::BondMode;
use crate::ipc::{self, Call, Request};
use crate::stats::StatsView;
use crate::status::BondStatus;
use anyhow::Context;
use crossbeam::channel::Sender;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a scrape waits for one bond's answer.
const ANSWER: Duration = Duration::from_secs(5);

/// One bond's state, as read at a scrape.
#[derive(Debug, Clone)]
pub struct BondState {
    pub status: BondStatus,
    pub stats: StatsView,
    pub alb: Option<AlbView>,
}

type Labels = Vec<(String, String)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Info,
}

/// One metric family and its samples, before encoding.
#[derive(Debug)]
struct Family {
    name: String,
    help: &'static str,
    kind: Kind,
    samples: Vec<(Labels, Value)>,
}

/// A sample's value: counters stay exact integers.
#[derive(Debug, Clone, Copy)]
enum Value {
    Int(u64),
    Float(f64),
}

/// The families of a scrape, in order of first use.
#[derive(Debug, Default)]
struct Families {
    list: Vec<Family>,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

impl Families {
    fn add(&mut self, name: &str, help: &'static str, kind: Kind, l: Labels, v: Value) {
        let i = match self.list.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.list.push(Family {
                    name: name.to_string(),
                    help,
                    kind,
                    samples: Vec::new(),
                });
                self.list.len() - 1
            }
        };
        self.list[i].samples.push((l, v));
    }

    /// A counter; `name` without `_total`.
    fn counter(&mut self, name: &str, help: &'static str, l: Labels, v: u64) {
        self.add(name, help, Kind::Counter, l, Value::Int(v));
    }

    fn gauge(&mut self, name: &str, help: &'static str, l: Labels, v: f64) {
        self.add(name, help, Kind::Gauge, l, Value::Float(v));
    }

    /// An info metric; `name` without `_info`.
    fn info(&mut self, name: &str, help: &'static str, l: Labels) {
        self.add(name, help, Kind::Info, l, Value::Int(1));
    }

    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.list {
            let ty = match f.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Info => MetricType::Info,
            };
            let mut me = enc.encode_descriptor(&f.name, f.help, None, ty)?;
            for (l, v) in &f.samples {
                match (f.kind, v) {
                    (Kind::Info, _) => me.encode_info(l)?,
                    (Kind::Counter, Value::Int(n)) => {
                        me.encode_family(l)?
                            .encode_counter::<NoLabelSet, _, u64>(n, None)?;
                    }
                    (Kind::Counter, Value::Float(x)) => {
                        me.encode_family(l)?
                            .encode_counter::<NoLabelSet, _, u64>(x, None)?;
                    }
                    (Kind::Gauge, Value::Int(n)) => me.encode_family(l)?.encode_gauge(n)?,
                    (Kind::Gauge, Value::Float(x)) => me.encode_family(l)?.encode_gauge(x)?,
                }
            }
        }
        Ok(())
    }
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// A counter key of `xbond stats` as a metric name part.
fn name_part(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The 802.3ad port state bits, lowest first (IEEE 802.1AX).
const LACP_BITS: [&str; 8] = [
    "lacp_activity",
    "lacp_timeout",
    "aggregation",
    "synchronization",
    "collecting",
    "distributing",
    "defaulted",
    "expired",
];

/// Every family of the bonds that answered; `missing` are those that did not.
fn families(bonds: &[BondState], missing: &[String]) -> Families {
    let mut f = Families::default();
    for b in missing {
        f.gauge(
            "xbond_bond_answering",
            "1 when the bond's control loop answered this scrape.",
            labels(&[("bond", b)]),
            0.0,
        );
    }
    for b in bonds {
        bond_families(&mut f, b);
    }
    f
}

fn bond_families(f: &mut Families, b: &BondState) {
    let st = &b.status;
    let bond = st.name.as_str();
    let lb = |extra: &[(&str, &str)]| bond_labels(bond, extra);
    f.gauge(
        "xbond_bond_answering",
        "1 when the bond's control loop answered this scrape.",
        lb(&[]),
        1.0,
    );
    let mode = st.mode.to_string();
    f.info(
        "xbond_bond",
        "The bond: mode, host interface and xbond version.",
        lb(&[
            ("mode", &mode),
            ("host_interface", &st.host_interface),
            ("version", &st.driver_version),
        ]),
    );
    f.gauge(
        "xbond_bond_carrier",
        "1 when the bond has carrier (its MII Status is up).",
        lb(&[]),
        flag(st.mii_status == "up"),
    );
    // node_exporter's bonding collector: slaves listed, and those whose
    // mii_status is up.
    let up = st.members.iter().filter(|m| m.mii_status == "up").count();
    f.gauge(
        "node_bonding_slaves",
        "Number of configured slaves per bonding interface.",
        labels(&[("master", bond)]),
        st.members.len() as f64,
    );
    f.gauge(
        "node_bonding_active",
        "Number of active slaves per bonding interface.",
        labels(&[("master", bond)]),
        up as f64,
    );
    f.gauge(
        "xbond_members_missing",
        "Configured members that do not exist on the host.",
        lb(&[]),
        st.missing_members.len() as f64,
    );
    for m in &st.members {
        let l = || lb(&[("member", &m.name)]);
        f.gauge(
            "xbond_member_up",
            "1 when the member's link is up (MII Status up).",
            l(),
            flag(m.mii_status == "up"),
        );
        f.gauge(
            "xbond_member_active",
            "1 when the member is active (not a backup).",
            l(),
            flag(m.state == "active"),
        );
        f.counter(
            "xbond_member_link_failures",
            "Times the member's link went down (Link Failure Count).",
            l(),
            u64::from(m.link_failure_count),
        );
        if let Some(s) = m.speed_mbps {
            f.gauge(
                "xbond_member_speed_bytes",
                "The member's link speed in bytes per second, as node_network_speed_bytes.",
                l(),
                f64::from(s) * 125_000.0,
            );
        }
        if let Some(a) = &m.arp {
            f.gauge(
                "xbond_member_arp_link_up",
                "1 when the ARP/NS monitor holds the member's link up.",
                l(),
                flag(a.link == "up"),
            );
        }
    }
    if let Some(a) = &st.active_slave {
        f.info(
            "xbond_active_member",
            "The member the bond transmits on (active-backup, tlb, alb).",
            lb(&[("member", a)]),
        );
    }
    for (k, v) in &b.stats.control {
        let name = format!("xbond_{}", name_part(k));
        let help = match k.as_str() {
            "active_member_changes" => {
                "Changes of the active member after the first choice (failovers)."
            }
            "foreign_slow_protocol_frames" => "Slow-protocol frames received outside 802.3ad.",
            _ => "A counter of the bond's control loop.",
        };
        f.counter(&name, help, lb(&[]), *v);
    }
    port_families(f, b);
    for r in &b.stats.arp_monitor {
        let l = || lb(&[("member", &r.member)]);
        f.counter(
            "xbond_arp_probes_sent",
            "ARP/NS probe rounds sent out of the member.",
            l(),
            r.counters.probes,
        );
        f.counter(
            "xbond_arp_valid_replies",
            "ARP/NS replies received on the member that passed validation.",
            l(),
            r.counters.valid_replies,
        );
    }
    lacp_families(f, b);
    if let Some(a) = &b.stats.alb {
        for (name, help, v) in [
            (
                "xbond_alb_arp_replies_rewritten",
                "ARP replies of the host sent with a member's MAC.",
                a.arp_replies_rewritten,
            ),
            (
                "xbond_alb_arp_updates_sent",
                "ARP replies sent to move peers to their members.",
                a.arp_updates_sent,
            ),
            (
                "xbond_tlb_tx_rebalances",
                "Rebalances of the transmit table.",
                a.tx_rebalances,
            ),
            (
                "xbond_alb_rx_rebalances",
                "Rebalances of the receive (client) table.",
                a.rx_rebalances,
            ),
            (
                "xbond_tlb_learning_packets",
                "Learning packets sent for switches.",
                a.learning_packets,
            ),
        ] {
            f.counter(name, help, lb(&[]), v);
        }
    }
    if let Some(a) = &b.alb {
        f.gauge(
            "xbond_alb_clients",
            "Entries of the balance-alb client table.",
            lb(&[]),
            a.clients.len() as f64,
        );
        f.gauge(
            "xbond_tlb_transmit_entries",
            "Hash buckets of the transmit table that carry traffic.",
            lb(&[]),
            a.tx.iter().filter(|t| t.member.is_some()).count() as f64,
        );
    }
}

/// The labels `bond="…"` and then `extra`.
fn bond_labels(bond: &str, extra: &[(&str, &str)]) -> Labels {
    let mut l = labels(&[("bond", bond)]);
    l.extend(labels(extra));
    l
}

fn port_families(f: &mut Families, b: &BondState) {
    let lb = |extra: &[(&str, &str)]| bond_labels(&b.status.name, extra);
    for p in &b.stats.ports {
        let queue = p.queue.to_string();
        let l = || lb(&[("port", &p.port), ("role", &p.role), ("queue", &queue)]);
        for (name, help, v) in [
            (
                "xbond_port_receive_packets",
                "Frames the worker read from the port's queue.",
                p.rx_packets,
            ),
            (
                "xbond_port_receive_bytes",
                "Bytes the worker read from the port's queue.",
                p.rx_bytes,
            ),
            (
                "xbond_port_transmit_packets",
                "Frames the worker put on the port's queue.",
                p.tx_packets,
            ),
            (
                "xbond_port_transmit_bytes",
                "Bytes the worker put on the port's queue.",
                p.tx_bytes,
            ),
            (
                "xbond_port_to_control_packets",
                "Frames handed to the control loop (LACPDUs, probes, host ARP).",
                p.to_control,
            ),
        ] {
            f.counter(name, help, l(), v);
        }
        for (reason, v) in &p.drops {
            let mut ll = l();
            ll.push(("reason".into(), reason.clone()));
            f.counter(
                "xbond_port_dropped_packets",
                "Frames the worker dropped, by reason (the drops of xbond stats).",
                ll,
                *v,
            );
        }
        for (k, v) in &p.xdp {
            f.counter(
                &format!("xbond_xsk_{}", name_part(k)),
                "The AF_XDP socket's counter of that name (XDP_STATISTICS).",
                l(),
                *v,
            );
        }
        let s = &p.socket;
        let yes = |b: bool| if b { "true" } else { "false" };
        let mut ll = l();
        ll.extend(labels(&[
            ("xdp_mode", &s.xdp_mode),
            ("bind", &s.bind),
            ("multi_buffer", yes(s.multi_buffer)),
            ("tx_metadata", yes(s.tx_metadata)),
            ("af_packet", yes(s.af_packet)),
        ]));
        f.info(
            "xbond_socket",
            "What the queue's socket got: XDP mode, bind, multi-buffer, TX metadata, AF_PACKET.",
            ll,
        );
    }
}

fn lacp_families(f: &mut Families, b: &BondState) {
    let lb = |extra: &[(&str, &str)]| bond_labels(&b.status.name, extra);
    let st = &b.status;
    let Some(ad) = &st.ad else { return };
    let active = ad.active_aggregator.as_ref();
    if let Some(a) = active {
        f.gauge(
            "xbond_lacp_active_aggregator_id",
            "The id of the bond's active aggregator.",
            lb(&[]),
            f64::from(a.id),
        );
        f.gauge(
            "xbond_lacp_active_aggregator_ports",
            "Members in the bond's active aggregator.",
            lb(&[]),
            f64::from(a.ports),
        );
    }
    f.gauge(
        "xbond_lacp_fallback",
        "1 when no LACP partner answered and the bond runs as active-backup.",
        lb(&[]),
        flag(ad.fallback),
    );
    // Aggregating as configured: every configured member exists, is in the
    // active aggregator and distributes, all with one partner.
    let partners: Vec<&str> = st
        .members
        .iter()
        .filter_map(|m| m.ad.as_ref())
        .map(|p| p.partner.system_mac.as_str())
        .collect();
    let as_configured = active.is_some()
        && st.missing_members.is_empty()
        && !st.members.is_empty()
        && st.members.iter().all(|m| {
            m.ad.as_ref()
                .is_some_and(|p| p.distributing && p.aggregator_id == active.map(|a| a.id))
        })
        && partners.windows(2).all(|w| w[0] == w[1])
        && partners.first().is_some_and(|p| *p != "00:00:00:00:00:00");
    f.gauge(
        "xbond_lacp_aggregating_as_configured",
        "1 when every configured member distributes in one aggregator with the same partner.",
        lb(&[]),
        flag(as_configured),
    );
    for m in &st.members {
        let Some(p) = &m.ad else { continue };
        let l = |extra: &[(&str, &str)]| {
            let mut l = lb(&[("member", &m.name)]);
            l.extend(labels(extra));
            l
        };
        for (side, d) in [("actor", &p.actor), ("partner", &p.partner)] {
            for (i, bit) in LACP_BITS.iter().enumerate() {
                f.gauge(
                    "xbond_lacp_port_state",
                    "One bit of the member's LACP port state, for the actor or the partner.",
                    l(&[("side", side), ("bit", bit)]),
                    flag(d.port_state & (1 << i) != 0),
                );
            }
        }
        if let Some(id) = p.aggregator_id {
            f.gauge(
                "xbond_lacp_aggregator_id",
                "The aggregator the member is attached to.",
                l(&[]),
                f64::from(id),
            );
        }
        let system = format!("{},{}", p.partner.system_priority, p.partner.system_mac);
        let key = p.partner.key.to_string();
        let port = p.partner.port_number.to_string();
        f.info(
            "xbond_lacp_partner",
            "The member's LACP partner: system (priority,MAC), key and port.",
            l(&[
                ("partner_system", &system),
                ("partner_key", &key),
                ("partner_port", &port),
            ]),
        );
        f.gauge(
            "xbond_lacp_distributing",
            "1 when the member distributes (transmits in the aggregator).",
            l(&[]),
            flag(p.distributing),
        );
        for (side, state, count) in [
            ("actor", &p.actor_churn_state, p.actor_churned_count),
            ("partner", &p.partner_churn_state, p.partner_churned_count),
        ] {
            f.gauge(
                "xbond_lacp_churned",
                "1 while the member's churn machine is in the churned state.",
                l(&[("side", side)]),
                flag(state == "churned"),
            );
            f.counter(
                "xbond_lacp_churns",
                "Times the member's churn machine entered the churned state.",
                l(&[("side", side)]),
                u64::from(count),
            );
        }
    }
    for r in &b.stats.lacp {
        let l = || lb(&[("member", &r.member)]);
        let c = &r.counters;
        for (name, help, v) in [
            ("xbond_lacp_pdus_received", "LACPDUs received.", c.lacpdu_rx),
            ("xbond_lacp_pdus_sent", "LACPDUs sent.", c.lacpdu_tx),
            (
                "xbond_lacp_markers_received",
                "Marker PDUs received.",
                c.marker_rx,
            ),
            (
                "xbond_lacp_marker_responses_sent",
                "Marker responses sent.",
                c.marker_response_tx,
            ),
            (
                "xbond_lacp_illegal_received",
                "Slow-protocol frames that do not parse.",
                c.illegal_rx,
            ),
            (
                "xbond_lacp_unknown_received",
                "Slow-protocol frames of a subtype xbond does not speak.",
                c.unknown_rx,
            ),
            (
                "xbond_lacp_looped_received",
                "LACPDUs carrying this bond's own system id.",
                c.looped_rx,
            ),
        ] {
            f.counter(name, help, l(), v);
        }
    }
}

fn read_bond(tx: &Sender<Call>) -> anyhow::Result<BondState> {
    let status: BondStatus = serde_json::from_value(ipc::ask(tx, Request::Status, ANSWER)?)?;
    let stats: StatsView = serde_json::from_value(ipc::ask(tx, Request::Stats, ANSWER)?)?;
    let alb = if matches!(status.mode, BondMode::BalanceTlb | BondMode::BalanceAlb) {
        Some(serde_json::from_value(ipc::ask(tx, Request::Alb, ANSWER)?)?)
    } else {
        None
    };
    Ok(BondState { status, stats, alb })
}

/// The collector: reads every bond's live state at scrape time.
#[derive(Debug)]
struct Bonds {
    bonds: Vec<(String, Sender<Call>)>,
}

impl Collector for Bonds {
    fn encode(&self, enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut states = Vec::new();
        let mut missing = Vec::new();
        for (name, tx) in &self.bonds {
            match read_bond(tx) {
                Ok(s) => states.push(s),
                Err(e) => {
                    tracing::debug!(bond = %name, "metrics: {e:#}");
                    missing.push(name.clone());
                }
            }
        }
        families(&states, &missing).encode(enc)
    }
}

/// The OpenMetrics text of `registry`.
fn openmetrics(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; a collector's error ends the text
    // early, which the scraper sees as a missing `# EOF`.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// OpenMetrics text as the Prometheus text format: a counter family is
/// named with its `_total`, an info family with its `_info` (a gauge there);
/// no `# UNIT` or `# EOF` lines.
pub fn to_prometheus_text(om: &str) -> String {
    let mut types: BTreeMap<&str, &str> = BTreeMap::new();
    for l in om.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            if let Some((name, ty)) = rest.split_once(' ') {
                types.insert(name, ty);
            }
        }
    }
    let renamed = |name: &str| -> (String, &'static str) {
        match types.get(name).copied() {
            Some("counter") => (format!("{name}_total"), "counter"),
            Some("info") => (format!("{name}_info"), "gauge"),
            Some("gauge") => (name.to_string(), "gauge"),
            _ => (name.to_string(), "untyped"),
        }
    };
    let mut out = String::with_capacity(om.len());
    for l in om.lines() {
        if l == "# EOF" || l.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = l.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push_str(&format!("# HELP {} {help}\n", renamed(name).0));
        } else if let Some(rest) = l.strip_prefix("# TYPE ") {
            let name = rest.split_once(' ').map_or(rest, |(n, _)| n);
            let (n, ty) = renamed(name);
            out.push_str(&format!("# TYPE {n} {ty}\n"));
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serve `/metrics` for `bonds` on `addr`, on a thread of its own; one
/// request at a time (a scrape is a few calls into each control loop).
pub fn serve(addr: std::net::SocketAddr, bonds: Vec<(String, Sender<Call>)>) -> anyhow::Result<()> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("metrics: listen on {addr}"))?;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Bonds { bonds }));
    std::thread::Builder::new()
        .name("xbond-metrics".into())
        .spawn(move || {
            for req in server.incoming_requests() {
                respond(&registry, req);
            }
        })?;
    tracing::info!("metrics on http://{addr}/metrics");
    Ok(())
}

fn respond(registry: &Registry, req: tiny_http::Request) {
    let header = |v: &str| {
        tiny_http::Header::from_bytes(&b"Content-Type"[..], v.as_bytes())
            .expect("a constant, valid header")
    };
    let path = req.url().split('?').next().unwrap_or("");
    let resp = match (req.method(), path) {
        (tiny_http::Method::Get, "/metrics") => {
            let om = req.headers().iter().any(|h| {
                h.field.equiv("Accept") && h.value.as_str().contains("application/openmetrics-text")
            });
            let text = openmetrics(registry);
            if om {
                tiny_http::Response::from_string(text).with_header(header(OPENMETRICS))
            } else {
                tiny_http::Response::from_string(to_prometheus_text(&text))
                    .with_header(header(PROMETHEUS_TEXT))
            }
        }
        (tiny_http::Method::Get, "/") => {
            tiny_http::Response::from_string("xbond metrics: /metrics\n")
                .with_header(header("text/plain; charset=utf-8"))
        }
        _ => tiny_http::Response::from_string("not found\n").with_status_code(404),
    };
    if let Err(e) = req.respond(resp) {
        tracing::debug!("metrics: reply: {e}");
    }
}

#[cfg(test)]
mod tests;
