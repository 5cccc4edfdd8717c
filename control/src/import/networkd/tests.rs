//! Configurations as systemd.netdev(5) and systemd.network(5) show them.

use super::*;
use crate::import::testing::{bond, files, MODES};

#[test]
fn the_manuals_802_3ad_bond_with_dhcp() {
    let out = import_files(
        "/etc/systemd/network",
        files(&[
            (
                "25-bond.netdev",
                "[NetDev]\nName=bond1\nKind=bond\n\n[Bond]\nMode=802.3ad\nTransmitHashPolicy=layer3+4\nMIIMonitorSec=1s\nLACPTransmitRate=fast\n",
            ),
            ("25-bond-slave0.network", "[Match]\nName=enp0s25\n\n[Network]\nBond=bond1\n"),
            ("25-bond-slave1.network", "[Match]\nName=enp0s26\n\n[Network]\nBond=bond1\n"),
            ("25-bond1.network", "[Match]\nName=bond1\n\n[Network]\nDHCP=yes\n"),
        ]),
    );
    let b = bond(&out);
    assert_eq!(b.name, "bond1");
    assert_eq!(b.options.mode.to_string(), "802.3ad");
    assert_eq!(b.options.miimon, 1000);
    assert!(
        out.toml.contains(
            "options = \"mode=802.3ad xmit_hash_policy=layer3+4 miimon=1000 lacp_rate=fast\""
        ),
        "{}",
        out.toml
    );
    assert_eq!(b.members.len(), 2);
    assert!(out.toml.contains("members = [\"enp0s25\", \"enp0s26\"]"));
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(out.warnings[0]
        .starts_with("25-bond1.network: [Network] DHCP=yes on bond1: not carried over"));
}

#[test]
fn active_backup_with_a_primary_addresses_mtu_and_vlans() {
    let out = import_files(
        "dir",
        files(&[
            (
                "10-bond0.netdev",
                "[NetDev]\nName=bond0\nKind=bond\nMTUBytes=9000\nMACAddress=02:00:00:00:aa:01\n\n[Bond]\nMode=active-backup\nMIIMonitorSec=100ms\nUpDelaySec=200ms\nDownDelaySec=0.2\nGratuitousARP=3\nFailOverMACPolicy=active\nPrimaryReselectPolicy=failure\nAllSlavesActive=yes\n",
            ),
            ("10-eth0.network", "[Match]\nName=eth0\n[Network]\nBond=bond0\nPrimarySlave=yes\n"),
            ("10-eth1.network", "[Match]\nMACAddress=10:e7:c6:16:aa:02\n[Network]\nBond=bond0\n"),
            (
                "20-bond0.network",
                "[Match]\nName=bond0\n[Network]\nVLAN=bond0.87\nVLAN=iot\nAddress=198.18.0.1/24\nGateway=198.18.0.254\n[Address]\nAddress=2001:db8::1/64\n[Route]\nDestination=10.0.0.0/8\n",
            ),
            ("30-vlan87.netdev", "[NetDev]\nName=bond0.87\nKind=vlan\n[VLAN]\nId=87\n"),
            ("30-iot.netdev", "[NetDev]\nName=iot\nKind=vlan\nMTUBytes=1500\n[VLAN]\nId=100\n"),
            ("31-iot.network", "[Match]\nName=iot\n[Network]\nAddress=198.18.100.1/24\n"),
        ]),
    );
    let b = bond(&out);
    assert_eq!(b.options.mode.to_string(), "active-backup");
    assert_eq!(
        (b.options.miimon, b.options.updelay, b.options.downdelay),
        (100, 200, 200)
    );
    assert_eq!(b.options.num_grat_arp, 3);
    assert_eq!(b.options.primary.as_deref(), Some("eth0"));
    assert!(out.toml.contains("all_slaves_active=1"), "{}", out.toml);
    assert_eq!(b.mtu, 9000);
    assert!(
        out.toml
            .contains("members = [\"eth0\", { mac = \"10:e7:c6:16:aa:02\" }]"),
        "{}",
        out.toml
    );
    assert_eq!(b.addresses, ["198.18.0.1/24", "2001:db8::1/64"]);
    assert_eq!(b.vlans.len(), 2);
    assert_eq!((b.vlans[0].id, b.vlans[0].name.as_str()), (87, "bond0.87"));
    assert_eq!(
        (b.vlans[1].id, b.vlans[1].name.as_str(), b.vlans[1].mtu),
        (100, "iot", 1500)
    );
    assert_eq!(b.vlans[1].addresses, ["198.18.100.1/24"]);
    let w = out.warnings.join("\n");
    assert!(
        w.contains("20-bond0.network: [Network] Gateway=198.18.0.254 on bond0: not carried over"),
        "{w}"
    );
    assert!(
        w.contains("20-bond0.network: [Route] on bond0: not carried over"),
        "{w}"
    );
}

#[test]
fn what_xbond_refuses_or_does_not_know_is_named() {
    let out = import_files(
        "dir",
        files(&[
            (
                "bond.netdev",
                "[NetDev]\nName=bond0\nKind=bond\n[Bond]\nMode=balance-alb\nMIIMonitorSec=100ms\nARPIntervalSec=200ms\nARPIPTargets=198.18.0.2 198.18.0.3\nCoupledControl=no\nLearnPacketIntervalSec=3s\nDynamicTransmitLoadBalancing=maybe\n",
            ),
            ("eth0.network", "[Match]\nName=eth*\n[Network]\nBond=bond0\n"),
            ("br.netdev", "[NetDev]\nName=br0\nKind=bridge\n"),
        ]),
    );
    let w = out.warnings.join("\n");
    assert!(
        w.contains("bond.netdev: [Bond] CoupledControl: not a bond setting xbond knows"),
        "{w}"
    );
    assert!(
        w.contains("bond.netdev: [Bond] DynamicTransmitLoadBalancing=maybe: not a value"),
        "{w}"
    );
    assert!(w.contains("eth0.network: [Match] Name=eth*: a glob"), "{w}");
    assert!(
        w.contains("br.netdev: a bridge netdev (br0); not a bond"),
        "{w}"
    );
    // miimon and arp_interval together: the kernel refuses, xbond too.
    assert!(w.contains("xbond would refuse this as it is"), "{w}");
    assert!(out.toml.contains("arp_ip_target=198.18.0.2,198.18.0.3"));
    assert!(out.toml.contains("lp_interval=3"));
}

#[test]
fn every_mode_reads() {
    for mode in MODES {
        let out = import_files(
            "dir",
            files(&[
                ("b.netdev", &format!("[NetDev]\nName=bond0\nKind=bond\n[Bond]\nMode={mode}\nMIIMonitorSec=100ms\n")),
                ("m.network", "[Match]\nName=eth0\n[Network]\nBond=bond0\n"),
            ]),
        );
        assert_eq!(bond(&out).options.mode.to_string(), mode);
        assert!(out.warnings.is_empty(), "{mode}: {:?}", out.warnings);
    }
}
