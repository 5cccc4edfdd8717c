//! Configurations as netplan's documentation (netplan(5), the examples)
//! shows them.

use super::*;
use crate::import::testing::{bond, MODES};

fn one(text: &str) -> Imported {
    import_files("/etc/netplan", vec![("01-netcfg.yaml".into(), text.into())])
}

#[test]
fn the_examples_active_backup_bond_with_dhcp() {
    let out = one(
        "network:\n  version: 2\n  renderer: networkd\n  ethernets:\n    eno1:\n      dhcp4: no\n    eno2: {}\n  bonds:\n    bond0:\n      dhcp4: yes\n      interfaces:\n        - eno1\n        - eno2\n      parameters:\n        mode: active-backup\n        primary: eno1\n",
    );
    let b = bond(&out);
    assert_eq!(b.options.mode.to_string(), "active-backup");
    assert_eq!(b.options.primary.as_deref(), Some("eno1"));
    assert!(
        out.toml.contains("members = [\"eno1\", \"eno2\"]"),
        "{}",
        out.toml
    );
    assert_eq!(out.warnings, ["01-netcfg.yaml: network.bonds.bond0.dhcp4: not carried over (a network manager's job, not the bond's)"]);
}

#[test]
fn lacp_with_vlans_parameters_in_netplans_names_and_a_glob_match() {
    let out = one(
        "network:\n  version: 2\n  ethernets:\n    eports:\n      match:\n        name: eth*\n    nic1:\n      match:\n        macaddress: \"10:e7:c6:16:aa:01\"\n        driver: ixgbe\n      set-name: lan1\n    enp4s0: {}\n  bonds:\n    bond0:\n      interfaces: [eports, nic1, enp4s0]\n      mtu: 9000\n      macaddress: \"02:00:00:00:aa:01\"\n      addresses: [198.18.0.1/24, \"2001:db8::1/64\"]\n      routes:\n        - to: default\n          via: 198.18.0.254\n      parameters:\n        mode: 802.3ad\n        lacp-rate: fast\n        mii-monitor-interval: 100\n        up-delay: 1s\n        down-delay: 200ms\n        transmit-hash-policy: layer3+4\n        min-links: 1\n        ad-select: bandwidth\n  vlans:\n    vlan10:\n      id: 10\n      link: bond0\n      addresses: [10.0.0.2/24]\n    bond0.20:\n      id: 20\n      link: bond0\n      mtu: 1500\n",
    );
    let b = bond(&out);
    assert_eq!(b.options.mode.to_string(), "802.3ad");
    assert_eq!(
        (b.options.miimon, b.options.updelay, b.options.downdelay),
        (100, 1000, 200)
    );
    assert_eq!(b.mtu, 9000);
    assert_eq!(b.addresses, ["198.18.0.1/24", "2001:db8::1/64"]);
    assert!(
        out.toml.contains(
            "members = [{ driver = \"ixgbe\", mac = \"10:e7:c6:16:aa:01\" }, \"enp4s0\"]"
        ),
        "{}",
        out.toml
    );
    assert_eq!(b.vlans.len(), 2);
    assert_eq!((b.vlans[0].id, b.vlans[0].name.as_str()), (10, "vlan10"));
    assert_eq!(
        (b.vlans[1].id, b.vlans[1].name.as_str(), b.vlans[1].mtu),
        (20, "bond0.20", 1500)
    );
    let w = out.warnings.join("\n");
    assert!(
        w.contains("network.ethernets.eports.match.name: eth* is a glob"),
        "{w}"
    );
    assert!(
        w.contains("network.ethernets.nic1.set-name: the rename is not carried over"),
        "{w}"
    );
    assert!(
        w.contains("network.bonds.bond0.routes: not carried over"),
        "{w}"
    );
}

#[test]
fn options_netplan_has_and_xbond_refuses_or_does_not_know_are_named() {
    let out = one(
        "network:\n  bonds:\n    bond0:\n      interfaces: [eth0, eth1]\n      parameters:\n        mode: balance-alb\n        mii-monitor-interval: 100\n        arp-interval: 200\n        arp-ip-targets: [198.18.0.2, 198.18.0.3]\n        learn-packet-interval: 5\n        gratuitious-arp: 2\n        coupled-control: false\n  bridges:\n    br0: {interfaces: [eth2]}\n",
    );
    let w = out.warnings.join("\n");
    assert!(
        w.contains(
            "network.bonds.bond0.parameters.coupled-control: not a bond parameter xbond knows"
        ),
        "{w}"
    );
    assert!(w.contains("network.bridges: not bonds"), "{w}");
    assert!(w.contains("xbond would refuse this as it is"), "{w}");
    assert!(
        out.toml.contains("arp_ip_target=198.18.0.2,198.18.0.3"),
        "{}",
        out.toml
    );
    assert!(out.toml.contains("lp_interval=5") && out.toml.contains("num_grat_arp=2"));
}

#[test]
fn every_mode_reads_and_later_files_override_earlier_ones() {
    for mode in MODES {
        let out = import_files(
            "/etc/netplan",
            vec![
                ("10-base.yaml".into(), "network:\n  bonds:\n    bond0:\n      interfaces: [eth0]\n      parameters: {mode: balance-rr, mii-monitor-interval: 50}\n".into()),
                ("90-site.yaml".into(), format!("network:\n  bonds:\n    bond0:\n      parameters: {{mode: {mode}, mii-monitor-interval: 100}}\n")),
            ],
        );
        let b = bond(&out);
        assert_eq!(b.options.mode.to_string(), mode);
        assert_eq!(b.options.miimon, 100);
        assert_eq!(b.members.len(), 1, "{}", out.toml);
        assert!(out.warnings.is_empty(), "{mode}: {:?}", out.warnings);
    }
}
