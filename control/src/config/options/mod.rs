//! Every kernel bonding option: its name, the values it takes (numbers and the
//! kernel's names for them), its range, the modes it is valid in, and the
//! combinations the kernel refuses. Names, values and defaults are those of
//! `Documentation/networking/bonding.rst` and `bond_options.c`.

pub use crate::lacp::AdSelect;
pub use crate::modes::active_backup::PrimaryReselect;
pub use crate::monitor::arp::{ArpAllTargets, ArpValidate};
mod table;
#[cfg(test)]
mod tests;

use table::ALL_MODES;
pub use table::{markdown, option, Live, OptionDef, OPTIONS};

use std::net::{Ipv4Addr, Ipv6Addr};
pub use xbond_dataplane::hash::XmitHashPolicy;
use xbond_dataplane::named_enum;
pub use xbond_dataplane::snapshot::BondMode;

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

impl BondOptions {
    /// Every field at its type's zero value; the table's defaults go on top.
    fn unset() -> Self {
        BondOptions {
            mode: Default::default(),
            miimon: Default::default(),
            updelay: Default::default(),
            downdelay: Default::default(),
            peer_notif_delay: Default::default(),
            arp_interval: Default::default(),
            arp_ip_target: Default::default(),
            ns_ip6_target: Default::default(),
            arp_validate: Default::default(),
            arp_all_targets: Default::default(),
            arp_missed_max: Default::default(),
            primary: Default::default(),
            primary_reselect: Default::default(),
            fail_over_mac: Default::default(),
            xmit_hash_policy: Default::default(),
            lacp_rate: Default::default(),
            lacp_active: Default::default(),
            ad_select: Default::default(),
            ad_actor_sys_prio: Default::default(),
            ad_actor_system: Default::default(),
            ad_user_port_key: Default::default(),
            coupled_control: Default::default(),
            lacp_fallback: Default::default(),
            lacp_fallback_timeout: Default::default(),
            link_watch_policy: Default::default(),
            broadcast_neighbor: Default::default(),
            min_links: Default::default(),
            num_grat_arp: Default::default(),
            resend_igmp: Default::default(),
            all_slaves_active: Default::default(),
            packets_per_slave: Default::default(),
            tlb_dynamic_lb: Default::default(),
            lp_interval: Default::default(),
            tlb_rebalance_interval: Default::default(),
            active_slave: Default::default(),
            explicit: Default::default(),
        }
    }
}

impl Default for BondOptions {
    /// The kernel's defaults, as the option table gives them.
    fn default() -> Self {
        let mut o = BondOptions::unset();
        for d in OPTIONS {
            if let Some(v) = d.default {
                if let Err(e) = (d.parse)(&mut o, d.name, v) {
                    unreachable!("the default of {} does not parse: {e}", d.name);
                }
            }
        }
        o
    }
}

impl BondOptions {
    /// Set one option from its kernel text form (`BONDING_OPTS` syntax).
    pub fn set(&mut self, key: &str, raw: &str) -> Result<(), OptionError> {
        let Some(def) = option(key) else {
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
        (def.parse)(self, key, raw)?;
        let name = def.name;
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
            let modes = option(key).map_or(ALL_MODES, |o| o.modes);
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

/// The canonical name of an option, if it is one.
pub fn canonical(key: &str) -> Option<&'static str> {
    option(key).map(|o| o.name)
}
