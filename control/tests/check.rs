//! `xbond check`: what users see for good and bad configs (no root needed).

use std::process::Command;

fn check(text: &str) -> (bool, String) {
    let dir =
        std::env::temp_dir().join(format!("xbond-check-{}-{}", std::process::id(), text.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bond.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xbond"))
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success(),
        all.replace(&path.display().to_string(), "bond.toml"),
    )
}

#[test]
fn a_good_config_passes_with_kernel_warnings() {
    let (ok, out) = check("[bond.bond0]\nmembers = [\"eth0\", \"eth1\"]\noptions = \"mode=1 miimon=100 updelay=250\"\n");
    assert!(ok, "{out}");
    insta::assert_snapshot!(out, @r"
    warning: bond.toml: bond.bond0: updelay (250) is not a multiple of miimon (100), value rounded to 200 ms
    bond bond0: mode active-backup, members eth0, eth1, miimon 100 ms, host interface bond0 (mtu 1500)
    bond.toml: OK
    ");
}

#[test]
fn bad_configs_fail_and_name_the_key() {
    let cases = [
        ("[bond.bond0]\nmembers=[\"eth0\"]\nmode=1\ncolour=\"red\"\n", "bond.bond0.colour: unknown key"),
        ("[bond.bond0]\nmembers=[\"eth0\"]\noptions=\"mode=1 downdelay=soon\"\n", "bond.bond0.downdelay: option downdelay: invalid value 'soon'"),
        (
            "[bond.bond0]\nmembers=[\"eth0\"]\noptions=\"mode=1 miimon=100 arp_interval=200 arp_ip_target=198.18.0.9\"\n",
            "bond.bond0.arp_interval: option arp_interval: cannot be used together with miimon=100",
        ),
        ("[bond.bond0]\noptions=\"mode=1\"\n", "bond.bond0.members: a bond needs at least one member"),
        ("[bond.bond0]\nmembers=[\"eth0\"]\noptions=\"mode=balance-tlb tlb_rebalance_interval=0\"\n", "bond.bond0.tlb_rebalance_interval: option tlb_rebalance_interval: invalid value '0'"),
        ("[bond.bond0]\nmembers=[\"eth0\"]\noptions=\"mode=802.3ad\"\nactor_port_prio={ eth1 = 10 }\n", "bond.bond0.actor_port_prio.eth1: eth1 is not a member of bond0"),
        ("[bond.bond0]\nmembers=[\"eth0\"]\noptions=\"mode=802.3ad\"\nactor_port_prio={ eth0 = 0 }\n", "bond.bond0.actor_port_prio.eth0: 0 is out of range 1-65535"),
        ("[bond.bond0]\nmembers=[\"eth0\"]\noptions=\"mode=1\"\nactor_port_prio={ eth0 = 10 }\n", "bond.bond0.actor_port_prio: a port priority is an 802.3ad setting"),
        ("[bond.bond0]\nmembers=[\"eth0\"]\noptions=\"mode=1 lacp_rate=fast\"\n", "bond.bond0.lacp_rate: option lacp_rate: mode dependency failed, not supported in mode active-backup(1)"),
    ];
    for (text, want) in cases {
        let (ok, out) = check(text);
        assert!(!ok, "accepted: {text}");
        assert!(
            out.contains(&format!("xbond: bond.toml: {want}")),
            "for {text:?} got: {out}"
        );
    }
}

#[test]
fn vlans_and_selectors_are_described() {
    let (ok, out) = check(
        "[bond.bond0]\nmembers = [{ driver = \"veth\", mac = \"02:00:00:00:01:*\" }]\noptions = \"mode=1\"\n[[bond.bond0.vlan]]\nid = 87\nmtu = 1400\n",
    );
    assert!(ok, "{out}");
    insta::assert_snapshot!(out, @r#"
    bond bond0: mode active-backup, members { driver = "veth", mac = "02:00:00:00:01:*" }, miimon 100 ms, host interface bond0 (mtu 1500), VLAN 87 on bond0.87 (mtu 1400)
    bond.toml: OK
    "#);
}

/// `xbond import ifcfg DIR`: TOML on stdout (which `xbond check` accepts),
/// warnings on stderr, exit 0.
#[test]
fn import_ifcfg_prints_toml_that_checks_and_warns_on_stderr() {
    let dir = std::env::temp_dir().join(format!("xbond-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("ifcfg-bond0"),
        "DEVICE=bond0\nBONDING_OPTS=\"mode=1 miimon=100\"\nBOOTPROTO=dhcp\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("ifcfg-eth0"),
        "DEVICE=eth0\nMASTER=bond0\nSLAVE=yes\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xbond"))
        .args(["import", "ifcfg"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let toml = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        toml.contains("[bond.bond0]\nmembers = [\"eth0\"]\noptions = \"mode=1 miimon=100\"\n"),
        "{toml}"
    );
    assert_eq!(
        err.trim(),
        "warning: ifcfg-bond0: BOOTPROTO=dhcp: xbond does not run a DHCP client; run yours on bond0"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let (ok, checked) = check(&toml);
    assert!(ok, "{checked}");
    // A missing file is a clear error, exit 1.
    let out = Command::new(env!("CARGO_BIN_EXE_xbond"))
        .args(["import", "talos", "/nonexistent/talos.yaml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("read /nonexistent/talos.yaml"));
}

/// Every importer from the command line: TOML on stdout that `xbond check`
/// accepts, each warning on stderr naming the file.
#[test]
fn every_importer_prints_toml_that_checks() {
    let dir = std::env::temp_dir().join(format!("xbond-import-all-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    /// (format, path argument, files as (name, text))
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        ("netplan", "netplan", &[("01-bond.yaml", "network:\n  bonds:\n    bond0:\n      interfaces: [eth0]\n      dhcp4: true\n      parameters: {mode: 802.3ad, lacp-rate: fast, mii-monitor-interval: 100}\n")]),
        ("networkd", "networkd", &[
            ("bond0.netdev", "[NetDev]\nName=bond0\nKind=bond\n[Bond]\nMode=active-backup\nMIIMonitorSec=100ms\n"),
            ("eth0.network", "[Match]\nName=eth0\n[Network]\nBond=bond0\n"),
            ("bond0.network", "[Match]\nName=bond0\n[Network]\nDHCP=yes\n"),
        ]),
        ("nm", "nm", &[
            ("bond0.nmconnection", "[connection]\nid=bond0\ntype=bond\ninterface-name=bond0\n[bond]\nmode=balance-xor\nmiimon=100\n[ipv4]\nmethod=auto\n"),
            ("eth0.nmconnection", "[connection]\nid=eth0\ntype=ethernet\ninterface-name=eth0\ncontroller=bond0\nport-type=bond\n"),
        ]),
        ("nmstate", "nmstate/state.yml", &[("state.yml", "interfaces:\n- name: bond0\n  type: bond\n  ipv4: {enabled: true, dhcp: true}\n  link-aggregation: {mode: balance-tlb, port: [eth0], options: {miimon: 100}}\n")]),
        ("iproute2", "iproute2/up.sh", &[("up.sh", "ip link add bond0 type bond mode balance-alb miimon 100\nip link set eth0 master bond0\ndhclient bond0\n")]),
    ];
    for (format, arg, files) in cases {
        let sub = dir.join(format);
        std::fs::create_dir_all(&sub).unwrap();
        for (name, text) in *files {
            std::fs::write(sub.join(name), text).unwrap();
        }
        let path = if arg.contains('/') {
            dir.join(arg)
        } else {
            sub.clone()
        };
        let out = Command::new(env!("CARGO_BIN_EXE_xbond"))
            .args(["import", format])
            .arg(&path)
            .output()
            .unwrap();
        let toml = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{format}: {err}");
        assert!(
            toml.contains("[bond.bond0]\nmembers = [\"eth0\"]\n"),
            "{format}: {toml}"
        );
        // Each case has one thing that does not carry over: DHCP.
        assert_eq!(err.lines().count(), 1, "{format}: {err}");
        assert!(
            err.starts_with("warning: ") && err.contains("not carried over"),
            "{format}: {err}"
        );
        let (ok, checked) = check(&toml);
        assert!(ok, "{format}: {checked}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
