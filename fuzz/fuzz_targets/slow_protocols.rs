//! LACPDUs and marker PDUs from the wire: the parsers never panic, whatever
//! parses emits back to the same PDU, and the LACP machines take anything a
//! member receives (as the control thread does) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use xbond_control::lacp::port::System;
use xbond_control::lacp::{Lacp, LacpConfig};
use xbond_dataplane::wire::{lacp, marker, MacAddr};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = lacp::Repr::parse(&lacp::Packet::new_unchecked(data)) {
        let mut buf = [0u8; lacp::PDU_LEN];
        r.emit(&mut lacp::Packet::new_unchecked(&mut buf[..]));
        let again = lacp::Repr::parse(&lacp::Packet::new_unchecked(&buf[..])).expect("emitted PDU parses");
        assert_eq!(again, r);
    }
    if let Ok(r) = marker::Repr::parse(&marker::Packet::new_unchecked(data)) {
        let frame = r.frame(MacAddr([2, 0, 0, 0, 0, 1]));
        let again = marker::Repr::parse(&marker::Packet::new_unchecked(&frame[14..])).expect("emitted PDU parses");
        assert_eq!(again, r);
    }
    let t0 = Instant::now();
    let mut l = Lacp::new(LacpConfig {
        fast: true,
        fallback_after: Some(Duration::from_secs(3)),
        ..LacpConfig::new(System { priority: 65535, mac: MacAddr([2, 0, 0, 0, 0, 0xa]) })
    });
    l.add_port(t0, 0, MacAddr([2, 0, 0, 0, 1, 0]), 255, true, Some(10000), Some(true));
    let mut frame = vec![0x01, 0x80, 0xc2, 0, 0, 2, 2, 9, 9, 9, 9, 9, 0x88, 0x09];
    frame.extend_from_slice(data);
    l.handle_frame(t0, 0, &frame);
    l.handle_timeout(t0 + Duration::from_secs(5));
    while l.poll_transmit().is_some() {}
    let _ = l.port_status(0);
});
