//! Every kernel bonding option as one row: its name, the modes it is valid
//! in, its default, whether `xbond set` may change it live, how its value is
//! parsed into [`BondOptions`], and what it does. The parser, the defaults,
//! the list `xbond set` accepts and the option table in `docs/options.md`
//! all come from here.

use super::{
    AdSelect, ArpAllTargets, ArpValidate, BondMode, BondOptions, FailOverMac, LacpFallback,
    LacpRate, LinkWatchPolicy, OnOff, OptionError, PrimaryReselect, XmitHashPolicy,
};
use std::net::{Ipv4Addr, Ipv6Addr};
use xbond_dataplane::wire::MacAddr;

/// Whether an option can change while the bond runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// `xbond set` applies it at once.
    Yes,
    /// Not while the bond has members, as in the kernel: change the config
    /// and restart.
    NotWithMembers,
    /// Not in this version of xbond.
    No,
}

/// One option.
pub struct OptionDef {
    pub name: &'static str,
    /// The modes it is valid in, one bit per mode number.
    pub modes: u8,
    /// The kernel's default in its text form; `None`: unset.
    pub default: Option<&'static str>,
    pub live: Live,
    /// Set the option from its text form; the key is passed for messages.
    pub parse: fn(&mut BondOptions, &str, &str) -> Result<(), OptionError>,
    pub doc: &'static str,
}

impl std::fmt::Debug for OptionDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OptionDef({})", self.name)
    }
}

