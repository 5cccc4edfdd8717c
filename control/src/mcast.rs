//! The multicast groups the host's interfaces have joined, as the kernel
//! lists them in `/proc/net/igmp` and `/proc/net/igmp6`: what a bond reports
//! again after a failover (`resend_igmp`).

use std::net::{Ipv4Addr, Ipv6Addr};

/// (interface, group) of every IPv4 group in a `/proc/net/igmp` text.
///
/// An interface line is `IDX\tNAME : COUNT QUERIER`; its groups follow on
/// lines that start with a tab, the address in hex as the kernel prints a
/// `__be32` with `%08X` (on little-endian machines, the bytes reversed).
pub fn igmp_groups(text: &str) -> Vec<(String, Ipv4Addr)> {
    let mut out = Vec::new();
    let mut dev: Option<String> = None;
    for line in text.lines().skip(1) {
        if line.starts_with(|c: char| c.is_ascii_digit()) {
            dev = line
                .split_whitespace()
                .nth(1)
                .map(|d| d.trim_end_matches(':').to_string());
        } else if let (Some(d), Some(hex)) = (&dev, line.split_whitespace().next()) {
            if let Ok(v) = u32::from_str_radix(hex, 16) {
                out.push((d.clone(), Ipv4Addr::from(v.to_ne_bytes())));
            }
        }
    }
    out
}

/// (interface, group) of every IPv6 group in a `/proc/net/igmp6` text:
/// `IDX NAME ADDRESS(32 hex) USERS FLAGS TIMER`.
pub fn igmp6_groups(text: &str) -> Vec<(String, Ipv6Addr)> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (_, name, hex) = (w.next()?, w.next()?, w.next()?);
            if hex.len() != 32 {
                return None;
            }
            let mut a = [0u8; 16];
            for (i, b) in a.iter_mut().enumerate() {
                *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            Some((name.to_string(), Ipv6Addr::from(a)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernels_lists() {
        // As this machine's kernel wrote them (x86_64, little-endian).
        let igmp = "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n\
                    1\tlo        :     1      V3\n\t\t\t\t010000E0     1 0:00000000\t\t0\n\
                    4\tbond0     :     2      V3\n\t\t\t\t010101EF     1 0:00000000\t\t0\n\
                    \t\t\t\t010000E0     1 0:00000000\t\t0\n";
        let g = igmp_groups(igmp);
        assert_eq!(
            g,
            [
                ("lo".to_string(), Ipv4Addr::new(224, 0, 0, 1)),
                ("bond0".to_string(), Ipv4Addr::new(239, 1, 1, 1)),
                ("bond0".to_string(), Ipv4Addr::new(224, 0, 0, 1)),
            ]
        );
        let igmp6 = "1    lo              ff020000000000000000000000000001     1 0000000C 0\n\
                     5    bond0.87        ff150000000000000000000000000001     1 00000004 0\n\
                     bogus line\n";
        assert_eq!(
            igmp6_groups(igmp6),
            [
                ("lo".to_string(), "ff02::1".parse().unwrap()),
                ("bond0.87".to_string(), "ff15::1".parse().unwrap()),
            ]
        );
    }
}
