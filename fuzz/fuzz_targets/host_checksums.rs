//! Any frame a host port hands the dataplane: seeding its TCP/UDP checksum
//! never panics and changes nothing but the two checksum bytes, and the
//! checksum finished from the seed verifies as a receiver checks it (the
//! pseudo-header sum plus the L4 bytes, checksum included, is all ones).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xbond_dataplane::offload::{finish_in_place, seed_l4_checksum};
use xbond_dataplane::wire::checksum;

fuzz_target!(|data: &[u8]| {
    let mut f = data.to_vec();
    let Some(req) = seed_l4_checksum(&mut f) else {
        assert_eq!(f, data, "a frame left alone is unchanged");
        return;
    };
    let start = usize::from(req.start);
    let field = start + usize::from(req.offset);
    assert!(field + 2 <= f.len());
    for (i, (a, b)) in f.iter().zip(data).enumerate() {
        if i != field && i != field + 1 {
            assert_eq!(a, b, "byte {i} changed");
        }
    }
    let seed = u16::from_be_bytes([f[field], f[field + 1]]);
    finish_in_place(&mut f, req);
    let end = (start + req.len as usize).min(f.len());
    assert!(
        checksum::verifies(seed, &f[start..end]),
        "the finished checksum does not verify"
    );
});
