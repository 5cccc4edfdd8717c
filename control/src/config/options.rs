//! Every kernel bonding option: its name, the values it takes (numbers and the
//! kernel's names for them), its range, the modes it is valid in, and the
//! combinations the kernel refuses. Names, values and defaults are those of
//! `Documentation/networking/bonding.rst` and `bond_options.c`.

pub use crate::lacp::AdSelect;
pub use crate::modes::active_backup::PrimaryReselect;
pub use crate::monitor::arp::{ArpAllTargets, ArpValidate};
use std::net::{Ipv4Addr, Ipv6Addr};
pub use xbond_dataplane::hash::XmitHashPolicy;
use xbond_dataplane::named_enum;
pub use xbond_dataplane::snapshot::BondMode;
use xbond_dataplane::wire::MacAddr;

named_enum!(
    /// `fail_over_mac`.
    FailOverMac { None = ("none", 0), Active = ("active", 1), Follow = ("follow", 2) } default None);
named_enum!(
    /// `lacp_rate`.
    LacpRate { Slow = ("slow", 0), Fast = ("fast", 1) } default Slow);
named_enum!(
    /// `lacp_fallback` (xbond's, after Open vSwitch's `lacp-fallback-ab`):
    /// what an 802.3ad bond does when no partner answers.
    LacpFallback { None = ("none", 0), ActiveBackup = ("active-backup", 1) } default None);
named_enum!(
    /// `link_watch_policy` (xbond's, after teamd's link watchers): when
    /// carrier (miimon) and ARP/NS monitoring both run, a member is up if
    /// any of them says so, or only if all of them do.
    LinkWatchPolicy { Any = ("any", 0), All = ("all", 1) } default Any);
named_enum!(
    /// The kernel's on/off options.
    OnOff { Off = ("off", 0), On = ("on", 1) } default Off);

/// A rejected option, always naming the option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("unknown bonding option '{0}'")]
    Unknown(String),
    #[error("option {key}: invalid value '{value}'; expected {expected}")]
    BadValue {
        key: String,
        value: String,
        expected: String,
    },
    #[error("option {key}: mode dependency failed, not supported in mode {mode}({num})")]
    ModeDependency {
        key: String,
        mode: &'static str,
        num: u8,
    },
    #[error("option {key}: {reason}")]
    Conflict { key: String, reason: String },
    #[error("option {key}: {reason} is not implemented in this version of xbond")]
    NotImplemented { key: String, reason: String },
    #[error("option {0} is given twice")]
    Duplicate(String),
    #[error("'{0}': expected key=value")]
    Syntax(String),
}

/// The bond's options, with the kernel's defaults.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BondOptions {
    pub mode: BondMode,
    pub miimon: u32,
    /// Milliseconds, a multiple of miimon (as the kernel rounds them).
    pub updelay: u32,
    pub downdelay: u32,
    pub peer_notif_delay: u32,
    pub arp_interval: u32,
    pub arp_ip_target: Vec<Ipv4Addr>,
    pub ns_ip6_target: Vec<Ipv6Addr>,
    pub arp_validate: ArpValidate,
    pub arp_all_targets: ArpAllTargets,
    pub arp_missed_max: u8,
    pub primary: Option<String>,
    pub primary_reselect: PrimaryReselect,
    pub fail_over_mac: FailOverMac,
    pub xmit_hash_policy: XmitHashPolicy,
    pub lacp_rate: LacpRate,
    pub lacp_active: OnOff,
    pub ad_select: AdSelect,
    pub ad_actor_sys_prio: u16,
    pub ad_actor_system: Option<String>,
    pub ad_user_port_key: u16,
    pub coupled_control: OnOff,
    pub lacp_fallback: LacpFallback,
    /// Milliseconds without any partner before `lacp_fallback` applies.
    pub lacp_fallback_timeout: u32,
    /// Unset: the kernel's rule (miimon or ARP monitoring, not both).
    pub link_watch_policy: Option<LinkWatchPolicy>,
    pub broadcast_neighbor: OnOff,
    pub min_links: u32,
    pub num_grat_arp: u8,
    pub resend_igmp: u8,
    pub all_slaves_active: OnOff,
    pub packets_per_slave: u16,
    pub tlb_dynamic_lb: OnOff,
    pub lp_interval: u32,
    /// Seconds between rebalances of balance-tlb/alb's transmit table
    /// (xbond's; the kernel's is fixed at 10).
    pub tlb_rebalance_interval: u32,
    pub active_slave: Option<String>,
    /// Options given explicitly, in order (for mode checks and messages).
    #[serde(skip)]
    pub explicit: Vec<&'static str>,
}

