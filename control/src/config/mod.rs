//! The configuration file (TOML, DESIGN.md section 1): bonds, their members,
//! their kernel options (as one `BONDING_OPTS` string and/or as keys of their
//! own) and the engine settings. Every error names the file and the key.

pub mod members;
pub mod options;

pub use members::{MemberSpec, Selector};
use options::{BondOptions, OptionError};
use std::path::{Path, PathBuf};
pub use xbond_dataplane::engine::EngineConfig;
use xbond_dataplane::engine::{AttachMode, BindMode, HostPortKind};
use xbond_dataplane::wire::MacAddr;
use xbond_dataplane::worker::PollPolicy;

/// A config error: which file, which key, what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub message: String,
}

/// An 802.1Q VLAN sub-interface of a bond (`[[bond.NAME.vlan]]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VlanConfig {
    pub id: u16,
    /// The host interface; `BOND.ID` unless given.
    pub name: String,
    pub mtu: u32,
    /// Addresses xbond puts on the VLAN interface.
    pub addresses: Vec<String>,
}

/// What happens to frames with an 802.1ad (QinQ) outer tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Qinq {
    /// Counted and dropped, as the kernel drops a VLAN it has no device for.
    #[default]
    Drop,
    /// To the bond's own interface, unchanged.
    Pass,
}

/// One bond.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BondConfig {
    pub name: String,
    /// Interface names and selectors, in order (the first resolved member
    /// gives the bond its MAC).
    pub members: Vec<MemberSpec>,
    pub options: BondOptions,
    pub mtu: u32,
    #[serde(serialize_with = "ser_mac")]
    pub mac: Option<MacAddr>,
    /// Addresses xbond puts on the host interface (and removes on exit).
    pub addresses: Vec<String>,
    /// 802.3ad port priority per member (the kernel's per-slave
    /// `actor_port_prio`); members not listed get 255.
    pub actor_port_prio: Vec<(String, u16)>,
    /// Per-member priority for choosing the active member (the kernel's
    /// per-slave `prio`, set with `ip link set IF type bond_slave prio N`):
    /// with no primary up, the highest up member is chosen, as a primary
    /// would be. Members not listed have 0.
    pub prio: Vec<(String, i32)>,
    pub vlans: Vec<VlanConfig>,
    pub qinq: Qinq,
    pub engine: EngineConfig,
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Config {
    pub run_dir: PathBuf,
    /// `[daemon] socket_group`: only root and this group may open the
    /// control sockets (else every local user may, and reads only).
    pub socket_group: Option<String>,
    /// `[daemon] metrics`: where `/metrics` is served (Prometheus).
    pub metrics: Option<std::net::SocketAddr>,
    pub bonds: Vec<BondConfig>,
}

pub const DEFAULT_RUN_DIR: &str = "/run/xbond";

/// A metrics listen address: `IP:PORT` (`[::1]:9469` for IPv6), or `:PORT`
/// for every address.
pub fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    let full = match s.strip_prefix(':') {
        Some(port) => format!("[::]:{port}"),
        None => s.to_string(),
    };
    full.parse().map_err(|_| {
        format!("'{s}' is not a listen address (expected IP:PORT such as 127.0.0.1:9469, or :PORT)")
    })
}

const ENGINE_KEYS: &[&str] = &[
    "xdp_mode",
    "xdp_bind",
    "replace_xdp",
    "poll",
    "workers",
    "cpus",
    "ring_size",
    "frame_count",
    "frame_size",
    "busy_poll_usecs",
    "busy_poll_budget",
    "tx_skb_budget",
    "host_port",
];

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn opt(&self, bond: &str, e: OptionError) -> ConfigError {
        let key = match &e {
            OptionError::Unknown(k) | OptionError::Duplicate(k) => k.clone(),
            OptionError::BadValue { key, .. }
            | OptionError::ModeDependency { key, .. }
            | OptionError::Conflict { key, .. }
            | OptionError::NotImplemented { key, .. } => key.clone(),
            OptionError::Syntax(_) => "options".into(),
        };
        self.err(format!("bond.{bond}.{key}"), e.to_string())
    }
}

