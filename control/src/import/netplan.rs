//! netplan (`/etc/netplan/*.yaml`): `network.bonds` with `interfaces` and
//! `parameters` (netplan's own names for the kernel's options), the
//! `ethernets` the bonds name (by name, or by `match` on MAC and driver),
//! and `network.vlans` whose `link` is a bond. Files are read in name order,
//! a later file's settings for an interface over an earlier one's, as
//! netplan merges them.

use super::{
    convert, key_str, read_dir_files, render, scalar, set_option, strings, truth, BondDraft, Conv,
    Imported, VlanDraft,
};
use crate::config::{MemberSpec, Selector};
use std::path::Path;
use yaml_rust2::{yaml::Hash, Yaml, YamlLoader};

/// netplan's bond `parameters` (netplan(5)) and the kernel's names.
const PARAMETERS: &[(&str, &str, Conv)] = &[
    ("mode", "mode", Conv::Same),
    ("lacp-rate", "lacp_rate", Conv::Same),
    ("mii-monitor-interval", "miimon", Conv::Millis),
    ("min-links", "min_links", Conv::Same),
    ("transmit-hash-policy", "xmit_hash_policy", Conv::Same),
    ("ad-select", "ad_select", Conv::Same),
    ("all-slaves-active", "all_slaves_active", Conv::Bool),
    ("all-members-active", "all_slaves_active", Conv::Bool),
    ("arp-interval", "arp_interval", Conv::Millis),
    ("arp-ip-targets", "arp_ip_target", Conv::List),
    ("arp-validate", "arp_validate", Conv::Same),
    ("arp-all-targets", "arp_all_targets", Conv::Same),
    ("up-delay", "updelay", Conv::Millis),
    ("down-delay", "downdelay", Conv::Millis),
    ("fail-over-mac-policy", "fail_over_mac", Conv::Same),
    ("gratuitous-arp", "num_grat_arp", Conv::Same),
    // Older netplan spelt it so, and still accepts it.
    ("gratuitious-arp", "num_grat_arp", Conv::Same),
    ("packets-per-slave", "packets_per_slave", Conv::Same),
    ("packets-per-member", "packets_per_slave", Conv::Same),
    ("primary-reselect-policy", "primary_reselect", Conv::Same),
    ("resend-igmp", "resend_igmp", Conv::Same),
    ("learn-packet-interval", "lp_interval", Conv::Seconds),
    ("primary", "primary", Conv::Same),
];

/// Interface keys that belong to a network manager, not the bond.
const NOT_CARRIED: &[&str] = &[
    "dhcp4",
    "dhcp6",
    "dhcp4-overrides",
    "dhcp6-overrides",
    "accept-ra",
    "routes",
    "routing-policy",
    "gateway4",
    "gateway6",
    "nameservers",
    "link-local",
    "ipv6-privacy",
    "critical",
    "optional",
    "optional-addresses",
    "activation-mode",
    "renderer",
    "ipv6-address-generation",
    "ipv6-address-token",
    "ipv6-mtu",
    "wakeonlan",
    "neigh-suppress",
];

/// A parameter's YAML value as text for [`convert`]: a list's items
/// space-separated; a bare number of milliseconds for spans (netplan's).
fn parameter(conv: Conv, v: &Yaml) -> Option<String> {
    let text = match v {
        Yaml::Array(_) => strings(v).join(" "),
        other => scalar(other)?,
    };
    convert(conv, &text, 1.0)
}

pub fn import_path(path: &Path) -> anyhow::Result<Imported> {
    let files = if path.is_dir() {
        read_dir_files(path, |n| n.ends_with(".yaml") || n.ends_with(".yml"))?
    } else {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("read {}: {e}", path.display()))?;
        vec![(path.display().to_string(), text)]
    };
    Ok(import_files(&path.display().to_string(), files))
}

/// The `network.<section>` maps of every file, merged by interface id.
#[derive(Default)]
struct Merged {
    /// (section, id, settings, file that last set it)
    ifaces: Vec<(String, String, Hash, String)>,
}