impl OptionDef {
    /// The modes it is valid in, by name (`all` when every mode).
    pub fn mode_names(&self) -> String {
        if self.modes == ALL_MODES {
            return "all".into();
        }
        BondMode::TABLE
            .iter()
            .filter(|m| self.modes & (1 << m.1) != 0)
            .map(|m| m.0)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub(super) const INT_MAX: u64 = i32::MAX as u64;
pub(super) const ALL_MODES: u8 = 0x7f;
const fn only(modes: &[BondMode]) -> u8 {
    let mut bits = 0;
    let mut i = 0;
    while i < modes.len() {
        bits |= 1 << (modes[i] as u8);
        i += 1;
    }
    bits
}
const NOT_AD_TLB_ALB: u8 = ALL_MODES
    & !only(&[
        BondMode::Ieee8023ad,
        BondMode::BalanceTlb,
        BondMode::BalanceAlb,
    ]);
const AD_ONLY: u8 = only(&[BondMode::Ieee8023ad]);
const PRIMARY_MODES: u8 = only(&[
    BondMode::ActiveBackup,
    BondMode::BalanceTlb,
    BondMode::BalanceAlb,
]);
const TLB_ALB: u8 = only(&[BondMode::BalanceTlb, BondMode::BalanceAlb]);

fn bad(key: &str, value: &str, expected: impl Into<String>) -> OptionError {
    OptionError::BadValue {
        key: key.into(),
        value: value.into(),
        expected: expected.into(),
    }
}

/// An integer in `min..=max`; the kernel's names `off` (0) and, where the
/// option has one, `default`.
fn int(key: &str, raw: &str, min: u64, max: u64, default: Option<u64>) -> Result<u64, OptionError> {
    let v = raw.trim();
    let n = match v {
        "off" if min == 0 => 0,
        "default" if default.is_some() => default.unwrap_or(0),
        _ => v
            .parse::<u64>()
            .map_err(|_| bad(key, raw, format!("an integer from {min} to {max}")))?,
    };
    if n < min || n > max {
        return Err(bad(key, raw, format!("an integer from {min} to {max}")));
    }
    Ok(n)
}

fn table<T>(
    key: &str,
    raw: &str,
    lookup: fn(&str) -> Option<T>,
    names: String,
) -> Result<T, OptionError> {
    lookup(raw).ok_or_else(|| bad(key, raw, format!("one of {names}")))
}

fn onoff(key: &str, raw: &str) -> Result<OnOff, OptionError> {
    table(key, raw, OnOff::lookup, OnOff::names())
}

fn iface(key: &str, raw: &str) -> Result<Option<String>, OptionError> {
    let v = raw.trim();
    if v.is_empty() || v == "none" {
        return Ok(None);
    }
    if v.len() > 15 || v.contains(['/', ' ', ':']) {
        return Err(bad(key, raw, "an interface name (at most 15 characters)"));
    }
    Ok(Some(v.to_string()))
}

/// A comma-separated list of unicast addresses, at most 16, duplicates
/// dropped; a leading `+` on an address is accepted.
fn targets<T: std::str::FromStr + PartialEq>(
    key: &str,
    raw: &str,
    family: &str,
    unicast: fn(&T) -> bool,
) -> Result<Vec<T>, OptionError> {
    let mut out = Vec::new();
    for t in raw.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let ip: T = t
            .trim_start_matches('+')
            .parse()
            .map_err(|_| bad(key, raw, format!("{family} addresses separated by commas")))?;
        if !unicast(&ip) {
            return Err(bad(key, raw, format!("unicast {family} addresses")));
        }
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    if out.len() > 16 {
        return Err(bad(key, raw, "at most 16 targets"));
    }
    Ok(out)
}

/// One row; `$o`, `$k` and `$v` name the options, the key and the value in
/// the parser's body.
macro_rules! row {
    ($name:literal, $modes:expr, $default:expr, $live:ident, |$o:ident, $k:ident, $v:ident| $body:expr, $doc:literal) => {
        OptionDef {
            name: $name,
            modes: $modes,
            default: $default,
            live: Live::$live,
            parse: |$o, $k, $v| {
                $body;
                Ok(())
            },
            doc: $doc,
        }
    };
}

pub static OPTIONS: &[OptionDef] = &[
    row!(
        "mode",
        ALL_MODES,
        Some("balance-rr"),
        NotWithMembers,
        |o, k, v| o.mode = table(k, v, BondMode::lookup, BondMode::names())?,
        "the bonding mode, by name or number (0-6)"
    ),
    row!(
        "miimon",
        ALL_MODES,
        Some("0"),
        Yes,
        |o, k, v| o.miimon = int(k, v, 0, INT_MAX, None)? as u32,
        "ms between carrier checks; 100 unless ARP monitoring is configured"
    ),
    row!(
        "updelay",
        ALL_MODES,
        Some("0"),
        Yes,
        |o, k, v| o.updelay = int(k, v, 0, INT_MAX, None)? as u32,
        "ms a member's carrier must be up before it is used (a multiple of miimon)"
    ),
    row!(
        "downdelay",
        ALL_MODES,
        Some("0"),
        Yes,
        |o, k, v| o.downdelay = int(k, v, 0, INT_MAX, None)? as u32,
        "ms a member's carrier must be down before it is dropped (a multiple of miimon)"
    ),
    row!(
        "peer_notif_delay",
        ALL_MODES,
        Some("0"),
        Yes,
        |o, k, v| o.peer_notif_delay = int(k, v, 0, 300_000, None)? as u32,
        "ms between the peer notifications after a failover"
    ),
    row!(
        "use_carrier",
        ALL_MODES,
        None,
        No,
        |_o, k, v| match v.trim() {
            // Removed from the kernel: carrier is always used. Accept the
            // only value that still means anything.
            "1" | "on" => {}
            _ =>
                return Err(bad(
                    k,
                    v,
                    "1 (MII/ethtool ioctl polling is gone from the kernel; carrier is always used)"
                )),
        },
        "accepted as 1 only: carrier is always used"
    ),
    row!(
        "arp_interval",
        NOT_AD_TLB_ALB,
        Some("0"),
        Yes,
        |o, k, v| o.arp_interval = int(k, v, 0, INT_MAX, None)? as u32,
        "ms between ARP/NS probe rounds; 0 turns the ARP monitor off"
    ),
    row!(
        "arp_ip_target",
        ALL_MODES,
        None,
        Yes,
        |o, k, v| o.arp_ip_target = targets(k, v, "IPv4", |ip: &Ipv4Addr| {
            !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast())
        })?,
        "IPv4 addresses the ARP monitor probes (up to 16; +ADDR/-ADDR at runtime)"
    ),
    row!(
        "ns_ip6_target",
        NOT_AD_TLB_ALB,
        None,
        Yes,
        |o, k, v| o.ns_ip6_target = targets(k, v, "IPv6", |ip: &Ipv6Addr| {
            !(ip.is_unspecified() || ip.is_multicast())
        })?,
        "IPv6 addresses the NS monitor probes (up to 16; +ADDR/-ADDR at runtime)"
    ),
    row!(
        "arp_validate",
        NOT_AD_TLB_ALB,
        Some("none"),
        Yes,
        |o, k, v| o.arp_validate = table(k, v, ArpValidate::lookup, ArpValidate::names())?,
        "which received ARP/NS/NA prove a member's link"
    ),
    row!(
        "arp_all_targets",
        ALL_MODES,
        Some("any"),
        Yes,
        |o, k, v| o.arp_all_targets = table(k, v, ArpAllTargets::lookup, ArpAllTargets::names())?,
        "a member is up when any target answers, or only when all do"
    ),
    row!(
        "arp_missed_max",
        NOT_AD_TLB_ALB,
        Some("2"),
        Yes,
        |o, k, v| o.arp_missed_max = int(k, v, 1, 255, None)? as u8,
        "probe rounds without a reply before a member is down"
    ),
    row!(
        "primary",
        PRIMARY_MODES,
        None,
        Yes,
        |o, k, v| o.primary = iface(k, v)?,
        "the member that is active whenever it is up"
    ),
    row!(
        "primary_reselect",
        ALL_MODES,
        Some("always"),
        Yes,
        |o, k, v| o.primary_reselect =
            table(k, v, PrimaryReselect::lookup, PrimaryReselect::names())?,
        "when the primary takes over again"
    ),
    row!(
        "fail_over_mac",
        ALL_MODES,
        Some("none"),
        NotWithMembers,
        |o, k, v| o.fail_over_mac = table(k, v, FailOverMac::lookup, FailOverMac::names())?,
        "active-backup: whether the bond MAC moves with the active member"
    ),
    row!(
        "xmit_hash_policy",
        ALL_MODES,
        Some("layer2"),
        Yes,
        |o, k, v| o.xmit_hash_policy =
            table(k, v, XmitHashPolicy::lookup, XmitHashPolicy::names())?,
        "the transmit hash of balance-xor, 802.3ad and balance-tlb/alb"
    ),
    row!(
        "lacp_rate",
        AD_ONLY,
        Some("slow"),
        Yes,
        |o, k, v| o.lacp_rate = table(k, v, LacpRate::lookup, LacpRate::names())?,
        "the LACPDU rate asked of the partner (slow: 30 s, fast: 1 s)"
    ),
    row!(
        "lacp_active",
        AD_ONLY,
        Some("on"),
        No,
        |o, k, v| o.lacp_active = onoff(k, v)?,
        "send LACPDUs without waiting for the partner's"
    ),
    row!(
        "ad_select",
        ALL_MODES,
        Some("stable"),
        No,
        |o, k, v| o.ad_select = table(k, v, AdSelect::lookup, AdSelect::names())?,
        "how the active aggregator is chosen"
    ),
    row!(
        "ad_actor_sys_prio",
        AD_ONLY,
        Some("65535"),
        No,
        |o, k, v| o.ad_actor_sys_prio = int(k, v, 1, 65535, Some(65535))? as u16,
        "the LACP system priority"
    ),
    row!(
        "ad_actor_system",
        AD_ONLY,
        None,
        No,
        |o, k, v| {
            let mac = MacAddr::parse(v.trim()).ok_or_else(|| bad(k, v, "a MAC address"))?;
            if mac.is_multicast() || mac.is_zero() {
                return Err(bad(k, v, "a unicast, non-zero MAC address"));
            }
            o.ad_actor_system = Some(mac.to_string())
        },
        "the LACP system id; the bond MAC when unset"
    ),
    row!(
        "ad_user_port_key",
        AD_ONLY,
        Some("0"),
        No,
        |o, k, v| o.ad_user_port_key = int(k, v, 0, 1023, Some(0))? as u16,
        "the user bits of the LACP port key"
    ),
    row!(
        "coupled_control",
        AD_ONLY,
        Some("on"),
        No,
        |o, k, v| o.coupled_control = onoff(k, v)?,
        "collecting and distributing switch together (coupled mux)"
    ),
    row!(
        "lacp_fallback",
        AD_ONLY,
        Some("none"),
        No,
        |o, k, v| o.lacp_fallback = table(k, v, LacpFallback::lookup, LacpFallback::names())?,
        "xbond's: run as active-backup while no LACP partner answers"
    ),
    row!(
        "lacp_fallback_timeout",
        AD_ONLY,
        Some("3000"),
        No,
        |o, k, v| o.lacp_fallback_timeout = int(k, v, 100, 3_600_000, None)? as u32,
        "xbond's: ms without a partner before lacp_fallback applies"
    ),
    row!(
        "link_watch_policy",
        NOT_AD_TLB_ALB,
        None,
        No,
        |o, k, v| o.link_watch_policy = Some(table(
            k,
            v,
            LinkWatchPolicy::lookup,
            LinkWatchPolicy::names()
        )?),
        "xbond's: run miimon and the ARP monitor together; up if any or all say so"
    ),
    row!(
        "broadcast_neighbor",
        AD_ONLY,
        Some("off"),
        No,
        |o, k, v| o.broadcast_neighbor = onoff(k, v)?,
        "broadcast ARP/ND over every 802.3ad member (not implemented)"
    ),
    row!(
        "min_links",
        ALL_MODES,
        Some("0"),
        Yes,
        |o, k, v| o.min_links = int(k, v, 0, INT_MAX, None)? as u32,
        "802.3ad: members an aggregator needs before the bond has carrier"
    ),
    row!(
        "num_grat_arp",
        ALL_MODES,
        Some("1"),
        Yes,
        |o, k, v| o.num_grat_arp = int(k, v, 0, 255, Some(1))? as u8,
        "peer notifications after a failover: a gratuitous ARP per IPv4 and an unsolicited NA per IPv6 address of the bond and its VLANs"
    ),
    row!(
        "num_unsol_na",
        ALL_MODES,
        None,
        Yes,
        |o, k, v| o.num_grat_arp = int(k, v, 0, 255, Some(1))? as u8,
        "the same option as num_grat_arp (the NAs are part of each notification)"
    ),
    row!(
        "resend_igmp",
        ALL_MODES,
        Some("1"),
        No,
        |o, k, v| o.resend_igmp = int(k, v, 0, 255, Some(1))? as u8,
        "rounds of IGMPv3/MLDv2 reports for the host interfaces' groups (/proc/net/igmp, igmp6), 200 ms apart, through a new active member"
    ),
    row!(
        "all_slaves_active",
        ALL_MODES,
        Some("0"),
        Yes,
        |o, k, v| o.all_slaves_active = onoff(k, v)?,
        "deliver frames received on inactive members too"
    ),
    row!(
        "packets_per_slave",
        only(&[BondMode::BalanceRr]),
        Some("1"),
        Yes,
        |o, k, v| o.packets_per_slave = int(k, v, 0, 65535, Some(1))? as u16,
        "balance-rr: frames per member in turn; 0 picks a random member"
    ),
    row!(
        "tlb_dynamic_lb",
        TLB_ALB,
        Some("1"),
        No,
        |o, k, v| o.tlb_dynamic_lb = onoff(k, v)?,
        "balance-tlb/alb: place flows by measured load, else by the hash"
    ),
    row!(
        "lp_interval",
        ALL_MODES,
        Some("1"),
        No,
        |o, k, v| o.lp_interval = int(k, v, 1, INT_MAX, Some(1))? as u32,
        "s between learning packets to the switch"
    ),
    row!(
        "active_slave",
        PRIMARY_MODES,
        None,
        Yes,
        |o, k, v| o.active_slave = iface(k, v)?,
        "the member to make active now"
    ),
    row!(
        "tlb_rebalance_interval",
        TLB_ALB,
        Some("10"),
        No,
        |o, k, v| o.tlb_rebalance_interval = int(k, v, 1, 3600, Some(10))? as u32,
        "xbond's: s between rebalances of the transmit table (the kernel's is 10)"
    ),
];

/// The row of an option, by its canonical name.
pub fn option(key: &str) -> Option<&'static OptionDef> {
    OPTIONS.iter().find(|o| o.name == key)
}

/// The option table of `docs/options.md`.
pub fn markdown() -> String {
    let mut s = String::from("| option | modes | default | live | what |\n|---|---|---|---|---|\n");
    for o in OPTIONS {
        let live = match o.live {
            Live::Yes => "yes",
            Live::NotWithMembers => "no (as in the kernel)",
            Live::No => "no",
        };
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            o.name,
            o.mode_names(),
            o.default.map_or("unset".to_string(), |d| format!("`{d}`")),
            live,
            o.doc
        ));
    }
    s
}
