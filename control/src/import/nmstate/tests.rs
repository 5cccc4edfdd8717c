//! States as nmstate's examples (examples/bond_*.yml) write them.

use super::*;
use crate::import::testing::{bond, MODES};

#[test]
fn the_examples_bond_with_ports_addresses_and_a_vlan() {
    let out = import_str(
        "bond.yml",
        "---\ninterfaces:\n- name: bond99\n  type: bond\n  state: up\n  mtu: 9000\n  mac-address: 02:00:00:00:AA:01\n  ipv4:\n    address:\n    - ip: 192.0.2.0\n      prefix-length: 24\n    enabled: true\n  ipv6:\n    enabled: true\n    autoconf: true\n    dhcp: true\n  link-aggregation:\n    mode: 802.3ad\n    options:\n      miimon: '140'\n      lacp_rate: fast\n      xmit_hash_policy: layer3+4\n    port:\n    - eth3\n    - eth2\n- name: bond99.101\n  type: vlan\n  state: up\n  vlan:\n    base-iface: bond99\n    id: 101\n  ipv4:\n    enabled: true\n    address:\n    - ip: 198.18.101.1\n      prefix-length: 24\nroutes:\n  config:\n  - destination: 0.0.0.0/0\n    next-hop-address: 192.0.2.1\n",
    )
    .unwrap();
    let b = bond(&out);
    assert_eq!(b.name, "bond99");
    assert_eq!(b.options.mode.to_string(), "802.3ad");
    assert_eq!(b.options.miimon, 140);
    assert!(out.toml.contains("members = [\"eth3\", \"eth2\"]"));
    assert_eq!(
        (b.mtu, b.addresses.clone()),
        (9000, vec!["192.0.2.0/24".to_string()])
    );
    assert!(
        out.toml.contains("mac = \"02:00:00:00:aa:01\""),
        "{}",
        out.toml
    );
    assert_eq!(b.vlans.len(), 1);
    assert_eq!(
        (b.vlans[0].id, b.vlans[0].addresses.clone()),
        (101, vec!["198.18.101.1/24".to_string()])
    );
    let w = out.warnings.join("\n");
    assert!(w.contains("bond.yml: routes: not carried over"), "{w}");
    assert!(
        w.contains("interfaces[0].ipv6.autoconf: not carried over")
            && w.contains("interfaces[0].ipv6.dhcp"),
        "{w}"
    );
}

#[test]
fn older_slaves_every_mode_a_policy_and_what_xbond_refuses() {
    for mode in MODES {
        let out = import_str(
            "b.yml",
            &format!("interfaces:\n- name: bond0\n  type: bond\n  link-aggregation:\n    mode: {mode}\n    slaves: [eth1, eth2]\n    options: {{miimon: 100}}\n"),
        )
        .unwrap();
        let b = bond(&out);
        assert_eq!(
            (b.options.mode.to_string(), b.members.len()),
            (mode.to_string(), 2)
        );
        assert!(out.warnings.is_empty(), "{mode}: {:?}", out.warnings);
    }
    // A NodeNetworkConfigurationPolicy (kubernetes-nmstate) holds the state under spec.desiredState.
    let out = import_str(
        "nncp.yml",
        "apiVersion: nmstate.io/v1\nkind: NodeNetworkConfigurationPolicy\nmetadata:\n  name: bond0-policy\nspec:\n  desiredState:\n    interfaces:\n    - name: bond0\n      type: bond\n      state: up\n      link-aggregation:\n        mode: active-backup\n        options:\n          miimon: '100'\n          use_carrier: 0\n          arp_ip_target: [198.18.0.2]\n        port: [eth1]\n",
    )
    .unwrap();
    let w = out.warnings.join("\n");
    assert!(
        w.contains("xbond would refuse this as it is") && w.contains("use_carrier"),
        "{w}"
    );
    assert!(
        out.toml.contains("arp_ip_target=198.18.0.2"),
        "{}",
        out.toml
    );
    assert!(import_str("x.yml", "foo: 1\n")
        .unwrap_err()
        .to_string()
        .contains("no nmstate `interfaces:` list"));
}
