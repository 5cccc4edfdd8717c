//! Config files: parsing, errors that name the file and the key.

use super::*;

fn err(text: &str) -> String {
    Config::parse(text, "test.toml").unwrap_err().to_string()
}

#[test]
fn the_design_example_parses() {
    let c = Config::parse(
        r#"
        [bond.bond0]
        members = ["eth0", "eth1"]
        options = "mode=active-backup miimon=100 primary=eth0"
        updelay = 200
        mtu = 1500
        mac = "02:00:00:00:00:01"
        addresses = ["198.18.0.1/24"]
        "#,
        "x.toml",
    )
    .unwrap();
    let b = &c.bonds[0];
    assert_eq!(
        b.members,
        vec![
            MemberSpec::Name("eth0".into()),
            MemberSpec::Name("eth1".into())
        ]
    );
    assert_eq!(b.options.updelay, 200);
    assert_eq!(b.options.primary.as_deref(), Some("eth0"));
    assert_eq!(b.mac.unwrap().to_string(), "02:00:00:00:00:01");
    assert_eq!(c.run_dir, PathBuf::from("/run/xbond"));
}

#[test]
fn every_error_names_file_and_key() {
    assert_eq!(
        err("[bond.bond0]\nmembers=[\"a\"]\nmode=1\nfrobnicate=1\n"),
        "test.toml: bond.bond0.frobnicate: unknown key (not a bonding option nor an xbond setting)"
    );
    assert_eq!(
        err("[bond.bond0]\nmembers=[\"a\"]\noptions=\"mode=1 miimon=fast\"\n"),
        "test.toml: bond.bond0.miimon: option miimon: invalid value 'fast'; expected an integer from 0 to 2147483647"
    );
    assert!(err("[bond.bond0]\nmembers=[\"a\"]\noptions=\"mode=1 miimon=100 arp_interval=100\"\n")
        .starts_with("test.toml: bond.bond0.arp_interval: option arp_interval: cannot be used together with miimon"));
    assert_eq!(
        err("[bond.bond0]\nmode=1\n"),
        "test.toml: bond.bond0.members: a bond needs at least one member"
    );
    assert_eq!(
        err("[bond.bond0]\nmembers=[\"a\"]\noptions=\"mode=1\"\nmode=1\n"),
        "test.toml: bond.bond0.mode: option mode is given twice"
    );
    assert_eq!(
        err("[bond.bond0]\nmembers=[\"a\"]\noptions=\"mode=1 primary=b\"\n"),
        "test.toml: bond.bond0.primary: b is not a member of bond0"
    );
    assert_eq!(
        err("[bond.bond0]\nmembers=[\"a\"]\noptions=\"mode=4 broadcast_neighbor=1\"\n"),
        "test.toml: bond.bond0.broadcast_neighbor: option broadcast_neighbor: broadcasting ARP/ND over every 802.3ad member is not implemented in this version of xbond"
    );
    assert!(
        err("[bond.b0]\nmembers=[\"a\"]\nmode=1\n[bond.b1]\nmembers=[\"a\"]\nmode=1\n")
            .contains("a is already a member of bond b0")
    );
    assert!(err("[bond.bond0]\nmembers=[\"a\"]\nmode=1\nmtu=9\n").contains("bond.bond0.mtu"));
    assert!(
        err("[bond.bond0]\nmembers=[\"a\"]\nmode=1\nring_size=1000\n")
            .contains("bond.bond0.ring_size")
    );
    assert!(err("[bond.bond0\n").starts_with("test.toml: -: not valid TOML"));
    assert!(err("[bogus]\n").contains("test.toml: bogus: unknown key"));
}

#[test]
fn option_keys_accept_toml_types() {
    let c = Config::parse(
        "[bond.bond0]\nmembers=[\"a\",\"b\"]\nmode=\"active-backup\"\nall_slaves_active=true\nnum_grat_arp=3\n",
        "x",
    )
    .unwrap();
    assert_eq!(c.bonds[0].options.all_slaves_active, options::OnOff::On);
    assert_eq!(c.bonds[0].options.num_grat_arp, 3);
}

#[test]
fn the_issue_example_with_a_selector_and_a_vlan_parses() {
    let c = Config::parse(
        r#"
        [bond.bond0]
        members = [{ driver = "veth", mac = "02:00:00:00:01:*" }]
        options = "mode=active-backup miimon=100"
        [[bond.bond0.vlan]]
        id = 87
        mtu = 1500
        addresses = ["198.18.87.19/24"]
        [[bond.bond0.vlan]]
        id = 4094
        name = "iot"
        "#,
        "x.toml",
    )
    .unwrap();
    let b = &c.bonds[0];
    assert_eq!(
        b.members,
        vec![MemberSpec::Select(Selector {
            driver: Some("veth".into()),
            mac: Some("02:00:00:00:01:*".into())
        })]
    );
    assert_eq!(
        b.vlans,
        vec![
            VlanConfig {
                id: 87,
                name: "bond0.87".into(),
                mtu: 1500,
                addresses: vec!["198.18.87.19/24".into()]
            },
            VlanConfig {
                id: 4094,
                name: "iot".into(),
                mtu: 1500,
                addresses: vec![]
            }
        ]
    );
    assert_eq!(b.qinq, Qinq::Drop);
}

