//! `xbond stats`: the daemon's per-port counters as a table, and rates per
//! second between two readings.

use crate::lacp::port::PortCounters;
use crate::monitor::arp::ArpCounters;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortRow {
    pub port: String,
    pub role: String,
    pub queue: u32,
    pub worker: usize,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub to_control: u64,
    pub drops: BTreeMap<String, u64>,
    pub xdp: BTreeMap<String, u64>,
    /// What the queue's socket got from the kernel.
    #[serde(default)]
    pub socket: SocketView,
}

/// How one AF_XDP socket runs: XDP attach mode (`native`, `generic`),
/// bind (`zero-copy`, `copy`), multi-buffer frames, TX checksum metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketView {
    pub xdp_mode: String,
    pub bind: String,
    pub multi_buffer: bool,
    pub tx_metadata: bool,
    /// The bond's own interface, read and written through AF_PACKET with
    /// virtio-net headers (`host_port = "af_packet"`); its AF_XDP socket
    /// carries what is not TCP.
    #[serde(default)]
    pub af_packet: bool,
}

impl SocketView {
    /// `native XDP, copy, multi-buffer, TX checksum metadata`; for an
    /// AF_PACKET host port, `AF_PACKET (whole TCP packets, receive
    /// coalescing), AF_XDP copy, ...`.
    pub fn describe(&self) -> String {
        let mut parts = if self.af_packet {
            vec![
                "AF_PACKET (whole TCP packets, receive coalescing)".to_string(),
                format!("AF_XDP {}", self.bind),
            ]
        } else {
            vec![format!("{} XDP", self.xdp_mode), self.bind.clone()]
        };
        parts.push(
            if self.multi_buffer {
                "multi-buffer"
            } else {
                "single buffer"
            }
            .into(),
        );
        parts.push(
            if self.tx_metadata {
                "TX checksum metadata"
            } else {
                "checksums in software"
            }
            .into(),
        );
        parts.join(", ")
    }
}

/// 802.3ad: one member's LACPDU and marker counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LacpRow {
    pub member: String,
    pub counters: PortCounters,
}

/// ARP/NS monitoring: one member's probe and reply counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArpRow {
    pub member: String,
    #[serde(flatten)]
    pub counters: ArpCounters,
}

/// balance-tlb/alb: what the balancing did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlbStats {
    /// ARP replies of the host sent with a member's MAC (by the data path
    /// or control).
    pub arp_replies_rewritten: u64,
    /// ARP replies sent to move peers to their members.
    pub arp_updates_sent: u64,
    pub tx_rebalances: u64,
    pub rx_rebalances: u64,
    pub learning_packets: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatsView {
    pub bond: String,
    pub ports: Vec<PortRow>,
    pub control: BTreeMap<String, u64>,
    #[serde(default)]
    pub lacp: Vec<LacpRow>,
    #[serde(default)]
    pub arp_monitor: Vec<ArpRow>,
    #[serde(default)]
    pub alb: Option<AlbStats>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rate {
    pub port: String,
    pub queue: u32,
    pub rx_pps: f64,
    pub rx_bps: f64,
    pub tx_pps: f64,
    pub tx_bps: f64,
    pub drops_ps: f64,
}

impl StatsView {
    pub fn rates_since(&self, before: &StatsView, secs: f64) -> Vec<Rate> {
        let secs = secs.max(1e-6);
        self.ports
            .iter()
            .map(|p| {
                let b = before
                    .ports
                    .iter()
                    .find(|q| q.port == p.port && q.queue == p.queue);
                let d = |now: u64, f: fn(&PortRow) -> u64| {
                    now.saturating_sub(b.map_or(0, f)) as f64 / secs
                };
                let drops_now: u64 = p.drops.values().sum();
                let drops_then: u64 = b.map_or(0, |b| b.drops.values().sum());
                Rate {
                    port: p.port.clone(),
                    queue: p.queue,
                    rx_pps: d(p.rx_packets, |r| r.rx_packets),
                    rx_bps: d(p.rx_bytes, |r| r.rx_bytes) * 8.0,
                    tx_pps: d(p.tx_packets, |r| r.tx_packets),
                    tx_bps: d(p.tx_bytes, |r| r.tx_bytes) * 8.0,
                    drops_ps: drops_now.saturating_sub(drops_then) as f64 / secs,
                }
            })
            .collect()
    }
}

/// The table `xbond stats` prints; with rates, per-second columns.
pub fn format_stats(s: &StatsView, rates: Option<&[Rate]>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "bond {}", s.bond);
    match rates {
        None => write_ports(&mut out, s),
        Some(rates) => write_rates(&mut out, rates),
    }
    write_protocols(&mut out, s);
    out
}