fn as_u32(ctx: &Ctx, key: &str, v: &toml::Value) -> Result<u32, ConfigError> {
    v.as_integer()
        .and_then(|i| u32::try_from(i).ok())
        .ok_or_else(|| ctx.err(key, format!("expected a non-negative integer, got {v}")))
}

fn as_str<'v>(ctx: &Ctx, key: &str, v: &'v toml::Value) -> Result<&'v str, ConfigError> {
    v.as_str()
        .ok_or_else(|| ctx.err(key, format!("expected a string, got {v}")))
}

/// A TOML value in the kernel's text form, so both spellings parse alike.
fn option_text(ctx: &Ctx, key: &str, v: &toml::Value) -> Result<String, ConfigError> {
    Ok(match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Boolean(b) => if *b { "1" } else { "0" }.to_string(),
        toml::Value::Array(a) => {
            let mut parts = Vec::new();
            for item in a {
                parts.push(as_str(ctx, key, item)?.to_string());
            }
            parts.join(",")
        }
        other => {
            return Err(ctx.err(
                key,
                format!("expected a string, number, boolean or list, got {other}"),
            ))
        }
    })
}

impl Config {
    /// A file, or every `*.toml` file of a directory (as `xbond.service`
    /// runs `/etc/xbond`), in name order: their bonds together. A
    /// `[daemon]` key given in several files must say the same in each.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        if path.is_dir() {
            return Self::load_dir(path);
        }
        Self::load_file(path)
    }

    fn load_dir(dir: &Path) -> Result<Config, ConfigError> {
        let here = dir.display().to_string();
        let err = |file: &str, key: &str, message: String| ConfigError {
            file: file.to_string(),
            key: key.to_string(),
            message,
        };
        let rd =
            std::fs::read_dir(dir).map_err(|e| err(&here, "-", format!("cannot read: {e}")))?;
        let mut files: Vec<std::path::PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        files.sort();
        let mut all: Option<Config> = None;
        let mut owner: Vec<(String, String)> = Vec::new();
        for f in &files {
            let c = Self::load_file(f)?;
            let file = f.display().to_string();
            let Some(acc) = &mut all else {
                for b in &c.bonds {
                    owner.push((b.name.clone(), file.clone()));
                }
                all = Some(c);
                continue;
            };
            let default_dir = Path::new(DEFAULT_RUN_DIR);
            if c.run_dir != default_dir {
                if acc.run_dir != default_dir && acc.run_dir != c.run_dir {
                    return Err(err(
                        &file,
                        "daemon.run_dir",
                        "differs from an earlier file's".into(),
                    ));
                }
                acc.run_dir = c.run_dir.clone();
            }
            if let Some(g) = c.socket_group {
                if acc.socket_group.as_ref().is_some_and(|a| *a != g) {
                    return Err(err(
                        &file,
                        "daemon.socket_group",
                        "differs from an earlier file's".into(),
                    ));
                }
                acc.socket_group = Some(g);
            }
            if let Some(m) = c.metrics {
                if acc.metrics.is_some_and(|a| a != m) {
                    return Err(err(
                        &file,
                        "daemon.metrics",
                        "differs from an earlier file's".into(),
                    ));
                }
                acc.metrics = Some(m);
            }
            for b in c.bonds {
                if let Some((_, other)) = owner.iter().find(|(n, _)| *n == b.name) {
                    return Err(err(
                        &file,
                        &format!("bond.{}", b.name),
                        format!("also defined in {other}"),
                    ));
                }
                for m in b.members.iter().filter_map(MemberSpec::name) {
                    if let Some(o) = acc
                        .bonds
                        .iter()
                        .find(|o| o.members.iter().any(|x| x.name() == Some(m)))
                    {
                        return Err(err(
                            &file,
                            &format!("bond.{}.members", b.name),
                            format!("{m} is already a member of bond {}", o.name),
                        ));
                    }
                }
                owner.push((b.name.clone(), file.clone()));
                acc.bonds.push(b);
            }
        }
        all.ok_or_else(|| err(&here, "-", "no *.toml file in this directory".into()))
    }

    fn load_file(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: "-".into(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &file)
    }

    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let ctx = Ctx { file };
        let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ctx.err("-", format!("not valid TOML: {}", e.message()))
        })?;
        let mut run_dir = PathBuf::from(DEFAULT_RUN_DIR);
        let mut socket_group = None;
        let mut metrics = None;
        let mut bonds = Vec::new();
        for (k, v) in &doc {
            match k.as_str() {
                "daemon" => {
                    let t = v
                        .as_table()
                        .ok_or_else(|| ctx.err("daemon", "expected a table"))?;
                    for (dk, dv) in t {
                        match dk.as_str() {
                            "run_dir" => {
                                run_dir = PathBuf::from(as_str(&ctx, "daemon.run_dir", dv)?)
                            }
                            "socket_group" => {
                                let g = as_str(&ctx, "daemon.socket_group", dv)?;
                                if g.is_empty() {
                                    return Err(ctx.err("daemon.socket_group", "empty group name"));
                                }
                                socket_group = Some(g.to_string());
                            }
                            "metrics" => {
                                let a = as_str(&ctx, "daemon.metrics", dv)?;
                                metrics = Some(
                                    parse_listen(a).map_err(|e| ctx.err("daemon.metrics", e))?,
                                );
                            }
                            other => return Err(ctx.err(format!("daemon.{other}"), "unknown key")),
                        }
                    }
                }
                "bond" => {
                    let t = v
                        .as_table()
                        .ok_or_else(|| ctx.err("bond", "expected a table of bonds"))?;
                    for (name, bv) in t {
                        bonds.push(Self::parse_bond(&ctx, name, bv)?);
                    }
                }
                other => {
                    return Err(ctx.err(other, "unknown key (expected [daemon] or [bond.NAME])"))
                }
            }
        }
        if bonds.is_empty() {
            return Err(ctx.err("bond", "no bond defined (add a [bond.bond0] table)"));
        }
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for b in &bonds {
            for m in b.members.iter().filter_map(MemberSpec::name) {
                if let Some((other, _)) = seen.iter().find(|(_, mm)| *mm == m) {
                    return Err(ctx.err(
                        format!("bond.{}.members", b.name),
                        format!("{m} is already a member of bond {other}"),
                    ));
                }
                seen.push((&b.name, m));
            }
        }
        Ok(Config {
            run_dir,
            socket_group,
            metrics,
            bonds,
        })
    }

    fn parse_bond(ctx: &Ctx, name: &str, v: &toml::Value) -> Result<BondConfig, ConfigError> {
        let key = |k: &str| format!("bond.{name}.{k}");
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', ':', '.']) {
            return Err(ctx.err(
                format!("bond.{name}"),
                "a bond name is an interface name: 1-15 characters, no '/', ':', '.' or spaces",
            ));
        }
        let t = v
            .as_table()
            .ok_or_else(|| ctx.err(format!("bond.{name}"), "expected a table"))?;
        let mut opts = BondOptions::default();
        let mut members = Vec::new();
        let mut mtu = 1500;
        let mut mac = None;
        let mut addresses = Vec::new();
        let mut actor_port_prio: Vec<(String, u16)> = Vec::new();
        let mut prio: Vec<(String, i32)> = Vec::new();
        let mut vlan_values: Vec<&toml::Value> = Vec::new();
        let mut qinq = Qinq::Drop;
        let mut engine = EngineConfig::default();
        let mut saw_members = false;

        // The options string first, then option keys, so duplicates across
        // the two are caught by the option parser.
        if let Some(s) = t.get("options") {
            let s = as_str(ctx, &key("options"), s)?;
            opts.parse_kernel_string(s).map_err(|e| ctx.opt(name, e))?;
        }
        for (k, v) in t {
            match k.as_str() {
                "options" => {}
                "members" => {
                    saw_members = true;
                    members = parse_members(ctx, &key("members"), v)?;
                }
                "mtu" => mtu = parse_mtu(ctx, &key("mtu"), v)?,
                "mac" => mac = Some(parse_mac(ctx, &key("mac"), v)?),
                "addresses" => addresses = parse_addresses(ctx, &key("addresses"), v)?,
                "actor_port_prio" => {
                    actor_port_prio = parse_port_prios(ctx, &key("actor_port_prio"), v)?
                }
                "prio" => prio = parse_member_prios(ctx, &key("prio"), v)?,
                "vlan" => {
                    let a = v.as_array().ok_or_else(|| {
                        ctx.err(key("vlan"), "expected [[bond.NAME.vlan]] tables")
                    })?;
                    vlan_values.extend(a.iter());
                }
                "qinq" => qinq = parse_qinq(ctx, &key("qinq"), v)?,
                k if ENGINE_KEYS.contains(&k) => parse_engine(ctx, name, k, v, &mut engine)?,
                k if options::canonical(k).is_some() || k == "max_bonds" || k == "slaves" => {
                    let text = option_text(ctx, &key(k), v)?;
                    opts.set(k, &text).map_err(|e| ctx.opt(name, e))?;
                }
                other => {
                    return Err(ctx.err(
                        key(other),
                        "unknown key (not a bonding option nor an xbond setting)",
                    ))
                }
            }
        }
        if !saw_members || members.is_empty() {
            return Err(ctx.err(key("members"), "a bond needs at least one member"));
        }
        let warnings = opts.finish().map_err(|e| ctx.opt(name, e))?;
        opts.check_implemented().map_err(|e| ctx.opt(name, e))?;
        let vlans = parse_vlans(ctx, name, mtu, &vlan_values)?;
        let bond = BondConfig {
            name: name.to_string(),
            members,
            options: opts,
            mtu,
            mac,
            addresses,
            actor_port_prio,
            prio,
            vlans,
            qinq,
            engine,
            warnings,
        };
        check_member_names(ctx, &bond)?;
        Ok(bond)
    }
}