impl Default for BondOptions {
    fn default() -> Self {
        BondOptions {
            mode: BondMode::BalanceRr,
            miimon: 0,
            updelay: 0,
            downdelay: 0,
            peer_notif_delay: 0,
            arp_interval: 0,
            arp_ip_target: Vec::new(),
            ns_ip6_target: Vec::new(),
            arp_validate: ArpValidate::None,
            arp_all_targets: ArpAllTargets::Any,
            arp_missed_max: 2,
            primary: None,
            primary_reselect: PrimaryReselect::Always,
            fail_over_mac: FailOverMac::None,
            xmit_hash_policy: XmitHashPolicy::Layer2,
            lacp_rate: LacpRate::Slow,
            lacp_active: OnOff::On,
            ad_select: AdSelect::Stable,
            ad_actor_sys_prio: 65535,
            ad_actor_system: None,
            ad_user_port_key: 0,
            coupled_control: OnOff::On,
            lacp_fallback: LacpFallback::None,
            lacp_fallback_timeout: 3000,
            link_watch_policy: None,
            broadcast_neighbor: OnOff::Off,
            min_links: 0,
            num_grat_arp: 1,
            resend_igmp: 1,
            all_slaves_active: OnOff::Off,
            packets_per_slave: 1,
            tlb_dynamic_lb: OnOff::On,
            lp_interval: 1,
            tlb_rebalance_interval: 10,
            active_slave: None,
            explicit: Vec::new(),
        }
    }
}

const INT_MAX: u64 = i32::MAX as u64;
const ALL_MODES: u8 = 0x7f;
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

/// Every option: canonical name, the modes it is valid in.
pub const OPTIONS: &[(&str, u8)] = &[
    ("mode", ALL_MODES),
    ("miimon", ALL_MODES),
    ("updelay", ALL_MODES),
    ("downdelay", ALL_MODES),
    ("peer_notif_delay", ALL_MODES),
    ("use_carrier", ALL_MODES),
    ("arp_interval", NOT_AD_TLB_ALB),
    ("arp_ip_target", ALL_MODES),
    ("ns_ip6_target", NOT_AD_TLB_ALB),
    ("arp_validate", NOT_AD_TLB_ALB),
    ("arp_all_targets", ALL_MODES),
    ("arp_missed_max", NOT_AD_TLB_ALB),
    ("primary", PRIMARY_MODES),
    ("primary_reselect", ALL_MODES),
    ("fail_over_mac", ALL_MODES),
    ("xmit_hash_policy", ALL_MODES),
    ("lacp_rate", AD_ONLY),
    ("lacp_active", AD_ONLY),
    ("ad_select", ALL_MODES),
    ("ad_actor_sys_prio", AD_ONLY),
    ("ad_actor_system", AD_ONLY),
    ("ad_user_port_key", AD_ONLY),
    ("coupled_control", AD_ONLY),
    ("lacp_fallback", AD_ONLY),
    ("lacp_fallback_timeout", AD_ONLY),
    ("link_watch_policy", NOT_AD_TLB_ALB),
    ("broadcast_neighbor", AD_ONLY),
    ("min_links", ALL_MODES),
    ("num_grat_arp", ALL_MODES),
    ("num_unsol_na", ALL_MODES),
    ("resend_igmp", ALL_MODES),
    ("all_slaves_active", ALL_MODES),
    ("packets_per_slave", only(&[BondMode::BalanceRr])),
    (
        "tlb_dynamic_lb",
        only(&[BondMode::BalanceTlb, BondMode::BalanceAlb]),
    ),
    ("lp_interval", ALL_MODES),
    ("active_slave", PRIMARY_MODES),
    (
        "tlb_rebalance_interval",
        only(&[BondMode::BalanceTlb, BondMode::BalanceAlb]),
    ),
];