/// One line per port and queue with its totals and its part of the
/// members' transmit load; under it the drops by reason, the socket and
/// the kernel's XDP counters that are not zero.
fn write_ports(out: &mut String, s: &StatsView) {
    let _ = writeln!(
        out,
        "{:<16} {:<6} {:>3} {:>12} {:>14} {:>12} {:>14} {:>7} {:>10}",
        "PORT", "ROLE", "Q", "RX_PKTS", "RX_BYTES", "TX_PKTS", "TX_BYTES", "TX_%", "DROPS"
    );
    let member_tx: u64 = s
        .ports
        .iter()
        .filter(|p| p.role == "member")
        .map(|p| p.tx_packets)
        .sum();
    for p in &s.ports {
        let drops: u64 = p.drops.values().sum();
        let share = if p.role == "member" && member_tx > 0 {
            format!("{:.1}", 100.0 * p.tx_packets as f64 / member_tx as f64)
        } else {
            "-".to_string()
        };
        let _ = writeln!(
            out,
            "{:<16} {:<6} {:>3} {:>12} {:>14} {:>12} {:>14} {:>7} {:>10}",
            p.port,
            p.role,
            p.queue,
            p.rx_packets,
            p.rx_bytes,
            p.tx_packets,
            p.tx_bytes,
            share,
            drops
        );
        for (reason, n) in p.drops.iter().filter(|(_, n)| **n > 0) {
            let _ = writeln!(out, "    drop {reason}: {n}");
        }
        if !p.socket.xdp_mode.is_empty() {
            let _ = writeln!(out, "    socket: {}", p.socket.describe());
        }
        for (k, n) in p.xdp.iter().filter(|(_, n)| **n > 0) {
            let _ = writeln!(out, "    xdp {k}: {n}");
        }
    }
}

/// `--interval`: per second, like sar -n DEV.
fn write_rates(out: &mut String, rates: &[Rate]) {
    let _ = writeln!(
        out,
        "{:<16} {:>3} {:>12} {:>12} {:>12} {:>12} {:>10}",
        "PORT", "Q", "RX_PPS", "RX_MBPS", "TX_PPS", "TX_MBPS", "DROP/S"
    );
    for r in rates {
        let _ = writeln!(
            out,
            "{:<16} {:>3} {:>12.1} {:>12.3} {:>12.1} {:>12.3} {:>10.1}",
            r.port,
            r.queue,
            r.rx_pps,
            r.rx_bps / 1e6,
            r.tx_pps,
            r.tx_bps / 1e6,
            r.drops_ps
        );
    }
}

