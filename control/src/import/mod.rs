//! `xbond import`: the bonds of configurations users already have, printed
//! as xbond TOML, with a warning for everything that does not carry over
//! (DHCP, routes, gateways: xbond makes interfaces, not a network manager).

pub mod ifcfg;
pub mod talos;

use crate::config::{Config, MemberSpec};

/// What an importer produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub toml: String,
    pub warnings: Vec<String>,
}

/// A bond as read from a foreign configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BondDraft {
    pub name: String,
    pub members: Vec<MemberSpec>,
    /// Kernel options, `key=value` in the order they were read.
    pub options: Vec<(String, String)>,
    pub mtu: Option<u32>,
    pub mac: Option<String>,
    pub addresses: Vec<String>,
    pub vlans: Vec<VlanDraft>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VlanDraft {
    pub id: u16,
    /// Set only when it is not the default `BOND.ID`.
    pub name: Option<String>,
    pub mtu: Option<u32>,
    pub addresses: Vec<String>,
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn list(items: &[String]) -> String {
    let q: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", q.join(", "))
}

fn member(m: &MemberSpec) -> String {
    match m {
        MemberSpec::Name(n) => quote(n),
        MemberSpec::Select(s) => {
            let mut parts = Vec::new();
            if let Some(d) = &s.driver {
                parts.push(format!("driver = {}", quote(d)));
            }
            if let Some(m) = &s.mac {
                parts.push(format!("mac = {}", quote(m)));
            }
            format!("{{ {} }}", parts.join(", "))
        }
    }
}

/// The drafts as xbond TOML, checked by xbond's own config parser: what it
/// would refuse is added to `warnings`, so the user learns it now rather
/// than at `xbond run`.
pub fn render(source: &str, bonds: &[BondDraft], warnings: &mut Vec<String>) -> String {
    let mut out = format!("# imported by xbond from {source}\n");
    for b in bonds {
        out.push_str(&format!("\n[bond.{}]\n", b.name));
        let members: Vec<String> = b.members.iter().map(member).collect();
        out.push_str(&format!("members = [{}]\n", members.join(", ")));
        let opts: Vec<String> = b.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!("options = {}\n", quote(&opts.join(" "))));
        if let Some(m) = b.mtu {
            out.push_str(&format!("mtu = {m}\n"));
        }
        if let Some(m) = &b.mac {
            out.push_str(&format!("mac = {}\n", quote(m)));
        }
        if !b.addresses.is_empty() {
            out.push_str(&format!("addresses = {}\n", list(&b.addresses)));
        }
        for v in &b.vlans {
            out.push_str(&format!("\n[[bond.{}.vlan]]\nid = {}\n", b.name, v.id));
            if let Some(n) = &v.name {
                out.push_str(&format!("name = {}\n", quote(n)));
            }
            if let Some(m) = v.mtu {
                out.push_str(&format!("mtu = {m}\n"));
            }
            if !v.addresses.is_empty() {
                out.push_str(&format!("addresses = {}\n", list(&v.addresses)));
            }
        }
    }
    if bonds.is_empty() {
        warnings.push(format!("no bond found in {source}"));
    } else if let Err(e) = Config::parse(&out, "the imported configuration") {
        warnings.push(format!("xbond would refuse this as it is: {e}"));
    }
    out
}

/// `a.b.c.d` netmask to a prefix length; `None` if not contiguous.
pub fn netmask_prefix(mask: &str) -> Option<u8> {
    let ip: std::net::Ipv4Addr = mask.parse().ok()?;
    let bits = u32::from(ip);
    let len = bits.leading_ones();
    (bits.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks() {
        assert_eq!(netmask_prefix("255.255.255.0"), Some(24));
        assert_eq!(netmask_prefix("255.255.255.255"), Some(32));
        assert_eq!(netmask_prefix("0.0.0.0"), Some(0));
        assert_eq!(netmask_prefix("255.0.255.0"), None);
        assert_eq!(netmask_prefix("bogus"), None);
    }

    #[test]
    fn rendering_is_checked_by_the_config_parser() {
        let mut w = Vec::new();
        let b = BondDraft {
            name: "bond0".into(),
            members: vec![MemberSpec::Name("eth0".into())],
            options: vec![
                ("mode".into(), "802.3ad".into()),
                ("broadcast_neighbor".into(), "1".into()),
            ],
            ..Default::default()
        };
        render("x", &[b], &mut w);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("broadcast_neighbor"), "{w:?}");
        assert!(w[0].contains("is not implemented"), "{w:?}");
    }
}
