//! A Talos machine config (v1alpha1): the bonds under
//! `machine.network.interfaces[]`, their `bond` settings (Talos' camelCase
//! names for the kernel's options), members by name or `deviceSelectors`,
//! and their `vlans`.

use super::{key_str, render, scalar, strings, BondDraft, Imported, VlanDraft};
use crate::config::{MemberSpec, Selector};
use anyhow::Context;
use std::path::Path;
use yaml_rust2::{Yaml, YamlLoader};

/// Talos' bond keys and the kernel option each one is.
const OPTIONS: &[(&str, &str)] = &[
    ("mode", "mode"),
    ("xmitHashPolicy", "xmit_hash_policy"),
    ("lacpRate", "lacp_rate"),
    ("adActorSystem", "ad_actor_system"),
    ("arpValidate", "arp_validate"),
    ("arpAllTargets", "arp_all_targets"),
    ("primary", "primary"),
    ("primaryReselect", "primary_reselect"),
    ("failOverMac", "fail_over_mac"),
    ("adSelect", "ad_select"),
    ("miimon", "miimon"),
    ("updelay", "updelay"),
    ("downdelay", "downdelay"),
    ("arpInterval", "arp_interval"),
    ("resendIgmp", "resend_igmp"),
    ("minLinks", "min_links"),
    ("lpInterval", "lp_interval"),
    ("packetsPerSlave", "packets_per_slave"),
    ("numPeerNotif", "num_grat_arp"),
    ("tlbDynamicLb", "tlb_dynamic_lb"),
    ("allSlavesActive", "all_slaves_active"),
    ("useCarrier", "use_carrier"),
    ("adActorSysPrio", "ad_actor_sys_prio"),
    ("adUserPortKey", "ad_user_port_key"),
    ("peerNotifyDelay", "peer_notif_delay"),
    ("arpIPTarget", "arp_ip_target"),
];

pub fn import_file(path: &Path) -> anyhow::Result<Imported> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    import_str(&path.display().to_string(), &text)
}

pub fn import_str(source: &str, text: &str) -> anyhow::Result<Imported> {
    let docs = YamlLoader::load_from_str(text)
        .map_err(|e| anyhow::anyhow!("{source}: not valid YAML: {e}"))?;
    let mut warnings = Vec::new();
    let mut bonds = Vec::new();
    let mut saw_machine = false;
    for doc in &docs {
        if doc["machine"].is_badvalue() {
            if let Some(kind) = doc["kind"].as_str() {
                warnings.push(format!(
                    "{source}: a {kind} document is not a machine config; skipped"
                ));
            }
            continue;
        }
        saw_machine = true;
        let Some(ifaces) = doc["machine"]["network"]["interfaces"].as_vec() else {
            continue;
        };
        for (i, iface) in ifaces.iter().enumerate() {
            if iface["bond"].is_badvalue() {
                continue;
            }
            bonds.push(bond(i, iface, &mut warnings));
        }
    }
    if !saw_machine {
        anyhow::bail!("{source}: no Talos machine config (no `machine:` key)");
    }
    let toml = render(&format!("{source} (Talos)"), &bonds, &mut warnings);
    Ok(Imported { toml, warnings })
}

fn bond(i: usize, iface: &Yaml, warnings: &mut Vec<String>) -> BondDraft {
    let at = format!("machine.network.interfaces[{i}]");
    let name = iface["interface"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            warnings.push(format!(
                "{at}: the bond has no `interface` name; called it bond{i}"
            ));
            format!("bond{i}")
        });
    let b = &iface["bond"];
    let mut options = Vec::new();
    // mode first, as BONDING_OPTS strings have it.
    if let Some(m) = scalar(&b["mode"]) {
        options.push(("mode".to_string(), m));
    }
    let mut members: Vec<MemberSpec> = strings(&b["interfaces"])
        .into_iter()
        .map(MemberSpec::Name)
        .collect();
    if let Some(h) = b.as_hash() {
        for (k, v) in h {
            let k = key_str(k);
            match k.as_str() {
                "mode" | "interfaces" => {}
                "deviceSelectors" => {
                    for (j, sel) in v.as_vec().into_iter().flatten().enumerate() {
                        if let Some(s) =
                            selector(&format!("{at}.bond.deviceSelectors[{j}]"), sel, warnings)
                        {
                            members.push(MemberSpec::Select(s));
                        }
                    }
                }
                "arpIPTarget" => {
                    let t = strings(v);
                    if !t.is_empty() {
                        options.push(("arp_ip_target".into(), t.join(",")));
                    }
                }
                _ => match OPTIONS.iter().find(|(t, _)| *t == k) {
                    Some((_, kernel)) => match scalar(v) {
                        Some(val) => options.push((kernel.to_string(), val)),
                        None => {
                            warnings.push(format!("{at}.bond.{k}: not a single value; left out"))
                        }
                    },
                    None => warnings.push(format!("{at}.bond.{k}: unknown bond setting; left out")),
                },
            }
        }
    }
    if members.is_empty() {
        warnings.push(format!(
            "{at}: bond {name} has no interfaces or deviceSelectors"
        ));
    }
    not_carried(&at, &name, iface, warnings);
    let mut vlans = Vec::new();
    for (j, v) in iface["vlans"].as_vec().into_iter().flatten().enumerate() {
        let vat = format!("{at}.vlans[{j}]");
        let Some(id) = v["vlanId"].as_i64().and_then(|n| u16::try_from(n).ok()) else {
            warnings.push(format!("{vat}: no vlanId; left out"));
            continue;
        };
        not_carried(&vat, &format!("{name}.{id}"), v, warnings);
        vlans.push(VlanDraft {
            id,
            name: None,
            mtu: v["mtu"].as_i64().and_then(|m| u32::try_from(m).ok()),
            addresses: addresses(v),
        });
    }
    BondDraft {
        name,
        members,
        options,
        mtu: iface["mtu"].as_i64().and_then(|m| u32::try_from(m).ok()),
        mac: None,
        addresses: addresses(iface),
        vlans,
    }
}

