//! What tests of one bond's state build it from (this module's tests and
//! the metrics').

use super::MemberInfo;
use crate::config::options::BondOptions;
use xbond_dataplane::wire::MacAddr;

/// Options from a BONDING_OPTS string, checked as the config checks them.
pub(crate) fn opts(s: &str) -> BondOptions {
    let mut o = BondOptions::default();
    o.parse_kernel_string(s).unwrap();
    o.finish().unwrap();
    o
}

/// A 10 Gbit/s full-duplex member `name` with ifindex `idx` and MAC
/// 02:00:00:00:00:idx.
pub(crate) fn info(name: &str, idx: u32) -> MemberInfo {
    MemberInfo {
        name: name.into(),
        ifindex: idx,
        perm_mac: MacAddr([2, 0, 0, 0, 0, idx as u8]),
        speed: Some(10000),
        full_duplex: Some(true),
        rx_queues: 1,
    }
}