impl Merged {
    fn add(&mut self, section: &str, id: String, settings: &Hash, file: &str) {
        match self
            .ifaces
            .iter_mut()
            .find(|(s, i, _, _)| s == section && *i == id)
        {
            Some((_, _, h, f)) => {
                for (k, v) in settings {
                    h.insert(k.clone(), v.clone());
                }
                *f = file.to_string();
            }
            None => self
                .ifaces
                .push((section.to_string(), id, settings.clone(), file.to_string())),
        }
    }

    fn get(&self, section: &str, id: &str) -> Option<&(String, String, Hash, String)> {
        self.ifaces
            .iter()
            .find(|(s, i, _, _)| s == section && i == id)
    }

    fn section<'a>(
        &'a self,
        section: &'a str,
    ) -> impl Iterator<Item = &'a (String, String, Hash, String)> {
        self.ifaces.iter().filter(move |(s, _, _, _)| s == section)
    }
}

fn field<'a>(h: &'a Hash, key: &str) -> Option<&'a Yaml> {
    h.get(&Yaml::String(key.to_string()))
}

/// Addresses as netplan writes them: strings, or `{ADDR: {label, lifetime}}`.
fn addresses(h: &Hash) -> Vec<String> {
    field(h, "addresses")
        .and_then(Yaml::as_vec)
        .into_iter()
        .flatten()
        .filter_map(|a| match a {
            Yaml::Hash(m) => m.keys().next().and_then(scalar),
            other => scalar(other),
        })
        .collect()
}

fn mtu(h: &Hash) -> Option<u32> {
    field(h, "mtu")
        .and_then(Yaml::as_i64)
        .and_then(|m| u32::try_from(m).ok())
}

fn not_carried(at: &str, h: &Hash, skip: &[&str], warnings: &mut Vec<String>) {
    for (k, v) in h {
        let k = key_str(k);
        if skip.contains(&k.as_str()) {
            continue;
        }
        let off = matches!(v, Yaml::Boolean(false))
            || scalar(v).is_some_and(|s| truth(&s) == Some(false));
        if NOT_CARRIED.contains(&k.as_str()) {
            if !off {
                warnings.push(format!(
                    "{at}.{k}: not carried over (a network manager's job, not the bond's)"
                ));
            }
        } else {
            warnings.push(format!(
                "{at}.{k}: not a setting xbond carries over; left out"
            ));
        }
    }
}