/// `members`: interface names or selectors, none twice.
fn parse_members(ctx: &Ctx, key: &str, v: &toml::Value) -> Result<Vec<MemberSpec>, ConfigError> {
    let a = v.as_array().ok_or_else(|| {
        ctx.err(
            key,
            "expected a list of interface names or selectors like { driver = \"ixgbe\", mac = \"10:e7:c6:*\" }",
        )
    })?;
    let mut members = Vec::new();
    for m in a {
        let spec = MemberSpec::from_toml(m).map_err(|e| ctx.err(key, e))?;
        if members.contains(&spec) {
            return Err(ctx.err(key, format!("{spec} is listed twice")));
        }
        members.push(spec);
    }
    Ok(members)
}

fn parse_mtu(ctx: &Ctx, key: &str, v: &toml::Value) -> Result<u32, ConfigError> {
    let mtu = as_u32(ctx, key, v)?;
    if !(68..=65535).contains(&mtu) {
        return Err(ctx.err(key, format!("{mtu} is out of range 68-65535")));
    }
    Ok(mtu)
}

/// `mac`: a unicast address.
fn parse_mac(ctx: &Ctx, key: &str, v: &toml::Value) -> Result<MacAddr, ConfigError> {
    let s = as_str(ctx, key, v)?;
    let m = MacAddr::parse(s).ok_or_else(|| ctx.err(key, format!("'{s}' is not a MAC address")))?;
    if m.is_multicast() || m.is_zero() {
        return Err(ctx.err(key, format!("{m} is not a unicast address")));
    }
    Ok(m)
}

