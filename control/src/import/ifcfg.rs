//! initscripts (`/etc/sysconfig/network-scripts/ifcfg-*`: a bond file with
//! `BONDING_OPTS`, member files with `MASTER=bond0 SLAVE=yes`, VLAN files
//! with `VLAN=yes`) and SUSE sysconfig (`/etc/sysconfig/network/ifcfg-*`:
//! `BONDING_MASTER`, `BONDING_MODULE_OPTS`, `BONDING_SLAVEn`, VLANs with
//! `ETHERDEVICE` and `VLAN_ID`).

use super::{netmask_prefix, render, BondDraft, Imported, VlanDraft};
use crate::config::{MemberSpec, Selector};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::Path;

/// One ifcfg file: its variables, and the device it configures.
#[derive(Debug, Clone)]
struct IfcfgFile {
    file: String,
    device: String,
    vars: BTreeMap<String, String>,
}

impl IfcfgFile {
    fn get(&self, k: &str) -> Option<&str> {
        self.vars
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn yes(&self, k: &str) -> bool {
        self.get(k).is_some_and(|v| {
            v.eq_ignore_ascii_case("yes") || v == "1" || v.eq_ignore_ascii_case("true")
        })
    }

    fn is_bond(&self) -> bool {
        self.yes("BONDING_MASTER")
            || self
                .get("TYPE")
                .is_some_and(|t| t.eq_ignore_ascii_case("bond"))
            || self.get("BONDING_OPTS").is_some()
            || self.get("BONDING_MODULE_OPTS").is_some()
    }

    /// (parent, VLAN id) of a VLAN file.
    fn vlan(&self) -> Option<(String, u16)> {
        if let (Some(parent), Some(id)) = (self.get("ETHERDEVICE"), self.get("VLAN_ID")) {
            return Some((parent.to_string(), id.parse().ok()?));
        }
        if !self.yes("VLAN") {
            return None;
        }
        let (base, suffix) = self.device.rsplit_once('.')?;
        let parent = self.get("PHYSDEV").unwrap_or(base);
        let id = self.get("VLAN_ID").unwrap_or(suffix);
        Some((parent.to_string(), id.parse().ok()?))
    }
}

/// Shell variable assignments as initscripts and wicked read them: one
/// `KEY=value` per line, optionally quoted; comments and other lines skipped.
fn parse_vars(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let v = v.trim();
        let v = if let Some(inner) = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
            inner.replace("\\\"", "\"")
        } else if let Some(inner) = v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
            inner.to_string()
        } else {
            // Unquoted: a trailing comment is not part of the value.
            v.split(" #").next().unwrap_or("").trim().to_string()
        };
        out.insert(k.to_string(), v);
    }
    out
}

/// Files initscripts itself skips.
fn ignored(name: &str) -> bool {
    name == "ifcfg-lo"
        || [
            "~", ".bak", ".orig", ".rpmnew", ".rpmsave", ".rpmorig", ".old", ".swp",
        ]
        .iter()
        .any(|s| name.ends_with(s))
}

pub fn import_dir(dir: &Path) -> anyhow::Result<Imported> {
    let mut files = Vec::new();
    let rd = std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))?;
    for e in rd {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("ifcfg-") || ignored(&name) {
            continue;
        }
        let text = std::fs::read_to_string(e.path())
            .with_context(|| format!("read {}", e.path().display()))?;
        files.push((name, text));
    }
    Ok(import_files(&dir.display().to_string(), files))
}

/// The import of (file name, contents) pairs, in any order.
pub fn import_files(source: &str, mut files: Vec<(String, String)>) -> Imported {
    files.sort();
    let parsed: Vec<IfcfgFile> = files
        .into_iter()
        .map(|(file, text)| {
            let vars = parse_vars(&text);
            let device = vars
                .get("DEVICE")
                .filter(|d| !d.is_empty())
                .cloned()
                .unwrap_or_else(|| file.trim_start_matches("ifcfg-").to_string());
            IfcfgFile { file, device, vars }
        })
        .collect();
    let mut warnings = Vec::new();
    let mut bonds: Vec<BondDraft> = Vec::new();
    for f in parsed.iter().filter(|f| f.is_bond()) {
        bonds.push(bond(f, &parsed, &mut warnings));
    }
    for f in &parsed {
        let Some((parent, id)) = f.vlan() else {
            continue;
        };
        let Some(b) = bonds.iter_mut().find(|b| b.name == parent) else {
            warnings.push(format!(
                "{}: VLAN {id} is on {parent}, which is not a bond; not imported",
                f.file
            ));
            continue;
        };
        let default_name = format!("{parent}.{id}");
        let v = VlanDraft {
            id,
            name: (f.device != default_name).then(|| f.device.clone()),
            mtu: mtu(f, &mut warnings),
            addresses: addresses(f, &mut warnings),
        };
        not_carried(f, &mut warnings);
        b.vlans.push(v);
    }
    for f in &parsed {
        if let Some(m) = f.get("MASTER") {
            if f.yes("SLAVE") && !bonds.iter().any(|b| b.name == m) {
                warnings.push(format!(
                    "{}: {} is a member of {m}, which has no bond file here",
                    f.file, f.device
                ));
            }
        }
    }
    let toml = render(&format!("{source} (ifcfg)"), &bonds, &mut warnings);
    Imported { toml, warnings }
}

