//! `xbond hash`: which member a flow leaves on, and why — the arithmetic of
//! the kernel's transmit hash step by step, then the modulo over the usable
//! members. Open vSwitch has `bond/hash`; kernel bonding has no such tool.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use xbond_dataplane::hash;
use xbond_dataplane::schedule::{self, TxPlan, TxState};
use xbond_dataplane::snapshot::{BondMode, BondSnapshot};
use xbond_dataplane::wire::ethernet::ethertype;
use xbond_dataplane::wire::MacAddr;

/// A flow given by its fields instead of a whole frame.
#[derive(Debug, Clone, Default)]
pub struct FlowSpec {
    pub smac: Option<MacAddr>,
    pub dmac: Option<MacAddr>,
    pub vlan: Option<u16>,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    /// `tcp`, `udp`, `icmp` or a protocol number.
    pub proto: Option<String>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

impl FlowSpec {
    /// An Ethernet frame carrying this flow's headers (no payload).
    pub fn frame(&self, default_smac: MacAddr) -> anyhow::Result<Vec<u8>> {
        let mut f = Vec::with_capacity(80);
        f.extend_from_slice(&self.dmac.unwrap_or(MacAddr::ZERO).0);
        f.extend_from_slice(&self.smac.unwrap_or(default_smac).0);
        if let Some(tci) = self.vlan {
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&tci.to_be_bytes());
        }
        let proto: u8 = match self.proto.as_deref() {
            None | Some("udp") => 17,
            Some("tcp") => 6,
            Some("icmp") => match self.src {
                Some(IpAddr::V6(_)) => 58,
                _ => 1,
            },
            Some(other) => other.parse().with_context(|| {
                format!("--proto: expected tcp, udp, icmp or a number, got {other}")
            })?,
        };
        let l4 = self.l4(proto);
        match (self.src, self.dst) {
            (Some(IpAddr::V4(s)), Some(IpAddr::V4(d))) => {
                f.extend_from_slice(&ethertype::IPV4.to_be_bytes());
                let total = (20 + l4.len()) as u16;
                f.extend_from_slice(&[0x45, 0]);
                f.extend_from_slice(&total.to_be_bytes());
                f.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
            }
            (Some(IpAddr::V6(s)), Some(IpAddr::V6(d))) => {
                f.extend_from_slice(&ethertype::IPV6.to_be_bytes());
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                f.extend_from_slice(&[proto, 64]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
            }
            (None, None) => {
                // A layer-2 flow: only the MACs and the EtherType count.
                f.extend_from_slice(&ethertype::ARP.to_be_bytes());
                f.resize(f.len() + 28, 0);
                return Ok(f);
            }
            _ => bail!("--src and --dst: give both, of the same address family"),
        }
        f.extend_from_slice(&l4);
        Ok(f)
    }

    fn l4(&self, proto: u8) -> Vec<u8> {
        let mut l4 = vec![0u8; 8];
        if proto == 1 || proto == 58 {
            // An echo request with the source port as its identifier.
            l4[0] = if proto == 1 { 8 } else { 128 };
            l4[4..6].copy_from_slice(&self.sport.unwrap_or(0).to_be_bytes());
        } else {
            l4[0..2].copy_from_slice(&self.sport.unwrap_or(0).to_be_bytes());
            l4[2..4].copy_from_slice(&self.dport.unwrap_or(0).to_be_bytes());
            if proto == 6 {
                l4.resize(20, 0);
                l4[12] = 0x50;
            }
        }
        l4
    }
}

/// Parse `--frame`: hex digits, with or without separators.
pub fn parse_hex(s: &str) -> anyhow::Result<Vec<u8>> {
    let digits: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':' && *c != '-')
        .collect();
    let digits = digits.trim_start_matches("0x");
    if !digits.len().is_multiple_of(2) {
        bail!("--frame: an odd number of hex digits");
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&digits[i..i + 2], 16)
                .with_context(|| format!("--frame: '{}' is not hex", &digits[i..i + 2]))
        })
        .collect()
}

/// What `xbond hash` prints, also as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashReport {
    pub mode: String,
    pub xmit_hash_policy: String,
    /// The transmit hash, where the mode uses one.
    pub hash: Option<u32>,
    /// The members the hash is taken modulo, in order.
    pub usable: Vec<String>,
    /// The member the flow leaves on; `None` when no single member does.
    pub member: Option<String>,
    pub explanation: String,
}

