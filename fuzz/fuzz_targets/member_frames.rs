//! Any frame a member or the host hands the dataplane: the forwarding
//! decision and every transmit hash policy never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xbond_dataplane::hash::{xmit_hash, HashPolicy};
use xbond_dataplane::schedule::TxState;
use xbond_dataplane::snapshot::{BondSnapshot, Mode, TxMember};
use xbond_dataplane::forward;

fuzz_target!(|data: &[u8]| {
    for p in [
        HashPolicy::Layer2,
        HashPolicy::Layer23,
        HashPolicy::Layer34,
        HashPolicy::Encap23,
        HashPolicy::Encap34,
        HashPolicy::VlanSrcMac,
    ] {
        let _ = xmit_hash(p, data, None);
        let _ = xmit_hash(p, data, Some(0x0057));
    }
    for mode in [Mode::RoundRobin, Mode::ActiveBackup, Mode::Xor, Mode::Broadcast, Mode::Lacp] {
        let mut s = BondSnapshot::new(mode);
        s.members = (0..2).map(|id| TxMember { id, can_tx: true }).collect();
        s.usable = vec![0, 1];
        s.collecting = vec![1];
        s.active = Some(0);
        s.hash_policy = HashPolicy::Encap34;
        s.prepare();
        let mut tx = TxState::new(7);
        let _ = forward::from_member(&s, 0, data);
        let _ = forward::from_host(&s, &mut tx, data, 0);
    }
});