fn bond(f: &IfcfgFile, all: &[IfcfgFile], warnings: &mut Vec<String>) -> BondDraft {
    let opts_text = f
        .get("BONDING_OPTS")
        .or_else(|| f.get("BONDING_MODULE_OPTS"))
        .unwrap_or("");
    let mut options = Vec::new();
    for tok in opts_text.split_whitespace() {
        match tok.split_once('=') {
            Some((k, v)) => options.push((k.to_string(), v.to_string())),
            None => warnings.push(format!(
                "{}: bonding option '{tok}' has no value; left out",
                f.file
            )),
        }
    }
    if options.is_empty() {
        // The kernel's default mode, said out loud.
        options.push(("mode".into(), "balance-rr".into()));
    }
    // SUSE: BONDING_SLAVE0, BONDING_SLAVE1, ... in numeric order.
    let mut numbered: Vec<(u32, String)> = f
        .vars
        .iter()
        .filter_map(|(k, v)| {
            let n = k.strip_prefix("BONDING_SLAVE")?;
            let n: u32 = if n.is_empty() {
                0
            } else {
                n.strip_prefix('_').unwrap_or(n).parse().ok()?
            };
            (!v.is_empty()).then(|| (n, v.clone()))
        })
        .collect();
    numbered.sort();
    let mut members: Vec<MemberSpec> = numbered
        .into_iter()
        .map(|(_, n)| MemberSpec::Name(n))
        .collect();
    // initscripts: member files that name this bond as MASTER.
    for s in all
        .iter()
        .filter(|s| s.get("MASTER") == Some(f.device.as_str()) && s.yes("SLAVE"))
    {
        let spec = if s.vars.contains_key("DEVICE") || s.get("HWADDR").is_none() {
            MemberSpec::Name(s.device.clone())
        } else {
            // A member file keyed by hardware address only.
            MemberSpec::Select(Selector {
                driver: None,
                mac: s.get("HWADDR").map(str::to_ascii_lowercase),
            })
        };
        if !members.contains(&spec) {
            members.push(spec);
        }
    }
    if members.is_empty() {
        warnings.push(format!(
            "{}: bond {} has no members (no BONDING_SLAVEn, no file with MASTER={} SLAVE=yes)",
            f.file, f.device, f.device
        ));
    }
    not_carried(f, warnings);
    BondDraft {
        name: f.device.clone(),
        members,
        options,
        mtu: mtu(f, warnings),
        mac: f
            .get("MACADDR")
            .or_else(|| f.get("LLADDR"))
            .map(str::to_ascii_lowercase),
        addresses: addresses(f, warnings),
        vlans: Vec::new(),
    }
}

fn mtu(f: &IfcfgFile, warnings: &mut Vec<String>) -> Option<u32> {
    let m = f.get("MTU")?;
    match m.parse() {
        Ok(v) => Some(v),
        Err(_) => {
            warnings.push(format!("{}: MTU '{m}' is not a number; left out", f.file));
            None
        }
    }
}