/// A table of member = number (`actor_port_prio`, `prio`), each value read
/// by `value` (which names the key in its errors).
fn parse_member_table<T>(
    ctx: &Ctx,
    key: &str,
    v: &toml::Value,
    example: &str,
    value: impl Fn(&str, &toml::Value) -> Result<T, ConfigError>,
) -> Result<Vec<(String, T)>, ConfigError> {
    let t = v.as_table().ok_or_else(|| {
        ctx.err(
            key,
            format!("expected a table of member = priority, like {example}"),
        )
    })?;
    t.iter()
        .map(|(m, p)| Ok((m.clone(), value(&format!("{key}.{m}"), p)?)))
        .collect()
}

/// `actor_port_prio`: a table of member = priority (1-65535).
fn parse_port_prios(
    ctx: &Ctx,
    key: &str,
    v: &toml::Value,
) -> Result<Vec<(String, u16)>, ConfigError> {
    parse_member_table(ctx, key, v, "{ eth0 = 100 }", |k, p| {
        let prio = as_u32(ctx, k, p)?;
        if !(1..=65535).contains(&prio) {
            return Err(ctx.err(k, format!("{prio} is out of range 1-65535")));
        }
        Ok(prio as u16)
    })
}

/// `prio`: a table of member = priority (a signed 32-bit number).
fn parse_member_prios(
    ctx: &Ctx,
    key: &str,
    v: &toml::Value,
) -> Result<Vec<(String, i32)>, ConfigError> {
    parse_member_table(ctx, key, v, "{ eth0 = 10 }", |k, p| {
        let n = p
            .as_integer()
            .ok_or_else(|| ctx.err(k, "expected a whole number"))?;
        i32::try_from(n)
            .map_err(|_| ctx.err(k, format!("{n} is out of range {}..{}", i32::MIN, i32::MAX)))
    })
}

