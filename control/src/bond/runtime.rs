//! Options changed while the bond runs (`xbond set`), with the kernel's
//! sysfs rules: target lists edited with `+`/`-`, one link monitor replacing
//! the other, and the machines retuned in place.

use super::links::arp_config;
use super::ms;
use super::BondCore;
use crate::config::options::{option, BondOptions, LacpRate, Live};
use crate::monitor::arp::ArpMonitor;
use crate::monitor::mii::LinkState;
use std::time::{Duration, Instant};

/// A runtime `arp_ip_target`/`ns_ip6_target` value as the kernel's sysfs
/// file takes it: `+ADDR` adds one target, `-ADDR` removes one; anything
/// else replaces the whole list. Returns the new list for the parser.
pub(super) fn edit_targets<T>(current: &[T], key: &str, value: &str) -> Result<String, String>
where
    T: std::fmt::Display + std::str::FromStr + PartialEq,
{
    let Some(op) = value.chars().next().filter(|c| matches!(c, '+' | '-')) else {
        return Ok(value.to_string());
    };
    let addr = value[1..].trim();
    let t: T = addr
        .parse()
        .map_err(|_| format!("{key}: invalid address '{addr}'"))?;
    let keep = match (op, current.contains(&t)) {
        ('+', true) => return Err(format!("{key}: {addr} is already a target")),
        ('-', false) => return Err(format!("{key}: {addr} is not a target, nothing to remove")),
        _ => current.iter().filter(|c| **c != t),
    };
    let mut out: Vec<String> = keep.map(ToString::to_string).collect();
    if op == '+' {
        out.push(t.to_string());
    }
    Ok(out.join(","))
}

/// At runtime, as the kernel's sysfs does, turning on ARP monitoring turns
/// MII monitoring off and the other way round, unless `link_watch_policy`
/// asks for both. Returns what was turned off, for the answer.
pub(super) fn one_link_monitor(o: &mut BondOptions, key: &str) -> Vec<String> {
    let mut notes = Vec::new();
    if o.link_watch_policy.is_none() {
        if key == "arp_interval" && o.arp_interval > 0 && o.miimon > 0 {
            o.miimon = 0;
            let delays = o.updelay + o.downdelay + o.peer_notif_delay > 0;
            (o.updelay, o.downdelay, o.peer_notif_delay) = (0, 0, 0);
            notes.push(format!(
                "MII monitoring disabled, ARP monitoring replaces it{} (set link_watch_policy to run both)",
                if delays { "; updelay, downdelay and peer_notif_delay are 0 without it" } else { "" }
            ));
        }
        if key == "miimon" && o.miimon > 0 && o.arp_interval > 0 {
            o.arp_interval = 0;
            notes.push("ARP monitoring disabled, MII monitoring replaces it".into());
        }
    }
    // The kernel's miimon=100 default applies when the bond is created, not
    // when a monitor is switched off later.
    if !o.explicit.contains(&"miimon") {
        o.explicit.push("miimon");
    }
    notes
}

