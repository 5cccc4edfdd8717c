//! Parsing, defaults and the kernel's refusals, option by option.

use super::*;

fn parse(s: &str) -> Result<BondOptions, OptionError> {
    let mut o = BondOptions::default();
    o.parse_kernel_string(s)?;
    o.finish()?;
    Ok(o)
}

#[test]
fn numbers_and_names_are_the_same_value() {
    assert_eq!(parse("mode=1").unwrap().mode, BondMode::ActiveBackup);
    assert_eq!(
        parse("mode=active-backup").unwrap().mode,
        BondMode::ActiveBackup
    );
    assert_eq!(
        parse("mode=4 lacp_rate=1").unwrap().lacp_rate,
        LacpRate::Fast
    );
    assert_eq!(
        parse("mode=balance-xor xmit_hash_policy=1")
            .unwrap()
            .xmit_hash_policy,
        XmitHashPolicy::Layer34
    );
    assert_eq!(
        parse("mode=2 xmit_hash_policy=vlan+srcmac")
            .unwrap()
            .xmit_hash_policy,
        XmitHashPolicy::VlanSrcMac
    );
    assert_eq!(
        parse("mode=1 fail_over_mac=2").unwrap().fail_over_mac,
        FailOverMac::Follow
    );
    assert_eq!(parse("mode=1 num_unsol_na=3").unwrap().num_grat_arp, 3);
}

#[test]
fn kernel_defaults() {
    let o = parse("mode=active-backup").unwrap();
    assert_eq!(o.miimon, 100, "miimon defaults to 100 without arp_interval");
    assert_eq!(
        (o.num_grat_arp, o.arp_missed_max, o.ad_actor_sys_prio),
        (1, 2, 65535)
    );
    assert_eq!(
        parse("mode=1 arp_interval=200 arp_ip_target=198.18.0.9")
            .unwrap()
            .miimon,
        0
    );
    assert_eq!(
        BondOptions::default().mode,
        BondMode::BalanceRr,
        "the kernel's default mode is balance-rr"
    );
}

#[test]
fn bad_values_name_the_key() {
    let e = parse("mode=1 miimon=abc").unwrap_err();
    assert_eq!(
        e.to_string(),
        "option miimon: invalid value 'abc'; expected an integer from 0 to 2147483647"
    );
    let e = parse("mode=9").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("option mode: invalid value '9'; expected one of balance-rr (0)"),
        "{e}"
    );
    assert_eq!(
        parse("mode=1 bogus=1").unwrap_err(),
        OptionError::Unknown("bogus".into())
    );
    assert!(parse("mode=1 arp_missed_max=0")
        .unwrap_err()
        .to_string()
        .contains("arp_missed_max"));
    assert!(parse("mode=1 arp_ip_target=1.2.3")
        .unwrap_err()
        .to_string()
        .contains("arp_ip_target"));
    assert!(parse("mode=1 miimon")
        .unwrap_err()
        .to_string()
        .contains("expected key=value"));
}

#[test]
fn link_watch_policy_lets_carrier_and_arp_monitoring_run_together() {
    let o =
        parse("mode=1 miimon=100 arp_interval=100 arp_ip_target=198.18.0.2 link_watch_policy=all")
            .unwrap();
    assert_eq!(o.link_watch_policy, Some(LinkWatchPolicy::All));
    assert_eq!((o.miimon, o.arp_interval), (100, 100));
    let e = parse("mode=1 miimon=100 arp_interval=100 arp_ip_target=198.18.0.2").unwrap_err();
    assert!(e.to_string().contains("link_watch_policy=any|all"), "{e}");
    assert!(parse("mode=1 link_watch_policy=most")
        .unwrap_err()
        .to_string()
        .contains("link_watch_policy"));
    assert!(parse("mode=802.3ad link_watch_policy=any").is_err());
    let mut o = BondOptions::default();
    o.parse_kernel_string("mode=1 arp_interval=100 arp_ip_target=198.18.0.2 link_watch_policy=any")
        .unwrap();
    let w = o.finish().unwrap();
    assert!(w.iter().any(|w| w.contains("no effect")), "{w:?}");
    assert_eq!(o.miimon, 0, "no miimon default with ARP monitoring");
}

