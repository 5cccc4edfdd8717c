//! nmstate YAML (`nmstatectl show`, NMState policies): `interfaces` entries of
//! `type: bond` with `link-aggregation` (`mode`, `options` in the kernel's
//! names, `port` or the older `slaves`), their `ipv4`/`ipv6` addresses,
//! `mtu` and `mac-address`, and `type: vlan` entries whose `base-iface` is
//! the bond.

use super::{key_str, render, scalar, set_option, strings, BondDraft, Imported, VlanDraft};
use crate::config::MemberSpec;
use std::path::Path;
use yaml_rust2::{Yaml, YamlLoader};

pub fn import_file(path: &Path) -> anyhow::Result<Imported> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("read {}: {e}", path.display()))?;
    import_str(&path.display().to_string(), &text)
}

/// Static addresses of an interface entry, and warnings for DHCP/autoconf.
fn addresses(at: &str, iface: &Yaml, warnings: &mut Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for fam in ["ipv4", "ipv6"] {
        let ip = &iface[fam];
        if ip.is_badvalue() || ip["enabled"].as_bool() == Some(false) {
            continue;
        }
        for a in ip["address"].as_vec().into_iter().flatten() {
            match (scalar(&a["ip"]), scalar(&a["prefix-length"])) {
                (Some(addr), Some(len)) => out.push(format!("{addr}/{len}")),
                _ => warnings.push(format!(
                    "{at}.{fam}.address: an entry without ip and prefix-length; left out"
                )),
            }
        }
        for key in ["dhcp", "autoconf"] {
            if ip[key].as_bool() == Some(true) {
                warnings.push(format!(
                    "{at}.{fam}.{key}: not carried over (a network manager's job, not the bond's)"
                ));
            }
        }
    }
    out
}

fn mtu(iface: &Yaml) -> Option<u32> {
    iface["mtu"].as_i64().and_then(|m| u32::try_from(m).ok())
}

pub fn import_str(source: &str, text: &str) -> anyhow::Result<Imported> {
    let docs = YamlLoader::load_from_str(text)
        .map_err(|e| anyhow::anyhow!("{source}: not valid YAML: {e}"))?;
    let mut warnings = Vec::new();
    let mut bonds = Vec::new();
    let mut saw = false;
    for doc in &docs {
        // A policy (NodeNetworkConfigurationPolicy) keeps the state under
        // spec.desiredState.
        let state = if doc["interfaces"].is_badvalue() {
            &doc["spec"]["desiredState"]
        } else {
            doc
        };
        let Some(ifaces) = state["interfaces"].as_vec() else {
            continue;
        };
        saw = true;
        for key in ["routes", "dns-resolver", "route-rules"] {
            if !state[key].is_badvalue() {
                warnings.push(format!(
                    "{source}: {key}: not carried over (a network manager's job, not the bond's)"
                ));
            }
        }
        for (i, iface) in ifaces.iter().enumerate() {
            if iface["type"].as_str() != Some("bond") {
                continue;
            }
            let at = format!("{source}: interfaces[{i}]");
            let Some(name) = iface["name"].as_str().map(str::to_string) else {
                warnings.push(format!("{at}: a bond without a name; skipped"));
                continue;
            };
            if iface["state"].as_str() == Some("absent") {
                warnings.push(format!("{at}: {name} is state: absent; skipped"));
                continue;
            }
            let la = &iface["link-aggregation"];
            let mut b = BondDraft {
                name: name.clone(),
                mtu: mtu(iface),
                mac: scalar(&iface["mac-address"]).map(|m| m.to_ascii_lowercase()),
                addresses: addresses(&at, iface, &mut warnings),
                ..Default::default()
            };
            if let Some(m) = scalar(&la["mode"]) {
                set_option(&mut b.options, "mode", m);
            }
            if let Some(opts) = la["options"].as_hash() {
                for (k, v) in opts {
                    let k = key_str(k);
                    let val = match v {
                        Yaml::Array(_) => Some(strings(v).join(",")),
                        other => scalar(other),
                    };
                    match val {
                        Some(val) => set_option(&mut b.options, &k, val),
                        None => warnings.push(format!(
                            "{at}.link-aggregation.options.{k}: not a value; left out"
                        )),
                    }
                }
            }
            let ports = if la["port"].is_badvalue() {
                &la["slaves"]
            } else {
                &la["port"]
            };
            b.members = strings(ports).into_iter().map(MemberSpec::Name).collect();
            if !la["ports-config"].is_badvalue() {
                warnings.push(format!(
                    "{at}.link-aggregation.ports-config: per-port settings are not carried over"
                ));
            }
            for (j, v) in ifaces.iter().enumerate() {
                if v["type"].as_str() != Some("vlan")
                    || v["vlan"]["base-iface"].as_str() != Some(name.as_str())
                {
                    continue;
                }
                let vat = format!("{source}: interfaces[{j}]");
                let Some(id) = v["vlan"]["id"].as_i64().and_then(|n| u16::try_from(n).ok()) else {
                    warnings.push(format!("{vat}: vlan without id; left out"));
                    continue;
                };
                let vname = v["name"]
                    .as_str()
                    .map_or_else(|| format!("{name}.{id}"), str::to_string);
                b.vlans.push(VlanDraft {
                    id,
                    name: (vname != format!("{name}.{id}")).then(|| vname.clone()),
                    mtu: mtu(v),
                    addresses: addresses(&vat, v, &mut warnings),
                });
            }
            bonds.push(b);
        }
    }
    if !saw {
        anyhow::bail!("{source}: no nmstate `interfaces:` list");
    }
    let toml = render(&format!("{source} (nmstate)"), &bonds, &mut warnings);
    Ok(Imported { toml, warnings })
}

#[cfg(test)]
mod tests;
