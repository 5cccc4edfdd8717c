//! systemd-networkd (`/etc/systemd/network`): a `.netdev` with `Kind=bond`
//! and its `[Bond]` section, `.network` files whose `[Network] Bond=` names
//! it (the members), the bond's own `.network` (addresses, `VLAN=`), and the
//! VLANs' `.netdev` (`Kind=vlan`, `[VLAN] Id=`) and `.network` files.

use super::{
    convert, ini, read_dir_files, render, set_option, truth, BondDraft, Conv, Imported, VlanDraft,
};
use crate::config::{MemberSpec, Selector};
use std::path::Path;

/// networkd's `[Bond]` keys (systemd.netdev(5)) and the kernel's names.
const BOND_KEYS: &[(&str, &str, Conv)] = &[
    ("Mode", "mode", Conv::Same),
    ("TransmitHashPolicy", "xmit_hash_policy", Conv::Same),
    ("LACPTransmitRate", "lacp_rate", Conv::Same),
    ("MIIMonitorSec", "miimon", Conv::Millis),
    ("UpDelaySec", "updelay", Conv::Millis),
    ("DownDelaySec", "downdelay", Conv::Millis),
    ("LearnPacketIntervalSec", "lp_interval", Conv::Seconds),
    ("AdSelect", "ad_select", Conv::Same),
    ("AdActorSystemPriority", "ad_actor_sys_prio", Conv::Same),
    ("AdUserPortKey", "ad_user_port_key", Conv::Same),
    ("AdActorSystem", "ad_actor_system", Conv::Same),
    ("FailOverMACPolicy", "fail_over_mac", Conv::Same),
    ("ARPValidate", "arp_validate", Conv::Same),
    ("ARPIntervalSec", "arp_interval", Conv::Millis),
    ("ARPIPTargets", "arp_ip_target", Conv::List),
    ("ARPAllTargets", "arp_all_targets", Conv::Same),
    ("ARPMissedMax", "arp_missed_max", Conv::Same),
    ("PrimaryReselectPolicy", "primary_reselect", Conv::Same),
    ("ResendIGMP", "resend_igmp", Conv::Same),
    ("PacketsPerSlave", "packets_per_slave", Conv::Same),
    ("GratuitousARP", "num_grat_arp", Conv::Same),
    ("AllSlavesActive", "all_slaves_active", Conv::Bool),
    ("DynamicTransmitLoadBalancing", "tlb_dynamic_lb", Conv::Bool),
    ("MinLinks", "min_links", Conv::Same),
    ("PeerNotifyDelaySec", "peer_notif_delay", Conv::Millis),
];

pub fn import_dir(dir: &Path) -> anyhow::Result<Imported> {
    let files = read_dir_files(dir, |n| n.ends_with(".netdev") || n.ends_with(".network"))?;
    Ok(import_files(&dir.display().to_string(), files))
}

/// A `.netdev` of interest: a bond or a VLAN.
struct Netdev {
    file: String,
    name: String,
    kind: String,
    mtu: Option<u32>,
    mac: Option<String>,
    vlan_id: Option<u16>,
    ini: ini::Ini,
}

/// A `.network`: what it matches and what it says.
struct Network {
    file: String,
    ini: ini::Ini,
}

impl Network {
    fn get(&self, sec: &str, key: &str) -> Vec<String> {
        self.ini
            .section_all(Some(sec))
            .flat_map(|p| p.get_all(key).map(str::to_string).collect::<Vec<_>>())
            .flat_map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect()
    }

    fn first(&self, sec: &str, key: &str) -> Option<String> {
        self.get(sec, key).into_iter().next()
    }

    /// The interface names `[Match] Name=` gives.
    fn names(&self) -> Vec<String> {
        self.get("Match", "Name")
    }

    fn matches(&self, name: &str) -> bool {
        self.names().iter().any(|n| n == name)
    }

    /// Addresses, and a warning for what a bond does not carry over.
    fn addresses(&self, what: &str, warnings: &mut Vec<String>) -> Vec<String> {
        let mut out = self.get("Network", "Address");
        out.extend(self.get("Address", "Address"));
        for key in [
            "DHCP",
            "Gateway",
            "DNS",
            "Domains",
            "IPv6AcceptRA",
            "LinkLocalAddressing",
        ] {
            if let Some(v) = self.first("Network", key) {
                warnings.push(format!(
                    "{}: [Network] {key}={v} on {what}: not carried over (a network manager's job, not the bond's)",
                    self.file
                ));
            }
        }
        for sec in ["Route", "RoutingPolicyRule", "DHCPv4", "DHCPv6"] {
            if self.ini.section(Some(sec)).is_some() {
                warnings.push(format!(
                    "{}: [{sec}] on {what}: not carried over",
                    self.file
                ));
            }
        }
        out
    }

    fn mtu(&self) -> Option<u32> {
        self.first("Link", "MTUBytes").and_then(|m| m.parse().ok())
    }

    fn mac(&self) -> Option<String> {
        self.first("Link", "MACAddress")
    }
}