/// IPv4 (`IPADDR` with `PREFIX`/`NETMASK`, numbered `IPADDRn`, SUSE's
/// `IPADDR='a/len'` and `PREFIXLEN`) and IPv6 (`IPV6ADDR`,
/// `IPV6ADDR_SECONDARIES`) addresses, as ADDRESS/PREFIX.
fn addresses(f: &IfcfgFile, warnings: &mut Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut suffixes: Vec<String> = f
        .vars
        .keys()
        .filter_map(|k| k.strip_prefix("IPADDR"))
        .map(str::to_string)
        .collect();
    // "" first, then IPADDR0, IPADDR1, ... (and SUSE's IPADDR_x labels).
    suffixes.sort_by_key(|s| {
        (
            !s.is_empty(),
            s.trim_start_matches('_').parse::<u32>().ok(),
            s.clone(),
        )
    });
    for sfx in suffixes {
        let Some(ip) = f.get(&format!("IPADDR{sfx}")) else {
            continue;
        };
        if ip.contains('/') {
            out.push(ip.to_string());
            continue;
        }
        let plen = f
            .get(&format!("PREFIX{sfx}"))
            .or_else(|| f.get(&format!("PREFIXLEN{sfx}")))
            .map(str::to_string)
            .or_else(|| {
                f.get(&format!("NETMASK{sfx}"))
                    .and_then(netmask_prefix)
                    .map(|p| p.to_string())
            });
        match plen {
            Some(p) => out.push(format!("{ip}/{p}")),
            None => warnings.push(format!(
                "{}: IPADDR{sfx}={ip} has no PREFIX or NETMASK; left out",
                f.file
            )),
        }
    }
    if let Some(a) = f.get("IPV6ADDR") {
        out.push(if a.contains('/') {
            a.to_string()
        } else {
            format!("{a}/64")
        });
    }
    if let Some(list) = f.get("IPV6ADDR_SECONDARIES") {
        for a in list.split_whitespace() {
            out.push(if a.contains('/') {
                a.to_string()
            } else {
                format!("{a}/64")
            });
        }
    }
    out
}