pub fn import_files(source: &str, files: Vec<(String, String)>) -> Imported {
    let mut warnings = Vec::new();
    let mut merged = Merged::default();
    for (file, text) in &files {
        let docs = match YamlLoader::load_from_str(text) {
            Ok(d) => d,
            Err(e) => {
                warnings.push(format!("{file}: not valid YAML: {e}; skipped"));
                continue;
            }
        };
        for doc in &docs {
            let net = &doc["network"];
            if net.is_badvalue() {
                warnings.push(format!("{file}: no `network:` key; skipped"));
                continue;
            }
            for section in ["ethernets", "bonds", "vlans"] {
                if let Some(h) = net[section].as_hash() {
                    for (id, settings) in h {
                        match settings.as_hash() {
                            Some(s) => merged.add(section, key_str(id), s, file),
                            None => warnings.push(format!(
                                "{file}: network.{section}.{}: not a mapping; skipped",
                                key_str(id)
                            )),
                        }
                    }
                }
            }
            for other in [
                "bridges",
                "tunnels",
                "wifis",
                "modems",
                "vrfs",
                "dummy-devices",
                "virtual-ethernets",
                "nm-devices",
            ] {
                if !net[other].is_badvalue() {
                    warnings.push(format!(
                        "{file}: network.{other}: not bonds; left to netplan"
                    ));
                }
            }
        }
    }

    let mut bonds = Vec::new();
    for (_, name, h, file) in merged.section("bonds") {
        let at = format!("{file}: network.bonds.{name}");
        let mut b = BondDraft {
            name: name.clone(),
            mtu: mtu(h),
            mac: field(h, "macaddress").and_then(scalar),
            addresses: addresses(h),
            ..Default::default()
        };
        for id in field(h, "interfaces").map(strings).unwrap_or_default() {
            b.members.extend(member(
                &merged,
                &id,
                &format!("{at}.interfaces"),
                &mut warnings,
            ));
        }
        if let Some(p) = field(h, "parameters").and_then(Yaml::as_hash) {
            let mut keys: Vec<(&Yaml, &Yaml)> = p.iter().collect();
            keys.sort_by_key(|(k, _)| key_str(k) != "mode");
            for (k, v) in keys {
                let k = key_str(k);
                match PARAMETERS.iter().find(|(n, _, _)| *n == k) {
                    Some((_, kernel, conv)) => match parameter(*conv, v) {
                        Some(val) => set_option(&mut b.options, kernel, val),
                        None => warnings.push(format!(
                            "{at}.parameters.{k}: not a value xbond can read; left out"
                        )),
                    },
                    None => warnings.push(format!(
                        "{at}.parameters.{k}: not a bond parameter xbond knows; left out"
                    )),
                }
            }
        }
        not_carried(
            &at,
            h,
            &["interfaces", "parameters", "addresses", "mtu", "macaddress"],
            &mut warnings,
        );
        for (_, vname, vh, vfile) in merged.section("vlans") {
            if field(vh, "link").and_then(scalar).as_deref() != Some(name.as_str()) {
                continue;
            }
            let vat = format!("{vfile}: network.vlans.{vname}");
            let Some(id) = field(vh, "id")
                .and_then(Yaml::as_i64)
                .and_then(|i| u16::try_from(i).ok())
            else {
                warnings.push(format!("{vat}: no id; left out"));
                continue;
            };
            not_carried(&vat, vh, &["id", "link", "addresses", "mtu"], &mut warnings);
            b.vlans.push(VlanDraft {
                id,
                name: (*vname != format!("{name}.{id}")).then(|| vname.clone()),
                mtu: mtu(vh),
                addresses: addresses(vh),
            });
        }
        bonds.push(b);
    }
    let toml = render(&format!("{source} (netplan)"), &bonds, &mut warnings);
    Imported { toml, warnings }
}

/// A bond's `interfaces` entry: the ethernet of that id, by its name or by
/// what its `match` selects.
fn member(m: &Merged, id: &str, at: &str, warnings: &mut Vec<String>) -> Option<MemberSpec> {
    let Some((_, _, h, file)) = m.get("ethernets", id) else {
        // netplan needs it defined, but the name is what the kernel has.
        return Some(MemberSpec::Name(id.to_string()));
    };
    let eat = format!("{file}: network.ethernets.{id}");
    let Some(mat) = field(h, "match").and_then(Yaml::as_hash) else {
        not_carried(&eat, h, &["set-name"], warnings);
        return Some(MemberSpec::Name(id.to_string()));
    };
    let mac = field(mat, "macaddress").and_then(scalar);
    let driver = field(mat, "driver").and_then(scalar);
    let name = field(mat, "name").and_then(scalar);
    if field(h, "set-name").is_some() {
        warnings.push(format!(
            "{eat}.set-name: the rename is not carried over; the member is chosen by its match"
        ));
    }
    not_carried(&eat, h, &["match", "set-name"], warnings);
    if mac.is_some() || driver.is_some() {
        if name.is_some() {
            warnings.push(format!(
                "{eat}.match.name: with macaddress/driver, the member is chosen by those only"
            ));
        }
        return Some(MemberSpec::Select(Selector { driver, mac }));
    }
    match name {
        Some(n) if !n.contains(['*', '?', '[']) => Some(MemberSpec::Name(n)),
        Some(n) => {
            warnings.push(format!("{eat}.match.name: {n} is a glob; xbond selects members by name, MAC or driver; left out ({at})"));
            None
        }
        None => Some(MemberSpec::Name(id.to_string())),
    }
}

#[cfg(test)]
mod tests;