fn parse_qinq(ctx: &Ctx, key: &str, v: &toml::Value) -> Result<Qinq, ConfigError> {
    match as_str(ctx, key, v)? {
        "drop" => Ok(Qinq::Drop),
        "pass" => Ok(Qinq::Pass),
        other => Err(ctx.err(key, format!("'{other}' is not one of drop, pass"))),
    }
}

/// What names another member must be one (primary, active_slave, the port
/// priorities); the bond and its VLAN interfaces must not be one. With
/// selectors the member names are known only at start.
fn check_member_names(ctx: &Ctx, b: &BondConfig) -> Result<(), ConfigError> {
    let name = b.name.as_str();
    let key = |k: &str| format!("bond.{name}.{k}");
    let names: Option<Vec<&str>> = b.members.iter().map(MemberSpec::name).collect();
    let is_member = |m: &str| names.as_ref().is_none_or(|n| n.contains(&m));
    let opts = &b.options;
    for (k, v) in [
        ("primary", &opts.primary),
        ("active_slave", &opts.active_slave),
    ] {
        if let Some(m) = v {
            if !is_member(m) {
                return Err(ctx.err(key(k), format!("{m} is not a member of {name}")));
            }
        }
    }
    if b.members.iter().any(|m| m.name() == Some(name)) {
        return Err(ctx.err(key("members"), "a bond cannot be its own member"));
    }
    let listed = [
        (
            "actor_port_prio",
            b.actor_port_prio.iter().map(|(m, _)| m).collect::<Vec<_>>(),
        ),
        ("prio", b.prio.iter().map(|(m, _)| m).collect()),
    ];
    for (k, members) in listed {
        if let Some(m) = members.into_iter().find(|m| !is_member(m)) {
            return Err(ctx.err(
                format!("{}.{m}", key(k)),
                format!("{m} is not a member of {name}"),
            ));
        }
    }
    if !b.actor_port_prio.is_empty() && opts.mode != options::BondMode::Ieee8023ad {
        return Err(ctx.err(
            key("actor_port_prio"),
            "a port priority is an 802.3ad setting (mode=802.3ad)",
        ));
    }
    if !b.prio.is_empty() && !opts.mode.uses_primary() {
        return Err(ctx.err(
            key("prio"),
            "a member priority chooses the active member: active-backup, balance-tlb or balance-alb",
        ));
    }
    for v in &b.vlans {
        if b.members.iter().any(|m| m.name() == Some(v.name.as_str())) {
            return Err(ctx.err(
                key("members"),
                format!("{} is the host interface of VLAN {}", v.name, v.id),
            ));
        }
    }
    Ok(())
}