/// Settings that belong to a network manager, not to the bond.
fn not_carried(f: &IfcfgFile, warnings: &mut Vec<String>) {
    if let Some(p) = f.get("BOOTPROTO") {
        if p.eq_ignore_ascii_case("dhcp") || p.eq_ignore_ascii_case("bootp") {
            warnings.push(format!(
                "{}: BOOTPROTO={p}: xbond does not run a DHCP client; run yours on {}",
                f.file, f.device
            ));
        }
    }
    for k in [
        "GATEWAY",
        "DNS1",
        "DNS2",
        "DOMAIN",
        "ETHTOOL_OPTS",
        "ZONE",
        "IPV6_DEFAULTGW",
    ] {
        if let Some(v) = f.get(k) {
            warnings.push(format!(
                "{}: {k}={v} is not carried over (xbond makes interfaces; routes, DNS and the rest stay with your network tooling)",
                f.file
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    /// The layout of the RHEL networking guide: a bond file with
    /// BONDING_OPTS, two member files, a VLAN on the bond.
    #[test]
    fn initscripts_bond_members_and_vlan() {
        let out = import_files(
            "/etc/sysconfig/network-scripts",
            files(&[
                (
                    "ifcfg-bond0",
                    "DEVICE=bond0\nNAME=bond0\nTYPE=Bond\nBONDING_MASTER=yes\nIPADDR=192.168.1.1\nPREFIX=24\nONBOOT=yes\nBOOTPROTO=none\nBONDING_OPTS=\"mode=active-backup miimon=100 primary=eth0\"\nMTU=9000\n",
                ),
                (
                    "ifcfg-eth1",
                    "DEVICE=eth1\nNAME=bond0-slave\nTYPE=Ethernet\nBOOTPROTO=none\nONBOOT=yes\nMASTER=bond0\nSLAVE=yes\n",
                ),
                (
                    "ifcfg-eth0",
                    "DEVICE=eth0\nNAME=bond0-slave\nTYPE=Ethernet\nBOOTPROTO=none\nONBOOT=yes\nMASTER=bond0\nSLAVE=yes\n",
                ),
                (
                    "ifcfg-bond0.87",
                    "DEVICE=bond0.87\nBOOTPROTO=none\nONBOOT=yes\nIPADDR=198.18.87.19\nNETMASK=255.255.255.0\nVLAN=yes\n",
                ),
                ("ifcfg-lo", "DEVICE=lo\nIPADDR=127.0.0.1\n"),
            ]),
        );
        assert_eq!(
            out.toml,
            r#"# imported by xbond from /etc/sysconfig/network-scripts (ifcfg)

[bond.bond0]
members = ["eth0", "eth1"]
options = "mode=active-backup miimon=100 primary=eth0"
mtu = 9000
addresses = ["192.168.1.1/24"]

[[bond.bond0.vlan]]
id = 87
addresses = ["198.18.87.19/24"]
"#
        );
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    }

    /// The layout of the SUSE administration guide: BONDING_MODULE_OPTS,
    /// numbered BONDING_SLAVEn, IPADDR with its prefix, a VLAN file with
    /// ETHERDEVICE and VLAN_ID, DHCP on the VLAN.
    #[test]
    fn sysconfig_bond_with_numbered_slaves_and_vlan() {
        let out = import_files(
            "/etc/sysconfig/network",
            files(&[
                (
                    "ifcfg-bond0",
                    "BONDING_MASTER='yes'\nBONDING_MODULE_OPTS='mode=802.3ad miimon=100 lacp_rate=fast xmit_hash_policy=layer3+4'\nBONDING_SLAVE1='eth1'\nBONDING_SLAVE0='eth0'\nBOOTPROTO='static'\nBROADCAST=''\nETHTOOL_OPTIONS=''\nIPADDR='192.168.1.1/24'\nMTU=''\nNAME=''\nNETMASK=''\nNETWORK=''\nREMOTE_IPADDR=''\nSTARTMODE='auto'\nUSERCONTROL='no'\n",
                ),
                ("ifcfg-eth0", "BOOTPROTO='none'\nSTARTMODE='hotplug'\n"),
                ("ifcfg-eth1", "BOOTPROTO='none'\nSTARTMODE='hotplug'\n"),
                (
                    "ifcfg-vlan87",
                    "BOOTPROTO='dhcp'\nSTARTMODE='auto'\nETHERDEVICE='bond0'\nVLAN_ID='87'\n",
                ),
            ]),
        );
        assert_eq!(
            out.toml,
            r#"# imported by xbond from /etc/sysconfig/network (ifcfg)

[bond.bond0]
members = ["eth0", "eth1"]
options = "mode=802.3ad miimon=100 lacp_rate=fast xmit_hash_policy=layer3+4"
addresses = ["192.168.1.1/24"]

[[bond.bond0.vlan]]
id = 87
name = "vlan87"
"#
        );
        assert_eq!(
            out.warnings,
            vec!["ifcfg-vlan87: BOOTPROTO=dhcp: xbond does not run a DHCP client; run yours on vlan87"]
        );
    }

    #[test]
    fn what_does_not_carry_over_is_said() {
        let out = import_files(
            "d",
            files(&[
                (
                    "ifcfg-bond1",
                    "DEVICE=bond1\nBONDING_OPTS=\"mode=balance-tlb miimon=100 bogus\"\nBOOTPROTO=dhcp\nGATEWAY=192.168.1.254\nIPADDR1=10.0.0.1\n",
                ),
                ("ifcfg-eth2", "DEVICE=eth2\nMASTER=bond9\nSLAVE=yes\n"),
                ("ifcfg-eth3", "HWADDR=10:E7:C6:16:AA:01\nMASTER=bond1\nSLAVE=yes\n"),
                ("ifcfg-eth4.5", "DEVICE=eth4.5\nVLAN=yes\n"),
                ("ifcfg-bond1.bak", "DEVICE=bond1\n"),
            ]),
        );
        assert_eq!(
            out.toml,
            r#"# imported by xbond from d (ifcfg)

[bond.bond1]
members = [{ mac = "10:e7:c6:16:aa:01" }]
options = "mode=balance-tlb miimon=100"
"#
        );
        assert_eq!(
            out.warnings,
            vec![
                "ifcfg-bond1: bonding option 'bogus' has no value; left out",
                "ifcfg-bond1: BOOTPROTO=dhcp: xbond does not run a DHCP client; run yours on bond1",
                "ifcfg-bond1: GATEWAY=192.168.1.254 is not carried over (xbond makes interfaces; routes, DNS and the rest stay with your network tooling)",
                "ifcfg-bond1: IPADDR1=10.0.0.1 has no PREFIX or NETMASK; left out",
                "ifcfg-eth4.5: VLAN 5 is on eth4, which is not a bond; not imported",
                "ifcfg-eth2: eth2 is a member of bond9, which has no bond file here",
            ]
        );
    }

    #[test]
    fn quoting_and_comments() {
        let v = parse_vars("# c\nA=\"x y\"\nB='z'\nC=plain # note\nexport D=1\nnot a line\n");
        assert_eq!(v["A"], "x y");
        assert_eq!(v["B"], "z");
        assert_eq!(v["C"], "plain");
        assert_eq!(v["D"], "1");
        assert_eq!(v.len(), 4);
    }
}
