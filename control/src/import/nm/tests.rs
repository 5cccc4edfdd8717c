//! Keyfiles as nm-settings-keyfile(5) and the RHEL networking guide write
//! them (what `nmcli connection add type bond ...` saves).

use super::*;
use crate::import::testing::{bond, files, MODES};

const BOND0: &str = "[connection]\nid=bond0\nuuid=5f1a3c2e-6f7d-4a34-9f5e-2b1d4c6a7e90\ntype=bond\ninterface-name=bond0\n\n[ethernet]\nmtu=9000\n\n[bond]\nmiimon=100\nmode=802.3ad\nxmit_hash_policy=layer3+4\nlacp_rate=fast\n\n[ipv4]\naddress1=192.0.2.1/24,192.0.2.254\ndns=192.0.2.200;\nmethod=manual\n\n[ipv6]\naddr-gen-mode=default\nmethod=disabled\n\n[proxy]\n";

#[test]
fn an_nmcli_802_3ad_bond_with_ports_by_name_id_and_uuid() {
    let out = import_files(
        "/etc/NetworkManager/system-connections",
        files(&[
            ("bond0.nmconnection", BOND0),
            ("bond0-port1.nmconnection", "[connection]\nid=bond0-port1\ntype=ethernet\ninterface-name=enp7s0\ncontroller=bond0\nport-type=bond\n"),
            // Older NetworkManager: master= the bond's UUID, slave-type=.
            ("bond-slave-enp8s0.nmconnection", "[connection]\nid=bond-slave-enp8s0\ntype=802-3-ethernet\nmaster=5f1a3c2e-6f7d-4a34-9f5e-2b1d4c6a7e90\nslave-type=bond\n\n[802-3-ethernet]\nmac-address=10:E7:C6:16:AA:02\n"),
            ("other.nmconnection", "[connection]\nid=eth9\ntype=ethernet\ninterface-name=eth9\n"),
            ("bond0.87.nmconnection", "[connection]\nid=bond0.87\ntype=vlan\ninterface-name=bond0.87\n\n[vlan]\nid=87\nparent=bond0\n\n[ipv4]\naddress1=198.18.87.1/24\nmethod=manual\n"),
            ("iot.nmconnection", "[connection]\nid=iot\ntype=vlan\ninterface-name=iot\n\n[vlan]\nid=100\nparent=5f1a3c2e-6f7d-4a34-9f5e-2b1d4c6a7e90\nflags=1\n\n[ethernet]\nmtu=1500\n\n[ipv4]\nmethod=auto\n"),
        ]),
    );
    let b = bond(&out);
    assert_eq!(b.options.mode.to_string(), "802.3ad");
    assert_eq!(b.options.miimon, 100);
    assert!(
        out.toml.contains(
            "options = \"mode=802.3ad miimon=100 xmit_hash_policy=layer3+4 lacp_rate=fast\""
        ),
        "{}",
        out.toml
    );
    assert!(
        out.toml
            .contains("members = [\"enp7s0\", { mac = \"10:e7:c6:16:aa:02\" }]"),
        "{}",
        out.toml
    );
    assert_eq!(b.mtu, 9000);
    assert_eq!(b.addresses, ["192.0.2.1/24"]);
    assert_eq!(b.vlans.len(), 2);
    assert_eq!(
        (b.vlans[0].id, b.vlans[0].addresses.clone()),
        (87, vec!["198.18.87.1/24".to_string()])
    );
    assert_eq!(
        (b.vlans[1].id, b.vlans[1].name.as_str(), b.vlans[1].mtu),
        (100, "iot", 1500)
    );
    let w = out.warnings.join("\n");
    assert!(
        w.contains(
            "bond0.nmconnection: [ipv4] address1: gateway 192.0.2.254 on bond0: not carried over"
        ),
        "{w}"
    );
    assert!(
        w.contains("bond0.nmconnection: [ipv4] dns on bond0: not carried over"),
        "{w}"
    );
    assert!(
        w.contains("iot.nmconnection: [ipv4] method=auto on iot"),
        "{w}"
    );
    assert!(
        w.contains("iot.nmconnection: [vlan] flags: not carried over"),
        "{w}"
    );
    assert!(
        !w.contains("eth9"),
        "an unrelated ethernet connection is not a port: {w}"
    );
}

#[test]
fn every_mode_and_an_option_xbond_refuses() {
    for mode in MODES {
        let out = import_files(
            "d",
            files(&[
                ("b.nmconnection", &format!("[connection]\nid=bond0\ntype=bond\ninterface-name=bond0\n[bond]\nmode={mode}\nmiimon=100\n")),
                ("p.nmconnection", "[connection]\nid=p\ntype=ethernet\ninterface-name=eth0\ncontroller=bond0\nport-type=bond\n"),
            ]),
        );
        assert_eq!(bond(&out).options.mode.to_string(), mode);
        assert!(out.warnings.is_empty(), "{mode}: {:?}", out.warnings);
    }
    let out = import_files(
        "d",
        files(&[("b.nmconnection", "[connection]\nid=bond0\ntype=bond\ninterface-name=bond0\n[bond]\nmode=active-backup\nmiimon=100\nbroadcast_neighbor=1\n[bridge]\n"), ("p.nmconnection", "[connection]\nid=p\ntype=ethernet\ninterface-name=eth0\nmaster=bond0\n"), ("t.nmconnection", "[connection]\nid=wg0\ntype=wireguard\n")]),
    );
    let w = out.warnings.join("\n");
    assert!(
        w.contains("xbond would refuse this as it is") && w.contains("broadcast_neighbor"),
        "{w}"
    );
    assert!(
        w.contains("t.nmconnection: a wireguard connection; not a bond"),
        "{w}"
    );
}