/// The `[[bond.NAME.vlan]]` tables: ids 1-4094, each once; an interface
/// name that fits (15 characters); an MTU no larger than the bond's.
fn parse_vlans(
    ctx: &Ctx,
    bond: &str,
    bond_mtu: u32,
    values: &[&toml::Value],
) -> Result<Vec<VlanConfig>, ConfigError> {
    let mut out: Vec<VlanConfig> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let key = |k: &str| format!("bond.{bond}.vlan[{i}].{k}");
        let t = v
            .as_table()
            .ok_or_else(|| ctx.err(format!("bond.{bond}.vlan[{i}]"), "expected a table"))?;
        let id = t
            .get("id")
            .ok_or_else(|| ctx.err(key("id"), "a VLAN needs an id"))?;
        let id = as_u32(ctx, &key("id"), id)?;
        if !(1..=u32::from(xbond_dataplane::wire::vlan::VID_MAX)).contains(&id) {
            return Err(ctx.err(
                key("id"),
                format!("{id} is out of range 1-4094 (0 is the untagged bond itself)"),
            ));
        }
        let id = id as u16;
        if out.iter().any(|o| o.id == id) {
            return Err(ctx.err(key("id"), format!("VLAN {id} is defined twice")));
        }
        let mut vlan = VlanConfig {
            id,
            name: format!("{bond}.{id}"),
            mtu: bond_mtu,
            addresses: Vec::new(),
        };
        for (k, val) in t {
            match k.as_str() {
                "id" => {}
                "name" => vlan.name = as_str(ctx, &key("name"), val)?.to_string(),
                "mtu" => {
                    vlan.mtu = as_u32(ctx, &key("mtu"), val)?;
                    if !(68..=bond_mtu).contains(&vlan.mtu) {
                        return Err(ctx.err(
                            key("mtu"),
                            format!(
                                "{} is out of range 68-{bond_mtu} (a VLAN's MTU is at most its bond's)",
                                vlan.mtu
                            ),
                        ));
                    }
                }
                "addresses" => vlan.addresses = parse_addresses(ctx, &key("addresses"), val)?,
                other => {
                    return Err(ctx.err(
                        key(other),
                        "unknown key (expected id, name, mtu, addresses)",
                    ))
                }
            }
        }
        if vlan.name.is_empty() || vlan.name.len() > 15 || vlan.name.contains(['/', ' ', ':']) {
            return Err(ctx.err(
                key("name"),
                format!(
                    "'{}' is not an interface name of at most 15 characters; give the VLAN a shorter name",
                    vlan.name
                ),
            ));
        }
        if vlan.name == bond || out.iter().any(|o| o.name == vlan.name) {
            return Err(ctx.err(key("name"), format!("{} is used twice", vlan.name)));
        }
        out.push(vlan);
    }
    Ok(out)
}

/// A list of `ADDRESS/PREFIX` strings.
fn parse_addresses(ctx: &Ctx, key: &str, v: &toml::Value) -> Result<Vec<String>, ConfigError> {
    let a = v
        .as_array()
        .ok_or_else(|| ctx.err(key, "expected a list like [\"198.18.0.1/24\"]"))?;
    let mut out = Vec::new();
    for item in a {
        let s = as_str(ctx, key, item)?;
        parse_prefix(s).ok_or_else(|| ctx.err(key, format!("'{s}' is not ADDRESS/PREFIX")))?;
        out.push(s.to_string());
    }
    Ok(out)
}