/// The canonical name of an option, if it is one.
pub fn canonical(key: &str) -> Option<&'static str> {
    OPTIONS.iter().map(|o| o.0).find(|&n| n == key)
}

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

impl BondOptions {
    /// Set one option from its kernel text form (`BONDING_OPTS` syntax).
    pub fn set(&mut self, key: &str, raw: &str) -> Result<(), OptionError> {
        let Some(name) = canonical(key) else {
            return Err(match key {
                "max_bonds" => OptionError::Conflict {
                    key: key.into(),
                    reason: "is a module parameter, not an option of a bond; remove it".into(),
                },
                "slaves" => OptionError::Conflict {
                    key: key.into(),
                    reason: "list members in 'members' instead".into(),
                },
                _ => OptionError::Unknown(key.into()),
            });
        };
        match name {
            "mode" => self.mode = table(key, raw, BondMode::lookup, BondMode::names())?,
            "miimon" => self.miimon = int(key, raw, 0, INT_MAX, None)? as u32,
            "updelay" => self.updelay = int(key, raw, 0, INT_MAX, None)? as u32,
            "downdelay" => self.downdelay = int(key, raw, 0, INT_MAX, None)? as u32,
            "peer_notif_delay" => self.peer_notif_delay = int(key, raw, 0, 300_000, None)? as u32,
            "use_carrier" => {
                // Removed from the kernel: carrier is always used. Accept the
                // only value that still means anything.
                match raw.trim() {
                    "1" | "on" => {}
                    _ => {
                        return Err(bad(key, raw, "1 (MII/ethtool ioctl polling is gone from the kernel; carrier is always used)"))
                    }
                }
            }
            "arp_interval" => self.arp_interval = int(key, raw, 0, INT_MAX, None)? as u32,
            "arp_ip_target" => {
                let mut out = Vec::new();
                for t in raw.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    let t = t.trim_start_matches('+');
                    let ip: Ipv4Addr = t
                        .parse()
                        .map_err(|_| bad(key, raw, "IPv4 addresses separated by commas"))?;
                    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
                        return Err(bad(key, raw, "unicast IPv4 addresses"));
                    }
                    if !out.contains(&ip) {
                        out.push(ip);
                    }
                }
                if out.len() > 16 {
                    return Err(bad(key, raw, "at most 16 targets"));
                }
                self.arp_ip_target = out;
            }
            "ns_ip6_target" => {
                let mut out = Vec::new();
                for t in raw.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    let ip: Ipv6Addr = t
                        .trim_start_matches('+')
                        .parse()
                        .map_err(|_| bad(key, raw, "IPv6 addresses separated by commas"))?;
                    if ip.is_unspecified() || ip.is_multicast() {
                        return Err(bad(key, raw, "unicast IPv6 addresses"));
                    }
                    if !out.contains(&ip) {
                        out.push(ip);
                    }
                }
                if out.len() > 16 {
                    return Err(bad(key, raw, "at most 16 targets"));
                }
                self.ns_ip6_target = out;
            }
            "arp_validate" => {
                self.arp_validate = table(key, raw, ArpValidate::lookup, ArpValidate::names())?
            }
            "arp_all_targets" => {
                self.arp_all_targets =
                    table(key, raw, ArpAllTargets::lookup, ArpAllTargets::names())?
            }
            "arp_missed_max" => self.arp_missed_max = int(key, raw, 1, 255, None)? as u8,
            "primary" => self.primary = iface(key, raw)?,
            "primary_reselect" => {
                self.primary_reselect =
                    table(key, raw, PrimaryReselect::lookup, PrimaryReselect::names())?
            }
            "fail_over_mac" => {
                self.fail_over_mac = table(key, raw, FailOverMac::lookup, FailOverMac::names())?
            }
            "xmit_hash_policy" => {
                self.xmit_hash_policy =
                    table(key, raw, XmitHashPolicy::lookup, XmitHashPolicy::names())?
            }
            "lacp_rate" => self.lacp_rate = table(key, raw, LacpRate::lookup, LacpRate::names())?,
            "lacp_active" => self.lacp_active = table(key, raw, OnOff::lookup, OnOff::names())?,
            "ad_select" => self.ad_select = table(key, raw, AdSelect::lookup, AdSelect::names())?,
            "ad_actor_sys_prio" => {
                self.ad_actor_sys_prio = int(key, raw, 1, 65535, Some(65535))? as u16
            }
            "ad_actor_system" => {
                let mac =
                    MacAddr::parse(raw.trim()).ok_or_else(|| bad(key, raw, "a MAC address"))?;
                if mac.is_multicast() || mac.is_zero() {
                    return Err(bad(key, raw, "a unicast, non-zero MAC address"));
                }
                self.ad_actor_system = Some(mac.to_string());
            }
            "ad_user_port_key" => self.ad_user_port_key = int(key, raw, 0, 1023, Some(0))? as u16,
            "coupled_control" => {
                self.coupled_control = table(key, raw, OnOff::lookup, OnOff::names())?
            }
            "lacp_fallback" => {
                self.lacp_fallback = table(key, raw, LacpFallback::lookup, LacpFallback::names())?
            }
            "lacp_fallback_timeout" => {
                self.lacp_fallback_timeout = int(key, raw, 100, 3_600_000, None)? as u32
            }
            "link_watch_policy" => {
                self.link_watch_policy = Some(table(
                    key,
                    raw,
                    LinkWatchPolicy::lookup,
                    LinkWatchPolicy::names(),
                )?)
            }
            "broadcast_neighbor" => {
                self.broadcast_neighbor = table(key, raw, OnOff::lookup, OnOff::names())?
            }
            "min_links" => self.min_links = int(key, raw, 0, INT_MAX, None)? as u32,
            "num_grat_arp" | "num_unsol_na" => {
                self.num_grat_arp = int(key, raw, 0, 255, Some(1))? as u8
            }
            "resend_igmp" => self.resend_igmp = int(key, raw, 0, 255, Some(1))? as u8,
            "all_slaves_active" => {
                self.all_slaves_active = table(key, raw, OnOff::lookup, OnOff::names())?
            }
            "packets_per_slave" => {
                self.packets_per_slave = int(key, raw, 0, 65535, Some(1))? as u16
            }
            "tlb_dynamic_lb" => {
                self.tlb_dynamic_lb = table(key, raw, OnOff::lookup, OnOff::names())?
            }
            "lp_interval" => self.lp_interval = int(key, raw, 1, INT_MAX, Some(1))? as u32,
            "tlb_rebalance_interval" => {
                self.tlb_rebalance_interval = int(key, raw, 1, 3600, Some(10))? as u32
            }
            "active_slave" => self.active_slave = iface(key, raw)?,
            _ => return Err(OptionError::Unknown(key.into())),
        }
        // num_grat_arp and num_unsol_na are one option in the kernel.
        let canon = if name == "num_unsol_na" {
            "num_grat_arp"
        } else {
            name
        };
        if self.explicit.contains(&canon) {
            return Err(OptionError::Duplicate(key.into()));
        }
        self.explicit.push(canon);
        Ok(())
    }

    /// Parse a `BONDING_OPTS` string: `key=value` words separated by spaces.
    pub fn parse_kernel_string(&mut self, s: &str) -> Result<(), OptionError> {
        for word in s.split_whitespace() {
            let (k, v) = word
                .split_once('=')
                .ok_or_else(|| OptionError::Syntax(word.into()))?;
            self.set(k, v)?;
        }
        Ok(())
    }

    /// Apply the kernel's defaults that depend on other options and refuse
    /// what the kernel refuses. Returns warnings for what the kernel accepts
    /// with a warning.
    pub fn finish(&mut self) -> Result<Vec<String>, OptionError> {
        let mut warnings = Vec::new();
        for &key in &self.explicit {
            let modes = OPTIONS
                .iter()
                .find(|o| o.0 == key)
                .map_or(ALL_MODES, |o| o.1);
            if modes & (1 << (self.mode as u8)) == 0 {
                return Err(OptionError::ModeDependency {
                    key: key.into(),
                    mode: self.mode.name(),
                    num: self.mode as u8,
                });
            }
        }
        let explicit = |k: &str| self.explicit.contains(&k);
        if self.arp_interval > 0 && self.miimon > 0 && self.link_watch_policy.is_none() {
            return Err(OptionError::Conflict {
                key: "arp_interval".into(),
                reason: format!(
                    "cannot be used together with miimon={} (the kernel silently turns one of them off); choose one, or set link_watch_policy=any|all to run both",
                    self.miimon
                ),
            });
        }
        if self.link_watch_policy.is_some() && (self.arp_interval == 0 || !explicit("miimon")) {
            warnings.push(
                "link_watch_policy has no effect unless both miimon and arp_interval are set"
                    .into(),
            );
        }
        // miimon defaults to 100 unless ARP monitoring is configured.
        if !explicit("miimon") && self.arp_interval == 0 {
            self.miimon = 100;
        }
        for key in ["updelay", "downdelay", "peer_notif_delay"] {
            let v = match key {
                "updelay" => &mut self.updelay,
                "downdelay" => &mut self.downdelay,
                _ => &mut self.peer_notif_delay,
            };
            if *v == 0 {
                continue;
            }
            if self.miimon == 0 {
                return Err(OptionError::Conflict {
                    key: key.into(),
                    reason: "needs MII monitoring (miimon > 0), as in the kernel".into(),
                });
            }
            if *v % self.miimon != 0 {
                let rounded = *v / self.miimon * self.miimon;
                warnings.push(format!(
                    "{key} ({}) is not a multiple of miimon ({}), value rounded to {rounded} ms",
                    *v, self.miimon
                ));
                *v = rounded;
            }
        }
        if self.miimon == 0 && self.arp_interval == 0 {
            warnings.push("miimon=0 and arp_interval=0: link failures will not be detected".into());
        }
        if self.mode == BondMode::ActiveBackup && explicit("xmit_hash_policy") {
            warnings.push("xmit_hash_policy has no effect in active-backup mode".into());
        }
        if !self.arp_ip_target.is_empty() && self.arp_interval == 0 {
            warnings.push("arp_ip_target is set but arp_interval is 0: no ARP monitoring".into());
        }
        if !self.ns_ip6_target.is_empty() && self.arp_interval == 0 {
            warnings.push("ns_ip6_target is set but arp_interval is 0: no NS monitoring".into());
        }
        if self.arp_interval > 0 && self.arp_ip_target.is_empty() && self.ns_ip6_target.is_empty() {
            warnings.push(
                "arp_interval is set without arp_ip_target or ns_ip6_target: no probes are sent, and members stay up only on received traffic".into(),
            );
        }
        Ok(warnings)
    }

    /// Refuse what this version of xbond does not implement yet, naming it.
    pub fn check_implemented(&self) -> Result<(), OptionError> {
        if self.broadcast_neighbor == OnOff::On {
            return Err(OptionError::NotImplemented {
                key: "broadcast_neighbor".into(),
                reason: "broadcasting ARP/ND over every 802.3ad member".into(),
            });
        }
        Ok(())
    }

    /// Time between peer notifications (gratuitous ARPs) after a failover.
    pub fn peer_notif_interval_ms(&self) -> u32 {
        // The kernel sends one notification per link monitor round (miimon,
        // or arp_interval under the ARP monitor) unless peer_notif_delay
        // spaces them further.
        let round = if self.miimon > 0 {
            self.miimon
        } else {
            self.arp_interval
        };
        self.peer_notif_delay.max(round).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<BondOptions, OptionError> {
        let mut o = BondOptions::default();
        o.parse_kernel_string(s)?;
        o.finish()?;
        Ok(o)
    }

    #[test]
    fn numbers_and_names_are_the_same_value() {
        assert_eq!(parse("mode=1").unwrap().mode, BondMode::ActiveBackup);
        assert_eq!(
            parse("mode=active-backup").unwrap().mode,
            BondMode::ActiveBackup
        );
        assert_eq!(
            parse("mode=4 lacp_rate=1").unwrap().lacp_rate,
            LacpRate::Fast
        );
        assert_eq!(
            parse("mode=balance-xor xmit_hash_policy=1")
                .unwrap()
                .xmit_hash_policy,
            XmitHashPolicy::Layer34
        );
        assert_eq!(
            parse("mode=2 xmit_hash_policy=vlan+srcmac")
                .unwrap()
                .xmit_hash_policy,
            XmitHashPolicy::VlanSrcMac
        );
        assert_eq!(
            parse("mode=1 fail_over_mac=2").unwrap().fail_over_mac,
            FailOverMac::Follow
        );
        assert_eq!(parse("mode=1 num_unsol_na=3").unwrap().num_grat_arp, 3);
    }

    #[test]
    fn kernel_defaults() {
        let o = parse("mode=active-backup").unwrap();
        assert_eq!(o.miimon, 100, "miimon defaults to 100 without arp_interval");
        assert_eq!(
            (o.num_grat_arp, o.arp_missed_max, o.ad_actor_sys_prio),
            (1, 2, 65535)
        );
        assert_eq!(
            parse("mode=1 arp_interval=200 arp_ip_target=198.18.0.9")
                .unwrap()
                .miimon,
            0
        );
        assert_eq!(
            BondOptions::default().mode,
            BondMode::BalanceRr,
            "the kernel's default mode is balance-rr"
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = parse("mode=1 miimon=abc").unwrap_err();
        assert_eq!(
            e.to_string(),
            "option miimon: invalid value 'abc'; expected an integer from 0 to 2147483647"
        );
        let e = parse("mode=9").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("option mode: invalid value '9'; expected one of balance-rr (0)"),
            "{e}"
        );
        assert_eq!(
            parse("mode=1 bogus=1").unwrap_err(),
            OptionError::Unknown("bogus".into())
        );
        assert!(parse("mode=1 arp_missed_max=0")
            .unwrap_err()
            .to_string()
            .contains("arp_missed_max"));
        assert!(parse("mode=1 arp_ip_target=1.2.3")
            .unwrap_err()
            .to_string()
            .contains("arp_ip_target"));
        assert!(parse("mode=1 miimon")
            .unwrap_err()
            .to_string()
            .contains("expected key=value"));
    }

    #[test]
    fn link_watch_policy_lets_carrier_and_arp_monitoring_run_together() {
        let o = parse(
            "mode=1 miimon=100 arp_interval=100 arp_ip_target=198.18.0.2 link_watch_policy=all",
        )
        .unwrap();
        assert_eq!(o.link_watch_policy, Some(LinkWatchPolicy::All));
        assert_eq!((o.miimon, o.arp_interval), (100, 100));
        let e = parse("mode=1 miimon=100 arp_interval=100 arp_ip_target=198.18.0.2").unwrap_err();
        assert!(e.to_string().contains("link_watch_policy=any|all"), "{e}");
        assert!(parse("mode=1 link_watch_policy=most")
            .unwrap_err()
            .to_string()
            .contains("link_watch_policy"));
        assert!(parse("mode=802.3ad link_watch_policy=any").is_err());
        let mut o = BondOptions::default();
        o.parse_kernel_string(
            "mode=1 arp_interval=100 arp_ip_target=198.18.0.2 link_watch_policy=any",
        )
        .unwrap();
        let w = o.finish().unwrap();
        assert!(w.iter().any(|w| w.contains("no effect")), "{w:?}");
        assert_eq!(o.miimon, 0, "no miimon default with ARP monitoring");
    }

    #[test]
    fn arp_monitoring_without_targets_is_warned_about() {
        let mut o = BondOptions::default();
        o.parse_kernel_string("mode=0 arp_interval=100").unwrap();
        let w = o.finish().unwrap();
        assert!(
            w.iter().any(|w| w.contains("without arp_ip_target")),
            "{w:?}"
        );
        o.check_implemented().unwrap();
    }

    #[test]
    fn combinations_the_kernel_refuses() {
        let e = parse("mode=1 miimon=100 arp_interval=100 arp_ip_target=198.18.0.1").unwrap_err();
        assert!(
            matches!(e, OptionError::Conflict { ref key, .. } if key == "arp_interval"),
            "{e}"
        );
        let e = parse("mode=802.3ad arp_interval=100").unwrap_err();
        assert_eq!(
            e.to_string(),
            "option arp_interval: mode dependency failed, not supported in mode 802.3ad(4)"
        );
        let e = parse("mode=active-backup lacp_rate=fast").unwrap_err();
        assert_eq!(
            e.to_string(),
            "option lacp_rate: mode dependency failed, not supported in mode active-backup(1)"
        );
        assert!(parse("mode=1 packets_per_slave=2").is_err());
        assert!(parse("mode=0 primary=eth0").is_err());
        let e = parse("mode=1 miimon=0 updelay=200").unwrap_err();
        assert!(matches!(e, OptionError::Conflict { ref key, .. } if key == "updelay"));
        assert_eq!(
            parse("mode=1 miimon=100 miimon=200").unwrap_err(),
            OptionError::Duplicate("miimon".into())
        );
        assert!(
            parse("mode=1 num_grat_arp=2 num_unsol_na=2").is_err(),
            "one option under two names"
        );
        assert!(parse("mode=1 use_carrier=0").is_err());
        assert!(parse("mode=1 use_carrier=1").is_ok());
    }

    #[test]
    fn delays_round_down_to_miimon_with_a_warning() {
        let mut o = BondOptions::default();
        o.parse_kernel_string("mode=1 miimon=100 updelay=250")
            .unwrap();
        let w = o.finish().unwrap();
        assert_eq!(o.updelay, 200);
        assert_eq!(
            w,
            vec![
                "updelay (250) is not a multiple of miimon (100), value rounded to 200 ms"
                    .to_string()
            ]
        );
    }

    #[test]
    fn every_mode_is_built_and_what_is_not_says_so() {
        for m in ["0", "1", "2", "3", "4", "5", "6"] {
            assert!(parse(&format!("mode={m}"))
                .unwrap()
                .check_implemented()
                .is_ok());
        }
        let o = parse("mode=802.3ad broadcast_neighbor=1").unwrap();
        assert_eq!(
            o.check_implemented().unwrap_err().to_string(),
            "option broadcast_neighbor: broadcasting ARP/ND over every 802.3ad member is not implemented in this version of xbond"
        );
    }

    #[test]
    fn tlb_rebalance_interval_is_for_tlb_and_alb() {
        assert_eq!(
            parse("mode=balance-tlb tlb_rebalance_interval=2")
                .unwrap()
                .tlb_rebalance_interval,
            2
        );
        assert_eq!(parse("mode=6").unwrap().tlb_rebalance_interval, 10);
        assert!(parse("mode=6 tlb_rebalance_interval=0").is_err());
        assert!(parse("mode=1 tlb_rebalance_interval=2").is_err());
    }

    #[test]
    fn lacp_fallback_is_an_802_3ad_option() {
        let o =
            parse("mode=802.3ad lacp_fallback=active-backup lacp_fallback_timeout=1500").unwrap();
        assert_eq!(o.lacp_fallback, LacpFallback::ActiveBackup);
        assert_eq!(o.lacp_fallback_timeout, 1500);
        assert!(parse("mode=1 lacp_fallback=active-backup")
            .unwrap_err()
            .to_string()
            .contains("lacp_fallback"));
        assert!(parse("mode=4 lacp_fallback=sometimes")
            .unwrap_err()
            .to_string()
            .contains("lacp_fallback"));
    }

    #[test]
    fn every_option_parses_its_kernel_default() {
        let samples = [
            ("mode", "1"),
            ("miimon", "100"),
            ("updelay", "0"),
            ("downdelay", "0"),
            ("peer_notif_delay", "0"),
            ("use_carrier", "1"),
            ("arp_ip_target", "198.18.0.1"),
            ("arp_all_targets", "any"),
            ("primary_reselect", "always"),
            ("fail_over_mac", "none"),
            ("xmit_hash_policy", "layer2"),
            ("ad_select", "stable"),
            ("min_links", "0"),
            ("num_grat_arp", "1"),
            ("resend_igmp", "1"),
            ("all_slaves_active", "0"),
            ("lp_interval", "1"),
            ("primary", "eth0"),
            ("active_slave", "eth0"),
        ];
        for (k, v) in samples {
            let mut o = BondOptions::default();
            o.set("mode", "1").unwrap();
            if k != "mode" {
                o.set(k, v).unwrap_or_else(|e| panic!("{k}={v}: {e}"));
            }
            o.finish().unwrap_or_else(|e| panic!("{k}={v}: {e}"));
        }
        // The kernel's 33 options, xbond's two LACP fallback options,
        // link_watch_policy and tlb_rebalance_interval.
        assert_eq!(OPTIONS.len(), 37);
    }
}
