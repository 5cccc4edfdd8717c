//! A shell script that builds bonds by hand: `modprobe bonding OPTS` (the
//! module's options are every bond's defaults, and it makes `bond0`), `ip
//! link add NAME type bond OPTS`, `ip link set IF master BOND`, `ip link set
//! BOND mtu|address|type bond OPTS`, `ip addr add ADDR dev IF`, `ip link add
//! link BOND name N type vlan id ID`, `ifenslave BOND IF...`, and sysfs
//! writes (`echo 100 > /sys/class/net/bond0/bonding/miimon`, `echo +eth0 >
//! .../slaves`, `echo +bond1 > /sys/class/net/bonding_masters`). Words are
//! split as the shell splits them (the `shell-words` crate).

use super::{render, set_option, BondDraft, Imported, VlanDraft};
use crate::config::MemberSpec;
use std::path::Path;

/// iproute2's bond option names that are not the kernel's.
const RENAMED: &[(&str, &str)] = &[
    ("peer_notify_delay", "peer_notif_delay"),
    ("num_unsol_na", "num_grat_arp"),
];

/// iproute2 bond options that take no value.
const FLAGS: &[&str] = &["clear_active_slave"];

pub fn import_file(path: &Path) -> anyhow::Result<Imported> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("read {}: {e}", path.display()))?;
    Ok(import_str(&path.display().to_string(), &text))
}

#[derive(Default)]
struct Script {
    defaults: Vec<(String, String)>,
    bonds: Vec<BondDraft>,
    /// VLANs by (parent, draft, interface name).
    vlans: Vec<(String, VlanDraft, String)>,
    /// (interface, address) not yet known to be a bond's or a VLAN's.
    addresses: Vec<(String, String)>,
    warnings: Vec<String>,
}

impl Script {
    fn bond(&mut self, name: &str) -> &mut BondDraft {
        if let Some(i) = self.bonds.iter().position(|b| b.name == name) {
            return &mut self.bonds[i];
        }
        self.bonds.push(BondDraft {
            name: name.to_string(),
            ..Default::default()
        });
        self.bonds.last_mut().expect("just pushed")
    }

    fn has_bond(&self, name: &str) -> bool {
        self.bonds.iter().any(|b| b.name == name)
    }

    fn enslave(&mut self, bond: &str, member: &str) {
        let b = self.bond(bond);
        if !b
            .members
            .iter()
            .any(|m| matches!(m, MemberSpec::Name(n) if n == member))
        {
            b.members.push(MemberSpec::Name(member.to_string()));
        }
    }

    fn release(&mut self, member: &str) {
        for b in &mut self.bonds {
            b.members
                .retain(|m| !matches!(m, MemberSpec::Name(n) if n == member));
        }
    }

    /// `key value` pairs of `type bond ...` onto `bond`.
    fn bond_options(&mut self, at: &str, bond: &str, words: &[String]) {
        let mut i = 0;
        while i < words.len() {
            let k = words[i].as_str();
            if FLAGS.contains(&k) {
                self.warnings.push(format!(
                    "{at}: {k}: a one-off action, not a setting; left out"
                ));
                i += 1;
                continue;
            }
            let Some(v) = words.get(i + 1) else {
                self.warnings
                    .push(format!("{at}: {k} without a value; left out"));
                break;
            };
            let key = RENAMED
                .iter()
                .find(|(n, _)| *n == k)
                .map_or(k, |(_, kernel)| kernel);
            set_option(&mut self.bond(bond).options, key, v.clone());
            i += 2;
        }
    }
}