#[test]
fn arp_monitoring_without_targets_is_warned_about() {
    let mut o = BondOptions::default();
    o.parse_kernel_string("mode=0 arp_interval=100").unwrap();
    let w = o.finish().unwrap();
    assert!(
        w.iter().any(|w| w.contains("without arp_ip_target")),
        "{w:?}"
    );
    o.check_implemented().unwrap();
}

#[test]
fn combinations_the_kernel_refuses() {
    let e = parse("mode=1 miimon=100 arp_interval=100 arp_ip_target=198.18.0.1").unwrap_err();
    assert!(
        matches!(e, OptionError::Conflict { ref key, .. } if key == "arp_interval"),
        "{e}"
    );
    let e = parse("mode=802.3ad arp_interval=100").unwrap_err();
    assert_eq!(
        e.to_string(),
        "option arp_interval: mode dependency failed, not supported in mode 802.3ad(4)"
    );
    let e = parse("mode=active-backup lacp_rate=fast").unwrap_err();
    assert_eq!(
        e.to_string(),
        "option lacp_rate: mode dependency failed, not supported in mode active-backup(1)"
    );
    assert!(parse("mode=1 packets_per_slave=2").is_err());
    assert!(parse("mode=0 primary=eth0").is_err());
    let e = parse("mode=1 miimon=0 updelay=200").unwrap_err();
    assert!(matches!(e, OptionError::Conflict { ref key, .. } if key == "updelay"));
    assert_eq!(
        parse("mode=1 miimon=100 miimon=200").unwrap_err(),
        OptionError::Duplicate("miimon".into())
    );
    assert!(
        parse("mode=1 num_grat_arp=2 num_unsol_na=2").is_err(),
        "one option under two names"
    );
    assert!(parse("mode=1 use_carrier=0").is_err());
    assert!(parse("mode=1 use_carrier=1").is_ok());
}

#[test]
fn delays_round_down_to_miimon_with_a_warning() {
    let mut o = BondOptions::default();
    o.parse_kernel_string("mode=1 miimon=100 updelay=250")
        .unwrap();
    let w = o.finish().unwrap();
    assert_eq!(o.updelay, 200);
    assert_eq!(
        w,
        vec![
            "updelay (250) is not a multiple of miimon (100), value rounded to 200 ms".to_string()
        ]
    );
}

#[test]
fn every_mode_is_built_and_what_is_not_says_so() {
    for m in ["0", "1", "2", "3", "4", "5", "6"] {
        assert!(parse(&format!("mode={m}"))
            .unwrap()
            .check_implemented()
            .is_ok());
    }
    let o = parse("mode=802.3ad broadcast_neighbor=1").unwrap();
    assert_eq!(
        o.check_implemented().unwrap_err().to_string(),
        "option broadcast_neighbor: broadcasting ARP/ND over every 802.3ad member is not implemented in this version of xbond"
    );
}

#[test]
fn tlb_rebalance_interval_is_for_tlb_and_alb() {
    assert_eq!(
        parse("mode=balance-tlb tlb_rebalance_interval=2")
            .unwrap()
            .tlb_rebalance_interval,
        2
    );
    assert_eq!(parse("mode=6").unwrap().tlb_rebalance_interval, 10);
    assert!(parse("mode=6 tlb_rebalance_interval=0").is_err());
    assert!(parse("mode=1 tlb_rebalance_interval=2").is_err());
}

#[test]
fn lacp_fallback_is_an_802_3ad_option() {
    let o = parse("mode=802.3ad lacp_fallback=active-backup lacp_fallback_timeout=1500").unwrap();
    assert_eq!(o.lacp_fallback, LacpFallback::ActiveBackup);
    assert_eq!(o.lacp_fallback_timeout, 1500);
    assert!(parse("mode=1 lacp_fallback=active-backup")
        .unwrap_err()
        .to_string()
        .contains("lacp_fallback"));
    assert!(parse("mode=4 lacp_fallback=sometimes")
        .unwrap_err()
        .to_string()
        .contains("lacp_fallback"));
}

