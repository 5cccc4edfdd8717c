//! `xbond import`: the bonds of configurations users already have, printed
//! as xbond TOML, with a warning for everything that does not carry over
//! (DHCP, routes, gateways: xbond makes interfaces, not a network manager).

pub mod ifcfg;
pub mod iproute2;
pub mod netplan;
pub mod networkd;
pub mod nm;
pub mod nmstate;
pub mod talos;

use crate::config::{Config, MemberSpec};
use anyhow::Context;
use std::path::Path;
use yaml_rust2::Yaml;

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

/// A YAML scalar in the kernel's text form.
pub(crate) fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(if *b { "1" } else { "0" }.to_string()),
        Yaml::Real(r) => Some(r.clone()),
        _ => None,
    }
}

pub(crate) fn key_str(k: &Yaml) -> String {
    scalar(k).unwrap_or_else(|| format!("{k:?}"))
}

pub(crate) fn strings(v: &Yaml) -> Vec<String> {
    v.as_vec()
        .map(|a| a.iter().filter_map(scalar).collect())
        .unwrap_or_default()
}

/// A boolean as systemd, NetworkManager and netplan write them.
pub(crate) fn truth(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" | "y" => Some(true),
        "0" | "no" | "false" | "off" | "n" => Some(false),
        _ => None,
    }
}

/// A time span in milliseconds: `100ms`, `1s`, `1.5s`, `2min`, `1s 500ms`;
/// a bare number is in `bare_ms` milliseconds (1000 for systemd, where it
/// means seconds; 1 for netplan, where it means milliseconds).
pub(crate) fn span_ms(s: &str, bare_ms: f64) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<f64>() {
        return (n >= 0.0).then(|| (n * bare_ms).round() as u64);
    }
    let mut total = 0.0;
    for part in s.split_whitespace() {
        let at = part.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, unit) = part.split_at(at);
        let n: f64 = num.parse().ok()?;
        let per = match unit {
            "us" | "usec" => 0.001,
            "ms" | "msec" => 1.0,
            "s" | "sec" | "second" | "seconds" => 1000.0,
            "m" | "min" | "minute" | "minutes" => 60_000.0,
            "h" | "hr" | "hour" | "hours" => 3_600_000.0,
            _ => return None,
        };
        total += n * per;
    }
    Some(total.round() as u64)
}

/// The files of `dir` whose names `keep` accepts, in name order, as
/// (file name, text).
pub(crate) fn read_dir_files(
    dir: &Path,
    keep: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    let rd = std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))?;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        if p.is_file() && keep(&name) {
            let text =
                std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?;
            files.push((name, text));
        }
    }
    files.sort();
    Ok(files)
}

/// An INI-style file (systemd units, NetworkManager keyfiles): `#` and `;`
/// comments, repeated sections and keys kept, no quote or escape handling.
pub(crate) fn ini(file: &str, text: &str) -> Result<ini::Ini, String> {
    ini::Ini::load_from_str_opt(
        text,
        ini::ParseOption {
            enabled_quote: false,
            enabled_escape: false,
            ..ini::ParseOption::default()
        },
    )
    .map_err(|e| format!("{file}: not an INI file: {e}"))
}

/// How a tool's bond setting becomes a kernel option's text.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Conv {
    /// The value as it is.
    Same,
    /// A time span in milliseconds (what a bare number means is the
    /// tool's: seconds for systemd, milliseconds for netplan).
    Millis,
    /// A time span in whole seconds (a bare number is seconds).
    Seconds,
    /// A boolean as 0/1.
    Bool,
    /// A list (space- or comma-separated) as a comma-separated one.
    List,
}

/// `value` as the kernel option's text, `bare_ms` milliseconds to a bare
/// number of a `Millis` span; `None` when it cannot be read.
pub(crate) fn convert(conv: Conv, value: &str, bare_ms: f64) -> Option<String> {
    Some(match conv {
        Conv::Same => value.trim().to_string(),
        Conv::Millis => span_ms(value, bare_ms)?.to_string(),
        Conv::Seconds => (span_ms(value, 1000.0)? / 1000).to_string(),
        Conv::Bool => u8::from(truth(value)?).to_string(),
        Conv::List => value
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|x| !x.is_empty())
            .collect::<Vec<_>>()
            .join(","),
    })
}

/// Put `value` for kernel option `key` on `options`, replacing an earlier one.
pub(crate) fn set_option(options: &mut Vec<(String, String)>, key: &str, value: String) {
    match options.iter_mut().find(|(k, _)| k == key) {
        Some(o) => o.1 = value,
        None => options.push((key.to_string(), value)),
    }
}

/// `a.b.c.d` netmask to a prefix length; `None` if not contiguous.
pub fn netmask_prefix(mask: &str) -> Option<u8> {
    let ip: std::net::Ipv4Addr = mask.parse().ok()?;
    let bits = u32::from(ip);
    let len = bits.leading_ones();
    (bits.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// What the importers' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use super::Imported;
    use crate::config::{BondConfig, Config};

    /// Every mode, by the kernel's name.
    pub const MODES: [&str; 7] = [
        "balance-rr",
        "active-backup",
        "balance-xor",
        "broadcast",
        "802.3ad",
        "balance-tlb",
        "balance-alb",
    ];

    /// (name, text) pairs as the importers take files.
    pub fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    /// The bonds of an importer's TOML, through xbond's own config parser.
    pub fn bonds(out: &Imported) -> Vec<BondConfig> {
        Config::parse(&out.toml, "imported")
            .unwrap_or_else(|e| panic!("{e}\n{}", out.toml))
            .bonds
    }

    /// The first bond of an importer's TOML.
    pub fn bond(out: &Imported) -> BondConfig {
        bonds(out).remove(0)
    }
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
