//! Frames an ARP/NS-monitored member receives, as copies reach control: the
//! data path's probe test and the ND parser never panic, and the bond's
//! ARP monitor takes anything (tagged or not, truncated, lying about its
//! lengths) without panicking, before and after its rounds run; so does a
//! balance-alb bond's client table, with the frame as one a member received
//! and as ARP the host sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use xbond_control::bond::{BondCore, MemberInfo};
use xbond_control::config::options::BondOptions;
use xbond_dataplane::forward;
use xbond_dataplane::wire::{ndisc, MacAddr};

/// A bond with `options` and two members with carrier, as of `t0`.
fn two_member_bond(options: &str, mac: MacAddr, t0: Instant) -> BondCore {
    let mut o = BondOptions::default();
    o.parse_kernel_string(options).unwrap();
    o.finish().unwrap();
    let mut b = BondCore::new("bond0", "bond0", o, mac);
    for i in 0..2u8 {
        let info = MemberInfo {
            name: format!("m{i}"),
            ifindex: u32::from(i) + 1,
            perm_mac: MacAddr([2, 0, 0, 0, 1, i]),
            speed: Some(10000),
            full_duplex: Some(true),
            rx_queues: 1,
        };
        b.add_member(t0, info, true);
    }
    b
}

fuzz_target!(|data: &[u8]| {
    let _ = forward::is_probe(data);
    if data.len() > 14 {
        let _ = ndisc::parse(&data[14..]);
    }
    let t0 = Instant::now();
    let mut b = two_member_bond(
        "mode=1 arp_interval=100 arp_ip_target=198.18.0.2 ns_ip6_target=2001:db8::2 arp_validate=all arp_all_targets=all",
        MacAddr([2, 0, 0, 0, 0, 1]),
        t0,
    );
    b.set_own_addresses(vec!["198.18.0.1".parse().unwrap(), "2001:db8::1".parse().unwrap()]);
    for step in 0..6u32 {
        let now = t0 + Duration::from_millis(100) * step;
        b.handle_timeout(now);
        b.handle_probe_frame(now, (step % 2) as u16, data);
        b.handle_rx_activity(now, 1);
        while b.poll_action().is_some() {}
    }
    let _ = b.status(t0 + Duration::from_secs(1)).to_proc();

    let mut a = two_member_bond("mode=balance-alb miimon=100", MacAddr([2, 0, 0, 0, 1, 0]), t0);
    for step in 0..4u32 {
        let now = t0 + Duration::from_millis(100) * step;
        a.handle_probe_frame(now, (step % 2) as u16, data);
        a.handle_host_frame((step % 2) as u16 * 87, data);
        a.handle_timeout(now);
        while a.poll_action().is_some() {}
    }
    let _ = a.alb_view();
});
