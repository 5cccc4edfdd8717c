//! The bond's state as users read it: the exact layout of the kernel's
//! `/proc/net/bonding/BOND` (bond_procfs.c: same fields, order and values), and
//! the same facts as JSON.

use crate::config::options::BondMode;
use crate::lacp::{LacpStatus, PduDetails, PortStatus};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// The version xbond prints where the kernel prints its own.
pub const DRIVER_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"), "-xbond");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BondStatus {
    pub name: String,
    pub driver_version: String,
    pub mode: BondMode,
    /// `none`, `active` or `follow`.
    pub fail_over_mac: String,
    /// `(name, number)` of the transmit hash policy.
    pub xmit_hash_policy: (String, u64),
    pub primary: Option<String>,
    pub primary_reselect: String,
    pub active_slave: Option<String>,
    /// `up` or `down`: the bond's carrier.
    pub mii_status: String,
    pub miimon: u32,
    pub updelay: u32,
    pub downdelay: u32,
    pub peer_notif_delay: u32,
    pub arp_interval: u32,
    pub arp_missed_max: u8,
    pub arp_ip_target: Vec<String>,
    pub ns_ip6_target: Vec<String>,
    #[serde(default)]
    pub arp_validate: String,
    #[serde(default)]
    pub arp_all_targets: String,
    /// xbond's `link_watch_policy`, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_watch_policy: Option<String>,
    pub mac: String,
    pub host_interface: String,
    pub members: Vec<MemberStatus>,
    /// Configured members that did not exist when the bond started.
    pub missing_members: Vec<String>,
    /// 802.3ad: the "802.3ad info" section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad: Option<LacpStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub name: String,
    /// `up`, `going down`, `down` or `going back`.
    pub mii_status: String,
    /// `active` or `backup` (the kernel's `bond_slave_state`).
    pub state: String,
    pub speed_mbps: Option<u32>,
    /// `full`, `half`, or `None` when unknown.
    pub duplex: Option<String>,
    pub link_failure_count: u32,
    /// The member's `prio` (choosing the active member; 0 by default).
    #[serde(default)]
    pub prio: i32,
    pub perm_hwaddr: String,
    pub queue_id: u16,
    pub ifindex: u32,
    pub rx_queues: u32,
    /// 802.3ad: aggregator, churn and the actor/partner details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad: Option<PortStatus>,
    /// ARP/NS monitoring: what the ARP monitor says of the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arp: Option<MemberArpStatus>,
}

/// The ARP monitor's view of a member (JSON only; the kernel's layout has
/// no such lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberArpStatus {
    /// The ARP monitor's own verdict, before `link_watch_policy` combines
    /// it with carrier.
    pub link: String,
    /// Milliseconds since the last reply that passed validation.
    pub last_valid_rx_ms_ago: Option<u64>,
    /// Probe rounds sent out of the member.
    pub probes: u64,
    /// Replies that passed validation.
    pub valid_replies: u64,
}

impl BondStatus {
    /// The text of `/proc/net/bonding/BOND`.
    pub fn to_proc(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_proc(&mut s);
        s
    }