fn parse_engine(
    ctx: &Ctx,
    bond: &str,
    k: &str,
    v: &toml::Value,
    e: &mut EngineConfig,
) -> Result<(), ConfigError> {
    let key = format!("bond.{bond}.{k}");
    let pick = |allowed: &[&str]| -> Result<String, ConfigError> {
        let s = as_str(ctx, &key, v)?;
        if allowed.contains(&s) {
            Ok(s.to_string())
        } else {
            Err(ctx.err(&key, format!("'{s}' is not one of {}", allowed.join(", "))))
        }
    };
    match k {
        "xdp_mode" => {
            e.xdp_mode = if pick(&["native", "generic"])? == "native" {
                AttachMode::Native
            } else {
                AttachMode::Generic
            }
        }
        "xdp_bind" => {
            e.xdp_bind = match pick(&["auto", "copy", "zerocopy"])?.as_str() {
                "copy" => BindMode::Copy,
                "zerocopy" => BindMode::ZeroCopy,
                _ => BindMode::Auto,
            }
        }
        "replace_xdp" => {
            e.replace_xdp = v
                .as_bool()
                .ok_or_else(|| ctx.err(&key, "expected true or false"))?
        }
        "host_port" => {
            e.host_port = match pick(&["af_xdp", "af_packet"])?.as_str() {
                "af_packet" => HostPortKind::AfPacket,
                _ => HostPortKind::AfXdp,
            }
        }
        "poll" => {
            e.poll = match pick(&["busy", "adaptive", "interrupt"])?.as_str() {
                "busy" => PollPolicy::Busy,
                "interrupt" => PollPolicy::Interrupt,
                _ => PollPolicy::Adaptive,
            }
        }
        "workers" => {
            e.workers = as_u32(ctx, &key, v)?;
            if !(1..=64).contains(&e.workers) {
                return Err(ctx.err(&key, "must be 1-64"));
            }
        }
        "cpus" => {
            let a = v
                .as_array()
                .ok_or_else(|| ctx.err(&key, "expected a list of core numbers"))?;
            e.cpus = a
                .iter()
                .map(|c| as_u32(ctx, &key, c).map(|c| c as usize))
                .collect::<Result<_, _>>()?;
        }
        "ring_size" => {
            e.ring_size = as_u32(ctx, &key, v)?;
            if !e.ring_size.is_power_of_two() || !(64..=16384).contains(&e.ring_size) {
                return Err(ctx.err(&key, "must be a power of two from 64 to 16384"));
            }
        }
        "frame_count" => {
            e.frame_count = as_u32(ctx, &key, v)?;
            if !(256..=1 << 20).contains(&e.frame_count) {
                return Err(ctx.err(&key, "must be 256-1048576"));
            }
        }
        "frame_size" => {
            e.frame_size = as_u32(ctx, &key, v)?;
            if e.frame_size != 2048 && e.frame_size != 4096 {
                return Err(ctx.err(&key, "must be 2048 or 4096"));
            }
        }
        "busy_poll_usecs" => e.busy_poll_usecs = Some(as_u32(ctx, &key, v)?),
        "busy_poll_budget" => e.busy_poll_budget = Some(as_u32(ctx, &key, v)?),
        "tx_skb_budget" => e.tx_skb_budget = Some(as_u32(ctx, &key, v)?),
        _ => return Err(ctx.err(&key, "unknown key")),
    }
    Ok(())
}

/// `ADDRESS/PREFIX` for IPv4 or IPv6.
pub fn parse_prefix(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (a, p) = s.split_once('/')?;
    let addr: std::net::IpAddr = a.parse().ok()?;
    let plen: u8 = p.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (plen <= max).then_some((addr, plen))
}

fn ser_mac<S: serde::Serializer>(m: &Option<MacAddr>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.serialize_str(&m.to_string()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests;
