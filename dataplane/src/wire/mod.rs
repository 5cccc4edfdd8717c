//! Wire formats, one file per protocol: borrowed views over frame bytes
//! (`Packet<T>`) for the hot path, and `Repr` structs for the control plane.

/// The borrowed view each protocol file has (STYLE.md): `Packet<T>` over a
/// buffer, with `new_unchecked`, `check_len` (shorter than `min_len` is
/// `Truncated`), `new_checked` and `into_inner`. The accessors are the file's.
macro_rules! packet_view {
    ($(#[$doc:meta])* min_len = $min:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct Packet<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> Packet<T> {
            pub fn new_unchecked(buffer: T) -> Self {
                Packet { buffer }
            }

            pub fn new_checked(buffer: T) -> $crate::wire::Result<Self> {
                let p = Self::new_unchecked(buffer);
                p.check_len()?;
                Ok(p)
            }

            pub fn check_len(&self) -> $crate::wire::Result<()> {
                if self.buffer.as_ref().len() < $min {
                    Err($crate::wire::WireError::Truncated)
                } else {
                    Ok(())
                }
            }

            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod ipv4;
pub mod ipv6;
pub mod lacp;
pub mod marker;
pub mod mcast;
pub mod ndisc;
pub mod virtio_net;
pub mod vlan;

/// A frame or header too short for what it claims to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated")]
    Truncated,
    #[error("malformed")]
    Malformed,
}

pub type Result<T> = std::result::Result<T, WireError>;

/// A MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    pub fn parse(s: &str) -> Option<MacAddr> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in out.iter_mut() {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 2 {
                return None;
            }
            *b = u8::from_str_radix(p, 16).ok()?;
        }
        parts.next().is_none().then_some(MacAddr(out))
    }
}

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl std::fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::MacAddr;

    /// Bytes from hex digits; whitespace between them is ignored, so byte
    /// vectors can be laid out field by field.
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let d: String = s.split_whitespace().collect();
        (0..d.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&d[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn mac_parse_and_display_round_trip() {
        let m = MacAddr::parse("02:00:0a:ff:00:01").unwrap();
        assert_eq!(m.to_string(), "02:00:0a:ff:00:01");
        assert!(MacAddr::parse("02:00:0a:ff:00").is_none());
        assert!(MacAddr::parse("02:00:0a:ff:00:01:02").is_none());
        assert!(MacAddr::parse("02:00:0a:ff:00:zz").is_none());
        assert!(MacAddr::BROADCAST.is_multicast());
    }
}