pub fn import_files(source: &str, files: Vec<(String, String)>) -> Imported {
    let mut warnings = Vec::new();
    let mut netdevs = Vec::new();
    let mut networks = Vec::new();
    for (file, text) in files {
        let parsed = match ini(&file, &text) {
            Ok(i) => i,
            Err(e) => {
                warnings.push(e);
                continue;
            }
        };
        if file.ends_with(".netdev") {
            let nd = parsed.section(Some("NetDev"));
            let get = |k: &str| nd.and_then(|p| p.get(k)).map(|v| v.trim().to_string());
            let (Some(name), Some(kind)) = (get("Name"), get("Kind")) else {
                warnings.push(format!("{file}: [NetDev] without Name= and Kind=; skipped"));
                continue;
            };
            let vlan_id = parsed
                .section(Some("VLAN"))
                .and_then(|p| p.get("Id"))
                .and_then(|v| v.trim().parse().ok());
            netdevs.push(Netdev {
                file,
                name,
                kind,
                mtu: get("MTUBytes").and_then(|m| m.parse().ok()),
                mac: get("MACAddress"),
                vlan_id,
                ini: parsed,
            });
        } else {
            networks.push(Network { file, ini: parsed });
        }
    }

    let mut bonds = Vec::new();
    for nd in netdevs.iter().filter(|n| n.kind == "bond") {
        let mut b = BondDraft {
            name: nd.name.clone(),
            mtu: nd.mtu,
            mac: nd.mac.clone(),
            ..Default::default()
        };
        if let Some(sec) = nd.ini.section(Some("Bond")) {
            // Mode first, as BONDING_OPTS strings have it.
            let mut keys: Vec<(&str, &str)> = sec.iter().collect();
            keys.sort_by_key(|(k, _)| *k != "Mode");
            for (k, v) in keys {
                match BOND_KEYS.iter().find(|(n, _, _)| *n == k) {
                    Some((_, kernel, conv)) => match convert(*conv, v, 1000.0) {
                        Some(val) => set_option(&mut b.options, kernel, val),
                        None => warnings.push(format!(
                            "{}: [Bond] {k}={v}: not a value xbond can read; left out",
                            nd.file
                        )),
                    },
                    None => warnings.push(format!(
                        "{}: [Bond] {k}: not a bond setting xbond knows; left out",
                        nd.file
                    )),
                }
            }
        }
        // The members: networks that say Bond=NAME.
        for n in networks
            .iter()
            .filter(|n| n.get("Network", "Bond").contains(&nd.name))
        {
            let names = n.names();
            let mac = n
                .first("Match", "MACAddress")
                .or_else(|| n.first("Match", "PermanentMACAddress"));
            let driver = n.first("Match", "Driver");
            let plain: Vec<&String> = names
                .iter()
                .filter(|x| !x.contains(['*', '?', '[']))
                .collect();
            let member = if !plain.is_empty() && mac.is_none() && driver.is_none() {
                plain
                    .iter()
                    .map(|x| MemberSpec::Name((*x).clone()))
                    .collect::<Vec<_>>()
            } else if mac.is_some() || driver.is_some() {
                if !names.is_empty() {
                    warnings.push(format!(
                        "{}: [Match] Name= together with MACAddress=/Driver=: the member is chosen by MAC/driver only",
                        n.file
                    ));
                }
                vec![MemberSpec::Select(Selector { driver, mac })]
            } else {
                warnings.push(format!(
                    "{}: [Match] Name={}: a glob; xbond selects members by name, MAC or driver; left out",
                    n.file,
                    names.join(" ")
                ));
                Vec::new()
            };
            let first_name = match member.first() {
                Some(MemberSpec::Name(x)) => Some(x.clone()),
                _ => None,
            };
            for (flag, option) in [("PrimarySlave", "primary"), ("ActiveSlave", "active_slave")] {
                if n.first("Network", flag).and_then(|v| truth(&v)) == Some(true) {
                    match &first_name {
                        Some(x) => set_option(&mut b.options, option, x.clone()),
                        None => warnings.push(format!(
                            "{}: [Network] {flag}= on a member chosen by MAC/driver: left out",
                            n.file
                        )),
                    }
                }
            }
            b.members.extend(member);
        }
        // The bond's own network: addresses, link settings, VLANs.
        for n in networks.iter().filter(|n| n.matches(&nd.name)) {
            b.addresses.extend(n.addresses(&nd.name, &mut warnings));
            b.mtu = b.mtu.or(n.mtu());
            b.mac = b.mac.clone().or(n.mac());
            for vname in n.get("Network", "VLAN") {
                let Some(v) = netdevs.iter().find(|d| d.name == vname && d.kind == "vlan") else {
                    warnings.push(format!(
                        "{}: VLAN={vname}: no .netdev with Kind=vlan names it; left out",
                        n.file
                    ));
                    continue;
                };
                let Some(id) = v.vlan_id else {
                    warnings.push(format!("{}: [VLAN] without Id=; left out", v.file));
                    continue;
                };
                let mut draft = VlanDraft {
                    id,
                    name: (vname != format!("{}.{id}", nd.name)).then(|| vname.clone()),
                    mtu: v.mtu,
                    addresses: Vec::new(),
                };
                for vn in networks.iter().filter(|x| x.matches(&vname)) {
                    draft.addresses.extend(vn.addresses(&vname, &mut warnings));
                    draft.mtu = draft.mtu.or(vn.mtu());
                }
                b.vlans.push(draft);
            }
        }
        bonds.push(b);
    }
    for nd in netdevs
        .iter()
        .filter(|n| n.kind != "bond" && n.kind != "vlan")
    {
        warnings.push(format!(
            "{}: a {} netdev ({}); not a bond, left to networkd",
            nd.file, nd.kind, nd.name
        ));
    }
    let toml = render(
        &format!("{source} (systemd-networkd)"),
        &bonds,
        &mut warnings,
    );
    Imported { toml, warnings }
}

#[cfg(test)]
mod tests;