impl BondCore {
    /// Change an option at runtime, as `xbond set` does.
    pub fn set_option(&mut self, now: Instant, key: &str, value: &str) -> Result<String, String> {
        let value = value.trim();
        match key {
            "active_slave" => {
                let Some(id) = self.member_by_name(value) else {
                    return Err(format!("active_slave: {value} is not a member of {}", self.name));
                };
                let c = self.candidates(now);
                match self.ab.set_active(id, &c) {
                    Ok(Some(sel)) => {
                        self.apply(now, sel);
                        Ok(format!("{value} is now the active member"))
                    }
                    Ok(None) => Ok(format!("{value} is already the active member")),
                    Err(why) => Err(format!("active_slave: could not set {value} as active member; {why}")),
                }
            }
            "prio" => {
                // MEMBER=N, as `ip link set MEMBER type bond_slave prio N`.
                let usage = || format!("prio: expected MEMBER=PRIORITY (a signed 32-bit number), got '{value}'");
                let (m, p) = value.split_once('=').ok_or_else(usage)?;
                let (m, p) = (m.trim(), p.trim().parse::<i32>().map_err(|_| usage())?);
                if self.member_by_name(m).is_none() {
                    return Err(format!("prio: {m} is not a member of {}", self.name));
                }
                if !self.opts.mode.uses_primary() {
                    return Err("prio: a member priority chooses the active member: active-backup, balance-tlb or balance-alb".into());
                }
                let mut prios = self.member_prios.clone();
                prios.retain(|(n, _)| n != m);
                prios.push((m.to_string(), p));
                self.set_member_priorities(now, prios);
                let mut msg = format!("prio of {m} set to {p}");
                if self.opts.primary.is_some() {
                    msg.push_str("; a primary is set, so it counts only while the primary is down");
                }
                Ok(msg)
            }
            "primary" => {
                let mut o = self.opts.clone();
                o.primary = None;
                o.explicit.retain(|k| *k != "primary");
                o.set("primary", value).map_err(|e| e.to_string())?;
                let idx = match &o.primary {
                    Some(p) => Some(self.member_by_name(p).ok_or_else(|| format!("primary: {p} is not a member of {}", self.name))?),
                    None => None,
                };
                self.opts.primary = o.primary;
                self.ab.primary = idx;
                self.ab.force_primary = idx.is_some();
                self.reselect(now);
                Ok(format!("primary is {}", self.opts.primary.as_deref().unwrap_or("none")))
            }
            key if option(key).is_some_and(|d| d.live == Live::Yes) => {
                let mut o = self.opts.clone();
                let canon = if key == "num_unsol_na" { "num_grat_arp" } else { key };
                o.explicit.retain(|k| *k != canon);
                let value = match key {
                    "arp_ip_target" => edit_targets(&o.arp_ip_target, key, value)?,
                    "ns_ip6_target" => edit_targets(&o.ns_ip6_target, key, value)?,
                    _ => value.to_string(),
                };
                o.set(key, &value).map_err(|e| e.to_string())?;
                let mut warnings = one_link_monitor(&mut o, key);
                warnings.extend(o.finish().map_err(|e| e.to_string())?);
                self.opts = o;
                self.ab.reselect = self.opts.primary_reselect;
                self.mii.set_delays(ms(self.opts.updelay), ms(self.opts.downdelay));
                if let Some(l) = &mut self.lacp {
                    let fast = self.opts.lacp_rate == LacpRate::Fast;
                    if fast != l.config().fast {
                        l.set_fast(now, fast);
                    }
                    if self.opts.min_links != l.config().min_links {
                        l.set_min_links(now, self.opts.min_links);
                    }
                }
                self.after_lacp();
                self.reconfigure_arp(now);
                self.reselect(now);
                self.publish_if_changed();
                let mut msg = format!("{key} set to {value}");
                for w in warnings {
                    msg.push_str("; warning: ");
                    msg.push_str(&w);
                }
                Ok(msg)
            }
            other => match option(other).map(|d| d.live) {
                Some(Live::NotWithMembers) => Err(format!(
                    "{other} cannot be changed while the bond has members (as in the kernel); change the config and restart"
                )),
                Some(_) => Err(format!(
                    "{other} cannot be changed at runtime in this version of xbond"
                )),
                None => Err(format!("unknown bonding option '{other}'")),
            },
        }
    }

    /// Start, stop or retune the ARP monitor after a runtime change.
    /// Members pass between it and the MII monitor in the state they are
    /// in, as the kernel's two monitors share one link state.
    pub(super) fn reconfigure_arp(&mut self, now: Instant) {
        let cfg = (self.opts.arp_interval > 0).then(|| arp_config(&self.opts));
        match (self.arp.take(), cfg) {
            (Some(a), Some(cfg)) if *a.config() == cfg => {
                self.arp = Some(a);
                return;
            }
            (Some(mut a), Some(cfg)) => {
                a.reconfigure(now, cfg);
                self.arp = Some(a);
            }
            (Some(_), None) => {
                for (i, m) in (0..).zip(&self.members) {
                    if m.is_some() {
                        self.mii.take_over(i, self.link_state(i) == LinkState::Up);
                        if self.opts.miimon > 0 {
                            let carrier = self.mii.carrier(i);
                            self.mii.handle_carrier(now, i, carrier);
                        }
                    }
                }
            }
            (None, Some(cfg)) => {
                let mut a = ArpMonitor::new(cfg);
                for (i, m) in (0..).zip(&self.members) {
                    // A member starts as up as it is now, judged from the
                    // first round on.
                    a.add(now, self.link_state(i) == LinkState::Up);
                    a.set_carrier(i, self.mii.carrier(i));
                    if m.is_none() {
                        a.remove(i);
                    }
                }
                a.set_active(now, self.ab.active);
                self.arp = Some(a);
            }
            (None, None) => return,
        }
        self.after_monitors(now);
    }

    pub fn miimon(&self) -> Duration {
        ms(self.opts.miimon)
    }
}