/// `addresses` plus the deprecated single `cidr`.
fn addresses(v: &Yaml) -> Vec<String> {
    let mut a = strings(&v["addresses"]);
    if let Some(c) = v["cidr"].as_str() {
        if !a.iter().any(|x| x == c) {
            a.push(c.to_string());
        }
    }
    a
}

fn selector(at: &str, sel: &Yaml, warnings: &mut Vec<String>) -> Option<Selector> {
    let mut s = Selector {
        driver: None,
        mac: None,
    };
    for (k, v) in sel.as_hash().into_iter().flatten() {
        let k = key_str(k);
        let val = scalar(v).unwrap_or_default();
        match k.as_str() {
            "driver" => s.driver = Some(val),
            // xbond matches the permanent address when a device has one.
            "hardwareAddr" | "permanentAddr" => s.mac = Some(val.to_ascii_lowercase()),
            other => warnings.push(format!(
                "{at}.{other}: xbond selects by driver and mac only; left out"
            )),
        }
    }
    if s.driver.is_none() && s.mac.is_none() {
        warnings.push(format!("{at}: nothing xbond can select by; left out"));
        return None;
    }
    Some(s)
}

/// Settings that belong to Talos' network manager, not to the bond.
fn not_carried(at: &str, name: &str, v: &Yaml, warnings: &mut Vec<String>) {
    if v["dhcp"].as_bool() == Some(true) {
        warnings.push(format!(
            "{at}.dhcp: xbond does not run a DHCP client; run one on {name}"
        ));
    }
    for k in ["routes", "vip", "dhcpOptions", "wireguard", "bridge"] {
        if !v[k].is_badvalue() {
            warnings.push(format!(
                "{at}.{k}: not carried over (xbond makes interfaces only)"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of the Talos documentation's bonding example, with VLANs
    /// for pods and services on the bond.
    #[test]
    fn bond_with_named_members_and_vlans() {
        let yaml = r#"
version: v1alpha1
machine:
  type: worker
  network:
    hostname: node1
    interfaces:
      - interface: eth2
        dhcp: true
      - interface: bond0
        addresses:
          - 198.18.0.19/24
        mtu: 9000
        bond:
          mode: 802.3ad
          lacpRate: fast
          xmitHashPolicy: layer3+4
          miimon: 100
          updelay: 200
          downdelay: 200
          interfaces:
            - eth0
            - eth1
        vlans:
          - vlanId: 87
            addresses: [198.18.87.19/24]
            mtu: 1500
          - vlanId: 88
            dhcp: true
        routes:
          - network: 0.0.0.0/0
            gateway: 198.18.0.1
cluster:
  clusterName: c
"#;
        let out = import_str("controlplane.yaml", yaml).unwrap();
        assert_eq!(
            out.toml,
            r#"# imported by xbond from controlplane.yaml (Talos)

[bond.bond0]
members = ["eth0", "eth1"]
options = "mode=802.3ad lacp_rate=fast xmit_hash_policy=layer3+4 miimon=100 updelay=200 downdelay=200"
mtu = 9000
addresses = ["198.18.0.19/24"]

[[bond.bond0.vlan]]
id = 87
mtu = 1500
addresses = ["198.18.87.19/24"]

[[bond.bond0.vlan]]
id = 88
"#
        );
        assert_eq!(
            out.warnings,
            vec![
                "machine.network.interfaces[1].routes: not carried over (xbond makes interfaces only)",
                "machine.network.interfaces[1].vlans[1].dhcp: xbond does not run a DHCP client; run one on bond0.88",
            ]
        );
    }

    /// The user report: a bond by device selectors (Talos answers "device
    /// or resource busy" when the driver is missing); active-backup.
    #[test]
    fn bond_by_device_selectors() {
        let yaml = r#"
machine:
  network:
    interfaces:
      - interface: bond0
        dhcp: false
        bond:
          mode: active-backup
          numPeerNotif: 3
          useCarrier: true
          deviceSelectors:
            - hardwareAddr: '10:E7:C6:16:*'
              driver: ixgbe
            - busPath: "0000:01:00.*"
"#;
        let out = import_str("worker.yaml", yaml).unwrap();
        assert_eq!(
            out.toml,
            r#"# imported by xbond from worker.yaml (Talos)

[bond.bond0]
members = [{ driver = "ixgbe", mac = "10:e7:c6:16:*" }]
options = "mode=active-backup num_grat_arp=3 use_carrier=1"
"#
        );
        assert_eq!(
            out.warnings,
            vec![
                "machine.network.interfaces[0].bond.deviceSelectors[1].busPath: xbond selects by driver and mac only; left out",
                "machine.network.interfaces[0].bond.deviceSelectors[1]: nothing xbond can select by; left out",
            ]
        );
    }

    #[test]
    fn not_a_machine_config_is_an_error() {
        assert!(import_str("x", "cluster: {}\n")
            .unwrap_err()
            .to_string()
            .contains("no Talos machine config"));
        assert!(import_str("x", "machine: [\n").is_err());
        let out = import_str("x", "machine:\n  network: {}\n").unwrap();
        assert_eq!(out.warnings, vec!["no bond found in x (Talos)"]);
    }
}