/// The script's commands: continuation lines joined, comments dropped, and
/// `;`, `&&` and `||` lists split; each with its line number.
fn commands(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut start = 0;
    for (n, line) in text.lines().enumerate() {
        if pending.is_empty() {
            start = n + 1;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let full = std::mem::take(&mut pending);
        let Ok(words) = shell_words::split(&full) else {
            out.push((start, vec!["\u{0}unparsable".to_string(), full]));
            continue;
        };
        let mut cmd = Vec::new();
        for w in words {
            if w.starts_with('#') && cmd.is_empty() {
                break;
            }
            if matches!(w.as_str(), ";" | "&&" | "||") {
                out.push((start, std::mem::take(&mut cmd)));
            } else if let Some(word) = w.strip_suffix(';') {
                cmd.push(word.to_string());
                out.push((start, std::mem::take(&mut cmd)));
            } else {
                cmd.push(w);
            }
        }
        out.push((start, cmd));
    }
    out.retain(|(_, c)| !c.is_empty());
    out
}

/// The word after `key` in `words`.
fn after<'a>(words: &'a [String], key: &str) -> Option<&'a String> {
    words
        .iter()
        .position(|w| w == key)
        .and_then(|i| words.get(i + 1))
}

pub fn import_str(source: &str, text: &str) -> Imported {
    let mut s = Script::default();
    for (line, mut cmd) in commands(text) {
        let at = format!("{source}:{line}");
        if cmd[0] == "\u{0}unparsable" {
            s.warnings
                .push(format!("{at}: unbalanced quotes; left out"));
            continue;
        }
        while matches!(cmd.first().map(String::as_str), Some("sudo" | "exec"))
            || cmd
                .first()
                .is_some_and(|w| w.contains('=') && !w.starts_with('-'))
        {
            cmd.remove(0);
        }
        let Some(prog) = cmd
            .first()
            .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
        else {
            continue;
        };
        let args = &cmd[1..];
        match prog.as_str() {
            "modprobe" | "insmod" => {
                let module = args.iter().find(|a| !a.starts_with('-'));
                if module.map(String::as_str) != Some("bonding") {
                    continue;
                }
                let mut max_bonds = 1;
                for a in args.iter().skip_while(|a| *a != "bonding").skip(1) {
                    match a.split_once('=') {
                        Some(("max_bonds", n)) => max_bonds = n.parse().unwrap_or(1),
                        Some((k, v)) => set_option(&mut s.defaults, k, v.to_string()),
                        None => s.warnings.push(format!(
                            "{at}: modprobe bonding {a}: not KEY=VALUE; left out"
                        )),
                    }
                }
                for i in 0..max_bonds.min(16) {
                    s.bond(&format!("bond{i}"));
                }
            }
            "ifenslave" => {
                let words: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
                if let Some((bond, members)) = words.split_first() {
                    for m in members {
                        s.enslave(bond, m);
                    }
                }
            }
            "echo" => sysfs(&mut s, &at, &cmd),
            "ip" => ip(&mut s, &at, args),
            "sysctl" | "ethtool" => s
                .warnings
                .push(format!("{at}: {prog}: not a bond setting; left out")),
            "dhclient" | "dhcpcd" | "resolvectl" | "nmcli" => s.warnings.push(format!(
                "{at}: {prog}: not carried over (a network manager's job, not the bond's)"
            )),
            "set" | "true" | "exit" | "#!/bin/sh" | "#!/bin/bash" => {}
            other => s
                .warnings
                .push(format!("{at}: {other}: not a bond command; left out")),
        }
    }
    // Addresses and VLANs onto their bonds.
    let Script {
        defaults,
        mut bonds,
        mut vlans,
        addresses,
        mut warnings,
    } = s;
    for b in &mut bonds {
        let mut opts = defaults.clone();
        for (k, v) in std::mem::take(&mut b.options) {
            set_option(&mut opts, &k, v);
        }
        opts.sort_by_key(|(k, _)| k != "mode");
        b.options = opts;
    }
    for (dev, addr) in addresses {
        if let Some(b) = bonds.iter_mut().find(|b| b.name == dev) {
            b.addresses.push(addr);
        } else if let Some((_, v, _)) = vlans.iter_mut().find(|(_, _, n)| *n == dev) {
            v.addresses.push(addr);
        } else {
            warnings.push(format!(
                "{source}: address {addr} on {dev}: not a bond or a bond's VLAN; left out"
            ));
        }
    }
    for (parent, mut v, vname) in vlans {
        let Some(b) = bonds.iter_mut().find(|b| b.name == parent) else {
            warnings.push(format!(
                "{source}: VLAN {vname} on {parent}: not on a bond; left out"
            ));
            continue;
        };
        v.name = (vname != format!("{parent}.{}", v.id)).then_some(vname);
        b.vlans.push(v);
    }
    let toml = render(
        &format!("{source} (iproute2 script)"),
        &bonds,
        &mut warnings,
    );
    Imported { toml, warnings }
}

