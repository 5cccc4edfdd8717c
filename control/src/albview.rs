//! `xbond alb BOND`: balance-tlb/alb's tables as the control thread holds
//! them — each member's MAC and load, the receive client table (peer,
//! peer MAC, assigned member) and the transmit table — which the kernel
//! does not show.

use serde::{Deserialize, Serialize};
use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlbMember {
    pub name: String,
    /// The MAC the member sends from and peers reach it by.
    pub mac: String,
    pub perm_hwaddr: String,
    pub active: bool,
    pub can_tx: bool,
    /// Bytes per second of the destinations assigned to it.
    pub tx_load: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlbClient {
    pub peer_ip: String,
    pub peer_mac: String,
    /// The bond's address the peer talks to.
    pub local_ip: String,
    pub member: Option<String>,
    /// The MAC the peer was given.
    pub member_mac: Option<String>,
    pub vlan: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlbBucket {
    pub bucket: u8,
    pub member: Option<String>,
    /// Bytes per second over the last rebalance interval.
    pub load: u64,
    /// Bytes since the last rebalance.
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlbView {
    pub bond: String,
    pub mode: String,
    pub tlb_dynamic_lb: bool,
    pub rebalance_interval_s: u64,
    pub bond_mac: String,
    pub members: Vec<AlbMember>,
    /// balance-alb only; newest first.
    pub clients: Vec<AlbClient>,
    pub tx: Vec<AlbBucket>,
}

fn or_dash(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("-")
}

/// The tables as `xbond alb` prints them.
pub fn format_alb(v: &AlbView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "bond {} ({}, tlb_dynamic_lb {}, rebalance every {} s), bond MAC {}",
        v.bond,
        v.mode,
        u8::from(v.tlb_dynamic_lb),
        v.rebalance_interval_s,
        v.bond_mac
    );
    let _ = writeln!(
        out,
        "{:<16} {:<17} {:<17} {:<7} {:>14}",
        "MEMBER", "MAC", "PERMANENT", "STATE", "TX_LOAD_B/S"
    );
    for m in &v.members {
        let state = match (m.active, m.can_tx) {
            (true, _) => "active",
            (false, true) => "up",
            (false, false) => "down",
        };
        let _ = writeln!(
            out,
            "{:<16} {:<17} {:<17} {:<7} {:>14}",
            m.name, m.mac, m.perm_hwaddr, state, m.tx_load
        );
    }
    if v.mode == "balance-alb" {
        let _ = writeln!(
            out,
            "\n{:<16} {:<17} {:<16} {:<16} {:<17} {:>4}",
            "PEER", "PEER_MAC", "LOCAL", "MEMBER", "MEMBER_MAC", "VLAN"
        );
        for c in &v.clients {
            let _ = writeln!(
                out,
                "{:<16} {:<17} {:<16} {:<16} {:<17} {:>4}",
                c.peer_ip,
                c.peer_mac,
                c.local_ip,
                or_dash(&c.member),
                or_dash(&c.member_mac),
                c.vlan
            );
        }
    }
    if v.tlb_dynamic_lb {
        let _ = writeln!(
            out,
            "\n{:<7} {:<16} {:>14} {:>14}",
            "BUCKET", "MEMBER", "LOAD_B/S", "BYTES"
        );
        for b in &v.tx {
            let _ = writeln!(
                out,
                "{:<7} {:<16} {:>14} {:>14}",
                b.bucket,
                or_dash(&b.member),
                b.load,
                b.bytes
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_table_lists_peer_peer_mac_and_member() {
        let v = AlbView {
            bond: "bond0".into(),
            mode: "balance-alb".into(),
            tlb_dynamic_lb: true,
            rebalance_interval_s: 10,
            bond_mac: "02:00:00:00:00:0a".into(),
            members: vec![AlbMember {
                name: "m0".into(),
                mac: "02:00:00:00:00:0a".into(),
                perm_hwaddr: "02:00:00:00:00:0a".into(),
                active: true,
                can_tx: true,
                tx_load: 1250,
            }],
            clients: vec![AlbClient {
                peer_ip: "198.18.0.12".into(),
                peer_mac: "02:00:00:00:09:09".into(),
                local_ip: "198.18.0.1".into(),
                member: Some("m1".into()),
                member_mac: Some("02:00:00:00:00:0b".into()),
                vlan: 0,
            }],
            tx: vec![AlbBucket {
                bucket: 212,
                member: None,
                load: 0,
                bytes: 60,
            }],
        };
        let t = format_alb(&v);
        let row = |p: &str| {
            t.lines()
                .find(|l| l.starts_with(p))
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            row("198.18.0.12"),
            [
                "198.18.0.12",
                "02:00:00:00:09:09",
                "198.18.0.1",
                "m1",
                "02:00:00:00:00:0b",
                "0"
            ]
        );
        assert_eq!(
            row("m0 "),
            [
                "m0",
                "02:00:00:00:00:0a",
                "02:00:00:00:00:0a",
                "active",
                "1250"
            ]
        );
        assert_eq!(row("212 "), ["212", "-", "0", "60"]);
    }
}
