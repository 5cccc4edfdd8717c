//! NetworkManager keyfiles (`/etc/NetworkManager/system-connections/
//! *.nmconnection`): a `type=bond` connection whose `[bond]` section holds
//! the kernel's own option names, the ports whose `controller=` (or older
//! `master=`) names it by interface, id or UUID, and `type=vlan`
//! connections whose `[vlan] parent=` is the bond.

use super::{ini, read_dir_files, render, set_option, BondDraft, Imported, VlanDraft};
use crate::config::{MemberSpec, Selector};
use std::path::Path;

pub fn import_dir(dir: &Path) -> anyhow::Result<Imported> {
    let files = read_dir_files(dir, |n| n.ends_with(".nmconnection"))?;
    Ok(import_files(&dir.display().to_string(), files))
}

struct Conn {
    file: String,
    ini: ini::Ini,
}

impl Conn {
    fn get(&self, sec: &str, key: &str) -> Option<String> {
        // Older keyfiles name the sections by setting: [802-3-ethernet].
        let long = match sec {
            "ethernet" => "802-3-ethernet",
            other => other,
        };
        [sec, long]
            .iter()
            .find_map(|s| self.ini.get_from(Some(*s), key))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn kind(&self) -> String {
        self.get("connection", "type").unwrap_or_default()
    }

    fn iface(&self) -> Option<String> {
        self.get("connection", "interface-name")
    }

    /// Whether `reference` (an interface name, connection id or UUID)
    /// names this connection.
    fn is(&self, reference: &str) -> bool {
        [
            self.iface(),
            self.get("connection", "id"),
            self.get("connection", "uuid"),
        ]
        .iter()
        .any(|v| v.as_deref() == Some(reference))
    }

    fn mtu(&self) -> Option<u32> {
        self.get("ethernet", "mtu")
            .and_then(|m| m.parse().ok())
            .filter(|m| *m > 0)
    }

    /// Static addresses of `[ipv4]`/`[ipv6]`, and warnings for the rest.
    fn addresses(&self, what: &str, warnings: &mut Vec<String>) -> Vec<String> {
        let mut out = Vec::new();
        for fam in ["ipv4", "ipv6"] {
            let Some(sec) = self.ini.section(Some(fam)) else {
                continue;
            };
            for (k, v) in sec.iter() {
                let v = v.trim();
                let numbered = k
                    .strip_prefix("address")
                    .or_else(|| k.strip_prefix("addresses"));
                if numbered.is_some_and(|n| n.chars().all(|c| c.is_ascii_digit())) {
                    let mut parts = v.split(',');
                    let addr = parts.next().unwrap_or("").trim();
                    out.push(with_prefix(addr, fam));
                    if let Some(gw) = parts.next().filter(|g| !g.trim().is_empty()) {
                        warnings.push(format!(
                            "{}: [{fam}] {k}: gateway {gw} on {what}: not carried over (a network manager's job, not the bond's)",
                            self.file
                        ));
                    }
                    continue;
                }
                let off = matches!(
                    v,
                    "disabled" | "ignore" | "link-local" | "manual" | "false" | ""
                );
                let noise = matches!(
                    k,
                    "method"
                        | "may-fail"
                        | "never-default"
                        | "addr-gen-mode"
                        | "ip6-privacy"
                        | "dhcp-timeout"
                );
                if k == "method" && !off {
                    warnings.push(format!("{}: [{fam}] method={v} on {what}: not carried over (addresses from DHCP/SLAAC are a network manager's job)", self.file));
                } else if !noise {
                    warnings.push(format!(
                        "{}: [{fam}] {k} on {what}: not carried over",
                        self.file
                    ));
                }
            }
        }
        out
    }
}

/// `addr` with a prefix length; NM's default is /24 for IPv4, /64 for IPv6.
fn with_prefix(addr: &str, fam: &str) -> String {
    if addr.contains('/') {
        return addr.to_string();
    }
    format!("{addr}/{}", if fam == "ipv4" { 24 } else { 64 })
}

pub fn import_files(source: &str, files: Vec<(String, String)>) -> Imported {
    let mut warnings = Vec::new();
    let mut conns = Vec::new();
    for (file, text) in files {
        match ini(&file, &text) {
            Ok(i) => conns.push(Conn { file, ini: i }),
            Err(e) => warnings.push(e),
        }
    }
    let mut bonds = Vec::new();
    for c in conns.iter().filter(|c| c.kind() == "bond") {
        let Some(name) = c.iface().or_else(|| c.get("connection", "id")) else {
            warnings.push(format!(
                "{}: a bond without interface-name or id; skipped",
                c.file
            ));
            continue;
        };
        let mut b = BondDraft {
            name: name.clone(),
            mtu: c.mtu(),
            mac: c
                .get("ethernet", "cloned-mac-address")
                .filter(|m| m.contains(':')),
            ..Default::default()
        };
        if let Some(sec) = c.ini.section(Some("bond")) {
            let mut keys: Vec<(&str, &str)> = sec.iter().collect();
            keys.sort_by_key(|(k, _)| *k != "mode");
            for (k, v) in keys {
                // NetworkManager stores the kernel's names and values.
                set_option(&mut b.options, k, v.trim().to_string());
            }
        }
        for p in conns
            .iter()
            .filter(|p| p.kind() != "bond" && p.kind() != "vlan")
        {
            let controller = p
                .get("connection", "controller")
                .or_else(|| p.get("connection", "master"));
            if !controller.as_deref().is_some_and(|r| c.is(r)) {
                continue;
            }
            let port_type = p
                .get("connection", "port-type")
                .or_else(|| p.get("connection", "slave-type"));
            if port_type.as_deref().is_some_and(|t| t != "bond") {
                continue;
            }
            match (p.iface(), p.get("ethernet", "mac-address")) {
                (Some(n), _) => b.members.push(MemberSpec::Name(n)),
                (None, Some(mac)) => b.members.push(MemberSpec::Select(Selector {
                    driver: None,
                    mac: Some(mac.to_ascii_lowercase()),
                })),
                (None, None) => warnings.push(format!(
                    "{}: a port of {name} with neither interface-name nor mac-address; left out",
                    p.file
                )),
            }
            if p.mtu().is_some() {
                warnings.push(format!(
                    "{}: [ethernet] mtu on a port: members take the bond's MTU",
                    p.file
                ));
            }
        }
        b.addresses = c.addresses(&name, &mut warnings);
        for v in conns.iter().filter(|v| v.kind() == "vlan") {
            if !v.get("vlan", "parent").is_some_and(|r| c.is(&r)) {
                continue;
            }
            let Some(id) = v.get("vlan", "id").and_then(|i| i.parse().ok()) else {
                warnings.push(format!("{}: [vlan] without id; left out", v.file));
                continue;
            };
            let vname = v.iface().unwrap_or_else(|| format!("{name}.{id}"));
            for key in ["flags", "ingress-priority-map", "egress-priority-map"] {
                if v.get("vlan", key).is_some() {
                    warnings.push(format!("{}: [vlan] {key}: not carried over", v.file));
                }
            }
            b.vlans.push(VlanDraft {
                id,
                name: (vname != format!("{name}.{id}")).then(|| vname.clone()),
                mtu: v.mtu(),
                addresses: v.addresses(&vname, &mut warnings),
            });
        }
        bonds.push(b);
    }
    for c in conns.iter().filter(|c| {
        !matches!(
            c.kind().as_str(),
            "bond" | "vlan" | "ethernet" | "802-3-ethernet"
        )
    }) {
        warnings.push(format!(
            "{}: a {} connection; not a bond, left to NetworkManager",
            c.file,
            c.kind()
        ));
    }
    let toml = render(&format!("{source} (NetworkManager)"), &bonds, &mut warnings);
    Imported { toml, warnings }
}

#[cfg(test)]
mod tests;