/// `echo VALUE > /sys/class/net/...`.
fn sysfs(s: &mut Script, at: &str, cmd: &[String]) {
    // The shell split `>` off only when it was spaced; both forms.
    let joined = cmd[1..].join(" ");
    let Some((value, path)) = joined.split_once('>') else {
        return;
    };
    let (value, path) = (
        value.trim().trim_matches('"'),
        path.trim().trim_start_matches('>').trim(),
    );
    if let Some(rest) = path.strip_prefix("/sys/class/net/") {
        if rest == "bonding_masters" {
            match value.strip_prefix('+') {
                Some(b) => {
                    s.bond(b);
                }
                None => s.warnings.push(format!(
                    "{at}: bonding_masters {value}: only +BOND is carried over"
                )),
            }
            return;
        }
        if let Some((bond, opt)) = rest.split_once("/bonding/") {
            match opt {
                "slaves" => {
                    for v in value.split_whitespace() {
                        if let Some(m) = v.strip_prefix('+') {
                            s.enslave(bond, m);
                        } else if let Some(m) = v.strip_prefix('-') {
                            s.release(m);
                        }
                    }
                }
                "arp_ip_target" | "ns_ip6_target" => {
                    let b = s.bond(bond);
                    let add = value.trim_start_matches('+');
                    match b.options.iter_mut().find(|(k, _)| k == opt) {
                        Some((_, v)) => {
                            v.push(',');
                            v.push_str(add);
                        }
                        None => b.options.push((opt.to_string(), add.to_string())),
                    }
                }
                _ => set_option(
                    &mut s.bond(bond).options,
                    opt,
                    value.split_whitespace().next().unwrap_or("").to_string(),
                ),
            }
            return;
        }
    }
    s.warnings.push(format!(
        "{at}: echo > {path}: not a bonding setting; left out"
    ));
}

/// `ip [-4|-6|...] OBJECT COMMAND ...`.
fn ip(s: &mut Script, at: &str, args: &[String]) {
    let args: Vec<String> = args
        .iter()
        .skip_while(|a| a.starts_with('-'))
        .cloned()
        .collect();
    let (Some(object), Some(verb)) = (args.first(), args.get(1)) else {
        return;
    };
    let rest = &args[2..];
    let object = object.as_str();
    if "link".starts_with(object) && !object.is_empty() {
        match verb.as_str() {
            "add" | "a" => link_add(s, at, rest),
            "set" | "s" => link_set(s, at, rest),
            "del" | "delete" => s
                .warnings
                .push(format!("{at}: ip link del: not carried over")),
            _ => {}
        }
    } else if "address".starts_with(object) || object == "addr" || object == "a" {
        if matches!(verb.as_str(), "add" | "a" | "replace") {
            match (rest.first(), after(rest, "dev")) {
                (Some(addr), Some(dev)) => s.addresses.push((dev.clone(), addr.clone())),
                _ => s.warnings.push(format!(
                    "{at}: ip addr {verb} without ADDR and dev; left out"
                )),
            }
        }
    } else if "route".starts_with(object)
        || "rule".starts_with(object)
        || "neighbour".starts_with(object)
    {
        s.warnings.push(format!(
            "{at}: ip {object}: not carried over (a network manager's job, not the bond's)"
        ));
    }
}

