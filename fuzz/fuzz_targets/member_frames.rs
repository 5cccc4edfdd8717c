//! Any frame a member or the host hands the dataplane: the forwarding
//! decision and every transmit hash policy never panic, and the VLAN demux
//! and tagging never corrupt a frame: an untagged delivery is the frame
//! minus exactly its outer tag, a tagged transmission carries the port's VID.
//! balance-tlb/alb's placement and MAC rewrites take any frame too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xbond_dataplane::hash::{xmit_hash, XmitHashPolicy};
use xbond_dataplane::schedule::TxState;
use xbond_dataplane::snapshot::{BondSnapshot, BondMode, TxMember};
use xbond_dataplane::forward::{self, EgressTag, Verdict};
use xbond_dataplane::lb::{self, LbTables};
use xbond_dataplane::wire::{vlan, MacAddr};

fuzz_target!(|data: &[u8]| {
    for p in [
        XmitHashPolicy::Layer2,
        XmitHashPolicy::Layer23,
        XmitHashPolicy::Layer34,
        XmitHashPolicy::Encap23,
        XmitHashPolicy::Encap34,
        XmitHashPolicy::VlanSrcMac,
    ] {
        let _ = xmit_hash(p, data, None);
        let _ = xmit_hash(p, data, Some(0x0057));
    }
    for mode in [
        BondMode::BalanceRr,
        BondMode::ActiveBackup,
        BondMode::BalanceXor,
        BondMode::Broadcast,
        BondMode::Ieee8023ad,
        BondMode::BalanceTlb,
        BondMode::BalanceAlb,
    ] {
        let mut s = BondSnapshot::new(mode);
        if matches!(mode, BondMode::BalanceTlb | BondMode::BalanceAlb) {
            let mut t = LbTables::new(data.first().is_some_and(|b| b & 1 == 0));
            t.tx[usize::from(data.get(1).copied().unwrap_or(0))] = 1;
            s.lb = Some(Box::new(t));
            s.bond_mac = MacAddr([2, 0, 0, 0, 1, 0]);
            s.macs = vec![s.bond_mac, MacAddr([2, 0, 0, 0, 1, 1])];
        }
        s.members = (0..2).map(|id| TxMember { id, can_tx: true }).collect();
        s.usable = vec![0, 1];
        s.collecting = vec![1];
        s.active = Some(0);
        s.hash_policy = XmitHashPolicy::Encap34;
        s.vlans = [1, 87, 4094].into_iter().collect();
        s.qinq_pass = data.len() % 2 == 0;
        s.prepare();
        let mut tx = TxState::new(7);
        if let Verdict::ToHost { vid, untag } = forward::from_member(&s, 0, data) {
            if untag {
                let tag = vlan::outer_tag(data).expect("untag only a tagged frame");
                assert_eq!(tag.tci.vid(), vid);
                let mut buf = data.to_vec();
                assert!(vlan::remove_tag(&mut buf));
                assert_eq!(&buf[4..16], &data[..12]);
                assert_eq!(&buf[16..], &data[16..]);
            } else if vid != 0 {
                panic!("a VLAN port gets frames untagged");
            }
        }
        match forward::from_host(&s, &mut tx, data, 0) {
            Verdict::ToMember(m) | Verdict::ArpReplyVia(m) if s.lb.is_some() => {
                let mut buf = data.to_vec();
                let arp = matches!(forward::from_host(&s, &mut tx, data, 0), Verdict::ArpReplyVia(_));
                lb::rewrite_for_member(&s, m, &mut buf, arp);
                assert_eq!(buf.len(), data.len());
            }
            _ => {}
        }
        if let Verdict::ToHost { .. } = forward::from_member(&s, 1, data) {
            let mut buf = data.to_vec();
            lb::adopt_for_host(&s, &mut buf);
            assert_eq!(&buf[6..], &data[6..]);
        }
        if let Verdict::ToMember(_) | Verdict::ToAllMembers = forward::from_host(&s, &mut tx, data, 87) {
            let mut buf = vec![0u8; 4];
            buf.extend_from_slice(data);
            match forward::egress_tag(data, 87) {
                EgressTag::Push(tci) => {
                    assert!(vlan::insert_tag(&mut buf, vlan::TPID_8021Q, tci));
                    assert_eq!(vlan::outer_tag(&buf).map(|t| t.tci.vid()), Some(87));
                    assert_eq!(&buf[16..], &data[12..]);
                }
                EgressTag::Rewrite(tci) => {
                    let mut f = data.to_vec();
                    vlan::set_tci(&mut f, tci);
                    assert_eq!(vlan::outer_tag(&f).map(|t| t.tci.vid()), Some(87));
                }
            }
        }
    }
});