    fn write_proc(&self, s: &mut String) -> std::fmt::Result {
        writeln!(
            s,
            "Ethernet Channel Bonding Driver: {}",
            self.driver_version
        )?;
        writeln!(s)?;
        write!(s, "Bonding Mode: {}", self.mode.proc_name())?;
        if self.mode == BondMode::ActiveBackup && self.fail_over_mac != "none" {
            write!(s, " (fail_over_mac {})", self.fail_over_mac)?;
        }
        writeln!(s)?;
        if self.mode.uses_xmit_hash() {
            writeln!(
                s,
                "Transmit Hash Policy: {} ({})",
                self.xmit_hash_policy.0, self.xmit_hash_policy.1
            )?;
        }
        if self.mode.uses_primary() {
            write!(
                s,
                "Primary Slave: {}",
                self.primary.as_deref().unwrap_or("None")
            )?;
            if self.primary.is_some() {
                write!(s, " (primary_reselect {})", self.primary_reselect)?;
            }
            writeln!(s)?;
            writeln!(
                s,
                "Currently Active Slave: {}",
                self.active_slave.as_deref().unwrap_or("None")
            )?;
        }
        writeln!(s, "MII Status: {}", self.mii_status)?;
        writeln!(s, "MII Polling Interval (ms): {}", self.miimon)?;
        writeln!(s, "Up Delay (ms): {}", self.updelay)?;
        writeln!(s, "Down Delay (ms): {}", self.downdelay)?;
        writeln!(s, "Peer Notification Delay (ms): {}", self.peer_notif_delay)?;
        if self.arp_interval > 0 {
            writeln!(s, "ARP Polling Interval (ms): {}", self.arp_interval)?;
            writeln!(s, "ARP Missed Max: {}", self.arp_missed_max)?;
            writeln!(
                s,
                "ARP IP target/s (n.n.n.n form):{}",
                join_targets(&self.arp_ip_target)
            )?;
            writeln!(
                s,
                "NS IPv6 target/s (xx::xx form):{}",
                join_targets(&self.ns_ip6_target)
            )?;
        }
        if let (BondMode::Ieee8023ad, Some(ad)) = (self.mode, &self.ad) {
            writeln!(s)?;
            writeln!(s, "802.3ad info")?;
            writeln!(
                s,
                "LACP active: {}",
                if ad.lacp_active { "on" } else { "off" }
            )?;
            writeln!(s, "LACP rate: {}", ad.lacp_rate)?;
            writeln!(s, "Min links: {}", ad.min_links)?;
            writeln!(
                s,
                "Aggregator selection policy (ad_select): {}",
                ad.ad_select
            )?;
            writeln!(s, "System priority: {}", ad.system_priority)?;
            writeln!(s, "System MAC address: {}", ad.system_mac)?;
            match &ad.active_aggregator {
                Some(a) => {
                    writeln!(s, "Active Aggregator Info:")?;
                    writeln!(s, "\tAggregator ID: {}", a.id)?;
                    writeln!(s, "\tNumber of ports: {}", a.ports)?;
                    writeln!(s, "\tActor Key: {}", a.actor_key)?;
                    writeln!(s, "\tPartner Key: {}", a.partner_key)?;
                    writeln!(s, "\tPartner Mac Address: {}", a.partner_mac)?;
                }
                None => writeln!(s, "bond {} has no active aggregator", self.name)?,
            }
        }
        for m in &self.members {
            writeln!(s)?;
            writeln!(s, "Slave Interface: {}", m.name)?;
            writeln!(s, "MII Status: {}", m.mii_status)?;
            match m.speed_mbps {
                Some(v) => writeln!(s, "Speed: {v} Mbps")?,
                None => writeln!(s, "Speed: Unknown")?,
            }
            writeln!(s, "Duplex: {}", m.duplex.as_deref().unwrap_or("Unknown"))?;
            writeln!(s, "Link Failure Count: {}", m.link_failure_count)?;
            writeln!(s, "Permanent HW addr: {}", m.perm_hwaddr)?;
            writeln!(s, "Slave queue ID: {}", m.queue_id)?;
            if self.mode == BondMode::Ieee8023ad {
                match m
                    .ad
                    .as_ref()
                    .and_then(|a| a.aggregator_id.map(|id| (id, a)))
                {
                    Some((id, a)) => {
                        writeln!(s, "Aggregator ID: {id}")?;
                        writeln!(s, "Actor Churn State: {}", a.actor_churn_state)?;
                        writeln!(s, "Partner Churn State: {}", a.partner_churn_state)?;
                        writeln!(s, "Actor Churned Count: {}", a.actor_churned_count)?;
                        writeln!(s, "Partner Churned Count: {}", a.partner_churned_count)?;
                        write_pdu_details(s, "actor", "port key", &a.actor)?;
                        write_pdu_details(s, "partner", "oper key", &a.partner)?;
                    }
                    None => writeln!(s, "Aggregator ID: N/A")?,
                }
            }
        }
        Ok(())
    }
}

/// One "details ... lacp pdu" block of a member (bond_procfs.c).
fn write_pdu_details(s: &mut String, side: &str, key: &str, d: &PduDetails) -> std::fmt::Result {
    writeln!(s, "details {side} lacp pdu:")?;
    writeln!(s, "    system priority: {}", d.system_priority)?;
    writeln!(s, "    system mac address: {}", d.system_mac)?;
    writeln!(s, "    {key}: {}", d.key)?;
    writeln!(s, "    port priority: {}", d.port_priority)?;
    writeln!(s, "    port number: {}", d.port_number)?;
    writeln!(s, "    port state: {}", d.port_state)
}

