//! Scripts as bonding.rst ("Configuring Bonding Manually with iproute2",
//! "with Sysfs") and field reports write them.

use super::*;
use crate::import::testing::{bonds, MODES};

#[test]
fn modprobe_options_are_the_defaults_and_ip_link_adds_and_enslaves() {
    let out = import_str(
        "setup.sh",
        "#!/bin/sh\n# from the field\nmodprobe bonding mode=balance-alb miimon=100\nip link add bond1 type bond mode 802.3ad miimon 200 lacp_rate fast \\\n    xmit_hash_policy layer3+4 peer_notify_delay 400\nip link set eth0 down && ip link set eth0 master bond0\nip link set dev eth1 master bond0\nip link set eth2 master bond1; ip link set eth3 master bond1\nip link set bond1 mtu 9000 address 02:00:00:00:aa:01\nip addr add 198.18.0.1/24 dev bond0\nip -6 address add 2001:db8::1/64 dev bond1\nip link add link bond1 name bond1.87 type vlan id 87\nip link add link bond1 name iot type vlan id 100 egress-qos-map 0:3\nip addr add 198.18.100.1/24 dev iot\nip link set bond0 up\nip route add default via 198.18.0.254\ndhclient bond1\n",
    );
    let b = bonds(&out);
    assert_eq!(b.len(), 2, "{}", out.toml);
    assert_eq!(b[0].name, "bond0");
    assert_eq!(b[0].options.mode.to_string(), "balance-alb");
    assert_eq!(b[0].addresses, ["198.18.0.1/24"]);
    assert!(
        out.toml.contains("members = [\"eth0\", \"eth1\"]"),
        "{}",
        out.toml
    );
    assert_eq!(b[1].options.mode.to_string(), "802.3ad");
    assert_eq!(
        (b[1].options.miimon, b[1].options.peer_notif_delay),
        (200, 400)
    );
    assert_eq!(b[1].mtu, 9000);
    assert_eq!(b[1].addresses, ["2001:db8::1/64"]);
    assert_eq!(b[1].vlans.len(), 2);
    assert_eq!(
        (b[1].vlans[1].id, b[1].vlans[1].name.as_str()),
        (100, "iot")
    );
    assert_eq!(b[1].vlans[1].addresses, ["198.18.100.1/24"]);
    let w = out.warnings.join("\n");
    assert!(w.contains("setup.sh:16: ip route: not carried over"), "{w}");
    assert!(w.contains("setup.sh:17: dhclient: not carried over"), "{w}");
    assert!(
        w.contains("setup.sh:13: vlan egress-qos-map: not carried over"),
        "{w}"
    );
}

#[test]
fn sysfs_writes_as_bonding_rst_shows_them() {
    let out = import_str(
        "sysfs.sh",
        "modprobe bonding max_bonds=0\necho +bond0 > /sys/class/net/bonding_masters\necho active-backup > /sys/class/net/bond0/bonding/mode\necho 100 > /sys/class/net/bond0/bonding/miimon\necho +198.18.0.9 > /sys/class/net/bond0/bonding/arp_ip_target\necho +eth0 > /sys/class/net/bond0/bonding/slaves\necho +eth1 > /sys/class/net/bond0/bonding/slaves\necho -eth0 > /sys/class/net/bond0/bonding/slaves\nifenslave bond0 eth2\necho 1 > /proc/sys/net/ipv4/ip_forward\n",
    );
    let b = bonds(&out);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].options.mode.to_string(), "active-backup");
    assert!(
        out.toml.contains("members = [\"eth1\", \"eth2\"]"),
        "{}",
        out.toml
    );
    assert!(out.toml.contains("arp_ip_target=198.18.0.9"));
    let w = out.warnings.join("\n");
    assert!(
        w.contains("sysfs.sh:10: echo > /proc/sys/net/ipv4/ip_forward: not a bonding setting"),
        "{w}"
    );
    // miimon and arp_ip_target without arp_interval is fine; both monitors are not.
}

#[test]
fn every_mode_and_what_xbond_refuses() {
    for mode in MODES {
        let out = import_str("s.sh", &format!("ip link add bond0 type bond mode {mode} miimon 100\nip link set eth0 master bond0\n"));
        assert_eq!(bonds(&out)[0].options.mode.to_string(), mode);
        assert!(out.warnings.is_empty(), "{mode}: {:?}", out.warnings);
    }
    let out = import_str("s.sh", "ip link add bond0 type bond mode 1 miimon 100 use_carrier 0 clear_active_slave\nip link set eth0 master bond0\nip link set eth0 type bond_slave queue_id 2\nbrctl addbr br0\necho \"unbalanced\n");
    let w = out.warnings.join("\n");
    assert!(
        w.contains("xbond would refuse this as it is") && w.contains("use_carrier"),
        "{w}"
    );
    assert!(
        w.contains("s.sh:1: clear_active_slave: a one-off action"),
        "{w}"
    );
    assert!(
        w.contains("s.sh:3: ip link set eth0 type bond_slave: per-member settings"),
        "{w}"
    );
    assert!(w.contains("s.sh:4: brctl: not a bond command"), "{w}");
    assert!(w.contains("s.sh:5: unbalanced quotes"), "{w}");
}