/// Explain where `frame` goes under `snap`; `name` turns member ids into
/// interface names.
pub fn explain(snap: &BondSnapshot, name: &dyn Fn(u16) -> String, frame: &[u8]) -> HashReport {
    let t = hash::trace(snap.hash_policy, frame, None);
    let usable: Vec<String> = snap.usable.iter().map(|&m| name(m)).collect();
    let mut r = HashReport {
        mode: String::new(),
        xmit_hash_policy: snap.hash_policy.name().to_string(),
        hash: None,
        usable: usable.clone(),
        member: None,
        explanation: String::new(),
    };
    r.mode = snap.mode.name().to_string();
    match snap.mode {
        BondMode::BalanceXor | BondMode::Ieee8023ad => {
            r.hash = Some(t.hash);
            r.explanation = t.to_string();
            if usable.is_empty() {
                r.explanation
                    .push_str("no usable (distributing) member: the frame is dropped\n");
            } else {
                let n = usable.len() as u32;
                let i = (t.hash % n) as usize;
                r.explanation.push_str(&format!(
                    "member = hash 0x{:08x} % {n} usable ({}) = {i} -> {}\n",
                    t.hash,
                    usable.join(" "),
                    usable[i]
                ));
                r.member = Some(usable[i].clone());
            }
        }
        BondMode::ActiveBackup => {
            r.member = snap.active.map(name);
            r.explanation = format!(
                "active-backup: every frame leaves on the active member ({})\n",
                r.member.as_deref().unwrap_or("none")
            );
        }
        BondMode::BalanceRr => {
            r.explanation = format!(
                "balance-rr: frames take the members in turn ({} per member); flows are not pinned\n",
                snap.packets_per_slave
            );
        }
        BondMode::BalanceTlb | BondMode::BalanceAlb => {
            let dynamic = snap.lb.as_ref().is_some_and(|l| l.dynamic);
            r.member = match schedule::plan(snap, &mut TxState::new(1), frame, None) {
                TxPlan::Member(m) | TxPlan::ArpReply(m) => Some(name(m)),
                _ => None,
            };
            r.explanation = format!(
                "{}: {}; this frame -> {}\n",
                r.mode,
                if dynamic {
                    "unicast IP by the transmit table, which control balances by measured load (`xbond alb` lists it); unplaced and other traffic on the active member"
                } else {
                    "unicast IP by the transmit hash modulo the usable members; other traffic on the active member"
                },
                r.member
                    .as_deref()
                    .unwrap_or("none (control places it, or no member can send)")
            );
        }
        BondMode::Broadcast => {
            let all: Vec<String> = snap
                .members
                .iter()
                .filter(|m| m.can_tx)
                .map(|m| name(m.id))
                .collect();
            r.explanation = format!(
                "broadcast: a copy leaves on every member ({})\n",
                all.join(" ")
            );
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use xbond_dataplane::hash::XmitHashPolicy;
    use xbond_dataplane::snapshot::TxMember;

    fn xor(policy: XmitHashPolicy) -> BondSnapshot {
        let mut s = BondSnapshot::new(BondMode::BalanceXor);
        s.hash_policy = policy;
        s.members = vec![
            TxMember {
                id: 0,
                can_tx: true,
            },
            TxMember {
                id: 1,
                can_tx: true,
            },
        ];
        s.usable = vec![0, 1];
        s
    }

    fn names(m: u16) -> String {
        format!("eth{m}")
    }

    #[test]
    fn a_flow_from_fields_lands_where_the_vector_says() {
        // The layer34-ipv4-udp vector: 198.18.0.1:1234 > 198.18.0.2:80 has
        // hash 0x29a9c0c2, even, so member 0 of two.
        let spec = FlowSpec {
            dmac: Some(MacAddr([2, 0, 0, 0, 0, 0x0a])),
            src: Some("198.18.0.1".parse().unwrap()),
            dst: Some("198.18.0.2".parse().unwrap()),
            sport: Some(1234),
            dport: Some(80),
            ..Default::default()
        };
        let f = spec.frame(MacAddr([2, 0, 0, 0, 0, 1])).unwrap();
        let r = explain(&xor(XmitHashPolicy::Layer34), &names, &f);
        assert_eq!(r.hash, Some(0x29a9c0c2));
        assert_eq!(r.member.as_deref(), Some("eth0"));
        assert!(
            r.explanation
                .contains("member = hash 0x29a9c0c2 % 2 usable (eth0 eth1) = 0 -> eth0"),
            "{}",
            r.explanation
        );
    }

    #[test]
    fn hex_frames_and_bad_input() {
        assert_eq!(parse_hex("02:00 0a-ff").unwrap(), vec![2, 0, 0x0a, 0xff]);
        assert!(parse_hex("abc").unwrap_err().to_string().contains("odd"));
        assert!(parse_hex("zz").unwrap_err().to_string().contains("not hex"));
        let bad = FlowSpec {
            src: Some("198.18.0.1".parse().unwrap()),
            dst: Some("2001:db8::1".parse().unwrap()),
            ..Default::default()
        };
        assert!(bad.frame(MacAddr::ZERO).is_err());
    }

    #[test]
    fn modes_without_a_flow_hash_say_so() {
        let mut s = xor(XmitHashPolicy::Layer2);
        s.mode = BondMode::BalanceRr;
        assert!(explain(&s, &names, &[0; 60])
            .explanation
            .contains("in turn"));
        s.mode = BondMode::Broadcast;
        assert!(explain(&s, &names, &[0; 60])
            .explanation
            .contains("eth0 eth1"));
    }
}