/// The protocols' counters: LACP per member, the ARP/NS monitor, ALB, and
/// control's own.
fn write_protocols(out: &mut String, s: &StatsView) {
    if !s.lacp.is_empty() {
        let _ = writeln!(
            out,
            "{:<16} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>7}",
            "LACP",
            "LACPDU_RX",
            "LACPDU_TX",
            "MARKER_RX",
            "MARKER_TX",
            "UNKNOWN",
            "ILLEGAL",
            "LOOPED"
        );
        for l in &s.lacp {
            let c = &l.counters;
            let _ = writeln!(
                out,
                "{:<16} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>7}",
                l.member,
                c.lacpdu_rx,
                c.lacpdu_tx,
                c.marker_rx,
                c.marker_response_tx,
                c.unknown_rx,
                c.illegal_rx,
                c.looped_rx
            );
        }
    }
    if !s.arp_monitor.is_empty() {
        let _ = writeln!(
            out,
            "{:<16} {:>10} {:>13}",
            "ARP/NS MONITOR", "PROBES", "VALID_REPLIES"
        );
        for a in &s.arp_monitor {
            let _ = writeln!(
                out,
                "{:<16} {:>10} {:>13}",
                a.member, a.counters.probes, a.counters.valid_replies
            );
        }
    }
    if let Some(a) = &s.alb {
        let _ = writeln!(
            out,
            "alb: {} ARP replies rewritten, {} ARP updates sent, {} tx rebalances, {} rx rebalances, {} learning packets",
            a.arp_replies_rewritten, a.arp_updates_sent, a.tx_rebalances, a.rx_rebalances, a.learning_packets
        );
    }
    for (k, v) in &s.control {
        let _ = writeln!(out, "control {k}: {v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(rx: u64, drops: u64) -> PortRow {
        PortRow {
            port: "m0".into(),
            role: "member".into(),
            queue: 0,
            worker: 0,
            rx_packets: rx,
            rx_bytes: rx * 100,
            tx_packets: 0,
            tx_bytes: 0,
            to_control: 0,
            drops: [("inactive_member".to_string(), drops)].into(),
            xdp: BTreeMap::new(),
            socket: SocketView {
                xdp_mode: "native".into(),
                bind: "copy".into(),
                multi_buffer: true,
                tx_metadata: true,
                af_packet: false,
            },
        }
    }

    #[test]
    fn rates_are_differences_over_time() {
        let a = StatsView {
            bond: "b".into(),
            ports: vec![row(1000, 0)],
            control: BTreeMap::new(),
            lacp: Vec::new(),
            arp_monitor: Vec::new(),
            alb: None,
        };
        let b = StatsView {
            bond: "b".into(),
            ports: vec![row(3000, 10)],
            control: BTreeMap::new(),
            lacp: Vec::new(),
            arp_monitor: Vec::new(),
            alb: None,
        };
        let r = b.rates_since(&a, 2.0);
        assert_eq!(r[0].rx_pps, 1000.0);
        assert_eq!(r[0].rx_bps, 800_000.0);
        assert_eq!(r[0].drops_ps, 5.0);
        let text = format_stats(&b, None);
        assert!(text.contains("drop inactive_member: 10"), "{text}");
    }

    #[test]
    fn the_table_shows_each_members_share_of_tx() {
        let mut m0 = row(0, 0);
        m0.tx_packets = 300;
        let mut m1 = row(0, 0);
        m1.port = "m1".into();
        m1.tx_packets = 100;
        let mut host = row(0, 0);
        host.port = "bond0-xb".into();
        host.role = "host".into();
        host.tx_packets = 999;
        let v = StatsView {
            bond: "b".into(),
            ports: vec![m0, m1, host],
            control: BTreeMap::new(),
            lacp: Vec::new(),
            arp_monitor: Vec::new(),
            alb: None,
        };
        let mut v = v;
        v.lacp.push(LacpRow {
            member: "m0".into(),
            counters: PortCounters {
                lacpdu_rx: 41,
                lacpdu_tx: 43,
                illegal_rx: 2,
                ..Default::default()
            },
        });
        let text = format_stats(&v, None);
        let line = |p: &str| text.lines().find(|l| l.starts_with(p)).unwrap().to_string();
        let lacp = text
            .lines()
            .skip_while(|l| !l.starts_with("LACP "))
            .nth(1)
            .unwrap();
        let cols: Vec<&str> = lacp.split_whitespace().collect();
        assert_eq!(cols, ["m0", "41", "43", "0", "0", "0", "2", "0"], "{text}");
        assert!(line("m0 ").contains(" 75.0 "), "{text}");
        assert!(line("m1 ").contains(" 25.0 "), "{text}");
        assert!(line("bond0-xb").contains(" - "), "{text}");
    }
}