fn join_targets(t: &[String]) -> String {
    t.iter()
        .map(|a| format!(" {a}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real `/proc/net/bonding/bond0` of an active-backup bond on Linux 6.12
    /// (Debian), with two members, the first active.
    const KERNEL_SAMPLE: &str = "Ethernet Channel Bonding Driver: v6.12.57+deb13-amd64

Bonding Mode: fault-tolerance (active-backup)
Primary Slave: None
Currently Active Slave: enp8s0
MII Status: up
MII Polling Interval (ms): 100
Up Delay (ms): 0
Down Delay (ms): 0
Peer Notification Delay (ms): 0

Slave Interface: enp8s0
MII Status: up
Speed: 10000 Mbps
Duplex: full
Link Failure Count: 0
Permanent HW addr: 52:54:00:7c:75:2c
Slave queue ID: 0

Slave Interface: enp9s0
MII Status: up
Speed: 10000 Mbps
Duplex: full
Link Failure Count: 1
Permanent HW addr: 52:54:00:1f:39:0a
Slave queue ID: 0
";

    fn member(name: &str, mac: &str, failures: u32) -> MemberStatus {
        MemberStatus {
            name: name.into(),
            mii_status: "up".into(),
            state: "backup".into(),
            speed_mbps: Some(10000),
            duplex: Some("full".into()),
            link_failure_count: failures,
            prio: 0,
            perm_hwaddr: mac.into(),
            queue_id: 0,
            ifindex: 2,
            rx_queues: 1,
            ad: None,
            arp: None,
        }
    }

    pub(crate) fn sample() -> BondStatus {
        BondStatus {
            name: "bond0".into(),
            driver_version: "v6.12.57+deb13-amd64".into(),
            mode: BondMode::ActiveBackup,
            fail_over_mac: "none".into(),
            xmit_hash_policy: ("layer2".into(), 0),
            primary: None,
            primary_reselect: "always".into(),
            active_slave: Some("enp8s0".into()),
            mii_status: "up".into(),
            miimon: 100,
            updelay: 0,
            downdelay: 0,
            peer_notif_delay: 0,
            arp_interval: 0,
            arp_missed_max: 2,
            arp_ip_target: vec![],
            ns_ip6_target: vec![],
            arp_validate: "none".into(),
            arp_all_targets: "any".into(),
            link_watch_policy: None,
            mac: "52:54:00:7c:75:2c".into(),
            host_interface: "bond0".into(),
            members: vec![
                member("enp8s0", "52:54:00:7c:75:2c", 0),
                member("enp9s0", "52:54:00:1f:39:0a", 1),
            ],
            missing_members: vec![],
            ad: None,
        }
    }

    #[test]
    fn same_state_gives_the_kernels_text_line_for_line() {
        let ours = sample().to_proc();
        let theirs: Vec<&str> = KERNEL_SAMPLE.lines().collect();
        let mine: Vec<&str> = ours.lines().collect();
        assert_eq!(mine.len(), theirs.len(), "{ours}");
        for (i, (a, b)) in mine.iter().zip(&theirs).enumerate() {
            // Field by field: the name (before ':') and the value must match.
            assert_eq!(a, b, "line {}", i + 1);
        }
    }

    #[test]
    fn primary_fail_over_mac_unknown_speed_and_states() {
        let mut st = sample();
        st.primary = Some("enp9s0".into());
        st.primary_reselect = "better".into();
        st.fail_over_mac = "active".into();
        st.members[1].mii_status = "going back".into();
        st.members[1].speed_mbps = None;
        st.members[1].duplex = None;
        st.active_slave = None;
        st.mii_status = "down".into();
        insta::assert_snapshot!(st.to_proc());
    }

    #[test]
    fn json_carries_the_same_facts() {
        let st = sample();
        let json = serde_json::to_string(&st).unwrap();
        let back: BondStatus = serde_json::from_str(&json).unwrap();
        assert_eq!(back, st);
        assert_eq!(back.to_proc(), st.to_proc());
    }
}