#[test]
fn every_option_parses_its_kernel_default() {
    let samples = [
        ("mode", "1"),
        ("miimon", "100"),
        ("updelay", "0"),
        ("downdelay", "0"),
        ("peer_notif_delay", "0"),
        ("use_carrier", "1"),
        ("arp_ip_target", "198.18.0.1"),
        ("arp_all_targets", "any"),
        ("primary_reselect", "always"),
        ("fail_over_mac", "none"),
        ("xmit_hash_policy", "layer2"),
        ("ad_select", "stable"),
        ("min_links", "0"),
        ("num_grat_arp", "1"),
        ("resend_igmp", "1"),
        ("all_slaves_active", "0"),
        ("lp_interval", "1"),
        ("primary", "eth0"),
        ("active_slave", "eth0"),
    ];
    for (k, v) in samples {
        let mut o = BondOptions::default();
        o.set("mode", "1").unwrap();
        if k != "mode" {
            o.set(k, v).unwrap_or_else(|e| panic!("{k}={v}: {e}"));
        }
        o.finish().unwrap_or_else(|e| panic!("{k}={v}: {e}"));
    }
    // The kernel's 33 options, xbond's two LACP fallback options,
    // link_watch_policy and tlb_rebalance_interval.
    assert_eq!(OPTIONS.len(), 37);
}

#[test]
fn the_defaults_are_the_kernels() {
    let o = BondOptions::default();
    assert_eq!(o.mode, BondMode::BalanceRr);
    assert_eq!(
        (o.miimon, o.updelay, o.downdelay, o.arp_interval),
        (0, 0, 0, 0)
    );
    assert_eq!(o.arp_missed_max, 2);
    assert_eq!(o.xmit_hash_policy, XmitHashPolicy::Layer2);
    assert_eq!((o.lacp_rate, o.lacp_active), (LacpRate::Slow, OnOff::On));
    assert_eq!((o.ad_actor_sys_prio, o.ad_user_port_key), (65535, 0));
    assert_eq!(o.coupled_control, OnOff::On);
    assert_eq!(o.lacp_fallback_timeout, 3000);
    assert_eq!((o.num_grat_arp, o.resend_igmp), (1, 1));
    assert_eq!(o.all_slaves_active, OnOff::Off);
    assert_eq!(o.packets_per_slave, 1);
    assert_eq!(
        (o.tlb_dynamic_lb, o.lp_interval, o.tlb_rebalance_interval),
        (OnOff::On, 1, 10)
    );
    assert_eq!(o.primary, None);
    assert!(o.explicit.is_empty(), "defaults are not given options");
}

#[test]
fn every_row_default_parses_and_is_valid_in_every_mode_it_names() {
    for d in OPTIONS {
        let mut o = BondOptions::default();
        if let Some(v) = d.default {
            (d.parse)(&mut o, d.name, v).unwrap_or_else(|e| panic!("{}: {e}", d.name));
        }
        assert_ne!(d.modes, 0, "{} is valid in no mode", d.name);
        assert!(!d.doc.is_empty(), "{} has no description", d.name);
    }
}

#[test]
fn the_option_table_in_the_docs_is_the_parsers() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/options.md");
    let table = markdown();
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    if std::env::var_os("XBOND_BLESS").is_some() {
        let head = "# Bonding options\n\nEvery option xbond accepts, generated from the option table \
                    (`control/src/config/options/table.rs`): the modes it is valid in, its default, \
                    and whether `xbond set` changes it live.\n\n";
        std::fs::write(path, format!("{head}{table}")).unwrap();
        return;
    }
    assert!(
        doc.contains(&table),
        "docs/options.md is not the option table; regenerate it with \
         XBOND_BLESS=1 cargo test -p xbond-control the_option_table_in_the_docs"
    );
}