#[test]
fn vlan_errors_name_the_key() {
    let base = "[bond.bond0]\nmembers=[\"a\"]\nmode=1\nmtu=1500\n";
    assert_eq!(
        err(&format!("{base}[[bond.bond0.vlan]]\nid=4095\n")),
        "test.toml: bond.bond0.vlan[0].id: 4095 is out of range 1-4094 (0 is the untagged bond itself)"
    );
    assert_eq!(
        err(&format!("{base}[[bond.bond0.vlan]]\nid=87\nmtu=9000\n")),
        "test.toml: bond.bond0.vlan[0].mtu: 9000 is out of range 68-1500 (a VLAN's MTU is at most its bond's)"
    );
    assert_eq!(
        err(&format!(
            "{base}[[bond.bond0.vlan]]\nid=87\n[[bond.bond0.vlan]]\nid=87\n"
        )),
        "test.toml: bond.bond0.vlan[1].id: VLAN 87 is defined twice"
    );
    assert!(err(&format!("{base}[[bond.bond0.vlan]]\nmtu=1400\n"))
        .contains("bond.bond0.vlan[0].id: a VLAN needs an id"));
    assert!(err(&format!("{base}[[bond.bond0.vlan]]\nid=7\ncolour=1\n"))
        .contains("bond.bond0.vlan[0].colour: unknown key"));
    assert!(err("[bond.averylongbond]\nmembers=[\"a\"]\nmode=1\n[[bond.averylongbond.vlan]]\nid=1000\n")
        .contains("bond.averylongbond.vlan[0].name: 'averylongbond.1000' is not an interface name of at most 15 characters"));
    assert!(err(&format!("{base}qinq=\"strip\"\n"))
        .contains("bond.bond0.qinq: 'strip' is not one of drop, pass"));
    assert!(err("[bond.bond0]\nmembers=[{ driver = 1 }]\nmode=1\n")
        .contains("bond.bond0.members: selector key driver: expected a string"));
}

#[test]
fn daemon_keys_parse_and_name_themselves_when_wrong() {
    let c = Config::parse(
        "[daemon]\nmetrics = \"127.0.0.1:9469\"\nsocket_group = \"adm\"\n[bond.b]\nmembers=[\"a\"]\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.metrics, Some("127.0.0.1:9469".parse().unwrap()));
    assert_eq!(c.socket_group.as_deref(), Some("adm"));
    assert_eq!(parse_listen(":9469"), Ok("[::]:9469".parse().unwrap()));
    assert!(
        err("[daemon]\nmetrics = \"localhost\"\n[bond.b]\nmembers=[\"a\"]\n")
            .starts_with("test.toml: daemon.metrics: 'localhost' is not a listen address")
    );
    assert!(
        err("[daemon]\nsocket_group = \"\"\n[bond.b]\nmembers=[\"a\"]\n")
            .starts_with("test.toml: daemon.socket_group: empty group name")
    );
}

#[test]
fn a_directory_of_configs_runs_their_bonds_together() {
    let dir = std::env::temp_dir().join(format!("xbond-cfgdir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let w = |n: &str, t: &str| std::fs::write(dir.join(n), t).unwrap();
    w(
        "bond0.toml",
        "[daemon]\nmetrics = \"127.0.0.1:9469\"\n[bond.bond0]\nmembers=[\"a\"]\n",
    );
    w("bond1.toml", "[bond.bond1]\nmembers=[\"b\"]\n");
    w("notes.txt", "not a config");
    let c = Config::load(&dir).unwrap();
    let names: Vec<&str> = c.bonds.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["bond0", "bond1"]);
    assert!(c.metrics.is_some());

    w("bond2.toml", "[bond.bond2]\nmembers=[\"a\"]\n");
    let e = Config::load(&dir).unwrap_err().to_string();
    assert!(
        e.contains("bond2.toml: bond.bond2.members: a is already a member of bond bond0"),
        "{e}"
    );
    w(
        "bond2.toml",
        "[daemon]\nmetrics = \"127.0.0.1:9470\"\n[bond.bond2]\nmembers=[\"c\"]\n",
    );
    let e = Config::load(&dir).unwrap_err().to_string();
    assert!(e.contains("bond2.toml: daemon.metrics: differs"), "{e}");
    w("bond2.toml", "[bond.bond1]\nmembers=[\"c\"]\n");
    let e = Config::load(&dir).unwrap_err().to_string();
    assert!(e.contains("bond2.toml: bond.bond1: also defined in"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
    let empty = std::env::temp_dir().join(format!("xbond-cfgempty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    assert!(Config::load(&empty)
        .unwrap_err()
        .to_string()
        .contains("no *.toml file"));
    std::fs::remove_dir_all(&empty).unwrap();
}

#[test]
fn member_prio_parses_and_names_its_errors() {
    let c = Config::parse(
        "[bond.b]\nmembers=[\"a\", \"c\"]\nmode=1\nprio = { a = -5, c = 2000000 }\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(
        c.bonds[0].prio,
        [("a".to_string(), -5), ("c".to_string(), 2_000_000)]
    );
    assert!(err("[bond.b]\nmembers=[\"a\"]\nmode=1\nprio = { x = 1 }\n")
        .contains("bond.b.prio.x: x is not a member of b"));
    assert!(
        err("[bond.b]\nmembers=[\"a\"]\nmode=1\nprio = { a = 3000000000 }\n")
            .contains("bond.b.prio.a: 3000000000 is out of range")
    );
    assert!(err("[bond.b]\nmembers=[\"a\"]\nmode=4\nprio = { a = 1 }\n")
        .contains("bond.b.prio: a member priority chooses the active member"));
    assert!(err("[bond.b]\nmembers=[\"a\"]\nmode=1\nprio = 4\n")
        .contains("bond.b.prio: expected a table"));
}