/// `ip link add [link DEV] [name] NAME type bond|vlan ARGS`.
fn link_add(s: &mut Script, at: &str, rest: &[String]) {
    let Some(t) = rest.iter().position(|w| w == "type") else {
        return;
    };
    let kind = rest.get(t + 1).map(String::as_str).unwrap_or("");
    let head = &rest[..t];
    let name = after(head, "name").or_else(|| {
        head.iter()
            .enumerate()
            .find(|(i, w)| {
                !matches!(w.as_str(), "link" | "name" | "dev")
                    && (*i == 0
                        || !matches!(
                            head[i - 1].as_str(),
                            "link" | "mtu" | "address" | "txqueuelen"
                        ))
            })
            .map(|(_, w)| w)
    });
    let Some(name) = name.cloned() else {
        s.warnings
            .push(format!("{at}: ip link add without a name; left out"));
        return;
    };
    let opts = &rest[t + 2..];
    match kind {
        "bond" => {
            s.bond(&name);
            if let Some(m) = after(head, "mtu") {
                s.bond(&name).mtu = m.parse().ok();
            }
            if let Some(a) = after(head, "address") {
                s.bond(&name).mac = Some(a.clone());
            }
            s.bond_options(at, &name, opts);
        }
        "vlan" => {
            let (Some(parent), Some(id)) = (
                after(head, "link"),
                after(opts, "id").and_then(|i| i.parse().ok()),
            ) else {
                s.warnings.push(format!(
                    "{at}: ip link add {name} type vlan without link and id; left out"
                ));
                return;
            };
            for w in [
                "protocol",
                "egress-qos-map",
                "ingress-qos-map",
                "reorder_hdr",
                "gvrp",
                "mvrp",
            ] {
                if opts.iter().any(|o| o == w) {
                    s.warnings.push(format!("{at}: vlan {w}: not carried over"));
                }
            }
            let mtu = after(head, "mtu").and_then(|m| m.parse().ok());
            s.vlans.push((
                parent.clone(),
                VlanDraft {
                    id,
                    name: None,
                    mtu,
                    addresses: Vec::new(),
                },
                name,
            ));
        }
        other => s.warnings.push(format!(
            "{at}: ip link add {name} type {other}: not a bond or VLAN; left out"
        )),
    }
}

/// `ip link set [dev] IF [master BOND|nomaster] [mtu N] [address MAC] [type bond ARGS]`.
fn link_set(s: &mut Script, at: &str, rest: &[String]) {
    let dev = if rest.first().map(String::as_str) == Some("dev") {
        rest.get(1)
    } else {
        rest.first()
    };
    let Some(dev) = dev.cloned() else { return };
    if let Some(b) = after(rest, "master") {
        s.enslave(b, &dev);
    }
    if rest.iter().any(|w| w == "nomaster") {
        s.release(&dev);
    }
    if let Some(t) = rest.iter().position(|w| w == "type") {
        if rest.get(t + 1).map(String::as_str) == Some("bond") {
            let opts = rest[t + 2..].to_vec();
            s.bond_options(at, &dev, &opts);
        }
        if rest.get(t + 1).map(String::as_str) == Some("bond_slave") {
            s.warnings.push(format!(
                "{at}: ip link set {dev} type bond_slave: per-member settings are not carried over"
            ));
        }
    }
    if s.has_bond(&dev) {
        if let Some(m) = after(rest, "mtu") {
            s.bond(&dev).mtu = m.parse().ok();
        }
        if let Some(a) = after(rest, "address") {
            s.bond(&dev).mac = Some(a.clone());
        }
    } else if let Some(v) = s.vlans.iter_mut().find(|(_, _, n)| *n == dev) {
        if let Some(m) = after(rest, "mtu") {
            v.1.mtu = m.parse().ok();
        }
    }
}

#[cfg(test)]
mod tests;
